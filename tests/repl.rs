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
