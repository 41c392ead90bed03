//! The `search` tool: entries whose path matches a glob, and lines of text files that match
//! a regular expression, below a directory of the merged view, with a bounded output.

use crate::vfs::{FileKind, Ino};

use super::ToolError;
use super::files::Files;

/// Files larger than this are not searched for content (they are rarely source).
const MAX_SEARCHED_FILE: u64 = 4 << 20;

/// A matching line is cut to this many characters in the output.
const MAX_LINE_CHARS: usize = 300;

/// What to look for.
pub(super) struct Query<'a> {
    pub root: &'a str,
    pub glob: Option<globset::GlobMatcher>,
    pub regex: Option<regex::bytes::Regex>,
    pub max_results: usize,
}

/// The matches, one per line (`path` for a name match, `path:line: text` for content), and
/// whether the output stopped at `max_results`.
pub(super) fn search(files: &Files, q: &Query<'_>) -> Result<(Vec<String>, bool), ToolError> {
    let start = files.walk(q.root, true)?;
    let root = format!("/{}", q.root.trim_matches('/'));
    let mut out = Vec::new();
    let mut stack: Vec<(Ino, String)> = vec![(start, root.trim_end_matches('/').to_string())];
    while let Some((dir, path)) = stack.pop() {
        let mut entries = files
            .overlay
            .list(dir)
            .map_err(|e| ToolError::path(&path, e))?;
        entries.sort_by(|a, b| b.name.cmp(&a.name));
        for e in entries {
            let child = format!("{path}/{}", String::from_utf8_lossy(&e.name));
            let relative = child[root.trim_end_matches('/').len()..].trim_start_matches('/');
            if e.attr.kind == FileKind::Dir {
                stack.push((e.attr.ino, child.clone()));
            }
            let name_ok = q.glob.as_ref().is_none_or(|g| g.is_match(relative));
            if !name_ok {
                continue;
            }
            let Some(re) = &q.regex else {
                out.push(child);
                if out.len() >= q.max_results {
                    return Ok((out, true));
                }
                continue;
            };
            if e.attr.kind != FileKind::File || e.attr.size > MAX_SEARCHED_FILE {
                continue;
            }
            let bytes = files.read(&child)?;
            if !crate::diff::is_text(&bytes) {
                continue;
            }
            for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if re.is_match(line) {
                    let text: String = String::from_utf8_lossy(line)
                        .chars()
                        .take(MAX_LINE_CHARS)
                        .collect();
                    out.push(format!("{child}:{}: {text}", n + 1));
                    if out.len() >= q.max_results {
                        return Ok((out, true));
                    }
                }
            }
        }
    }
    Ok((out, false))
}
