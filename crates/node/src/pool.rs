//! Presignature pool and allocator.
//!
//! The lowest live node owns the pool: it orders presignatures (two cait-sith triples and a presign
//! run) among every live node, up to the configured stock, and is the only one that hands them out.
//! Each presignature is identified by `(pool, seq)`, where `pool` names the owner and `seq` comes
//! from a durable counter, so a slot number is never reused — not even after a restart. Every
//! holder keeps its share in its own store; a holder takes it (durably marking it used) before it
//! releases a signature share, so even a confused or malicious allocator cannot make a node use a
//! presignature twice. A presignature made by `m ≥ t` nodes signs with any `t` of them, so nodes
//! going down after it was made do not strand it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sigil_tss::ecdsa::{presigning, triple_generation};
use sigil_tss::{PartyId, SessionId};
use tokio::sync::{Notify, OnceCell, Semaphore};

use crate::api::ApiError;
use crate::node::Node;
use crate::session::SessionError;
use crate::store::{PresignatureId, StoreError};
use crate::wire::{Allocation, Message, Start};

const TRIPLE_DEADLINE: Duration = Duration::from_secs(60);
const PRESIGN_DEADLINE: Duration = Duration::from_secs(30);
/// How long a sign request waits for a presignature when the stock is empty.
pub const ALLOCATION_WAIT: Duration = Duration::from_secs(25);
/// How long an allocation is remembered, so every node asking for the same request gets the same.
const ALLOCATION_MEMORY: Duration = Duration::from_secs(120);
/// Presignature runs this node joins at once on others' orders.
const MAX_MEMBER_RUNS: usize = 16;
/// How long the owner waits for every holder to confirm it stored its share.
const STORED_WAIT: Duration = Duration::from_secs(10);

type Cell = Arc<OnceCell<Result<Allocation, ApiError>>>;

/// The pool state of one node.
pub struct Pool {
    stock: Mutex<VecDeque<(u64, Vec<u32>)>>,
    added: Notify,
    in_flight: AtomicUsize,
    made: AtomicU64,
    made_at: Mutex<VecDeque<Instant>>,
    allocated: AtomicU64,
    allocations: Mutex<HashMap<String, (Instant, Cell)>>,
    member_runs: Arc<Semaphore>,
    confirmed: Mutex<HashMap<u64, Vec<u32>>>,
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
            allocations: Mutex::new(HashMap::new()),
            member_runs: Arc::new(Semaphore::new(MAX_MEMBER_RUNS)),
            confirmed: Mutex::new(HashMap::new()),
        }
    }
}

impl Pool {
    /// Presignatures this node can allocate now.
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

    /// Presignatures made per second over the last minute.
    pub fn rate(&self) -> f64 {
        let Ok(mut times) = self.made_at.lock() else { return 0.0 };
        let window = Duration::from_secs(60);
        while times.front().is_some_and(|t| t.elapsed() > window) {
            times.pop_front();
        }
        match times.front() {
            Some(first) if times.len() > 1 => times.len() as f64 / first.elapsed().as_secs_f64().max(1.0),
            _ => 0.0,
        }
    }

    fn record_made(&self) {
        self.made.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut times) = self.made_at.lock() {
            times.push_back(Instant::now());
        }
    }
}

/// The storage pool id of `owner`'s presignatures in this network.
pub fn pool_id(node: &Node, owner: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sigil-pool/v1");
    h.update(node.fingerprint);
    h.update(owner.to_be_bytes());
    h.finalize().into()
}

fn session_id(node: &Node, owner: u32, seq: u64, label: &str) -> SessionId {
    let mut h = Sha256::new();
    h.update(b"sigil-presign/v1");
    h.update(label.as_bytes());
    h.update(pool_id(node, owner));
    h.update(seq.to_be_bytes());
    SessionId(h.finalize().into())
}

/// Reloads this node's own stock, then keeps the pool filled while this node is the allocator.
pub async fn run(node: Arc<Node>) {
    let own = pool_id(&node, node.me);
    let store = Arc::clone(&node.store);
    let loaded = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for seq in store.stocked(&own)? {
            if let Some(p) = store.peek_presignature(PresignatureId { pool: own, seq })? {
                out.push((seq, p.signers().iter().map(|s| s.0).collect::<Vec<u32>>()));
            }
        }
        Ok::<_, StoreError>(out)
    })
    .await;
    match loaded {
        Ok(Ok(stocked)) => {
            if !stocked.is_empty() {
                tracing::info!(count = stocked.len(), "presignatures reloaded from storage");
            }
            if let Ok(mut stock) = node.pool.stock.lock() {
                stock.extend(stocked);
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot reload presignatures"),
        Err(e) => tracing::error!(error = %e, "cannot reload presignatures"),
    }
    let target = node.settings.config.presign_stock;
    let parallel = node.settings.config.presign_parallel;
    let refill_below = node.settings.config.presign_refill_below.unwrap_or(target).min(target);
    let mut filling = false;
    let mut running: Vec<(tokio::task::JoinHandle<()>, Vec<u32>)> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A run whose participant went down cannot finish: stop waiting for its deadline.
        running.retain(|(handle, participants)| {
            if handle.is_finished() {
                return false;
            }
            if let Some(down) = participants.iter().find(|p| !node.net.is_up(**p)) {
                tracing::info!(node = down, "presignature run abandoned: a participant is down");
                handle.abort();
                return false;
            }
            true
        });
        if !node.is_allocator() {
            continue;
        }
        let live = node.live();
        if live.len() < node.threshold {
            continue;
        }
        let have = node.pool.stock() + node.pool.in_flight.load(Ordering::Relaxed);
        filling = (filling || have < refill_below) && have < target;
        while filling
            && node.pool.stock() + node.pool.in_flight.load(Ordering::Relaxed) < target
            && node.pool.in_flight.load(Ordering::Relaxed) < parallel
        {
            let store = Arc::clone(&node.store);
            let name = format!("presign-seq/{}", hex::encode(own));
            let seq = match tokio::task::spawn_blocking(move || store.next(&name)).await {
                Ok(Ok(seq)) => seq,
                _ => {
                    tracing::error!("cannot advance the presignature counter");
                    break;
                }
            };
            let guard = InFlight::new(&node);
            let node = Arc::clone(&node);
            let participants = live.clone();
            let handle = tokio::spawn(async move {
                let _guard = guard;
                let start = Start { seq, participants };
                for peer in start.participants.iter().filter(|p| **p != node.me) {
                    node.net.send(*peer, Message::Start(start.clone()).encode());
                }
                match make(&node, node.me, &start).await {
                    Ok(()) => {
                        let holders = confirmed_holders(&node, &start).await;
                        if holders.len() >= node.threshold {
                            if let Ok(mut stock) = node.pool.stock.lock() {
                                stock.push_back((seq, holders));
                            }
                            node.pool.added.notify_waiters();
                        } else {
                            tracing::warn!(seq, holders = ?holders, "too few holders stored the presignature; not used");
                        }
                    }
                    Err(e) => tracing::warn!(seq, error = %e, "presignature failed"),
                }
                if let Ok(mut confirmed) = node.pool.confirmed.lock() {
                    confirmed.remove(&seq);
                }
            });
            running.push((handle, live.clone()));
        }
    }
}

/// Counts a presignature run in flight for as long as it lives (also when it is aborted).
struct InFlight(Arc<Node>);

impl InFlight {
    fn new(node: &Arc<Node>) -> Self {
        node.pool.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(node))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.pool.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits (bounded) until every participant confirmed it stored its share; returns those that did,
/// this node included. Only they are asked to sign with it.
async fn confirmed_holders(node: &Node, start: &Start) -> Vec<u32> {
    let until = Instant::now() + STORED_WAIT;
    loop {
        let confirmed = node
            .pool
            .confirmed
            .lock()
            .map(|c| c.get(&start.seq).cloned().unwrap_or_default())
            .unwrap_or_default();
        let holders: Vec<u32> = start
            .participants
            .iter()
            .copied()
            .filter(|p| *p == node.me || confirmed.contains(p))
            .collect();
        if holders.len() == start.participants.len() || Instant::now() >= until {
            return holders;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Records that `from` stored its share of presignature `seq` of this node's pool.
pub fn stored(node: &Node, from: u32, seq: u64) {
    if let Ok(mut confirmed) = node.pool.confirmed.lock() {
        if confirmed.len() < 4096 {
            let holders = confirmed.entry(seq).or_default();
            if !holders.contains(&from) {
                holders.push(from);
            }
        }
    }
}

/// Joins presignature `start.seq` of `owner`'s pool, on the owner's order.
pub fn join(node: &Arc<Node>, owner: u32, start: Start) -> Result<(), String> {
    let mut sorted = start.participants.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let n = node.settings.peers.len() as u32;
    if sorted != start.participants
        || !sorted.contains(&owner)
        || !sorted.contains(&node.me)
        || sorted.len() < node.threshold
        || sorted.iter().any(|p| *p >= n)
    {
        return Err(format!(
            "bad participant list from node {owner}: {:?}",
            start.participants
        ));
    }
    let permit = Arc::clone(&node.pool.member_runs)
        .try_acquire_owned()
        .map_err(|_| format!("too many presignature runs; order from node {owner} ignored"))?;
    let node = Arc::clone(node);
    tokio::spawn(async move {
        match make(&node, owner, &start).await {
            Ok(()) => node.net.send(owner, Message::Stored(start.seq).encode()),
            Err(e) => tracing::warn!(owner, seq = start.seq, error = %e, "presignature failed"),
        }
        drop(permit);
    });
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum MakeError {
    #[error("root keys not ready")]
    NotReady,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Tss(#[from] sigil_tss::TssError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storage task failed")]
    Join,
}

/// Two triples, then the presignature, then storage: this node's part of one presignature.
async fn make(node: &Arc<Node>, owner: u32, start: &Start) -> Result<(), MakeError> {
    let keys = node.keys().ok_or(MakeError::NotReady)?;
    let parties: Vec<PartyId> = start.participants.iter().map(|p| PartyId(*p)).collect();
    let me = PartyId(node.me);
    let t = node.threshold;
    let t0 = triple_generation(session_id(node, owner, start.seq, "triple0"), me, &parties, t)?;
    let t1 = triple_generation(session_id(node, owner, start.seq, "triple1"), me, &parties, t)?;
    let (t0, t1) = tokio::join!(
        node.sessions.run(&node.net, t0, parties.clone(), TRIPLE_DEADLINE),
        node.sessions.run(&node.net, t1, parties.clone(), TRIPLE_DEADLINE),
    );
    let run = presigning(
        session_id(node, owner, start.seq, "presign"),
        &keys.ecdsa,
        &parties,
        t0?,
        t1?,
    )?;
    let presignature = node.sessions.run(&node.net, run, parties, PRESIGN_DEADLINE).await?;
    let id = PresignatureId {
        pool: pool_id(node, owner),
        seq: start.seq,
    };
    let store = Arc::clone(&node.store);
    tokio::task::spawn_blocking(move || store.put_presignature(id, &presignature))
        .await
        .map_err(|_| MakeError::Join)??;
    node.pool.record_made();
    Ok(())
}

/// Allocates a presignature of this node's pool to sign request `request`; every caller asking for
/// the same request gets the same allocation, and `digest` must match the one it was made for.
pub async fn allocate(node: &Arc<Node>, request: &str, digest: &str) -> Result<Allocation, ApiError> {
    let cell = {
        let mut map = node
            .pool
            .allocations
            .lock()
            .map_err(|_| ApiError::internal("allocation table poisoned"))?;
        map.retain(|_, (at, _)| at.elapsed() < ALLOCATION_MEMORY);
        Arc::clone(
            &map.entry(request.to_string())
                .or_insert_with(|| (Instant::now(), Arc::new(OnceCell::new())))
                .1,
        )
    };
    let allocation = cell
        .get_or_init(|| async {
            let until = Instant::now() + ALLOCATION_WAIT;
            loop {
                let notified = node.pool.added.notified();
                if let Some(a) = take_one(node, digest) {
                    return Ok(a);
                }
                let Some(left) = until.checked_duration_since(Instant::now()) else {
                    return Err(ApiError::pool_empty(node.me));
                };
                let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
            }
        })
        .await
        .clone()?;
    if allocation.digest != digest {
        return Err(ApiError::conflict(request));
    }
    Ok(allocation)
}

fn take_one(node: &Node, digest: &str) -> Option<Allocation> {
    let live = node.live();
    let mut stock = node.pool.stock.lock().ok()?;
    let usable = stock
        .iter()
        .position(|(_, holders)| holders.iter().filter(|h| live.contains(h)).count() >= node.threshold)?;
    let (seq, participants) = stock.remove(usable)?;
    node.pool.allocated.fetch_add(1, Ordering::Relaxed);
    let mut entropy = [0u8; 32];
    OsRng.fill_bytes(&mut entropy);
    Some(Allocation {
        pool: node.me,
        seq,
        participants,
        entropy: hex::encode(entropy),
        digest: digest.to_string(),
    })
}
