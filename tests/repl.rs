//! `agentfs sql`: statements from the command line and from scripts, dot-commands, named
//! queries, output modes and errors.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn home_with_changes() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::cargo_bin("agentfs")
            .unwrap()
            .env("AGENTFS_HOME", home.path())
            .args(args)
            .assert()
            .success();
    };
    run(&["init", "s"]);
    run(&["fs", "s", "mkdir", "-p", "/src/deep"]);
    run(&[
        "fs",
        "s",
        "write",
        "/src/deep/big.rs",
        "--data",
        &"x".repeat(5000),
    ]);
    run(&[
        "fs",
        "s",
        "write",
        "/src/small.rs",
        "--data",
        "fn main() {}",
    ]);
    home
}

fn sql(home: &tempfile::TempDir) -> Command {
    let mut c = Command::cargo_bin("agentfs").unwrap();
    c.env("AGENTFS_HOME", home.path()).args(["sql", "s"]);
    c
}

#[test]
fn statements_on_the_command_line_print_tables() {
    let home = home_with_changes();
    sql(&home)
        .arg("SELECT op, count(*) AS n FROM fs_change GROUP BY op ORDER BY op; SELECT 42 AS answer")
        .assert()
        .success()
        .stdout(
            contains("│ create ┆ 2 │")
                .and(contains("│ mkdir  ┆ 2 │"))
                .and(contains("answer")),
        );
}

#[test]
fn scripts_on_stdin_run_dot_commands_and_named_queries() {
    let home = home_with_changes();
    let out = sql(&home)
        .write_stdin(".mode csv\n.q largest_files 1\n.headers off\nSELECT 1,\n  'two';\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "path,size,nlink\n/src/deep/big.rs,5000,1\n1,two\n"
    );
}

#[test]
fn modes_json_and_line() {
    let home = home_with_changes();
    let out = sql(&home)
        .args([
            "--mode",
            "json",
            "SELECT path, op FROM fs_change WHERE op = 'mkdir' ORDER BY seq",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v[0]["path"], "/src");
    assert_eq!(v[1]["path"], "/src/deep");
    sql(&home)
        .args(["--mode", "line", "SELECT NULL AS empty, x'0102' AS bytes"])
        .assert()
        .success()
        .stdout(contains("empty = NULL").and(contains("bytes = <blob 2 bytes>")));
}

#[test]
fn history_of_a_path_and_help_and_tables() {
    let home = home_with_changes();
    sql(&home)
        .write_stdin(".q history_of /src/small.rs\n.tables\n.help mode\n.queries\n")
        .assert()
        .success()
        .stdout(
            contains("/src/small.rs")
                .and(contains("fs_change"))
                .and(contains(".mode"))
                .and(contains("recent_changes")),
        );
}

#[test]
fn errors_name_the_problem_and_scripts_go_on_unless_bail() {
    let home = home_with_changes();
    sql(&home)
        .arg("SELEC 1")
        .assert()
        .code(1)
        .stderr(contains("syntax error"));
    sql(&home)
        .write_stdin("SELECT nope;\nSELECT 7 AS seven;\n")
        .assert()
        .code(1)
        .stdout(contains("seven"))
        .stderr(contains("no such column: nope"));
    sql(&home)
        .write_stdin(".bail on\nSELECT nope;\nSELECT 7 AS seven;\n")
        .assert()
        .code(1)
        .stdout(contains("seven").not());
    sql(&home)
        .write_stdin(".frobnicate\n")
        .assert()
        .code(1)
        .stderr(contains("unknown command .frobnicate"));
    sql(&home)
        .write_stdin(".q no_such_query\n")
        .assert()
        .code(1)
        .stderr(contains(".queries lists them"));
    sql(&home)
        .args(["--mode", "xml", "SELECT 1"])
        .assert()
        .code(1)
        .stderr(contains("unknown --mode"));
}

#[test]
fn missing_session_is_reported() {
    let home = tempfile::tempdir().unwrap();
    Command::cargo_bin("agentfs")
        .unwrap()
        .env("AGENTFS_HOME", home.path())
        .args(["sql", "nope", "SELECT 1"])
        .assert()
        .code(1)
        .stderr(contains("agentfs init nope"));
}

#[test]
fn sql_functions_give_paths_contents_and_hashes() {
    let home = home_with_changes();
    let hash = blake3::hash(b"fn main() {}").to_hex().to_string();
    sql(&home)
        .args([
            "--mode",
            "list",
            "SELECT path_of(ino), CAST(content(ino) AS TEXT), content_hash(ino) \
             FROM fs_dentry WHERE name = 'small.rs'",
        ])
        .assert()
        .success()
        .stdout(contains(format!("/src/small.rs|fn main() {{}}|{hash}")));
    sql(&home)
        .args(["--mode", "csv", ".q files"])
        .assert()
        .success()
        .stdout(
            contains("/src/deep/big.rs,5000,1,")
                .and(contains(format!("/src/small.rs,12,1,{hash}"))),
        );
    sql(&home)
        .args([
            "--mode",
            "list",
            "SELECT path_of(1), content(1), content_hash(NULL), path_of(99999)",
        ])
        .assert()
        .success()
        .stdout(contains("/|NULL|NULL|NULL"));
}

#[test]
fn every_mode_prints_the_same_rows() {
    let home = home_with_changes();
    let q = "SELECT 'a,b' AS t, 7 AS n, NULL AS z, x'000102' AS b, 1.5 AS r";
    let out = |args: &[&str]| {
        let o = sql(&home).args(args).arg(q).assert().success();
        String::from_utf8(o.get_output().stdout.clone()).unwrap()
    };
    assert_eq!(
        out(&["--mode", "table"]),
        "┌─────┬───┬──────┬────────────────┬─────┐\n\
         │ t   ┆ n ┆ z    ┆ b              ┆ r   │\n\
         ╞═════╪═══╪══════╪════════════════╪═════╡\n\
         │ a,b ┆ 7 ┆ NULL ┆ <blob 3 bytes> ┆ 1.5 │\n\
         └─────┴───┴──────┴────────────────┴─────┘\n"
    );
    assert_eq!(
        out(&["--csv"]),
        "t,n,z,b,r\n\"a,b\",7,,<blob 3 bytes>,1.5\n"
    );
    assert_eq!(out(&["--mode", "csv"]), out(&["--csv"]));
    let json: serde_json::Value = serde_json::from_str(&out(&["--json"])).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"t": "a,b", "n": 7, "z": null, "b": "<blob 3 bytes>", "r": 1.5}])
    );
    assert_eq!(
        out(&["--mode", "line"]),
        "t = a,b\nn = 7\nz = NULL\nb = <blob 3 bytes>\nr = 1.5\n"
    );
    assert_eq!(
        out(&["--mode", "list"]),
        "t|n|z|b|r\na,b|7|NULL|<blob 3 bytes>|1.5\n"
    );
    sql(&home)
        .args(["--json", "--csv", "SELECT 1"])
        .assert()
        .code(2);
}

#[test]
fn named_queries_by_flag_with_arguments() {
    let home = home_with_changes();
    sql(&home)
        .args(["--csv", "--query", "largest_files", "1"])
        .assert()
        .success()
        .stdout("path,size,nlink\n/src/deep/big.rs,5000,1\n");
    sql(&home)
        .args(["--query", "nope"])
        .assert()
        .code(1)
        .stderr(contains("no named query \"nope\"; .queries lists them"));
    // Every named query has a summary line and is listed.
    let listed = sql(&home).arg(".queries").assert().success();
    let listed = String::from_utf8(listed.get_output().stdout.clone()).unwrap();
    for name in [
        "changes",
        "diff",
        "largest_files",
        "recent_changes",
        "changes_by_runner",
        "deleted",
        "renames",
        "binary_changes",
        "tool_calls",
        "timeline",
        "changed_by",
        "kv",
        "summary",
    ] {
        let line = listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not in .queries:\n{listed}"));
        assert!(line.len() > name.len() + 10, "{line}");
    }
}

#[test]
fn read_only_unless_write() {
    let home = home_with_changes();
    sql(&home)
        .arg("DELETE FROM kv_store")
        .assert()
        .code(1)
        .stderr(contains("readonly"));
    sql(&home)
        .args([
            "--write",
            "INSERT INTO kv_store (key, value) VALUES ('k', '1')",
        ])
        .assert()
        .success();
    sql(&home)
        .args(["--mode", "list", "SELECT value FROM kv_store"])
        .assert()
        .stdout("value\n1\n");
    // A read-only shell never keeps a transaction open (it would pin the live WAL).
    sql(&home)
        .arg("BEGIN; SELECT 1;")
        .assert()
        .code(1)
        .stderr(contains("transactions are refused in a read-only shell"));
    sql(&home)
        .args(["--write", "BEGIN; UPDATE kv_store SET value = '2'; COMMIT;"])
        .assert()
        .success();
}

#[test]
fn output_and_once_redirect_results() {
    let home = home_with_changes();
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.txt");
    let one = dir.path().join("one.txt");
    let script = format!(
        ".mode list\n.headers off\n.output {}\nSELECT 1;\nSELECT 2;\n.output\nSELECT 3;\n\
         .once {}\nSELECT 4;\nSELECT 5;\n",
        all.display(),
        one.display()
    );
    sql(&home)
        .write_stdin(script)
        .assert()
        .success()
        .stdout("3\n5\n");
    assert_eq!(std::fs::read_to_string(&all).unwrap(), "1\n2\n");
    assert_eq!(std::fs::read_to_string(&one).unwrap(), "4\n");
    sql(&home)
        .write_stdin(".once /nonexistent/dir/x\n")
        .assert()
        .code(1)
        .stderr(contains("cannot write /nonexistent/dir/x"));
}

#[test]
fn views_and_functions_without_a_base() {
    let home = home_with_changes();
    // Without a base every entry is new; base_content is NULL.
    sql(&home)
        .args([
            "--mode",
            "list",
            "SELECT status, path, type FROM fs_changes; \
             SELECT path, type, size, mode FROM fs_paths WHERE path = '/src/small.rs'; \
             SELECT base_content('/src/small.rs') IS NULL, human_size(5000), \
             is_text(content(ino)), blake3(content(ino)) = content_hash(ino) \
             FROM fs_paths WHERE path = '/src/small.rs'",
        ])
        .assert()
        .success()
        .stdout(
            "status|path|type\nA|/src|dir\nA|/src/deep|dir\nA|/src/deep/big.rs|file\n\
             A|/src/small.rs|file\npath|type|size|mode\n/src/small.rs|file|12|0644\n\
             base_content('/src/small.rs') IS NULL|human_size(5000)|is_text(content(ino))|\
             blake3(content(ino)) = content_hash(ino)\n1|4.9 KiB|1|1\n",
        );
    sql(&home)
        .args([
            "--mode",
            "list",
            "--",
            "SELECT unified_diff('a\nb\n', 'a\nc\n', 'f.txt')",
        ])
        .assert()
        .success()
        .stdout(contains(
            "--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n",
        ));
}
