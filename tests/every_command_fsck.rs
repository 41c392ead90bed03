//! Every command that writes a session leaves it clean for fsck: one session goes through all
//! of them in turn (file edits, kv, a mount, exec, run, apply, export, fork, vacuum, gc, rm),
//! and `agentfs fsck` must exit 0 after each one.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_agentfs");

/// Runs `agentfs ARGS` in `cwd` with `AGENTFS_HOME=home`, with `stdin` fed in.
fn agentfs_in(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("AGENTFS_HOME", home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agentfs {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts that fsck finds `session` clean after `step`.
fn assert_clean(home: &Path, session: &str, step: &str) {
    let out = Command::new(BIN)
        .args(["fsck", session])
        .env("AGENTFS_HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck of {session} is not clean after {step}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fsck_is_clean_after_every_command() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let base = top.path().join("base");
    let mnt = top.path().join("mnt");
    for d in [&base, &mnt, &base.join("src"), &base.join("old")] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(base.join("README"), "readme\n").unwrap();
    fs::write(base.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(base.join("old/a"), "a\n").unwrap();
    fs::write(base.join("old/b"), "b\n").unwrap();
    fs::write(base.join("gone"), "gone\n").unwrap();
    let b = base.to_str().unwrap();
    let m = mnt.to_str().unwrap();
    let step = |args: &[&str]| {
        agentfs_in(&home, &base, args);
        assert_clean(&home, "s", &args.join(" "));
    };

    step(&["init", "s", "--base", b]);
    step(&["fs", "s", "write", "/notes.txt", "--data", "hello"]);
    step(&["fs", "s", "mkdir", "/made"]);
    step(&["fs", "s", "write", "/made/x", "--data", "x"]);
    step(&["fs", "s", "rm", "-r", "/made"]);
    step(&["fs", "s", "rm", "/notes.txt"]);
    step(&["kv", "s", "set", "k", "{\"a\":1}"]);
    step(&["kv", "s", "delete", "k"]);

    // A mount: every kind of change through the kernel, over base entries too.
    agentfs_in(&home, &base, &["mount", "s", m]);
    let guard = Unmount(mnt.clone());
    fs::write(mnt.join("new.txt"), "new\n").unwrap();
    fs::rename(mnt.join("README"), mnt.join("README.md")).unwrap();
    fs::rename(mnt.join("old"), mnt.join("older")).unwrap();
    fs::remove_file(mnt.join("gone")).unwrap();
    fs::hard_link(mnt.join("new.txt"), mnt.join("new-link")).unwrap();
    std::os::unix::fs::symlink("new.txt", mnt.join("sym")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("src/main.rs"))
        .unwrap()
        .set_len(3)
        .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(mnt.join("new.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    }
    fs::create_dir(mnt.join("d")).unwrap();
    fs::remove_dir(mnt.join("d")).unwrap();
    step(&["umount", m]);
    drop(guard);

    step(&[
        "exec",
        "s",
        "sh",
        "-c",
        &format!("echo exec > {b}/exec.txt"),
    ]);
    step(&[
        "run",
        "--session",
        "s",
        "-q",
        "sh",
        "-c",
        "echo run > run.txt && mv new.txt moved.txt && rm -r older",
    ]);
    step(&["sql", "s", "SELECT count(*) FROM fs_change"]);
    step(&["diff", "s"]);
    let patch = top.path().join("s.patch");
    step(&["export", "--patch", "-o", patch.to_str().unwrap(), "s"]);
    let tar = top.path().join("s.tar");
    step(&["export", "--tar", tar.to_str().unwrap(), "s"]);
    step(&["apply", "s", "run.txt"]);
    assert_eq!(fs::read_to_string(base.join("run.txt")).unwrap(), "run\n");
    step(&["apply", "s"]);
    assert!(!base.join("gone").exists() && base.join("moved.txt").exists());
    step(&["fork", "s", "t"]);
    assert_clean(&home, "t", "fork");
    step(&["vacuum", "s"]);
    step(&["gc", "--older-than", "3650d"]);
    step(&["rm", "t"]);

    // The journal holds every kind of change the commands made, and fsck accepted them all.
    let out = agentfs_in(
        &home,
        &base,
        &["sql", "s", "SELECT DISTINCT op FROM fs_change ORDER BY op"],
    );
    let ops = String::from_utf8_lossy(&out.stdout);
    for op in [
        "apply", "chmod", "create", "link", "mkdir", "rename", "rmdir", "symlink", "truncate",
        "unlink", "write",
    ] {
        assert!(ops.contains(op), "no {op} row in the journal: {ops}");
    }
}

/// Unmounts the directory when dropped, so a failed assertion leaves no mount behind.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if agentfs::mount::fuse_mount_at(&self.0).is_some() {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}
