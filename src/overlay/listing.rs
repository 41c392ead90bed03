//! Merged directory listings, the snapshots readdir serves, and listing order for read-ahead.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::host::{absent_as_none, io_err};
use super::nodes::{BaseEntry, Node};
use super::{Overlay, join};
use crate::readahead;
use crate::vfs::{Attr, FileKind, Ino, VfsResult};

/// One entry of a merged directory listing.
#[derive(Debug, Clone)]
pub struct OverlayEntry {
    pub name: Vec<u8>,
    pub attr: Attr,
}

/// A directory's last listing as read-ahead sees it.
#[derive(Debug)]
pub(super) struct ListingOrder {
    /// Node ids in listing order, each with whether it is a file read-ahead would warm.
    pub(super) entries: Vec<(Ino, bool)>,
    /// Where each node is in `entries`, built at the first read in the directory (a
    /// listing only stat'ed never needs it).
    positions: std::sync::OnceLock<HashMap<Ino, usize>>,
}

impl ListingOrder {
    pub(super) fn position(&self, node: Ino) -> Option<usize> {
        self.positions
            .get_or_init(|| {
                self.entries
                    .iter()
                    .enumerate()
                    .map(|(i, &(n, _))| (n, i))
                    .collect()
            })
            .get(&node)
            .copied()
    }
}

/// Listings kept for directories read without a handle (see [`Overlay::snapshot`]).
const UNOPENED_LISTINGS_MAX: usize = 256;

/// Directories whose listing order is kept for read-ahead. A tree walker may list a whole
/// tree before it reads the first file (`find -exec cat {} +`); past this many directories
/// the orders start over, which costs read-ahead, not correctness.
const LISTING_ORDERS_MAX: usize = 65_536;

impl Overlay {
    /// The merged listing of a directory: delta entries, then base entries that are neither
    /// shadowed by a delta entry nor whited out.
    pub fn list(&self, dir: Ino) -> VfsResult<Vec<OverlayEntry>> {
        let node = self.resolve(dir)?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let base_dir = match &node {
            Node::Delta(d) => {
                let mut after = 0;
                loop {
                    let batch = self.vfs.readdir_plus(*d, after, 1024)?;
                    let Some(last) = batch.last() else { break };
                    after = last.0.offset;
                    for (e, a) in batch {
                        seen.insert(e.name.clone());
                        out.push(OverlayEntry {
                            name: e.name,
                            attr: self.delta_attr(a)?,
                        });
                    }
                }
                self.base_dir_of(&node)?
            }
            Node::Base(b) => Some(b.path.clone()),
        };
        if let Some(dir_path) = base_dir
            && self.layered().is_some()
        {
            let hidden = self.with_whiteouts(|w| w.names_in(&dir_path).cloned())?;
            let mut base_entries = self.base_listing(dir, &dir_path, |name| {
                seen.contains(name) || hidden.as_ref().is_some_and(|h| h.contains(name))
            })?;
            base_entries.sort_by(|a, b| a.name.cmp(&b.name));
            out.extend(base_entries);
        }
        Ok(out)
    }

    /// Keeps the order of `listing`, just given to the kernel for `dir`, for read-ahead.
    fn note_listing_order(&self, dir: Ino, listing: &[OverlayEntry]) {
        let entries = listing
            .iter()
            .map(|e| {
                let a = &e.attr;
                let worth = a.kind == FileKind::File && a.size > 0 && a.size <= readahead::MAX_FILE;
                (a.ino, worth)
            })
            .collect();
        let order = Arc::new(ListingOrder {
            entries,
            positions: std::sync::OnceLock::new(),
        });
        let mut orders = self
            .listing_orders
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if orders.len() >= LISTING_ORDERS_MAX {
            orders.clear();
        }
        orders.insert(dir, order);
    }

    /// The entries of base directory `dir_path` (node `dir`) that `skip` lets through.
    /// Entries are stat'ed relative to the open directory, not by their whole path.
    fn base_listing(
        &self,
        dir: Ino,
        dir_path: &[u8],
        skip: impl Fn(&[u8]) -> bool,
    ) -> VfsResult<Vec<OverlayEntry>> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut listing =
            match nix::dir::Dir::open(&self.host(dir_path), flags, nix::sys::stat::Mode::empty()) {
                Ok(d) => d,
                Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR)
                | Err(nix::errno::Errno::ENAMETOOLONG) => return Ok(Vec::new()),
                Err(e) => return Err(io_err(e.into())),
            };
        let dir_fd = std::os::fd::AsRawFd::as_raw_fd(&listing);
        let mut entries = Vec::new();
        for entry in listing.iter() {
            let entry = entry.map_err(|e| io_err(e.into()))?;
            let name = entry.file_name();
            let name_bytes = name.to_bytes();
            if matches!(name_bytes, b"." | b"..") || skip(name_bytes) {
                continue;
            }
            // SAFETY: `listing` owns this descriptor and outlives the loop.
            let at = unsafe { std::os::fd::BorrowedFd::borrow_raw(dir_fd) };
            let stat = nix::sys::stat::fstatat(at, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
            if let Some(md) = absent_as_none(stat)? {
                let attr = self.remember(
                    &md,
                    BaseEntry {
                        path: join(dir_path, name_bytes),
                        parent: dir,
                        name: name_bytes.to_vec(),
                    },
                )?;
                entries.push(OverlayEntry {
                    name: name_bytes.to_vec(),
                    attr,
                });
            }
        }
        Ok(entries)
    }

    /// Opens a directory for readdir. Its listing is taken at the first readdir (the kernel
    /// may serve a cached listing and never ask), and offsets index into that snapshot.
    pub fn opendir(&self, _dir: Ino) -> VfsResult<u64> {
        let fh = self.next_handle();
        self.listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, None);
        Ok(fh)
    }

    /// The listing of open directory `fh` (directory `dir`), taken at the first call and then
    /// shared, so each readdir request only walks what it sends.
    ///
    /// Directories the kernel opened without asking us (handle 0) are keyed by inode
    /// instead: a listing starting at offset 0 takes a fresh snapshot, later calls continue
    /// in it.
    pub fn snapshot(&self, fh: u64, dir: Ino, offset: u64) -> VfsResult<Arc<[OverlayEntry]>> {
        if fh == 0 {
            return self.unopened_snapshot(dir, offset == 0);
        }
        let taken = self
            .listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
            .flatten();
        if let Some(listing) = taken {
            return Ok(listing);
        }
        let listing: Arc<[OverlayEntry]> = self.list(dir)?.into();
        self.listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Some(listing.clone()));
        Ok(listing)
    }

    fn unopened_snapshot(&self, dir: Ino, fresh: bool) -> VfsResult<Arc<[OverlayEntry]>> {
        if !fresh
            && let Some(listing) = self
                .unopened_listings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&dir)
        {
            return Ok(listing.clone());
        }
        let listing: Arc<[OverlayEntry]> = self.list(dir)?.into();
        // Reads without a handle are the ones read-ahead follows.
        self.note_listing_order(dir, &listing);
        let mut listings = self
            .unopened_listings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Bounded: a listing is only needed until its directory has been read through, and
        // the kernel keeps what it read in its own cache.
        if listings.len() >= UNOPENED_LISTINGS_MAX {
            listings.clear();
        }
        listings.insert(dir, listing.clone());
        Ok(listing)
    }

    pub fn releasedir(&self, fh: u64) {
        self.listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh);
    }
}
