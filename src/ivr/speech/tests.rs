//! Tests of speech.rs: real examples in both languages, and the
//! catalogues and audio files checked against what speech.rs can say.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::Duration;
use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Catalogue {
    prompts: BTreeMap<String, String>,
    fragments: BTreeMap<String, String>,
    #[serde(default)]
    voices: BTreeMap<String, String>,
}

fn folder(lang: Lang) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("prompts")
        .join(lang.code())
}

fn catalogue(lang: Lang) -> &'static Catalogue {
    static IT: OnceLock<Catalogue> = OnceLock::new();
    static EN: OnceLock<Catalogue> = OnceLock::new();
    let cell = match lang {
        Lang::It => &IT,
        Lang::En => &EN,
    };
    cell.get_or_init(|| {
        let path = folder(lang).join("catalogue.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// The catalogue text of the fragments, joined by spaces: what the
/// caller hears.
fn words(lang: Lang, ids: &[PromptId]) -> String {
    let catalogue = catalogue(lang);
    ids.iter()
        .map(|id| {
            catalogue
                .fragments
                .get(id.as_str())
                .unwrap_or_else(|| panic!("{lang}: no fragment {id}"))
                .as_str()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn time(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").unwrap()
}

#[test]
fn italian_dates() {
    for (d, said) in [
        ("2026-12-10", "giovedì dieci dicembre"),
        ("2026-12-01", "martedì primo dicembre"),
        ("2026-12-07", "lunedì sette dicembre"),
        ("2027-01-08", "venerdì otto gennaio"),
        ("2027-03-21", "domenica ventuno marzo"),
        ("2027-05-23", "domenica ventitré maggio"),
        ("2027-09-11", "sabato undici settembre"),
        ("2028-02-29", "martedì ventinove febbraio"),
        ("2026-10-31", "sabato trentuno ottobre"),
        ("2027-06-28", "lunedì ventotto giugno"),
        ("2027-04-14", "mercoledì quattordici aprile"),
        ("2027-07-30", "venerdì trenta luglio"),
        ("2027-08-02", "lunedì due agosto"),
        ("2026-11-17", "martedì diciassette novembre"),
    ] {
        assert_eq!(words(Lang::It, &say_date(Lang::It, date(d))), said, "{d}");
    }
}

#[test]
fn english_dates() {
    for (d, said) in [
        ("2026-12-10", "Thursday the tenth of December"),
        ("2026-12-01", "Tuesday the first of December"),
        ("2026-12-02", "Wednesday the second of December"),
        ("2026-12-03", "Thursday the third of December"),
        ("2027-01-11", "Monday the eleventh of January"),
        ("2027-03-12", "Friday the twelfth of March"),
        ("2027-03-21", "Sunday the twenty-first of March"),
        ("2027-05-22", "Saturday the twenty-second of May"),
        ("2028-02-29", "Tuesday the twenty-ninth of February"),
        ("2026-10-31", "Saturday the thirty-first of October"),
        ("2027-06-30", "Wednesday the thirtieth of June"),
    ] {
        assert_eq!(words(Lang::En, &say_date(Lang::En, date(d))), said, "{d}");
    }
}

#[test]
fn italian_numbers() {
    for (n, said) in [
        (0, "zero"),
        (1, "uno"),
        (8, "otto"),
        (11, "undici"),
        (17, "diciassette"),
        (20, "venti"),
        (21, "ventuno"),
        (23, "ventitré"),
        (28, "ventotto"),
        (31, "trentuno"),
        (38, "trentotto"),
        (43, "quarantatré"),
        (71, "settantuno"),
        (88, "ottantotto"),
        (99, "novantanove"),
        (100, "cento"),
        (101, "cento uno"),
        (108, "cento otto"),
        (111, "cento undici"),
        (180, "cento ottanta"),
        (200, "duecento"),
        (243, "duecento quarantatré"),
        (388, "trecento ottantotto"),
        (999, "novecento novantanove"),
        (1000, "mille"),
        (1001, "mille uno"),
        (1100, "mille cento"),
        (1250, "mille duecento cinquanta"),
        (2000, "duemila"),
        (2026, "duemila ventisei"),
        (3108, "tremila cento otto"),
        (9999, "novemila novecento novantanove"),
        (10_000, "dieci mila"),
        (11_000, "undici mila"),
        (21_000, "ventuno mila"),
        (23_500, "ventitré mila cinquecento"),
        (100_000, "cento mila"),
        (101_000, "cento uno mila"),
        (200_001, "duecento mila uno"),
        (999_999, "novecento novantanove mila novecento novantanove"),
        (1_000_000, "un milione"),
        (1_200_000, "un milione duecento mila"),
        (2_000_000, "due milioni"),
        (21_000_001, "ventuno milioni uno"),
        (1_000_000_000, "un miliardo"),
        (3_000_002_000, "tre miliardi duemila"),
    ] {
        assert_eq!(words(Lang::It, &say_number(Lang::It, n)), said, "{n}");
    }
}

/// Joined without spaces, the Italian fragments are the number as written.
#[test]
fn italian_numbers_join_into_the_written_word() {
    for (n, written) in [
        (23, "ventitré"),
        (108, "centootto"),
        (243, "duecentoquarantatré"),
        (1998, "millenovecentonovantotto"),
        (2026, "duemilaventisei"),
        (21_000, "ventunomila"),
        (33_333, "trentatremilatrecentotrentatré"),
        (999_999, "novecentonovantanovemilanovecentonovantanove"),
    ] {
        let joined = words(Lang::It, &say_number(Lang::It, n)).replace(' ', "");
        // Inside a word, tré keeps its accent only at the end.
        let joined = joined.replace("trémila", "tremila");
        assert_eq!(joined, written, "{n}");
    }
}

proptest::proptest! {
    #[test]
    fn amounts_are_well_formed(cents in proptest::num::i64::ANY) {
        for lang in Lang::ALL {
            let said = say_euros(lang, Cents(cents));
            proptest::prop_assert_eq!(said[0] == MINUS, cents < 0);
            proptest::prop_assert_eq!(said.contains(&NUMBER[0]), cents == 0);
            let last = said.last().unwrap();
            proptest::prop_assert!([EURO, EUROS, CENT, CENTS].contains(last));
            for pair in said.windows(2) {
                proptest::prop_assert!(pair[0] != pair[1], "{:?}", said);
                if pair[0] == IT_ONE_BEFORE_NOUN {
                    proptest::prop_assert!(
                        [EURO, CENT, IT_MILLION, IT_BILLION].contains(&pair[1]),
                        "{:?}", said
                    );
                }
            }
        }
    }
}

#[test]
fn english_numbers() {
    for (n, said) in [
        (0, "zero"),
        (1, "one"),
        (12, "twelve"),
        (19, "nineteen"),
        (20, "twenty"),
        (21, "twenty one"),
        (45, "forty five"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (105, "one hundred and five"),
        (243, "two hundred and forty three"),
        (1000, "one thousand"),
        (1005, "one thousand and five"),
        (1200, "one thousand two hundred"),
        (2026, "two thousand and twenty six"),
        (
            999_999,
            "nine hundred and ninety nine thousand nine hundred and ninety nine",
        ),
        (1_000_000, "one million"),
        (2_000_015, "two million and fifteen"),
        (7_000_000_000, "seven billion"),
    ] {
        assert_eq!(words(Lang::En, &say_number(Lang::En, n)), said, "{n}");
    }
}

#[test]
fn italian_amounts() {
    for (cents, said) in [
        (0, "zero euro"),
        (1, "un centesimo"),
        (2, "due centesimi"),
        (50, "cinquanta centesimi"),
        (100, "un euro"),
        (101, "un euro e un centesimo"),
        (150, "un euro e cinquanta centesimi"),
        (200, "due euro"),
        (450, "quattro euro e cinquanta centesimi"),
        (1250, "dodici euro e cinquanta centesimi"),
        (2100, "ventuno euro"),
        (2121, "ventuno euro e ventuno centesimi"),
        (2808, "ventotto euro e otto centesimi"),
        (10_000, "cento euro"),
        (10_800, "cento otto euro"),
        (100_000, "mille euro"),
        (
            123_456,
            "mille duecento trentaquattro euro e cinquantasei centesimi",
        ),
        (200_000, "duemila euro"),
        (2_100_000, "ventuno mila euro"),
        (100_000_000, "un milione di euro"),
        (300_000_000, "tre milioni di euro"),
        (120_000_000, "un milione duecento mila euro"),
        (-1, "meno un centesimo"),
        (-100, "meno un euro"),
        (-450, "meno quattro euro e cinquanta centesimi"),
        (-3_000, "meno trenta euro"),
    ] {
        assert_eq!(
            words(Lang::It, &say_euros(Lang::It, Cents(cents))),
            said,
            "{cents}"
        );
    }
}

#[test]
fn english_amounts() {
    for (cents, said) in [
        (0, "zero euros"),
        (1, "one cent"),
        (2, "two cents"),
        (50, "fifty cents"),
        (100, "one euro"),
        (101, "one euro and one cent"),
        (250, "two euros and fifty cents"),
        (1250, "twelve euros and fifty cents"),
        (2100, "twenty one euros"),
        (10_500, "one hundred and five euros"),
        (100_000_000, "one million euros"),
        (-100, "minus one euro"),
        (-450, "minus four euros and fifty cents"),
    ] {
        assert_eq!(
            words(Lang::En, &say_euros(Lang::En, Cents(cents))),
            said,
            "{cents}"
        );
    }
}

#[test]
fn extreme_amounts_do_not_overflow() {
    for lang in Lang::ALL {
        assert_eq!(say_euros(lang, Cents(i64::MIN))[0], MINUS);
        assert!(!say_euros(lang, Cents(i64::MAX)).is_empty());
        assert!(!say_number(lang, u64::MAX).is_empty());
    }
}

#[test]
fn times() {
    for (t, it, en) in [
        ("18:00", "diciotto", "six p.m."),
        ("09:00", "nove", "nine a.m."),
        ("09:30", "nove e trenta", "nine thirty a.m."),
        ("08:05", "otto e cinque", "eight oh five a.m."),
        ("00:00", "zero", "midnight"),
        ("00:15", "zero e quindici", "twelve fifteen a.m."),
        ("12:00", "dodici", "noon"),
        ("12:45", "dodici e quarantacinque", "twelve forty five p.m."),
        ("21:01", "ventuno e uno", "nine oh one p.m."),
        (
            "23:59",
            "ventitré e cinquantanove",
            "eleven fifty nine p.m.",
        ),
    ] {
        assert_eq!(words(Lang::It, &say_time(Lang::It, time(t))), it, "{t}");
        assert_eq!(words(Lang::En, &say_time(Lang::En, time(t))), en, "{t}");
    }
}

#[test]
fn every_refusal_has_a_sentence_in_both_languages() {
    let day = date("2026-12-10");
    let refusals = [
        Refusal::AfterCutoff { date: day },
        Refusal::NoServiceThatDay {
            date: day,
            reason: crate::bookings::NoService::NotAServiceWeekday,
        },
        Refusal::Suspended { date: day },
        Refusal::AlreadyAbsent { date: day },
        Refusal::AlreadyPlainMeal { date: day },
        Refusal::NothingToUndo { date: day },
        Refusal::NoServiceDayAhead,
        Refusal::AlreadySuspended { since: day },
        Refusal::ReturnNotAfterStart {
            from: day,
            until: day,
        },
        Refusal::NotSuspended,
        Refusal::DayClosed { date: day },
        Refusal::OutOfReach {
            date: day,
            reach: crate::bookings::Reach::FRAME,
        },
    ];
    for lang in Lang::ALL {
        let catalogue = catalogue(lang);
        for refusal in &refusals {
            let id = refusal_prompt(refusal);
            assert!(catalogue.prompts.contains_key(id.as_str()), "{lang}: {id}");
        }
    }
    assert_eq!(
        catalogue(Lang::It).prompts["suspended"],
        "Il servizio è sospeso: premere 4 per riattivarlo."
    );
}

#[test]
fn prompt_ids_are_parsed() {
    assert_eq!(PromptId::parse("menu_day").unwrap().as_str(), "menu_day");
    for bad in ["", "Menu", "menu-day", "../etc", "menu day", "è"] {
        assert!(PromptId::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!("en".parse::<Lang>().unwrap(), Lang::En);
    assert!("fr".parse::<Lang>().is_err());
}

/// Everything speech can say, for every day of five years (one leap),
/// every minute of a day and a sweep of amounts, is a fragment of the
/// language's catalogue; and every catalogue fragment can be said.
#[test]
fn every_fragment_said_is_in_the_catalogue() {
    for lang in Lang::ALL {
        let known = fragment_ids(lang);
        let mut said = BTreeSet::new();
        let mut day = date("2026-01-01");
        while day <= date("2030-12-31") {
            said.extend(say_date(lang, day));
            day += Duration::days(1);
        }
        for minute in 0..24 * 60 {
            let t = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0).unwrap();
            said.extend(say_time(lang, t));
        }
        for cents in -100_000..=100_000 {
            said.extend(say_euros(lang, Cents(cents)));
        }
        for n in 0..=20_000 {
            said.extend(say_number(lang, n));
        }
        let mut n = 1u64;
        while n < u64::MAX / 7 {
            said.extend(say_number(lang, n));
            said.extend(say_euros(lang, Cents(n as i64)));
            n = n * 7 + 3;
        }
        for n in [1_000_000, 2_000_000, 1_000_000_000, 2_000_000_000] {
            said.extend(say_euros(lang, Cents(n * 100)));
        }
        assert!(
            said.is_subset(&known),
            "{lang}: {:?}",
            said.difference(&known)
        );
        let unsaid: Vec<_> = known.difference(&said).collect();
        assert!(unsaid.is_empty(), "{lang}: never said: {unsaid:?}");

        let catalogue: BTreeSet<PromptId> = catalogue(lang)
            .fragments
            .keys()
            .map(|id| PromptId::parse(id).unwrap())
            .collect();
        assert_eq!(
            catalogue.symmetric_difference(&known).collect::<Vec<_>>(),
            Vec::<&PromptId>::new(),
            "{lang}: catalogue fragments differ from what speech says"
        );
    }
}

/// A dialplan names sentences, not languages: both catalogues have the
/// same [prompts].
#[test]
fn both_languages_have_the_same_sentences() {
    let it: Vec<&String> = catalogue(Lang::It).prompts.keys().collect();
    let en: Vec<&String> = catalogue(Lang::En).prompts.keys().collect();
    assert_eq!(it, en);
}

#[test]
fn every_catalogue_id_has_a_wav_and_every_wav_an_id() {
    for lang in Lang::ALL {
        let catalogue = catalogue(lang);
        let ids: BTreeSet<&String> = catalogue
            .prompts
            .keys()
            .chain(catalogue.fragments.keys())
            .collect();
        for id in &ids {
            assert!(PromptId::parse(id).is_ok(), "{lang}: bad id {id}");
            assert!(
                !catalogue.prompts.contains_key(*id) || !catalogue.fragments.contains_key(*id),
                "{lang}: {id} is both a prompt and a fragment"
            );
            let wav = folder(lang).join(format!("{id}.wav"));
            let bytes = std::fs::read(&wav).unwrap_or_else(|e| panic!("{}: {e}", wav.display()));
            assert_pcm_8k_mono_16(&wav, &bytes);
        }
        for id in catalogue.voices.keys() {
            assert!(ids.contains(id), "{lang}: voice for unknown id {id}");
        }
        for entry in std::fs::read_dir(folder(lang)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wav") {
                let stem = path.file_stem().unwrap().to_string_lossy().to_string();
                assert!(
                    ids.contains(&stem),
                    "{}: not in the catalogue",
                    path.display()
                );
            }
        }
    }
}

/// RIFF/WAVE with a PCM `fmt ` chunk: format 1, 1 channel, 8000 Hz,
/// 16 bits, and some audio.
fn assert_pcm_8k_mono_16(path: &std::path::Path, b: &[u8]) {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    assert!(b.len() > 44, "{}: too short", path.display());
    assert_eq!(&b[0..4], b"RIFF", "{}", path.display());
    assert_eq!(&b[8..12], b"WAVE", "{}", path.display());
    let mut at = 12;
    let mut format = None;
    let mut data = 0;
    while at + 8 <= b.len() {
        let size = u32_at(at + 4) as usize;
        match &b[at..at + 4] {
            b"fmt " => {
                format = Some((
                    u16_at(at + 8),
                    u16_at(at + 10),
                    u32_at(at + 12),
                    u16_at(at + 22),
                ))
            }
            b"data" => data = size,
            _ => {}
        }
        at += 8 + size + size % 2;
    }
    assert_eq!(format, Some((1, 1, 8000, 16)), "{}: format", path.display());
    assert!(data >= 1600, "{}: under 50 ms of audio", path.display());
}
