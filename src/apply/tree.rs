//! Reading one side of a change: the base directory on the host, or the session's merged
//! view (through the overlay, without a kernel mount). Both answer "what is at this path".

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::overlay::Overlay;
use crate::vfs::{Attr, FileKind, Ino, Vfs, VfsError};

use super::ApplyError;

/// What one side has at a path. Files carry their blake3, so comparing two sides needs no
/// second read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Missing,
    File {
        perm: u32,
        size: u64,
        blake3: [u8; 32],
    },
    Dir {
        perm: u32,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A fifo, socket or device: neither applied nor exported.
    Special {
        kind: FileKind,
    },
}

impl Entry {
    pub fn is_missing(&self) -> bool {
        matches!(self, Entry::Missing)
    }

    pub fn is_dir(&self) -> bool {
        matches!(self, Entry::Dir { .. })
    }

    /// The size of a file in bytes; 0 for anything else (what progress counts).
    pub fn file_bytes(&self) -> u64 {
        match self {
            Entry::File { size, .. } => *size,
            _ => 0,
        }
    }
}

/// The base directory a session overlays, addressed by session paths (`/a/b`).
pub struct BaseTree {
    root: PathBuf,
}

impl BaseTree {
    pub fn new(root: PathBuf) -> BaseTree {
        BaseTree { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of session path `path`.
    pub fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// lstat of a path; `None` if nothing is there.
    pub fn metadata(&self, path: &str) -> Result<Option<std::fs::Metadata>, ApplyError> {
        let host = self.host(path);
        match std::fs::symlink_metadata(&host) {
            Ok(md) => Ok(Some(md)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                Ok(None)
            }
            Err(e) => Err(ApplyError::io(&host, e)),
        }
    }

    /// The host inode number of the entry at `path`, if any.
    pub fn ino(&self, path: &str) -> Result<Option<u64>, ApplyError> {
        Ok(self.metadata(path)?.map(|md| md.ino()))
    }

    pub fn entry(&self, path: &str) -> Result<Entry, ApplyError> {
        let Some(md) = self.metadata(path)? else {
            return Ok(Entry::Missing);
        };
        let host = self.host(path);
        let perm = md.permissions().mode() & 0o7777;
        let ft = md.file_type();
        Ok(if ft.is_file() {
            let mut hasher = blake3::Hasher::new();
            let file = File::open(&host).map_err(|e| ApplyError::io(&host, e))?;
            hasher
                .update_reader(file)
                .map_err(|e| ApplyError::io(&host, e))?;
            Entry::File {
                perm,
                size: md.size(),
                blake3: *hasher.finalize().as_bytes(),
            }
        } else if ft.is_dir() {
            Entry::Dir { perm }
        } else if ft.is_symlink() {
            use std::os::unix::ffi::OsStringExt;
            let target = std::fs::read_link(&host).map_err(|e| ApplyError::io(&host, e))?;
            Entry::Symlink {
                target: target.into_os_string().into_vec(),
            }
        } else {
            Entry::Special {
                kind: FileKind::from_mode(md.mode()).unwrap_or(FileKind::Fifo),
            }
        })
    }

    /// The bytes of a file (empty if it is not a file).
    /// Every path below directory `path` of the base (none if it is not a directory).
    pub fn descendants(&self, path: &str) -> Result<Vec<String>, ApplyError> {
        let mut out = Vec::new();
        let mut stack = vec![path.trim_end_matches('/').to_string()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(self.host(&dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let child = format!("{dir}/{}", e.file_name().to_string_lossy());
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(child.clone());
                }
                out.push(child);
            }
        }
        Ok(out)
    }

    pub fn read(&self, path: &str) -> Result<Vec<u8>, ApplyError> {
        let host = self.host(path);
        match std::fs::read(&host) {
            Ok(b) => Ok(b),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EISDIR)) => {
                Ok(Vec::new())
            }
            Err(e) => Err(ApplyError::io(&host, e)),
        }
    }
}

/// The session's merged view (delta over base), read through the overlay.
pub struct SessionTree {
    overlay: Overlay,
}

/// Bytes per read from the session.
const READ_STEP: u32 = 1 << 20;

impl SessionTree {
    pub fn new(vfs: Arc<Vfs>, base: &Path) -> SessionTree {
        SessionTree {
            overlay: Overlay::new(vfs, Some(base.to_path_buf())),
        }
    }

    /// The attributes of the entry at `path` in the merged view, if any.
    pub fn attr(&self, path: &str) -> Result<Option<Attr>, ApplyError> {
        let mut attr = self.overlay.getattr(Ino::ROOT)?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            match self.overlay.lookup(attr.ino, part.as_bytes()) {
                Ok(a) => attr = a,
                Err(VfsError::NotFound) | Err(VfsError::NotDir) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(attr))
    }

    /// Every path below directory `path` in the merged view (none if it is not one).
    pub fn descendants(&self, path: &str) -> Result<Vec<String>, ApplyError> {
        let mut out = Vec::new();
        let Some(attr) = self.attr(path)? else {
            return Ok(out);
        };
        let mut stack = vec![(path.trim_end_matches('/').to_string(), attr)];
        while let Some((dir, attr)) = stack.pop() {
            if attr.kind != FileKind::Dir {
                continue;
            }
            for e in self.overlay.list(attr.ino)? {
                let child = format!("{dir}/{}", String::from_utf8_lossy(&e.name));
                out.push(child.clone());
                stack.push((child, e.attr));
            }
        }
        Ok(out)
    }

    pub fn entry(&self, path: &str) -> Result<Entry, ApplyError> {
        let Some(attr) = self.attr(path)? else {
            return Ok(Entry::Missing);
        };
        Ok(match attr.kind {
            FileKind::File => {
                let mut hasher = blake3::Hasher::new();
                let blake3 = match self.copy_to(&attr, &mut HashWriter(&mut hasher)) {
                    Ok(()) => *hasher.finalize().as_bytes(),
                    // Copied up without its bytes, and the host changed the base file since:
                    // the session's bytes are gone. An impossible hash makes the path differ
                    // from the base; the conflict check then reports the host's change.
                    Err(ApplyError::Vfs(VfsError::BaseRead(_))) => [0u8; 32],
                    Err(e) => return Err(e),
                };
                Entry::File {
                    perm: attr.perm,
                    size: attr.size,
                    blake3,
                }
            }
            FileKind::Dir => Entry::Dir { perm: attr.perm },
            FileKind::Symlink => Entry::Symlink {
                target: self.overlay.readlink(attr.ino)?,
            },
            kind => Entry::Special { kind },
        })
    }

    /// Streams the contents of file `attr` into `out`.
    pub fn copy_to(&self, attr: &Attr, out: &mut dyn Write) -> Result<(), ApplyError> {
        let fh = self.overlay.open(attr.ino, false)?;
        let result = (|| -> Result<(), ApplyError> {
            let mut offset = 0u64;
            loop {
                let chunk = self.overlay.read(fh, offset, READ_STEP)?;
                if chunk.is_empty() {
                    return Ok(());
                }
                offset += chunk.len() as u64;
                out.write_all(&chunk)
                    .map_err(|e| ApplyError::io(Path::new("output"), e))?;
            }
        })();
        let released = self.overlay.release(fh);
        result?;
        Ok(released?)
    }

    /// The bytes of the file at `path` (empty if it is not a file).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, ApplyError> {
        let mut out = Vec::new();
        if let Some(attr) = self.attr(path)?.filter(|a| a.kind == FileKind::File) {
            self.copy_to(&attr, &mut out)?;
        }
        Ok(out)
    }

    pub fn readlink(&self, attr: &Attr) -> Result<Vec<u8>, ApplyError> {
        Ok(self.overlay.readlink(attr.ino)?)
    }
}

/// Feeds written bytes to a hasher.
struct HashWriter<'a>(&'a mut blake3::Hasher);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads all of `r` into a hasher (for host files).
pub fn hash_reader(mut r: impl Read) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    io::copy(&mut r, &mut HashWriter(&mut hasher))?;
    Ok(*hasher.finalize().as_bytes())
}
