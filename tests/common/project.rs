//! A project directory with an agentfs home for the tests that run `agentfs run`, and a
//! pseudo-terminal to run it on.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::BIN;

/// A project directory, a $HOME with a ~/.claude, the agentfs home ~/.agentfs in it (where
/// it is by default), and cleanup of the session's mount when dropped.
pub struct Project {
    top: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let top = tempfile::Builder::new()
            .prefix("agentfs-run-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let p = Project { top };
        let proj = p.proj();
        fs::create_dir_all(proj.join("src")).unwrap();
        fs::write(proj.join("README"), "read me\n").unwrap();
        fs::write(proj.join("src/main.rs"), "fn main() {}\n").unwrap();
        fs::write(proj.join("doomed.txt"), "delete me\n").unwrap();
        fs::write(proj.join("bin.dat"), vec![0u8, 1, 2, 255]).unwrap();
        std::os::unix::fs::symlink("README", proj.join("link")).unwrap();
        fs::create_dir_all(p.home().join(".claude")).unwrap();
        p
    }

    /// Hands the project, its $HOME and the agentfs home (where they exist) to the user
    /// nobody (65534), for the tests that run agentfs as a normal user.
    pub fn give_to_nobody(&self) {
        for entry in [
            "",
            "proj",
            "proj/src",
            "home",
            "home/.claude",
            "home/.agentfs",
            "proj/README",
            "proj/src/main.rs",
            "proj/doomed.txt",
            "proj/bin.dat",
        ] {
            let path = self.top().join(entry);
            if path.exists() {
                std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            }
        }
    }

    pub fn top(&self) -> &Path {
        self.top.path()
    }

    pub fn proj(&self) -> PathBuf {
        self.top().join("proj")
    }

    pub fn home(&self) -> PathBuf {
        self.top().join("home")
    }

    /// $AGENTFS_HOME, where the session databases are.
    pub fn store(&self) -> PathBuf {
        self.home().join(".agentfs")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.proj())
            .env("AGENTFS_HOME", self.store())
            .env("HOME", self.home())
            .env_remove("PROMPT_COMMAND");
        c
    }

    /// `agentfs ARGS` as the user nobody (65534), in the project, with its $HOME and store.
    pub fn as_nobody(&self, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(args)
            .current_dir(self.proj())
            .env("AGENTFS_HOME", self.store())
            .env("HOME", self.home())
            .env_remove("PROMPT_COMMAND");
        c
    }

    /// `agentfs run -q --session s -- sh -c SCRIPT` in the project; its output.
    pub fn sh(&self, script: &str) -> Output {
        self.run(&["-q", "--session", "s", "--", "sh", "-c", script])
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        super::output_within(self.command(&all), Duration::from_secs(120))
    }

    pub fn spawn_sh(&self, script: &str) -> Child {
        self.command(&["run", "-q", "--session", "s", "--", "sh", "-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn agentfs(&self, args: &[&str]) -> String {
        let out = super::agentfs(&self.store(), args);
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn sql(&self, query: &str) -> String {
        // The first line holds the column names.
        let out = self.agentfs(&["sql", "s", "--mode", "list", "--", query]);
        out.lines().skip(1).collect::<Vec<_>>().join("\n")
    }

    pub fn run_mount(&self) -> PathBuf {
        self.store().join("s.db.run/mnt")
    }

    /// Waits until the session's shared mount is gone (its last runner left).
    pub fn wait_unmounted(&self) {
        wait_for("the shared mount to go away", || {
            agentfs::mount::fuse_mount_at(&self.run_mount()).is_none()
        });
    }
}

impl Drop for Project {
    /// Every session's shared mount goes before the directories do (a daemon whose run
    /// directory is removed under it would have nothing to unmount into).
    fn drop(&mut self) {
        let mut mounts = vec![self.run_mount()];
        if let Ok(entries) = fs::read_dir(self.store()) {
            for e in entries.flatten() {
                let mnt = e.path().join("mnt");
                if e.file_name().to_string_lossy().ends_with(".db.run") && !mounts.contains(&mnt) {
                    mounts.push(mnt);
                }
            }
        }
        let start = Instant::now();
        for mnt in mounts {
            while agentfs::mount::fuse_mount_at(&mnt).is_some() && start.elapsed().as_secs() < 10 {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(super::Unmount(mnt));
        }
    }
}

pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Restores the mode of /dev/fuse when dropped.
pub struct FuseMode(pub u32);

impl Drop for FuseMode {
    fn drop(&mut self) {
        let _ = fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(self.0));
    }
}

/// A process on a new pseudo-terminal (as its controlling terminal), like a user's shell.
pub struct OnTerminal {
    child: Child,
    master: fs::File,
}

impl OnTerminal {
    pub fn spawn(mut cmd: Command) -> OnTerminal {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = fs::File::from(pty.slave);
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let master = fs::File::from(pty.master);
        // Reads must not block forever.
        // SAFETY: F_GETFL on a descriptor we own takes no pointer.
        let flags = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFL) };
        // SAFETY: F_SETFL on a descriptor we own takes plain flags.
        unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
        OnTerminal { child, master }
    }

    /// Reads the terminal until `what` shows up; returns all read so far.
    pub fn expect(&mut self, seen: &mut String, what: &str) {
        use std::io::Read;
        let start = Instant::now();
        while !seen.contains(what) {
            let mut buf = [0u8; 4096];
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no {what:?} in {seen:?}"
            );
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).unwrap();
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the runner did not end"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
