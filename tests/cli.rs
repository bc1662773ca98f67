//! The command line as operators and other tools use it: the real binary,
//! a real SQLite file, and the `--format json` contracts.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const EXAMPLE: &str = "tests/data/import-example.toml";

/// The code key of these tests (64 hexadecimal digits, MENSA_CODE_KEY).
const KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

fn mensa(db: &Path, args: &[&str]) -> Output {
    mensa_keyed(db, args, Some(KEY))
}

/// `mensa ARGS` on `db` with `key` in MENSA_CODE_KEY (none: no key at all).
fn mensa_keyed(db: &Path, args: &[&str], key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mensa"));
    command
        .args(args)
        .env("MENSA_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "warn")
        .env_remove("MENSA_CODE_KEY_FILE");
    match key {
        Some(key) => command.env("MENSA_CODE_KEY", key),
        None => command.env_remove("MENSA_CODE_KEY"),
    };
    command.output().unwrap()
}

fn ok_json(db: &Path, args: &[&str]) -> Value {
    let out = mensa(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn imported() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let out = mensa(&db, &["import", EXAMPLE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, db)
}

#[test]
fn phone_target_answers_the_spec_example_and_the_closed_window() {
    let (_dir, db) = imported();
    let args = [
        "phone-target",
        "--cancel-code",
        "58213",
        "--format",
        "json",
        "--at",
    ];
    let evening = ok_json(&db, &[&args[..], &["2026-12-07 19:00"]].concat());
    assert_eq!(
        evening,
        json!({"window_open": true, "target_day": "2026-12-10"})
    );
    let noon = ok_json(&db, &[&args[..], &["2026-12-07 12:00"]].concat());
    assert_eq!(noon, json!({"window_open": false, "target_day": null}));
    // The global flag is accepted after the subcommand too.
    let url = format!("sqlite://{}", db.display());
    let friday = ok_json(
        &db,
        &[&args[..], &["2026-12-04 20:00", "--database-url", &url]].concat(),
    );
    assert_eq!(friday["target_day"], "2026-12-07");
}

#[test]
fn an_unknown_cancel_code_exits_non_zero_with_a_clear_message() {
    let (_dir, db) = imported();
    let out = mensa(
        &db,
        &[
            "phone-target",
            "--cancel-code",
            "99999",
            "--at",
            "2026-12-07 19:00",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no child with that cancel code"), "{err}");
    assert!(!err.contains("99999"), "codes never echoed: {err}");
}

#[test]
fn calendar_json_has_the_contract_shape() {
    let (_dir, db) = imported();
    let cal = ok_json(
        &db,
        &[
            "calendar",
            "--user-code",
            "100234",
            "--month",
            "2026-12",
            "--format",
            "json",
        ],
    );
    assert_eq!(cal["user_code"], "100234");
    assert_eq!(cal["month"], "2026-12");
    let days = cal["days"].as_array().unwrap();
    assert_eq!(days.len(), 31);
    let day = |n: usize| &days[n - 1];
    assert_eq!(
        day(7),
        &json!({"date": "2026-12-07", "status": "booked", "channel": null})
    );
    assert_eq!(day(8)["status"], "no_service", "Immacolata");
    assert_eq!(day(12)["status"], "no_service", "Saturday");
    assert_eq!(day(31)["status"], "no_service", "Christmas holidays");
}

#[test]
fn a_broken_import_changes_nothing_and_lists_every_problem() {
    let (dir, db) = imported();
    let text = std::fs::read_to_string(EXAMPLE)
        .unwrap()
        .replace("first_name = \"Luca\"", "first_name = \"Changed\"")
        .replace("school = \"infanzia-rodari\"", "school = \"nowhere\"")
        .replace("RSSLCU18D12C034G", "RSSLCU18D12C034X");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text).unwrap();
    let out = mensa(&db, &["import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problem(s); nothing was imported"), "{err}");
    assert!(err.contains("unknown school \"nowhere\""), "{err}");
    assert!(err.contains("wrong check character"), "{err}");
    let cal = mensa(
        &db,
        &["calendar", "--user-code", "100234", "--month", "2026-12"],
    );
    assert!(String::from_utf8_lossy(&cal.stdout).starts_with("Luca Rossi"));
}

#[test]
fn close_day_kitchen_and_ledger() {
    let (_dir, db) = imported();
    let out = mensa(&db, &["close-day", "--date", "2026-11-25"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 meals charged, 8.30 €"));
    let again = mensa(&db, &["close-day", "--date", "2026-11-25"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already closed"));
    let kitchen = ok_json(
        &db,
        &["kitchen", "--date", "2026-11-25", "--format", "json"],
    );
    assert_eq!(kitchen["final"], true);
    assert_eq!(kitchen["totals"]["meals"], 2);
    assert_eq!(kitchen["totals"]["diets"]["celiac"], 1);
    let ledger = ok_json(
        &db,
        &["ledger", "--user-code", "100235", "--format", "json"],
    );
    assert_eq!(ledger["balance_cents"], -380);
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 1);
    // A day whose cutoff is ahead cannot be closed.
    let future = mensa(&db, &["close-day", "--date", "2099-01-05"]);
    assert!(!future.status.success());
}

#[test]
fn serve_demo_starts_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["serve", "--demo", "--now", "2026-12-07 19:00"])
        .args([
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env_remove("MENSA_DATABASE_URL")
        .env("RUST_LOG", "info")
        .env("TMPDIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        let serving = line.contains("mensa serving");
        seen.push(line);
        if serving {
            break;
        }
    }
    assert!(
        seen.last().unwrap().contains("2026-12-07 19:00"),
        "{seen:#?}"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let rest: Vec<String> = stderr.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {rest:#?}");
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:#?}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the demo database is removed on exit: {left:?}"
    );
}

#[test]
fn serve_outlives_a_closed_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["serve", "--demo", "--sip-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .env_remove("MENSA_DATABASE_URL")
        .env("TMPDIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it serves (the demo import is printed on stdout first).
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("imported demo data"), "{line}");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    // The serving line comes after the start-up lines (the media send path).
    let serving = stderr
        .by_ref()
        .take(5)
        .any(|l| l.unwrap().contains("mensa serving"));
    assert!(serving, "no serving line among the first five");
    drop(stderr);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "a log line to a closed stderr must not kill it: {status:?}"
    );
}

// ------------------------------------------------------------------ dates

/// Dates no school calendar reaches (issue 13): chrono's ends, years whose
/// ISO text no longer sorts as dates, one too far for chrono at all, and
/// one just before the frame.
const FAR_DATES: [&str; 8] = [
    "+262142-12-31",
    "-262143-01-01",
    "0000-01-01",
    "9999-12-31",
    "+10000-01-01",
    "+262143-01-01",
    "-0001-12-31",
    "1999-12-31",
];

/// A refusal, not a crash: exit 1 (a panic exits 101), one clear line.
fn assert_refused(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(
        err.contains("outside the school calendar's reach") || err.contains("is not"),
        "{what}: {err}"
    );
}

#[test]
fn every_date_flag_refuses_extreme_dates_with_a_clear_message() {
    let (_dir, db) = imported();
    // `--flag=value`: a value may begin with `-` (a negative year).
    for far in FAR_DATES {
        let month = format!("--month={}", &far[..far.len() - 3]);
        let at = format!("--at={far} 10:00");
        let date = format!("--date={far}");
        for args in [
            vec!["calendar", "--user-code", "100234", &month],
            vec!["phone-target", "--cancel-code", "58213", &at],
            vec!["close-day", &date],
            vec!["kitchen", &date],
            vec!["calls", &date],
        ] {
            assert_refused(&mensa(&db, &args), &format!("{args:?}"));
        }
    }
    // chrono's very last minute, and the edges of the reference data's
    // reach (its schools' years, a year either side).
    let last = ["phone-target", "--cancel-code", "58213", "--at"];
    assert_refused(
        &mensa(&db, &[&last[..], &["+262142-12-31 23:59"]].concat()),
        "--at chrono's last minute",
    );
    assert_refused(
        &mensa(&db, &["kitchen", "--date", "2028-07-01"]),
        "a day after the ente's reach",
    );
    let edge = ok_json(
        &db,
        &["kitchen", "--date", "2028-06-30", "--format", "json"],
    );
    assert_eq!(edge["final"], false);
    // Nothing was closed by any of them.
    let kitchen = ok_json(
        &db,
        &["kitchen", "--date", "2026-11-25", "--format", "json"],
    );
    assert_eq!(kitchen["final"], false);
}

/// `mensa serve` with `args` on `db`, on free loopback ports: whether it
/// came up (then it is stopped with SIGTERM), and its log.
fn serve(db: &Path, args: &[&str], wait_for: &str) -> (bool, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .arg("serve")
        .args(args)
        .args([
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env("MENSA_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("MENSA_CODE_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut up = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        up |= line.contains("mensa serving");
        let done = line.contains(wait_for);
        lines.push(line);
        if done {
            break;
        }
    }
    if up {
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }
    let status = child.wait().unwrap();
    assert!(up || status.code() == Some(1), "{status:?}: {lines:#?}");
    (up, lines)
}

#[test]
fn serve_refuses_extreme_now_values() {
    let (_dir, db) = imported();
    for far in FAR_DATES
        .iter()
        .map(|d| format!("{d} 10:00"))
        .chain(["+262142-12-31 23:59".to_string()])
    {
        let now = format!("--now={far}");
        for demo in [false, true] {
            let args = if demo {
                vec!["--demo", &now]
            } else {
                vec![now.as_str()]
            };
            let (up, log) = serve(&db, &args, "mensa serving");
            assert!(!up, "{far}: {log:#?}");
            let text = log.join("\n");
            assert!(!text.contains("panicked"), "{far}: {text}");
            assert!(
                text.contains("outside the school calendar's reach") || text.contains("is not"),
                "{far}: {text}"
            );
        }
    }
}

#[test]
fn serve_now_refuses_a_database_closed_under_the_real_clock() {
    let (_dir, db) = imported();
    let closed = mensa(&db, &["close-day", "--date", "2026-11-25"]);
    assert!(closed.status.success(), "{closed:?}");
    let (up, log) = serve(&db, &["--now", "2026-12-07 19:00"], "mensa serving");
    assert!(!up, "{log:#?}");
    let text = log.join("\n");
    assert!(text.contains("closed under the real clock"), "{text}");
    assert!(text.contains("--now-on-real-data"), "{text}");
    // Said explicitly, it runs.
    let (up, log) = serve(
        &db,
        &["--now", "2026-12-07 19:00", "--now-on-real-data"],
        "mensa serving",
    );
    assert!(up, "{log:#?}");
    // The flag means nothing without --now.
    let alone = mensa(&db, &["serve", "--now-on-real-data"]);
    assert_eq!(alone.status.code(), Some(2), "{alone:?}");
}

#[test]
fn the_real_clock_refuses_a_database_a_shifted_clock_closed_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    // Two days ahead of the real date, after the cutoff: the demo's school
    // year follows --now, and the catch-up closes that day at once.
    let ahead = chrono::Utc::now().date_naive() + chrono::Days::new(2);
    let now = format!("{ahead} 10:00");
    let (up, log) = serve(&db, &["--demo", "--now", &now], "day closed");
    assert!(up, "{log:#?}");
    let (up, log) = serve(&db, &[], "mensa serving");
    assert!(!up, "{log:#?}");
    let text = log.join("\n");
    assert!(text.contains("ahead of the real date"), "{text}");
    assert!(text.contains(&ahead.to_string()), "{text}");
    // Under a clock set by hand it may go on.
    let (up, log) = serve(&db, &["--now", &now], "mensa serving");
    assert!(up, "{log:#?}");
}

/// Cancel codes need the code key: without one a real database is
/// refused with a message that says where to give it; another key is
/// refused rather than finding no code.
#[test]
fn commands_that_hash_codes_need_the_database_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let out = mensa_keyed(&db, &["import", EXAMPLE], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no code key was given") && err.contains("--code-key-file"),
        "{err}"
    );
    let (_dir, db) = imported();
    let at = [
        "phone-target",
        "--cancel-code",
        "58213",
        "--at",
        "2026-12-07 19:00",
    ];
    let out = mensa_keyed(&db, &at, None);
    assert!(!out.status.success());
    let other = "0".repeat(64);
    let out = mensa_keyed(&db, &at, Some(&other));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("hashed with another code key"),
        "{err}"
    );
    let out = mensa_keyed(&db, &at, Some("not hex"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MENSA_CODE_KEY"));
    // Commands that do not hash codes need no key.
    let out = mensa_keyed(&db, &["kitchen", "--date", "2026-12-07"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The office's way out of short codes: a key file, an import that warns
/// about the short code, the status, new codes written once to the
/// letters file, and a second run that does nothing.
#[test]
fn short_codes_are_warned_about_then_reissued_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let key_file = dir.path().join("code.key");
    let key_arg = key_file.to_str().unwrap();
    let out = mensa_keyed(&db, &["codes", "new-key", key_arg], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = mensa_keyed(&db, &["codes", "new-key", key_arg], None);
    assert!(!again.status.success(), "a key file is never overwritten");
    let with = |args: &[&str]| {
        mensa_keyed(
            &db,
            &[&["--code-key-file", key_arg][..], args].concat(),
            None,
        )
    };
    let file = dir.path().join("short.toml");
    let text = std::fs::read_to_string(EXAMPLE)
        .unwrap()
        .replace("cancel_code = \"77120\"", "cancel_code = \"7712\"");
    std::fs::write(&file, text).unwrap();
    let out = with(&["import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("1 cancel codes shorter than 5 digits"),
        "{said}"
    );
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("warning: line ")
            && warned.contains("4 digits")
            && !warned.contains("7712"),
        "{warned}"
    );
    let status = with(&["codes", "status", "--format", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["children"], 2);
    assert_eq!(status["shorter_than_min"], 1);
    // The 4-digit code is the best target: 1 / 10^4.
    assert_eq!(status["default_wrong_codes_per_year"], 5_000);
    let letters = dir.path().join("letters.csv");
    let out = with(&[
        "codes",
        "reissue",
        "--shorter-than",
        "5",
        "--digits",
        "8",
        "--out",
        letters.to_str().unwrap(),
        "--operator",
        "ufficio",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&letters).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "user_code,first_name,last_name,new_cancel_code");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with("\"100235\",\"Giulia\",\"Rossi\",\""),
        "{csv}"
    );
    let new_code = lines[1]
        .rsplit(',')
        .next()
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_eq!(new_code.len(), 8);
    assert_eq!(
        std::fs::metadata(&letters).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let target = with(&[
        "phone-target",
        "--cancel-code",
        &new_code,
        "--at",
        "2026-12-07 19:00",
        "--format",
        "json",
    ]);
    assert!(
        target.status.success(),
        "{}",
        String::from_utf8_lossy(&target.stderr)
    );
    let old = with(&[
        "phone-target",
        "--cancel-code",
        "7712",
        "--at",
        "2026-12-07 19:00",
    ]);
    assert!(!old.status.success(), "the old code is gone");
    // Again: nothing to do, no file.
    let second = dir.path().join("second.csv");
    let out = with(&[
        "codes",
        "reissue",
        "--shorter-than",
        "5",
        "--out",
        second.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing changed"));
    assert!(!second.exists());
    // The letters file is never overwritten.
    let out = with(&[
        "codes",
        "reissue",
        "--child",
        "100234",
        "--out",
        letters.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&letters).unwrap(), csv);
}
