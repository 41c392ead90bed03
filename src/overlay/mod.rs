//! The copy-on-write overlay: a host directory (the base, never written) under the session's
//! delta. Lookups go delta entry, then whiteout, then base entry (SPEC 0.4); reads of
//! untouched base files go straight to the host; the first change to a base entry copies it
//! (and its parent directories) into the delta.
//!
//! Node ids (which are also the inode numbers programs see): anything that came from the base
//! is addressed by its host st_ino, before and after copy-up (`fs_origin` maps it to the delta
//! copy), so inode numbers stay stable and match the host's (git's index finds its files
//! unchanged). Inodes created in the session are `DELTA_NODE | ino`; the root is 1. Without a
//! base, every call goes straight to the core and node ids are plain inos.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::readahead::ReadAhead;
use crate::vfs::{Ino, Vfs, VfsError, VfsResult};
use caches::BaseDirs;
use host::{BaseStat, absent_as_none};
use io::Handle;
use listing::ListingOrder;
use nodes::BaseEntry;
use whiteouts::Whiteouts;

mod attr;
mod caches;
mod copy_up;
mod host;
mod io;
mod listing;
mod lookup;
mod namespace;
mod nodes;
mod rename;
mod whiteouts;

pub use copy_up::PARTIAL_COPY_UP_MIN;
pub use listing::OverlayEntry;
pub use nodes::{BASE_ALIAS, DELTA_NODE, FOREIGN_NODE};

/// A session with an optional base directory, as served to the kernel.
pub struct Overlay {
    vfs: Arc<Vfs>,
    base: Option<PathBuf>,
    /// The device of the base directory (see [`FOREIGN_NODE`]).
    base_dev: u64,
    /// Base st_ino -> the base entry, learned at lookup.
    base_paths: Mutex<HashMap<u64, BaseEntry>>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: Mutex<u64>,
    /// Delta ino -> base ino it was copied from (or none). An inode's origin is written with
    /// the inode and never changes, so answers can be kept: this saves a query per attribute.
    origins: Mutex<HashMap<Ino, Option<u64>>>,
    /// Directory snapshots for readdir, per open directory handle (taken at first use).
    listings: Mutex<HashMap<u64, Option<Arc<[OverlayEntry]>>>>,
    /// The same for directories read without a handle, per directory.
    unopened_listings: Mutex<HashMap<Ino, Arc<[OverlayEntry]>>>,
    /// Host inode numbers that delta entries were copied from (`fs_origin`), read once and
    /// kept up to date by copy-ups here; dropped when another process changes the session.
    claimed: Mutex<Option<Arc<HashSet<u64>>>>,
    /// The whited-out base paths (`fs_whiteout`), the same way: a lookup or listing of a
    /// base directory then asks no query.
    whiteouts: Mutex<Option<Whiteouts>>,
    /// Warms the host's cache for base files about to be read (started at the first read).
    read_ahead: std::sync::OnceLock<ReadAhead>,
    /// Per directory, the order of its last listing: reading in this order is what
    /// read-ahead looks for.
    listing_orders: Mutex<HashMap<Ino, Arc<ListingOrder>>>,
    /// The base directory each delta directory shows, which takes a query per level to work
    /// out and is asked at every lookup and create in it.
    base_dirs: Mutex<BaseDirs>,
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl Overlay {
    /// Serves `vfs`; with `base`, as an overlay over that host directory.
    pub fn new(vfs: Arc<Vfs>, base: Option<PathBuf>) -> Overlay {
        let base_dev = base
            .as_deref()
            .and_then(|b| std::fs::metadata(b).ok())
            .map_or(0, |m| m.dev());
        Overlay {
            vfs,
            base,
            base_dev,
            base_paths: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: Mutex::new(1),
            origins: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            unopened_listings: Mutex::new(HashMap::new()),
            claimed: Mutex::new(None),
            whiteouts: Mutex::new(None),
            read_ahead: std::sync::OnceLock::new(),
            listing_orders: Mutex::new(HashMap::new()),
            base_dirs: Mutex::new(BaseDirs::default()),
        }
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    pub fn has_base(&self) -> bool {
        self.layered().is_some()
    }

    /// The base directory, if the session has one: the one place that says whether this
    /// overlay is layered over a base or passes everything through to the core.
    fn layered(&self) -> Option<&Path> {
        self.base.as_deref()
    }

    /// The pass-through rule, for every operation that has one: a session without a base is
    /// served by the core itself (`plain`; node ids are then its inos and handles its
    /// handles), one with a base by the merged view (`layered`).
    fn pass_through_or<T>(
        &self,
        plain: impl FnOnce(&Vfs) -> VfsResult<T>,
        layered: impl FnOnce() -> VfsResult<T>,
    ) -> VfsResult<T> {
        match self.layered() {
            None => plain(&self.vfs),
            Some(_) => layered(),
        }
    }

    fn host(&self, path: &[u8]) -> PathBuf {
        let base = self.layered().unwrap_or(Path::new("/"));
        base.join(OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path)))
    }

    /// lstat of a base path; `None` if there is nothing there.
    fn base_stat(&self, path: &[u8]) -> VfsResult<Option<BaseStat>> {
        if self.layered().is_none() {
            return Ok(None);
        }
        absent_as_none(nix::sys::stat::lstat(&self.host(path)))
    }

    /// Runs a change made of several steps (copy-ups, the change, whiteouts) as one
    /// transaction. If it fails, what the caches learnt from its rolled-back steps goes too.
    pub(crate) fn atomically<T, E: From<VfsError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let done = self.vfs.atomically(f);
        if done.is_err() {
            self.forget_cached_rows();
            self.origins
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        done
    }
}
