//! The checks: one set-based query per rule of SPEC.md, each reporting what breaks it.

use super::sql::*;
use super::*;
use crate::vfs::JournalOp;

// ----- check ----------------------------------------------------------------------------------

/// Checks the database; returns every problem found (empty when the database is consistent).
pub fn check(conn: &Connection) -> rusqlite::Result<Vec<Problem>> {
    let mut c = Checker {
        conn,
        out: Vec::new(),
        damaged: false,
    };
    c.integrity()?;
    c.run("the root", |c| c.root())?;
    let chunk_size = c.chunk_size()?;
    c.run("file types", |c| c.modes())?;
    c.run("directory entries", |c| c.dentries())?;
    c.run("link counts", |c| c.nlinks())?;
    c.run("reachability", |c| c.reachability())?;
    c.run("orphans", |c| c.orphans())?;
    c.run("chunks", |c| c.chunks(chunk_size))?;
    c.run("sizes", |c| c.sizes())?;
    c.run("symlinks and side tables", |c| c.side_rows())?;
    c.run("whiteouts", |c| c.whiteouts())?;
    c.run("the journal", |c| c.journal())?;
    Ok(c.out)
}

struct Checker<'a> {
    conn: &'a Connection,
    out: Vec<Problem>,
    /// The integrity check failed: later checks may hit damaged pages.
    damaged: bool,
}

impl Checker<'_> {
    fn push(&mut self, kind: ProblemKind, repairable: bool, detail: String) {
        self.out.push(Problem {
            kind,
            detail,
            repairable,
        });
    }

    /// Runs one group of checks; on a damaged file its errors become problems.
    fn run(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Self) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        match f(self) {
            Err(e) if self.damaged => {
                self.push(
                    ProblemKind::Integrity,
                    false,
                    format!("could not check {what}: {e}"),
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Runs `sql` and adds one problem per row (at most [`MAX_PER_KIND`], then a summary).
    /// `detail` reads the row's columns from index 1 on (column 0 is the total count).
    fn report<P: rusqlite::Params>(
        &mut self,
        kind: ProblemKind,
        repairable: bool,
        sql: &str,
        params: P,
        detail: impl Fn(&Row<'_>) -> rusqlite::Result<String>,
    ) -> rusqlite::Result<()> {
        let wrapped = format!(
            "SELECT count(*) OVER (), q.* FROM ({sql}) q LIMIT {}",
            MAX_PER_KIND + 1
        );
        let mut stmt = self.conn.prepare(&wrapped)?;
        let mut rows = stmt.query(params)?;
        let mut total = 0i64;
        let mut listed = 0usize;
        while let Some(row) = rows.next()? {
            total = row.get(0)?;
            if listed < MAX_PER_KIND {
                let d = detail(row)?;
                self.push(kind, repairable, d);
                listed += 1;
            }
        }
        let more = total - listed as i64;
        if more > 0 {
            self.push(
                kind,
                repairable,
                format!("... and {more} more problems like the ones above"),
            );
        }
        Ok(())
    }

    fn integrity(&mut self) -> rusqlite::Result<()> {
        let messages: Vec<String> = {
            let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?
        };
        for m in messages {
            if m != "ok" {
                self.damaged = true;
                self.push(
                    ProblemKind::Integrity,
                    false,
                    format!("SQLite integrity check: {m}"),
                );
            }
        }
        Ok(())
    }

    fn root(&mut self) -> rusqlite::Result<()> {
        match root_mode(self.conn)? {
            None => self.push(
                ProblemKind::MissingRoot,
                true,
                "the root directory (inode 1) does not exist".into(),
            ),
            Some(mode) if !is_dir_mode(mode) => self.push(
                ProblemKind::MissingRoot,
                false,
                format!("inode 1, the root, is not a directory (mode {mode:#o})"),
            ),
            Some(_) => {}
        }
        Ok(())
    }

    fn chunk_size(&mut self) -> rusqlite::Result<Option<i64>> {
        let cs = match read_chunk_size(self.conn) {
            Ok(cs) => cs,
            Err(e) if self.damaged => {
                self.push(
                    ProblemKind::Integrity,
                    false,
                    format!("could not read the chunk size: {e}"),
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match cs {
            Ok(n) => Ok(Some(n)),
            Err(what) => {
                self.push(
                    ProblemKind::BadChunkSize,
                    false,
                    format!(
                        "fs_config chunk_size is {what}, not a positive integer; \
                         file contents cannot be checked"
                    ),
                );
                Ok(None)
            }
        }
    }

    fn modes(&mut self) -> rusqlite::Result<()> {
        let sql =
            format!("SELECT ino, mode FROM fs_inode WHERE (mode & 61440) NOT IN {KNOWN_TYPES}");
        self.report(ProblemKind::BadMode, false, &sql, [], |r| {
            Ok(format!(
                "inode {} has mode {:#o}, which is no known file type",
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?
            ))
        })
    }

    fn dentries(&mut self) -> rusqlite::Result<()> {
        let sql = format!("SELECT d.name, d.parent_ino, d.ino FROM fs_dentry d WHERE {DANGLING}");
        self.report(ProblemKind::DanglingDentry, true, &sql, [], |r| {
            Ok(format!(
                "entry {} in directory {} points at inode {}, which does not exist",
                show_name(r.get_ref(1)?),
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?
            ))
        })?;

        let sql = format!(
            "SELECT d.name, d.parent_ino, d.ino, p.mode FROM fs_dentry d \
             LEFT JOIN fs_inode p ON p.ino = d.parent_ino WHERE {BAD_PARENT}"
        );
        self.report(ProblemKind::MissingParent, true, &sql, [], |r| {
            let parent: i64 = r.get(2)?;
            let why = match r.get::<_, Option<i64>>(4)? {
                None => "does not exist".to_string(),
                Some(mode) => format!("is not a directory (mode {mode:#o})"),
            };
            Ok(format!(
                "entry {} for inode {} is in inode {parent}, which {why}",
                show_name(r.get_ref(1)?),
                r.get::<_, i64>(3)?
            ))
        })?;

        let sql = "SELECT d.name, d.parent_ino, d.ino FROM fs_dentry d WHERE \
             typeof(d.name) NOT IN ('text', 'blob') \
             OR octet_length(d.name) NOT BETWEEN 1 AND 255 \
             OR instr(CAST(d.name AS BLOB), x'2f') > 0 OR instr(CAST(d.name AS BLOB), x'00') > 0 \
             OR CAST(d.name AS BLOB) IN (x'2e', x'2e2e')";
        self.report(ProblemKind::BadName, false, sql, [], |r| {
            Ok(format!(
                "entry {} in directory {} (inode {}) is not a valid file name",
                show_name(r.get_ref(1)?),
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?
            ))
        })?;

        let sql = format!(
            "SELECT d.name, d.parent_ino, d.ino FROM fs_dentry d WHERE {EXTRA_DIR_NAME} \
             AND NOT ({DANGLING}) AND NOT ({BAD_PARENT})"
        );
        self.report(ProblemKind::DirectoryHardLink, true, &sql, [], |r| {
            let ino: i64 = r.get(3)?;
            let name = show_name(r.get_ref(1)?);
            let parent: i64 = r.get(2)?;
            Ok(if ino == 1 {
                format!("the root directory has a name: entry {name} in directory {parent}")
            } else {
                format!(
                    "directory {ino} has more than one name: entry {name} in directory \
                     {parent} is an extra one"
                )
            })
        })
    }

    fn nlinks(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT i.ino, i.nlink, {EXPECTED_NLINK}, {IS_DIR} FROM fs_inode i WHERE {}",
            wrong_nlink_filter()
        );
        self.report(ProblemKind::WrongNlink, true, &sql, [], |r| {
            let (ino, nlink, want): (i64, i64, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
            Ok(if r.get::<_, bool>(4)? {
                format!(
                    "directory {ino} has nlink {nlink} but should have {want} \
                     (2 + {} subdirectories)",
                    want - 2
                )
            } else {
                format!("inode {ino} has nlink {nlink} but {want} names point at it")
            })
        })
    }

    fn reachability(&mut self) -> rusqlite::Result<()> {
        let sql =
            format!("SELECT i.ino, i.mode, i.size FROM fs_inode i WHERE {NAMELESS} ORDER BY i.ino");
        self.report(ProblemKind::UnreachableInode, true, &sql, [], |r| {
            let ino: i64 = r.get(1)?;
            Ok(format!(
                "{} {ino} ({} bytes) has no name and is not open \
                 (it belongs in /lost+found/#{ino})",
                kind_word(r.get(2)?),
                r.get::<_, i64>(3)?
            ))
        })?;
        let sql = cycle_dirs_sql();
        self.report(ProblemKind::DirectoryCycle, true, &sql, [], |r| {
            Ok(format!(
                "directory {} (entry {} in directory {}) cannot be reached from the root: \
                 it is in or below a cycle of directories",
                r.get::<_, i64>(1)?,
                show_name(r.get_ref(3)?),
                r.get::<_, i64>(2)?
            ))
        })
    }

    fn orphans(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT o.ino, (SELECT count(*) FROM fs_dentry d WHERE d.ino = o.ino), \
             EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = o.ino) \
             FROM fs_orphan o WHERE {STALE_ORPHAN}"
        );
        self.report(ProblemKind::StaleOrphanRow, true, &sql, [], |r| {
            let ino: i64 = r.get(1)?;
            Ok(if r.get::<_, bool>(3)? {
                format!(
                    "inode {ino} is listed as an open orphan but {} names point at it",
                    r.get::<_, i64>(2)?
                )
            } else {
                format!("inode {ino} is listed as an open orphan but does not exist")
            })
        })
    }

    fn chunks(&mut self, chunk_size: Option<i64>) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT f.ino, count(*), (SELECT mode FROM fs_inode i WHERE i.ino = f.ino) \
             FROM fs_data f WHERE {ORPHAN_CHUNK} GROUP BY f.ino"
        );
        self.report(ProblemKind::OrphanChunks, true, &sql, [], |r| {
            let ino: i64 = r.get(1)?;
            let n: i64 = r.get(2)?;
            Ok(match r.get::<_, Option<i64>>(3)? {
                None => format!("{n} data chunks belong to inode {ino}, which does not exist"),
                Some(mode) => format!(
                    "{n} data chunks belong to inode {ino}, which is a {} and has no contents",
                    kind_word(mode)
                ),
            })
        })?;
        let Some(cs) = chunk_size else {
            return Ok(());
        };
        let sql = format!(
            "SELECT f.ino, count(*), i.size, min(f.chunk_index) FROM fs_data f \
             JOIN fs_inode i ON i.ino = f.ino WHERE {IS_REG} AND {BEYOND_SIZE} GROUP BY f.ino"
        );
        self.report(ProblemKind::ChunkBeyondSize, true, &sql, [cs], |r| {
            Ok(format!(
                "file {} has {} bytes but {} data chunks from index {} on lie past its end",
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(4)?
            ))
        })?;
        let sql = format!(
            "SELECT f.ino, f.chunk_index, octet_length(f.data), \
             min(?1, i.size - f.chunk_index * ?1), i.size FROM fs_data f \
             JOIN fs_inode i ON i.ino = f.ino WHERE {IS_REG} AND {TOO_LONG_CHUNK}"
        );
        self.report(ProblemKind::SizeMismatch, true, &sql, [cs], |r| {
            Ok(format!(
                "chunk {} of file {} holds {} bytes but only {} fit \
                 (file size {}, chunk size {cs})",
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?
            ))
        })?;
        let sql = format!(
            "SELECT f.ino, f.chunk_index, octet_length(f.data) FROM fs_data f \
             JOIN fs_inode i ON i.ino = f.ino WHERE {IS_REG} AND {SHORT_CHUNK}"
        );
        self.report(ProblemKind::ShortChunk, true, &sql, [cs], |r| {
            Ok(format!(
                "chunk {} of file {} holds {} bytes but is not the last one, so it should \
                 hold {cs}",
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(3)?
            ))
        })
    }

    fn sizes(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT i.ino, i.mode, i.size, {EXPECTED_OTHER_SIZE} AS want FROM fs_inode i \
             WHERE want IS NOT NULL AND i.size IS NOT want"
        );
        self.report(ProblemKind::SizeMismatch, true, &sql, [], |r| {
            let mode: i64 = r.get(2)?;
            let want: i64 = r.get(4)?;
            let why = if is_lnk_mode(mode) {
                "its target length"
            } else {
                "it has no contents"
            };
            Ok(format!(
                "{} {} has size {} but should have {want} ({why})",
                kind_word(mode),
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(3)?
            ))
        })?;
        self.report(
            ProblemKind::SizeMismatch,
            false,
            "SELECT ino, size FROM fs_inode WHERE size < 0",
            [],
            |r| {
                Ok(format!(
                    "inode {} has a negative size ({})",
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?
                ))
            },
        )
    }

    fn side_rows(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT i.ino FROM fs_inode i WHERE {IS_LNK} \
             AND NOT EXISTS (SELECT 1 FROM fs_symlink s WHERE s.ino = i.ino)"
        );
        self.report(ProblemKind::MissingSymlinkTarget, false, &sql, [], |r| {
            Ok(format!(
                "symlink {} has no target (no fs_symlink row)",
                r.get::<_, i64>(1)?
            ))
        })?;
        let sql = format!(
            "SELECT 'fs_symlink', s.ino, NULL FROM fs_symlink s WHERE {m} \
             UNION ALL SELECT 'fs_xattr', s.ino, s.name FROM fs_xattr s WHERE {m} \
             UNION ALL SELECT 'fs_content_hash', s.ino, NULL FROM fs_content_hash s WHERE {m} \
             UNION ALL SELECT 'fs_origin', s.delta_ino, NULL FROM fs_origin s WHERE {mo} \
             UNION ALL SELECT 'fs_base_backing', s.ino, NULL FROM fs_base_backing s WHERE {m}",
            m = missing_inode("s.ino"),
            mo = missing_inode("s.delta_ino"),
        );
        self.report(ProblemKind::RowForMissingInode, true, &sql, [], |r| {
            let table: String = r.get(1)?;
            let ino: i64 = r.get(2)?;
            Ok(match r.get_ref(3)? {
                ValueRef::Null => {
                    format!("{table} has a row for inode {ino}, which does not exist")
                }
                name => format!(
                    "{table} has attribute {} for inode {ino}, which does not exist",
                    show_name(name)
                ),
            })
        })?;
        let sql = format!(
            "SELECT h.ino, h.size, (SELECT size FROM fs_inode i WHERE i.ino = h.ino) \
             FROM fs_content_hash h WHERE {STALE_HASH}"
        );
        self.report(ProblemKind::StaleContentHash, true, &sql, [], |r| {
            Ok(format!(
                "the cached content hash of inode {} is for {} bytes but the inode is not a \
                 file of that size (size {})",
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?
            ))
        })
    }

    fn whiteouts(&mut self) -> rusqlite::Result<()> {
        self.report(
            ProblemKind::ShadowedWhiteout,
            true,
            SHADOWED_WHITEOUTS,
            [],
            |r| {
                Ok(format!(
                    "whiteout {} hides a base path but the session has an entry there",
                    show_name(r.get_ref(1)?)
                ))
            },
        )
    }

    fn journal(&mut self) -> rusqlite::Result<()> {
        let known_ops = JournalOp::sql_list();
        let sql = format!(
            "SELECT seq, op, time_ns FROM fs_change WHERE op IS NULL OR op NOT IN {known_ops} \
             OR typeof(time_ns) <> 'integer' OR time_ns <= 0"
        );
        self.report(ProblemKind::JournalSanity, false, &sql, [], |r| {
            let op = match r.get_ref(2)? {
                ValueRef::Null => "no op".to_string(),
                v => format!("op {}", show_name(v)),
            };
            let time = match r.get_ref(3)? {
                ValueRef::Integer(t) => t.to_string(),
                ValueRef::Null => "NULL".to_string(),
                v => show_name(v),
            };
            Ok(format!(
                "journal row {} has {op} and time_ns {time} (expected a known op and a \
                 positive time)",
                r.get::<_, i64>(1)?
            ))
        })
    }
}
