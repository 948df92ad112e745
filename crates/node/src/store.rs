//! Node storage: one redb file per node.
//!
//! Every secret record (key shares, triples, presignatures, the node identity) is sealed with
//! ChaCha20-Poly1305 under the node's storage key before it reaches the file. The associated data
//! binds each record to its table and id, so records cannot be swapped between slots on disk.
//! A wrong key or a damaged record is a clear error, never garbage.
//!
//! Presignatures are single-use across crashes (DESIGN §6.2): [`Store::take_presignature`] removes
//! the record and writes its id to the `used` table in one write transaction, and redb makes that
//! transaction durable before the presignature is returned to the caller, who only then computes
//! and releases its share. A crash at any point leaves the presignature either unused and stored, or
//! gone and marked used — never both, never usable twice. [`Taker`] does the same for concurrent
//! requests with one transaction (one fsync) for all the takes that queued up during the last one.
//! The `used` table remembers which request used a slot (64 bits of its binding), so a second
//! request for the same slot (an allocator that binds it twice) is told apart from the same
//! request arriving again.
//!
//! The allocator's side is durable too: `pool_slots` lists the slots of this node's pool that are
//! stocked (public: their holder sets). [`Store::lease`] moves slots out of the pool ahead of
//! requests, in one durable transaction, before any of them is handed out; a restarted allocator
//! discards every leased slot ([`Store::discard_leases`]), so it never binds a slot twice, and an
//! allocation answered at once is recorded afterwards ([`Store::allocate`]) so a request asked
//! again gets the same answer.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand_core::{OsRng, RngCore};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use sigil_tss::ecdsa::{Presignature, Triple};
use sigil_tss::{Curve, KeyShare, TssError};
use zeroize::{Zeroize, Zeroizing};

const KEY_SHARES: TableDefinition<&str, &[u8]> = TableDefinition::new("key_shares");
const TRIPLES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("triples");
const PRESIGNATURES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("presignatures");
const USED: TableDefinition<&[u8], u64> = TableDefinition::new("used_presignatures");
/// This node's pool, as allocator: stocked slot → holders (`u32` big-endian each).
const POOL_SLOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pool_slots");
/// Slots taken out of the pool ahead of requests, so allocating needs no commit of its own. A
/// restarted allocator discards them all: any may have been handed out.
const LEASED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("leased_slots");
/// Allocations made by this node: request id → the allocation record (opaque to the store).
const ALLOCATIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("allocations");
/// The same allocations by time (`unix secs ‖ request id`), so old ones can be pruned in order.
const ALLOCATION_TIMES: TableDefinition<&[u8], ()> = TableDefinition::new("allocation_times");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// Action code by CID, as older nodes stored it here (public: in the clear); moved to
/// `actions.redb` at start-up ([`Store::take_legacy_actions`]).
const ACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("actions");
const AAD_DOMAIN: &[u8] = b"sigil-store/v1";
/// Added to the used slots' count to give the take counter (raised by a purge): peers remember the
/// highest value they saw, so a node started on an older copy of its data file learns that it was
/// rolled back.
const TAKES: &str = "takes-floor";
/// Prefix of the counters holding the highest take counter seen from each peer.
/// Presignatures taken ahead of their requests ([`Taker`]) and not known to be bound since: after
/// a restart their pools' owners are told never to allocate them.
const RESERVED_IDS: TableDefinition<&[u8], ()> = TableDefinition::new("reserved_presignatures");
/// The highest take counter each peer reported, with that peer's signature over it (`SignedTakes`).
const PEER_TAKES: TableDefinition<u32, &[u8]> = TableDefinition::new("peer_takes");
/// The last sign counter accepted for each passkey credential of each PKP: PKP token id (32,
/// big-endian) ‖ SHA-256 of the credential id (32) → counter. Written only for an assertion that
/// verified against the credential key registered on chain, so a stranger cannot fill it.
const SIGN_COUNTERS: TableDefinition<&[u8], u32> = TableDefinition::new("webauthn_sign_counters");
const NONCE_LEN: usize = 12;

/// A take counter as its node signed it (see `crate::vouch`): peers keep the highest they saw
/// and hand it back when the node restarts, and the node believes only its own signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedTakes {
    /// Presignatures the node ever took.
    pub takes: u64,
    /// The node's signature over the counter, r ‖ s ‖ v.
    pub signature: [u8; 65],
}

impl SignedTakes {
    /// 8 bytes big-endian counter, then the signature.
    pub fn to_bytes(&self) -> [u8; 73] {
        let mut out = [0u8; 73];
        out[..8].copy_from_slice(&self.takes.to_be_bytes());
        out[8..].copy_from_slice(&self.signature);
        out
    }

    /// A counter and its signature as a mesh reply carries them (`proof` in hex); None when the
    /// proof is not 65 bytes of hex.
    pub fn from_hex(takes: u64, proof: &str) -> Option<Self> {
        let signature = <[u8; 65]>::try_from(hex::decode(proof).ok()?).ok()?;
        Some(Self { takes, signature })
    }

    /// The inverse of [`SignedTakes::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let takes = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let signature = bytes.get(8..)?.try_into().ok()?;
        Some(Self { takes, signature })
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened, read or written.
    #[error("storage: {0}")]
    Database(String),
    /// A record does not decrypt: the storage key is wrong, or the file was altered.
    #[error("cannot decrypt {what}: wrong storage key, or the data file was altered")]
    Decrypt {
        /// Which record.
        what: String,
    },
    /// A record decrypts but does not decode.
    #[error("record {what} is corrupt: {source}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why it does not decode.
        source: TssError,
    },
    /// The presignature was already taken: using it again would leak the key.
    #[error("presignature {0} was already used")]
    AlreadyUsed(String),
    /// The presignature was already taken for another request: the allocator bound it twice.
    #[error("presignature {0} was already used for another request")]
    UsedForAnother(String),
    /// The presignature was taken ahead of its request (see [`Taker`]) before this node last
    /// stopped: its share may have been released then, so it is never used.
    #[error("presignature {0} was taken ahead of its request before this node restarted; it is never used")]
    Discarded(String),
    /// The storage key is not 32 bytes of hex.
    #[error("the storage key must be 64 hex characters (32 bytes)")]
    BadKey,
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into().to_string())
}

/// The key that seals records at rest. Wiped on drop, never printed.
pub struct StorageKey(Zeroizing<[u8; 32]>);

impl StorageKey {
    /// Parses 64 hex characters, as given in the config file or the `SIGIL_STORAGE_KEY` variable.
    pub fn from_hex(text: &str) -> Result<Self, StoreError> {
        let mut bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| StoreError::BadKey)?);
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            bytes.zeroize();
            return Err(StoreError::BadKey);
        }
        key.copy_from_slice(&bytes);
        Ok(Self(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// Hex form, for writing a generated key into a config file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageKey(<redacted>)")
    }
}

/// A presignature's slot: the pool (signer subset) it belongs to and its sequence number there.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PresignatureId {
    /// Identifies the signer subset's pool.
    pub pool: [u8; 32],
    /// Position in that pool.
    pub seq: u64,
}

/// Slot numbers from here up hold FROST Schnorr nonces; below it, ECDSA presignatures. A slot's
/// number says what it holds, so one pool, one allocator and one take-once table serve both, and
/// an allocation can never hand a slot of one kind to a request of the other unnoticed.
pub const SCHNORR_SLOTS: u64 = 1 << 63;

/// One holder's one-time material as taken from the store.
#[allow(clippy::large_enum_variant)] // taken once and moved into signing at once: no boxing
pub enum OneTime {
    /// An ECDSA presignature share.
    Presignature(Presignature),
    /// A Schnorr nonce pair with its signing set's commitments
    /// ([`sigil_tss::schnorr::Material`], opened with the holder's id; wiped on drop).
    Schnorr(Zeroizing<Vec<u8>>),
}

impl fmt::Debug for OneTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Presignature(_) => "OneTime::Presignature(..)",
            Self::Schnorr(_) => "OneTime::Schnorr(..)",
        })
    }
}

impl PresignatureId {
    /// Whether this slot holds Schnorr nonces ([`SCHNORR_SLOTS`]).
    pub fn is_schnorr(&self) -> bool {
        self.seq >= SCHNORR_SLOTS
    }

    fn key(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..32].copy_from_slice(&self.pool);
        out[32..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    fn from_key(key: &[u8]) -> Option<Self> {
        Some(Self {
            pool: key.get(..32)?.try_into().ok()?,
            seq: u64::from_be_bytes(key.get(32..40)?.try_into().ok()?),
        })
    }
}

impl fmt::Display for PresignatureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", hex::encode(&self.pool[..8]), self.seq)
    }
}

impl fmt::Debug for PresignatureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresignatureId({self})")
    }
}

/// One node's data file.
pub struct Store {
    db: Database,
    cipher: ChaCha20Poly1305,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Store(<sealed>)")
    }
}

impl Store {
    /// Opens (or creates) the data file at `path`, sealing with `key`.
    pub fn open(path: &Path, key: &StorageKey) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(KEY_SHARES).map_err(db_err)?;
        txn.open_table(TRIPLES).map_err(db_err)?;
        txn.open_table(PRESIGNATURES).map_err(db_err)?;
        txn.open_table(USED).map_err(db_err)?;
        txn.open_table(POOL_SLOTS).map_err(db_err)?;
        txn.open_table(LEASED).map_err(db_err)?;
        txn.open_table(ALLOCATIONS).map_err(db_err)?;
        txn.open_table(ALLOCATION_TIMES).map_err(db_err)?;
        txn.open_table(COUNTERS).map_err(db_err)?;
        txn.open_table(PEER_TAKES).map_err(db_err)?;
        txn.open_table(RESERVED_IDS).map_err(db_err)?;
        txn.open_table(SECRETS).map_err(db_err)?;
        txn.open_table(ACTIONS).map_err(db_err)?;
        txn.open_table(SIGN_COUNTERS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self {
            db,
            cipher: ChaCha20Poly1305::new(&Key::from(*key.0)),
        })
    }

    fn seal(&self, table: &str, id: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = [AAD_DOMAIN, table.as_bytes(), id].concat();
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Database("record too large to seal".into()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// Decrypts a record and decodes it; errors say which record failed and how.
    fn open_record<T>(
        &self,
        table: &str,
        id: &[u8],
        stored: &[u8],
        what: String,
        decode: impl FnOnce(&[u8]) -> Result<T, TssError>,
    ) -> Result<T, StoreError> {
        let Some((nonce, sealed)) = stored.split_at_checked(NONCE_LEN) else {
            return Err(StoreError::Decrypt { what });
        };
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(nonce);
        let aad = [AAD_DOMAIN, table.as_bytes(), id].concat();
        let Ok(plain) = self
            .cipher
            .decrypt(&Nonce::from(nonce_bytes), Payload { msg: sealed, aad: &aad })
        else {
            return Err(StoreError::Decrypt { what });
        };
        let plain = Zeroizing::new(plain);
        decode(&plain).map_err(|source| StoreError::Corrupt { what, source })
    }

    /// Stores this node's share of a root key under `name` (e.g. `"ecdsa-root"`), replacing any other.
    pub fn put_key_share<C: Curve>(&self, name: &str, share: &KeyShare<C>) -> Result<(), StoreError> {
        let sealed = self.seal("key_shares", name.as_bytes(), &share.to_bytes())?;
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(KEY_SHARES)
            .map_err(db_err)?
            .insert(name, sealed.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Changes the root-key records in one transaction (see [`KeysWrite`]): after a crash the file
    /// holds the old records or the new ones, never a mix. Returns the key shares removed and
    /// the presignatures discarded.
    pub fn rewrite_keys<A: Curve, B: Curve>(&self, w: KeysWrite<'_, A, B>) -> Result<(usize, usize), StoreError> {
        let mut sealed_secrets = Vec::with_capacity(w.put_secrets.len());
        for (name, bytes) in w.put_secrets {
            sealed_secrets.push((*name, self.seal("secrets", name.as_bytes(), bytes)?));
        }
        let sealed_shares = match &w.shares {
            Some(((a, first), (b, second))) => vec![
                (*a, self.seal("key_shares", a.as_bytes(), &first.to_bytes())?),
                (*b, self.seal("key_shares", b.as_bytes(), &second.to_bytes())?),
            ],
            None => Vec::new(),
        };
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut secrets = txn.open_table(SECRETS).map_err(db_err)?;
            for name in w.forget_secrets {
                secrets.remove(*name).map_err(db_err)?;
            }
            for (name, sealed) in &sealed_secrets {
                secrets.insert(*name, sealed.as_slice()).map_err(db_err)?;
            }
        }
        let removed = {
            let mut shares = txn.open_table(KEY_SHARES).map_err(db_err)?;
            let written: Vec<&str> = sealed_shares.iter().map(|(name, _)| *name).collect();
            let names: Vec<String> = shares
                .iter()
                .map_err(db_err)?
                .filter_map(|e| e.ok().map(|(k, _)| k.value().to_string()))
                .filter(|name| {
                    w.remove.contains(&name.as_str())
                        || w.keep
                            .is_some_and(|keep| !keep.contains(&name.as_str()) && !written.contains(&name.as_str()))
                })
                .collect();
            for name in &names {
                shares.remove(name.as_str()).map_err(db_err)?;
            }
            for (name, sealed) in &sealed_shares {
                shares.insert(*name, sealed.as_slice()).map_err(db_err)?;
            }
            names.len()
        };
        let discarded = if w.purge_one_time {
            let takes = takes_in(
                &txn.open_table(USED).map_err(db_err)?,
                &txn.open_table(COUNTERS).map_err(db_err)?,
            )?;
            purge_in(&txn, takes, 0)?
        } else {
            0
        };
        txn.commit().map_err(db_err)?;
        Ok((removed, discarded))
    }

    /// This node's share of the root key `name`, if it has one.
    pub fn key_share<C: Curve>(&self, name: &str) -> Result<Option<KeyShare<C>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(KEY_SHARES).map_err(db_err)?;
        let Some(stored) = table.get(name).map_err(db_err)? else {
            return Ok(None);
        };
        let what = format!("key share {name}");
        self.open_record(
            "key_shares",
            name.as_bytes(),
            stored.value(),
            what,
            KeyShare::from_bytes,
        )
        .map(Some)
    }

    /// Stores a triple under `id`.
    pub fn put_triple(&self, id: &[u8], triple: &Triple) -> Result<(), StoreError> {
        let sealed = self.seal("triples", id, &triple.to_bytes())?;
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(TRIPLES)
            .map_err(db_err)?
            .insert(id, sealed.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Removes and returns the triple `id` (a triple, like a presignature, is used once).
    pub fn take_triple(&self, id: &[u8]) -> Result<Option<Triple>, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let stored = txn
            .open_table(TRIPLES)
            .map_err(db_err)?
            .remove(id)
            .map_err(db_err)?
            .map(|v| v.value().to_vec());
        txn.commit().map_err(db_err)?;
        let Some(stored) = stored else { return Ok(None) };
        let what = format!("triple {}", hex::encode(id));
        self.open_record("triples", id, &stored, what, Triple::from_bytes)
            .map(Some)
    }

    /// Stores a fresh presignature in its slot. A slot that was ever used cannot be filled again.
    pub fn put_presignature(&self, id: PresignatureId, presignature: &Presignature) -> Result<(), StoreError> {
        if id.is_schnorr() {
            return Err(StoreError::Database(format!(
                "slot {id} is a Schnorr slot, not a presignature's"
            )));
        }
        self.put_one_time(id, &presignature.to_bytes())
    }

    /// Stores fresh Schnorr nonce material in its slot (one of [`SCHNORR_SLOTS`]). A slot that was
    /// ever used cannot be filled again.
    pub fn put_schnorr(&self, id: PresignatureId, material: &sigil_tss::schnorr::Material) -> Result<(), StoreError> {
        if !id.is_schnorr() {
            return Err(StoreError::Database(format!(
                "slot {id} is a presignature slot, not a Schnorr one"
            )));
        }
        self.put_one_time(id, &material.to_bytes())
    }

    fn put_one_time(&self, id: PresignatureId, plain: &[u8]) -> Result<(), StoreError> {
        let key = id.key();
        let sealed = self.seal("presignatures", &key, plain)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        if txn
            .open_table(USED)
            .map_err(db_err)?
            .get(key.as_slice())
            .map_err(db_err)?
            .is_some()
        {
            return Err(StoreError::AlreadyUsed(id.to_string()));
        }
        txn.open_table(PRESIGNATURES)
            .map_err(db_err)?
            .insert(key.as_slice(), sealed.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Takes presignature `id` for exactly one signature: removes it and records it as used in one
    /// durable transaction, and only then returns it. `Ok(None)` if the slot is empty.
    pub fn take_presignature(&self, id: PresignatureId) -> Result<Option<OneTime>, StoreError> {
        self.take_presignatures(&[(id, [0; 32])])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Database("no answer for the presignature taken".into())))
    }

    /// [`Store::take_presignature`] for several ids in one durable transaction (a group commit):
    /// one answer per id, in order, each id with the binding of the request that takes it. An id
    /// given twice is taken once, and after that is `AlreadyUsed` for the same binding and
    /// `UsedForAnother` for another. Nothing is returned before the transaction is durable; if it
    /// fails, every answer is an error.
    pub fn take_presignatures(&self, ids: &[(PresignatureId, [u8; 32])]) -> Vec<Result<Option<OneTime>, StoreError>> {
        let failed = |e: StoreError| ids.iter().map(|_| Err(StoreError::Database(e.to_string()))).collect();
        let txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => return failed(db_err(e)),
        };
        let taken = match take_sealed(&txn, ids) {
            Ok(taken) => taken,
            Err(e) => return failed(e),
        };
        if let Err(e) = txn.commit() {
            return failed(db_err(e));
        }
        ids.iter()
            .zip(taken)
            .map(|((id, _), stored)| {
                let Some(stored) = stored? else { return Ok(None) };
                let key = id.key();
                self.open_record("presignatures", &key, &stored, format!("one-time slot {id}"), |plain| {
                    if id.is_schnorr() {
                        Ok(OneTime::Schnorr(Zeroizing::new(plain.to_vec())))
                    } else {
                        Presignature::from_bytes(plain).map(OneTime::Presignature)
                    }
                })
                .map(Some)
            })
            .collect()
    }

    /// Takes up to `want` presignatures of `pool` from the stock ahead of their requests, lowest
    /// ids first, in one durable transaction: each is marked used (with no request) before it is
    /// returned, so after a crash none of them is ever used ([`StoreError::Discarded`]). A record
    /// that does not open is skipped (and logged); the others are still returned.
    pub fn reserve_presignatures(
        &self,
        pool: &[u8; 32],
        want: usize,
    ) -> Result<Vec<(PresignatureId, Presignature)>, StoreError> {
        if want == 0 {
            return Ok(Vec::new());
        }
        let start = PresignatureId { pool: *pool, seq: 0 }.key();
        // Only presignatures are reserved: Schnorr slots are taken by their requests alone.
        let end = PresignatureId {
            pool: *pool,
            seq: SCHNORR_SLOTS - 1,
        }
        .key();
        let keys: Vec<Vec<u8>> = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let stock = txn.open_table(PRESIGNATURES).map_err(db_err)?;
            let keys = stock
                .range(start.as_slice()..=end.as_slice())
                .map_err(db_err)?
                .take(want)
                .map(|entry| entry.map(|(k, _)| k.value().to_vec()).map_err(db_err))
                .collect::<Result<_, _>>()?;
            keys
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut taken = Vec::new();
        {
            let mut stock = txn.open_table(PRESIGNATURES).map_err(db_err)?;
            let mut used = txn.open_table(USED).map_err(db_err)?;
            let mut reserved = txn.open_table(RESERVED_IDS).map_err(db_err)?;
            for key in keys {
                let Some(id) = PresignatureId::from_key(&key) else {
                    continue;
                };
                let Some(sealed) = stock
                    .remove(key.as_slice())
                    .map_err(db_err)?
                    .map(|v| v.value().to_vec())
                else {
                    continue;
                };
                used.insert(key.as_slice(), RESERVED_MARK).map_err(db_err)?;
                reserved.insert(key.as_slice(), ()).map_err(db_err)?;
                taken.push((id, sealed));
            }
        }
        txn.commit().map_err(db_err)?;
        let mut out = Vec::with_capacity(taken.len());
        for (id, sealed) in taken {
            let what = format!("presignature {id}");
            match self.open_record("presignatures", &id.key(), &sealed, what, Presignature::from_bytes) {
                Ok(presignature) => out.push((id, presignature)),
                Err(e) => tracing::error!(error = %e, "a reserved presignature does not open; it is never used"),
            }
        }
        Ok(out)
    }

    /// Writes the bindings of reserved presignatures (so that after a restart a repeated request
    /// is told `AlreadyUsed`, another `UsedForAnother`), without waiting for an fsync: before it
    /// lands, both are refused as [`StoreError::Discarded`]. Their reserved entries stay until
    /// [`Store::forget_reserved`].
    pub fn record_reserved_bindings(&self, bound: &[(PresignatureId, u64)]) -> Result<(), StoreError> {
        if bound.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(redb::Durability::Eventual);
        {
            let mut used = txn.open_table(USED).map_err(db_err)?;
            let mut reserved = txn.open_table(RESERVED_IDS).map_err(db_err)?;
            for (id, mark) in bound {
                used.insert(id.key().as_slice(), *mark).map_err(db_err)?;
                reserved.remove(id.key().as_slice()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Presignatures reserved ([`Store::reserve_presignatures`]) and not known to be bound since.
    pub fn reserved_before(&self) -> Result<Vec<PresignatureId>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RESERVED_IDS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, _) = entry.map_err(db_err)?;
            out.extend(PresignatureId::from_key(key.value()));
        }
        Ok(out)
    }

    /// Forgets reserved ids (bound, or reported to their pools' owners), without waiting for an
    /// fsync: one forgotten too late is only reported once more.
    pub fn forget_reserved(&self, ids: &[PresignatureId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(redb::Durability::Eventual);
        {
            let mut table = txn.open_table(RESERVED_IDS).map_err(db_err)?;
            for id in ids {
                table.remove(id.key().as_slice()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Reads presignature `id` without taking it (to learn its public data, such as its holders).
    pub fn peek_presignature(&self, id: PresignatureId) -> Result<Option<Presignature>, StoreError> {
        let key = id.key();
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(PRESIGNATURES).map_err(db_err)?;
        let Some(stored) = table.get(key.as_slice()).map_err(db_err)? else {
            return Ok(None);
        };
        let what = format!("presignature {id}");
        self.open_record("presignatures", &key, stored.value(), what, Presignature::from_bytes)
            .map(Some)
    }

    /// Presignatures in stock.
    pub fn presignature_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(PRESIGNATURES).map_err(db_err)?;
        table.len().map_err(db_err)
    }

    /// How many presignatures this node ever took (a rollback makes it go back): the used slots,
    /// plus the floor a purge set.
    pub fn takes(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        takes_in(
            &txn.open_table(USED).map_err(db_err)?,
            &txn.open_table(COUNTERS).map_err(db_err)?,
        )
    }

    /// The highest take counter each peer reported, with its signature, by peer id.
    pub fn peer_takes(&self) -> Result<std::collections::HashMap<u32, SignedTakes>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(PEER_TAKES).map_err(db_err)?;
        let mut out = std::collections::HashMap::new();
        for entry in table.iter().map_err(db_err)? {
            let (peer, value) = entry.map_err(db_err)?;
            if let Some(signed) = SignedTakes::from_bytes(value.value()) {
                out.insert(peer.value(), signed);
            }
        }
        Ok(out)
    }

    /// Raises the saved take counters of peers (never lowers one), without waiting for an fsync.
    pub fn raise_peer_takes(&self, seen: &[(u32, SignedTakes)]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(redb::Durability::Eventual);
        {
            let mut table = txn.open_table(PEER_TAKES).map_err(db_err)?;
            for (peer, signed) in seen {
                let before = table
                    .get(*peer)
                    .map_err(db_err)?
                    .and_then(|v| SignedTakes::from_bytes(v.value()))
                    .map_or(0, |s| s.takes);
                if signed.takes >= before {
                    table.insert(*peer, signed.to_bytes().as_slice()).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Forgets every piece of one-time material — presignatures (marked used), triples and this
    /// node's pool slots — raises the take counter to `takes` and the slot counters
    /// (`presign-seq/…`) to at least `counter_floor` (slot numbers handed out after the copy was
    /// made must not come again):
    /// what a node does when its peers show that this data file is older than what it already
    /// used. Returns the presignatures discarded.
    pub fn purge_one_time(&self, takes: u64, counter_floor: u64) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let discarded = purge_in(&txn, takes, counter_floor)?;
        txn.commit().map_err(db_err)?;
        Ok(discarded)
    }

    /// Whether slot `id` holds a presignature or was ever used (an order to fill it again is a replay).
    pub fn knows_slot(&self, id: PresignatureId) -> Result<bool, StoreError> {
        let key = id.key();
        let txn = self.db.begin_read().map_err(db_err)?;
        let stocked = txn
            .open_table(PRESIGNATURES)
            .map_err(db_err)?
            .get(key.as_slice())
            .map_err(db_err)?
            .is_some();
        let used = txn
            .open_table(USED)
            .map_err(db_err)?
            .get(key.as_slice())
            .map_err(db_err)?
            .is_some();
        Ok(stocked || used)
    }

    /// Whether presignature `id` was ever taken.
    pub fn is_used(&self, id: PresignatureId) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(USED).map_err(db_err)?;
        Ok(table.get(id.key().as_slice()).map_err(db_err)?.is_some())
    }

    /// The stocked (not yet used) presignature slots of `pool`, in sequence order.
    pub fn stocked(&self, pool: &[u8; 32]) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .pool_range(PRESIGNATURES, pool, |_| ())?
            .into_iter()
            .map(|(seq, ())| seq)
            .collect())
    }

    /// The entries of `table` in pool `pool`, by sequence number, with `value` applied.
    fn pool_range<T>(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        pool: &[u8; 32],
        value: impl Fn(&[u8]) -> T,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        let start = PresignatureId { pool: *pool, seq: 0 }.key();
        let end = PresignatureId {
            pool: *pool,
            seq: u64::MAX,
        }
        .key();
        let mut out = Vec::new();
        for entry in table.range(start.as_slice()..=end.as_slice()).map_err(db_err)? {
            let (key, stored) = entry.map_err(db_err)?;
            if let Some(seq) = key.value().get(32..40).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                out.push((u64::from_be_bytes(seq), value(stored.value())));
            }
        }
        Ok(out)
    }

    /// Every presignature slot ever taken on this node.
    pub fn used(&self) -> Result<Vec<PresignatureId>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(USED).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, _) = entry.map_err(db_err)?;
            let key = key.value();
            if let (Some(pool), Some(seq)) = (
                key.get(..32).and_then(|b| <[u8; 32]>::try_from(b).ok()),
                key.get(32..40).and_then(|b| <[u8; 8]>::try_from(b).ok()),
            ) {
                out.push(PresignatureId {
                    pool,
                    seq: u64::from_be_bytes(seq),
                });
            }
        }
        Ok(out)
    }

    /// Durably advances the counter `name` and returns its previous value (0 the first time), so a
    /// value is handed out once even across restarts.
    pub fn next(&self, name: &str) -> Result<u64, StoreError> {
        self.next_continuing(name, name)
    }

    /// [`Store::next`], where a counter `name` that does not exist yet starts where the counter
    /// `continues` stands (0 if neither exists): a renamed counter never hands a value out twice.
    pub fn next_continuing(&self, name: &str, continues: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let value = {
            let mut table = txn.open_table(COUNTERS).map_err(db_err)?;
            let current = table.get(name).map_err(db_err)?.map(|v| v.value());
            let value = match current {
                Some(value) => value,
                None => table.get(continues).map_err(db_err)?.map(|v| v.value()).unwrap_or(0),
            };
            table.insert(name, value + 1).map_err(db_err)?;
            value
        };
        txn.commit().map_err(db_err)?;
        Ok(value)
    }

    /// The last sign counter stored for the passkey credential `credential` (see
    /// [`Store::advance_sign_counter`]); 0 if none was.
    pub fn sign_counter(&self, credential: &[u8]) -> Result<u32, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SIGN_COUNTERS).map_err(db_err)?;
        Ok(table.get(credential).map_err(db_err)?.map(|v| v.value()).unwrap_or(0))
    }

    /// Durably stores `counter` as the last sign counter of `credential` if `advances(last,
    /// counter)` holds for the stored one (0 if none), in one write transaction: of two requests
    /// carrying the same counter, only the first passes. Returns the stored counter it was
    /// checked against, as `Err` when it did not advance. A counter of 0 that advances (the
    /// credential keeps no counter) is not written.
    pub fn advance_sign_counter(
        &self,
        credential: &[u8],
        counter: u32,
        advances: impl FnOnce(u32, u32) -> bool,
    ) -> Result<Result<(), u32>, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let outcome = {
            let mut table = txn.open_table(SIGN_COUNTERS).map_err(db_err)?;
            let last = table.get(credential).map_err(db_err)?.map(|v| v.value()).unwrap_or(0);
            if !advances(last, counter) {
                Err(last)
            } else {
                if counter != 0 {
                    table.insert(credential, counter).map_err(db_err)?;
                }
                Ok(())
            }
        };
        match outcome {
            Ok(()) if counter != 0 => txn.commit().map_err(db_err)?,
            _ => txn.abort().map_err(db_err)?,
        }
        Ok(outcome)
    }

    /// Stores a small secret (such as the node identity) sealed under `name`.
    pub fn put_secret(&self, name: &str, secret: &[u8]) -> Result<(), StoreError> {
        let sealed = self.seal("secrets", name.as_bytes(), secret)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(SECRETS)
            .map_err(db_err)?
            .insert(name, sealed.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// The secret stored under `name`, if any.
    pub fn secret(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SECRETS).map_err(db_err)?;
        let Some(stored) = table.get(name).map_err(db_err)? else {
            return Ok(None);
        };
        self.open_record(
            "secrets",
            name.as_bytes(),
            stored.value(),
            format!("secret {name}"),
            |b| Ok(b.to_vec()),
        )
        .map(|v| Some(Zeroizing::new(v)))
    }

    /// Removes and returns the action code an older node kept in this file (actions now live in
    /// their own file, `actions::store`); empty once moved.
    pub fn take_legacy_actions(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        {
            let txn = self.db.begin_read().map_err(db_err)?;
            match txn.open_table(ACTIONS) {
                Ok(table) if table.is_empty().map_err(db_err)? => return Ok(Vec::new()),
                Ok(_) => {}
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err(e)),
            }
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut moved = Vec::new();
        {
            let mut table = txn.open_table(ACTIONS).map_err(db_err)?;
            for row in table.iter().map_err(db_err)? {
                let (cid, code) = row.map_err(db_err)?;
                moved.push((cid.value().to_string(), code.value().to_vec()));
            }
            table.retain(|_, _| false).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(moved)
    }
}

/// What the `used` table keeps for a slot taken by the request with `binding`: 64 bits of it, with
/// the top bit set, so it never equals the plain mark (1) of a purged slot.
/// The used mark of a presignature taken ahead of its request ([`Taker`]): never a binding's mark,
/// whose top bit is set.
const RESERVED_MARK: u64 = 0;

fn used_mark(binding: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(binding.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(head) | (1 << 63)
}

/// Inside `txn`: removes every entry of `table` and returns the keys removed.
/// Two key shares to write, each with its record name.
pub type SharePair<'a, A, B> = ((&'a str, &'a KeyShare<A>), (&'a str, &'a KeyShare<B>));

/// One change of the root-key records ([`Store::rewrite_keys`]), in this order: secrets put and
/// removed, key shares removed (`remove`, and with `keep` every one not kept or written), the
/// two key shares `shares` written, and with `purge_one_time` every presignature and triple
/// discarded (as [`Store::purge_one_time`] with the current take counter).
pub struct KeysWrite<'a, A: Curve, B: Curve> {
    /// Secrets to put (name, bytes).
    pub put_secrets: &'a [(&'a str, &'a [u8])],
    /// Secrets to remove.
    pub forget_secrets: &'a [&'a str],
    /// The two key shares to write (name, share).
    pub shares: Option<SharePair<'a, A, B>>,
    /// `Some(names)`: every key share neither named here nor written is removed.
    pub keep: Option<&'a [&'a str]>,
    /// Key shares to remove.
    pub remove: &'a [&'a str],
    /// Whether every presignature and triple goes too.
    pub purge_one_time: bool,
}

/// [`Store::takes`] from one transaction's tables of used presignatures and of counters.
fn takes_in(
    used: &impl redb::ReadableTableMetadata,
    counters: &impl redb::ReadableTable<&'static str, u64>,
) -> Result<u64, StoreError> {
    let floor = counters.get(TAKES).map_err(db_err)?.map(|v| v.value()).unwrap_or(0);
    Ok(used.len().map_err(db_err)?.saturating_add(floor))
}

/// [`Store::purge_one_time`] inside the write transaction `txn`; returns the presignatures
/// discarded.
fn purge_in(txn: &redb::WriteTransaction, takes: u64, counter_floor: u64) -> Result<usize, StoreError> {
    let discarded = clear(txn, PRESIGNATURES)?;
    {
        let mut used = txn.open_table(USED).map_err(db_err)?;
        for key in &discarded {
            used.insert(key.as_slice(), 1).map_err(db_err)?;
        }
    }
    for table in [TRIPLES, POOL_SLOTS, LEASED] {
        clear(txn, table)?;
    }
    {
        let mut counters = txn.open_table(COUNTERS).map_err(db_err)?;
        let all: Vec<(String, u64)> = counters
            .iter()
            .map_err(db_err)?
            .filter_map(|e| e.ok().map(|(k, v)| (k.value().to_string(), v.value())))
            .collect();
        // Slot counters only: the take floor is set below, and peers' counters are theirs.
        for (name, value) in all.into_iter().filter(|(name, _)| name.starts_with("presign-seq/")) {
            counters
                .insert(name.as_str(), value.max(counter_floor))
                .map_err(db_err)?;
        }
        let used = txn.open_table(USED).map_err(db_err)?.len().map_err(db_err)?;
        let floor = counters.get(TAKES).map_err(db_err)?.map(|v| v.value()).unwrap_or(0);
        counters
            .insert(TAKES, floor.max(takes.saturating_sub(used)))
            .map_err(db_err)?;
    }
    Ok(discarded.len())
}

fn clear(txn: &redb::WriteTransaction, table: TableDefinition<&[u8], &[u8]>) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut table = txn.open_table(table).map_err(db_err)?;
    let keys = table
        .iter()
        .map_err(db_err)?
        .map(|entry| entry.map(|(key, _)| key.value().to_vec()).map_err(db_err))
        .collect::<Result<Vec<_>, _>>()?;
    for key in &keys {
        table.remove(key.as_slice()).map_err(db_err)?;
    }
    Ok(keys)
}

/// One take's sealed record (`None`: the slot was empty), or why it was refused.
type SealedTake = Result<Option<Vec<u8>>, StoreError>;

/// Inside `txn`: removes each presignature and marks it used by its binding (refusing ones used
/// before).
fn take_sealed(
    txn: &redb::WriteTransaction,
    ids: &[(PresignatureId, [u8; 32])],
) -> Result<Vec<SealedTake>, StoreError> {
    let mut used = txn.open_table(USED).map_err(db_err)?;
    let mut stock = txn.open_table(PRESIGNATURES).map_err(db_err)?;
    let mut answers = Vec::with_capacity(ids.len());
    for (id, binding) in ids {
        let key = id.key();
        let mark = used_mark(binding);
        if let Some(before) = used.get(key.as_slice()).map_err(db_err)? {
            answers.push(Err(match before.value() {
                before if before == mark => StoreError::AlreadyUsed(id.to_string()),
                RESERVED_MARK => StoreError::Discarded(id.to_string()),
                _ => StoreError::UsedForAnother(id.to_string()),
            }));
            continue;
        }
        let stored = stock
            .remove(key.as_slice())
            .map_err(db_err)?
            .map(|v| v.value().to_vec());
        if stored.is_some() {
            used.insert(key.as_slice(), mark).map_err(db_err)?;
        }
        answers.push(Ok(stored));
    }
    Ok(answers)
}

/// What [`Store::allocate`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Allocated {
    /// The allocation was recorded (and its slot's lease cleared).
    Fresh,
    /// The request already had an allocation (this record); the slot was left alone.
    Existing(Vec<u8>),
}

fn holders_bytes(holders: &[u32]) -> Vec<u8> {
    holders.iter().flat_map(|h| h.to_be_bytes()).collect()
}

fn holders_of(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok().map(u32::from_be_bytes))
        .collect()
}

impl Store {
    /// Adds a stocked slot to this node's pool with its holder set.
    pub fn add_slot(&self, id: PresignatureId, holders: &[u32]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(POOL_SLOTS)
            .map_err(db_err)?
            .insert(id.key().as_slice(), holders_bytes(holders).as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Drops slots from this node's pool, leased or not (stranded or discarded), without
    /// allocating them.
    pub fn remove_slots(&self, ids: &[PresignatureId]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        for table in [POOL_SLOTS, LEASED] {
            let mut table = txn.open_table(table).map_err(db_err)?;
            for id in ids {
                table.remove(id.key().as_slice()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Moves slots out of the pool into the lease table in one durable transaction; returns the
    /// ids that were in the pool (only those may be handed out).
    pub fn lease(&self, ids: &[PresignatureId]) -> Result<Vec<PresignatureId>, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut moved = Vec::with_capacity(ids.len());
        {
            let mut slots = txn.open_table(POOL_SLOTS).map_err(db_err)?;
            let mut leased = txn.open_table(LEASED).map_err(db_err)?;
            for id in ids {
                let key = id.key();
                let holders = slots
                    .remove(key.as_slice())
                    .map_err(db_err)?
                    .map(|v| v.value().to_vec());
                if let Some(holders) = holders {
                    leased.insert(key.as_slice(), holders.as_slice()).map_err(db_err)?;
                    moved.push(*id);
                }
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(moved)
    }

    /// Forgets every leased slot (a restarted allocator cannot know which were handed out);
    /// returns how many.
    pub fn discard_leases(&self) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let count = clear(&txn, LEASED)?.len();
        txn.commit().map_err(db_err)?;
        Ok(count)
    }

    /// The stocked slots of pool `pool` with their holders, in sequence order.
    pub fn slots(&self, pool: &[u8; 32]) -> Result<Vec<(u64, Vec<u32>)>, StoreError> {
        self.pool_range(POOL_SLOTS, pool, holders_of)
    }

    /// The allocation recorded for `request`, if any.
    pub fn allocation(&self, request: &[u8; 16]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(ALLOCATIONS).map_err(db_err)?;
        Ok(table
            .get(request.as_slice())
            .map_err(db_err)?
            .map(|v| v.value().to_vec()))
    }

    /// Records that leased slot `id` went to `request` (made at `unix_secs`), clearing its lease —
    /// unless the request already has an allocation, which is returned instead.
    pub fn allocate(
        &self,
        request: &[u8; 16],
        id: PresignatureId,
        record: &[u8],
        unix_secs: u64,
    ) -> Result<Allocated, StoreError> {
        self.allocate_many(&[(*request, id, record.to_vec(), unix_secs)])
            .pop()
            .unwrap_or_else(|| Err(StoreError::Database("no answer for the allocation".into())))
    }

    /// [`Store::allocate`] for several requests in one durable transaction.
    pub fn allocate_many(&self, orders: &[AllocationOrder]) -> Vec<Result<Allocated, StoreError>> {
        let failed = |e: StoreError| {
            orders
                .iter()
                .map(|_| Err(StoreError::Database(e.to_string())))
                .collect()
        };
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => return failed(db_err(e)),
        };
        // A record is a convenience (the same answer for a request asked again after a restart),
        // not a safety property — the lease made the slot's removal durable — so it does not wait
        // for an fsync: every node's fsyncs share one disk on a single host.
        txn.set_durability(redb::Durability::Eventual);
        let answers = match allocate_in(&txn, orders) {
            Ok(answers) => answers,
            Err(e) => return failed(e),
        };
        if let Err(e) = txn.commit() {
            return failed(db_err(e));
        }
        answers.into_iter().map(Ok).collect()
    }

    /// Forgets allocations made before `before_unix_secs`; returns how many.
    pub fn prune_allocations(&self, before_unix_secs: u64) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut pruned = 0;
        {
            let mut times = txn.open_table(ALLOCATION_TIMES).map_err(db_err)?;
            let mut records = txn.open_table(ALLOCATIONS).map_err(db_err)?;
            let end = before_unix_secs.to_be_bytes();
            let old: Vec<Vec<u8>> = times
                .range(..end.as_slice())
                .map_err(db_err)?
                .filter_map(|e| e.ok().map(|(k, _)| k.value().to_vec()))
                .collect();
            for key in old {
                times.remove(key.as_slice()).map_err(db_err)?;
                if let Some(request) = key.get(8..) {
                    records.remove(request).map_err(db_err)?;
                }
                pruned += 1;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(pruned)
    }
}

/// One allocation to make: request id, slot, the record to keep, and when.
pub type AllocationOrder = ([u8; 16], PresignatureId, Vec<u8>, u64);

fn allocate_in(txn: &redb::WriteTransaction, orders: &[AllocationOrder]) -> Result<Vec<Allocated>, StoreError> {
    let mut leased = txn.open_table(LEASED).map_err(db_err)?;
    let mut records = txn.open_table(ALLOCATIONS).map_err(db_err)?;
    let mut times = txn.open_table(ALLOCATION_TIMES).map_err(db_err)?;
    let mut answers = Vec::with_capacity(orders.len());
    for (request, id, record, unix_secs) in orders {
        if let Some(existing) = records.get(request.as_slice()).map_err(db_err)? {
            answers.push(Allocated::Existing(existing.value().to_vec()));
            continue;
        }
        leased.remove(id.key().as_slice()).map_err(db_err)?;
        records.insert(request.as_slice(), record.as_slice()).map_err(db_err)?;
        let time_key = [unix_secs.to_be_bytes().as_slice(), request.as_slice()].concat();
        times.insert(time_key.as_slice(), ()).map_err(db_err)?;
        answers.push(Allocated::Fresh);
    }
    Ok(answers)
}

/// Most orders in one transaction.
const MAX_BATCH: usize = 256;

/// An order waiting for its batch, and where its answer goes.
type Order<Req, Ans> = (Req, tokio::sync::oneshot::Sender<Ans>);

/// Group commit: one thread makes one transaction durable at a time, and the orders that arrive
/// meanwhile go into the next one together. One order alone waits for one commit; a burst of `k`
/// waits for about two instead of `k` in a row.
pub struct GroupCommit<Req, Ans> {
    name: &'static str,
    queue: Option<std::sync::mpsc::Sender<Order<Req, Ans>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<Req, Ans> Drop for GroupCommit<Req, Ans> {
    /// Stops the thread once the orders already queued are done, so the store is closed on return.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<Req: Send + 'static, Ans: Send + 'static> GroupCommit<Req, Ans> {
    /// Starts the thread `name`; `commit` answers a batch in one transaction, one answer per order
    /// in order. The thread ends when the `GroupCommit` is dropped.
    pub fn start(
        name: &'static str,
        commit: impl Fn(Vec<Req>) -> Vec<Ans> + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (queue, orders) = std::sync::mpsc::channel::<Order<Req, Ans>>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(first) = orders.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match orders.try_recv() {
                            Ok(order) => batch.push(order),
                            Err(_) => break,
                        }
                    }
                    let (requests, replies): (Vec<Req>, Vec<_>) = batch.into_iter().unzip();
                    for (reply, answer) in replies.into_iter().zip(commit(requests)) {
                        // A request that gave up no longer listens; what was committed stays.
                        let _ = reply.send(answer);
                    }
                }
            })
            .map_err(|e| StoreError::Database(format!("cannot start {name}: {e}")))?;
        Ok(Self {
            name,
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `request` without waiting for its answer.
    pub fn send(&self, request: Req) {
        let (reply, _) = tokio::sync::oneshot::channel();
        if let Some(queue) = &self.queue {
            let _ = queue.send((request, reply));
        }
    }

    /// Queues `request` and waits for its answer.
    pub async fn submit(&self, request: Req) -> Result<Ans, StoreError> {
        let stopped = || StoreError::Database(format!("{} has stopped", self.name));
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send((request, reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }
}

/// Presignatures a [`Taker`] keeps taken ahead of their requests.
pub const RESERVE: usize = 16;
/// Requests bound to reserved presignatures that a [`Taker`] remembers (to answer a repeated
/// request, and refuse another, without the store).
const BOUND_MEMORY: usize = 4096;
/// A reserved presignature not asked for over this many takes is given up (the allocator leases
/// 32 slots ahead, in order, so one passed over this long was dropped from its pool).
const STALE_AFTER: u64 = 128;

/// Presignatures taken from the store ahead of their requests, and the requests bound to them.
#[derive(Default)]
struct Reserve {
    /// Reserved presignatures, with the number of takes seen when each was reserved.
    ready: std::collections::BTreeMap<PresignatureId, (Presignature, u64)>,
    /// Takes asked of this taker so far.
    takes_seen: u64,
    /// Reserved ones nobody asked for over [`STALE_AFTER`] takes (their slot was dropped, or
    /// another node became allocator): never used, to be reported to their pools' owners.
    dropped: Vec<PresignatureId>,
    bound: std::collections::HashMap<PresignatureId, u64>,
    bound_order: std::collections::VecDeque<PresignatureId>,
    /// Bound since the last refill, with their marks: written to the store then.
    to_record: Vec<(PresignatureId, u64)>,
    /// Only presignatures of this pool (the allocator's) are reserved.
    pool: Option<[u8; 32]>,
}

impl Reserve {
    /// The answer for `id` and `mark` from memory, or `None` when the store must decide.
    fn take(&mut self, id: PresignatureId, mark: u64) -> Option<Result<Option<OneTime>, StoreError>> {
        if let Some(before) = self.bound.get(&id) {
            return Some(Err(if *before == mark {
                StoreError::AlreadyUsed(id.to_string())
            } else {
                StoreError::UsedForAnother(id.to_string())
            }));
        }
        let (presignature, _) = self.ready.remove(&id)?;
        self.bound.insert(id, mark);
        self.bound_order.push_back(id);
        while self.bound_order.len() > BOUND_MEMORY {
            if let Some(old) = self.bound_order.pop_front() {
                self.bound.remove(&old);
            }
        }
        self.to_record.push((id, mark));
        Some(Ok(Some(OneTime::Presignature(presignature))))
    }
}

/// An order to the taking thread.
enum TakeOrder {
    /// Take this presignature for the request with this binding.
    Take(PresignatureId, [u8; 32]),
    /// Top the reserve up (and record the bindings made since the last refill).
    Refill,
}

/// Takes presignatures for sign requests. A holder must mark a presignature used durably before it
/// releases a share; to keep that fsync off the request's path, the taking thread also takes up to
/// [`RESERVE`] presignatures of the allocator's pool ahead of their requests (durably marked used,
/// bound to no request, kept in memory), and a request for one of them is bound in memory and
/// answered at once; its binding reaches the store at the next refill. A request for any other
/// goes through a group commit ([`Store::take_presignatures`]). Takes and refills run on one
/// thread, so a slot is never half reserved while a take looks at it. After a crash the reserved
/// ones are never used ([`StoreError::Discarded`], or the recorded binding's answer): at most
/// [`RESERVE`] presignatures are lost, and none is ever released twice. Reserving starts only with
/// [`Taker::start_reserving`], once the node knows its store was not rolled back.
pub struct Taker {
    commit: GroupCommit<TakeOrder, Result<Option<OneTime>, StoreError>>,
    reserve: Arc<Mutex<Reserve>>,
    reserving: Arc<std::sync::atomic::AtomicBool>,
    refill_queued: Arc<std::sync::atomic::AtomicBool>,
}

impl Taker {
    /// Starts the taking thread; it ends when the `Taker` is dropped.
    pub fn start(store: Arc<Store>) -> Result<Self, StoreError> {
        let reserve: Arc<Mutex<Reserve>> = Arc::default();
        let refill_queued = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (held, queued) = (Arc::clone(&reserve), Arc::clone(&refill_queued));
        let commit = GroupCommit::start("presignature-taker", move |orders: Vec<TakeOrder>| {
            let takes: Vec<(PresignatureId, [u8; 32])> = orders
                .iter()
                .filter_map(|o| match o {
                    TakeOrder::Take(id, binding) => Some((*id, *binding)),
                    TakeOrder::Refill => None,
                })
                .collect();
            let mut taken = store.take_presignatures(&takes).into_iter();
            let answers: Vec<_> = orders
                .iter()
                .map(|o| match o {
                    TakeOrder::Take(..) => taken.next().unwrap_or(Ok(None)),
                    TakeOrder::Refill => Ok(None),
                })
                .collect();
            if orders.iter().any(|o| matches!(o, TakeOrder::Refill)) {
                queued.store(false, std::sync::atomic::Ordering::Release);
                refill(&store, &held);
            }
            answers
        })?;
        Ok(Self {
            commit,
            reserve,
            reserving: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            refill_queued,
        })
    }

    /// Lets the taking thread reserve presignatures from now on.
    pub fn start_reserving(&self) {
        self.reserving.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Reserves from `pool` (the allocator's) from now on; called with every allocation.
    pub fn reserve_from(&self, pool: [u8; 32]) {
        let changed = match self.reserve.lock() {
            Ok(mut reserve) if reserve.pool != Some(pool) => {
                reserve.pool = Some(pool);
                true
            }
            _ => false,
        };
        if changed {
            self.refill_soon();
        }
    }

    /// Queues a refill, unless one is queued (the node's sweep calls this every second, so the
    /// reserve fills while no request comes).
    pub fn refill_soon(&self) {
        if !self.reserving.load(std::sync::atomic::Ordering::Acquire)
            || self.refill_queued.swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        self.commit.send(TakeOrder::Refill);
    }

    /// Reserved presignatures given up since the last call (never used): their pools' owners
    /// should drop the slots.
    pub fn drain_dropped(&self) -> Vec<PresignatureId> {
        self.reserve
            .lock()
            .map(|mut r| std::mem::take(&mut r.dropped))
            .unwrap_or_default()
    }

    /// Presignatures held ready in memory.
    pub fn reserved(&self) -> usize {
        self.reserve.lock().map(|r| r.ready.len()).unwrap_or(0)
    }

    /// Takes presignature `id` for the request with `binding`, with the answers of
    /// [`Store::take_presignatures`]: from memory if it was reserved, else durably now.
    pub async fn take(&self, id: PresignatureId, binding: [u8; 32]) -> Result<Option<OneTime>, StoreError> {
        let mark = used_mark(&binding);
        if let Some(answer) = self.take_reserved(id, mark) {
            return answer;
        }
        match self.commit.submit(TakeOrder::Take(id, binding)).await? {
            // Reserved by a refill that ran before this take on the same thread: it is in memory.
            Err(StoreError::Discarded(what)) => {
                self.take_reserved(id, mark).unwrap_or(Err(StoreError::Discarded(what)))
            }
            answer => answer,
        }
    }

    fn take_reserved(&self, id: PresignatureId, mark: u64) -> Option<Result<Option<OneTime>, StoreError>> {
        let (answer, left) = {
            let mut reserve = self.reserve.lock().ok()?;
            reserve.takes_seen += 1;
            (reserve.take(id, mark), reserve.ready.len())
        };
        // Refilled in batches of half the reserve: one background commit per eight requests.
        if matches!(answer, Some(Ok(_))) && left <= RESERVE / 2 {
            self.refill_soon();
        }
        answer
    }
}

/// Records the bindings made since the last refill, then tops the reserve up to [`RESERVE`] from
/// the allocator's pool. Runs on the taking thread.
fn refill(store: &Store, reserve: &Mutex<Reserve>) {
    let (want, pool, bound, seen) = match reserve.lock() {
        Ok(mut reserve) => {
            let seen = reserve.takes_seen;
            let stale: Vec<PresignatureId> = reserve
                .ready
                .iter()
                .filter(|(_, (_, at))| seen.saturating_sub(*at) > STALE_AFTER)
                .map(|(id, _)| *id)
                .collect();
            for id in &stale {
                reserve.ready.remove(id);
            }
            reserve.dropped.extend(stale);
            (
                RESERVE.saturating_sub(reserve.ready.len()),
                reserve.pool,
                std::mem::take(&mut reserve.to_record),
                seen,
            )
        }
        Err(_) => return,
    };
    if let Err(e) = store.record_reserved_bindings(&bound) {
        tracing::warn!(error = %e, "cannot record the bindings of reserved presignatures");
    }
    let Some(pool) = pool else { return };
    match store.reserve_presignatures(&pool, want) {
        Ok(taken) if !taken.is_empty() => {
            if let Ok(mut reserve) = reserve.lock() {
                reserve.ready.extend(taken.into_iter().map(|(id, p)| (id, (p, seen))));
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot reserve presignatures"),
    }
}
