//! The presignature pool's state on one node: the owner's stock and its leases, allocations in
//! flight, run bookkeeping, stall penalties and counters. Data only: the protocol that fills it and
//! hands presignatures out is [`super::pool`]. Uses only `store` and `mesh::wire` types.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OnceCell, Semaphore};

use crate::mesh::wire::Allocation;
use crate::store::{AllocationOrder, PresignatureId};

/// A node that stalled a run sits out of new signing sets this long, doubled per stall in a row.
const STALL_PENALTY: Duration = Duration::from_secs(30);

const MAX_STALL_PENALTY: Duration = Duration::from_secs(600);

/// One-second buckets of the presignature rate (a minute, and the second now running).
pub const RATE_BUCKETS: usize = 61;

/// One allocation in flight, shared by concurrent asks for the same request.
pub(super) type Cell = Arc<OnceCell<Result<Allocation, AllocateError>>>;

/// The allocator's id for a request of one kind: SHA-256 of the kind's `tag` and `parts`, cut to
/// 16 bytes. Every kind (`/web/pkp/sign`, mint attestations, action signatures, claims) has its
/// own tag, so no caller can choose an id another kind will use.
pub(crate) fn request_id(tag: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(tag);
    for part in parts {
        h.update(part);
    }
    let digest: [u8; 32] = h.finalize().into();
    let mut id = [0u8; 16];
    id.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    id
}

/// The pool state of one node.
pub struct Pool {
    pub(super) stock: Mutex<VecDeque<(u64, Vec<u32>)>>,
    pub(super) added: Notify,
    pub(super) in_flight: AtomicUsize,
    pub(super) made: AtomicU64,
    /// Presignatures made per second over the last minute: at most [`RATE_BUCKETS`] one-second
    /// buckets (start, count), however fast they are made.
    pub(super) made_at: Mutex<VecDeque<(Instant, u64)>>,
    pub(super) allocated: AtomicU64,
    pub(super) conflicts: AtomicU64,
    pub(super) allocations: Mutex<HashMap<[u8; 16], (Instant, Cell)>>,
    /// Allocations answered but not yet recorded; written about once a second.
    pub(super) records: Mutex<Vec<AllocationOrder>>,
    pub(super) member_runs: Mutex<HashMap<u32, Arc<Semaphore>>>,
    pub(super) confirmed: Mutex<HashMap<u64, Vec<u32>>>,
    /// Runs this node ordered and has not finished: seq → signing set. Only their members'
    /// `Stored` and `Failed` notices count.
    pub(super) ordered: Mutex<HashMap<u64, Vec<u32>>>,
    /// Reports of silent nodes per run: (seq, accused) → reporters.
    pub(super) reports: Mutex<HashMap<(u64, u32), Vec<u32>>>,
    pub(super) rotation: AtomicUsize,
    /// Slots of any pool this node will never use, not yet acknowledged by their owners (see
    /// [`report_discarded`]; bounded).
    pub(super) discards: Mutex<Vec<PresignatureId>>,
    /// Set while [`send_discards`] runs.
    pub(super) discarding: std::sync::atomic::AtomicBool,
    /// Stocked slots already leased (see [`crate::store::Store::lease`]).
    pub(super) leased: Mutex<std::collections::HashSet<u64>>,
    /// Held while slots are being leased, so a request never races the background leasing.
    pub(super) lease_gate: tokio::sync::Mutex<()>,
    pub(super) penalties: Mutex<HashMap<u32, (Instant, u32)>>,
    pub(super) demand: Mutex<VecDeque<Vec<u32>>>,
    /// Test fault `double-bind`: the slot just allocated, to bind again to the next request.
    pub(super) rebind: Mutex<Option<(u64, Vec<u32>)>>,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            stock: Mutex::new(VecDeque::new()),
            added: Notify::new(),
            in_flight: AtomicUsize::new(0),
            made: AtomicU64::new(0),
            made_at: Mutex::new(VecDeque::new()),
            allocated: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            allocations: Mutex::new(HashMap::new()),
            records: Mutex::new(Vec::new()),
            member_runs: Mutex::new(HashMap::new()),
            confirmed: Mutex::new(HashMap::new()),
            ordered: Mutex::new(HashMap::new()),
            reports: Mutex::new(HashMap::new()),
            rotation: AtomicUsize::new(0),
            discards: Mutex::new(Vec::new()),
            discarding: std::sync::atomic::AtomicBool::new(false),
            leased: Mutex::new(std::collections::HashSet::new()),
            lease_gate: tokio::sync::Mutex::new(()),
            penalties: Mutex::new(HashMap::new()),
            demand: Mutex::new(VecDeque::new()),
            rebind: Mutex::new(None),
        }
    }
}

impl Pool {
    /// Presignatures this node can allocate (stocked slots, whatever their set's liveness).
    pub fn stock(&self) -> usize {
        self.stock.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Presignatures this node took part in making since it started.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Presignatures this node allocated since it started.
    pub fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Requests refused because their presignature had been used for another request.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// Counts a presignature bound to a second request (see `api::threshold_share`).
    pub fn record_conflict(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    /// Nodes now left out of new signing sets for stalling runs.
    pub fn penalized(&self) -> Vec<u32> {
        let Ok(map) = self.penalties.lock() else {
            return Vec::new();
        };
        let mut out: Vec<u32> = map
            .iter()
            .filter(|(_, (until, _))| *until > Instant::now())
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        out
    }

    /// Presignatures made per second over the last minute.
    pub fn rate(&self) -> f64 {
        let Ok(mut buckets) = self.made_at.lock() else {
            return 0.0;
        };
        let window = Duration::from_secs(60);
        while buckets.front().is_some_and(|(start, _)| start.elapsed() > window) {
            buckets.pop_front();
        }
        let made: u64 = buckets.iter().map(|(_, count)| count).sum();
        match buckets.front() {
            Some((first, _)) if made > 1 => made as f64 / first.elapsed().as_secs_f64().max(1.0),
            _ => 0.0,
        }
    }

    /// One-second buckets the rate keeps.
    pub fn rate_buckets(&self) -> usize {
        self.made_at.lock().map(|b| b.len()).unwrap_or(0)
    }

    pub(super) fn record_made(&self) {
        self.made.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut buckets) = self.made_at.lock() {
            match buckets.back_mut() {
                Some((start, count)) if start.elapsed() < Duration::from_secs(1) => *count += 1,
                _ => buckets.push_back((Instant::now(), 1)),
            }
            while buckets.len() > RATE_BUCKETS {
                buckets.pop_front();
            }
        }
    }

    /// Leaves `node` out of new signing sets for a while (longer each time in a row).
    pub(super) fn penalize(&self, node: u32) {
        if let Ok(mut map) = self.penalties.lock() {
            let strikes = map.get(&node).map(|(_, n)| n.saturating_add(1)).unwrap_or(1);
            let penalty = STALL_PENALTY
                .saturating_mul(1 << strikes.saturating_sub(1).min(5))
                .min(MAX_STALL_PENALTY);
            map.insert(node, (Instant::now() + penalty, strikes));
        }
    }

    /// A run with `holders` finished: they are in good standing again.
    pub(super) fn absolve(&self, holders: &[u32]) {
        if let Ok(mut map) = self.penalties.lock() {
            map.retain(|id, (until, _)| !holders.contains(id) || *until > Instant::now());
        }
    }
}

/// Allocate calls whose time is further than this from the allocator's clock are refused.
pub const ALLOCATE_WINDOW_SECS: u64 = 60;

/// Why no allocation was made.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AllocateError {
    /// Nothing in stock for this request within [`ALLOCATION_WAIT`].
    #[error("node {0} has no presignature in stock for a signing set of live nodes; the pool refills in the background, retry shortly")]
    PoolEmpty(u32),
    /// The request id was allocated for another key or message.
    #[error("requestId {0} was already used for another key or message; use a fresh random requestId")]
    Conflict(String),
    /// The call is outside the replay window.
    #[error("allocation call made at {at}, {skew} s from the allocator's clock (window {ALLOCATE_WINDOW_SECS} s): refused as a replay")]
    Stale {
        /// The call's time.
        at: u64,
        /// Distance to now.
        skew: u64,
    },
    /// The allocator holds as many allocations in memory as it may; new ones wait for old ones
    /// to expire.
    #[error("node {0} is answering as many allocations as it keeps in memory; retry shortly")]
    Busy(u32),
    /// Storage failed.
    #[error("allocation storage: {0}")]
    Store(String),
}

impl AllocateError {
    /// The stable code, as the HTTP API names it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PoolEmpty(_) => "POOL_EMPTY",
            Self::Conflict(_) => "REQUEST_CONFLICT",
            Self::Stale { .. } => "STALE_CALL",
            Self::Busy(_) => "BUSY",
            Self::Store(_) => "INTERNAL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presignature_rate_keeps_a_minute_of_buckets_however_many_are_made() {
        let pool = Pool::default();
        for _ in 0..200_000 {
            pool.record_made();
        }
        assert!(pool.rate_buckets() <= RATE_BUCKETS);
        assert_eq!(pool.made.load(Ordering::Relaxed), 200_000);
        assert!(pool.rate() > 1_000.0, "rate {}", pool.rate());
    }
}
