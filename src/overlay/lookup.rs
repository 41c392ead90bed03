//! Merged lookup: finding a name in the delta, then the whiteouts, then the base.

use std::os::unix::ffi::OsStringExt;

use super::host::{base_attr, io_err};
use super::nodes::{BaseEntry, Node};
use super::{Overlay, join};
use crate::vfs::{Attr, Ino, VfsError, VfsResult};

impl Overlay {
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> VfsResult<Attr> {
        self.pass_through_or(
            |vfs| vfs.lookup(parent, name),
            || {
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
            },
        )
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

    /// The parent directory's node id, for "..".
    /// Whether node `node` is directory `dir` or lies below it.
    pub(super) fn is_within(&self, mut node: Ino, dir: Ino) -> VfsResult<bool> {
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

    /// Whether `name` exists in the merged directory `parent`.
    pub(super) fn exists(&self, parent: Ino, name: &[u8]) -> VfsResult<Option<Attr>> {
        match self.lookup(parent, name) {
            Ok(a) => Ok(Some(a)),
            Err(VfsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
