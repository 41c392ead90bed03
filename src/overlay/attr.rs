//! Attributes and extended attributes of merged nodes, and statfs.

use super::Overlay;
use super::copy_up::CopyFor;
use super::nodes::Node;
use crate::vfs::{Attr, Ino, SetAttr, StatFs, VfsError, VfsResult, XattrMode};

impl Overlay {
    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> VfsResult<Attr> {
        self.pass_through_or(
            |vfs| vfs.setattr(ino, set),
            || {
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
            },
        )
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
