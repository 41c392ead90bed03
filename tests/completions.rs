//! `agentfs completions` and `agentfs man`: the scripts of the five shells, session ids and
//! named queries completed for real (bash driving the registered function), and the man pages.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use predicates::str::contains;

mod common;
use common::home::Home;

const SHELLS: [&str; 5] = ["bash", "zsh", "fish", "elvish", "powershell"];

impl Home {
    /// The candidates agentfs gives `shell` for the last of `words` (the protocol the
    /// registered scripts speak: `AGENTFS_COMPLETE=SHELL agentfs -- WORDS...`).
    fn protocol(&self, shell: &str, words: &[&str]) -> String {
        let mut c = Command::cargo_bin("agentfs").unwrap();
        c.env("AGENTFS_HOME", self.0.path())
            .env("AGENTFS_COMPLETE", shell)
            .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
            .arg("--")
            .args(words);
        let out = c.assert().success().get_output().stdout.clone();
        String::from_utf8(out).unwrap()
    }
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn every_shell_gets_a_script_that_completes_subcommands() {
    let h = Home::with(&[]);
    for shell in SHELLS {
        let script = h.ok(&["completions", shell]);
        assert!(script.contains("agentfs"), "{shell}: {script}");
        assert!(
            script.contains("AGENTFS_COMPLETE") && script.contains(shell),
            "{shell}: the script does not call agentfs's completer for {shell}: {script}"
        );
        // What the script asks for when completing `agentfs di<TAB>`.
        let got = h.protocol(shell, &["agentfs", "di"]);
        assert!(got.contains("diff"), "{shell}: {got:?}");
        assert!(!got.contains("init"), "{shell}: {got:?}");
    }
}

#[test]
fn an_unknown_shell_is_refused() {
    Home::with(&[])
        .cmd(&["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(contains("bash"));
}

/// Runs `agentfs <words...><TAB>` in a non-interactive bash with the registration sourced,
/// calling the function `complete -p agentfs` names the way readline would, and returns
/// COMPREPLY.
fn bash_complete(h: &Home, words: &[&str]) -> Vec<String> {
    let script = h.ok(&["completions", "bash"]);
    let file = h.0.path().join("agentfs.bash");
    std::fs::write(&file, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let driver = format!(
        r#"source '{file}' || exit 3
spec=$(complete -p agentfs) || exit 4
fn=${{spec##*-F }}; fn=${{fn%% *}}
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
"$fn" agentfs "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        file = file.display(),
        words = quoted.join(" "),
    );
    let out: Output = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &driver])
        .env("AGENTFS_HOME", h.0.path())
        .env_remove("AGENTFS_COMPLETE")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&String::from_utf8(out.stdout).unwrap())
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_session_ids_from_agentfs_home() {
    let h = Home::with(&["alpha", "beta"]);
    let all = bash_complete(&h, &["agentfs", "diff", ""]);
    assert!(
        all.iter().any(|c| c == "alpha") && all.iter().any(|c| c == "beta"),
        "{all:?}"
    );
    assert_eq!(bash_complete(&h, &["agentfs", "diff", "al"]), ["alpha"]);
    assert_eq!(bash_complete(&h, &["agentfs", "fs", "b"]), ["beta"]);
    assert_eq!(
        bash_complete(&h, &["agentfs", "run", "--session", "a"]),
        ["alpha"]
    );
    // A session made after the script was sourced is offered too (nothing is cached).
    h.cmd(&["init", "alps"]).assert().success();
    assert_eq!(
        bash_complete(&h, &["agentfs", "sql", "alp"]),
        ["alpha", "alps"]
    );
    // No session matches: no id offered.
    assert!(bash_complete(&h, &["agentfs", "rm", "zz"]).is_empty());
}

#[test]
fn named_queries_complete_after_sql_query() {
    let h = Home::with(&["alpha"]);
    assert_eq!(
        bash_complete(&h, &["agentfs", "sql", "alpha", "--query", "recent"]),
        ["recent_changes"]
    );
    let got = h.protocol("bash", &["agentfs", "sql", "alpha", "--query", ""]);
    for name in ["changes", "diff", "timeline", "summary"] {
        assert!(lines(&got).contains(&name), "{name} missing: {got:?}");
    }
    // The session ids are not named queries.
    assert!(!lines(&got).contains(&"alpha"), "{got:?}");
}

/// The `.TH` line of a page (after clap_mangen's `.ie`/`.el` string definitions).
fn title_line(page: &str) -> &str {
    page.lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or("")
}

#[test]
fn man_prints_the_page_of_agentfs_or_of_a_command() {
    let h = Home::with(&[]);
    let top = h.ok(&["man"]);
    assert!(title_line(&top).starts_with(".TH agentfs 1 "), "{top}");
    assert!(top.contains(".SH NAME") && top.contains("diff"), "{top}");
    let diff = h.ok(&["man", "diff"]);
    assert!(
        title_line(&diff).starts_with(".TH agentfs-diff 1 "),
        "{diff}"
    );
    assert!(
        diff.contains("SESSION") && diff.contains("name\\-status"),
        "{diff}"
    );
    let write = h.ok(&["man", "fs", "write"]);
    assert!(
        title_line(&write).starts_with(".TH agentfs-fs-write 1 "),
        "{write}"
    );
    h.cmd(&["man", "nope"])
        .assert()
        .failure()
        .stderr(contains("no command \"nope\""));
}

/// The command names `agentfs --help` lists (its "Commands:" section), but `help`.
fn listed_commands(h: &Home) -> Vec<String> {
    let help = h.ok(&["--help"]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn man_dir_writes_a_page_per_command() {
    let h = Home::with(&[]);
    let dir = h.0.path().join("man/man1");
    let printed = h.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let commands = listed_commands(&h);
    assert!(commands.len() > 15 && commands.contains(&"man".to_string()));
    let page = |name: &str| -> String {
        let path = dir.join(format!("{name}.1"));
        assert!(
            printed.lines().any(|l| Path::new(l) == path),
            "{} not reported: {printed}",
            path.display()
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let top = page("agentfs");
    assert!(title_line(&top).starts_with(".TH agentfs 1 "));
    for c in &commands {
        let name = format!("agentfs-{c}");
        let text = page(&name);
        assert!(
            title_line(&text).starts_with(&format!(".TH {name} 1 ")),
            "{name}: {text}"
        );
    }
    // Commands of commands get theirs; hidden and help commands get none.
    page("agentfs-fs-write");
    page("agentfs-serve-mcp");
    assert!(!dir.join("agentfs-help.1").exists());
    assert!(!dir.join("agentfs-sandbox-exec.1").exists());
    assert!(!dir.join("agentfs-fs-help.1").exists());
    let written = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(written, printed.lines().count(), "{printed}");
}
