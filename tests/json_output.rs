//! `--json` of `sessions`, `ps`, `fsck`, `apply` and `diff --stat`: one JSON document on
//! stdout, parsed here, with the values checked against what the session holds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::home::Home;

impl Home {
    /// Runs `args`, checks the exit status, and parses stdout as exactly one JSON document.
    fn json(&self, args: &[&str], code: i32) -> Value {
        let out = self.cmd(args).assert().code(code).get_output().clone();
        let text = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text:?}"))
    }

    fn db(&self, id: &str) -> PathBuf {
        self.0.path().join(format!("{id}.db"))
    }

    /// `agentfs exec SESSION ARGS` in `dir`, as a child process.
    fn spawn_exec(&self, session: &str, dir: &Path, args: &[&str]) -> Child {
        StdCommand::new(assert_cmd::cargo::cargo_bin("agentfs"))
            .env("AGENTFS_HOME", self.0.path())
            .current_dir(dir)
            .arg("exec")
            .arg(session)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `agentfs exec SESSION sh -c SCRIPT` in `dir`, to its end.
    fn exec_sh(&self, session: &str, dir: &Path, script: &str) {
        let out = self
            .spawn_exec(session, dir, &["sh", "-c", script])
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits until no session of this home is mounted any more (exec's mount ends after it).
    fn wait_unmounted(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sessions = self.json(&["sessions", "--json"], 0);
            let mounted = sessions
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["mounted_at"].as_array().is_some_and(|m| !m.is_empty()));
            if !mounted {
                return;
            }
            assert!(Instant::now() < deadline, "still mounted: {sessions}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn canon(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn sessions_json_lists_ids_bases_sizes_and_times() {
    let h = Home::new();
    assert_eq!(h.json(&["sessions", "--json"], 0), serde_json::json!([]));
    let base = tempfile::tempdir().unwrap();
    h.ok(&["init", "one", "--base", base.path().to_str().unwrap()]);
    h.ok(&["init", "two"]);
    h.ok(&["fs", "two", "write", "/f", "--data", "x"]);
    std::fs::write(h.db("junk"), b"not sqlite").unwrap();

    let v = h.json(&["sessions", "--json"], 0);
    let all = v.as_array().unwrap();
    let ids: Vec<&str> = all.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["junk", "one", "two"]);
    let (junk, one, two) = (&all[0], &all[1], &all[2]);

    assert_eq!(one["base"], canon(base.path()));
    assert_eq!(one["base_exists"], true);
    assert_eq!(one["path"], h.db("one").to_str().unwrap());
    assert_eq!(one["last_change"], Value::Null);
    assert_eq!(one["live_runners"], 0);
    assert_eq!(one["mounted_at"], serde_json::json!([]));
    assert_eq!(one["error"], Value::Null);
    assert_eq!(two["base"], Value::Null);
    assert_eq!(two["base_exists"], false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for s in [one, two] {
        let created = s["created_at"]
            .as_i64()
            .expect("created_at in Unix seconds");
        assert!((now - created).abs() < 600, "{s}");
        // Size in bytes, as on disk (the database and its WAL files).
        let size = s["size"].as_u64().unwrap();
        let id = s["id"].as_str().unwrap();
        let mut on_disk = 0;
        for suffix in ["", "-wal", "-shm"] {
            let p = format!("{}{suffix}", h.db(id).display());
            on_disk += std::fs::metadata(p).map_or(0, |m| m.len());
        }
        assert_eq!(size, on_disk, "{s}");
        assert!(size > 0);
    }
    let changed = two["last_change"].as_i64().expect("a write is a change");
    assert!((now - changed).abs() < 600, "{two}");

    assert_eq!(junk["size"], 10);
    assert!(
        junk["error"]
            .as_str()
            .unwrap()
            .contains("not a SQLite database"),
        "{junk}"
    );
    assert_eq!(junk["base"], Value::Null);
}

#[test]
fn ps_json_is_empty_without_runners_and_lists_a_live_one() {
    let h = Home::new();
    assert_eq!(h.json(&["ps", "--json"], 0), serde_json::json!([]));
    let base = tempfile::tempdir().unwrap();
    h.ok(&["init", "s", "--base", base.path().to_str().unwrap()]);
    assert_eq!(h.json(&["ps", "--json"], 0), serde_json::json!([]));
    assert_eq!(h.json(&["ps", "s", "--json"], 0), serde_json::json!([]));

    let mut child = h.spawn_exec("s", base.path(), &["sleep", "5"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let v = h.json(&["ps", "--json"], 0);
        if !v.as_array().unwrap().is_empty() {
            break v;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exec ended ({status}) before ps saw its runner");
        }
        assert!(Instant::now() < deadline, "no runner listed");
        std::thread::sleep(Duration::from_millis(50));
    };
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["session"], "s");
    assert_eq!(r["runner"], 1);
    assert!(r["pid"].as_u64().unwrap() > 0);
    assert_eq!(r["argv"], serde_json::json!(["sleep", "5"]));
    assert_eq!(r["command"], "sleep 5");
    assert_eq!(r["cwd"], canon(base.path()));
    let started = r["started_at"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - started).abs() < 600, "{r}");
    assert_eq!(
        h.json(&["ps", "s", "--json"], 0),
        Value::Array(rows.clone())
    );

    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.wait_unmounted();
    assert_eq!(h.json(&["ps", "--json"], 0), serde_json::json!([]));
}

#[test]
fn fsck_json_is_clean_then_names_a_broken_link_count_and_its_repair() {
    let h = Home::new();
    h.ok(&["init", "s"]);
    h.ok(&["fs", "s", "write", "/f", "--data", "abc"]);
    let clean = serde_json::json!({
        "session": "s",
        "clean": true,
        "problems": [],
        "repaired": [],
    });
    assert_eq!(h.json(&["fsck", "s", "--json"], 0), clean);

    let conn = rusqlite::Connection::open(h.db("s")).unwrap();
    let ino: i64 = conn
        .query_row(
            "SELECT ino FROM fs_dentry WHERE parent_ino = 1 AND name = 'f'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute("UPDATE fs_inode SET nlink = 9 WHERE ino = ?1", [ino])
        .unwrap();
    drop(conn);

    let v = h.json(&["fsck", "s", "--json"], 1);
    assert_eq!(v["session"], "s");
    assert_eq!(v["clean"], false);
    assert_eq!(v["repaired"], serde_json::json!([]));
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert_eq!(problems[0]["kind"], "WrongNlink");
    assert_eq!(problems[0]["repairable"], true);
    let detail = problems[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("inode {ino}")) && detail.contains("nlink 9"),
        "{detail}"
    );

    let v = h.json(&["fsck", "s", "--json", "--repair"], 0);
    assert_eq!(v["clean"], true);
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["repaired"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(h.json(&["fsck", "s", "--json"], 0), clean);
}

#[test]
fn fsck_json_reports_a_damaged_sqlite_file_as_integrity_problems() {
    let h = Home::new();
    h.damaged_session("s");
    let v = h.json(&["fsck", "s", "--json"], 1);
    assert_eq!(
        (&v["session"], &v["clean"]),
        (&"s".into(), &false.into()),
        "{v}"
    );
    assert_eq!(v["repaired"], serde_json::json!([]));
    let problems = v["problems"].as_array().unwrap();
    assert!(!problems.is_empty(), "{v}");
    // Every line of integrity_check, as the text output prints them.
    assert!(
        problems.iter().all(|p| p["kind"] == "Integrity"
            && p["repairable"] == false
            && p["detail"].as_str().is_some_and(|d| !d.is_empty())),
        "{v}"
    );
}

#[test]
fn apply_dry_run_json_lists_the_changes_and_leaves_the_base_alone() {
    let h = Home::new();
    let base = tempfile::tempdir().unwrap();
    std::fs::write(base.path().join("file"), "base file\n").unwrap();
    std::fs::write(base.path().join("kept"), "kept\n").unwrap();
    std::fs::write(base.path().join("edit"), "old\n").unwrap();
    h.ok(&["init", "s", "--base", base.path().to_str().unwrap()]);
    h.ok(&["fs", "s", "write", "/x", "--data", "y"]);
    h.ok(&["fs", "s", "mkdir", "/d"]);
    // `agentfs fs` works on the session's own files; the base's are reached through a mount.
    h.exec_sh("s", base.path(), "rm file && echo newer > edit");
    h.wait_unmounted();

    let v = h.json(&["apply", "s", "--dry-run", "--json"], 0);
    let expect = serde_json::json!([
        {"status": "A", "path": "/d", "old_path": null, "type": "dir", "size": null,
         "conflict": null},
        {"status": "M", "path": "/edit", "old_path": null, "type": "file", "size": 6,
         "conflict": null},
        {"status": "D", "path": "/file", "old_path": null, "type": "file", "size": null,
         "conflict": null},
        {"status": "A", "path": "/x", "old_path": null, "type": "file", "size": 1,
         "conflict": null},
    ]);
    assert_eq!(v, expect);
    // Nothing changed on the host.
    let mut names: Vec<String> = std::fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["edit", "file", "kept"]);
    assert_eq!(
        std::fs::read_to_string(base.path().join("edit")).unwrap(),
        "old\n"
    );
    // Limited to paths, like the lines.
    let v = h.json(&["apply", "s", "--dry-run", "--json", "x"], 0);
    assert_eq!(v, serde_json::json!([expect[3]]));

    // A host edit of a path the session changed is a conflict: still one array, exit 1.
    std::fs::write(base.path().join("edit"), "host\n").unwrap();
    let v = h.json(&["apply", "s", "--dry-run", "--json"], 1);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{v}");
    let edit = rows.iter().find(|r| r["path"] == "/edit").unwrap();
    assert_eq!(edit["status"], "M");
    assert!(
        edit["conflict"].as_str().unwrap().contains("host"),
        "{edit}"
    );
    assert!(
        rows.iter()
            .filter(|r| r["path"] != "/edit")
            .all(|r| r["conflict"].is_null())
    );

    // Applied for real, the array is what was written (in the order it was written).
    let v = h.json(&["apply", "s", "--json", "--force"], 0);
    let mut rows = v.as_array().unwrap().clone();
    rows.sort_by_key(|r| r["path"].as_str().unwrap().to_string());
    assert_eq!(Value::Array(rows), expect);
    assert!(!base.path().join("file").exists());
    assert_eq!(std::fs::read_to_string(base.path().join("x")).unwrap(), "y");
    assert_eq!(
        h.json(&["apply", "s", "--dry-run", "--json"], 0),
        serde_json::json!([])
    );
}

#[test]
fn diff_stat_json_gives_insertions_and_deletions_per_file() {
    let h = Home::new();
    let base = tempfile::tempdir().unwrap();
    std::fs::write(base.path().join("lines"), "a\nb\nc\n").unwrap();
    std::fs::write(base.path().join("gone"), "1\n2\n").unwrap();
    h.ok(&["init", "s", "--base", base.path().to_str().unwrap()]);
    h.ok(&["fs", "s", "write", "/new", "--data", "one\ntwo\nthree\n"]);
    h.ok(&["fs", "s", "mkdir", "/dir"]);
    h.exec_sh(
        "s",
        base.path(),
        "printf 'a\\nB\\nc\\nd\\n' > lines && rm gone",
    );
    h.wait_unmounted();

    let v = h.json(&["diff", "s", "--stat", "--json"], 0);
    let rows = v.as_array().unwrap();
    // The files of the diffstat; the new directory has no row.
    let got: Vec<(&str, &str, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["insertions"].as_u64().unwrap(),
                r["deletions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/gone", "D", 0, 2),
            ("/lines", "M", 2, 1),
            ("/new", "A", 3, 0),
        ]
    );
    assert!(rows.iter().all(|r| r["binary"] == false));
    let new = &rows[2];
    assert_eq!(
        (new["type"].as_str(), new["size_after"].as_i64()),
        (Some("file"), Some(14))
    );
    // The same objects as `--json`, which also lists the directory.
    let all = h.json(&["diff", "s", "--json"], 0);
    let files: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] != "dir")
        .collect();
    assert_eq!(files, rows.iter().collect::<Vec<_>>());
    assert!(all.as_array().unwrap().iter().any(|r| r["path"] == "/dir"));
    // And the numbers of the text diffstat.
    let text = h.ok(&["diff", "s", "--stat"]);
    assert!(
        text.contains("3 files changed, 5 insertions(+), 3 deletions(-)"),
        "{text}"
    );
}
