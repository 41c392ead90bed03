//! Path-level tree operations over a [`Vfs`]: mkdir -p, rm -r, write, list, stat, walk.

use super::{Attr, Creds, DirEntry, FileKind, Ino, Vfs, VfsError};

/// Why a path-level operation failed; the message names the path like `ls` or `rm` would.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The filesystem refused an operation on `path`. The cause is part of the message (and
    /// deliberately not a separate source), so it reads `/a/b: no such file or directory`.
    #[error("{path}: {error}")]
    At { path: String, error: VfsError },
    /// The path ends in nothing usable as an entry name (`/`, `.`, `..`).
    #[error("{path:?} does not name an entry; give a path like /dir/name")]
    NoEntryName { path: String },
    /// A non-recursive removal met a directory with entries.
    #[error("{path}: directory not empty; pass -r to remove it with its contents")]
    NotEmpty { path: String },
    /// `mkdir -p` met a non-directory where a directory was needed.
    #[error("{path}: {part} is in the way and is not a directory")]
    InTheWay { path: String, part: String },
}

impl PathError {
    /// Ties a filesystem error to the path it happened on.
    pub fn at(path: &[u8], error: VfsError) -> PathError {
        PathError::At {
            path: show(path),
            error,
        }
    }
}

/// A path as text for messages (bytes that are not UTF-8 show as U+FFFD).
fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Adapter for `map_err`: the error of an operation on `path`.
fn at(path: &[u8]) -> impl FnOnce(VfsError) -> PathError + '_ {
    move |e| PathError::at(path, e)
}

/// Splits a path into its parent directory path and last name (trailing slashes ignored),
/// so that creating and removing can look the name up in its parent.
pub fn split_parent(path: &[u8]) -> Result<(&[u8], &[u8]), PathError> {
    let trimmed = trim_trailing_slashes(path);
    let cut = trimmed.iter().rposition(|&b| b == b'/');
    let (parent, name) = match cut {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    if name.is_empty() || name == b"." || name == b".." {
        return Err(PathError::NoEntryName { path: show(path) });
    }
    Ok((parent, name))
}

fn trim_trailing_slashes(path: &[u8]) -> &[u8] {
    let mut end = path.len();
    while end > 1 && path[end - 1] == b'/' {
        end -= 1;
    }
    &path[..end]
}

/// Every entry of directory `dir`, sorted by name (readdir pages through them unsorted).
pub fn list_all(vfs: &Vfs, dir: Ino) -> Result<Vec<DirEntry>, VfsError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let batch = vfs.readdir(dir, after, 1024)?;
        let Some(last) = batch.last() else { break };
        after = last.offset;
        all.extend(batch);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// What `ls PATH` shows: a directory's entries, or the path itself for anything else.
pub enum Listing {
    /// The path (followed through symlinks) is not a directory.
    NotDir,
    /// The directory's entries, sorted by name.
    Entries(Vec<DirEntry>),
}

/// Lists `path` (following symlinks), like `ls`.
pub fn list(vfs: &Vfs, path: &[u8]) -> Result<Listing, PathError> {
    let ino = vfs.resolve(path, true).map_err(at(path))?;
    let attr = vfs.getattr(ino).map_err(at(path))?;
    if attr.kind != FileKind::Dir {
        return Ok(Listing::NotDir);
    }
    Ok(Listing::Entries(list_all(vfs, ino).map_err(at(path))?))
}

/// The attributes of `path` itself (a symlink is not followed), like `stat`.
pub fn stat(vfs: &Vfs, path: &[u8]) -> Result<Attr, PathError> {
    let ino = vfs.resolve(path, false).map_err(at(path))?;
    vfs.getattr(ino).map_err(at(path))
}

/// The target of the symlink `ino`, found at `path` (named in the error).
pub fn readlink(vfs: &Vfs, path: &[u8], ino: Ino) -> Result<Vec<u8>, PathError> {
    vfs.readlink(ino).map_err(at(path))
}

/// Opens the regular file at `path` (following symlinks) for reading it in chunks, so a
/// large file never has to be held in memory at once.
pub fn read_file<'a>(vfs: &'a Vfs, path: &[u8]) -> Result<Chunks<'a>, PathError> {
    let ino = vfs.resolve(path, true).map_err(at(path))?;
    let attr = vfs.getattr(ino).map_err(at(path))?;
    if attr.kind != FileKind::File {
        return Err(PathError::at(path, VfsError::IsDir));
    }
    Ok(Chunks {
        vfs,
        ino,
        size: attr.size,
        offset: 0,
        path: path.to_vec(),
    })
}

/// The contents of a file in chunks of up to 1 MiB, from [`read_file`].
pub struct Chunks<'a> {
    vfs: &'a Vfs,
    ino: Ino,
    size: u64,
    offset: u64,
    path: Vec<u8>,
}

impl Iterator for Chunks<'_> {
    type Item = Result<Vec<u8>, PathError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.size {
            return None;
        }
        match self.vfs.read_ino(self.ino, self.offset, 1 << 20) {
            Ok(part) if part.is_empty() => {
                self.offset = self.size;
                None
            }
            Ok(part) => {
                self.offset += part.len() as u64;
                Some(Ok(part))
            }
            Err(e) => {
                self.offset = self.size;
                Some(Err(PathError::at(&self.path, e)))
            }
        }
    }
}

/// Replaces the contents of the file at `path`, creating it with `perm` and `creds` if it
/// does not exist; a symlink there is followed, a directory refused.
pub fn write_file(
    vfs: &Vfs,
    path: &[u8],
    contents: &[u8],
    perm: u32,
    creds: Creds,
) -> Result<(), PathError> {
    let (parent, name) = split_parent(path)?;
    let dir = vfs.resolve(parent, true).map_err(at(parent))?;
    let ino = match vfs.lookup(dir, name) {
        Ok(a) if a.kind == FileKind::File => a.ino,
        Ok(a) if a.kind == FileKind::Symlink => vfs.resolve(path, true).map_err(at(path))?,
        Ok(_) => return Err(PathError::at(path, VfsError::IsDir)),
        Err(VfsError::NotFound) => {
            let (attr, fh) = vfs.create(dir, name, perm, creds).map_err(at(path))?;
            vfs.release(fh).map_err(at(path))?;
            attr.ino
        }
        Err(e) => return Err(PathError::at(path, e)),
    };
    vfs.write_all_ino(ino, contents).map_err(at(path))
}

/// Removes the entry at `path`: a file or symlink, an empty directory, or with `recursive`
/// a directory and everything below it; then gives the freed space back.
pub fn remove(vfs: &Vfs, path: &[u8], recursive: bool) -> Result<(), PathError> {
    let (parent, name) = split_parent(path)?;
    let dir = vfs.resolve(parent, true).map_err(at(parent))?;
    let attr = vfs.lookup(dir, name).map_err(at(path))?;
    if attr.kind == FileKind::Dir {
        if recursive {
            remove_tree(vfs, attr.ino).map_err(at(path))?;
        } else if !list_all(vfs, attr.ino).map_err(at(path))?.is_empty() {
            return Err(PathError::NotEmpty { path: show(path) });
        }
        vfs.rmdir(dir, name).map_err(at(path))?;
    } else {
        vfs.unlink(dir, name).map_err(at(path))?;
    }
    vfs.compact().map_err(at(path))
}

/// Empties directory `dir`, depth first (it stays, empty).
pub fn remove_tree(vfs: &Vfs, dir: Ino) -> Result<(), VfsError> {
    for e in list_all(vfs, dir)? {
        if e.kind == FileKind::Dir {
            remove_tree(vfs, e.ino)?;
            vfs.rmdir(dir, &e.name)?;
        } else {
            vfs.unlink(dir, &e.name)?;
        }
    }
    Ok(())
}

/// Creates the directory at `path` with `perm` and `creds`; its parent must exist.
pub fn mkdir(vfs: &Vfs, path: &[u8], perm: u32, creds: Creds) -> Result<Attr, PathError> {
    let (parent, name) = split_parent(path)?;
    let dir = vfs.resolve(parent, true).map_err(at(parent))?;
    vfs.mkdir(dir, name, perm, creds).map_err(at(path))
}

/// Like `mkdir -p`: creates every missing directory of `path` from the root, accepting the
/// ones that exist; returns the last one.
pub fn mkdir_all(vfs: &Vfs, path: &[u8], perm: u32, creds: Creds) -> Result<Ino, PathError> {
    let mut cur = Ino::ROOT;
    for part in path
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty() && *s != b".")
    {
        cur = match vfs.lookup(cur, part) {
            Ok(a) if a.kind == FileKind::Dir => a.ino,
            Ok(_) => {
                return Err(PathError::InTheWay {
                    path: show(path),
                    part: show(part),
                });
            }
            Err(VfsError::NotFound) => vfs.mkdir(cur, part, perm, creds).map_err(at(path))?.ino,
            Err(e) => return Err(PathError::at(path, e)),
        };
    }
    Ok(cur)
}

/// One entry met by [`walk`], with where it sits in the tree.
#[derive(Debug)]
pub struct TreeEntry {
    /// The entry, as its directory lists it.
    pub entry: DirEntry,
    /// For each directory from the walk's top down to this entry's own level: whether the
    /// entry (or its ancestor at that level) is the last of its siblings. Enough to draw
    /// tree branches; its length is the entry's depth (1 for the top's children).
    pub last: Vec<bool>,
}

/// Walks the tree below `dir` depth first, each directory's entries by name, listing a
/// directory only when the walk reaches it (so a caller printing as it goes shows
/// everything up to a failure).
pub fn walk(vfs: &Vfs, dir: Ino) -> Walk<'_> {
    Walk {
        vfs,
        pending: Some(dir),
        stack: Vec::new(),
    }
}

/// The iterator of [`walk`].
pub struct Walk<'a> {
    vfs: &'a Vfs,
    /// A directory to list before going on: the top, or the directory just yielded.
    pending: Option<Ino>,
    /// Per open directory: its entries, and how many are yielded.
    stack: Vec<(Vec<DirEntry>, usize)>,
}

impl Iterator for Walk<'_> {
    type Item = Result<TreeEntry, VfsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(dir) = self.pending.take() {
            match list_all(self.vfs, dir) {
                Ok(entries) => self.stack.push((entries, 0)),
                Err(e) => {
                    self.stack.clear();
                    return Some(Err(e));
                }
            }
        }
        loop {
            let (entries, next) = self.stack.last_mut()?;
            if *next == entries.len() {
                self.stack.pop();
                continue;
            }
            let entry = entries[*next].clone();
            *next += 1;
            let last = self
                .stack
                .iter()
                .map(|(entries, next)| *next == entries.len())
                .collect();
            if entry.kind == FileKind::Dir {
                self.pending = Some(entry.ino);
            }
            return Some(Ok(TreeEntry { entry, last }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    const ME: Creds = Creds { uid: 0, gid: 0 };

    fn session() -> (tempfile::TempDir, Vfs) {
        let dir = tempfile::tempdir().unwrap();
        let vfs = Vfs::open_session(&dir.path().join("t.db"), OpenMode::Create).unwrap();
        (dir, vfs)
    }

    fn names(vfs: &Vfs, path: &[u8]) -> Vec<String> {
        match list(vfs, path).unwrap() {
            Listing::NotDir => vec!["(not a dir)".into()],
            Listing::Entries(e) => e.iter().map(|e| show(&e.name)).collect(),
        }
    }

    #[test]
    fn write_read_and_list_by_path() {
        let (_d, vfs) = session();
        mkdir_all(&vfs, b"/a/b", 0o755, ME).unwrap();
        // An existing directory is accepted, a file in the way is not.
        mkdir_all(&vfs, b"/a/./b/", 0o755, ME).unwrap();
        write_file(&vfs, b"/a/f", b"one", 0o644, ME).unwrap();
        write_file(&vfs, b"/a/f", b"two!", 0o644, ME).unwrap();
        let err = mkdir_all(&vfs, b"/a/f/x", 0o755, ME).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/a/f/x: f is in the way and is not a directory"
        );
        let err = write_file(&vfs, b"/a/b", b"x", 0o644, ME).unwrap_err();
        assert_eq!(err.to_string(), "/a/b: is a directory");
        let err = mkdir(&vfs, b"/nope/x", 0o755, ME).unwrap_err();
        assert_eq!(err.to_string(), "/nope: no such file or directory");

        assert_eq!(names(&vfs, b"/a"), ["b", "f"]);
        assert_eq!(names(&vfs, b"/a/f"), ["(not a dir)"]);
        let read: Vec<u8> = read_file(&vfs, b"/a/f")
            .unwrap()
            .map(|c| c.unwrap())
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(read, b"two!");
        assert!(read_file(&vfs, b"/a").is_err());
        assert_eq!(stat(&vfs, b"/a/f").unwrap().size, 4);
    }

    #[test]
    fn remove_needs_recursive_for_a_full_directory() {
        let (_d, vfs) = session();
        mkdir_all(&vfs, b"/a/b/c", 0o755, ME).unwrap();
        write_file(&vfs, b"/a/b/c/f", b"x", 0o644, ME).unwrap();
        let err = remove(&vfs, b"/a", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/a: directory not empty; pass -r to remove it with its contents"
        );
        remove(&vfs, b"/a", true).unwrap();
        assert!(names(&vfs, b"/").is_empty());
        assert!(remove(&vfs, b"/", true).is_err());
    }

    #[test]
    fn walk_goes_depth_first_and_marks_last_siblings() {
        let (_d, vfs) = session();
        mkdir_all(&vfs, b"/a/b", 0o755, ME).unwrap();
        write_file(&vfs, b"/a/x", b"", 0o644, ME).unwrap();
        write_file(&vfs, b"/z", b"", 0o644, ME).unwrap();
        let walked: Vec<(String, Vec<bool>)> = walk(&vfs, Ino::ROOT)
            .map(|e| e.unwrap())
            .map(|e| (show(&e.entry.name), e.last))
            .collect();
        assert_eq!(
            walked,
            [
                ("a".to_string(), vec![false]),
                ("b".to_string(), vec![false, false]),
                ("x".to_string(), vec![false, true]),
                ("z".to_string(), vec![true]),
            ]
        );
    }

    #[test]
    fn split_parent_rejects_root_and_dots() {
        assert!(split_parent(b"/").is_err());
        assert!(split_parent(b"/a/..").is_err());
        assert_eq!(split_parent(b"/a/b/").unwrap(), (&b"/a"[..], &b"b"[..]));
        assert_eq!(split_parent(b"x").unwrap(), (&b""[..], &b"x"[..]));
    }
}
