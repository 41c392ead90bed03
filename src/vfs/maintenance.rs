//! Housekeeping: orphans, freeing unlinked inodes, giving space back, WAL checkpoints.

use std::sync::atomic::Ordering;

use rusqlite::OptionalExtension;

use super::{Ino, Vfs, VfsResult, rows};
use crate::store::Store;

/// Quiet time after which background maintenance gives space back.
const MAINTENANCE_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

impl Vfs {
    /// Deletes inodes that lost their last name while open in a process that no longer runs.
    pub(super) fn clean_orphans(&self) -> VfsResult<()> {
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let orphans: Vec<(i64, i64)> = {
            let mut stmt = tx.prepare("SELECT ino, pid FROM fs_orphan")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        for (ino, pid) in orphans {
            if !process_alive(pid) {
                rows::purge_inode(&tx, Ino(ino as u64))?;
            }
        }
        // Inodes with no links that nobody claims (a foreign writer's leftovers).
        let unclaimed: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT ino FROM fs_inode WHERE nlink = 0 AND ino <> 1 \
                 AND ino NOT IN (SELECT ino FROM fs_orphan) \
                 AND ino NOT IN (SELECT ino FROM fs_dentry)",
            )?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for ino in unclaimed {
            rows::purge_inode(&tx, Ino(ino as u64))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Frees the forgotten orphans that [`Vfs::forget`] left for maintenance.
    pub fn free_forgotten(&self) -> VfsResult<()> {
        let free = std::mem::take(&mut self.files().to_free);
        if free.is_empty() {
            return Ok(());
        }
        self.free_orphans(&free)
    }

    /// Frees inodes that were waiting in `fs_orphan`. Orphan rows are written only by this
    /// process for its own open files, so the in-memory set said there is something to free;
    /// the row is checked because a link may have brought the inode back.
    pub(super) fn free_orphans(&self, inos: &[Ino]) -> VfsResult<()> {
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        for ino in inos {
            let still_orphan = tx
                .prepare_cached("SELECT 1 FROM fs_orphan WHERE ino = ?1")?
                .query_row([ino.0 as i64], |_| Ok(()))
                .optional()?
                .is_some();
            if still_orphan {
                rows::purge_inode(&tx, *ino)?;
            }
        }
        tx.commit()?;
        self.after_free(&mut store)
    }

    /// After an operation that freed pages: give some back now, unless a background
    /// maintenance thread does it (mounts).
    pub(super) fn after_free(&self, store: &mut Store) -> VfsResult<()> {
        if !self.background_maintenance.load(Ordering::Relaxed) {
            store.reclaim_space(Some(crate::store::RECLAIM_BUDGET_PAGES))?;
        }
        Ok(())
    }

    /// Hands space reclamation and WAL checkpoints to a thread that calls [`Vfs::maintain`]
    /// (so that deletes and writes return without that work), instead of doing them inline.
    pub fn use_background_maintenance(&self) -> VfsResult<()> {
        self.background_maintenance.store(true, Ordering::Relaxed);
        self.pool
            .set_autocheckpoint(crate::store::BACKGROUND_AUTOCHECKPOINT_PAGES)?;
        Ok(())
    }

    /// One round of maintenance: checkpoints the WAL once it has grown, and gives a batch of
    /// free pages back to the disk when the filesystem has been idle for a moment (giving
    /// space back rewrites pages, which would slow a running `rm -rf`) or when very much is
    /// free. Returns whether more reclaiming is waiting.
    pub fn maintain(&self) -> VfsResult<bool> {
        self.free_forgotten()?;
        // Checkpoint on a reader connection: it does not block writers.
        self.store()?.checkpoint_if_large()?;
        // Not `writer()`: maintenance is not activity.
        let mut store = self.pool.writer()?;
        store.restart_wal_if_huge()?;
        let idle = self.idle_for() >= MAINTENANCE_IDLE;
        if !idle && !store.free_pages_exceed(crate::store::RECLAIM_URGENT_PAGES)? {
            return Ok(false);
        }
        if store.reclaim_space(Some(crate::store::MAINTENANCE_BUDGET_PAGES))? {
            return Ok(true);
        }
        // Idle and nothing left to reclaim: shrink the WAL too, once.
        if idle && store.wal_size() > crate::store::IDLE_WAL_BYTES {
            store.truncate_wal()?;
        }
        Ok(false)
    }

    /// Time since the last change through this instance.
    fn idle_for(&self) -> std::time::Duration {
        let last = self.last_change_ms.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(last))
    }

    /// Notes that a change happened now (for [`Vfs::maintain`]'s idle test).
    pub(super) fn touch_activity(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_change_ms.store(now, Ordering::Relaxed);
    }

    /// Gives all free space back to the disk now (deletes only do it a little at a time).
    pub fn compact(&self) -> VfsResult<()> {
        self.compact_with_progress(&crate::progress::NoProgress)
    }

    /// [`compact`](Vfs::compact), telling `progress` of each page given back.
    pub fn compact_with_progress(&self, progress: &dyn crate::progress::Progress) -> VfsResult<()> {
        self.writer()?.reclaim_space_with_progress(None, progress)?;
        Ok(())
    }
}

fn process_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
