//! Transactions that nest: an operation's transaction becomes a savepoint when a caller has
//! already opened one, so several operations can commit together or not at all.

use std::ops::Deref;

use rusqlite::Connection;

/// The savepoint name nested transactions use (SQLite keeps a stack, so one name serves all
/// depths).
const SAVEPOINT: &str = "agentfs_nested";

/// How a transaction starts when it is the outermost one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    /// `BEGIN IMMEDIATE`: takes the write lock at once (a deferred transaction that reads
    /// and then writes fails with SQLITE_BUSY instead of waiting, in WAL mode).
    Immediate,
    /// `BEGIN DEFERRED`: a consistent snapshot for reads.
    Deferred,
}

/// A transaction on a connection, or a savepoint inside the one already open there.
/// Dropping it without [`Tx::commit`] rolls back what it did (only that, when nested).
pub struct Tx<'a> {
    conn: &'a Connection,
    nested: bool,
    open: bool,
}

impl<'a> Tx<'a> {
    /// Opens a transaction, or a savepoint if `conn` is inside one.
    pub fn begin(conn: &'a Connection, begin: Begin) -> rusqlite::Result<Tx<'a>> {
        let nested = !conn.is_autocommit();
        let sql = match (nested, begin) {
            (true, _) => format!("SAVEPOINT {SAVEPOINT}"),
            (false, Begin::Immediate) => "BEGIN IMMEDIATE".to_owned(),
            (false, Begin::Deferred) => "BEGIN DEFERRED".to_owned(),
        };
        conn.execute_batch(&sql)?;
        Ok(Tx {
            conn,
            nested,
            open: true,
        })
    }

    /// Commits (or, nested, keeps the savepoint's changes for the enclosing transaction).
    pub fn commit(mut self) -> rusqlite::Result<()> {
        let sql = if self.nested {
            format!("RELEASE {SAVEPOINT}")
        } else {
            "COMMIT".to_owned()
        };
        self.conn.execute_batch(&sql)?;
        self.open = false;
        Ok(())
    }

    /// Whether this is a savepoint inside a transaction a caller opened.
    pub fn is_nested(&self) -> bool {
        self.nested
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let sql = if self.nested {
            format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}")
        } else {
            "ROLLBACK".to_owned()
        };
        // A failed rollback leaves the connection inside a transaction, which the pool sees
        // (`is_autocommit`) and does not reuse.
        let _ = self.conn.execute_batch(&sql);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        c
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn an_outer_rollback_undoes_a_committed_nested_transaction() {
        let c = conn();
        {
            let outer = Tx::begin(&c, Begin::Immediate).unwrap();
            assert!(!outer.is_nested());
            let inner = Tx::begin(&c, Begin::Immediate).unwrap();
            assert!(inner.is_nested());
            inner.execute("INSERT INTO t VALUES (1)", []).unwrap();
            inner.commit().unwrap();
            assert_eq!(count(&c), 1);
        }
        assert!(c.is_autocommit());
        assert_eq!(count(&c), 0);
    }

    #[test]
    fn a_dropped_nested_transaction_undoes_only_its_own_changes() {
        let c = conn();
        let outer = Tx::begin(&c, Begin::Immediate).unwrap();
        outer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        {
            let inner = Tx::begin(&c, Begin::Deferred).unwrap();
            inner.execute("INSERT INTO t VALUES (2)", []).unwrap();
        }
        outer.commit().unwrap();
        assert_eq!(count(&c), 1);
        assert!(c.is_autocommit());
    }
}
