//! What a session changed against its base: the rows of the `fs_changes` view (SPEC.md,
//! "Views"), and the bytes on both sides that a patch of one change compares.

pub mod render;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::vfs::{FileKind, Ino, VfsError, data, rows};

/// Errors while listing changes or reading the bytes of either side.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("cannot read the session: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot read the session: {0}")]
    Vfs(#[from] VfsError),
}

/// What happened to one path (the `status` column of `fs_changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Added,
    Modified,
    Deleted,
    Renamed,
    TypeChanged,
}

impl Status {
    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "A" => Status::Added,
            "M" => Status::Modified,
            "D" => Status::Deleted,
            "R" => Status::Renamed,
            "T" => Status::TypeChanged,
            _ => return None,
        })
    }

    /// The one-letter code, as in `git diff --name-status`.
    pub fn letter(self) -> char {
        match self {
            Status::Added => 'A',
            Status::Modified => 'M',
            Status::Deleted => 'D',
            Status::Renamed => 'R',
            Status::TypeChanged => 'T',
        }
    }
}

/// One row of `fs_changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub status: Status,
    /// Where a renamed entry was in the base.
    pub old_path: Option<String>,
    /// `file`, `dir`, `symlink`, ...; unknown for most deletions.
    pub kind: Option<String>,
    pub size_before: Option<i64>,
    pub size_after: Option<i64>,
    /// When it last changed (UTC text), if the journal knows.
    pub time: Option<String>,
    pub runner: Option<i64>,
    /// The delta inode; none for deletions.
    pub ino: Option<i64>,
}

impl Change {
    /// The path in the base the new contents are compared with.
    pub fn base_path(&self) -> &str {
        self.old_path.as_deref().unwrap_or(&self.path)
    }

    pub fn is_dir(&self) -> bool {
        self.kind.as_deref() == Some("dir")
    }
}

impl std::fmt::Display for Change {
    /// `M /path`, `R /from -> /to`; directories end in `/`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slash = if self.is_dir() { "/" } else { "" };
        match &self.old_path {
            Some(from) => write!(f, "R {from}{slash} -> {}{slash}", self.path),
            None => write!(f, "{} {}{slash}", self.status.letter(), self.path),
        }
    }
}

/// The changes in `fs_changes`, sorted by path; with `only` given, just those at or below
/// one of these paths (old or new path).
pub fn changes(conn: &Connection, only: &[String]) -> Result<Vec<Change>, DiffError> {
    let mut stmt = conn.prepare(
        "SELECT path, status, old_path, type, size_before, size_after, time, runner, ino \
         FROM fs_changes ORDER BY path",
    )?;
    let all = stmt
        .query_map([], |r| {
            Ok(Change {
                path: r.get(0)?,
                status: Status::parse(&r.get::<_, String>(1)?).unwrap_or(Status::Modified),
                old_path: r.get(2)?,
                kind: r.get(3)?,
                size_before: r.get(4)?,
                size_after: r.get(5)?,
                time: r.get(6)?,
                runner: r.get(7)?,
                ino: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let wanted: Vec<String> = only
        .iter()
        .map(|p| format!("/{}", p.trim_matches('/')))
        .collect();
    let under = |path: &str| {
        wanted.iter().any(|w| {
            w == "/"
                || path == w
                || path
                    .strip_prefix(w.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    };
    Ok(all
        .into_iter()
        .filter(|c| wanted.is_empty() || under(&c.path) || c.old_path.as_deref().is_some_and(under))
        .collect())
}

/// Brings `fs_content_hash` up to date for the copied-up files whose bytes `fs_changes`
/// cannot judge without it (same size as in the base, written since, no current hash), so
/// the view tells a rewrite of the same bytes from a real change. Each file is hashed in its
/// own short write transaction. Returns how many files were hashed.
pub fn refresh_hashes(conn: &Connection) -> Result<usize, DiffError> {
    let candidates: Vec<i64> = conn
        .prepare(
            "SELECT i.ino FROM fs_base_identity b JOIN fs_inode i ON i.ino = b.ino \
             WHERE (i.mode & 61440) = 32768 AND i.size = b.size AND b.blake3 IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM fs_content_hash h \
                               WHERE h.ino = i.ino AND h.size = i.size) \
               AND i.ino IN (SELECT ino FROM fs_change \
                             WHERE op IN ('write', 'truncate', 'fallocate'))",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut done = 0;
    for ino in candidates {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = hash_one(conn, ino);
        match result {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        done += 1;
    }
    Ok(done)
}

fn hash_one(conn: &Connection, ino: i64) -> Result<(), DiffError> {
    let Some(bytes) = file_bytes(conn, Ino(ino as u64))? else {
        return Ok(());
    };
    conn.execute(
        "INSERT OR REPLACE INTO fs_content_hash (ino, blake3, size) VALUES (?1, ?2, ?3)",
        params![
            ino,
            &blake3::hash(&bytes).as_bytes()[..],
            bytes.len() as i64
        ],
    )?;
    Ok(())
}

/// The session's base directory (`fs_overlay_config.base_path`), if it overlays one.
pub fn base_dir(conn: &Connection) -> rusqlite::Result<Option<PathBuf>> {
    conn.query_row(
        "SELECT value FROM fs_overlay_config WHERE key = 'base_path'",
        [],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map(|p| p.map(PathBuf::from))
}

/// The bytes of a regular file of the session, holes as zeros; `None` for other kinds or a
/// missing inode.
pub fn file_bytes(conn: &Connection, ino: Ino) -> Result<Option<Vec<u8>>, DiffError> {
    let attr = match rows::attr(conn, ino) {
        Ok(a) => a,
        Err(VfsError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if attr.kind != FileKind::File {
        return Ok(None);
    }
    let chunk_size: u64 = conn
        .query_row(
            "SELECT CAST(value AS INTEGER) FROM fs_config WHERE key = 'chunk_size'",
            [],
            |r| r.get::<_, i64>(0),
        )?
        .max(1) as u64;
    let base = crate::vfs::base_bytes_of(conn, base_dir(conn)?.as_deref(), ino)?;
    let mut out = Vec::with_capacity(attr.size as usize);
    while (out.len() as u64) < attr.size {
        let offset = out.len() as u64;
        let step = (64u64 << 20).min(attr.size - offset) as u32;
        let part = data::read(
            conn,
            chunk_size,
            ino,
            attr.size,
            offset,
            step,
            base.as_ref(),
        )?;
        if part.is_empty() {
            break;
        }
        out.extend_from_slice(&part);
    }
    Ok(Some(out))
}

/// What a patch shows of a session entry: a file's bytes or a symlink's target.
pub fn entry_bytes(conn: &Connection, ino: i64) -> Result<Option<Vec<u8>>, DiffError> {
    let target: Option<Vec<u8>> = conn
        .query_row(
            "SELECT CAST(target AS BLOB) FROM fs_symlink WHERE ino = ?1",
            [ino],
            |r| r.get(0),
        )
        .optional()?;
    match target {
        Some(t) => Ok(Some(t)),
        None => file_bytes(conn, Ino(ino as u64)),
    }
}

/// The host path of session path `path` inside `base`; `None` if `path` tries to leave it.
pub fn host_path(base: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(base.join(rel))
}

/// What the base has at `path`: a regular file's bytes or a symlink's target; `None` for a
/// directory, anything else, or nothing there.
pub fn base_bytes(base: &Path, path: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let host = host_path(base, path)?;
    let md = std::fs::symlink_metadata(&host).ok()?;
    if md.file_type().is_symlink() {
        return std::fs::read_link(&host)
            .ok()
            .map(|t| t.as_os_str().as_bytes().to_vec());
    }
    if !md.is_file() {
        return None;
    }
    std::fs::read(&host).ok()
}

/// Whether `bytes` are shown as text: valid UTF-8 without NUL in the first 8000 bytes
/// (git's test for binary files, plus UTF-8 so the patch shows the bytes exactly).
pub fn is_text(bytes: &[u8]) -> bool {
    !bytes[..bytes.len().min(8000)].contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// A unified diff of two versions (`None`: the file does not exist on that side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// The `---`/`+++` header and hunks; empty if the texts are equal.
    Text {
        text: String,
        insertions: usize,
        deletions: usize,
    },
    Binary,
}

/// Compares `old` and `new` line by line (the `similar` crate's Myers diff, 3 lines of
/// context) and labels them `a/NAME` and `b/NAME` (`/dev/null` for a missing side).
pub fn unified(old: Option<&[u8]>, new: Option<&[u8]>, old_name: &str, new_name: &str) -> Patch {
    fn text(b: Option<&[u8]>) -> Option<&str> {
        match b {
            None => Some(""),
            Some(b) if is_text(b) => std::str::from_utf8(b).ok(),
            Some(_) => None,
        }
    }
    let (Some(a), Some(b)) = (text(old), text(new)) else {
        return Patch::Binary;
    };
    let diff = similar::TextDiff::from_lines(a, b);
    let (mut insertions, mut deletions) = (0, 0);
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            match change.tag() {
                similar::ChangeTag::Insert => insertions += 1,
                similar::ChangeTag::Delete => deletions += 1,
                similar::ChangeTag::Equal => {}
            }
        }
    }
    if insertions + deletions == 0 {
        return Patch::Text {
            text: String::new(),
            insertions,
            deletions,
        };
    }
    let label = |side: Option<&[u8]>, prefix: &str, name: &str| match side {
        None => "/dev/null".to_string(),
        Some(_) => format!("{prefix}/{}", name.trim_start_matches('/')),
    };
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&label(old, "a", old_name), &label(new, "b", new_name))
        .to_string();
    Patch::Text {
        text,
        insertions,
        deletions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diff_counts_lines_and_labels_sides() {
        let Patch::Text {
            text,
            insertions,
            deletions,
        } = unified(Some(b"a\nb\nc\n"), Some(b"a\nB\nc\nd\n"), "/f", "/f")
        else {
            panic!("not text")
        };
        assert_eq!((insertions, deletions), (2, 1));
        assert!(
            text.starts_with("--- a/f\n+++ b/f\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n"),
            "{text}"
        );
        let Patch::Text { text, .. } = unified(None, Some(b"x\n"), "/n", "/n") else {
            panic!("not text")
        };
        assert!(text.starts_with("--- /dev/null\n+++ b/n\n"), "{text}");
    }

    #[test]
    fn nul_bytes_or_invalid_utf8_make_a_binary_patch() {
        assert_eq!(
            unified(Some(b"a\0b"), Some(b"ab"), "/f", "/f"),
            Patch::Binary
        );
        assert_eq!(
            unified(None, Some(&[0xff, 0xfe]), "/f", "/f"),
            Patch::Binary
        );
        assert!(is_text(b"plain\n") && !is_text(b"\0"));
    }

    #[test]
    fn paths_that_leave_the_base_are_refused() {
        assert_eq!(host_path(Path::new("/b"), "/x/../../etc"), None);
        assert_eq!(
            host_path(Path::new("/b"), "/x/y"),
            Some(PathBuf::from("/b/x/y"))
        );
    }
}
