//! `agentfs fsck`: check a session database against the SPEC's rules, and repair it.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;

use agentfs::fsck::{Problem, ProblemKind, Report};
use agentfs::session::SessionRef;
use agentfs::store::{OpenMode, Store, StoreError};

/// Arguments of `agentfs fsck`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Checks SQLite's integrity, then names, link counts, sizes and \
chunks, orphans, whiteouts and the journal. --repair fixes what can be fixed without losing \
data (an inode that lost its name goes to /lost+found/#<ino>) and reports what it did. It is \
safe while the session is mounted."
)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Fix what can be fixed without losing data.
    #[arg(long)]
    repair: bool,
    /// Print one JSON object (fields: session, clean, problems [kind, detail, repairable],
    /// repaired) in place of the lines.
    #[arg(long)]
    json: bool,
}

/// Prints each problem (and each repair) on stdout; exits 1 if problems remain.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args {
        session: arg,
        repair,
        json,
    } = args;
    let r = SessionRef::parse(&arg)?;
    r.require_exists()?;
    let mut store = match Store::open(&r.path, OpenMode::Existing) {
        Ok(s) => s,
        Err(StoreError::Corrupt(_) | StoreError::CorruptData(_)) => return damaged(&r, json),
        Err(e) => return Err(e.into()),
    };
    let mut out = io::stdout().lock();
    let report = if repair {
        agentfs::fsck::repair(&mut store.conn)?
    } else {
        Report {
            problems: agentfs::fsck::check(&store.conn)?,
            repaired: Vec::new(),
        }
    };
    if json {
        print_json(&mut out, &r, &report)?;
    } else {
        for done in &report.repaired {
            writeln!(out, "repaired: {done}")?;
        }
        for p in &report.problems {
            writeln!(out, "{p}")?;
        }
    }
    let problems = report.problems;
    if problems.is_empty() {
        eprintln!("session {}: clean", r.id);
        return Ok(ExitCode::SUCCESS);
    }
    let fixable = problems.iter().filter(|p| p.repairable).count();
    if repair || fixable == 0 {
        eprintln!("session {}: {} problem(s) remain", r.id, problems.len());
    } else {
        eprintln!(
            "session {}: {} problem(s), {fixable} repairable with `agentfs fsck {arg} --repair`",
            r.id,
            problems.len()
        );
    }
    Ok(ExitCode::FAILURE)
}

/// The report as one JSON object: `session`, `clean`, `problems` and `repaired`.
fn print_json(out: &mut impl Write, r: &SessionRef, report: &Report) -> Result<()> {
    let doc = serde_json::json!({
        "session": r.id,
        "clean": report.problems.is_empty(),
        "problems": report.problems,
        "repaired": report.repaired,
    });
    writeln!(out, "{doc}")?;
    Ok(())
}

/// A file SQLite itself finds damaged: report what integrity_check says and how to recover.
fn damaged(r: &SessionRef, json: bool) -> Result<ExitCode> {
    let conn =
        rusqlite::Connection::open_with_flags(&r.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut out = io::stdout().lock();
    let lines: Vec<String> = match conn.prepare("PRAGMA integrity_check") {
        Ok(mut stmt) => stmt
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| vec![e.to_string()]),
        Err(e) => vec![e.to_string()],
    };
    if json {
        let problems = lines
            .into_iter()
            .map(|detail| Problem {
                kind: ProblemKind::Integrity,
                detail,
                repairable: false,
            })
            .collect();
        let report = Report {
            problems,
            repaired: Vec::new(),
        };
        print_json(&mut out, r, &report)?;
    } else {
        for line in lines {
            writeln!(out, "Integrity: {line} (not repairable)")?;
        }
    }
    eprintln!(
        "session {}: the SQLite file is damaged; restore it from a copy, or save what SQLite \
         can still read with `sqlite3 {} .recover | sqlite3 recovered.db`",
        r.id,
        r.path.display()
    );
    Ok(ExitCode::FAILURE)
}
