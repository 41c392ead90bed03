//! Paths on the merged view, as the tools name them: walking them like the kernel does, and
//! the file operations the tools are made of (read, write, mkdir -p, remove, rename).

use std::sync::Arc;

use crate::overlay::Overlay;
use crate::vfs::{Attr, Creds, FileKind, Ino, RenameFlags, SetAttr, VfsError};

use super::ToolError;

/// How many symlinks a walk follows before it gives up (as Linux's MAXSYMLINKS).
const MAX_SYMLINKS: u32 = 40;

/// Bytes read per call when a whole file is read.
const READ_CHUNK: u32 = 1 << 20;

/// The merged view of one session, addressed by paths from its root.
pub(super) struct Files {
    pub(super) overlay: Arc<Overlay>,
}

/// A path split into its components, `.` and empty ones dropped.
fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// The parent directory and last name of `path`, or an error for the root itself.
pub(super) fn split(path: &str) -> Result<(String, String), ToolError> {
    let mut parts = components(path);
    match parts.pop() {
        Some("..") | None => Err(ToolError::BadInput(format!(
            "{path:?} names no entry (give a path such as /src/main.rs)"
        ))),
        Some(name) => Ok((parts.join("/"), name.to_string())),
    }
}

fn creds() -> Creds {
    // SAFETY: geteuid and getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    Creds { uid, gid }
}

impl Files {
    /// The node `path` names; `follow_last` follows a symlink in the last component too.
    pub(super) fn walk(&self, path: &str, follow_last: bool) -> Result<Ino, ToolError> {
        let at = |e: VfsError| ToolError::path(path, e);
        let mut todo: Vec<String> = components(path)
            .into_iter()
            .rev()
            .map(String::from)
            .collect();
        let mut node = Ino::ROOT;
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            if self.overlay.getattr(node).map_err(at)?.kind != FileKind::Dir {
                return Err(at(VfsError::NotDir));
            }
            if name == ".." {
                node = self.overlay.parent_of(node).map_err(at)?;
                continue;
            }
            let a = self.overlay.lookup(node, name.as_bytes()).map_err(at)?;
            if a.kind == FileKind::Symlink && (!todo.is_empty() || follow_last) {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(at(VfsError::Loop));
                }
                let target = self.overlay.readlink(a.ino).map_err(at)?;
                let target = String::from_utf8_lossy(&target).into_owned();
                if target.starts_with('/') {
                    return Err(ToolError::Path {
                        path: path.to_string(),
                        problem: format!("goes through a symlink to {target}, outside the session"),
                    });
                }
                todo.extend(components(&target).into_iter().rev().map(String::from));
                continue;
            }
            node = a.ino;
        }
        Ok(node)
    }

    pub(super) fn attr(&self, path: &str, follow_last: bool) -> Result<Attr, ToolError> {
        let ino = self.walk(path, follow_last)?;
        self.overlay
            .getattr(ino)
            .map_err(|e| ToolError::path(path, e))
    }

    /// The whole contents of the file at `path`.
    pub(super) fn read(&self, path: &str) -> Result<Vec<u8>, ToolError> {
        let at = |e: VfsError| ToolError::path(path, e);
        let ino = self.walk(path, true)?;
        match self.overlay.getattr(ino).map_err(at)?.kind {
            FileKind::Dir => return Err(at(VfsError::IsDir)),
            FileKind::File => {}
            _ => {
                return Err(ToolError::Path {
                    path: path.to_string(),
                    problem: "is not a regular file".into(),
                });
            }
        }
        let fh = self.overlay.open(ino, false).map_err(at)?;
        let mut out = Vec::new();
        let read = loop {
            match self.overlay.read(fh, out.len() as u64, READ_CHUNK) {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => break Err(at(e)),
            }
        };
        self.overlay.release(fh).map_err(at)?;
        read.map(|()| out)
    }

    /// Replaces the contents of the file at `path` (creating it, and its missing parent
    /// directories); true if it was created.
    pub(super) fn write(&self, path: &str, data: &[u8]) -> Result<bool, ToolError> {
        let at = |e: VfsError| ToolError::path(path, e);
        let (parent, name) = split(path)?;
        let dir = self.mkdir_all(&parent)?;
        let (fh, created) = match self.overlay.lookup(dir, name.as_bytes()) {
            Ok(a) if a.kind == FileKind::Dir => return Err(at(VfsError::IsDir)),
            Ok(a) => {
                // Follows a symlink at the name, as writing through open(2) does.
                let ino = if a.kind == FileKind::Symlink {
                    self.walk(path, true)?
                } else {
                    a.ino
                };
                let truncate = SetAttr {
                    size: Some(0),
                    ..Default::default()
                };
                self.overlay.setattr(ino, &truncate).map_err(at)?;
                (self.overlay.open(ino, true).map_err(at)?, false)
            }
            Err(VfsError::NotFound) => {
                let (_, fh) = self
                    .overlay
                    .create(dir, name.as_bytes(), 0o644, creds())
                    .map_err(at)?;
                (fh, true)
            }
            Err(e) => return Err(at(e)),
        };
        let mut done = 0;
        let wrote = loop {
            if done == data.len() {
                break Ok(());
            }
            match self.overlay.write(fh, done as u64, &data[done..]) {
                Ok(n) => done += n as usize,
                Err(e) => break Err(at(e)),
            }
        };
        self.overlay.release(fh).map_err(at)?;
        wrote.map(|()| created)
    }

    /// The directory at `path`, made with its missing parents (as `mkdir -p`).
    pub(super) fn mkdir_all(&self, path: &str) -> Result<Ino, ToolError> {
        let mut node = Ino::ROOT;
        let mut so_far = String::new();
        for name in components(path) {
            so_far.push('/');
            so_far.push_str(name);
            if name == ".." {
                node = self.walk(&so_far, true)?;
                continue;
            }
            let at = |e: VfsError| ToolError::path(&so_far, e);
            node = match self.overlay.lookup(node, name.as_bytes()) {
                Ok(a) if a.kind == FileKind::Dir => a.ino,
                Ok(a) if a.kind == FileKind::Symlink => self.walk(&so_far, true)?,
                Ok(_) => return Err(at(VfsError::NotDir)),
                Err(VfsError::NotFound) => {
                    self.overlay
                        .mkdir(node, name.as_bytes(), 0o755, creds())
                        .map_err(at)?
                        .ino
                }
                Err(e) => return Err(at(e)),
            };
        }
        if self
            .overlay
            .getattr(node)
            .map_err(|e| ToolError::path(path, e))?
            .kind
            != FileKind::Dir
        {
            return Err(ToolError::path(path, VfsError::NotDir));
        }
        Ok(node)
    }

    /// Removes the entry at `path`; a directory only when empty, unless `recursive`.
    pub(super) fn remove(&self, path: &str, recursive: bool) -> Result<(), ToolError> {
        let (parent, name) = split(path)?;
        let dir = self.walk(&parent, true)?;
        self.remove_in(dir, &name, path, recursive)
    }

    fn remove_in(
        &self,
        dir: Ino,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<(), ToolError> {
        let at = |e: VfsError| ToolError::path(path, e);
        let a = self.overlay.lookup(dir, name.as_bytes()).map_err(at)?;
        if a.kind != FileKind::Dir {
            return self.overlay.unlink(dir, name.as_bytes()).map_err(at);
        }
        if recursive {
            for e in self.overlay.list(a.ino).map_err(at)? {
                let child = String::from_utf8_lossy(&e.name).into_owned();
                self.remove_in(a.ino, &child, &format!("{path}/{child}"), true)?;
            }
        }
        match self.overlay.rmdir(dir, name.as_bytes()) {
            Err(VfsError::NotEmpty) => Err(ToolError::Path {
                path: path.to_string(),
                problem: "is a directory that is not empty (pass recursive: true)".into(),
            }),
            r => r.map_err(at),
        }
    }

    /// Moves `from` to `to` (replacing a file there, as rename(2) does).
    pub(super) fn rename(&self, from: &str, to: &str) -> Result<(), ToolError> {
        let (p1, n1) = split(from)?;
        let (p2, n2) = split(to)?;
        let d1 = self.walk(&p1, true)?;
        let d2 = self.walk(&p2, true)?;
        self.overlay
            .rename(d1, n1.as_bytes(), d2, n2.as_bytes(), RenameFlags::default())
            .map_err(|e| ToolError::path(from, e))
    }
}
