//! What the overlay keeps of the session's rows: claims, whiteouts, origins, base dirs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::Overlay;
use super::nodes::Node;
use super::whiteouts::Whiteouts;
use crate::vfs::{Ino, VfsResult};

/// Answers of [`Vfs::base_path_of`](crate::vfs::Vfs::base_path_of). They change only when a
/// directory moves or turns opaque, here (which clears them) or in another process
/// (`forget_cached_rows`). The epoch keeps an answer worked out before such a change from
/// being kept after it.
#[derive(Default)]
pub(super) struct BaseDirs {
    epoch: u64,
    known: HashMap<Ino, Option<Vec<u8>>>,
}

/// Delta directories whose base directory is kept; past this the answers are dropped.
const MAX_BASE_DIRS: usize = 65_536;

impl Overlay {
    pub(super) fn claimed(&self) -> VfsResult<Arc<HashSet<u64>>> {
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

    /// Drops the kept base directories (a directory moved or turned opaque).
    pub(super) fn forget_base_dirs(&self) {
        let mut dirs = self.base_dirs.lock().unwrap_or_else(|e| e.into_inner());
        dirs.epoch += 1;
        dirs.known.clear();
    }

    /// Runs `f` on the session's whiteouts, read once and then kept.
    pub(super) fn with_whiteouts<T>(&self, f: impl FnOnce(&Whiteouts) -> T) -> VfsResult<T> {
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
    pub(super) fn whited_out(&self, path: &[u8]) -> VfsResult<bool> {
        self.with_whiteouts(|w| w.contains(path))
    }

    /// Records a whiteout change in the cache too (when it is loaded).
    pub(super) fn note_whiteout(&self, path: &[u8], on: bool) {
        if let Some(w) = self
            .whiteouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            w.set(path, on);
        }
    }

    pub(super) fn set_whiteout(&self, path: &[u8], on: bool) -> VfsResult<()> {
        self.vfs.set_whiteout(path, on)?;
        self.note_whiteout(path, on);
        Ok(())
    }

    pub(super) fn add_claim(&self, base_ino: u64) {
        if let Some(c) = self
            .claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Arc::make_mut(c).insert(base_ino);
        }
    }

    /// The base inode `ino` was copied from, if any (cached, see `origins`).
    pub(super) fn origin_of(&self, ino: Ino) -> VfsResult<Option<u64>> {
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

    /// The base directory a merged directory shows (a path from the base root), if any.
    pub(super) fn base_dir_of(&self, node: &Node) -> VfsResult<Option<Vec<u8>>> {
        if self.layered().is_none() {
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
}
