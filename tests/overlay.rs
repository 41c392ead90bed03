//! The overlay on real mounts over a real base tree: every kind of change lands in the
//! session, the base stays byte-identical, and reading copies nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

struct Overlay {
    top: tempfile::TempDir,
    mnt: PathBuf,
}

impl Overlay {
    /// A base tree (`src/main.rs`, `src/lib/util.rs`, `README`, `docs/a.md`, a symlink) and
    /// a session over it, mounted.
    fn new(extra: &[&str]) -> Overlay {
        Self::new_in(tempfile::tempdir().unwrap(), extra)
    }

    /// The same in directory `top`.
    fn new_in(top: tempfile::TempDir, extra: &[&str]) -> Overlay {
        let base = top.path().join("base");
        fs::create_dir_all(base.join("src/lib")).unwrap();
        fs::create_dir_all(base.join("docs")).unwrap();
        fs::write(base.join("src/main.rs"), "fn main() {}\n").unwrap();
        fs::write(base.join("src/lib/util.rs"), "pub fn util() {}\n").unwrap();
        fs::write(base.join("README"), "read me\n").unwrap();
        fs::write(base.join("docs/a.md"), "# A\n").unwrap();
        fs::write(base.join("big.bin"), vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("README", base.join("link")).unwrap();
        let mnt = top.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let o = Overlay { top, mnt };
        o.agentfs(&["init", "s", "--base", base.to_str().unwrap()]);
        let mut args = vec!["mount", "s", o.mnt.to_str().unwrap()];
        args.extend_from_slice(extra);
        o.agentfs(&args);
        o
    }

    fn agentfs(&self, args: &[&str]) -> std::process::Output {
        common::agentfs(&self.top.path().join("home"), args)
    }

    fn base(&self) -> PathBuf {
        self.top.path().join("base")
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    fn sql(&self, query: &str) -> String {
        let out = self.agentfs(&["sql", "s", "--mode", "list", "--", query]);
        String::from_utf8(out.stdout).unwrap()
    }

    fn umount(&self) {
        self.agentfs(&["umount", self.mnt.to_str().unwrap()]);
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        drop(common::Unmount(self.mnt.clone()));
    }
}

/// Every file of a tree with its bytes (symlinks as their target).
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let md = fs::symlink_metadata(&path).unwrap();
            if md.file_type().is_symlink() {
                let t = fs::read_link(&path).unwrap();
                out.insert(rel, t.to_string_lossy().as_bytes().to_vec());
            } else if md.is_dir() {
                out.insert(format!("{rel}/"), vec![]);
                walk(root, &path, out);
            } else {
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn reading_everything_copies_nothing() {
    let o = Overlay::new(&[]);
    let seen = snapshot(&o.mnt);
    assert_eq!(seen, snapshot(&o.base()));
    for f in ["src/main.rs", "README", "big.bin"] {
        let md = fs::metadata(o.p(f)).unwrap();
        assert!(md.len() > 0);
    }
    assert_eq!(o.sql("SELECT count(*) FROM fs_data"), "count(*)\n0\n");
    assert_eq!(o.sql("SELECT count(*) FROM fs_inode"), "count(*)\n1\n");
    assert_eq!(o.sql("SELECT count(*) FROM fs_change"), "count(*)\n0\n");
}

#[test]
fn every_kind_of_change_lands_in_the_session_and_the_base_stays_untouched() {
    let o = Overlay::new(&[]);
    let before = snapshot(&o.base());
    // create, write, append, truncate, chmod, rename, delete, recreate, symlink, hard link
    fs::write(o.p("src/new.rs"), "new\n").unwrap();
    fs::write(o.p("src/main.rs"), "fn main() { changed() }\n").unwrap();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(o.p("README"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"appended\n").unwrap();
    drop(f);
    fs::OpenOptions::new()
        .write(true)
        .open(o.p("big.bin"))
        .unwrap()
        .set_len(1000)
        .unwrap();
    fs::set_permissions(
        o.p("docs/a.md"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::rename(o.p("src/lib/util.rs"), o.p("src/util.rs")).unwrap();
    fs::remove_file(o.p("link")).unwrap();
    fs::remove_dir_all(o.p("docs")).unwrap();
    fs::create_dir(o.p("docs")).unwrap();
    fs::write(o.p("docs/b.md"), "# B\n").unwrap();
    std::os::unix::fs::symlink("src/new.rs", o.p("newlink")).unwrap();
    fs::hard_link(o.p("src/new.rs"), o.p("hard.rs")).unwrap();
    // The merged view shows exactly the changes.
    let view = snapshot(&o.mnt);
    let text = |k: &str| String::from_utf8(view[k].clone()).unwrap();
    assert_eq!(text("src/new.rs"), "new\n");
    assert_eq!(text("src/main.rs"), "fn main() { changed() }\n");
    assert_eq!(text("README"), "read me\nappended\n");
    assert_eq!(view["big.bin"], vec![7u8; 1000]);
    assert_eq!(text("src/util.rs"), "pub fn util() {}\n");
    assert!(!view.contains_key("src/lib/util.rs"));
    assert!(!view.contains_key("link"));
    assert!(
        !view.contains_key("docs/a.md"),
        "a recreated directory hides the old one"
    );
    assert_eq!(text("docs/b.md"), "# B\n");
    assert_eq!(text("newlink"), "src/new.rs");
    assert_eq!(text("hard.rs"), "new\n");
    assert_eq!(fs::metadata(o.p("hard.rs")).unwrap().nlink(), 2);
    // The base is byte-identical.
    assert_eq!(snapshot(&o.base()), before);
    // And it all survives an unmount.
    o.umount();
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    assert_eq!(snapshot(&o.mnt), view);
}

#[test]
fn inode_numbers_of_base_files_survive_copy_up_and_remount() {
    let o = Overlay::new(&[]);
    let ino = fs::metadata(o.p("src/main.rs")).unwrap().ino();
    fs::write(o.p("src/main.rs"), "changed\n").unwrap();
    assert_eq!(fs::metadata(o.p("src/main.rs")).unwrap().ino(), ino);
    o.umount();
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    assert_eq!(fs::metadata(o.p("src/main.rs")).unwrap().ino(), ino);
    let untouched = fs::metadata(o.p("README")).unwrap().ino();
    assert_ne!(untouched, ino);
}

#[test]
fn a_first_write_into_a_base_file_lands_whole_with_its_time_identity_and_journal_row() {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let o = Overlay::new(&[]);
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for f in ["src/main.rs", "README", "docs/a.md"] {
        let f = fs::File::options().write(true).open(o.base().join(f));
        f.unwrap().set_modified(old).unwrap();
    }
    // An append, a write inside the file, and one past its end (which leaves a hole).
    let append = fs::File::options().append(true).open(o.p("src/main.rs"));
    append.unwrap().write_all(b"// more\n").unwrap();
    let inside = fs::File::options().write(true).open(o.p("README"));
    inside.unwrap().write_all_at(b"R", 0).unwrap();
    let past = fs::File::options().write(true).open(o.p("docs/a.md"));
    past.unwrap().write_all_at(b"!", 8).unwrap();
    let expected: [(&str, &[u8]); 3] = [
        ("src/main.rs", b"fn main() {}\n// more\n"),
        ("README", b"Read me\n"),
        ("docs/a.md", b"# A\n\0\0\0\0!"),
    ];
    let check = || {
        for (f, bytes) in expected {
            assert_eq!(fs::read(o.p(f)).unwrap(), bytes, "{f}");
            let mtime = fs::metadata(o.p(f)).unwrap().modified().unwrap();
            assert!(
                mtime > old + std::time::Duration::from_secs(86_400),
                "{f}: {mtime:?}"
            );
        }
    };
    check();
    o.umount();
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    check();
    // The identity holds the hash of the base bytes, not of the written ones.
    assert_eq!(
        o.sql("SELECT hex(blake3) FROM fs_base_identity WHERE base_path = '/src/main.rs'"),
        format!(
            "hex(blake3)\n{}\n",
            blake3::hash(b"fn main() {}\n").to_hex().to_uppercase()
        )
    );
    assert_eq!(
        o.sql(
            "SELECT path FROM fs_change WHERE op = 'write' \
             AND path IN ('/src/main.rs', '/README', '/docs/a.md') ORDER BY path"
        ),
        "path\n/README\n/docs/a.md\n/src/main.rs\n"
    );
    assert_eq!(fs::read(o.base().join("README")).unwrap(), b"read me\n");
}

#[test]
fn a_moved_session_directory_shows_the_base_directory_at_its_new_path() {
    let o = Overlay::new(&[]);
    fs::create_dir(o.p("x")).unwrap();
    // A lookup in it works out (and keeps) which base directory it shows: /x, none.
    assert!(fs::metadata(o.p("x/g")).is_err());
    fs::rename(o.p("x"), o.p("q")).unwrap();
    // Now it shows /q, which the host creates afterwards.
    fs::create_dir(o.base().join("q")).unwrap();
    fs::write(o.base().join("q/f"), "from the host\n").unwrap();
    assert_eq!(fs::read_to_string(o.p("q/f")).unwrap(), "from the host\n");
}

#[test]
fn host_changes_to_untouched_files_show_through() {
    let o = Overlay::new(&["--cache-ttl", "0"]);
    assert_eq!(fs::read_to_string(o.p("README")).unwrap(), "read me\n");
    fs::write(o.base().join("README"), "changed on the host, longer\n").unwrap();
    assert_eq!(
        fs::read_to_string(o.p("README")).unwrap(),
        "changed on the host, longer\n"
    );
    fs::write(o.base().join("added-on-host"), "hi").unwrap();
    assert_eq!(fs::read_to_string(o.p("added-on-host")).unwrap(), "hi");
}

#[test]
fn renaming_base_directories_moves_their_base_children_too() {
    use std::os::unix::fs::MetadataExt;
    let o = Overlay::new(&[]);
    let base_before = snapshot(&o.base());
    let util_ino = fs::metadata(o.p("src/lib/util.rs")).unwrap().ino();
    // rename(2) itself, of a directory whose children are all still in the base.
    fs::rename(o.p("src"), o.p("source")).unwrap();
    assert!(!o.p("src").exists());
    assert_eq!(
        fs::read_to_string(o.p("source/lib/util.rs")).unwrap(),
        "pub fn util() {}\n"
    );
    assert_eq!(
        fs::metadata(o.p("source/lib/util.rs")).unwrap().ino(),
        util_ino
    );
    // A deep one, into a new directory; then work inside the moved trees.
    fs::create_dir(o.p("deep")).unwrap();
    fs::rename(o.p("source/lib"), o.p("deep/library")).unwrap();
    fs::write(o.p("deep/library/new.rs"), "new\n").unwrap();
    fs::write(o.p("source/main.rs"), "fn main() { changed() }\n").unwrap();
    fs::remove_file(o.p("deep/library/util.rs")).unwrap();
    let mut names: Vec<String> = fs::read_dir(o.p("deep/library"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["new.rs"]);
    let mut names: Vec<String> = fs::read_dir(o.p("source"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["main.rs"]);
    // A new directory where a moved one was shows nothing of the old one.
    fs::create_dir(o.p("src")).unwrap();
    assert_eq!(fs::read_dir(o.p("src")).unwrap().count(), 0);
    fs::remove_dir(o.p("src")).unwrap();
    // And back again: the base directory shows at its own place once more.
    fs::rename(o.p("source"), o.p("src")).unwrap();
    assert_eq!(
        fs::read_to_string(o.p("src/main.rs")).unwrap(),
        "fn main() { changed() }\n"
    );
    // A directory made in the session, moved over an emptied base directory, stays empty.
    fs::remove_file(o.p("docs/a.md")).unwrap();
    fs::create_dir(o.p("fresh")).unwrap();
    fs::rename(o.p("fresh"), o.p("docs")).unwrap();
    assert_eq!(fs::read_dir(o.p("docs")).unwrap().count(), 0);
    // mv works as well.
    let st = Command::new("mv")
        .arg(o.p("deep"))
        .arg(o.p("moved-deep"))
        .status()
        .unwrap();
    assert!(st.success());
    let expect = |o: &Overlay| {
        assert_eq!(
            fs::read_to_string(o.p("moved-deep/library/new.rs")).unwrap(),
            "new\n"
        );
        assert!(!o.p("moved-deep/library/util.rs").exists());
        assert!(!o.p("source").exists() && !o.p("deep").exists());
        assert_eq!(fs::read_dir(o.p("docs")).unwrap().count(), 0);
        assert_eq!(
            fs::read_to_string(o.p("src/main.rs")).unwrap(),
            "fn main() { changed() }\n"
        );
    };
    expect(&o);
    o.umount();
    assert_eq!(snapshot(&o.base()), base_before, "the base was modified");
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    expect(&o);
    assert!(o.agentfs(&["fsck", "s"]).status.success());
    o.umount();
}

#[test]
fn deletions_of_base_files_are_journaled_and_whited_out() {
    let o = Overlay::new(&[]);
    fs::remove_file(o.p("README")).unwrap();
    assert!(fs::metadata(o.p("README")).is_err());
    assert!(o.base().join("README").exists());
    assert_eq!(
        o.sql("SELECT op, path FROM fs_change"),
        "op|path\nunlink|/README\n"
    );
    assert_eq!(o.sql("SELECT path FROM fs_whiteout"), "path\n/README\n");
    // Creating it again lifts the whiteout.
    fs::write(o.p("README"), "mine").unwrap();
    assert_eq!(fs::read_to_string(o.p("README")).unwrap(), "mine");
    assert_eq!(o.sql("SELECT count(*) FROM fs_whiteout"), "count(*)\n0\n");
}

#[test]
fn a_git_workflow_in_the_overlay_leaves_the_real_repository_alone() {
    let top = tempfile::tempdir().unwrap();
    let repo = top.path().join("repo");
    fs::create_dir_all(repo.join("src")).unwrap();
    fs::write(repo.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(repo.join("README"), "hello\n").unwrap();
    // Files older than the index, so git finds no racily-clean entries to re-check (which
    // would rewrite the index on any filesystem).
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in ["src/main.rs", "README"] {
        fs::File::options()
            .write(true)
            .open(repo.join(f))
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
    common::git(&repo, &["init", "-q", "-b", "main"]);
    common::git(&repo, &["add", "-A"]);
    common::git(&repo, &["commit", "-qm", "initial"]);
    let head = common::git(&repo, &["rev-parse", "HEAD"]);
    let home = top.path().join("home");
    let mnt = top.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let run = |args: &[&str]| String::from_utf8(common::agentfs(&home, args).stdout).unwrap();
    run(&["init", "g", "--base", repo.to_str().unwrap()]);
    run(&["mount", "g", mnt.to_str().unwrap()]);
    let _guard = common::Unmount(mnt.clone());
    // Right after mounting: a clean tree, and git did not make the session copy anything.
    assert_eq!(common::git(&mnt, &["status", "--porcelain"]), "");
    assert_eq!(
        run(&["sql", "g", "--mode", "list", "SELECT count(*) FROM fs_data"]),
        "count(*)\n0\n"
    );
    // Edit, commit, branch, checkout, stash.
    fs::write(mnt.join("src/main.rs"), "fn main() { println!(\"hi\") }\n").unwrap();
    common::git(&mnt, &["commit", "-qam", "edit"]);
    common::git(&mnt, &["checkout", "-qb", "feature"]);
    fs::write(mnt.join("new.txt"), "new\n").unwrap();
    common::git(&mnt, &["add", "new.txt"]);
    common::git(&mnt, &["commit", "-qm", "feature"]);
    common::git(&mnt, &["checkout", "-q", "main"]);
    assert!(!mnt.join("new.txt").exists());
    fs::write(mnt.join("README"), "stash me\n").unwrap();
    common::git(&mnt, &["stash", "-q"]);
    assert_eq!(fs::read_to_string(mnt.join("README")).unwrap(), "hello\n");
    common::git(&mnt, &["stash", "pop", "-q"]);
    assert_eq!(common::git(&mnt, &["status", "--porcelain"]), " M README\n");
    assert_eq!(
        common::git(&mnt, &["log", "--format=%s"]),
        "edit\ninitial\n"
    );
    // The real repository has not moved.
    assert_eq!(common::git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(common::git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(fs::read_to_string(repo.join("README")).unwrap(), "hello\n");
}

#[test]
fn copy_up_records_the_base_identity() {
    let o = Overlay::new(&[]);
    fs::write(o.p("src/main.rs"), "changed\n").unwrap();
    let hash = blake3::hash(b"fn main() {}\n").to_hex().to_string();
    assert_eq!(
        o.sql(
            "SELECT base_path, size, hex(blake3) FROM fs_base_identity \
             WHERE base_path = '/src/main.rs'"
        ),
        format!(
            "base_path|size|hex(blake3)\n/src/main.rs|13|{}\n",
            hash.to_uppercase()
        )
    );
    // Directories copied up on the way have an identity too, without a hash.
    assert_eq!(
        o.sql("SELECT base_path, blake3 IS NULL FROM fs_base_identity WHERE base_path = '/src'"),
        "base_path|blake3 IS NULL\n/src|1\n"
    );
}

#[test]
fn diff_lists_real_changes_only() {
    let o = Overlay::new(&[]);
    fs::write(o.p("src/new.rs"), "new\n").unwrap();
    fs::write(o.p("src/main.rs"), "fn main() { changed() }\n").unwrap();
    // Rewriting the same bytes and touching a file copy them up but change nothing.
    fs::write(o.p("README"), "read me\n").unwrap();
    let f = fs::File::options()
        .write(true)
        .open(o.p("docs/a.md"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    fs::rename(o.p("src/lib/util.rs"), o.p("src/util.rs")).unwrap();
    fs::remove_file(o.p("big.bin")).unwrap();
    // A mode change alone is a modification.
    fs::set_permissions(
        o.p("docs/a.md"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = String::from_utf8(o.agentfs(&["diff", "s", "--name-status"]).stdout).unwrap();
    assert_eq!(
        out,
        "D /big.bin\nM /docs/a.md\nM /src/main.rs\nA /src/new.rs\nR /src/lib/util.rs -> /src/util.rs\n"
    );
}

#[test]
fn tools_that_copy_permissions_keep_the_modes() {
    // cp -a, mv and sed -i set permissions through ACL attributes when the filesystem takes
    // them; ours refuses them, so the tools chmod and the mode bits are right.
    use std::os::unix::fs::PermissionsExt;
    let o = Overlay::new(&[]);
    let mode = |rel: &str| fs::metadata(o.p(rel)).unwrap().permissions().mode() & 0o7777;
    fs::set_permissions(o.p("README"), fs::Permissions::from_mode(0o751)).unwrap();
    let sh = |script: &str| common::sh_in(&o.mnt, script);
    sh("cp -a README copied && mv docs/a.md moved.md && sed -i s/A/B/ moved.md");
    assert_eq!(mode("copied"), 0o751);
    assert_eq!(mode("moved.md"), 0o644);
    assert_eq!(fs::read_to_string(o.p("moved.md")).unwrap(), "# B\n");
    o.umount();
}

/// A small deterministic generator, so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn large_base_files_are_copied_up_partially_and_read_back_exactly() {
    use std::os::unix::fs::FileExt;
    let o = Overlay::new(&[]);
    // 3 MiB and a bit: above the partial copy-up threshold, not a whole number of chunks.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let original: Vec<u8> = (0..3 * 1024 * 1024 + 1234)
        .map(|_| rng.next() as u8)
        .collect();
    fs::write(o.base().join("large.bin"), &original).unwrap();
    let base_before = snapshot(&o.base());
    let mut model = original.clone();
    let path = o.p("large.bin");

    // A 4 KiB edit in the middle stores about that much, not the file.
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[0xAB; 4096], 1_500_000).unwrap();
    model[1_500_000..1_504_096].fill(0xAB);
    drop(f);
    let stored: i64 = o
        .sql("SELECT coalesce(sum(length(data)), 0) FROM fs_data")
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stored <= 2 * 65536,
        "{stored} bytes stored for a 4 KiB edit"
    );
    assert_eq!(fs::read(&path).unwrap(), model);

    // Random writes, truncations, extensions, hole punches and appends, checked after each.
    for step in 0..60 {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let len = model.len() as u64;
        match rng.below(5) {
            0 | 1 => {
                let at = rng.below(len + 100_000);
                let n = 1 + rng.below(200_000) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                f.write_all_at(&bytes, at).unwrap();
                let end = at as usize + n;
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[at as usize..end].copy_from_slice(&bytes);
            }
            2 => {
                let new_len = rng.below(len + 1);
                f.set_len(new_len).unwrap();
                model.truncate(new_len as usize);
            }
            3 => {
                let new_len = len + rng.below(300_000);
                f.set_len(new_len).unwrap();
                model.resize(new_len as usize, 0);
            }
            _ => {
                let at = rng.below(len.max(1));
                let n = 1 + rng.below(300_000);
                // SAFETY: fallocate on an open descriptor.
                let rc = unsafe {
                    libc::fallocate(
                        std::os::fd::AsRawFd::as_raw_fd(&f),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        at as i64,
                        n as i64,
                    )
                };
                assert_eq!(rc, 0, "punch hole: {}", std::io::Error::last_os_error());
                let end = (at + n).min(len) as usize;
                model[at as usize..end].fill(0);
            }
        }
        drop(f);
        assert!(
            fs::read(&path).unwrap() == model,
            "contents differ after step {step}"
        );
    }
    o.umount();
    assert_eq!(
        snapshot(&o.base()),
        base_before,
        "the base file was modified"
    );
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    assert!(
        fs::read(&path).unwrap() == model,
        "contents differ after remounting"
    );
    let clean = o.agentfs(&["fsck", "s"]);
    assert!(clean.status.success());
    o.umount();
    // agentfs fs reads the same bytes without a mount.
    let out = o.agentfs(&["fs", "s", "cat", "/large.bin"]);
    assert!(out.stdout == model, "agentfs fs cat differs");
}

#[test]
fn a_host_edit_under_a_partial_copy_up_is_an_error_not_wrong_bytes() {
    use std::os::unix::fs::FileExt;
    let o = Overlay::new(&[]);
    let original = vec![5u8; 2 * 1024 * 1024];
    fs::write(o.base().join("large.bin"), &original).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(o.p("large.bin"))
        .unwrap();
    f.write_all_at(b"session", 10).unwrap();
    drop(f);
    o.umount();
    // The host changes the base file the session still reads most bytes from.
    fs::write(o.base().join("large.bin"), vec![9u8; 2 * 1024 * 1024]).unwrap();
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    let err = fs::read(o.p("large.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    o.umount();
    let out = Command::new(common::BIN)
        .args(["fs", "s", "cat", "/large.bin"])
        .env("AGENTFS_HOME", o.top.path().join("home"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("changed on the host since the session copied it"),
        "{stderr}"
    );
}

#[test]
fn metadata_changes_and_renames_copy_no_bytes() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let o = Overlay::new(&[]);
    fs::set_permissions(o.p("README"), fs::Permissions::from_mode(0o600)).unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    // (Through a descriptor opened for reading: opening for writing copies, as it may write.)
    fs::File::open(o.p("docs/a.md"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    fs::rename(o.p("big.bin"), o.p("moved.bin")).unwrap();
    fs::hard_link(o.p("src/main.rs"), o.p("main-link.rs")).unwrap();
    let stored = o.sql("SELECT count(*) FROM fs_data");
    assert_eq!(
        stored.lines().nth(1),
        Some("0"),
        "bytes were copied: {stored}"
    );
    assert_eq!(fs::read_to_string(o.p("README")).unwrap(), "read me\n");
    assert_eq!(fs::read(o.p("moved.bin")).unwrap(), vec![7u8; 300_000]);
    assert_eq!(
        fs::read_to_string(o.p("main-link.rs")).unwrap(),
        "fn main() {}\n"
    );
    // Writing then stores what changed, and the rest still reads from the base.
    fs::OpenOptions::new()
        .append(true)
        .open(o.p("README"))
        .unwrap()
        .write_all(b"more\n")
        .unwrap();
    o.umount();
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(o.p("README")).unwrap(),
        "read me\nmore\n"
    );
    assert_eq!(
        fs::metadata(o.p("README")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(o.p("docs/a.md")).unwrap().modified().unwrap(),
        t
    );
    assert_eq!(fs::read(o.p("moved.bin")).unwrap(), vec![7u8; 300_000]);
    assert_eq!(
        fs::read_to_string(o.base().join("README")).unwrap(),
        "read me\n"
    );
    o.umount();
}

#[test]
fn a_base_file_sharing_the_inode_number_of_a_copied_one_stays_itself() {
    // Two names of one base inode (a hard link in the base; a host that frees a copied
    // file's inode number and gives it to a new file looks the same to the session).
    let o = Overlay::new(&[]);
    o.umount();
    fs::hard_link(o.base().join("README"), o.base().join("README.link")).unwrap();
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    let check = |o: &Overlay| {
        assert_eq!(fs::read_to_string(o.p("README")).unwrap(), "session copy\n");
        assert_eq!(fs::read_to_string(o.p("README.link")).unwrap(), "read me\n");
    };
    // Looked up after the copy-up, in this mount and in a fresh one.
    fs::write(o.p("README"), "session copy\n").unwrap();
    check(&o);
    o.umount();
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    let _ = fs::read_dir(&o.mnt).unwrap().count();
    check(&o);
    o.umount();
    assert_eq!(
        fs::read_to_string(o.base().join("README.link")).unwrap(),
        "read me\n"
    );
}

#[test]
fn a_second_mount_sees_the_first_ones_deletions_and_copies() {
    let o = Overlay::new(&[]);
    let other = o.top.path().join("mnt2");
    fs::create_dir(&other).unwrap();
    o.agentfs(&["mount", "s", other.to_str().unwrap()]);
    let _guard = common::Unmount(other.clone());
    // Both have looked at the files (their caches hold the base's answers).
    for m in [&o.mnt, &other] {
        assert_eq!(fs::read_to_string(m.join("README")).unwrap(), "read me\n");
        assert_eq!(
            fs::read_to_string(m.join("src/main.rs")).unwrap(),
            "fn main() {}\n"
        );
    }
    fs::remove_file(other.join("README")).unwrap();
    fs::write(other.join("src/main.rs"), "fn main() { other() }\n").unwrap();
    let start = std::time::Instant::now();
    loop {
        let gone = !o.p("README").exists();
        let copied = fs::read_to_string(o.p("src/main.rs")).unwrap() == "fn main() { other() }\n";
        if gone && copied {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "the first mount still shows the base (gone: {gone}, copied: {copied})"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    o.agentfs(&["umount", other.to_str().unwrap()]);
    o.umount();
}

/// Polls `cond` for up to five seconds.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(5) {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[test]
fn files_deleted_while_open_live_until_the_last_close() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let o = Overlay::new(&[]);
    // A base file opened before its copy-up, and a file made in the session.
    let mut base_file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(o.p("README"))
        .unwrap();
    let mut new_file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(o.p("new.txt"))
        .unwrap();
    new_file.write_all(b"made here\n").unwrap();
    base_file.seek(SeekFrom::End(0)).unwrap();
    base_file.write_all(b"more\n").unwrap();
    // Opened again by another descriptor, then both names go.
    let mut reader = fs::File::open(o.p("new.txt")).unwrap();
    fs::remove_file(o.p("README")).unwrap();
    fs::remove_file(o.p("new.txt")).unwrap();
    assert!(!o.p("README").exists() && !o.p("new.txt").exists());

    // Still readable and writable through the open descriptors.
    new_file.write_all(b"after unlink\n").unwrap();
    drop(new_file);
    let mut s = String::new();
    reader.read_to_string(&mut s).unwrap();
    assert_eq!(s, "made here\nafter unlink\n");
    let mut s = String::new();
    base_file.seek(SeekFrom::Start(0)).unwrap();
    base_file.read_to_string(&mut s).unwrap();
    assert_eq!(s, "read me\nmore\n");
    assert_eq!(base_file.metadata().unwrap().nlink(), 0);
    assert_eq!(o.sql("SELECT count(*) FROM fs_orphan"), "count(*)\n2\n");

    // The last close frees both (the kernel forgets the inodes).
    drop(reader);
    drop(base_file);
    assert!(
        eventually(|| o.sql("SELECT count(*) FROM fs_inode WHERE nlink = 0") == "count(*)\n0\n"),
        "unlinked inodes were not freed after the last close: {}",
        o.sql("SELECT ino, nlink FROM fs_inode")
    );
    assert_eq!(o.sql("SELECT count(*) FROM fs_orphan"), "count(*)\n0\n");
    assert_eq!(o.sql("SELECT count(*) FROM fs_data"), "count(*)\n0\n");
    assert_eq!(fs::read(o.base().join("README")).unwrap(), b"read me\n");
}

#[test]
fn passthrough_mode_reads_base_files_and_copies_up_on_write() {
    let o = Overlay::new(&["--passthrough"]);
    assert_eq!(snapshot(&o.mnt), snapshot(&o.base()));
    // big.bin (300 KB) is read by the kernel from the base file itself.
    assert_eq!(fs::read(o.p("big.bin")).unwrap(), vec![7u8; 300_000]);
    assert_eq!(o.sql("SELECT count(*) FROM fs_data"), "count(*)\n0\n");
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(o.p("big.bin"))
            .unwrap();
        f.write_all(b"tail").unwrap();
    }
    let mut want = vec![7u8; 300_000];
    want.extend_from_slice(b"tail");
    assert_eq!(fs::read(o.p("big.bin")).unwrap(), want);
    assert_eq!(
        fs::read(o.base().join("big.bin")).unwrap(),
        vec![7u8; 300_000]
    );
}

#[test]
fn large_merged_directories_list_each_entry_once_even_when_read_interleaved() {
    let o = Overlay::new(&[]);
    // Base entries enough for many readdir requests, some deleted and some added.
    let many = o.base().join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..1500 {
        fs::write(many.join(format!("base-file-with-a-long-name-{i:05}")), "b").unwrap();
    }
    let dir = o.p("many");
    for i in (0..1500).step_by(100) {
        fs::remove_file(dir.join(format!("base-file-with-a-long-name-{i:05}"))).unwrap();
    }
    for i in 0..40 {
        fs::write(dir.join(format!("new-{i}")), "n").unwrap();
    }
    let mut want: Vec<String> = (0..1500)
        .filter(|i| i % 100 != 0)
        .map(|i| format!("base-file-with-a-long-name-{i:05}"))
        .chain((0..40).map(|i| format!("new-{i}")))
        .collect();
    want.sort();
    // Two listings of the same directory, advanced in turn.
    let mut a = fs::read_dir(&dir).unwrap();
    let mut b = fs::read_dir(&dir).unwrap();
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    loop {
        let x = a
            .next()
            .map(|e| e.unwrap().file_name().into_string().unwrap());
        let y = b
            .next()
            .map(|e| e.unwrap().file_name().into_string().unwrap());
        if x.is_none() && y.is_none() {
            break;
        }
        seen_a.extend(x);
        seen_b.extend(y);
    }
    seen_a.sort();
    seen_b.sort();
    assert_eq!(seen_a, want);
    assert_eq!(seen_b, want);
}

#[test]
fn base_files_change_through_mmap_and_truncating_opens_without_touching_the_host() {
    let o = Overlay::new(&[]);
    // A shared writable mapping of an untouched base file: the kernel writes the dirty page
    // back without any open of ours, which copies the file up.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(o.p("src/main.rs"))
        .unwrap();
    let len = f.metadata().unwrap().len() as usize;
    common::edit_shared_mapping(&f, len, |map| map[3..7].copy_from_slice(b"MAIN"));
    drop(f);
    assert_eq!(fs::read(o.p("src/main.rs")).unwrap(), b"fn MAIN() {}\n");
    // Opening with O_TRUNC empties a base file in the session only.
    fs::write(o.p("README"), "new\n").unwrap();
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(o.p("docs/a.md"))
        .unwrap();
    assert_eq!(fs::read(o.p("README")).unwrap(), b"new\n");
    assert_eq!(fs::metadata(o.p("docs/a.md")).unwrap().len(), 0);
    o.umount();
    let out = o.agentfs(&["fs", "s", "cat", "/src/main.rs"]);
    assert_eq!(out.stdout, b"fn MAIN() {}\n");
    assert_eq!(
        fs::read(o.base().join("src/main.rs")).unwrap(),
        b"fn main() {}\n"
    );
    assert_eq!(fs::read(o.base().join("README")).unwrap(), b"read me\n");
    assert_eq!(fs::read(o.base().join("docs/a.md")).unwrap(), b"# A\n");
}

/// renameat2(RENAME_EXCHANGE) of two paths.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: two valid C strings; renameat2 only reads them.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn rename_exchange_swaps_base_and_session_entries() {
    let o = Overlay::new(&[]);
    let before = snapshot(&o.base());
    // Two base files, then a base file and a file made in the session.
    exchange(&o.p("README"), &o.p("src/main.rs")).unwrap();
    assert_eq!(fs::read(o.p("README")).unwrap(), b"fn main() {}\n");
    assert_eq!(fs::read(o.p("src/main.rs")).unwrap(), b"read me\n");
    fs::write(o.p("new.txt"), "new\n").unwrap();
    exchange(&o.p("new.txt"), &o.p("docs/a.md")).unwrap();
    assert_eq!(fs::read(o.p("new.txt")).unwrap(), b"# A\n");
    assert_eq!(fs::read(o.p("docs/a.md")).unwrap(), b"new\n");
    // A base directory and one made in the session: each keeps its own children.
    fs::create_dir(o.p("made")).unwrap();
    fs::write(o.p("made/m.txt"), "m").unwrap();
    exchange(&o.p("made"), &o.p("src")).unwrap();
    let names = |dir: &str| {
        let mut n: Vec<String> = fs::read_dir(o.p(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names("src"), ["m.txt"]);
    assert_eq!(names("made"), ["lib", "main.rs"]);
    assert_eq!(
        fs::read(o.p("made/lib/util.rs")).unwrap(),
        b"pub fn util() {}\n"
    );
    // Still so after a remount, and the base is untouched.
    o.umount();
    o.agentfs(&["mount", "s", o.mnt.to_str().unwrap()]);
    assert_eq!(names("src"), ["m.txt"]);
    assert_eq!(names("made"), ["lib", "main.rs"]);
    assert_eq!(snapshot(&o.base()), before);
}

/// How many of `path`'s pages are in the host's page cache.
fn resident_pages(path: &Path) -> usize {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let page = 4096;
    let mut resident = vec![0u8; len.div_ceil(page)];
    // SAFETY: a read-only shared mapping of the whole file, never touched (mincore only
    // asks which of its pages are cached), and unmapped before returning.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED);
        assert_eq!(libc::mincore(addr, len, resident.as_mut_ptr()), 0);
        libc::munmap(addr, len);
    }
    resident.iter().filter(|&&r| r & 1 == 1).count()
}

/// Drops `path`'s clean pages from the host's page cache.
fn evict(path: &Path) {
    let file = fs::File::open(path).unwrap();
    nix::fcntl::posix_fadvise(
        &file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .unwrap();
}

#[test]
fn reading_a_directory_in_order_reads_the_next_base_files_ahead_into_the_host_cache() {
    // On disk, not on a tmpfs /tmp: tmpfs pages cannot be evicted, and need no read-ahead.
    let top = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let o = Overlay::new_in(top, &[]);
    let names: Vec<String> = (0..12).map(|i| format!("f{i:02}")).collect();
    for dir in ["walked", "lone"] {
        fs::create_dir(o.base().join(dir)).unwrap();
        for (i, name) in names.iter().enumerate() {
            fs::write(o.base().join(dir).join(name), vec![i as u8; 64 * 1024]).unwrap();
        }
    }
    let base_files =
        |dir: &str| -> Vec<PathBuf> { names.iter().map(|n| o.base().join(dir).join(n)).collect() };
    let pages = 64 * 1024 / 4096;
    for dir in ["walked", "lone"] {
        assert_eq!(fs::read_dir(o.p(dir)).unwrap().count(), names.len());
        for f in base_files(dir) {
            fs::File::open(&f).unwrap().sync_all().unwrap();
            evict(&f);
            assert_eq!(resident_pages(&f), 0, "{} stays cached", f.display());
        }
    }

    // One file read on its own reads nothing ahead.
    assert_eq!(fs::read(o.p("lone/f05")).unwrap(), vec![5u8; 64 * 1024]);
    // A window for a wrong read-ahead to land: what is tested is that nothing happens.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let lone = base_files("lone");
    assert!(
        lone.iter()
            .all(|f| resident_pages(f) == 0 || f.ends_with("f05"))
    );

    // Two files read in listing order: the ones after them are read ahead.
    for name in ["f00", "f01"] {
        fs::read(o.p(&format!("walked/{name}"))).unwrap();
    }
    let walked = base_files("walked");
    assert!(
        eventually(|| walked[2..].iter().all(|f| resident_pages(f) == pages)),
        "resident pages after f01: {:?}",
        walked.iter().map(|f| resident_pages(f)).collect::<Vec<_>>()
    );
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            fs::read(o.p(&format!("walked/{name}"))).unwrap(),
            vec![i as u8; 64 * 1024]
        );
    }
    assert_eq!(o.sql("SELECT count(*) FROM fs_data"), "count(*)\n0\n");
}
