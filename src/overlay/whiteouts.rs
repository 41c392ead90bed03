//! The session's whiteouts as the overlay keeps them in memory.

use std::collections::{HashMap, HashSet};

/// The session's whiteouts, as names per base directory.
#[derive(Debug, Default)]
pub(super) struct Whiteouts(HashMap<Vec<u8>, HashSet<Vec<u8>>>);

impl Whiteouts {
    /// `path`'s directory and name, split as `fs_whiteout.parent_path` is.
    fn split(path: &[u8]) -> (&[u8], &[u8]) {
        match path.iter().rposition(|&b| b == b'/') {
            Some(0) | None => (b"/", path.strip_prefix(b"/").unwrap_or(path)),
            Some(cut) => (&path[..cut], &path[cut + 1..]),
        }
    }

    pub(super) fn contains(&self, path: &[u8]) -> bool {
        let (dir, name) = Self::split(path);
        self.0.get(dir).is_some_and(|names| names.contains(name))
    }

    pub(super) fn set(&mut self, path: &[u8], on: bool) {
        let (dir, name) = Self::split(path);
        if on {
            self.0
                .entry(dir.to_vec())
                .or_default()
                .insert(name.to_vec());
        } else if let Some(names) = self.0.get_mut(dir) {
            names.remove(name);
            if names.is_empty() {
                self.0.remove(dir);
            }
        }
    }

    /// Names whited out directly in base directory `dir`.
    pub(super) fn names_in(&self, dir: &[u8]) -> Option<&HashSet<Vec<u8>>> {
        self.0.get(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::Whiteouts;

    #[test]
    fn whiteouts_are_kept_per_directory_as_fs_whiteout_splits_them() {
        let mut w = Whiteouts::default();
        w.set(b"/top", true);
        w.set(b"/a/b/c", true);
        w.set(b"/a/b/d", true);
        assert!(w.contains(b"/top") && w.contains(b"/a/b/c"));
        assert!(!w.contains(b"/a/b") && !w.contains(b"/a/top") && !w.contains(b"/c"));
        let names: Vec<&[u8]> = w.names_in(b"/").unwrap().iter().map(|n| &n[..]).collect();
        assert_eq!(names, [&b"top"[..]]);
        assert_eq!(w.names_in(b"/a/b").unwrap().len(), 2);
        w.set(b"/a/b/c", false);
        w.set(b"/a/b/d", false);
        assert!(w.names_in(b"/a/b").is_none());
        assert!(!w.contains(b"/a/b/c"));
    }
}
