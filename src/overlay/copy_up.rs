//! Copy-up: bringing a base entry and its missing parents into the delta before a change.

use std::fs::File;
use std::os::unix::ffi::OsStringExt;

use super::Overlay;
use super::host::{BaseStat, io_err};
use super::nodes::Node;
use crate::vfs::{CopyUp, FileKind, Ino, VfsError, VfsResult};

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

/// Why an entry is copied up: a change of its bytes, or of its metadata or name only (which
/// copies no bytes at all; they stay in the base until they change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyFor {
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

impl Overlay {
    /// The delta inode of `node`, copying it (and its parents) up from the base first.
    pub(super) fn copy_up(&self, node: &Node) -> VfsResult<Ino> {
        self.copy_up_for(node, CopyFor::Data)
    }

    /// Like [`Overlay::copy_up`], for a change that leaves the bytes alone.
    pub(super) fn copy_up_for(&self, node: &Node, reason: CopyFor) -> VfsResult<Ino> {
        self.copy_up_then_write(node, reason, None)
    }

    /// Copies `node` up, with the base directories above it that the delta lacks, in one
    /// transaction; and makes the write `then_write` into it in that transaction when the
    /// write is what needed the copy.
    pub(super) fn copy_up_then_write(
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
}
