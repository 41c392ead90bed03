//! Dropping applied paths from the session's delta: once the base has what the session has,
//! the delta entry, whiteout and origin records of that path are no longer needed, and the
//! merged view stays the same (the base now shows through). `agentfs diff` then lists only
//! what was not applied.
//!
//! An entry that must stay (it still has delta children, it sits in an opaque directory that
//! hides the base, or it has other hard links) is instead re-based on what was written: its
//! origin and base identity now name the applied base entry, so it no longer differs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::Tx;

use super::ApplyError;
use super::tree::BaseTree;
use crate::vfs::{FileKind, Ino, JournalOp, Timestamp, Vfs, names, rows};

/// The journal op of these rows: a mount of the session drops its cached view of the path.
const OP: JournalOp = JournalOp::Apply;

/// After the base got the session's entry at `path`, where it had host inode `before`.
pub fn forget_written(
    vfs: &Vfs,
    base: &BaseTree,
    path: &str,
    before: Option<u64>,
) -> Result<(), ApplyError> {
    let mut store = vfs.store()?;
    let tx = store.write_tx()?;
    if let Some(old) = before
        && base.ino(path)? != Some(old)
    {
        drop_origins_of(&tx, old)?;
    }
    if let Some((parent, ino)) = delta_lookup(&tx, path)? {
        let attr = rows::attr(&tx, ino)?;
        let is_dir = attr.kind == FileKind::Dir;
        let keep = is_opaque(&tx, parent)?
            || (!is_dir && attr.nlink > 1)
            || (is_dir && (has_children(&tx, ino)? || !hides_nothing(&tx, base, ino, path)?));
        if keep {
            adopt(&tx, base, ino, path)?;
        } else {
            unlink(&tx, parent, path, ino, is_dir)?;
        }
    }
    finish(tx, path)
}

/// After the base lost `path` (host inode `gone`) as the session did.
pub fn forget_removed(vfs: &Vfs, path: &str, gone: Option<u64>) -> Result<(), ApplyError> {
    let mut store = vfs.store()?;
    let tx = store.write_tx()?;
    if let Some(old) = gone {
        drop_origins_of(&tx, old)?;
    }
    finish(tx, path)
}

/// Forgets that delta entries came from host inode `host_ino`, which apply just removed or
/// replaced. The overlay addresses base-origin entries by host inode number, and the host
/// filesystem hands freed numbers to the next files it creates (ext4 does so at once): a
/// row left behind would make a new base entry resolve to the old entry's copy (a file
/// read as the directory that got its number).
fn drop_origins_of(tx: &Connection, host_ino: u64) -> Result<(), ApplyError> {
    tx.prepare_cached("DELETE FROM fs_origin WHERE base_ino = ?1")?
        .execute([host_ino as i64])?;
    Ok(())
}

/// Removes delta directories that only repeat the base: copied up for a change below them
/// that is now applied, empty, with the base's mode and owner. Deepest first.
pub fn prune(vfs: &Vfs, base: &BaseTree, dirs: &[String]) -> Result<(), ApplyError> {
    let mut dirs = dirs.to_vec();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    dirs.dedup();
    for path in dirs {
        let mut store = vfs.store()?;
        let tx = store.write_tx()?;
        let Some((parent, ino)) = delta_lookup(&tx, &path)? else {
            continue;
        };
        let attr = rows::attr(&tx, ino)?;
        let Some(md) = base.metadata(&path)? else {
            continue;
        };
        let identity: Option<Vec<u8>> = tx
            .prepare_cached("SELECT base_path FROM fs_base_identity WHERE ino = ?1")?
            .query_row([ino.0 as i64], |r| names::from_sql(r.get_ref(0)?))
            .optional()?;
        let xattrs: i64 = tx
            .prepare_cached("SELECT count(*) FROM fs_xattr WHERE ino = ?1")?
            .query_row([ino.0 as i64], |r| r.get(0))?;
        let repeats_base = attr.kind == FileKind::Dir
            && md.is_dir()
            && identity.as_deref() == Some(path.as_bytes())
            && md.permissions().mode() & 0o7777 == attr.perm
            && md.uid() == attr.uid
            && md.gid() == attr.gid
            && xattrs == 0
            && !is_opaque(&tx, parent)?
            && !has_children(&tx, ino)?
            && hides_nothing(&tx, base, ino, &path)?;
        if repeats_base {
            unlink(&tx, parent, &path, ino, true)?;
            finish(tx, &path)?;
        }
    }
    Ok(())
}

/// After an apply that wrote everything (no conflict, no path filter) the base shows what
/// the session shows. A directory the session moved still names the base directory it was
/// copied from (`fs_base_identity.base_path`), which no longer holds its entries: it is
/// made to name its own path, and the whiteouts, all applied by now, go. Returns the
/// directories so re-pointed, for [`prune`].
pub fn settle_moved_dirs(vfs: &Vfs, base: &BaseTree) -> Result<Vec<String>, ApplyError> {
    let mut store = vfs.store()?;
    let tx = store.write_tx()?;
    let moved: Vec<(String, i64)> = tx
        .prepare(
            "SELECT p.path, p.ino FROM fs_paths p JOIN fs_base_identity i ON i.ino = p.ino \
             WHERE p.type = 'dir' AND i.base_path IS NOT p.path",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (path, ino) in &moved {
        adopt(&tx, base, Ino(*ino as u64), path)?;
    }
    tx.execute("DELETE FROM fs_whiteout", [])?;
    tx.commit()?;
    Ok(moved.into_iter().map(|(path, _)| path).collect())
}

/// Drops the whiteout at `path`, journals the change and commits.
fn finish(tx: Tx<'_>, path: &str) -> Result<(), ApplyError> {
    tx.prepare_cached("DELETE FROM fs_whiteout WHERE path = ?1")?
        .execute([names::to_sql(path.as_bytes())])?;
    let change = rows::Change {
        op: OP,
        ino: None,
        path: Some(path.as_bytes()),
        old_path: None,
    };
    rows::journal(&tx, None, Timestamp::now(), change)?;
    tx.commit()?;
    Ok(())
}

/// The delta directory holding `path` and the inode there, if the delta has the path.
fn delta_lookup(tx: &Connection, path: &str) -> Result<Option<(Ino, Ino)>, ApplyError> {
    let mut parent = Ino::ROOT;
    let mut cur = Ino::ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        parent = cur;
        match rows::child(tx, cur, part.as_bytes())? {
            Some(ino) => cur = ino,
            None => return Ok(None),
        }
    }
    Ok((cur != Ino::ROOT).then_some((parent, cur)))
}

fn unlink(
    tx: &Connection,
    parent: Ino,
    path: &str,
    ino: Ino,
    is_dir: bool,
) -> Result<(), ApplyError> {
    let name = path.rsplit('/').next().unwrap_or_default();
    rows::delete_dentry(tx, parent, name.as_bytes())?;
    if is_dir {
        rows::add_nlink(tx, parent, -1, None)?;
        rows::purge_inode(tx, ino)?;
    } else {
        rows::add_nlink(tx, ino, -1, None)?;
        if rows::attr(tx, ino)?.nlink == 0 {
            rows::purge_inode(tx, ino)?;
        }
    }
    Ok(())
}

/// Records that delta inode `ino` now equals the base entry at `path`.
fn adopt(tx: &Connection, base: &BaseTree, ino: Ino, path: &str) -> Result<(), ApplyError> {
    let Some(md) = base.metadata(path)? else {
        return Ok(());
    };
    let host = base.host(path);
    let blake3 = if md.is_file() {
        let file = std::fs::File::open(&host).map_err(|e| ApplyError::io(&host, e))?;
        Some(super::tree::hash_reader(file).map_err(|e| ApplyError::io(&host, e))?)
    } else {
        None
    };
    // The entry now owns this host inode number; any other claim to it is stale (see
    // `drop_origins_of`).
    drop_origins_of(tx, md.ino())?;
    tx.prepare_cached("INSERT OR REPLACE INTO fs_origin (delta_ino, base_ino) VALUES (?1, ?2)")?
        .execute(params![ino.0 as i64, md.ino() as i64])?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO fs_base_identity (ino, base_path, size, mtime_ns, blake3, mode) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        ino.0 as i64,
        names::to_sql(path.as_bytes()),
        md.size() as i64,
        md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        blake3.as_ref().map(|h| &h[..]),
        md.mode() as i64
    ])?;
    Ok(())
}

fn is_opaque(tx: &Connection, dir: Ino) -> Result<bool, ApplyError> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM fs_opaque WHERE ino = ?1")?
        .query_row([dir.0 as i64], |_| Ok(()))
        .optional()?
        .is_some())
}

fn has_children(tx: &Connection, dir: Ino) -> Result<bool, ApplyError> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM fs_dentry WHERE parent_ino = ?1 LIMIT 1")?
        .query_row([dir.0 as i64], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Whether dropping delta directory `ino` would show nothing new: it is not opaque, or the
/// base directory it hides is empty.
fn hides_nothing(
    tx: &Connection,
    base: &BaseTree,
    ino: Ino,
    path: &str,
) -> Result<bool, ApplyError> {
    if !is_opaque(tx, ino)? {
        return Ok(true);
    }
    let host = base.host(path);
    match std::fs::read_dir(&host) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(_) => Ok(true),
    }
}
