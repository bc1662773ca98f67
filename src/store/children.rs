//! Reading the ente, schools and children, and a child's calendar.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::rows::{self, get_date, get_opt_date};
use super::statements::{Arg, Statements};
use super::{Backend, Store, StoreError};
use crate::bookings::days::{DayMark, Suspension};
use crate::bookings::settings::PagoPaSettings;
use crate::bookings::{
    CancelCode, Cents, Channel, ChildDays, ClassId, Closure, DayStatus, Diet, EnteSettings,
    FiscalCode, LateRequestPolicy, Reach, SchoolCalendar, SchoolId, ServiceCalendar, UserCode,
    Weekdays,
};

/// The store's key of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ChildId(pub i64);

/// Utente: an enrolled child, with what the rules need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub id: ChildId,
    pub user_code: UserCode,
    pub first_name: String,
    pub last_name: String,
    pub fiscal_code: FiscalCode,
    pub school: SchoolId,
    pub class: ClassId,
    /// The class's rientri, where set.
    pub class_weekdays: Option<Weekdays>,
    pub diet: Diet,
    /// Per-child tariff, where set; else the ente's price.
    pub meal_price: Option<Cents>,
}

/// One day of a child's calendar, as `mensa calendar` and the API show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub status: DayStatus,
    /// Changes for this day are still possible (R3).
    pub changeable: bool,
    /// The channel and time of the change that gave the day its status.
    pub changed: Option<(Channel, DateTime<Utc>)>,
}

pub(super) const CHILD_COLUMNS: &str = "c.id, c.user_code, c.first_name, c.last_name, \
     c.fiscal_code, c.school_id, c.class_id, c.diet, c.meal_price_cents, k.weekdays AS class_weekdays";

pub(super) fn child_from_row(row: &AnyRow) -> Result<Child, StoreError> {
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    let text = |c: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(c)?) };
    Ok(Child {
        id: ChildId(row.try_get("id")?),
        user_code: UserCode::parse(&text("user_code")?).map_err(|e| corrupt("user code", &e))?,
        first_name: text("first_name")?,
        last_name: text("last_name")?,
        fiscal_code: FiscalCode::parse(&text("fiscal_code")?)
            .map_err(|e| corrupt("fiscal code", &e))?,
        school: SchoolId::parse(&text("school_id")?).map_err(|e| corrupt("school", &e))?,
        class: ClassId::parse(&text("class_id")?).map_err(|e| corrupt("class", &e))?,
        class_weekdays: row
            .try_get::<Option<i64>, _>("class_weekdays")?
            .map(rows::weekdays),
        diet: Diet::parse(&text("diet")?).map_err(|e| corrupt("diet", &e))?,
        meal_price: row
            .try_get::<Option<i64>, _>("meal_price_cents")?
            .map(Cents),
    })
}

impl Store {
    /// The ente's settings; [`StoreError::NotImported`] before any import.
    /// Served from the cache (`store::cache`): at most [`super::CACHE_TTL`]
    /// old when another process changed them.
    pub async fn settings(&self) -> Result<EnteSettings, StoreError> {
        Ok(EnteSettings::clone(&*self.cached_settings().await?))
    }

    pub(super) async fn cached_settings(&self) -> Result<Arc<EnteSettings>, StoreError> {
        let now = Instant::now();
        if let Some(settings) = self.cache.settings(now) {
            return Ok(settings);
        }
        let generation = self.cache.generation();
        let mut conn = self.read.acquire().await?;
        let settings = Arc::new(load_settings(&mut conn).await?);
        self.cache.put_settings(generation, now, settings.clone());
        Ok(settings)
    }

    pub(super) async fn cached_school(
        &self,
        school: &SchoolId,
    ) -> Result<Arc<SchoolCalendar>, StoreError> {
        let now = Instant::now();
        if let Some(calendar) = self.cache.school(school, now) {
            return Ok(calendar);
        }
        let generation = self.cache.generation();
        let mut conn = self.read.acquire().await?;
        let calendar = Arc::new(load_school(&mut conn, school).await?);
        self.cache
            .put_school(generation, now, school.clone(), calendar.clone());
        Ok(calendar)
    }

    pub async fn child_by_user_code(&self, code: &UserCode) -> Result<Option<Child>, StoreError> {
        self.child_where("c.user_code = $1", code.as_str()).await
    }

    /// The child holding `code`: looked up by its keyed hash
    /// (`store::codes`). Unthrottled: the phone line counts codes first
    /// ([`Store::admit_code`]).
    pub async fn child_by_cancel_code(
        &self,
        code: &CancelCode,
    ) -> Result<Option<Child>, StoreError> {
        let hash = self.code_key().await?.hash(code);
        self.child_where("c.cancel_code = $1", hash.as_str()).await
    }

    /// A child by its store id; None when no longer enrolled.
    pub async fn child(&self, id: ChildId) -> Result<Option<Child>, StoreError> {
        let sql = format!(
            "SELECT {CHILD_COLUMNS} FROM children c \
             LEFT JOIN classes k ON k.school_id = c.school_id AND k.id = c.class_id \
             WHERE c.id = $1"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(child_from_row).transpose()
    }

    async fn child_where(&self, condition: &str, value: &str) -> Result<Option<Child>, StoreError> {
        let sql = format!(
            "SELECT {CHILD_COLUMNS} FROM children c \
             LEFT JOIN classes k ON k.school_id = c.school_id AND k.id = c.class_id \
             WHERE {condition}"
        );
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(child_from_row).transpose()
    }

    /// Served from the cache, like [`Store::settings`].
    pub async fn school_calendar(&self, school: &SchoolId) -> Result<SchoolCalendar, StoreError> {
        Ok(SchoolCalendar::clone(&*self.cached_school(school).await?))
    }

    /// A child's reach (`bookings::reach`): a year around its school's
    /// year. From the cache, like [`Store::school_calendar`].
    pub async fn child_reach(&self, child: &Child) -> Result<Reach, StoreError> {
        Ok(Reach::of_school(&*self.cached_school(&child.school).await?))
    }

    /// A school's reach; None if there is no such school.
    pub async fn school_reach(&self, school: &SchoolId) -> Result<Option<Reach>, StoreError> {
        let row = sqlx::query("SELECT year_start, year_end FROM schools WHERE id = $1")
            .bind(school.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| {
            let (start, end) = (get_date(&r, "year_start")?, get_date(&r, "year_end")?);
            Ok(Reach::of_school_years([(start, end)]))
        })
        .transpose()
    }

    /// The ente's reach (`bookings::reach`): a year around every school's
    /// year together; the frame before any school is imported.
    pub async fn reach(&self) -> Result<Reach, StoreError> {
        let years = sqlx::query("SELECT year_start, year_end FROM schools")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| Ok((get_date(r, "year_start")?, get_date(r, "year_end")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Reach::of_school_years(years))
    }

    /// The stored exceptions of a child that touch `from..=to`.
    pub async fn child_days(
        &self,
        child: ChildId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ChildDays, StoreError> {
        let mut conn = self.read.acquire().await?;
        load_child_days(&mut conn, child, from, to).await
    }

    /// Each day of `from..=to` with its status, as the calendar shows it.
    /// The settings and the school come from the cache; the child's marks
    /// and suspensions from the database, always.
    pub async fn calendar(
        &self,
        child: &Child,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<CalendarDay>, StoreError> {
        let settings = self.cached_settings().await?;
        let school = self.cached_school(&child.school).await?;
        let mut conn = self.read.acquire().await?;
        let days = load_child_days(&mut conn, child.id, from, to).await?;
        let calendar = ServiceCalendar::new(&school, child.class_weekdays);
        Ok(from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(|date| {
                let status = days.status_on(&calendar, date);
                let changeable =
                    !matches!(status, DayStatus::NoService(_)) && settings.is_open(date, now);
                CalendarDay {
                    date,
                    changed: days.changed_by(date),
                    status,
                    changeable,
                }
            })
            .collect())
    }
}

pub(super) async fn load_child(
    conn: &mut AnyConnection,
    child: ChildId,
) -> Result<Child, StoreError> {
    let sql = format!(
        "SELECT {CHILD_COLUMNS} FROM children c \
         LEFT JOIN classes k ON k.school_id = c.school_id AND k.id = c.class_id \
         WHERE c.id = $1"
    );
    let row = sqlx::query(&sql)
        .bind(child.0)
        .fetch_optional(&mut *conn)
        .await?;
    let row = row.ok_or_else(|| StoreError::Conflict(format!("no child with id {}", child.0)))?;
    child_from_row(&row)
}

/// The ente's columns, as [`settings_from_row`] reads them.
const ENTE_COLUMNS: &str = "e.name, e.timezone, e.cutoff, e.phone_window_opens, \
     e.meal_price_cents AS ente_meal_price_cents, e.currency, e.helpdesk_phone, e.late_requests, \
     e.low_balance_meals, e.pagopa_creditor, e.pagopa_aux_digit, e.pagopa_segregation, \
     e.cancel_code_min_digits";

pub(super) async fn load_settings(conn: &mut AnyConnection) -> Result<EnteSettings, StoreError> {
    let row = sqlx::query(&format!("SELECT {ENTE_COLUMNS} FROM ente e WHERE e.id = 1"))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotImported)?;
    settings_from_row(&row)
}

fn settings_from_row(row: &AnyRow) -> Result<EnteSettings, StoreError> {
    let timezone: String = row.try_get("timezone")?;
    let late: String = row.try_get("late_requests")?;
    let creditor: Option<String> = row.try_get("pagopa_creditor")?;
    let pagopa = match creditor {
        Some(creditor_fiscal_code) => Some(PagoPaSettings {
            creditor_fiscal_code,
            aux_digit: u8::try_from(
                row.try_get::<Option<i64>, _>("pagopa_aux_digit")?
                    .unwrap_or(3),
            )
            .map_err(|_| StoreError::Corrupt("bad pagoPA aux digit".into()))?,
            segregation_code: row
                .try_get::<Option<String>, _>("pagopa_segregation")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(EnteSettings {
        name: row.try_get("name")?,
        timezone: timezone
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("bad stored time zone {timezone:?}")))?,
        cutoff: rows::parse_time(&row.try_get::<String, _>("cutoff")?)?,
        phone_window_opens: rows::parse_time(&row.try_get::<String, _>("phone_window_opens")?)?,
        meal_price: Cents(row.try_get("ente_meal_price_cents")?),
        currency: row.try_get("currency")?,
        helpdesk_phone: row.try_get("helpdesk_phone")?,
        late_requests: match late.as_str() {
            "apply_to_next_service_day" => LateRequestPolicy::ApplyToNextServiceDay,
            _ => LateRequestPolicy::Refuse,
        },
        low_balance_meals: u32::try_from(row.try_get::<i64, _>("low_balance_meals")?).unwrap_or(0),
        pagopa,
        cancel_code_min_digits: u8::try_from(row.try_get::<i64, _>("cancel_code_min_digits")?)
            .map_err(|_| StoreError::Corrupt("bad minimum length of cancel codes".into()))?,
    })
}

pub(super) async fn load_school(
    conn: &mut AnyConnection,
    school: &SchoolId,
) -> Result<SchoolCalendar, StoreError> {
    let row = sqlx::query(
        "SELECT year_start, year_end, weekdays AS school_weekdays FROM schools WHERE id = $1",
    )
    .bind(school.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::Corrupt(format!("unknown school {school}")))?;
    school_from_row(conn, school, &row).await
}

/// The school's year from `row` (`year_start`, `year_end`,
/// `school_weekdays`), and its closures.
async fn school_from_row(
    conn: &mut AnyConnection,
    school: &SchoolId,
    row: &AnyRow,
) -> Result<SchoolCalendar, StoreError> {
    let closures = sqlx::query(
        "SELECT date_from, date_to, reason FROM closures WHERE school_id = $1 ORDER BY date_from",
    )
    .bind(school.as_str())
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(Closure {
            from: get_date(r, "date_from")?,
            to: get_date(r, "date_to")?,
            reason: r.try_get("reason")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    school_year(row, closures)
}

fn school_year(row: &AnyRow, closures: Vec<Closure>) -> Result<SchoolCalendar, StoreError> {
    Ok(SchoolCalendar {
        year_start: get_date(row, "year_start")?,
        year_end: get_date(row, "year_end")?,
        weekdays: rows::weekdays(row.try_get("school_weekdays")?),
        closures,
    })
}

/// Everything a change is judged on, read inside its transaction.
pub(super) struct ForChange {
    pub settings: EnteSettings,
    pub child: Child,
    pub school: SchoolCalendar,
    /// The child's marks from the date asked for [`load_for_change`] on,
    /// and all its suspensions.
    pub days: ChildDays,
    /// The days from that date on that the closing has closed (R10).
    pub closed_days: BTreeSet<NaiveDate>,
}

/// What a change needs, in one round trip on SQLite (two statements,
/// [`Statements`]): the child with its class, school and ente; then its
/// marks from `from` on, its suspensions, its school's closures and the
/// days closed from `from` on.
pub(super) async fn load_for_change(
    conn: &mut AnyConnection,
    backend: Backend,
    child: ChildId,
    from: NaiveDate,
) -> Result<ForChange, StoreError> {
    let rows = for_change_statements(child, from)?
        .run(conn, backend)
        .await?;
    match for_change_from_rows(&rows)? {
        Some(loaded) => Ok(loaded),
        None => Err(why_not_loaded(conn, child).await),
    }
}

/// The statements of [`load_for_change`], for a caller that sends them
/// with others (`store::writer`).
pub(super) fn for_change_statements(
    child: ChildId,
    from: NaiveDate,
) -> Result<Statements, StoreError> {
    let mut statements = Statements::new();
    statements.push(
        format!(
            "SELECT {CHILD_COLUMNS}, s.year_start, s.year_end, s.weekdays AS school_weekdays, \
             {ENTE_COLUMNS} FROM children c \
             LEFT JOIN classes k ON k.school_id = c.school_id AND k.id = c.class_id \
             JOIN schools s ON s.id = c.school_id \
             JOIN ente e ON e.id = 1 \
             WHERE c.id = $1"
        ),
        vec![Arg::Int(child.0)],
    );
    statements.push(
        "SELECT 'm' AS source, date AS date_from, NULL AS date_until, kind AS detail, \
         channel, at_ms FROM day_marks WHERE child_id = $1 AND date >= $2 \
         UNION ALL \
         SELECT 's', date_from, date_until, NULL, channel, at_ms \
         FROM suspensions WHERE child_id = $1 \
         UNION ALL \
         SELECT 'c', date_from, date_to, reason, NULL, NULL FROM closures \
         WHERE school_id = (SELECT school_id FROM children WHERE id = $1) \
         UNION ALL \
         SELECT 'd', date, NULL, NULL, NULL, NULL FROM days \
         WHERE date >= $2 AND closed_at_ms IS NOT NULL \
         ORDER BY 1, 2",
        vec![Arg::Int(child.0), Arg::Text(rows::date_text(from)?)],
    );
    Ok(statements)
}

/// The rows of [`for_change_statements`] as a [`ForChange`]; None when
/// the child, its school or the ente is missing ([`why_not_loaded`]).
pub(super) fn for_change_from_rows(rows: &[AnyRow]) -> Result<Option<ForChange>, StoreError> {
    let mut head = None;
    let mut days = ChildDays::default();
    let mut closures = Vec::new();
    let mut closed_days = BTreeSet::new();
    for r in rows {
        if r.try_column("source").is_err() {
            head = Some(r);
            continue;
        }
        let date = get_date(r, "date_from")?;
        match r.try_get::<String, _>("source")?.as_str() {
            "m" => {
                let kind: String = r.try_get("detail")?;
                let mark = DayMark {
                    kind: crate::bookings::MarkKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("bad mark {kind:?}")))?,
                    channel: rows::parse_channel(&r.try_get::<String, _>("channel")?)?,
                    at: rows::from_millis(r.try_get("at_ms")?)?,
                };
                days.marks.insert(date, mark);
            }
            "s" => days.suspensions.push(Suspension {
                from: date,
                until: get_opt_date(r, "date_until")?,
                channel: rows::parse_channel(&r.try_get::<String, _>("channel")?)?,
                at: rows::from_millis(r.try_get("at_ms")?)?,
            }),
            "c" => closures.push(Closure {
                from: date,
                to: get_date(r, "date_until")?,
                reason: r.try_get("detail")?,
            }),
            "d" => {
                closed_days.insert(date);
            }
            other => return Err(StoreError::Corrupt(format!("unexpected row {other:?}"))),
        }
    }
    let Some(head) = head else {
        return Ok(None);
    };
    Ok(Some(ForChange {
        settings: settings_from_row(head)?,
        child: child_from_row(head)?,
        school: school_year(head, closures)?,
        days,
        closed_days,
    }))
}

/// Which of the ente, the child and its school is missing, as the
/// separate loads say it.
pub(super) async fn why_not_loaded(conn: &mut AnyConnection, child: ChildId) -> StoreError {
    let missing = async {
        load_settings(conn).await?;
        let record = load_child(conn, child).await?;
        load_school(conn, &record.school).await?;
        Ok::<_, StoreError>(())
    };
    match missing.await {
        Err(e) => e,
        Ok(()) => StoreError::Corrupt(format!(
            "child {} could not be loaded with its school",
            child.0
        )),
    }
}

pub(super) async fn load_child_days(
    conn: &mut AnyConnection,
    child: ChildId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<ChildDays, StoreError> {
    let mut days = ChildDays::default();
    // The marks in the range and every suspension of the child (few per
    // child, and the rules need the ones beyond the range too, to refuse
    // overlaps), in one statement: one round trip instead of two.
    let rows = sqlx::query(
        "SELECT 'm' AS source, date AS date_from, NULL AS date_until, kind, channel, at_ms \
         FROM day_marks WHERE child_id = $1 AND date >= $2 AND date <= $3 \
         UNION ALL \
         SELECT 's', date_from, date_until, NULL, channel, at_ms \
         FROM suspensions WHERE child_id = $1 \
         ORDER BY 1, 2",
    )
    .bind(child.0)
    .bind(rows::date_text(from)?)
    .bind(rows::date_text(to)?)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        let channel = rows::parse_channel(&r.try_get::<String, _>("channel")?)?;
        let at = rows::from_millis(r.try_get("at_ms")?)?;
        if r.try_get::<String, _>("source")? == "m" {
            let kind: String = r.try_get("kind")?;
            let mark = DayMark {
                kind: crate::bookings::MarkKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad mark {kind:?}")))?,
                channel,
                at,
            };
            days.marks.insert(get_date(r, "date_from")?, mark);
        } else {
            days.suspensions.push(Suspension {
                from: get_date(r, "date_from")?,
                until: get_opt_date(r, "date_until")?,
                channel,
                at,
            });
        }
    }
    Ok(days)
}
