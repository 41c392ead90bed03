//! Helpers shared by the tests that run the `agentfs` binary and mount sessions.

#![allow(dead_code)]

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
