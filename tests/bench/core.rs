//! Benchmark: the filesystem core against a plain directory of the host, same work, one run.
//!
//! `cargo bench --bench core` prints one line per workload with both times and the ratio.
//! Set AGENTFS_BENCH_FILES / AGENTFS_BENCH_BIG_MIB to change the sizes.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use agentfs::store::OpenMode;
use agentfs::vfs::{Creds, Ino, Vfs};

const SMALL: usize = 1024;
const IO_SIZE: usize = 128 * 1024;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn main() {
    let files = env_or("AGENTFS_BENCH_FILES", 10_000);
    let big_mib = env_or("AGENTFS_BENCH_BIG_MIB", 256);
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let vfs = Vfs::open_session(&tmp.path().join("bench.db"), OpenMode::Create).unwrap();
    let creds = Creds { uid: 0, gid: 0 };
    let small = vec![b's'; SMALL];
    let block: Vec<u8> = (0..IO_SIZE).map(|i| (i % 251) as u8).collect();
    let names: Vec<String> = (0..files).map(|i| format!("file-{i:05}")).collect();
    let mut rows: Vec<(String, Duration, Duration)> = Vec::new();

    // create + write small files
    let core = time(|| {
        for n in &names {
            let (_, fh) = vfs.create(Ino::ROOT, n.as_bytes(), 0o644, creds).unwrap();
            vfs.write(fh, 0, &small).unwrap();
            vfs.release(fh).unwrap();
        }
    });
    let host = time(|| {
        for n in &names {
            std::fs::File::create(plain.join(n))
                .unwrap()
                .write_all(&small)
                .unwrap();
        }
    });
    rows.push((format!("create {files} files of {SMALL} B"), core, host));

    let mut inos = Vec::with_capacity(files);
    let core = time(|| {
        for n in &names {
            inos.push(vfs.lookup(Ino::ROOT, n.as_bytes()).unwrap().ino);
        }
    });
    let host = time(|| {
        for n in &names {
            std::fs::symlink_metadata(plain.join(n)).unwrap();
        }
    });
    rows.push((format!("stat {files} files"), core, host));

    let core = time(|| {
        for ino in &inos {
            let fh = vfs.open(*ino).unwrap();
            assert_eq!(vfs.read(fh, 0, 4096).unwrap().len(), SMALL);
            vfs.release(fh).unwrap();
        }
    });
    let host = time(|| {
        let mut buf = Vec::with_capacity(4096);
        for n in &names {
            buf.clear();
            std::fs::File::open(plain.join(n))
                .unwrap()
                .read_to_end(&mut buf)
                .unwrap();
            assert_eq!(buf.len(), SMALL);
        }
    });
    rows.push((format!("read {files} files"), core, host));

    let big_blocks = big_mib * 1024 * 1024 / IO_SIZE;
    let (attr, fh) = vfs.create(Ino::ROOT, b"big", 0o644, creds).unwrap();
    let core = time(|| {
        for i in 0..big_blocks {
            vfs.write(fh, (i * IO_SIZE) as u64, &block).unwrap();
        }
        vfs.fsync().unwrap();
    });
    let host = time(|| {
        let mut f = std::fs::File::create(plain.join("big")).unwrap();
        for _ in 0..big_blocks {
            f.write_all(&block).unwrap();
        }
        f.sync_all().unwrap();
    });
    rows.push((
        format!("write {big_mib} MiB file (128 KiB writes, fsync)"),
        core,
        host,
    ));

    let core = time(|| {
        for i in 0..big_blocks {
            let got = vfs.read(fh, (i * IO_SIZE) as u64, IO_SIZE as u32).unwrap();
            assert_eq!(got.len(), IO_SIZE);
        }
    });
    vfs.release(fh).unwrap();
    let host = time(|| {
        // Drop nothing from the page cache: both sides read warm data.
        let mut f = std::fs::File::open(plain.join("big")).unwrap();
        let mut buf = vec![0u8; IO_SIZE];
        for _ in 0..big_blocks {
            f.read_exact(&mut buf).unwrap();
        }
    });
    rows.push((
        format!("read {big_mib} MiB file (128 KiB reads)"),
        core,
        host,
    ));
    assert_eq!(
        vfs.getattr(attr.ino).unwrap().size,
        (big_blocks * IO_SIZE) as u64
    );

    // Editing: 4 KiB written at 1000 places in the middle of the big file.
    let edit = vec![b'e'; 4096];
    let spots: Vec<u64> = (0..1000u64)
        .map(|i| (i * 7919 % (big_blocks as u64 * 32)) * 4096)
        .collect();
    let fh = vfs.open(attr.ino).unwrap();
    let core = time(|| {
        for &at in &spots {
            vfs.write(fh, at, &edit).unwrap();
        }
    });
    vfs.release(fh).unwrap();
    let host = time(|| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(plain.join("big"))
            .unwrap();
        for &at in &spots {
            std::os::unix::fs::FileExt::write_all_at(&f, &edit, at).unwrap();
        }
    });
    rows.push((
        "overwrite 4 KiB at 1000 places of it".to_string(),
        core,
        host,
    ));

    let core = time(|| {
        for n in &names {
            vfs.unlink(Ino::ROOT, n.as_bytes()).unwrap();
        }
        vfs.unlink(Ino::ROOT, b"big").unwrap();
    });
    let host = time(|| {
        for n in &names {
            std::fs::remove_file(plain.join(n)).unwrap();
        }
        std::fs::remove_file(plain.join("big")).unwrap();
    });
    rows.push(("delete all".to_string(), core, host));
    let core = time(|| vfs.compact().unwrap());
    rows.push((
        "give the space back (compact; plain dir: none)".to_string(),
        core,
        Duration::ZERO,
    ));

    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "workload", "agentfs core", "plain dir", "ratio"
    );
    for (name, core, host) in rows {
        let ratio = if host.is_zero() {
            "-".to_string()
        } else {
            format!("{:.1}x", core.as_secs_f64() / host.as_secs_f64())
        };
        println!(
            "{:<48} {:>10.1}ms {:>10.1}ms {:>8}",
            name,
            core.as_secs_f64() * 1e3,
            host.as_secs_f64() * 1e3,
            ratio
        );
    }
    let db_size = agentfs::session::size_on_disk(&tmp.path().join("bench.db"));
    println!(
        "database size after deleting everything: {} KiB",
        db_size / 1024
    );
}
