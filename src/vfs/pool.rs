//! A pool of database connections, so several threads (FUSE workers) run operations at once,
//! each on its own connection; SQLite's WAL lets their reads proceed in parallel.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::store::{OpenMode, Store, StoreError};

/// Idle connections to one database; a thread takes one per operation and puts it back.
pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
    /// `wal_autocheckpoint` for connections opened from now on (0 = SQLite's default).
    autocheckpoint: AtomicI64,
}

impl Pool {
    pub fn new(first: Store) -> Pool {
        Pool {
            path: first.path.clone(),
            idle: Mutex::new(vec![first]),
            autocheckpoint: AtomicI64::new(0),
        }
    }

    /// Sets `wal_autocheckpoint` (in pages) on every connection, idle or opened later.
    pub fn set_autocheckpoint(&self, pages: i64) -> Result<(), StoreError> {
        self.autocheckpoint.store(pages, Ordering::Relaxed);
        for store in self.idle.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            store.conn.pragma_update(None, "wal_autocheckpoint", pages)?;
        }
        Ok(())
    }

    /// An idle connection, or a new one when all are busy.
    pub fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let store = match idle {
            Some(s) => s,
            None => {
                let store = Store::open(&self.path, OpenMode::Existing)?;
                let pages = self.autocheckpoint.load(Ordering::Relaxed);
                if pages > 0 {
                    store.conn.pragma_update(None, "wal_autocheckpoint", pages)?;
                }
                store
            }
        };
        Ok(Pooled {
            pool: self,
            store: Some(store),
        })
    }
}

/// A connection taken from the pool; it goes back when dropped.
pub struct Pooled<'a> {
    pool: &'a Pool,
    store: Option<Store>,
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
        if let Some(store) = self.store.take() {
            // A connection left inside a transaction (a panic mid-operation) is not reused.
            if store.conn.is_autocommit() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(store);
            }
        }
    }
}
