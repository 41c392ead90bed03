//! Progress of the long operations: through the library, a recording `Progress` hears one
//! start, advances adding up to the totals it announced, and one finish, for apply, fork,
//! export (patch and tar) and vacuum; through the binary, `agentfs fork` draws a bar on a
//! terminal and nothing when stderr is piped or with --quiet.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use agentfs::apply::tree::{BaseTree, SessionTree};
use agentfs::overlay::Overlay;
use agentfs::progress::Progress;
use agentfs::session::SessionRef;
use agentfs::store::OpenMode;
use agentfs::vfs::{Creds, Ino, Vfs};

mod common;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Start(String, Option<u64>, Option<u64>),
    Advance(u64, u64),
    Finish,
}

/// A `Progress` that keeps every call.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Progress for Recorder {
    fn start(&self, what: &str, total_items: Option<u64>, total_bytes: Option<u64>) {
        let e = Event::Start(what.to_string(), total_items, total_bytes);
        self.0.lock().unwrap().push(e);
    }
    fn advance(&self, items: u64, bytes: u64) {
        self.0.lock().unwrap().push(Event::Advance(items, bytes));
    }
    fn finish(&self) {
        self.0.lock().unwrap().push(Event::Finish);
    }
}

impl Recorder {
    /// Checks the calls form one phase (start, advances, finish) whose advances add up to
    /// the totals announced; returns what was announced.
    fn one_phase(&self) -> (String, Option<u64>, Option<u64>) {
        let events = self.0.lock().unwrap().clone();
        let Some(Event::Start(what, items, bytes)) = events.first().cloned() else {
            panic!("no start first: {events:?}");
        };
        assert_eq!(events.last(), Some(&Event::Finish), "{events:?}");
        let (mut done_items, mut done_bytes) = (0, 0);
        for e in &events[1..events.len() - 1] {
            match e {
                Event::Advance(i, b) => {
                    done_items += i;
                    done_bytes += b;
                }
                other => panic!("{other:?} between start and finish: {events:?}"),
            }
        }
        assert_eq!(Some(done_items), items, "items of {what}: {events:?}");
        assert_eq!(Some(done_bytes), bytes, "bytes of {what}: {events:?}");
        (what, items, bytes)
    }
}

fn me() -> Creds {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Creds { uid, gid }
}

/// A base with two files and a session over it that adds one (5 bytes), changes one
/// (10 bytes) and deletes the other.
struct Small {
    top: tempfile::TempDir,
    r: SessionRef,
    vfs: Arc<Vfs>,
}

impl Small {
    fn new() -> Small {
        let top = tempfile::tempdir().unwrap();
        let base = top.path().join("base");
        std::fs::create_dir(&base).unwrap();
        std::fs::write(base.join("kept.txt"), "old\n").unwrap();
        std::fs::write(base.join("gone.txt"), "bye\n").unwrap();
        let r = SessionRef::parse(top.path().join("s.db").to_str().unwrap()).unwrap();
        agentfs::session::create(&r, Some(&base)).unwrap();
        let vfs = Arc::new(Vfs::open_session(&r.path, OpenMode::Existing).unwrap());
        let s = Small { top, r, vfs };
        s.write(b"new.txt", b"new!\n");
        s.write(b"kept.txt", b"changed!!\n");
        s.overlay().unlink(Ino::ROOT, b"gone.txt").unwrap();
        s
    }

    /// The session's merged view, as a mount would show it.
    fn overlay(&self) -> Overlay {
        Overlay::new(self.vfs.clone(), Some(self.base()))
    }

    /// Writes `bytes` at the start of the file `name` in the root, made if missing.
    fn write(&self, name: &[u8], bytes: &[u8]) {
        let ov = self.overlay();
        let fh = match ov.lookup(Ino::ROOT, name) {
            Ok(attr) => ov.open(attr.ino, true).unwrap(),
            Err(_) => ov.create(Ino::ROOT, name, 0o644, me()).unwrap().1,
        };
        let mut at = 0;
        while at < bytes.len() {
            let end = bytes.len().min(at + (1 << 20));
            at += ov.write(fh, at as u64, &bytes[at..end]).unwrap() as usize;
        }
        ov.release(fh).unwrap();
    }

    fn base(&self) -> std::path::PathBuf {
        self.top.path().join("base")
    }
}

#[test]
fn apply_reports_the_removals_and_writes_and_the_bytes_written() {
    let s = Small::new();
    let rec = Recorder::default();
    let mut applied = Vec::new();
    let opts = agentfs::apply::Options::default();
    let report = agentfs::apply::apply_with_progress(&s.vfs, &s.base(), &opts, &rec, &mut |i| {
        applied.push(i.path.clone())
    })
    .unwrap();
    assert!(report.conflicts.is_empty());
    assert_eq!(applied.len(), 3, "{applied:?}");
    // One removal (gone.txt), two writes; 5 + 10 bytes.
    assert_eq!(rec.one_phase(), ("applying".to_string(), Some(3), Some(15)));
    assert_eq!(
        std::fs::read_to_string(s.base().join("new.txt")).unwrap(),
        "new!\n"
    );
}

#[test]
fn a_dry_run_reports_no_progress() {
    let s = Small::new();
    let rec = Recorder::default();
    let opts = agentfs::apply::Options {
        dry_run: true,
        ..Default::default()
    };
    agentfs::apply::apply_with_progress(&s.vfs, &s.base(), &opts, &rec, &mut |_| {}).unwrap();
    assert!(rec.0.lock().unwrap().is_empty());
}

#[test]
fn export_reports_each_item_and_the_session_bytes_for_patch_and_tar() {
    let s = Small::new();
    let items = agentfs::apply::plan(&s.vfs, &s.base(), &[]).unwrap();
    assert_eq!(items.len(), 3);
    let session = SessionTree::new(s.vfs.clone(), &s.base());

    let rec = Recorder::default();
    let mut patch = Vec::new();
    agentfs::apply::patch::write_patch(
        &items,
        &BaseTree::new(s.base()),
        &session,
        &mut patch,
        &rec,
    )
    .unwrap();
    assert!(String::from_utf8(patch).unwrap().contains("+changed!!"));
    assert_eq!(
        rec.one_phase(),
        ("exporting".to_string(), Some(3), Some(15))
    );

    let rec = Recorder::default();
    let mut tar = Vec::new();
    let n = agentfs::apply::archive::write_tar(&items, &session, &mut tar, &rec).unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        rec.one_phase(),
        ("exporting".to_string(), Some(3), Some(15))
    );
}

#[test]
fn fork_reports_the_pages_copied() {
    let s = Small::new();
    // Enough data for several steps of the copy.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    s.write(b"big", &big);
    let pages = {
        let store = s.vfs.store().unwrap();
        store
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    let to = SessionRef::parse(s.top.path().join("t.db").to_str().unwrap()).unwrap();
    let rec = Recorder::default();
    agentfs::session::fork::fork_with_progress(&s.r, &s.vfs, &to, &rec).unwrap();
    let (what, items, bytes) = rec.one_phase();
    assert_eq!(what, "forking");
    assert_eq!(items, Some(pages));
    assert_eq!(bytes, Some(pages * 4096));
    let advances = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Advance(..)))
        .count();
    assert!(advances > 1, "one step only for {pages} pages");
    // The copy is a session with the same files.
    let copy = Vfs::open_session(&to.path, OpenMode::Existing).unwrap();
    let ino = copy.resolve(b"/big", true).unwrap();
    assert_eq!(copy.read_ino(ino, 0, 10).unwrap(), &big[..10]);
    let conn = rusqlite::Connection::open(&to.path).unwrap();
    assert!(agentfs::fsck::check(&conn).unwrap().is_empty());
}

#[test]
fn vacuum_reports_the_free_pages_given_back() {
    let s = Small::new();
    let big = vec![7u8; 2_000_000];
    s.write(b"big", &big);
    s.overlay().unlink(Ino::ROOT, b"big").unwrap();
    let free = {
        let store = s.vfs.store().unwrap();
        store
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    assert!(free > 0);
    let rec = Recorder::default();
    s.vfs.compact_with_progress(&rec).unwrap();
    assert_eq!(
        rec.one_phase(),
        ("vacuuming".to_string(), Some(free), Some(free * 4096))
    );
    // Nothing left to give back: nothing to report.
    let rec = Recorder::default();
    s.vfs.compact_with_progress(&rec).unwrap();
    assert!(rec.0.lock().unwrap().is_empty());
}

/// A home with session `s` holding one file.
fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    common::agentfs(home.path(), &["init", "s"]);
    common::agentfs(home.path(), &["fs", "s", "write", "/f", "--data", "data"]);
    home
}

fn fork_command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(common::BIN);
    cmd.arg("fork")
        .args(args)
        .env("AGENTFS_HOME", home)
        .env("TERM", "xterm")
        .env_remove("AGENTFS_COMPLETE");
    cmd
}

#[test]
fn fork_draws_progress_on_a_terminal_only() {
    let home = home();
    let mut term = common::project::OnTerminal::spawn(fork_command(home.path(), &["s", "t"]));
    let mut seen = String::new();
    term.expect(&mut seen, "forked session s into t");
    assert!(term.wait().success());
    assert!(seen.contains("forking "), "{seen:?}");
    assert!(seen.contains("B/s"), "{seen:?}");

    // With --quiet, only the command's own lines.
    let mut term =
        common::project::OnTerminal::spawn(fork_command(home.path(), &["s", "u", "--quiet"]));
    let mut seen = String::new();
    term.expect(&mut seen, "forked session s into u");
    assert!(term.wait().success());
    assert!(!seen.contains("forking"), "{seen:?}");

    // Piped: stdout and stderr exactly as without progress.
    let out = fork_command(home.path(), &["s", "v"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "forked session s into v at {}\n",
            home.path().join("v.db").display()
        )
    );
}
