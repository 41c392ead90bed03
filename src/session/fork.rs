//! Forking a session: a consistent copy of its database under a new session name.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};

use super::{SessionError, SessionRef};
use crate::progress::{NoProgress, Progress};
use crate::store::OpenMode;
use crate::vfs::{Vfs, VfsError};

/// Why a fork failed; a failed fork leaves no new database behind.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// The new session exists already.
    #[error(transparent)]
    Exists(SessionError),
    /// The directory for the new database cannot be made.
    #[error("cannot create the session directory {}", dir.display())]
    SessionDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// No connection to the source session.
    #[error(transparent)]
    Source(VfsError),
    /// Copying, or preparing the copy, failed (the copy is removed again).
    #[error("cannot fork {from} into {}", to.display())]
    Copy {
        from: String,
        to: PathBuf,
        source: CopyError,
    },
}

/// The step of a fork's copy that failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Copying or updating the copy failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// The copy does not open as a session.
    #[error(transparent)]
    Open(#[from] VfsError),
}

/// Copies session `from` (open as `vfs`) into the new session `to`, which must not exist.
/// The copy is one snapshot, so it is consistent even while the source is mounted and being
/// written; it gets its own creation time, and the files the source's processes still hold
/// open after deleting them are not carried over as held.
pub fn fork(from: &SessionRef, vfs: &Vfs, to: &SessionRef) -> Result<(), ForkError> {
    fork_with_progress(from, vfs, to, &NoProgress)
}

/// Pages copied per step of the backup, between two progress reports (1 MiB of 4 KiB pages).
const PAGES_PER_STEP: i32 = 256;

/// [`fork`], telling `progress` how far the copy got: the items are the database's pages,
/// the bytes those pages. The copy is page for page (SQLite's online backup), so it has the
/// source's free pages too; `agentfs vacuum` gives them back.
pub fn fork_with_progress(
    from: &SessionRef,
    vfs: &Vfs,
    to: &SessionRef,
    progress: &dyn Progress,
) -> Result<(), ForkError> {
    if to.path.exists() {
        return Err(ForkError::Exists(SessionError::Exists {
            id: to.id.clone(),
            path: to.path.clone(),
        }));
    }
    if let Some(dir) = to.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ForkError::SessionDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let copied = {
        let store = vfs.store().map_err(ForkError::Source)?;
        copy_database(&store.conn, &to.path, progress)
    };
    let result = copied.map_err(CopyError::from).and_then(|_| {
        let conn = rusqlite::Connection::open(&to.path)?;
        // Files the parent's processes hold open after unlinking them are not the fork's:
        // mark them as left by a dead process so that opening the fork frees them.
        conn.execute("UPDATE fs_orphan SET pid = 0", [])?;
        conn.execute(
            "UPDATE fs_config SET value = CAST(unixepoch() AS TEXT) WHERE key = 'agentfs_created_at'",
            [],
        )?;
        drop(conn);
        Vfs::open_session(&to.path, OpenMode::Existing)?;
        Ok(())
    });
    if let Err(source) = result {
        for f in to.files() {
            let _ = std::fs::remove_file(f);
        }
        return Err(ForkError::Copy {
            from: from.id.clone(),
            to: to.path.clone(),
            source,
        });
    }
    Ok(())
}

/// Copies the database of `conn` into a new database file at `to` with SQLite's online
/// backup, a few pages at a time so `progress` can be told how far it got.
///
/// A write through another connection between two steps makes SQLite start the copy over,
/// so the copy is always one snapshot. Under a steady stream of writes (a busy mount) that
/// could go on for ever: once the copy has had to start over, the rest is done in one step,
/// which reads one snapshot while the writers go on (WAL readers do not block them).
fn copy_database(
    conn: &rusqlite::Connection,
    to: &std::path::Path,
    progress: &dyn Progress,
) -> rusqlite::Result<()> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let page_size = page_size.max(0) as u64;
    let mut dest = rusqlite::Connection::open(to)?;
    let backup = Backup::new(conn, &mut dest)?;
    // The page count is known only after the first step; until then nothing is announced.
    let mut total: Option<u64> = None;
    let mut done = 0u64;
    let mut pages = PAGES_PER_STEP;
    loop {
        let step = backup.step(pages)?;
        let waiting = matches!(step, StepResult::Busy | StepResult::Locked);
        if waiting && total.is_none() {
            // Nothing read yet, so no page count to announce.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let p = backup.progress();
        let (count, remaining) = (p.pagecount.max(0) as u64, p.remaining.max(0) as u64);
        let total = *total.get_or_insert_with(|| {
            progress.start("forking", Some(count), Some(count * page_size));
            count
        });
        let now = match step {
            StepResult::Done => total,
            _ => count.saturating_sub(remaining).min(total),
        };
        if now < done {
            // Started over: finish in one step.
            pages = -1;
        } else {
            progress.advance(now - done, (now - done) * page_size);
            done = now;
        }
        if step == StepResult::Done {
            break;
        }
        if waiting {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    progress.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_copies_the_files_and_refuses_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| SessionRef::parse(dir.path().join(name).to_str().unwrap()).unwrap();
        let (from, to) = (at("a.db"), at("sub/b.db"));
        super::super::create(&from, None).unwrap();
        let vfs = Vfs::open_session(&from.path, OpenMode::Existing).unwrap();
        let me = crate::vfs::Creds { uid: 0, gid: 0 };
        crate::vfs::paths::write_file(&vfs, b"/f", b"kept", 0o644, me).unwrap();

        fork(&from, &vfs, &to).unwrap();
        let copy = Vfs::open_session(&to.path, OpenMode::Existing).unwrap();
        let ino = copy.resolve(b"/f", true).unwrap();
        assert_eq!(copy.read_ino(ino, 0, 100).unwrap(), b"kept");

        let err = fork(&from, &vfs, &to).unwrap_err();
        assert!(matches!(err, ForkError::Exists(_)), "{err}");
    }

    /// Writes a file through a second connection at the first report, so the copy's next
    /// step has to start over; counts what it hears.
    struct Meddler {
        source: PathBuf,
        meddled: std::cell::Cell<bool>,
        started: std::cell::Cell<Option<u64>>,
        done: std::cell::Cell<u64>,
        finished: std::cell::Cell<bool>,
    }

    impl Progress for Meddler {
        fn start(&self, _what: &str, total_items: Option<u64>, _total_bytes: Option<u64>) {
            self.started.set(total_items);
        }
        fn advance(&self, items: u64, _bytes: u64) {
            self.done.set(self.done.get() + items);
            if !self.meddled.replace(true) {
                let other = Vfs::open_session(&self.source, OpenMode::Existing).unwrap();
                let me = crate::vfs::Creds { uid: 0, gid: 0 };
                crate::vfs::paths::write_file(&other, b"/late", b"during", 0o644, me).unwrap();
            }
        }
        fn finish(&self) {
            self.finished.set(true);
        }
    }

    #[test]
    fn a_copy_started_over_by_a_write_still_completes_with_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| SessionRef::parse(dir.path().join(name).to_str().unwrap()).unwrap();
        let (from, to) = (at("a.db"), at("b.db"));
        super::super::create(&from, None).unwrap();
        let vfs = Vfs::open_session(&from.path, OpenMode::Existing).unwrap();
        let me = crate::vfs::Creds { uid: 0, gid: 0 };
        let big = vec![1u8; 4 << 20];
        crate::vfs::paths::write_file(&vfs, b"/big", &big, 0o644, me).unwrap();

        let meddler = Meddler {
            source: from.path.clone(),
            meddled: Default::default(),
            started: Default::default(),
            done: Default::default(),
            finished: Default::default(),
        };
        fork_with_progress(&from, &vfs, &to, &meddler).unwrap();
        assert!(meddler.meddled.get() && meddler.finished.get());
        let total = meddler.started.get().unwrap();
        assert!(total > PAGES_PER_STEP as u64, "{total} pages");
        assert_eq!(meddler.done.get(), total);
        let copy = Vfs::open_session(&to.path, OpenMode::Existing).unwrap();
        let ino = copy.resolve(b"/late", true).unwrap();
        assert_eq!(copy.read_ino(ino, 0, 100).unwrap(), b"during");
    }
}
