//! How `agentfs diff` shows changes: git-style patches (optionally coloured), name-status
//! lines, a diffstat and JSON.

use std::path::Path;

use rusqlite::Connection;

use super::{Change, DiffError, Patch, Status, base_bytes, entry_bytes, unified};

/// Both sides of one change: what the base has and what the session has (`None`: nothing
/// comparable there, e.g. a directory or a deleted path).
pub struct Sides {
    pub old: Option<Vec<u8>>,
    pub new: Option<Vec<u8>>,
}

impl Sides {
    pub fn of(conn: &Connection, base: Option<&Path>, c: &Change) -> Result<Sides, DiffError> {
        let old = match c.status {
            Status::Added => None,
            _ => base.and_then(|b| base_bytes(b, c.base_path())),
        };
        let new = match (c.status, c.ino) {
            (Status::Deleted, _) | (_, None) => None,
            (_, Some(ino)) => entry_bytes(conn, ino)?,
        };
        Ok(Sides { old, new })
    }

    pub fn patch(&self, c: &Change) -> Patch {
        unified(
            self.old.as_deref(),
            self.new.as_deref(),
            c.base_path(),
            &c.path,
        )
    }
}

/// Mode bits of the session entry and of the base entry, when both are known and differ.
fn mode_change(conn: &Connection, base: Option<&Path>, c: &Change) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let ino = c.ino?;
    let new: u32 = conn
        .query_row("SELECT mode FROM fs_inode WHERE ino = ?1", [ino], |r| {
            r.get(0)
        })
        .ok()?;
    let host = super::host_path(base?, c.base_path())?;
    let old = std::fs::symlink_metadata(host).ok()?.mode();
    (old != new && old & 0o170000 == new & 0o170000).then_some((old, new))
}

fn new_mode(conn: &Connection, c: &Change) -> Option<u32> {
    conn.query_row("SELECT mode FROM fs_inode WHERE ino = ?1", [c.ino?], |r| {
        r.get(0)
    })
    .ok()
}

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[m";

/// The patch of every change, as `git diff` prints it. Directories have no patch.
pub fn patches(
    conn: &Connection,
    base: Option<&Path>,
    changes: &[Change],
    color: bool,
) -> Result<String, DiffError> {
    let mut out = String::new();
    for c in changes {
        let sides = Sides::of(conn, base, c)?;
        if sides.old.is_none() && sides.new.is_none() && c.status != Status::Renamed {
            continue;
        }
        let a = c.base_path().trim_start_matches('/');
        let b = c.path.trim_start_matches('/');
        let mut head = vec![format!("diff --git a/{a} b/{b}")];
        match c.status {
            Status::Added => {
                let mode = new_mode(conn, c).unwrap_or(0o100644);
                head.push(format!("new file mode {mode:o}"));
            }
            Status::Deleted => head.push("deleted file".to_string()),
            Status::Renamed => {
                head.push(format!("rename from {a}"));
                head.push(format!("rename to {b}"));
            }
            Status::Modified | Status::TypeChanged => {}
        }
        if let Some((old, new)) = mode_change(conn, base, c) {
            head.push(format!("old mode {old:o}"));
            head.push(format!("new mode {new:o}"));
        }
        let body = match sides.patch(c) {
            Patch::Binary => {
                let side = |s: &Option<Vec<u8>>, p: &str, name: &str| match s {
                    Some(_) => format!("{p}/{name}"),
                    None => "/dev/null".to_string(),
                };
                format!(
                    "Binary files {} and {} differ\n",
                    side(&sides.old, "a", a),
                    side(&sides.new, "b", b)
                )
            }
            Patch::Text { text, .. } => text,
        };
        for line in &head {
            push_line(&mut out, line, color.then_some(BOLD));
        }
        for line in body.lines() {
            push_line(&mut out, line, body_paint(line).filter(|_| color));
        }
    }
    Ok(out)
}

/// The colour of a line of a unified diff's body (header, hunk, removed, added).
fn body_paint(line: &str) -> Option<&'static str> {
    match line.as_bytes().first() {
        _ if line.starts_with("--- ") || line.starts_with("+++ ") => Some(BOLD),
        Some(b'@') => Some(CYAN),
        Some(b'-') => Some(RED),
        Some(b'+') => Some(GREEN),
        _ => None,
    }
}

/// A unified diff (as [`super::unified`] makes it) in the colours `git diff` uses.
pub fn paint(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        push_line(&mut out, line, body_paint(line));
    }
    out
}

/// `line` in bold, for a header.
pub fn bold(line: &str) -> String {
    format!("{BOLD}{line}{RESET}")
}

fn push_line(out: &mut String, line: &str, paint: Option<&str>) {
    match paint {
        Some(p) => {
            out.push_str(p);
            out.push_str(line);
            out.push_str(RESET);
        }
        None => out.push_str(line),
    }
    out.push('\n');
}

/// One line per change: `M /path`, `R /from -> /to`, directories ending in `/`.
pub fn name_status(changes: &[Change]) -> String {
    changes.iter().map(|c| format!("{c}\n")).collect()
}

/// A diffstat: lines added and removed per file, binary files by size, and a total.
pub fn stat(
    conn: &Connection,
    base: Option<&Path>,
    changes: &[Change],
) -> Result<String, DiffError> {
    let mut rows = Vec::new();
    let (mut files, mut ins, mut del) = (0, 0, 0);
    for c in changes.iter().filter(|c| !c.is_dir()) {
        let sides = Sides::of(conn, base, c)?;
        let name = match &c.old_path {
            Some(from) => format!("{from} => {}", c.path),
            None => c.path.clone(),
        };
        files += 1;
        let detail = match sides.patch(c) {
            Patch::Binary => format!(
                "Bin {} -> {} bytes",
                sides.old.as_ref().map_or(0, Vec::len),
                sides.new.as_ref().map_or(0, Vec::len)
            ),
            Patch::Text {
                insertions,
                deletions,
                ..
            } => {
                ins += insertions;
                del += deletions;
                let scale = (insertions + deletions).div_ceil(50).max(1);
                format!(
                    "{} {}{}",
                    insertions + deletions,
                    "+".repeat(insertions.div_ceil(scale)),
                    "-".repeat(deletions.div_ceil(scale))
                )
            }
        };
        rows.push((name, detail));
    }
    let wide = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut out: String = rows
        .iter()
        .map(|(n, d)| format!(" {n:<wide$} | {d}").trim_end().to_string() + "\n")
        .collect();
    out.push_str(&format!(
        " {files} file{} changed, {ins} insertion{}(+), {del} deletion{}(-)\n",
        plural(files),
        plural(ins),
        plural(del)
    ));
    Ok(out)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The changes as a JSON array: the `fs_changes` columns plus `binary`, `insertions` and
/// `deletions` of the patch (null for directories).
pub fn json(
    conn: &Connection,
    base: Option<&Path>,
    changes: &[Change],
) -> Result<String, DiffError> {
    use serde_json::{Value, json};
    let mut items = Vec::new();
    for c in changes {
        let (binary, ins, del) = if c.is_dir() {
            (Value::Null, Value::Null, Value::Null)
        } else {
            match Sides::of(conn, base, c)?.patch(c) {
                Patch::Binary => (true.into(), Value::Null, Value::Null),
                Patch::Text {
                    insertions,
                    deletions,
                    ..
                } => (false.into(), insertions.into(), deletions.into()),
            }
        };
        items.push(json!({
            "path": c.path,
            "status": c.status.letter().to_string(),
            "old_path": c.old_path,
            "type": c.kind,
            "size_before": c.size_before,
            "size_after": c.size_after,
            "time": c.time,
            "runner": c.runner,
            "binary": binary,
            "insertions": ins,
            "deletions": del,
        }));
    }
    Ok(format!("{}\n", Value::Array(items)))
}
