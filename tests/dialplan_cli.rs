//! `mensa dialplan check` on the real binary.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["dialplan", "check"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn the_default_dialplan_checks_ok() {
    let out = check(&["dialplans/default.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("dialplans/default.toml: ok ("), "{text}");
    // Against the prompt folder too, and several files at once.
    let out = check(&["dialplans/default.toml", "--prompts", "prompts"]);
    assert!(out.status.success());
    let out = check(&["dialplans/default.toml", "dialplans/default.toml"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
}

#[test]
fn a_broken_dialplan_fails_with_each_problem_and_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    let text = include_str!("../dialplans/default.toml")
        .replacen("play = [\"code_unknown\"]", "play = [\"code_unknwon\"]", 1)
        .replacen("\"6\" = \"balance\"", "\"6\" = \"credit\"", 1)
        .replacen("action = \"say_balance\"", "action = \"say_credit\"", 1);
    std::fs::write(&file, text).unwrap();
    let out = check(&[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = "state `balance`, action: unknown action \"say_credit\"";
    assert!(text.contains(expected), "{expected:?} in {text}");
    // Parsing stops before the graph checks: fix the action, see the rest.
    let fixed = std::fs::read_to_string(&file)
        .unwrap()
        .replacen("say_credit", "say_balance", 1);
    std::fs::write(&file, fixed).unwrap();
    let text = String::from_utf8(check(&[file.to_str().unwrap()]).stdout).unwrap();
    for expected in [
        "line 61: state `code_unknown`, play: unknown prompt `code_unknwon`",
        "line 92: state `menu`, key `6`: unknown target state `credit`",
        "state `balance`: unreachable from the start state",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    assert!(
        text.lines().all(|l| l.contains("broken.toml: line ")),
        "{text}"
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let out = check(&["dialplans/none.toml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
