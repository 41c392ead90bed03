//! The change journal (`fs_change`): its operations, who a change is made for, reading it back.
//!
//! The operations (`fs_change.op`) are one type for everything that writes or checks the
//! journal, so a new op cannot be written without fsck knowing it.

use std::fmt;
use std::str::FromStr;

use rusqlite::params;

use super::{Ino, JournalRow, Vfs, VfsResult, names};

/// One kind of change the journal records (SPEC.md, "fs_change").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JournalOp {
    Create,
    Mknod,
    Mkdir,
    Symlink,
    Link,
    Unlink,
    Rmdir,
    Rename,
    Exchange,
    Write,
    Truncate,
    Fallocate,
    Chmod,
    Chown,
    Utimens,
    Setxattr,
    Removexattr,
    /// A path `agentfs apply` took out of the delta (written to the base).
    Apply,
}

impl JournalOp {
    /// Every op, in SPEC.md's order.
    pub const ALL: [JournalOp; 18] = [
        JournalOp::Create,
        JournalOp::Mknod,
        JournalOp::Mkdir,
        JournalOp::Symlink,
        JournalOp::Link,
        JournalOp::Unlink,
        JournalOp::Rmdir,
        JournalOp::Rename,
        JournalOp::Exchange,
        JournalOp::Write,
        JournalOp::Truncate,
        JournalOp::Fallocate,
        JournalOp::Chmod,
        JournalOp::Chown,
        JournalOp::Utimens,
        JournalOp::Setxattr,
        JournalOp::Removexattr,
        JournalOp::Apply,
    ];

    /// The name stored in `fs_change.op`.
    pub const fn as_str(self) -> &'static str {
        match self {
            JournalOp::Create => "create",
            JournalOp::Mknod => "mknod",
            JournalOp::Mkdir => "mkdir",
            JournalOp::Symlink => "symlink",
            JournalOp::Link => "link",
            JournalOp::Unlink => "unlink",
            JournalOp::Rmdir => "rmdir",
            JournalOp::Rename => "rename",
            JournalOp::Exchange => "exchange",
            JournalOp::Write => "write",
            JournalOp::Truncate => "truncate",
            JournalOp::Fallocate => "fallocate",
            JournalOp::Chmod => "chmod",
            JournalOp::Chown => "chown",
            JournalOp::Utimens => "utimens",
            JournalOp::Setxattr => "setxattr",
            JournalOp::Removexattr => "removexattr",
            JournalOp::Apply => "apply",
        }
    }

    /// The ops as an SQL list literal, `('create', ...)`, for checks written in SQL.
    pub fn sql_list() -> String {
        let names: Vec<String> = Self::ALL.iter().map(|op| format!("'{op}'")).collect();
        format!("({})", names.join(", "))
    }
}

impl fmt::Display for JournalOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a journal op.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a journal op")]
pub struct UnknownOp(pub String);

impl FromStr for JournalOp {
    type Err = UnknownOp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOp(s.to_owned()))
    }
}

thread_local! {
    /// The runner of the request this thread is serving (a frontend serves one request per
    /// thread at a time, and the runner differs from request to request).
    static REQUEST_RUNNER: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// Sets a per-thread value for as long as it lives, then puts the previous one back.
struct Scoped {
    key: &'static std::thread::LocalKey<std::cell::Cell<Option<i64>>>,
    previous: Option<i64>,
}

impl Scoped {
    fn enter(
        key: &'static std::thread::LocalKey<std::cell::Cell<Option<i64>>>,
        value: Option<i64>,
    ) -> Scoped {
        Scoped {
            key,
            previous: key.replace(value),
        }
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        self.key.set(self.previous);
    }
}

/// While alive, changes made on this thread are recorded in the journal as made by a runner
/// (a row of `fs_runner`), whatever the instance-wide runner is.
pub struct RunnerScope {
    _scope: Scoped,
}

impl RunnerScope {
    pub fn enter(runner: Option<i64>) -> RunnerScope {
        RunnerScope {
            _scope: Scoped::enter(&REQUEST_RUNNER, runner),
        }
    }
}

thread_local! {
    /// The tool call (a row of `tool_calls`) whose work this thread is doing, if any.
    static TOOL_CALL: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// While alive, changes made on this thread are recorded in the journal as made for a tool
/// call (`fs_change.tool_call_id`), so "which call changed this file" has an answer.
pub struct ToolCallScope {
    _scope: Scoped,
}

impl ToolCallScope {
    pub fn enter(call: Option<i64>) -> ToolCallScope {
        ToolCallScope {
            _scope: Scoped::enter(&TOOL_CALL, call),
        }
    }
}

/// The tool call the change being made on this thread is for (see [`ToolCallScope`]).
pub(crate) fn current_tool_call() -> Option<i64> {
    TOOL_CALL.get()
}

impl Vfs {
    /// The runner the current change is made for: the one of the request being served on
    /// this thread (see [`RunnerScope`]).
    pub(super) fn runner(&self) -> Option<i64> {
        REQUEST_RUNNER.get()
    }

    /// The newest journal sequence number (0 for an empty journal).
    pub fn last_change_seq(&self) -> VfsResult<i64> {
        Ok(self.store()?.conn.query_row(
            "SELECT coalesce(max(seq), 0) FROM fs_change",
            [],
            |r| r.get(0),
        )?)
    }

    /// Journal rows after `seq` written by other processes, oldest first, at most `limit`:
    /// what a mount must invalidate in the kernel's caches.
    pub fn foreign_changes_since(&self, seq: i64, limit: usize) -> VfsResult<Vec<JournalRow>> {
        let store = self.store()?;
        let mut stmt = store.conn.prepare_cached(
            "SELECT seq, ino, path, old_path FROM fs_change \
             WHERE seq > ?1 AND pid IS NOT ?2 ORDER BY seq LIMIT ?3",
        )?;
        let opt_name = |v: rusqlite::types::ValueRef<'_>| match v {
            rusqlite::types::ValueRef::Null => Ok(None),
            other => names::from_sql(other).map(Some),
        };
        let rows = stmt
            .query_map(
                params![
                    seq,
                    std::process::id() as i64,
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    Ok(JournalRow {
                        seq: r.get(0)?,
                        ino: r.get::<_, Option<i64>>(1)?.map(|i| Ino(i as u64)),
                        path: opt_name(r.get_ref(2)?)?,
                        old_path: opt_name(r.get_ref(3)?)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_through_its_name() {
        for op in JournalOp::ALL {
            assert_eq!(op.as_str().parse::<JournalOp>().unwrap(), op);
        }
        assert!("rename2".parse::<JournalOp>().is_err());
    }

    #[test]
    fn spec_lists_every_op() {
        let spec = include_str!("../../SPEC.md");
        for op in JournalOp::ALL {
            assert!(
                spec.contains(&format!("`{op}`")),
                "SPEC.md does not list `{op}`"
            );
        }
    }

    #[test]
    fn the_sql_list_names_each_op_once() {
        let list = JournalOp::sql_list();
        assert!(list.starts_with("('create', 'mknod'") && list.ends_with("'apply')"));
        assert_eq!(list.matches('\'').count(), 2 * JournalOp::ALL.len());
    }
}
