//! `agentfs apply`: write a session's changes into its base directory.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use agentfs::apply::interactive::{Answer, Answerer, CHOICES, HELP, NewFile, Shown};
use agentfs::apply::tree::Entry;
use agentfs::apply::{ApplyError, Conflict, Item, Status};

use super::open::open_existing;

/// Arguments of `agentfs apply`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each file is written atomically (a temporary file in the same \
directory, fsync, rename). A path the host changed since the session took it over is a \
conflict: it is reported and skipped, the rest is applied, and the exit status is 1; --force \
overwrites it. A mounted session is refused unless --force.

With --interactive, each change is shown (a diff for text files) and asked about: y apply, n
skip (it stays in the session), a apply this and all the rest, q quit (apply nothing more), f
show the whole new file, ? help. The answers are collected first, then the accepted changes
are applied as above. It needs a terminal.

Examples:
  agentfs apply demo --dry-run
  agentfs apply demo -i
  agentfs apply demo src/ README.md
  agentfs apply demo --force"
)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Apply only changes at or below these paths (relative to the base).
    paths: Vec<String>,
    /// Print what would be applied and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Overwrite paths the host changed, and apply even while the session is mounted.
    #[arg(long)]
    force: bool,
    /// Print one JSON array of the changes applied (or, with --dry-run, to apply) and of the
    /// conflicts skipped, in place of the lines (fields: status, path, old_path, type, size,
    /// conflict).
    #[arg(long)]
    json: bool,
    /// Ask about each change before applying it (y, n, a, q, f, ?); needs a terminal.
    #[arg(short = 'i', long, conflicts_with = "json")]
    interactive: bool,
    /// Draw no progress on stderr (it is drawn only when stderr is a terminal anyway).
    #[arg(short, long)]
    quiet: bool,
}

/// Applies the changes, printing each one; exits 1 if conflicts were skipped.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args {
        session: arg,
        paths,
        dry_run,
        force,
        json,
        interactive,
        quiet,
    } = args;
    if interactive && !io::stdin().is_terminal() {
        eprintln!(
            "agentfs: error: apply --interactive asks about each change on a terminal, and \
             stdin is not one; run it in a terminal, or apply without --interactive (PATHs \
             and --dry-run choose what is applied)"
        );
        return Ok(ExitCode::from(2));
    }
    let (r, vfs) = open_existing(&arg)?;
    let base = agentfs::apply::base_of(&vfs)?;
    let uses = agentfs::apply::live_uses(&r.path);
    if !uses.is_empty() {
        if !force {
            bail!(
                "session {} is in use ({}), so its files may still change; let its runners \
                 finish (`agentfs ps`) or unmount it (`agentfs umount DIR`), or pass --force",
                r.id,
                uses.join(", ")
            );
        }
        eprintln!(
            "agentfs: warning: session {} is in use ({}); applying anyway (--force)",
            r.id,
            uses.join(", ")
        );
    }
    let vfs = Arc::new(vfs);
    let filtered = !paths.is_empty();
    let opts = agentfs::apply::Options {
        paths,
        dry_run,
        force,
    };
    if interactive {
        return run_interactive(&r.id, &arg, &vfs, &base, &opts);
    }
    let mut out = io::stdout().lock();
    let mut print_error = None;
    let mut entries = Vec::new();
    let bar = super::progress::Bar::new(quiet);
    let report = agentfs::apply::apply_with_progress(&vfs, &base, &opts, &bar, &mut |item| {
        if json {
            entries.push(item_json(item, None));
        } else if print_error.is_none()
            && let Err(e) = writeln!(out, "{item}")
        {
            print_error = Some(e);
        }
    })
    .with_context(|| format!("cannot apply session {} to {}", r.id, base.display()));
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            if json {
                // What was applied before the error is applied: scripts still learn of it.
                writeln!(out, "{}", Value::Array(entries))?;
            }
            return Err(e);
        }
    };
    if let Some(e) = print_error {
        return Err(e.into());
    }
    if json {
        if !report.conflicts.is_empty() {
            // The conflicted paths are still in the session: the plan says what they are.
            // Should it fail, they are still listed (the changes are applied by now).
            let plan = agentfs::apply::plan(&vfs, &base, &opts.paths).unwrap_or_default();
            for c in &report.conflicts {
                entries.push(match plan.iter().find(|i| i.path == c.path) {
                    Some(item) => item_json(item, Some(&c.reason)),
                    None => json!({
                        "status": Value::Null,
                        "path": c.path,
                        "old_path": Value::Null,
                        "type": Value::Null,
                        "size": Value::Null,
                        "conflict": c.reason,
                    }),
                });
            }
        }
        writeln!(out, "{}", Value::Array(entries))?;
    }
    for c in &report.conflicts {
        eprintln!("agentfs: conflict: {c}");
    }
    let verb = if dry_run { "would apply" } else { "applied" };
    eprintln!(
        "{verb} {} change(s) of session {} to {}",
        report.applied.len(),
        r.id,
        base.display()
    );
    if filtered && report.applied.is_empty() && report.conflicts.is_empty() {
        eprintln!(
            "agentfs: nothing changed at or below the given paths; `agentfs diff {arg}` lists \
             what the session changed"
        );
    }
    Ok(conflicts_status(&report.conflicts))
}

/// Success, or (with a line saying so) failure if conflicts were skipped.
fn conflicts_status(conflicts: &[agentfs::apply::Conflict]) -> ExitCode {
    if conflicts.is_empty() {
        return ExitCode::SUCCESS;
    }
    let paths: Vec<&str> = conflicts.iter().map(|c| c.path.as_str()).collect();
    eprintln!(
        "agentfs: error: {} path(s) skipped because the host changed them since the session \
         took them over: {}; look at them, then apply them with --force to overwrite the \
         host's version",
        paths.len(),
        paths.join(", ")
    );
    ExitCode::FAILURE
}

/// `apply --interactive`: the questions on the terminal, then the accepted changes applied.
fn run_interactive(
    id: &str,
    arg: &str,
    vfs: &Arc<agentfs::vfs::Vfs>,
    base: &Path,
    opts: &agentfs::apply::Options,
) -> Result<ExitCode> {
    let color = io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut terminal = Terminal { color };
    let mut applied = Vec::new();
    let outcome = agentfs::apply::interactive::run(vfs, base, opts, &mut terminal, &mut |item| {
        applied.push(item.to_string())
    })
    .with_context(|| format!("cannot apply session {id} to {}", base.display()))?;
    let mut out = io::stdout().lock();
    for line in &applied {
        writeln!(out, "{line}")?;
    }
    drop(out);
    let report = outcome.report;
    for c in &report.conflicts {
        eprintln!("agentfs: conflict: {c}");
    }
    let verb = if opts.dry_run {
        "would apply"
    } else {
        "applied"
    };
    eprintln!(
        "{verb} {} change(s) of session {id} to {}; {} change(s) left in the session",
        report.applied.len(),
        base.display(),
        outcome.declined.len()
    );
    if !outcome.declined.is_empty() {
        eprintln!("agentfs: `agentfs diff {arg}` shows what is left");
    }
    Ok(conflicts_status(&report.conflicts))
}

/// Shows the changes on stdout and reads the answers from stdin, a line at a time.
struct Terminal {
    color: bool,
}

impl Terminal {
    fn print(&self, text: &str) -> Result<(), ApplyError> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ApplyError::io(Path::new("stdout"), e))
    }

    fn bold(&self, line: &str) -> String {
        if self.color {
            agentfs::diff::render::bold(line)
        } else {
            line.to_string()
        }
    }
}

impl Answerer for Terminal {
    fn show(&mut self, shown: &Shown) -> Result<(), ApplyError> {
        // A blank line between one change and the next.
        let gap = if shown.index > 1 { "\n" } else { "" };
        let mut text = format!("{gap}{}\n", self.bold(&shown.summary));
        for note in &shown.notes {
            text.push_str(note);
            text.push('\n');
        }
        if let Some(patch) = &shown.patch {
            if self.color {
                text.push_str(&agentfs::diff::render::paint(patch));
            } else {
                text.push_str(patch);
            }
        }
        self.print(&text)
    }

    fn ask(&mut self, shown: &Shown) -> Result<Answer, ApplyError> {
        self.print(&format!(
            "({}/{}) Apply this change {}? ",
            shown.index, shown.total, CHOICES
        ))?;
        let mut line = String::new();
        let n = io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| ApplyError::io(Path::new("stdin"), e))?;
        if n == 0 {
            // End of input (Ctrl-D): as q.
            self.print("\n")?;
            return Ok(Answer::Quit);
        }
        Ok(Answer::parse(&line))
    }

    fn show_file(&mut self, shown: &Shown, file: &NewFile) -> Result<(), ApplyError> {
        let text = match file {
            NewFile::Text(t) if t.is_empty() || t.ends_with('\n') => t.clone(),
            NewFile::Text(t) => format!("{t}\n\\ No newline at end of file\n"),
            NewFile::Binary { size } => format!("(a binary file of {size} bytes, not shown)\n"),
            NewFile::Symlink { target } => format!("(a symlink to {target})\n"),
            NewFile::None(why) => format!("(no new file: {why})\n"),
        };
        let head = self.bold(&format!("{} (whole new file)", shown.summary));
        self.print(&format!("{head}\n{text}"))
    }

    fn help(&mut self, answer: Answer) -> Result<(), ApplyError> {
        let mut text = String::new();
        if answer == Answer::Unknown {
            text.push_str("(answer with one of these letters)\n");
        }
        text.push_str(HELP);
        self.print(&text)
    }

    fn skipped(&mut self, summary: &str, conflict: &Conflict) -> Result<(), ApplyError> {
        eprintln!(
            "agentfs: conflict, not asked: {summary}: {}; --force applies it over the host's \
             version",
            conflict.reason
        );
        Ok(())
    }
}

/// One change as JSON: its status letter, path (and the source of a rename), the type of
/// what the session has there (of what the base had, for a deletion), the size in bytes of
/// a file written, and why it was skipped if it was.
fn item_json(item: &Item, conflict: Option<&str>) -> Value {
    let (letter, old_path) = match &item.status {
        Status::Added => ("A", None),
        Status::Modified => ("M", None),
        Status::Deleted => ("D", None),
        Status::Renamed { from } => ("R", Some(from.as_str())),
    };
    let shown = if item.session.is_missing() {
        &item.base
    } else {
        &item.session
    };
    let size = match &item.session {
        Entry::File { size, .. } => Some(*size),
        _ => None,
    };
    json!({
        "status": letter,
        "path": item.path,
        "old_path": old_path,
        "type": entry_type(shown),
        "size": size,
        "conflict": conflict,
    })
}

/// The type names of the `fs_changes` view: file, dir, symlink, fifo, chardev, blockdev,
/// socket (null for nothing).
fn entry_type(e: &Entry) -> Option<&'static str> {
    use agentfs::vfs::FileKind;
    Some(match e {
        Entry::Missing => return None,
        Entry::File { .. } => "file",
        Entry::Dir { .. } => "dir",
        Entry::Symlink { .. } => "symlink",
        Entry::Special { kind } => match kind {
            FileKind::Fifo => "fifo",
            FileKind::CharDevice => "chardev",
            FileKind::BlockDevice => "blockdev",
            FileKind::Socket => "socket",
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
        },
    })
}
