//! Several statements in one round trip where the database lets us.
//!
//! On SQLite every statement is a command to sqlx's connection thread and
//! an answer back: two thread switches, which cost more than SQLite's own
//! work for the small statements of a change (docs/benchmarks.md, "API").
//! sqlx runs a text of several statements in one command, binding `$N` by
//! number across all of them, so [`Statements`] joins its statements into
//! one text there, renumbering each statement's `$1..` after the arguments
//! of those before it. PostgreSQL's extended protocol prepares one
//! statement at a time: there they run one after the other on the same
//! connection. Either way the rows of every statement come back in order.
//!
//! Each statement numbers its own parameters from `$1`, and every
//! parameter it has is bound (`Arg`s in order), so the same text serves
//! both databases. A failing statement ends the run with its error; the
//! ones before it are not undone here (the caller's transaction is).

use std::borrow::Cow;

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{Backend, StoreError};

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Arg {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(v)
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::OptInt(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(v.to_string())
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::OptText(v)
    }
}

/// Statements to run in order, in as few round trips as the backend allows.
#[derive(Debug, Default)]
pub(super) struct Statements {
    items: Vec<(Cow<'static, str>, Vec<Arg>)>,
}

impl Statements {
    pub(super) fn new() -> Statements {
        Statements::default()
    }

    /// Adds a statement whose parameters are `$1..=$n` for `n` = `args.len()`.
    pub(super) fn push(&mut self, sql: impl Into<Cow<'static, str>>, args: Vec<Arg>) {
        self.items.push((sql.into(), args));
    }

    /// Appends `other`'s statements after these.
    pub(super) fn append(&mut self, other: Statements) {
        self.items.extend(other.items);
    }

    /// Runs them all; the rows every statement returned, in order.
    pub(super) async fn run(
        self,
        conn: &mut AnyConnection,
        backend: Backend,
    ) -> Result<Vec<AnyRow>, StoreError> {
        match backend {
            Backend::Sqlite => {
                let mut text = String::new();
                let mut offset = 0;
                for (sql, args) in &self.items {
                    text.push_str(&renumber(sql, offset));
                    text.push_str(";\n");
                    offset += args.len();
                }
                let args = self.items.into_iter().flat_map(|(_, args)| args);
                Ok(bind(sqlx::query(&text), args).fetch_all(conn).await?)
            }
            Backend::Postgres => {
                let mut rows = Vec::new();
                for (sql, args) in self.items {
                    rows.extend(bind(sqlx::query(&sql), args).fetch_all(&mut *conn).await?);
                }
                Ok(rows)
            }
        }
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind<'q>(query: AnyQuery<'q>, args: impl IntoIterator<Item = Arg>) -> AnyQuery<'q> {
    args.into_iter().fold(query, |q, arg| match arg {
        Arg::Int(v) => q.bind(v),
        Arg::OptInt(v) => q.bind(v),
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
    })
}

/// `$k` → `$(k + offset)` everywhere in `sql`. Our statements never have a
/// `$` inside a string literal, so every `$` followed by digits is a
/// parameter.
fn renumber(sql: &str, offset: usize) -> Cow<'_, str> {
    if offset == 0 {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_after_the_earlier_statements_arguments() {
        assert_eq!(renumber("SELECT $1, $2", 0), "SELECT $1, $2");
        assert_eq!(
            renumber("INSERT INTO t VALUES ($1, $2, $10) -- $", 3),
            "INSERT INTO t VALUES ($4, $5, $13) -- $"
        );
        assert_eq!(
            renumber("WHERE a = $1 AND b = $1", 2),
            "WHERE a = $3 AND b = $3"
        );
    }

    #[tokio::test]
    async fn statements_run_in_order_in_one_round_trip_on_sqlite() {
        sqlx::any::install_default_drivers();
        use sqlx::{Connection, Row};
        let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
        let mut statements = Statements::new();
        statements.push("CREATE TABLE t (a BIGINT, b TEXT)", vec![]);
        statements.push(
            "INSERT INTO t VALUES ($1, $2), ($3, $2)",
            vec![Arg::Int(1), "x".into(), Arg::Int(2)],
        );
        statements.push(
            "SELECT a, b FROM t WHERE a >= $1 ORDER BY a",
            vec![Arg::Int(2)],
        );
        statements.push("SELECT $1 AS c", vec![Arg::OptText(None)]);
        let rows = statements.run(&mut conn, Backend::Sqlite).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i64, _>("a"), 2);
        assert_eq!(rows[0].get::<String, _>("b"), "x");
        assert_eq!(rows[1].get::<Option<String>, _>("c"), None);
    }
}
