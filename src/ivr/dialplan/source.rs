//! Where things are in a dialplan's text, for messages: the line of each
//! state's `[states.NAME]` header and of each key written in its section
//! (`next = ...`, `"9" = ...` in `[states.NAME.keys]`, `ok = ...` inside an
//! inline `results = { ... }`). A plain scan of the lines: the TOML itself
//! was parsed by `toml`; this only points at places.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SourceLines {
    headers: BTreeMap<String, usize>,
    /// (state, key as written without quotes) → first line.
    keys: BTreeMap<(String, String), usize>,
}

impl SourceLines {
    pub(super) fn scan(text: &str) -> SourceLines {
        let mut lines = SourceLines::default();
        let mut current: Option<String> = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim();
            if let Some(header) = trimmed.strip_prefix('[') {
                let header = header.trim_start_matches('[');
                let name = header
                    .split(']')
                    .next()
                    .and_then(|h| h.trim().strip_prefix("states."))
                    .map(|rest| first_key(rest).to_string());
                if let Some(name) = &name {
                    lines.headers.entry(name.clone()).or_insert(number);
                }
                current = name;
                continue;
            }
            let Some(state) = &current else {
                continue;
            };
            let code = trimmed.split('#').next().unwrap_or_default();
            // Every `key =` on the line: the line's own key, and those of
            // an inline table.
            for piece in code.split([',', '{']) {
                if let Some((key, _)) = piece.split_once('=') {
                    let key = key.trim().trim_matches('"').trim();
                    if !key.is_empty() {
                        lines
                            .keys
                            .entry((state.clone(), key.to_string()))
                            .or_insert(number);
                    }
                }
            }
        }
        lines
    }

    pub(super) fn header(&self, state: &str) -> Option<usize> {
        self.headers.get(state).copied()
    }

    /// The line of a place: `detail` is how messages name it ("next",
    /// "key `9`", "result `ok`", "language key `*`", or empty).
    pub(super) fn line(&self, state: &str, detail: &str) -> Option<usize> {
        let token = match detail.split('`').nth(1) {
            Some(quoted) => quoted,
            None => detail,
        };
        self.keys
            .get(&(state.to_string(), token.to_string()))
            .copied()
            .or_else(|| self.header(state))
    }
}

/// `menu.keys` → `menu`; `"a.b".keys` → `a.b`.
fn first_key(path: &str) -> &str {
    match path.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default(),
        None => path.split('.').next().unwrap_or_default().trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        let text = r#"start = "a"
[states.a]
kind = "menu"   # a menu
on_no_input = "b"
keys = { "1" = "b", "9" = "a" }

[states.a.results]
ok = "b"

[states."b.c"]
next = "a"
"#;
        let lines = SourceLines::scan(text);
        assert_eq!(lines.header("a"), Some(2));
        assert_eq!(lines.line("a", ""), Some(2));
        assert_eq!(lines.line("a", "on_no_input"), Some(4));
        assert_eq!(lines.line("a", "key `9`"), Some(5));
        assert_eq!(lines.line("a", "result `ok`"), Some(8));
        assert_eq!(lines.line("a", "result `failed`"), Some(2));
        assert_eq!(lines.line("b.c", "next"), Some(11));
        assert_eq!(lines.line("zzz", "next"), None);
    }
}
