//! A git patch of a plan, as `git diff --binary` would write it, so `git apply` takes it on
//! the base: unified diffs for text, `GIT binary patch` literals (zlib, base85) for binary
//! files, new/deleted file modes, mode changes, renames and symlinks (mode 120000).
//!
//! Git records files and symlinks only: empty directories and directory modes cannot be
//! expressed; they are returned as warnings. So are paths under `.git`, which `git apply`
//! refuses.

use std::io::Write;

use sha1::{Digest, Sha1};
use similar::TextDiff;

use super::ApplyError;
use super::plan::{Item, Status, within};
use super::tree::{BaseTree, Entry, SessionTree};
use crate::progress::Progress;

/// Lines of context around each change, as git's default.
const CONTEXT: usize = 3;

/// One side of a file-level diff.
struct Blob {
    mode: u32,
    bytes: Vec<u8>,
}

/// Writes the patch of `items` to `out`; returns what it could not express. Tells
/// `progress` of each item done, with the bytes of the session's file there.
pub fn write_patch(
    items: &[Item],
    base: &BaseTree,
    session: &SessionTree,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<Vec<String>, ApplyError> {
    let mut warnings = Vec::new();
    let w = |e| ApplyError::io(std::path::Path::new("patch output"), e);
    progress.start(
        "exporting",
        Some(items.len() as u64),
        Some(items.iter().map(|i| i.session.file_bytes()).sum()),
    );
    for item in items {
        progress.advance(1, item.session.file_bytes());
        if item.touched().iter().any(|(p, _)| within(p, "/.git")) {
            warnings.push(format!("{item} (git apply refuses paths in .git)"));
            continue;
        }
        let old_path = match &item.status {
            Status::Renamed { from } => from.as_str(),
            _ => item.path.as_str(),
        };
        let old_entry = match &item.status {
            Status::Renamed { .. } => &item.base_from,
            _ => &item.base,
        };
        let old = blob(old_entry, || base.read(old_path), &mut warnings, old_path)?;
        let new = blob(
            &item.session,
            || session.read(&item.path),
            &mut warnings,
            &item.path,
        )?;
        let renamed = matches!(item.status, Status::Renamed { .. });
        match (old, new) {
            (None, None) => {
                if item.session.is_dir()
                    && (item.status == Status::Added || !item.base.is_dir())
                    && !has_files_below(items, &item.path)
                {
                    warnings.push(format!("{item} (an empty directory)"));
                } else if item.session.is_dir() && item.base.is_dir() {
                    warnings.push(format!("{item} (a directory's mode)"));
                }
            }
            (Some(o), Some(n)) if renamed || o.mode == n.mode || !kind_change(o.mode, n.mode) => {
                file_diff(out, old_path, &item.path, Some(&o), Some(&n), renamed).map_err(w)?;
            }
            (o, n) => {
                // A kind change (file, symlink) is a deletion and a creation, as git writes it.
                if let Some(o) = o {
                    file_diff(out, old_path, old_path, Some(&o), None, false).map_err(w)?;
                }
                if let Some(n) = n {
                    file_diff(out, &item.path, &item.path, None, Some(&n), false).map_err(w)?;
                }
            }
        }
        if let (Entry::File { perm: a, .. }, Entry::File { perm: b, .. }) =
            (old_entry, &item.session)
            && a != b
            && git_mode(*a) == git_mode(*b)
        {
            warnings.push(format!(
                "{item} (mode {a:o} -> {b:o}: git keeps only the executable bit)"
            ));
        }
    }
    progress.finish();
    Ok(warnings)
}

fn has_files_below(items: &[Item], dir: &str) -> bool {
    items
        .iter()
        .any(|i| i.path != dir && within(&i.path, dir) && !i.session.is_dir() && i.writes())
}

fn kind_change(a: u32, b: u32) -> bool {
    (a == 0o120000) != (b == 0o120000)
}

/// Git's mode for a file or symlink: 100755 if the owner may execute, else 100644.
fn git_mode(perm: u32) -> u32 {
    if perm & 0o100 != 0 {
        0o100755
    } else {
        0o100644
    }
}

fn blob(
    entry: &Entry,
    read: impl FnOnce() -> Result<Vec<u8>, ApplyError>,
    warnings: &mut Vec<String>,
    path: &str,
) -> Result<Option<Blob>, ApplyError> {
    Ok(match entry {
        Entry::File { perm, .. } => Some(Blob {
            mode: git_mode(*perm),
            bytes: read()?,
        }),
        Entry::Symlink { target } => Some(Blob {
            mode: 0o120000,
            bytes: target.clone(),
        }),
        Entry::Special { kind } => {
            warnings.push(format!("{path} (a special file, {kind:?})"));
            None
        }
        Entry::Missing | Entry::Dir { .. } => None,
    })
}

/// The id git gives a blob: sha1 of "blob LEN\0" and the bytes.
pub fn git_blob_id(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

const ZERO_ID: &str = "0000000000000000000000000000000000000000";

/// Whether git would treat the bytes as binary (a NUL in the first 8000 bytes), or they are
/// not UTF-8 (our line diff works on text).
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0) || std::str::from_utf8(bytes).is_err()
}

fn file_diff(
    out: &mut dyn Write,
    a: &str,
    b: &str,
    old: Option<&Blob>,
    new: Option<&Blob>,
    renamed: bool,
) -> std::io::Result<()> {
    let (qa, qb) = (quote(&format!("a{a}")), quote(&format!("b{b}")));
    writeln!(out, "diff --git {qa} {qb}")?;
    match (old, new) {
        (None, Some(n)) => writeln!(out, "new file mode {:o}", n.mode)?,
        (Some(o), None) => writeln!(out, "deleted file mode {:o}", o.mode)?,
        (Some(o), Some(n)) if o.mode != n.mode => {
            writeln!(out, "old mode {:o}", o.mode)?;
            writeln!(out, "new mode {:o}", n.mode)?;
        }
        _ => {}
    }
    let old_bytes = old.map_or(&[][..], |o| &o.bytes[..]);
    let new_bytes = new.map_or(&[][..], |n| &n.bytes[..]);
    if renamed {
        let score = if old_bytes == new_bytes {
            100
        } else {
            similarity(old_bytes, new_bytes)
        };
        writeln!(out, "similarity index {score}%")?;
        writeln!(out, "rename from {}", quote(&a[1..]))?;
        writeln!(out, "rename to {}", quote(&b[1..]))?;
    }
    if old.is_some() && new.is_some() && old_bytes == new_bytes {
        return Ok(());
    }
    let old_id = old.map_or(ZERO_ID.to_string(), |o| git_blob_id(&o.bytes));
    let new_id = new.map_or(ZERO_ID.to_string(), |n| git_blob_id(&n.bytes));
    match (old, new) {
        (Some(o), Some(n)) if o.mode == n.mode => {
            writeln!(out, "index {old_id}..{new_id} {:o}", o.mode)?
        }
        _ => writeln!(out, "index {old_id}..{new_id}")?,
    }
    let name_a = if old.is_some() {
        qa
    } else {
        "/dev/null".into()
    };
    let name_b = if new.is_some() {
        qb
    } else {
        "/dev/null".into()
    };
    if is_binary(old_bytes) || is_binary(new_bytes) {
        writeln!(out, "GIT binary patch")?;
        literal(out, new_bytes)?;
        literal(out, old_bytes)?;
        return Ok(());
    }
    // Both sides are UTF-8 (is_binary said so).
    let (old_text, new_text) = (
        std::str::from_utf8(old_bytes).unwrap_or_default(),
        std::str::from_utf8(new_bytes).unwrap_or_default(),
    );
    if old_text.is_empty() && new_text.is_empty() {
        return Ok(());
    }
    // Git puts a tab after a name with a space, so the name's end is unambiguous.
    let tab = |n: &str| if n.contains(' ') { "\t" } else { "" };
    writeln!(out, "--- {name_a}{}", tab(&name_a))?;
    writeln!(out, "+++ {name_b}{}", tab(&name_b))?;
    let diff = TextDiff::from_lines(old_text, new_text);
    let mut unified = diff.unified_diff();
    unified.context_radius(CONTEXT);
    for hunk in unified.iter_hunks() {
        hunk.to_writer(&mut *out)?;
    }
    Ok(())
}

/// A rough share of unchanged bytes, for the informational `similarity index` line.
fn similarity(a: &[u8], b: &[u8]) -> u32 {
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 100;
    }
    let (Ok(ta), Ok(tb)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return 50;
    };
    (TextDiff::from_chars(ta, tb).ratio() * 100.0) as u32
}

/// One `literal` hunk of a git binary patch: the size, then the zlib stream in base85 lines
/// of up to 52 bytes, then a blank line.
fn literal(out: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    use flate2::{Compression, write::ZlibEncoder};
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(bytes)?;
    let deflated = z.finish()?;
    writeln!(out, "literal {}", bytes.len())?;
    for line in deflated.chunks(52) {
        let n = line.len() as u8;
        let len_char = if n <= 26 { b'A' + n - 1 } else { b'a' + n - 27 };
        out.write_all(&[len_char])?;
        out.write_all(&base85(line))?;
        out.write_all(b"\n")?;
    }
    writeln!(out)
}

/// Git's base85 (the alphabet of RFC 1924): each 4 bytes, zero-padded, as 5 digits, most
/// significant first.
fn base85(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 85] =
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(4) * 5);
    for group in bytes.chunks(4) {
        let mut word = [0u8; 4];
        word[..group.len()].copy_from_slice(group);
        let mut acc = u32::from_be_bytes(word);
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = DIGITS[(acc % 85) as usize];
            acc /= 85;
        }
        out.extend_from_slice(&digits);
    }
    out
}

/// A path as git writes it in headers: as is, or C-quoted if it has a quote, backslash,
/// control or non-ASCII byte.
fn quote(path: &str) -> String {
    let needs = path
        .bytes()
        .any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b));
    if !needs {
        return path.to_string();
    }
    let mut out = String::from("\"");
    for b in path.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_match_git() {
        // `git hash-object /dev/null` and `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(git_blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        assert_eq!(
            git_blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn base85_encodes_groups_most_significant_first() {
        assert_eq!(base85(&[0, 0, 0, 0]), b"00000");
        assert_eq!(base85(&[0xff, 0xff, 0xff, 0xff]), b"|NsC0");
    }

    #[test]
    fn quote_leaves_plain_paths_alone() {
        assert_eq!(quote("a/src/main.rs"), "a/src/main.rs");
        assert_eq!(quote("a/x\"y"), "\"a/x\\\"y\"");
        assert_eq!(quote("a/é"), "\"a/\\303\\251\"");
    }
}
