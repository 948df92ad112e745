//! Resharing the root keys into the epoch NodeSet's admin proposed, while the current epoch keeps
//! serving, and switching to it once NodeSet confirms it (DESIGN §9).
//!
//! 1. `follow` reads the proposal into [`Node::chain_view`]; [`watch`] looks at it every second.
//!    The current nodes pin and ping the proposed nodes that join, as NodeSet lists them.
//! 2. The *leader* — the ready nodes of the current epoch take 20 s turns, and a
//!    participant refuses runs from any other — picks the dealers (every ready node of the current
//!    epoch but those an earlier run of the proposal caught refusing, silent or cheating, while the
//!    current threshold remains) and a fresh run number, and sends [`Call::Reshare`] to every
//!    dealer and proposed node. Each checks the run against the proposal it read from NodeSet
//!    itself ([`plan`]) and runs its part: both root keys go through `Vss::reshare`, so the public
//!    keys stay and every share is new (an old share is useless beside new ones). A node without
//!    shares of the current epoch (one joining, or one whose first DKG did not finish) receives,
//!    with the current public key packages the leader sends, once they match NodeSet's record.
//! 3. A proposed node stores its new shares under names of their own, beside the current ones
//!    and beside other runs' ([`save_next_root_keys`]), and signs the confirmation
//!    `NodeSet.confirmEpoch` checks; `GET /web/epoch/confirmation` serves them ([`NextEpoch`]). A
//!    record it signed is never replaced or dropped while its proposal is pending (at most
//!    `epoch::MAX_NEXT`; then it refuses more runs); the records of a proposal go once NodeSet
//!    shows another.
//! 4. The leader asks every proposed node which records it holds ([`Call::NextKeys`]) and runs
//!    again until one record is held by all (a run can finish at some nodes only).
//! 5. Anyone sends `confirmEpoch` with every proposed node's confirmation of one record
//!    (`sigil admin epoch confirm`): all of them, so that no confirmed epoch has fewer honest
//!    holders than its threshold.
//! 6. When `follow` sees NodeSet at the new epoch, a member takes the stored record NodeSet
//!    confirmed and switches: [`switch_root_keys`] makes it current and, in the same
//!    transaction, erases every other root key share and every presignature and triple. A node
//!    the epoch leaves out erases every root key share it holds ([`erase_root_keys`]), in memory
//!    too; a member that finds no share of the confirmed record keeps its old ones and serves
//!    nothing. Saving a run's shares, storing presignatures and switching never interleave
//!    (`Node::key_writes`), and a run that ends after its proposal was settled stores nothing.
//!
//! Uses `node`, `epoch`, `liveness`, `faults`, `mesh` and `sigil_chain`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sigil_chain::registry::{ListedNode, NodeSetView, Proposal};
use sigil_chain::vouch::{confirmation_digest, sign_digest};
use sigil_mesh::NodeKey;
use sigil_tss::{Bls12381G1, PartyId, Protocol, PublicKeyPackage, Secp256k1, SessionId, Vss};

use crate::epoch::{
    erase_root_keys, load_next_root_keys, prune_next_root_keys, save_next_root_keys, switch_root_keys, Epoch,
    NextEpoch, NextRef, PublicKeys, RootKeys, MAX_NEXT,
};
use crate::mesh::wire::{Call, Reply};
use crate::node::Node;

/// How long one reshare run may take.
const RESHARE_DEADLINE: Duration = Duration::from_secs(30);
/// How long a participant has to accept a run, or to say which record it holds.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long each ready node of the current epoch leads the reshare before the next one does:
/// a leader that starts nothing, or whose runs fail, is replaced within one turn.
const LEAD_SLOT: Duration = Duration::from_secs(20);
/// How often a leader asks again whether every proposed node still holds the shared record.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// The number of the current leadership turn.
fn lead_slot() -> u64 {
    crate::node::unix_now() / LEAD_SLOT.as_secs()
}

/// The node leading in turn `slot`: the ready nodes (sorted) take turns.
fn leader_in(ready: &[u32], slot: u64) -> Option<u32> {
    let n = u64::try_from(ready.len()).ok().filter(|n| *n > 0)?;
    ready.get(usize::try_from(slot % n).ok()?).copied()
}

/// How often [`watch`] looks at the chain view.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The new shares with their public parts and this node's confirmation over them.
fn next_epoch(node: &Node, epoch: u64, proposal: u64, keys: Arc<RootKeys>) -> NextEpoch {
    let public = PublicKeys::of(&keys);
    let (digest, signature) = match node.options.registry.as_ref() {
        Some(registry) => {
            let digest = confirmation_digest(
                registry.chain_id(),
                registry.contracts().node_set,
                epoch,
                proposal,
                &public.record(),
            );
            (digest.0, Some(sign_digest(&node.signer, &digest)))
        }
        None => ([0u8; 32], None),
    };
    NextEpoch {
        epoch,
        proposal,
        keys,
        public,
        digest,
        signature,
    }
}

/// Keeps `next` among the reshared records held in memory (at most [`MAX_NEXT`], oldest out).
fn remember(node: &Node, next: Arc<NextEpoch>) {
    if let Ok(mut held) = node.next.lock() {
        if !held.iter().any(|n| n.digest == next.digest) {
            held.push(next);
        }
        while held.len() > MAX_NEXT {
            held.remove(0);
        }
    }
}

/// One reshare run, as the leader asks for it and every participant checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The proposal reshared for.
    pub proposal: u64,
    /// The proposed epoch.
    pub epoch: u64,
    /// Its threshold.
    pub threshold: usize,
    /// Nodes of the current epoch dealing their shares, sorted.
    pub dealers: Vec<u32>,
    /// The proposed nodes, who receive the new shares, sorted.
    pub receivers: Vec<u32>,
    /// The node that started the run.
    pub leader: u32,
    /// The leader's number for this run (random: a restarted leader never repeats one).
    pub run: u64,
}

impl Plan {
    /// Every node taking part, sorted.
    pub fn participants(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.dealers.iter().chain(&self.receivers).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    fn session(&self, current: &Epoch, curve: &str) -> SessionId {
        let mut h = Sha256::new();
        h.update(b"sigil-root-reshare/v1");
        h.update(curve.as_bytes());
        h.update(current.fingerprint);
        h.update(current.number.to_be_bytes());
        h.update(self.proposal.to_be_bytes());
        h.update(self.leader.to_be_bytes());
        h.update(self.run.to_be_bytes());
        h.update((self.threshold as u32).to_be_bytes());
        for set in [&self.dealers, &self.receivers] {
            h.update((set.len() as u32).to_be_bytes());
            for id in set {
                h.update(id.to_be_bytes());
            }
        }
        SessionId(h.finalize().into())
    }
}

/// Checks a reshare run of `proposal` from `current`, started by `leader` with `dealers`: the
/// proposal is for the next epoch, its nodes are nodes of the current one (same ids, same mesh
/// keys), the dealers are at least the current threshold of current nodes, the leader among them.
pub fn plan(current: &Epoch, proposal: &Proposal, leader: u32, run: u64, dealers: &[u32]) -> Result<Plan, String> {
    if proposal.epoch != current.number + 1 {
        return Err(format!(
            "proposal {} is for epoch {}, not {}",
            proposal.id,
            proposal.epoch,
            current.number + 1
        ));
    }
    for node in &proposal.nodes {
        // A node of the current epoch keeps its mesh key; a joining one is pinned as NodeSet
        // lists it ([`ensure_peers`]).
        if let Some((_, _, key)) = current.peers.iter().find(|(id, _, _)| *id == node.id) {
            if key.0 != node.identity_key {
                return Err(format!("node {} comes with another mesh key", node.id));
            }
        }
    }
    let mut receivers: Vec<u32> = proposal.nodes.iter().map(|n| n.id).collect();
    receivers.sort_unstable();
    receivers.dedup();
    if receivers.len() != proposal.nodes.len() {
        return Err("the proposal names a node twice".into());
    }
    let threshold = proposal.threshold as usize;
    if threshold < 2 || threshold > receivers.len() {
        return Err(format!("threshold {threshold} for {} nodes", receivers.len()));
    }
    let mut dealers = dealers.to_vec();
    dealers.sort_unstable();
    dealers.dedup();
    if dealers.len() < current.threshold {
        return Err(format!(
            "{} dealers cannot reshare keys of threshold {}",
            dealers.len(),
            current.threshold
        ));
    }
    if let Some(stranger) = dealers.iter().find(|d| !current.contains(**d)) {
        return Err(format!("dealer {stranger} is not a node of epoch {}", current.number));
    }
    if !dealers.contains(&leader) {
        return Err(format!("the leader {leader} is not among the dealers"));
    }
    Ok(Plan {
        proposal: proposal.id,
        epoch: proposal.epoch,
        threshold,
        dealers,
        receivers,
        leader,
        run,
    })
}

/// A leader's [`Call::Reshare`], as a participant receives it.
pub struct Asked<'a> {
    /// The leader.
    pub from: u32,
    /// NodeSet's proposal id.
    pub proposal: u64,
    /// The leader's run number.
    pub run: u64,
    /// The dealers.
    pub dealers: &'a [u32],
    /// The current epoch's public key packages (ECDSA, BLS), hex.
    pub packages: &'a (String, String),
}

/// What a run starts from: the current epoch's public key packages and, for a node of that
/// epoch, its shares.
struct Old {
    ecdsa: PublicKeyPackage<Secp256k1>,
    bls: PublicKeyPackage<Bls12381G1>,
    shares: Option<Arc<RootKeys>>,
}

/// Answers a leader's [`Call::Reshare`]: checks the plan against the proposal this node read from
/// NodeSet, then runs its part in the background (a newer run replaces one still running). A
/// joining node, which holds no share, takes the packages the leader sent only if they are the
/// ones NodeSet records.
pub async fn accept(node: &Arc<Node>, asked: Asked<'_>) -> Result<(), (&'static str, String)> {
    let current = node.epoch();
    let read = node
        .chain_view()
        .and_then(|view| view.proposal.clone())
        .filter(|p| p.id == asked.proposal);
    let Some(read) = read else {
        return Err((
            "NOT_READY",
            format!("node {} has not read proposal {} from NodeSet", node.me, asked.proposal),
        ));
    };
    // One leader at a time, the ready nodes of the current epoch taking turns (this slot's or,
    // at the boundary, the last one's, as this node sees them). Another cannot start runs here
    // (nor stop the leader's).
    let ready = node.ready();
    let slot = lead_slot();
    if leader_in(&ready, slot) != Some(asked.from) && leader_in(&ready, slot.saturating_sub(1)) != Some(asked.from) {
        return Err((
            "NOT_LEADER",
            format!(
                "node {} does not lead the reshare now: node {:?} does",
                asked.from,
                leader_in(&ready, slot)
            ),
        ));
    }
    if held(node, asked.proposal).len() >= MAX_NEXT {
        return Err((
            "RESHARE_FULL",
            format!(
                "node {} holds {MAX_NEXT} reshared records of proposal {} already; withdraw it and propose again",
                node.me, asked.proposal
            ),
        ));
    }
    let plan = plan(&current, &read, asked.from, asked.run, asked.dealers).map_err(|e| ("BAD_REQUEST", e))?;
    if !plan.participants().contains(&node.me) {
        return Err(("BAD_REQUEST", format!("node {} is not part of this reshare", node.me)));
    }
    let old = match current.keys() {
        Some(keys) => Old {
            ecdsa: keys.ecdsa.public().clone(),
            bls: keys.bls.public().clone(),
            shares: Some(keys),
        },
        // A joining node, or one of the epoch whose first DKG did not finish here: it receives
        // (it is no dealer) with the packages NodeSet vouches for.
        None => joining_packages(node, &current, asked.packages)
            .await
            .map_err(|e| ("BAD_REQUEST", e))?,
    };
    start_run(node, current, plan, old)
}

fn start_run(node: &Arc<Node>, current: Arc<Epoch>, plan: Plan, old: Old) -> Result<(), (&'static str, String)> {
    let Ok(mut running) = node.resharing.lock() else {
        return Err(("INTERNAL", "reshare state poisoned".into()));
    };
    let id = plan.session(&current, "run");
    if let Some((running_id, task)) = running.as_ref() {
        if *running_id == id.0 && !task.is_finished() {
            return Ok(());
        }
        // The leader gave up on its previous run and starts another.
        task.abort();
    }
    let task = tokio::spawn(run_part(Arc::clone(node), current, plan, old));
    *running = Some((id.0, task));
    Ok(())
}

/// The current epoch's public key packages as a leader sent them to a joining node, checked
/// against the record NodeSet keeps of the current epoch: the same root keys, the same BLS
/// public shares, the current threshold and nodes. (The ECDSA public shares are not on chain; a
/// wrong set only makes the run fail, as the honest dealers' commitments then disagree with it.)
async fn joining_packages(node: &Arc<Node>, current: &Epoch, packages: &(String, String)) -> Result<Old, String> {
    let registry = node
        .options
        .registry
        .clone()
        .ok_or("no chain to check the packages against")?;
    let decode = |text: &str| hex::decode(text).map_err(|_| "a package is not hex".to_string());
    let ecdsa = PublicKeyPackage::<Secp256k1>::from_bytes(&decode(&packages.0)?).map_err(|e| e.to_string())?;
    let bls = PublicKeyPackage::<Bls12381G1>::from_bytes(&decode(&packages.1)?).map_err(|e| e.to_string())?;
    let ids: Vec<PartyId> = current.ids().map(PartyId).collect();
    for (parties, threshold) in [(ecdsa.parties(), ecdsa.threshold()), (bls.parties(), bls.threshold())] {
        if parties != ids || threshold != current.threshold {
            return Err(format!(
                "the packages are not those of epoch {}'s nodes and threshold",
                current.number
            ));
        }
    }
    let view = registry.node_set().await.map_err(|e| e.to_string())?;
    if view.keys_epoch != current.number || PublicKeys::of_packages(&ecdsa, &bls).record() != view.keys {
        return Err(format!(
            "the packages are not the root keys NodeSet records for epoch {}",
            current.number
        ));
    }
    Ok(Old {
        ecdsa,
        bls,
        shares: None,
    })
}

/// Pins and pings every proposed node this node's mesh does not know yet (nodes that join), as
/// NodeSet lists them. Fails for a node listed with another mesh key than the one pinned.
fn ensure_peers(node: &Arc<Node>, proposal: &Proposal) -> Result<(), String> {
    for listed in &proposal.nodes {
        match node.net.add_peer(listed.id, &listed.url, NodeKey(listed.identity_key)) {
            Ok(true) => {
                tracing::info!(peer = listed.id, url = %listed.url, "a node joining the proposed epoch is now a mesh peer");
                tokio::spawn(crate::liveness::heartbeat(Arc::clone(node), listed.id));
            }
            Ok(false) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// This node's part of one run; a proposed node stores its new shares beside any it holds for the
/// proposal already (a record it signed is never replaced) and signs them.
async fn run_part(node: Arc<Node>, current: Arc<Epoch>, plan: Plan, old: Old) {
    let started = Instant::now();
    match reshare(&node, &current, &plan, &old).await {
        Ok(Some(keys)) => {
            let next = Arc::new(next_epoch(&node, plan.epoch, plan.proposal, Arc::new(keys)));
            // Saving and switching never interleave: a run that finishes once its proposal was
            // confirmed or withdrawn, or the epoch switched, stores nothing.
            let _writing = node.key_writes.lock().await;
            let proposal_now = node.chain_view().and_then(|v| v.proposal.as_ref().map(|p| p.id));
            if !Arc::ptr_eq(&node.epoch(), &current) || proposal_now != Some(plan.proposal) {
                tracing::info!(
                    epoch = plan.epoch,
                    proposal = plan.proposal,
                    "a reshare run finished after its proposal was settled or withdrawn; its shares are dropped"
                );
                return;
            }
            let store = Arc::clone(&node.store);
            let saving = Arc::clone(&next);
            let saved = tokio::task::spawn_blocking(move || {
                let at = NextRef {
                    epoch: saving.epoch,
                    proposal: saving.proposal,
                    digest: saving.digest,
                };
                save_next_root_keys(&store, at, &saving.keys)
            })
            .await;
            match saved {
                Ok(Ok(())) => {
                    tracing::info!(
                        epoch = plan.epoch,
                        proposal = plan.proposal,
                        ms = started.elapsed().as_millis() as u64,
                        threshold = plan.threshold,
                        dealers = ?plan.dealers,
                        "root keys reshared into the proposed epoch and stored; the current epoch serves until NodeSet confirms it"
                    );
                    remember(&node, next);
                }
                Ok(Err(e)) => tracing::error!(error = %e, "cannot store the reshared root key shares"),
                Err(e) => tracing::error!(error = %e, "cannot store the reshared root key shares"),
            }
        }
        Ok(None) => tracing::info!(
            epoch = plan.epoch,
            ms = started.elapsed().as_millis() as u64,
            "dealt this node's root key shares to the proposed epoch, which leaves it out"
        ),
        Err(failure) => {
            tracing::warn!(epoch = plan.epoch, run = plan.run, leader = plan.leader, error = %failure.text, suspects = ?failure.suspects, "reshare run failed");
            if plan.leader == node.me {
                if let Ok(mut suspects) = node.reshare_suspects.lock() {
                    suspects.extend(failure.suspects);
                }
            }
        }
    }
}

/// Why a run failed, and the participants that sent nothing or were proven to cheat.
struct Failure {
    text: String,
    suspects: Vec<u32>,
}

impl From<String> for Failure {
    fn from(text: String) -> Self {
        Self {
            text,
            suspects: Vec::new(),
        }
    }
}

impl From<crate::mesh::session::SessionError> for Failure {
    fn from(e: crate::mesh::session::SessionError) -> Self {
        let suspects = match &e {
            // Only silence counts: whom a party still waits for after the first round (a
            // complaint's answer, a confirmation) a third party can steer onto an honest node
            // (an accusation sent to some receivers only); the text still names them.
            crate::mesh::session::SessionError::Timeout { silent, .. } => silent.clone(),
            crate::mesh::session::SessionError::Protocol(tss) => tss.culprit().map(|p| p.0).into_iter().collect(),
            _ => Vec::new(),
        };
        Self {
            text: e.to_string(),
            suspects,
        }
    }
}

async fn reshare(node: &Arc<Node>, current: &Epoch, plan: &Plan, old: &Old) -> Result<Option<RootKeys>, Failure> {
    let me = PartyId(node.me);
    let dealers: Vec<PartyId> = plan.dealers.iter().copied().map(PartyId).collect();
    let receivers: Vec<PartyId> = plan.receivers.iter().copied().map(PartyId).collect();
    let shares = old.shares.as_deref().filter(|_| plan.dealers.contains(&node.me));
    let ecdsa = Vss::<Secp256k1>::reshare(
        plan.session(current, "secp256k1"),
        me,
        &old.ecdsa,
        &dealers,
        shares.map(|k| &k.ecdsa),
        &receivers,
        plan.threshold,
    )
    .map_err(|e| Failure::from(e.to_string()))?;
    let bls = Vss::<Bls12381G1>::reshare(
        plan.session(current, "bls12-381"),
        me,
        &old.bls,
        &dealers,
        shares.map(|k| &k.bls),
        &receivers,
        plan.threshold,
    )
    .map_err(|e| Failure::from(e.to_string()))?;
    let participants: Vec<PartyId> = plan.participants().into_iter().map(PartyId).collect();
    let corrupt = shares.is_some() && node.has_fault(crate::Fault::BadReshareDealer);
    let (ecdsa, bls) = tokio::join!(
        run_one(node, ecdsa, participants.clone(), corrupt),
        run_one(node, bls, participants, corrupt),
    );
    match (ecdsa?, bls?) {
        (Some(ecdsa), Some(bls)) => Ok(Some(RootKeys { ecdsa, bls })),
        (None, None) => Ok(None),
        _ => Err(Failure::from(
            "the reshare gave this node one new share without the other".to_string(),
        )),
    }
}

async fn run_one<P>(
    node: &Arc<Node>,
    protocol: P,
    participants: Vec<PartyId>,
    corrupt: bool,
) -> Result<P::Output, crate::mesh::session::SessionError>
where
    P: Protocol + Send + 'static,
    P::Output: Send + 'static,
{
    if corrupt {
        tracing::warn!("TEST FAULT: dealing reshare shares that fail their commitment check");
        node.sessions
            .run(
                &node.net,
                crate::faults::CorruptShares::all(protocol),
                participants,
                RESHARE_DEADLINE,
            )
            .await
    } else {
        node.sessions
            .run(&node.net, protocol, participants, RESHARE_DEADLINE)
            .await
    }
}

/// The confirmation digests of the reshared records this node holds for `proposal`.
pub fn held(node: &Node, proposal: u64) -> Vec<[u8; 32]> {
    node.next
        .lock()
        .map(|next| {
            next.iter()
                .filter(|n| n.proposal == proposal)
                .map(|n| n.digest)
                .collect()
        })
        .unwrap_or_default()
}

/// Drops the reshared records (in memory and stored) that are not for `proposal` of the next
/// epoch: a withdrawn proposal's, or a settled epoch's.
///
/// Only on positive evidence: NodeSet shows another proposal for the next epoch (proposal ids
/// are never reused, so the records of the one before can never be confirmed). A read that shows
/// no proposal proves nothing (the read may have failed, or straddled the confirming block), so
/// it drops nothing; the switch erases what is left.
async fn forget_others(node: &Arc<Node>, current: &Epoch, proposal: u64) {
    // Not before the node holds its epoch's shares: at start-up, the record of an epoch NodeSet
    // confirmed while the node was down is what it switches to (`resume_switch`).
    if current.keys().is_none() {
        return;
    }
    let proposal = Some(proposal);
    let stale = node
        .next
        .lock()
        .map(|next| {
            next.iter()
                .any(|n| Some(n.proposal) != proposal || n.epoch != current.number + 1)
        })
        .unwrap_or(false);
    if !stale {
        return;
    }
    let _writing = node.key_writes.lock().await;
    let store = Arc::clone(&node.store);
    let next_epoch = current.number + 1;
    let pruned = tokio::task::spawn_blocking(move || {
        prune_next_root_keys(&store, |epoch, p| epoch == next_epoch && Some(p) == proposal)
    })
    .await;
    if let Ok(Ok(dropped)) = pruned {
        if let Ok(mut next) = node.next.lock() {
            next.retain(|n| Some(n.proposal) == proposal && n.epoch == next_epoch);
        }
        tracing::info!(dropped, "reshared shares of a withdrawn proposal dropped");
    }
}

/// Reshares into proposed epochs and switches to them once NodeSet confirms them, until the node
/// stops (see the module doc). Does nothing without a chain.
pub async fn watch(node: Arc<Node>) {
    if node.options.registry.is_none() {
        return;
    }
    // Reshared records stored before a restart are served again; those of settled epochs go.
    let store = Arc::clone(&node.store);
    let writing = node.key_writes.lock().await;
    let loaded = tokio::task::spawn_blocking(move || {
        // Only records of epochs up to that of the stored root shares are stale: a later one may
        // be the epoch NodeSet confirmed while this node was down.
        if let crate::epoch::StoredRootKeys::Both(Some(root), _) = crate::epoch::load_root_keys(&store)? {
            prune_next_root_keys(&store, |epoch, _| epoch > root)?;
        }
        load_next_root_keys(&store)
    })
    .await;
    drop(writing);
    if let Ok(Ok(records)) = loaded {
        for next in records {
            remember(
                &node,
                Arc::new(next_epoch(&node, next.epoch, next.proposal, Arc::new(next.keys))),
            );
        }
    }
    let mut leading = Leading::default();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(view) = node.chain_view() else { continue };
        let current = node.epoch();
        if view.epoch > current.number {
            settle(&node, &current, view.epoch).await;
            continue;
        }
        let Some(proposal) = view.proposal.clone().filter(|p| p.epoch == current.number + 1) else {
            continue;
        };
        forget_others(&node, &current, proposal.id).await;
        if let Err(e) = ensure_peers(&node, &proposal) {
            leading.note(format!("cannot meet the proposed nodes: {e}"));
            continue;
        }
        if current.keys().is_some() && leader_in(&node.ready(), lead_slot()) == Some(node.me) {
            leading.step(&node, &current, &proposal).await;
        }
    }
}

/// The leader's memory of the proposal it leads.
#[derive(Default)]
struct Leading {
    /// The proposal whose nodes all hold one same record, and when that was last seen: nothing
    /// more to run for it (checked again every [`RECHECK_EVERY`]).
    settled: Option<(u64, Instant)>,
    /// Dealers left out of the next runs of the proposal (they refused, sent nothing, or were
    /// caught cheating), with the proposal.
    suspects: (u64, std::collections::BTreeSet<u32>),
    /// The last complaint logged, and when (each is logged once a minute at most).
    said: Option<(String, Instant)>,
}

/// What the proposed nodes say they hold.
enum Held {
    /// One record, at every proposed node.
    Everywhere,
    /// Some node holds no record that all others hold.
    Missing,
    /// Some node did not answer: ask again.
    Unknown(String),
}

impl Leading {
    fn note(&mut self, what: String) {
        if self
            .said
            .as_ref()
            .is_none_or(|(said, at)| *said != what || at.elapsed() > Duration::from_secs(60))
        {
            tracing::warn!(epoch_change = %what, "reshare waits");
            self.said = Some((what, Instant::now()));
        }
    }

    async fn step(&mut self, node: &Arc<Node>, current: &Arc<Epoch>, proposal: &Proposal) {
        if self
            .settled
            .is_some_and(|(id, at)| id == proposal.id && at.elapsed() < RECHECK_EVERY)
        {
            return;
        }
        if node
            .resharing
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|(_, task)| !task.is_finished()))
            .unwrap_or(false)
        {
            return;
        }
        if self.suspects.0 != proposal.id {
            self.suspects = (proposal.id, Default::default());
        }
        if let Ok(mut found) = node.reshare_suspects.lock() {
            self.suspects.1.extend(found.drain(..));
        }
        let Some(keys) = current.keys() else { return };
        // Every ready node of the current epoch deals, but those suspected in an earlier run of
        // this proposal, as long as the threshold of dealers remains. (A node of the epoch
        // without its shares, whose first DKG did not finish, cannot deal; it receives like a
        // joining node.)
        let ready = node.ready();
        let trusted: Vec<u32> = ready
            .iter()
            .copied()
            .filter(|id| !self.suspects.1.contains(id))
            .collect();
        let dealers = if trusted.len() >= current.threshold && trusted.contains(&node.me) {
            trusted
        } else {
            ready
        };
        let plan = match plan(current, proposal, node.me, OsRng.next_u64(), &dealers) {
            Ok(plan) => plan,
            Err(e) => return self.note(e),
        };
        if let Some(down) = plan.receivers.iter().find(|id| !node.net.is_up(**id)) {
            return self.note(format!("proposed node {down} is not reachable"));
        }
        match self.held(node, &plan).await {
            Held::Everywhere => {
                if self.settled.is_none_or(|(id, _)| id != proposal.id) {
                    tracing::info!(
                        epoch = proposal.epoch,
                        proposal = proposal.id,
                        "every proposed node holds the same new root key shares; NodeSet can confirm the epoch (sigil admin epoch confirm)"
                    );
                }
                self.settled = Some((proposal.id, Instant::now()));
                return;
            }
            Held::Unknown(why) => return self.note(why),
            Held::Missing => {}
        }
        if held(node, proposal.id).len() >= MAX_NEXT {
            return self.note(format!(
                "{MAX_NEXT} runs of proposal {} finished here without one record held by every proposed node; withdraw it and propose again",
                proposal.id
            ));
        }
        tracing::info!(
            epoch = plan.epoch,
            proposal = plan.proposal,
            dealers = ?plan.dealers,
            receivers = ?plan.receivers,
            threshold = plan.threshold,
            "starting a reshare run"
        );
        let call = serde_json::to_vec(&Call::Reshare {
            proposal: plan.proposal,
            run: plan.run,
            dealers: plan.dealers.clone(),
            packages: (
                hex::encode(keys.ecdsa.public().to_bytes()),
                hex::encode(keys.bls.public().to_bytes()),
            ),
        })
        .unwrap_or_default();
        let mut asks = tokio::task::JoinSet::new();
        for peer in plan.participants().into_iter().filter(|p| *p != node.me) {
            let (node, call) = (Arc::clone(node), call.clone());
            asks.spawn(async move { (peer, node.net.call(peer, &call, CALL_TIMEOUT).await) });
        }
        let mut refused = Vec::new();
        while let Some(answer) = asks.join_next().await {
            let Ok((peer, answer)) = answer else { continue };
            let why = match answer.as_deref().map(serde_json::from_slice::<Reply>) {
                Ok(Ok(Reply::Resharing)) => continue,
                Ok(Ok(Reply::Error { code, message })) => format!("{code} {message}"),
                Ok(_) => "an answer that is not one".to_string(),
                Err(e) => e.to_string(),
            };
            if !plan.receivers.contains(&peer) {
                self.suspects.1.insert(peer);
            }
            refused.push(format!("node {peer}: {why}"));
        }
        if !refused.is_empty() {
            // The participants that accepted give up on the run at its deadline.
            return self.note(format!("participants refused the run: {}", refused.join("; ")));
        }
        let old = Old {
            ecdsa: keys.ecdsa.public().clone(),
            bls: keys.bls.public().clone(),
            shares: Some(Arc::clone(&keys)),
        };
        if let Err((code, message)) = start_run(node, Arc::clone(current), plan, old) {
            self.note(format!("{code} {message}"));
        }
    }

    /// Whether one record is held by every proposed node. A record once held is never replaced,
    /// so a node that did not answer is asked again rather than given a new run.
    async fn held(&self, node: &Arc<Node>, plan: &Plan) -> Held {
        let call = serde_json::to_vec(&Call::NextKeys {
            proposal: plan.proposal,
        })
        .unwrap_or_default();
        let mut asks = tokio::task::JoinSet::new();
        for peer in plan.receivers.iter().copied().filter(|p| *p != node.me) {
            let (node, call) = (Arc::clone(node), call.clone());
            asks.spawn(async move { (peer, node.net.call(peer, &call, CALL_TIMEOUT).await) });
        }
        let mut lists: Vec<Vec<String>> = Vec::new();
        if plan.receivers.contains(&node.me) {
            lists.push(held(node, plan.proposal).iter().map(hex::encode).collect());
        }
        while let Some(answer) = asks.join_next().await {
            let Ok((peer, answer)) = answer else { continue };
            match answer.map(|b| serde_json::from_slice::<Reply>(&b)) {
                Ok(Ok(Reply::NextKeys { digests })) => lists.push(digests),
                _ => return Held::Unknown(format!("proposed node {peer} did not say which shares it holds")),
            }
        }
        let everywhere = lists
            .first()
            .is_some_and(|first| first.iter().any(|d| lists.iter().all(|list| list.contains(d))));
        if everywhere {
            Held::Everywhere
        } else {
            Held::Missing
        }
    }
}

/// NodeSet is at a later epoch than this node runs: a member switches to it with the reshared
/// record NodeSet confirmed; a node left out erases its shares. Runs once per chain epoch (a
/// failed read is tried again).
async fn settle(node: &Arc<Node>, current: &Arc<Epoch>, chain_epoch: u64) {
    if node.settled.load(std::sync::atomic::Ordering::Acquire) >= chain_epoch {
        return;
    }
    let Some(registry) = node.options.registry.clone() else {
        return;
    };
    let view = match registry.node_set().await {
        Ok(view) if view.epoch == chain_epoch => view,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read NodeSet's new epoch; trying again");
            return;
        }
    };
    let me = view
        .nodes
        .iter()
        .any(|n| n.id == node.me && n.signer == node.signer.address());
    let confirmed = view.keys_epoch == view.epoch;
    let outcome = if !confirmed {
        // An admin's reset of the node list (setNodes), not an epoch its nodes confirmed: nothing
        // shows the new nodes hold the keys, so this node keeps its shares (and serves no client).
        // Read again later: a confirmation may only now be landing.
        Err(Retry::Later(format!(
            "NodeSet is at epoch {} without its nodes having confirmed they hold the root keys; this node keeps its shares",
            view.epoch
        )))
    } else if !me {
        leave(node, chain_epoch, "NodeSet's new epoch leaves this node out").await
    } else {
        switch(node, current, &view).await
    };
    match outcome {
        Ok(()) => node.settled.store(chain_epoch, std::sync::atomic::Ordering::Release),
        Err(Retry::Later(e)) => {
            if node.settle_said.swap(chain_epoch, std::sync::atomic::Ordering::AcqRel) != chain_epoch {
                tracing::warn!(epoch = chain_epoch, error = %e, "cannot settle into NodeSet's new epoch yet; trying again every 5 s");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Err(Retry::Never(e)) => {
            tracing::error!(epoch = chain_epoch, error = %e, "this node cannot serve NodeSet's new epoch");
            node.settled.store(chain_epoch, std::sync::atomic::Ordering::Release);
        }
    }
}

enum Retry {
    Later(String),
    Never(String),
}

/// Erases every root key share and one-time secret (NodeSet confirmed an epoch in which this
/// node holds no share), in one transaction.
async fn leave(node: &Arc<Node>, chain_epoch: u64, why: &str) -> Result<(), Retry> {
    let _writing = node.key_writes.lock().await;
    stop_runs(node);
    let store = Arc::clone(&node.store);
    let erased = tokio::task::spawn_blocking(move || {
        if let crate::epoch::StoredRootKeys::Erased(_) = crate::epoch::load_root_keys(&store)? {
            // Erased when an earlier epoch left this node out.
            return Ok(None);
        }
        erase_root_keys(&store, chain_epoch).map(Some)
    })
    .await
    .map_err(|e| Retry::Later(e.to_string()))?
    .map_err(|e| Retry::Later(e.to_string()))?;
    // The shares in memory go too: this node takes part in nothing from now on.
    // (Its number stays: the node still reports, and is refused as, one NodeSet left behind.)
    let current = node.epoch();
    node.epoch
        .replace(Epoch::new(current.number, current.threshold, Vec::new()));
    if let Some((shares, presignatures)) = erased {
        tracing::warn!(
            epoch = chain_epoch,
            shares,
            presignatures,
            "{why}: its root key shares and presignatures are erased"
        );
    }
    Ok(())
}

/// Stops the reshare run and forgets the reshared records held in memory (requests already
/// running finish with their own copy of the current shares).
fn stop_runs(node: &Node) {
    if let Ok(mut next) = node.next.lock() {
        next.clear();
    }
    if let Ok(mut running) = node.resharing.lock() {
        if let Some((_, task)) = running.take() {
            task.abort();
        }
    }
}

/// Makes the stored reshared record NodeSet confirmed for epoch `view.epoch` current, erasing
/// every other root key share and the one-time material with it ([`switch_root_keys`]), if this
/// node holds that record: its shares, with the shares erased and the presignatures discarded.
/// The caller holds `Node::key_writes`.
async fn install_confirmed(node: &Arc<Node>, view: &NodeSetView) -> Result<Option<(RootKeys, (usize, usize))>, String> {
    let store = Arc::clone(&node.store);
    let (epoch, record) = (view.epoch, view.keys.clone());
    tokio::task::spawn_blocking(move || {
        let confirmed = load_next_root_keys(&store)?
            .into_iter()
            .find(|n| n.epoch == epoch && PublicKeys::of(&n.keys).record() == record);
        let Some(next) = confirmed else { return Ok(None) };
        let erased = switch_root_keys(&store, epoch, &next.keys)?;
        Ok::<_, crate::store::StoreError>(Some((next.keys, erased)))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

async fn switch(node: &Arc<Node>, current: &Arc<Epoch>, view: &NodeSetView) -> Result<(), Retry> {
    if view.epoch != current.number + 1 {
        return leave(
            node,
            view.epoch,
            &format!(
                "this node runs epoch {} and missed the reshare into NodeSet's epoch {}",
                current.number, view.epoch
            ),
        )
        .await;
    }
    let peers = peers_of(node, &view.nodes).map_err(Retry::Never)?;
    let _writing = node.key_writes.lock().await;
    stop_runs(node);
    let Some((keys, (shares, presignatures))) = install_confirmed(node, view).await.map_err(Retry::Later)? else {
        // NodeSet needs every proposed node's confirmation, so this should not happen; if it
        // does (a lost record), the old share is kept rather than erased on a guess, and the
        // node serves nothing until the admin proposes it out or it is restored.
        return Err(Retry::Never(format!(
            "this node holds no share of the record NodeSet confirmed for epoch {}; it keeps its old shares and serves nothing",
            view.epoch
        )));
    };
    let number = view.epoch;
    let epoch = Epoch::new(number, view.threshold as usize, peers);
    epoch.set_shared_keys(Arc::new(keys));
    node.epoch.replace(epoch);
    tracing::info!(
        epoch = number,
        threshold = view.threshold,
        nodes = ?view.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        shares_erased = shares,
        presignatures_discarded = presignatures,
        "switched to NodeSet's new epoch: same root public keys, new shares"
    );
    Ok(())
}

/// The peers of the new epoch as NodeSet lists them; each must be a mesh peer pinned to the
/// listed key (the nodes that joined were pinned while the epoch was proposed).
fn peers_of(node: &Node, nodes: &[ListedNode]) -> Result<Vec<(u32, String, NodeKey)>, String> {
    let known = node.net.peer_ids();
    nodes
        .iter()
        .map(|n| {
            if n.id != node.me && !known.contains(&n.id) {
                return Err(format!(
                    "node {} of the new epoch is not a mesh peer of this node",
                    n.id
                ));
            }
            Ok((n.id, n.url.clone(), NodeKey(n.identity_key)))
        })
        .collect()
}

/// At start-up, for a node that holds the shares of the epoch before NodeSet's (or none, having
/// joined): the switch it did not make before it stopped (NodeSet confirmed the epoch meanwhile).
/// Makes the stored reshared record current if it is the confirmed one.
pub async fn resume_switch(node: &Arc<Node>, epoch: &Epoch) -> Result<RootKeys, String> {
    let registry = node
        .options
        .registry
        .clone()
        .ok_or("no chain to check the new shares against")?;
    let view = registry.node_set().await.map_err(|e| e.to_string())?;
    if view.keys_epoch != epoch.number {
        return Err(format!("NodeSet confirmed no record for epoch {}", epoch.number));
    }
    let _writing = node.key_writes.lock().await;
    let (keys, _) = install_confirmed(node, &view)
        .await?
        .ok_or("it holds no share of the record NodeSet confirmed (it missed the reshare)")?;
    let number = epoch.number;
    tracing::info!(
        epoch = number,
        "switched at start-up to the epoch NodeSet confirmed while this node was down"
    );
    Ok(keys)
}

/// The epoch of the reshared shares stored here, if any.
pub async fn stored_next(node: &Arc<Node>) -> Option<u64> {
    let store = Arc::clone(&node.store);
    match tokio::task::spawn_blocking(move || load_next_root_keys(&store)).await {
        Ok(Ok(next)) => next.iter().map(|n| n.epoch).max(),
        _ => None,
    }
}

/// Whether NodeSet records root keys already (a DKG must then never run again). False without
/// a chain; a chain that does not answer counts as recorded (the DKG waits for a restart).
pub async fn keys_recorded(node: &Arc<Node>) -> bool {
    match node.options.registry.as_ref() {
        None => false,
        Some(registry) => {
            let mut said = false;
            loop {
                match registry.node_set().await {
                    Ok(view) => return view.keys_epoch != 0,
                    Err(e) if !said => {
                        tracing::warn!(error = %e, "cannot read NodeSet; the DKG waits until it answers");
                        said = true;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
