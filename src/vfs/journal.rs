//! The change journal's operations (`fs_change.op`): one type for everything that writes or
//! checks the journal, so a new op cannot be written without fsck knowing it.

use std::fmt;
use std::str::FromStr;

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
