//! Database connections shared by threads: readers each take their own connection (SQLite's
//! WAL lets reads run in parallel); all writes of the process go through one writer.
//!
//! A thread can hold the writer across several operations ([`Pool::scope`]): they then make
//! one transaction, and every connection that thread asks for in the meantime, reader or
//! writer, is the writer, so what the earlier operations wrote is what the later ones see.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::store::{OpenMode, Store, StoreError};

thread_local! {
    /// The writer connections this thread holds in a scope, by the address of their pool; the
    /// slot is empty while an operation of the scope has the connection.
    static SCOPED: RefCell<Vec<(usize, Option<Store>)>> = const { RefCell::new(Vec::new()) };
}

/// Idle connections to one database; a thread takes one per operation and puts it back.
pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
    /// The one connection that writes, with the mutex writers queue on.
    writer: Mutex<Option<Store>>,
    writer_free: std::sync::Condvar,
    /// `wal_autocheckpoint` for connections opened from now on (0 = SQLite's default).
    autocheckpoint: AtomicI64,
    /// Whether the writer connection exists (in the slot or lent out); guarded by `writer`.
    writer_taken: AtomicBool,
}

impl Pool {
    pub fn new(first: Store) -> Pool {
        Pool {
            path: first.path.clone(),
            idle: Mutex::new(vec![first]),
            writer: Mutex::new(None),
            writer_free: std::sync::Condvar::new(),
            autocheckpoint: AtomicI64::new(0),
            writer_taken: AtomicBool::new(false),
        }
    }

    /// Sets `wal_autocheckpoint` (in pages) on every connection, idle or opened later.
    pub fn set_autocheckpoint(&self, pages: i64) -> Result<(), StoreError> {
        self.autocheckpoint.store(pages, Ordering::Relaxed);
        for store in self.idle.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            store
                .conn
                .pragma_update(None, "wal_autocheckpoint", pages)?;
        }
        if let Some(store) = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            store
                .conn
                .pragma_update(None, "wal_autocheckpoint", pages)?;
        }
        Ok(())
    }

    fn open_one(&self) -> Result<Store, StoreError> {
        let store = Store::open(&self.path, OpenMode::Existing)?;
        let pages = self.autocheckpoint.load(Ordering::Relaxed);
        if pages > 0 {
            store
                .conn
                .pragma_update(None, "wal_autocheckpoint", pages)?;
        }
        Ok(store)
    }

    /// An idle connection, or a new one when all are busy.
    pub fn get(&self) -> Result<Pooled<'_>, StoreError> {
        if let Some(scoped) = self.take_scoped() {
            return Ok(scoped);
        }
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let store = match idle {
            Some(s) => s,
            None => self.open_one()?,
        };
        Ok(Pooled {
            pool: self,
            store: Some(store),
            writer: false,
            scoped: false,
        })
    }

    /// The writer connection, once no other thread of this process holds it.
    pub fn writer(&self) -> Result<Pooled<'_>, StoreError> {
        if self.in_scope() {
            return self.take_scoped().ok_or(StoreError::WriterInUse);
        }
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match slot.take() {
                Some(store) => {
                    return Ok(Pooled {
                        pool: self,
                        store: Some(store),
                        writer: true,
                        scoped: false,
                    });
                }
                None if !self.writer_taken.load(Ordering::Relaxed) => {
                    self.writer_taken.store(true, Ordering::Relaxed);
                    drop(slot);
                    return match self.open_one() {
                        Ok(store) => Ok(Pooled {
                            pool: self,
                            store: Some(store),
                            writer: true,
                            scoped: false,
                        }),
                        Err(e) => {
                            self.writer_taken.store(false, Ordering::Relaxed);
                            self.writer_free.notify_one();
                            Err(e)
                        }
                    };
                }
                None => {
                    slot = self
                        .writer_free
                        .wait(slot)
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
    fn key(&self) -> usize {
        self as *const Pool as usize
    }

    /// Whether this thread holds the writer in a scope.
    fn in_scope(&self) -> bool {
        let key = self.key();
        SCOPED.with_borrow(|s| s.iter().any(|(k, _)| *k == key))
    }

    /// The writer of this thread's scope, if it has one and no operation has it now.
    fn take_scoped(&self) -> Option<Pooled<'_>> {
        let key = self.key();
        let store = SCOPED.with_borrow_mut(|s| {
            s.iter_mut()
                .rev()
                .find(|(k, _)| *k == key)
                .and_then(|(_, slot)| slot.take())
        })?;
        Some(Pooled {
            pool: self,
            store: Some(store),
            writer: true,
            scoped: true,
        })
    }

    /// Holds the writer for this thread and opens a transaction on it: every operation of
    /// this thread until [`Scope::commit`] is part of it, and dropping the scope instead rolls
    /// them all back. A scope inside a scope is a savepoint.
    pub fn scope(&self) -> Result<Scope<'_>, StoreError> {
        let mut conn = self.writer()?;
        let nested = conn.store.as_ref().is_some_and(|s| !s.conn.is_autocommit());
        {
            let store = conn.store.as_ref().expect("present until drop");
            let sql = if nested {
                "SAVEPOINT agentfs_scope"
            } else {
                "BEGIN IMMEDIATE"
            };
            store.conn.execute_batch(sql)?;
        }
        if nested {
            return Ok(Scope {
                pool: self,
                nested: true,
                open: true,
            });
        }
        // The scope owns the connection from here on and gives it back when it ends.
        let store = conn.store.take().expect("present until drop");
        drop(conn);
        SCOPED.with_borrow_mut(|s| s.push((self.key(), Some(store))));
        Ok(Scope {
            pool: self,
            nested: false,
            open: true,
        })
    }
}

/// A transaction spanning several operations of one thread (see [`Pool::scope`]).
pub struct Scope<'a> {
    pool: &'a Pool,
    nested: bool,
    open: bool,
}

impl Scope<'_> {
    /// Commits everything done in the scope (nested: keeps it for the enclosing scope).
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.finish(true)
    }

    fn finish(&mut self, commit: bool) -> Result<(), StoreError> {
        let sql = match (self.nested, commit) {
            (true, true) => "RELEASE agentfs_scope",
            (true, false) => "ROLLBACK TO agentfs_scope; RELEASE agentfs_scope",
            (false, true) => "COMMIT",
            (false, false) => "ROLLBACK",
        };
        if self.nested {
            let conn = self.pool.take_scoped().ok_or(StoreError::WriterInUse)?;
            conn.conn.execute_batch(sql)?;
            return Ok(());
        }
        let key = self.pool.key();
        let store = SCOPED.with_borrow_mut(|s| {
            let at = s.iter().rposition(|(k, _)| *k == key)?;
            s.remove(at).1
        });
        let Some(store) = store else {
            return Err(StoreError::WriterInUse);
        };
        let done = store.conn.execute_batch(sql);
        if done.is_err() && commit {
            let _ = store.conn.execute_batch("ROLLBACK");
        }
        // Back to the writer slot (or closed, if it is still inside a transaction).
        drop(Pooled {
            pool: self.pool,
            store: Some(store),
            writer: true,
            scoped: false,
        });
        Ok(done?)
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        if self.open {
            self.open = false;
            let _ = self.finish(false);
        }
    }
}

/// A connection taken from the pool; it goes back when dropped.
pub struct Pooled<'a> {
    pool: &'a Pool,
    store: Option<Store>,
    /// This is the writer connection, going back to the writer slot.
    writer: bool,
    /// This is the writer of this thread's scope, going back to the scope.
    scoped: bool,
}

impl Deref for Pooled<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("present until drop")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.store.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        if self.scoped {
            let key = self.pool.key();
            SCOPED.with_borrow_mut(|s| {
                if let Some((_, slot)) = s.iter_mut().rev().find(|(k, _)| *k == key) {
                    *slot = Some(store);
                }
            });
            return;
        }
        // A connection left inside a transaction (a panic mid-operation) is not reused.
        let reusable = store.conn.is_autocommit();
        if self.writer {
            let mut slot = self.pool.writer.lock().unwrap_or_else(|e| e.into_inner());
            if reusable {
                *slot = Some(store);
            } else {
                self.pool.writer_taken.store(false, Ordering::Relaxed);
            }
            drop(slot);
            self.pool.writer_free.notify_one();
        } else if reusable {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(store);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), OpenMode::Create).unwrap();
        store
            .conn
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        (dir, Pool::new(store))
    }

    fn count(pool: &Pool) -> i64 {
        let c = pool.get().unwrap();
        c.conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    fn insert(pool: &Pool) {
        let mut w = pool.writer().unwrap();
        let tx = w.write_tx().unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_scope_shows_its_thread_what_it_wrote_and_other_threads_nothing_until_it_commits() {
        let (_dir, pool) = pool();
        let scope = pool.scope().unwrap();
        insert(&pool);
        insert(&pool);
        assert_eq!(count(&pool), 2, "the scope's own reads miss its writes");
        std::thread::scope(|t| {
            let seen = t.spawn(|| count(&pool)).join().unwrap();
            assert_eq!(seen, 0, "another thread saw an uncommitted scope");
        });
        scope.commit().unwrap();
        std::thread::scope(|t| assert_eq!(t.spawn(|| count(&pool)).join().unwrap(), 2));
    }

    #[test]
    fn a_dropped_scope_rolls_back_and_gives_the_writer_back() {
        let (_dir, pool) = pool();
        {
            let _scope = pool.scope().unwrap();
            insert(&pool);
            {
                let inner = pool.scope().unwrap();
                insert(&pool);
                drop(inner);
            }
            assert_eq!(count(&pool), 1, "the inner scope's rollback undid too much");
        }
        assert_eq!(count(&pool), 0);
        insert(&pool);
        assert_eq!(count(&pool), 1);
    }

    #[test]
    fn asking_for_the_writer_while_the_scope_lent_it_out_is_an_error_not_a_deadlock() {
        let (_dir, pool) = pool();
        let _scope = pool.scope().unwrap();
        let _held = pool.writer().unwrap();
        assert!(matches!(pool.writer(), Err(StoreError::WriterInUse)));
    }
}
