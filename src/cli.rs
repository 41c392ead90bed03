//! Command-line interface: clap definitions and the commands that inspect and manage sessions.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};

use agentfs::session::{self, SessionRef};
use agentfs::store::OpenMode;
use agentfs::vfs::{Attr, Creds, FileKind, Ino, Vfs, VfsError};

/// Run commands on a copy-on-write view of a directory; every change is kept in one SQLite
/// database per session.
#[derive(Parser, Debug)]
#[command(name = "agentfs", version, propagate_version = true)]
#[command(
    after_help = "Sessions live in $AGENTFS_HOME (default ~/.agentfs) as <ID>.db. \
Every command that takes a SESSION accepts an id or a path to a .db file.

Examples:
  agentfs run --session demo bash
  agentfs diff demo
  agentfs fs demo write /notes.txt --data 'hello'
  agentfs fs demo tree /
  agentfs sessions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new session database.
    Init {
        /// Session id (letters, digits, '.', '_', '-'); a random one if left out.
        id: Option<String>,
        /// Directory the session overlays (recorded for `agentfs run`).
        #[arg(long, value_name = "DIR")]
        base: Option<PathBuf>,
    },
    /// Run a command (your shell if none) in a sandbox whose current directory is a
    /// copy-on-write view of this one: writes go to the session, never to this directory.
    #[command(
        after_help = "The session's base is the current directory when the session is \
created; without --session a new session with a random id is made. Everything outside the \
base is read-only except /tmp (private to the session, shared by its runners) and the \
allowed paths: by default those of ~/.claude, ~/.claude.json, ~/.codex, ~/.gemini, ~/.amp, \
~/.local, ~/.npm and ~/.cache that exist.
Secrets are hidden: ~/.ssh, ~/.aws, ~/.gnupg, ~/.netrc, ~/.git-credentials, ~/.config/gh, ~/.docker/config.json, ~/.kube, the session databases, and what --deny names. With --hide-home nothing under $HOME shows but the base, the writable paths and --read paths.
The command sees only its own processes and keeps Docker's default capabilities; see SECURITY.md for what the sandbox promises and what it does not.
Another terminal joins the same live session with the same --session id; all runners share \
one mount, which lives while any of them runs.
Exit status: the command's; 128+N if a signal N killed it; 125 if the sandbox could not be \
set up, 126 if the command cannot run, 127 if it is not found.

Examples:
  agentfs run --session fix-tests claude
  agentfs run --session fix-tests bash          (join it from another terminal)
  agentfs run --allow ~/.config/git -- make test
  agentfs run --deny ~/work/other-client -- claude
  agentfs run --hide-home --read ~/.cargo --read ~/.rustup -- cargo build
  agentfs run --network=allow --allow-domain github.com --allow-domain '*.crates.io' -- claude
  agentfs run --network=none -- make test"
    )]
    Run {
        /// Session id to create or join (a random one if left out).
        #[arg(long)]
        session: Option<String>,
        /// Also keep PATH writable, directly (not copy-on-write). Repeatable.
        #[arg(long, value_name = "PATH")]
        allow: Vec<PathBuf>,
        /// Do not make the agent directories under $HOME writable.
        #[arg(long)]
        no_default_allows: bool,
        /// Also hide PATH (a directory shows empty, a file reads as empty); wins over
        /// --allow and --read. Repeatable. ~/.ssh, ~/.aws, ~/.gnupg, ~/.netrc,
        /// ~/.git-credentials, ~/.config/gh, ~/.docker/config.json and ~/.kube are hidden
        /// always.
        #[arg(long, value_name = "PATH")]
        deny: Vec<PathBuf>,
        /// Show nothing under $HOME but the base directory, the writable paths and the
        /// --read paths (toolchains need theirs: see README).
        #[arg(long)]
        hide_home: bool,
        /// With --hide-home: also show PATH, read-only. Repeatable.
        #[arg(long, value_name = "PATH")]
        read: Vec<PathBuf>,
        /// host: the host's network (the default); none: loopback only; allow: loopback,
        /// and the --allow-domain names through a proxy agentfs serves, which records every
        /// request in the session (fs_net_request). Kept as the session's default.
        #[arg(long, value_name = "POLICY")]
        network: Option<agentfs::run::network::Network>,
        /// With --network=allow (implied): let NAME through (*.NAME: its subdomains).
        /// Repeatable.
        #[arg(long, value_name = "NAME")]
        allow_domain: Vec<String>,
        /// Do not print the welcome banner.
        #[arg(long, short)]
        quiet: bool,
        /// The command and its arguments (default: $SHELL).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<std::ffi::OsString>,
    },
    /// Run a command in a session's mount, without the read-only sandbox (for scripts and
    /// CI): the base directory's path shows the session, the rest of the system is as usual.
    Exec {
        /// Session id or path to a .db file.
        session: String,
        /// The command and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<std::ffi::OsString>,
    },
    /// List the live runners (`agentfs run` / `agentfs exec`) of every session, or of one.
    Ps {
        /// Only this session.
        session: Option<String>,
    },
    /// Internal: set up the sandbox and become the command (started by `agentfs run`).
    #[command(hide = true)]
    SandboxExec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// List sessions: id, base directory, size on disk, created, last change, live runners,
    /// where mounted.
    Sessions,
    /// Look at or change files inside a session, without mounting it.
    Fs {
        /// Session id or path to a .db file.
        session: String,
        #[command(subcommand)]
        op: FsOp,
    },
    /// Read and write the session's key-value store (JSON values).
    Kv {
        /// Session id or path to a .db file.
        session: String,
        #[command(subcommand)]
        op: KvOp,
    },
    /// Mount a session on a directory (returns once the mount is ready; serves in the
    /// background).
    #[command(
        after_help = "The mount serves until `agentfs umount DIR`, or until the daemon gets \
SIGINT/SIGTERM (which unmount cleanly). Its log is <session>.db.mount.log next to the database.
If the daemon was killed, `ls DIR` fails with \"Transport endpoint is not connected\"; \
`agentfs umount DIR` removes the dead mount."
    )]
    Mount {
        /// Session id or path to a .db file.
        session: String,
        /// Directory to mount on.
        dir: PathBuf,
        /// Stay attached: serve in this process until unmounted or interrupted.
        #[arg(long)]
        foreground: bool,
        /// FUSE worker threads (each with its own database connection).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        /// Seconds the kernel may cache names and attributes (changes by other processes
        /// are pushed to it sooner through the change journal).
        #[arg(long, default_value_t = agentfs::fuse::DEFAULT_TTL_SECS, value_name = "SECS")]
        cache_ttl: f64,
        /// Answer the kernel's opens so that untouched base files are read with FUSE
        /// passthrough (kernel 6.9+). Off by default: declining opens saves two round trips
        /// per open and measured faster on source trees; passthrough avoids caching large
        /// base files twice.
        #[arg(long)]
        passthrough: bool,
        /// Internal: report readiness on stdout (used by the background daemon).
        #[arg(long, hide = true)]
        notify_ready: bool,
        /// Internal: serve only while the session has live runners (`agentfs run`).
        #[arg(long, hide = true, value_name = "LOCK")]
        runners_lock: Option<PathBuf>,
    },
    /// Unmount a directory mounted with `agentfs mount`.
    Umount {
        dir: PathBuf,
        /// Detach now even if files there are still in use.
        #[arg(long)]
        lazy: bool,
    },
    /// Query a session with SQL: the given statements, a script on stdin, or an interactive
    /// shell (sqlite3-style dot-commands; `.help` lists them, `.queries` the named queries).
    #[command(after_help = "Examples:
  agentfs sql demo 'SELECT status, path FROM fs_changes'
  agentfs sql demo --json '.q changes'
  agentfs sql demo --query diff /src/main.rs
  echo '.q recent_changes 5' | agentfs sql demo
  agentfs sql demo            (interactive; history in $AGENTFS_HOME/.sql_history)

The session is opened read-only (pass --write to change it). Each statement runs on its own,
so the shell never holds the session's WAL while it waits and never blocks a running mount.
Views: fs_paths, fs_changes. Functions: path_of, content, content_hash, base_content, blake3,
unified_diff, is_text, human_size (see SPEC.md).")]
    Sql {
        /// Session id or path to a .db file.
        session: String,
        /// SQL to run (several statements separated by ';', or a dot-command); with --query,
        /// the query's arguments. Without it: stdin, or a prompt on a terminal.
        sql: Vec<String>,
        /// Output format: table, csv, json, line or list.
        #[arg(long, default_value = "table")]
        mode: String,
        /// Print results as JSON (same as --mode json).
        #[arg(long, conflicts_with_all = ["csv", "mode"])]
        json: bool,
        /// Print results as CSV (same as --mode csv).
        #[arg(long, conflicts_with = "mode")]
        csv: bool,
        /// Run the named query NAME (`.queries` lists them).
        #[arg(long, value_name = "NAME")]
        query: Option<String>,
        /// Open the session writable (statements may change it).
        #[arg(long)]
        write: bool,
    },
    /// Show what a session changed against its base, as a unified diff (like `git diff`).
    #[command(
        after_help = "A added, M modified (bytes or mode differ), D deleted, R renamed, \
T type changed. Untouched files are never listed, even if read or copied up. Binary files \
are reported as such. Safe while the session is mounted. The rows come from the fs_changes \
view (SPEC.md), so `agentfs sql SESSION 'SELECT * FROM fs_changes'` agrees.

Examples:
  agentfs diff demo
  agentfs diff demo --name-status src/
  agentfs diff demo --stat
  agentfs diff demo --json"
    )]
    Diff {
        /// Session id or path to a .db file.
        session: String,
        /// Only changes at or below these paths (of the session, `/`-separated).
        paths: Vec<String>,
        /// One line per change: status letter and path.
        #[arg(long, conflicts_with_all = ["stat", "json"])]
        name_status: bool,
        /// Lines added and removed per file, and totals.
        #[arg(long, conflicts_with = "json")]
        stat: bool,
        /// The changes as a JSON array.
        #[arg(long)]
        json: bool,
        /// Colour the patch: auto (when stdout is a terminal), always or never.
        #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
        color: ColorWhen,
    },
    /// Write a session's changes into its base directory (A added, M modified, D deleted,
    /// R renamed); applied paths leave the session, so `agentfs diff` shows what is left.
    #[command(
        after_help = "Each file is written atomically (a temporary file in the same \
directory, fsync, rename). A path the host changed since the session took it over is a \
conflict: it is reported and skipped, the rest is applied, and the exit status is 1; --force \
overwrites it. A mounted session is refused unless --force.

Examples:
  agentfs apply demo --dry-run
  agentfs apply demo src/ README.md
  agentfs apply demo --force"
    )]
    Apply {
        /// Session id or path to a .db file.
        session: String,
        /// Apply only changes at or below these paths (relative to the base).
        paths: Vec<String>,
        /// Print what would be applied and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Overwrite paths the host changed, and apply even while the session is mounted.
        #[arg(long)]
        force: bool,
    },
    /// Export a session's changes as a git patch (`git apply` takes it on the base) or as a
    /// tar archive of the created and modified files.
    #[command(after_help = "Examples:
  agentfs export demo --patch > demo.patch && git -C BASE apply demo.patch
  agentfs export demo --patch -o demo.patch src/
  agentfs export demo --tar changed.tar

A git patch cannot hold empty directories or directory modes, nor modes other than the \
executable bit; what it cannot express is listed on stderr.")]
    #[command(group(clap::ArgGroup::new("format").required(true).args(["patch", "tar"])))]
    Export {
        /// Session id or path to a .db file.
        session: String,
        /// Only changes at or below these paths (relative to the base).
        paths: Vec<String>,
        /// Write a git patch (to stdout, or -o FILE).
        #[arg(long)]
        patch: bool,
        /// Write the created and modified files as a tar archive to FILE ('-': stdout).
        #[arg(long, value_name = "FILE")]
        tar: Option<PathBuf>,
        /// With --patch: write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE", requires = "patch")]
        output: Option<PathBuf>,
    },
    /// Copy a session (consistently, also while it is mounted and being written) to a new one.
    Fork {
        /// Session id or path to a .db file.
        session: String,
        /// Id (or .db path) of the new session.
        new: String,
    },
    /// Check a session database against the SPEC's rules (exit 0: clean, 1: problems).
    #[command(
        after_help = "Checks SQLite's integrity, then names, link counts, sizes and \
chunks, orphans, whiteouts and the journal. --repair fixes what can be fixed without losing \
data (an inode that lost its name goes to /lost+found/#<ino>) and reports what it did. It is \
safe while the session is mounted."
    )]
    Fsck {
        /// Session id or path to a .db file.
        session: String,
        /// Fix what can be fixed without losing data.
        #[arg(long)]
        repair: bool,
    },
    /// Give the space of deleted data back to the disk now (mounts also do it when idle and
    /// at unmount).
    Vacuum {
        /// Session id or path to a .db file.
        session: String,
    },
    /// Delete sessions whose last change is older than a duration (never a live or mounted
    /// one).
    Gc {
        /// Age, like 30m, 12h, 7d or "2weeks".
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a session and its database files.
    Rm {
        /// Session id or path to a .db file.
        session: String,
    },
}

#[derive(Subcommand, Debug)]
enum FsOp {
    /// List a directory (one entry per line, '/' after directories, '@' after symlinks).
    Ls {
        #[arg(default_value = "/")]
        path: OsString,
    },
    /// Print a file's contents.
    Cat { path: OsString },
    /// Write a file from stdin (or --data), creating it if needed and replacing its contents.
    Write {
        path: OsString,
        /// Contents to write instead of reading stdin.
        #[arg(long)]
        data: Option<OsString>,
    },
    /// Remove a file, symlink or empty directory (-r: a whole tree).
    Rm {
        path: OsString,
        /// Remove directories and their contents.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Create a directory.
    Mkdir {
        path: OsString,
        /// Create missing parents too, and accept an existing directory.
        #[arg(short, long)]
        parents: bool,
    },
    /// Show an entry's attributes.
    Stat { path: OsString },
    /// Print the tree below a directory.
    Tree {
        #[arg(default_value = "/")]
        path: OsString,
    },
}

#[derive(Subcommand, Debug)]
enum KvOp {
    /// Print the JSON value stored under KEY.
    Get { key: String },
    /// Store VALUE (JSON text, e.g. '"text"', 42, '{"a":1}') under KEY.
    Set { key: String, value: String },
    /// List all keys with their values.
    List,
    /// Remove KEY.
    Delete { key: String },
}

/// Parses arguments, runs the command and reports errors on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentfs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init { id, base } => init(id, base),
        Command::Run {
            session,
            allow,
            no_default_allows,
            deny,
            hide_home,
            read,
            network,
            allow_domain,
            quiet,
            command,
        } => run_command(&agentfs::run::RunOptions {
            session,
            allow,
            default_allows: !no_default_allows,
            deny,
            read,
            hide_home,
            network,
            allow_domains: allow_domain,
            quiet,
            command,
            exec: false,
        }),
        Command::Exec { session, command } => run_command(&agentfs::run::RunOptions {
            session: Some(session),
            allow: Vec::new(),
            default_allows: false,
            deny: Vec::new(),
            read: Vec::new(),
            hide_home: false,
            network: None,
            allow_domains: Vec::new(),
            quiet: true,
            command,
            exec: true,
        }),
        Command::Ps { session } => ps(session.as_deref()),
        Command::SandboxExec { command } => sandbox_exec(&command),
        Command::Sessions => sessions(),
        Command::Fs { session, op } => fs(&session, op),
        Command::Kv { session, op } => kv(&session, op),
        Command::Rm { session } => rm(&session),
        Command::Fsck { session, repair } => fsck(&session, repair),
        Command::Gc {
            older_than,
            dry_run,
        } => gc(&older_than, dry_run),
        Command::Fork { session, new } => fork(&session, &new),
        Command::Apply {
            session,
            paths,
            dry_run,
            force,
        } => apply(&session, paths, dry_run, force),
        Command::Export {
            session,
            paths,
            patch: _,
            tar,
            output,
        } => export(&session, &paths, tar, output),
        Command::Diff {
            session,
            paths,
            name_status,
            stat,
            json,
            color,
        } => {
            let format = match (name_status, stat, json) {
                (true, _, _) => DiffFormat::NameStatus,
                (_, true, _) => DiffFormat::Stat,
                (_, _, true) => DiffFormat::Json,
                _ => DiffFormat::Patch,
            };
            diff(&session, &paths, format, color)
        }
        Command::Sql {
            session,
            sql,
            mode,
            json,
            csv,
            query,
            write,
        } => {
            let mode = match (json, csv) {
                (true, _) => "json".to_string(),
                (_, true) => "csv".to_string(),
                _ => mode,
            };
            sql_command(&session, sql, &mode, query, write)
        }
        Command::Vacuum { session } => {
            let (r, vfs) = open_existing(&session)?;
            let before = session::size_on_disk(&r.path);
            vfs.compact()?;
            let after = session::size_on_disk(&r.path);
            eprintln!(
                "session {}: {} -> {}",
                r.id,
                human_size(before),
                human_size(after)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Mount {
            session,
            dir,
            foreground,
            threads,
            cache_ttl,
            passthrough,
            notify_ready,
            runners_lock,
        } => mount(
            &session,
            &dir,
            foreground,
            ServeOptions {
                threads: threads as usize,
                cache_ttl,
                passthrough,
            },
            notify_ready,
            runners_lock,
        ),
        Command::Umount { dir, lazy } => {
            agentfs::mount::unmount(&dir, lazy)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_command(opts: &agentfs::run::RunOptions) -> Result<ExitCode> {
    Ok(ExitCode::from(agentfs::run::run(opts)?))
}

fn sandbox_exec(command: &[std::ffi::OsString]) -> Result<ExitCode> {
    use agentfs::run::sandbox;
    let plan = std::env::var(sandbox::PLAN_ENV).map_err(|_| {
        anyhow!("sandbox-exec is started by `agentfs run`; it is not meant to be run by hand")
    })?;
    let plan: sandbox::Plan =
        serde_json::from_str(&plan).context("the sandbox plan from `agentfs run` is invalid")?;
    Ok(ExitCode::from(sandbox::enter(&plan, command)))
}

/// Live runners of each session (or of `only`).
fn ps(only: Option<&str>) -> Result<ExitCode> {
    let sessions: Vec<SessionRef> = match only {
        Some(arg) => {
            let r = SessionRef::parse(arg)?;
            r.require_exists()?;
            vec![r]
        }
        None => session::list_ids(&session::home()?)
            .iter()
            .filter_map(|id| SessionRef::parse(id).ok())
            .collect(),
    };
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "session", "runner", "pid", "started", "cwd", "command",
    ]);
    let mut any = false;
    for r in &sessions {
        let store = match agentfs::store::Store::open(&r.path, OpenMode::Existing) {
            Ok(s) => s,
            Err(e) if only.is_some() => return Err(e.into()),
            Err(_) => continue,
        };
        for runner in agentfs::runners::live(&store.conn)? {
            any = true;
            table.add_row(vec![
                r.id.clone(),
                runner.id.to_string(),
                runner.pid.to_string(),
                format_time(Some(runner.started_at_ns / 1_000_000_000)),
                runner.cwd.clone(),
                runner.command_line(),
            ]);
        }
    }
    let mut out = io::stdout().lock();
    if any {
        writeln!(out, "{table}")?;
    } else {
        writeln!(out, "no live runners")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn open_existing(arg: &str) -> Result<(SessionRef, Vfs)> {
    let r = SessionRef::parse(arg)?;
    r.require_exists()?;
    let vfs = Vfs::open_session(&r.path, OpenMode::Existing)?;
    Ok((r, vfs))
}

fn init(id: Option<String>, base: Option<PathBuf>) -> Result<ExitCode> {
    let id = id.unwrap_or_else(session::new_id);
    let r = SessionRef::parse_new(&id)?;
    let base = match base {
        Some(b) => Some(session::usable_base(&b)?),
        None => None,
    };
    session::create(&r, base.as_deref())?;
    println!("{}", r.id);
    eprintln!("created session {} at {}", r.id, r.path.display());
    Ok(ExitCode::SUCCESS)
}

fn sessions() -> Result<ExitCode> {
    let home = session::home()?;
    let mut rows = Vec::new();
    let entries = match std::fs::read_dir(&home) {
        Ok(e) => e.collect::<Result<Vec<_>, _>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(anyhow!(e).context(format!("cannot list {}", home.display()))),
    };
    for entry in entries {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "db") {
            continue;
        }
        let id = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let size = human_size(session::size_on_disk(&path));
        let info = (|| -> Result<(String, String, String, String)> {
            let vfs = Vfs::open_session(&path, OpenMode::Existing)?;
            let store = vfs.store()?;
            let conn = &store.conn;
            let one = |sql: &str| -> rusqlite::Result<Option<i64>> {
                conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            };
            let base: Option<String> = conn
                .query_row(
                    "SELECT value FROM fs_overlay_config WHERE key = 'base_path'",
                    [],
                    |r| r.get(0),
                )
                .ok();
            let created = one(
                "SELECT CAST(value AS INTEGER) FROM fs_config WHERE key = 'agentfs_created_at'",
            )
            .ok()
            .flatten();
            let last = one("SELECT max(time_ns) / 1000000000 FROM fs_change")?;
            let base = base.map(|b| {
                if std::path::Path::new(&b).is_dir() {
                    b
                } else {
                    format!("{b} (missing)")
                }
            });
            let live = agentfs::runners::live(conn)?.len();
            Ok((
                base.unwrap_or_else(|| "-".into()),
                format_time(created),
                format_time(last),
                if live == 0 {
                    "-".into()
                } else {
                    live.to_string()
                },
            ))
        })();
        match info {
            Ok((base, created, last, runners)) => {
                let mounted: Vec<String> = agentfs::mount::mounts_of(&path)
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                let mounted = if mounted.is_empty() {
                    "-".to_string()
                } else {
                    mounted.join(", ")
                };
                rows.push(vec![id, base, size, created, last, runners, mounted])
            }
            Err(e) => rows.push(vec![
                id,
                format!("(unreadable: {e:#})"),
                size,
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
        }
    }
    rows.sort();
    let mut out = io::stdout().lock();
    if rows.is_empty() {
        writeln!(
            out,
            "no sessions in {}; create one with `agentfs init ID`",
            home.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "id",
        "base",
        "size",
        "created",
        "last change",
        "live runners",
        "mounted at",
    ]);
    for r in rows {
        table.add_row(r);
    }
    writeln!(out, "{table}")?;
    Ok(ExitCode::SUCCESS)
}

fn format_time(secs: Option<i64>) -> String {
    let Some(secs) = secs else { return "-".into() };
    // Civil date from days since the epoch (Howard Hinnant's algorithm), UTC.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// How `agentfs mount` serves, as given on its command line.
struct ServeOptions {
    threads: usize,
    cache_ttl: f64,
    passthrough: bool,
}

fn mount(
    arg: &str,
    dir: &std::path::Path,
    foreground: bool,
    options: ServeOptions,
    notify: bool,
    runners_lock: Option<PathBuf>,
) -> Result<ExitCode> {
    let ServeOptions {
        threads,
        cache_ttl,
        passthrough,
    } = options;
    let r = SessionRef::parse(arg)?;
    if !(0.0..=3600.0).contains(&cache_ttl) {
        bail!("--cache-ttl {cache_ttl} is out of range; give seconds from 0 to 3600");
    }
    if !foreground {
        r.require_exists()?;
        // Check here too, so that a bad session fails in the foreground with a clear message.
        let vfs = Vfs::open_session(&r.path, OpenMode::Existing)?;
        check_base(&vfs, &r)?;
        drop(vfs);
        let mut log = r.path.clone().into_os_string();
        log.push(".mount.log");
        let args = agentfs::mount::DaemonArgs {
            threads: threads as u16,
            cache_ttl,
            passthrough,
            ..agentfs::mount::DaemonArgs::default()
        };
        let pid = agentfs::mount::spawn_daemon(arg, dir, &args, std::path::Path::new(&log))?;
        eprintln!(
            "mounted session {} on {} (daemon pid {pid})",
            r.id,
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = |result: Result<(), String>| {
        if notify {
            agentfs::mount::notify_parent(result);
        }
    };
    let vfs = match r
        .require_exists()
        .map_err(anyhow::Error::from)
        .and_then(|_| Vfs::open_session(&r.path, OpenMode::Existing).map_err(anyhow::Error::from))
    {
        Ok(v) => v,
        Err(e) => {
            report(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    if let Err(e) = check_base(&vfs, &r) {
        report(Err(format!("{e:#}")));
        return Err(e);
    }
    let config = agentfs::mount::MountConfig {
        threads,
        // SAFETY: geteuid cannot fail.
        allow_other: unsafe { libc::geteuid() } == 0,
        fs_name: format!("agentfs:{}:{}", r.id, std::process::id()),
        ttl: std::time::Duration::from_secs_f64(cache_ttl),
        // The shared mount of `agentfs run` holds what sandboxed commands made.
        setid_and_devices: runners_lock.is_none(),
        runners_lock,
        passthrough,
    };
    agentfs::mount::serve(vfs, dir, &config, report)?;
    Ok(ExitCode::SUCCESS)
}

/// When `agentfs diff` colours its patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

enum DiffFormat {
    Patch,
    NameStatus,
    Stat,
    Json,
}

fn diff(arg: &str, paths: &[String], format: DiffFormat, color: ColorWhen) -> Result<ExitCode> {
    use agentfs::diff::{self, render};
    use std::io::IsTerminal;
    let r = SessionRef::parse(arg)?;
    r.require_exists()?;
    let opened = agentfs::repl::connect::open(&r.path, false)?;
    let conn = &opened.conn;
    let base = diff::base_dir(conn)?;
    let changes = diff::changes(conn, paths)?;
    let text = match format {
        DiffFormat::NameStatus => render::name_status(&changes),
        DiffFormat::Stat => render::stat(conn, base.as_deref(), &changes)?,
        DiffFormat::Json => render::json(conn, base.as_deref(), &changes)?,
        DiffFormat::Patch => {
            let color = match color {
                ColorWhen::Always => true,
                ColorWhen::Never => false,
                ColorWhen::Auto => io::stdout().is_terminal(),
            };
            render::patches(conn, base.as_deref(), &changes, color)?
        }
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn sql_command(
    arg: &str,
    sql: Vec<String>,
    mode: &str,
    query: Option<String>,
    write: bool,
) -> Result<ExitCode> {
    use agentfs::repl::{Shell, render::Mode};
    use std::io::IsTerminal;
    let mode = Mode::parse(mode)
        .ok_or_else(|| anyhow!("unknown --mode {mode:?}; use table, csv, json, line or list"))?;
    let r = SessionRef::parse(arg)?;
    r.require_exists()?;
    let opened = agentfs::repl::connect::open(&r.path, write)?;
    let mut shell = Shell::new(opened);
    shell.mode = mode;
    let mut out = io::stdout().lock();
    if let Some(name) = query {
        shell.bail = true;
        shell.run_named(&name, &sql, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !sql.is_empty() {
        // Like the sqlite3 shell, the argument may also be a dot-command (`.q files`).
        shell.bail = true;
        shell.run_script(&sql.join(" "), &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !io::stdin().is_terminal() {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        shell.run_script(&text, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    drop(out);
    shell.width = terminal_width();
    let history = session::home().ok().map(|h| h.join(".sql_history"));
    agentfs::repl::interactive::run(&mut shell, history)?;
    Ok(ExitCode::SUCCESS)
}

fn terminal_width() -> Option<u16> {
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col)
}

fn fork(arg: &str, new: &str) -> Result<ExitCode> {
    let (from, vfs) = open_existing(arg)?;
    let to = SessionRef::parse_new(new)?;
    if to.path.exists() {
        return Err(session::SessionError::Exists {
            id: to.id.clone(),
            path: to.path.clone(),
        }
        .into());
    }
    if let Some(dir) = to.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the session directory {}", dir.display()))?;
    }
    // VACUUM INTO reads one snapshot, so the copy is consistent even while writers go on.
    let copied = vfs
        .store()?
        .conn
        .execute("VACUUM INTO ?1", [to.path.to_string_lossy()]);
    let result = copied.map_err(anyhow::Error::from).and_then(|_| {
        let conn = rusqlite::Connection::open(&to.path)?;
        // Files the parent's processes hold open after unlinking them are not the fork's:
        // mark them as left by a dead process so that opening the fork frees them.
        conn.execute("UPDATE fs_orphan SET pid = 0", [])?;
        conn.execute(
            "UPDATE fs_config SET value = CAST(unixepoch() AS TEXT) WHERE key = 'agentfs_created_at'",
            [],
        )?;
        drop(conn);
        Vfs::open_session(&to.path, OpenMode::Existing)?;
        Ok(())
    });
    if let Err(e) = result {
        for f in to.files() {
            let _ = std::fs::remove_file(f);
        }
        return Err(e.context(format!(
            "cannot fork {} into {}",
            from.id,
            to.path.display()
        )));
    }
    println!("{}", to.id);
    eprintln!(
        "forked session {} into {} at {}",
        from.id,
        to.id,
        to.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn apply(arg: &str, paths: Vec<String>, dry_run: bool, force: bool) -> Result<ExitCode> {
    let (r, vfs) = open_existing(arg)?;
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
    let vfs = std::sync::Arc::new(vfs);
    let filtered = !paths.is_empty();
    let opts = agentfs::apply::Options {
        paths,
        dry_run,
        force,
    };
    let mut out = io::stdout().lock();
    let mut print_error = None;
    let report = agentfs::apply::apply(&vfs, &base, &opts, &mut |item| {
        if print_error.is_none()
            && let Err(e) = writeln!(out, "{item}")
        {
            print_error = Some(e);
        }
    })
    .with_context(|| format!("cannot apply session {} to {}", r.id, base.display()))?;
    if let Some(e) = print_error {
        return Err(e.into());
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
    if report.conflicts.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let paths: Vec<&str> = report.conflicts.iter().map(|c| c.path.as_str()).collect();
    eprintln!(
        "agentfs: error: {} path(s) skipped because the host changed them since the session \
         took them over: {}; look at them, then apply them with --force to overwrite the \
         host's version",
        paths.len(),
        paths.join(", ")
    );
    Ok(ExitCode::FAILURE)
}

fn export(
    arg: &str,
    paths: &[String],
    tar: Option<PathBuf>,
    output: Option<PathBuf>,
) -> Result<ExitCode> {
    use agentfs::apply::tree::{BaseTree, SessionTree};
    let (r, vfs) = open_existing(arg)?;
    let base = agentfs::apply::base_of(&vfs)?;
    let vfs = std::sync::Arc::new(vfs);
    let items = agentfs::apply::plan(&vfs, &base, paths)?;
    let session = SessionTree::new(vfs.clone(), &base);
    let target = tar.as_ref().or(output.as_ref());
    let mut sink: Box<dyn Write> = match target.filter(|p| p.as_os_str() != "-") {
        Some(path) => Box::new(io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    if tar.is_some() {
        let n = agentfs::apply::archive::write_tar(&items, &session, &mut sink)?;
        sink.flush()?;
        eprintln!("exported {n} entr(ies) of session {}", r.id);
        return Ok(ExitCode::SUCCESS);
    }
    let warnings = agentfs::apply::patch::write_patch(
        &items,
        &BaseTree::new(base.clone()),
        &session,
        &mut sink,
    )?;
    sink.flush()?;
    for w in &warnings {
        eprintln!("agentfs: warning: not in the patch: {w}");
    }
    eprintln!(
        "exported a patch of {} change(s) of session {} against {}",
        items.len(),
        r.id,
        base.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn gc(older_than: &str, dry_run: bool) -> Result<ExitCode> {
    let age = humantime::parse_duration(older_than).map_err(|e| {
        anyhow!("--older-than {older_than:?} is not a duration ({e}); write e.g. 30m, 12h or 7d")
    })?;
    let home = session::home()?;
    let cutoff = std::time::SystemTime::now()
        .checked_sub(age)
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut removed = 0;
    for id in session::list_ids(&home) {
        let r = SessionRef::parse(&id)?;
        // The newest of the database and WAL modification times: the last change.
        let last = r
            .files()
            .iter()
            .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .max();
        if last.is_none_or(|t| t >= cutoff) {
            continue;
        }
        if let Some(point) = agentfs::mount::mounts_of(&r.path).first() {
            eprintln!("keeping {id}: mounted at {}", point.display());
            continue;
        }
        // A runner can sit for long without changing anything (an agent waiting for input).
        let live = agentfs::store::Store::open(&r.path, OpenMode::Existing)
            .ok()
            .and_then(|s| agentfs::runners::live(&s.conn).ok())
            .map_or(0, |l| l.len());
        if live > 0 {
            eprintln!("keeping {id}: {live} live runner(s)");
            continue;
        }
        if dry_run {
            println!("{id}");
            continue;
        }
        remove_session_files(&r)?;
        println!("{id}");
        removed += 1;
    }
    if !dry_run {
        eprintln!("removed {removed} session(s) older than {older_than}");
    }
    Ok(ExitCode::SUCCESS)
}

fn fsck(arg: &str, repair: bool) -> Result<ExitCode> {
    let r = SessionRef::parse(arg)?;
    r.require_exists()?;
    let mut store = match agentfs::store::Store::open(&r.path, OpenMode::Existing) {
        Ok(s) => s,
        Err(
            agentfs::store::StoreError::Corrupt(_) | agentfs::store::StoreError::CorruptData(_),
        ) => return fsck_damaged(&r),
        Err(e) => return Err(e.into()),
    };
    let mut out = io::stdout().lock();
    let problems = if repair {
        let report = agentfs::fsck::repair(&mut store.conn)?;
        for done in &report.repaired {
            writeln!(out, "repaired: {done}")?;
        }
        report.problems
    } else {
        agentfs::fsck::check(&store.conn)?
    };
    for p in &problems {
        writeln!(out, "{p}")?;
    }
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

/// A file SQLite itself finds damaged: report what integrity_check says and how to recover.
fn fsck_damaged(r: &SessionRef) -> Result<ExitCode> {
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
    for line in lines {
        writeln!(out, "Integrity: {line} (not repairable)")?;
    }
    eprintln!(
        "session {}: the SQLite file is damaged; restore it from a copy, or save what SQLite \
         can still read with `sqlite3 {} .recover | sqlite3 recovered.db`",
        r.id,
        r.path.display()
    );
    Ok(ExitCode::FAILURE)
}

/// Fails if the session overlays a host directory that is gone.
fn check_base(vfs: &Vfs, r: &SessionRef) -> Result<()> {
    if let Some(base) = vfs.store()?.base_path()?
        && !base.is_dir()
    {
        bail!(
            "the base directory {} of session {} no longer exists; restore it (or mount it \
             back) and try again",
            base.display(),
            r.id
        );
    }
    Ok(())
}

fn rm(arg: &str) -> Result<ExitCode> {
    let r = SessionRef::parse(arg)?;
    r.require_exists()?;
    if let Some(point) = agentfs::mount::mounts_of(&r.path).first() {
        bail!(
            "session {} is mounted at {}; unmount it first with `agentfs umount {}`",
            r.id,
            point.display(),
            point.display()
        );
    }
    // Refuse to delete something that is not a session.
    let vfs = Vfs::open_session(&r.path, OpenMode::Existing)
        .with_context(|| format!("refusing to remove {}", r.path.display()))?;
    let live = agentfs::runners::live(&vfs.store()?.conn)?;
    if let Some(runner) = live.first() {
        bail!(
            "session {} has {} live runner(s) (pid {}: {}); let them finish first (see `agentfs ps`)",
            r.id,
            live.len(),
            runner.pid,
            runner.command_line()
        );
    }
    drop(vfs);
    remove_session_files(&r)?;
    eprintln!("removed session {}", r.id);
    Ok(ExitCode::SUCCESS)
}

/// Deletes a session: its run directory (private /tmp, mount point), database and WAL files.
fn remove_session_files(r: &SessionRef) -> Result<()> {
    let run_dir = session::run_dir(&r.path);
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("cannot remove {}", run_dir.display()))?;
    }
    for f in r.files() {
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow!(e).context(format!("cannot remove {}", f.display()))),
        }
    }
    Ok(())
}

// ----- fs ---------------------------------------------------------------------------------

/// Splits a path into its parent directory path and last name.
fn split_parent(path: &[u8]) -> Result<(&[u8], &[u8])> {
    let trimmed = trim_trailing_slashes(path);
    let cut = trimmed.iter().rposition(|&b| b == b'/');
    let (parent, name) = match cut {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    if name.is_empty() || name == b"." || name == b".." {
        bail!(
            "{:?} does not name an entry; give a path like /dir/name",
            show(path)
        );
    }
    Ok((parent, name))
}

fn trim_trailing_slashes(path: &[u8]) -> &[u8] {
    let mut end = path.len();
    while end > 1 && path[end - 1] == b'/' {
        end -= 1;
    }
    &path[..end]
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Adds the path to a filesystem error: `/a/b: no such file or directory`.
fn at(path: &[u8]) -> impl FnOnce(VfsError) -> anyhow::Error + '_ {
    move |e| anyhow!("{}: {e}", show(path))
}

fn current_creds() -> Creds {
    // SAFETY: getuid/getgid cannot fail.
    unsafe {
        Creds {
            uid: libc::getuid(),
            gid: libc::getgid(),
        }
    }
}

fn umask_perm(perm: u32) -> u32 {
    // SAFETY: umask only swaps the process mask; we restore it at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    perm & !(mask as u32)
}

fn fs(arg: &str, op: FsOp) -> Result<ExitCode> {
    let (_r, vfs) = open_existing(arg)?;
    let mut out = io::stdout().lock();
    match op {
        FsOp::Ls { path } => {
            let p = path.as_bytes();
            let ino = vfs.resolve(p, true).map_err(at(p))?;
            let attr = vfs.getattr(ino).map_err(at(p))?;
            if attr.kind != FileKind::Dir {
                out.write_all(p)?;
                out.write_all(b"\n")?;
                return Ok(ExitCode::SUCCESS);
            }
            for e in list_all(&vfs, ino).map_err(at(p))? {
                out.write_all(&e.name)?;
                out.write_all(kind_suffix(e.kind).as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        FsOp::Cat { path } => {
            let p = path.as_bytes();
            let ino = vfs.resolve(p, true).map_err(at(p))?;
            let attr = vfs.getattr(ino).map_err(at(p))?;
            if attr.kind != FileKind::File {
                bail!("{}: {}", show(p), VfsError::IsDir);
            }
            let mut offset = 0u64;
            while offset < attr.size {
                let part = vfs.read_ino(ino, offset, 1 << 20).map_err(at(p))?;
                if part.is_empty() {
                    break;
                }
                out.write_all(&part)?;
                offset += part.len() as u64;
            }
        }
        FsOp::Write { path, data } => {
            let p = path.as_bytes();
            let contents = match data {
                Some(d) => d.into_vec(),
                None => {
                    let mut buf = Vec::new();
                    io::stdin()
                        .read_to_end(&mut buf)
                        .context("cannot read stdin")?;
                    buf
                }
            };
            let (parent, name) = split_parent(p)?;
            let dir = vfs.resolve(parent, true).map_err(at(parent))?;
            let ino = match vfs.lookup(dir, name) {
                Ok(a) if a.kind == FileKind::File => a.ino,
                Ok(a) if a.kind == FileKind::Symlink => vfs.resolve(p, true).map_err(at(p))?,
                Ok(_) => bail!("{}: {}", show(p), VfsError::IsDir),
                Err(VfsError::NotFound) => {
                    let (attr, fh) = vfs
                        .create(dir, name, umask_perm(0o666), current_creds())
                        .map_err(at(p))?;
                    vfs.release(fh).map_err(at(p))?;
                    attr.ino
                }
                Err(e) => return Err(at(p)(e)),
            };
            vfs.write_all_ino(ino, &contents).map_err(at(p))?;
        }
        FsOp::Rm { path, recursive } => {
            let p = path.as_bytes();
            let (parent, name) = split_parent(p)?;
            let dir = vfs.resolve(parent, true).map_err(at(parent))?;
            let attr = vfs.lookup(dir, name).map_err(at(p))?;
            if attr.kind == FileKind::Dir {
                if recursive {
                    remove_tree(&vfs, attr.ino).map_err(at(p))?;
                } else if !list_all(&vfs, attr.ino).map_err(at(p))?.is_empty() {
                    bail!(
                        "{}: directory not empty; pass -r to remove it with its contents",
                        show(p)
                    );
                }
                vfs.rmdir(dir, name).map_err(at(p))?;
            } else {
                vfs.unlink(dir, name).map_err(at(p))?;
            }
            vfs.compact().map_err(at(p))?;
        }
        FsOp::Mkdir { path, parents } => {
            let p = path.as_bytes();
            if parents {
                let mut cur = Ino::ROOT;
                for part in p
                    .split(|&b| b == b'/')
                    .filter(|s| !s.is_empty() && *s != b".")
                {
                    cur = match vfs.lookup(cur, part) {
                        Ok(a) if a.kind == FileKind::Dir => a.ino,
                        Ok(_) => bail!(
                            "{}: {} is in the way and is not a directory",
                            show(p),
                            show(part)
                        ),
                        Err(VfsError::NotFound) => {
                            vfs.mkdir(cur, part, umask_perm(0o777), current_creds())
                                .map_err(at(p))?
                                .ino
                        }
                        Err(e) => return Err(at(p)(e)),
                    };
                }
            } else {
                let (parent, name) = split_parent(p)?;
                let dir = vfs.resolve(parent, true).map_err(at(parent))?;
                vfs.mkdir(dir, name, umask_perm(0o777), current_creds())
                    .map_err(at(p))?;
            }
        }
        FsOp::Stat { path } => {
            let p = path.as_bytes();
            let ino = vfs.resolve(p, false).map_err(at(p))?;
            let a = vfs.getattr(ino).map_err(at(p))?;
            write_stat(&mut out, &vfs, p, &a)?;
        }
        FsOp::Tree { path } => {
            let p = path.as_bytes();
            let ino = vfs.resolve(p, true).map_err(at(p))?;
            out.write_all(p)?;
            out.write_all(b"\n")?;
            print_tree(&mut out, &vfs, ino, &mut Vec::new())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn kind_suffix(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Dir => "/",
        FileKind::Symlink => "@",
        FileKind::Fifo => "|",
        FileKind::Socket => "=",
        _ => "",
    }
}

fn list_all(vfs: &Vfs, dir: Ino) -> Result<Vec<agentfs::vfs::DirEntry>, VfsError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let batch = vfs.readdir(dir, after, 1024)?;
        let Some(last) = batch.last() else { break };
        after = last.offset;
        all.extend(batch);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

fn remove_tree(vfs: &Vfs, dir: Ino) -> Result<(), VfsError> {
    for e in list_all(vfs, dir)? {
        if e.kind == FileKind::Dir {
            remove_tree(vfs, e.ino)?;
            vfs.rmdir(dir, &e.name)?;
        } else {
            vfs.unlink(dir, &e.name)?;
        }
    }
    Ok(())
}

fn write_stat(out: &mut impl Write, vfs: &Vfs, path: &[u8], a: &Attr) -> Result<()> {
    let kind = match a.kind {
        FileKind::File => "regular file",
        FileKind::Dir => "directory",
        FileKind::Symlink => "symbolic link",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
        FileKind::CharDevice => "character device",
        FileKind::BlockDevice => "block device",
    };
    out.write_all(b"  path: ")?;
    out.write_all(path)?;
    out.write_all(b"\n")?;
    if a.kind == FileKind::Symlink {
        let target = vfs.readlink(a.ino).map_err(at(path))?;
        out.write_all(b"target: ")?;
        out.write_all(&target)?;
        out.write_all(b"\n")?;
    }
    writeln!(out, "  type: {kind}")?;
    writeln!(out, " inode: {}", a.ino.0)?;
    writeln!(out, "  size: {}", a.size)?;
    writeln!(out, "  mode: {:04o}", a.perm)?;
    writeln!(out, " links: {}", a.nlink)?;
    writeln!(out, "   uid: {}  gid: {}", a.uid, a.gid)?;
    let t = |t: agentfs::vfs::Timestamp| format!("{}.{:09}", t.sec, t.nsec);
    writeln!(out, " atime: {}", t(a.atime))?;
    writeln!(out, " mtime: {}", t(a.mtime))?;
    writeln!(out, " ctime: {}", t(a.ctime))?;
    Ok(())
}

fn print_tree(out: &mut impl Write, vfs: &Vfs, dir: Ino, prefix: &mut Vec<u8>) -> Result<()> {
    let entries = list_all(vfs, dir).map_err(|e| anyhow!("{e}"))?;
    let n = entries.len();
    for (i, e) in entries.into_iter().enumerate() {
        let last = i + 1 == n;
        out.write_all(prefix)?;
        out.write_all(if last {
            "└── ".as_bytes()
        } else {
            "├── ".as_bytes()
        })?;
        out.write_all(&e.name)?;
        out.write_all(kind_suffix(e.kind).as_bytes())?;
        if e.kind == FileKind::Symlink {
            let target = vfs.readlink(e.ino).map_err(|e| anyhow!("{e}"))?;
            out.write_all(b" -> ")?;
            out.write_all(&target)?;
        }
        out.write_all(b"\n")?;
        if e.kind == FileKind::Dir {
            let len = prefix.len();
            prefix.extend_from_slice(if last {
                "    ".as_bytes()
            } else {
                "│   ".as_bytes()
            });
            print_tree(out, vfs, e.ino, prefix)?;
            prefix.truncate(len);
        }
    }
    Ok(())
}

// ----- kv ---------------------------------------------------------------------------------

fn kv(arg: &str, op: KvOp) -> Result<ExitCode> {
    let (_r, vfs) = open_existing(arg)?;
    let store = vfs.store()?;
    let conn = &store.conn;
    let mut out = io::stdout().lock();
    match op {
        KvOp::Get { key } => match agentfs::kv::get(conn, &key)? {
            Some(v) => writeln!(out, "{v}")?,
            None => bail!("no key {key:?} in this session; list keys with `agentfs kv {arg} list`"),
        },
        KvOp::Set { key, .. } if key.is_empty() => bail!("the key must not be empty"),
        KvOp::Set { key, value } => {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&value) {
                bail!(
                    "value for {key:?} is not JSON ({e}); quote text as a JSON string, e.g. '\"{}\"'",
                    value.replace('\'', "")
                );
            }
            agentfs::kv::set(conn, &key, &value)?;
        }
        KvOp::List => {
            for e in agentfs::kv::list(conn)? {
                writeln!(out, "{}\t{}", e.key, e.value)?;
            }
        }
        KvOp::Delete { key } => {
            if !agentfs::kv::delete(conn, &key)? {
                bail!("no key {key:?} in this session; nothing deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_time_gives_utc_dates() {
        assert_eq!(format_time(Some(0)), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(Some(1_764_000_000)), "2025-11-24 16:00 UTC");
        assert_eq!(format_time(None), "-");
    }

    #[test]
    fn split_parent_rejects_root_and_dots() {
        assert!(split_parent(b"/").is_err());
        assert!(split_parent(b"/a/..").is_err());
        assert_eq!(split_parent(b"/a/b/").unwrap(), (&b"/a"[..], &b"b"[..]));
        assert_eq!(split_parent(b"x").unwrap(), (&b""[..], &b"x"[..]));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
