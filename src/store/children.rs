//! Reading the ente, schools and children, and a child's calendar.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::rows::{self, get_date, get_opt_date};
use super::{Store, StoreError};
use crate::bookings::days::{DayMark, Suspension};
use crate::bookings::settings::PagoPaSettings;
use crate::bookings::{
    CancelCode, Cents, Channel, ChildDays, ClassId, Closure, DayStatus, Diet, EnteSettings,
    FiscalCode, LateRequestPolicy, SchoolCalendar, SchoolId, ServiceCalendar, UserCode, Weekdays,
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
    pub cancel_code: CancelCode,
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

pub(super) const CHILD_COLUMNS: &str = "c.id, c.user_code, c.cancel_code, c.first_name, c.last_name, \
     c.fiscal_code, c.school_id, c.class_id, c.diet, c.meal_price_cents, k.weekdays AS class_weekdays";

pub(super) fn child_from_row(row: &AnyRow) -> Result<Child, StoreError> {
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    let text = |c: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(c)?) };
    Ok(Child {
        id: ChildId(row.try_get("id")?),
        user_code: UserCode::parse(&text("user_code")?).map_err(|e| corrupt("user code", &e))?,
        cancel_code: CancelCode::parse(&text("cancel_code")?)
            .map_err(|e| corrupt("cancel code", &e))?,
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
    pub async fn settings(&self) -> Result<EnteSettings, StoreError> {
        let mut conn = self.read.acquire().await?;
        load_settings(&mut conn).await
    }

    pub async fn child_by_user_code(&self, code: &UserCode) -> Result<Option<Child>, StoreError> {
        self.child_where("c.user_code = $1", code.as_str()).await
    }

    pub async fn child_by_cancel_code(
        &self,
        code: &CancelCode,
    ) -> Result<Option<Child>, StoreError> {
        self.child_where("c.cancel_code = $1", code.as_str()).await
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

    pub async fn school_calendar(&self, school: &SchoolId) -> Result<SchoolCalendar, StoreError> {
        let mut conn = self.read.acquire().await?;
        load_school(&mut conn, school).await
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
    pub async fn calendar(
        &self,
        child: &Child,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<CalendarDay>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let settings = load_settings(&mut conn).await?;
        let school = load_school(&mut conn, &child.school).await?;
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

pub(super) async fn load_settings(conn: &mut AnyConnection) -> Result<EnteSettings, StoreError> {
    let row = sqlx::query(
        "SELECT name, timezone, cutoff, phone_window_opens, meal_price_cents, currency, \
         helpdesk_phone, late_requests, low_balance_meals, pagopa_creditor, pagopa_aux_digit, \
         pagopa_segregation FROM ente WHERE id = 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotImported)?;
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
        meal_price: Cents(row.try_get("meal_price_cents")?),
        currency: row.try_get("currency")?,
        helpdesk_phone: row.try_get("helpdesk_phone")?,
        late_requests: match late.as_str() {
            "apply_to_next_service_day" => LateRequestPolicy::ApplyToNextServiceDay,
            _ => LateRequestPolicy::Refuse,
        },
        low_balance_meals: u32::try_from(row.try_get::<i64, _>("low_balance_meals")?).unwrap_or(0),
        pagopa,
    })
}

pub(super) async fn load_school(
    conn: &mut AnyConnection,
    school: &SchoolId,
) -> Result<SchoolCalendar, StoreError> {
    let row = sqlx::query("SELECT year_start, year_end, weekdays FROM schools WHERE id = $1")
        .bind(school.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("unknown school {school}")))?;
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
    Ok(SchoolCalendar {
        year_start: get_date(&row, "year_start")?,
        year_end: get_date(&row, "year_end")?,
        weekdays: rows::weekdays(row.try_get("weekdays")?),
        closures,
    })
}

pub(super) async fn load_child_days(
    conn: &mut AnyConnection,
    child: ChildId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<ChildDays, StoreError> {
    let mut days = ChildDays::default();
    let marks = sqlx::query(
        "SELECT date, kind, channel, at_ms FROM day_marks \
         WHERE child_id = $1 AND date >= $2 AND date <= $3",
    )
    .bind(child.0)
    .bind(rows::date_text(from))
    .bind(rows::date_text(to))
    .fetch_all(&mut *conn)
    .await?;
    for r in &marks {
        let kind: String = r.try_get("kind")?;
        let mark = DayMark {
            kind: crate::bookings::MarkKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("bad mark {kind:?}")))?,
            channel: rows::parse_channel(&r.try_get::<String, _>("channel")?)?,
            at: rows::from_millis(r.try_get("at_ms")?)?,
        };
        days.marks.insert(get_date(r, "date")?, mark);
    }
    // Every suspension of the child: few per child, and the rules need the
    // ones beyond the range too (to refuse overlaps).
    let suspensions = sqlx::query(
        "SELECT date_from, date_until, channel, at_ms FROM suspensions \
         WHERE child_id = $1 ORDER BY date_from",
    )
    .bind(child.0)
    .fetch_all(&mut *conn)
    .await?;
    for r in &suspensions {
        days.suspensions.push(Suspension {
            from: get_date(r, "date_from")?,
            until: get_opt_date(r, "date_until")?,
            channel: rows::parse_channel(&r.try_get::<String, _>("channel")?)?,
            at: rows::from_millis(r.try_get("at_ms")?)?,
        });
    }
    Ok(days)
}
