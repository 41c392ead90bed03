//! `fs_changes`, `agentfs diff` in every format and the named queries, on a session over a
//! real base tree changed through a real FUSE mount; reads and `git status` change nothing;
//! SQL queries a live mount while a writer works in it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

mod common;

struct Mounted {
    top: tempfile::TempDir,
    mnt: PathBuf,
}

impl Mounted {
    /// A base tree in a git repository (committed, index fresh) and a session over it,
    /// mounted.
    fn new() -> Mounted {
        let top = tempfile::tempdir().unwrap();
        let base = top.path().join("base");
        fs::create_dir_all(base.join("src")).unwrap();
        fs::create_dir_all(base.join("docs")).unwrap();
        fs::create_dir_all(base.join("emptydir")).unwrap();
        let files: &[(&str, &[u8])] = &[
            ("src/main.rs", b"fn main() {}\n"),
            ("src/lib.rs", b"pub fn lib() {}\n"),
            ("README", b"read me\n"),
            ("docs/a.md", b"# A\n"),
            ("old.txt", b"moving\n"),
            ("gone.txt", b"bye\n"),
            ("same.txt", b"same bytes\n"),
            ("typed", b"a file, later a directory\n"),
            ("blob.bin", &[0u8, 1, 2, 3, 255, 0, 7]),
        ];
        // Old mtimes: git then trusts its index (no "racily clean" entries to rewrite).
        let past = SystemTime::now() - Duration::from_secs(3600);
        for (name, bytes) in files {
            let p = base.join(name);
            fs::write(&p, bytes).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let git = |args: &[&str]| {
            let st = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "-C"])
                .arg(&base)
                .args(args)
                .output()
                .unwrap();
            assert!(st.status.success(), "git {args:?}: {st:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-qm", "base"]);
        git(&["status", "--porcelain"]);
        let mnt = top.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let m = Mounted { top, mnt };
        m.agentfs(&["init", "s", "--base", base.to_str().unwrap()]);
        m.agentfs(&["mount", "s", m.mnt.to_str().unwrap()]);
        m
    }

    fn home(&self) -> PathBuf {
        self.top.path().join("home")
    }

    fn agentfs(&self, args: &[&str]) -> Output {
        common::agentfs(&self.home(), args)
    }

    fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8(self.agentfs(args).stdout).unwrap()
    }

    fn sql(&self, query: &str) -> String {
        self.stdout(&["sql", "s", "--mode", "list", "--", query])
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Every kind of change, made through the mount.
    fn change_everything(&self) {
        fs::write(self.p("src/new.rs"), "new\n").unwrap();
        fs::write(self.p("src/main.rs"), "fn main() { changed() }\n").unwrap();
        fs::remove_file(self.p("gone.txt")).unwrap();
        fs::rename(self.p("old.txt"), self.p("moved.txt")).unwrap();
        fs::set_permissions(self.p("docs/a.md"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("README", self.p("link")).unwrap();
        let mut blob = fs::read(self.p("blob.bin")).unwrap();
        blob.extend_from_slice(&[0, 0, 9]);
        fs::write(self.p("blob.bin"), blob).unwrap();
        // The same bytes again, and a read: no change.
        fs::write(self.p("same.txt"), "same bytes\n").unwrap();
        assert_eq!(fs::read(self.p("README")).unwrap(), b"read me\n");
        fs::remove_file(self.p("typed")).unwrap();
        fs::create_dir(self.p("typed")).unwrap();
        fs::remove_dir(self.p("emptydir")).unwrap();
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        drop(common::Unmount(self.mnt.clone()));
    }
}

/// Reads every file of a tree (through the mount).
fn read_tree(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            read_tree(&p);
        } else if md.is_file() {
            fs::read(&p).unwrap();
        }
    }
}

const NAME_STATUS: &str = "M /blob.bin\nM /docs/a.md\nD /emptydir/\nD /gone.txt\nA /link\n\
R /old.txt -> /moved.txt\nM /src/main.rs\nA /src/new.rs\nT /typed/\n";

#[test]
fn reading_and_git_status_change_nothing() {
    let m = Mounted::new();
    read_tree(&m.mnt);
    assert_eq!(m.sql("SELECT count(*) FROM fs_change"), "count(*)\n0\n");
    let st = Command::new("git")
        .arg("-C")
        .arg(&m.mnt)
        .args(["status", "--porcelain"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    assert_eq!(
        String::from_utf8_lossy(&st.stdout),
        "",
        "git sees no change"
    );
    // git takes its index lock and, finding nothing to write, removes it again: journaled
    // operations, but no change.
    assert_eq!(
        m.sql("SELECT DISTINCT path FROM fs_change"),
        "path\n/.git/index.lock\n"
    );
    assert_eq!(m.sql("SELECT count(*) FROM fs_changes"), "count(*)\n0\n");
    assert_eq!(m.stdout(&["diff", "s"]), "");
    assert_eq!(m.stdout(&["diff", "s", "--name-status"]), "");
}

#[test]
fn every_kind_of_change_in_fs_changes_and_diff_formats() {
    let m = Mounted::new();
    m.change_everything();

    // The view, and agentfs diff agreeing with it (while mounted, and after unmounting).
    assert_eq!(
        m.sql("SELECT status, path, old_path, type FROM fs_changes"),
        "status|path|old_path|type\nM|/blob.bin|NULL|file\nM|/docs/a.md|NULL|file\n\
D|/emptydir|NULL|dir\nD|/gone.txt|NULL|NULL\nA|/link|NULL|symlink\nR|/moved.txt|/old.txt|file\n\
M|/src/main.rs|NULL|file\nA|/src/new.rs|NULL|file\nT|/typed|NULL|dir\n"
    );
    assert_eq!(m.stdout(&["diff", "s", "--name-status"]), NAME_STATUS);
    let from_view: String = m
        .sql("SELECT status, path, old_path, type = 'dir' FROM fs_changes")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let slash = if f[3] == "1" { "/" } else { "" };
            match f[2] {
                "NULL" => format!("{} {}{slash}\n", f[0], f[1]),
                old => format!("R {old}{slash} -> {}{slash}\n", f[1]),
            }
        })
        .collect();
    assert_eq!(from_view, NAME_STATUS, "fs_changes and agentfs diff agree");
    assert_eq!(
        m.sql("SELECT size_before, size_after FROM fs_changes WHERE path = '/src/main.rs'"),
        "size_before|size_after\n13|24\n"
    );

    // Patches: text, binary, mode, rename, deletion, symlink; nothing for untouched files.
    let patch = m.stdout(&["diff", "s"]);
    for want in [
        "diff --git a/src/main.rs b/src/main.rs\n--- a/src/main.rs\n+++ b/src/main.rs\n\
@@ -1 +1 @@\n-fn main() {}\n+fn main() { changed() }\n",
        "diff --git a/blob.bin b/blob.bin\nBinary files a/blob.bin and b/blob.bin differ\n",
        "diff --git a/docs/a.md b/docs/a.md\nold mode 100644\nnew mode 100600\n",
        "rename from old.txt\nrename to moved.txt\n",
        "diff --git a/gone.txt b/gone.txt\ndeleted file\n--- a/gone.txt\n+++ /dev/null\n\
@@ -1 +0,0 @@\n-bye\n",
        "diff --git a/link b/link\nnew file mode 120777\n",
        "--- /dev/null\n+++ b/src/new.rs\n@@ -0,0 +1 @@\n+new\n",
        "diff --git a/typed b/typed\n--- a/typed\n+++ /dev/null\n",
    ] {
        assert!(patch.contains(want), "missing {want:?} in\n{patch}");
    }
    for absent in ["a/README", "same.txt", "lib.rs", "\x1b["] {
        assert!(!patch.contains(absent), "{absent:?} in\n{patch}");
    }
    let colored = m.stdout(&["diff", "s", "--color=always"]);
    assert!(colored.contains("\x1b[32m+fn main() { changed() }\x1b[m\n"));
    assert!(colored.contains("\x1b[31m-fn main() {}\x1b[m\n"));
    assert_eq!(m.stdout(&["diff", "s", "--color=never"]), patch);

    // Only some paths.
    assert_eq!(
        m.stdout(&["diff", "s", "--name-status", "src", "/old.txt"]),
        "R /old.txt -> /moved.txt\nM /src/main.rs\nA /src/new.rs\n"
    );

    let stat = m.stdout(&["diff", "s", "--stat"]);
    let stat_rows: Vec<(String, String)> = stat
        .lines()
        .filter_map(|l| l.split_once(" | "))
        .map(|(a, b)| (a.trim().to_string(), b.to_string()))
        .collect();
    let row = |name: &str| stat_rows.iter().find(|r| r.0 == name).map(|r| r.1.as_str());
    assert_eq!(row("/src/main.rs"), Some("2 +-"), "{stat}");
    assert_eq!(row("/blob.bin"), Some("Bin 7 -> 10 bytes"), "{stat}");
    assert_eq!(row("/old.txt => /moved.txt"), Some("0"), "{stat}");
    assert_eq!(row("/README"), None, "{stat}");
    assert!(
        stat.ends_with(" 7 files changed, 3 insertions(+), 2 deletions(-)\n"),
        "{stat}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&m.stdout(&["diff", "s", "--json"])).unwrap();
    let items = json.as_array().unwrap();
    assert_eq!(items.len(), 9);
    let find = |p: &str| items.iter().find(|i| i["path"] == p).unwrap().clone();
    assert_eq!(find("/blob.bin")["binary"], true);
    assert_eq!(find("/src/main.rs")["insertions"], 1);
    assert_eq!(find("/src/main.rs")["deletions"], 1);
    assert_eq!(find("/moved.txt")["old_path"], "/old.txt");
    assert_eq!(find("/typed")["status"], "T");

    m.agentfs(&["umount", m.mnt.to_str().unwrap()]);
    assert_eq!(m.stdout(&["diff", "s", "--name-status"]), NAME_STATUS);
    assert_eq!(m.stdout(&["diff", "s"]), patch);
}

#[test]
fn named_queries_on_a_changed_session() {
    let m = Mounted::new();
    m.change_everything();
    m.agentfs(&["kv", "s", "set", "model", "\"x\""]);
    let q = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["sql", "s", "--json", "--query"];
        all.extend_from_slice(args);
        serde_json::from_str(&m.stdout(&all)).unwrap()
    };
    let changes = q(&["changes"]);
    assert_eq!(changes.as_array().unwrap().len(), 9);
    assert_eq!(changes[0]["path"], "/blob.bin");
    assert_eq!(changes[0]["before"], "7 B");

    let diff = q(&["diff", "/src/main.rs"]);
    assert_eq!(diff[0]["status"], "M");
    let text = diff[0]["diff"].as_str().unwrap();
    assert!(
        text.contains("-fn main() {}\n+fn main() { changed() }\n"),
        "{text}"
    );
    let diff = q(&["diff", "/blob.bin"]);
    assert_eq!(
        diff[0]["diff"],
        "Binary files a/blob.bin and b/blob.bin differ\n"
    );

    let deleted = q(&["deleted"]);
    let paths: Vec<&str> = deleted
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/emptydir", "/gone.txt"]);

    let renames = q(&["renames"]);
    assert_eq!(renames[0]["old_path"], "/old.txt");
    assert_eq!(renames[0]["path"], "/moved.txt");

    let binary = q(&["binary_changes"]);
    assert_eq!(binary.as_array().unwrap().len(), 1);
    assert_eq!(binary[0]["path"], "/blob.bin");

    let kv = q(&["kv"]);
    assert_eq!(kv[0]["key"], "model");
    assert_eq!(kv[0]["value"], "\"x\"");

    let summary = q(&["summary"]);
    let item = |name: &str| {
        summary
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["item"] == name)
            .unwrap_or_else(|| panic!("no {name} in {summary}"))["value"]
            .clone()
    };
    assert_eq!(item("changes (M)"), 3);
    assert_eq!(item("changes (A)"), 2);
    assert_eq!(item("kv keys"), 1);

    let history = q(&["history_of", "/src/main.rs"]);
    assert!(!history.as_array().unwrap().is_empty());
    let largest = q(&["largest_files", "1"]);
    assert_eq!(largest[0]["path"], "/src/main.rs");
    assert_eq!(q(&["tool_calls"]), serde_json::json!([]));
    // Every named query runs on this session.
    for name in [
        "recent_changes",
        "changes_by_op",
        "changes_by_runner",
        "files",
    ] {
        assert!(!q(&[name]).as_array().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn sql_and_diff_on_a_live_mount_while_a_writer_writes() {
    let m = Mounted::new();
    let dir = m.p("work");
    let writer = std::thread::spawn(move || {
        fs::create_dir(&dir).unwrap();
        for i in 0..400 {
            let p = dir.join(format!("f{i}"));
            fs::write(&p, vec![b'x'; 5000]).unwrap();
            if i % 3 == 0 {
                fs::rename(&p, dir.join(format!("g{i}"))).unwrap();
            }
            if i % 7 == 0 {
                fs::write(
                    dir.parent().unwrap().join("src/main.rs"),
                    format!("// {i}\n"),
                )
                .unwrap();
            }
        }
    });
    let mut rounds = 0;
    while !writer.is_finished() || rounds < 3 {
        let out = Command::new(common::BIN)
            .env("AGENTFS_HOME", m.home())
            .args([
                "sql",
                "s",
                "--csv",
                "SELECT count(*) FROM fs_changes;\n.q summary",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        m.agentfs(&["diff", "s", "--stat"]);
        rounds += 1;
    }
    writer.join().expect("the writer saw no error");
    let listed = m.sql("SELECT count(*) FROM fs_changes WHERE path LIKE '/work/%'");
    assert_eq!(listed, "count(*)\n400\n");
    assert!(
        m.stdout(&["diff", "s", "--name-status", "src"]) == "M /src/main.rs\n",
        "the last write of main.rs shows"
    );
}

/// The view's name-status lines, as `agentfs diff --name-status` prints them.
fn view_as_name_status(m: &Mounted) -> String {
    m.sql("SELECT status, path, old_path, type = 'dir' FROM fs_changes")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let slash = if f[3] == "1" { "/" } else { "" };
            match f[2] {
                "NULL" => format!("{} {}{slash}\n", f[0], f[1]),
                old => format!("R {old}{slash} -> {}{slash}\n", f[1]),
            }
        })
        .collect()
}

#[test]
fn modes_and_types_are_judged_against_the_base_mode_copy_up_recorded() {
    let m = Mounted::new();
    // A base symlink the session has not looked at yet, so the mount sees it.
    let base = m.top.path().join("base");
    std::os::unix::fs::symlink("README", base.join("slink")).unwrap();
    let mode = |p: &str| fs::symlink_metadata(m.p(p)).unwrap().permissions().mode() & 0o7777;
    let chmod = |p: &str, mode: u32| {
        fs::set_permissions(m.p(p), fs::Permissions::from_mode(mode)).unwrap();
    };
    // A chmod and back, of a file and of a directory: copied up, but no change.
    chmod("README", 0o600);
    chmod("README", 0o644);
    let docs = mode("docs");
    chmod("docs", 0o700);
    chmod("docs", docs);
    // A real mode change.
    chmod("src/lib.rs", 0o755);
    // A base symlink renamed away and a regular file in its place: another type.
    fs::rename(m.p("slink"), m.p("slink.old")).unwrap();
    fs::write(m.p("slink"), "now a file\n").unwrap();
    // A base file renamed away and another file in its place: the same type.
    fs::rename(m.p("same.txt"), m.p("same.old")).unwrap();
    fs::write(m.p("same.txt"), "other bytes\n").unwrap();

    let want = "R /same.txt -> /same.old\nM /same.txt\nT /slink\nR /slink -> /slink.old\n\
M /src/lib.rs\n";
    assert_eq!(m.stdout(&["diff", "s", "--name-status"]), want);
    assert_eq!(
        view_as_name_status(&m),
        want,
        "fs_changes and agentfs diff agree"
    );
    assert_eq!(
        m.sql(
            "SELECT count(*) FROM fs_base_identity b JOIN fs_paths p ON p.ino = b.ino \
               WHERE p.path IN ('/README', '/docs')"
        ),
        "count(*)\n2\n",
        "README and docs were copied up"
    );
    let patch = m.stdout(&["diff", "s"]);
    assert!(
        patch.contains("diff --git a/src/lib.rs b/src/lib.rs\nold mode 100644\nnew mode 100755\n"),
        "{patch}"
    );
    assert!(!patch.contains("a/README"), "{patch}");

    // An identity without the base mode (copied up before format 4): the journal decides,
    // so the chmod and back counts as a change again.
    let conn = rusqlite::Connection::open(m.home().join("s.db")).unwrap();
    conn.execute(
        "UPDATE fs_base_identity SET mode = NULL WHERE base_path = '/README'",
        [],
    )
    .unwrap();
    drop(conn);
    let want = "M /README\nR /same.txt -> /same.old\nM /same.txt\nT /slink\n\
R /slink -> /slink.old\nM /src/lib.rs\n";
    assert_eq!(m.stdout(&["diff", "s", "--name-status"]), want);
    assert_eq!(view_as_name_status(&m), want);
}
