//! The on-disk format: opening foreign SPEC 0.4 databases, refusing what is not a session,
//! and the version rules.

use agentfs::store::{FORMAT_VERSION, OpenMode, Store, StoreError};
use agentfs::vfs::{FileKind, Ino, Vfs, VfsError};

fn fixture_db(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(include_str!("fixtures/spec04_foreign.sql"))
        .unwrap();
    path
}

#[test]
fn foreign_spec_04_database_opens_reads_and_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_db(&dir);
    let vfs = Vfs::open_session(&path, OpenMode::Existing).unwrap();
    let main = vfs.resolve(b"/src/main.rs", true).unwrap();
    let data = vfs.read_ino(main, 0, 10_000).unwrap();
    assert_eq!(data.len(), 5000);
    assert!(data[..4096].iter().all(|&b| b == b'a'));
    assert!(data[4096..].iter().all(|&b| b == b'b'));
    assert_eq!(vfs.resolve(b"/link", true).unwrap(), main);
    assert_eq!(vfs.getattr(Ino(4)).unwrap().kind, FileKind::Symlink);
    let version: i64 = vfs
        .store()
        .unwrap()
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, FORMAT_VERSION);
    // Our tables now exist and the database still works for writes.
    let fh = vfs.open(main).unwrap();
    vfs.write(fh, 4999, b"!").unwrap();
    vfs.release(fh).unwrap();
    assert_eq!(vfs.read_ino(main, 4998, 5).unwrap(), b"b!");
    let changes: i64 = vfs
        .store()
        .unwrap()
        .conn
        .query_row("SELECT count(*) FROM fs_change", [], |r| r.get(0))
        .unwrap();
    assert_eq!(changes, 1);
    let kv = agentfs::kv::get(&vfs.store().unwrap().conn, "agent").unwrap();
    assert_eq!(kv.as_deref(), Some(r#"{"name":"other"}"#));
}

#[test]
fn newer_format_is_refused_with_upgrade_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path, OpenMode::Create).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Store::open(&path, OpenMode::Existing).err().unwrap();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("Upgrade agentfs"), "{err}");
}

#[test]
fn other_sqlite_database_is_not_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER)")
        .unwrap();
    let err = Store::open(&path, OpenMode::Existing).err().unwrap();
    assert!(matches!(err, StoreError::NotSession(_)), "{err}");
    assert!(err.to_string().contains("not an agentfs session"), "{err}");
    // Refusing must not have changed the file: same tables, journal mode not switched to WAL.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
}

#[test]
fn non_sqlite_and_empty_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in [
        ("text.db", &b"hello, this is not a database at all"[..]),
        ("empty.db", b""),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let err = Vfs::open_session(&path, OpenMode::Existing).err().unwrap();
        assert!(
            matches!(err, VfsError::Store(StoreError::NotSqlite(_))),
            "{name}: {err}"
        );
        assert!(err.to_string().contains("not a SQLite database"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            contents,
            "file left untouched"
        );
    }
}

#[test]
fn missing_database_is_reported_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    let err = Store::open(&path, OpenMode::Existing).err().unwrap();
    assert!(matches!(err, StoreError::Missing(_)), "{err}");
    assert!(!path.exists());
}

#[test]
fn new_database_has_spec_tables_wal_and_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&path, OpenMode::Create).unwrap();
    let conn = &store.conn;
    for t in [
        "fs_config",
        "fs_inode",
        "fs_dentry",
        "fs_data",
        "fs_symlink",
        "fs_whiteout",
        "fs_origin",
        "fs_overlay_config",
        "kv_store",
        "tool_calls",
        "fs_xattr",
        "fs_change",
        "fs_runner",
        "fs_content_hash",
        "fs_orphan",
    ] {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [t],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "table {t}");
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let (root_mode, chunk): (i64, String) = conn
        .query_row(
            "SELECT (SELECT mode FROM fs_inode WHERE ino = 1), (SELECT value FROM fs_config WHERE key = 'chunk_size')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((root_mode, chunk.as_str()), (0o040755, "4096"));
    assert_eq!(store.chunk_size, 4096);
}

#[test]
fn spec_tables_have_exactly_the_spec_columns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db"), OpenMode::Create).unwrap();
    let cols = |t: &str| -> Vec<(String, String)> {
        let mut stmt = store
            .conn
            .prepare(&format!("PRAGMA table_info({t})"))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let names = |v: Vec<(String, String)>| {
        v.into_iter()
            .map(|(n, t)| format!("{n}:{t}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(
        names(cols("fs_dentry")),
        "id:INTEGER,name:TEXT,parent_ino:INTEGER,ino:INTEGER"
    );
    assert_eq!(
        names(cols("fs_data")),
        "ino:INTEGER,chunk_index:INTEGER,data:BLOB"
    );
    assert_eq!(
        names(cols("fs_whiteout")),
        "path:TEXT,parent_path:TEXT,created_at:INTEGER"
    );
    assert_eq!(
        names(cols("fs_origin")),
        "delta_ino:INTEGER,base_ino:INTEGER"
    );
    assert_eq!(
        names(cols("fs_inode")),
        "ino:INTEGER,mode:INTEGER,nlink:INTEGER,uid:INTEGER,gid:INTEGER,size:INTEGER,atime:INTEGER,\
         mtime:INTEGER,ctime:INTEGER,rdev:INTEGER,atime_nsec:INTEGER,mtime_nsec:INTEGER,ctime_nsec:INTEGER"
    );
}

#[test]
fn tool_calls_of_an_older_session_keep_their_rows_and_gain_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_db(&dir);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO tool_calls (name, parameters, result, error, started_at, completed_at, \
             duration_ms) VALUES ('read', '{}', 'ok', NULL, 100, 101, 1000), \
             ('write', '{}', NULL, 'denied', 200, 200, 5);",
        )
        .unwrap();
    }
    let store = Store::open(&path, OpenMode::Existing).unwrap();
    let rows: Vec<(String, String, i64, Option<i64>)> = store
        .conn
        .prepare("SELECT name, status, started_at, duration_ms FROM tool_calls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            ("read".into(), "success".into(), 100, Some(1000)),
            ("write".into(), "error".into(), 200, Some(5)),
        ]
    );
    // As the SDKs record a call: pending at the start, without an end yet.
    store
        .conn
        .execute(
            "INSERT INTO tool_calls (name, started_at) VALUES ('run', 300)",
            [],
        )
        .unwrap();
    let status: String = store
        .conn
        .query_row(
            "SELECT status FROM tool_calls WHERE name = 'run'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "pending");
}
