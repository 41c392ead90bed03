//! Attacks on the `agentfs run` sandbox, tried as an agent running as root would try them
//! (and as a normal user in a user namespace): reaching the host through other processes'
//! /proc entries, tracing the mount daemon, keeping dangerous capabilities, writing the
//! kernel's knobs, making device nodes for host disks, leaving processes behind, riding on
//! host mounts made later, abusing the shared mount from the host, hanging on another
//! session. Each probe must fail inside, and the host tree, the other sessions and the
//! session database must be unchanged afterwards. Where a probe could report a false "denied",
//! the same probe is first shown to succeed on the host.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

mod common;
use common::project::{FuseMode, Project, text, wait_for};

/// tests/probes/escape.c, compiled once per test run.
fn escape() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("escape-probe");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/probes/escape.c");
        let built = Command::new("cc")
            .args(["-O1", "-Wall", "-o"])
            .arg(&out)
            .arg(src)
            .status()
            .expect("a C compiler (cc) for the sandbox probes");
        assert!(built.success(), "cannot compile {src}");
        out
    })
}

/// The escape probe, copied into the project's tree: the build directory may lie under the
/// host's /tmp, which the sandbox replaces with its own.
fn escape_in(p: &Project) -> PathBuf {
    let copy = p.top().join("escape-probe");
    if !copy.exists() {
        fs::copy(escape(), &copy).unwrap();
    }
    copy
}

/// Runs the escape probe on the host (as the test, root) and returns its line.
fn on_host(args: &[&str]) -> String {
    let out = Command::new(escape()).args(args).output().unwrap();
    text(&out.stdout)
}

/// The device numbers of the host's root filesystem: a disk to make a node for.
fn root_disk() -> (u64, u64) {
    let dev = fs::metadata("/").unwrap().dev();
    (libc::major(dev) as u64, libc::minor(dev) as u64)
}

/// A harmless character device (/dev/null, 1:3) that any device policy lets root make and
/// open: a node of it that does not open shows the mount is `nodev`.
const NULL_DEV: &str = "c 1 3";

/// The pid of the daemon serving a mount, from the mount's source (`agentfs:ID:PID`).
fn daemon_of(mount: &Path) -> u32 {
    agentfs::mount::fuse_mount_at(mount)
        .and_then(|m| m.agentfs_pid())
        .unwrap_or_else(|| panic!("no agentfs mount at {}", mount.display()))
}

fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// [`assert_denied`] for each of `probes`.
fn assert_all_denied<'a>(out: &str, probes: impl IntoIterator<Item = &'a str>) {
    for probe in probes {
        assert_denied(out, probe);
    }
}

fn assert_denied(out: &str, probe: &str) {
    let seen = lines_with(out, &format!("{probe}:"));
    assert!(!seen.is_empty(), "probe {probe} did not run:\n{out}");
    for l in seen {
        assert!(l.contains("denied"), "{l}\n{out}");
    }
}

/// The schema of a session database, to see that nothing inside changed it.
fn schema(db: &Path) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT type, name FROM sqlite_master ORDER BY name")
        .output()
        .expect("sqlite3");
    text(&out.stdout)
}

fn fsck_clean(p: &Project, id: &str) {
    let out = common::output_within(p.command(&["fsck", id]), Duration::from_secs(60));
    assert!(out.status.success(), "fsck {id}: {}", text(&out.stdout));
}

fn sh_in(p: &Project, session: &str, script: &str) -> Output {
    p.run(&["-q", "--session", session, "--", "sh", "-c", script])
}

#[test]
fn processes_outside_the_sandbox_are_out_of_reach() {
    let p = Project::new();
    p.agentfs(&["init", "s", "--base", p.proj().to_str().unwrap()]);
    let db = p.store().join("s.db");
    let schema_before = schema(&db);
    let tree_before = common::tree_snapshot(&p.proj());
    let host_mark = PathBuf::from(format!("/etc/agentfs-pwned-{}", std::process::id()));
    let out = sh_in(
        &p,
        "s",
        &format!(
            "D=$(sed -n 's/.* agentfs:s:\\([0-9]*\\) .*/\\1/p' /proc/self/mountinfo | head -n 1)
             echo daemon=$D
             echo processes=$(ls /proc | grep -c '^[0-9]')
             kill -0 $D 2>/dev/null && echo kill: ALLOWED || echo kill: denied
             kill -0 $PPID 2>/dev/null; echo ppid=$PPID
             touch /proc/$D/root{mark} 2>/dev/null && echo root: ALLOWED || echo root: denied
             touch /proc/$D/cwd/pwned 2>/dev/null && echo cwd: ALLOWED || echo cwd: denied
             chroot /proc/$D/root true 2>/dev/null && echo chroot: ALLOWED || echo chroot: denied
             touch /proc/1/root{mark} 2>/dev/null && echo init-root: ALLOWED || echo init-root: denied
             cat /proc/1/environ >/dev/null 2>&1 && echo init-environ: ALLOWED || echo init-environ: denied
             {probe} ptrace 1
             {probe} ptrace $D
             sqlite3 $AGENTFS_HOME/s.db 'CREATE TABLE pwned(x)' 2>/dev/null && echo db: ALLOWED || echo db: denied
             ls -A $AGENTFS_HOME | wc -l | sed 's/^/store-entries=/'",
            mark = host_mark.display(),
            probe = escape_in(&p).display()
        ),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let daemon: u32 = lines_with(&stdout, "daemon=")[0]["daemon=".len()..]
        .parse()
        .unwrap_or_else(|_| panic!("no daemon pid inside:\n{stdout}"));
    assert!(daemon > 1, "{stdout}");
    // Only the sandbox's own few processes: its init, the shell, ls, grep.
    let n: usize = lines_with(&stdout, "processes=")[0]["processes=".len()..]
        .parse()
        .unwrap();
    assert!(n <= 6, "{n} processes visible inside:\n{stdout}");
    // The command's parent is the sandbox's init, not the runner.
    assert!(stdout.contains("ppid=1\n"), "{stdout}");
    let reaches = [
        "kill",
        "root",
        "cwd",
        "chroot",
        "init-root",
        "init-environ",
        "ptrace",
        "db",
    ];
    assert_all_denied(&stdout, reaches);
    assert!(
        stdout.contains("store-entries=0"),
        "the store shows: {stdout}"
    );
    assert!(!host_mark.exists(), "the host's /etc was written");
    assert_eq!(common::tree_snapshot(&p.proj()), tree_before);
    assert_eq!(
        schema(&db),
        schema_before,
        "the session database was changed"
    );
    fsck_clean(&p, "s");
    p.wait_unmounted();
}

#[test]
fn root_keeps_dockers_capabilities_and_nothing_more() {
    let p = Project::new();
    let probe = escape_in(&p);
    // On the host, as root, each probe gets through: a "denied" inside means something.
    for args in [
        &["reboot"][..],
        &["settime"],
        &["nice"],
        &["netadmin"],
        &["handle", probe.to_str().unwrap()],
    ] {
        let line = on_host(args);
        assert!(
            line.contains("ALLOWED"),
            "the probe is not sharp on the host: {line}"
        );
    }
    let out = p.sh(&format!(
        "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status
         for p in reboot settime nice netadmin; do {probe} $p; done
         {probe} handle {probe}
         {probe} mount /mnt
         cp /usr/bin/id suid-id && chown 65534 suid-id && chmod 4755 suid-id
         echo setuid-as-1000=$(setpriv --reuid=1000 --regid=1000 --clear-groups ./suid-id -u)
         stat -c mode=%a suid-id
         touch owned && chown 1000:1000 owned && echo chown: ok
         mkfifo fifo && echo mkfifo: ok",
        probe = probe.display()
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // Docker's 14 capabilities: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    let kept = "00000000a80425fb";
    for (set, want) in [
        ("CapInh", "0000000000000000"),
        ("CapPrm", kept),
        ("CapEff", kept),
        ("CapBnd", kept),
        ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "1"),
    ] {
        assert!(
            stdout.contains(&format!("{set}:\t{want}\n")),
            "{set} is not {want}:\n{stdout}"
        );
    }
    assert_all_denied(
        &stdout,
        ["reboot", "settime", "nice", "netadmin", "handle", "mount"],
    );
    // A set-user-ID program runs with its caller's ids; the bit itself stays on the file.
    assert!(stdout.contains("setuid-as-1000=1000\n"), "{stdout}");
    assert!(stdout.contains("mode=4755\n"), "{stdout}");
    assert!(
        stdout.contains("chown: ok") && stdout.contains("mkfifo: ok"),
        "{stdout}"
    );
    p.wait_unmounted();
}

/// A sysfs attribute to write back with its own value: refused inside, a no-op if not.
fn sysfs_knob() -> Option<(&'static str, String)> {
    for knob in [
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/mm/ksm/run",
        "/sys/kernel/mm/transparent_hugepage/defrag",
    ] {
        if let Ok(v) = fs::read_to_string(knob) {
            let v = match (v.find('['), v.find(']')) {
                (Some(a), Some(b)) => v[a + 1..b].to_string(),
                _ => v.trim().to_string(),
            };
            return Some((knob, v));
        }
    }
    None
}

#[test]
fn proc_and_sys_are_read_only_and_leaks_are_masked() {
    let p = Project::new();
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let core_pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert!(
        !fs::read("/proc/timer_list").unwrap().is_empty(),
        "the host's timer_list is empty: the mask check would prove nothing"
    );
    let (knob, value) = sysfs_knob().expect("a writable sysfs attribute on this machine");
    let out = p.sh(&format!(
        "echo agentfs-pwned > /proc/sys/kernel/hostname 2>/dev/null && echo hostname: ALLOWED || echo hostname: denied
         echo '|/tmp/pwn' > /proc/sys/kernel/core_pattern 2>/dev/null && echo core: ALLOWED || echo core: denied
         if [ -e /proc/sysrq-trigger ]; then echo h > /proc/sysrq-trigger 2>/dev/null && echo sysrq: ALLOWED || echo sysrq: denied; else echo sysrq: denied, absent; fi
         echo {value} > {knob} 2>/dev/null && echo sys: ALLOWED || echo sys: denied
         echo keys=$(wc -c < /proc/keys) timers=$(wc -c < /proc/timer_list)
         if [ -e /proc/kcore ]; then echo kcore=$(head -c 64 /proc/kcore | wc -c); else echo kcore=0; fi"
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_all_denied(&stdout, ["hostname", "core", "sysrq", "sys"]);
    assert!(stdout.contains("keys=0 timers=0\n"), "{stdout}");
    assert!(stdout.contains("kcore=0\n"), "{stdout}");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        hostname
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern
    );
    p.wait_unmounted();
}

#[test]
fn dev_is_private_and_device_nodes_open_no_disk() {
    let p = Project::new();
    let (major, minor) = root_disk();
    let disk = format!("b {major} {minor}");
    // On the host a node made by root opens: the probe can tell.
    let control = p.top().join("null-node");
    let mut args = vec!["mknod-open", control.to_str().unwrap()];
    args.extend(NULL_DEV.split(' '));
    let line = on_host(&args);
    assert!(line.contains("ALLOWED"), "{line}");
    let tag = format!("agentfs-pwned-{}", std::process::id());
    let out = p.sh(&format!(
        "echo dev=$(ls /dev | tr '\\n' ' ')
         touch /dev/{tag} /dev/shm/{tag} && echo dev-written
         echo urandom=$(head -c 8 /dev/urandom | wc -c) zero=$(head -c 3 /dev/zero | wc -c)
         echo x > /dev/null && echo null: ok
         for d in /tmp /dev /dev/shm .; do
             {probe} mknod-open $d/null-node {NULL_DEV}; {probe} mknod-open $d/disk {disk}
         done",
        probe = escape_in(&p).display()
    ));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "dev=fd full null ptmx pts random shm stderr stdin stdout tty urandom zero\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("dev-written"), "{stdout}");
    assert!(
        stdout.contains("urandom=8 zero=3\n") && stdout.contains("null: ok"),
        "{stdout}"
    );
    assert_eq!(lines_with(&stdout, "mknod-open:").len(), 8, "{stdout}");
    assert_denied(&stdout, "mknod-open");
    assert!(!Path::new("/dev").join(&tag).exists(), "/dev is the host's");
    assert!(
        !Path::new("/dev/shm").join(&tag).exists(),
        "/dev/shm is the host's"
    );
    p.wait_unmounted();
}

/// Kills and reaps a spawned runner when dropped (also after a failed assertion).
struct Reap(Option<std::process::Child>);

impl Reap {
    fn new(child: std::process::Child) -> Reap {
        Reap(Some(child))
    }

    /// Waits for the runner to end by itself; its output.
    fn output(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Unmounts a host mount when dropped.
struct HostMount(PathBuf);

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn host_mounts_made_later_and_other_sessions_stay_out_of_reach() {
    let p = Project::new();
    // The test tree as a shared mount (as systemd makes every mount), so that mounts made
    // in it later would propagate into a sandbox that let them.
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some(p.top()),
        p.top(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let _shared = HostMount(p.top().to_path_buf());
    nix::mount::mount(
        None::<&str>,
        p.top(),
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    let late = p.top().join("late");
    fs::create_dir(&late).unwrap();
    let go = p.store().join("s.db.run/tmp/go");
    let runner = Reap::new(p.spawn_sh(&format!(
        "echo > ready; while [ ! -e /tmp/go ]; do sleep 0.05; done
         touch {late}/x 2>/dev/null && echo late: ALLOWED || echo late: denied
         touch {store}/b.db.run/mnt/x 2>/dev/null && echo other-session: ALLOWED || echo other-session: denied
         ls {store}/b.db.run/mnt 2>/dev/null | grep -q mine && echo other-session-read: ALLOWED || echo other-session-read: denied",
        late = late.display(),
        store = p.store().display()
    )));
    wait_for("the runner to start", || {
        p.run_mount().join("ready").exists()
    });
    // After the runner's set-up: a host mount, and a second session with a live runner.
    nix::mount::mount(
        Some("tmpfs"),
        &late,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let _late_mount = HostMount(late.clone());
    let other = Reap::new(
        p.command(&[
            "run",
            "-q",
            "--session",
            "b",
            "--",
            "sh",
            "-c",
            "echo > mine; exec sleep 600",
        ])
        .spawn()
        .unwrap(),
    );
    let b_mount = p.store().join("b.db.run/mnt");
    wait_for("the other session", || b_mount.join("mine").exists());
    fs::write(&go, "").unwrap();
    let out = runner.output();
    let stdout = text(&out.stdout);
    assert_all_denied(&stdout, ["late", "other-session", "other-session-read"]);
    assert!(!late.join("x").exists(), "the late host mount was written");
    assert!(!b_mount.join("x").exists(), "another session was written");
    drop(other);
    drop(_late_mount);
    p.wait_unmounted();
    wait_for("the other session's mount to go", || {
        agentfs::mount::fuse_mount_at(&b_mount).is_none()
    });
    drop(_shared);
}

#[test]
fn the_shared_mount_gives_no_powers_on_the_host() {
    let p = Project::new();
    let runner = Reap::new(p.spawn_sh(&format!(
        "cp /usr/bin/id suid-id && chown 65534 suid-id && chmod 4755 suid-id && mknod null-node {NULL_DEV} && echo > ready
         while [ ! -e /tmp/go ]; do sleep 0.05; done"
    )));
    let mnt = p.run_mount();
    wait_for("the runner to start", || mnt.join("ready").exists());
    let run_dir = p.store().join("s.db.run");
    assert_eq!(
        fs::metadata(&run_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // A host user cannot reach what the sandbox made...
    let as_nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!("exec {} -u", mnt.join("suid-id").display()))
        .output()
        .unwrap();
    assert!(!as_nobody.status.success(), "{}", text(&as_nobody.stdout));
    // ... and for root the copy, set-user-ID to nobody, still runs as root (were the mount
    // honouring the bit, `id -u` would say 65534), and the device node opens nothing.
    let as_root = Command::new(mnt.join("suid-id"))
        .arg("-u")
        .output()
        .unwrap();
    assert_eq!(text(&as_root.stdout), "0\n");
    let opened = fs::File::open(mnt.join("null-node"));
    assert!(
        opened.is_err(),
        "a device node made in the sandbox opens on the host"
    );
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(&format!(" {} ", mnt.display())))
        .unwrap();
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    // The daemon does not work in the base directory.
    let daemon = daemon_of(&mnt);
    assert_eq!(
        fs::read_link(format!("/proc/{daemon}/cwd")).unwrap(),
        Path::new("/")
    );
    fs::write(run_dir.join("tmp/go"), "").unwrap();
    drop(runner);
    p.wait_unmounted();
}

#[test]
fn cwd_root_and_allows_that_open_the_host_are_refused() {
    let p = Project::new();
    fs::create_dir_all(p.store()).unwrap();
    let mark = PathBuf::from(format!(
        "/var/tmp/agentfs-root-probe-{}",
        std::process::id()
    ));
    let mut at_root = p.command(&["run", "-q", "--", "touch", mark.to_str().unwrap()]);
    at_root.current_dir("/");
    let out = common::output_within(at_root, Duration::from_secs(60));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/ cannot be the base directory"), "{err}");
    assert!(!mark.exists(), "a command ran unsandboxed at /");
    assert!(
        fs::read_dir(p.store()).map(|d| d.count()).unwrap_or(0) == 0,
        "a session was made for a refused run"
    );
    // A session database inside the base directory (outside the hidden store) is refused.
    let inside = p.proj().join("inside.db");
    p.agentfs(&[
        "init",
        inside.to_str().unwrap(),
        "--base",
        p.proj().to_str().unwrap(),
    ]);
    let out = p.run(&[
        "-q",
        "--session",
        inside.to_str().unwrap(),
        "--",
        "echo",
        "ran",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lies inside the base directory"), "{err}");
    assert!(out.stdout.is_empty());
    fs::remove_file(&inside).unwrap();
    let top = p.top().to_str().unwrap().to_string();
    let proj = p.proj().to_str().unwrap().to_string();
    let store = p.store().to_str().unwrap().to_string();
    for (allow, why) in [
        ("/", "would make the base directory"),
        (top.as_str(), "would make the base directory"),
        (proj.as_str(), "would make the base directory"),
        (store.as_str(), "session databases"),
        ("/proc", "its own /proc"),
    ] {
        let out = p.run(&[
            "-q",
            "--session",
            "s",
            "--allow",
            allow,
            "--",
            "echo",
            "ran",
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--allow {allow}: {err}");
        assert!(
            err.contains(&format!("--allow {allow} is refused")) && err.contains(why),
            "{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "the command ran with --allow {allow}"
        );
    }
}

#[test]
fn nothing_outlives_its_runner() {
    let p = Project::new();
    let out = p.sh(
        "(setsid sh -c 'sleep 1; echo late > orphan.txt' >/dev/null 2>&1 &)
         (nohup sh -c 'sleep 1; echo late > nohup.txt' >/dev/null 2>&1 &)
         trap '' HUP TERM; exit 0",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seq_after_exit = p.sql("SELECT max(seq) FROM fs_change");
    std::thread::sleep(Duration::from_millis(2500));
    let listing = p.agentfs(&["fs", "s", "ls", "/"]);
    assert!(
        !listing.contains("orphan.txt") && !listing.contains("nohup.txt"),
        "a process outlived its runner and wrote: {listing}"
    );
    assert_eq!(p.sql("SELECT max(seq) FROM fs_change"), seq_after_exit);
    let ps = p.agentfs(&["ps", "s"]);
    assert!(!ps.contains("sh -c"), "{ps}");
    let left = Command::new("pgrep")
        .args(["-f", "echo late >"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left behind: {}",
        text(&left.stdout)
    );
    p.wait_unmounted();
}

#[test]
fn a_stopped_daemon_of_one_session_does_not_hang_another() {
    let p = Project::new();
    let a = Reap::new(p.spawn_sh("echo > ready; exec sleep 600"));
    wait_for("session s", || p.run_mount().join("ready").exists());
    let daemon = daemon_of(&p.run_mount());
    // SAFETY: plain kill(2).
    unsafe { libc::kill(daemon as i32, libc::SIGSTOP) };
    struct Cont(u32);
    impl Drop for Cont {
        fn drop(&mut self) {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
        }
    }
    let _cont = Cont(daemon);
    let start = std::time::Instant::now();
    let out = sh_in(&p, "b", "echo b-ran");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "b-ran\n");
    assert!(start.elapsed() < Duration::from_secs(60));
    // A dead one neither (its mount answers "not connected" from now on).
    // SAFETY: plain kill(2).
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    wait_for("the daemon to die", || {
        agentfs::runners::process_start(daemon).is_none()
    });
    let out = sh_in(&p, "b", "echo b-ran-again");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "b-ran-again\n");
    drop(_cont);
    drop(a);
    drop(common::Unmount(p.run_mount()));
    p.wait_unmounted();
}

#[test]
fn a_normal_user_meets_the_same_walls() {
    let mode = fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    let _restore = FuseMode(mode);
    fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(0o666)).unwrap();
    let p = Project::new();
    plant_home(&p);
    p.give_to_nobody();
    let (major, minor) = root_disk();
    let tag = format!("agentfs-user-{}", std::process::id());
    let before = common::tree_snapshot(&p.proj());
    let script = format!(
            "id -u
             echo processes=$(ls /proc | grep -c '^[0-9]')
             {probe} ptrace 1
             grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status
             {probe} mknod-open ./disk b {major} {minor}
             {probe} mount /mnt
             echo x > /proc/sys/kernel/hostname 2>/dev/null && echo hostname: ALLOWED || echo hostname: denied
             echo timers=$(wc -c < /proc/timer_list)
             echo dev=$(ls /dev | tr '\\n' ' ')
             touch /dev/{tag} && echo dev-written
             ls -A $AGENTFS_HOME | wc -l | sed 's/^/store-entries=/'
             echo new > created.txt && echo created: ok
             touch {top}/{tag} 2>/dev/null && echo outside: ALLOWED || echo outside: denied
             {SECRET_PROBES}",
            probe = escape_in(&p).display(),
        top = p.top().display()
    );
    let cmd = p.as_nobody(&["run", "-q", "--session", "s", "--", "sh", "-c", &script]);
    let out = common::output_within(cmd, Duration::from_secs(120));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("65534\n"), "{stdout}");
    let n: usize = lines_with(&stdout, "processes=")[0]["processes=".len()..]
        .parse()
        .unwrap();
    assert!(n <= 6, "{n} processes visible:\n{stdout}");
    let walls = ["ptrace", "mknod-open", "mount", "hostname", "outside"];
    assert_all_denied(&stdout, walls.into_iter().chain(SECRET_NAMES));
    assert!(stdout.contains("CapEff:\t0000000000000000\n"), "{stdout}");
    assert!(stdout.contains("CapBnd:\t00000000a80425fb\n"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1\n"), "{stdout}");
    assert!(stdout.contains("timers=0\n"), "{stdout}");
    assert!(
        stdout.contains(
            "dev=fd full null ptmx pts random shm stderr stdin stdout tty urandom zero\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("dev-written") && stdout.contains("store-entries=0"),
        "{stdout}"
    );
    assert!(stdout.contains("created: ok"), "{stdout}");
    assert!(!Path::new("/dev").join(&tag).exists());
    assert!(!p.top().join(&tag).exists());
    assert_eq!(common::tree_snapshot(&p.proj()), before);
    p.wait_unmounted();

    // The strict mode too: only what is kept under $HOME, and a deny beats an allow.
    let other = p.home().join("other-project");
    std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
    let script = format!(
        "echo home=$(ls -A ~ | tr '\\n' ' '); cat ~/.cargo/bin/tool; \
         touch {o}/x 2>/dev/null && echo other: ALLOWED || echo other: denied; {SECRET_PROBES}",
        o = other.display()
    );
    let (cargo, other_dir) = (p.home().join(".cargo"), other.to_str().unwrap().to_string());
    let cmd = p.as_nobody(&[
        "run",
        "-q",
        "--session",
        "s",
        "--hide-home",
        "--read",
        cargo.to_str().unwrap(),
        "--allow",
        &other_dir,
        "--deny",
        &other_dir,
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let out = common::output_within(cmd, Duration::from_secs(120));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("home=.cargo .claude\ntoolchain\n"),
        "{stdout}"
    );
    assert_all_denied(&stdout, ["other"].into_iter().chain(SECRET_NAMES));
    assert!(!other.join("x").exists());
    p.wait_unmounted();

    // A normal user's sandbox holds copies of the mounts that existed when it was made (it
    // may not detach them): another session's daemon still ends when its last runner does.
    let as_nobody = |session: &str, script: &str| {
        p.as_nobody(&["run", "-q", "--session", session, "--", "sh", "-c", script])
    };
    // (Their mounts are the user's alone: root learns of the runners through their /tmp.)
    let first = Reap::new(
        as_nobody(
            "s",
            "echo > /tmp/ready; while [ ! -e /tmp/go ]; do sleep 0.05; done",
        )
        .spawn()
        .unwrap(),
    );
    wait_for("the first runner", || {
        p.store().join("s.db.run/tmp/ready").exists()
    });
    let daemon = daemon_of(&p.run_mount());
    let second = Reap::new(
        as_nobody("b", "echo > /tmp/ready; exec sleep 600")
            .spawn()
            .unwrap(),
    );
    wait_for("the second runner", || {
        p.store().join("b.db.run/tmp/ready").exists()
    });
    fs::write(p.store().join("s.db.run/tmp/go"), "").unwrap();
    assert!(first.output().status.success());
    wait_for("the first session's daemon to end", || {
        agentfs::runners::process_start(daemon).is_none()
    });
    drop(second);
}

/// Plants secrets and tool directories in the project's $HOME: a key, a token file, a
/// gh config, a toolchain, an unrelated directory, and another session.
fn plant_home(p: &Project) {
    let home = p.home();
    fs::create_dir_all(home.join(".ssh")).unwrap();
    fs::write(home.join(".ssh/id_rsa"), "-----BEGIN TEST KEY-----\n").unwrap();
    fs::write(
        home.join(".netrc"),
        "machine example.com password hunter2\n",
    )
    .unwrap();
    fs::create_dir_all(home.join(".config/gh")).unwrap();
    fs::write(home.join(".config/gh/hosts.yml"), "oauth_token: gho_test\n").unwrap();
    fs::create_dir_all(home.join(".cargo/bin")).unwrap();
    fs::write(home.join(".cargo/bin/tool"), "toolchain\n").unwrap();
    fs::create_dir_all(home.join("other-project")).unwrap();
    fs::write(home.join("other-project/notes"), "private\n").unwrap();
    p.agentfs(&["init", "other", "--base", p.proj().to_str().unwrap()]);
}

/// The names [`SECRET_PROBES`] reports under.
const SECRET_NAMES: [&str; 4] = ["key", "netrc", "gh", "other-session"];

const SECRET_PROBES: &str = "
    cat ~/.ssh/id_rsa 2>/dev/null && echo key: ALLOWED || echo key: denied
    grep -q hunter2 ~/.netrc 2>/dev/null && echo netrc: ALLOWED || echo netrc: denied
    cat ~/.config/gh/hosts.yml 2>/dev/null && echo gh: ALLOWED || echo gh: denied
    cat $AGENTFS_HOME/other.db >/dev/null 2>&1 && echo other-session: ALLOWED || echo other-session: denied";

#[test]
fn secrets_are_hidden_and_a_deny_wins_over_an_allow() {
    let p = Project::new();
    plant_home(&p);
    let extra = p.top().join("extra");
    fs::create_dir(&extra).unwrap();
    fs::write(extra.join("inside"), "x\n").unwrap();
    let out = p.run(&[
        "--session",
        "s",
        "--allow",
        extra.to_str().unwrap(),
        "--deny",
        extra.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &format!(
            "{SECRET_PROBES}
             ls -A {extra} | wc -l | sed 's/^/extra-entries=/'
             touch {extra}/new 2>/dev/null && echo extra-write: ALLOWED || echo extra-write: denied
             cat ~/.cargo/bin/tool",
            extra = extra.display()
        ),
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_all_denied(&stdout, SECRET_NAMES.into_iter().chain(["extra-write"]));
    assert!(stdout.contains("extra-entries=0\n"), "{stdout}");
    // The rest of $HOME stays readable: toolchains need no flags.
    assert!(stdout.contains("toolchain\n"), "{stdout}");
    // The banner says what is hidden, and the denied path is not listed as writable.
    let home = p.home();
    for hidden in [
        home.join(".ssh"),
        home.join(".netrc"),
        home.join(".config/gh"),
        extra.clone(),
    ] {
        assert!(
            stderr.contains(&format!("  - {}\n", hidden.display())),
            "{stderr}"
        );
    }
    let writable = stderr.split("hidden:").next().unwrap();
    assert!(!writable.contains(extra.to_str().unwrap()), "{stderr}");
    assert!(!extra.join("new").exists());
    // A --deny that names nothing, or the base directory, is refused.
    let out = p.run(&[
        "-q",
        "--session",
        "s",
        "--deny",
        "/no/such/path",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--deny /no/such/path"),
        "{}",
        text(&out.stderr)
    );
    let out = p.run(&[
        "-q",
        "--session",
        "s",
        "--deny",
        p.top().to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("would hide the base directory"),
        "{}",
        text(&out.stderr)
    );
    p.wait_unmounted();
}

#[test]
fn hide_home_shows_only_what_is_kept() {
    let p = Project::new();
    plant_home(&p);
    let cargo = p.home().join(".cargo");
    let out = p.run(&[
        "-q",
        "--session",
        "s",
        "--hide-home",
        "--read",
        cargo.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &format!(
            "{SECRET_PROBES}
             echo home=$(ls -A ~ | tr '\\n' ' ')
             cat ~/.cargo/bin/tool
             touch ~/.cargo/new 2>/dev/null && echo read-write: ALLOWED || echo read-write: denied
             cat ~/other-project/notes 2>/dev/null && echo other-project: ALLOWED || echo other-project: denied
             echo kept > ~/.claude/settings && echo claude: ok
             echo work > in-base && echo base: ok"
        ),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let kept_out = ["read-write", "other-project"];
    assert_all_denied(&stdout, SECRET_NAMES.into_iter().chain(kept_out));
    // Only the default allow (~/.claude) and the --read path are there.
    assert!(stdout.contains("home=.cargo .claude\n"), "{stdout}");
    assert!(stdout.contains("toolchain\n"), "{stdout}");
    assert!(
        stdout.contains("claude: ok") && stdout.contains("base: ok"),
        "{stdout}"
    );
    assert_eq!(
        fs::read_to_string(p.home().join(".claude/settings")).unwrap(),
        "kept\n"
    );
    assert!(!cargo.join("new").exists());
    assert_eq!(p.agentfs(&["fs", "s", "cat", "/in-base"]), "work\n");
    p.wait_unmounted();
}
