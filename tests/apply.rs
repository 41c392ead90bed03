//! `agentfs apply` and `agentfs export` on real mounts over a real git repository: the
//! exported patch, `git apply`-ed to a clone, and the session applied to the base give the
//! same tree as the session's merged view; host edits are conflicts; --dry-run and PATHs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

/// A git repository (the base), a session over it and a mount point.
struct Env {
    top: tempfile::TempDir,
    mnt: PathBuf,
}

impl Env {
    fn new(files: &[(&str, &[u8])]) -> Env {
        let top = tempfile::tempdir().unwrap();
        let base = top.path().join("base");
        fs::create_dir(&base).unwrap();
        for (path, bytes) in files {
            let p = base.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, bytes).unwrap();
        }
        common::git(&base, &["init", "-q", "-b", "main"]);
        common::git(&base, &["add", "-A"]);
        common::git(&base, &["commit", "-qm", "initial"]);
        let mnt = top.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let env = Env { top, mnt };
        env.ok(&["init", "s", "--base", base.to_str().unwrap()]);
        env
    }

    fn base(&self) -> PathBuf {
        self.top.path().join("base")
    }

    fn home(&self) -> PathBuf {
        self.top.path().join("home")
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// `agentfs ARGS`, which must succeed.
    fn ok(&self, args: &[&str]) -> Output {
        common::agentfs(&self.home(), args)
    }

    /// `agentfs ARGS`, whatever its exit status.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(common::BIN)
            .args(args)
            .env("AGENTFS_HOME", self.home())
            .output()
            .unwrap()
    }

    fn mount(&self) {
        self.ok(&["mount", "s", self.mnt.to_str().unwrap()]);
    }

    fn umount(&self) {
        self.ok(&["umount", self.mnt.to_str().unwrap()]);
    }

    fn diff(&self) -> String {
        String::from_utf8(self.ok(&["diff", "--name-status", "s"]).stdout).unwrap()
    }

    fn sql(&self, query: &str) -> String {
        let out = self.ok(&["sql", "s", "--mode", "list", "--", query]);
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every row of every table of the session database.
    fn db_rows(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open_with_flags(
            self.home().join("s.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut out = Vec::new();
        for t in tables {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap();
            for row in rows {
                out.push(format!("{t}: {:?}", row.unwrap()));
            }
        }
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(common::Unmount(self.mnt.clone()));
    }
}

/// What a tree holds at a path: directories with their mode, files with mode and blake3,
/// symlinks with their target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, String),
    Link(PathBuf),
}

/// Every entry of a tree except `.git`.
fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".git" {
                continue;
            }
            let md = fs::symlink_metadata(&path).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            if md.file_type().is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&path).unwrap()));
            } else if md.is_dir() {
                out.insert(rel, Node::Dir(mode));
                walk(root, &path, out);
            } else {
                let hash = blake3::hash(&fs::read(&path).unwrap()).to_hex().to_string();
                out.insert(rel, Node::File(mode, hash));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The tree as git records it: no directory modes, and of a file's mode only whether its
/// owner may execute it (644 or 755).
fn as_git_sees_it(tree: &BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    tree.iter()
        .map(|(k, v)| match v {
            Node::Dir(_) => (k.clone(), Node::Dir(0)),
            Node::File(mode, hash) => {
                let mode = if mode & 0o100 != 0 { 0o755 } else { 0o644 };
                (k.clone(), Node::File(mode, hash.clone()))
            }
            other => (k.clone(), other.clone()),
        })
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn binary(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 7) as u8)
        .collect()
}

#[test]
fn patch_and_apply_give_the_sessions_tree_and_leave_no_diff() {
    let old_bin = binary(1, 5000);
    let env = Env::new(&[
        ("README.md", b"# demo\n\nline\n"),
        ("src/main.rs", b"fn main() {\n    println!(\"hi\");\n}\n"),
        (
            "src/lib.rs",
            b"pub fn a() {}\npub fn b() {}\npub fn c() {}\n",
        ),
        ("notes with space.txt", b"one\ntwo\n"),
        ("delete_me.txt", b"bye\n"),
        ("rename_me.txt", b"same bytes\n"),
        ("olddir/a.txt", b"a\n"),
        ("olddir/deep/b.txt", b"b\n"),
        ("gone/x.txt", b"x\n"),
        ("gone/y/z.txt", b"z\n"),
        ("run.sh", b"#!/bin/sh\necho run\n"),
        ("image.bin", &old_bin),
    ]);
    std::os::unix::fs::symlink("README.md", env.base().join("link")).unwrap();
    common::git(&env.base(), &["add", "-A"]);
    common::git(&env.base(), &["commit", "-qm", "link"]);
    env.mount();
    // Every kind of change, through the kernel.
    fs::write(env.p("new.txt"), "brand new\n").unwrap();
    fs::create_dir_all(env.p("newdir/sub")).unwrap();
    fs::write(env.p("newdir/sub/file.txt"), "deep new\n").unwrap();
    fs::write(
        env.p("src/main.rs"),
        "fn main() {\n    println!(\"bye\");\n}\n",
    )
    .unwrap();
    // Saved through a temporary file renamed over the original, as editors do.
    fs::write(
        env.p("src/.lib.rs.tmp"),
        "pub fn a() {}\npub fn B() {}\npub fn c() {}\n",
    )
    .unwrap();
    fs::rename(env.p("src/.lib.rs.tmp"), env.p("src/lib.rs")).unwrap();
    fs::write(env.p("notes with space.txt"), "one\n2\n").unwrap();
    fs::remove_file(env.p("delete_me.txt")).unwrap();
    fs::rename(env.p("rename_me.txt"), env.p("renamed.txt")).unwrap();
    // A base directory moved in the session: its base children move with it.
    let mv = Command::new("mv")
        .arg(env.p("olddir"))
        .arg(env.p("movedir"))
        .status()
        .unwrap();
    assert!(mv.success());
    fs::set_permissions(env.p("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("src/main.rs", env.p("newlink")).unwrap();
    fs::remove_file(env.p("link")).unwrap();
    std::os::unix::fs::symlink("src/lib.rs", env.p("link")).unwrap();
    fs::write(env.p("new.bin"), binary(7, 3000)).unwrap();
    let mut changed_bin = old_bin.clone();
    changed_bin[100..120].fill(0);
    changed_bin.extend_from_slice(b"\0tail");
    fs::write(env.p("image.bin"), &changed_bin).unwrap();
    fs::remove_dir_all(env.p("gone")).unwrap();
    let session_view = snapshot(&env.mnt);
    env.umount();

    // The patch applies to a clone of the base.
    let patch = env.top.path().join("changes.patch");
    env.ok(&["export", "s", "--patch", "-o", patch.to_str().unwrap()]);
    let clone = env.top.path().join("clone");
    common::git(env.top.path(), &["clone", "-q", "base", "clone"]);
    common::git(&clone, &["apply", "--check", patch.to_str().unwrap()]);
    common::git(&clone, &["apply", patch.to_str().unwrap()]);
    let patched = snapshot(&clone);

    // The session applied to the base itself; the session stays consistent (fsck knows
    // the journal rows apply writes).
    let out = env.ok(&["apply", "s"]);
    env.ok(&["fsck", "s"]);
    let lines = stdout(&out);
    for expected in [
        "A /new.txt",
        "A /newdir/",
        "A /newdir/sub/file.txt",
        "M /src/main.rs",
        "M /src/lib.rs",
        "M /notes with space.txt",
        "D /delete_me.txt",
        "R /rename_me.txt -> /renamed.txt",
        "A /movedir/deep/b.txt",
        "D /olddir/deep/b.txt",
        "D /olddir/",
        "M /run.sh",
        "A /newlink",
        "M /link",
        "A /new.bin",
        "M /image.bin",
        "D /gone/",
        "D /gone/y/z.txt",
    ] {
        assert!(
            lines.lines().any(|l| l == expected),
            "{expected:?} not in {lines}"
        );
    }
    assert!(stderr(&out).contains("applied"), "{}", stderr(&out));
    let applied = snapshot(&env.base());

    assert_eq!(as_git_sees_it(&applied), as_git_sees_it(&patched));
    assert_eq!(applied, session_view);
    assert_eq!(fs::read(env.base().join("image.bin")).unwrap(), changed_bin);
    assert_eq!(
        fs::symlink_metadata(env.base().join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    // Nothing is left to apply, and the session still shows the same tree.
    assert_eq!(env.diff(), "");
    assert_eq!(env.sql("SELECT count(*) FROM fs_whiteout"), "count(*)\n0\n");
    assert_eq!(env.sql("SELECT count(*) FROM fs_data"), "count(*)\n0\n");
    env.mount();
    assert_eq!(snapshot(&env.mnt), session_view);
    env.umount();
    // No temporary files were left in the base.
    assert!(!applied.keys().any(|k| k.contains("agentfs-apply")));
}

#[test]
fn a_host_edit_after_copy_up_is_a_conflict_and_force_overwrites_it() {
    let env = Env::new(&[("a.txt", b"a base\n"), ("b.txt", b"b base\n")]);
    env.mount();
    fs::write(env.p("a.txt"), "a session\n").unwrap();
    fs::write(env.p("b.txt"), "b session\n").unwrap();
    env.umount();
    fs::write(env.base().join("a.txt"), "a host\n").unwrap();

    let out = env.run(&["apply", "s"]);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "M /b.txt\n");
    let err = stderr(&out);
    assert!(
        err.contains("conflict: /a.txt: changed on the host"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        fs::read_to_string(env.base().join("a.txt")).unwrap(),
        "a host\n"
    );
    assert_eq!(
        fs::read_to_string(env.base().join("b.txt")).unwrap(),
        "b session\n"
    );
    assert_eq!(env.diff(), "M /a.txt\n");

    let out = env.ok(&["apply", "s", "--force"]);
    assert_eq!(stdout(&out), "M /a.txt\n");
    assert_eq!(
        fs::read_to_string(env.base().join("a.txt")).unwrap(),
        "a session\n"
    );
    assert_eq!(env.diff(), "");
}

#[test]
fn dry_run_changes_nothing_and_paths_limit_what_is_applied() {
    let env = Env::new(&[
        ("a.txt", b"a\n"),
        ("keep/b.txt", b"b\n"),
        ("keep/c.txt", b"c\n"),
    ]);
    env.mount();
    fs::write(env.p("a.txt"), "a2\n").unwrap();
    fs::write(env.p("keep/b.txt"), "b2\n").unwrap();
    fs::remove_file(env.p("keep/c.txt")).unwrap();
    fs::create_dir(env.p("fresh")).unwrap();
    fs::write(env.p("fresh/d.txt"), "d\n").unwrap();
    env.umount();
    // diff fills the content hash cache, so that the dry run has nothing left to cache.
    let before_diff = env.diff();
    let base_before = snapshot(&env.base());
    let db_before = env.db_rows();

    let out = env.ok(&["apply", "s", "--dry-run"]);
    assert_eq!(
        stdout(&out),
        "M /a.txt\nA /fresh/\nA /fresh/d.txt\nM /keep/b.txt\nD /keep/c.txt\n"
    );
    assert_eq!(snapshot(&env.base()), base_before);
    assert_eq!(env.db_rows(), db_before);

    // Only the given paths (and the new directory they need).
    let out = env.ok(&["apply", "s", "keep/c.txt", "/fresh/d.txt"]);
    assert_eq!(stdout(&out), "A /fresh/\nA /fresh/d.txt\nD /keep/c.txt\n");
    assert!(!env.base().join("keep/c.txt").exists());
    assert_eq!(
        fs::read_to_string(env.base().join("fresh/d.txt")).unwrap(),
        "d\n"
    );
    assert_eq!(fs::read_to_string(env.base().join("a.txt")).unwrap(), "a\n");
    assert_eq!(
        fs::read_to_string(env.base().join("keep/b.txt")).unwrap(),
        "b\n"
    );
    assert_ne!(env.diff(), before_diff);
    assert_eq!(env.diff(), "M /a.txt\nM /keep/b.txt\n");
}

#[test]
fn apply_refuses_a_mounted_session_without_force() {
    let env = Env::new(&[("a.txt", b"a\n")]);
    env.mount();
    fs::write(env.p("a.txt"), "a2\n").unwrap();
    let out = env.run(&["apply", "s"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("is in use (mounted at"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(fs::read_to_string(env.base().join("a.txt")).unwrap(), "a\n");
    env.umount();
}

#[test]
fn tar_export_holds_the_created_and_modified_files() {
    let env = Env::new(&[("a.txt", b"a\n"), ("b.txt", b"b\n")]);
    env.mount();
    fs::write(env.p("a.txt"), "a2\n").unwrap();
    fs::remove_file(env.p("b.txt")).unwrap();
    fs::create_dir(env.p("d")).unwrap();
    fs::write(env.p("d/new.bin"), binary(3, 1000)).unwrap();
    std::os::unix::fs::symlink("a.txt", env.p("l")).unwrap();
    env.umount();
    let tar_path = env.top.path().join("out.tar");
    env.ok(&["export", "s", "--tar", tar_path.to_str().unwrap()]);
    let mut archive = tar::Archive::new(fs::File::open(&tar_path).unwrap());
    let mut seen = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        seen.insert(path, (entry.header().entry_type(), bytes, link));
    }
    let names: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(names, ["a.txt", "d/", "d/new.bin", "l"]);
    assert_eq!(seen["a.txt"].1, b"a2\n");
    assert_eq!(seen["d/new.bin"].1, binary(3, 1000));
    assert_eq!(seen["l"].0, tar::EntryType::Symlink);
    assert_eq!(seen["l"].2.as_deref(), Some("a.txt"));
    // Exporting changes nothing.
    assert_eq!(
        env.diff(),
        "M /a.txt\nD /b.txt\nA /d/\nA /d/new.bin\nA /l\n"
    );
}

#[test]
fn host_changes_to_paths_the_session_deleted_are_conflicts() {
    let env = Env::new(&[
        ("old.txt", b"old\n"),
        ("dir/a.txt", b"a\n"),
        ("keep.txt", b"k\n"),
    ]);
    env.mount();
    // Deleted without being copied up: the session recorded no identity for these.
    fs::remove_file(env.p("old.txt")).unwrap();
    fs::remove_dir_all(env.p("dir")).unwrap();
    env.umount();
    // The host edits the file after the session deleted it (its ctime is later than the
    // journaled unlink: wait for the kernel's coarse clock to pass that time).
    let unlinked: i128 = env
        .sql("SELECT time_ns FROM fs_change WHERE op = 'unlink' AND path = '/old.txt'")
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        fs::write(env.base().join("old.txt"), "host edit\n").unwrap();
        let md = fs::metadata(env.base().join("old.txt")).unwrap();
        let ctime = std::os::unix::fs::MetadataExt::ctime(&md) as i128 * 1_000_000_000
            + std::os::unix::fs::MetadataExt::ctime_nsec(&md) as i128;
        if ctime > unlinked {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the host clock does not advance"
        );
    }
    fs::write(env.base().join("dir/host.txt"), "host file\n").unwrap();

    let out = env.run(&["apply", "s"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("conflict: /old.txt: changed on the host after"),
        "{err}"
    );
    assert!(
        err.contains("conflict: /dir: the host added entries"),
        "{err}"
    );
    assert_eq!(stdout(&out), "D /dir/a.txt\n");
    assert_eq!(
        fs::read_to_string(env.base().join("old.txt")).unwrap(),
        "host edit\n"
    );
    assert!(env.base().join("dir/host.txt").exists());
    assert_eq!(env.diff(), "D /dir/\nD /old.txt\n");

    let out = env.ok(&["apply", "s", "--force"]);
    assert_eq!(stdout(&out), "D /dir/\nD /old.txt\n");
    assert!(!env.base().join("old.txt").exists());
    assert!(!env.base().join("dir").exists());
    assert!(env.base().join("keep.txt").exists());
    assert_eq!(env.diff(), "");
}

/// The host reuses the inode numbers apply frees (ext4 hands out the lowest free one), and
/// the session names base entries by host inode: a renamed file's old number, freed when
/// apply removes the source, must not make it resolve to the new directory that got it.
#[test]
fn inode_numbers_apply_frees_do_not_alias_the_entries_it_creates() {
    let env = Env::new(&[("a.txt", b"a\n"), ("b.txt", b"b\n"), ("c.txt", b"c\n")]);
    env.mount();
    // Directories with a child first, so their delta inodes come before the renamed files'.
    for d in ["d1", "d2", "d3"] {
        fs::create_dir(env.p(d)).unwrap();
        fs::write(env.p(&format!("{d}/f")), d).unwrap();
    }
    for f in ["a", "b", "c"] {
        // Renamed to names that sort after the directories: those are written first.
        fs::rename(env.p(&format!("{f}.txt")), env.p(&format!("z{f}.txt"))).unwrap();
    }
    let session_view = snapshot(&env.mnt);
    env.umount();

    let out = env.ok(&["apply", "s"]);
    assert_eq!(
        stdout(&out),
        "A /d1/\nA /d1/f\nA /d2/\nA /d2/f\nA /d3/\nA /d3/f\n\
         R /a.txt -> /za.txt\nR /b.txt -> /zb.txt\nR /c.txt -> /zc.txt\n"
    );
    assert_eq!(snapshot(&env.base()), session_view);
    assert_eq!(env.diff(), "");
    assert_eq!(env.sql("SELECT count(*) FROM fs_origin"), "count(*)\n0\n");
}

#[test]
fn files_copied_up_without_their_bytes_are_checked_by_size_and_mtime() {
    // chmod copies no bytes and records no hash: the base file's size and mtime identify it.
    let env = Env::new(&[("tool.sh", b"echo hi\n"), ("other.sh", b"echo other\n")]);
    env.mount();
    fs::set_permissions(env.p("tool.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(env.p("other.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    env.umount();
    assert_eq!(env.sql("SELECT count(*) FROM fs_data"), "count(*)\n0\n");
    // The host rewrites one of them (same size, later mtime) after the chmod.
    let other = env.base().join("other.sh");
    let was = fs::metadata(&other).unwrap().modified().unwrap();
    fs::write(&other, "echo OTHER\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&other)
        .unwrap()
        .set_modified(was + std::time::Duration::from_secs(1))
        .unwrap();
    let out = env.run(&["apply", "s"]);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "M /tool.sh\n");
    assert!(
        stderr(&out).contains("conflict: /other.sh: changed on the host"),
        "{}",
        stderr(&out)
    );
    let mode = |p: &str| {
        fs::metadata(env.base().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("tool.sh"), 0o755);
    assert_eq!(mode("other.sh"), 0o644);
    assert_eq!(
        fs::read_to_string(env.base().join("tool.sh")).unwrap(),
        "echo hi\n"
    );
    assert_eq!(
        fs::read_to_string(env.base().join("other.sh")).unwrap(),
        "echo OTHER\n"
    );
}

#[test]
fn swapped_files_and_directories_apply_without_losing_either_side() {
    let env = Env::new(&[
        ("README", b"read me\n"),
        ("src/main.rs", b"fn main() {}\n"),
        ("big.bin", &binary(3, 1_500_000)),
        ("small.txt", b"small\n"),
        ("d1/f", b"one\n"),
        ("d2/g", b"two\n"),
        ("old/x", b"x\n"),
        ("new/y", b"y\n"),
    ]);
    env.mount();
    let sh = |script: &str| common::sh_in(&env.mnt, script);
    // Swaps by three renames (files copied up without their bytes), a swap of two base
    // directories, and a base directory moved over one emptied first.
    sh("mv README t && mv src/main.rs README && mv t src/main.rs");
    sh("mv big.bin t && mv small.txt big.bin && mv t small.txt");
    sh("mv d1 dt && mv d2 d1 && mv dt d2");
    sh("rm -rf new && mv old new");
    let session_view = snapshot(&env.mnt);
    env.umount();

    let out = env.run(&["apply", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshot(&env.base()), session_view);
    assert_eq!(
        fs::read(env.base().join("README")).unwrap(),
        b"fn main() {}\n"
    );
    assert_eq!(
        fs::read(env.base().join("src/main.rs")).unwrap(),
        b"read me\n"
    );
    assert_eq!(
        fs::read(env.base().join("small.txt")).unwrap(),
        binary(3, 1_500_000)
    );
    assert_eq!(fs::read(env.base().join("d1/g")).unwrap(), b"two\n");
    assert_eq!(fs::read(env.base().join("d2/f")).unwrap(), b"one\n");
    assert_eq!(fs::read(env.base().join("new/x")).unwrap(), b"x\n");
    // The session agrees with the base it was applied to, and holds nothing more.
    assert_eq!(env.diff(), "");
    assert_eq!(env.sql("SELECT count(*) FROM fs_dentry"), "count(*)\n0\n");
    env.mount();
    assert_eq!(snapshot(&env.mnt), session_view);
    env.umount();
}

#[test]
fn files_on_another_filesystem_inside_the_base_are_applied_by_copying() {
    let env = Env::new(&[("README", b"read me\n")]);
    // A tmpfs mounted inside the base: the staged file cannot be renamed there.
    let sub = env.base().join("sub");
    fs::create_dir(&sub).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs", sub.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "mounting a tmpfs needs root");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _tmpfs = Unmount(sub.clone());
    fs::write(sub.join("on-tmpfs.txt"), "old\n").unwrap();
    fs::set_permissions(sub.join("on-tmpfs.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    env.mount();
    fs::write(env.p("sub/on-tmpfs.txt"), "new\n").unwrap();
    fs::write(env.p("sub/made.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(env.p("sub/made.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let session_view = snapshot(&env.mnt);
    env.umount();
    let out = env.run(&["apply", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sub.join("on-tmpfs.txt")).unwrap(), b"new\n");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&sub.join("on-tmpfs.txt")), 0o640);
    assert_eq!(mode(&sub.join("made.sh")), 0o755);
    assert_eq!(snapshot(&env.base()), session_view);
    // Nothing staged is left at the base root.
    assert!(fs::read_dir(env.base()).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains("agentfs-apply")
    }));
}
