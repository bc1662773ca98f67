//! The contract of cancel codes in the store (`store::codes`), on both
//! databases: keyed hashes under one key; the counts of codes typed as
//! `bookings::guessing` computes them, counted before the lookup, shared
//! by concurrent callers, bounded in size; the guarded line; the reissue.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use mensa::bookings::CancelCode;
use mensa::bookings::codes::CodeKey;
use mensa::bookings::guessing::{
    Backoff, BackoffState, Budget, CodeSpace, DAY_MS, GuardRules, YEAR_MS,
};
use mensa::bookings::{PhoneNumber, UserCode};
use mensa::store::{
    Admission, BINDINGS_PER_CODE, GuardRefusal, ReissueError, ReissueWhich, Store, StoreError,
};

use crate::common::{self, at, import_example, import_text};

const TRUNK: &str = "192.0.2.0/24";

fn code(s: &str) -> CancelCode {
    CancelCode::parse(s).unwrap()
}

fn key(byte: u8) -> CodeKey {
    CodeKey::from_hex(&format!("{byte:02x}").repeat(32)).unwrap()
}

fn number(s: &str) -> PhoneNumber {
    PhoneNumber::new(s)
}

fn rules(line_per_year: u64, burst: u32, trunk_percent: u8, free: u32) -> GuardRules {
    let line = Budget::per_year(line_per_year, burst);
    GuardRules {
        caller: Backoff {
            free,
            first_ms: 60_000,
            max_ms: 3_600_000,
            forgive_ms: DAY_MS,
        },
        trunk: line.share(trunk_percent),
        line,
    }
}

async fn admit(
    store: &Store,
    caller: &str,
    typed: &str,
    now: DateTime<Utc>,
    rules: &GuardRules,
) -> Admission {
    store
        .admit_code(&number(caller), TRUNK, &code(typed), now, rules)
        .await
        .unwrap()
}

/// Admits a code that is right, and gives its counts back as the line does.
async fn right(store: &Store, caller: &str, typed: &str, now: DateTime<Utc>, rules: &GuardRules) {
    match admit(store, caller, typed, now, rules).await {
        Admission::Counted(counted) => store
            .code_was_right(&counted, &code(typed), now, rules)
            .await
            .unwrap(),
        other => panic!("{caller} {other:?}"),
    }
}

pub async fn codes_are_stored_as_keyed_hashes_under_one_key(store: Store) {
    let k = key(0x11);
    let store = store.with_code_key(k.clone());
    import_example(&store).await;
    let stored = store.stored_cancel_codes().await.unwrap();
    assert_eq!(
        stored,
        vec![
            (
                "100234".to_string(),
                k.hash(&code("58213")).as_str().to_string(),
                5
            ),
            (
                "100235".to_string(),
                k.hash(&code("77120")).as_str().to_string(),
                5
            ),
        ]
    );
    let found = store.child_by_cancel_code(&code("77120")).await.unwrap();
    assert_eq!(found.unwrap().user_code.as_str(), "100235");
    assert!(
        store
            .child_by_cancel_code(&code("77121"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.code_key_fingerprint().await.unwrap(),
        Some(k.fingerprint())
    );
    assert_eq!(store.code_space().await.unwrap(), CodeSpace::new([(5, 2)]));
    assert_eq!(store.settings().await.unwrap().cancel_code_min_digits, 5);
    // Another key is refused, not taken for "no such code".
    let other = store.clone().with_code_key(key(0x22));
    assert!(matches!(
        other.child_by_cancel_code(&code("58213")).await,
        Err(StoreError::CodeKeyMismatch)
    ));
    assert!(matches!(
        other.adopt_code_key().await,
        Err(StoreError::CodeKeyMismatch)
    ));
    // The ente's minimum comes from the file.
    let eight = common::EXAMPLE.replace(
        "currency = \"EUR\"",
        "currency = \"EUR\"\ncancel_code_min_digits = 8",
    );
    let data = mensa::import::parse(&eight).unwrap();
    let summary = store
        .import(&data, at("2026-11-26 10:00"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.short_cancel_codes, 2);
    assert_eq!(store.settings().await.unwrap().cancel_code_min_digits, 8);
}

pub async fn a_code_equal_to_a_stored_user_code_is_refused(store: Store) {
    import_example(&store).await;
    let with_child = |user: &str, cancel: &str| {
        common::EXAMPLE
            .split("[[children]]")
            .next()
            .unwrap()
            .to_string()
            + &format!(
                r#"
[[children]]
user_code = "{user}"
cancel_code = "{cancel}"
first_name = "Anna"
last_name = "Verdi"
fiscal_code = "RSSGLI20E52C034R"
school = "primaria-dante"
class = "1A"
parent = "RSSMRA80A01C034P"
"#
            )
    };
    // Its cancel code is Luca's user code (stored in clear).
    let data = mensa::import::parse(&with_child("200001", "100234")).unwrap();
    let problems = store
        .import(&data, at("2026-11-26 10:00"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("equals the user code")),
        "{problems:?}"
    );
    // Its user code is Luca's cancel code (stored as a keyed hash).
    let data = mensa::import::parse(&with_child("58213", "99001")).unwrap();
    let problems = store
        .import(&data, at("2026-11-26 10:00"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.place.contains("stored child 100234")
                && p.message.contains("equals the user code")),
        "{problems:?}"
    );
    let data = mensa::import::parse(&with_child("200001", "99001")).unwrap();
    assert!(
        store
            .import(&data, at("2026-11-26 10:00"))
            .await
            .unwrap()
            .is_ok()
    );
}

/// The counts as `bookings::guessing` says, for a scripted run of a few
/// callers on two trunks: every decision of the store's SQL is the one of
/// the pure rules (with bindings modelled as the module doc says).
pub async fn the_counts_follow_the_rules_of_guessing(store: Store) {
    import_example(&store).await;
    // Budgets that refill within the run: the line one an hour (4 at
    // once), each trunk half of it; a caller 2 free, then 1 minute,
    // doubling to an hour, one forgiven a day.
    let rules = rules(365 * 24, 4, 50, 2);
    let callers = ["+393330000001", "+393330000002", "+393330000003", "0612345"];
    let trunks = ["192.0.2.0/24", "198.51.100.0/24"];
    let mut caller_state: HashMap<&str, BackoffState> = HashMap::new();
    let mut trunk_tat: HashMap<&str, i64> = HashMap::new();
    let mut line_tat: Option<i64> = None;
    let mut bound: HashSet<(&str, &str)> = HashSet::new();
    let t0 = at("2026-12-07 19:00");
    let mut now = t0;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        now += Duration::seconds(i64::try_from(next(1_200)).unwrap());
        let ms = now.timestamp_millis();
        let caller = callers[usize::try_from(next(4)).unwrap()];
        let trunk = trunks[usize::try_from(next(2)).unwrap()];
        let typed = match next(6) {
            0 => "58213",
            1 => "77120",
            _ => "10001",
        };
        let is_right = typed != "10001";
        // The model.
        let c = caller_state.get(caller).copied();
        let has_bindings = bound.iter().any(|(who, _)| *who == caller);
        let expected = if !rules.caller.allows(c, ms) {
            "caller_backoff"
        } else if bound.contains(&(caller, typed)) {
            "bound"
        } else if !rules.line.allows(line_tat, ms) {
            if has_bindings {
                caller_state.insert(caller, rules.caller.counted(c, ms));
            }
            "guarded"
        } else if !rules.trunk.allows(trunk_tat.get(trunk).copied(), ms) {
            if has_bindings {
                caller_state.insert(caller, rules.caller.counted(c, ms));
            }
            "trunk_budget"
        } else {
            let counted = rules.caller.counted(c, ms);
            if is_right {
                // Counted, then given back: only `last` may move (to the
                // one before), as the store does.
                caller_state.insert(caller, rules.caller.refunded(counted, ms));
                bound.insert((caller, typed));
            } else {
                caller_state.insert(caller, counted);
                line_tat = Some(rules.line.counted(line_tat, ms));
                trunk_tat.insert(
                    trunk,
                    rules.trunk.counted(trunk_tat.get(trunk).copied(), ms),
                );
            }
            "counted"
        };
        // The store.
        let got = match store
            .admit_code(&number(caller), trunk, &code(typed), now, &rules)
            .await
            .unwrap()
        {
            Admission::Refused(r) => r.as_str(),
            Admission::Bound => "bound",
            Admission::Counted(counted) => {
                if is_right {
                    store
                        .code_was_right(&counted, &code(typed), now, &rules)
                        .await
                        .unwrap();
                }
                "counted"
            }
        };
        assert_eq!(
            got,
            expected,
            "{caller} {typed} via {trunk} at +{} s",
            (now - t0).num_seconds()
        );
        *seen.entry(got.to_string()).or_default() += 1;
    }
    // The run went through every answer.
    for answer in [
        "counted",
        "bound",
        "caller_backoff",
        "trunk_budget",
        "guarded",
    ] {
        assert!(seen.get(answer).is_some_and(|n| *n > 0), "{seen:?}");
    }
}

pub async fn concurrent_guesses_cannot_all_pass_the_check(store: Store) {
    import_example(&store).await;
    let now = at("2026-12-07 19:00");
    // 40 numbers at once against a line that lets 5 through.
    let rules5 = rules(1_000, 5, 100, 100);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            admit(&store, &format!("+39333100{i:04}"), "10001", now, &rules5).await
        }));
    }
    let mut counted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Admission::Counted(_) => counted += 1,
            Admission::Refused(GuardRefusal::Guarded) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(counted, 5);
    // 40 at once from one number whose back-off lets 3 through.
    let rules3 = rules(1_000_000, 1_000, 100, 3);
    let later = now + Duration::days(400);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            admit(&store, "+393339999999", "10001", later, &rules3).await
        }));
    }
    let mut counted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Admission::Counted(_) => counted += 1,
            Admission::Refused(GuardRefusal::CallerBackoff) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(counted, 3);
}

pub async fn a_guarded_line_takes_bound_codes_only(store: Store) {
    import_example(&store).await;
    let rules = rules(1, 2, 100, 3);
    let now = at("2026-12-07 19:00");
    // A parent calling from a phone the office does not know.
    let parent = "+393339990001";
    right(&store, parent, "58213", now, &rules).await;
    // Two wrong codes spend the line.
    for caller in ["+393330000001", "+393330000002"] {
        assert!(matches!(
            admit(&store, caller, "10001", now, &rules).await,
            Admission::Counted(_)
        ));
    }
    assert!(store.line_guarded(now, rules.line).await.unwrap());
    let rows = store.code_guard_rows().await.unwrap();
    // A number without bindings: refused, and leaves no row behind.
    for typed in ["10002", "77120"] {
        assert_eq!(
            admit(&store, "+393330000003", typed, now, &rules).await,
            Admission::Refused(GuardRefusal::Guarded)
        );
    }
    assert_eq!(
        admit(&store, "anonymous", "58213", now, &rules).await,
        Admission::Refused(GuardRefusal::Guarded)
    );
    assert_eq!(store.code_guard_rows().await.unwrap(), rows);
    // The parent's own code still passes, as often as they like...
    for _ in 0..5 {
        assert_eq!(
            admit(&store, parent, "58213", now, &rules).await,
            Admission::Bound
        );
    }
    // ... but another code from the same number is a guess at its
    // bindings: refused and counted, until its back-off refuses all.
    for _ in 0..3 {
        assert_eq!(
            admit(&store, parent, "77120", now, &rules).await,
            Admission::Refused(GuardRefusal::Guarded)
        );
    }
    for typed in ["77120", "58213"] {
        assert_eq!(
            admit(&store, parent, typed, now, &rules).await,
            Admission::Refused(GuardRefusal::CallerBackoff)
        );
    }
    assert_eq!(
        admit(&store, parent, "58213", now + Duration::minutes(1), &rules).await,
        Admission::Bound
    );
    // A year on the line has room again.
    let later = now + Duration::milliseconds(YEAR_MS);
    assert!(!store.line_guarded(later, rules.line).await.unwrap());
}

pub async fn counts_are_swept_and_bindings_bounded(store: Store) {
    import_example(&store).await;
    let rules = rules(1_000_000, 1_000, 100, 5);
    let now = at("2026-12-07 19:00");
    for i in 0..10 {
        right(&store, &format!("+39333200{i:04}"), "58213", now, &rules).await;
    }
    // 58213 keeps its most recent eight; 77120 its registered number.
    let (_, bindings) = store.code_guard_rows().await.unwrap();
    assert_eq!(i64::try_from(bindings).unwrap(), BINDINGS_PER_CODE + 1);
    for i in 0..5 {
        admit(&store, &format!("+39333300{i:04}"), "10001", now, &rules).await;
    }
    // 10 callers given back, 5 counted, the line, the trunk.
    assert_eq!(store.code_guard_rows().await.unwrap().0, 17);
    // Given back is nothing: swept at once.
    store.sweep_code_guards(now).await.unwrap();
    assert_eq!(store.code_guard_rows().await.unwrap(), (7, 9));
    store
        .sweep_code_guards(now + Duration::days(401))
        .await
        .unwrap();
    assert_eq!(store.code_guard_rows().await.unwrap(), (0, 0));
    // A code that changes takes its bindings with it; the family's
    // registered number is bound to the new one (and to 77120 again).
    right(&store, "+393339990001", "58213", now, &rules).await;
    assert_eq!(store.code_guard_rows().await.unwrap().1, 1);
    import_text(
        &store,
        &common::EXAMPLE.replace("cancel_code = \"58213\"", "cancel_code = \"58299\""),
    )
    .await;
    assert_eq!(store.code_guard_rows().await.unwrap().1, 2);
    assert!(
        matches!(
            admit(&store, "+393339990001", "58299", now, &rules).await,
            Admission::Counted(_)
        ),
        "the old code's binding is gone"
    );
    assert_eq!(
        admit(&store, "+39 333 1234567", "58299", now, &rules).await,
        Admission::Bound
    );
}

pub async fn reissue_gives_short_codes_new_ones_once(store: Store) {
    let short = common::EXAMPLE.replace("cancel_code = \"77120\"", "cancel_code = \"7712\"");
    import_text(&store, &short).await;
    let now = at("2026-12-07 20:00");
    let mut rng = rand::rngs::OsRng;
    let giulia = |store: Store, c: &'static str| async move {
        store
            .child_by_cancel_code(&code(c))
            .await
            .unwrap()
            .map(|c| c.user_code.as_str().to_string())
    };
    let which = ReissueWhich::ShorterThan(5);
    let mut never =
        |_: &[mensa::store::Reissued]| -> std::io::Result<()> { panic!("no letters expected") };
    assert!(matches!(
        store
            .reissue_codes(&which, 4, "ufficio", now, &mut rng, &mut never)
            .await,
        Err(ReissueError::TooShort { asked: 4, min: 5 })
    ));
    // The letters cannot be written: nothing changes.
    let mut failing = |_: &[mensa::store::Reissued]| Err(std::io::Error::other("disk full"));
    assert!(matches!(
        store
            .reissue_codes(&which, 8, "ufficio", now, &mut rng, &mut failing)
            .await,
        Err(ReissueError::Letters(_))
    ));
    assert_eq!(
        giulia(store.clone(), "7712").await.as_deref(),
        Some("100235")
    );
    // A binding of the old code goes with it.
    let rules = rules(1_000, 10, 100, 5);
    right(&store, "+393339990002", "7712", now, &rules).await;
    let mut letters = Vec::new();
    let mut keep = |issued: &[mensa::store::Reissued]| {
        letters.extend(issued.iter().cloned());
        Ok(())
    };
    let issued = store
        .reissue_codes(&which, 8, "ufficio", now, &mut rng, &mut keep)
        .await
        .unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(letters.len(), 1);
    let new = &issued[0];
    assert_eq!(
        (
            new.user_code.as_str(),
            new.first_name.as_str(),
            new.old_digits
        ),
        ("100235", "Giulia", 4)
    );
    assert_eq!(new.code.as_str().len(), 8);
    let found = store
        .child_by_cancel_code(&new.code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_code.as_str(), "100235");
    assert_eq!(giulia(store.clone(), "7712").await, None);
    // The old code's bindings are gone; the family's registered number
    // (Mario's, also bound to Luca's 58213) is bound to the new code.
    assert_eq!(store.code_guard_rows().await.unwrap().1, 2);
    assert_eq!(
        admit(&store, "+393331234567", new.code.as_str(), now, &rules).await,
        Admission::Bound
    );
    assert_eq!(
        store.code_space().await.unwrap(),
        CodeSpace::new([(5, 1), (8, 1)])
    );
    // Again: nobody has a short code any more; nothing happens.
    let again = store
        .reissue_codes(&which, 8, "ufficio", now, &mut rng, &mut never)
        .await
        .unwrap();
    assert!(again.is_empty());
    // A named child gets a new code whatever its length.
    let luca = ReissueWhich::Children(vec![UserCode::parse("100234").unwrap()]);
    let mut ignore = |_: &[mensa::store::Reissued]| Ok(());
    let issued = store
        .reissue_codes(&luca, 6, "ufficio", now, &mut rng, &mut ignore)
        .await
        .unwrap();
    assert_eq!(issued[0].code.as_str().len(), 6);
    assert_eq!(giulia(store.clone(), "58213").await, None);
    let nobody = ReissueWhich::Children(vec![UserCode::parse("999999").unwrap()]);
    assert!(matches!(
        store
            .reissue_codes(&nobody, 6, "ufficio", now, &mut rng, &mut ignore)
            .await,
        Err(ReissueError::UnknownChild(_))
    ));
}

/// A database from before the keyed hashes (codes in clear, no key
/// recorded): the first store given a key hashes them in place.
async fn clear_codes_are_hashed_when_the_key_is_first_given(url: &str) {
    use sqlx::Connection;
    let store = Store::open(url).await.unwrap();
    import_example(&store).await;
    store.close().await;
    // Back to what 0005 leaves of an older database.
    let mut raw = sqlx::AnyConnection::connect(url).await.unwrap();
    for (user, clear) in [("100234", "58213"), ("100235", "77120")] {
        sqlx::query("UPDATE children SET cancel_code = $1 WHERE user_code = $2")
            .bind(clear)
            .bind(user)
            .execute(&mut raw)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM code_key")
        .execute(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
    let k = key(0x33);
    let store = Store::open(url).await.unwrap().with_code_key(k.clone());
    assert_eq!(store.adopt_code_key().await.unwrap(), 2);
    let stored = store.stored_cancel_codes().await.unwrap();
    assert_eq!(stored[0].1, k.hash(&code("58213")).as_str());
    assert_eq!(stored[1].1, k.hash(&code("77120")).as_str());
    let found = store.child_by_cancel_code(&code("58213")).await.unwrap();
    assert_eq!(found.unwrap().user_code.as_str(), "100234");
    // Once: a second store with the key hashes nothing more.
    let again = Store::open(url).await.unwrap().with_code_key(k);
    assert_eq!(again.adopt_code_key().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_clear_codes_are_hashed_when_the_key_is_first_given() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mensa.db").display());
    clear_codes_are_hashed_when_the_key_is_first_given(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set MENSA_TEST_POSTGRES_URL (.ci/run does)"]
async fn postgres_clear_codes_are_hashed_when_the_key_is_first_given() {
    clear_codes_are_hashed_when_the_key_is_first_given(&common::postgres_url().await).await;
}

/// The numbers the import file gives a child's parent and delegates are
/// bound to its code from the start: the family's first call from the
/// registered phone is taken even on a guarded line, written any way the
/// trunk writes it; a number the office does not know is not.
pub async fn registered_numbers_are_bound_from_the_import(store: Store) {
    import_example(&store).await;
    let rules = rules(1, 2, 100, 3);
    let now = at("2026-12-07 19:00");
    for caller in ["+393330000001", "+393330000002"] {
        admit(&store, caller, "10001", now, &rules).await;
    }
    assert!(store.line_guarded(now, rules.line).await.unwrap());
    for (caller, typed) in [
        ("+393331234567", "58213"),
        ("0039 333 123 4567", "77120"),
        ("3331234567", "58213"),
    ] {
        assert_eq!(
            admit(&store, caller, typed, now, &rules).await,
            Admission::Bound,
            "{caller} {typed}"
        );
    }
    assert_eq!(
        admit(&store, "+393339990003", "58213", now, &rules).await,
        Admission::Refused(GuardRefusal::Guarded)
    );
}
