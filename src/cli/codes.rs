//! `mensa codes`, and the code key that every command hashing cancel
//! codes needs (docs/cli.md, docs/deployment.md).
//!
//! Where the key comes from, first found: `--code-key-file FILE` (or
//! `MENSA_CODE_KEY_FILE`), then `MENSA_CODE_KEY` (the 64 digits). Without
//! either, only a demo database may be used: `serve --demo` makes one with
//! the public demo key, and a database whose codes carry the demo key's
//! fingerprint is one. Anything else is refused with [`NO_KEY`]: with the
//! public key, a dump would give every code back.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::Format;
use crate::bookings::Clock;
use crate::bookings::codes::CodeKey;
use crate::bookings::guessing::years_to_chosen_child;
use crate::runtime::SystemClock;
use crate::runtime::ivr_actions::GuardConfig;
use crate::store::{ReissueError, ReissueWhich, Reissued, Store};

/// The error when a command needs the key and has none.
pub const NO_KEY: &str = "cancel codes are stored as keyed hashes and no code key was given: \
     pass --code-key-file FILE (or set MENSA_CODE_KEY_FILE, or MENSA_CODE_KEY to the key's 64 \
     hexadecimal digits); `mensa codes new-key FILE` makes one. Every node and every command \
     on this database needs the same key (docs/deployment.md)";

/// The key of `--code-key-file` or `MENSA_CODE_KEY`, if given.
pub(super) fn configured_key(file: Option<&Path>) -> Result<Option<CodeKey>> {
    if let Some(file) = file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the code key file {}", file.display()))?,
        );
        let key = CodeKey::from_hex(&text)
            .with_context(|| format!("the code key file {}", file.display()))?;
        warn_if_others_may_read(file);
        return Ok(Some(key));
    }
    match std::env::var("MENSA_CODE_KEY") {
        Ok(text) => {
            let text = zeroize::Zeroizing::new(text);
            Ok(Some(CodeKey::from_hex(&text).context("MENSA_CODE_KEY")?))
        }
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("MENSA_CODE_KEY must be 64 hexadecimal digits")
        }
    }
}

fn warn_if_others_may_read(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %file.display(),
            "the code key file may be read by others than its owner: chmod 600 it"
        );
    }
}

/// `store` hashing with `key`, adopted (see the module doc for the
/// demo key). `demo`: `serve --demo`, which may use the demo key on a
/// fresh database.
pub(super) async fn keyed(store: Store, key: Option<CodeKey>, demo: bool) -> Result<Store> {
    let key = match key {
        Some(key) => key,
        None if demo => CodeKey::demo(),
        None => {
            let demo_key = CodeKey::demo();
            if store.code_key_fingerprint().await? != Some(demo_key.fingerprint()) {
                bail!(NO_KEY);
            }
            demo_key
        }
    };
    if key.is_demo() && !demo {
        tracing::warn!(
            "this database's cancel codes are hashed with the public demo key: fine for a demo, \
             never for real families"
        );
    }
    let store = store.with_code_key(key);
    store.adopt_code_key().await?;
    Ok(store)
}

/// `mensa codes new-key FILE`.
pub(super) fn new_key(out: &mut String, file: &Path) -> Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = CodeKey::generate();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| {
            format!(
                "cannot create {} (an existing key file is never overwritten)",
                file.display()
            )
        })?;
    f.write_all(key.to_hex().as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", file.display()))?;
    outln!(
        out,
        "wrote a new code key to {}: keep it outside the database and its backups; every node \
         and every command on the database needs the same key, and without it no code can be \
         checked",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `mensa codes status`: the threat model with this database's numbers.
pub(super) async fn codes_status(
    out: &mut String,
    store: &Store,
    format: Format,
) -> Result<ExitCode> {
    let space = store.code_space().await?;
    let min = store.settings().await?.cancel_code_min_digits;
    let rules = GuardConfig::default().rules(&space);
    let per_year = rules.line.per_year_rate();
    let lengths: Vec<(u8, u64)> = (4..=12)
        .map(|d| (d, space.shorter_than(d + 1) - space.shorter_than(d)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let some_years = space.years_to_some_child(per_year);
    match format {
        Format::Json => outln!(
            out,
            "{}",
            json!({
                "children": space.children(),
                "by_digits": lengths.iter().map(|(d, n)| json!({"digits": d, "children": n})).collect::<Vec<_>>(),
                "min_digits": min,
                "shorter_than_min": space.shorter_than(min),
                "hit_chance": space.hit_chance(),
                "default_wrong_codes_per_year": per_year,
                "default_burst": rules.line.burst,
                "years_to_some_child": some_years,
                "years_to_a_chosen_child": lengths.iter().map(|(d, _)| json!({"digits": d, "years": years_to_chosen_child(*d, per_year)})).collect::<Vec<_>>(),
            })
        ),
        Format::Text => {
            outln!(out, "children with a cancel code: {}", space.children());
            for (digits, n) in &lengths {
                outln!(out, "  {digits} digits: {n}");
            }
            outln!(
                out,
                "the ente's minimum for new codes: {min} digits ({} shorter: `mensa codes reissue --shorter-than {min}`)",
                space.shorter_than(min)
            );
            outln!(
                out,
                "one guess finds some child's code with probability {:.2e}",
                space.hit_chance()
            );
            outln!(
                out,
                "the line's default budget: {per_year} wrong codes a year ({} at once); spent \
                 whole, some child's code is found in {some_years:.1} years on average",
                rules.line.burst
            );
            for (digits, _) in &lengths {
                outln!(
                    out,
                    "  a chosen child's code of {digits} digits: {:.0} years",
                    years_to_chosen_child(*digits, per_year)
                );
            }
            let typos = space.children() / 2;
            if per_year < typos.saturating_mul(2) {
                outln!(
                    out,
                    "warning: parents' typos (about {typos} a year, one per two children) may \
                     spend the budget: the line would then be guarded, and a number calling for \
                     the first time refused; longer codes widen the budget (docs/security.md)"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `mensa codes reissue`: new codes, the letters file written before the
/// change is committed (and removed if the commit fails), renamed into
/// place after.
pub(super) async fn reissue(
    out: &mut String,
    store: &Store,
    which: &ReissueWhich,
    digits: Option<u8>,
    file: &Path,
    operator: &str,
) -> Result<ExitCode> {
    if file.exists() {
        bail!(
            "{} exists: a letters file is never overwritten (it may hold the only copy of codes \
             already issued)",
            file.display()
        );
    }
    let min = store.settings().await?.cancel_code_min_digits;
    let digits = match (which, digits) {
        (ReissueWhich::ShorterThan(n), Some(d)) if d < *n => {
            bail!(
                "--digits {d} is shorter than --shorter-than {n}: the new codes would be short too"
            )
        }
        (_, Some(d)) => d,
        (ReissueWhich::ShorterThan(n), None) => min.max(*n),
        (ReissueWhich::Children(_), None) => min,
    };
    let partial = PathBuf::from(format!("{}.partial", file.display()));
    let mut letters = |issued: &[Reissued]| write_letters(&partial, issued);
    let result = store
        .reissue_codes(
            which,
            digits,
            operator,
            SystemClock.now(),
            &mut rand::rngs::OsRng,
            &mut letters,
        )
        .await;
    let issued = match result {
        Ok(issued) => issued,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(match e {
                ReissueError::Store(e) => anyhow::Error::new(e),
                other => anyhow::Error::new(other),
            });
        }
    };
    if issued.is_empty() {
        outln!(out, "no child to give a new code to: nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::rename(&partial, file).with_context(|| {
        format!(
            "the new codes are stored, but {} could not be renamed to {}: the letters are in the first",
            partial.display(),
            file.display()
        )
    })?;
    outln!(
        out,
        "{} children have new cancel codes of {digits} digits; the letters file {} holds the only \
         copy of the codes: print the letters, then delete it",
        issued.len(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The CSV for the letters, readable by its owner only, synced.
fn write_letters(path: &Path, issued: &[Reissued]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let mut text = zeroize::Zeroizing::new(String::from(
        "user_code,first_name,last_name,new_cancel_code\n",
    ));
    for r in issued {
        let _ = writeln!(
            *text,
            "{},{},{},{}",
            csv(r.user_code.as_str()),
            csv(&r.first_name),
            csv(&r.last_name),
            csv(r.code.as_str())
        );
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// A CSV field, always quoted: a code keeps its leading zeros in a
/// spreadsheet, a name its commas.
fn csv(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bookings::guessing::Budget;

    #[test]
    fn csv_fields_are_quoted() {
        assert_eq!(csv("0123"), "\"0123\"");
        assert_eq!(csv("D'Amico, \"Gigi\""), "\"D'Amico, \"\"Gigi\"\"\"");
    }

    #[test]
    fn budget_of_the_status_is_the_servers_default() {
        let b = GuardConfig::default().rules(&crate::bookings::guessing::CodeSpace::new([(5, 3)]));
        assert_eq!(
            b.line,
            Budget::per_year(16_666, Budget::default_burst(16_666))
        );
    }
}
