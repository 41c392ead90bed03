//! `agentfs run` and `agentfs exec` for real: sandboxes over a real project directory on the
//! session's shared FUSE mount, checked from outside (the host tree, the session database).
//! The test trees live under /var/tmp, not /tmp: inside a sandbox /tmp is the session's own.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::BIN;
use common::project::{FuseMode, OnTerminal, Project, text, wait_for};

#[test]
fn changes_land_in_the_session_and_never_in_the_project() {
    let p = Project::new();
    let before = common::tree_snapshot(&p.proj());
    let out = p.sh(
        "set -e; echo changed >> README; rm doomed.txt; echo new > created.txt; \
         mkdir -p docs && mv src/main.rs docs/main.rs; chmod 600 bin.dat; \
         ln -s created.txt newlink; ln README hard; printf '%s' \"$AGENTFS_SESSION\"; pwd",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("s{}\n", p.proj().display()),
        "AGENTFS_SESSION and the working directory inside"
    );
    assert_eq!(
        common::tree_snapshot(&p.proj()),
        before,
        "the project directory was modified"
    );
    assert_eq!(
        p.agentfs(&["fs", "s", "cat", "/README"]),
        "read me\nchanged\n"
    );
    assert_eq!(p.agentfs(&["fs", "s", "cat", "/created.txt"]), "new\n");
    assert_eq!(
        p.agentfs(&["fs", "s", "cat", "/docs/main.rs"]),
        "fn main() {}\n"
    );
    assert!(
        Command::new(BIN)
            .args(["fs", "s", "cat", "/doomed.txt"])
            .env("AGENTFS_HOME", p.store())
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    // The runner is recorded, and every change names it.
    assert_eq!(p.sql("SELECT count(*) FROM fs_runner"), "1");
    assert_eq!(
        p.sql("SELECT exit_status, ended_at_ns IS NOT NULL, argv LIKE '[\"sh\",\"-c\",%' FROM fs_runner"),
        "0|1|1"
    );
    assert_eq!(
        p.sql("SELECT count(*) > 5, count(runner_id) = count(*) FROM fs_change"),
        "1|1"
    );
    p.wait_unmounted();
}

#[test]
fn the_rest_is_read_only_and_tmp_is_private_to_the_session() {
    let p = Project::new();
    let outside = p.top().join("outside.txt");
    let probe = format!("agentfs-probe-{}", std::process::id());
    let out = p.sh(&format!(
        "touch {o} 2>&1; echo rc=$?; touch /tmp/{probe} && echo tmp-ok",
        o = outside.display()
    ));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Read-only file system"), "{stdout}");
    assert!(
        stdout.contains("rc=1") && stdout.contains("tmp-ok"),
        "{stdout}"
    );
    assert!(!outside.exists());
    assert!(
        !Path::new("/tmp").join(&probe).exists(),
        "/tmp was the host's"
    );
    // The session's runners share its /tmp.
    let out = p.sh(&format!("ls /tmp/{probe}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Devices and /proc work.
    let out =
        p.sh("echo x > /dev/null && head -c 4 /dev/zero | wc -c && test -r /proc/self/status");
    assert_eq!(text(&out.stdout).trim(), "4", "{}", text(&out.stderr));
}

#[test]
fn banner_lists_what_is_writable_and_how_to_join() {
    let p = Project::new();
    let extra = p.top().join("extra");
    fs::create_dir(&extra).unwrap();
    let out = p.run(&[
        "--session",
        "s",
        "--allow",
        extra.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "the banner goes to stderr");
    let expected = format!(
        "Welcome to AgentFS!\n\nThe following directories are writable:\n\n  - {proj} (copy-on-write)\n  - {home}/.claude\n  - {extra}\n  - /tmp (private to this session)\n\nEverything else is read-only.\n\nTo join this session from another terminal:\n\n  agentfs run --session s <command>\n\n",
        proj = p.proj().display(),
        home = p.home().display(),
        extra = extra.display(),
    );
    let got = text(&out.stderr);
    for (i, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        assert_eq!(g, e, "banner line {}", i + 1);
    }
    assert_eq!(got, expected);

    // Joining says so; --no-default-allows drops ~/.claude from the list and from the
    // writable set.
    let out = p.run(&[
        "--session",
        "s",
        "--no-default-allows",
        "--",
        "sh",
        "-c",
        "touch ~/.claude/x",
    ]);
    let err = text(&out.stderr);
    assert!(err.starts_with("Joining existing session: s\n"), "{err}");
    assert!(!err.contains(".claude\n"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!p.home().join(".claude/x").exists());
}

#[test]
fn allowed_paths_are_written_directly() {
    let p = Project::new();
    let extra = p.top().join("extra");
    fs::create_dir(&extra).unwrap();
    let out = p.run(&[
        "-q",
        "--session",
        "s",
        "--allow",
        extra.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &format!(
            "echo kept > {}/f && echo cfg > ~/.claude/settings",
            extra.display()
        ),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(extra.join("f")).unwrap(), "kept\n");
    assert_eq!(
        fs::read_to_string(p.home().join(".claude/settings")).unwrap(),
        "cfg\n"
    );
    // A missing --allow path is refused, naming it.
    let out = p.run(&[
        "-q",
        "--session",
        "s",
        "--allow",
        "/no/such/dir",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--allow /no/such/dir"),
        "{}",
        text(&out.stderr)
    );
    // ... before any session is made for it.
    let out = p.run(&[
        "-q",
        "--session",
        "fresh",
        "--allow",
        "/no/such/dir",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!p.store().join("fresh.db").exists());
}

#[test]
fn exit_status_is_the_commands() {
    let p = Project::new();
    assert_eq!(p.sh("exit 7").status.code(), Some(7));
    assert_eq!(p.sh("kill -TERM $$").status.code(), Some(128 + 15));
    let out = p.run(&["-q", "--session", "s", "--", "no-such-command-xyz"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stderr).contains("no-such-command-xyz: command not found"));
    assert_eq!(
        p.sql(
            "SELECT group_concat(exit_status) FROM (SELECT exit_status FROM fs_runner ORDER BY id)"
        ),
        "7,143,127"
    );
}

#[test]
fn signals_sent_to_the_runner_reach_the_command() {
    let p = Project::new();
    let mut child = p.spawn_sh(
        "trap 'echo got-term; exit 42' TERM; echo ready > ready; while :; do sleep 0.05; done",
    );
    wait_for("the command to start", || {
        p.run_mount().join("ready").exists()
    });
    // SAFETY: plain kill(2).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the runner ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(42));
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "got-term\n");
}

#[test]
fn two_runners_share_the_session_live() {
    let p = Project::new();
    // Files appear by rename, so that one whose name is seen is complete.
    // A writes, waits for B's file, then waits to be released.
    let a = p.spawn_sh(
        "echo from-a > a.tmp; mv a.tmp a.txt; while [ ! -f b.txt ]; do sleep 0.02; done; cat b.txt; \
         while [ ! -f release ]; do sleep 0.02; done",
    );
    wait_for("runner A's file", || p.run_mount().join("a.txt").exists());
    // B sees A's file at once, answers, and keeps working after A has left.
    let b = p.spawn_sh(
        "cat a.txt; echo from-b > b.tmp; mv b.tmp b.txt; while [ ! -f a-left ]; do sleep 0.02; done; \
         echo after > after.txt; cat after.txt",
    );
    wait_for("both runners", || {
        p.agentfs(&["ps", "s"])
            .lines()
            .filter(|l| l.contains("sh -c"))
            .count()
            == 2
    });
    let sessions = p.agentfs(&["sessions"]);
    assert!(
        sessions
            .lines()
            .any(|l| l.contains(" s ") && l.contains(" 2 ")),
        "{sessions}"
    );
    // Release A through the database: the mounts see it through the journal.
    p.agentfs(&["fs", "s", "write", "/release", "--data", "go"]);
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert_eq!(text(&a.stdout), "from-b\n");
    wait_for("runner A to be gone", || {
        p.agentfs(&["ps", "s"])
            .lines()
            .filter(|l| l.contains("sh -c"))
            .count()
            == 1
    });
    // A window for a wrong unmount to happen (the mount checks its runners every 200 ms):
    // nothing to wait for, since what is tested is that nothing happens.
    std::thread::sleep(Duration::from_millis(500));
    p.agentfs(&["fs", "s", "write", "/a-left", "--data", "x"]);
    let b = b.wait_with_output().unwrap();
    assert!(b.status.success(), "{}", text(&b.stderr));
    assert_eq!(text(&b.stdout), "from-a\nafter\n");
    p.wait_unmounted();
    assert_eq!(p.agentfs(&["fs", "s", "cat", "/after.txt"]), "after\n");
    assert!(p.agentfs(&["ps"]).contains("no live runners"));
    // Changes name the runner that made them.
    assert_eq!(
        p.sql("SELECT group_concat(DISTINCT runner_id) FROM fs_change WHERE path = '/b.txt'"),
        "2"
    );
}

#[test]
fn a_runner_killed_with_sigkill_leaves_nothing_stuck() {
    let p = Project::new();
    let mut child = p.spawn_sh("echo up > u.tmp; mv u.tmp up; exec sleep 600");
    wait_for("the command to start", || p.run_mount().join("up").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    // The command dies with its runner, and the mount goes once no runner is left.
    p.wait_unmounted();
    assert_eq!(
        p.sql("SELECT ended_at_ns IS NOT NULL, exit_status IS NULL FROM fs_runner"),
        "1|1"
    );
    let out = p.sh("cat up");
    assert_eq!(text(&out.stdout), "up\n", "{}", text(&out.stderr));

    // A killed mount daemon is replaced by the next runner.
    let mut child = p.spawn_sh("echo again > a.tmp; mv a.tmp again; exec sleep 600");
    wait_for("the command to start", || {
        p.run_mount().join("again").exists()
    });
    let daemon = agentfs::mount::fuse_mount_at(&p.run_mount())
        .and_then(|m| m.agentfs_pid())
        .unwrap();
    // SAFETY: plain kill(2).
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    child.kill().unwrap();
    child.wait().unwrap();
    let out = p.sh("cat up again");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "up\nagain\n");
    p.wait_unmounted();
}

#[test]
fn exec_runs_in_the_mount_without_the_read_only_sandbox() {
    let p = Project::new();
    let before = common::tree_snapshot(&p.proj());
    let outside = p.top().join("outside.txt");
    // exec needs an existing session.
    let out = common::output_within(
        p.command(&["exec", "nope", "true"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no session \"nope\""),
        "{}",
        text(&out.stderr)
    );
    assert!(p.sh("true").status.success());
    let out = common::output_within(
        p.command(&[
            "exec",
            "s",
            "sh",
            "-c",
            &format!("echo e > e.txt && echo o > {}", outside.display()),
        ]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "exec prints no banner: {}",
        text(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&outside).unwrap(), "o\n");
    assert_eq!(p.agentfs(&["fs", "s", "cat", "/e.txt"]), "e\n");
    assert_eq!(common::tree_snapshot(&p.proj()), before);
    p.wait_unmounted();
}

#[test]
fn bash_prompts_are_marked() {
    let p = Project::new();
    let mut cmd = p.command(&["run", "-q", "--session", "s", "--", "bash", "--norc", "-i"]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo inside\nexit 3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "inside\n");
    // Interactive bash prints its prompt on stderr.
    assert!(text(&out.stderr).contains("🤖 "), "{}", text(&out.stderr));
}

#[test]
fn a_session_without_a_base_or_with_a_vanished_base_is_refused() {
    let p = Project::new();
    p.agentfs(&["init", "plain"]);
    let out = p.run(&["--session", "plain", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no base directory"),
        "{}",
        text(&out.stderr)
    );
    let gone = p.top().join("gone");
    fs::create_dir(&gone).unwrap();
    p.agentfs(&["init", "g", "--base", gone.to_str().unwrap()]);
    fs::remove_dir(&gone).unwrap();
    let out = p.run(&["--session", "g", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is missing"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_normal_user_runs_in_a_user_namespace() {
    // Machines differ in who may open /dev/fuse; open it to users for this test.
    let mode = fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    let _restore = FuseMode(mode);
    fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(0o666)).unwrap();
    let p = Project::new();
    p.give_to_nobody();
    let before = common::tree_snapshot(&p.proj());
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["run", "-q", "--session", "s", "--", "sh", "-c"])
        .arg(format!(
            "id -u; echo mine >> README; cat README; touch {}/x 2>&1",
            p.top().display()
        ))
        .current_dir(p.proj())
        .env("AGENTFS_HOME", p.store())
        .env("HOME", p.home());
    let out = common::output_within(cmd, Duration::from_secs(120));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("65534\nread me\nmine\n"),
        "{stdout}{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Read-only file system"), "{stdout}");
    assert_eq!(common::tree_snapshot(&p.proj()), before);
    p.wait_unmounted();
}

#[test]
fn the_terminal_works_inside_and_ctrl_c_reaches_the_command() {
    let p = Project::new();
    let mut term = OnTerminal::spawn(p.command(&[
        "run",
        "-q",
        "--session",
        "s",
        "--",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo on-a-tty; trap 'echo got-int; exit 5' INT; \
         echo ready; while :; do sleep 0.05; done",
    ]));
    let mut seen = String::new();
    term.expect(&mut seen, "ready");
    assert!(seen.contains("on-a-tty"), "{seen:?}");
    // Ctrl-C: the terminal sends SIGINT to the foreground group; the command handles it and
    // agentfs leaves with its status (it is not killed itself).
    term.send(b"\x03");
    term.expect(&mut seen, "got-int");
    assert_eq!(term.wait().code(), Some(5));
}

#[test]
fn without_session_a_new_one_with_a_uuid_is_made() {
    let p = Project::new();
    let out = p.run(&["--", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let id = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("agentfs run --session "))
        .and_then(|l| l.strip_suffix(" <command>"))
        .unwrap_or_else(|| panic!("no join line in {err}"));
    let parsed = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert!(p.store().join(format!("{id}.db")).exists());
    let out = p.agentfs(&["sessions"]);
    assert!(
        out.contains(id) && out.contains(p.proj().to_str().unwrap()),
        "{out}"
    );
    drop(common::Unmount(p.store().join(format!("{id}.db.run/mnt"))));
}

#[test]
fn apply_refuses_while_a_runner_is_live() {
    let p = Project::new();
    let mut child = p.spawn_sh("echo x > new.txt; mv new.txt up.txt; exec sleep 600");
    wait_for("the command to start", || {
        p.run_mount().join("up.txt").exists()
    });
    let out = common::output_within(p.command(&["apply", "s"]), Duration::from_secs(60));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is in use (runner 1 (pid "), "{err}");
    assert!(!p.proj().join("up.txt").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    p.wait_unmounted();
    let out = common::output_within(p.command(&["apply", "s"]), Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(p.proj().join("up.txt")).unwrap(), "x\n");
}

#[test]
fn several_runners_write_at_once_while_sql_reads() {
    let p = Project::new();
    // Three runners, each making 150 files and renaming half of them, at the same time.
    let runners: Vec<Child> = (0..3)
        .map(|r| {
            p.spawn_sh(&format!(
                "mkdir -p w{r} && i=0; while [ $i -lt 150 ]; do echo \"$i from {r}\" > w{r}/f$i; \
                 if [ $((i % 2)) = 0 ]; then mv w{r}/f$i w{r}/g$i; fi; i=$((i + 1)); done"
            ))
        })
        .collect();
    // A reader queries the live session meanwhile.
    wait_for("the session", || p.store().join("s.db").exists());
    let mut pending = runners;
    let mut done = Vec::new();
    while !pending.is_empty() {
        let out = common::output_within(
            p.command(&["sql", "s", "SELECT count(*), max(seq) FROM fs_change"]),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut still = Vec::new();
        for mut c in pending {
            match c.try_wait().unwrap() {
                Some(_) => done.push(c),
                None => still.push(c),
            }
        }
        pending = still;
    }
    for c in done {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    p.wait_unmounted();
    for r in 0..3 {
        let listing = p.agentfs(&["fs", "s", "ls", &format!("/w{r}")]);
        assert_eq!(listing.lines().count(), 150, "{listing}");
        assert_eq!(
            p.agentfs(&["fs", "s", "cat", &format!("/w{r}/g10")]),
            format!("10 from {r}\n")
        );
        assert_eq!(
            p.agentfs(&["fs", "s", "cat", &format!("/w{r}/f11")]),
            format!("11 from {r}\n")
        );
    }
    // Three runners, and each one's changes are its own.
    assert_eq!(
        p.sql("SELECT count(DISTINCT runner_id) FROM fs_change WHERE path LIKE '/w%'"),
        "3"
    );
    assert_eq!(
        p.sql(
            "SELECT count(*) FROM fs_change c JOIN fs_runner r ON r.id = c.runner_id \
               WHERE c.path LIKE '/w%' AND r.argv NOT LIKE '%w' || substr(c.path, 3, 1) || '/%'"
        ),
        "0"
    );
    let fsck = common::output_within(p.command(&["fsck", "s"]), Duration::from_secs(60));
    assert!(fsck.status.success(), "{}", text(&fsck.stdout));
}

#[test]
fn rm_waits_for_runners_and_removes_the_run_directory() {
    let p = Project::new();
    let mut child = p.spawn_sh("echo x > l.tmp; mv l.tmp live; exec sleep 600");
    wait_for("the command to start", || {
        p.run_mount().join("live").exists()
    });
    for args in [&["rm", "s"][..], &["gc", "--older-than", "0s"][..]] {
        let out = common::output_within(p.command(args), Duration::from_secs(60));
        assert!(
            p.store().join("s.db").exists(),
            "{args:?} removed a live session"
        );
        assert!(
            text(&out.stderr).contains("mounted at"),
            "{}",
            text(&out.stderr)
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    p.wait_unmounted();
    p.agentfs(&["rm", "s"]);
    assert!(!p.store().join("s.db").exists());
    assert!(
        !p.store().join("s.db.run").exists(),
        "the run directory was left"
    );
}

#[test]
fn an_interactive_bash_works_on_the_terminal() {
    let p = Project::new();
    let mut term = OnTerminal::spawn(p.command(&[
        "run",
        "-q",
        "--session",
        "s",
        "--",
        "bash",
        "--norc",
        "-i",
    ]));
    let mut seen = String::new();
    // bash takes the terminal (its own process group, job control) and shows its prompt.
    term.expect(&mut seen, "🤖 ");
    term.send(b"echo inside-$((40+2)) && cat README && tty && echo via-$((6*7)) > /dev/tty\r");
    term.expect(&mut seen, "inside-42");
    term.expect(&mut seen, "read me");
    // The sandbox has its own devpts: the runner's terminal is its /dev/console.
    term.expect(&mut seen, "/dev/console");
    term.expect(&mut seen, "via-42");
    term.send(b"exit 4\r");
    assert_eq!(term.wait().code(), Some(4));
}
