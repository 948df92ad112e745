//! Resharing the root keys into the epoch NodeSet's admin proposed, while the current epoch keeps
//! serving, and switching to it once NodeSet confirms it (DESIGN §9).
//!
//! 1. `follow` reads the proposal into [`Node::chain_view`]; [`watch`] looks at it every second.
//! 2. The *leader*, the lowest live node of the current epoch, picks the dealers (every live node
//!    of the current epoch, at least its threshold) and a fresh run number, and sends
//!    [`Call::Reshare`] to every dealer and proposed node. Each checks the plan against the
//!    proposal it read from NodeSet itself ([`plan`]) and runs its part: both root keys go through
//!    `Vss::reshare`, so the public keys stay and every share is new (an old share is useless
//!    beside new ones).
//! 3. A proposed node stores its new shares beside the current ones ([`save_next_root_keys`]) and
//!    signs the confirmation `NodeSet.confirmEpoch` checks; `GET /web/epoch/confirmation` serves
//!    it ([`NextEpoch`]).
//! 4. The leader asks every proposed node which record it holds ([`Call::NextKeys`]); while they
//!    differ (a run that finished at some nodes only) it starts another run.
//! 5. Anyone sends `confirmEpoch` with the new threshold of confirmations
//!    (`sigil admin epoch confirm`).
//! 6. When `follow` sees NodeSet at the new epoch, a member checks its new shares against the
//!    confirmed record and switches ([`switch_root_keys`] erases the old shares in the same
//!    transaction; every presignature and triple of the old epoch is discarded); a node the epoch
//!    leaves out erases every root key share it holds ([`erase_root_keys`]).
//!
//! A proposal whose nodes are not all nodes of the current epoch (a node joining) is not reshared
//! yet: the leader says so, and the proposal waits until the admin withdraws it.
//! Uses `node`, `epoch`, `mesh`, `signing::pool` (to stop the old epoch's pool) and `sigil_chain`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sigil_chain::registry::{ListedNode, NodeSetView, Proposal};
use sigil_chain::vouch::{confirmation_digest, sign_digest};
use sigil_mesh::NodeKey;
use sigil_tss::{Bls12381G1, PartyId, PublicKeyPackage, Secp256k1, SessionId, Vss};

use crate::epoch::{
    erase_root_keys, load_next_root_keys, save_next_root_keys, switch_root_keys, Epoch, NextEpoch, NextRootKeys,
    PublicKeys, RootKeys,
};
use crate::mesh::wire::{Call, Reply};
use crate::node::Node;

/// How long one reshare run may take.
const RESHARE_DEADLINE: Duration = Duration::from_secs(30);
/// How long a participant has to accept a run, or to say which record it holds.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`watch`] looks at the chain view.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How often the leader checks again that every proposed node holds the same new shares.
const RECHECK_EVERY: Duration = Duration::from_secs(10);

/// The new shares with their public parts and this node's confirmation over them.
fn next_epoch(node: &Node, next: NextRootKeys) -> NextEpoch {
    let public = PublicKeys::of(&next.keys);
    let (digest, signature) = match node.options.registry.as_ref() {
        Some(registry) => {
            let digest = confirmation_digest(
                registry.chain_id(),
                registry.contracts().node_set,
                next.epoch,
                next.proposal,
                &public.record(),
            );
            (digest.0, Some(sign_digest(&node.signer, &digest)))
        }
        None => ([0u8; 32], None),
    };
    NextEpoch {
        epoch: next.epoch,
        proposal: next.proposal,
        keys: Arc::new(next.keys),
        public,
        digest,
        signature,
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
        None if !current.contains(node.me) => joining_packages(node, &current, asked.packages)
            .await
            .map_err(|e| ("BAD_REQUEST", e))?,
        None => return Err(("NOT_READY", format!("node {} holds no root key shares", node.me))),
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

/// This node's part of one run; a proposed node stores its new shares and signs them.
async fn run_part(node: Arc<Node>, current: Arc<Epoch>, plan: Plan, old: Old) {
    let started = Instant::now();
    match reshare(&node, &current, &plan, &old).await {
        Ok(Some(keys)) => {
            let store = Arc::clone(&node.store);
            let (epoch, proposal) = (plan.epoch, plan.proposal);
            let saved =
                tokio::task::spawn_blocking(move || save_next_root_keys(&store, epoch, proposal, &keys).map(|()| keys))
                    .await;
            match saved {
                Ok(Ok(keys)) => {
                    let next = next_epoch(&node, NextRootKeys { epoch, proposal, keys });
                    tracing::info!(
                        epoch,
                        proposal,
                        ms = started.elapsed().as_millis() as u64,
                        threshold = plan.threshold,
                        dealers = ?plan.dealers,
                        "root keys reshared into the proposed epoch and stored; the current epoch serves until NodeSet confirms it"
                    );
                    if let Ok(mut held) = node.next.lock() {
                        *held = Some(Arc::new(next));
                    }
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
        Err(e) => {
            tracing::warn!(epoch = plan.epoch, run = plan.run, leader = plan.leader, error = %e, "reshare run failed")
        }
    }
}

async fn reshare(node: &Arc<Node>, current: &Epoch, plan: &Plan, old: &Old) -> Result<Option<RootKeys>, String> {
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
    .map_err(|e| e.to_string())?;
    let bls = Vss::<Bls12381G1>::reshare(
        plan.session(current, "bls12-381"),
        me,
        &old.bls,
        &dealers,
        shares.map(|k| &k.bls),
        &receivers,
        plan.threshold,
    )
    .map_err(|e| e.to_string())?;
    let participants: Vec<PartyId> = plan.participants().into_iter().map(PartyId).collect();
    let (ecdsa, bls) = tokio::join!(
        node.sessions
            .run(&node.net, ecdsa, participants.clone(), RESHARE_DEADLINE),
        node.sessions.run(&node.net, bls, participants, RESHARE_DEADLINE),
    );
    match (ecdsa.map_err(|e| e.to_string())?, bls.map_err(|e| e.to_string())?) {
        (Some(ecdsa), Some(bls)) => Ok(Some(RootKeys { ecdsa, bls })),
        (None, None) => Ok(None),
        _ => Err("the reshare gave this node one new share without the other".into()),
    }
}

/// The confirmation digest of the new shares this node holds for `proposal`, if any.
pub fn held(node: &Node, proposal: u64) -> Option<[u8; 32]> {
    node.next
        .lock()
        .ok()
        .and_then(|next| next.as_ref().filter(|n| n.proposal == proposal).map(|n| n.digest))
}

/// Reshares into proposed epochs and switches to them once NodeSet confirms them, until the node
/// stops (see the module doc). Does nothing without a chain.
pub async fn watch(node: Arc<Node>) {
    if node.options.registry.is_none() {
        return;
    }
    // A reshare stored before a restart is served again.
    let store = Arc::clone(&node.store);
    if let Ok(Ok(Some(next))) = tokio::task::spawn_blocking(move || load_next_root_keys(&store)).await {
        if next.epoch > node.epoch().number {
            let next = next_epoch(&node, next);
            if let Ok(mut held) = node.next.lock() {
                *held = Some(Arc::new(next));
            }
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
        if let Err(e) = ensure_peers(&node, &proposal) {
            leading.note(format!("cannot meet the proposed nodes: {e}"));
            continue;
        }
        if current.keys().is_some() && node.live().first() == Some(&node.me) {
            leading.step(&node, &current, &proposal).await;
        }
    }
}

/// The leader's memory of the proposal it leads.
#[derive(Default)]
struct Leading {
    /// The proposal, and when its nodes were last seen holding the same new shares.
    settled: Option<(u64, Instant)>,
    /// The last complaint logged, and when (each is logged once a minute at most).
    said: Option<(String, Instant)>,
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
        if let Some((id, at)) = self.settled {
            if id == proposal.id && at.elapsed() < RECHECK_EVERY {
                return;
            }
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
        let live = node.live();
        let plan = match plan(current, proposal, node.me, OsRng.next_u64(), &live) {
            Ok(plan) => plan,
            Err(e) => return self.note(e),
        };
        if let Some(down) = plan.receivers.iter().find(|id| !node.net.is_up(**id)) {
            return self.note(format!("proposed node {down} is not reachable"));
        }
        if self.all_hold_the_same(node, &plan).await {
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
        self.settled = None;
        tracing::info!(
            epoch = plan.epoch,
            proposal = plan.proposal,
            dealers = ?plan.dealers,
            receivers = ?plan.receivers,
            threshold = plan.threshold,
            "starting a reshare run"
        );
        let Some(keys) = current.keys() else { return };
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
            match answer.as_deref().map(serde_json::from_slice::<Reply>) {
                Ok(Ok(Reply::Resharing)) => {}
                Ok(Ok(Reply::Error { code, message })) => refused.push(format!("node {peer}: {code} {message}")),
                Ok(_) => refused.push(format!("node {peer}: an answer that is not one")),
                Err(e) => refused.push(format!("node {peer}: {e}")),
            }
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

    /// Whether every proposed node holds new shares of the proposal, and the same ones.
    async fn all_hold_the_same(&self, node: &Arc<Node>, plan: &Plan) -> bool {
        let call = serde_json::to_vec(&Call::NextKeys {
            proposal: plan.proposal,
        })
        .unwrap_or_default();
        let mut asks = tokio::task::JoinSet::new();
        for peer in plan.receivers.iter().copied().filter(|p| *p != node.me) {
            let (node, call) = (Arc::clone(node), call.clone());
            asks.spawn(async move { node.net.call(peer, &call, CALL_TIMEOUT).await });
        }
        let mut digests = Vec::new();
        if plan.receivers.contains(&node.me) {
            digests.push(held(node, plan.proposal).map(hex::encode));
        }
        while let Some(answer) = asks.join_next().await {
            let digest = match answer
                .ok()
                .and_then(|a| a.ok())
                .map(|b| serde_json::from_slice::<Reply>(&b))
            {
                Some(Ok(Reply::NextKeys { digest })) => digest,
                _ => None,
            };
            digests.push(digest);
        }
        digests
            .first()
            .is_some_and(|first| first.is_some() && digests.iter().all(|d| d == first))
    }
}

/// NodeSet is at a later epoch than this node runs: a member switches to it with the new shares
/// it holds, if they are the confirmed ones; a node left out erases its shares. Runs once per
/// chain epoch (a failed read is tried again).
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
    let outcome = if !me && view.keys_epoch != view.epoch {
        // An admin's reset of the node list (setNodes), not an epoch its nodes confirmed: nothing
        // shows the new nodes hold the keys, so this node keeps its shares (and serves no client).
        Err(Retry::Never(format!(
            "NodeSet's epoch {} leaves this node out, but its nodes never confirmed holding the root keys; this node keeps its shares",
            view.epoch
        )))
    } else if !me {
        leave(node, chain_epoch).await
    } else {
        switch(node, current, &view).await
    };
    match outcome {
        Ok(()) => node.settled.store(chain_epoch, std::sync::atomic::Ordering::Release),
        Err(Retry::Later(e)) => {
            tracing::warn!(epoch = chain_epoch, error = %e, "cannot settle into NodeSet's new epoch yet; trying again")
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

/// Erases every root key share and one-time secret: NodeSet moved to an epoch without this node.
async fn leave(node: &Arc<Node>, chain_epoch: u64) -> Result<(), Retry> {
    stop_serving(node);
    let store = Arc::clone(&node.store);
    let erased = tokio::task::spawn_blocking(move || {
        if let crate::epoch::StoredRootKeys::Erased(_) = crate::epoch::load_root_keys(&store)? {
            // Erased when an earlier epoch left this node out.
            return Ok((0, 0));
        }
        let shares = erase_root_keys(&store, chain_epoch)?;
        let takes = store.takes()?;
        let presignatures = store.purge_one_time(takes, 0)?;
        Ok::<_, crate::store::StoreError>((shares, presignatures))
    })
    .await
    .map_err(|e| Retry::Later(e.to_string()))?
    .map_err(|e| Retry::Later(e.to_string()))?;
    if erased == (0, 0) {
        return Ok(());
    }
    tracing::warn!(
        epoch = chain_epoch,
        shares = erased.0,
        presignatures = erased.1,
        "NodeSet's new epoch leaves this node out: its root key shares and presignatures are erased"
    );
    Ok(())
}

/// Forgets the shares held in memory (requests already running finish with their own copy).
fn stop_serving(node: &Node) {
    if let Ok(mut next) = node.next.lock() {
        *next = None;
    }
    if let Ok(mut running) = node.resharing.lock() {
        if let Some((_, task)) = running.take() {
            task.abort();
        }
    }
}

async fn switch(node: &Arc<Node>, current: &Arc<Epoch>, view: &NodeSetView) -> Result<(), Retry> {
    if view.epoch != current.number + 1 {
        return Err(Retry::Never(format!(
            "it runs epoch {} and missed the reshare into epoch {}",
            current.number, view.epoch
        )));
    }
    let next = node.next.lock().ok().and_then(|n| n.clone());
    let Some(next) = next.filter(|n| n.epoch == view.epoch) else {
        return Err(Retry::Never(format!(
            "it holds no shares of epoch {} (it missed the reshare)",
            view.epoch
        )));
    };
    if view.keys_epoch != view.epoch || next.public.record() != view.keys {
        return Err(Retry::Never(format!(
            "NodeSet confirmed other shares for epoch {} than this node holds",
            view.epoch
        )));
    }
    let peers = match peers_of(node, &view.nodes) {
        Ok(peers) => peers,
        Err(e) => return Err(Retry::Never(e)),
    };
    let store = Arc::clone(&node.store);
    let number = view.epoch;
    let settled = tokio::task::spawn_blocking(move || {
        let shares = switch_root_keys(&store, number)?;
        let takes = store.takes()?;
        let presignatures = store.purge_one_time(takes, 0)?;
        Ok::<_, crate::store::StoreError>((shares, presignatures))
    })
    .await
    .map_err(|e| Retry::Later(e.to_string()))?
    .map_err(|e| Retry::Later(e.to_string()))?;
    let epoch = Epoch::new(number, view.threshold as usize, peers);
    epoch.set_shared_keys(Arc::clone(&next.keys));
    node.epoch.replace(epoch);
    if let Ok(mut held) = node.next.lock() {
        *held = None;
    }
    tracing::info!(
        epoch = number,
        threshold = view.threshold,
        nodes = ?view.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        old_shares_erased = settled.0,
        presignatures_discarded = settled.1,
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

/// At start-up, for a node that holds the shares of the epoch before NodeSet's: the switch it did
/// not make before it stopped (NodeSet confirmed the epoch meanwhile). Makes the stored new shares
/// current if they are the confirmed ones.
pub async fn resume_switch(node: &Arc<Node>, epoch: &Epoch) -> Result<RootKeys, String> {
    let registry = node
        .options
        .registry
        .clone()
        .ok_or("no chain to check the new shares against")?;
    let view = registry.node_set().await.map_err(|e| e.to_string())?;
    let store = Arc::clone(&node.store);
    let next = tokio::task::spawn_blocking(move || load_next_root_keys(&store))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .filter(|n| n.epoch == epoch.number)
        .ok_or("it holds no shares of that epoch (it missed the reshare)")?;
    if view.keys_epoch != epoch.number || PublicKeys::of(&next.keys).record() != view.keys {
        return Err("NodeSet confirmed other shares than this node holds".into());
    }
    let store = Arc::clone(&node.store);
    let number = epoch.number;
    tokio::task::spawn_blocking(move || {
        switch_root_keys(&store, number)?;
        let takes = store.takes()?;
        store.purge_one_time(takes, 0)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    tracing::info!(
        epoch = number,
        "switched at start-up to the epoch NodeSet confirmed while this node was down"
    );
    Ok(next.keys)
}

/// The epoch of the reshared shares stored here, if any.
pub async fn stored_next(node: &Arc<Node>) -> Option<u64> {
    let store = Arc::clone(&node.store);
    match tokio::task::spawn_blocking(move || load_next_root_keys(&store)).await {
        Ok(Ok(next)) => next.map(|n| n.epoch),
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
