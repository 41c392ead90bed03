//! Real FUSE mounts (root and /dev/fuse are required; CI has both): the mount must behave as a
//! local filesystem for ordinary programs, and the database must stay queryable meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::BIN;

/// A session mounted by `agentfs mount` in a temporary home; unmounted on drop.
struct Mounted {
    home: tempfile::TempDir,
    dir: PathBuf,
    pid: u32,
}

impl Mounted {
    fn new() -> Mounted {
        Mounted::with_args(&[])
    }

    fn with_args(extra: &[&str]) -> Mounted {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("mnt");
        fs::create_dir(&dir).unwrap();
        let mut m = Mounted { home, dir, pid: 0 };
        m.agentfs(&["init", "s"]);
        let mut args = vec!["mount", "s", m.dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = m.agentfs(&args);
        m.pid = common::daemon_pid(&out);
        m
    }

    fn agentfs(&self, args: &[&str]) -> std::process::Output {
        common::agentfs(self.home.path(), args)
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn db(&self) -> PathBuf {
        self.home.path().join("s.db")
    }

    fn is_mounted(&self) -> bool {
        agentfs::mount::fuse_mount_at(&self.dir).is_some()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        drop(common::Unmount(self.dir.clone()));
    }
}

/// Size from stat(2). Unlike `fs::metadata` (statx asking for every field, which makes FUSE
/// skip its attribute cache), this is served from the kernel's cache while it is valid.
fn plain_stat_size(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: stat is plain old data, for which all zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: stat fills the buffer we pass; `c` is a valid C string.
    (unsafe { libc::stat(c.as_ptr(), &mut st) } == 0).then_some(st.st_size as u64)
}

/// Polls `cond` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn files_written_through_the_mount_land_in_the_database() {
    let m = Mounted::new();
    fs::create_dir_all(m.p("src/deep")).unwrap();
    fs::write(m.p("src/deep/main.rs"), "fn main() {}\n").unwrap();
    std::os::unix::fs::symlink("deep/main.rs", m.p("src/link")).unwrap();
    fs::hard_link(m.p("src/deep/main.rs"), m.p("hard")).unwrap();
    assert_eq!(
        fs::read_to_string(m.p("src/link")).unwrap(),
        "fn main() {}\n"
    );
    assert_eq!(fs::metadata(m.p("hard")).unwrap().nlink(), 2);
    let mut names: Vec<_> = fs::read_dir(m.p("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["deep", "link"]);
    fs::rename(m.p("src/deep"), m.p("moved")).unwrap();
    let cat = m.agentfs(&["fs", "s", "cat", "/moved/main.rs"]);
    assert_eq!(cat.stdout, b"fn main() {}\n");
    let journal: Vec<String> = {
        let conn = rusqlite::Connection::open(m.db()).unwrap();
        let mut stmt = conn
            .prepare("SELECT op || ' ' || path FROM fs_change ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(
        journal.contains(&"rename /moved".to_string()),
        "{journal:?}"
    );
    assert!(
        journal.contains(&"create /src/deep/main.rs".to_string()),
        "{journal:?}"
    );
}

#[test]
fn open_flags_append_trunc_excl_and_direct() {
    let m = Mounted::new();
    let p = m.p("f");
    fs::write(&p, "abc").unwrap();
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"def").unwrap();
    let mut g = OpenOptions::new().append(true).open(&p).unwrap();
    g.write_all(b"ghi").unwrap();
    f.write_all(b"jkl").unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), "abcdefghijkl");
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
    let err = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    // O_DIRECT: aligned I/O works and reads back what was written.
    let layout = std::alloc::Layout::from_size_align(8192, 4096).unwrap();
    // SAFETY: the layout is non-zero; the buffer is freed below.
    let buf = unsafe { std::alloc::alloc_zeroed(layout) };
    // SAFETY: `buf` points at 8192 writable bytes.
    let slice = unsafe { std::slice::from_raw_parts_mut(buf, 8192) };
    slice.fill(7);
    let d = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
        .unwrap();
    d.write_all_at(slice, 4096).unwrap();
    slice.fill(0);
    d.read_exact_at(slice, 4096).unwrap();
    assert!(slice.iter().all(|&b| b == 7));
    // SAFETY: allocated above with the same layout.
    unsafe { std::alloc::dealloc(buf, layout) };
    assert_eq!(fs::metadata(&p).unwrap().len(), 12288);
}

#[test]
fn shared_writable_mmap_reaches_the_file() {
    let m = Mounted::new();
    let p = m.p("mapped");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.set_len(8192).unwrap();
    common::edit_shared_mapping(&f, 8192, |map| {
        map[..5].copy_from_slice(b"hello");
        map[5000..5005].copy_from_slice(b"world");
    });
    drop(f);
    let data = fs::read(&p).unwrap();
    assert_eq!(&data[..5], b"hello");
    assert_eq!(&data[5000..5005], b"world");
    let cat = m.agentfs(&["fs", "s", "cat", "/mapped"]);
    assert_eq!(&cat.stdout[5000..5005], b"world");
}

#[test]
fn large_sparse_files_beyond_4_gib() {
    let m = Mounted::new();
    let p = m.p("big");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let far = 5u64 << 30;
    f.write_all_at(b"tail", far).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), far + 4);
    let mut buf = [1u8; 4];
    f.read_exact_at(&mut buf, far).unwrap();
    assert_eq!(&buf, b"tail");
    f.read_exact_at(&mut buf, 3u64 << 30).unwrap();
    assert_eq!(buf, [0; 4], "holes read as zeros");
    let mut f2 = File::open(&p).unwrap();
    f2.seek(SeekFrom::End(-4)).unwrap();
    let mut s = String::new();
    f2.read_to_string(&mut s).unwrap();
    assert_eq!(s, "tail");
    assert!(
        agentfs::session::size_on_disk(&m.db()) < 16 << 20,
        "holes take no space"
    );
}

#[test]
fn flock_and_fcntl_locks_conflict_as_on_a_local_fs() {
    let m = Mounted::new();
    let p = m.p("lockme");
    fs::write(&p, "x").unwrap();
    let a = File::open(&p).unwrap();
    let b = File::open(&p).unwrap();
    // SAFETY: flock on open descriptors.
    unsafe {
        assert_eq!(libc::flock(a.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB), 0);
        assert_eq!(
            libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
            -1
        );
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EWOULDBLOCK)
        );
        assert_eq!(libc::flock(a.as_raw_fd(), libc::LOCK_UN), 0);
        assert_eq!(libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB), 0);
    }
    // fcntl locks are per process: hold one here, try from another process.
    let w = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    // SAFETY: flock is plain old data, for which all zero bytes are a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as i16;
    lock.l_whence = libc::SEEK_SET as i16;
    assert_eq!(
        // SAFETY: F_SETLK with a valid flock struct.
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETLK, &lock) },
        0
    );
    let try_lock = |path: &Path| {
        Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys\nf=open(sys.argv[1],'r+')\ntry:\n fcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\nexcept OSError:\n sys.exit(3)",
            ])
            .arg(path)
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(try_lock(&p), Some(3), "another process must see the lock");
    drop(w);
    assert_eq!(try_lock(&p), Some(0), "closing the file releases the lock");
}

#[test]
fn two_processes_write_while_sqlite_is_queried() {
    let m = Mounted::new();
    fs::create_dir(m.p("out")).unwrap();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let dir = m.p("out");
            std::thread::spawn(move || {
                Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "for i in $(seq 1 200); do printf 'w{w} %s' $i > '{}/w{w}-'$i || exit 1; done",
                        dir.display()
                    ))
                    .status()
                    .unwrap()
            })
        })
        .collect();
    // Meanwhile a separate connection reads the live database.
    let conn = rusqlite::Connection::open(m.db()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut counts = Vec::new();
    while writers.iter().any(|w| !w.is_finished()) {
        let n: i64 = conn
            .query_row("SELECT count(*) FROM fs_inode", [], |r| r.get(0))
            .unwrap();
        counts.push(n);
    }
    for w in writers {
        assert!(w.join().unwrap().success());
    }
    assert!(!counts.is_empty());
    assert!(
        counts.windows(2).all(|c| c[0] <= c[1]),
        "counts only grow: {counts:?}"
    );
    let files: i64 = conn
        .query_row(
            "SELECT count(*) FROM fs_dentry WHERE parent_ino = (SELECT ino FROM fs_dentry WHERE name = 'out')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(files, 400);
    assert_eq!(fs::read_to_string(m.p("out/w1-200")).unwrap(), "w1 200");
}

#[test]
fn sigterm_unmounts_cleanly() {
    let m = Mounted::new();
    fs::write(m.p("kept"), "data").unwrap();
    // SAFETY: signalling our own daemon.
    unsafe { libc::kill(m.pid as i32, libc::SIGTERM) };
    assert!(
        wait_for(Duration::from_secs(10), || !m.is_mounted()),
        "still mounted"
    );
    let out = m.agentfs(&["fs", "s", "cat", "/kept"]);
    assert_eq!(out.stdout, b"data");
}

#[test]
fn killed_daemon_fails_fast_and_umount_recovers() {
    let m = Mounted::new();
    // SAFETY: signalling our own daemon.
    unsafe { libc::kill(m.pid as i32, libc::SIGKILL) };
    // Accesses fail (ENOTCONN or ECONNABORTED, by kernel version) instead of hanging.
    let dir = m.dir.clone();
    let probe =
        std::thread::spawn(move || fs::read_dir(&dir).map(|_| ()).map_err(|e| e.raw_os_error()));
    assert!(
        wait_for(Duration::from_secs(10), || probe.is_finished()),
        "ls hangs on a dead mount"
    );
    let err = probe.join().unwrap().unwrap_err();
    assert!(
        matches!(err, Some(libc::ENOTCONN | libc::ECONNABORTED)),
        "{err:?}"
    );
    m.agentfs(&["umount", m.dir.to_str().unwrap()]);
    assert!(!m.is_mounted());
    fs::read_dir(&m.dir).unwrap();
}

#[test]
fn mount_and_umount_errors_are_clear() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("AGENTFS_HOME", home.path())
            .output()
            .unwrap()
    };
    assert!(run(&["init", "s"]).status.success());
    let missing = home.path().join("nope");
    let out = run(&["mount", "s", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mkdir -p"),
        "{out:?}"
    );
    let out = run(&["mount", "ghost", home.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("agentfs init ghost"));
    let out = run(&["umount", home.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a FUSE mount point"));
    // Mounting twice on one directory is refused.
    let dir = home.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    assert!(run(&["mount", "s", dir.to_str().unwrap()]).status.success());
    let out = run(&["mount", "s", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already a FUSE mount point"));
    let mount = agentfs::mount::fuse_mount_at(&dir).unwrap();
    let pid = mount.agentfs_pid().expect("our mounts name their daemon");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(run(&["umount", dir.to_str().unwrap()]).status.success());
    assert!(agentfs::mount::fuse_mount_at(&dir).is_none());
    // umount returns once the daemon has finished with the session.
    let gone = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(true);
    assert!(gone, "daemon {pid} still running after umount");
}

#[test]
fn changes_by_other_processes_reach_the_kernel_cache_before_the_ttl() {
    // A TTL far longer than the test: only the journal watcher can make the change visible.
    let m = Mounted::with_args(&["--cache-ttl", "600"]);
    fs::write(m.p("shared.txt"), "old contents").unwrap();
    fs::create_dir(m.p("dir")).unwrap();
    assert_eq!(
        fs::read_to_string(m.p("shared.txt")).unwrap(),
        "old contents"
    );
    assert!(fs::metadata(m.p("dir/new")).is_err());
    // Prime the kernel's attribute cache with a plain stat.
    assert_eq!(plain_stat_size(&m.p("shared.txt")), Some(12));
    // Another process (the CLI) changes the session directly.
    m.agentfs(&[
        "fs",
        "s",
        "write",
        "/shared.txt",
        "--data",
        "new contents, longer",
    ]);
    m.agentfs(&["fs", "s", "write", "/dir/new", "--data", "x"]);
    let new_len = "new contents, longer".len() as u64;
    assert!(
        wait_for(Duration::from_secs(10), || {
            plain_stat_size(&m.p("shared.txt")) == Some(new_len)
        }),
        "the mount still reports the old size"
    );
    assert_eq!(
        fs::read_to_string(m.p("shared.txt")).unwrap(),
        "new contents, longer"
    );
    assert_eq!(fs::read_to_string(m.p("dir/new")).unwrap(), "x");
    m.agentfs(&["fs", "s", "rm", "/shared.txt"]);
    assert!(
        wait_for(Duration::from_secs(10), || plain_stat_size(
            &m.p("shared.txt")
        )
        .is_none()),
        "a file removed by another process is still visible"
    );
}

#[test]
fn mounting_as_an_ordinary_user_works_or_says_why_not() {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("user");
    let dir = root.join("mnt");
    fs::create_dir_all(&dir).unwrap();
    let user = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(args)
            .env("AGENTFS_HOME", root.join("home"))
            .output()
            .unwrap()
    };
    Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(user(&["init", "u"]).status.success());
    let out = user(&["mount", "u", dir.to_str().unwrap()]);
    if out.status.success() {
        // This machine lets users mount (fusermount3 and an open /dev/fuse).
        assert!(user(&["umount", dir.to_str().unwrap()]).status.success());
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot mount on"), "{stderr}");
        assert!(
            stderr.contains("root"),
            "the error names a way out: {stderr}"
        );
        assert!(agentfs::mount::fuse_mount_at(&dir).is_none());
    }
}

#[test]
fn a_mounted_session_is_listed_as_such_and_cannot_be_removed() {
    let m = Mounted::new();
    let listing = String::from_utf8(m.agentfs(&["sessions"]).stdout).unwrap();
    let canon = fs::canonicalize(&m.dir).unwrap();
    assert!(listing.contains(canon.to_str().unwrap()), "{listing}");
    let out = Command::new(BIN)
        .args(["rm", "s"])
        .env("AGENTFS_HOME", m.home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is mounted at") && stderr.contains("agentfs umount"),
        "{stderr}"
    );
    assert!(m.db().exists());
    m.agentfs(&["umount", m.dir.to_str().unwrap()]);
    m.agentfs(&["rm", "s"]);
    assert!(!m.db().exists());
}

#[test]
fn forking_a_live_session_gives_a_consistent_independent_copy() {
    let m = Mounted::new();
    fs::write(m.p("shared"), "before the fork").unwrap();
    // A writer keeps changing the session through the mount while it is forked.
    let dir = m.p("busy");
    fs::create_dir(&dir).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..300 {
            fs::write(dir.join(format!("f{}", i % 20)), vec![i as u8; 10_000]).unwrap();
        }
    });
    let out = m.agentfs(&["fork", "s", "copy"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "copy");
    writer.join().unwrap();
    let copy = m.home.path().join("copy.db");
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert!(agentfs::fsck::check(&conn).unwrap().is_empty());
    drop(conn);
    // The fork diverges without touching the parent.
    m.agentfs(&[
        "fs",
        "copy",
        "write",
        "/shared",
        "--data",
        "changed in the fork",
    ]);
    assert_eq!(
        m.agentfs(&["fs", "copy", "cat", "/shared"]).stdout,
        b"changed in the fork"
    );
    assert_eq!(
        fs::read_to_string(m.p("shared")).unwrap(),
        "before the fork"
    );
    let again = Command::new(BIN)
        .args(["fork", "s", "copy"])
        .env("AGENTFS_HOME", m.home.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn the_sql_shell_answers_while_the_mount_is_written() {
    let m = Mounted::new();
    let dir = m.p("work");
    fs::create_dir(&dir).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..400 {
            fs::write(dir.join(format!("f{i}")), b"data").unwrap();
        }
    });
    let mut answers = 0;
    while !writer.is_finished() {
        let out = m.agentfs(&[
            "sql",
            "s",
            "--mode",
            "list",
            "SELECT count(*) FROM fs_change",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|n| n.parse::<i64>().is_ok()),
            "{text}"
        );
        answers += 1;
    }
    writer.join().unwrap();
    assert!(answers > 0);
    let out = m.agentfs(&[
        "sql",
        "s",
        "--mode",
        "list",
        "SELECT count(*) FROM fs_dentry WHERE name LIKE 'f%'",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "count(*)\n400\n");
}

#[test]
fn another_process_closing_its_connection_leaves_the_live_wal_in_place() {
    let m = Mounted::new();
    fs::write(m.p("before"), "1").unwrap();
    // Another process (the sqlite3 shell) opens the database, reads, and closes. If the
    // daemon no longer held its shared lock, the close would checkpoint and delete the WAL
    // under the mount, and everything written after it would be unseen.
    let out = Command::new("sqlite3")
        .arg(m.db())
        .arg("SELECT count(*) FROM fs_inode")
        .output()
        .expect("the sqlite3 shell (apt-get install sqlite3)");
    assert!(out.status.success(), "{out:?}");
    let wal = m.home.path().join("s.db-wal");
    assert!(
        wal.exists(),
        "the WAL was deleted while the session was mounted"
    );
    for i in 0..5 {
        fs::write(m.p(&format!("after{i}")), "2").unwrap();
    }
    let out = m.agentfs(&[
        "sql",
        "s",
        "--mode",
        "list",
        "--",
        "SELECT count(*) FROM fs_dentry WHERE name LIKE 'after%'",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "count(*)\n5\n");
}

#[test]
fn set_id_bits_go_on_chown_and_on_writes_and_truncates_by_unprivileged_callers() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let m = Mounted::with_args(&["--cache-ttl", "0"]);
    fs::set_permissions(m.home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let files = [
        ("written", 0o6777),
        ("truncated", 0o6777),
        ("by-root", 0o6777),
        ("chowned", 0o6777),
        ("sgid-no-exec", 0o2767),
    ];
    for (f, mode) in files {
        fs::write(m.p(f), "x").unwrap();
        fs::set_permissions(m.p(f), fs::Permissions::from_mode(mode)).unwrap();
    }
    let as_nobody = |script: &str| {
        let st = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&m.dir)
            .uid(65534)
            .gid(65534)
            .status()
            .unwrap();
        assert!(st.success(), "{script}");
    };
    as_nobody("echo y >> written");
    as_nobody(": > truncated");
    OpenOptions::new()
        .append(true)
        .open(m.p("by-root"))
        .unwrap()
        .write_all(b"y")
        .unwrap();
    std::os::unix::fs::chown(m.p("chowned"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(m.p("sgid-no-exec"), Some(65534), None).unwrap();
    let expected = [
        ("written", 0o777),
        ("truncated", 0o777),
        ("by-root", 0o6777),
        ("chowned", 0o777),
        ("sgid-no-exec", 0o2767),
    ];
    let modes = || {
        expected
            .iter()
            .map(|(f, _)| (*f, fs::metadata(m.p(f)).unwrap().mode() & 0o7777))
            .collect::<Vec<_>>()
    };
    assert_eq!(modes(), expected);
    assert_eq!(fs::read(m.p("written")).unwrap(), b"xy\n");
    assert_eq!(fs::metadata(m.p("truncated")).unwrap().len(), 0);
    // Stored in the session, not only in the kernel's cache.
    m.agentfs(&["umount", m.dir.to_str().unwrap()]);
    m.agentfs(&["mount", "s", m.dir.to_str().unwrap()]);
    assert_eq!(modes(), expected);
}
