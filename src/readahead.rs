//! Read-ahead across the files of a directory.
//!
//! A program that reads a tree (cat, grep -r, tar, a compiler) reads one directory's files
//! after another in listing order. The kernel reads ahead inside a file but never across
//! files, so on a cold cache every small file costs a wait for the disk. When reads of a
//! directory's base files follow its listing order, the next few files are handed to a
//! thread that asks the host to start reading them (`POSIX_FADV_WILLNEED`), so their bytes
//! are in the host's page cache by the time they are asked for.
//!
//! Only the host's cache is warmed: nothing is copied into the session and the kernel's view
//! of the mount is untouched, so there is nothing to keep consistent. A program that reads
//! one file, or files out of order, starts nothing.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Entries looked at ahead of the file being read.
pub const AHEAD: usize = 16;

/// How far past the previous read a read may land and still follow listing order: readers
/// skip the entries they do not read (subdirectories, which a tree walker reads later).
pub const GAP: usize = 8;

/// Files larger than this are not read ahead: one of them is already enough work for the
/// disk to overlap with, and the kernel reads ahead inside it once it is read.
pub const MAX_FILE: u64 = 1 << 20;

/// Directories whose read order is remembered; past this the memory is dropped and
/// streaks start over.
const DIRS_MAX: usize = 1024;

/// Paths waiting for the warming thread; when it falls behind, more are dropped, not queued.
const QUEUE: usize = 256;

/// Where reads of one directory's files have got to.
#[derive(Debug, Clone, Copy)]
struct Streak {
    /// Listing index of the last file read.
    last: usize,
    /// Listing entries below this index have been read ahead already.
    ahead: usize,
}

/// Which files to read ahead, from the order files are read in (no I/O: see [`ReadAhead`]).
#[derive(Debug, Default)]
pub struct ReadOrder {
    streaks: HashMap<u64, Streak>,
    /// Whether the last read anywhere followed listing order (a tree walker moving on to the
    /// next directory starts there at once, without a second read to show its order).
    walking: bool,
}

impl ReadOrder {
    /// A read of the entry at index `at` of directory `dir`'s listing (of `len` entries)
    /// begins: the listing indexes to read ahead now, empty unless reads follow the listing.
    pub fn plan(&mut self, dir: u64, at: usize, len: usize) -> Range<usize> {
        if self.streaks.len() >= DIRS_MAX && !self.streaks.contains_key(&dir) {
            self.streaks.clear();
        }
        let walking = self.walking;
        let streak = self.streaks.entry(dir).or_insert(Streak {
            last: usize::MAX,
            ahead: 0,
        });
        let in_order = if streak.last == usize::MAX {
            walking && at < GAP
        } else {
            at > streak.last && at - streak.last <= GAP
        };
        streak.last = at;
        self.walking = in_order;
        if !in_order {
            return 0..0;
        }
        let from = streak.ahead.max(at + 1);
        let to = len.min(at + 1 + AHEAD);
        if from >= to {
            return 0..0;
        }
        streak.ahead = to;
        from..to
    }
}

/// Reads ahead on a thread of its own: [`ReadOrder`] picks the files, the thread warms them.
pub struct ReadAhead {
    order: Mutex<ReadOrder>,
    queue: SyncSender<PathBuf>,
}

impl Default for ReadAhead {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadAhead {
    /// Starts the warming thread; it ends when this is dropped.
    pub fn new() -> ReadAhead {
        let (queue, paths) = sync_channel::<PathBuf>(QUEUE);
        std::thread::Builder::new()
            .name("readahead".into())
            .spawn(move || {
                for path in paths {
                    warm(&path);
                }
            })
            .expect("spawning the read-ahead thread");
        ReadAhead {
            order: Mutex::new(ReadOrder::default()),
            queue,
        }
    }

    /// See [`ReadOrder::plan`].
    pub fn plan(&self, dir: u64, at: usize, len: usize) -> Range<usize> {
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .plan(dir, at, len)
    }

    /// Asks for host file `path` to be read into the host's cache soon; dropped when the
    /// thread is behind.
    pub fn warm(&self, path: PathBuf) {
        match self.queue.try_send(path) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Starts the host reading all of `path` into its cache, without waiting for the disk.
fn warm(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    // A file that went away or cannot be opened is simply not read ahead: the read that
    // wants it will report the problem. Non-blocking and not following symlinks: the host
    // may have put a FIFO or a link where the listing saw a file.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path);
    if let Ok(file) = opened
        && file.metadata().is_ok_and(|m| m.is_file())
    {
        let _ = nix::fcntl::posix_fadvise(
            &file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_starts_nothing() {
        let mut o = ReadOrder::default();
        assert!(o.plan(7, 3, 100).is_empty());
    }

    #[test]
    fn reads_in_listing_order_read_ahead_once_each() {
        let mut o = ReadOrder::default();
        assert!(o.plan(7, 0, 100).is_empty());
        assert_eq!(o.plan(7, 1, 100), 2..2 + AHEAD);
        // The next reads only add what is new at the far end.
        assert_eq!(o.plan(7, 2, 100), 2 + AHEAD..3 + AHEAD);
        // Skipping a subdirectory or two still follows the listing.
        assert_eq!(o.plan(7, 5, 100), 3 + AHEAD..6 + AHEAD);
        // Never past the end of the listing (the walk moves on to directory 8 at once).
        assert_eq!(o.plan(8, 0, 5), 1..5);
        assert!(o.plan(8, 1, 5).is_empty());
    }

    #[test]
    fn out_of_order_reads_start_nothing() {
        let mut o = ReadOrder::default();
        o.plan(7, 50, 100);
        assert!(o.plan(7, 10, 100).is_empty(), "backwards");
        assert!(o.plan(7, 10 + GAP + 1, 100).is_empty(), "too far ahead");
        assert!(
            o.plan(7, 10 + GAP + 1, 100).is_empty(),
            "the same file again"
        );
    }

    #[test]
    fn a_tree_walk_reads_ahead_in_the_next_directory_from_its_first_file() {
        let mut o = ReadOrder::default();
        o.plan(1, 0, 10);
        o.plan(1, 1, 10);
        assert_eq!(o.plan(2, 0, 10), 1..10, "walking on");
        // Interleaved directories keep their own places.
        assert_eq!(o.plan(1, 2, 10), 0..0, "dir 1 was read ahead to its end");
        assert_eq!(o.plan(2, 1, 10), 0..0);
        // A lone read elsewhere ends the walk.
        o.plan(3, 40, 100);
        assert!(o.plan(4, 0, 10).is_empty());
    }

    #[test]
    fn warming_a_fifo_or_a_missing_file_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let missing = dir.path().join("missing");
        // Opening a FIFO for reading would wait for a writer forever without O_NONBLOCK.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            warm(&fifo);
            warm(&missing);
            let _ = done.send(());
        });
        assert!(
            finished
                .recv_timeout(std::time::Duration::from_secs(5))
                .is_ok(),
            "warming a FIFO blocked"
        );
    }
}
