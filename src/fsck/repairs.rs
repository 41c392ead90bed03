//! The repairs: each fixes the rows its check reports, without deleting an inode.

use super::sql::*;
use super::*;
use crate::vfs::JournalOp;

// ----- repair ---------------------------------------------------------------------------------

/// Checks, repairs what can be repaired without losing data (in one `BEGIN IMMEDIATE`
/// transaction), and checks again. `problems` holds what is left.
pub fn repair(conn: &mut Connection) -> rusqlite::Result<Report> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let before = check(&tx)?;
    if before.iter().any(|p| p.kind == ProblemKind::Integrity) {
        // Damaged pages: do not write; the caller sees the problems unchanged.
        drop(tx);
        return Ok(Report {
            problems: before,
            repaired: Vec::new(),
        });
    }
    let mut r = Repairer {
        conn: &tx,
        done: Vec::new(),
        now: crate::vfs::Timestamp::now(),
    };
    if before.iter().any(|p| p.repairable) {
        let found: HashSet<ProblemKind> = before.iter().map(|p| p.kind).collect();
        r.all(&found)?;
    }
    let repaired = r.done;
    tx.commit()?;
    let problems = check(conn)?;
    Ok(Report { problems, repaired })
}

struct Repairer<'a> {
    conn: &'a Connection,
    done: Vec<String>,
    now: crate::vfs::Timestamp,
}

impl Repairer<'_> {
    /// Runs `sql` (with `params`); if it changed rows, notes `what(n)`.
    fn exec<P: rusqlite::Params>(
        &mut self,
        sql: &str,
        params: P,
        what: impl FnOnce(usize) -> String,
    ) -> rusqlite::Result<usize> {
        let n = self.conn.execute(sql, params)?;
        if n > 0 {
            self.done.push(what(n));
        }
        Ok(n)
    }

    /// Journals the removal of the `fs_dentry` rows (alias `d`) matching `filter`, so mounts
    /// of the session drop what they cached about them.
    fn journal_unlinks(&self, filter: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            &format!(
                "INSERT INTO fs_change (time_ns, op, ino, path, pid) \
                 SELECT ?1, '{op}', d.ino, NULL, ?2 FROM fs_dentry d WHERE {filter}",
                op = JournalOp::Unlink
            ),
            params![self.now.as_nanos(), std::process::id() as i64],
        )?;
        Ok(())
    }

    /// Runs the repairs of the problem kinds `found`, in an order where each step sees the
    /// results of the earlier ones (names first, link counts last).
    fn all(&mut self, found: &HashSet<ProblemKind>) -> rusqlite::Result<()> {
        use ProblemKind as K;
        let has = |k: ProblemKind| found.contains(&k);
        let now = self.now;
        // Whether names were added or removed: link counts and lost+found must follow.
        let mut names_changed = false;
        let root = root_mode(self.conn)?;
        if root.is_none() {
            self.exec(
                "INSERT INTO fs_inode (ino, mode, nlink, atime, mtime, ctime, atime_nsec, \
                 mtime_nsec, ctime_nsec) VALUES (1, 16877, 2, ?1, ?1, ?1, ?2, ?2, ?2)",
                params![now.sec, now.nsec as i64],
                |_| "created the missing root directory (inode 1)".into(),
            )?;
            names_changed = true;
        }
        let root_is_dir = root.is_none_or(is_dir_mode);

        // Names that lead nowhere or hang in nothing.
        if has(K::DanglingDentry) {
            self.journal_unlinks(DANGLING)?;
            names_changed |= self.exec(
                &format!("DELETE FROM fs_dentry AS d WHERE {DANGLING}"),
                [],
                |n| format!("deleted {n} directory entries that pointed at missing inodes"),
            )? > 0;
        }
        if has(K::MissingParent) {
            self.journal_unlinks(BAD_PARENT)?;
            names_changed |= self.exec(
                &format!("DELETE FROM fs_dentry AS d WHERE {BAD_PARENT}"),
                [],
                |n| {
                    format!(
                        "deleted {n} directory entries whose parent was missing or not a \
                         directory (inodes left without a name go to /{LOST_FOUND})"
                    )
                },
            )? > 0;
        }
        // After the two above, so the oldest name kept is a valid one.
        if has(K::DirectoryHardLink) || names_changed {
            self.journal_unlinks(EXTRA_DIR_NAME)?;
            names_changed |= self.exec(
                &format!("DELETE FROM fs_dentry AS d WHERE {EXTRA_DIR_NAME}"),
                [],
                |n| format!("deleted {n} extra names of directories (each keeps its oldest name)"),
            )? > 0;
        }

        // Rows that belong to nothing, and caches that are out of date.
        if has(K::StaleOrphanRow) {
            self.exec(
                &format!("DELETE FROM fs_orphan AS o WHERE {STALE_ORPHAN}"),
                [],
                |n| {
                    format!(
                        "deleted {n} stale fs_orphan rows (their inodes have names or are gone)"
                    )
                },
            )?;
        }
        if has(K::OrphanChunks) {
            self.exec(
                &format!("DELETE FROM fs_data AS f WHERE {ORPHAN_CHUNK}"),
                [],
                |n| {
                    format!(
                        "deleted {n} data chunks that belonged to missing inodes or to inodes \
                         that are not regular files"
                    )
                },
            )?;
        }
        if has(K::RowForMissingInode) {
            for (table, col) in [
                ("fs_symlink", "ino"),
                ("fs_xattr", "ino"),
                ("fs_content_hash", "ino"),
                ("fs_origin", "delta_ino"),
                ("fs_base_backing", "ino"),
            ] {
                self.exec(
                    &format!(
                        "DELETE FROM {table} AS s WHERE {}",
                        missing_inode(&format!("s.{col}"))
                    ),
                    [],
                    |n| format!("deleted {n} {table} rows of missing inodes"),
                )?;
            }
        }
        if has(K::StaleContentHash) {
            self.exec(
                &format!("DELETE FROM fs_content_hash AS h WHERE {STALE_HASH}"),
                [],
                |n| format!("deleted {n} out-of-date cached content hashes"),
            )?;
        }

        // Contents: only with a chunk size we trust.
        let chunks = has(K::ChunkBeyondSize) || has(K::SizeMismatch) || has(K::ShortChunk);
        if chunks && let Ok(cs) = read_chunk_size(self.conn)? {
            self.exec(
                &format!(
                    "DELETE FROM fs_data AS f WHERE EXISTS (SELECT 1 FROM fs_inode i \
                     WHERE i.ino = f.ino AND {IS_REG} AND {BEYOND_SIZE})"
                ),
                [cs],
                |n| format!("deleted {n} data chunks that lay past the end of their files"),
            )?;
            self.exec(
                &format!(
                    "UPDATE fs_data AS f SET data = substr(CAST(f.data AS BLOB), 1, \
                     (SELECT min(?1, i.size - f.chunk_index * ?1) FROM fs_inode i \
                      WHERE i.ino = f.ino)) \
                     WHERE EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = f.ino AND {IS_REG} \
                     AND {TOO_LONG_CHUNK})"
                ),
                [cs],
                |n| format!("trimmed {n} data chunks to the file size or the chunk size"),
            )?;
            self.exec(
                &format!(
                    "UPDATE fs_data AS f SET data = CAST(CAST(f.data AS BLOB) \
                     || zeroblob(?1 - octet_length(f.data)) AS BLOB) \
                     WHERE EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = f.ino AND {IS_REG} \
                     AND {SHORT_CHUNK})"
                ),
                [cs],
                |n| {
                    format!(
                        "padded {n} short data chunks with zeros to the chunk size (they read \
                         the same)"
                    )
                },
            )?;
        }
        if has(K::SizeMismatch) {
            self.exec(
                &format!(
                    "UPDATE fs_inode AS i SET size = {EXPECTED_OTHER_SIZE} \
                     WHERE ({EXPECTED_OTHER_SIZE}) IS NOT NULL \
                     AND i.size IS NOT ({EXPECTED_OTHER_SIZE})"
                ),
                [],
                |n| {
                    format!(
                        "set the size of {n} symlinks, directories or special files \
                         (target length, or 0)"
                    )
                },
            )?;
        }

        if root_is_dir && (has(K::UnreachableInode) || has(K::DirectoryCycle) || names_changed) {
            names_changed |= self.lost_and_found()?;
        }

        // After lost+found, whose name could shadow a whiteout too.
        if has(K::ShadowedWhiteout) || names_changed {
            self.exec(
                &format!("DELETE FROM fs_whiteout WHERE path IN ({SHADOWED_WHITEOUTS})"),
                [],
                |n| format!("deleted {n} whiteouts of paths that exist in the session"),
            )?;
        }

        // Link counts last: every change of names above is in them.
        if has(K::WrongNlink) || names_changed {
            self.exec(
                &format!(
                    "UPDATE fs_inode AS i SET nlink = {EXPECTED_NLINK} WHERE {}",
                    inexact_nlink_filter()
                ),
                [],
                |n| format!("set the link count of {n} inodes"),
            )?;
        }
        Ok(())
    }

    /// Gives inodes without names, and one directory of each unreachable cycle, a name in
    /// `/lost+found`.
    /// Returns whether it added or moved names.
    fn lost_and_found(&mut self) -> rusqlite::Result<bool> {
        let nameless: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM fs_inode i WHERE {NAMELESS}"),
            [],
            |r| r.get(0),
        )?;
        let cycles = self.cycles()?;
        if nameless == 0 && cycles.is_empty() {
            return Ok(false);
        }
        let Some(lf) = self.lost_found_dir()? else {
            return Ok(false);
        };
        let (t, pid) = (self.now.as_nanos(), std::process::id() as i64);
        self.conn.execute(
            &format!(
                "INSERT INTO fs_change (time_ns, op, ino, path, pid) \
                 SELECT ?2, '{op}', i.ino, '/{LOST_FOUND}/#' || i.ino, ?3 FROM fs_inode i \
                 WHERE {NAMELESS} AND NOT EXISTS (SELECT 1 FROM fs_dentry e \
                 WHERE e.parent_ino = ?1 AND e.name = '#' || i.ino)",
                op = JournalOp::Link
            ),
            params![lf, t, pid],
        )?;
        self.exec(
            &format!(
                "INSERT INTO fs_dentry (name, parent_ino, ino) \
                 SELECT '#' || i.ino, ?1, i.ino FROM fs_inode i WHERE {NAMELESS} \
                 ON CONFLICT DO NOTHING"
            ),
            [lf],
            |n| format!("moved {n} inodes without a name to /{LOST_FOUND}/#<ino>"),
        )?;
        let mut moved = Vec::new();
        for ino in cycles {
            let n = self.conn.execute(
                "UPDATE OR IGNORE fs_dentry SET parent_ino = ?1, name = '#' || ?2 \
                 WHERE id = (SELECT min(id) FROM fs_dentry WHERE ino = ?2)",
                params![lf, ino],
            )?;
            if n > 0 {
                self.conn.execute(
                    &format!(
                        "INSERT INTO fs_change (time_ns, op, ino, path, pid) \
                         VALUES (?1, '{op}', ?2, '/{LOST_FOUND}/#' || ?2, ?3)",
                        op = JournalOp::Rename
                    ),
                    params![t, ino, pid],
                )?;
                moved.push(ino.to_string());
            }
        }
        if !moved.is_empty() {
            self.done.push(format!(
                "broke {} cycles of directories by moving directory {} to /{LOST_FOUND}",
                moved.len(),
                moved.join(", ")
            ));
        }
        Ok(true)
    }

    /// One directory (the smallest inode) of each cycle of directories that the root cannot
    /// reach. The unreachable directories are few; finding cycles in them is a graph walk.
    fn cycles(&self) -> rusqlite::Result<Vec<i64>> {
        let parent: BTreeMap<i64, i64> = {
            let mut stmt = self.conn.prepare(&cycle_dirs_sql())?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        // 0 = not seen, 1 = on the current walk, 2 = done.
        let mut state: HashMap<i64, u8> = HashMap::new();
        let mut picks = Vec::new();
        for &start in parent.keys() {
            let mut walk = Vec::new();
            let mut cur = start;
            loop {
                match state.get(&cur).copied().unwrap_or(0) {
                    0 => {
                        state.insert(cur, 1);
                        walk.push(cur);
                        match parent.get(&cur) {
                            Some(&p) => cur = p,
                            None => break,
                        }
                    }
                    1 => {
                        // `cur` closes a cycle: the walk from its first visit on.
                        if let Some(pos) = walk.iter().position(|&w| w == cur)
                            && let Some(&min) = walk[pos..].iter().min()
                        {
                            picks.push(min);
                        }
                        break;
                    }
                    _ => break,
                }
            }
            for w in walk {
                state.insert(w, 2);
            }
        }
        Ok(picks)
    }

    /// The inode of `/lost+found`, created (mode 0o040700) if missing; `None` if the name is
    /// taken by something that is not a directory.
    fn lost_found_dir(&mut self) -> rusqlite::Result<Option<i64>> {
        let existing: Option<(i64, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT d.ino, i.mode FROM fs_dentry d LEFT JOIN fs_inode i ON i.ino = d.ino \
                 WHERE d.parent_ino = 1 AND d.name = ?1",
                [LOST_FOUND],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match existing {
            Some((ino, Some(mode))) if is_dir_mode(mode) => return Ok(Some(ino)),
            Some(_) => return Ok(None),
            None => {}
        }
        let now = self.now;
        self.conn.execute(
            "INSERT INTO fs_inode (mode, nlink, atime, mtime, ctime, atime_nsec, mtime_nsec, \
             ctime_nsec) VALUES (?1, 2, ?2, ?2, ?2, ?3, ?3, ?3)",
            params![LOST_FOUND_MODE, now.sec, now.nsec as i64],
        )?;
        let ino = self.conn.last_insert_rowid();
        self.conn.execute(
            "INSERT INTO fs_dentry (name, parent_ino, ino) VALUES (?1, 1, ?2)",
            params![LOST_FOUND, ino],
        )?;
        self.conn.execute(
            "UPDATE fs_inode SET mtime = ?1, ctime = ?1, mtime_nsec = ?2, ctime_nsec = ?2 \
             WHERE ino = 1",
            params![now.sec, now.nsec as i64],
        )?;
        self.conn.execute(
            &format!(
                "INSERT INTO fs_change (time_ns, op, ino, path, pid) \
                 VALUES (?1, '{op}', ?2, '/{LOST_FOUND}', ?3)",
                op = JournalOp::Mkdir
            ),
            params![now.as_nanos(), ino, std::process::id() as i64],
        )?;
        self.done.push(format!(
            "created /{LOST_FOUND} (inode {ino}, mode {LOST_FOUND_MODE:#o})"
        ));
        Ok(Some(ino))
    }
}
