//! One epoch of the network: its number, node set, threshold and fingerprint, its root key shares
//! once they exist, and its presignature pool — in one [`Epoch`] value behind an [`EpochHandle`],
//! so that resharing can put the next epoch in place while requests run: a request takes the
//! current epoch once ([`EpochHandle::current`]) and finishes with it.
//!
//! Store records of one-time material name their epoch (the pool id includes its number), and the
//! root key shares are stored under the number of the epoch that made them
//! ([`Epoch::root_records`]); until resharing exists, one set of shares serves every epoch.
//! Uses `signing::stock` and `store` only.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use group::GroupEncoding;
use sha2::{Digest, Sha256};
use sigil_chain::alloy::primitives::Address;
use sigil_chain::attester_key_id;
use sigil_chain::vouch::bls_shares_digest;
use sigil_mesh::NodeKey;
use sigil_tss::derive::{derive_public_key, eth_address, KeyId};
use sigil_tss::k256::elliptic_curve::sec1::ToEncodedPoint;
use sigil_tss::{Bls12381G1, KeyShare, PublicKeyPackage, Secp256k1};

use crate::signing::stock::Pool;
use crate::store::{KeysWrite, Store, StoreError};

/// This node's shares of the network's root keys.
pub struct RootKeys {
    /// secp256k1 (PKPs derive from it).
    pub ecdsa: KeyShare<Secp256k1>,
    /// BLS12-381 (encryption).
    pub bls: KeyShare<Bls12381G1>,
}

/// The public parts of this node's root keys, as the handshake shows them.
pub struct PublicKeys {
    /// ECDSA root, SEC1 compressed.
    pub ecdsa: Vec<u8>,
    /// BLS root, G1 compressed.
    pub bls: Vec<u8>,
    /// Every node's BLS public share, by node id.
    pub bls_shares: BTreeMap<u32, [u8; 48]>,
    /// The mint attester derived from the ECDSA root.
    pub attester: Address,
}

impl PublicKeys {
    /// Reads them off this node's key shares.
    pub fn of(keys: &RootKeys) -> Self {
        Self::of_packages(keys.ecdsa.public(), keys.bls.public())
    }

    /// Reads them off the public key packages of the two root keys.
    pub fn of_packages(ecdsa: &PublicKeyPackage<Secp256k1>, package: &PublicKeyPackage<Bls12381G1>) -> Self {
        let ecdsa_root = ecdsa.public_key();
        let bls_shares = package
            .parties()
            .into_iter()
            .filter_map(|p| {
                Some((
                    p.0,
                    <[u8; 48]>::try_from(package.public_share(p)?.to_bytes().as_ref()).ok()?,
                ))
            })
            .collect();
        Self {
            ecdsa: ecdsa_root.to_affine().to_encoded_point(true).as_bytes().to_vec(),
            bls: package.public_key().to_bytes().as_ref().to_vec(),
            bls_shares,
            attester: Address::from(eth_address(&derive_public_key(ecdsa_root, &KeyId(attester_key_id())))),
        }
    }

    /// The record NodeSet keeps of them.
    pub fn record(&self) -> sigil_chain::vouch::RootKeys {
        sigil_chain::vouch::RootKeys {
            ecdsa: self.ecdsa.clone(),
            bls: self.bls.clone(),
            bls_shares: bls_shares_digest(self.bls_shares.iter().map(|(id, share)| (*id, share))),
            attester: self.attester,
        }
    }
}

/// The public keys of an epoch with this node's signature over their on-chain record (none
/// without a chain).
pub type SignedPublicKeys = (PublicKeys, Option<[u8; 65]>);

/// One epoch's keys, peers, threshold and pool.
pub struct Epoch {
    /// The epoch number (NodeSet's).
    pub number: u64,
    /// Shares needed to sign or decrypt.
    pub threshold: usize,
    /// Every node of the epoch: id, URL, identity key; sorted by id.
    pub peers: Vec<(u32, String, NodeKey)>,
    /// Hash of the node set (threshold, ids and keys): separates this network's sessions from any
    /// other's.
    pub fingerprint: [u8; 32],
    /// The presignature pool of this epoch's signing sets.
    pub pool: Pool,
    keys: OnceLock<Arc<RootKeys>>,
    public: OnceLock<Arc<SignedPublicKeys>>,
}

impl Epoch {
    /// Epoch `number` of `peers` with threshold `threshold`, before its root keys exist.
    pub fn new(number: u64, threshold: usize, mut peers: Vec<(u32, String, NodeKey)>) -> Self {
        peers.sort_unstable_by_key(|(id, _, _)| *id);
        let mut hasher = Sha256::new();
        hasher.update(b"sigil-network/v1");
        hasher.update((threshold as u32).to_be_bytes());
        for (id, _, key) in &peers {
            hasher.update(id.to_be_bytes());
            hasher.update(key.0);
        }
        Self {
            number,
            threshold,
            peers,
            fingerprint: hasher.finalize().into(),
            pool: Pool::default(),
            keys: OnceLock::new(),
            public: OnceLock::new(),
        }
    }

    /// This node's root key shares, once the DKG ran (or they were loaded).
    pub fn keys(&self) -> Option<Arc<RootKeys>> {
        self.keys.get().cloned()
    }

    /// Installs the root key shares; they are set once per epoch (false if they already were).
    pub fn set_keys(&self, keys: RootKeys) -> bool {
        self.keys.set(Arc::new(keys)).is_ok()
    }

    /// Installs shares already shared with a reshare's record (false if the epoch has keys).
    pub fn set_shared_keys(&self, keys: Arc<RootKeys>) -> bool {
        self.keys.set(keys).is_ok()
    }

    /// The public keys and their signed record, computed once by `make` after the keys exist.
    pub fn public_keys(&self, make: impl FnOnce(&RootKeys) -> SignedPublicKeys) -> Option<Arc<SignedPublicKeys>> {
        let keys = self.keys()?;
        Some(Arc::clone(self.public.get_or_init(|| Arc::new(make(&keys)))))
    }

    /// Node ids of the epoch, sorted.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.peers.iter().map(|(id, _, _)| *id)
    }

    /// Whether `id` names a node of this epoch. Ids are the nodes' own, kept across epochs, not
    /// places in the list: `id < n` says nothing.
    pub fn contains(&self, id: u32) -> bool {
        self.peers.binary_search_by_key(&id, |(id, _, _)| *id).is_ok()
    }

    /// The store record names of the ECDSA and BLS root key shares made in epoch `number`.
    pub fn root_records(number: u64) -> (String, String) {
        (format!("ecdsa-root/epoch-{number}"), format!("bls-root/epoch-{number}"))
    }
}

/// The current epoch, swappable while requests hold the one they started with.
pub struct EpochHandle(RwLock<Arc<Epoch>>);

impl EpochHandle {
    /// A handle on `epoch`.
    pub fn new(epoch: Epoch) -> Self {
        Self(RwLock::new(Arc::new(epoch)))
    }

    /// The current epoch.
    pub fn current(&self) -> Arc<Epoch> {
        match self.0.read() {
            Ok(epoch) => Arc::clone(&epoch),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Makes `next` the current epoch; requests already running keep the one they hold.
    pub fn replace(&self, next: Epoch) -> Arc<Epoch> {
        let next = Arc::new(next);
        match self.0.write() {
            Ok(mut epoch) => *epoch = Arc::clone(&next),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&next),
        }
        next
    }
}

/// Names of the root key shares in data files from before records named their epoch.
const LEGACY_ROOT_RECORDS: (&str, &str) = ("ecdsa-root", "bls-root");
/// The number of the epoch whose root key shares this node holds (8 bytes, big-endian).
const ROOT_EPOCH: &str = "root-epoch";

/// What a data file holds of the root key shares.
pub enum StoredRootKeys {
    /// Nothing: this network has not run its DKG yet.
    None,
    /// Both shares, and the epoch that made them (`None` in a data file from before records
    /// named their epoch).
    Both(Option<u64>, Box<RootKeys>),
    /// One share without the other: the file is damaged, and the DKG must not run again.
    Partial,
    /// None any more: this node erased them when NodeSet moved to epoch `.0` without it (the
    /// DKG must not run again either).
    Erased(u64),
}

/// Reads the root key shares: those of the epoch named by the `root-epoch` record, or, in a data
/// file from before records named their epoch, the legacy names.
pub fn load_root_keys(store: &Store) -> Result<StoredRootKeys, StoreError> {
    let number = match store.secret(ROOT_EPOCH)? {
        Some(bytes) => Some(u64::from_be_bytes(
            <[u8; 8]>::try_from(bytes.as_slice())
                .map_err(|_| StoreError::Database("the stored root-key epoch is not 8 bytes".into()))?,
        )),
        None => None,
    };
    let (ecdsa, bls) = match number {
        Some(number) => Epoch::root_records(number),
        None => (LEGACY_ROOT_RECORDS.0.to_string(), LEGACY_ROOT_RECORDS.1.to_string()),
    };
    Ok(
        match (
            store.key_share::<Secp256k1>(&ecdsa)?,
            store.key_share::<Bls12381G1>(&bls)?,
        ) {
            (Some(ecdsa), Some(bls)) => StoredRootKeys::Both(number, Box::new(RootKeys { ecdsa, bls })),
            (None, None) => match store.secret(ERASED)? {
                Some(bytes) => StoredRootKeys::Erased(u64::from_be_bytes(
                    <[u8; 8]>::try_from(bytes.as_slice()).unwrap_or_default(),
                )),
                None => StoredRootKeys::None,
            },
            _ => StoredRootKeys::Partial,
        },
    )
}

/// Stores the root key shares made in epoch `number` and names that epoch in the `root-epoch`
/// record, in one transaction: a crash leaves both shares and the record or none of them (the
/// DKG's tentative shares, [`TENTATIVE_RECORDS`], go in the same transaction).
pub fn save_root_keys(store: &Store, number: u64, keys: &RootKeys) -> Result<(), StoreError> {
    let (ecdsa, bls) = Epoch::root_records(number);
    store
        .rewrite_keys(KeysWrite {
            put_secrets: &[(ROOT_EPOCH, &number.to_be_bytes())],
            forget_secrets: &[],
            shares: Some(((&ecdsa, &keys.ecdsa), (&bls, &keys.bls))),
            keep: None,
            remove: &[TENTATIVE_RECORDS.0, TENTATIVE_RECORDS.1],
            purge_one_time: false,
        })
        .map(|_| ())
}

/// Where the first DKG keeps this node's shares from the moment it confirms a run until the run
/// ends, or, when it ended here without output, until NodeSet's record shows the others finished
/// it ([`load_tentative_root_keys`]).
pub const TENTATIVE_RECORDS: (&str, &str) = ("dkg-tentative/secp256k1", "dkg-tentative/bls12-381");

/// The DKG's tentative shares of both root keys, when both are stored.
pub fn load_tentative_root_keys(store: &Store) -> Result<Option<RootKeys>, StoreError> {
    Ok(
        match (
            store.key_share::<Secp256k1>(TENTATIVE_RECORDS.0)?,
            store.key_share::<Bls12381G1>(TENTATIVE_RECORDS.1)?,
        ) {
            (Some(ecdsa), Some(bls)) => Some(RootKeys { ecdsa, bls }),
            _ => None,
        },
    )
}

/// The index of the reshared shares this node holds for proposed epochs, oldest first: entries of
/// epoch (8 bytes) ‖ proposal id (8) ‖ confirmation digest (32), integers big-endian.
const NEXT_EPOCH: &str = "next-epoch";
const NEXT_ENTRY: usize = 48;

/// Most reshared records kept at once. A record a node signed is never overwritten or dropped
/// while its proposal is pending (NodeSet may confirm any of them): once this many are held for
/// one proposal, the node takes part in no further run of it (the admin withdraws and proposes
/// again).
pub const MAX_NEXT: usize = 4;

/// Which reshared record: its epoch, proposal and confirmation digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextRef {
    /// The proposed epoch.
    pub epoch: u64,
    /// The proposal.
    pub proposal: u64,
    /// The confirmation digest.
    pub digest: [u8; 32],
}

/// Root key shares a reshare gave this node for a proposed epoch, before NodeSet confirms it.
pub struct NextRootKeys {
    /// The proposed epoch.
    pub epoch: u64,
    /// The proposal they were made for.
    pub proposal: u64,
    /// Their confirmation digest (`sigil_chain::vouch::confirmation_digest`): which record they are.
    pub digest: [u8; 32],
    /// The shares.
    pub keys: RootKeys,
}

/// The store record names of reshared shares for epoch `epoch` with confirmation `digest`: never
/// the names of an epoch's current shares, so no late run can overwrite those.
fn next_records(epoch: u64, digest: &[u8; 32]) -> (String, String) {
    let id = hex::encode(digest);
    (
        format!("ecdsa-root/next/{epoch}/{id}"),
        format!("bls-root/next/{epoch}/{id}"),
    )
}

fn read_index(store: &Store) -> Result<Vec<(u64, u64, [u8; 32])>, StoreError> {
    let Some(bytes) = store.secret(NEXT_EPOCH)? else {
        return Ok(Vec::new());
    };
    if bytes.len() % NEXT_ENTRY != 0 {
        return Err(StoreError::Database("the stored next-epoch index is damaged".into()));
    }
    Ok(bytes
        .chunks_exact(NEXT_ENTRY)
        .map(|entry| {
            let number = |range: std::ops::Range<usize>| {
                u64::from_be_bytes(entry.get(range).and_then(|b| b.try_into().ok()).unwrap_or_default())
            };
            let digest = entry.get(16..).and_then(|b| b.try_into().ok()).unwrap_or_default();
            (number(0..8), number(8..16), digest)
        })
        .collect())
}

fn encode_index(entries: &[(u64, u64, [u8; 32])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * NEXT_ENTRY);
    for (epoch, proposal, digest) in entries {
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&proposal.to_be_bytes());
        out.extend_from_slice(digest);
    }
    out
}

/// Stores reshared shares beside the current ones (which stay current until NodeSet confirms the
/// new epoch) and beside other runs' (at most [`MAX_NEXT`]; the oldest goes), in one
/// transaction. Storing the same record again changes nothing.
pub fn save_next_root_keys(store: &Store, next: NextRef, keys: &RootKeys) -> Result<(), StoreError> {
    let mut index = read_index(store)?;
    if index.iter().any(|(e, _, d)| *e == next.epoch && *d == next.digest) {
        return Ok(());
    }
    // Records of other proposals (withdrawn: ids are never reused) make room; a record of this
    // proposal never goes while it is pending, since NodeSet may still confirm it.
    let mut evicted = Vec::new();
    while index.len() >= MAX_NEXT {
        let Some(at) = index.iter().position(|(_, p, _)| *p != next.proposal) else {
            return Err(StoreError::Database(format!(
                "{MAX_NEXT} reshared records of proposal {} are held already",
                next.proposal
            )));
        };
        let (epoch, _, digest) = index.remove(at);
        let (ecdsa, bls) = next_records(epoch, &digest);
        evicted.extend([ecdsa, bls]);
    }
    index.push((next.epoch, next.proposal, next.digest));
    let evicted: Vec<&str> = evicted.iter().map(String::as_str).collect();
    let encoded = encode_index(&index);
    let (ecdsa, bls) = next_records(next.epoch, &next.digest);
    store
        .rewrite_keys(KeysWrite {
            put_secrets: &[(NEXT_EPOCH, &encoded)],
            forget_secrets: &[],
            shares: Some(((&ecdsa, &keys.ecdsa), (&bls, &keys.bls))),
            keep: None,
            remove: &evicted,
            purge_one_time: false,
        })
        .map(drop)
}

/// Every reshared record this node holds for a proposed epoch, oldest first.
pub fn load_next_root_keys(store: &Store) -> Result<Vec<NextRootKeys>, StoreError> {
    let mut out = Vec::new();
    for (epoch, proposal, digest) in read_index(store)? {
        let (ecdsa, bls) = next_records(epoch, &digest);
        if let (Some(ecdsa), Some(bls)) = (
            store.key_share::<Secp256k1>(&ecdsa)?,
            store.key_share::<Bls12381G1>(&bls)?,
        ) {
            out.push(NextRootKeys {
                epoch,
                proposal,
                digest,
                keys: RootKeys { ecdsa, bls },
            });
        }
    }
    Ok(out)
}

/// Drops the reshared records `keep` refuses (given epoch and proposal): those of an epoch
/// already settled, or of a withdrawn proposal. One transaction; returns the shares dropped.
pub fn prune_next_root_keys(store: &Store, keep: impl Fn(u64, u64) -> bool) -> Result<usize, StoreError> {
    let index = read_index(store)?;
    let (kept, stale): (Vec<_>, Vec<_>) = index.into_iter().partition(|(e, p, _)| keep(*e, *p));
    if stale.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = stale
        .iter()
        .flat_map(|(e, _, d)| {
            let (ecdsa, bls) = next_records(*e, d);
            [ecdsa, bls]
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let encoded = encode_index(&kept);
    store
        .rewrite_keys(KeysWrite::<Secp256k1, Bls12381G1> {
            put_secrets: &[(NEXT_EPOCH, &encoded)],
            forget_secrets: &[],
            shares: None,
            keep: None,
            remove: &names,
            purge_one_time: false,
        })
        .map(|(removed, _)| removed)
}

/// Makes `keys` (reshared for epoch `epoch`, the record NodeSet confirmed) the current shares and,
/// in the same transaction, erases every other root key share (the previous epoch's, other runs')
/// and every presignature and triple (they belong to the previous epoch's shares). Returns the
/// shares erased and the presignatures discarded.
pub fn switch_root_keys(store: &Store, epoch: u64, keys: &RootKeys) -> Result<(usize, usize), StoreError> {
    let (ecdsa, bls) = Epoch::root_records(epoch);
    store.rewrite_keys(KeysWrite {
        put_secrets: &[(ROOT_EPOCH, &epoch.to_be_bytes())],
        forget_secrets: &[NEXT_EPOCH],
        shares: Some(((&ecdsa, &keys.ecdsa), (&bls, &keys.bls))),
        keep: Some(&[]),
        remove: &[],
        purge_one_time: true,
    })
}

/// Erases every root key share this node holds, of every epoch, and every presignature and
/// triple, in one transaction, and records that it did (in epoch `epoch`): what a node does once
/// NodeSet moved to an epoch without it. Returns the shares erased and the presignatures
/// discarded.
pub fn erase_root_keys(store: &Store, epoch: u64) -> Result<(usize, usize), StoreError> {
    store.rewrite_keys(KeysWrite::<Secp256k1, Bls12381G1> {
        put_secrets: &[(ERASED, &epoch.to_be_bytes())],
        forget_secrets: &[ROOT_EPOCH, NEXT_EPOCH],
        shares: None,
        keep: Some(&[]),
        remove: &[],
        purge_one_time: true,
    })
}

/// The record of the epoch in which this node erased its root key shares (8 bytes).
const ERASED: &str = "root-erased";

/// What this node holds of a proposed epoch: its new shares, their public parts, and its
/// signature over the confirmation `NodeSet.confirmEpoch` checks.
pub struct NextEpoch {
    /// The proposed epoch.
    pub epoch: u64,
    /// The proposal reshared for.
    pub proposal: u64,
    /// The new shares.
    pub keys: Arc<RootKeys>,
    /// Their public parts.
    pub public: PublicKeys,
    /// The confirmation digest (the record's identity: equal records give equal digests).
    pub digest: [u8; 32],
    /// This node's signature over `digest` (None without a chain).
    pub signature: Option<[u8; 65]>,
}
