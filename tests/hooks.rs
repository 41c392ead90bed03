//! `agentfs hook` inside `agentfs run`: Claude Code's PreToolUse/PostToolUse input (as its
//! hooks documentation gives it) recorded through the mount daemon, with the journal rows of
//! the step linked to the call; and what a command in the sandbox cannot do with the channel.

use std::fs;

mod common;
use common::BIN;
use common::project::Project;

/// Claude Code's hook input for one Bash step, before (`PreToolUse`) and after.
fn claude_input(event: &str, id: &str, command: &str) -> String {
    let response = if event == "PostToolUse" {
        r#","tool_response":{"stdout":"","stderr":"","interrupted":false,"isImage":false}"#
    } else {
        ""
    };
    format!(
        r#"{{"session_id":"5b3c","transcript_path":"/home/u/.claude/projects/p/5b3c.jsonl","cwd":"/p","permission_mode":"default","hook_event_name":"{event}","tool_name":"Bash","tool_input":{{"command":"{command}","description":"a step"}},"tool_use_id":"{id}"{response}}}"#
    )
}

#[test]
fn a_claude_code_step_reported_by_its_hooks_shows_in_the_timeline_with_what_it_changed() {
    let p = Project::new();
    let step = "echo made > made.txt && mv doomed.txt kept.txt";
    fs::write(
        p.proj().join("pre.json"),
        claude_input("PreToolUse", "toolu_1", step),
    )
    .unwrap();
    fs::write(
        p.proj().join("post.json"),
        claude_input("PostToolUse", "toolu_1", step),
    )
    .unwrap();
    // Before and after the step, the agent's hooks run `agentfs hook claude-code`; a change
    // outside the step (before.txt) is not the call's.
    let out = p.sh(&format!(
        "echo x > before.txt; {BIN} hook claude-code < pre.json && {step} && \
         {BIN} hook claude-code < post.json; echo exit=$?"
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("exit=0"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.wait_unmounted();
    let calls: serde_json::Value =
        serde_json::from_str(&p.agentfs(&["timeline", "s", "--json"])).unwrap();
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    assert_eq!(calls[0]["name"], "Bash");
    assert_eq!(calls[0]["status"], "success");
    assert_eq!(
        calls[0]["paths"],
        serde_json::json!(["/kept.txt", "/made.txt"]),
        "{calls}"
    );
    assert!(calls[0]["duration_ms"].as_i64().is_some());
    assert_eq!(
        p.sql(
            "SELECT count(*) FROM fs_change WHERE path = '/before.txt' AND tool_call_id IS NOT NULL"
        ),
        "0"
    );
    assert_eq!(
        p.sql("SELECT json_extract(parameters, '$.command') FROM tool_calls"),
        step
    );
}

#[test]
fn the_hook_channel_records_only_checked_calls_of_the_sender_and_never_blocks_the_agent() {
    let p = Project::new();
    fs::write(
        p.proj().join("bad-name.json"),
        r#"{"hook_event_name":"PreToolUse","tool_name":"x; rm -rf /"}"#,
    )
    .unwrap();
    fs::write(p.proj().join("stop.json"), r#"{"hook_event_name":"Stop"}"#).unwrap();
    let out = p.sh(&format!(
        "{BIN} hook claude-code < bad-name.json; echo a=$?; \
         {BIN} hook claude-code < stop.json; echo b=$?; \
         echo 'not json' | {BIN} hook gemini; echo c=$?; \
         printf '{{\"agent\":\"claude-code\",\"payload\":\"{{}}\"}}\\n' | \
           python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(\"/tmp/.agentfs-hooks.sock\"); s.sendall(sys.stdin.buffer.read()); s.shutdown(1); print(s.recv(4096).decode().strip())';",
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The agent goes on whatever the hook gets: exit 0 each time, the reason on stderr.
    for code in ["a=0", "b=0", "c=0"] {
        assert!(stdout.contains(code), "{stdout}{stderr}");
    }
    assert!(stderr.contains("is not a tool name"), "{stderr}");
    assert!(
        stderr.contains("is not a tool call's start or end"),
        "{stderr}"
    );
    assert!(stderr.contains("not JSON"), "{stderr}");
    // Sent straight to the socket, a message is checked by the daemon as well.
    assert!(
        stdout.contains("error the hook input has no hook_event_name"),
        "{stdout}"
    );
    p.wait_unmounted();
    assert_eq!(p.sql("SELECT count(*) FROM tool_calls"), "0");
    // Outside `agentfs run` there is no channel: a note, and still exit 0.
    fs::write(
        p.top().join("pre.json"),
        claude_input("PreToolUse", "t", "ls"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["hook", "claude-code"])
        .env("AGENTFS_HOOK_SOCKET", p.top().join("none.sock"))
        .stdin(fs::File::open(p.top().join("pre.json")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("works inside `agentfs run`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_normal_users_agent_reports_its_steps_and_the_host_is_unchanged() {
    use std::os::unix::fs::PermissionsExt;
    // Machines differ in who may open /dev/fuse; open it to users for this test.
    let mode = fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    let _restore = common::project::FuseMode(mode);
    fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(0o666)).unwrap();
    let p = Project::new();
    let step = "echo made > made.txt";
    for (name, event) in [("pre.json", "PreToolUse"), ("post.json", "PostToolUse")] {
        fs::write(p.proj().join(name), claude_input(event, "toolu_9", step)).unwrap();
    }
    p.give_to_nobody();
    let before = common::tree_snapshot(&p.proj());
    let script = format!(
        "{BIN} hook claude-code < pre.json && {step} && {BIN} hook claude-code < post.json; \
         echo '{{\"agent\":\"claude-code\",\"payload\":\"{{\\\"hook_event_name\\\":\\\"PreToolUse\\\",\\\"tool_name\\\":\\\"a b\\\"}}\"}}' | \
           python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(\"/tmp/.agentfs-hooks.sock\"); s.sendall(sys.stdin.buffer.read()); s.shutdown(1); print(s.recv(4096).decode().strip())'; \
         echo exit=$?"
    );
    let cmd = p.as_nobody(&["run", "-q", "--session", "s", "--", "sh", "-c", &script]);
    let out = common::output_within(cmd, std::time::Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("exit=0"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The forged message with a bad tool name is refused by the daemon.
    assert!(stdout.contains("error the tool name"), "{stdout}");
    p.wait_unmounted();
    let calls: serde_json::Value =
        serde_json::from_str(&p.agentfs(&["timeline", "s", "--json"])).unwrap();
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    assert_eq!(
        calls[0]["paths"],
        serde_json::json!(["/made.txt"]),
        "{calls}"
    );
    assert_eq!(
        common::tree_snapshot(&p.proj()),
        before,
        "the project changed"
    );
}
