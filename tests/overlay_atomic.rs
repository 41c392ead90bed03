//! An overlay operation made of several steps (copy-ups, the change, whiteouts) commits all of
//! them or none: a step that fails late leaves the session as it was before the operation.
//!
//! The failure is forced with a trigger that refuses new whiteouts, which every one of these
//! operations writes last.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use agentfs::overlay::Overlay;
use agentfs::store::OpenMode;
use agentfs::vfs::{FileKind, Ino, RenameFlags, SetAttr, Vfs, VfsError};

mod common;

struct Session {
    _top: tempfile::TempDir,
    overlay: Overlay,
}

/// A session over a base tree (`README`, `src/main.rs`, `src/lib/util.rs`), opened through the
/// library (no kernel).
fn session() -> Session {
    let top = tempfile::tempdir().unwrap();
    let base = top.path().join("base");
    fs::create_dir_all(base.join("src/lib")).unwrap();
    fs::write(base.join("README"), "read me\n").unwrap();
    fs::write(base.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(base.join("src/lib/util.rs"), "pub fn util() {}\n").unwrap();
    let home = top.path().join("home");
    common::agentfs(&home, &["init", "s", "--base", base.to_str().unwrap()]);
    let vfs = Vfs::open_session(&home.join("s.db"), OpenMode::Existing).unwrap();
    let overlay = Overlay::new(Arc::new(vfs), Some(base));
    Session { _top: top, overlay }
}

impl Session {
    fn sql(&self, sql: &str) {
        self.overlay
            .vfs()
            .store()
            .unwrap()
            .conn
            .execute_batch(sql)
            .unwrap();
    }

    fn count(&self, table: &str) -> i64 {
        let store = self.overlay.vfs().store().unwrap();
        store
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// Row counts of every table an overlay operation writes.
    fn rows(&self) -> Vec<(&'static str, i64)> {
        [
            "fs_inode",
            "fs_dentry",
            "fs_whiteout",
            "fs_origin",
            "fs_change",
            "fs_data",
        ]
        .into_iter()
        .map(|t| (t, self.count(t)))
        .collect()
    }

    fn refuse_whiteouts(&self) {
        self.sql(
            "CREATE TRIGGER test_refuse BEFORE INSERT ON fs_whiteout \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        );
    }

    fn lookup_path(&self, path: &str) -> Result<agentfs::vfs::Attr, VfsError> {
        let mut at = Ino::ROOT;
        let mut attr = self.overlay.getattr(at)?;
        for name in path.split('/') {
            attr = self.overlay.lookup(at, name.as_bytes())?;
            at = attr.ino;
        }
        Ok(attr)
    }

    fn exists(&self, path: &str) -> bool {
        match self.lookup_path(path) {
            Ok(_) => true,
            Err(VfsError::NotFound) => false,
            Err(e) => panic!("lookup of {path}: {e}"),
        }
    }
}

#[test]
fn a_base_directory_whose_move_fails_late_stays_where_it_was_and_nothing_is_copied_up() {
    let s = session();
    let before = s.rows();
    s.refuse_whiteouts();
    let moved = s.overlay.rename(
        Ino::ROOT,
        b"src",
        Ino::ROOT,
        b"src2",
        RenameFlags::default(),
    );
    assert!(
        moved.is_err(),
        "the whiteout was refused, so the move must fail"
    );
    assert!(s.exists("src/lib/util.rs"));
    assert!(
        !s.exists("src2"),
        "half a rename: the directory is at both paths"
    );
    assert_eq!(s.rows(), before, "the failed move left rows behind");
}

#[test]
fn a_copied_up_file_whose_removal_fails_late_keeps_its_changes() {
    let s = session();
    let readme = s.lookup_path("README").unwrap();
    let chmod = SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    s.overlay.setattr(readme.ino, &chmod).unwrap();
    let before = s.rows();
    s.refuse_whiteouts();
    assert!(s.overlay.unlink(Ino::ROOT, b"README").is_err());
    let after = s.lookup_path("README").expect("README is gone");
    assert_eq!(
        after.perm & 0o777,
        0o600,
        "the base's README came back in place of the changed one"
    );
    assert_eq!(after.kind, FileKind::File);
    assert_eq!(s.rows(), before);
}

#[test]
fn a_file_moved_into_a_base_directory_is_at_one_path_after_a_late_failure() {
    let s = session();
    let before = s.rows();
    s.refuse_whiteouts();
    let lib = s.lookup_path("src/lib").unwrap();
    let moved = s.overlay.rename(
        Ino::ROOT,
        b"README",
        lib.ino,
        b"README",
        RenameFlags::default(),
    );
    assert!(moved.is_err());
    assert!(s.exists("README"));
    assert!(!s.exists("src/lib/README"));
    assert_eq!(s.rows(), before);
    // Once whiteouts are accepted again the same move works, in one piece.
    s.sql("DROP TRIGGER test_refuse");
    s.overlay
        .rename(
            Ino::ROOT,
            b"README",
            lib.ino,
            b"README",
            RenameFlags::default(),
        )
        .unwrap();
    assert!(!s.exists("README"));
    assert!(s.exists("src/lib/README"));
    let base = s
        .overlay
        .vfs()
        .store()
        .unwrap()
        .base_path()
        .unwrap()
        .unwrap();
    assert!(
        Path::new(&base).join("README").exists(),
        "the base was changed"
    );
}
