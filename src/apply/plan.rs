//! What applying a session would do: the paths `diff::changes` names, each compared between
//! the base as it is now and the session's merged view, as git's name-status sees them.
//!
//! The base is what the patch is made against, so a path counts as modified whenever both
//! sides have it and they differ, even where the session replaced the file with a new one
//! (`sed -i`, editors that save through a temporary file), which `diff` lists as added.

use std::collections::{BTreeMap, BTreeSet};

use crate::diff::{self, Change};

use super::ApplyError;
use super::tree::{BaseTree, Entry, SessionTree};

/// How a path changes, as in `git diff --name-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Added,
    Modified,
    Deleted,
    /// Moved here from `from`, which the session no longer has.
    Renamed {
        from: String,
    },
}

/// One change to apply: the path, and what each side has there.
#[derive(Debug, Clone)]
pub struct Item {
    pub status: Status,
    /// The path changed (for a rename, where it moved to), like `/src/main.rs`.
    pub path: String,
    /// The base now, at `path`.
    pub base: Entry,
    /// The session's merged view, at `path`.
    pub session: Entry,
    /// For a rename: the base now, at the source.
    pub base_from: Entry,
}

impl Item {
    /// The paths of the base this change writes or removes.
    pub fn touched(&self) -> Vec<(&str, &Entry)> {
        let mut out = vec![(self.path.as_str(), &self.base)];
        if let Status::Renamed { from } = &self.status {
            out.push((from.as_str(), &self.base_from));
        }
        out
    }

    /// Whether the session has something at `path` that the base must be given.
    pub fn writes(&self) -> bool {
        !self.session.is_missing()
    }
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slash = if self.session.is_dir() || (self.session.is_missing() && self.base.is_dir()) {
            "/"
        } else {
            ""
        };
        let p = &self.path;
        match &self.status {
            Status::Added => write!(f, "A {p}{slash}"),
            Status::Modified => write!(f, "M {p}{slash}"),
            Status::Deleted => write!(f, "D {p}{slash}"),
            Status::Renamed { from } => write!(f, "R {from} -> {p}"),
        }
    }
}

/// The changes that make the base look like the session, sorted by path; with `filters`,
/// only those at or below one of the given paths (plus the new directories they need).
pub fn build(
    changes: &[Change],
    base: &BaseTree,
    session: &SessionTree,
    filters: &[String],
) -> Result<Vec<Item>, ApplyError> {
    let mut renames = Vec::new();
    let mut paths = BTreeSet::new();
    for change in changes {
        // diff names paths as UTF-8 (lossily): such a path would name nothing.
        if let Some(p) = change_paths(change)
            .into_iter()
            .find(|p| p.contains('\u{FFFD}'))
        {
            return Err(ApplyError::NotUtf8(p.to_string()));
        }
        match (&change.old_path, change.status) {
            (Some(from), diff::Status::Renamed) => {
                renames.push((normalize(from), normalize(&change.path)))
            }
            _ => {
                paths.insert(normalize(&change.path));
            }
        }
    }
    let mut items = BTreeMap::new();
    for (from, to) in renames {
        let base_from = base.entry(&from)?;
        let base_to = base.entry(&to)?;
        let session_to = session.entry(&to)?;
        let same_kind = std::mem::discriminant(&base_from) == std::mem::discriminant(&session_to);
        // A clean move: the source is gone from the session, the target is new to the base.
        // Anything else (a hard link left at the source, a target the base has) is applied
        // as the separate changes of the two paths.
        if same_kind
            && !base_from.is_dir()
            && base_to.is_missing()
            && session.entry(&from)?.is_missing()
            && !paths.contains(&from)
        {
            paths.remove(&to);
            items.insert(
                to.clone(),
                Item {
                    status: Status::Renamed { from },
                    path: to,
                    base: base_to,
                    session: session_to,
                    base_from,
                },
            );
        } else {
            if base_from.is_dir() || session_to.is_dir() {
                // A moved directory: what was below it in the base goes, what is below it
                // in the session comes (both compared path by path like any change).
                paths.extend(base.descendants(&from)?);
                paths.extend(session.descendants(&to)?);
            }
            paths.insert(from);
            paths.insert(to);
        }
    }
    for path in paths {
        if items.contains_key(&path) {
            continue;
        }
        let b = base.entry(&path)?;
        let s = session.entry(&path)?;
        let status = match (&b, &s) {
            (Entry::Missing, Entry::Missing) => continue,
            (Entry::Missing, _) => Status::Added,
            (_, Entry::Missing) => Status::Deleted,
            (b, s) if b == s => continue,
            _ => Status::Modified,
        };
        items.insert(
            path.clone(),
            Item {
                status,
                path,
                base: b,
                session: s,
                base_from: Entry::Missing,
            },
        );
    }
    let mut items: Vec<Item> = items.into_values().collect();
    if !filters.is_empty() {
        let filters: Vec<String> = filters.iter().map(|f| normalize(f)).collect();
        let selected: Vec<bool> = items
            .iter()
            .map(|i| {
                i.touched()
                    .iter()
                    .any(|(p, _)| filters.iter().any(|f| within(p, f)))
            })
            .collect();
        // New directories above a selected path come along: the path cannot exist without.
        let needed: BTreeSet<String> = items
            .iter()
            .zip(&selected)
            .filter(|(_, s)| **s)
            .flat_map(|(i, _)| ancestors(&i.path))
            .collect();
        items = items
            .into_iter()
            .zip(selected)
            .filter(|(i, s)| *s || (i.session.is_dir() && needed.contains(&i.path)))
            .map(|(i, _)| i)
            .collect();
    }
    Ok(items)
}

fn change_paths(c: &Change) -> Vec<&str> {
    let mut paths = vec![c.path.as_str()];
    paths.extend(c.old_path.as_deref());
    paths
}

/// `/a/b` for `a/b/`, `/a//b` or `/a/b`; `/` for the root.
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Whether `path` is `top` or below it.
pub fn within(path: &str, top: &str) -> bool {
    top == "/"
        || path == top
        || (path.starts_with(top) && path.as_bytes().get(top.len()) == Some(&b'/'))
}

/// The directories above `path`, nearest first (the root not included).
pub fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = path;
    while let Some(cut) = cur.rfind('/') {
        cur = &cur[..cut];
        if cur.is_empty() {
            break;
        }
        out.push(cur.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_gives_one_spelling() {
        assert_eq!(normalize("a/b/"), "/a/b");
        assert_eq!(normalize("/a//b"), "/a/b");
        assert_eq!(normalize("./a"), "/a");
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn within_matches_whole_components() {
        assert!(within("/src/a.rs", "/src"));
        assert!(within("/src", "/src"));
        assert!(!within("/srcx", "/src"));
        assert!(within("/x", "/"));
    }

    #[test]
    fn ancestors_are_nearest_first() {
        assert_eq!(ancestors("/a/b/c"), vec!["/a/b", "/a"]);
        assert!(ancestors("/a").is_empty());
    }
}
