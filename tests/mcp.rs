//! `agentfs serve mcp` driven by a real MCP client, the official Python SDK
//! (`tests/mcp/client.py`, in the virtual environment `.ci/run` makes): every tool against a
//! plain and an overlay session, bad input included; then the `tool_calls` rows, the journal
//! rows that name them, the base left unchanged and fsck clean.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{BIN, agentfs};

/// The Python that has the `mcp` package: `AGENTFS_TEST_PYTHON`, or the virtual environment
/// `.ci/run` makes in `target/mcp-venv`.
fn python() -> PathBuf {
    let p = std::env::var_os("AGENTFS_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "{} is missing: make it with `python3 -m venv target/mcp-venv && \
         target/mcp-venv/bin/pip install mcp==2.3.0 agentfs-sdk==0.6.4` (as .ci/run does)",
        p.display()
    );
    p
}

/// Runs the client on session `db` in `mode`; returns (calls made, calls answered with an error).
fn client(db: &Path, mode: &str) -> (i64, i64) {
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py"))
        .arg(BIN)
        .arg(db)
        .arg(mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the MCP client failed ({mode}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    (v["calls"].as_i64().unwrap(), v["errors"].as_i64().unwrap())
}

fn query(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// The checks on a session after the client's calls: one complete row per call, the errors
/// as errors, and every journal row of the calls naming a call that changes the session.
fn check_rows(db: &Path, calls: i64, errors: i64) {
    assert_eq!(query(db, "SELECT count(*) FROM tool_calls"), calls);
    assert_eq!(
        query(
            db,
            "SELECT count(*) FROM tool_calls WHERE status = 'error' AND error <> ''"
        ),
        errors
    );
    assert_eq!(
        query(
            db,
            "SELECT count(*) FROM tool_calls WHERE status = 'success' AND error IS NULL \
             AND result IS NOT NULL"
        ),
        calls - errors
    );
    assert_eq!(
        query(
            db,
            "SELECT count(*) FROM tool_calls WHERE completed_at IS NULL OR duration_ms IS NULL \
             OR completed_at < started_at OR parameters IS NULL"
        ),
        0,
        "a call was left incomplete"
    );
    // The journal rows of the calls exist and name calls that write.
    assert!(
        query(
            db,
            "SELECT count(*) FROM fs_change WHERE tool_call_id IS NOT NULL"
        ) > 5
    );
    assert_eq!(
        query(
            db,
            "SELECT count(*) FROM fs_change c LEFT JOIN tool_calls t ON t.id = c.tool_call_id \
             WHERE c.tool_call_id IS NOT NULL AND (t.id IS NULL OR t.name NOT IN \
             ('write_file', 'edit_file', 'mkdir', 'remove', 'rename'))"
        ),
        0,
        "a journal row names a call that does not write"
    );
    // The rename's journal row names the rename call.
    assert_eq!(
        query(
            db,
            "SELECT count(*) FROM fs_change c JOIN tool_calls t ON t.id = c.tool_call_id \
             WHERE c.op = 'rename' AND t.name = 'rename'"
        ),
        1
    );
    let fsck = Command::new(BIN).arg("fsck").arg(db).output().unwrap();
    assert!(
        fsck.status.success(),
        "fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn an_mcp_client_uses_every_tool_on_a_plain_session() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    agentfs(&home, &["init", "p"]);
    let db = home.join("p.db");
    let (calls, errors) = client(&db, "plain");
    assert!(calls > 30 && errors > 10, "{calls} calls, {errors} errors");
    check_rows(&db, calls, errors);
}

#[test]
fn an_mcp_client_uses_every_tool_on_an_overlay_session_and_the_base_stays() {
    let top = tempfile::tempdir().unwrap();
    let base = top.path().join("base");
    fs::create_dir_all(base.join("src")).unwrap();
    fs::create_dir_all(base.join("docs")).unwrap();
    fs::write(base.join("README"), "read me\n").unwrap();
    fs::write(base.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(base.join("docs/a.md"), "# A\n").unwrap();
    let before = common::tree_snapshot(&base);
    let home = top.path().join("home");
    agentfs(&home, &["init", "o", "--base", base.to_str().unwrap()]);
    let db = home.join("o.db");
    let (calls, errors) = client(&db, "overlay");
    check_rows(&db, calls, errors);
    assert_eq!(common::tree_snapshot(&base), before, "the base changed");
    // Reading README copied nothing up; the edit copied main.rs up.
    assert_eq!(
        query(&db, "SELECT count(*) FROM fs_paths WHERE path = '/README'"),
        0,
        "reading a base file copied it up"
    );
    // The timeline: every call in order, the paths each changed.
    let out = agentfs(&home, &["timeline", "o", "--json"]);
    let calls_shown: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(calls_shown.len() as i64, calls);
    let ids: Vec<i64> = calls_shown
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "not in order: {ids:?}");
    let out = agentfs(&home, &["timeline", "o", "--json", "--filter", "rename"]);
    let renames: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(renames.as_array().unwrap().len(), 1, "{renames}");
    assert_eq!(
        renames[0]["paths"],
        serde_json::json!(["/d/e/b.txt"]),
        "{renames}"
    );
    let out = agentfs(
        &home,
        &[
            "timeline", "o", "--json", "--status", "error", "--limit", "2",
        ],
    );
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 2);
    assert!(
        failed[1]["error"]
            .as_str()
            .unwrap()
            .contains("no such file"),
        "{failed}"
    );
    let table = String::from_utf8(agentfs(&home, &["timeline", "o"]).stdout).unwrap();
    assert!(
        table.contains("edit_file") && table.contains("/src/main.rs"),
        "{table}"
    );
    let diff = agentfs(&home, &["diff", "o"]);
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff.contains("+fn main() { run() }") && diff.contains("deleted file"),
        "{diff}"
    );
}

#[test]
fn a_read_only_mcp_server_refuses_every_change() {
    let top = tempfile::tempdir().unwrap();
    let base = top.path().join("base");
    fs::create_dir_all(&base).unwrap();
    fs::write(base.join("README"), "read me\n").unwrap();
    let home = top.path().join("home");
    agentfs(&home, &["init", "r", "--base", base.to_str().unwrap()]);
    let db = home.join("r.db");
    let journal_before = query(&db, "SELECT count(*) FROM fs_change");
    let (calls, errors) = client(&db, "read-only");
    assert_eq!((calls, errors), (3, 2));
    assert_eq!(query(&db, "SELECT count(*) FROM fs_change"), journal_before);
    assert_eq!(query(&db, "SELECT count(*) FROM kv_store"), 0);
    assert_eq!(
        query(
            &db,
            "SELECT count(*) FROM tool_calls WHERE status = 'error'"
        ),
        2
    );
}

/// The AgentFS Python SDK (in the same virtual environment) writes one of our sessions, and
/// every agentfs command sees what it wrote; it reads what we wrote.
#[test]
fn the_agentfs_sdk_and_agentfs_read_each_others_writes() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    agentfs(&home, &["init", "s"]);
    agentfs(
        &home,
        &[
            "fs",
            "s",
            "write",
            "/ours.txt",
            "--data",
            "written by agentfs\n",
        ],
    );
    agentfs(&home, &["kv", "s", "set", "from_agentfs", "{\"n\":1}"]);
    let db = home.join("s.db");
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/roundtrip.py"))
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = |args: &[&str]| String::from_utf8(agentfs(&home, args).stdout).unwrap();
    assert!(
        text(&["fs", "s", "ls", "/"])
            .lines()
            .any(|l| l == "sdkdir/")
    );
    assert_eq!(
        text(&["fs", "s", "cat", "/sdkdir/made.txt"]),
        "written by the SDK\n"
    );
    assert_eq!(
        text(&["kv", "s", "get", "from_sdk"]).trim(),
        "{\"ok\": true}"
    );
    let calls: serde_json::Value =
        serde_json::from_str(&text(&["timeline", "s", "--json"])).unwrap();
    assert_eq!(calls[0]["name"], "sdk_search", "{calls}");
    assert_eq!(calls[0]["status"], "success", "{calls}");
    // Clean by fsck: the SDK's engine keeps our indexes, and its directory link counts
    // are accepted.
    let fsck = Command::new(BIN)
        .args(["fsck", "s"])
        .env("AGENTFS_HOME", &home)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}
