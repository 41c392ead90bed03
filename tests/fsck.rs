//! fsck: a filesystem built through the API is clean; each kind of corruption, made with raw
//! SQL, is reported as exactly that kind and (when it can be) repaired without losing data.

use agentfs::fsck::{Problem, ProblemKind, check, repair};
use agentfs::store::OpenMode;
use agentfs::vfs::{Creds, FileKind, Ino, RenameFlags, Vfs, XattrMode};

const ME: Creds = Creds {
    uid: 1000,
    gid: 100,
};

fn new_fs() -> (tempfile::TempDir, Vfs) {
    let dir = tempfile::tempdir().unwrap();
    let vfs = Vfs::open_session(&dir.path().join("s.db"), OpenMode::Create).unwrap();
    (dir, vfs)
}

fn file_in(vfs: &Vfs, parent: Ino, name: &[u8], contents: &[u8]) -> Ino {
    let (a, fh) = vfs.create(parent, name, 0o644, ME).unwrap();
    if !contents.is_empty() {
        vfs.write(fh, 0, contents).unwrap();
    }
    vfs.release(fh).unwrap();
    a.ino
}

fn file(vfs: &Vfs, name: &[u8], contents: &[u8]) -> Ino {
    file_in(vfs, Ino::ROOT, name, contents)
}

fn dir(vfs: &Vfs, parent: Ino, name: &[u8]) -> Ino {
    vfs.mkdir(parent, name, 0o755, ME).unwrap().ino
}

/// Runs raw SQL (the corruption) on the session database.
fn sql(vfs: &Vfs, batch: &str) {
    vfs.store().unwrap().conn.execute_batch(batch).unwrap();
}

fn query_i64(vfs: &Vfs, q: &str) -> i64 {
    vfs.store()
        .unwrap()
        .conn
        .query_row(q, [], |r| r.get(0))
        .unwrap()
}

fn fsck(vfs: &Vfs) -> Vec<Problem> {
    check(&vfs.store().unwrap().conn).unwrap()
}

/// Checks that every problem is of `kind` (and there is at least one); returns them.
fn only(vfs: &Vfs, kind: ProblemKind) -> Vec<Problem> {
    let problems = fsck(vfs);
    assert!(!problems.is_empty(), "expected {kind:?}, found nothing");
    assert!(
        problems.iter().all(|p| p.kind == kind),
        "expected only {kind:?}: {problems:#?}"
    );
    problems
}

/// Repairs, checks that the repair said what it did and left nothing, and that a second
/// check is clean. Returns what it did.
fn repair_all(vfs: &Vfs) -> Vec<String> {
    let report = repair(&mut vfs.store().unwrap().conn).unwrap();
    assert!(report.problems.is_empty(), "left: {:#?}", report.problems);
    assert!(!report.repaired.is_empty(), "repair did nothing");
    assert_eq!(
        fsck(vfs),
        vec![],
        "second check after {:?}",
        report.repaired
    );
    report.repaired
}

fn mentions(problems: &[Problem], words: &[&str]) {
    for w in words {
        assert!(
            problems.iter().any(|p| p.detail.contains(w)),
            "no detail mentions {w:?}: {problems:#?}"
        );
    }
}

fn read_all(vfs: &Vfs, path: &[u8]) -> Vec<u8> {
    let ino = vfs.resolve(path, false).unwrap();
    vfs.read_ino(ino, 0, 1 << 20).unwrap()
}

#[test]
fn filesystem_built_through_the_api_has_no_problems_and_repair_changes_nothing() {
    let (_d, vfs) = new_fs();
    let a = dir(&vfs, Ino::ROOT, b"a");
    let b = dir(&vfs, a, b"b");
    let f = file_in(&vfs, b, b"f", &vec![7u8; 10_000]);
    vfs.link(f, Ino::ROOT, b"hard").unwrap();
    vfs.symlink(a, b"link", b"b/f", ME).unwrap();
    vfs.setxattr(f, b"user.x", b"1", XattrMode::Any).unwrap();
    file(&vfs, b"caf\xe9", b"latin-1 name");
    file(&vfs, b"empty", b"");
    let sparse = file(&vfs, b"sparse", b"");
    let fh = vfs.open(sparse).unwrap();
    vfs.write(fh, 100_000, b"end").unwrap();
    vfs.release(fh).unwrap();
    vfs.content_hash(f).unwrap();
    vfs.rename(a, b"link", Ino::ROOT, b"link2", RenameFlags::default())
        .unwrap();
    file(&vfs, b"gone", b"x");
    vfs.unlink(Ino::ROOT, b"gone").unwrap();
    vfs.mknod(Ino::ROOT, b"fifo", FileKind::Fifo, 0o644, 0, ME)
        .unwrap();
    // A file unlinked while open: an orphan with nlink 0 and no name is fine.
    let open = file(&vfs, b"open", b"still here");
    let fh = vfs.open(open).unwrap();
    vfs.unlink(Ino::ROOT, b"open").unwrap();
    dir(&vfs, b, b"c");
    vfs.rmdir(b, b"c").unwrap();

    assert_eq!(fsck(&vfs), vec![]);
    let report = repair(&mut vfs.store().unwrap().conn).unwrap();
    assert_eq!(report.problems, vec![]);
    assert_eq!(report.repaired, Vec::<String>::new());
    assert_eq!(vfs.read(fh, 0, 100).unwrap(), b"still here");
    vfs.release(fh).unwrap();
    assert_eq!(fsck(&vfs), vec![]);
}

#[test]
fn missing_root_is_reported_and_recreated() {
    let (_d, vfs) = new_fs();
    sql(&vfs, "DELETE FROM fs_inode WHERE ino = 1");
    let p = only(&vfs, ProblemKind::MissingRoot);
    assert!(p[0].repairable);
    mentions(&p, &["root", "does not exist"]);
    repair_all(&vfs);
    assert_eq!(vfs.getattr(Ino::ROOT).unwrap().kind, FileKind::Dir);
}

#[test]
fn root_that_is_not_a_directory_is_reported_and_not_repairable() {
    let (_d, vfs) = new_fs();
    sql(&vfs, "UPDATE fs_inode SET mode = 33188 WHERE ino = 1");
    let p = only(&vfs, ProblemKind::MissingRoot);
    assert!(!p[0].repairable);
    mentions(&p, &["not a directory"]);
    let report = repair(&mut vfs.store().unwrap().conn).unwrap();
    assert_eq!(report.problems, p);
}

#[test]
fn dangling_dentry_is_reported_and_deleted() {
    let (_d, vfs) = new_fs();
    file(&vfs, b"keep", b"data");
    sql(
        &vfs,
        "INSERT INTO fs_dentry (name, parent_ino, ino) VALUES ('ghost', 1, 9999)",
    );
    let p = only(&vfs, ProblemKind::DanglingDentry);
    mentions(&p, &["\"ghost\"", "9999", "does not exist"]);
    let done = repair_all(&vfs);
    assert!(
        done.iter()
            .any(|d| d.contains("deleted 1 directory entries"))
    );
    assert!(vfs.lookup(Ino::ROOT, b"ghost").is_err());
    assert_eq!(read_all(&vfs, b"/keep"), b"data");
}

#[test]
fn entry_in_a_non_directory_is_reported_and_its_inode_goes_to_lost_found() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"contents of f");
    let g = file(&vfs, b"g", b"");
    sql(
        &vfs,
        &format!(
            "UPDATE fs_dentry SET parent_ino = {} WHERE ino = {}",
            g.0, f.0
        ),
    );
    let p = only(&vfs, ProblemKind::MissingParent);
    mentions(&p, &["\"f\"", "not a directory"]);
    repair_all(&vfs);
    let path = format!("/lost+found/#{}", f.0);
    assert_eq!(read_all(&vfs, path.as_bytes()), b"contents of f");
}

#[test]
fn entry_in_a_missing_directory_is_reported_and_repaired() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"x");
    sql(
        &vfs,
        &format!("UPDATE fs_dentry SET parent_ino = 5000 WHERE ino = {}", f.0),
    );
    let p = only(&vfs, ProblemKind::MissingParent);
    mentions(&p, &["5000", "does not exist"]);
    repair_all(&vfs);
    assert_eq!(
        read_all(&vfs, format!("/lost+found/#{}", f.0).as_bytes()),
        b"x"
    );
}

#[test]
fn bad_name_is_reported_and_not_repairable() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"");
    sql(
        &vfs,
        &format!("UPDATE fs_dentry SET name = 'a/b' WHERE ino = {}", f.0),
    );
    let p = only(&vfs, ProblemKind::BadName);
    assert!(!p[0].repairable);
    mentions(&p, &["\"a/b\"", "not a valid file name"]);
}

#[test]
fn directory_hard_link_is_reported_and_the_extra_name_deleted() {
    let (_d, vfs) = new_fs();
    let d = dir(&vfs, Ino::ROOT, b"d");
    file_in(&vfs, d, b"inside", b"kept");
    // A second name for d, with the root's link count matching it.
    sql(
        &vfs,
        &format!(
            "INSERT INTO fs_dentry (name, parent_ino, ino) VALUES ('d2', 1, {});
             UPDATE fs_inode SET nlink = nlink + 1 WHERE ino = 1",
            d.0
        ),
    );
    let p = only(&vfs, ProblemKind::DirectoryHardLink);
    mentions(&p, &["\"d2\"", "more than one name"]);
    repair_all(&vfs);
    assert!(vfs.lookup(Ino::ROOT, b"d2").is_err());
    assert_eq!(read_all(&vfs, b"/d/inside"), b"kept");
    assert_eq!(vfs.getattr(Ino::ROOT).unwrap().nlink, 3);
}

#[test]
fn wrong_nlink_is_reported_and_repaired() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"x");
    vfs.link(f, Ino::ROOT, b"f2").unwrap();
    let d = dir(&vfs, Ino::ROOT, b"d");
    dir(&vfs, d, b"sub");
    sql(
        &vfs,
        &format!(
            "UPDATE fs_inode SET nlink = 3 WHERE ino = {};
             UPDATE fs_inode SET nlink = 7 WHERE ino = {};
             UPDATE fs_inode SET nlink = 0 WHERE ino = 1",
            f.0, d.0
        ),
    );
    let p = only(&vfs, ProblemKind::WrongNlink);
    assert_eq!(p.len(), 3, "{p:#?}");
    mentions(
        &p,
        &[
            &format!("inode {} has nlink 3 but 2 names point at it", f.0),
            &format!("directory {} has nlink 7 but should have 3", d.0),
            "directory 1 has nlink 0 but should have 3",
        ],
    );
    repair_all(&vfs);
    assert_eq!(vfs.getattr(f).unwrap().nlink, 2);
    assert_eq!(vfs.getattr(d).unwrap().nlink, 3);
    assert_eq!(vfs.getattr(Ino::ROOT).unwrap().nlink, 3);
}

#[test]
fn unreachable_inode_is_reported_and_moved_to_lost_found_with_its_data() {
    let (_d, vfs) = new_fs();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let f = file(&vfs, b"f", &data);
    sql(&vfs, &format!("DELETE FROM fs_dentry WHERE ino = {}", f.0));
    let p = only(&vfs, ProblemKind::UnreachableInode);
    assert_eq!(p.len(), 1);
    mentions(&p, &[&format!("file {} (10000 bytes) has no name", f.0)]);
    let done = repair_all(&vfs);
    assert!(
        done.iter().any(|d| d.contains("created /lost+found")),
        "{done:?}"
    );
    let path = format!("/lost+found/#{}", f.0);
    assert_eq!(read_all(&vfs, path.as_bytes()), data);
    let lf = vfs.lookup(Ino::ROOT, b"lost+found").unwrap();
    assert_eq!((lf.kind, lf.perm, lf.nlink), (FileKind::Dir, 0o700, 2));
    assert_eq!(vfs.getattr(f).unwrap().nlink, 1);
    assert_eq!(vfs.getattr(Ino::ROOT).unwrap().nlink, 3);
}

#[test]
fn unreachable_directory_goes_to_lost_found_with_its_subtree_and_link_counts_follow() {
    let (_d, vfs) = new_fs();
    let d = dir(&vfs, Ino::ROOT, b"d");
    let sub = dir(&vfs, d, b"sub");
    file_in(&vfs, sub, b"deep", b"deep data");
    // Also a nameless file with nlink 0 and no orphan row: kept, not deleted.
    let z = file(&vfs, b"z", b"zero links");
    sql(
        &vfs,
        &format!(
            "DELETE FROM fs_dentry WHERE ino IN ({}, {});
             UPDATE fs_inode SET nlink = 0 WHERE ino = {}",
            d.0, z.0, z.0
        ),
    );
    let problems = fsck(&vfs);
    let kinds: Vec<_> = problems.iter().map(|p| p.kind).collect();
    assert!(
        kinds.contains(&ProblemKind::UnreachableInode),
        "{problems:#?}"
    );
    assert!(
        kinds
            .iter()
            .all(|k| matches!(k, ProblemKind::UnreachableInode | ProblemKind::WrongNlink)),
        "{problems:#?}"
    );
    repair_all(&vfs);
    let base = format!("/lost+found/#{}", d.0);
    assert_eq!(
        read_all(&vfs, format!("{base}/sub/deep").as_bytes()),
        b"deep data"
    );
    assert_eq!(
        read_all(&vfs, format!("/lost+found/#{}", z.0).as_bytes()),
        b"zero links"
    );
    assert_eq!(vfs.getattr(z).unwrap().nlink, 1);
    let lf = vfs.lookup(Ino::ROOT, b"lost+found").unwrap();
    assert_eq!(lf.nlink, 3);
}

#[test]
fn existing_lost_found_is_reused() {
    let (_d, vfs) = new_fs();
    let lf = dir(&vfs, Ino::ROOT, b"lost+found");
    let f = file(&vfs, b"f", b"x");
    sql(&vfs, &format!("DELETE FROM fs_dentry WHERE ino = {}", f.0));
    only(&vfs, ProblemKind::UnreachableInode);
    let done = repair_all(&vfs);
    assert!(!done.iter().any(|d| d.contains("created")), "{done:?}");
    assert_eq!(
        vfs.lookup(lf, format!("#{}", f.0).as_bytes()).unwrap().ino,
        f
    );
}

#[test]
fn directory_cycle_is_reported_and_broken_through_lost_found() {
    let (_d, vfs) = new_fs();
    let a = dir(&vfs, Ino::ROOT, b"a");
    let b = dir(&vfs, a, b"b");
    file_in(&vfs, b, b"f", b"in the cycle");
    // a moves under its own child b; link counts are kept consistent with that.
    sql(
        &vfs,
        &format!(
            "UPDATE fs_dentry SET parent_ino = {} WHERE ino = {};
             UPDATE fs_inode SET nlink = 2 WHERE ino = 1;
             UPDATE fs_inode SET nlink = 3 WHERE ino = {}",
            b.0, a.0, b.0
        ),
    );
    let p = only(&vfs, ProblemKind::DirectoryCycle);
    assert_eq!(p.len(), 2, "{p:#?}");
    mentions(&p, &["cycle of directories", &format!("directory {}", a.0)]);
    repair_all(&vfs);
    let path = format!("/lost+found/#{}/b/f", a.0);
    assert_eq!(read_all(&vfs, path.as_bytes()), b"in the cycle");
}

#[test]
fn stale_orphan_row_is_reported_and_deleted() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"x");
    sql(
        &vfs,
        &format!(
            "INSERT INTO fs_orphan (ino, pid, since_ns) VALUES ({}, 1, 1), (8888, 1, 1)",
            f.0
        ),
    );
    let p = only(&vfs, ProblemKind::StaleOrphanRow);
    assert_eq!(p.len(), 2);
    mentions(&p, &["1 names point at it", "8888"]);
    repair_all(&vfs);
    assert_eq!(query_i64(&vfs, "SELECT count(*) FROM fs_orphan"), 0);
    assert_eq!(read_all(&vfs, b"/f"), b"x");
}

#[test]
fn orphan_chunks_are_reported_and_deleted() {
    let (_d, vfs) = new_fs();
    let d = dir(&vfs, Ino::ROOT, b"d");
    sql(
        &vfs,
        &format!(
            "INSERT INTO fs_data (ino, chunk_index, data) VALUES (9999, 0, x'00'), \
             (9999, 1, x'01'), ({}, 0, x'02')",
            d.0
        ),
    );
    let p = only(&vfs, ProblemKind::OrphanChunks);
    mentions(
        &p,
        &[
            "2 data chunks belong to inode 9999, which does not exist",
            "which is a directory",
        ],
    );
    repair_all(&vfs);
    assert_eq!(query_i64(&vfs, "SELECT count(*) FROM fs_data"), 0);
}

#[test]
fn chunk_beyond_size_is_reported_and_deleted() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"hello");
    sql(
        &vfs,
        &format!(
            "INSERT INTO fs_data (ino, chunk_index, data) VALUES ({0}, 3, x'ff'), ({0}, -1, x'ff')",
            f.0
        ),
    );
    let p = only(&vfs, ProblemKind::ChunkBeyondSize);
    mentions(
        &p,
        &[&format!("file {} has 5 bytes but 2 data chunks", f.0)],
    );
    repair_all(&vfs);
    assert_eq!(
        query_i64(
            &vfs,
            &format!("SELECT count(*) FROM fs_data WHERE ino = {}", f.0)
        ),
        1
    );
    assert_eq!(read_all(&vfs, b"/f"), b"hello");
}

#[test]
fn last_chunk_longer_than_the_size_is_reported_and_trimmed() {
    let (_d, vfs) = new_fs();
    let data = vec![b'a'; 5000];
    let f = file(&vfs, b"f", &data);
    sql(
        &vfs,
        &format!(
            "UPDATE fs_data SET data = CAST(data || 'garbage' AS BLOB) \
             WHERE ino = {} AND chunk_index = 1",
            f.0
        ),
    );
    let p = only(&vfs, ProblemKind::SizeMismatch);
    mentions(&p, &["chunk 1", "holds 911 bytes but only 904 fit"]);
    repair_all(&vfs);
    assert_eq!(
        query_i64(
            &vfs,
            &format!(
                "SELECT octet_length(data) FROM fs_data WHERE ino = {} AND chunk_index = 1",
                f.0
            )
        ),
        904
    );
    assert_eq!(read_all(&vfs, b"/f"), data);
}

#[test]
fn wrong_size_of_symlink_and_directory_is_reported_and_set() {
    let (_d, vfs) = new_fs();
    let l = vfs.symlink(Ino::ROOT, b"l", b"target", ME).unwrap().ino;
    let d = dir(&vfs, Ino::ROOT, b"d");
    sql(
        &vfs,
        &format!(
            "UPDATE fs_inode SET size = 99 WHERE ino = {}; \
             UPDATE fs_inode SET size = 4096 WHERE ino = {}",
            l.0, d.0
        ),
    );
    let p = only(&vfs, ProblemKind::SizeMismatch);
    assert_eq!(p.len(), 2);
    mentions(&p, &["should have 6 (its target length)", "should have 0"]);
    repair_all(&vfs);
    assert_eq!(vfs.getattr(l).unwrap().size, 6);
    assert_eq!(vfs.getattr(d).unwrap().size, 0);
}

#[test]
fn short_middle_chunk_is_reported_and_padded_with_zeros() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", &vec![b'x'; 10_000]);
    sql(
        &vfs,
        &format!(
            "UPDATE fs_data SET data = substr(data, 1, 100) WHERE ino = {} AND chunk_index = 0",
            f.0
        ),
    );
    let p = only(&vfs, ProblemKind::ShortChunk);
    mentions(&p, &["chunk 0", "holds 100 bytes"]);
    let seen = read_all(&vfs, b"/f");
    repair_all(&vfs);
    assert_eq!(read_all(&vfs, b"/f"), seen);
    let mut expected = vec![b'x'; 10_000];
    expected[100..4096].fill(0);
    assert_eq!(seen, expected);
}

#[test]
fn symlink_without_target_stays_reported_while_the_rest_is_repaired() {
    let (_d, vfs) = new_fs();
    let l = vfs.symlink(Ino::ROOT, b"l", b"t", ME).unwrap().ino;
    let f = file(&vfs, b"f", b"x");
    sql(
        &vfs,
        &format!(
            "DELETE FROM fs_symlink WHERE ino = {}; UPDATE fs_inode SET nlink = 5 WHERE ino = {}",
            l.0, f.0
        ),
    );
    let before = fsck(&vfs);
    let missing: Vec<_> = before
        .iter()
        .filter(|p| p.kind == ProblemKind::MissingSymlinkTarget)
        .cloned()
        .collect();
    assert_eq!(missing.len(), 1, "{before:#?}");
    assert!(!missing[0].repairable);
    mentions(&missing, &[&format!("symlink {} has no target", l.0)]);
    assert!(before.iter().any(|p| p.kind == ProblemKind::WrongNlink));

    let report = repair(&mut vfs.store().unwrap().conn).unwrap();
    assert_eq!(report.problems, missing);
    assert!(report.repaired.iter().any(|r| r.contains("link count")));
    assert_eq!(vfs.getattr(f).unwrap().nlink, 1);
    assert_eq!(fsck(&vfs), missing);
}

#[test]
fn bad_chunk_size_stays_reported_after_repair() {
    let (_d, vfs) = new_fs();
    file(&vfs, b"f", b"data");
    sql(
        &vfs,
        "UPDATE fs_config SET value = 'zero' WHERE key = 'chunk_size'",
    );
    let p = only(&vfs, ProblemKind::BadChunkSize);
    assert!(!p[0].repairable);
    mentions(&p, &["\"zero\"", "not a positive integer"]);
    let report = repair(&mut vfs.store().unwrap().conn).unwrap();
    assert_eq!(report.problems, p);
    assert_eq!(report.repaired, Vec::<String>::new());
    // The contents were not touched.
    assert_eq!(query_i64(&vfs, "SELECT count(*) FROM fs_data"), 1);
}

#[test]
fn unknown_file_type_is_reported_and_not_repairable() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"");
    sql(
        &vfs,
        &format!("UPDATE fs_inode SET mode = 420 WHERE ino = {}", f.0),
    );
    let p = only(&vfs, ProblemKind::BadMode);
    assert!(!p[0].repairable);
    mentions(&p, &["0o644", "no known file type"]);
}

#[test]
fn side_rows_of_missing_inodes_are_reported_and_deleted() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"x");
    vfs.setxattr(f, b"user.keep", b"v", XattrMode::Any).unwrap();
    sql(
        &vfs,
        "INSERT INTO fs_symlink (ino, target) VALUES (9001, 't');
         INSERT INTO fs_xattr (ino, name, value) VALUES (9002, 'user.a', x'00');
         INSERT INTO fs_content_hash (ino, blake3, size) VALUES (9003, x'00', 0);
         INSERT INTO fs_origin (delta_ino, base_ino) VALUES (9004, 5);",
    );
    let p = only(&vfs, ProblemKind::RowForMissingInode);
    assert_eq!(p.len(), 4);
    mentions(
        &p,
        &[
            "fs_symlink has a row for inode 9001",
            "fs_xattr has attribute \"user.a\" for inode 9002",
            "fs_content_hash has a row for inode 9003",
            "fs_origin has a row for inode 9004",
        ],
    );
    repair_all(&vfs);
    assert_eq!(vfs.getxattr(f, b"user.keep").unwrap(), b"v");
    assert_eq!(query_i64(&vfs, "SELECT count(*) FROM fs_xattr"), 1);
}

#[test]
fn stale_content_hash_is_reported_and_deleted() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"hash me");
    let hash = vfs.content_hash(f).unwrap();
    sql(&vfs, "UPDATE fs_content_hash SET size = size + 1");
    let p = only(&vfs, ProblemKind::StaleContentHash);
    mentions(&p, &["is for 8 bytes", "(size 7)"]);
    repair_all(&vfs);
    assert_eq!(query_i64(&vfs, "SELECT count(*) FROM fs_content_hash"), 0);
    assert_eq!(vfs.content_hash(f).unwrap(), hash);
}

#[test]
fn shadowed_whiteout_is_reported_and_deleted_for_text_and_byte_names() {
    let (_d, vfs) = new_fs();
    let a = dir(&vfs, Ino::ROOT, b"a");
    file_in(&vfs, a, b"b", b"");
    file(&vfs, b"caf\xe9", b"");
    file(&vfs, b"caf\xc3\xa9", b"");
    sql(
        &vfs,
        "INSERT INTO fs_whiteout (path, parent_path, created_at) VALUES
           ('/a/b', '/a', 1), ('/a/nothing', '/a', 1), ('/gone', '/', 1),
           (x'2f636166e9', '/', 1), ('/café', '/', 1), ('/a/b/c', '/a/b', 1);",
    );
    let p = only(&vfs, ProblemKind::ShadowedWhiteout);
    assert_eq!(p.len(), 3, "{p:#?}");
    mentions(&p, &["\"/a/b\"", "\"/caf\\xe9\"", "\"/café\""]);
    repair_all(&vfs);
    let left: Vec<String> = {
        let s = vfs.store().unwrap();
        let mut stmt = s
            .conn
            .prepare("SELECT path FROM fs_whiteout ORDER BY path")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(left, ["/a/b/c", "/a/nothing", "/gone"]);
}

#[test]
fn journal_rows_with_unknown_op_or_bad_time_are_reported_only() {
    let (_d, vfs) = new_fs();
    file(&vfs, b"f", b"x");
    sql(
        &vfs,
        "INSERT INTO fs_change (time_ns, op) VALUES (5, 'frobnicate'), (0, 'create')",
    );
    let p = only(&vfs, ProblemKind::JournalSanity);
    assert_eq!(p.len(), 2);
    assert!(p.iter().all(|p| !p.repairable));
    mentions(&p, &["op \"frobnicate\"", "time_ns 0"]);
    let report = repair(&mut vfs.store().unwrap().conn).unwrap();
    assert_eq!(report.problems, p);
    assert_eq!(report.repaired, Vec::<String>::new());
}

#[test]
fn damaged_database_is_reported_and_repair_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let vfs = Vfs::open_session(&path, OpenMode::Create).unwrap();
        let d = vfs.mkdir(Ino::ROOT, b"d", 0o755, ME).unwrap().ino;
        for i in 0..20 {
            file_in(&vfs, d, format!("f{i}").as_bytes(), b"x");
        }
        // Make the index on fs_dentry(ino) claim to index another column: its stored entries
        // no longer match the table.
        sql(
            &vfs,
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX fs_dentry_by_ino ON fs_dentry(parent_ino)'
               WHERE name = 'fs_dentry_by_ino';
             PRAGMA writable_schema = OFF;",
        );
    }
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let problems = check(&conn).unwrap();
    assert!(
        problems.iter().any(|p| p.kind == ProblemKind::Integrity),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .all(|p| p.kind != ProblemKind::Integrity || !p.repairable)
    );
    let changes: i64 = conn
        .query_row("SELECT count(*) FROM fs_change", [], |r| r.get(0))
        .unwrap();
    let report = repair(&mut conn).unwrap();
    assert_eq!(report.repaired, Vec::<String>::new());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::Integrity)
    );
    let after: i64 = conn
        .query_row("SELECT count(*) FROM fs_change", [], |r| r.get(0))
        .unwrap();
    assert_eq!(after, changes);
}

#[test]
fn repairs_are_journaled_so_mounts_see_them() {
    let (_d, vfs) = new_fs();
    let f = file(&vfs, b"f", b"x");
    sql(&vfs, &format!("DELETE FROM fs_dentry WHERE ino = {}", f.0));
    let last = vfs.last_change_seq().unwrap();
    repair_all(&vfs);
    let ops: Vec<(String, Option<String>)> = {
        let s = vfs.store().unwrap();
        let mut stmt = s
            .conn
            .prepare("SELECT op, path FROM fs_change WHERE seq > ?1 ORDER BY seq")
            .unwrap();
        stmt.query_map([last], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        ops,
        [
            ("mkdir".to_string(), Some("/lost+found".to_string())),
            ("link".to_string(), Some(format!("/lost+found/#{}", f.0))),
        ]
    );
}

#[test]
fn many_problems_of_one_kind_are_listed_up_to_a_limit_then_summed_up() {
    let (_d, vfs) = new_fs();
    sql(
        &vfs,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)
         INSERT INTO fs_dentry (name, parent_ino, ino) SELECT 'ghost' || i, 1, 100000 + i FROM n;",
    );
    let p = only(&vfs, ProblemKind::DanglingDentry);
    assert_eq!(p.len(), agentfs::fsck::MAX_PER_KIND + 1);
    mentions(&p, &["and 150 more"]);
    repair_all(&vfs);
}

#[test]
fn check_and_repair_of_100k_inodes_run_as_set_queries() {
    let (_d, vfs) = new_fs();
    // 100 directories of 1000 one-chunk files each, written directly.
    sql(
        &vfs,
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
         INSERT INTO fs_inode (ino, mode, nlink, size, atime, mtime, ctime)
           SELECT 1000 + i, 16877, 2, 0, 0, 0, 0 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
         INSERT INTO fs_dentry (name, parent_ino, ino) SELECT 'd' || i, 1, 1000 + i FROM n;
         UPDATE fs_inode SET nlink = 102 WHERE ino = 1;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
         INSERT INTO fs_inode (ino, mode, nlink, size, atime, mtime, ctime)
           SELECT 10000 + i, 33188, 1, 3, 0, 0, 0 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
         INSERT INTO fs_dentry (name, parent_ino, ino)
           SELECT 'f' || i, 1001 + i / 1000, 10000 + i FROM n;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
         INSERT INTO fs_data (ino, chunk_index, data) SELECT 10000 + i, 0, x'616263' FROM n;
         COMMIT;",
    );
    let t = std::time::Instant::now();
    assert_eq!(fsck(&vfs), vec![]);
    let clean = t.elapsed();
    // Break a few things and repair them all at once.
    sql(
        &vfs,
        "DELETE FROM fs_dentry WHERE ino = 50000;
         UPDATE fs_inode SET nlink = 9 WHERE ino = 60000;
         INSERT INTO fs_data (ino, chunk_index, data) VALUES (70000, 5, x'00');",
    );
    let kinds: Vec<_> = fsck(&vfs).iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            ProblemKind::WrongNlink,
            ProblemKind::UnreachableInode,
            ProblemKind::ChunkBeyondSize
        ]
    );
    let t = std::time::Instant::now();
    repair_all(&vfs);
    eprintln!(
        "check of 100k inodes: {clean:?}; repair with two checks: {:?}",
        t.elapsed()
    );
    assert!(clean.as_secs() < 30, "check took {clean:?}");
    assert_eq!(read_all(&vfs, b"/lost+found/#50000"), b"abc");
}

#[test]
fn directory_link_counts_of_other_spec_writers_are_accepted() {
    // The AgentFS SDKs make directories with nlink 1 and leave the parent's count alone.
    let (_d, vfs) = new_fs();
    let d = dir(&vfs, Ino::ROOT, b"d");
    let sub = dir(&vfs, d, b"sub");
    file_in(&vfs, sub, b"f", b"x");
    sql(
        &vfs,
        &format!(
            "UPDATE fs_inode SET nlink = 2 WHERE ino = 1;
             UPDATE fs_inode SET nlink = 1 WHERE ino IN ({}, {});",
            d.0, sub.0
        ),
    );
    assert!(fsck(&vfs).is_empty(), "{:#?}", fsck(&vfs));
    // Removing a subdirectory never takes a live directory's count to 0.
    vfs.unlink(sub, b"f").unwrap();
    vfs.rmdir(d, b"sub").unwrap();
    assert_eq!(vfs.getattr(d).unwrap().nlink, 1);
    assert!(fsck(&vfs).is_empty(), "{:#?}", fsck(&vfs));
}
