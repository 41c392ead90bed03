//! The command line: happy paths, and every bad input with its message and exit status.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

mod common;
use common::home::Home;

#[test]
fn init_write_read_tree_stat_and_remove() {
    let h = Home::new();
    assert_eq!(h.ok(&["init", "demo"]), "demo\n");
    h.ok(&["fs", "demo", "mkdir", "-p", "/a/b"]);
    h.cmd(&["fs", "demo", "write", "/a/b/f.txt"])
        .write_stdin("from stdin")
        .assert()
        .success();
    assert_eq!(h.ok(&["fs", "demo", "cat", "/a/b/f.txt"]), "from stdin");
    assert_eq!(h.ok(&["fs", "demo", "ls", "/a"]), "b/\n");
    assert_eq!(
        h.ok(&["fs", "demo", "tree"]),
        "/\n└── a/\n    └── b/\n        └── f.txt\n"
    );
    let stat = h.ok(&["fs", "demo", "stat", "/a/b/f.txt"]);
    assert!(
        stat.contains("type: regular file") && stat.contains("size: 10"),
        "{stat}"
    );
    h.ok(&["fs", "demo", "rm", "-r", "/a"]);
    assert_eq!(h.ok(&["fs", "demo", "ls", "/"]), "");
    // The same session by path.
    let db = h.path("demo.db");
    h.ok(&["fs", &db, "write", "/x", "--data", "1"]);
    assert_eq!(h.ok(&["fs", "demo", "cat", "/x"]), "1");
    h.cmd(&["rm", "demo"])
        .assert()
        .success()
        .stderr(contains("removed session demo"));
    assert!(!std::path::Path::new(&db).exists());
}

#[test]
fn sessions_lists_id_base_size_and_times() {
    let h = Home::new();
    h.cmd(&["sessions"])
        .assert()
        .success()
        .stdout(contains("no sessions in"));
    let base = tempfile::tempdir().unwrap();
    h.ok(&["init", "one", "--base", base.path().to_str().unwrap()]);
    h.ok(&["fs", "one", "write", "/f", "--data", "x"]);
    let out = h.ok(&["sessions"]);
    let canon = std::fs::canonicalize(base.path()).unwrap();
    assert!(
        out.contains("one") && out.contains(canon.to_str().unwrap()),
        "{out}"
    );
    assert!(out.contains("KiB") && out.contains("UTC"), "{out}");
}

#[test]
fn init_without_id_makes_one() {
    let h = Home::new();
    let id = h.ok(&["init"]);
    assert_eq!(id.trim().len(), 12);
    h.ok(&["fs", id.trim(), "ls"]);
}

#[test]
fn kv_set_get_list_delete() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    h.ok(&["kv", "s", "set", "model", r#"{"name":"x","n":1}"#]);
    h.ok(&["kv", "s", "set", "count", "3"]);
    assert_eq!(h.ok(&["kv", "s", "get", "count"]), "3\n");
    assert_eq!(
        h.ok(&["kv", "s", "list"]),
        "count\t3\nmodel\t{\"name\":\"x\",\"n\":1}\n"
    );
    h.ok(&["kv", "s", "delete", "count"]);
    assert_eq!(
        h.ok(&["kv", "s", "list"]),
        "model\t{\"name\":\"x\",\"n\":1}\n"
    );
}

#[test]
fn invalid_session_ids_are_refused() {
    let h = Home::new();
    for bad in ["..", ".hidden", "-x", "a b", "semi;colon"] {
        h.cmd(&["init", "--", bad])
            .assert()
            .code(1)
            .stderr(contains("invalid session id"));
    }
    h.cmd(&["fs", "a b", "ls"])
        .assert()
        .code(1)
        .stderr(contains("invalid session id"));
}

#[test]
fn missing_session_says_how_to_create_one() {
    let h = Home::new();
    h.cmd(&["fs", "ghost", "ls"])
        .assert()
        .code(1)
        .stderr(contains("no session \"ghost\"").and(contains("agentfs init ghost")));
    h.cmd(&["kv", "/nowhere/x.db", "list"])
        .assert()
        .code(1)
        .stderr(contains("no session database at /nowhere/x.db"));
    h.cmd(&["rm", "ghost"])
        .assert()
        .code(1)
        .stderr(contains("agentfs init ghost"));
}

#[test]
fn init_of_existing_session_is_refused_and_keeps_it() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    h.ok(&["fs", "s", "write", "/keep", "--data", "me"]);
    h.cmd(&["init", "s"])
        .assert()
        .code(1)
        .stderr(contains("already exists").and(contains("agentfs rm s")));
    assert_eq!(h.ok(&["fs", "s", "cat", "/keep"]), "me");
}

#[test]
fn init_with_bad_base_is_refused_and_leaves_nothing() {
    let h = Home::new();
    h.cmd(&["init", "s", "--base", "/does/not/exist"])
        .assert()
        .code(1)
        .stderr(contains("base directory /does/not/exist is not usable"));
    let file = h.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    h.cmd(&["init", "t", "--base", &file])
        .assert()
        .code(1)
        .stderr(contains("is not a directory"));
    assert!(!std::path::Path::new(&h.path("s.db")).exists());
    assert!(!std::path::Path::new(&h.path("t.db")).exists());
}

#[test]
fn non_session_files_are_refused_and_untouched() {
    let h = Home::new();
    let text = h.path("notes.db");
    std::fs::write(&text, "just text").unwrap();
    h.cmd(&["fs", &text, "ls"])
        .assert()
        .code(1)
        .stderr(contains("is not a SQLite database"));
    h.cmd(&["rm", &text])
        .assert()
        .code(1)
        .stderr(contains("is not a SQLite database"));
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "just text");
    let other = h.path("app.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    h.cmd(&["kv", &other, "list"])
        .assert()
        .code(1)
        .stderr(contains("not an agentfs session"));
    assert!(std::path::Path::new(&other).exists());
}

#[test]
fn newer_format_asks_for_an_upgrade() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    rusqlite::Connection::open(h.path("s.db"))
        .unwrap()
        .pragma_update(None, "user_version", 42)
        .unwrap();
    h.cmd(&["fs", "s", "ls"])
        .assert()
        .code(1)
        .stderr(contains("format version 42").and(contains("Upgrade agentfs")));
}

#[test]
fn kv_bad_json_and_missing_keys_are_errors() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    h.cmd(&["kv", "s", "set", "k", "plain words"])
        .assert()
        .code(1)
        .stderr(contains("is not JSON").and(contains(r#"'"plain words"'"#)));
    h.cmd(&["kv", "s", "get", "nope"])
        .assert()
        .code(1)
        .stderr(contains("no key \"nope\""));
    h.cmd(&["kv", "s", "delete", "nope"])
        .assert()
        .code(1)
        .stderr(contains("nothing deleted"));
}

#[test]
fn fs_errors_name_the_path_and_the_problem() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    h.ok(&["fs", "s", "mkdir", "/d"]);
    h.ok(&["fs", "s", "write", "/d/f", "--data", "x"]);
    h.cmd(&["fs", "s", "cat", "/missing"])
        .assert()
        .code(1)
        .stderr(contains("/missing: no such file or directory"));
    h.cmd(&["fs", "s", "cat", "/d"])
        .assert()
        .code(1)
        .stderr(contains("/d: is a directory"));
    h.cmd(&["fs", "s", "rm", "/d"])
        .assert()
        .code(1)
        .stderr(contains("directory not empty; pass -r"));
    h.cmd(&["fs", "s", "mkdir", "/d"])
        .assert()
        .code(1)
        .stderr(contains("/d: file exists"));
    h.cmd(&["fs", "s", "mkdir", "/d/f/g"])
        .assert()
        .code(1)
        .stderr(contains("not a directory"));
    let long = format!("/{}", "n".repeat(256));
    h.cmd(&["fs", "s", "write", &long, "--data", "x"])
        .assert()
        .code(1)
        .stderr(contains("longer than 255 bytes"));
    h.cmd(&["fs", "s", "rm", "/"])
        .assert()
        .code(1)
        .stderr(contains("does not name an entry"));
    assert_eq!(h.ok(&["fs", "s", "cat", "/d/f"]), "x");
}

#[test]
fn usage_errors_exit_2_and_help_works_everywhere() {
    let h = Home::new();
    h.cmd(&[]).assert().code(2);
    h.cmd(&["frobnicate"])
        .assert()
        .code(2)
        .stderr(contains("unrecognized subcommand"));
    for args in [
        &["--help"][..],
        &["fs", "--help"],
        &["kv", "--help"],
        &["init", "--help"],
        &["fs", "x", "write", "--help"],
    ] {
        h.cmd(args).assert().success().stdout(contains("Usage"));
    }
}

#[test]
fn non_utf8_names_round_trip_through_the_cli() {
    use std::os::unix::ffi::OsStrExt;
    let h = Home::new();
    h.ok(&["init", "s"]);
    let name = std::ffi::OsStr::from_bytes(b"/caf\xe9");
    let mut c = Command::cargo_bin("agentfs").unwrap();
    c.env("AGENTFS_HOME", h.0.path())
        .args(["fs", "s", "write"])
        .arg(name)
        .args(["--data", "latin1"]);
    c.assert().success();
    let out = h
        .cmd(&["fs", "s", "ls"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(out, b"caf\xe9\n");
}

#[test]
fn broken_pipe_exits_quietly() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    let big = "y".repeat(4 << 20);
    h.cmd(&["fs", "s", "write", "/big"])
        .write_stdin(big)
        .assert()
        .success();
    let bin = assert_cmd::cargo::cargo_bin("agentfs");
    let out = std::process::Command::new("sh")
        .args(["-c", "\"$AF\" fs s cat /big | head -c 10 >/dev/null"])
        .env("AF", bin)
        .env("AGENTFS_HOME", h.0.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no error for a closed pipe"
    );
}

#[test]
fn misspelled_session_suggests_close_ids() {
    let h = Home::new();
    h.ok(&["init", "refactor-auth"]);
    h.ok(&["init", "demo"]);
    h.cmd(&["fs", "refactor-aut", "ls"])
        .assert()
        .code(1)
        .stderr(contains("did you mean \"refactor-auth\"?"));
}

#[test]
fn damaged_database_names_fsck() {
    let h = Home::new();
    h.damaged_session("s");
    h.cmd(&["fs", "s", "ls"])
        .assert()
        .code(1)
        .stderr(contains("is damaged").and(contains("agentfs fsck")));
    h.cmd(&["fsck", "s"])
        .assert()
        .code(1)
        .stdout(contains("Integrity:"))
        .stderr(contains(".recover"));
}

#[test]
fn read_only_database_is_refused_with_the_reason() {
    let h = Home::new();
    let ro = h.0.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(mounted.success(), "needs root to mount a tmpfs");
    let db = ro.join("s.db");
    h.ok(&["init", db.to_str().unwrap()]);
    h.ok(&["fs", db.to_str().unwrap(), "write", "/f", "--data", "x"]);
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(remount.success());
    let out = h
        .cmd(&["fs", db.to_str().unwrap(), "cat", "/f"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    std::process::Command::new("umount")
        .arg("-l")
        .arg(&ro)
        .status()
        .unwrap();
    assert!(stderr.contains("is read-only"), "{stderr}");
}

#[test]
fn symlink_loops_and_vanished_bases_are_reported() {
    let h = Home::new();
    let base = tempfile::tempdir().unwrap();
    h.ok(&["init", "s", "--base", base.path().to_str().unwrap()]);
    let db = h.path("s.db");
    {
        use agentfs::vfs::{Creds, Ino, Vfs};
        let vfs = Vfs::open_session(
            std::path::Path::new(&db),
            agentfs::store::OpenMode::Existing,
        )
        .unwrap();
        vfs.symlink(Ino::ROOT, b"loop", b"loop", Creds { uid: 0, gid: 0 })
            .unwrap();
    }
    h.cmd(&["fs", "s", "cat", "/loop"])
        .assert()
        .code(1)
        .stderr(contains("/loop: too many levels of symbolic links"));
    let base_path = base.path().to_path_buf();
    drop(base);
    assert!(!base_path.exists());
    assert!(h.ok(&["sessions"]).contains("(missing)"));
    let mnt = h.0.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    h.cmd(&["mount", "s", mnt.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("no longer exists"));
}

#[test]
fn vacuum_shrinks_a_session_after_deletes() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    let big = "z".repeat(8 << 20);
    for i in 0..4 {
        h.cmd(&["fs", "s", "write", &format!("/big{i}")])
            .write_stdin(big.clone())
            .assert()
            .success();
    }
    let db = h.path("s.db");
    let full = agentfs::session::size_on_disk(std::path::Path::new(&db));
    for i in 0..4 {
        // `fs rm` compacts by itself; remove through the core to leave the space unclaimed.
        use agentfs::vfs::{Ino, Vfs};
        let vfs = Vfs::open_session(
            std::path::Path::new(&db),
            agentfs::store::OpenMode::Existing,
        )
        .unwrap();
        vfs.use_background_maintenance().unwrap();
        vfs.unlink(Ino::ROOT, format!("big{i}").as_bytes()).unwrap();
    }
    assert!(agentfs::session::size_on_disk(std::path::Path::new(&db)) > full / 2);
    h.cmd(&["vacuum", "s"])
        .assert()
        .success()
        .stderr(contains(" -> "));
    let after = agentfs::session::size_on_disk(std::path::Path::new(&db));
    assert!(after < full / 8, "{after} of {full}");
}

#[test]
fn fsck_reports_repairs_and_exits_by_outcome() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    h.ok(&["fs", "s", "write", "/f", "--data", "x"]);
    h.cmd(&["fsck", "s"])
        .assert()
        .success()
        .stderr(contains("clean"));
    rusqlite::Connection::open(h.path("s.db"))
        .unwrap()
        .execute("UPDATE fs_inode SET nlink = 5 WHERE ino = (SELECT ino FROM fs_dentry WHERE name = 'f')", [])
        .unwrap();
    h.cmd(&["fsck", "s"])
        .assert()
        .code(1)
        .stdout(contains("WrongNlink"))
        .stderr(contains("repairable with `agentfs fsck s --repair`"));
    h.cmd(&["fsck", "s", "--repair"])
        .assert()
        .success()
        .stdout(contains("repaired:"));
    h.cmd(&["fsck", "s"]).assert().success();
    assert_eq!(h.ok(&["fs", "s", "cat", "/f"]), "x");
}

#[test]
fn gc_removes_only_old_sessions_and_checks_the_duration() {
    let h = Home::new();
    h.ok(&["init", "old"]);
    h.ok(&["init", "new"]);
    // Age the old session's files by two days.
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    for suffix in ["old.db", "old.db-wal", "old.db-shm"] {
        if let Ok(f) = std::fs::File::options().write(true).open(h.path(suffix)) {
            f.set_modified(two_days_ago).unwrap();
        }
    }
    assert_eq!(h.ok(&["gc", "--older-than", "1d", "--dry-run"]), "old\n");
    assert!(std::path::Path::new(&h.path("old.db")).exists());
    h.cmd(&["gc", "--older-than", "1d"])
        .assert()
        .success()
        .stdout("old\n")
        .stderr(contains("removed 1 session"));
    assert!(!std::path::Path::new(&h.path("old.db")).exists());
    assert!(std::path::Path::new(&h.path("new.db")).exists());
    h.cmd(&["gc", "--older-than", "soon"])
        .assert()
        .code(1)
        .stderr(contains("is not a duration"));
}

#[test]
fn new_sessions_by_path_must_end_in_db_and_keys_must_not_be_empty() {
    let h = Home::new();
    let odd = h.path("notes");
    h.cmd(&["init", &odd])
        .assert()
        .code(1)
        .stderr(contains("does not end in .db"));
    assert!(!std::path::Path::new(&odd).exists());
    h.ok(&["init", "s"]);
    h.cmd(&["fork", "s", &odd])
        .assert()
        .code(1)
        .stderr(contains("does not end in .db"));
    h.cmd(&["kv", "s", "set", "", "1"])
        .assert()
        .code(1)
        .stderr(contains("must not be empty"));
}

#[test]
fn a_mistyped_run_option_is_a_usage_error_and_makes_no_session() {
    let h = Home::new();
    h.cmd(&["run", "--session", "s", "--netwrk=none", "--", "echo", "hi"])
        .assert()
        .code(2)
        .stderr(contains("unexpected argument '--netwrk'").and(contains("--network")));
    assert!(
        !h.0.path().join("s.db").exists(),
        "a session was made for a mistyped command line"
    );
}
