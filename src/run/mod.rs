//! `agentfs run` and `agentfs exec`: run a command in a session, on the session's one shared
//! overlay mount, inside a sandbox (see [`sandbox`]), recorded as a runner of the session.

pub mod network;
pub mod policy;
pub mod proxy;
pub mod sandbox;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use crate::mount::MountError;
use crate::session::{self, SessionError, SessionRef};
use crate::store::{OpenMode, Store, StoreError};
use crate::{mount, runners};

/// Why a command could not be run in its session (the binary exits with 1 for these; the
/// command's own failures are its exit status).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The session named is invalid or missing, or cannot be created.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The session database does not open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the session's settings or runners failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// A base directory or a path given is refused by the sandbox's rules.
    #[error(transparent)]
    Refused(#[from] policy::Refused),
    /// An `--allow-domain` entry is malformed.
    #[error("{0}")]
    Domain(String),
    #[error("--allow-domain needs --network=allow (it names what the proxy lets through)")]
    DomainWithoutAllow,
    #[error("--hide-home needs $HOME to name the home directory")]
    HideHomeWithoutHome,
    /// A path given with `flag` (`--allow`, `--deny`, `--read`) does not exist.
    #[error("{flag} {}: {error}; give a file or directory that exists", path.display())]
    MissingPath {
        flag: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot read the current directory")]
    CurrentDir(#[source] std::io::Error),
    /// The session database cannot be made absolute.
    #[error(transparent)]
    DatabasePath(std::io::Error),
    #[error("cannot find the session database {}", path.display())]
    FindDatabase {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "session {id} has no base directory; `agentfs run` makes sessions over the current \
         directory (or create one with `agentfs init ID --base DIR`)"
    )]
    NoBase { id: String },
    #[error(
        "the base directory of session {id}, {}, is missing; restore it or start a new session",
        base.display()
    )]
    BaseMissing { id: String, base: PathBuf },
    /// The run directory (mount point, lock, private /tmp) cannot be made.
    #[error("cannot create {}", path.display())]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set the mode of {}", path.display())]
    RunDirMode {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot take the run lock {}", path.display())]
    RunLock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A dead mount of the session (its daemon killed) cannot be taken away.
    #[error("cannot remove the dead mount at {}", point.display())]
    RemoveDeadMount { point: PathBuf, source: MountError },
    #[error("cannot mount the session")]
    Mount(#[source] MountError),
    #[error("cannot make a channel for the network proxy")]
    ProxyChannel(#[source] std::io::Error),
    /// The network proxy cannot start.
    #[error(transparent)]
    Proxy(#[from] proxy::ProxyError),
    #[error("cannot find the agentfs executable")]
    NoExecutable(#[source] std::io::Error),
    /// The sandbox's plan cannot be written for the helper.
    #[error(transparent)]
    Plan(#[from] serde_json::Error),
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot pass the proxy's channel to the sandbox")]
    PassChannel(#[source] nix::errno::Errno),
    #[error("cannot start the sandbox")]
    StartSandbox(#[source] std::io::Error),
    #[error("cannot wait for the command")]
    Wait(#[source] std::io::Error),
}

type Result<T, E = RunError> = std::result::Result<T, E>;

/// Agent and tool directories under $HOME that stay writable by default, when they exist.
pub const DEFAULT_ALLOWS: &[&str] = &[
    ".claude",
    ".claude.json",
    ".codex",
    ".gemini",
    ".amp",
    ".local",
    ".npm",
    ".cache",
];

/// Secrets under $HOME hidden by default, when they exist: keys, cloud and registry
/// credentials, tokens. Absent inside (an empty directory, a file that reads as empty).
pub const DEFAULT_DENIES: &[&str] = &[
    ".ssh",
    ".aws",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".config/gh",
    ".docker/config.json",
    ".kube",
];

/// What to run, and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The session to join or create; a new one with a random id if None.
    pub session: Option<String>,
    /// Extra paths that stay writable (directly, not copy-on-write).
    pub allow: Vec<PathBuf>,
    /// Whether the [`DEFAULT_ALLOWS`] that exist are writable too.
    pub default_allows: bool,
    /// Extra paths to hide (they win over `allow` and `read`).
    pub deny: Vec<PathBuf>,
    /// Paths shown read-only where they would be hidden (with `hide_home`).
    pub read: Vec<PathBuf>,
    /// Show nothing under $HOME but the base directory, the allowed and the `read` paths.
    pub hide_home: bool,
    /// How the command reaches the network (the session's default if None).
    pub network: Option<network::Network>,
    /// With network=allow: the names the proxy passes.
    pub allow_domains: Vec<String>,
    /// No banner.
    pub quiet: bool,
    /// Serve extended attributes on the shared mount, if this runner starts it.
    pub xattrs: bool,
    /// The command; the user's shell if empty.
    pub command: Vec<OsString>,
    /// `agentfs exec`: the session must exist, and nothing is made read-only.
    pub exec: bool,
}

/// The default allows that exist under `home`.
pub fn default_allows(home: &Path) -> Vec<PathBuf> {
    DEFAULT_ALLOWS
        .iter()
        .map(|name| home.join(name))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect()
}

/// The default denies that exist under `home`, as the paths they resolve to.
pub fn default_denies(home: &Path) -> Vec<PathBuf> {
    DEFAULT_DENIES
        .iter()
        .filter_map(|name| std::fs::canonicalize(home.join(name)).ok())
        .collect()
}

/// What a sandbox shows of the host besides the base directory and /tmp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Writable directly.
    pub allow: Vec<PathBuf>,
    /// Read-only where they would be hidden.
    pub read: Vec<PathBuf>,
    /// Hidden.
    pub deny: Vec<PathBuf>,
    /// $HOME, if nothing under it is shown but the above and the base directory.
    pub hidden_home: Option<PathBuf>,
}

/// What the runner tells the user on start (on stderr, so the command's stdout stays clean).
pub fn banner(
    id: &str,
    joining: bool,
    base: &Path,
    layout: &Layout,
    net: &(network::Network, Vec<String>),
) -> String {
    let mut s = String::new();
    if joining {
        s.push_str(&format!("Joining existing session: {id}\n"));
    } else {
        s.push_str("Welcome to AgentFS!\n");
    }
    s.push_str("\nThe following directories are writable:\n\n");
    s.push_str(&format!("  - {} (copy-on-write)\n", base.display()));
    for a in &layout.allow {
        s.push_str(&format!("  - {}\n", a.display()));
    }
    s.push_str("  - /tmp (private to this session)\n");
    if !layout.deny.is_empty() || layout.hidden_home.is_some() {
        s.push_str("\nThe following are hidden:\n\n");
        for d in &layout.deny {
            s.push_str(&format!("  - {}\n", d.display()));
        }
        if let Some(home) = &layout.hidden_home {
            s.push_str(&format!(
                "  - everything else under {} (--hide-home)\n",
                home.display()
            ));
        }
    }
    if layout.hidden_home.is_some() && !layout.read.is_empty() {
        s.push_str("\nThe following are visible, read-only:\n\n");
        for r in &layout.read {
            s.push_str(&format!("  - {}\n", r.display()));
        }
    }
    s.push_str("\nEverything else is read-only.\n");
    match net {
        (network::Network::Host, _) => {}
        (network::Network::None, _) => s.push_str("\nNetwork: none (loopback only).\n"),
        (network::Network::Allow, domains) => s.push_str(&format!(
            "\nNetwork: only {} (through the session's proxy; every request is recorded in \
             fs_net_request).\n",
            if domains.is_empty() {
                "loopback".to_string()
            } else {
                domains.join(", ")
            }
        )),
    }
    s.push_str("\nTo join this session from another terminal:\n\n");
    s.push_str(&format!("  agentfs run --session {id} <command>\n"));
    s
}

/// The session `opts` names, or a new random id.
fn session_ref(opts: &RunOptions) -> Result<SessionRef> {
    Ok(match &opts.session {
        Some(arg) => SessionRef::parse(arg)?,
        None => SessionRef::parse(&uuid::Uuid::new_v4().to_string())?,
    })
}

/// Makes sure the session to run in exists, creating it over `cwd` if it does not (unless
/// `exec`, or it is given by path). Returns whether it existed.
fn open_or_create(r: &SessionRef, opts: &RunOptions, cwd: &Path) -> Result<bool> {
    if r.path.exists() {
        return Ok(true);
    }
    if opts.exec || r.by_path {
        r.require_exists()?;
    }
    match session::create(r, Some(cwd)) {
        Ok(()) => Ok(false),
        // Another runner created it at the same moment: join it.
        Err(SessionError::Exists { .. }) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure the session's shared mount is up (starting its daemon, or replacing a dead
/// one). Call it holding the run lock.
fn ensure_mount(db: &Path, run_dir: &Path, xattrs: bool) -> Result<PathBuf> {
    let point = run_dir.join("mnt");
    if let Some(m) = mount::fuse_mount_at(&point) {
        let alive = m.agentfs_pid().is_some_and(mount::process_running);
        if alive && std::fs::metadata(&point).is_ok() {
            return Ok(point);
        }
        // Its daemon was killed: take the dead mount away and start afresh.
        mount::unmount(&point, true).map_err(|source| RunError::RemoveDeadMount {
            point: point.clone(),
            source,
        })?;
    }
    let mut log = db.as_os_str().to_owned();
    log.push(".mount.log");
    let args = mount::DaemonArgs {
        runners_lock: Some(run_dir.join("lock")),
        xattrs,
        ..mount::DaemonArgs::default()
    };
    let session_arg = db.to_string_lossy();
    mount::spawn_daemon(&session_arg, &point, &args, Path::new(&log)).map_err(RunError::Mount)?;
    Ok(point)
}

/// Creates the run directory: mount point, lock and private /tmp (writable by all, like /tmp).
/// The run directory itself is the owner's alone (0700): the shared mount in it shows what
/// sandboxed commands made, which no other host user may reach.
fn prepare_run_dir(run_dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(run_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(RunError::RunDir {
                path: run_dir.to_path_buf(),
                source: e,
            });
        }
        _ => {}
    }
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o700)).map_err(
        |source| RunError::RunDirMode {
            path: run_dir.to_path_buf(),
            source,
        },
    )?;
    let tmp = run_dir.join("tmp");
    for d in [run_dir.join("mnt"), tmp.clone()] {
        // A dead mount on `mnt` (its daemon killed) cannot be looked into, only replaced.
        match std::fs::create_dir(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(RunError::RunDir { path: d, source: e });
            }
            _ => {}
        }
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
        .map_err(|source| RunError::RunDirMode { path: tmp, source })?;
    Ok(())
}

/// `$AGENTFS_HOME`, absolute: the store of session databases, which the sandbox hides.
fn home_store() -> Option<PathBuf> {
    let home = std::path::absolute(session::home().ok()?).ok()?;
    Some(std::fs::canonicalize(&home).unwrap_or(home))
}

/// The directories no allowed path may reach: `$AGENTFS_HOME` and the directory of the
/// session's own database (a session given by path may live elsewhere).
fn stores(db: &Path) -> Vec<PathBuf> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out: Vec<PathBuf> = home_store().into_iter().collect();
    if let Some(dir) = std::path::absolute(db)
        .ok()
        .and_then(|p| p.parent().map(canonical))
        && !out.iter().any(|s| dir.starts_with(s))
    {
        out.push(dir);
    }
    out
}

/// Paths given on the command line (`--allow`, `--deny`, `--read`), made absolute; each
/// must exist.
fn existing_paths(flag: &str, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| {
            std::fs::canonicalize(p).map_err(|error| RunError::MissingPath {
                flag: flag.to_string(),
                path: p.clone(),
                error,
            })
        })
        .collect()
}

/// What a sandbox over `base` shows: the default allows and denies that pass the rules, then
/// the paths given, each of which must; a denied path wins over an allowed or readable one.
fn layout(opts: &RunOptions, base: &Path, stores: &[PathBuf]) -> Result<Layout> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .and_then(|h| std::fs::canonicalize(h).ok());
    let mut deny: Vec<PathBuf> = Vec::new();
    if !opts.exec {
        if let Some(home) = &home {
            deny = default_denies(home)
                .into_iter()
                .filter(|d| policy::check_deny(d, base).is_ok())
                .collect();
        }
        for d in existing_paths("--deny", &opts.deny)? {
            policy::check_deny(&d, base)?;
            if !deny.contains(&d) {
                deny.push(d);
            }
        }
    }
    let mut allow = if opts.default_allows && !opts.exec {
        let defaults = home
            .as_deref()
            .map(default_allows)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        stores.iter().fold(defaults, |kept, store| {
            policy::usable_defaults(kept, base, store)
        })
    } else {
        Vec::new()
    };
    for a in existing_paths("--allow", &opts.allow)? {
        if !opts.exec {
            for store in stores {
                policy::check_allow(&a, base, store)?;
            }
        }
        if !allow.contains(&a) {
            allow.push(a);
        }
    }
    allow.retain(|a| !policy::is_denied(a, &deny));
    let mut read = Vec::new();
    for r in existing_paths("--read", &opts.read)? {
        for store in stores {
            if r.starts_with(store) || store.starts_with(&r) {
                return Err(policy::Refused::ReadsStore {
                    read: r,
                    home: store.clone(),
                }
                .into());
            }
        }
        if !policy::is_denied(&r, &deny) && !read.contains(&r) && !allow.contains(&r) {
            read.push(r);
        }
    }
    let hidden_home = match (opts.hide_home && !opts.exec, home) {
        (true, Some(home)) if home != base => Some(home),
        (true, None) => return Err(RunError::HideHomeWithoutHome),
        _ => None,
    };
    Ok(Layout {
        allow,
        read,
        deny,
        hidden_home,
    })
}

/// The network policy of this run: the one given (kept as the session's default), else the
/// session's default, else the host's network.
fn network_policy(
    opts: &RunOptions,
    conn: &rusqlite::Connection,
) -> Result<(network::Network, Vec<String>)> {
    if opts.exec {
        return Ok((network::Network::Host, Vec::new()));
    }
    let Some(chosen) = chosen_network(opts)? else {
        return Ok(network::session_default(conn)?.unwrap_or_default());
    };
    network::set_session_default(conn, chosen, &opts.allow_domains)?;
    Ok((chosen, opts.allow_domains.clone()))
}

/// The network policy the flags give, if they give one (`--allow-domain` implies allow);
/// checked before anything is made for the run.
fn chosen_network(opts: &RunOptions) -> Result<Option<network::Network>> {
    for d in &opts.allow_domains {
        network::check_domain(d).map_err(RunError::Domain)?;
    }
    if opts.network.is_none() && opts.allow_domains.is_empty() {
        return Ok(None);
    }
    let chosen = opts.network.unwrap_or(network::Network::Allow);
    if chosen != network::Network::Allow && !opts.allow_domains.is_empty() {
        return Err(RunError::DomainWithoutAllow);
    }
    Ok(Some(chosen))
}

/// Refuses a base directory no sandbox can be made over (`/`, a system tree, inside the
/// store), or one that holds the session's database outside the store.
fn check_sandbox_base(opts: &RunOptions, base: &Path, db: &Path) -> Result<()> {
    if opts.exec {
        return Ok(());
    }
    let Some(home) = home_store() else {
        return Ok(());
    };
    policy::check_base(base, &home)?;
    let db = std::path::absolute(db).map_err(RunError::DatabasePath)?;
    let db = db
        .parent()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .map_or(db.clone(), |d| d.join(db.file_name().unwrap_or_default()));
    policy::check_database(&db, base, &home)?;
    Ok(())
}

/// Runs the command of `opts` in its session; returns the exit status to leave with (the
/// command's, or 128 + the signal that killed it).
pub fn run(opts: &RunOptions) -> Result<u8> {
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .map_err(RunError::CurrentDir)?;
    // Bad arguments are found before a session is made for them (against the base the
    // session will have: the current directory for a new one).
    let r = session_ref(opts)?;
    let stores = stores(&r.path);
    let known_base = match r.path.exists() {
        true => Store::open(&r.path, OpenMode::Existing)?.base_path()?,
        false => Some(cwd.clone()),
    };
    if let Some(base) = &known_base {
        check_sandbox_base(opts, base, &r.path)?;
        layout(opts, base, &stores)?;
    }
    chosen_network(opts)?;
    let command = if opts.command.is_empty() {
        vec![std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into())]
    } else {
        opts.command.clone()
    };

    let existed = open_or_create(&r, opts, &cwd)?;
    let db = std::fs::canonicalize(&r.path).map_err(|source| RunError::FindDatabase {
        path: r.path.clone(),
        source,
    })?;
    let store = Store::open(&db, OpenMode::Existing)?;
    let base = store
        .base_path()?
        .ok_or_else(|| RunError::NoBase { id: r.id.clone() })?;
    if !base.is_dir() {
        return Err(RunError::BaseMissing {
            id: r.id.clone(),
            base,
        });
    }
    check_sandbox_base(opts, &base, &db)?;
    let layout = layout(opts, &base, &stores)?;
    let run_dir = session::run_dir(&db);
    prepare_run_dir(&run_dir)?;
    let lock_path = run_dir.join("lock");
    let lock = std::fs::File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|source| RunError::RunLock {
            path: lock_path.clone(),
            source,
        })?;
    let overlay = ensure_mount(&db, &run_dir, opts.xattrs)?;
    let argv: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let net = network_policy(opts, &store.conn)?;
    let runner = runners::register(&store.conn, &argv, &cwd, std::process::id())?;
    drop(lock);

    if !opts.quiet && !opts.exec {
        let text = banner(&r.id, existed, &base, &layout, &net);
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
    // The proxy is served from here; the helper hands over its socket through `theirs`.
    let channel = match net.0 {
        network::Network::Allow => {
            let (ours, theirs) =
                std::os::unix::net::UnixStream::pair().map_err(RunError::ProxyChannel)?;
            proxy::start(ours, db.clone(), runner, net.1.clone())?;
            Some(theirs)
        }
        _ => None,
    };
    let plan = sandbox::Plan {
        session_db: db.clone(),
        runner,
        parent: std::process::id(),
        overlay,
        base,
        private_tmp: (!opts.exec).then(|| run_dir.join("tmp")),
        allow: layout.allow,
        read: layout.read,
        deny: layout.deny,
        hidden_home: layout.hidden_home,
        hide: home_store().into_iter().collect(),
        network: net.0,
        proxy_channel: channel.as_ref().map(|c| {
            use std::os::fd::AsRawFd;
            c.as_raw_fd()
        }),
        read_only: !opts.exec,
        cwd,
    };
    let status = spawn_and_wait(&r.id, &plan, &command, channel);
    let code = match &status {
        Ok(s) => s
            .code()
            .map(|c| c as u8)
            .unwrap_or_else(|| 128u8.wrapping_add(s.signal().unwrap_or(0) as u8)),
        Err(_) => sandbox::SETUP_FAILED,
    };
    if let Err(e) = runners::finish(&store.conn, runner, Some(i32::from(code))) {
        eprintln!("agentfs: cannot record the end of runner {runner}: {e}");
    }
    wait_for_shared_mount(&store.conn, &run_dir);
    status?;
    Ok(code)
}

/// How long the last runner waits for the shared mount to end.
const SHARED_MOUNT_END_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The last runner to leave waits until the shared mount has ended (its daemon has written
/// all of the session), so a command that follows, such as `agentfs apply`, finds the
/// session free instead of "in use". Returns at once when another runner is still there.
fn wait_for_shared_mount(conn: &rusqlite::Connection, run_dir: &Path) {
    let Some(pid) = mount::fuse_mount_at(&run_dir.join("mnt")).and_then(|m| m.agentfs_pid()) else {
        return;
    };
    let deadline = std::time::Instant::now() + SHARED_MOUNT_END_WAIT;
    while mount::process_running(pid) && std::time::Instant::now() < deadline {
        if runners::live(conn).map_or(true, |l| !l.is_empty()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Starts the sandbox helper (which starts the sandbox's init, which starts the command) and
/// waits for it. Signals sent to the runner by other processes are passed on down the chain
/// to the command; those from the terminal (Ctrl-C) already reach it directly, being in the
/// same process group.
fn spawn_and_wait(
    id: &str,
    plan: &sandbox::Plan,
    command: &[OsString],
    channel: Option<std::os::unix::net::UnixStream>,
) -> Result<std::process::ExitStatus> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::low_level::siginfo::Cause;

    let exe = std::env::current_exe().map_err(RunError::NoExecutable)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("sandbox-exec")
        .arg("--")
        .args(command)
        .env(sandbox::PLAN_ENV, serde_json::to_string(plan)?)
        .env("AGENTFS_SESSION", id);
    let program = Path::new(&command[0]);
    if program.file_name().is_some_and(|n| n == "bash") {
        // bash sets its prompt in its rc files; prefix it before each prompt instead.
        let mut pc = OsString::from(r#"PS1="🤖 ${PS1#🤖 }""#);
        if let Some(old) = std::env::var_os("PROMPT_COMMAND").filter(|o| !o.is_empty()) {
            pc.push("; ");
            pc.push(old);
        }
        cmd.env("PROMPT_COMMAND", pc);
    }
    // Installed before the command starts, so no signal sent in between is lost.
    let mut signals =
        SignalsInfo::<WithOrigin>::new([SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2])
            .map_err(RunError::Signals)?;
    let handle = signals.handle();
    if let Some(c) = &channel {
        // The helper inherits the proxy's channel (every other descriptor closes on exec).
        nix::fcntl::fcntl(
            c,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(RunError::PassChannel)?;
    }
    let mut child = cmd.spawn().map_err(RunError::StartSandbox)?;
    drop(channel);
    let pid = child.id() as libc::pid_t;
    let forwarder = std::thread::spawn(move || {
        for origin in signals.forever() {
            if matches!(origin.cause, Cause::Sent(_)) {
                // SAFETY: plain kill(2) to our own child.
                unsafe { libc::kill(pid, origin.signal) };
            }
        }
    });
    let status = child.wait().map_err(RunError::Wait);
    handle.close();
    let _ = forwarder.join();
    status
}
