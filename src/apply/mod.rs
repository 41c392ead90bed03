//! `agentfs apply` and `agentfs export`: carrying a session's changes out of the session,
//! into its base directory or into a git patch or tar archive.
//!
//! The submodules each do one step: `tree` reads a side (base or session), `plan` lists the
//! changes, `conflict` finds host edits that applying would drop, `write` changes the base,
//! `forget` drops applied paths from the session, `patch` and `archive` export;
//! `interactive` asks about each change before applying the accepted ones.

pub mod archive;
pub mod conflict;
pub mod forget;
pub mod interactive;
pub mod patch;
pub mod plan;
pub mod tree;
pub mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::progress::{NoProgress, Progress};
use crate::vfs::{Vfs, VfsError};

pub use conflict::Conflict;
pub use plan::{Item, Status};
use tree::{BaseTree, SessionTree};

/// Why applying or exporting failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "the session has no base directory, so there is nothing to apply it to; apply and \
         export work on sessions made with `agentfs init ID --base DIR`"
    )]
    NoBase,
    #[error("the base directory {0} no longer exists; restore it and try again")]
    BaseGone(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} has a name that is not UTF-8, which apply and export cannot handle yet; rename \
         it in the session (`mv` on a mount) and try again"
    )]
    NotUtf8(String),
    #[error(transparent)]
    Vfs(#[from] VfsError),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Diff(#[from] crate::diff::DiffError),
    /// Writing or removing one path failed; names the path, since the cause alone ("is a
    /// directory") does not say which of many it was.
    #[error("cannot apply {path}")]
    Item {
        path: String,
        #[source]
        source: Box<ApplyError>,
    },
}

impl ApplyError {
    pub fn io(path: &Path, source: std::io::Error) -> ApplyError {
        ApplyError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// This error, as the failure of applying session path `path`.
    pub fn at(path: &str) -> impl FnOnce(ApplyError) -> ApplyError + '_ {
        move |e| ApplyError::Item {
            path: path.to_string(),
            source: Box::new(e),
        }
    }
}

/// What keeps the session in use, in words (live runners, then mounts): applying then would
/// race its writers.
pub fn live_uses(db: &Path) -> Vec<String> {
    let mut uses = Vec::new();
    if let Ok(store) = crate::store::Store::open(db, crate::store::OpenMode::Existing)
        && let Ok(live) = crate::runners::live(&store.conn)
    {
        for r in live {
            uses.push(format!(
                "runner {} (pid {}: {})",
                r.id,
                r.pid,
                r.command_line()
            ));
        }
    }
    for point in crate::mount::mounts_of(db) {
        uses.push(format!("mounted at {}", point.display()));
    }
    uses
}

/// The session's base directory; an error if it has none or it is gone.
pub fn base_of(vfs: &Vfs) -> Result<PathBuf, ApplyError> {
    let base = vfs.store()?.base_path()?.ok_or(ApplyError::NoBase)?;
    if !base.is_dir() {
        return Err(ApplyError::BaseGone(base));
    }
    Ok(base)
}

/// What `apply` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only changes at or below these paths (all if empty).
    pub paths: Vec<String>,
    /// Report, change nothing.
    pub dry_run: bool,
    /// Overwrite host changes instead of skipping them.
    pub force: bool,
}

/// What `apply` did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Report {
    pub applied: Vec<Item>,
    pub conflicts: Vec<Conflict>,
}

/// The changes of the session against its base as it is now, as `apply` and `export` see
/// them.
pub fn plan(vfs: &Arc<Vfs>, base: &Path, paths: &[String]) -> Result<Vec<Item>, ApplyError> {
    let changes = {
        let store = vfs.store()?;
        crate::diff::refresh_hashes(&store.conn)?;
        crate::diff::changes(&store.conn, &[])?
    };
    let session = SessionTree::new(vfs.clone(), base);
    plan::build(
        &changes,
        &BaseTree::new(base.to_path_buf()),
        &session,
        paths,
    )
}

/// Writes the session's changes into its base directory, path by path: removals (deepest
/// first), then new and changed entries (parents first). A path the host changed since
/// the session took it over is skipped and reported, unless `force`. `on_applied` hears of
/// each path once it is written (and dropped from the session's delta).
pub fn apply(
    vfs: &Arc<Vfs>,
    base: &Path,
    opts: &Options,
    on_applied: &mut dyn FnMut(&Item),
) -> Result<Report, ApplyError> {
    apply_with_progress(vfs, base, opts, &NoProgress, on_applied)
}

/// [`apply`], telling `progress` how far it got (not for a dry run, which changes nothing).
/// The items are the paths removed from the base and the entries written to it; the bytes
/// are those of the files written. `progress` finishes before `on_applied` hears of the
/// first path.
pub fn apply_with_progress(
    vfs: &Arc<Vfs>,
    base: &Path,
    opts: &Options,
    progress: &dyn Progress,
    on_applied: &mut dyn FnMut(&Item),
) -> Result<Report, ApplyError> {
    let items = plan(vfs, base, &opts.paths)?;
    apply_items(
        vfs,
        base,
        items,
        opts,
        opts.paths.is_empty(),
        progress,
        on_applied,
    )
}

/// Writes `items` (taken from a fresh [`plan`]) into the base, as [`apply`] does; `complete`
/// says they are the whole plan, so that, if none conflicts, the session may settle the
/// directories it moved. `opts.paths` is not looked at (the items are already chosen).
pub fn apply_items(
    vfs: &Arc<Vfs>,
    base: &Path,
    items: Vec<Item>,
    opts: &Options,
    complete: bool,
    progress: &dyn Progress,
    on_applied: &mut dyn FnMut(&Item),
) -> Result<Report, ApplyError> {
    let base_tree = BaseTree::new(base.to_path_buf());
    let checker = conflict::Checker::load(&vfs.store()?.conn, &items)?;
    let mut report = Report::default();
    let mut ready = Vec::new();
    for item in items {
        match checker.check(&base_tree, &item)? {
            Some(c) if !opts.force => report.conflicts.push(c),
            _ => ready.push(item),
        }
    }
    // What sits below a skipped directory cannot be applied either.
    let skipped: Vec<String> = report.conflicts.iter().map(|c| c.path.clone()).collect();
    ready.retain(|item| {
        let blocked = skipped
            .iter()
            .find(|s| item.path != **s && plan::within(&item.path, s));
        if let Some(s) = blocked {
            report.conflicts.push(Conflict {
                path: item.path.clone(),
                reason: format!("its directory {s} is skipped"),
            });
        }
        blocked.is_none()
    });
    if opts.dry_run {
        for item in &ready {
            on_applied(item);
        }
        report.applied = ready;
        return Ok(report);
    }
    // Removals deepest first, so a directory is empty when its turn comes. Those in the way
    // of a write (the same path, or one above or below it) go before the writes; the others
    // after them, because what the session shows may still be read from there (the base
    // children of a directory the session moved).
    let mut removals: Vec<(String, usize)> = Vec::new();
    for (i, item) in ready.iter().enumerate() {
        for (path, _) in item.touched() {
            if !item.writes() || path != item.path {
                removals.push((path.to_string(), i));
            }
        }
    }
    removals.sort_by(|a, b| b.0.cmp(&a.0));
    let writes: Vec<&str> = ready
        .iter()
        .filter(|i| i.writes())
        .map(|i| i.path.as_str())
        .collect();
    let (early, late): (Vec<_>, Vec<_>) = removals.into_iter().partition(|(path, _)| {
        writes
            .iter()
            .any(|w| plan::within(w, path) || plan::within(path, w))
    });
    let total_bytes: u64 = ready
        .iter()
        .filter(|i| i.writes())
        .map(|i| i.session.file_bytes())
        .sum();
    progress.start(
        "applying",
        Some((early.len() + writes.len() + late.len()) as u64),
        Some(total_bytes),
    );
    // Every file and symlink is built before the base changes at all (see write::Staging).
    let mut staging = write::Staging::new(&base_tree);
    let mut staged: HashMap<&str, PathBuf> = HashMap::new();
    {
        let session = SessionTree::new(vfs.clone(), base);
        for item in ready.iter().filter(|i| i.writes()) {
            if let Some(tmp) = staging
                .stage(&session, &item.path)
                .map_err(ApplyError::at(&item.path))?
            {
                staged.insert(&item.path, tmp);
            }
            progress.advance(0, item.session.file_bytes());
        }
    }
    let mut failed = vec![false; ready.len()];
    remove_all(
        vfs,
        &base_tree,
        &early,
        opts.force,
        &mut failed,
        &mut report,
        progress,
    )?;
    let mut prune = Vec::new();
    let mut dirs_written = Vec::new();
    for (i, item) in ready.iter().enumerate() {
        if item.writes() {
            progress.advance(1, 0);
        }
        if failed[i] {
            continue;
        }
        if item.writes() {
            // A directory is forgotten only after everything is written: until then its
            // entries may still be read through it (the base children of a moved one).
            let is_dir = item.session.is_dir();
            let done = write_path(
                vfs,
                &base_tree,
                &item.path,
                opts.force,
                !is_dir,
                staged.get(item.path.as_str()).map(PathBuf::as_path),
            )
            .map_err(ApplyError::at(&item.path))?;
            match done {
                Ok(before) => {
                    if is_dir {
                        dirs_written.push((item.path.clone(), before));
                    }
                }
                Err(blocked) => {
                    failed[i] = true;
                    let reason = match blocked {
                        write::Blocked::NotEmpty => "the host has entries in the directory the \
                                                     session replaced with a file"
                            .to_string(),
                        write::Blocked::Special(kind) => format!(
                            "a special file ({kind:?}); apply writes files, directories and \
                             symlinks only"
                        ),
                    };
                    report.conflicts.push(Conflict {
                        path: item.path.clone(),
                        reason,
                    });
                    continue;
                }
            }
            if item.session.is_dir() {
                prune.push(item.path.clone());
            }
        }
        for (path, _) in item.touched() {
            prune.extend(plan::ancestors(path));
        }
    }
    dirs_written.sort_by(|a, b| b.0.cmp(&a.0));
    for (path, before) in &dirs_written {
        forget::forget_written(vfs, &base_tree, path, *before).map_err(ApplyError::at(path))?;
    }
    remove_all(
        vfs,
        &base_tree,
        &late,
        opts.force,
        &mut failed,
        &mut report,
        progress,
    )?;
    forget::prune(vfs, &base_tree, &prune)?;
    if report.conflicts.is_empty() && complete {
        let moved = forget::settle_moved_dirs(vfs, &base_tree)?;
        forget::prune(vfs, &base_tree, &moved)?;
    }
    progress.finish();
    for (item, failed) in ready.iter().zip(&failed) {
        if !failed {
            on_applied(item);
        }
    }
    report.applied = ready
        .into_iter()
        .zip(failed)
        .filter(|(_, f)| !f)
        .map(|(i, _)| i)
        .collect();
    Ok(report)
}

/// Removes `removals` (path, index of its item) from the base, in that order; an item whose
/// removal is blocked is marked failed and reported as a conflict. Each removal, done or
/// not, is one item of `progress`.
fn remove_all(
    vfs: &Arc<Vfs>,
    base_tree: &BaseTree,
    removals: &[(String, usize)],
    force: bool,
    failed: &mut [bool],
    report: &mut Report,
    progress: &dyn Progress,
) -> Result<(), ApplyError> {
    for (path, i) in removals {
        progress.advance(1, 0);
        if failed[*i] {
            continue;
        }
        match remove_path(vfs, base_tree, path, force).map_err(ApplyError::at(path))? {
            Ok(()) => {}
            Err(_) => {
                failed[*i] = true;
                report.conflicts.push(Conflict {
                    path: path.clone(),
                    reason: "the host added entries to this directory, which the session \
                             deleted"
                        .to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Removes `path` from the base and, once gone, from the session's records.
fn remove_path(
    vfs: &Arc<Vfs>,
    base: &BaseTree,
    path: &str,
    force: bool,
) -> Result<Result<(), write::Blocked>, ApplyError> {
    let gone = base.ino(path)?;
    let done = write::remove(base, path, force)?;
    if done.is_ok() {
        forget::forget_removed(vfs, path, gone)?;
    }
    Ok(done)
}

/// Writes the session's entry at `path` into the base and (with `forget`) drops it from the
/// delta; returns the host inode that was there before, for a later `forget_written`.
fn write_path(
    vfs: &Arc<Vfs>,
    base: &BaseTree,
    path: &str,
    force: bool,
    forget: bool,
    staged: Option<&Path>,
) -> Result<Result<Option<u64>, write::Blocked>, ApplyError> {
    let before = base.ino(path)?;
    // A fresh view for each path: an overlay remembers what host inode numbers stood for,
    // and the paths written before this one freed some and reused them.
    let session = SessionTree::new(vfs.clone(), base.root());
    let done = write::put(base, &session, path, force, staged)?;
    if done.is_ok() && forget {
        forget::forget_written(vfs, base, path, before)?;
    }
    Ok(done.map(|()| before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_path_is_named_before_the_cause() {
        let e = ApplyError::at("/x/y")(ApplyError::Vfs(VfsError::IsDir));
        assert_eq!(
            crate::report::chain(&e),
            "cannot apply /x/y: is a directory"
        );
    }
}
