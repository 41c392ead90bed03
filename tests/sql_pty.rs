//! The interactive `agentfs sql` shell driven through a pseudo-terminal: history kept across
//! runs, tab completion and hints, Ctrl-C cancelling a long query, statements over several
//! lines, output modes, and an idle shell that does not pin the WAL.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};

mod common;

/// A session with a few files, in a fresh `AGENTFS_HOME`.
fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    common::agentfs(home.path(), &["init", "s"]);
    common::agentfs(home.path(), &["fs", "s", "mkdir", "/src"]);
    common::agentfs(
        home.path(),
        &["fs", "s", "write", "/src/a.rs", "--data", "fn a() {}"],
    );
    home
}

/// `agentfs sql s` on a new terminal, at its first prompt.
fn shell(home: &Path) -> PtySession {
    let mut cmd = Command::new(common::BIN);
    cmd.args(["sql", "s"])
        .env("AGENTFS_HOME", home)
        .env("TERM", "xterm");
    let options = Options::new()
        .timeout_ms(Some(30_000))
        .strip_ansi_escape_codes(false);
    let mut p = spawn_with_options(cmd, options).unwrap();
    // A new pty has no size; give it one as a terminal window would.
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let f = p.process().get_file_handle().unwrap();
    assert_eq!(
        // SAFETY: TIOCSWINSZ reads the winsize struct we pass.
        unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        0
    );
    p.exp_string("agentfs> ").unwrap();
    p
}

/// Types `s` (flushed at once: the shell sees it now).
fn type_in(p: &mut PtySession, s: &str) {
    p.send(s).unwrap();
    p.flush().unwrap();
}

/// Types a line at the prompt and returns what the shell printed up to its next prompt
/// (waiting for the prompt, as a person would, before typing on).
fn command(p: &mut PtySession, line: &str) -> String {
    type_in(p, &format!("{line}\r"));
    fresh_prompt(p)
}

/// Waits for the prompt of the next line and returns what came before it. The prompt is
/// redrawn at every key, so it is recognised by what rustyline sends once per line: it
/// turns bracketed paste off when a line is accepted and on again for the next one.
fn fresh_prompt(p: &mut PtySession) -> String {
    p.exp_string("\x1b[?2004l").unwrap();
    let out = p.exp_string("\x1b[?2004h").unwrap();
    p.exp_string("agentfs> ").unwrap();
    out
}

/// Leaves with Ctrl-D and checks the shell exits (with status 0). A key that reaches the
/// terminal while the line editor switches it between modes can be dropped, so Ctrl-D is
/// pressed again, as a person would, if the shell is still there after half a second.
fn leave(mut p: PtySession) {
    use rexpect::process::WaitStatus;
    for _ in 0..20 {
        p.send_control('d').unwrap();
        let pressed = std::time::Instant::now();
        while pressed.elapsed() < std::time::Duration::from_millis(500) {
            while p.try_read().is_some() {}
            match p.process().status() {
                Some(WaitStatus::StillAlive) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Some(WaitStatus::Exited(_, code)) => {
                    assert_eq!(code, 0, "the shell exited with {code}");
                    return;
                }
                other => panic!("the shell ended with {other:?}"),
            }
        }
    }
    panic!("the shell did not leave on Ctrl-D");
}

#[test]
fn history_is_kept_across_runs() {
    let home = home();
    let mut p = shell(home.path());
    // 6*7: the answer never appears in what was typed.
    type_in(&mut p, "SELECT 6*7 AS answer;\r");
    p.exp_string("42").unwrap();
    leave(p);
    let saved = std::fs::read_to_string(home.path().join(".sql_history")).unwrap();
    assert!(saved.contains("SELECT 6*7 AS answer;"), "{saved}");

    let mut p = shell(home.path());
    // Up arrow brings the last statement back; Enter runs it.
    type_in(&mut p, "\x1b[A");
    type_in(&mut p, "\r");
    p.exp_string("42").unwrap();
    leave(p);
}

#[test]
fn tab_completes_commands_tables_and_named_queries_and_hints_usage() {
    let home = home();
    let mut p = shell(home.path());
    // A unique prefix completes; were it not completed, each line would be an error.
    let out = command(&mut p, ".sch\t fs_paths");
    assert!(out.contains("CREATE VIEW fs_paths"), "{out:?}");
    // " 234 " is only in the result (the typed line has "1234").
    let out = command(&mut p, "SELECT count(*) + 1234 - 1000 AS n FROM fs_whi\t;");
    assert!(out.contains(" 234 "), "{out:?}");
    let out = command(&mut p, ".q largest_f\t 1");
    assert!(out.contains("/src/a.rs"), "{out:?}");
    // Typing a dot-command shows its arguments as a hint.
    type_in(&mut p, ".mod");
    p.exp_string("table|csv|json|line|list").unwrap();
    p.send_control('c').unwrap();
    fresh_prompt(&mut p);
    type_in(&mut p, "SELECT 'still here' AS s;\r");
    p.exp_string("still here").unwrap();
    leave(p);
}

/// Whether the terminal is in cooked mode (ISIG on): the shell is running a statement.
fn cooked(p: &PtySession) -> bool {
    let f = p.process().get_file_handle().unwrap();
    // SAFETY: termios is plain old data, for which all zero bytes are a valid value.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr fills the termios struct we pass; on Linux the master reports the
    // terminal's settings.
    unsafe { libc::tcgetattr(f.as_raw_fd(), &mut t) == 0 && t.c_lflag & libc::ISIG != 0 }
}

#[test]
fn ctrl_c_cancels_a_running_query_and_the_shell_goes_on() {
    let home = home();
    let mut p = shell(home.path());
    type_in(
        &mut p,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) \
         SELECT count(*) FROM c;\r",
    );
    // Wait until the prompt has handed the terminal back (the statement runs), then
    // Ctrl-C; repeat until the shell reports the interruption, within a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    let mut last_sent = None::<Instant>;
    while !seen.contains("interrupted") {
        assert!(
            Instant::now() < deadline,
            "no interruption; output: {seen:?}"
        );
        if cooked(&p) && last_sent.is_none_or(|t| t.elapsed() > Duration::from_millis(300)) {
            p.send_control('c').unwrap();
            last_sent = Some(Instant::now());
        }
        match p.try_read() {
            Some(c) => seen.push(c),
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert!(!seen.contains("│ 1000000000"), "the query ran to its end");
    p.exp_string("agentfs> ").unwrap();
    type_in(&mut p, "SELECT 6*7 AS answer;\r");
    p.exp_string("42").unwrap();
    leave(p);
}

#[test]
fn statements_over_several_lines_and_output_modes() {
    let home = home();
    let mut p = shell(home.path());
    type_in(&mut p, "SELECT 1 + 1 AS one,\r");
    p.exp_string("...> ").unwrap();
    let out = command(&mut p, "  upper('two') AS two;");
    assert!(out.contains("TWO"), "{out:?}");
    command(&mut p, ".mode csv");
    let out = command(&mut p, "SELECT 6*7 AS answer, NULL AS empty;");
    assert!(out.contains("answer,empty\r\n42,\r\n"), "{out:?}");
    command(&mut p, ".mode json");
    let out = command(&mut p, "SELECT 6*7 AS answer, x'0001' AS bytes;");
    assert!(
        out.contains(r#"[{"answer":42,"bytes":"<blob 2 bytes>"}]"#),
        "{out:?}"
    );
    command(&mut p, ".mode line");
    let out = command(&mut p, "SELECT 6*7 AS answer;");
    assert!(out.contains("answer = 42"), "{out:?}");
    command(&mut p, ".headers off");
    command(&mut p, ".mode list");
    let out = command(&mut p, "SELECT 6*7, 'x';");
    assert!(out.contains("42|x"), "{out:?}");
    type_in(&mut p, ".quit\r");
    p.exp_eof().unwrap();
}

#[test]
fn an_idle_shell_holds_no_read_transaction() {
    let home = home();
    let mut p = shell(home.path());
    type_in(&mut p, "SELECT count(*) * 6 AS n FROM fs_change;\r");
    p.exp_string("agentfs> ").unwrap();
    // With the shell open and idle, another process writes and checkpoints the whole WAL:
    // a reader holding a snapshot would make the checkpoint report "busy".
    let conn = rusqlite::Connection::open(home.path().join("s.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute("INSERT INTO kv_store (key, value) VALUES ('k', '1')", [])
        .unwrap();
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "the idle shell blocked a checkpoint");
    // And the shell sees the new row.
    type_in(
        &mut p,
        "SELECT value || 'x' FROM kv_store WHERE key = 'k';\r",
    );
    p.exp_string("1x").unwrap();
    // Read-only: a write is refused, the shell goes on.
    type_in(&mut p, "DELETE FROM kv_store;\r");
    p.exp_string("readonly").unwrap();
    leave(p);
}
