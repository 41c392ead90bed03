//! Node ids: what the id the kernel knows stands for, delta inode or base entry.

use super::host::{BaseStat, base_attr};
use super::{Overlay, join};
use crate::vfs::{Attr, FileKind, Ino, VfsError, VfsResult};

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

/// What a node id stands for.
#[derive(Debug, Clone)]
pub(super) enum Node {
    /// An inode of the delta.
    Delta(Ino),
    /// A base entry not copied up.
    Base(BaseEntry),
}

/// A base entry not copied up, as found by a lookup or listing.
#[derive(Debug, Clone)]
pub(super) struct BaseEntry {
    /// Its path from the base root (`/a/b`).
    pub(super) path: Vec<u8>,
    /// The node id of the merged directory it shows in, and its name there. The directory
    /// may have moved since (a directory moved in the session keeps showing its base
    /// directory), so this, not `path`, says where the entry is in the merged view.
    pub(super) parent: Ino,
    pub(super) name: Vec<u8>,
}

impl Overlay {
    /// Records a base entry found by lookup or listing; returns its attributes under the
    /// node id it gets (its host inode number, marked if a copied-up entry claims that).
    pub(super) fn remember(&self, md: &BaseStat, entry: BaseEntry) -> VfsResult<Attr> {
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
    pub(super) fn base_id(&self, md: &BaseStat) -> u64 {
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

    pub(super) fn resolve(&self, node: Ino) -> VfsResult<Node> {
        if self.layered().is_none() || node == Ino::ROOT {
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

    /// [`Overlay::delta_attr`] of an inode just created: it has no origin, which is noted
    /// first so that no query asks.
    pub(super) fn created_attr(&self, attr: Attr) -> VfsResult<Attr> {
        self.origins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(attr.ino, None);
        self.delta_attr(attr)
    }

    /// A delta attribute, addressed by its node id (base-origin inodes keep the base's).
    pub(super) fn delta_attr(&self, mut attr: Attr) -> VfsResult<Attr> {
        if self.layered().is_none() {
            return Ok(attr);
        }
        let origin = match attr.ino {
            Ino::ROOT => None,
            ino => self.origin_of(ino)?,
        };
        // A directory merged with a base directory (the root, or one copied up from the
        // base, which keeps its origin wherever it moves) has subdirectories on both sides:
        // its link count is not known without listing it, so it says 1, as overlayfs does,
        // which tells tools such as find not to count on it. A directory made in the
        // session counts as usual.
        if attr.kind == FileKind::Dir && (attr.ino == Ino::ROOT || origin.is_some()) {
            attr.nlink = 1;
        }
        if attr.ino != Ino::ROOT {
            attr.ino = origin.map_or(Ino(attr.ino.0 | DELTA_NODE), Ino);
        }
        Ok(attr)
    }

    /// The node id the kernel knows a delta inode by.
    pub fn node_id(&self, ino: Ino) -> Ino {
        if self.layered().is_none() || ino == Ino::ROOT {
            return ino;
        }
        match self.origin_of(ino) {
            Ok(Some(b)) => Ino(b),
            _ => Ino(ino.0 | DELTA_NODE),
        }
    }

    /// The merged-view path of a node.
    pub(super) fn path_of(&self, node: &Node) -> VfsResult<Vec<u8>> {
        match node {
            Node::Delta(d) => self.vfs.path_of(*d)?.ok_or(VfsError::NotFound),
            Node::Base(b) => Ok(join(&self.path_of(&self.resolve(b.parent)?)?, &b.name)),
        }
    }
}
