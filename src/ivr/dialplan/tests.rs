//! The shipped dialplans load and validate; each kind of mistake is found
//! and named with its place.

use super::*;

const DEFAULT: &str = include_str!("../../../dialplans/default.toml");

/// A small valid dialplan the error cases below break one way each.
const SMALL: &str = r#"
start = "hello"

[states.hello]
kind = "play"
play = ["greeting"]
next = "ask"

[states.ask]
kind = "menu"
play = ["menu_options"]
on_no_input = "bye"
keys = { "1" = "window", "9" = "ask" }

[states.window]
kind = "action"
action = "check_window"
results = { open = "bye", closed = "bye", failed = "bye" }

[states.bye]
kind = "hangup"
play = ["goodbye"]
"#;

fn problems(text: &str) -> Vec<String> {
    match Dialplan::load(text, &PromptCatalogue::builtin()) {
        Ok(_) => Vec::new(),
        Err(Problems(p)) => p.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_default_dialplan_is_valid() {
    let plan =
        Dialplan::load(DEFAULT, &PromptCatalogue::builtin()).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(plan.start(), "greeting");
    assert_eq!(plan.limits().max_wrong_codes, 3);
    let Some(State::Menu(menu)) = plan.state("menu") else {
        panic!("no menu");
    };
    let keys: String = menu.keys.keys().map(|k| k.as_char()).collect();
    assert_eq!(keys, "12345689");
    assert_eq!(plan.line_of("greeting"), Some(16));
}

#[test]
fn the_audio_a_call_may_play() {
    let plan = Dialplan::parse(DEFAULT).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    for lang in crate::ivr::speech::Lang::ALL {
        let ids = plan.prompt_ids(lang);
        for id in [
            "greeting",
            "menu_options",
            "weekday_4",
            "already_absent",
            "not_suspended",
        ] {
            assert!(ids.iter().any(|i| i.as_str() == id), "{lang}: {id}");
        }
        for id in &ids {
            let wav = dir.join(lang.code()).join(format!("{id}.wav"));
            assert!(wav.exists(), "{}", wav.display());
        }
    }
}

#[test]
fn every_dialplan_in_the_folder_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let found = problems(&text);
            assert!(found.is_empty(), "{}: {found:#?}", path.display());
        }
    }
}

#[test]
fn the_small_dialplan_is_valid() {
    assert_eq!(problems(SMALL), Vec::<String>::new());
}

#[test]
fn mistakes_are_named_with_their_place() {
    for (change, (from, to), expected) in [
        (
            "unknown prompt",
            (r#"play = ["greeting"]"#, r#"play = ["greetings"]"#),
            "line 6: state `hello`, play: unknown prompt `greetings` (not in the it, en catalogue)",
        ),
        (
            "unknown slot",
            (r#"play = ["greeting"]"#, r#"play = ["{tomorrow}"]"#),
            "line 6: state `hello`, play: unknown slot \"{tomorrow}\"",
        ),
        (
            "unknown action",
            ("action = \"check_window\"", "action = \"launch\""),
            "line 17: state `window`, action: unknown action \"launch\"",
        ),
        (
            "unknown target",
            (r#""9" = "ask""#, r#""9" = "asked""#),
            "line 13: state `ask`, key `9`: unknown target state `asked`",
        ),
        (
            "missing result",
            ("closed = \"bye\", ", ""),
            "line 15: state `window`: action `check_window` has no target for result `closed`",
        ),
        (
            "impossible result",
            ("failed = \"bye\"", "failed = \"bye\", ok = \"bye\""),
            "line 18: state `window`, result `ok`: action `check_window` never gives this result",
        ),
        (
            "unreachable",
            (r#""1" = "window", "#, ""),
            "line 15: state `window`: unreachable from the start state",
        ),
        (
            "no timeout path",
            ("on_no_input = \"bye\"\n", ""),
            "line 9: state `ask`: `on_no_input` is missing",
        ),
        (
            "bad key",
            (r#""9" = "ask""#, r#""99" = "ask""#),
            "line 13: state `ask`, key `99`: \"99\" is not a key",
        ),
        (
            "field of another kind",
            (
                "next = \"ask\"",
                "next = \"ask\"\nkeys = { \"1\" = \"ask\" }",
            ),
            "line 4: state `hello`: `keys` has no meaning in a `play` state",
        ),
        (
            "unknown kind",
            ("kind = \"hangup\"", "kind = \"hang_up\""),
            "line 20: state `bye`: unknown kind \"hang_up\"",
        ),
        (
            "missing start",
            ("start = \"hello\"", "start = \"hi\""),
            "state `hi`: the start state `hi` does not exist",
        ),
        (
            "toml syntax",
            ("kind = \"play\"", "kind = play"),
            "line 5: ",
        ),
        (
            "unknown field",
            ("kind = \"play\"", "kind = \"play\"\nrepeat = 2"),
            "unknown field `repeat`",
        ),
        (
            "bad language",
            (
                "next = \"ask\"",
                "next = \"ask\"\nlanguage_keys = { \"*\" = \"fr\" }",
            ),
            "line 8: state `hello`, language key `*`: unknown language \"fr\"",
        ),
    ] {
        let text = SMALL.replacen(from, to, 1);
        assert_ne!(text, SMALL, "{change}: the replacement did not apply");
        let found = problems(&text);
        assert!(!found.is_empty(), "{change}: no problem found");
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{change}: expected {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn a_dead_end_is_reported_for_each_state_that_cannot_end() {
    // The menu only loops to itself and its silences lead back to it.
    let text = SMALL
        .replacen(r#"on_no_input = "bye""#, r#"on_no_input = "ask""#, 1)
        .replacen(r#""1" = "window", "#, "", 1);
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p.contains("state `ask`: dead end")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|p| p.contains("state `hello`: dead end")),
        "{found:#?}"
    );
}

#[test]
fn values_said_or_used_before_they_are_known() {
    // The menu (which says the target day and runs operations) straight
    // after the window check, before the child is identified.
    let text = DEFAULT.replacen("open = \"ask_code\"", "open = \"menu\"", 1);
    assert_ne!(text, DEFAULT);
    let found = problems(&text);
    for expected in [
        "state `menu`: {target_day} may be said before `identify_child` finds the child",
        "state `cancel`: action `cancel` may run before `identify_child` finds the child",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected}: {found:#?}"
        );
    }
    // The opening hours said before the window was checked.
    let text = DEFAULT.replacen("next = \"check_window\"", "next = \"closed\"", 1);
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.contains("state `closed`: {opens} may be said before `check_window`")),
        "{found:#?}"
    );
    // A refusal said after a success.
    let text = DEFAULT.replacen("ok = \"cancel_done\"", "ok = \"refused\"", 1);
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.contains("state `refused`: {refusal} may be said before a refusal")),
        "{found:#?}"
    );
}

#[test]
fn refusal_kinds_may_have_their_own_target() {
    let text = DEFAULT.replacen(
        "results = { ok = \"cancel_done\", refused = \"refused\"",
        "results = { ok = \"cancel_done\", already_absent = \"refused\", refused = \"refused\"",
        1,
    );
    assert_ne!(text, DEFAULT);
    assert_eq!(problems(&text), Vec::<String>::new());
    // Not on an action that never refuses.
    let text = DEFAULT.replacen(
        "results = { open = \"ask_code\"",
        "results = { already_absent = \"ask_code\", open = \"ask_code\"",
        1,
    );
    assert_eq!(problems(&text).len(), 1, "{:#?}", problems(&text));
}

#[test]
fn every_action_result_of_the_default_dialplan_has_a_target() {
    let plan = Dialplan::parse(DEFAULT).unwrap();
    let mut actions = Vec::new();
    for (_, state) in plan.states() {
        if let State::Action(a) = state {
            actions.push(a.action);
            for key in a.action.results() {
                assert!(a.results.contains_key(*key), "{}: {key}", a.action.name());
            }
        }
    }
    for (_, name) in ActionName::ALL {
        assert!(actions.contains(&name), "{} unused", name.name());
    }
}

proptest::proptest! {
    /// Any text, and the default dialplan with any line removed or any
    /// word swapped, gives a dialplan or a list of problems: never a panic.
    #[test]
    fn parsing_never_panics(text in ".{0,300}", line in 0usize..300, word in "[a-z_{}\"#*0-9 =]{0,12}") {
        let catalogue = PromptCatalogue::builtin();
        let _ = Dialplan::load(&text, &catalogue);
        let lines: Vec<&str> = DEFAULT.lines().collect();
        let index = line % lines.len();
        let mut without = lines.clone();
        without.remove(index);
        let _ = Dialplan::load(&without.join("\n"), &catalogue);
        let mut swapped = lines.clone();
        let replaced = lines[index].split('=').next().map(|k| format!("{k}= {word}")).unwrap_or_default();
        swapped[index] = &replaced;
        if let Err(problems) = Dialplan::load(&swapped.join("\n"), &catalogue) {
            proptest::prop_assert!(!problems.0.is_empty());
        }
    }
}
