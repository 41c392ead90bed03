//! rename(2) in the merged view: moves and exchanges, with their whiteouts and opaque dirs.

use super::copy_up::CopyFor;
use super::nodes::Node;
use super::{Overlay, join};
use crate::vfs::{FileKind, Ino, RenameFlags, VfsError, VfsResult};

/// The two ends of a rename: the parent nodes, and the base paths at the old and the new
/// place (where the base has, or had, entries).
struct RenamePlaces {
    parent_node: Node,
    new_parent_node: Node,
    old_base: Option<Vec<u8>>,
    new_base: Option<Vec<u8>>,
}

impl Overlay {
    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> VfsResult<()> {
        self.pass_through_or(
            |vfs| vfs.rename(parent, name, new_parent, new_name, flags),
            || {
                let moved = self.atomically(|| {
                    if flags.exchange {
                        self.exchange(parent, name, new_parent, new_name, flags)
                    } else {
                        self.move_entry(parent, name, new_parent, new_name, flags)
                    }
                });
                // Whatever moved (or turned opaque) may change the base directory a delta one
                // shows.
                self.forget_base_dirs();
                moved
            },
        )
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
}
