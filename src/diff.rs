//! What a session changed relative to its base: added, modified, renamed and deleted paths,
//! from the delta's entries, `fs_origin` / `fs_base_identity` and the whiteouts. A copied-up
//! file counts as modified only if its bytes (blake3) or its mode differ from the base.

use std::collections::BTreeMap;

use crate::vfs::{FileKind, Ino, Vfs, VfsResult};

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Added(String),
    Modified(String),
    Renamed { from: String, to: String },
    Deleted(String),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added(p) => write!(f, "A {p}"),
            Change::Modified(p) => write!(f, "M {p}"),
            Change::Renamed { from, to } => write!(f, "R {from} -> {to}"),
            Change::Deleted(p) => write!(f, "D {p}"),
        }
    }
}

struct Origin {
    base_path: String,
    size: i64,
    blake3: Option<Vec<u8>>,
}

/// The changes of the session in `vfs` against its base directory `base`, sorted by path.
pub fn changes(vfs: &Vfs, base: Option<&std::path::Path>) -> VfsResult<Vec<Change>> {
    use std::os::unix::fs::PermissionsExt;
    let origins: BTreeMap<u64, Origin> = {
        let store = vfs.store()?;
        let mut stmt = store
            .conn
            .prepare("SELECT ino, base_path, size, blake3 FROM fs_base_identity")?;
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                Origin {
                    base_path: r.get(1)?,
                    size: r.get(2)?,
                    blake3: r.get(3)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut out = Vec::new();
    // Walk the delta tree.
    let mut stack = vec![(Ino::ROOT, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let mut after = 0;
        loop {
            let batch = vfs.readdir_plus(dir, after, 1024)?;
            let Some(last) = batch.last() else { break };
            after = last.0.offset;
            for (entry, attr) in batch {
                let path = format!("{prefix}/{}", String::from_utf8_lossy(&entry.name));
                if attr.kind == FileKind::Dir {
                    stack.push((attr.ino, path.clone()));
                }
                match origins.get(&attr.ino.0) {
                    None if attr.kind == FileKind::Dir => {
                        out.push(Change::Added(format!("{path}/")))
                    }
                    None => out.push(Change::Added(path)),
                    Some(o) => {
                        if o.base_path != path {
                            out.push(Change::Renamed {
                                from: o.base_path.clone(),
                                to: path.clone(),
                            });
                        }
                        if attr.kind == FileKind::Dir {
                            continue;
                        }
                        let mode_changed = base
                            .and_then(|b| {
                                std::fs::symlink_metadata(
                                    b.join(o.base_path.trim_start_matches('/')),
                                )
                                .ok()
                            })
                            .is_some_and(|m| m.permissions().mode() & 0o7777 != attr.perm);
                        let bytes_changed = attr.kind == FileKind::File
                            && (attr.size as i64 != o.size
                                || o.blake3.as_deref() != Some(&vfs.content_hash(attr.ino)?[..]));
                        if mode_changed || bytes_changed {
                            out.push(Change::Modified(path));
                        }
                    }
                }
            }
        }
    }
    let store = vfs.store()?;
    let mut stmt = store.conn.prepare("SELECT path FROM fs_whiteout")?;
    let whiteouts: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let renamed_from: std::collections::HashSet<String> = out
        .iter()
        .filter_map(|c| match c {
            Change::Renamed { from, .. } => Some(from.clone()),
            _ => None,
        })
        .collect();
    for w in whiteouts {
        if !renamed_from.contains(&w) {
            out.push(Change::Deleted(w));
        }
    }
    out.sort_by(|a, b| key(a).cmp(key(b)));
    Ok(out)
}

fn key(c: &Change) -> &str {
    match c {
        Change::Added(p) | Change::Modified(p) | Change::Deleted(p) => p,
        Change::Renamed { to, .. } => to,
    }
}
