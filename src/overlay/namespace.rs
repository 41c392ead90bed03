//! Creating, linking and removing names in the merged view.

use super::copy_up::CopyFor;
use super::io::Handle;
use super::nodes::Node;
use super::{Overlay, join};
use crate::vfs::{Attr, Creds, Fh, FileKind, Ino, JournalOp, VfsError, VfsResult};

impl Overlay {
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

    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        perm: u32,
        creds: Creds,
    ) -> VfsResult<(Attr, Fh)> {
        self.pass_through_or(
            |vfs| vfs.create(parent, name, perm, creds),
            || {
                let (attr, fh) = self.atomically(|| {
                    let (d, _) = self.prepare_create(parent, name)?;
                    self.vfs.create(d, name, perm, creds)
                })?;
                Ok((self.created_attr(attr)?, self.add_handle(Handle::Delta(fh))))
            },
        )
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
        self.pass_through_or(
            |vfs| vfs.mknod(parent, name, kind, perm, rdev, creds),
            || {
                let attr = self.atomically(|| {
                    let (d, _) = self.prepare_create(parent, name)?;
                    self.vfs.mknod(d, name, kind, perm, rdev, creds)
                })?;
                self.created_attr(attr)
            },
        )
    }

    pub fn mkdir(&self, parent: Ino, name: &[u8], perm: u32, creds: Creds) -> VfsResult<Attr> {
        self.pass_through_or(
            |vfs| vfs.mkdir(parent, name, perm, creds),
            || {
                let attr = self.atomically::<_, VfsError>(|| {
                    let (d, was_whiteout) = self.prepare_create(parent, name)?;
                    let attr = self.vfs.mkdir(d, name, perm, creds)?;
                    if was_whiteout {
                        self.vfs.set_opaque(attr.ino)?;
                        self.forget_base_dirs();
                    }
                    Ok(attr)
                })?;
                self.created_attr(attr)
            },
        )
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        creds: Creds,
    ) -> VfsResult<Attr> {
        self.pass_through_or(
            |vfs| vfs.symlink(parent, name, target, creds),
            || {
                let attr = self.atomically(|| {
                    let (d, _) = self.prepare_create(parent, name)?;
                    self.vfs.symlink(d, name, target, creds)
                })?;
                self.created_attr(attr)
            },
        )
    }

    pub fn link(&self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> VfsResult<Attr> {
        self.pass_through_or(
            |vfs| vfs.link(ino, new_parent, new_name),
            || {
                let attr = self.atomically(|| {
                    let src = self.copy_up_for(&self.resolve(ino)?, CopyFor::Metadata)?;
                    let (d, _) = self.prepare_create(new_parent, new_name)?;
                    self.vfs.link(src, d, new_name)
                })?;
                self.delta_attr(attr)
            },
        )
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
        self.pass_through_or(
            |vfs| vfs.unlink(parent, name),
            || self.atomically(|| self.remove(parent, name, false)),
        )
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> VfsResult<()> {
        self.pass_through_or(
            |vfs| vfs.rmdir(parent, name),
            || self.atomically(|| self.remove(parent, name, true)),
        )
    }
}
