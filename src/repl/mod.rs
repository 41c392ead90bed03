//! `agentfs sql`: runs SQL against a session database, from the command line, a script or an
//! interactive prompt, with sqlite3-style dot-commands and the named queries of `queries/`.

pub mod connect;
pub mod functions;
pub mod interactive;
pub mod render;

use std::io::Write;
use std::time::Instant;

use rusqlite::Connection;

use render::{Cell, Mode, ResultSet};

/// Why a statement, a dot-command or a script of the SQL shell failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    /// SQLite refused or failed the statement.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// Writing the results failed (a closed pipe, a full disk).
    #[error(transparent)]
    Output(#[from] std::io::Error),
    #[error(
        "transactions are refused in a read-only shell: it runs each statement on its \
         own so it never holds the live session's WAL (use --write for transactions)"
    )]
    ReadOnlyTransaction,
    /// A dot-command that takes on or off got something else.
    #[error("{cmd} takes on or off")]
    OnOff { cmd: String },
    #[error("unknown mode {0:?}; use table, csv, json, line or list")]
    UnknownMode(String),
    #[error(".read needs a FILE")]
    ReadNeedsFile,
    #[error(".q needs a query name; see .queries")]
    QueryNeedsName,
    #[error(".once needs a FILE")]
    OnceNeedsFile,
    #[error("cannot read {file}")]
    ReadFile {
        file: String,
        source: std::io::Error,
    },
    #[error("cannot write {file}")]
    WriteFile {
        file: String,
        source: std::io::Error,
    },
    #[error("unknown command {0}; .help lists the commands")]
    UnknownCommand(String),
    #[error("no named query {0:?}; .queries lists them")]
    UnknownQuery(String),
    /// A script went on past errors; the first one.
    #[error("the script had errors")]
    Script(#[source] Box<ReplError>),
    /// The interactive line editor failed.
    #[error(transparent)]
    Editor(#[from] rustyline::error::ReadlineError),
    /// Ctrl-C cannot be caught to interrupt statements.
    #[error(transparent)]
    Signals(std::io::Error),
}

type Result<T, E = ReplError> = std::result::Result<T, E>;

/// A named query shipped with agentfs (`queries/<name>.sql`).
pub struct NamedQuery {
    pub name: &'static str,
    pub sql: &'static str,
}

impl NamedQuery {
    /// The first comment line of the file: what the query shows.
    pub fn summary(&self) -> &'static str {
        self.sql
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("--"))
            .map(str::trim)
            .unwrap_or("")
    }
}

/// Every named query, in `.queries` order.
pub const QUERIES: &[NamedQuery] = &[
    NamedQuery {
        name: "changes",
        sql: include_str!("../../queries/changes.sql"),
    },
    NamedQuery {
        name: "diff",
        sql: include_str!("../../queries/diff.sql"),
    },
    NamedQuery {
        name: "recent_changes",
        sql: include_str!("../../queries/recent_changes.sql"),
    },
    NamedQuery {
        name: "changes_by_op",
        sql: include_str!("../../queries/changes_by_op.sql"),
    },
    NamedQuery {
        name: "changes_by_runner",
        sql: include_str!("../../queries/changes_by_runner.sql"),
    },
    NamedQuery {
        name: "history_of",
        sql: include_str!("../../queries/history_of.sql"),
    },
    NamedQuery {
        name: "deleted",
        sql: include_str!("../../queries/deleted.sql"),
    },
    NamedQuery {
        name: "renames",
        sql: include_str!("../../queries/renames.sql"),
    },
    NamedQuery {
        name: "binary_changes",
        sql: include_str!("../../queries/binary_changes.sql"),
    },
    NamedQuery {
        name: "files",
        sql: include_str!("../../queries/files.sql"),
    },
    NamedQuery {
        name: "largest_files",
        sql: include_str!("../../queries/largest_files.sql"),
    },
    NamedQuery {
        name: "tool_calls",
        sql: include_str!("../../queries/tool_calls.sql"),
    },
    NamedQuery {
        name: "timeline",
        sql: include_str!("../../queries/timeline.sql"),
    },
    NamedQuery {
        name: "changed_by",
        sql: include_str!("../../queries/changed_by.sql"),
    },
    NamedQuery {
        name: "kv",
        sql: include_str!("../../queries/kv.sql"),
    },
    NamedQuery {
        name: "summary",
        sql: include_str!("../../queries/summary.sql"),
    },
];

/// One dot-command: name, arguments, help; the same list feeds `.help` and completion.
pub struct DotCommand {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
}

pub const DOT_COMMANDS: &[DotCommand] = &[
    DotCommand {
        name: ".help",
        args: "[PATTERN]",
        help: "show this help, or the commands matching PATTERN",
    },
    DotCommand {
        name: ".tables",
        args: "",
        help: "list the tables and views",
    },
    DotCommand {
        name: ".schema",
        args: "[TABLE]",
        help: "show the CREATE statements (of TABLE)",
    },
    DotCommand {
        name: ".mode",
        args: "table|csv|json|line|list",
        help: "how results are printed",
    },
    DotCommand {
        name: ".headers",
        args: "on|off",
        help: "print column names or not",
    },
    DotCommand {
        name: ".timer",
        args: "on|off",
        help: "print how long each statement took",
    },
    DotCommand {
        name: ".bail",
        args: "on|off",
        help: "stop a script at the first error",
    },
    DotCommand {
        name: ".output",
        args: "[FILE]",
        help: "write results to FILE (no FILE: back to stdout)",
    },
    DotCommand {
        name: ".once",
        args: "FILE",
        help: "write the next result to FILE",
    },
    DotCommand {
        name: ".read",
        args: "FILE",
        help: "run the SQL and dot-commands in FILE",
    },
    DotCommand {
        name: ".queries",
        args: "",
        help: "list the named queries shipped with agentfs",
    },
    DotCommand {
        name: ".q",
        args: "NAME [ARGS...]",
        help: "run named query NAME, ARGS bound as ?1, ?2, ...",
    },
    DotCommand {
        name: ".quit",
        args: "",
        help: "leave the shell (also Ctrl-D)",
    },
];

/// The SQL functions agentfs adds (see `functions`), for completion.
pub const FUNCTIONS: &[&str] = &[
    "path_of",
    "content",
    "content_hash",
    "base_content",
    "blake3",
    "unified_diff",
    "is_text",
    "human_size",
];

/// Shell state: the connection and how results are shown.
pub struct Shell {
    conn: Connection,
    /// Keeps what the connection needs open (see [`connect::Session`]).
    _guard: Option<crate::store::Store>,
    pub mode: Mode,
    pub headers: bool,
    pub timer: bool,
    pub bail: bool,
    /// Terminal width for tables, when writing to a terminal.
    pub width: Option<u16>,
    /// Where results go instead of the caller's output (`.output`, `.once`).
    redirect: Option<Redirect>,
}

struct Redirect {
    file: std::fs::File,
    /// `.once`: only for the next command.
    once: bool,
}

/// What a line or script asked the caller to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

impl Shell {
    /// A shell on a session opened with [`connect::open`].
    pub fn new(session: connect::Session) -> Shell {
        Shell {
            conn: session.conn,
            _guard: session.writer,
            mode: Mode::Table,
            headers: true,
            timer: false,
            bail: false,
            width: None,
            redirect: None,
        }
    }

    /// Runs one or more `;`-separated statements and writes their results. Each statement
    /// runs on its own (autocommit), so the shell never holds a transaction open between
    /// commands and never pins the session's WAL.
    pub fn run_sql(&mut self, sql: &str, out: &mut dyn Write) -> Result<()> {
        self.run_statements(&split_statements(sql), &[], out)
    }

    /// Runs statements in turn, then ends a `.once` redirection.
    fn run_statements(
        &mut self,
        stmts: &[String],
        args: &[String],
        out: &mut dyn Write,
    ) -> Result<()> {
        let result = stmts
            .iter()
            .try_for_each(|stmt| self.run_one(stmt, args, out));
        if self.redirect.as_ref().is_some_and(|r| r.once) {
            self.redirect = None;
        }
        result
    }

    fn run_one(&mut self, sql: &str, args: &[String], out: &mut dyn Write) -> Result<()> {
        let started = Instant::now();
        let rs = query(&self.conn, sql, args)?;
        // A read-only shell (the one kept on a live session) holds no transaction between
        // statements: an open read transaction would keep the session's WAL from being
        // recycled for as long as the shell sits at its prompt.
        if self._guard.is_some() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(ReplError::ReadOnlyTransaction);
        }
        let mut text = String::new();
        if !rs.columns.is_empty() {
            // Tables fit the terminal only when they are printed on it.
            let width = self.width.filter(|_| self.redirect.is_none());
            text = render::render(&rs, self.mode, self.headers, width);
        }
        if self.timer {
            text.push_str(&format!(
                "Run Time: {:.3} s\n",
                started.elapsed().as_secs_f64()
            ));
        }
        match &mut self.redirect {
            Some(r) => r.file.write_all(text.as_bytes())?,
            None => out.write_all(text.as_bytes())?,
        }
        Ok(())
    }

    /// Runs a dot-command line.
    pub fn run_dot(&mut self, line: &str, out: &mut dyn Write) -> Result<Flow> {
        let words = shell_words(line);
        let (cmd, args) = match words.split_first() {
            Some((c, a)) => (c.as_str(), a),
            None => return Ok(Flow::Continue),
        };
        let on_off = |args: &[String]| -> Result<bool> {
            match args.first().map(String::as_str) {
                Some("on") => Ok(true),
                Some("off") => Ok(false),
                _ => Err(ReplError::OnOff {
                    cmd: cmd.to_string(),
                }),
            }
        };
        match cmd {
            ".help" => {
                let pattern = args.first().map(String::as_str).unwrap_or("");
                for d in DOT_COMMANDS.iter().filter(|d| d.name.contains(pattern)) {
                    writeln!(out, "{:<10} {:<26} {}", d.name, d.args, d.help)?;
                }
            }
            ".tables" => {
                let rs = query(
                    &self.conn,
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    &[],
                )?;
                for row in rs.rows {
                    writeln!(out, "{}", row[0].display())?;
                }
            }
            ".schema" => {
                let rs = match args.first() {
                    Some(t) => query(
                        &self.conn,
                        "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL",
                        std::slice::from_ref(t),
                    )?,
                    None => query(
                        &self.conn,
                        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL \
                         AND name NOT LIKE 'sqlite_%' ORDER BY tbl_name, type DESC",
                        &[],
                    )?,
                };
                for row in rs.rows {
                    writeln!(out, "{};", row[0].display())?;
                }
            }
            ".mode" => {
                let name = args.first().map(String::as_str).unwrap_or("");
                self.mode =
                    Mode::parse(name).ok_or_else(|| ReplError::UnknownMode(name.to_string()))?;
            }
            ".headers" => self.headers = on_off(args)?,
            ".timer" => self.timer = on_off(args)?,
            ".bail" => self.bail = on_off(args)?,
            ".read" => {
                let file = args.first().ok_or(ReplError::ReadNeedsFile)?;
                let text = std::fs::read_to_string(file).map_err(|source| ReplError::ReadFile {
                    file: file.clone(),
                    source,
                })?;
                return self.run_script(&text, out);
            }
            ".queries" => {
                for q in QUERIES {
                    writeln!(out, "{:<16} {}", q.name, q.summary())?;
                }
            }
            ".q" => {
                let (name, rest) = args.split_first().ok_or(ReplError::QueryNeedsName)?;
                self.run_named(name, rest, out)?;
            }
            ".output" | ".once" => {
                let once = cmd == ".once";
                self.redirect = match args.first() {
                    Some(file) => Some(Redirect {
                        file: std::fs::File::create(file).map_err(|source| {
                            ReplError::WriteFile {
                                file: file.clone(),
                                source,
                            }
                        })?,
                        once,
                    }),
                    None if once => return Err(ReplError::OnceNeedsFile),
                    None => None,
                };
            }
            ".quit" | ".exit" => return Ok(Flow::Quit),
            other => return Err(ReplError::UnknownCommand(other.to_string())),
        }
        Ok(Flow::Continue)
    }

    /// Runs named query `name` with `args` bound as ?1, ?2, ...
    pub fn run_named(&mut self, name: &str, args: &[String], out: &mut dyn Write) -> Result<()> {
        let q = QUERIES
            .iter()
            .find(|q| q.name == name)
            .ok_or_else(|| ReplError::UnknownQuery(name.to_string()))?;
        self.run_statements(&split_statements(q.sql), args, out)
    }

    /// Runs a script: dot-command lines and SQL statements ending in `;`. Errors are printed
    /// to `err` and the script goes on, unless `.bail on`; the result says whether all went
    /// well.
    pub fn run_script(&mut self, text: &str, out: &mut dyn Write) -> Result<Flow> {
        let mut pending = String::new();
        let mut failed = None;
        for line in text.lines() {
            if pending.trim().is_empty() && line.trim_start().starts_with('.') {
                match self.run_dot(line.trim(), out) {
                    Ok(Flow::Quit) => return Ok(Flow::Quit),
                    Ok(Flow::Continue) => {}
                    Err(e) if self.bail => return Err(e),
                    Err(e) => {
                        eprintln!("agentfs sql: {}", crate::report::Chain(&e));
                        failed.get_or_insert(e);
                    }
                }
                continue;
            }
            pending.push_str(line);
            pending.push('\n');
            if statement_complete(&pending) {
                let sql = std::mem::take(&mut pending);
                if let Err(e) = self.run_sql(&sql, out) {
                    if self.bail {
                        return Err(e);
                    }
                    eprintln!("agentfs sql: {}", crate::report::Chain(&e));
                    failed.get_or_insert(e);
                }
            }
        }
        if !pending.trim().is_empty()
            && let Err(e) = self.run_sql(&pending, out)
        {
            failed.get_or_insert(e);
        }
        match failed {
            Some(e) => Err(ReplError::Script(Box::new(e))),
            None => Ok(Flow::Continue),
        }
    }

    /// A handle that interrupts the running statement (for Ctrl-C).
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    /// Dot-commands, named queries, functions, tables, views and columns, for completion.
    pub fn completion_words(&self) -> Vec<String> {
        let mut words: Vec<String> = DOT_COMMANDS.iter().map(|d| d.name.to_string()).collect();
        words.extend(QUERIES.iter().map(|q| q.name.to_string()));
        words.extend(FUNCTIONS.iter().map(|f| f.to_string()));
        if let Ok(rs) = query(
            &self.conn,
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type IN ('table', 'view')",
            &[],
        ) {
            for row in rs.rows {
                for cell in row {
                    let w = cell.display();
                    if !words.contains(&w) {
                        words.push(w);
                    }
                }
            }
        }
        words
    }
}

/// Runs one statement, binding `args` as ?1, ?2, ... (missing ones are NULL).
fn query(conn: &Connection, sql: &str, args: &[String]) -> Result<ResultSet> {
    let mut stmt = conn.prepare(sql)?;
    let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
    for i in 1..=stmt.parameter_count() {
        match args.get(i - 1) {
            Some(a) => stmt.raw_bind_parameter(i, a)?,
            None => stmt.raw_bind_parameter(i, rusqlite::types::Null)?,
        }
    }
    let mut rows = Vec::new();
    let mut raw = stmt.raw_query();
    while let Some(row) = raw.next()? {
        rows.push(
            (0..columns.len())
                .map(|i| row.get_ref(i).map(Cell::from_value))
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    Ok(ResultSet { columns, rows })
}

/// Whether `sql` ends with a complete statement (SQLite's own tokenizer decides).
pub fn statement_complete(sql: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(sql) else {
        return true;
    };
    // SAFETY: sqlite3_complete reads a NUL-terminated string.
    unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 }
}

/// Splits a batch into statements at the `;` that end them (quotes, comments and triggers
/// are respected because SQLite decides where a statement is complete).
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in sql.chars() {
        current.push(ch);
        if ch == ';' && statement_complete(&current) {
            if !current.trim().trim_end_matches(';').trim().is_empty() {
                out.push(std::mem::take(&mut current));
            } else {
                current.clear();
            }
        }
    }
    if !current.trim().is_empty() && !only_comments(&current) {
        out.push(current);
    }
    out
}

fn only_comments(sql: &str) -> bool {
    sql.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

/// Splits a dot-command line into words; double or single quotes group words.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for ch in line.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                has = true;
            }
            (None, c) if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        let s = split_statements("SELECT ';'; -- a; comment\nSELECT 2;\n;SELECT 3");
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[0].contains("';'"));
        assert_eq!(s[2].trim(), "SELECT 3");
    }

    #[test]
    fn dot_command_words_honour_quotes() {
        assert_eq!(
            shell_words(".q history_of '/a b/c'"),
            vec![".q", "history_of", "/a b/c"]
        );
    }

    #[test]
    fn every_named_query_prepares_against_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::store::Store::open(&dir.path().join("s.db"), crate::store::OpenMode::Create)
                .unwrap();
        functions::register(&store.conn, None).unwrap();
        for q in QUERIES {
            assert!(!q.summary().is_empty(), "{} has no summary line", q.name);
            for stmt in split_statements(q.sql) {
                store
                    .conn
                    .prepare(&stmt)
                    .unwrap_or_else(|e| panic!("{}: {e}", q.name));
            }
        }
    }
}
