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
