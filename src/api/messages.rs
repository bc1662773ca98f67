//! Messages a parent understands, in English and Italian: the core's
//! refusals and the reasons of days without service.

use axum::http::StatusCode;
use chrono::{Datelike, NaiveDate};

use crate::bookings::{NoService, Reach, Refusal};

pub struct RefusalMessage {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub en: String,
    pub it: String,
}

/// "Thursday 10 December 2026".
pub fn date_en(d: NaiveDate) -> String {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format!(
        "{} {} {} {}",
        DAYS[d.weekday().num_days_from_monday() as usize],
        d.day(),
        MONTHS[d.month0() as usize],
        d.year()
    )
}

/// "giovedì 10 dicembre 2026".
pub fn date_it(d: NaiveDate) -> String {
    const DAYS: [&str; 7] = [
        "lunedì",
        "martedì",
        "mercoledì",
        "giovedì",
        "venerdì",
        "sabato",
        "domenica",
    ];
    const MONTHS: [&str; 12] = [
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ];
    format!(
        "{} {} {} {}",
        DAYS[d.weekday().num_days_from_monday() as usize],
        d.day(),
        MONTHS[d.month0() as usize],
        d.year()
    )
}

pub fn no_service_en(why: &NoService) -> String {
    match why {
        NoService::OutsideSchoolYear => "outside the school year".into(),
        NoService::NotAServiceWeekday => "no canteen on this weekday".into(),
        NoService::Closure { reason } => reason.clone(),
    }
}

pub fn no_service_it(why: &NoService) -> String {
    match why {
        NoService::OutsideSchoolYear => "fuori dall'anno scolastico".into(),
        NoService::NotAServiceWeekday => "giorno della settimana senza mensa".into(),
        NoService::Closure { reason } => reason.clone(),
    }
}

/// A date (or month, or year) outside the school calendar's reach
/// (`bookings::reach`): whether the rules refused it or the API did
/// before asking them, the same 422 problem.
pub fn out_of_reach(asked: &str, reach: &Reach) -> RefusalMessage {
    RefusalMessage {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        slug: "date-out-of-reach",
        title: "Date outside the school calendar",
        en: format!(
            "{asked} is outside the school calendar: dates from {} to {} are accepted.",
            date_en(reach.first),
            date_en(reach.last)
        ),
        it: format!(
            "{asked} è fuori dal calendario scolastico: sono accettate le date da {} a {}.",
            date_it(reach.first),
            date_it(reach.last)
        ),
    }
}

pub fn refusal(r: &Refusal) -> RefusalMessage {
    use StatusCode as S;
    let m = |status, slug, title, en: String, it: String| RefusalMessage {
        status,
        slug,
        title,
        en,
        it,
    };
    match r {
        Refusal::AfterCutoff { date } => m(
            S::CONFLICT,
            "after-cutoff",
            "Too late to change this day",
            format!(
                "Changes for {} closed at the morning deadline: the day stays as it was, \
                 and a booked meal is charged.",
                date_en(*date)
            ),
            format!(
                "L'orario limite per {} è passato: la giornata resta com'era e il pasto \
                 prenotato viene addebitato.",
                date_it(*date)
            ),
        ),
        Refusal::DayClosed { date } => m(
            S::CONFLICT,
            "day-closed",
            "This day is already closed",
            format!(
                "{} is already closed: the kitchen has its numbers and meals are charged.",
                date_en(*date)
            ),
            format!(
                "La giornata di {} è già chiusa: i pasti sono stati comunicati alla cucina e addebitati.",
                date_it(*date)
            ),
        ),
        Refusal::NoServiceThatDay { date, reason } => m(
            S::UNPROCESSABLE_ENTITY,
            "no-service-day",
            "No canteen service that day",
            format!(
                "There is no canteen service on {} ({}): there is nothing to cancel.",
                date_en(*date),
                no_service_en(reason)
            ),
            format!(
                "Il servizio mensa non è erogato {} ({}): non c'è nulla da disdire.",
                date_it(*date),
                no_service_it(reason)
            ),
        ),
        Refusal::Suspended { date } => m(
            S::CONFLICT,
            "suspended",
            "The service is suspended",
            format!(
                "The service is suspended on {}: reactivate it first.",
                date_en(*date)
            ),
            format!(
                "Il servizio è sospeso {}: occorre prima riattivarlo.",
                date_it(*date)
            ),
        ),
        Refusal::AlreadyAbsent { date } => m(
            S::CONFLICT,
            "already-absent",
            "The meal is already cancelled",
            format!("The meal of {} is already cancelled.", date_en(*date)),
            format!("Il pasto di {} è già disdetto.", date_it(*date)),
        ),
        Refusal::AlreadyPlainMeal { date } => m(
            S::CONFLICT,
            "already-plain-meal",
            "A plain meal is already booked",
            format!("A plain meal is already booked on {}.", date_en(*date)),
            format!("Il pasto in bianco di {} è già prenotato.", date_it(*date)),
        ),
        Refusal::NothingToUndo { date } => m(
            S::CONFLICT,
            "nothing-to-undo",
            "Nothing to undo",
            format!("The meal of {} is already booked.", date_en(*date)),
            format!("Il pasto di {} è già prenotato.", date_it(*date)),
        ),
        Refusal::NoServiceDayAhead => m(
            S::UNPROCESSABLE_ENTITY,
            "no-service-day-ahead",
            "No service day ahead",
            "There is no canteen day left in this school year.".into(),
            "Non ci sono altri giorni di mensa in questo anno scolastico.".into(),
        ),
        Refusal::AlreadySuspended { since } => m(
            S::CONFLICT,
            "already-suspended",
            "Already suspended",
            format!("The service is already suspended from {}.", date_en(*since)),
            format!("Il servizio è già sospeso da {}.", date_it(*since)),
        ),
        Refusal::ReturnNotAfterStart { from, until } => m(
            S::UNPROCESSABLE_ENTITY,
            "return-not-after-start",
            "The return date is not after the start",
            format!(
                "The return date {} must come after the first day of the suspension, {}.",
                date_en(*until),
                date_en(*from)
            ),
            format!(
                "La data di rientro {} deve essere successiva al primo giorno di sospensione, {}.",
                date_it(*until),
                date_it(*from)
            ),
        ),
        Refusal::OutOfReach { date, reach } => out_of_reach(&date.to_string(), reach),
        Refusal::NotSuspended => m(
            S::CONFLICT,
            "not-suspended",
            "The service is not suspended",
            "The service is not suspended on that date: there is nothing to reactivate.".into(),
            "Il servizio non è sospeso in quella data: non c'è nulla da riattivare.".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_a_parent_says_them() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 10).unwrap_or_default();
        assert_eq!(date_en(d), "Thursday 10 December 2026");
        assert_eq!(date_it(d), "giovedì 10 dicembre 2026");
    }
}
