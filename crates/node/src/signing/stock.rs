//! The presignature pool's state on one node: the owner's stock and its leases, allocations in
//! flight, run bookkeeping, stall penalties and counters. Data only: the protocol that fills it and
//! hands presignatures out is [`super::pool`]. Uses only `store` and `mesh::wire` types.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// One allocation asked for: the nodes that asked, and its answer. A signature needs `t`
/// signers and each asks, so an allocation that `t` nodes never ask for is *solo*: it signs
/// nothing. A node may open only a few solo allocations at once ([`Solo`]); past them its new
/// asks are answered once `t` nodes have asked, so `t − 1` colluding members asking for
/// requests nobody made spend a bounded number of presignatures.
#[derive(Debug)]
pub(super) struct Asked {
    key: [u8; 16],
    pub(super) at: Instant,
    /// The node that asked first: its open asks are counted against its share of the table.
    pub(super) first: u32,
    /// Answered without waiting for `t` askers, on a token of the first asker's [`Solo`] bucket
    /// (given back when `t` nodes have asked).
    pub(super) early: bool,
    askers: Mutex<Vec<u32>>,
    /// Set when the entry was pushed out by newer asks of its first asker.
    dropped: AtomicBool,
    quorum: Notify,
    pub(super) cell: Cell,
}

impl Asked {
    /// Adds `node` to the askers; true if its ask is the `t`-th (it wakes the waiting).
    pub(super) fn ask(&self, node: u32, t: usize) -> bool {
        let Ok(mut askers) = self.askers.lock() else {
            return false;
        };
        if askers.contains(&node) || askers.len() >= t {
            return false;
        }
        askers.push(node);
        let joined = askers.len() == t;
        if joined {
            self.quorum.notify_waiters();
        }
        joined
    }

    /// How many distinct nodes asked.
    pub(super) fn askers(&self) -> usize {
        self.askers.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Waits until `t` nodes have asked, at most `wait`; false if they did not, or if the entry
    /// was pushed out meanwhile.
    pub(super) async fn quorum(&self, t: usize, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.quorum.notified();
            if self.askers() >= t {
                return true;
            }
            if self.dropped.load(Ordering::Relaxed) {
                return false;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return self.askers() >= t;
            }
        }
    }

    fn drop_out(&self) {
        self.dropped.store(true, Ordering::Relaxed);
        self.quorum.notify_waiters();
    }
}

/// How many solo allocations one node may open: a token bucket of `burst` tokens refilled at
/// `per_min` a minute. A token is spent when the node's ask opens an allocation answered at once,
/// and given back when `t` nodes have asked for it; an allocation nobody joins keeps its token.
#[derive(Clone, Copy, Debug)]
pub struct Solo {
    /// Tokens when full.
    pub burst: u32,
    /// Tokens refilled per minute.
    pub per_min: u32,
}

/// The allocations in memory; per node, the entries it opened that `t` nodes have not joined
/// yet, oldest first (at most a share of them: a newer one pushes the oldest out, so a client or
/// member making one node ask for requests nobody else makes holds only that node's share, and
/// never keeps it from opening an honest request's); and each node's [`Solo`] tokens.
#[derive(Debug, Default)]
pub(super) struct Allocations {
    pub(super) entries: HashMap<[u8; 16], Arc<Asked>>,
    open: HashMap<u32, VecDeque<[u8; 16]>>,
    /// Per node: tokens left, and when they were last refilled.
    tokens: HashMap<u32, (f64, Instant)>,
    /// When [`Allocations::expire`] last went through the entries.
    swept: Option<Instant>,
}

/// How often [`Allocations::expire`] goes through the entries: a pass over a full table takes
/// about a millisecond, too long for every ask.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

impl Allocations {
    /// The entry for `key`, opened by `node` if new, and whether an older entry of `node` was
    /// pushed out for it (when `node` already had `share` open); a new entry is answered at once
    /// if `node` has a [`Solo`] token left.
    pub(super) fn open(&mut self, key: [u8; 16], node: u32, share: usize, solo: Solo) -> (Arc<Asked>, bool) {
        if let Some(asked) = self.entries.get(&key) {
            return (Arc::clone(asked), false);
        }
        let open = self.open.entry(node).or_default();
        let mut pushed_out = false;
        while open.len() >= share.max(1) {
            let Some(oldest) = open.pop_front() else { break };
            if let Some(asked) = self.entries.remove(&oldest) {
                asked.drop_out();
                pushed_out = true;
            }
        }
        open.push_back(key);
        let now = Instant::now();
        let burst = f64::from(solo.burst);
        let (tokens, last) = self.tokens.entry(node).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * f64::from(solo.per_min) / 60.0).min(burst);
        *last = now;
        let early = *tokens >= 1.0;
        if early {
            *tokens -= 1.0;
        }
        let asked = Arc::new(Asked {
            key,
            at: now,
            first: node,
            early,
            askers: Mutex::new(Vec::new()),
            dropped: AtomicBool::new(false),
            quorum: Notify::new(),
            cell: Arc::new(OnceCell::new()),
        });
        self.entries.insert(key, Arc::clone(&asked));
        (asked, pushed_out)
    }

    /// `t` nodes asked for `asked`: it no longer counts against its first asker, who gets its
    /// token back.
    pub(super) fn close(&mut self, asked: &Asked, solo: Solo) {
        if let Some(open) = self.open.get_mut(&asked.first) {
            open.retain(|key| *key != asked.key);
        }
        if asked.early {
            if let Some((tokens, _)) = self.tokens.get_mut(&asked.first) {
                *tokens = (*tokens + 1.0).min(f64::from(solo.burst));
            }
        }
    }

    /// Drops entries older than `memory`, and asks that `t` nodes did not join within `wait`
    /// unless they were answered at once (their answer may still be on its way to a late
    /// signer); at most every [`SWEEP_EVERY`].
    pub(super) fn expire(&mut self, memory: Duration, wait: Duration, t: usize) {
        if self.swept.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
            return;
        }
        self.swept = Some(Instant::now());
        self.entries.retain(|_, asked| {
            let age = asked.at.elapsed();
            age < memory && (asked.early || age < wait || asked.askers() >= t)
        });
        let entries = &self.entries;
        self.open.retain(|_, open| {
            open.retain(|key| entries.contains_key(key));
            !open.is_empty()
        });
    }

    /// Entries `node` opened that `t` nodes have not joined.
    #[cfg(test)]
    fn open_of(&self, node: u32) -> usize {
        self.open.get(&node).map_or(0, VecDeque::len)
    }
}

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
    /// Schnorr nonce runs in flight.
    pub(super) schnorr_in_flight: AtomicUsize,
    pub(super) made: AtomicU64,
    /// Schnorr nonce material this node took part in making.
    pub(super) made_schnorr: AtomicU64,
    /// Presignatures made per second over the last minute: at most [`RATE_BUCKETS`] one-second
    /// buckets (start, count), however fast they are made.
    pub(super) made_at: Mutex<VecDeque<(Instant, u64)>>,
    pub(super) allocated: AtomicU64,
    pub(super) conflicts: AtomicU64,
    /// Asks refused because fewer than `t` nodes asked for their request.
    pub(super) unconfirmed: AtomicU64,
    /// Asks nobody joined, pushed out by newer asks of their node past its share.
    pub(super) over_share: AtomicU64,
    pub(super) allocations: Mutex<Allocations>,
    /// Allocations answered but not yet recorded; written about once a second.
    pub(super) records: Mutex<Vec<AllocationOrder>>,
    /// Runs this node joins on an owner's orders, per owner and scheme.
    pub(super) member_runs: Mutex<HashMap<(u32, sigil_primitives::SigningScheme), Arc<Semaphore>>>,
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
    /// Exclusion lists of requests that found no slot of their scheme without those nodes.
    pub(super) demand: Mutex<VecDeque<(sigil_primitives::SigningScheme, Vec<u32>)>>,
    /// Test fault `double-bind`: the slot just allocated, to bind again to the next request.
    pub(super) rebind: Mutex<Option<(u64, Vec<u32>)>>,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            stock: Mutex::new(VecDeque::new()),
            added: Notify::new(),
            in_flight: AtomicUsize::new(0),
            schnorr_in_flight: AtomicUsize::new(0),
            made: AtomicU64::new(0),
            made_schnorr: AtomicU64::new(0),
            made_at: Mutex::new(VecDeque::new()),
            allocated: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            unconfirmed: AtomicU64::new(0),
            over_share: AtomicU64::new(0),
            allocations: Mutex::new(Allocations::default()),
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
        self.stock
            .lock()
            .map(|s| s.iter().filter(|(seq, _)| *seq < crate::store::SCHNORR_SLOTS).count())
            .unwrap_or(0)
    }

    /// Schnorr nonce slots this node can allocate.
    pub fn schnorr_stock(&self) -> usize {
        self.stock
            .lock()
            .map(|s| s.iter().filter(|(seq, _)| *seq >= crate::store::SCHNORR_SLOTS).count())
            .unwrap_or(0)
    }

    /// Schnorr nonce material this node took part in making since it started.
    pub fn made_schnorr(&self) -> u64 {
        self.made_schnorr.load(Ordering::Relaxed)
    }

    /// Counts one piece of Schnorr nonce material made.
    pub(super) fn record_made_schnorr(&self) {
        self.made_schnorr.fetch_add(1, Ordering::Relaxed);
    }

    /// The runs in flight of `scheme`'s material.
    pub(super) fn in_flight(&self, scheme: sigil_primitives::SigningScheme) -> &AtomicUsize {
        match scheme {
            sigil_primitives::SigningScheme::EcdsaK256Sha256 => &self.in_flight,
            sigil_primitives::SigningScheme::SchnorrK256Taproot => &self.schnorr_in_flight,
        }
    }

    /// Presignatures this node took part in making since it started.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Presignatures this node allocated since it started.
    pub fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Allocation asks refused because fewer than `t` nodes asked for their request.
    pub fn unconfirmed(&self) -> u64 {
        self.unconfirmed.load(Ordering::Relaxed)
    }

    /// Asks nobody joined, pushed out by newer asks of their node past `limits.open_asks_per_node`.
    pub fn over_share(&self) -> u64 {
        self.over_share.load(Ordering::Relaxed)
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
    #[error("node {0} has no one-time material (presignature or Schnorr nonces) in stock for a signing set of live nodes; the pool refills in the background, retry shortly")]
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
    /// Fewer than `t` nodes asked for this request within the wait: a signature needs `t` signers,
    /// so no presignature is spent on it.
    #[error("only {asked} of the t = {needed} nodes a signature needs asked node {allocator} for this request's presignature within {wait_secs} s")]
    Unconfirmed {
        /// The allocator.
        allocator: u32,
        /// Distinct nodes that asked.
        asked: usize,
        /// The threshold.
        needed: usize,
        /// How long the allocator waited.
        wait_secs: u64,
    },
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
            Self::Unconfirmed { .. } => "UNCONFIRMED",
            Self::Store(_) => "INTERNAL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No solo tokens: every allocation waits for `t` askers.
    const NONE: Solo = Solo { burst: 0, per_min: 0 };

    #[tokio::test]
    async fn an_allocation_opens_only_when_t_distinct_nodes_ask() {
        let mut table = Allocations::default();
        let asked = table.open([1; 16], 3, 10, NONE).0;
        // The same node asking again does not count twice.
        assert!(!asked.ask(3, 2));
        assert!(!asked.ask(3, 2));
        assert!(!asked.quorum(2, Duration::from_millis(20)).await);
        let waiting = {
            let asked = Arc::clone(&asked);
            tokio::spawn(async move { asked.quorum(2, Duration::from_secs(5)).await })
        };
        let again = table.open([1; 16], 0, 10, NONE).0;
        assert!(again.ask(0, 2), "the second distinct node completes t = 2");
        assert!(waiting.await.unwrap(), "the waiting ask is woken");
        // More askers past t change nothing.
        assert!(!again.ask(1, 2));
        assert_eq!(again.askers(), 2);
    }

    #[tokio::test]
    async fn a_nodes_asks_nobody_joined_push_out_its_oldest_and_never_block_a_new_one() {
        let mut table = Allocations::default();
        let mut first = Vec::new();
        for i in 0..4u8 {
            let (asked, pushed) = table.open([i; 16], 2, 4, NONE);
            assert!(!pushed);
            asked.ask(2, 3);
            first.push(asked);
        }
        let waiting = {
            let oldest = Arc::clone(&first[0]);
            tokio::spawn(async move { oldest.quorum(3, Duration::from_secs(5)).await })
        };
        // A fifth pushes the oldest out: its waiting ask ends at once.
        let (fifth, pushed) = table.open([9; 16], 2, 4, NONE);
        assert!(pushed);
        assert!(!tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap());
        assert!(!table.entries.contains_key(&[0; 16]));
        assert_eq!(table.open_of(2), 4);
        // Another node joins the open ones without pushing anything out, and opens its own.
        fifth.ask(2, 3);
        assert!(!table.open([9; 16], 0, 4, NONE).1);
        assert!(!table.open([20; 16], 0, 4, NONE).1);
        // Joined by t nodes, an ask no longer counts against its opener.
        let joined = table.open([1; 16], 0, 4, NONE).0;
        joined.ask(0, 3);
        let joined = table.open([1; 16], 1, 4, NONE).0;
        if joined.ask(1, 3) {
            table.close(&joined, NONE);
        }
        assert_eq!(table.open_of(2), 3);
        // Open asks expire after the wait; joined ones stay for the memory time.
        table.expire(Duration::from_secs(120), Duration::ZERO, 3);
        assert_eq!(table.entries.len(), 1, "only the joined entry stays");
        assert!(table.entries.contains_key(&[1; 16]));
        assert_eq!(table.open_of(2), 0, "expired asks leave their opener's share");
    }

    #[test]
    fn a_node_opens_solo_allocations_only_on_its_tokens_and_gets_them_back_when_t_nodes_join() {
        let solo = Solo { burst: 2, per_min: 0 };
        let mut table = Allocations::default();
        let first = table.open([1; 16], 3, 100, solo).0;
        assert!(first.early);
        assert!(table.open([2; 16], 3, 100, solo).0.early);
        assert!(!table.open([3; 16], 3, 100, solo).0.early, "two tokens, two at once");
        assert!(table.open([4; 16], 0, 100, solo).0.early, "another node has its own");
        // t nodes joined the first one: node 3 gets its token back.
        first.ask(3, 2);
        if first.ask(1, 2) {
            table.close(&first, solo);
        }
        assert!(table.open([5; 16], 3, 100, solo).0.early);
        assert!(!table.open([6; 16], 3, 100, solo).0.early);
        // Tokens refill with time.
        let refilling = Solo {
            burst: 2,
            per_min: 60_000,
        };
        std::thread::sleep(Duration::from_millis(5));
        assert!(table.open([7; 16], 3, 100, refilling).0.early);
    }

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
