//! What a simulated caller does once answered: a short list of steps,
//! parsed once from `--script` and shared by every call.
//!
//! ```text
//! ivr   = speech, quiet:800, keys:{code}#, speech, wait:5000, keys:1, speech, wait:4000, bye
//! short = wait:1000, bye
//! ```
//!
//! | step | done when |
//! |---|---|
//! | `speech[:MS]` | the server's audio turns from silence to a prompt (at most MS, default 15000) |
//! | `quiet:MS` | the prompt has been silent for MS after speaking (at most 60 s) |
//! | `wait:MS` | MS have passed |
//! | `keys:KEYS` | every key was sent (100 ms each, 100 ms apart); `{code}` is the call's cancel code, each `{guess}` a new guessed code ([`Guesses`]) |
//! | `bye` | our BYE was answered (the call then ends) |
//! | `await-bye[:MS]` | the server hung up (at most MS, default 60000) |
//!
//! A script that ends without `bye` or `await-bye` hangs up at its end.
//!
//! A guessing run (docs/load.md, docs/security.md) types `{guess}`: codes
//! nobody was given, sequential or random, from caller numbers that
//! change with each call, cycle over a few, or stay one ([`Callers`]).

use std::time::Duration;

/// One step of a caller's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Wait for the start of a prompt (audio that is not silence).
    Speech {
        timeout: Duration,
    },
    /// Wait until the prompt has been silent this long.
    Quiet {
        silence: Duration,
    },
    Wait(Duration),
    /// Keys to press; `{code}` stands for the call's cancel code.
    Keys(String),
    Bye,
    AwaitBye {
        timeout: Duration,
    },
}

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub steps: Vec<Step>,
}

/// The longest a `quiet` step waits for a prompt to end.
pub const QUIET_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("unknown step {0:?} (speech, quiet:MS, wait:MS, keys:KEYS, bye, await-bye)")]
    UnknownStep(String),
    #[error("step {0:?}: not a number of milliseconds")]
    BadMillis(String),
    #[error("step {0:?}: keys are 0-9, *, #, A-D, {{code}} and {{guess}}")]
    BadKeys(String),
    #[error("the script is empty")]
    Empty,
}

impl Script {
    /// The full IVR call of issue #7: the caller listens to the greeting
    /// and the code question to their end, types the code and `#`,
    /// presses `1` five seconds into the menu (after "premere 1 per
    /// disdire"), hears the confirmation and hangs up: about 22 s on the
    /// demo line. (The confirmation runs into the menu with no pause, so
    /// its end is a fixed wait, not `quiet`.)
    pub const IVR: &'static str =
        "speech,quiet:800,keys:{code}#,speech,wait:5000,keys:1,speech,wait:4000,bye";
    /// Answer, hold 1 s, BYE.
    pub const SHORT: &'static str = "wait:1000,bye";

    /// Parses `ivr`, `short`, or a comma-separated list of steps.
    pub fn parse(spec: &str) -> Result<Script, ScriptError> {
        let spec = match spec.trim() {
            "ivr" => Self::IVR,
            "short" => Self::SHORT,
            other => other,
        };
        let mut steps = Vec::new();
        for raw in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, arg) = match raw.split_once(':') {
                Some((n, a)) => (n.trim(), Some(a.trim())),
                None => (raw, None),
            };
            let millis = |default: Option<u64>| -> Result<Duration, ScriptError> {
                match (arg, default) {
                    (Some(a), _) => a
                        .parse::<u64>()
                        .map(Duration::from_millis)
                        .map_err(|_| ScriptError::BadMillis(raw.to_owned())),
                    (None, Some(d)) => Ok(Duration::from_millis(d)),
                    (None, None) => Err(ScriptError::BadMillis(raw.to_owned())),
                }
            };
            let step = match name {
                "speech" => Step::Speech {
                    timeout: millis(Some(15_000))?,
                },
                "quiet" => Step::Quiet {
                    silence: millis(Some(800))?,
                },
                "wait" => Step::Wait(millis(None)?),
                "keys" => {
                    let keys = arg.unwrap_or_default();
                    let plain = keys.replace("{code}", "").replace("{guess}", "");
                    if keys.is_empty()
                        || !plain
                            .chars()
                            .all(|c| c.is_ascii_digit() || "*#ABCD".contains(c))
                    {
                        return Err(ScriptError::BadKeys(raw.to_owned()));
                    }
                    Step::Keys(keys.to_owned())
                }
                "bye" => Step::Bye,
                "await-bye" => Step::AwaitBye {
                    timeout: millis(Some(60_000))?,
                },
                _ => return Err(ScriptError::UnknownStep(raw.to_owned())),
            };
            steps.push(step);
        }
        if steps.is_empty() {
            return Err(ScriptError::Empty);
        }
        Ok(Script { steps })
    }

    /// A short call held `hold` before the BYE.
    pub fn hold(hold: Duration) -> Script {
        Script {
            steps: vec![Step::Wait(hold), Step::Bye],
        }
    }

    /// Whether the script listens to prompts (so received audio is
    /// inspected for speech).
    pub fn listens(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Speech { .. } | Step::Quiet { .. }))
    }

    /// Whether a call following it presses `1` after its code (a
    /// cancellation the store check expects).
    pub fn cancels(&self) -> bool {
        let mut code_seen = false;
        for step in &self.steps {
            if let Step::Keys(k) = step {
                if let Some(at) = k.find("{code}") {
                    code_seen = true;
                    if k[at..].contains('1') {
                        return true;
                    }
                } else if code_seen && k.contains('1') {
                    return true;
                }
            }
        }
        false
    }

    /// Whether any step needs a cancel code.
    pub fn uses_code(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Keys(k) if k.contains("{code}")))
    }

    /// How many codes a call guesses (`{guess}`s in its steps).
    pub fn guesses_per_call(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Keys(k) => k.matches("{guess}").count() as u64,
                _ => 0,
            })
            .sum()
    }
}

/// The caller number each call presents (the From user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callers {
    /// `39` and the call's index: a new number for every call, so that a
    /// server's per-caller count never mixes calls.
    EachCall,
    /// `39` and the call's index modulo this many: a few numbers, each
    /// calling again (a guesser's handful of SIM cards).
    Cycle(u64),
    /// This number for every call (a parent's phone).
    One(String),
}

impl Callers {
    /// Call `n`'s number.
    pub fn number(&self, n: u64) -> String {
        match self {
            Callers::EachCall => format!("39{:010}", n % 10_000_000_000),
            Callers::Cycle(k) => format!("39{:010}", n % (*k).max(1)),
            Callers::One(number) => number.clone(),
        }
    }
}

/// What `{guess}` types: codes of `digits` digits, in order from `start`
/// (each call takes the next ones: no code is tried twice) or at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guesses {
    pub digits: u8,
    pub random: bool,
    pub start: u64,
}

impl Default for Guesses {
    fn default() -> Guesses {
        Guesses {
            digits: 5,
            random: false,
            start: 0,
        }
    }
}

impl Guesses {
    /// The `k`-th guess of call `n`, for a script guessing `per_call`
    /// codes a call; `seed` tells runs apart for random guesses.
    pub fn guess(&self, seed: u64, n: u64, k: u64, per_call: u64) -> String {
        let digits = u32::from(self.digits.clamp(1, 12));
        let space = 10u64.pow(digits);
        let index = n.wrapping_mul(per_call.max(1)).wrapping_add(k);
        let value = if self.random {
            // SplitMix64: spread, not secret (a load generator's guesses).
            let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % space
        } else {
            self.start.wrapping_add(index) % space
        };
        format!("{value:0width$}", width = digits as usize)
    }
}

/// Cancel codes from a file: an import TOML (every `cancel_code` of its
/// `[[children]]`) or plain text, one code per line (`#` comments).
pub fn parse_codes(text: &str) -> Vec<String> {
    if let Ok(value) = text.parse::<toml::Table>()
        && let Some(children) = value.get("children").and_then(|c| c.as_array())
    {
        return children
            .iter()
            .filter_map(|c| c.get("cancel_code")?.as_str().map(str::to_owned))
            .collect();
    }
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_steps() {
        let ivr = Script::parse("ivr").unwrap();
        assert!(ivr.listens() && ivr.cancels() && ivr.uses_code());
        assert_eq!(ivr.steps.last(), Some(&Step::Bye));
        let short = Script::parse("short").unwrap();
        assert_eq!(
            short.steps,
            vec![Step::Wait(Duration::from_secs(1)), Step::Bye]
        );
        assert!(!short.cancels());
        assert!(Script::parse("keys:{code}#1").unwrap().cancels());
        let guessing = Script::parse("keys:{guess}#,speech,keys:{guess}#{guess}#").unwrap();
        assert_eq!(guessing.guesses_per_call(), 3);
        assert!(!guessing.uses_code() && !guessing.cancels());
        assert!(!Script::parse("keys:{code}#2").unwrap().cancels());
        assert!(matches!(
            Script::parse("wait"),
            Err(ScriptError::BadMillis(_))
        ));
        assert!(matches!(
            Script::parse("keys:12x"),
            Err(ScriptError::BadKeys(_))
        ));
        assert!(matches!(
            Script::parse("dance"),
            Err(ScriptError::UnknownStep(_))
        ));
        assert!(matches!(Script::parse(" , "), Err(ScriptError::Empty)));
    }

    #[test]
    fn guesses_never_repeat_in_order_and_keep_their_length() {
        let g = Guesses {
            digits: 5,
            random: false,
            start: 99_998,
        };
        let typed: Vec<String> = (0..2)
            .flat_map(|n| (0..2).map(move |k| g.guess(0, n, k, 2)))
            .collect();
        assert_eq!(typed, ["99998", "99999", "00000", "00001"]);
        let r = Guesses { random: true, ..g };
        let a: std::collections::HashSet<String> = (0..100).map(|n| r.guess(1, n, 0, 1)).collect();
        assert!(a.len() > 95 && a.iter().all(|c| c.len() == 5));
        assert_ne!(r.guess(1, 0, 0, 1), r.guess(2, 0, 0, 1));
        assert_eq!(Callers::Cycle(3).number(4), "390000000001");
        assert_eq!(Callers::EachCall.number(4), "390000000004");
        assert_eq!(
            Callers::One("393331234567".into()).number(4),
            "393331234567"
        );
    }

    #[test]
    fn codes_from_toml_or_lines() {
        let demo = parse_codes(include_str!("../demo.toml"));
        assert_eq!(demo, vec!["58213", "77120", "40617"]);
        assert_eq!(
            parse_codes("# codes\n123\n 456 # x\n\nabc\n"),
            vec!["123", "456"]
        );
    }
}
