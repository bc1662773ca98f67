//! The ente's settings and the rules that only need them and the clock:
//! R3 cutoff, R5 phone window, and where "today" is.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::Serialize;

use super::ids::Cents;

/// What happens to a request for a day whose cutoff has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LateRequestPolicy {
    /// Refused with a clear reason; the meal is charged (the manual's rule).
    #[default]
    Refuse,
    /// Applied to the next service day whose cutoff is still ahead (some
    /// municipalities do so).
    ApplyToNextServiceDay,
}

/// The manual's codes have five digits.
pub const DEFAULT_MIN_CODE_DIGITS: u8 = 5;

/// Ente erogatore: the municipality running the service, and its settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnteSettings {
    pub name: String,
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: Tz,
    /// Orario limite: changes for day D close at this time of D (R3).
    pub cutoff: NaiveTime,
    /// The phone line opens at this time of the day before (R5).
    pub phone_window_opens: NaiveTime,
    pub meal_price: Cents,
    pub currency: String,
    pub helpdesk_phone: Option<String>,
    pub late_requests: LateRequestPolicy,
    /// Low balance: the credit covers fewer meals than this.
    pub low_balance_meals: u32,
    pub pagopa: Option<PagoPaSettings>,
    /// The fewest digits a new codice disdetta may have (the import warns
    /// about shorter ones, `mensa codes reissue` replaces them); 5 in the
    /// manual's letters. Shorter codes already held keep working.
    pub cancel_code_min_digits: u8,
}

fn serialize_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// The creditor data of pagoPA payment notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PagoPaSettings {
    pub creditor_fiscal_code: String,
    pub aux_digit: u8,
    pub segregation_code: String,
}

impl EnteSettings {
    /// Defaults of the manual: Europe/Rome, cutoff 09:00, window from 18:00.
    pub fn with_name(name: &str) -> EnteSettings {
        EnteSettings {
            name: name.to_string(),
            timezone: chrono_tz::Europe::Rome,
            cutoff: NaiveTime::from_hms_opt(9, 0, 0).expect("09:00 is a valid time"),
            phone_window_opens: NaiveTime::from_hms_opt(18, 0, 0).expect("18:00 is a valid time"),
            meal_price: Cents(450),
            currency: "EUR".into(),
            helpdesk_phone: None,
            late_requests: LateRequestPolicy::Refuse,
            low_balance_meals: 5,
            pagopa: None,
            cancel_code_min_digits: DEFAULT_MIN_CODE_DIGITS,
        }
    }

    /// `now` as a local date and time of the ente. Total: within hours of
    /// chrono's last (or first) instant the local time would not exist, and
    /// it is the last (first) one chrono has, where chrono's own
    /// `naive_local` panics. No input reaches that far (inputs are checked
    /// against [`super::reach::Reach`]); this keeps a clock gone wild from
    /// crashing the node.
    pub fn local(&self, now: DateTime<Utc>) -> NaiveDateTime {
        let utc = now.naive_utc();
        let offset = self.timezone.offset_from_utc_datetime(&utc).fix();
        utc.checked_add_offset(offset).unwrap_or(if utc.year() > 0 {
            NaiveDateTime::MAX
        } else {
            NaiveDateTime::MIN
        })
    }

    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        self.local(now).date()
    }

    /// The instant a local date and time of the ente happens. On the day
    /// clocks go back, an ambiguous time is its first occurrence; on the day
    /// they go forward, a time that does not exist is the first instant
    /// after the gap.
    pub fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.timezone.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // Gaps are at most an hour; step forward a minute at a time.
                (1..=180)
                    .find_map(|m| {
                        // Checked: at chrono's last minute there is none after.
                        let later = local.checked_add_signed(Duration::minutes(m))?;
                        self.timezone.from_local_datetime(&later).earliest()
                    })
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|| Utc.from_utc_datetime(&local))
            }
        }
    }

    /// R3: the instant changes for `date` close.
    pub fn cutoff_of(&self, date: NaiveDate) -> DateTime<Utc> {
        self.instant(date.and_time(self.cutoff))
    }

    /// R3: changes for `date` are still possible at `now`.
    pub fn is_open(&self, date: NaiveDate, now: DateTime<Utc>) -> bool {
        now < self.cutoff_of(date)
    }

    /// The first date whose cutoff is still ahead: today before the cutoff,
    /// tomorrow after it (whether or not either has service).
    pub fn first_open_date(&self, now: DateTime<Utc>) -> NaiveDate {
        let today = self.today(now);
        if self.is_open(today, now) {
            today
        } else {
            today.succ_opt().unwrap_or(today)
        }
    }

    /// R5: the phone line takes operations from the window opening of one
    /// day until the cutoff of the next morning.
    pub fn phone_window_open(&self, now: DateTime<Utc>) -> bool {
        let local = self.local(now);
        let time = local.time();
        time >= self.phone_window_opens || self.is_open(local.date(), now)
    }
}
