//! The base side of the overlay: what is read of host entries, and how host errors read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::vfs::{Attr, FileKind, Ino, Timestamp, VfsError, VfsResult};

/// What the overlay uses of a base entry's lstat. Taken with `fstatat` relative to the open
/// directory when listing, which spares the host a walk of the whole path per entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct BaseStat {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) mode: u32,
    pub(super) nlink: u64,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) size: u64,
    pub(super) blocks: u64,
    pub(super) rdev: u64,
    pub(super) atime: Timestamp,
    pub(super) mtime: Timestamp,
    pub(super) ctime: Timestamp,
}

impl BaseStat {
    pub(super) fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

impl From<nix::sys::stat::FileStat> for BaseStat {
    fn from(st: nix::sys::stat::FileStat) -> BaseStat {
        BaseStat {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size.max(0) as u64,
            blocks: st.st_blocks.max(0) as u64,
            rdev: st.st_rdev,
            atime: ts(st.st_atime, st.st_atime_nsec),
            mtime: ts(st.st_mtime, st.st_mtime_nsec),
            ctime: ts(st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// Attributes of a base entry, addressed by its node id.
pub(super) fn base_attr(md: &BaseStat) -> Attr {
    Attr {
        ino: Ino(md.ino),
        kind: FileKind::from_mode(md.mode).unwrap_or(FileKind::File),
        perm: md.mode & 0o7777,
        nlink: md.nlink as u32,
        uid: md.uid,
        gid: md.gid,
        size: md.size,
        blocks: md.blocks,
        rdev: md.rdev as u32,
        atime: md.atime,
        mtime: md.mtime,
        ctime: md.ctime,
    }
}

/// Reads up to `len` bytes of `file` at `offset` into `out` (fewer only at the end of the
/// file). `out` is reused across calls, so its pages are not faulted in again every read.
pub(super) fn read_at_into(file: &File, offset: u64, len: u32, out: &mut Vec<u8>) -> VfsResult<()> {
    out.resize(len as usize, 0);
    let mut got = 0;
    while got < out.len() {
        match file.read_at(&mut out[got..], offset + got as u64) {
            Ok(0) => break,
            // A short read of a regular file is its end: asking again would only return 0.
            Ok(n) if n < out.len() - got => {
                got += n;
                break;
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    out.truncate(got);
    Ok(())
}

/// An lstat of a base entry, with "nothing there" as `None` (a path too long for the host
/// cannot be in the base either).
pub(super) fn absent_as_none(
    stat: nix::Result<nix::sys::stat::FileStat>,
) -> VfsResult<Option<BaseStat>> {
    use nix::errno::Errno;
    match stat {
        Ok(st) => Ok(Some(st.into())),
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG) => Ok(None),
        Err(e) => Err(io_err(e.into())),
    }
}

pub(super) fn io_err(e: std::io::Error) -> VfsError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => VfsError::NotFound,
        Some(libc::ENOTDIR) => VfsError::NotDir,
        Some(libc::ELOOP) => VfsError::Loop,
        Some(libc::ENAMETOOLONG) => VfsError::NameTooLong,
        _ => VfsError::Store(crate::store::StoreError::Io {
            path: PathBuf::from("base"),
            source: e,
        }),
    }
}

pub(super) fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}
