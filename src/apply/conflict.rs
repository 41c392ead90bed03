//! Whether the host changed a base path after the session took it over: then applying the
//! session there would silently drop the host's change.
//!
//! A path the session copied up has its identity recorded (`fs_base_identity`: size and
//! blake3), so the check is exact. A path the session replaced or deleted without copying it
//! has none; for those the host entry's ctime is compared with the session's first journaled
//! change at that path (ctime, unlike mtime, cannot be set back by tools).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use rusqlite::Connection;

use super::ApplyError;
use super::plan::{Item, Status};
use super::tree::{BaseTree, Entry};
use crate::vfs::names;

/// A path left alone because the host changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// What the base had at a path when the session copied it up.
struct Identity {
    size: u64,
    /// None for a partially copied-up file (and for non-files): then its size and mtime
    /// identify the base file.
    blake3: Option<Vec<u8>>,
    mtime_ns: i64,
    is_file: bool,
}

/// What the session knows about the base paths of a plan, read once.
pub struct Checker {
    identities: HashMap<String, Identity>,
    /// Path -> time (Unix ns) of the session's first journaled change there.
    first_change: HashMap<String, i64>,
}

impl Checker {
    /// Loads the identities and journal times of the paths `items` touch.
    pub fn load(conn: &Connection, items: &[Item]) -> Result<Checker, ApplyError> {
        let wanted: std::collections::HashSet<String> = items
            .iter()
            .flat_map(|i| i.touched().into_iter().map(|(p, _)| p.to_string()))
            .collect();
        let mut identities = HashMap::new();
        // Oldest first, so the newest copy of a path wins.
        let mut stmt = conn.prepare(
            "SELECT b.base_path, b.size, b.blake3, b.mtime_ns, \
                 (i.mode & 61440) = 32768 OR (b.mode & 61440) = 32768 \
                 FROM fs_base_identity b LEFT JOIN fs_inode i ON i.ino = b.ino ORDER BY b.ino",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                names::from_sql(r.get_ref(0)?)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<bool>>(4)?.unwrap_or(false),
            ))
        })?;
        for row in rows {
            let (path, size, blake3, mtime_ns, is_file) = row?;
            let path = String::from_utf8_lossy(&path).into_owned();
            if wanted.contains(&path) {
                identities.insert(
                    path,
                    Identity {
                        size: size as u64,
                        blake3,
                        mtime_ns,
                        is_file,
                    },
                );
            }
        }
        // One scan of the journal (it has no index on paths).
        let mut first_change: HashMap<String, i64> = HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT path, old_path, time_ns FROM fs_change \
             WHERE path IS NOT NULL OR old_path IS NOT NULL ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            let path = match r.get_ref(0)? {
                rusqlite::types::ValueRef::Null => None,
                v => Some(names::from_sql(v)?),
            };
            let old = match r.get_ref(1)? {
                rusqlite::types::ValueRef::Null => None,
                v => Some(names::from_sql(v)?),
            };
            Ok((path, old, r.get::<_, i64>(2)?))
        })?;
        for row in rows {
            let (path, old, time) = row?;
            for p in [path, old].into_iter().flatten() {
                let p = String::from_utf8_lossy(&p).into_owned();
                if wanted.contains(&p) {
                    first_change.entry(p).or_insert(time);
                }
            }
        }
        Ok(Checker {
            identities,
            first_change,
        })
    }

    /// Why applying `item` would overwrite a change of the host, if it would.
    pub fn check(&self, base: &BaseTree, item: &Item) -> Result<Option<Conflict>, ApplyError> {
        for (path, now) in item.touched() {
            let removing = item.status == Status::Deleted || path != item.path;
            if let Some(reason) = self.check_path(base, path, now, removing)? {
                return Ok(Some(Conflict {
                    path: path.to_string(),
                    reason,
                }));
            }
        }
        Ok(None)
    }

    fn check_path(
        &self,
        base: &BaseTree,
        path: &str,
        now: &Entry,
        removing: bool,
    ) -> Result<Option<String>, ApplyError> {
        if let Some(id) = self.identities.get(path) {
            let same = match now {
                // Gone already: fine if the session removes it too.
                Entry::Missing => removing,
                Entry::File { size, blake3, .. } => match &id.blake3 {
                    Some(h) => *size == id.size && h[..] == blake3[..],
                    None if id.is_file => {
                        use std::os::unix::fs::MetadataExt;
                        *size == id.size
                            && base.metadata(path)?.is_some_and(|md| {
                                md.mtime() * 1_000_000_000 + md.mtime_nsec() == id.mtime_ns
                            })
                    }
                    None => false,
                },
                Entry::Symlink { target } => id.blake3.is_none() && target.len() as u64 == id.size,
                Entry::Dir { .. } | Entry::Special { .. } => id.blake3.is_none(),
            };
            return Ok((!same).then(|| {
                if now.is_missing() {
                    "deleted on the host since the session copied it".to_string()
                } else {
                    "changed on the host since the session copied it".to_string()
                }
            }));
        }
        // Directories change whenever an entry comes or goes; only their kind is checked.
        if now.is_missing() || now.is_dir() {
            return Ok(None);
        }
        let Some(first) = self.first_change.get(path) else {
            return Ok(None);
        };
        let Some(md) = base.metadata(path)? else {
            return Ok(None);
        };
        let ctime = md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128;
        Ok((ctime > *first as i128)
            .then(|| "changed on the host after the session changed it".to_string()))
    }
}
