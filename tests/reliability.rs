//! Reliability on real mounts: a full disk, a daemon killed at random moments, the WAL under a
//! steady write load. Needs root (tmpfs mounts) and /dev/fuse, as CI has.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{Unmount, agentfs};

/// Mounts session `s` of `home` on `dir`; returns the daemon pid.
fn mount(home: &Path, dir: &Path) -> u32 {
    common::daemon_pid(&agentfs(home, &["mount", "s", dir.to_str().unwrap()]))
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: PathBuf, size: &str) -> Tmpfs {
        fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs needs root");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[test]
fn full_disk_gives_enospc_keeps_reads_and_recovers_when_space_returns() {
    let top = tempfile::tempdir().unwrap();
    let disk = Tmpfs::new(top.path().join("disk"), "16m");
    let home = disk.0.join("home");
    let mnt = top.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    agentfs(&home, &["init", "s"]);
    mount(&home, &mnt);
    let _guard = Unmount(mnt.clone());
    let keep: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    write_file(&mnt.join("keep"), &keep).unwrap();
    // Fill the disk from outside the session, leaving little room.
    let filler = disk.0.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let block = vec![0u8; 1 << 20];
    while f.write_all(&block).is_ok() {}
    drop(f);
    // Writes through the mount now fail with ENOSPC (not EIO), sooner or later.
    let mut err = None;
    for i in 0..64 {
        if let Err(e) = write_file(&mnt.join(format!("big{i}")), &block) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the disk never filled up");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    // Reads keep working and committed data is intact.
    assert_eq!(fs::read(mnt.join("keep")).unwrap(), keep);
    // Once there is space again, writing works again.
    fs::remove_file(&filler).unwrap();
    write_file(&mnt.join("after"), b"space is back").unwrap();
    assert_eq!(fs::read(mnt.join("after")).unwrap(), b"space is back");
    agentfs(&home, &["umount", mnt.to_str().unwrap()]);
    let conn = rusqlite::Connection::open(home.join("s.db")).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn wal_stays_bounded_under_a_steady_write_load() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let mnt = top.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    agentfs(&home, &["init", "s"]);
    mount(&home, &mnt);
    let _guard = Unmount(mnt.clone());
    let wal = home.join("s.db-wal");
    let chunk = vec![7u8; 1 << 20];
    let mut largest = 0;
    // A reader queries the live database all along, as a SQL shell would.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (db, stop) = (home.join("s.db"), stop.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut queries = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _: i64 = conn
                    .query_row("SELECT count(*) FROM fs_data", [], |r| r.get(0))
                    .unwrap();
                queries += 1;
            }
            queries
        })
    };
    // 400 MiB written in 1 MiB files, overwriting a window of 32 files.
    for i in 0..400 {
        write_file(&mnt.join(format!("f{}", i % 32)), &chunk).unwrap();
        largest = largest.max(fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0, "the reader never got an answer");
    // Bounded by the forced checkpoint's threshold plus what piles up while it waits for
    // the reader, far below the 400 MiB written.
    let bound = agentfs::store::WAL_HIGH_WATER_BYTES + (96 << 20);
    assert!(largest < bound, "WAL grew to {} MiB", largest >> 20);
}

/// A small deterministic random number generator (xorshift64*), so a failing iteration can
/// be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let seed = self.next();
        (0..len)
            .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8)
            .collect()
    }
}

/// Runs file operations on `mnt` until one fails (the daemon was killed). Returns the files
/// whose last change returned success, with their expected bytes.
fn workload(mnt: &Path, rng: &mut Rng, expected: &mut std::collections::BTreeMap<String, Vec<u8>>) {
    let mut counter = rng.next() % 1_000_000;
    loop {
        counter += 1;
        let names: Vec<String> = expected.keys().cloned().collect();
        let pick = |rng: &mut Rng| {
            names
                .get(rng.below(names.len().max(1) as u64) as usize)
                .cloned()
        };
        let result = match rng.below(10) {
            0..=3 => {
                let name = format!("f{counter}");
                let len = match rng.below(10) {
                    0 => 2 << 20,
                    1..=3 => 0,
                    _ => rng.below(300_000) as usize,
                };
                let data = rng.bytes(len);
                let r = write_file(&mnt.join(&name), &data);
                if r.is_ok() {
                    expected.insert(name, data);
                }
                r
            }
            4 | 5 => match pick(rng) {
                Some(old) => {
                    let new = format!("r{counter}");
                    let data = expected.remove(&old).unwrap();
                    let r = fs::rename(mnt.join(&old), mnt.join(&new));
                    if r.is_ok() {
                        expected.insert(new, data);
                    }
                    r
                }
                None => continue,
            },
            6 => match pick(rng) {
                Some(old) => {
                    // Removed from the expected set whatever happens: after a failed unlink
                    // it is unknown whether the file is still there.
                    expected.remove(&old);
                    fs::remove_file(mnt.join(&old))
                }
                None => continue,
            },
            _ => match pick(rng) {
                Some(name) => {
                    let mut data = expected.remove(&name).unwrap();
                    let extra_len = rng.below(20_000) as usize;
                    let extra = rng.bytes(extra_len);
                    let r = (|| {
                        let mut f = OpenOptions::new().append(true).open(mnt.join(&name))?;
                        f.write_all(&extra)?;
                        f.sync_all()
                    })();
                    if r.is_ok() {
                        data.extend_from_slice(&extra);
                        expected.insert(name, data);
                    }
                    r
                }
                None => continue,
            },
        };
        if result.is_err() {
            return;
        }
    }
}

#[test]
fn killing_the_daemon_at_random_moments_loses_nothing_committed() {
    let iterations: u64 = std::env::var("AGENTFS_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let mnt = top.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    agentfs(&home, &["init", "s"]);
    let _guard = Unmount(mnt.clone());
    let mut expected = std::collections::BTreeMap::new();
    let mut killed_mid_work = 0;
    for iteration in 0..iterations {
        let mut rng =
            Rng(0x9e37_79b9_7f4a_7c15 ^ (iteration + 1).wrapping_mul(0x1234_5678_9abc_def1));
        let pid = mount(&home, &mnt);
        let delay = Duration::from_millis(2 + rng.below(60));
        // The killer's delay is the randomness of the test, not a synchronisation.
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            // SAFETY: signalling the daemon this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        });
        let start = Instant::now();
        workload(&mnt, &mut rng, &mut expected);
        killer.join().unwrap();
        if start.elapsed() >= delay {
            killed_mid_work += 1;
        }
        agentfs(&home, &["umount", mnt.to_str().unwrap()]);
        let conn = rusqlite::Connection::open(home.join("s.db")).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "iteration {iteration}");
        let problems = agentfs::fsck::check(&conn).unwrap();
        assert!(problems.is_empty(), "iteration {iteration}: {problems:?}");
        drop(conn);
        // Everything whose change returned success is there, byte for byte.
        mount(&home, &mnt);
        for (name, data) in &expected {
            let got = fs::read(mnt.join(name))
                .unwrap_or_else(|e| panic!("iteration {iteration}: {name} lost: {e}"));
            assert!(
                got == *data,
                "iteration {iteration}: {name} has other bytes"
            );
        }
        agentfs(&home, &["umount", mnt.to_str().unwrap()]);
    }
    assert!(
        killed_mid_work > iterations / 2,
        "kills landed mid-work only {killed_mid_work} times"
    );
    eprintln!(
        "{iterations} crashes survived; {} files verified at the end",
        expected.len()
    );
}

#[test]
fn two_mounts_with_two_writers_each_and_a_sql_reader() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    agentfs(&home, &["init", "s"]);
    let mounts: Vec<PathBuf> = (0..2).map(|i| top.path().join(format!("m{i}"))).collect();
    let mut guards = Vec::new();
    for m in &mounts {
        fs::create_dir(m).unwrap();
        mount(&home, m);
        guards.push(Unmount(m.clone()));
    }
    const FILES: usize = 150;
    // Two writer processes per mount, each in its own directory, overwriting and renaming.
    let script = r#"mkdir -p "$D" || exit 1
        for i in $(seq 1 $N); do
            printf 'writer %s file %s' "$W" "$i" > "$D/tmp$i" || exit 1
            mv "$D/tmp$i" "$D/f$i" || exit 1
            printf 'x' >> "$D/f$i" || exit 1
        done"#;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let dir = mounts[w % 2].join(format!("w{w}"));
            Command::new("sh")
                .args(["-c", script])
                .env("D", &dir)
                .env("W", w.to_string())
                .env("N", FILES.to_string())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let db = home.join("s.db");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.busy_timeout(Duration::from_secs(30)).unwrap();
            let (mut last, mut queries) = (0i64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n: i64 = conn
                    .query_row("SELECT count(*) FROM fs_change", [], |r| r.get(0))
                    .unwrap();
                assert!(n >= last, "the journal never shrinks");
                last = n;
                queries += 1;
            }
            queries
        })
    };
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0, "the reader never got an answer");
    let journal: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM fs_change", [], |r| r.get(0))
        .unwrap();
    assert!(
        journal >= (4 * FILES * 3) as i64,
        "journal has {journal} rows"
    );
    // Every writer's final state, seen through both mounts.
    for m in &mounts {
        for w in 0..4 {
            let dir = m.join(format!("w{w}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
                if n == FILES {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} lists {n} of {FILES}",
                    dir.display()
                );
                std::thread::yield_now();
            }
            for i in 1..=FILES {
                let got = fs::read_to_string(dir.join(format!("f{i}"))).unwrap();
                assert_eq!(got, format!("writer {w} file {i}x"));
            }
        }
    }
}

#[test]
fn rm_rf_of_a_big_tree_gives_the_space_back_while_mounted() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let mnt = top.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    agentfs(&home, &["init", "s"]);
    mount(&home, &mnt);
    let _guard = Unmount(mnt.clone());
    let db = home.join("s.db");
    let mut rng = Rng(42);
    // 150 MB in 600 files of 250 KB across 20 directories.
    for d in 0..20 {
        let dir = mnt.join(format!("tree/d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..30 {
            fs::write(dir.join(format!("f{f}")), rng.bytes(250_000)).unwrap();
        }
    }
    let full = agentfs::session::size_on_disk(&db);
    assert!(full > 150_000_000, "{full}");
    fs::remove_dir_all(mnt.join("tree")).unwrap();
    // The mount gives the space back in the background once it is idle.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut now = full;
    while now > full / 10 {
        assert!(
            Instant::now() < deadline,
            "still {} MB of {} MB after rm -rf",
            now >> 20,
            full >> 20
        );
        std::thread::sleep(Duration::from_millis(50));
        now = agentfs::session::size_on_disk(&db);
    }
    eprintln!(
        "database: {} MB full, {} MB after rm -rf",
        full >> 20,
        now >> 20
    );
}

/// Whether a process runs (and is not a zombie).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn is_mounted(dir: &Path) -> bool {
    let dir = fs::canonicalize(dir).unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
}

#[test]
fn a_mount_whose_database_is_deleted_unmounts_and_its_daemon_exits() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let mnt = top.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    agentfs(&home, &["init", "s"]);
    let pid = mount(&home, &mnt);
    let _guard = Unmount(mnt.clone());
    fs::write(mnt.join("f"), b"x").unwrap();
    // A file held open on the mount keeps the kernel's session after a lazy unmount: the
    // daemon must end anyway.
    let _held = fs::File::open(mnt.join("f")).unwrap();
    for f in ["s.db", "s.db-wal", "s.db-shm"] {
        let _ = fs::remove_file(home.join(f));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while (alive(pid) || is_mounted(&mnt)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !is_mounted(&mnt),
        "the mount stayed after its database was deleted"
    );
    assert!(
        !alive(pid),
        "the daemon still runs after its database was deleted"
    );
}

/// A change to a base entry in the overlay crash test.
#[derive(Debug, Clone)]
enum BaseChange {
    Rename(String, String),
    Remove(String),
}

/// How far a change got before the daemon was killed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reached {
    NotStarted,
    /// Sent, and no answer came back: it may or may not have been made.
    InFlight,
    Acknowledged,
}

/// A base tree for the overlay crash test, and one change for each of its entries: files
/// renamed or deleted, directories (with files and a subdirectory) renamed, empty ones removed.
fn crash_base(base: &Path, rng: &mut Rng) -> Vec<BaseChange> {
    let mut changes = Vec::new();
    for k in 0..12 {
        fs::create_dir_all(base).unwrap();
        fs::write(base.join(format!("t{k}")), format!("file {k}\n")).unwrap();
        changes.push(match rng.below(2) {
            0 => BaseChange::Rename(format!("t{k}"), format!("u{k}")),
            _ => BaseChange::Remove(format!("t{k}")),
        });
    }
    for k in 0..5 {
        let d = base.join(format!("d{k}"));
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("f"), format!("in d{k}\n")).unwrap();
        fs::write(d.join("sub/g"), format!("deep in d{k}\n")).unwrap();
        changes.push(BaseChange::Rename(format!("d{k}"), format!("e{k}")));
        fs::create_dir(base.join(format!("z{k}"))).unwrap();
        changes.push(BaseChange::Remove(format!("z{k}")));
    }
    // Shuffled, so kills land between every kind of change.
    for i in (1..changes.len()).rev() {
        changes.swap(i, rng.below(i as u64 + 1) as usize);
    }
    changes
}

/// Whether `path` shows in the overlay of `db` over `base`, read without a kernel.
fn in_overlay(overlay: &agentfs::overlay::Overlay, path: &str) -> bool {
    let mut at = agentfs::vfs::Ino::ROOT;
    for c in path.split('/') {
        match overlay.lookup(at, c.as_bytes()) {
            Ok(a) => at = a.ino,
            Err(agentfs::vfs::VfsError::NotFound) => return false,
            Err(e) => panic!("looking up {path}: {e}"),
        }
    }
    true
}

#[test]
fn killing_the_daemon_while_base_entries_move_and_go_leaves_each_in_one_place() {
    let rounds: u64 = std::env::var("AGENTFS_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let mnt = top.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _guard = Unmount(mnt.clone());
    let (mut mid_work, mut in_flight) = (0, 0);
    for round in 0..rounds {
        let mut rng = Rng(0x51_7cc1_b727_220a ^ (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let base = top.path().join(format!("base{round}"));
        let changes = crash_base(&base, &mut rng);
        let pristine = common::tree_snapshot(&base);
        let id = format!("r{round}");
        agentfs(&home, &["init", &id, "--base", base.to_str().unwrap()]);
        let pid = common::daemon_pid(&agentfs(&home, &["mount", &id, mnt.to_str().unwrap()]));
        // The kill lands while change `at` is made, a random few microseconds after it
        // starts (the workload goes on meanwhile), so every round dies mid-work.
        let at = rng.below(changes.len() as u64) as usize;
        let delay = Duration::from_micros(rng.below(400));
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let killer = std::thread::spawn(move || {
            if wait.recv().is_ok() {
                std::thread::sleep(delay);
                // SAFETY: signalling the daemon this test started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        });
        let mut go = Some(go);
        let mut reached = vec![Reached::NotStarted; changes.len()];
        for (i, c) in changes.iter().enumerate() {
            if i == at {
                let _ = go.take().map(|g| g.send(()));
            }
            reached[i] = Reached::InFlight;
            let done = match c {
                BaseChange::Rename(a, b) => fs::rename(mnt.join(a), mnt.join(b)),
                BaseChange::Remove(p) if p.starts_with('z') => fs::remove_dir(mnt.join(p)),
                BaseChange::Remove(p) => fs::remove_file(mnt.join(p)),
            };
            if done.is_err() {
                break;
            }
            reached[i] = Reached::Acknowledged;
        }
        killer.join().unwrap();
        if reached.contains(&Reached::NotStarted) || reached.contains(&Reached::InFlight) {
            mid_work += 1;
        }
        in_flight += reached.iter().filter(|r| **r == Reached::InFlight).count();
        let _ = Command::new("umount").arg("-l").arg(&mnt).status();

        let db = home.join(format!("{id}.db"));
        let vfs = agentfs::vfs::Vfs::open_session(&db, agentfs::store::OpenMode::Existing).unwrap();
        let problems = agentfs::fsck::check(&vfs.store().unwrap().conn).unwrap();
        assert!(problems.is_empty(), "round {round}: fsck: {problems:?}");
        let overlay = agentfs::overlay::Overlay::new(std::sync::Arc::new(vfs), Some(base.clone()));
        for (c, r) in changes.iter().zip(&reached) {
            let what = format!("round {round}: {c:?} ({r:?})");
            match c {
                BaseChange::Rename(a, b) => {
                    let (at_a, at_b) = (in_overlay(&overlay, a), in_overlay(&overlay, b));
                    match r {
                        Reached::NotStarted => assert!(at_a && !at_b, "{what}: moved unasked"),
                        Reached::Acknowledged => assert!(!at_a && at_b, "{what}: not moved"),
                        Reached::InFlight => assert!(at_a != at_b, "{what}: at {at_a}/{at_b}"),
                    }
                    if b.starts_with('e') && at_b {
                        for child in ["f", "sub/g"] {
                            let p = format!("{b}/{child}");
                            assert!(in_overlay(&overlay, &p), "{what}: {p} is missing");
                            let old = format!("{a}/{child}");
                            assert!(!in_overlay(&overlay, &old), "{what}: {old} is back");
                        }
                    }
                }
                BaseChange::Remove(p) => {
                    let there = in_overlay(&overlay, p);
                    match r {
                        Reached::NotStarted => assert!(there, "{what}: gone unasked"),
                        Reached::Acknowledged => assert!(!there, "{what}: came back"),
                        Reached::InFlight => {}
                    }
                }
            }
        }
        assert_eq!(
            common::tree_snapshot(&base),
            pristine,
            "round {round}: the base changed"
        );
    }
    assert!(
        mid_work > rounds / 2,
        "kills landed mid-work only {mid_work} of {rounds} times"
    );
    eprintln!(
        "{rounds} crashes during base renames and deletes; {in_flight} changes were in flight"
    );
}
