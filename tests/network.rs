//! The network policy of `agentfs run`, on loopback only: an HTTP server and a TLS server
//! started here on 127.0.0.2 (loopback, but not the sandbox's own 127.0.0.1), reached from
//! the sandbox through the session's proxy when allowed and refused when not, with the
//! requests recorded in the session; `--network=none` leaving only the sandbox's loopback.
//! No test reaches any address outside this machine.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::project::{FuseMode, Project, text, wait_for};

/// A tiny HTTP server on `addr` answering every request with `body`.
fn http_server(addr: &str, body: &'static str) -> u16 {
    let listener = TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `openssl s_server` on 127.0.0.2 with a throwaway self-signed certificate; killed when
/// dropped.
struct TlsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=agentfs-test"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(made.success());
        let port = TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.2:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the TLS server", || {
            TcpStream::connect(("127.0.0.2", port)).is_ok()
        });
        TlsServer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn requests(p: &Project, id: &str) -> String {
    let out = p.agentfs(&[
        "sql",
        id,
        "--mode",
        "list",
        "--",
        "SELECT method, host, port, allowed FROM fs_net_request ORDER BY id",
    ]);
    out.lines().skip(1).collect::<Vec<_>>().join("\n")
}

fn run_sh(p: &Project, flags: &[&str], script: &str) -> (String, String) {
    let mut args = vec!["run", "-q", "--session", "s"];
    args.extend_from_slice(flags);
    args.extend(["--", "sh", "-c", script]);
    let out = p.run(&args[1..]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    (stdout, stderr)
}

#[test]
fn allowed_names_pass_through_the_proxy_and_the_rest_is_refused_and_recorded() {
    let p = Project::new();
    let http = http_server("127.0.0.2:0", "hello through the proxy");
    let local = http_server("127.0.0.1:0", "found by name");
    let tls = TlsServer::start();
    let curl = "curl -s -S -m 10";
    let (stdout, _) = run_sh(
        &p,
        &["--network=allow", "--allow-domain", "127.0.0.2", "--allow-domain", "localhost"],
        &format!(
            "{curl} http://127.0.0.2:{http}/x; echo
             {curl} -k https://127.0.0.2:{tls}/ | grep -q -i cipher && echo tls: ok
             NO_PROXY= no_proxy= {curl} http://localhost:{local}/; echo
             {curl} -o /dev/null -w 'denied-http=%{{http_code}}\\n' http://127.0.0.3:{http}/
             {curl} -k https://127.0.0.3:{tls}/ 2>&1 | grep -q 403 && echo denied-tls: 403
             {curl} --noproxy '*' http://127.0.0.2:{http}/ >/dev/null 2>&1 && echo direct: ALLOWED || echo direct: denied",
            tls = tls.port
        ),
    );
    assert!(stdout.contains("hello through the proxy\n"), "{stdout}");
    assert!(stdout.contains("tls: ok\n"), "{stdout}");
    // A name is resolved by the proxy, outside.
    assert!(stdout.contains("found by name\n"), "{stdout}");
    assert!(stdout.contains("denied-http=403\n"), "{stdout}");
    assert!(stdout.contains("denied-tls: 403\n"), "{stdout}");
    // Around the proxy there is no way out.
    assert!(stdout.contains("direct: denied\n"), "{stdout}");
    assert_eq!(
        requests(&p, "s"),
        format!(
            "GET|127.0.0.2|{http}|1\nCONNECT|127.0.0.2|{tls}|1\nGET|localhost|{local}|1\n\
             GET|127.0.0.3|{http}|0\nCONNECT|127.0.0.3|{tls}|0",
            tls = tls.port
        )
    );
    // The refusal tells the client why and what to do.
    let (stdout, stderr) = run_sh(&p, &[], &format!("{curl} http://127.0.0.3:{http}/"));
    assert!(
        stdout.contains(
            "not on this session's network allow list; run with --allow-domain 127.0.0.3"
        ),
        "{stdout}"
    );
    // The policy is the session's default: the second run had no flags.
    assert!(requests(&p, "s").ends_with(&format!("GET|127.0.0.3|{http}|0")));
    assert!(stderr.is_empty(), "{stderr}");
    p.wait_unmounted();
}

#[test]
fn bad_network_flags_are_refused_before_a_session_is_made() {
    let p = Project::new();
    for (flags, says) in [
        (&["--allow-domain", "bad name"][..], "is not a host name"),
        (
            &["--network=none", "--allow-domain", "x.org"][..],
            "needs --network=allow",
        ),
        (&["--network=open"][..], "give host, none or allow"),
    ] {
        let mut args = vec!["-q", "--session", "fresh"];
        args.extend_from_slice(flags);
        args.extend(["--", "echo", "ran"]);
        let out = p.run(&args);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{flags:?}");
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(out.stdout.is_empty());
        assert!(
            !p.store().join("fresh.db").exists(),
            "{flags:?} made a session"
        );
    }
}

#[test]
fn network_none_leaves_only_the_sandboxs_loopback() {
    let p = Project::new();
    let port = http_server("127.0.0.1:0", "host loopback");
    let probe = format!("curl -s -m 5 http://127.0.0.1:{port}/ && echo || echo unreachable");
    // With the host's network (the default), the host's loopback answers...
    let (stdout, _) = run_sh(&p, &["--network=host"], &probe);
    assert_eq!(stdout, "host loopback\n");
    // ... with none it is another loopback, and nothing else is there.
    let (stdout, _) = run_sh(&p, &["--network=none"], &format!(
        "{probe}; curl -s -m 5 http://127.0.0.2:{port}/ >/dev/null && echo other: ALLOWED || echo other: denied
         grep -c ':' /proc/net/dev | sed 's/^/interfaces=/'"
    ));
    assert!(stdout.starts_with("unreachable\n"), "{stdout}");
    assert!(stdout.contains("other: denied\n"), "{stdout}");
    assert!(stdout.contains("interfaces=1\n"), "only lo: {stdout}");
    p.wait_unmounted();
}

#[test]
fn a_normal_user_gets_the_same_network_policies() {
    let mode = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    let _restore = FuseMode(mode);
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
    let p = Project::new();
    for entry in ["", "proj", "proj/src", "home", "home/.claude"] {
        std::os::unix::fs::chown(p.top().join(entry), Some(65534), Some(65534)).unwrap();
    }
    let http = http_server("127.0.0.2:0", "user through the proxy");
    let host_lo = http_server("127.0.0.1:0", "host loopback");
    let run_as_nobody = |flags: &[&str], script: &str| {
        let mut args = vec!["run", "-q", "--session", "s"];
        args.extend_from_slice(flags);
        args.extend(["--", "sh", "-c", script]);
        let cmd = p.as_nobody(&args);
        let out = common::output_within(cmd, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let stdout = run_as_nobody(
        &["--network=none"],
        &format!("curl -s -m 5 http://127.0.0.1:{host_lo}/ || echo unreachable"),
    );
    assert_eq!(stdout, "unreachable\n");
    let stdout = run_as_nobody(
        &["--allow-domain", "127.0.0.2"],
        &format!(
            "curl -s -m 10 http://127.0.0.2:{http}/; echo
             curl -s -m 10 -o /dev/null -w 'denied=%{{http_code}}\\n' http://127.0.0.3:{http}/"
        ),
    );
    assert_eq!(stdout, "user through the proxy\ndenied=403\n");
    p.wait_unmounted();
}
