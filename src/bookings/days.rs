//! A child's days: the stored exceptions (R2: only exceptions are stored),
//! the status of any date, and the changes parents and operators ask for:
//! R4 daily absence and plain meal, R7 suspension and reactivation, R8
//! plain meal, R9 undo. Every function is pure: the store loads the child's
//! exceptions, asks here what to write, and writes it in one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::calendar::{NoService, ServiceCalendar};
use super::reach::Reach;
use super::settings::{EnteSettings, LateRequestPolicy};
use super::{Channel, Refusal};

/// A stored mark on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    /// Disdetta giornaliera: the child will not eat that day.
    Absent,
    /// Pasto in bianco: present, with a plain meal (R8).
    PlainMeal,
}

impl MarkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkKind::Absent => "absent",
            MarkKind::PlainMeal => "plain_meal",
        }
    }

    pub fn parse(s: &str) -> Option<MarkKind> {
        match s {
            "absent" => Some(MarkKind::Absent),
            "plain_meal" => Some(MarkKind::PlainMeal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayMark {
    pub kind: MarkKind,
    pub channel: Channel,
    pub at: DateTime<Utc>,
}

/// Assenza prolungata: every service day from `from` until the day before
/// `until` counts as absent. An open suspension (`until` = None) lasts
/// until a reactivation is made (R7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suspension {
    pub from: NaiveDate,
    /// The first day back (riattivazione), if known.
    pub until: Option<NaiveDate>,
    pub channel: Channel,
    pub at: DateTime<Utc>,
}

impl Suspension {
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.from <= date && self.until.is_none_or(|u| date < u)
    }

    fn overlaps(&self, from: NaiveDate, until: Option<NaiveDate>) -> bool {
        let starts_before_other_ends = until.is_none_or(|u| self.from < u);
        let other_starts_before_self_ends = self.until.is_none_or(|u| from < u);
        starts_before_other_ends && other_starts_before_self_ends
    }
}

/// The stored exceptions of one child (over whatever range was loaded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildDays {
    pub marks: BTreeMap<NaiveDate, DayMark>,
    pub suspensions: Vec<Suspension>,
}

/// The status of a child on a date: the words of `mensa calendar` and the
/// API (`booked`, `absent`, `plain_meal`, `suspended`, `no_service`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DayStatus {
    Booked,
    Absent,
    PlainMeal,
    Suspended,
    NoService(NoService),
}

impl DayStatus {
    pub fn word(&self) -> &'static str {
        match self {
            DayStatus::Booked => "booked",
            DayStatus::Absent => "absent",
            DayStatus::PlainMeal => "plain_meal",
            DayStatus::Suspended => "suspended",
            DayStatus::NoService(_) => "no_service",
        }
    }

    /// The child eats (and is charged) that day.
    pub fn is_present(&self) -> bool {
        matches!(self, DayStatus::Booked | DayStatus::PlainMeal)
    }
}

impl ChildDays {
    pub fn suspension_covering(&self, date: NaiveDate) -> Option<&Suspension> {
        self.suspensions.iter().find(|s| s.covers(date))
    }

    /// R1, R2, R7, R8: what the child has on `date`.
    pub fn status_on(&self, calendar: &ServiceCalendar<'_>, date: NaiveDate) -> DayStatus {
        if let Err(why) = calendar.service_on(date) {
            return DayStatus::NoService(why);
        }
        if self.suspension_covering(date).is_some() {
            return DayStatus::Suspended;
        }
        match self.marks.get(&date).map(|m| m.kind) {
            Some(MarkKind::Absent) => DayStatus::Absent,
            Some(MarkKind::PlainMeal) => DayStatus::PlainMeal,
            None => DayStatus::Booked,
        }
    }

    /// The channel of the change that gave `date` its status, if any.
    pub fn changed_by(&self, date: NaiveDate) -> Option<(Channel, DateTime<Utc>)> {
        if let Some(s) = self.suspension_covering(date) {
            return Some((s.channel, s.at));
        }
        self.marks.get(&date).map(|m| (m.channel, m.at))
    }
}

/// What a parent asks for one day (R4, R8, R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayRequest {
    Absent,
    PlainMeal,
    /// Undo an absence or a plain meal: back to the automatic booking.
    Booked,
}

/// A day change the rules allow: what to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayChange {
    /// The day changed; differs from the asked date only under
    /// [`LateRequestPolicy::ApplyToNextServiceDay`].
    pub date: NaiveDate,
    /// The mark to store; `None` removes the mark (undo).
    pub mark: Option<MarkKind>,
    pub previous: Option<MarkKind>,
}

/// Everything the rules need about one child at one instant.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext<'a> {
    pub settings: &'a EnteSettings,
    pub calendar: ServiceCalendar<'a>,
    pub now: DateTime<Utc>,
}

impl RuleContext<'_> {
    /// R6 Target day (primo giorno utile): the first service day of the
    /// child whose cutoff is still ahead. Weekends and closures skipped.
    pub fn target_day(&self) -> Option<NaiveDate> {
        self.calendar
            .first_service_day_from(self.settings.first_open_date(self.now))
    }

    /// A date asked for must lie in the reach of the child's school
    /// calendar: a year around its school year ([`Reach::of_school`]).
    /// Checked first by every plan, so that nothing is computed, loaded
    /// beyond it or written for a date the store could not compare.
    pub fn check_reach(&self, date: NaiveDate) -> Result<NaiveDate, Refusal> {
        let reach = Reach::of_school(self.calendar.school);
        reach
            .check(date)
            .map_err(|_| Refusal::OutOfReach { date, reach })
    }

    /// R3 with the ente's late policy: the day a request for `date` lands on.
    fn open_day_for(&self, date: NaiveDate) -> Result<NaiveDate, Refusal> {
        if self.settings.is_open(date, self.now) {
            return Ok(date);
        }
        match self.settings.late_requests {
            LateRequestPolicy::Refuse => Err(Refusal::AfterCutoff { date }),
            LateRequestPolicy::ApplyToNextServiceDay => self
                .calendar
                .first_service_day_from(date.max(self.settings.first_open_date(self.now)))
                .ok_or(Refusal::NoServiceDayAhead),
        }
    }

    /// R4, R8, R9: a daily absence, a plain meal, or undoing either.
    pub fn plan_day_change(
        &self,
        days: &ChildDays,
        date: NaiveDate,
        request: DayRequest,
    ) -> Result<DayChange, Refusal> {
        self.check_reach(date)?;
        let date = self.open_day_for(date)?;
        if let Err(reason) = self.calendar.service_on(date) {
            return Err(Refusal::NoServiceThatDay { date, reason });
        }
        if days.suspension_covering(date).is_some() {
            return Err(Refusal::Suspended { date });
        }
        let previous = days.marks.get(&date).map(|m| m.kind);
        let mark = match (request, previous) {
            (DayRequest::Absent, Some(MarkKind::Absent)) => {
                return Err(Refusal::AlreadyAbsent { date });
            }
            (DayRequest::PlainMeal, Some(MarkKind::PlainMeal)) => {
                return Err(Refusal::AlreadyPlainMeal { date });
            }
            (DayRequest::Booked, None) => return Err(Refusal::NothingToUndo { date }),
            (DayRequest::Absent, _) => Some(MarkKind::Absent),
            (DayRequest::PlainMeal, _) => Some(MarkKind::PlainMeal),
            (DayRequest::Booked, Some(_)) => None,
        };
        Ok(DayChange {
            date,
            mark,
            previous,
        })
    }

    /// R7: a suspension from `from`, until the first day back `until` if
    /// given. Refused if it would touch a closed day or overlap another.
    pub fn plan_suspension(
        &self,
        days: &ChildDays,
        from: NaiveDate,
        until: Option<NaiveDate>,
    ) -> Result<SuspensionChange, Refusal> {
        self.check_reach(from)?;
        if let Some(until) = until {
            self.check_reach(until)?;
        }
        if from < self.settings.first_open_date(self.now) {
            return Err(Refusal::AfterCutoff { date: from });
        }
        let first_day = self
            .calendar
            .first_service_day_from(from)
            .ok_or(Refusal::NoServiceDayAhead)?;
        if let Some(u) = until
            && u <= first_day
        {
            return Err(Refusal::ReturnNotAfterStart {
                from: first_day,
                until: u,
            });
        }
        // A return on a day without service means the next one with it.
        let until = until.map(|u| self.calendar.first_service_day_from(u).unwrap_or(u));
        if let Some(existing) = days.suspensions.iter().find(|s| s.overlaps(from, until)) {
            return Err(Refusal::AlreadySuspended {
                since: existing.from,
            });
        }
        Ok(SuspensionChange::Start {
            from: first_day,
            until,
        })
    }

    /// R7: reactivation from `from`; on a day without service, the service
    /// resumes on the next service day. Reactivating on the first day of a
    /// suspension that has not begun removes it.
    pub fn plan_reactivation(
        &self,
        days: &ChildDays,
        from: NaiveDate,
    ) -> Result<SuspensionChange, Refusal> {
        self.check_reach(from)?;
        if from < self.settings.first_open_date(self.now) {
            return Err(Refusal::AfterCutoff { date: from });
        }
        let Some(suspension) = days.suspensions.iter().find(|s| {
            s.covers(from)
                || (from < s.from && self.calendar.first_service_day_from(from) >= Some(s.from))
        }) else {
            return Err(Refusal::NotSuspended);
        };
        let resume = self
            .calendar
            .first_service_day_from(from)
            .ok_or(Refusal::NoServiceDayAhead)?;
        if resume <= suspension.from {
            return Ok(SuspensionChange::Remove {
                from: suspension.from,
                resume,
            });
        }
        Ok(SuspensionChange::End {
            from: suspension.from,
            resume,
        })
    }
}

/// A suspension change the rules allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SuspensionChange {
    /// A new suspension from the first service day on or after the asked date.
    Start {
        from: NaiveDate,
        until: Option<NaiveDate>,
    },
    /// The suspension that began on `from` ends: meals again from `resume`.
    End { from: NaiveDate, resume: NaiveDate },
    /// The suspension that would begin on `from` never starts.
    Remove { from: NaiveDate, resume: NaiveDate },
}
