//! Mounting a session: serving it with FUSE until unmounted or signalled, and unmounting.

use std::ffi::{CString, OsString};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::fuse::AgentFs;
use crate::overlay::Overlay;
use crate::runners;
use crate::session::SessionError;
use crate::vfs::{Vfs, VfsError};

/// Why mounting, serving or unmounting a session failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount point cannot be looked at (it is missing, most often).
    #[error(
        "mount point {} is not usable; create it with `mkdir -p {}`",
        dir.display(),
        dir.display()
    )]
    MountPointUnusable { dir: PathBuf, source: io::Error },
    #[error("mount point {} is not a directory", .0.display())]
    MountPointNotDir(PathBuf),
    /// Something is mounted there already.
    #[error(
        "{} is already a FUSE mount point; unmount it first with `agentfs umount {}`",
        .0.display(),
        .0.display()
    )]
    AlreadyMounted(PathBuf),
    /// The mount point cannot be made absolute.
    #[error(transparent)]
    MountPointPath(io::Error),
    #[error("cannot set up background maintenance")]
    Maintenance(#[source] VfsError),
    /// The session's base directory cannot be read from its database.
    #[error("cannot read the session's base directory: {0}")]
    ReadBase(VfsError),
    /// The kernel (or fusermount3) refused the mount; `hint` says what to check.
    #[error("cannot mount on {}: {error}; {hint}", dir.display())]
    Mount {
        dir: PathBuf,
        error: io::Error,
        hint: &'static str,
    },
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    /// The FUSE session ended with an error.
    #[error("serving {} failed", dir.display())]
    Serve { dir: PathBuf, source: io::Error },
    /// No connection to the session, to read its runners.
    #[error(transparent)]
    Session(#[from] VfsError),
    /// Reading the session's runners failed.
    #[error(transparent)]
    Runners(#[from] rusqlite::Error),
    #[error("cannot find the agentfs executable")]
    NoExecutable(#[source] io::Error),
    /// The session to mount is not a valid session name.
    #[error(transparent)]
    SessionRef(#[from] SessionError),
    #[error("cannot make {} absolute", path.display())]
    Absolute { path: PathBuf, source: io::Error },
    #[error("cannot open the mount log {}", path.display())]
    Log { path: PathBuf, source: io::Error },
    #[error("cannot start the mount daemon")]
    StartDaemon(#[source] io::Error),
    /// Reading the daemon's readiness report, or waiting for it, failed.
    #[error(transparent)]
    DaemonReport(io::Error),
    /// The daemon could not mount; its message.
    #[error("{0}")]
    DaemonFailed(String),
    #[error(
        "the mount daemon exited ({status}) before the mount was ready; see {}",
        log.display()
    )]
    DaemonExited {
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    /// The mount point's path holds a NUL byte.
    #[error(transparent)]
    BadPath(#[from] std::ffi::NulError),
    #[error(
        "{} is busy: a process has files or its working directory there; \
         close them, or pass --lazy to detach it now",
        .0.display()
    )]
    Busy(PathBuf),
    #[error("cannot unmount {}: {error}", dir.display())]
    Unmount { dir: PathBuf, error: io::Error },
    #[error("cannot run fusermount3 ({0}); install fuse3 or unmount as root")]
    NoFusermount(io::Error),
    #[error("fusermount3 could not unmount {}: {stderr}", dir.display())]
    Fusermount { dir: PathBuf, stderr: String },
    #[error("{} is not a FUSE mount point; nothing to unmount", .0.display())]
    NotMounted(PathBuf),
}

/// How the mount is served.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// FUSE worker threads, each with its own database connection.
    pub threads: usize,
    /// Let every user (not only the mounting one) use the mount.
    pub allow_other: bool,
    /// Name shown as the mount's source in /proc/mounts.
    pub fs_name: String,
    /// How long the kernel caches names and attributes.
    pub ttl: Duration,
    /// Serve only while the session has live runners (the shared mount of `agentfs run`);
    /// the file is the lock that runners hold while they join.
    pub runners_lock: Option<PathBuf>,
    /// Answer OPEN so that untouched base files are read with FUSE passthrough, instead of
    /// declining it (the default: fewer round trips per open, measured faster).
    pub passthrough: bool,
    /// Honour set-id bits and device files on the mount (as root). Off for the shared mount
    /// of `agentfs run`: what a sandboxed command makes there must not give powers to anyone
    /// who runs or opens it from the host.
    pub setid_and_devices: bool,
    /// Serve extended attributes (`--xattrs`); off, the kernel stops asking after one ENOSYS.
    pub xattrs: bool,
}

/// The worker threads a mount serves with unless told otherwise.
pub const DEFAULT_THREADS: u16 = 4;

/// The options of the mount daemon's command line (`agentfs mount --foreground …`), in one
/// place: `agentfs mount` parses them (this struct is flattened into its arguments) and
/// whoever starts a daemon writes them with [`DaemonArgs::to_args`], so the two cannot
/// drift apart.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct DaemonArgs {
    /// FUSE worker threads (each with its own database connection).
    #[arg(long, default_value_t = DEFAULT_THREADS, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Seconds the kernel may cache names and attributes (changes by other processes
    /// are pushed to it sooner through the change journal).
    #[arg(long, default_value_t = crate::fuse::DEFAULT_TTL_SECS, value_name = "SECS")]
    pub cache_ttl: f64,
    /// Answer the kernel's opens so that untouched base files are read with FUSE
    /// passthrough (kernel 6.9+). Off by default: declining opens saves two round trips
    /// per open and measured faster on source trees; passthrough avoids caching large
    /// base files twice.
    #[arg(long)]
    pub passthrough: bool,
    /// Serve extended attributes (user.*, security.*, ACLs). Off by default: `ls -l` asks
    /// for two attributes per entry and a write for one, each a round trip to the daemon
    /// the kernel never caches; off, the kernel is told once (ENOSYS) and answers
    /// "not supported" itself from then on.
    #[arg(long)]
    pub xattrs: bool,
    /// Internal: report readiness on stdout (used by the background daemon).
    #[arg(long, hide = true)]
    pub notify_ready: bool,
    /// Internal: serve only while the session has live runners (`agentfs run`).
    #[arg(long, hide = true, value_name = "LOCK")]
    pub runners_lock: Option<PathBuf>,
}

impl Default for DaemonArgs {
    /// What `agentfs mount` gets without options.
    fn default() -> Self {
        DaemonArgs {
            threads: DEFAULT_THREADS,
            cache_ttl: crate::fuse::DEFAULT_TTL_SECS,
            passthrough: false,
            xattrs: false,
            notify_ready: false,
            runners_lock: None,
        }
    }
}

impl DaemonArgs {
    /// These options as command-line arguments, which parse back to `self`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if self.notify_ready {
            args.push("--notify-ready".into());
        }
        args.push("--threads".into());
        args.push(self.threads.to_string().into());
        args.push("--cache-ttl".into());
        args.push(self.cache_ttl.to_string().into());
        if self.passthrough {
            args.push("--passthrough".into());
        }
        if self.xattrs {
            args.push("--xattrs".into());
        }
        if let Some(lock) = &self.runners_lock {
            args.push("--runners-lock".into());
            args.push(lock.clone().into_os_string());
        }
        args
    }

    /// How to serve a mount started with these options; `fs_name` is its source in the
    /// mount table.
    pub fn mount_config(&self, fs_name: String) -> MountConfig {
        MountConfig {
            threads: self.threads as usize,
            // SAFETY: geteuid cannot fail.
            allow_other: unsafe { libc::geteuid() } == 0,
            fs_name,
            ttl: Duration::from_secs_f64(self.cache_ttl),
            // The shared mount of `agentfs run` holds what sandboxed commands made.
            setid_and_devices: self.runners_lock.is_none(),
            runners_lock: self.runners_lock.clone(),
            passthrough: self.passthrough,
            xattrs: self.xattrs,
        }
    }
}

/// The filesystem type in the mount table (`fuse.agentfs`).
pub const SUBTYPE: &str = "agentfs";

/// A FUSE mount found in the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseMount {
    /// `fuse` or `fuse.<subtype>`.
    pub fstype: String,
    /// The mount's source: `agentfs:<session>:<daemon pid>` for ours.
    pub source: String,
}

impl FuseMount {
    /// The pid of the agentfs daemon serving this mount, if it is one of ours.
    pub fn agentfs_pid(&self) -> Option<u32> {
        let rest = self.source.strip_prefix("agentfs:")?;
        rest.rsplit(':').next()?.parse().ok()
    }
}

/// The FUSE filesystem mounted at `dir`, if any, from /proc/self/mountinfo.
pub fn fuse_mount_at(dir: &Path) -> Option<FuseMount> {
    // canonicalize fails on a dead FUSE mount (ENOTCONN); an absolute path still matches.
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    });
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // The last mount on a directory is the visible one.
    mountinfo(&info)
        .filter(|m| m.point == dir)
        .last()
        .map(|m| FuseMount {
            fstype: m.fstype,
            source: m.source,
        })
        .filter(|m| m.fstype == "fuse" || m.fstype.starts_with("fuse."))
}

/// One line of /proc/self/mountinfo.
pub(crate) struct MountInfoLine {
    pub point: PathBuf,
    /// The per-mount options (`rw,nosuid,relatime`): what a bind remount must keep.
    pub options: String,
    pub fstype: String,
    pub source: String,
}

/// The mounts listed in `info` (the text of /proc/self/mountinfo), in order.
pub(crate) fn mountinfo(info: &str) -> impl Iterator<Item = MountInfoLine> + '_ {
    info.lines().filter_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut left = left.split(' ').skip(4);
        let point = PathBuf::from(unescape(left.next()?));
        let options = left.next().unwrap_or_default().to_string();
        let mut fields = right.split(' ');
        let fstype = fields.next().unwrap_or_default().to_string();
        let source = fields.next().map(unescape).unwrap_or_default();
        Some(MountInfoLine {
            point,
            options,
            fstype,
            source,
        })
    })
}

/// Mount points served by an agentfs daemon that has the database `db` open.
pub fn mounts_of(db: &Path) -> Vec<PathBuf> {
    let Ok(db) = std::fs::canonicalize(db) else {
        return Vec::new();
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    mountinfo(&info)
        .filter(|m| {
            let mount = FuseMount {
                fstype: String::new(),
                source: m.source.clone(),
            };
            mount
                .agentfs_pid()
                .is_some_and(|pid| process_has_open(pid, &db))
        })
        .map(|m| m.point)
        .collect()
}

/// Whether process `pid` has `file` open (from /proc/PID/fd).
fn process_has_open(pid: u32, file: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| fd.ok())
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| target == file)
}

/// Undoes the octal escapes (`\040` for a space) of /proc/self/mountinfo.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_mount_point(dir: &Path) -> Result<PathBuf, MountError> {
    let meta = std::fs::metadata(dir).map_err(|source| MountError::MountPointUnusable {
        dir: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(MountError::MountPointNotDir(dir.to_path_buf()));
    }
    if fuse_mount_at(dir).is_some() {
        return Err(MountError::AlreadyMounted(dir.to_path_buf()));
    }
    std::fs::canonicalize(dir).map_err(MountError::MountPointPath)
}

/// Mounts `vfs` on `dir` and serves it in this process until it is unmounted or the process
/// gets SIGINT, SIGTERM or SIGHUP (which unmount it). `ready` is called once the mount is
/// in place (or with the error that prevented it).
pub fn serve(
    vfs: Vfs,
    dir: &Path,
    config: &MountConfig,
    ready: impl FnOnce(Result<(), String>),
) -> Result<(), MountError> {
    let dir = match check_mount_point(dir) {
        Ok(d) => d,
        Err(e) => {
            ready(Err(crate::report::chain(&e)));
            return Err(e);
        }
    };
    let mut options = vec![
        fuser::MountOption::FSName(config.fs_name.clone()),
        fuser::MountOption::Subtype(SUBTYPE.to_string()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoAtime,
        fuser::MountOption::Dev,
        fuser::MountOption::Suid,
    ];
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || !config.setid_and_devices {
        options.retain(|o| !matches!(o, fuser::MountOption::Dev | fuser::MountOption::Suid));
        options.extend([fuser::MountOption::NoDev, fuser::MountOption::NoSuid]);
    }
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = options;
    fuse_config.n_threads = Some(config.threads.max(1));
    fuse_config.clone_fd = true;
    fuse_config.acl = if config.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    let vfs = Arc::new(vfs);
    vfs.use_background_maintenance()
        .map_err(MountError::Maintenance)?;
    let start_seq = vfs.last_change_seq().unwrap_or(0);
    let base = match vfs.store().and_then(|s| Ok(s.base_path()?)) {
        Ok(b) => b,
        Err(e) => {
            let e = MountError::ReadBase(e);
            ready(Err(crate::report::chain(&e)));
            return Err(e);
        }
    };
    let overlay = Arc::new(Overlay::new(vfs.clone(), base));
    let agentfs =
        AgentFs::new(overlay.clone(), config.ttl, config.passthrough).with_xattrs(config.xattrs);
    let ending = agentfs.ending();
    let session = match fuser::Session::new(agentfs, &dir, &fuse_config) {
        Ok(s) => s,
        Err(e) => {
            let e = explain_mount_error(&dir, e);
            ready(Err(crate::report::chain(&e)));
            return Err(e);
        }
    };
    let mut session = session;
    let mut unmounter = session.unmount_callable();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(MountError::Signals)?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some()
            && let Err(e) = unmounter.unmount()
        {
            eprintln!("agentfs: unmount on signal failed: {e}");
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (overlay, notifier, stop) = (overlay.clone(), session.notifier(), stop.clone());
        std::thread::spawn(move || watch_foreign_changes(&overlay, &notifier, start_seq, &stop))
    };
    let maintainer = {
        let (vfs, stop) = (vfs.clone(), stop.clone());
        std::thread::spawn(move || maintain(&vfs, &stop))
    };
    let db_watch = {
        let db = vfs.store().ok().map(|s| s.path.clone());
        let (vfs, stop, dir) = (vfs.clone(), stop.clone(), dir.clone());
        let ending = ending.clone();
        db.and_then(|db| database_identity(&db).map(|id| (db, id)))
            .map(|(db, id)| {
                std::thread::spawn(move || {
                    if unmount_if_database_goes(&db, id, &dir, &stop) {
                        end_if_held_elsewhere(&vfs, &ending);
                    }
                })
            })
    };
    // The shared mount of `agentfs run` records the tool calls agents' hooks report from
    // inside the sandbox, where the database is read-only.
    if let Some(tmp) = config
        .runners_lock
        .as_ref()
        .and_then(|l| l.parent())
        .map(|d| d.join("tmp"))
        && let Err(e) = crate::hook_socket::serve(&tmp.join(crate::hooks::SOCKET_NAME), vfs.clone())
    {
        eprintln!(
            "agentfs: cannot listen for agents' hooks in {}: {e}",
            tmp.display()
        );
    }
    let runners_watch = config.runners_lock.clone().map(|lock| {
        let (vfs, stop, unmounter) = (vfs.clone(), stop.clone(), session.unmount_callable());
        std::thread::spawn(move || {
            if serve_while_runners(&vfs, &lock, unmounter, &stop) {
                end_if_held_elsewhere(&vfs, &ending);
            }
        })
    });
    ready(Ok(()));
    let result = session.run();
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let _ = maintainer.join();
    if let Some(w) = runners_watch {
        let _ = w.join();
    }
    if let Some(w) = db_watch {
        let _ = w.join();
    }
    result.map_err(|source| MountError::Serve { dir, source })
}

/// How often the maintenance thread checks the WAL size and the free pages.
const MAINTAIN_INTERVAL: Duration = Duration::from_millis(50);

/// Checkpoints and gives space back off the request path, while the mount is idle or busy.
fn maintain(vfs: &Vfs, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match vfs.maintain() {
            // More to do: go on at once.
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => eprintln!("agentfs: background maintenance failed: {e}"),
        }
        std::thread::sleep(MAINTAIN_INTERVAL);
    }
}

/// How often a mount checks that its session database is still where it was opened.
const DATABASE_WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The device and inode of a database file, which tell whether the path still names it.
fn database_identity(db: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(db).ok().map(|m| (m.dev(), m.ino()))
}

/// Unmounts when the session database is deleted or replaced under the mount: its changes
/// would go to a file nobody can open again, and the daemon would serve forever. True if
/// it unmounted.
fn unmount_if_database_goes(db: &Path, opened: (u64, u64), dir: &Path, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(DATABASE_WATCH_INTERVAL);
        if database_identity(db) == Some(opened) {
            continue;
        }
        eprintln!(
            "agentfs: the session database {} was deleted or replaced; unmounting \
             (changes made from now on could not be kept)",
            db.display()
        );
        // Lazily: a file held open there must not keep the mount, nor the daemon, alive.
        if let Err(e) = detach(dir, true) {
            eprintln!("agentfs: unmount failed: {}", crate::report::Chain(&e));
            return false;
        }
        return true;
    }
    false
}

/// How often the shared mount of `agentfs run` checks whether any runner is left.
const RUNNERS_INTERVAL: Duration = Duration::from_millis(200);

/// How long after its unmount a shared mount waits for the kernel to end the session.
const END_GRACE: Duration = Duration::from_secs(2);

/// Ends the daemon of an unmounted shared mount whose session the kernel does not end. A
/// copy of the mount in another mount namespace keeps the kernel's connection open: a
/// normal user's sandbox made while this session was mounted holds one it may not detach
/// (it lies hidden below the sandbox's session store, where nothing can reach it). So do
/// what the kernel's DESTROY would, and leave; the copy answers "not connected" from then.
fn end_if_held_elsewhere(vfs: &Vfs, ending: &AtomicBool) {
    let start = std::time::Instant::now();
    while start.elapsed() < END_GRACE {
        if ending.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "agentfs: unmounted, but another mount namespace still holds a copy of the mount; \
         finishing the session"
    );
    crate::fuse::finish(vfs);
    std::process::exit(0);
}

/// Unmounts once no runner of the session lives; true if it did. The last check is made
/// holding the run lock that runners take to join, so a runner either registered before it
/// (and the mount stays) or finds the mount gone and starts a new one.
fn serve_while_runners(
    vfs: &Vfs,
    lock: &Path,
    mut unmounter: fuser::SessionUnmounter,
    stop: &AtomicBool,
) -> bool {
    let any_live = || -> Result<bool, MountError> {
        let store = vfs.store()?;
        runners::close_dead(&store.conn)?;
        Ok(!runners::live(&store.conn)?.is_empty())
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(RUNNERS_INTERVAL);
        match any_live() {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                eprintln!(
                    "agentfs: cannot read the session's runners: {}",
                    crate::report::Chain(&e)
                );
                continue;
            }
        }
        let guard = match std::fs::File::open(lock).and_then(|f| f.lock().map(|()| f)) {
            Ok(f) => Some(f),
            // The run directory went (the session was removed, or a scratch directory that
            // held it): no runner can join any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                eprintln!("agentfs: cannot take the run lock {}: {e}", lock.display());
                continue;
            }
        };
        if !matches!(any_live(), Ok(false)) {
            continue;
        }
        match unmounter.unmount() {
            Ok(()) => {
                drop(guard);
                return true;
            }
            Err(e) => eprintln!("agentfs: no runner is left but unmounting failed: {e}"),
        }
    }
    false
}

/// How often a mount looks for changes other processes made to its session.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Keeps the kernel's caches true to the database when other processes (another mount of the
/// same session, `agentfs fs`) change it: their journal rows name the inodes and paths whose
/// cached attributes, pages and names must go.
fn watch_foreign_changes(
    overlay: &Overlay,
    notifier: &fuser::Notifier,
    mut seen: i64,
    stop: &AtomicBool,
) {
    let vfs = overlay.vfs();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(WATCH_INTERVAL);
        let last = match vfs.last_change_seq() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("agentfs: watching for changes failed: {e}");
                continue;
            }
        };
        while seen < last {
            let rows = match vfs.foreign_changes_since(seen, 1024) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("agentfs: reading the change journal failed: {e}");
                    break;
                }
            };
            if rows.is_empty() {
                seen = last;
                break;
            }
            for row in &rows {
                invalidate(overlay, notifier, row);
            }
            seen = rows.last().map_or(last, |r| r.seq);
        }
    }
}

/// Drops what the kernel caches about one foreign change. Errors mean the kernel did not
/// have it cached, which is fine.
fn invalidate(overlay: &Overlay, notifier: &fuser::Notifier, row: &crate::vfs::JournalRow) {
    let vfs = overlay.vfs();
    // It may have copied entries up, whited paths out (or `apply` re-based them).
    overlay.forget_cached_rows();
    if let Some(ino) = row.ino {
        let _ = notifier.inval_inode(fuser::INodeNo(overlay.node_id(ino).0), 0, 0);
    }
    for path in [&row.path, &row.old_path].into_iter().flatten() {
        let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
        let (dir, name) = (&path[..cut], &path[cut + 1..]);
        if name.is_empty() {
            continue;
        }
        if let Ok(parent) = vfs.resolve(dir, true) {
            let node = overlay.node_id(parent);
            let _ = notifier.inval_entry(fuser::INodeNo(node.0), std::ffi::OsStr::from_bytes(name));
            let _ = notifier.inval_inode(fuser::INodeNo(node.0), 0, 0);
        }
    }
}

fn explain_mount_error(dir: &Path, error: io::Error) -> MountError {
    let dev_fuse = Path::new("/dev/fuse");
    let hint = if !dev_fuse.exists() {
        "/dev/fuse is missing: load the module (`modprobe fuse`) or run where FUSE is available"
    } else if matches!(error.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
        if !can_open_rw(dev_fuse) {
            "this user cannot open /dev/fuse (it is usually mode 0666; here only root may): \
             run as root, or ask for /dev/fuse to be opened to users"
        } else if which("fusermount3").is_none() {
            "mounting as a user needs fusermount3: install the fuse3 package, or run as root"
        } else {
            "the kernel refused the mount: check that the mount point is yours and not in use"
        }
    } else {
        "check that FUSE works here (`ls -l /dev/fuse`) and that the directory is not in use"
    };
    MountError::Mount {
        dir: dir.to_path_buf(),
        error,
        hint,
    }
}

fn can_open_rw(path: &Path) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .is_ok()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Starts `agentfs mount --foreground` for `session` as a detached daemon and waits until it
/// reports the mount ready (or fails); returns the daemon's pid. Its log goes to `log`.
/// The daemon works in `/`, never in a directory it serves: a process that could reach its
/// working directory would reach the real base directory, so a path in `args` must be
/// absolute.
pub fn spawn_daemon(
    session: &str,
    dir: &Path,
    args: &DaemonArgs,
    log: &Path,
) -> Result<u32, MountError> {
    let exe = std::env::current_exe().map_err(MountError::NoExecutable)?;
    let absolute = |p: &Path| {
        std::path::absolute(p).map_err(|source| MountError::Absolute {
            path: p.to_path_buf(),
            source,
        })
    };
    let session_ref = crate::session::SessionRef::parse(session)?;
    let session_path = absolute(&session_ref.path)?;
    let dir = absolute(dir)?;

    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| MountError::Log {
            path: log.to_path_buf(),
            source,
        })?;
    let mut cmd = Command::new(exe);
    let args = DaemonArgs {
        notify_ready: true,
        ..args.clone()
    };
    cmd.args(["mount", "--foreground"])
        .args(args.to_args())
        .arg(&session_path)
        .arg(&dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from our terminal so a
    // Ctrl-C there does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(MountError::StartDaemon)?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(MountError::DaemonReport)?;
    match line.trim_end() {
        "ready" => Ok(child.id()),
        msg if msg.starts_with("error: ") => {
            let _ = child.wait();
            Err(MountError::DaemonFailed(msg["error: ".len()..].to_string()))
        }
        _ => {
            let status = child.wait().map_err(MountError::DaemonReport)?;
            Err(MountError::DaemonExited {
                status,
                log: log.to_path_buf(),
            })
        }
    }
}

/// Tells the parent of a daemon (through stdout) that the mount is ready or failed, then
/// points stdout at /dev/null so later output cannot fail on a closed pipe.
pub fn notify_parent(result: Result<(), String>) {
    let mut out = io::stdout().lock();
    let _ = match result {
        Ok(()) => writeln!(out, "ready"),
        Err(e) => writeln!(out, "error: {}", e.replace('\n', " ")),
    };
    let _ = out.flush();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto stdout with a valid open descriptor.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
    }
}

/// Takes the FUSE mount at `dir` off the tree (`lazy`: even while files there are in use),
/// as root directly, otherwise through fusermount3.
fn detach(dir: &Path, lazy: bool) -> Result<(), MountError> {
    let target = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = CString::new(target.as_os_str().as_bytes())?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: `c` is a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EBUSY) {
                return Err(MountError::Busy(dir.to_path_buf()));
            }
            return Err(MountError::Unmount {
                dir: dir.to_path_buf(),
                error,
            });
        }
    } else {
        let mut cmd = Command::new("fusermount3");
        cmd.arg("-u");
        if lazy {
            cmd.arg("-z");
        }
        let out = cmd
            .arg(&target)
            .output()
            .map_err(MountError::NoFusermount)?;
        if !out.status.success() {
            return Err(MountError::Fusermount {
                dir: dir.to_path_buf(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

/// How long `unmount` waits for the daemon to finish writing the session after unmounting.
const DAEMON_EXIT_WAIT: Duration = Duration::from_secs(60);

/// Unmounts the FUSE mount at `dir`. `lazy` detaches it even while files there are in use.
/// For an agentfs mount it then waits until the daemon has finished writing the session, so
/// the database is complete and compacted when this returns.
pub fn unmount(dir: &Path, lazy: bool) -> Result<(), MountError> {
    let Some(mount) = fuse_mount_at(dir) else {
        return Err(MountError::NotMounted(dir.to_path_buf()));
    };
    detach(dir, lazy)?;
    if let Some(pid) = mount.agentfs_pid() {
        wait_for_exit(pid, DAEMON_EXIT_WAIT);
    }
    Ok(())
}

/// Whether `pid` exists and is not a zombie (an exited daemon nobody has reaped yet).
pub fn process_running(pid: u32) -> bool {
    runners::process_start(pid).is_some()
}

/// Waits (polling, up to `limit`) until process `pid` is gone.
fn wait_for_exit(pid: u32, limit: Duration) {
    let start = std::time::Instant::now();
    let mut told = false;
    while process_running(pid) {
        if start.elapsed() > limit {
            eprintln!(
                "agentfs: the mount daemon (pid {pid}) is still finishing; not waiting longer"
            );
            return;
        }
        if !told && start.elapsed() > Duration::from_secs(1) {
            eprintln!(
                "agentfs: waiting for the mount daemon (pid {pid}) to finish writing the session..."
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_args_parse_back_to_themselves() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: DaemonArgs,
        }
        let cases = [
            DaemonArgs::default(),
            DaemonArgs {
                threads: 64,
                cache_ttl: 0.25,
                passthrough: true,
                xattrs: true,
                notify_ready: true,
                runners_lock: Some(PathBuf::from("/run dir/lock")),
            },
        ];
        for args in cases {
            let mut argv = vec![OsString::from("agentfs-mount")];
            argv.extend(args.to_args());
            assert_eq!(Wrapper::parse_from(argv).args, args);
        }
        let none: [&str; 0] = [];
        let parsed = Wrapper::parse_from(std::iter::once("agentfs-mount").chain(none));
        assert_eq!(parsed.args, DaemonArgs::default());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/x\134y"), r"/x\y");
    }
}
