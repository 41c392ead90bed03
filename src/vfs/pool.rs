//! Database connections shared by threads: readers each take their own connection (SQLite's
//! WAL lets reads run in parallel); all writes of the process go through one writer.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::store::{OpenMode, Store, StoreError};

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
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let store = match idle {
            Some(s) => s,
            None => self.open_one()?,
        };
        Ok(Pooled {
            pool: self,
            store: Some(store),
            writer: false,
        })
    }

    /// The writer connection, once no other thread of this process holds it.
    pub fn writer(&self) -> Result<Pooled<'_>, StoreError> {
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match slot.take() {
                Some(store) => {
                    return Ok(Pooled {
                        pool: self,
                        store: Some(store),
                        writer: true,
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
}

/// A connection taken from the pool; it goes back when dropped.
pub struct Pooled<'a> {
    pool: &'a Pool,
    store: Option<Store>,
    /// This is the writer connection, going back to the writer slot.
    writer: bool,
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
