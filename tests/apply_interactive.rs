//! `agentfs apply --interactive` on a pseudo-terminal: the changes shown and asked about one
//! by one, those answered y applied, those answered n left in the session; and refused
//! without a terminal.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rexpect::reader::Options;
use rexpect::session::spawn_with_options;

mod common;

/// A base directory with mod.txt and keep.txt, and a session over it that modifies mod.txt
/// and adds new.txt.
struct Env {
    top: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let top = tempfile::tempdir().unwrap();
        let base = top.path().join("base");
        fs::create_dir(&base).unwrap();
        fs::write(base.join("mod.txt"), "one\ntwo\nthree\n").unwrap();
        fs::write(base.join("keep.txt"), "kept\n").unwrap();
        let env = Env { top };
        env.ok(&["init", "s", "--base", base.to_str().unwrap()]);
        env.ok(&[
            "fs",
            "s",
            "write",
            "/mod.txt",
            "--data",
            "one\nTWO\nthree\n",
        ]);
        env.ok(&["fs", "s", "write", "/new.txt", "--data", "brand new\n"]);
        env
    }

    fn home(&self) -> PathBuf {
        self.top.path().join("home")
    }

    fn base(&self) -> PathBuf {
        self.top.path().join("base")
    }

    fn ok(&self, args: &[&str]) -> std::process::Output {
        common::agentfs(&self.home(), args)
    }

    fn diff(&self) -> String {
        String::from_utf8(self.ok(&["diff", "--name-status", "s"]).stdout).unwrap()
    }
}

/// What `agentfs diff --name-status` lists before anything is applied.
const BEFORE: &str = "A /mod.txt\nA /new.txt\n";

fn read(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok()
}

#[test]
fn y_applies_one_change_and_n_leaves_the_other_in_the_session() {
    let env = Env::new();
    // `fs write` replaces the file, which diff lists as added; apply compares with the base.
    assert_eq!(env.diff(), "A /mod.txt\nA /new.txt\n");
    let mut cmd = Command::new(common::BIN);
    cmd.args(["apply", "s", "--interactive"])
        .env("AGENTFS_HOME", env.home())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let options = Options::new()
        .timeout_ms(Some(30_000))
        .strip_ansi_escape_codes(true);
    let mut p = spawn_with_options(cmd, options).unwrap();

    // The modified file, with its diff.
    p.exp_string("M /mod.txt").unwrap();
    p.exp_string("-two").unwrap();
    p.exp_string("+TWO").unwrap();
    p.exp_string("(1/2) Apply this change [y,n,a,q,f,?]? ")
        .unwrap();
    // Help, then the same question again.
    p.send_line("?").unwrap();
    p.exp_string("a - apply this change and all the remaining ones")
        .unwrap();
    p.exp_string("(1/2) Apply this change [y,n,a,q,f,?]? ")
        .unwrap();
    p.send_line("y").unwrap();

    // The new file; f shows all of it.
    p.exp_string("A /new.txt").unwrap();
    p.exp_string("+brand new").unwrap();
    p.exp_string("(2/2) Apply this change [y,n,a,q,f,?]? ")
        .unwrap();
    p.send_line("f").unwrap();
    p.exp_string("(whole new file)").unwrap();
    p.exp_string("brand new").unwrap();
    p.exp_string("(2/2) Apply this change [y,n,a,q,f,?]? ")
        .unwrap();
    p.send_line("n").unwrap();

    p.exp_string("applied 1 change(s)").unwrap();
    p.exp_string("1 change(s) left in the session").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );

    assert_eq!(
        read(&env.base().join("mod.txt")).as_deref(),
        Some("one\nTWO\nthree\n")
    );
    assert_eq!(read(&env.base().join("new.txt")), None);
    assert_eq!(
        read(&env.base().join("keep.txt")).as_deref(),
        Some("kept\n")
    );
    assert_eq!(env.diff(), "A /new.txt\n");
}

#[test]
fn without_a_terminal_it_refuses_and_changes_nothing() {
    let env = Env::new();
    let out = Command::new(common::BIN)
        .args(["apply", "s", "-i"])
        .env("AGENTFS_HOME", env.home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not one") && stderr.contains("terminal"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        read(&env.base().join("mod.txt")).as_deref(),
        Some("one\ntwo\nthree\n")
    );
    assert_eq!(read(&env.base().join("new.txt")), None);
    assert_eq!(env.diff(), BEFORE);

    // Answers piped in are no terminal either.
    let mut child = Command::new(common::BIN)
        .args(["apply", "s", "--interactive"])
        .env("AGENTFS_HOME", env.home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"y\ny\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.diff(), BEFORE);
}

#[test]
fn interactive_and_json_do_not_go_together() {
    let env = Env::new();
    let out = Command::new(common::BIN)
        .args(["apply", "s", "-i", "--json"])
        .env("AGENTFS_HOME", env.home())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.diff(), BEFORE);
}

#[test]
fn a_path_the_host_changed_is_not_asked_about_and_the_exit_status_is_1() {
    let env = Env::new();
    // After the session's write: the host's version is newer.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(env.base().join("mod.txt"), "host\n").unwrap();
    let mut cmd = Command::new(common::BIN);
    cmd.args(["apply", "s", "-i"])
        .env("AGENTFS_HOME", env.home())
        .env("TERM", "xterm");
    let options = Options::new()
        .timeout_ms(Some(30_000))
        .strip_ansi_escape_codes(true);
    let mut p = spawn_with_options(cmd, options).unwrap();
    p.exp_string("conflict, not asked: M /mod.txt").unwrap();
    p.exp_string("A /new.txt").unwrap();
    p.exp_string("(1/1) Apply this change [y,n,a,q,f,?]? ")
        .unwrap();
    p.send_line("y").unwrap();
    p.exp_string("applied 1 change(s)").unwrap();
    p.exp_string("1 path(s) skipped").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 1)),
        "{status:?}"
    );
    assert_eq!(read(&env.base().join("mod.txt")).as_deref(), Some("host\n"));
    assert_eq!(
        read(&env.base().join("new.txt")).as_deref(),
        Some("brand new\n")
    );
    assert_eq!(env.diff(), "A /mod.txt\n");
}

#[test]
fn a_mounted_session_is_refused_before_any_question() {
    let env = Env::new();
    let mnt = env.top.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    env.ok(&["mount", "s", mnt.to_str().unwrap()]);
    let _unmount = common::Unmount(mnt.clone());
    let mut cmd = Command::new(common::BIN);
    cmd.args(["apply", "s", "-i"])
        .env("AGENTFS_HOME", env.home())
        .env("TERM", "xterm");
    let options = Options::new()
        .timeout_ms(Some(30_000))
        .strip_ansi_escape_codes(true);
    let mut p = spawn_with_options(cmd, options).unwrap();
    let out = p.exp_eof().unwrap();
    assert!(out.contains("is in use"), "{out}");
    assert!(!out.contains("Apply this change"), "{out}");
    let status = p.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 1)),
        "{status:?}"
    );
    assert_eq!(
        read(&env.base().join("mod.txt")).as_deref(),
        Some("one\ntwo\nthree\n")
    );
}
