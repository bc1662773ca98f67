//! Speaking dates, times, numbers and euro amounts from pre-recorded
//! fragments.
//!
//! Every function here is pure: it turns a value into the list of prompt
//! ids to play back to back, in Italian or English. The fragments are the
//! `[fragments]` of `prompts/<lang>/catalogue.toml`, one audio file each
//! (`prompts/<lang>/<id>.wav`, or a human recording with the same id).
//!
//! ## Italian
//!
//! - Dates: weekday, day, month, no article: "giovedì 10 dicembre". The
//!   first of the month is "primo" ("lunedì primo dicembre"), the form
//!   grammars recommend for dates; the other days are cardinal numbers.
//! - Numbers are one word in writing ("duecentoquarantatré"). To keep the
//!   fragment set finite, 0–99 are whole words, so the elisions (ventuno,
//!   ventotto, trentuno) and the accent of ventitré are inside one file,
//!   and larger numbers join them to "cento"…"novecento", "mille",
//!   "duemila"…"novemila", "mila", "milione(i)", "miliardo(i)":
//!   "duecento" + "quarantatré", "tremila" + "cento" + "otto".
//!   "cento" does not elide: "centootto", "centoottanta" are the forms
//!   grammars give ("centotto", "centottanta" are also accepted), and they
//!   are what the fragments sound like when joined.
//! - Above 9999, thousands are the number said before "mila":
//!   "ventuno" + "mila" ("ventunomila", the usual form; "ventunmila" also
//!   exists), "cento" + "uno" + "mila" ("centounomila").
//! - Before a noun, one is "un": "un euro", "un centesimo", "un milione".
//!   Compounds keep the full form: "ventuno euro", "trentuno centesimi"
//!   (both "ventuno euro" and "ventun euro" are correct; the full form
//!   needs no extra fragments and sounds the same as the number alone).
//! - "euro" is invariable; "un milione di euro" takes "di" when the amount
//!   ends in milione/miliardo, as the noun follows it directly.
//! - Amounts: "dodici euro e cinquanta centesimi", "cinquanta centesimi",
//!   "zero euro", "meno tre euro".
//! - Times: hours 0–23 then "e" and the minutes: "diciotto", "nove e trenta".
//!
//! ## English (British)
//!
//! - Dates: "Thursday the tenth of December"; the day fragments carry "the"
//!   and the months carry "of", so a date is three files, as in Italian.
//! - Numbers: 0–19 and the tens are words, 21–99 join a ten and a unit;
//!   "and" after hundred and before a last group under 100: "one hundred
//!   and five", "two thousand and twenty-six".
//! - Amounts: "one euro", "two euros and fifty cents", "one cent", "zero
//!   euros", "minus three euros".
//! - Times, 12-hour clock: "six p.m.", "nine thirty a.m.", "nine oh five
//!   a.m.", "noon", "midnight".

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};

use crate::bookings::{Cents, Refusal};

/// The language of a call: Italian by default, English after `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Lang {
    #[default]
    It,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::It, Lang::En];

    /// The folder under `prompts/`: `it`, `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A language code that is neither `it` nor `en`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?} (expected \"it\" or \"en\")")]
pub struct UnknownLang(pub String);

impl FromStr for Lang {
    type Err = UnknownLang;
    fn from_str(s: &str) -> Result<Lang, UnknownLang> {
        match s {
            "it" => Ok(Lang::It),
            "en" => Ok(Lang::En),
            _ => Err(UnknownLang(s.to_string())),
        }
    }
}

/// The id of a prompt: the name of its audio file without extension, and
/// its key in the catalogue. Lowercase ASCII letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(Cow<'static, str>);

/// A prompt id with characters other than `a-z`, `0-9` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid prompt id {0:?} (expected lowercase letters, digits and _)")]
pub struct InvalidPromptId(pub String);

impl PromptId {
    /// A prompt id known when compiling. Used in a `const`, an invalid id
    /// fails the build.
    pub const fn from_static(id: &'static str) -> PromptId {
        assert!(is_valid_id(id), "invalid prompt id");
        PromptId(Cow::Borrowed(id))
    }

    /// A prompt id read from data (a dialplan, a folder listing).
    pub fn parse(id: &str) -> Result<PromptId, InvalidPromptId> {
        if is_valid_id(id) {
            Ok(PromptId(Cow::Owned(id.to_string())))
        } else {
            Err(InvalidPromptId(id.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PromptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PromptId {
    type Err = InvalidPromptId;
    fn from_str(s: &str) -> Result<PromptId, InvalidPromptId> {
        PromptId::parse(s)
    }
}

/// The fragments to say `date`: "giovedì 10 dicembre", "Thursday the tenth
/// of December". The year is not said.
pub fn say_date(lang: Lang, date: NaiveDate) -> Vec<PromptId> {
    let weekday = WEEKDAY[date.weekday().num_days_from_monday() as usize].clone();
    // day() is 1..=31 and month0() 0..=11 for every NaiveDate.
    let day = date.day() as usize;
    let month = MONTH[date.month0() as usize].clone();
    let day = match lang {
        Lang::It if day == 1 => IT_FIRST,
        Lang::It => NUMBER[day].clone(),
        Lang::En => EN_DAY[day - 1].clone(),
    };
    vec![weekday, day, month]
}

/// The fragments to say a time of day to the minute: "diciotto", "nove e
/// trenta"; "six p.m.", "nine thirty a.m.". Seconds are not said.
pub fn say_time(lang: Lang, time: NaiveTime) -> Vec<PromptId> {
    let (hour, minute) = (u64::from(time.hour()), u64::from(time.minute()));
    let mut out = Vec::new();
    match lang {
        Lang::It => {
            number_it(hour, &mut out);
            if minute > 0 {
                out.push(AND);
                number_it(minute, &mut out);
            }
        }
        Lang::En => match (hour, minute) {
            (0, 0) => out.push(EN_MIDNIGHT),
            (12, 0) => out.push(EN_NOON),
            _ => {
                let hour12 = (hour + 11) % 12 + 1;
                number_en(hour12, &mut out);
                if minute > 0 {
                    if minute < 10 {
                        out.push(EN_OH);
                    }
                    number_en(minute, &mut out);
                }
                out.push(if hour < 12 { EN_AM } else { EN_PM });
            }
        },
    }
    out
}

/// The fragments to say `n` as a cardinal number: "duecento" +
/// "quarantatré", "two hundred and forty-three".
pub fn say_number(lang: Lang, n: u64) -> Vec<PromptId> {
    let mut out = Vec::new();
    match lang {
        Lang::It => number_it(n, &mut out),
        Lang::En => number_en(n, &mut out),
    }
    out
}

/// The fragments to say an amount in euro: "dodici euro e cinquanta
/// centesimi", "meno un euro"; "twelve euros and fifty cents".
pub fn say_euros(lang: Lang, amount: Cents) -> Vec<PromptId> {
    let abs = amount.0.unsigned_abs();
    let (euros, cents) = (abs / 100, abs % 100);
    let mut out = Vec::new();
    if amount.0 < 0 {
        out.push(MINUS);
    }
    if euros > 0 || cents == 0 {
        match lang {
            Lang::It if euros == 1 => out.extend([IT_ONE_BEFORE_NOUN, EURO]),
            Lang::It => {
                number_it(euros, &mut out);
                if euros >= MILLION && euros.is_multiple_of(MILLION) {
                    // "un milione di euro", "due miliardi di euro".
                    out.push(IT_OF);
                }
                // "euro" is invariable in Italian.
                out.push(EURO);
            }
            Lang::En => {
                number_en(euros, &mut out);
                out.push(if euros == 1 { EURO } else { EUROS });
            }
        }
    }
    if cents > 0 {
        if euros > 0 {
            out.push(AND);
        }
        match lang {
            Lang::It if cents == 1 => out.extend([IT_ONE_BEFORE_NOUN, CENT]),
            Lang::It => {
                number_it(cents, &mut out);
                out.push(CENTS);
            }
            Lang::En => {
                number_en(cents, &mut out);
                out.push(if cents == 1 { CENT } else { CENTS });
            }
        }
    }
    out
}

/// The sentence that tells the caller why nothing was done (SPEC §4 step
/// 7): an id of the catalogues' `[prompts]`.
pub fn refusal_prompt(refusal: &Refusal) -> PromptId {
    // `const` blocks: each id is checked when compiling.
    match refusal {
        // A closed day is past its cutoff: same words for the caller.
        Refusal::AfterCutoff { .. } | Refusal::DayClosed { .. } => {
            const { PromptId::from_static("after_cutoff") }
        }
        Refusal::NoServiceThatDay { .. } => const { PromptId::from_static("no_service_that_day") },
        Refusal::Suspended { .. } => const { PromptId::from_static("suspended") },
        Refusal::AlreadyAbsent { .. } => const { PromptId::from_static("already_absent") },
        Refusal::AlreadyPlainMeal { .. } => const { PromptId::from_static("already_plain") },
        Refusal::NothingToUndo { .. } => const { PromptId::from_static("nothing_to_undo") },
        Refusal::NoServiceDayAhead => const { PromptId::from_static("no_service_day_ahead") },
        Refusal::AlreadySuspended { .. } => const { PromptId::from_static("already_suspended") },
        // The return date was typed by the caller: ask again. A DDMM date
        // is never a year from the target day, so out of reach is only
        // ever a date typed wrong too.
        Refusal::ReturnNotAfterStart { .. } | Refusal::OutOfReach { .. } => {
            const { PromptId::from_static("date_invalid") }
        }
        Refusal::NotSuspended => const { PromptId::from_static("not_suspended") },
    }
}

/// Every fragment id the functions above can return for `lang`: the audio
/// files a prompt folder must hold, for a check when the server starts
/// (the tests check it against the catalogues).
pub fn fragment_ids(lang: Lang) -> BTreeSet<PromptId> {
    let mut ids: BTreeSet<PromptId> = WEEKDAY.iter().chain(MONTH.iter()).cloned().collect();
    ids.extend([AND, EURO, CENT, CENTS, MINUS]);
    match lang {
        Lang::It => {
            ids.extend(NUMBER.iter().cloned());
            ids.extend(IT_HUNDREDS.iter().cloned());
            ids.extend(IT_THOUSANDS.iter().cloned());
            ids.extend([
                IT_FIRST,
                IT_THOUSANDS_SUFFIX,
                IT_MILLION,
                IT_MILLIONS,
                IT_BILLION,
                IT_BILLIONS,
                IT_ONE_BEFORE_NOUN,
                IT_OF,
            ]);
        }
        Lang::En => {
            ids.extend(NUMBER[..20].iter().cloned());
            ids.extend(NUMBER[20..].iter().step_by(10).cloned());
            ids.extend(EN_DAY.iter().cloned());
            ids.extend([
                EUROS,
                EN_HUNDRED,
                EN_THOUSAND,
                EN_MILLION,
                EN_BILLION,
                EN_OH,
                EN_AM,
                EN_PM,
                EN_NOON,
                EN_MIDNIGHT,
            ]);
        }
    }
    ids
}

const THOUSAND: u64 = 1_000;
const MILLION: u64 = 1_000_000;
const BILLION: u64 = 1_000_000_000;

/// Italian cardinal. Every index below is in range by the match arm it is
/// in: `n < 100` for NUMBER, `n / 100` in 1..=9 for IT_HUNDREDS and the
/// thousands in 1..=9 for IT_THOUSANDS (both less one).
fn number_it(n: u64, out: &mut Vec<PromptId>) {
    match n {
        0..100 => out.push(NUMBER[n as usize].clone()),
        100..THOUSAND => {
            out.push(IT_HUNDREDS[(n / 100 - 1) as usize].clone());
            rest_it(n % 100, out);
        }
        THOUSAND..MILLION => {
            match n / THOUSAND {
                t @ 1..=9 => out.push(IT_THOUSANDS[(t - 1) as usize].clone()),
                t => {
                    number_it(t, out);
                    out.push(IT_THOUSANDS_SUFFIX);
                }
            }
            rest_it(n % THOUSAND, out);
        }
        MILLION..BILLION => {
            large_it(n / MILLION, IT_MILLION, IT_MILLIONS, out);
            rest_it(n % MILLION, out);
        }
        BILLION.. => {
            large_it(n / BILLION, IT_BILLION, IT_BILLIONS, out);
            rest_it(n % BILLION, out);
        }
    }
}

/// "un milione", "due milioni".
fn large_it(count: u64, one: PromptId, many: PromptId, out: &mut Vec<PromptId>) {
    if count == 1 {
        out.extend([IT_ONE_BEFORE_NOUN, one]);
    } else {
        number_it(count, out);
        out.push(many);
    }
}

/// The part after cento/mila/milioni: nothing when zero ("duecento", not
/// "duecento zero").
fn rest_it(rest: u64, out: &mut Vec<PromptId>) {
    if rest > 0 {
        number_it(rest, out);
    }
}

/// English cardinal, British style.
fn number_en(n: u64, out: &mut Vec<PromptId>) {
    match n {
        0..20 => out.push(NUMBER[n as usize].clone()),
        20..100 => {
            let (tens, unit) = (n / 10 * 10, n % 10);
            out.push(NUMBER[tens as usize].clone());
            if unit > 0 {
                out.push(NUMBER[unit as usize].clone());
            }
        }
        100..THOUSAND => {
            out.push(NUMBER[(n / 100) as usize].clone());
            out.push(EN_HUNDRED);
            rest_en(n % 100, out);
        }
        THOUSAND..MILLION => {
            number_en(n / THOUSAND, out);
            out.push(EN_THOUSAND);
            rest_en(n % THOUSAND, out);
        }
        MILLION..BILLION => {
            number_en(n / MILLION, out);
            out.push(EN_MILLION);
            rest_en(n % MILLION, out);
        }
        BILLION.. => {
            number_en(n / BILLION, out);
            out.push(EN_BILLION);
            rest_en(n % BILLION, out);
        }
    }
}

/// "and" before a last group under a hundred: "one hundred and five",
/// "two thousand and twenty-six", "two thousand three hundred".
fn rest_en(rest: u64, out: &mut Vec<PromptId>) {
    match rest {
        0 => {}
        1..100 => {
            out.push(AND);
            number_en(rest, out);
        }
        _ => number_en(rest, out),
    }
}

const fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if !matches!(bytes[i], b'a'..=b'z' | b'0'..=b'9' | b'_') {
            return false;
        }
        i += 1;
    }
    true
}

macro_rules! ids {
    ($prefix:literal; $($n:literal)*) => {
        [$(PromptId::from_static(concat!($prefix, $n))),*]
    };
}

/// `num_0` … `num_99`: whole words in Italian; English uses 0–19 and the
/// tens.
const NUMBER: [PromptId; 100] = ids!("num_";
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
    20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39
    40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
    60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79
    80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99);
/// Monday first, as `Weekday::num_days_from_monday`; ids count from 1.
const WEEKDAY: [PromptId; 7] = ids!("weekday_"; 1 2 3 4 5 6 7);
const MONTH: [PromptId; 12] = ids!("month_"; 1 2 3 4 5 6 7 8 9 10 11 12);
/// "the first" … "the thirty-first".
const EN_DAY: [PromptId; 31] = ids!("day_";
    1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20
    21 22 23 24 25 26 27 28 29 30 31);
/// "cento" … "novecento".
const IT_HUNDREDS: [PromptId; 9] = ids!("num_"; 100 200 300 400 500 600 700 800 900);
/// "mille", "duemila" … "novemila".
const IT_THOUSANDS: [PromptId; 9] = ids!("num_"; 1000 2000 3000 4000 5000 6000 7000 8000 9000);

const AND: PromptId = PromptId::from_static("and");
const EURO: PromptId = PromptId::from_static("euro");
const EUROS: PromptId = PromptId::from_static("euros");
const CENT: PromptId = PromptId::from_static("cent");
const CENTS: PromptId = PromptId::from_static("cents");
const MINUS: PromptId = PromptId::from_static("minus");

const IT_FIRST: PromptId = PromptId::from_static("day_1");
const IT_THOUSANDS_SUFFIX: PromptId = PromptId::from_static("thousands");
const IT_MILLION: PromptId = PromptId::from_static("million");
const IT_MILLIONS: PromptId = PromptId::from_static("millions");
const IT_BILLION: PromptId = PromptId::from_static("billion");
const IT_BILLIONS: PromptId = PromptId::from_static("billions");
/// "un", before a masculine noun.
const IT_ONE_BEFORE_NOUN: PromptId = PromptId::from_static("one_masculine");
const IT_OF: PromptId = PromptId::from_static("of");

const EN_HUNDRED: PromptId = PromptId::from_static("hundred");
const EN_THOUSAND: PromptId = PromptId::from_static("thousand");
const EN_MILLION: PromptId = PromptId::from_static("million");
const EN_BILLION: PromptId = PromptId::from_static("billion");
const EN_OH: PromptId = PromptId::from_static("oh");
const EN_AM: PromptId = PromptId::from_static("am");
const EN_PM: PromptId = PromptId::from_static("pm");
const EN_NOON: PromptId = PromptId::from_static("noon");
const EN_MIDNIGHT: PromptId = PromptId::from_static("midnight");

#[cfg(test)]
mod tests;
