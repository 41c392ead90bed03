//! Real work inside `agentfs run`: git, make, cargo and a many-file untar, each leaving the
//! project directory on the host exactly as it was and the results in the session.
//! (Their speed against the plain directory is measured by tests/bench/run.sh.)

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::BIN;

struct Work {
    top: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let top = tempfile::Builder::new()
            .prefix("agentfs-work-")
            .tempdir_in("/var/tmp")
            .unwrap();
        fs::create_dir_all(top.path().join("proj")).unwrap();
        fs::create_dir_all(top.path().join("home")).unwrap();
        Work { top }
    }

    fn proj(&self) -> PathBuf {
        self.top.path().join("proj")
    }

    fn home(&self) -> PathBuf {
        self.top.path().join("home")
    }

    /// `agentfs run -q --session s -- sh -c SCRIPT` in the project; fails the test if the
    /// script fails.
    fn sh(&self, script: &str) -> String {
        self.sh_with(&[], script)
    }

    /// Like [`Work::sh`], with more `agentfs run` flags.
    fn sh_with(&self, flags: &[&str], script: &str) -> String {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "-q", "--session", "s"])
            .args(flags)
            .args(["--", "sh", "-c", script])
            .current_dir(self.proj())
            .env("AGENTFS_HOME", self.home())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = common::output_within(cmd, Duration::from_secs(300));
        assert!(
            out.status.success(),
            "{script}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn agentfs(&self, args: &[&str]) -> String {
        String::from_utf8(common::agentfs(&self.home(), args).stdout).unwrap()
    }

    fn wait_unmounted(&self) {
        let mnt = self.home().join("s.db.run/mnt");
        let start = std::time::Instant::now();
        while agentfs::mount::fuse_mount_at(&mnt).is_some() {
            assert!(start.elapsed().as_secs() < 20, "the shared mount stayed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let mnt = self.home().join("s.db.run/mnt");
        let start = std::time::Instant::now();
        while agentfs::mount::fuse_mount_at(&mnt).is_some() && start.elapsed().as_secs() < 10 {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(common::Unmount(mnt));
    }
}

const GIT_ID: &str = "git -c user.name=t -c user.email=t@example.com";

#[test]
fn git_status_commit_branch_checkout_stash() {
    let w = Work::new();
    common::sh_in(
        &w.proj(),
        &format!(
            "git init -q -b main && mkdir src && for i in $(seq 1 50); do echo \"line $i\" > src/f$i.txt; done \
             && touch -d '1 hour ago' src/* && git add -A && {GIT_ID} commit -qm base"
        ),
    );
    // (The files are older than the index, so git finds no racily-clean entries to re-check,
    // which would rewrite the index on any filesystem.)
    let before = common::tree_snapshot(&w.proj());
    // Right after the session starts the tree is clean, and reading it copied nothing.
    assert_eq!(w.sh("git status --porcelain"), "");
    assert_eq!(
        w.agentfs(&[
            "sql",
            "s",
            "--mode",
            "list",
            "--",
            "SELECT count(*) FROM fs_data"
        ])
        .lines()
        .nth(1),
        Some("0"),
        "git status put file data into the session"
    );
    let log = w.sh(&format!(
        "set -e; echo edit >> src/f1.txt; git add src/f1.txt; {GIT_ID} commit -qm edit; \
         git branch feature; git checkout -q feature; echo wip >> src/f2.txt; git stash -q; \
         git status --porcelain; git checkout -q main; git log --oneline | wc -l; \
         git stash list | wc -l; git branch --list | wc -l"
    ));
    assert_eq!(log, "2\n1\n2\n");
    assert_eq!(
        common::tree_snapshot(&w.proj()),
        before,
        "the host repository changed"
    );
    w.wait_unmounted();
    assert_eq!(
        w.agentfs(&["fs", "s", "cat", "/src/f1.txt"]),
        "line 1\nedit\n"
    );
}

/// A project with a Makefile building a C program and a Cargo crate with no dependencies.
fn write_c_and_rust_project(w: &Work) {
    common::sh_in(
        &w.proj(),
        "mkdir -p c src && printf '#include <stdio.h>\\nint main(void){puts(\"made\");return 0;}\\n' > c/hello.c \
         && printf 'out/hello: c/hello.c\\n\\tmkdir -p out && cc -o $@ $<\\n' > Makefile \
         && printf '[package]\\nname = \"tiny\"\\nversion = \"0.1.0\"\\nedition = \"2021\"\\n' > Cargo.toml \
         && echo 'fn main() { println!(\"built\"); }' > src/main.rs",
    );
}

#[test]
fn make_and_cargo_build_inside() {
    let w = Work::new();
    write_c_and_rust_project(&w);
    let before = common::tree_snapshot(&w.proj());
    assert_eq!(w.sh("make -s && ./out/hello"), "made\n");
    // Nothing to do the second time: make sees the target newer than its source.
    assert_eq!(w.sh("make"), "make: 'out/hello' is up to date.\n");
    let built = w.sh("cargo build --offline -q && ./target/debug/tiny");
    assert_eq!(built, "built\n");
    assert_eq!(common::tree_snapshot(&w.proj()), before);
}

#[test]
fn make_and_cargo_build_with_a_hidden_home_and_the_documented_reads() {
    let w = Work::new();
    write_c_and_rust_project(&w);
    common::sh_in(&w.proj(), "git init -q -b main && git add -A");
    let pkg = w.top.path().join("pkg");
    for f in 0..200 {
        let dir = pkg.join(format!("mod{}", f % 10));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{f}.js")), "module.exports = 1;\n").unwrap();
    }
    common::sh_in(w.top.path(), "tar -cf pkg.tar -C pkg . && rm -rf pkg");
    let tar = w.top.path().join("pkg.tar");
    let before = common::tree_snapshot(&w.proj());
    let home = std::env::var("HOME").unwrap();
    // The README's lines for a Rust toolchain (as installed by rustup).
    let (rustup, cargo) = (format!("{home}/.rustup"), format!("{home}/.cargo"));
    let mut flags = vec!["--hide-home"];
    for dir in [&rustup, &cargo] {
        if std::path::Path::new(dir).exists() {
            flags.extend(["--read", dir.as_str()]);
        }
    }
    let out = w.sh_with(
        &flags,
        &format!(
            "set -e; ls -A ~ | grep -v -x -e .rustup -e .cargo -e .cache -e .local -e .npm \
               -e .claude -e .claude.json -e .codex -e .gemini -e .amp | wc -l; \
             make -s && ./out/hello; cargo build --offline -q && ./target/debug/tiny; \
             {GIT_ID} commit -qm first && git log --oneline | wc -l; \
             mkdir node_modules && tar -xf {tar} -C node_modules && find node_modules -type f | wc -l",
            tar = tar.display()
        ),
    );
    // Nothing of $HOME but what was kept; make, cargo, git and tar work.
    assert_eq!(out, "0\nmade\nbuilt\n1\n200\n");
    assert_eq!(common::tree_snapshot(&w.proj()), before);
}

#[test]
fn untar_thousands_of_files_like_a_package_install() {
    let w = Work::new();
    common::sh_in(&w.proj(), "echo '{}' > package.json");
    let pkg = w.top.path().join("pkg");
    for d in 0..60 {
        let dir = pkg.join(format!("mod{d}/lib"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            fs::write(
                dir.join(format!("f{f}.js")),
                format!("module.exports = {d}*{f};\n"),
            )
            .unwrap();
        }
    }
    common::sh_in(w.top.path(), "tar -cf pkg.tar -C pkg . && rm -rf pkg");
    let before = common::tree_snapshot(&w.proj());
    let tar = w.top.path().join("pkg.tar");
    let out = w.sh(&format!(
        "mkdir node_modules && tar -xf {} -C node_modules && find node_modules -type f | wc -l \
         && cat node_modules/mod7/lib/f3.js && rm -rf node_modules/mod1 && find node_modules -type f | wc -l",
        tar.display()
    ));
    assert_eq!(out, "3000\nmodule.exports = 7*3;\n2950\n");
    assert_eq!(common::tree_snapshot(&w.proj()), before);
}
