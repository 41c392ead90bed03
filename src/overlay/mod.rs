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
use std::fs::File;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::readahead::{self, ReadAhead};
use crate::vfs::{
    Attr, CopyUp, Creds, Fh, FileKind, Ino, JournalOp, RenameFlags, SetAttr, StatFs, Vfs, VfsError,
    VfsResult, XattrMode,
};
use host::{BaseStat, absent_as_none, base_attr, io_err, read_at_into};
use whiteouts::Whiteouts;

mod host;
mod whiteouts;

/// Marks node ids of inodes created in the session (not from the base).
pub const DELTA_NODE: u64 = 1 << 62;

/// Marks node ids of base entries whose host inode number a copied-up entry elsewhere still
/// claims (through `fs_origin`): a hard link to a copied file in the base, or a number the host
/// freed (deleting or replacing the copied file) and gave to a new file. Without it the kernel
/// would take the two for one inode and show the session's copy at the new file's name.
pub const BASE_ALIAS: u64 = 1 << 61;

/// Marks node ids of base entries on another filesystem than the base directory (a mount
/// point inside it): their host inode numbers may repeat the base's own, or the root's
/// node id (a tmpfs root is inode 1). Such an entry's id is a hash of its device and inode
/// number, stable while the host keeps both.
pub const FOREIGN_NODE: u64 = 1 << 60;

/// One entry of a merged directory listing.
#[derive(Debug, Clone)]
pub struct OverlayEntry {
    pub name: Vec<u8>,
    pub attr: Attr,
}

/// What a node id stands for.
#[derive(Debug, Clone)]
enum Node {
    /// An inode of the delta.
    Delta(Ino),
    /// A base entry not copied up.
    Base(BaseEntry),
}

/// A base entry not copied up, as found by a lookup or listing.
#[derive(Debug, Clone)]
struct BaseEntry {
    /// Its path from the base root (`/a/b`).
    path: Vec<u8>,
    /// The node id of the merged directory it shows in, and its name there. The directory
    /// may have moved since (a directory moved in the session keeps showing its base
    /// directory), so this, not `path`, says where the entry is in the merged view.
    parent: Ino,
    name: Vec<u8>,
}

/// An open file: the delta's handle, or the host file for a base file only read.
enum Handle {
    Delta(Fh),
    Base(File),
}

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

/// Answers of [`Vfs::base_path_of`]. They change only when a directory moves or turns
/// opaque, here (which clears them) or in another process (`forget_cached_rows`). The
/// epoch keeps an answer worked out before such a change from being kept after it.
#[derive(Default)]
struct BaseDirs {
    epoch: u64,
    known: HashMap<Ino, Option<Vec<u8>>>,
}

/// Delta directories whose base directory is kept; past this the answers are dropped.
const MAX_BASE_DIRS: usize = 65_536;

/// A directory's last listing as read-ahead sees it.
#[derive(Debug)]
struct ListingOrder {
    /// Node ids in listing order, each with whether it is a file read-ahead would warm.
    entries: Vec<(Ino, bool)>,
    /// Where each node is in `entries`, built at the first read in the directory (a
    /// listing only stat'ed never needs it).
    positions: std::sync::OnceLock<HashMap<Ino, usize>>,
}

impl ListingOrder {
    fn position(&self, node: Ino) -> Option<usize> {
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

/// The two ends of a rename: the parent nodes, and the base paths at the old and the new
/// place (where the base has, or had, entries).
struct RenamePlaces {
    parent_node: Node,
    new_parent_node: Node,
    old_base: Option<Vec<u8>>,
    new_base: Option<Vec<u8>>,
}

/// A base entry about to be copied up, as read from the host.
struct CopySource {
    md: BaseStat,
    kind: FileKind,
    target: Option<Vec<u8>>,
    /// The bytes to copy (whole copies only).
    file: Option<File>,
    /// Copied without its bytes (`fs_base_backing`).
    partial: bool,
    /// The hash of the bytes of a small file copied without them.
    hash: Option<[u8; 32]>,
}

/// Listings kept for directories read without a handle (see [`Overlay::snapshot`]).
const UNOPENED_LISTINGS_MAX: usize = 256;

/// Directories whose listing order is kept for read-ahead. A tree walker may list a whole
/// tree before it reads the first file (`find -exec cat {} +`); past this many directories
/// the orders start over, which costs read-ahead, not correctness.
const LISTING_ORDERS_MAX: usize = 65_536;

/// Why an entry is copied up: a change of its bytes, or of its metadata or name only (which
/// copies no bytes at all; they stay in the base until they change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyFor {
    Data,
    Metadata,
    /// Truncation to zero (O_TRUNC): no bytes are kept, but a small file's hash is taken so
    /// that writing the same bytes back still counts as no change.
    Emptying,
}

/// Base files at least this large are copied up partially (`fs_base_backing`) for any change;
/// smaller ones only for changes that leave the bytes alone, else whole, which costs little
/// and keeps their bytes readable by any SPEC 0.4 reader.
pub const PARTIAL_COPY_UP_MIN: u64 = 1 << 20;

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
        self.base.is_some()
    }

    fn host(&self, path: &[u8]) -> PathBuf {
        let base = self.base.as_deref().unwrap_or(Path::new("/"));
        base.join(OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path)))
    }

    /// lstat of a base path; `None` if there is nothing there.
    fn base_stat(&self, path: &[u8]) -> VfsResult<Option<BaseStat>> {
        if self.base.is_none() {
            return Ok(None);
        }
        absent_as_none(nix::sys::stat::lstat(&self.host(path)))
    }

    /// Records a base entry found by lookup or listing; returns its attributes under the
    /// node id it gets (its host inode number, marked if a copied-up entry claims that).
    fn remember(&self, md: &BaseStat, entry: BaseEntry) -> VfsResult<Attr> {
        let id = self.base_id(md);
        let node = if self.claimed()?.contains(&id) {
            id | BASE_ALIAS
        } else {
            id
        };
        self.base_paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node, entry);
        let mut attr = base_attr(md);
        attr.ino = Ino(node);
        Ok(attr)
    }

    /// The number that identifies a base entry (its node id unless claimed, and the
    /// `fs_origin.base_ino` of its copy): its host inode number, or for an entry on another
    /// filesystem than the base directory a `FOREIGN_NODE` id.
    fn base_id(&self, md: &BaseStat) -> u64 {
        if md.dev == self.base_dev && md.ino != Ino::ROOT.0 {
            return md.ino;
        }
        // splitmix64 of device and inode: deterministic across processes and remounts.
        let mut z = md.dev.rotate_left(32) ^ md.ino;
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        FOREIGN_NODE | (z & (FOREIGN_NODE - 1))
    }

    fn claimed(&self) -> VfsResult<Arc<HashSet<u64>>> {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = claimed.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.vfs.origin_base_inos()?);
        *claimed = Some(c.clone());
        Ok(c)
    }

    /// Forgets what was read of the session's origins and whiteouts (another process changed
    /// the session).
    pub fn forget_cached_rows(&self) {
        *self.claimed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.whiteouts.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.forget_base_dirs();
    }

    /// Runs a change made of several steps (copy-ups, the change, whiteouts) as one
    /// transaction. If it fails, what the caches learnt from its rolled-back steps goes too.
    fn atomically<T>(&self, f: impl FnOnce() -> VfsResult<T>) -> VfsResult<T> {
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

    /// Drops the kept base directories (a directory moved or turned opaque).
    fn forget_base_dirs(&self) {
        let mut dirs = self.base_dirs.lock().unwrap_or_else(|e| e.into_inner());
        dirs.epoch += 1;
        dirs.known.clear();
    }

    /// Runs `f` on the session's whiteouts, read once and then kept.
    fn with_whiteouts<T>(&self, f: impl FnOnce(&Whiteouts) -> T) -> VfsResult<T> {
        let mut cached = self.whiteouts.lock().unwrap_or_else(|e| e.into_inner());
        if cached.is_none() {
            let mut w = Whiteouts::default();
            for path in self.vfs.all_whiteouts()? {
                w.set(&path, true);
            }
            *cached = Some(w);
        }
        Ok(f(cached.as_ref().expect("loaded above")))
    }

    /// Whether base path `path` is whited out.
    fn whited_out(&self, path: &[u8]) -> VfsResult<bool> {
        self.with_whiteouts(|w| w.contains(path))
    }

    /// Records a whiteout change in the cache too (when it is loaded).
    fn note_whiteout(&self, path: &[u8], on: bool) {
        if let Some(w) = self
            .whiteouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            w.set(path, on);
        }
    }

    fn set_whiteout(&self, path: &[u8], on: bool) -> VfsResult<()> {
        self.vfs.set_whiteout(path, on)?;
        self.note_whiteout(path, on);
        Ok(())
    }

    fn add_claim(&self, base_ino: u64) {
        if let Some(c) = self
            .claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Arc::make_mut(c).insert(base_ino);
        }
    }

    fn resolve(&self, node: Ino) -> VfsResult<Node> {
        if self.base.is_none() || node == Ino::ROOT {
            return Ok(Node::Delta(node));
        }
        if node.0 & DELTA_NODE != 0 {
            return Ok(Node::Delta(Ino(node.0 & !DELTA_NODE)));
        }
        let base_ino = node.0;
        if node.0 & BASE_ALIAS == 0
            && self.claimed()?.contains(&base_ino)
            && let Some(d) = self.vfs.delta_of_base(base_ino)?
        {
            return Ok(Node::Delta(d));
        }
        let path = self
            .base_paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&base_ino)
            .cloned();
        path.map(Node::Base).ok_or(VfsError::NotFound)
    }

    /// A delta attribute, addressed by its node id (base-origin inodes keep the base's).
    /// The base inode `ino` was copied from, if any (cached, see `origins`).
    fn origin_of(&self, ino: Ino) -> VfsResult<Option<u64>> {
        if let Some(known) = self
            .origins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ino)
        {
            return Ok(*known);
        }
        let origin = self.vfs.origin_of(ino)?;
        self.origins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ino, origin);
        Ok(origin)
    }

    /// [`Overlay::delta_attr`] of an inode just created: it has no origin, which is noted
    /// first so that no query asks.
    fn created_attr(&self, attr: Attr) -> VfsResult<Attr> {
        self.origins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(attr.ino, None);
        self.delta_attr(attr)
    }

    fn delta_attr(&self, mut attr: Attr) -> VfsResult<Attr> {
        // A directory merged with a base directory has subdirectories on both sides: its
        // link count is not known without listing it, so it says 1, as overlayfs does,
        // which tells tools such as find not to count on it.
        if attr.kind == FileKind::Dir && self.base_dir_of(&Node::Delta(attr.ino))?.is_some() {
            attr.nlink = 1;
        }
        if self.base.is_some() && attr.ino != Ino::ROOT {
            attr.ino = match self.origin_of(attr.ino)? {
                Some(b) => Ino(b),
                None => Ino(attr.ino.0 | DELTA_NODE),
            };
        }
        Ok(attr)
    }

    /// The node id the kernel knows a delta inode by.
    pub fn node_id(&self, ino: Ino) -> Ino {
        if self.base.is_none() || ino == Ino::ROOT {
            return ino;
        }
        match self.origin_of(ino) {
            Ok(Some(b)) => Ino(b),
            _ => Ino(ino.0 | DELTA_NODE),
        }
    }

    /// The merged-view path of a node.
    fn path_of(&self, node: &Node) -> VfsResult<Vec<u8>> {
        match node {
            Node::Delta(d) => self.vfs.path_of(*d)?.ok_or(VfsError::NotFound),
            Node::Base(b) => Ok(join(&self.path_of(&self.resolve(b.parent)?)?, &b.name)),
        }
    }

    /// The base directory a merged directory shows (a path from the base root), if any.
    fn base_dir_of(&self, node: &Node) -> VfsResult<Option<Vec<u8>>> {
        if self.base.is_none() {
            return Ok(None);
        }
        let d = match node {
            Node::Delta(d) => *d,
            Node::Base(b) => return Ok(Some(b.path.clone())),
        };
        let epoch = {
            let dirs = self.base_dirs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(known) = dirs.known.get(&d) {
                return Ok(known.clone());
            }
            dirs.epoch
        };
        let path = self.vfs.base_path_of(d)?;
        let mut dirs = self.base_dirs.lock().unwrap_or_else(|e| e.into_inner());
        if dirs.epoch == epoch {
            if dirs.known.len() >= MAX_BASE_DIRS {
                dirs.known.clear();
            }
            dirs.known.insert(d, path.clone());
        }
        Ok(path)
    }

    // ----- lookups ------------------------------------------------------------------------

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> VfsResult<Attr> {
        if self.base.is_none() {
            return self.vfs.lookup(parent, name);
        }
        let parent_node = self.resolve(parent)?;
        if let Node::Delta(d) = &parent_node {
            match self.vfs.lookup(*d, name) {
                Ok(a) => return self.delta_attr(a),
                Err(VfsError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let Some(dir_path) = self.base_dir_of(&parent_node)? else {
            return Err(VfsError::NotFound);
        };
        let path = join(&dir_path, name);
        if self.whited_out(&path)? {
            return Err(VfsError::NotFound);
        }
        match self.base_stat(&path)? {
            Some(md) => self.remember(
                &md,
                BaseEntry {
                    path,
                    parent,
                    name: name.to_vec(),
                },
            ),
            None => Err(VfsError::NotFound),
        }
    }

    pub fn getattr(&self, ino: Ino) -> VfsResult<Attr> {
        match self.resolve(ino)? {
            Node::Delta(d) => self.delta_attr(self.vfs.getattr(d)?),
            Node::Base(b) => self
                .base_stat(&b.path)?
                .map(|md| Attr {
                    ino,
                    ..base_attr(&md)
                })
                .ok_or(VfsError::NotFound),
        }
    }

    pub fn readlink(&self, ino: Ino) -> VfsResult<Vec<u8>> {
        match self.resolve(ino)? {
            Node::Delta(d) => self.vfs.readlink(d),
            Node::Base(b) => std::fs::read_link(self.host(&b.path))
                .map(|t| t.into_os_string().into_vec())
                .map_err(|e| {
                    if e.raw_os_error() == Some(libc::EINVAL) {
                        VfsError::NotSymlink
                    } else {
                        io_err(e)
                    }
                }),
        }
    }

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
            && self.base.is_some()
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

    /// The parent directory's node id, for "..".
    /// Whether node `node` is directory `dir` or lies below it.
    fn is_within(&self, mut node: Ino, dir: Ino) -> VfsResult<bool> {
        loop {
            if node == dir {
                return Ok(true);
            }
            if node == Ino::ROOT {
                return Ok(false);
            }
            node = self.parent_of(node)?;
        }
    }

    pub fn parent_of(&self, dir: Ino) -> VfsResult<Ino> {
        match self.resolve(dir)? {
            Node::Delta(d) => {
                let p = self.vfs.parent_of(d)?;
                Ok(self.delta_attr(self.vfs.getattr(p)?)?.ino)
            }
            Node::Base(b) => Ok(b.parent),
        }
    }

    // ----- copy-up ------------------------------------------------------------------------

    /// The delta inode of `node`, copying it (and its parents) up from the base first.
    fn copy_up(&self, node: &Node) -> VfsResult<Ino> {
        self.copy_up_for(node, CopyFor::Data)
    }

    /// Like [`Overlay::copy_up`], for a change that leaves the bytes alone.
    fn copy_up_for(&self, node: &Node, reason: CopyFor) -> VfsResult<Ino> {
        self.copy_up_then_write(node, reason, None)
    }

    /// Copies `node` up, with the base directories above it that the delta lacks, in one
    /// transaction; and makes the write `then_write` into it in that transaction when the
    /// write is what needed the copy.
    fn copy_up_then_write(
        &self,
        node: &Node,
        reason: CopyFor,
        then_write: Option<(u64, &[u8])>,
    ) -> VfsResult<Ino> {
        let entry = match node {
            Node::Delta(d) => return Ok(*d),
            Node::Base(b) => b,
        };
        // The entry and its base ancestors, up to the first directory in the delta.
        let mut chain = vec![entry.clone()];
        let top = loop {
            let parent = chain.last().map_or(Ino::ROOT, |e| e.parent);
            match self.resolve(parent)? {
                Node::Delta(d) => break d,
                Node::Base(b) => chain.push(b),
            }
        };
        chain.reverse();
        let last = chain.len() - 1;
        let mut sources = chain
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let why = if i == last { reason } else { CopyFor::Data };
                self.copy_source(&e.path, why)
            })
            .collect::<VfsResult<Vec<CopySource>>>()?;
        let copies = chain
            .iter()
            .zip(sources.iter_mut())
            .enumerate()
            .map(|(i, (e, src))| {
                let md = &src.md;
                let copy = CopyUp {
                    kind: src.kind,
                    perm: md.mode & 0o7777,
                    uid: md.uid,
                    gid: md.gid,
                    rdev: md.rdev as u32,
                    atime: md.atime,
                    mtime: md.mtime,
                    symlink_target: src.target.as_deref(),
                    data: src.file.as_mut().map(|f| f as &mut dyn std::io::Read),
                    base_ino: self.base_id(md),
                    base_path: &e.path,
                    size: md.size,
                    backed_by_base: src.partial,
                    base_hash: src.hash,
                    then_write: then_write.filter(|_| i == last),
                };
                (&e.name[..], copy)
            })
            .collect();
        let attr = self.vfs.copy_up(top, copies)?;
        for src in &sources {
            self.add_claim(self.base_id(&src.md));
        }
        Ok(attr.ino)
    }

    /// What copying base entry `path` up takes from the host.
    fn copy_source(&self, path: &[u8], reason: CopyFor) -> VfsResult<CopySource> {
        let md = self.base_stat(path)?.ok_or(VfsError::NotFound)?;
        let kind = FileKind::from_mode(md.mode).unwrap_or(FileKind::File);
        let target = if kind == FileKind::Symlink {
            Some(
                std::fs::read_link(self.host(path))
                    .map_err(io_err)?
                    .into_os_string()
                    .into_vec(),
            )
        } else {
            None
        };
        // A large file is copied up partially: its bytes stay in the base until they
        // change, so editing a little of it costs little. Nor is it read to be hashed:
        // its recorded size and mtime (which the base must keep) identify it.
        let partial =
            kind == FileKind::File && (reason != CopyFor::Data || md.size >= PARTIAL_COPY_UP_MIN);
        let file = if kind == FileKind::File && !partial {
            Some(File::open(self.host(path)).map_err(io_err)?)
        } else {
            None
        };
        let hash = if kind == FileKind::File
            && reason == CopyFor::Emptying
            && md.size < PARTIAL_COPY_UP_MIN
        {
            let mut hasher = blake3::Hasher::new();
            hasher
                .update_reader(File::open(self.host(path)).map_err(io_err)?)
                .map_err(io_err)?;
            Some(*hasher.finalize().as_bytes())
        } else {
            None
        };
        Ok(CopySource {
            md,
            kind,
            target,
            file,
            partial,
            hash,
        })
    }

    /// Whether `name` exists in the merged directory `parent`.
    fn exists(&self, parent: Ino, name: &[u8]) -> VfsResult<Option<Attr>> {
        match self.lookup(parent, name) {
            Ok(a) => Ok(Some(a)),
            Err(VfsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Before creating `name` in `parent`: the delta parent, with a whiteout at that path
    /// lifted (a recreated base directory then hides the old one's children).
    fn prepare_create(&self, parent: Ino, name: &[u8]) -> VfsResult<(Ino, bool)> {
        let node = self.resolve(parent)?;
        if self.exists(parent, name)?.is_some() {
            return Err(VfsError::Exists);
        }
        let d = self.copy_up(&node)?;
        let Some(dir_path) = self.base_dir_of(&Node::Delta(d))? else {
            return Ok((d, false));
        };
        let path = join(&dir_path, name);
        let was_whiteout = self.whited_out(&path)?;
        if was_whiteout {
            self.set_whiteout(&path, false)?;
        }
        Ok((d, was_whiteout))
    }

    // ----- creating and removing ----------------------------------------------------------

    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        perm: u32,
        creds: Creds,
    ) -> VfsResult<(Attr, Fh)> {
        if self.base.is_none() {
            return self.vfs.create(parent, name, perm, creds);
        }
        let (attr, fh) = self.atomically(|| {
            let (d, _) = self.prepare_create(parent, name)?;
            self.vfs.create(d, name, perm, creds)
        })?;
        Ok((self.created_attr(attr)?, self.add_handle(Handle::Delta(fh))))
    }

    pub fn mknod(
        &self,
        parent: Ino,
        name: &[u8],
        kind: FileKind,
        perm: u32,
        rdev: u32,
        creds: Creds,
    ) -> VfsResult<Attr> {
        if self.base.is_none() {
            return self.vfs.mknod(parent, name, kind, perm, rdev, creds);
        }
        let attr = self.atomically(|| {
            let (d, _) = self.prepare_create(parent, name)?;
            self.vfs.mknod(d, name, kind, perm, rdev, creds)
        })?;
        self.created_attr(attr)
    }

    pub fn mkdir(&self, parent: Ino, name: &[u8], perm: u32, creds: Creds) -> VfsResult<Attr> {
        if self.base.is_none() {
            return self.vfs.mkdir(parent, name, perm, creds);
        }
        let attr = self.atomically(|| {
            let (d, was_whiteout) = self.prepare_create(parent, name)?;
            let attr = self.vfs.mkdir(d, name, perm, creds)?;
            if was_whiteout {
                self.vfs.set_opaque(attr.ino)?;
                self.forget_base_dirs();
            }
            Ok(attr)
        })?;
        self.created_attr(attr)
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        creds: Creds,
    ) -> VfsResult<Attr> {
        if self.base.is_none() {
            return self.vfs.symlink(parent, name, target, creds);
        }
        let attr = self.atomically(|| {
            let (d, _) = self.prepare_create(parent, name)?;
            self.vfs.symlink(d, name, target, creds)
        })?;
        self.created_attr(attr)
    }

    pub fn link(&self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> VfsResult<Attr> {
        if self.base.is_none() {
            return self.vfs.link(ino, new_parent, new_name);
        }
        let attr = self.atomically(|| {
            let src = self.copy_up_for(&self.resolve(ino)?, CopyFor::Metadata)?;
            let (d, _) = self.prepare_create(new_parent, new_name)?;
            self.vfs.link(src, d, new_name)
        })?;
        self.delta_attr(attr)
    }

    /// Removes `name` from the merged view: the delta entry if any, and a whiteout if the
    /// base has that path.
    fn remove(&self, parent: Ino, name: &[u8], dir: bool) -> VfsResult<()> {
        let target = self.exists(parent, name)?.ok_or(VfsError::NotFound)?;
        let is_dir = target.kind == FileKind::Dir;
        if dir && !is_dir {
            return Err(VfsError::NotDir);
        }
        if !dir && is_dir {
            return Err(VfsError::IsDir);
        }
        if dir && !self.list(target.ino)?.is_empty() {
            return Err(VfsError::NotEmpty);
        }
        let parent_node = self.resolve(parent)?;
        let base_path = self.base_dir_of(&parent_node)?.map(|p| join(&p, name));
        let mut journaled = false;
        if let Node::Delta(d) = parent_node {
            match if dir {
                self.vfs.rmdir(d, name)
            } else {
                self.vfs.unlink(d, name)
            } {
                Ok(()) => journaled = true,
                Err(VfsError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(path) = base_path
            && self.base_stat(&path)?.is_some()
        {
            if journaled {
                self.set_whiteout(&path, true)?;
            } else {
                let op = if dir {
                    JournalOp::Rmdir
                } else {
                    JournalOp::Unlink
                };
                let shown_at = join(&self.path_of(&parent_node)?, name);
                self.vfs.delete_base_path(&path, &shown_at, op)?;
                self.note_whiteout(&path, true);
            }
        }
        Ok(())
    }

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> VfsResult<()> {
        if self.base.is_none() {
            return self.vfs.unlink(parent, name);
        }
        self.atomically(|| self.remove(parent, name, false))
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> VfsResult<()> {
        if self.base.is_none() {
            return self.vfs.rmdir(parent, name);
        }
        self.atomically(|| self.remove(parent, name, true))
    }

    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> VfsResult<()> {
        if self.base.is_none() {
            return self.vfs.rename(parent, name, new_parent, new_name, flags);
        }
        let moved = self.atomically(|| {
            if flags.exchange {
                self.exchange(parent, name, new_parent, new_name, flags)
            } else {
                self.move_entry(parent, name, new_parent, new_name, flags)
            }
        });
        // Whatever moved (or turned opaque) may change the base directory a delta one shows.
        self.forget_base_dirs();
        moved
    }

    /// A rename that is not an exchange.
    fn move_entry(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> VfsResult<()> {
        let src = self.exists(parent, name)?.ok_or(VfsError::NotFound)?;
        let dst = self.exists(new_parent, new_name)?;
        if dst.is_some() && flags.noreplace {
            return Err(VfsError::Exists);
        }
        // As the kernel checks between two directories, before the kinds: a directory
        // cannot go below itself, nor anything replace a directory it lies below.
        let across = parent != new_parent;
        if across && src.kind == FileKind::Dir && self.is_within(new_parent, src.ino)? {
            return Err(VfsError::Invalid);
        }
        if let Some(d) = &dst {
            if across && d.kind == FileKind::Dir && self.is_within(parent, d.ino)? {
                return Err(VfsError::NotEmpty);
            }
            if d.ino == src.ino {
                // Both names are one file: rename(2) does nothing.
                return Ok(());
            }
            match (src.kind == FileKind::Dir, d.kind == FileKind::Dir) {
                (true, false) => return Err(VfsError::NotDir),
                (false, true) => return Err(VfsError::IsDir),
                (true, true) if !self.list(d.ino)?.is_empty() => return Err(VfsError::NotEmpty),
                _ => {}
            }
        }
        let RenamePlaces {
            parent_node,
            new_parent_node,
            old_base,
            new_base,
        } = self.rename_places(parent, name, new_parent, new_name)?;
        // A directory copied up from the base keeps showing its base directory wherever it
        // goes (`fs_base_identity` says which), so moving one moves its base children too.
        let moved = self.copy_up_for(&self.resolve(src.ino)?, CopyFor::Metadata)?;
        let from_dir = self.copy_up(&parent_node)?;
        let to_dir = self.copy_up(&new_parent_node)?;
        self.vfs.rename(from_dir, name, to_dir, new_name, flags)?;
        if let Some(nb) = &new_base
            && self.whited_out(nb)?
        {
            self.set_whiteout(nb, false)?;
        }
        self.hide_base_under(moved, src.kind, new_base.as_deref())?;
        if let Some(ob) = &old_base
            && self.base_stat(ob)?.is_some()
        {
            self.set_whiteout(ob, true)?;
        }
        Ok(())
    }

    /// The two ends of a rename.
    fn rename_places(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
    ) -> VfsResult<RenamePlaces> {
        let parent_node = self.resolve(parent)?;
        let new_parent_node = self.resolve(new_parent)?;
        let old_base = self.base_dir_of(&parent_node)?.map(|p| join(&p, name));
        let new_base = self
            .base_dir_of(&new_parent_node)?
            .map(|p| join(&p, new_name));
        Ok(RenamePlaces {
            parent_node,
            new_parent_node,
            old_base,
            new_base,
        })
    }

    /// rename(2) with RENAME_EXCHANGE: both entries are copied up (without their bytes) and
    /// swapped in the delta. Both names stay, so no whiteout changes; a directory made in
    /// the session that lands where the base has a directory becomes opaque, as in a move.
    fn exchange(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> VfsResult<()> {
        let a = self.exists(parent, name)?.ok_or(VfsError::NotFound)?;
        let b = self
            .exists(new_parent, new_name)?
            .ok_or(VfsError::NotFound)?;
        let RenamePlaces {
            parent_node,
            new_parent_node,
            old_base,
            new_base,
        } = self.rename_places(parent, name, new_parent, new_name)?;
        let a_delta = self.copy_up_for(&self.resolve(a.ino)?, CopyFor::Metadata)?;
        let b_delta = self.copy_up_for(&self.resolve(b.ino)?, CopyFor::Metadata)?;
        let from_dir = self.copy_up(&parent_node)?;
        let to_dir = self.copy_up(&new_parent_node)?;
        self.vfs.rename(from_dir, name, to_dir, new_name, flags)?;
        self.hide_base_under(a_delta, a.kind, new_base.as_deref())?;
        self.hide_base_under(b_delta, b.kind, old_base.as_deref())
    }

    /// After delta entry `moved` landed at base path `lands_at`: a directory made in the
    /// session shows the base directory at its path, so over one it becomes opaque and does
    /// not show that one's children.
    fn hide_base_under(
        &self,
        moved: Ino,
        kind: FileKind,
        lands_at: Option<&[u8]>,
    ) -> VfsResult<()> {
        if kind == FileKind::Dir
            && let Some(path) = lands_at
            && self.origin_of(moved)?.is_none()
            && self.base_stat(path)?.is_some()
        {
            self.vfs.set_opaque(moved)?;
        }
        Ok(())
    }

    // ----- attributes and data ------------------------------------------------------------

    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> VfsResult<Attr> {
        if self.base.is_none() {
            return self.vfs.setattr(ino, set);
        }
        let reason = match set.size {
            Some(0) => CopyFor::Emptying,
            Some(_) => CopyFor::Data,
            None => CopyFor::Metadata,
        };
        let attr = self.atomically(|| {
            let d = self.copy_up_for(&self.resolve(ino)?, reason)?;
            self.vfs.setattr(d, set)
        })?;
        self.delta_attr(attr)
    }

    fn next_handle(&self) -> u64 {
        let mut n = self.next_fh.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        *n
    }

    fn add_handle(&self, h: Handle) -> Fh {
        let fh = self.next_handle();
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, h);
        Fh(fh)
    }

    /// Opens a file; `write` copies a base file up first (reading never does).
    pub fn open(&self, ino: Ino, write: bool) -> VfsResult<Fh> {
        if self.base.is_none() {
            return self.vfs.open(ino);
        }
        let node = self.resolve(ino)?;
        let handle = match (&node, write) {
            (Node::Base(b), false) => {
                if self.base_stat(&b.path)?.is_some_and(|m| m.is_dir()) {
                    return Err(VfsError::IsDir);
                }
                Handle::Base(File::open(self.host(&b.path)).map_err(io_err)?)
            }
            _ => Handle::Delta(self.vfs.open(self.copy_up(&node)?)?),
        };
        Ok(self.add_handle(handle))
    }

    /// For an open handle of an untouched base file: that host file, so the kernel can read
    /// it directly (FUSE passthrough).
    pub fn base_file_of(&self, fh: Fh) -> Option<File> {
        match self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
        {
            Some(Handle::Base(f)) => f.try_clone().ok(),
            _ => None,
        }
    }

    pub fn read(&self, fh: Fh, offset: u64, len: u32) -> VfsResult<Vec<u8>> {
        if self.base.is_none() {
            return self.vfs.read(fh, offset, len);
        }
        let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        match handles.get(&fh.0) {
            Some(Handle::Delta(d)) => {
                let d = *d;
                drop(handles);
                self.vfs.read(d, offset, len)
            }
            Some(Handle::Base(f)) => {
                let mut buf = Vec::new();
                read_at_into(f, offset, len, &mut buf)?;
                Ok(buf)
            }
            None => Err(VfsError::BadHandle),
        }
    }

    pub fn write(&self, fh: Fh, offset: u64, buf: &[u8]) -> VfsResult<u32> {
        if self.base.is_none() {
            return self.vfs.write(fh, offset, buf);
        }
        let d = match self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
        {
            Some(Handle::Delta(d)) => *d,
            Some(Handle::Base(_)) => return Err(VfsError::BadHandle),
            None => return Err(VfsError::BadHandle),
        };
        self.vfs.write(d, offset, buf)
    }

    /// Reads node `ino` without a handle (the kernel opens files without asking us): the
    /// delta's bytes, or the host file's for an untouched base file.
    pub fn read_node(&self, ino: Ino, offset: u64, len: u32, out: &mut Vec<u8>) -> VfsResult<()> {
        match self.resolve(ino)? {
            Node::Delta(d) => {
                *out = self.vfs.read_ino(d, offset, len)?;
                Ok(())
            }
            Node::Base(b) => {
                if offset == 0 {
                    self.read_ahead_after(ino, &b);
                }
                let file = File::open(self.host(&b.path)).map_err(io_err)?;
                read_at_into(&file, offset, len, out)
            }
        }
    }

    /// A base file starts being read: if its directory is being read in listing order, has
    /// the next small base files read into the host's cache (see `readahead`).
    fn read_ahead_after(&self, node: Ino, entry: &BaseEntry) {
        let order = self
            .listing_orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&entry.parent)
            .cloned();
        let Some(order) = order else { return };
        let Some(at) = order.position(node) else {
            return;
        };
        let read_ahead = self.read_ahead.get_or_init(ReadAhead::new);
        let entries = &order.entries;
        for &(next, worth) in &entries[read_ahead.plan(entry.parent.0, at, entries.len())] {
            if worth && let Ok(Node::Base(b)) = self.resolve(next) {
                read_ahead.warm(self.host(&b.path));
            }
        }
    }

    /// Writes into node `ino` without a handle, copying a base file up first.
    pub fn write_node(&self, ino: Ino, offset: u64, buf: &[u8]) -> VfsResult<u32> {
        match self.resolve(ino)? {
            Node::Delta(d) => self.vfs.write_unopened(d, offset, buf),
            base => {
                self.copy_up_then_write(&base, CopyFor::Data, Some((offset, buf)))?;
                Ok(buf.len() as u32)
            }
        }
    }

    /// The kernel dropped these nodes; files among them that lost their last link go now.
    pub fn forget(&self, nodes: &[Ino]) -> VfsResult<()> {
        // Only orphans need the node resolved; most forgets are of files that still have
        // their names.
        if !self.vfs.has_orphans() {
            return Ok(());
        }
        let inos: Vec<Ino> = nodes
            .iter()
            .filter_map(|n| match self.resolve(*n) {
                Ok(Node::Delta(d)) => Some(d),
                _ => None,
            })
            .collect();
        self.vfs.forget(&inos)
    }

    pub fn release(&self, fh: Fh) -> VfsResult<()> {
        if self.base.is_none() {
            return self.vfs.release(fh);
        }
        match self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0)
        {
            Some(Handle::Delta(d)) => self.vfs.release(d),
            Some(Handle::Base(_)) => Ok(()),
            None => Err(VfsError::BadHandle),
        }
    }

    pub fn fallocate(&self, ino: Ino, offset: u64, len: u64, mode: i32) -> VfsResult<()> {
        self.atomically(|| {
            let d = self.copy_up(&self.resolve(ino)?)?;
            self.vfs.fallocate(d, offset, len, mode)
        })
    }

    pub fn fsync(&self) -> VfsResult<()> {
        self.vfs.fsync()
    }

    pub fn statfs(&self) -> VfsResult<StatFs> {
        self.vfs.statfs()
    }

    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode) -> VfsResult<()> {
        self.atomically(|| {
            let d = self.copy_up_for(&self.resolve(ino)?, CopyFor::Metadata)?;
            self.vfs.setxattr(d, name, value, mode)
        })
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> VfsResult<Vec<u8>> {
        match self.resolve(ino)? {
            Node::Delta(d) => self.vfs.getxattr(d, name),
            Node::Base(_) => Err(VfsError::NoAttr),
        }
    }

    pub fn listxattr(&self, ino: Ino) -> VfsResult<Vec<Vec<u8>>> {
        match self.resolve(ino)? {
            Node::Delta(d) => self.vfs.listxattr(d),
            Node::Base(_) => Ok(Vec::new()),
        }
    }

    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> VfsResult<()> {
        match self.resolve(ino)? {
            Node::Delta(d) => self.vfs.removexattr(d, name),
            Node::Base(_) => Err(VfsError::NoAttr),
        }
    }
}
