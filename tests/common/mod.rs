//! Helpers shared by the tests that run the `agentfs` binary and mount sessions.

#![allow(dead_code)]

pub mod fuse_trace;
pub mod home;
pub mod project;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentfs");

/// Runs `agentfs ARGS` with `AGENTFS_HOME=home` and asserts that it succeeded.
pub fn agentfs(home: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env("AGENTFS_HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agentfs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The daemon pid `agentfs mount` reports on stderr ("... (daemon pid N)").
pub fn daemon_pid(mount_output: &Output) -> u32 {
    let stderr = String::from_utf8_lossy(&mount_output.stderr);
    stderr
        .rsplit("daemon pid ")
        .next()
        .and_then(|s| s.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {stderr:?}"))
}

/// Unmounts whatever is mounted on the directory when dropped (also after a failed
/// assertion), so no test leaves a mount behind.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if agentfs::mount::fuse_mount_at(&self.0).is_some() {
            let _ = Command::new(BIN)
                .args(["umount", "--lazy"])
                .arg(&self.0)
                .status();
        }
    }
}

/// Every path under `dir` with its mode, mtime (0 for directories, whose mtime reading
/// changes) and content (a symlink's target): equal snapshots mean an untouched tree.
pub fn tree_snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, (u32, i64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if m.is_dir() {
                stack.push(p.clone());
                Vec::new()
            } else {
                std::fs::read(&p).unwrap()
            };
            let mtime = if m.is_dir() { 0 } else { m.mtime() };
            out.insert(
                p.strip_prefix(dir).unwrap().to_path_buf(),
                (m.mode(), mtime, content),
            );
        }
    }
    out
}

/// Runs `cmd` to completion with its output captured, killing it after `limit` (a hung
/// sandbox or mount fails the test instead of hanging CI).
pub fn output_within(mut cmd: Command, limit: std::time::Duration) -> Output {
    use std::process::Stdio;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    out
}

/// Runs `sh -c script` in `dir` and asserts that it succeeded.
pub fn sh_in(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs git in `dir` (as a fixed author) and returns its output; fails the test if git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.email=agent@example.com",
            "-c",
            "user.name=agent",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Maps the first `len` bytes of `file` shared and writable, lets `change` edit them, then
/// syncs the mapping (MS_SYNC) and unmaps it; fails the test if any of that fails.
pub fn edit_shared_mapping(file: &std::fs::File, len: usize, change: impl FnOnce(&mut [u8])) {
    use std::os::fd::AsRawFd;
    // SAFETY: a new mapping of `len` bytes of an open file; unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        addr,
        libc::MAP_FAILED,
        "{}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the mapping is `len` bytes long, writable, and lives until munmap below.
    change(unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) });
    // SAFETY: msync/munmap of the mapping made above.
    unsafe {
        assert_eq!(libc::msync(addr, len, libc::MS_SYNC), 0);
        assert_eq!(libc::munmap(addr, len), 0);
    }
}
