//! Several processes on one session database at once: nothing lost, no "database is locked".

use std::process::{Command, Stdio};

const WRITERS: usize = 4;
const FILES_PER_WRITER: usize = 30;

#[test]
fn concurrent_processes_write_without_errors_or_loss() {
    let home = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_agentfs");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env("AGENTFS_HOME", home.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(&["init", "shared"]);
    run(&["fs", "shared", "mkdir", "/out"]);
    // Each writer is a shell loop of separate agentfs processes, all racing on one database;
    // a reader lists the directory in a loop at the same time.
    let script = format!(
        r#"for i in $(seq 1 {FILES_PER_WRITER}); do
             "$AF" fs shared write /out/w$W-$i --data "writer $W file $i" || exit 1
             "$AF" kv shared set w$W-$i "$i" || exit 1
           done"#
    );
    let mut children: Vec<_> = (0..WRITERS)
        .map(|w| {
            Command::new("sh")
                .args(["-c", &script])
                .env("AF", bin)
                .env("W", w.to_string())
                .env("AGENTFS_HOME", home.path())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children.push(
        Command::new("sh")
            .args([
                "-c",
                r#"for i in $(seq 1 40); do "$AF" fs shared ls /out >/dev/null || exit 1; done"#,
            ])
            .env("AF", bin)
            .env("AGENTFS_HOME", home.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a process failed: {stderr}");
        assert!(!stderr.contains("locked"), "{stderr}");
    }
    let listing = String::from_utf8(run(&["fs", "shared", "ls", "/out"]).stdout).unwrap();
    assert_eq!(listing.lines().count(), WRITERS * FILES_PER_WRITER);
    for w in 0..WRITERS {
        for i in 1..=FILES_PER_WRITER {
            let cat = run(&["fs", "shared", "cat", &format!("/out/w{w}-{i}")]);
            assert_eq!(
                String::from_utf8(cat.stdout).unwrap(),
                format!("writer {w} file {i}")
            );
        }
    }
    let kv = String::from_utf8(run(&["kv", "shared", "list"]).stdout).unwrap();
    assert_eq!(kv.lines().count(), WRITERS * FILES_PER_WRITER);
}

#[test]
fn threads_with_their_own_connections_interleave_writes_to_one_file() {
    use agentfs::store::OpenMode;
    use agentfs::vfs::{Creds, Ino, Vfs};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let vfs = Vfs::open_session(&db, OpenMode::Create).unwrap();
    let (attr, fh) = vfs
        .create(Ino::ROOT, b"f", 0o644, Creds { uid: 0, gid: 0 })
        .unwrap();
    vfs.release(fh).unwrap();
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let vfs = Vfs::open_session(&db, OpenMode::Existing).unwrap();
                let fh = vfs.open(attr.ino).unwrap();
                for i in 0..200u64 {
                    // Each thread owns every fourth 1000-byte slot.
                    vfs.write(fh, (i * 4 + t as u64) * 1000, &[t + 1; 1000])
                        .unwrap();
                }
                vfs.release(fh).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let data = vfs.read_ino(attr.ino, 0, 1_000_000).unwrap();
    assert_eq!(data.len(), 800_000);
    for (slot, chunk) in data.chunks(1000).enumerate() {
        assert!(
            chunk.iter().all(|&b| b == (slot % 4) as u8 + 1),
            "slot {slot}"
        );
    }
}
