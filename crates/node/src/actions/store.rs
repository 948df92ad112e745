//! The action store: code by CID (`POST /web/actions`), in its own redb file, `actions.redb`
//! in the data directory, bounded in bytes and count (`[actions] store_max_bytes`,
//! `store_max_actions`).
//!
//! A file of its own, because redb has one writer per database: in `sigil.redb` every stored
//! action would be a write transaction queued with the presignature takes of sign requests, and
//! anyone may store code. Here a flood of stores waits only on itself. Action code is public (it
//! is addressed by its hash and runs on every node), so it is stored in the clear, unsealed.
//!
//! Storing is idempotent: code already stored costs no write. When the store is full, the least
//! recently used actions (by last run, else store time) are evicted (`store_when_full =
//! "evict"`), except those run within the last wall time — a run in progress may still `call`
//! them; or new code is refused (`"refuse"`). Either way the refusal is 507
//! `ACTION_STORE_FULL`. Evicting is safe for everyone's code: a CID names its code, so whoever
//! needs an evicted action stores it again. The order of use is kept in memory, so a run costs
//! no write either; after a restart every action counts as stored at start-up.
//!
//! Uses `store` (its error type), `config`, `error`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};

use crate::config::{ActionsConfig, StoreWhenFull};
use crate::error::{Error, Kind};
use crate::store::StoreError;

/// Name of the action store inside the data directory.
pub const ACTIONS_FILE: &str = "actions.redb";

const CODE: TableDefinition<&str, &[u8]> = TableDefinition::new("code");

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into().to_string())
}

/// What the store may hold.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    /// Most bytes of code in all.
    pub max_bytes: u64,
    /// Most actions.
    pub max_actions: usize,
    /// What a full store does.
    pub when_full: StoreWhenFull,
    /// Actions run within this long are never evicted.
    pub in_use: Duration,
}

impl Quota {
    /// The quota `[actions]` sets.
    pub fn of(config: &ActionsConfig) -> Self {
        Self {
            max_bytes: config.store_max_bytes,
            max_actions: config.store_max_actions,
            when_full: config.store_when_full,
            in_use: config.limits.wall_time,
        }
    }
}

/// One stored action, as the in-memory index knows it.
#[derive(Clone, Copy, Debug)]
struct Entry {
    size: u64,
    /// When it was last stored or run, on the index's clock (higher is later).
    used: u64,
    last_run: Option<Instant>,
}

#[derive(Default)]
struct Index {
    entries: HashMap<String, Entry>,
    bytes: u64,
    clock: u64,
}

impl Index {
    fn touch(&mut self, cid: &str, run: bool) -> bool {
        self.clock += 1;
        let clock = self.clock;
        match self.entries.get_mut(cid) {
            Some(entry) => {
                entry.used = clock;
                if run {
                    entry.last_run = Some(Instant::now());
                }
                true
            }
            None => false,
        }
    }

    /// The actions to evict, least recently used first, so that `size` more bytes fit; `None` if
    /// that cannot be done (the rest ran too recently).
    fn victims(&self, size: u64, quota: &Quota) -> Option<Vec<String>> {
        let fits =
            |count: usize, bytes: u64| count < quota.max_actions && bytes.saturating_add(size) <= quota.max_bytes;
        let (mut count, mut bytes) = (self.entries.len(), self.bytes);
        if fits(count, bytes) {
            return Some(Vec::new());
        }
        if quota.when_full == StoreWhenFull::Refuse {
            return None;
        }
        let mut candidates: Vec<(&String, &Entry)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.last_run.is_none_or(|at| at.elapsed() >= quota.in_use))
            .collect();
        candidates.sort_by_key(|(_, e)| e.used);
        let mut victims = Vec::new();
        for (cid, entry) in candidates {
            if fits(count, bytes) {
                break;
            }
            victims.push(cid.clone());
            count -= 1;
            bytes -= entry.size;
        }
        fits(count, bytes).then_some(victims)
    }
}

/// Action code by CID, bounded; see the module docs.
pub struct ActionStore {
    db: Database,
    quota: Quota,
    index: Mutex<Index>,
    /// One store writes at a time; the others wait here (asynchronously, not on a blocking
    /// thread each) at most the slot wait, then are told `BUSY`.
    writer: tokio::sync::Semaphore,
}

/// What [`ActionStore::put`] did.
#[derive(Debug, Default)]
pub struct Stored {
    /// Whether the code was already there (nothing was written).
    pub existed: bool,
    /// Actions evicted to make room.
    pub evicted: Vec<String>,
}

impl ActionStore {
    /// Opens (or creates) the store at `path` and reads its index.
    pub fn open(path: &Path, quota: Quota) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let mut index = Index::default();
        {
            let txn = db.begin_write().map_err(db_err)?;
            txn.open_table(CODE).map_err(db_err)?;
            txn.commit().map_err(db_err)?;
        }
        let txn = db.begin_read().map_err(db_err)?;
        let table = txn.open_table(CODE).map_err(db_err)?;
        for row in table.iter().map_err(db_err)? {
            let (cid, code) = row.map_err(db_err)?;
            let size = code.value().len() as u64;
            index.bytes += size;
            index.entries.insert(
                cid.value().to_string(),
                Entry {
                    size,
                    used: 0,
                    last_run: None,
                },
            );
        }
        drop(table);
        drop(txn);
        Ok(Self {
            db,
            quota,
            index: Mutex::new(index),
            writer: tokio::sync::Semaphore::new(1),
        })
    }

    /// Actions stored, and their bytes.
    pub fn usage(&self) -> (usize, u64) {
        self.index
            .lock()
            .map(|i| (i.entries.len(), i.bytes))
            .unwrap_or_default()
    }

    /// The code stored under `cid`, if any, counted as a run of it (blocking: call it off the
    /// async runtime).
    pub fn get(&self, cid: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(CODE).map_err(db_err)?;
        let code = table.get(cid).map_err(db_err)?.map(|v| v.value().to_vec());
        if code.is_some() {
            if let Ok(mut index) = self.index.lock() {
                index.touch(cid, true);
            }
        }
        Ok(code)
    }

    /// Stores `code` under `cid` (the caller computed the CID from the code), evicting the least
    /// recently used actions if the store is full and may evict. Waits at most `wait` for the
    /// writer. Errors: 507 `ACTION_STORE_FULL`, 503 `BUSY`, 500 `INTERNAL`.
    pub async fn put(self: &std::sync::Arc<Self>, cid: String, code: Vec<u8>, wait: Duration) -> Result<Stored, Error> {
        let size = code.len() as u64;
        if self.index.lock().is_ok_and(|mut i| i.touch(&cid, false)) {
            return Ok(Stored {
                existed: true,
                evicted: Vec::new(),
            });
        }
        let full = |why: String| Error::new(Kind::StorageFull, "ACTION_STORE_FULL", why);
        if size > self.quota.max_bytes {
            return Err(full(format!(
                "action code of {size} bytes is over the action store's {}-byte quota",
                self.quota.max_bytes
            )));
        }
        let Ok(Ok(_writing)) = tokio::time::timeout(wait, self.writer.acquire()).await else {
            return Err(Error::busy(
                format!(
                    "the action store is busy writing other code; nothing freed up within {} ms",
                    wait.as_millis()
                ),
                wait.as_secs().max(1),
            ));
        };
        let victims = {
            let mut index = self
                .index
                .lock()
                .map_err(|_| Error::internal("action store index poisoned"))?;
            if index.touch(&cid, false) {
                return Ok(Stored {
                    existed: true,
                    evicted: Vec::new(),
                });
            }
            index.victims(size, &self.quota).ok_or_else(|| {
                let (count, bytes) = (index.entries.len(), index.bytes);
                let (max_actions, max_bytes) = (self.quota.max_actions, self.quota.max_bytes);
                let why = match self.quota.when_full {
                    StoreWhenFull::Refuse => "and refuses new code when full",
                    StoreWhenFull::Evict => "and every action it could evict ran within the last wall time",
                };
                full(format!(
                    "the action store holds {count} actions of {bytes} bytes (at most {max_actions} actions, {max_bytes} bytes) {why}; {size} more bytes do not fit"
                ))
            })?
        };
        let this = std::sync::Arc::clone(self);
        let (key, removed) = (cid.clone(), victims.clone());
        tokio::task::spawn_blocking(move || this.write(&key, &code, &removed))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(|e| Error::internal(e.to_string()))?;
        let mut index = self
            .index
            .lock()
            .map_err(|_| Error::internal("action store index poisoned"))?;
        for victim in &victims {
            if let Some(entry) = index.entries.remove(victim) {
                index.bytes -= entry.size;
            }
        }
        index.clock += 1;
        let used = index.clock;
        index.bytes += size;
        index.entries.insert(
            cid,
            Entry {
                size,
                used,
                last_run: None,
            },
        );
        Ok(Stored {
            existed: false,
            evicted: victims,
        })
    }

    fn write(&self, cid: &str, code: &[u8], evict: &[String]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(CODE).map_err(db_err)?;
            for victim in evict {
                table.remove(victim.as_str()).map_err(db_err)?;
            }
            table.insert(cid, code).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(max_actions: usize, max_bytes: u64, when_full: StoreWhenFull) -> Quota {
        Quota {
            max_bytes,
            max_actions,
            when_full,
            in_use: Duration::from_secs(30),
        }
    }

    fn open(dir: &tempfile::TempDir, quota: Quota) -> std::sync::Arc<ActionStore> {
        std::sync::Arc::new(ActionStore::open(&dir.path().join(ACTIONS_FILE), quota).unwrap())
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_full_store_evicts_the_least_recently_used_and_keeps_what_ran() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, quota(3, 1 << 20, StoreWhenFull::Evict));
        for cid in ["a", "b", "c"] {
            store.put(cid.into(), vec![1; 10], WAIT).await.unwrap();
        }
        // "a" runs: it is hot, "b" is now the least recently used.
        assert!(store.get("a").unwrap().is_some());
        let stored = store.put("d".into(), vec![2; 10], WAIT).await.unwrap();
        assert_eq!(stored.evicted, vec!["b".to_string()]);
        assert!(store.get("b").unwrap().is_none());
        // Storing the same code again writes nothing and evicts nothing.
        let again = store.put("d".into(), vec![2; 10], WAIT).await.unwrap();
        assert!(again.existed && again.evicted.is_empty());
        // "a" ran within the wall time and stays; of the rest "c" is the least recently used.
        let big = store.put("e".into(), vec![3; 10], WAIT).await.unwrap();
        assert_eq!(big.evicted, vec!["c".to_string()]);
        assert!(store.get("a").unwrap().is_some());
        assert_eq!(store.usage(), (3, 30));
    }

    #[tokio::test]
    async fn bytes_bound_the_store_and_the_index_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, quota(100, 25, StoreWhenFull::Evict));
        store.put("a".into(), vec![1; 10], WAIT).await.unwrap();
        store.put("b".into(), vec![1; 10], WAIT).await.unwrap();
        let stored = store.put("c".into(), vec![1; 10], WAIT).await.unwrap();
        assert_eq!(stored.evicted, vec!["a".to_string()]);
        let over = store.put("huge".into(), vec![1; 26], WAIT).await.unwrap_err();
        assert_eq!(over.code(), "ACTION_STORE_FULL");
        drop(store);
        let store = open(&dir, quota(100, 25, StoreWhenFull::Evict));
        assert_eq!(store.usage(), (2, 20));
        assert_eq!(store.get("c").unwrap(), Some(vec![1; 10]));
    }

    #[tokio::test]
    async fn a_store_that_refuses_says_it_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, quota(2, 1 << 20, StoreWhenFull::Refuse));
        store.put("a".into(), vec![1], WAIT).await.unwrap();
        store.put("b".into(), vec![1], WAIT).await.unwrap();
        let refused = store.put("c".into(), vec![1], WAIT).await.unwrap_err();
        assert_eq!(
            (refused.kind(), refused.code()),
            (Kind::StorageFull, "ACTION_STORE_FULL")
        );
        assert!(refused.message().contains("at most 2 actions"), "{refused}");
        // What is stored stays stored and can be stored again.
        assert!(store.put("a".into(), vec![1], WAIT).await.unwrap().existed);
    }

    #[tokio::test]
    async fn hot_actions_are_not_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, quota(2, 1 << 20, StoreWhenFull::Evict));
        store.put("a".into(), vec![1], WAIT).await.unwrap();
        store.put("b".into(), vec![1], WAIT).await.unwrap();
        store.get("a").unwrap();
        store.get("b").unwrap();
        let refused = store.put("c".into(), vec![1], WAIT).await.unwrap_err();
        assert_eq!(refused.code(), "ACTION_STORE_FULL");
        assert!(refused.message().contains("ran within the last wall time"), "{refused}");
    }
}
