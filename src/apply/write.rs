//! Writing the session's entries into the base directory. A file or symlink is never seen
//! half-written: it is built under a temporary name in the same directory, synced, and
//! renamed over the old one (rename(2) is atomic within a filesystem).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::vfs::{Attr, FileKind};

use super::ApplyError;
use super::tree::{BaseTree, SessionTree};

/// Why a path could not be written, when the cause is the state of the base, not a failure.
pub enum Blocked {
    /// A directory to remove still has entries the session did not delete.
    NotEmpty,
    /// The session has a fifo, socket or device there, which apply does not create.
    Special(FileKind),
}

/// Writes the session's entry at `path` (file, symlink or directory) into the base,
/// replacing what is there. Owner and times follow the session where the process may set
/// them.
///
/// A file or symlink comes from `staged` (see [`Staging`]) when given, else it is built now.
pub fn put(
    base: &BaseTree,
    session: &SessionTree,
    path: &str,
    force: bool,
    staged: Option<&Path>,
) -> Result<Result<(), Blocked>, ApplyError> {
    let Some(attr) = session.attr(path)? else {
        return Ok(Ok(()));
    };
    let host = base.host(path);
    let existing = base.metadata(path)?;
    match attr.kind {
        FileKind::Dir => {
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                std::fs::remove_file(&host).map_err(|e| ApplyError::io(&host, e))?;
            }
            if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                std::fs::create_dir(&host).map_err(|e| ApplyError::io(&host, e))?;
            }
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(attr.perm))
                .map_err(|e| ApplyError::io(&host, e))?;
            chown_best_effort(&host, &attr);
            sync_parent(&host)?;
            return Ok(Ok(()));
        }
        FileKind::File | FileKind::Symlink => {}
        kind => return Ok(Err(Blocked::Special(kind))),
    }
    // A directory in the way (the session replaced it with a file) must go first.
    if existing.as_ref().is_some_and(|m| m.is_dir())
        && let Err(b) = remove_dir(&host, force)?
    {
        return Ok(Err(b));
    }
    let tmp = temp_name(&host);
    let written = match staged {
        Some(staged) => move_staged(staged, &tmp),
        None => build(session, &attr, &tmp),
    };
    let renamed = written.and_then(|()| {
        std::fs::rename(&tmp, &host).map_err(|e| ApplyError::io(&host, e))?;
        sync_parent(&host)
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed.map(Ok)
}

/// Builds the session's file or symlink `attr` at `tmp`: bytes, mode, owner, times, synced.
fn build(session: &SessionTree, attr: &Attr, tmp: &Path) -> Result<(), ApplyError> {
    if attr.kind == FileKind::Symlink {
        use std::os::unix::ffi::OsStrExt;
        let target = session.readlink(attr)?;
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), tmp)
            .map_err(|e| ApplyError::io(tmp, e))?;
        chown_best_effort(tmp, attr);
        return Ok(());
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| ApplyError::io(tmp, e))?;
    let mut out = io::BufWriter::with_capacity(1 << 20, &mut file);
    session.copy_to(attr, &mut out)?;
    out.flush().map_err(|e| ApplyError::io(tmp, e))?;
    drop(out);
    let times = std::fs::FileTimes::new()
        .set_accessed(to_system_time(attr.atime.sec, attr.atime.nsec))
        .set_modified(to_system_time(attr.mtime.sec, attr.mtime.nsec));
    settle(&file, tmp, (attr.uid, attr.gid), attr.perm, times)
}

/// Gives the file `file` at `path` its owner (best effort), then its mode (after the chown,
/// which clears setuid and setgid) and times, and syncs it.
fn settle(
    file: &File,
    path: &Path,
    (uid, gid): (u32, u32),
    perm: u32,
    times: std::fs::FileTimes,
) -> Result<(), ApplyError> {
    let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    file.set_permissions(std::fs::Permissions::from_mode(perm))
        .map_err(|e| ApplyError::io(path, e))?;
    file.set_times(times).map_err(|e| ApplyError::io(path, e))?;
    file.sync_all().map_err(|e| ApplyError::io(path, e))
}

/// Moves a staged entry to `tmp` (next to its target); across filesystems (a mount point
/// inside the base) by copying it.
fn move_staged(staged: &Path, tmp: &Path) -> Result<(), ApplyError> {
    match std::fs::rename(staged, tmp) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() != Some(libc::EXDEV) => return Err(ApplyError::io(tmp, e)),
        Err(_) => {}
    }
    let md = std::fs::symlink_metadata(staged).map_err(|e| ApplyError::io(staged, e))?;
    if md.file_type().is_symlink() {
        let target = std::fs::read_link(staged).map_err(|e| ApplyError::io(staged, e))?;
        std::os::unix::fs::symlink(target, tmp).map_err(|e| ApplyError::io(tmp, e))?;
        // Best effort, as for entries built in place.
        let _ = std::os::unix::fs::lchown(tmp, Some(md.uid()), Some(md.gid()));
    } else {
        std::fs::copy(staged, tmp).map_err(|e| ApplyError::io(tmp, e))?;
        let file = OpenOptions::new()
            .write(true)
            .open(tmp)
            .map_err(|e| ApplyError::io(tmp, e))?;
        let times = std::fs::FileTimes::new()
            .set_accessed(md.accessed().map_err(|e| ApplyError::io(staged, e))?)
            .set_modified(md.modified().map_err(|e| ApplyError::io(staged, e))?);
        settle(&file, tmp, (md.uid(), md.gid()), md.mode() & 0o7777, times)?;
    }
    let _ = std::fs::remove_file(staged);
    Ok(())
}

/// Where the session's files and symlinks are built before the base changes at all: what
/// the session shows may be read from base files that the apply itself replaces (two files
/// swapped, the children of a moved directory). A directory at the base root, so moving an
/// entry out of it is a rename; removed with whatever is left in it.
///
/// Made at the first entry staged, so an apply with nothing to write leaves the base root
/// alone.
pub struct Staging {
    root: PathBuf,
    dir: Option<PathBuf>,
    next: u32,
}

impl Staging {
    pub fn new(base: &BaseTree) -> Staging {
        Staging {
            root: base.root().to_path_buf(),
            dir: None,
            next: 0,
        }
    }

    fn dir(&mut self) -> Result<PathBuf, ApplyError> {
        if let Some(dir) = &self.dir {
            return Ok(dir.clone());
        }
        let dir = temp_name(&self.root.join("staging"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ApplyError::io(&dir, e))?;
        self.dir = Some(dir.clone());
        Ok(dir)
    }

    /// Builds the session's entry at `path` if it is a file or symlink; returns where.
    pub fn stage(
        &mut self,
        session: &SessionTree,
        path: &str,
    ) -> Result<Option<PathBuf>, ApplyError> {
        let Some(attr) = session.attr(path)? else {
            return Ok(None);
        };
        if !matches!(attr.kind, FileKind::File | FileKind::Symlink) {
            return Ok(None);
        }
        let tmp = self.dir()?.join(self.next.to_string());
        self.next += 1;
        build(session, &attr, &tmp)?;
        Ok(Some(tmp))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Removes whatever the base has at `path`; a directory only if empty, unless `force`.
pub fn remove(base: &BaseTree, path: &str, force: bool) -> Result<Result<(), Blocked>, ApplyError> {
    let host = base.host(path);
    let Some(md) = base.metadata(path)? else {
        return Ok(Ok(()));
    };
    if md.is_dir() {
        if let Err(b) = remove_dir(&host, force)? {
            return Ok(Err(b));
        }
    } else {
        std::fs::remove_file(&host).map_err(|e| ApplyError::io(&host, e))?;
    }
    sync_parent(&host)?;
    Ok(Ok(()))
}

fn remove_dir(host: &Path, force: bool) -> Result<Result<(), Blocked>, ApplyError> {
    match std::fs::remove_dir(host) {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && force => {
            std::fs::remove_dir_all(host).map_err(|e| ApplyError::io(host, e))?;
            Ok(Ok(()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(Err(Blocked::NotEmpty)),
        Err(e) => Err(ApplyError::io(host, e)),
    }
}

/// `.NAME.agentfs-apply.PID.N` next to `host`, not yet taken.
fn temp_name(host: &Path) -> PathBuf {
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = host.parent().unwrap_or(Path::new("/"));
    let pid = std::process::id();
    (0u32..)
        .map(|n| dir.join(format!(".{name}.agentfs-apply.{pid}.{n}")))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .unwrap_or_else(|| dir.join(format!(".{name}.agentfs-apply.{pid}")))
}

/// fsync(2) of the directory holding `host`, so a rename or removal there is durable.
fn sync_parent(host: &Path) -> Result<(), ApplyError> {
    let dir = host.parent().unwrap_or(Path::new("/"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ApplyError::io(dir, e))
}

/// Gives the entry the session's owner: a root apply should not leave a user's files owned
/// by root. Without the privilege to chown, the applying user keeps them.
fn chown_best_effort(host: &Path, attr: &Attr) {
    let _ = std::os::unix::fs::lchown(host, Some(attr.uid), Some(attr.gid));
}

fn to_system_time(sec: i64, nsec: u32) -> std::time::SystemTime {
    let d = std::time::Duration::new(sec.unsigned_abs(), nsec);
    if sec >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    }
}
