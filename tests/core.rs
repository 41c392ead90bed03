//! POSIX semantics of the core that the differential test does not see: times, open-unlinked
//! files, crash leftovers, xattrs, readdir cursors, byte names, node kinds, the journal.

use agentfs::store::OpenMode;
use agentfs::vfs::{
    Creds, FileKind, Ino, RenameFlags, SetAttr, TimeSet, Timestamp, Vfs, VfsError, XattrMode,
};

const ME: Creds = Creds {
    uid: 1000,
    gid: 100,
};

fn new_fs() -> (tempfile::TempDir, Vfs) {
    let dir = tempfile::tempdir().unwrap();
    let vfs = Vfs::open_session(&dir.path().join("s.db"), OpenMode::Create).unwrap();
    (dir, vfs)
}

fn file(vfs: &Vfs, name: &[u8], contents: &[u8]) -> Ino {
    let (a, fh) = vfs.create(Ino::ROOT, name, 0o644, ME).unwrap();
    vfs.write(fh, 0, contents).unwrap();
    vfs.release(fh).unwrap();
    a.ino
}

/// Waits until the clock has moved past `t`, so a later timestamp is strictly greater.
fn after(t: Timestamp) {
    while Timestamp::now() <= t {
        std::hint::spin_loop();
    }
}

#[test]
fn create_sets_owner_and_bumps_parent_mtime_and_ctime() {
    let (_d, vfs) = new_fs();
    let before = vfs.getattr(Ino::ROOT).unwrap();
    after(before.mtime);
    let ino = file(&vfs, b"f", b"");
    let a = vfs.getattr(ino).unwrap();
    assert_eq!(
        (a.uid, a.gid, a.perm, a.nlink, a.kind),
        (1000, 100, 0o644, 1, FileKind::File)
    );
    let root = vfs.getattr(Ino::ROOT).unwrap();
    assert!(root.mtime > before.mtime && root.ctime > before.ctime);
}

#[test]
fn write_changes_mtime_and_ctime_but_chmod_only_ctime() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", b"x");
    let a0 = vfs.getattr(ino).unwrap();
    after(a0.ctime);
    let a1 = vfs
        .setattr(
            ino,
            &SetAttr {
                mode: Some(0o600),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(a1.mtime, a0.mtime);
    assert!(a1.ctime > a0.ctime);
    assert_eq!(a1.perm, 0o600);
    after(a1.ctime);
    let fh = vfs.open(ino).unwrap();
    vfs.write(fh, 5, b"yz").unwrap();
    vfs.release(fh).unwrap();
    let a2 = vfs.getattr(ino).unwrap();
    assert!(a2.mtime > a1.mtime && a2.ctime > a1.ctime);
    assert_eq!(a2.size, 7);
}

#[test]
fn utimens_sets_exact_times_and_now_and_omit() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", b"");
    let t = Timestamp {
        sec: 1_000_000_000,
        nsec: 123_456_789,
    };
    let a = vfs
        .setattr(
            ino,
            &SetAttr {
                atime: Some(TimeSet::At(t)),
                mtime: Some(TimeSet::At(t)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((a.atime, a.mtime), (t, t));
    // mtime omitted: stays; atime now: moves to the present.
    let a = vfs
        .setattr(
            ino,
            &SetAttr {
                atime: Some(TimeSet::Now),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(a.mtime, t);
    assert!(a.atime.sec > t.sec);
}

#[test]
fn truncate_sets_size_and_mtime_and_zero_fills_growth() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", &[7u8; 5000]);
    let a0 = vfs.getattr(ino).unwrap();
    after(a0.mtime);
    let a1 = vfs
        .setattr(
            ino,
            &SetAttr {
                size: Some(10),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(a1.size, 10);
    assert!(a1.mtime > a0.mtime);
    vfs.setattr(
        ino,
        &SetAttr {
            size: Some(9000),
            ..Default::default()
        },
    )
    .unwrap();
    let data = vfs.read_ino(ino, 0, 10_000).unwrap();
    assert_eq!(data.len(), 9000);
    assert_eq!(&data[..10], &[7u8; 10]);
    assert!(data[10..].iter().all(|&b| b == 0));
}

#[test]
fn holes_store_no_chunks() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"sparse", b"");
    let fh = vfs.open(ino).unwrap();
    vfs.write(fh, 100 << 20, b"end").unwrap();
    vfs.release(fh).unwrap();
    let chunks: i64 = vfs
        .store()
        .unwrap()
        .conn
        .query_row(
            "SELECT count(*) FROM fs_data WHERE ino = ?1",
            [ino.0 as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(chunks, 1);
    assert_eq!(vfs.getattr(ino).unwrap().size, (100 << 20) + 3);
    assert_eq!(vfs.read_ino(ino, 50 << 20, 4).unwrap(), vec![0; 4]);
}

#[test]
fn unlinked_open_file_keeps_data_until_release() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", b"still here");
    let fh = vfs.open(ino).unwrap();
    vfs.unlink(Ino::ROOT, b"f").unwrap();
    assert!(matches!(
        vfs.lookup(Ino::ROOT, b"f"),
        Err(VfsError::NotFound)
    ));
    assert_eq!(vfs.read(fh, 0, 100).unwrap(), b"still here");
    vfs.write(fh, 0, b"STILL").unwrap();
    assert_eq!(vfs.read(fh, 0, 100).unwrap(), b"STILL here");
    assert_eq!(vfs.getattr(ino).unwrap().nlink, 0);
    vfs.release(fh).unwrap();
    assert!(matches!(vfs.getattr(ino), Err(VfsError::NotFound)));
    let rows: i64 = vfs
        .store()
        .unwrap()
        .conn
        .query_row("SELECT count(*) FROM fs_data", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn file_replaced_by_rename_while_open_keeps_data() {
    let (_d, vfs) = new_fs();
    let victim = file(&vfs, b"victim", b"old");
    file(&vfs, b"new", b"new");
    let fh = vfs.open(victim).unwrap();
    vfs.rename(
        Ino::ROOT,
        b"new",
        Ino::ROOT,
        b"victim",
        RenameFlags::default(),
    )
    .unwrap();
    assert_eq!(vfs.read(fh, 0, 10).unwrap(), b"old");
    vfs.release(fh).unwrap();
    assert!(vfs.getattr(victim).is_err());
}

#[test]
fn orphans_of_a_crashed_process_are_cleaned_on_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let ino = {
        let vfs = Vfs::open_session(&db, OpenMode::Create).unwrap();
        let ino = file(&vfs, b"f", &[1u8; 10_000]);
        let _fh = vfs.open(ino).unwrap();
        vfs.unlink(Ino::ROOT, b"f").unwrap();
        // Pretend the process that held it open died: a pid that cannot be running.
        vfs.store()
            .unwrap()
            .conn
            .execute("UPDATE fs_orphan SET pid = 2147483647", [])
            .unwrap();
        ino
        // dropped without release, as a crash would
    };
    let vfs = Vfs::open_session(&db, OpenMode::Existing).unwrap();
    assert!(matches!(vfs.getattr(ino), Err(VfsError::NotFound)));
    let (data, orphans): (i64, i64) = vfs
        .store()
        .unwrap()
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM fs_data), (SELECT count(*) FROM fs_orphan)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((data, orphans), (0, 0));
}

#[test]
fn orphans_of_a_live_process_survive_another_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let vfs = Vfs::open_session(&db, OpenMode::Create).unwrap();
    let ino = file(&vfs, b"f", b"data");
    let fh = vfs.open(ino).unwrap();
    vfs.unlink(Ino::ROOT, b"f").unwrap();
    let _other = Vfs::open_session(&db, OpenMode::Existing).unwrap();
    assert_eq!(vfs.read(fh, 0, 10).unwrap(), b"data");
}

#[test]
fn xattrs_set_get_list_remove_with_create_and_replace_flags() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", b"");
    vfs.setxattr(ino, b"user.b", b"2", XattrMode::Any).unwrap();
    vfs.setxattr(ino, b"user.a", b"\x00\xff", XattrMode::Create)
        .unwrap();
    assert!(matches!(
        vfs.setxattr(ino, b"user.a", b"x", XattrMode::Create),
        Err(VfsError::Exists)
    ));
    assert!(matches!(
        vfs.setxattr(ino, b"user.c", b"x", XattrMode::Replace),
        Err(VfsError::NoAttr)
    ));
    vfs.setxattr(ino, b"user.b", b"3", XattrMode::Replace)
        .unwrap();
    assert_eq!(vfs.getxattr(ino, b"user.a").unwrap(), b"\x00\xff");
    assert_eq!(vfs.getxattr(ino, b"user.b").unwrap(), b"3");
    assert_eq!(
        vfs.listxattr(ino).unwrap(),
        vec![b"user.a".to_vec(), b"user.b".to_vec()]
    );
    vfs.removexattr(ino, b"user.a").unwrap();
    assert!(matches!(
        vfs.getxattr(ino, b"user.a"),
        Err(VfsError::NoAttr)
    ));
    assert!(matches!(
        vfs.removexattr(ino, b"user.a"),
        Err(VfsError::NoAttr)
    ));
    assert_eq!(VfsError::NoAttr.errno(), libc::ENODATA);
    // An empty value is a value; a missing inode is not a missing attribute.
    vfs.setxattr(ino, b"user.e", b"", XattrMode::Any).unwrap();
    assert_eq!(vfs.getxattr(ino, b"user.e").unwrap(), b"");
    assert!(matches!(
        vfs.getxattr(Ino(ino.0 + 1000), b"user.e"),
        Err(VfsError::NotFound)
    ));
}

#[test]
fn readdir_offsets_stay_valid_while_entries_change() {
    let (_d, vfs) = new_fs();
    for i in 0..10 {
        file(&vfs, format!("f{i}").as_bytes(), b"");
    }
    let first = vfs.readdir(Ino::ROOT, 0, 4).unwrap();
    assert_eq!(first.len(), 4);
    // Remove an entry already returned and one not yet returned; add a new one.
    vfs.unlink(Ino::ROOT, b"f1").unwrap();
    vfs.unlink(Ino::ROOT, b"f6").unwrap();
    file(&vfs, b"late", b"");
    let rest = vfs
        .readdir(Ino::ROOT, first.last().unwrap().offset, 100)
        .unwrap();
    let names: Vec<String> = rest
        .iter()
        .map(|e| String::from_utf8(e.name.clone()).unwrap())
        .collect();
    assert_eq!(names, ["f4", "f5", "f7", "f8", "f9", "late"]);
}

#[test]
fn names_are_bytes_and_utf8_names_stay_text() {
    let (_d, vfs) = new_fs();
    let latin1 = b"caf\xe9";
    file(&vfs, latin1, b"1");
    file(&vfs, "café".as_bytes(), b"2");
    let a = vfs.lookup(Ino::ROOT, latin1).unwrap().ino;
    let b = vfs.lookup(Ino::ROOT, "café".as_bytes()).unwrap().ino;
    assert_ne!(a, b);
    let types: Vec<String> = {
        let conn = &vfs.store().unwrap().conn;
        let mut stmt = conn
            .prepare("SELECT typeof(name) FROM fs_dentry ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(types, ["blob", "text"]);
    let names: Vec<Vec<u8>> = vfs
        .readdir(Ino::ROOT, 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![latin1.to_vec(), "café".as_bytes().to_vec()]);
}

#[test]
fn bad_names_are_rejected_with_the_kernel_errno() {
    let (_d, vfs) = new_fs();
    let long = vec![b'x'; 256];
    let err = vfs.create(Ino::ROOT, &long, 0o644, ME).unwrap_err();
    assert_eq!(err.errno(), libc::ENAMETOOLONG);
    assert_eq!(
        vfs.lookup(Ino::ROOT, &long).unwrap_err().errno(),
        libc::ENAMETOOLONG
    );
    for bad in [&b"a/b"[..], b"a\0b", b"", b".", b".."] {
        assert_eq!(
            vfs.mkdir(Ino::ROOT, bad, 0o755, ME).unwrap_err().errno(),
            libc::EINVAL,
            "{bad:?}"
        );
    }
    assert!(vfs.create(Ino::ROOT, &[b'y'; 255], 0o644, ME).is_ok());
}

#[test]
fn mknod_makes_fifos_sockets_and_devices() {
    let (_d, vfs) = new_fs();
    let fifo = vfs
        .mknod(Ino::ROOT, b"p", FileKind::Fifo, 0o600, 0, ME)
        .unwrap();
    let sock = vfs
        .mknod(Ino::ROOT, b"s", FileKind::Socket, 0o600, 0, ME)
        .unwrap();
    let chr = vfs
        .mknod(Ino::ROOT, b"c", FileKind::CharDevice, 0o600, 0x0501, ME)
        .unwrap();
    let blk = vfs
        .mknod(Ino::ROOT, b"b", FileKind::BlockDevice, 0o600, 0x0802, ME)
        .unwrap();
    assert_eq!(fifo.kind, FileKind::Fifo);
    assert_eq!(sock.kind, FileKind::Socket);
    assert_eq!((chr.kind, chr.rdev), (FileKind::CharDevice, 0x0501));
    assert_eq!((blk.kind, blk.rdev), (FileKind::BlockDevice, 0x0802));
    assert_eq!(vfs.getattr(chr.ino).unwrap().rdev, 0x0501);
}

#[test]
fn directory_nlink_counts_subdirectories() {
    let (_d, vfs) = new_fs();
    let a = vfs.mkdir(Ino::ROOT, b"a", 0o755, ME).unwrap();
    vfs.mkdir(a.ino, b"x", 0o755, ME).unwrap();
    vfs.mkdir(a.ino, b"y", 0o755, ME).unwrap();
    assert_eq!(vfs.getattr(a.ino).unwrap().nlink, 4);
    let b = vfs.mkdir(Ino::ROOT, b"b", 0o755, ME).unwrap();
    vfs.rename(a.ino, b"x", b.ino, b"x", RenameFlags::default())
        .unwrap();
    assert_eq!(vfs.getattr(a.ino).unwrap().nlink, 3);
    assert_eq!(vfs.getattr(b.ino).unwrap().nlink, 3);
    assert_eq!(vfs.getattr(Ino::ROOT).unwrap().nlink, 4);
}

#[test]
fn every_change_lands_in_the_journal_with_paths() {
    let (_d, vfs) = new_fs();
    let _runner = agentfs::vfs::RunnerScope::enter(Some(7));
    let d = vfs.mkdir(Ino::ROOT, b"d", 0o755, ME).unwrap();
    let (f, fh) = vfs.create(d.ino, b"f", 0o644, ME).unwrap();
    vfs.write(fh, 0, b"a").unwrap();
    vfs.write(fh, 1, b"b").unwrap();
    vfs.release(fh).unwrap();
    vfs.rename(d.ino, b"f", Ino::ROOT, b"g", RenameFlags::default())
        .unwrap();
    vfs.unlink(Ino::ROOT, b"g").unwrap();
    type Row = (
        String,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Row> = {
        let conn = &vfs.store().unwrap().conn;
        let mut stmt = conn
            .prepare("SELECT op, ino, path, old_path, runner_id FROM fs_change ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let f = Some(f.ino.0 as i64);
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        rows,
        vec![
            ("mkdir".into(), Some(d.ino.0 as i64), s("/d"), None, Some(7)),
            ("create".into(), f, s("/d/f"), None, Some(7)),
            ("write".into(), f, s("/d/f"), None, Some(7)),
            ("rename".into(), f, s("/g"), s("/d/f"), Some(7)),
            ("unlink".into(), f, s("/g"), None, Some(7)),
        ]
    );
}

#[test]
fn content_hash_is_blake3_and_refreshed_after_writes() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", b"hello");
    assert_eq!(
        vfs.content_hash(ino).unwrap(),
        *blake3::hash(b"hello").as_bytes()
    );
    let fh = vfs.open(ino).unwrap();
    vfs.write(fh, 0, b"J").unwrap();
    vfs.release(fh).unwrap();
    assert_eq!(
        vfs.content_hash(ino).unwrap(),
        *blake3::hash(b"Jello").as_bytes()
    );
}

#[test]
fn fallocate_grows_size_and_keep_size_does_not() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", b"abc");
    vfs.fallocate(ino, 0, 10_000, 0).unwrap();
    assert_eq!(vfs.getattr(ino).unwrap().size, 10_000);
    vfs.fallocate(ino, 0, 50_000, libc::FALLOC_FL_KEEP_SIZE)
        .unwrap();
    assert_eq!(vfs.getattr(ino).unwrap().size, 10_000);
    assert_eq!(&vfs.read_ino(ino, 0, 4).unwrap(), b"abc\0");
    assert_eq!(
        vfs.fallocate(ino, 0, 1, libc::FALLOC_FL_COLLAPSE_RANGE)
            .unwrap_err()
            .errno(),
        libc::EOPNOTSUPP
    );
}

#[test]
fn statfs_reports_name_max_and_inode_count() {
    let (_d, vfs) = new_fs();
    file(&vfs, b"f", b"");
    let s = vfs.statfs().unwrap();
    assert_eq!(s.name_max, 255);
    assert!(s.files >= 2);
    assert!(s.blocks > 0);
}

#[test]
fn fsync_commits_and_returns() {
    let (_d, vfs) = new_fs();
    file(&vfs, b"f", b"durable");
    vfs.fsync().unwrap();
    let sync: String = vfs
        .store()
        .unwrap()
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
        .map(|v| v.to_string())
        .unwrap();
    assert_eq!(sync, "1", "back to NORMAL after the sync");
}

#[test]
fn symlink_resolution_follows_links_and_detects_loops() {
    let (_d, vfs) = new_fs();
    let d = vfs.mkdir(Ino::ROOT, b"d", 0o755, ME).unwrap();
    let (f, fh) = vfs.create(d.ino, b"f", 0o644, ME).unwrap();
    vfs.release(fh).unwrap();
    vfs.symlink(Ino::ROOT, b"l", b"d/f", ME).unwrap();
    vfs.symlink(Ino::ROOT, b"dl", b"/d", ME).unwrap();
    assert_eq!(vfs.resolve(b"/l", true).unwrap(), f.ino);
    assert_eq!(vfs.resolve(b"/dl/f", false).unwrap(), f.ino);
    let l = vfs.resolve(b"/l", false).unwrap();
    assert_eq!(vfs.readlink(l).unwrap(), b"d/f");
    vfs.symlink(Ino::ROOT, b"loop", b"loop", ME).unwrap();
    assert_eq!(
        vfs.resolve(b"/loop", true).unwrap_err().errno(),
        libc::ELOOP
    );
    assert_eq!(vfs.readlink(f.ino).unwrap_err().errno(), libc::EINVAL);
}

#[test]
fn deleting_files_gives_space_back_to_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let vfs = Vfs::open_session(&db, OpenMode::Create).unwrap();
    let ino = file(&vfs, b"big", b"");
    let fh = vfs.open(ino).unwrap();
    for i in 0..256u64 {
        vfs.write(fh, i << 17, &[9u8; 1 << 17]).unwrap();
    }
    vfs.release(fh).unwrap();
    let full = agentfs::session::size_on_disk(&db);
    assert!(full > 32 << 20, "{full}");
    let free = |vfs: &Vfs| -> i64 {
        vfs.store()
            .unwrap()
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap()
    };
    vfs.unlink(Ino::ROOT, b"big").unwrap();
    // The delete itself gave back its budget of pages...
    let left = free(&vfs);
    assert!(
        left > agentfs::store::RECLAIM_THRESHOLD_PAGES,
        "not all at once: {left}"
    );
    // ...each later delete gives back more...
    file(&vfs, b"small", b"x");
    vfs.unlink(Ino::ROOT, b"small").unwrap();
    assert!(free(&vfs) < left);
    // ...and compact gives back the rest and shrinks the file.
    vfs.compact().unwrap();
    assert_eq!(free(&vfs), 0);
    let after = agentfs::session::size_on_disk(&db);
    assert!(
        after < 2 << 20,
        "database still {after} bytes after deleting its only file"
    );
}

#[test]
fn with_background_maintenance_deletes_leave_reclaiming_to_maintain() {
    let (_d, vfs) = new_fs();
    vfs.use_background_maintenance().unwrap();
    let ino = file(&vfs, b"big", b"");
    let fh = vfs.open(ino).unwrap();
    for i in 0..256u64 {
        vfs.write(fh, i << 17, &[3u8; 1 << 17]).unwrap();
    }
    vfs.release(fh).unwrap();
    let free = |vfs: &Vfs| -> i64 {
        vfs.store()
            .unwrap()
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap()
    };
    vfs.unlink(Ino::ROOT, b"big").unwrap();
    let before = free(&vfs);
    assert!(before > 8000, "the delete reclaimed inline: {before}");
    // Right after a change the filesystem is busy: maintenance leaves the pages alone...
    assert!(!vfs.maintain().unwrap());
    assert_eq!(free(&vfs), before);
    // ...and once it has been idle for a moment, gives them back in bounded rounds.
    let start = std::time::Instant::now();
    let mut rounds = 0;
    while free(&vfs) >= agentfs::store::RECLAIM_THRESHOLD_PAGES {
        assert!(
            start.elapsed().as_secs() < 20,
            "maintenance never reclaimed"
        );
        if vfs.maintain().unwrap() {
            rounds += 1;
        } else {
            std::thread::yield_now();
        }
    }
    assert!(rounds >= 2, "work is split into bounded rounds: {rounds}");
    assert!(free(&vfs) < agentfs::store::RECLAIM_THRESHOLD_PAGES);
}

#[test]
fn any_change_holds_back_idle_maintenance_until_the_next_pause() {
    let (d, vfs) = new_fs();
    vfs.use_background_maintenance().unwrap();
    let ino = file(&vfs, b"f", &[1u8; 2 << 20]);
    let wal = d.path().join("s.db-wal");
    let wal_len = || std::fs::metadata(&wal).unwrap().len();
    assert!(wal_len() > agentfs::store::IDLE_WAL_BYTES);
    // Idle for over a second, then a change that neither creates, writes nor frees.
    let pause = std::time::Duration::from_millis(1100);
    std::thread::sleep(pause);
    let chmod = SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    vfs.setattr(ino, &chmod).unwrap();
    vfs.maintain().unwrap();
    assert!(
        wal_len() > agentfs::store::IDLE_WAL_BYTES,
        "maintenance cut the WAL (a checkpoint that fsyncs) right after a change"
    );
    std::thread::sleep(pause);
    vfs.maintain().unwrap();
    assert_eq!(wal_len(), 0, "an idle mount cuts its WAL");
}

#[test]
fn offsets_near_the_2_63_limit_fail_cleanly() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", b"");
    let fh = vfs.open(ino).unwrap();
    let near = (i64::MAX as u64) - 4;
    assert_eq!(
        vfs.write(fh, near, b"0123456789").unwrap_err().errno(),
        libc::EFBIG
    );
    assert_eq!(
        vfs.write(fh, u64::MAX - 2, b"xy").unwrap_err().errno(),
        libc::EFBIG
    );
    assert_eq!(
        vfs.write(fh, near, b"abcd").unwrap(),
        4,
        "ending exactly at the limit is fine"
    );
    assert_eq!(vfs.getattr(ino).unwrap().size, i64::MAX as u64);
    assert_eq!(vfs.read(fh, near, 100).unwrap(), b"abcd");
    assert_eq!(vfs.read(fh, u64::MAX - 1, 100).unwrap(), b"");
    let err = vfs
        .setattr(
            ino,
            &SetAttr {
                size: Some(u64::MAX),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.errno(), libc::EFBIG);
    assert_eq!(
        vfs.fallocate(ino, u64::MAX - 10, 100, 0)
            .unwrap_err()
            .errno(),
        libc::EFBIG
    );
    vfs.release(fh).unwrap();
}

#[test]
fn readdir_of_a_file_or_a_missing_inode_fails() {
    let (_d, vfs) = new_fs();
    let ino = file(&vfs, b"f", b"x");
    assert_eq!(vfs.readdir(ino, 0, 10).unwrap_err().errno(), libc::ENOTDIR);
    assert_eq!(
        vfs.readdir_plus(ino, 0, 10).unwrap_err().errno(),
        libc::ENOTDIR
    );
    assert_eq!(
        vfs.readdir(Ino(999), 0, 10).unwrap_err().errno(),
        libc::ENOENT
    );
    let d = vfs.mkdir(Ino::ROOT, b"empty", 0o755, ME).unwrap();
    assert!(vfs.readdir(d.ino, 0, 10).unwrap().is_empty());
}
