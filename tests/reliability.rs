//! Reliability on real mounts: a full disk, a daemon killed at random moments, the WAL under a
//! steady write load. Needs root (tmpfs mounts) and /dev/fuse, as CI has.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agentfs");

fn agentfs(home: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .env("AGENTFS_HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agentfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Mounts session `s` of `home` on `dir`; returns the daemon pid.
fn mount(home: &Path, dir: &Path) -> u32 {
    let out = agentfs(home, &["mount", "s", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .rsplit("daemon pid ")
        .next()
        .and_then(|s| s.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {stderr:?}"))
}

/// Unmounts whatever is on `dir` when dropped (also after a failed assertion).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if agentfs::mount::fuse_mount_at(&self.0).is_some() {
            let _ = Command::new(BIN)
                .args(["umount", "--lazy", self.0.to_str().unwrap()])
                .status();
        }
    }
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
    // Bounded by the checkpoint threshold plus what piles up between two checkpoints, far
    // below the 400 MiB written.
    assert!(largest < 160 << 20, "WAL grew to {} MiB", largest >> 20);
}
