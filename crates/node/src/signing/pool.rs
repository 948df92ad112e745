//! Presignature pool and allocator: stock per signing set, durable allocations.
//!
//! The lowest live node owns the pool. It orders presignatures (two cait-sith triples and a presign
//! run), each among exactly `t` nodes — the presignature's **signing set** (DESIGN §4) — and is the
//! only one that hands them out. Sets are chosen among live, ready nodes that have not stalled a
//! recent run, rotating over them so every node does about `t/n` of the work; a waiting request
//! that excludes some nodes gets a set without them made next.
//!
//! Each presignature is identified by `(pool, seq)`: `pool` names the owner, `seq` comes from a
//! durable counter, so a slot number is never reused. Every holder keeps its share in its own store
//! and takes it (durably marking it used) before it releases a signature share — and releases only
//! for an allocation that names exactly the presignature's holders and comes from the pool's owner.
//! Even a malicious allocator therefore gets at most one share per presignature from each honest
//! holder, and `t − 1` colluders stay one equation short of the key.
//!
//! The owner's side is durable as well: stocked slots live in its store (`pool_slots`), and a slot
//! leaves the pool durably (a lease, made ahead of requests in batches) before it is handed out; a
//! restarted allocator discards its leases and reloads only slots it never leased, so it never
//! binds a slot twice. Each allocation is recorded within a second of its answer, so a request asked
//! again gets the same allocation, with the same entropy. Allocate calls carry their time and are refused outside a
//! replay window shorter than the records' lifetime, so a replayed call never spends a presignature.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sigil_primitives::SigningScheme;
use sigil_tss::ecdsa::{presigning, triple_generation};
use sigil_tss::schnorr::Preprocessing;
use sigil_tss::{PartyId, SessionId};
use tokio::sync::Semaphore;

use super::stock::{request_id, Solo};
pub use super::stock::{AllocateError, ALLOCATE_WINDOW_SECS};
use crate::epoch::Epoch;
use crate::mesh::session::SessionError;
use crate::mesh::wire::{Allocation, Message, Start};
use crate::node::{unix_now, Fault, Node};
use crate::store::{PresignatureId, StoreError, SCHNORR_SLOTS};

const TRIPLE_DEADLINE: Duration = Duration::from_secs(60);
const PRESIGN_DEADLINE: Duration = Duration::from_secs(30);
/// A triple run in which some participant sent nothing at all by then is abandoned.
const SILENCE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a sign request waits for a presignature when the stock is empty.
pub const ALLOCATION_WAIT: Duration = Duration::from_secs(25);
/// How long concurrent asks for one request share one in-memory answer (a later ask finds the
/// stored record): longer than an ask can take ([`QUORUM_WAIT`] and [`ALLOCATION_WAIT`]). With
/// [`MAX_ALLOCATIONS`], it bounds the allocator's sustained rate at about 1 000 a second.
const ALLOCATION_MEMORY: Duration = Duration::from_secs(60);
/// How long the allocator waits for `t` nodes to ask for one request before it refuses it
/// (`UNCONFIRMED`). The signers of an action may reach its `sign` call seconds apart.
pub const QUORUM_WAIT: Duration = Duration::from_secs(10);
/// Most allocations kept in memory at once (about 300 bytes each): past it asks get `BUSY`,
/// and the table stays bounded however fast they come.
const MAX_ALLOCATIONS: usize = 65_536;
/// How long allocation records are kept (much longer than the replay window).
const ALLOCATION_RECORD_SECS: u64 = 3600;
/// Presignature runs this node joins at once on one owner's orders.
const MAX_MEMBER_RUNS_PER_OWNER: usize = 8;
/// How long the owner waits, after its own part, for every holder to confirm it stored its share.
const STORED_WAIT: Duration = Duration::from_secs(10);

/// Most exclusion lists of waiting requests remembered for the generator.
const MAX_DEMAND: usize = 16;
/// Usable slots kept leased (durably out of the pool) ahead of requests, so an allocation is
/// answered without waiting for a commit.
const LEASE_AHEAD: usize = 32;
/// Allocation records waiting to be written, at most (more are dropped: they are a convenience).
const MAX_PENDING_RECORDS: usize = 65_536;
/// How long a Schnorr nonce run (commit, exchange, confirm: two rounds) may take.
const SCHNORR_DEADLINE: Duration = Duration::from_secs(15);
/// Schnorr nonce runs ordered at once (each is two message rounds and no heavy work).
const SCHNORR_PARALLEL: usize = 8;

/// Runs of `scheme` this node joins at once on one owner's orders. For Schnorr, twice what an
/// owner orders at once: when a member dies, the owner abandons its runs at once, while the
/// others' copies of them wait out their deadline, and the runs ordered meanwhile (sets without
/// the dead node) must still find room.
fn member_runs(scheme: SigningScheme) -> usize {
    match scheme {
        SigningScheme::EcdsaK256Sha256 => MAX_MEMBER_RUNS_PER_OWNER,
        SigningScheme::SchnorrK256Taproot => 2 * SCHNORR_PARALLEL,
    }
}

/// The scheme whose material slot `seq` holds (slot numbers from [`SCHNORR_SLOTS`] up are
/// Schnorr nonces).
pub fn scheme_of(seq: u64) -> SigningScheme {
    if seq >= SCHNORR_SLOTS {
        SigningScheme::SchnorrK256Taproot
    } else {
        SigningScheme::EcdsaK256Sha256
    }
}

/// The storage pool id of `owner`'s presignatures in this network.
pub fn pool_id(node: &Node, owner: u32) -> [u8; 32] {
    pool_id_in(&node.epoch(), owner)
}

/// The storage pool id of `owner`'s presignatures in `epoch`.
pub fn pool_id_in(epoch: &Epoch, owner: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sigil-pool/v2");
    h.update(epoch.fingerprint);
    h.update(epoch.number.to_be_bytes());
    h.update(owner.to_be_bytes());
    h.finalize().into()
}

/// The slot counter of `owner`'s pool in `epoch`, and the counter it continues: that of the pool
/// id of data files from before pools named their epoch (`sigil-pool/v1`), so a slot number an
/// allocation record from before still names is never handed out again.
fn slot_counters(epoch: &Epoch, owner: u32) -> (String, String) {
    let mut h = Sha256::new();
    h.update(b"sigil-pool/v1");
    h.update(epoch.fingerprint);
    h.update(owner.to_be_bytes());
    let legacy: [u8; 32] = h.finalize().into();
    (
        format!("presign-seq/{}", hex::encode(pool_id_in(epoch, owner))),
        format!("presign-seq/{}", hex::encode(legacy)),
    )
}

fn session_id(epoch: &Epoch, owner: u32, seq: u64, label: &str) -> SessionId {
    let mut h = Sha256::new();
    h.update(b"sigil-presign/v2");
    h.update(label.as_bytes());
    h.update(pool_id_in(epoch, owner));
    h.update(seq.to_be_bytes());
    SessionId(h.finalize().into())
}

/// Nodes a new signing set may use: live, ready, and not sitting out a stall penalty.
fn eligible(node: &Node) -> Vec<u32> {
    let epoch = node.epoch();
    let penalized = epoch.pool.penalized();
    node.ready().into_iter().filter(|id| !penalized.contains(id)).collect()
}

/// The next signing set for `scheme`'s material: `t` of `eligible`, avoiding the nodes a waiting
/// request of that scheme excludes if it can, rotating otherwise.
fn choose_set(node: &Node, eligible: &[u32], scheme: SigningScheme) -> Option<Vec<u32>> {
    let epoch = node.epoch();
    let t = epoch.threshold;
    let wanted = epoch.pool.demand.lock().ok().and_then(|mut d| {
        let at = d.iter().position(|(s, _)| *s == scheme)?;
        d.remove(at).map(|(_, exclude)| exclude)
    });
    let candidates: Vec<u32> = match &wanted {
        Some(exclude) if eligible.iter().filter(|id| !exclude.contains(id)).count() >= t => {
            eligible.iter().copied().filter(|id| !exclude.contains(id)).collect()
        }
        _ => eligible.to_vec(),
    };
    if candidates.len() < t {
        return None;
    }
    let start = epoch.pool.rotation.fetch_add(1, Ordering::Relaxed);
    let mut set: Vec<u32> = (0..t)
        .filter_map(|i| candidates.get((start + i) % candidates.len()).copied())
        .collect();
    set.sort_unstable();
    Some(set)
}

fn usable(node: &Node, holders: &[u32], live: &[u32], exclude: &[u32]) -> bool {
    holders.len() == node.epoch().threshold && holders.iter().all(|h| live.contains(h) && !exclude.contains(h))
}

/// The next slot number of `owner`'s pool in `epoch` for `scheme`'s material (durable: never
/// handed out twice).
fn next_seq(node: &Node, epoch: &Epoch, scheme: SigningScheme) -> Result<u64, StoreError> {
    let (name, legacy) = slot_counters(epoch, node.me);
    match scheme {
        SigningScheme::EcdsaK256Sha256 => node.store.next_continuing(&name, &legacy),
        SigningScheme::SchnorrK256Taproot => {
            // Under `presign-seq/` too, so a rolled-back store raises it with the others.
            let name = format!("presign-seq/schnorr/{}", hex::encode(pool_id_in(epoch, node.me)));
            node.store.next(&name).map(|n| SCHNORR_SLOTS | n)
        }
    }
}

/// Reloads this node's own stock, then keeps the pool filled while this node is the allocator.
pub async fn run(node: Arc<Node>) {
    let epoch = node.epoch();
    let own = pool_id(&node, node.me);
    let store = Arc::clone(&node.store);
    // Slots leased before a restart may have been handed out: never hand them out again.
    match tokio::task::spawn_blocking(move || store.discard_leases()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(count)) => tracing::info!(count, "leased presignature slots discarded after a restart"),
        _ => tracing::error!("cannot discard leased presignature slots"),
    }
    let store = Arc::clone(&node.store);
    match tokio::task::spawn_blocking(move || store.slots(&own)).await {
        Ok(Ok(slots)) => {
            let t = epoch.threshold;
            let (good, odd): (Vec<_>, Vec<_>) = slots.into_iter().partition(|(_, h)| h.len() == t);
            if !odd.is_empty() {
                tracing::warn!(
                    count = odd.len(),
                    "dropping pool slots whose set is not exactly t nodes"
                );
                let ids: Vec<PresignatureId> = odd
                    .iter()
                    .map(|(seq, _)| PresignatureId { pool: own, seq: *seq })
                    .collect();
                let store = Arc::clone(&node.store);
                let _ = tokio::task::spawn_blocking(move || store.remove_slots(&ids)).await;
            }
            if !good.is_empty() {
                tracing::info!(count = good.len(), "presignature slots reloaded from storage");
            }
            if let Ok(mut stock) = epoch.pool.stock.lock() {
                stock.extend(good);
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot reload presignature slots"),
        Err(e) => tracing::error!(error = %e, "cannot reload presignature slots"),
    }
    let config = &node.settings.config;
    let targets = [
        (
            SigningScheme::EcdsaK256Sha256,
            config.presign_stock,
            config.presign_parallel,
            config.presign_refill_below,
        ),
        (
            SigningScheme::SchnorrK256Taproot,
            config.schnorr_stock,
            SCHNORR_PARALLEL,
            config.presign_refill_below,
        ),
    ];
    // Slots of sets with a node down are kept for when it returns, up to this many in all.
    let total: usize = targets.iter().map(|(_, target, _, _)| *target).sum();
    let cap = total.saturating_mul(2).max(total + 1);
    let mut filling = [false; 2];
    let mut running: Vec<(tokio::task::JoinHandle<()>, Vec<u32>)> = Vec::new();
    let mut last_prune = Instant::now();
    let mut last_records = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if !Arc::ptr_eq(&node.epoch(), &epoch) {
            // The node switched epochs: this pool's presignatures were discarded with its shares.
            tracing::info!(epoch = epoch.number, "presignature pool of the previous epoch stopped");
            return;
        }
        if last_records.elapsed() > Duration::from_secs(1) {
            last_records = Instant::now();
            write_records(&node).await;
        }
        if last_prune.elapsed() > Duration::from_secs(60) {
            last_prune = Instant::now();
            let store = Arc::clone(&node.store);
            let before = unix_now().saturating_sub(ALLOCATION_RECORD_SECS);
            let _ = tokio::task::spawn_blocking(move || store.prune_allocations(before)).await;
        }
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
        let eligible = eligible(&node);
        if eligible.len() < epoch.threshold {
            continue;
        }
        lease_ahead(&node, &live).await;
        for (filling, (scheme, target, parallel, refill_below)) in filling.iter_mut().zip(targets) {
            let refill_below = refill_below.unwrap_or(target).min(target);
            let usable_stock = |node: &Node| {
                node.epoch()
                    .pool
                    .stock
                    .lock()
                    .map(|s| {
                        s.iter()
                            .filter(|(seq, h)| scheme_of(*seq) == scheme && usable(node, h, &live, &[]))
                            .count()
                    })
                    .unwrap_or(0)
            };
            let in_flight = || epoch.pool.in_flight(scheme).load(Ordering::Relaxed);
            // A request waiting for a set without some nodes gets one made even when the stock
            // is full (of sets with them).
            let waiting = || {
                epoch
                    .pool
                    .demand
                    .lock()
                    .map(|d| d.iter().any(|(s, _)| *s == scheme))
                    .unwrap_or(false)
            };
            let have = usable_stock(&node) + in_flight();
            *filling = (*filling || have < refill_below) && have < target;
            // Never past `cap` in all, however many exclusions wait.
            let room = |node: &Node| node.epoch().pool.stock() + node.epoch().pool.schnorr_stock() + in_flight() < cap;
            while (waiting() && room(&node) || *filling && usable_stock(&node) + in_flight() < target)
                && in_flight() < parallel
            {
                evict_stranded(&node, &live, cap).await;
                let Some(set) = choose_set(&node, &eligible, scheme) else {
                    break;
                };
                let (owner, for_epoch) = (Arc::clone(&node), Arc::clone(&epoch));
                let seq = match tokio::task::spawn_blocking(move || next_seq(&owner, &for_epoch, scheme)).await {
                    Ok(Ok(seq)) => seq,
                    _ => {
                        tracing::error!(scheme = scheme.name(), "cannot advance the slot counter");
                        break;
                    }
                };
                let guard = InFlight::new(&node, scheme);
                let handle = tokio::spawn(order(
                    Arc::clone(&node),
                    Start {
                        seq,
                        participants: set.clone(),
                    },
                    guard,
                ));
                running.push((handle, set));
            }
        }
    }
}

/// Writes the allocations answered since the last call, in one commit that does not wait for an
/// fsync: a record only lets a request asked again after a restart get the same answer (the lease
/// already made the slot's removal durable), so it stays off the request's path.
async fn write_records(node: &Arc<Node>) {
    let pending = node
        .epoch()
        .pool
        .records
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    if pending.is_empty() {
        return;
    }
    let store = Arc::clone(&node.store);
    if let Ok(answers) = tokio::task::spawn_blocking(move || store.allocate_many(&pending)).await {
        if let Some(Err(e)) = answers.into_iter().find(Result::is_err) {
            tracing::warn!(error = %e, "cannot record allocations");
        }
    }
}

/// Keeps [`LEASE_AHEAD`] usable slots of each scheme leased.
async fn lease_ahead(node: &Arc<Node>, live: &[u32]) {
    let epoch = node.epoch();
    let wanted: Vec<u64> = {
        let (Ok(stock), Ok(leased)) = (epoch.pool.stock.lock(), epoch.pool.leased.lock()) else {
            return;
        };
        let mut wanted = Vec::new();
        for scheme in SigningScheme::ALL {
            let usable: Vec<u64> = stock
                .iter()
                .filter(|(seq, h)| scheme_of(*seq) == scheme && usable(node, h, live, &[]))
                .map(|(seq, _)| *seq)
                .collect();
            let have = usable.iter().filter(|seq| leased.contains(seq)).count();
            wanted.extend(
                usable
                    .into_iter()
                    .filter(|seq| !leased.contains(seq))
                    .take(LEASE_AHEAD.saturating_sub(have)),
            );
        }
        wanted
    };
    if wanted.is_empty() {
        return;
    }
    let _gate = epoch.pool.lease_gate.lock().await;
    // Slots handed out meanwhile are no longer in the stock: lease only those still there.
    let wanted: Vec<u64> = match epoch.pool.stock.lock() {
        Ok(stock) => wanted
            .into_iter()
            .filter(|seq| stock.iter().any(|(s, _)| s == seq))
            .collect(),
        Err(_) => return,
    };
    lease(node, &wanted).await;
}

/// Leases `seqs` of this node's pool durably; returns those now leased.
async fn lease(node: &Arc<Node>, seqs: &[u64]) -> Vec<u64> {
    let epoch = node.epoch();
    let own = pool_id(node, node.me);
    let ids: Vec<PresignatureId> = seqs.iter().map(|seq| PresignatureId { pool: own, seq: *seq }).collect();
    let store = Arc::clone(&node.store);
    let moved: Vec<u64> = match tokio::task::spawn_blocking(move || store.lease(&ids)).await {
        Ok(Ok(moved)) => moved.iter().map(|id| id.seq).collect(),
        _ => {
            tracing::error!("cannot lease presignature slots");
            return Vec::new();
        }
    };
    if let Ok(mut leased) = epoch.pool.leased.lock() {
        leased.extend(moved.iter().copied());
    }
    moved
}

/// Drops the oldest slots of sets with a node down when the stock is at `cap`.
async fn evict_stranded(node: &Arc<Node>, live: &[u32], cap: usize) {
    let epoch = node.epoch();
    let evicted: Vec<u64> = {
        let Ok(mut stock) = epoch.pool.stock.lock() else { return };
        let mut out = Vec::new();
        while stock.len() >= cap {
            let Some(pos) = stock.iter().position(|(_, h)| !usable(node, h, live, &[])) else {
                break;
            };
            if let Some((seq, _)) = stock.remove(pos) {
                out.push(seq);
            }
        }
        out
    };
    if evicted.is_empty() {
        return;
    }
    tracing::info!(
        count = evicted.len(),
        "dropped presignature slots of sets with a node down"
    );
    let own = pool_id(node, node.me);
    let ids: Vec<PresignatureId> = evicted
        .iter()
        .map(|seq| PresignatureId { pool: own, seq: *seq })
        .collect();
    let store = Arc::clone(&node.store);
    let _ = tokio::task::spawn_blocking(move || store.remove_slots(&ids)).await;
}

/// Orders one presignature among `start.participants`, takes part if this node is one of them, and
/// stocks the slot once every holder confirmed it stored its share.
async fn order(node: Arc<Node>, start: Start, _guard: InFlight) {
    let epoch = node.epoch();
    if let Ok(mut ordered) = epoch.pool.ordered.lock() {
        ordered.insert(start.seq, start.participants.clone());
    }
    for peer in start.participants.iter().filter(|p| **p != node.me) {
        node.net.send(*peer, Message::Start(start.clone()).encode());
    }
    let seq = start.seq;
    let wait = if start.participants.contains(&node.me) {
        match make(&node, &epoch, node.me, &start).await {
            Ok(()) => STORED_WAIT,
            Err(e) => {
                tracing::warn!(seq, error = %e, "presignature failed");
                report_silent(&node, &e);
                forget_confirmations(&node, seq);
                return;
            }
        }
    } else {
        TRIPLE_DEADLINE + PRESIGN_DEADLINE + STORED_WAIT
    };
    let holders = confirmed_holders(&node, &start, wait).await;
    forget_confirmations(&node, seq);
    if holders != start.participants {
        tracing::warn!(seq, set = ?start.participants, confirmed = ?holders, "not every holder stored the presignature; not used");
        return;
    }
    let id = PresignatureId {
        pool: pool_id_in(&epoch, node.me),
        seq,
    };
    let _writing = node.key_writes.lock().await;
    if !Arc::ptr_eq(&node.epoch(), &epoch) || node.left().is_some() {
        return;
    }
    let store = Arc::clone(&node.store);
    let participants = start.participants.clone();
    match tokio::task::spawn_blocking(move || store.add_slot(id, &participants)).await {
        Ok(Ok(())) => {
            epoch.pool.absolve(&start.participants);
            if let Ok(mut stock) = epoch.pool.stock.lock() {
                stock.push_back((seq, start.participants));
            }
            epoch.pool.added.notify_waiters();
        }
        _ => tracing::error!(seq, "cannot record the presignature slot; not used"),
    }
}

fn forget_confirmations(node: &Node, seq: u64) {
    let epoch = node.epoch();
    if let Ok(mut confirmed) = epoch.pool.confirmed.lock() {
        confirmed.remove(&seq);
    }
    if let Ok(mut ordered) = epoch.pool.ordered.lock() {
        ordered.remove(&seq);
    }
    if let Ok(mut reports) = epoch.pool.reports.lock() {
        reports.retain(|(s, _), _| *s != seq);
    };
}

/// The signing set of run `seq` if this node ordered it and `from` is in it.
fn run_member(node: &Node, seq: u64, from: u32) -> Option<Vec<u32>> {
    let epoch = node.epoch();
    let ordered = epoch.pool.ordered.lock().ok()?;
    ordered.get(&seq).filter(|set| set.contains(&from)).cloned()
}

/// Penalises the participants a failed run never heard from.
fn report_silent(node: &Node, error: &MakeError) {
    for silent in error.silent() {
        if silent != node.me {
            tracing::warn!(
                node = silent,
                "node stalled a presignature run; left out of new signing sets for a while"
            );
            node.epoch().pool.penalize(silent);
        }
    }
}

/// Counts a presignature run in flight for as long as it lives (also when it is aborted).
/// A run counted in flight in the pool of the epoch it was ordered in, until it ends.
struct InFlight(Arc<Epoch>, SigningScheme);

impl InFlight {
    fn new(node: &Node, scheme: SigningScheme) -> Self {
        let epoch = node.epoch();
        epoch.pool.in_flight(scheme).fetch_add(1, Ordering::Relaxed);
        Self(epoch, scheme)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.pool.in_flight(self.1).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits (at most `wait`) until every participant confirmed it stored its share; returns those
/// that did, this node included when it is one.
async fn confirmed_holders(node: &Node, start: &Start, wait: Duration) -> Vec<u32> {
    let until = Instant::now() + wait;
    loop {
        let confirmed = node
            .epoch()
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
        let reported = node
            .epoch()
            .pool
            .reports
            .lock()
            .map(|r| r.keys().any(|(seq, _)| *seq == start.seq))
            .unwrap_or(false);
        // A member that reported the run failed will never confirm: stop waiting.
        if holders.len() == start.participants.len() || reported || Instant::now() >= until {
            return holders;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Records that `from` stored its share of presignature `seq` of this node's pool (only for a run
/// this node ordered, from one of its members).
pub fn stored(node: &Node, from: u32, seq: u64) {
    let epoch = node.epoch();
    if run_member(node, seq, from).is_none() {
        tracing::debug!(peer = from, seq, "stored notice for a run it is not in; ignored");
        return;
    }
    if let Ok(mut confirmed) = epoch.pool.confirmed.lock() {
        let holders = confirmed.entry(seq).or_default();
        if !holders.contains(&from) {
            holders.push(from);
        }
    };
}

/// `from` will never use its shares of these slots of this node's pool: they leave the stock and
/// the store (only slots `from` holds, so no node can drop another's). Returns how many were
/// dropped. Works before the pool is loaded too (then only the store has them).
pub async fn discarded(node: &Arc<Node>, from: u32, seqs: &[u64]) -> usize {
    let epoch = node.epoch();
    let seqs: std::collections::HashSet<u64> = seqs.iter().copied().collect();
    let mut dropped: Vec<u64> = {
        let (Ok(mut stock), Ok(mut leased)) = (epoch.pool.stock.lock(), epoch.pool.leased.lock()) else {
            return 0;
        };
        let mut dropped = Vec::new();
        stock.retain(|(seq, holders)| {
            let drop = seqs.contains(seq) && holders.contains(&from);
            if drop {
                dropped.push(*seq);
            }
            !drop
        });
        for seq in &dropped {
            leased.remove(seq);
        }
        dropped
    };
    let own = pool_id(node, node.me);
    let store = Arc::clone(&node.store);
    let stored = tokio::task::spawn_blocking(move || store.slots(&own)).await;
    if let Ok(Ok(slots)) = stored {
        dropped.extend(
            slots
                .into_iter()
                .filter(|(seq, holders)| seqs.contains(seq) && holders.contains(&from))
                .map(|(seq, _)| seq),
        );
    }
    dropped.sort_unstable();
    dropped.dedup();
    if dropped.is_empty() {
        return 0;
    }
    tracing::info!(
        peer = from,
        count = dropped.len(),
        "a holder discarded presignature slots; dropped from the pool"
    );
    let ids: Vec<PresignatureId> = dropped
        .iter()
        .map(|seq| PresignatureId { pool: own, seq: *seq })
        .collect();
    let store = Arc::clone(&node.store);
    let _ = tokio::task::spawn_blocking(move || store.remove_slots(&ids)).await;
    dropped.len()
}

/// Adds slots this node will never use to those it reports to their pools' owners (bounded).
pub fn queue_discards(node: &Node, ids: &[PresignatureId]) {
    let epoch = node.epoch();
    if let Ok(mut pending) = epoch.pool.discards.lock() {
        for id in ids {
            if !pending.contains(id) && pending.len() < crate::mesh::wire::MAX_DISCARDED * 4 {
                pending.push(*id);
            }
        }
    };
}

/// [`queue_discards`], then reports what is pending in the background.
pub fn report_discarded(node: &Arc<Node>, ids: &[PresignatureId]) {
    queue_discards(node, ids);
    send_discards_in_background(node);
}

/// Runs [`send_discards`] on its own task, one at a time, so no request or sweep waits for an
/// owner that is down.
pub fn send_discards_in_background(node: &Arc<Node>) {
    let epoch = node.epoch();
    let empty = epoch.pool.discards.lock().map(|p| p.is_empty()).unwrap_or(true);
    if empty || epoch.pool.discarding.swap(true, Ordering::AcqRel) {
        return;
    }
    let node = Arc::clone(node);
    tokio::spawn(async move {
        send_discards(&node).await;
        epoch.pool.discarding.store(false, Ordering::Release);
    });
}

/// Tells each owner of a pending discarded slot to drop it; a slot leaves the list (and the
/// store's reserved list) once its owner answered. Called again by the sweep until all are told.
pub async fn send_discards(node: &Arc<Node>) {
    let epoch = node.epoch();
    let pending: Vec<PresignatureId> = epoch.pool.discards.lock().map(|p| p.clone()).unwrap_or_default();
    if pending.is_empty() {
        return;
    }
    let mut told = Vec::new();
    for (owner, _, _) in &epoch.peers {
        let pool = pool_id(node, *owner);
        let mine: Vec<PresignatureId> = pending.iter().filter(|id| id.pool == pool).copied().collect();
        for chunk in mine.chunks(crate::mesh::wire::MAX_DISCARDED) {
            let seqs: Vec<u64> = chunk.iter().map(|id| id.seq).collect();
            let answered = if *owner == node.me {
                discarded(node, node.me, &seqs).await;
                true
            } else {
                let call = serde_json::to_vec(&crate::mesh::wire::Call::Discard { seqs }).unwrap_or_default();
                let reply = node.net.call(*owner, &call, Duration::from_secs(2)).await;
                matches!(
                    reply.as_deref().map(serde_json::from_slice::<crate::mesh::wire::Reply>),
                    Ok(Ok(crate::mesh::wire::Reply::Dropped { .. }))
                )
            };
            if answered {
                told.extend_from_slice(chunk);
            }
        }
    }
    // Slots of pools whose owner is not a node any more are dropped from the list too.
    let owners: Vec<[u8; 32]> = node
        .settings
        .peers
        .iter()
        .map(|(id, _, _)| pool_id(node, *id))
        .collect();
    told.extend(pending.iter().filter(|id| !owners.contains(&id.pool)).copied());
    if told.is_empty() {
        return;
    }
    if let Ok(mut pending) = epoch.pool.discards.lock() {
        pending.retain(|id| !told.contains(id));
    }
    let store = Arc::clone(&node.store);
    let _ = tokio::task::spawn_blocking(move || store.forget_reserved(&told)).await;
}

/// A member of run `seq` of this node's pool reports the members it never heard from. A node is
/// left out of new sets once two members of a run report it (one, in a set of two): a single
/// malicious member cannot bench honest ones.
pub fn failed(node: &Node, from: u32, seq: u64, silent: &[u32]) {
    let epoch = node.epoch();
    let Some(set) = run_member(node, seq, from) else {
        tracing::debug!(peer = from, seq, "failure notice for a run it is not in; ignored");
        return;
    };
    tracing::warn!(peer = from, seq, silent = ?silent, "a participant reports a stalled presignature run");
    let needed = if set.len() >= 3 { 2 } else { 1 };
    for id in silent
        .iter()
        .filter(|id| set.contains(id) && **id != node.me && **id != from)
    {
        let reporters = {
            let Ok(mut reports) = epoch.pool.reports.lock() else {
                return;
            };
            let reporters = reports.entry((seq, *id)).or_default();
            if !reporters.contains(&from) {
                reporters.push(from);
            }
            reporters.len()
        };
        if reporters == needed {
            tracing::warn!(
                node = id,
                "node stalled a presignature run; left out of new signing sets for a while"
            );
            epoch.pool.penalize(*id);
        }
    }
}

/// Joins presignature `start.seq` of `owner`'s pool, on the owner's order.
pub fn join(node: &Arc<Node>, owner: u32, start: Start) -> Result<(), String> {
    let epoch = node.epoch();
    if !epoch.contains(owner) {
        return Err(format!(
            "node {owner} is not a node of epoch {}; order ignored",
            epoch.number
        ));
    }
    let mut sorted = start.participants.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted != start.participants
        || !sorted.contains(&node.me)
        || sorted.len() != epoch.threshold
        || sorted.iter().any(|p| !epoch.contains(*p))
    {
        return Err(format!(
            "bad signing set from node {owner}: {:?} (exactly {} distinct nodes, this one among them)",
            start.participants, epoch.threshold
        ));
    }
    if node.live().iter().any(|p| *p < owner) {
        return Err(format!(
            "node {owner} is not the allocator (a lower node is live); order ignored"
        ));
    }
    if node.has_fault(Fault::SilentPresigner) {
        return Ok(());
    }
    let permit = {
        let mut runs = epoch
            .pool
            .member_runs
            .lock()
            .map_err(|_| "pool lock poisoned".to_string())?;
        let slots = runs
            .entry((owner, scheme_of(start.seq)))
            .or_insert_with(|| Arc::new(Semaphore::new(member_runs(scheme_of(start.seq)))));
        Arc::clone(slots).try_acquire_owned().map_err(|_| {
            format!(
                "node {owner} already has {} runs of this kind here; order ignored",
                member_runs(scheme_of(start.seq))
            )
        })?
    };
    let node = Arc::clone(node);
    tokio::spawn(async move {
        let id = PresignatureId {
            pool: pool_id_in(&epoch, owner),
            seq: start.seq,
        };
        let store = Arc::clone(&node.store);
        // A replayed order for a slot this node already filled (or used) is not run again.
        match tokio::task::spawn_blocking(move || store.knows_slot(id)).await {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => {
                tracing::warn!(
                    owner,
                    seq = start.seq,
                    "order for a slot already filled or used; ignored"
                );
                return;
            }
            _ => return,
        }
        match make(&node, &epoch, owner, &start).await {
            Ok(()) => node.net.send(owner, Message::Stored(start.seq).encode()),
            Err(e) => {
                tracing::warn!(owner, seq = start.seq, error = %e, "presignature failed");
                let silent = e.silent();
                node.net
                    .send(owner, Message::Failed { seq: start.seq, silent }.encode());
            }
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
    #[error("the node switched epochs (or left) during the run; the presignature is not stored")]
    EpochChanged,
}

impl MakeError {
    fn silent(&self) -> Vec<u32> {
        match self {
            Self::Session(SessionError::Timeout { silent, .. }) => silent.clone(),
            _ => Vec::new(),
        }
    }
}

/// Two triples, then the presignature, then storage: this node's part of one presignature.
/// Everything is of `epoch` (the one the order came in): its shares, threshold and pool. A run
/// that ends after the node switched epochs stores nothing (its presignature would outlive its
/// epoch's shares).
async fn make(node: &Arc<Node>, epoch: &Arc<Epoch>, owner: u32, start: &Start) -> Result<(), MakeError> {
    if scheme_of(start.seq) == SigningScheme::SchnorrK256Taproot {
        return make_schnorr(node, epoch, owner, start).await;
    }
    let keys = epoch.keys().ok_or(MakeError::NotReady)?;
    let parties: Vec<PartyId> = start.participants.iter().map(|p| PartyId(*p)).collect();
    let me = PartyId(node.me);
    let t = epoch.threshold;
    let t0 = triple_generation(session_id(epoch, owner, start.seq, "triple0"), me, &parties, t)?;
    let t1 = triple_generation(session_id(epoch, owner, start.seq, "triple1"), me, &parties, t)?;
    let (t0, t1) = tokio::join!(
        node.sessions
            .run_within(&node.net, t0, parties.clone(), TRIPLE_DEADLINE, SILENCE_DEADLINE),
        node.sessions
            .run_within(&node.net, t1, parties.clone(), TRIPLE_DEADLINE, SILENCE_DEADLINE),
    );
    let run = presigning(
        session_id(epoch, owner, start.seq, "presign"),
        &keys.ecdsa,
        &parties,
        t0?,
        t1?,
    )?;
    let presignature = node.sessions.run(&node.net, run, parties, PRESIGN_DEADLINE).await?;
    store_made(node, epoch, owner, start.seq, move |store, id| {
        store.put_presignature(id, &presignature)
    })
    .await?;
    epoch.pool.record_made();
    Ok(())
}

/// Stores this node's share of slot `seq` of `owner`'s pool with `put` — not while the node
/// switches epochs (which discards all one-time material), nor after it switched or left.
async fn store_made(
    node: &Arc<Node>,
    epoch: &Arc<Epoch>,
    owner: u32,
    seq: u64,
    put: impl FnOnce(&crate::store::Store, PresignatureId) -> Result<(), StoreError> + Send + 'static,
) -> Result<(), MakeError> {
    let id = PresignatureId {
        pool: pool_id_in(epoch, owner),
        seq,
    };
    let _writing = node.key_writes.lock().await;
    if !Arc::ptr_eq(&node.epoch(), epoch) || node.left().is_some() {
        return Err(MakeError::EpochChanged);
    }
    let store = Arc::clone(&node.store);
    tokio::task::spawn_blocking(move || put(&store, id))
        .await
        .map_err(|_| MakeError::Join)??;
    Ok(())
}

/// One Schnorr nonce run (FROST preprocessing: commit, exchange, confirm), then storage: this
/// node's nonces with the signing set's agreed commitments, under the same rules as
/// [`make`]'s presignature.
async fn make_schnorr(node: &Arc<Node>, epoch: &Arc<Epoch>, owner: u32, start: &Start) -> Result<(), MakeError> {
    let keys = epoch.keys().ok_or(MakeError::NotReady)?;
    let parties: Vec<PartyId> = start.participants.iter().map(|p| PartyId(*p)).collect();
    let run = Preprocessing::new(session_id(epoch, owner, start.seq, "schnorr"), &keys.ecdsa, &parties)?;
    let material = node
        .sessions
        .run_within(&node.net, run, parties, SCHNORR_DEADLINE, SILENCE_DEADLINE)
        .await?;
    store_made(node, epoch, owner, start.seq, move |store, id| {
        store.put_schnorr(id, &material)
    })
    .await?;
    epoch.pool.record_made_schnorr();
    Ok(())
}

/// What an allocation call asks for.
pub struct AllocateCall<'a> {
    /// The node asking (authenticated by the mesh; this node's own id for its own ask).
    pub from: u32,
    /// The client's request id (16 bytes hex).
    pub request: &'a str,
    /// `sha256(keyId | hash)` hex.
    pub digest: &'a str,
    /// Nodes to leave out of the signing set.
    pub exclude: &'a [u32],
    /// When the asking node made the call (unix seconds).
    pub at: u64,
    /// The scheme whose material the request needs.
    pub scheme: SigningScheme,
}

/// Allocates a presignature of this node's pool to sign `call.digest` for request `call.request`.
///
/// Every signer asks, so a request that `t` distinct nodes never ask for signs nothing. A node's
/// ask that opens an allocation is answered at once while the node has *solo* tokens
/// (`limits.solo_allocations`, refilled at `limits.solo_allocations_per_min`; a token comes back
/// when `t` nodes have asked), and otherwise once `t` nodes have asked, within [`QUORUM_WAIT`]
/// (`UNCONFIRMED` after it). So a member asking for requests nobody made spends at most its
/// tokens, while honest asks, joined within milliseconds, keep theirs. One node holds at most
/// `limits.open_asks_per_node` asks nobody joined: a newer one pushes its oldest out (its
/// waiting calls get `UNCONFIRMED` at once), so its waiting calls stay few and an honest
/// request it opens is never refused for them.
///
/// Every caller asking for the same request, digest and exclusions gets the same allocation (also
/// across restarts). An allocation is keyed by all three, so a caller asking first with another
/// digest (a malicious peer squatting a request id every node derives the same way, such as a
/// claim's or an attestation's) or other exclusions opens an allocation of its own and takes
/// nothing from the others.
pub async fn allocate(node: &Arc<Node>, call: AllocateCall<'_>) -> Result<Allocation, AllocateError> {
    let epoch = node.epoch();
    let skew = unix_now().abs_diff(call.at);
    if skew > ALLOCATE_WINDOW_SECS {
        return Err(AllocateError::Stale { at: call.at, skew });
    }
    // At most n − t of the epoch's node ids can be left out, or no set remains.
    let n = epoch.peers.len();
    let t = epoch.threshold;
    if !epoch.contains(call.from) {
        return Err(AllocateError::Conflict(call.request.to_string()));
    }
    let mut exclude: Vec<u32> = call.exclude.iter().copied().filter(|id| epoch.contains(*id)).collect();
    exclude.sort_unstable();
    exclude.dedup();
    exclude.truncate(n.saturating_sub(t));
    let request_bytes: [u8; 16] = hex::decode(call.request)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AllocateError::Conflict(call.request.to_string()))?;
    let key = allocation_key(&request_bytes, call.digest, &exclude, call.scheme);
    let asked = {
        let mut table = epoch
            .pool
            .allocations
            .lock()
            .map_err(|_| AllocateError::Store("allocation table poisoned".into()))?;
        table.expire(ALLOCATION_MEMORY, QUORUM_WAIT, t);
        if table.entries.len() >= MAX_ALLOCATIONS && !table.entries.contains_key(&key) {
            return Err(AllocateError::Busy(node.me));
        }
        let limits = &node.settings.config.limits;
        let solo = Solo {
            burst: limits.solo_allocations,
            per_min: limits.solo_allocations_per_min,
        };
        let (asked, pushed_out) = table.open(key, call.from, limits.open_asks_per_node, solo);
        if pushed_out {
            epoch.pool.over_share.fetch_add(1, Ordering::Relaxed);
        }
        if asked.ask(call.from, t) {
            table.close(&asked, solo);
        }
        asked
    };
    if !asked.early && !asked.quorum(t, QUORUM_WAIT).await {
        epoch.pool.unconfirmed.fetch_add(1, Ordering::Relaxed);
        return Err(AllocateError::Unconfirmed {
            allocator: node.me,
            asked: asked.askers(),
            needed: t,
            wait_secs: QUORUM_WAIT.as_secs(),
        });
    }
    let allocation = asked
        .cell
        .get_or_init(|| allocate_once(node, key, call.digest, &exclude, call.scheme))
        .await
        .clone()?;
    if allocation.digest != call.digest {
        return Err(AllocateError::Conflict(call.request.to_string()));
    }
    Ok(allocation)
}

/// The key of the allocation for `request`, `digest` and `exclude`, in memory and in the store.
fn allocation_key(request: &[u8; 16], digest: &str, exclude: &[u32], scheme: SigningScheme) -> [u8; 16] {
    let exclude: Vec<u8> = exclude.iter().flat_map(|id| id.to_be_bytes()).collect();
    match scheme {
        SigningScheme::EcdsaK256Sha256 => request_id(b"sigil-allocation/v2", &[request, digest.as_bytes(), &exclude]),
        other => request_id(
            b"sigil-allocation/v2",
            &[request, digest.as_bytes(), &exclude, other.name().as_bytes()],
        ),
    }
}

async fn allocate_once(
    node: &Arc<Node>,
    request: [u8; 16],
    digest: &str,
    exclude: &[u32],
    scheme: SigningScheme,
) -> Result<Allocation, AllocateError> {
    let epoch = node.epoch();
    let store = Arc::clone(&node.store);
    let existing = tokio::task::spawn_blocking(move || store.allocation(&request))
        .await
        .map_err(|e| AllocateError::Store(e.to_string()))?
        .map_err(|e| AllocateError::Store(e.to_string()))?;
    if let Some(record) = existing {
        return decode(&record);
    }
    let until = Instant::now() + ALLOCATION_WAIT;
    let mut asked = false;
    loop {
        let notified = epoch.pool.added.notified();
        if let Some(allocation) = take_one(node, digest, exclude, scheme) {
            if node.has_fault(Fault::DoubleBind) {
                if let Ok(mut rebind) = epoch.pool.rebind.lock() {
                    if rebind.as_ref().is_some_and(|(seq, _)| *seq == allocation.seq) {
                        *rebind = None;
                        return Ok(allocation);
                    }
                    *rebind = Some((allocation.seq, allocation.participants.clone()));
                }
            }
            let seq = allocation.seq;
            let unlease = || epoch.pool.leased.lock().map(|mut l| l.remove(&seq)).unwrap_or(false);
            // The slot leaves the pool durably before it is handed out: ahead of time (the
            // usual case), or now.
            if !unlease() {
                let _gate = epoch.pool.lease_gate.lock().await;
                if !unlease() && lease(node, &[seq]).await.is_empty() {
                    continue;
                }
                unlease();
            }
            epoch.pool.allocated.fetch_add(1, Ordering::Relaxed);
            // Recorded within a second, for a request asked again after a restart; a record lost
            // in a crash costs that request another presignature, never a second binding.
            let record = serde_json::to_vec(&allocation).map_err(|e| AllocateError::Store(e.to_string()))?;
            let id = PresignatureId {
                pool: pool_id(node, node.me),
                seq,
            };
            if let Ok(mut pending) = epoch.pool.records.lock() {
                if pending.len() < MAX_PENDING_RECORDS {
                    pending.push((request, id, record, unix_now()));
                }
            }
            return Ok(allocation);
        }
        if !asked && !exclude.is_empty() {
            asked = true;
            if let Ok(mut demand) = epoch.pool.demand.lock() {
                if demand.len() < MAX_DEMAND {
                    demand.push_back((scheme, exclude.to_vec()));
                }
            }
        }
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return Err(AllocateError::PoolEmpty(node.me));
        };
        let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
    }
}

fn decode(record: &[u8]) -> Result<Allocation, AllocateError> {
    serde_json::from_slice(record).map_err(|e| AllocateError::Store(format!("allocation record: {e}")))
}

fn take_one(node: &Node, digest: &str, exclude: &[u32], scheme: SigningScheme) -> Option<Allocation> {
    let epoch = node.epoch();
    let mut entropy = [0u8; 32];
    OsRng.fill_bytes(&mut entropy);
    if node.has_fault(Fault::DoubleBind) {
        let rebind = epoch.pool.rebind.lock().ok().and_then(|r| r.clone());
        if let Some((seq, participants)) = rebind.filter(|(seq, _)| scheme_of(*seq) == scheme) {
            return Some(Allocation {
                pool: node.me,
                seq,
                participants,
                entropy: hex::encode(entropy),
                digest: digest.to_string(),
            });
        }
    }
    let live = node.live();
    let epoch = node.epoch();
    let mut stock = epoch.pool.stock.lock().ok()?;
    let wanted = if node.has_fault(Fault::CrossSchemeBind) && scheme == SigningScheme::SchnorrK256Taproot {
        SigningScheme::EcdsaK256Sha256
    } else {
        scheme
    };
    let pos = stock
        .iter()
        .position(|(seq, holders)| scheme_of(*seq) == wanted && usable(node, holders, &live, exclude))?;
    let (seq, participants) = stock.remove(pos)?;
    Some(Allocation {
        pool: node.me,
        seq,
        participants,
        entropy: hex::encode(entropy),
        digest: digest.to_string(),
    })
}
