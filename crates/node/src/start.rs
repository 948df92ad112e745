//! Start-up and the node's background tasks: opening the data file and checking the identity,
//! the first DKG (or loading the root key shares), the rollback check, peer heartbeats, the
//! sweep, then serving HTTP until shutdown. The one module that wires every service together.
//!
//! Tasks spawned: one heartbeat per peer, the sweep (sessions, mailbox, refills, discards, peer
//! counters, once a second), and the bootstrap that ends in the presignature pool's run.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sigil_chain::alloy::primitives::Address;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_mesh::{Identity, NodeKey};

use crate::actions::store::{ActionStore, Quota, ACTIONS_FILE};
use crate::config::{ConfigError, Settings};
use crate::epoch::{load_root_keys, StoredRootKeys};
use crate::epoch::{Epoch, EpochHandle};
use crate::mesh::net::Net;
use crate::mesh::session::Sessions;
use crate::mesh::wire::{Call, Message, Reply};
use crate::metrics::Metrics;
use crate::node::{Node, NodeError, RunOptions, DATA_FILE};
use crate::store::{SignedTakes, StorageKey, Store, StoreError, Taker};

const IDENTITY: &str = "identity";

/// The secret record of the node's secp256k1 signing key (handshakes, root-key records).
const SIGNER: &str = "signer";

/// What NodeSet lists for a node: the public halves of the keys in its data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicIdentity {
    /// The X25519 mesh key peers pin.
    pub key: NodeKey,
    /// The address of the secp256k1 signing key.
    pub signer: Address,
}

/// Creates a data directory with a fresh identity and signing key (if it has none) and returns
/// their public halves.
pub fn init_data_dir(data_dir: &std::path::Path, key: &StorageKey) -> Result<PublicIdentity, NodeError> {
    std::fs::create_dir_all(data_dir).map_err(|source| NodeError::Io {
        what: format!("creating {}", data_dir.display()),
        source,
    })?;
    let store = Store::open(&data_dir.join(DATA_FILE), key)?;
    Ok(PublicIdentity {
        key: identity(&store)?.public(),
        signer: signing_key(&store)?.address(),
    })
}

/// For a node NodeSet no longer lists, in an epoch its nodes confirmed with `recorded` as its
/// root keys: erases the root key shares and one-time secrets its data file still holds (it was
/// down when the epoch that left it out began). Only shares of those very root keys are erased,
/// so a node pointed at another network's NodeSet loses nothing. Returns the shares erased.
pub fn retire(settings: &Settings, epoch: u64, recorded: &sigil_chain::vouch::RootKeys) -> Result<usize, NodeError> {
    let key = settings.storage_key()?;
    let store = Store::open(&settings.data_dir.join(DATA_FILE), &key)?;
    match load_root_keys(&store)? {
        StoredRootKeys::Both(_, keys) if crate::epoch::PublicKeys::of(&keys).ecdsa == recorded.ecdsa => {
            let (shares, presignatures) = crate::epoch::erase_root_keys(&store, epoch)?;
            tracing::warn!(
                epoch,
                shares,
                presignatures,
                "NodeSet's epoch {epoch} leaves this node out: its root key shares and presignatures are erased"
            );
            Ok(shares)
        }
        _ => Ok(0),
    }
}

fn signing_key(store: &Store) -> Result<PrivateKeySigner, StoreError> {
    if let Some(secret) = store.secret(SIGNER)? {
        // A stored key that does not parse is never replaced: NodeSet lists its address.
        return PrivateKeySigner::from_slice(secret.as_slice())
            .map_err(|_| StoreError::Database("the stored signing key is not a secp256k1 key".into()));
    }
    let fresh = PrivateKeySigner::random();
    let secret = zeroize::Zeroizing::new(fresh.to_bytes().0);
    store.put_secret(SIGNER, secret.as_slice())?;
    Ok(fresh)
}

fn identity(store: &Store) -> Result<Identity, StoreError> {
    if let Some(secret) = store.secret(IDENTITY)? {
        if let Ok(bytes) = <[u8; 32]>::try_from(secret.as_slice()) {
            return Ok(Identity::from_secret(bytes));
        }
    }
    let fresh = Identity::generate().map_err(|e| StoreError::Database(e.to_string()))?;
    store.put_secret(IDENTITY, fresh.secret_bytes())?;
    Ok(fresh)
}

/// Opens the action store, moving in the code an older node kept in the data file.
async fn open_action_store(settings: &Settings, store: &Store) -> Result<Arc<ActionStore>, NodeError> {
    let path = settings.data_dir.join(ACTIONS_FILE);
    let actions = Arc::new(ActionStore::open(&path, Quota::of(&settings.config.actions))?);
    let wait = std::time::Duration::from_secs(60);
    for (cid, code) in store.take_legacy_actions()? {
        if let Err(e) = actions.put(cid.clone(), code, wait).await {
            tracing::warn!(%cid, "action not moved to {ACTIONS_FILE}: {e}");
        }
    }
    Ok(actions)
}

/// Runs the node until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let key = settings.storage_key()?;
    let me = settings.config.id;
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| NodeError::Io {
        what: format!("creating {}", settings.data_dir.display()),
        source,
    })?;
    let store = Arc::new(Store::open(&settings.data_dir.join(DATA_FILE), &key)?);
    drop(key);
    let identity = identity(&store)?;
    let pinned = settings
        .peers
        .iter()
        .find(|(id, _, _)| *id == me)
        .map(|(_, _, k)| *k)
        .ok_or_else(|| ConfigError::Invalid(format!("node {me} is not in the peer list")))?;
    if identity.public() != pinned {
        return Err(NodeError::IdentityMismatch {
            id: me,
            actual: identity.public(),
            pinned,
        });
    }
    let signer = signing_key(&store)?;
    if let Some(listed) = &settings.signer {
        if !listed.eq_ignore_ascii_case(&signer.address().to_string()) {
            return Err(NodeError::SignerMismatch {
                id: me,
                actual: signer.address().to_string(),
                listed: listed.clone(),
            });
        }
    }
    let listener = tokio::net::TcpListener::bind(settings.config.listen)
        .await
        .map_err(|source| NodeError::Io {
            what: format!("listening on {}", settings.config.listen),
            source,
        })?;
    let limits = &settings.config.limits;
    let queues = crate::mesh::net::QueueLimits {
        messages: limits.peer_queue_messages,
        bytes: limits.peer_queue_bytes,
    };
    let net = Net::start(
        me,
        identity,
        &settings.peers,
        queues,
        settings.config.mesh_source_address,
    );
    let threshold = settings.threshold;
    // A joining node's peers are both epochs' nodes; its current epoch is that of the others.
    let members: Vec<(u32, String, NodeKey)> = match &settings.members {
        Some(ids) => settings
            .peers
            .iter()
            .filter(|(id, _, _)| ids.contains(id))
            .cloned()
            .collect(),
        None => settings.peers.clone(),
    };
    let epoch = Epoch::new(settings.epoch, threshold, members);
    let taker = Taker::start(Arc::clone(&store))?;
    let peer_takes = store.peer_takes()?;
    let action_store = open_action_store(&settings, &store).await?;
    let oidc = crate::auth::oidc::Oidc::new(settings.config.auth.oidc_config())
        .map_err(|e| NodeError::Config(ConfigError::Invalid(e)))?;
    let fetcher = crate::actions::fetch::Fetcher::new(
        &settings.config.actions.egress,
        settings.config.listen,
        &Node::action_rpc_urls(&settings, options.registry.as_ref().map(|r| r.rpc_url())),
    )
    .map_err(|e| NodeError::Config(ConfigError::Invalid(e)))?;
    let node = Arc::new(Node {
        me,
        fetcher,
        epoch: EpochHandle::new(epoch),
        store,
        action_store,
        taker,
        net,
        sessions: Arc::new(Sessions::new(limits.early_bytes_per_peer)),
        unverified: crate::mesh::frames::Budgets::new(limits.mesh_unverified_bytes),
        metrics: Arc::new(Metrics::default()),
        options,
        signer,
        peers_ready: Mutex::new(HashMap::new()),
        peer_takes: Mutex::new(peer_takes),
        signed_takes: Mutex::new(None),
        witnessed: std::sync::atomic::AtomicBool::new(false),
        known_keys: Mutex::new(HashMap::new()),
        verified_auth: Mutex::new(HashMap::new()),
        verified_capabilities: Mutex::new(HashMap::new()),
        principal_limits: Mutex::new(crate::auth::limits::PrincipalLimits::new(
            settings.config.auth.rate_per_principal,
            settings.config.auth.burst_per_principal,
            settings.config.auth.tracked_principals,
        )),
        oidc,
        derived: Mutex::new(HashMap::new()),
        mailbox: crate::actions::mailbox::Mailbox::new(limits.mailbox_bytes_per_peer),
        action_slots: Arc::new(tokio::sync::Semaphore::new(settings.config.actions.max_concurrent)),
        condition_slots: Arc::new(tokio::sync::Semaphore::new(settings.config.actions.max_concurrent)),
        spares: crate::actions::warm::Spares::new(
            sigil_actions::Config {
                limits: settings.config.actions.limits.clone(),
                ethers_bundle: settings.config.actions.ethers_bundle.clone(),
            },
            settings.config.actions.warm_ethers,
            crate::actions::run::ACTION_THREAD_STACK,
        ),
        chain_view: Mutex::new(None),
        next: Mutex::new(Vec::new()),
        key_writes: tokio::sync::Mutex::new(()),
        reshare_suspects: Mutex::new(Vec::new()),
        resharing: Mutex::new(None),
        settled: std::sync::atomic::AtomicU64::new(0),
        settle_said: std::sync::atomic::AtomicU64::new(0),
        settings,
    });
    tracing::info!(
        node = me,
        listen = %node.settings.config.listen,
        nodes = node.epoch().peers.len(),
        threshold,
        chain = node.options.registry.as_ref().map(|r| r.chain_id()),
        "node starting"
    );
    if let Some(fault) = node.options.fault() {
        tracing::warn!(
            fault = fault.name(),
            "TEST FAULT ENABLED: this node misbehaves on purpose"
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for peer in node.net.peer_ids() {
        tasks.spawn(crate::liveness::heartbeat(Arc::clone(&node), peer));
    }
    tasks.spawn(sweep(Arc::clone(&node)));
    if node.has_fault(crate::node::Fault::FloodPeers) {
        tasks.spawn(flood_peers(Arc::clone(&node)));
    }
    if node.has_fault(crate::node::Fault::DrainPool) {
        tasks.spawn(drain_pool(Arc::clone(&node)));
    }
    tasks.spawn(bootstrap(Arc::clone(&node)));
    tasks.spawn(crate::follow::follow(Arc::clone(&node)));
    tasks.spawn(crate::reshare::watch(Arc::clone(&node)));
    let peer_urls: Vec<String> = node.epoch().peers.iter().map(|(_, url, _)| url.clone()).collect();
    let listed = crate::http::guard::addresses_of(&peer_urls).await;
    node.unverified.set_listed(listed.iter().copied());
    let guard = crate::http::guard::Guard::new(&node.settings.config.limits, listed);
    let app = crate::http::guarded_app(Arc::clone(&node), Arc::clone(&guard));
    let listener = crate::http::guard::GuardedListener::new(listener, guard, Arc::clone(&node.metrics));
    crate::http::serve::serve(listener, app, shutdown).await;
    tasks.abort_all();
    tracing::info!(node = me, "node stopped");
    Ok(())
}

/// The `flood-peers` test fault: every 200 ms, to every peer, notices and calls an honest node
/// never sends (see [`crate::node::Fault::FloodPeers`]).
async fn flood_peers(node: Arc<Node>) {
    use rand_core::{OsRng, RngCore};
    let mut sent: u64 = 0;
    let mut session = [0u8; 32];
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ids: Vec<u32> = node.epoch().ids().collect();
        // Protocol messages for a session nobody opens, a new one every 0.8 s: more often would
        // spend this node's own share of its peers' early sessions (256 kept 60 s), and its
        // genuine early messages would be dropped with the junk.
        if sent % 4 == 0 {
            OsRng.fill_bytes(&mut session);
        }
        for peer in node.net.peer_ids() {
            for _ in 0..20 {
                let seq = OsRng.next_u64();
                node.net.send(peer, Message::Stored(seq).encode());
                node.net.send(
                    peer,
                    Message::Failed {
                        seq,
                        silent: ids.clone(),
                    }
                    .encode(),
                );
                node.net.send(peer, Message::Protocol(session, vec![7; 256]).encode());
                let mut request = [0u8; 16];
                OsRng.fill_bytes(&mut request);
                node.net.send(
                    peer,
                    Message::Action {
                        request,
                        topic: "once/flood".into(),
                        value: "x".repeat(256),
                    }
                    .encode(),
                );
            }
            // A well-formed order for a signing set of t nodes with this one in it, which this
            // node then never runs.
            let threshold = node.epoch().threshold;
            let mut participants: Vec<u32> = std::iter::once(node.me)
                .chain(ids.iter().copied().filter(|id| *id != node.me))
                .take(threshold)
                .collect();
            participants.sort_unstable();
            let start = crate::mesh::wire::Start {
                seq: OsRng.next_u64(),
                participants,
            };
            node.net.send(peer, Message::Start(start).encode());
            let malformed = serde_json::to_vec(&Call::Allocate {
                request: "not hex".into(),
                digest: "zz".into(),
                exclude: (0..1000).collect(),
                at: crate::node::unix_now(),
                scheme: Default::default(),
            })
            .unwrap_or_default();
            let node = Arc::clone(&node);
            tokio::spawn(async move {
                let _ = node.net.call(peer, &malformed, Duration::from_secs(1)).await;
            });
        }
        sent += 1;
        if sent % 25 == 1 {
            tracing::warn!(rounds = sent, "TEST FAULT: flooding peers");
        }
    }
}

/// The `drain-pool` test fault: every 100 ms, 20 allocation calls to every peer for requests
/// nobody made (see [`crate::node::Fault::DrainPool`]).
async fn drain_pool(node: Arc<Node>) {
    use rand_core::{OsRng, RngCore};
    let mut rounds: u64 = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for peer in node.net.peer_ids() {
            for _ in 0..20 {
                let mut request = [0u8; 16];
                let mut digest = [0u8; 32];
                OsRng.fill_bytes(&mut request);
                OsRng.fill_bytes(&mut digest);
                let call = serde_json::to_vec(&Call::Allocate {
                    request: hex::encode(request),
                    digest: hex::encode(digest),
                    exclude: Vec::new(),
                    at: crate::node::unix_now(),
                    scheme: Default::default(),
                })
                .unwrap_or_default();
                let node = Arc::clone(&node);
                tokio::spawn(async move {
                    let _ = node.net.call(peer, &call, Duration::from_secs(15)).await;
                });
            }
        }
        rounds += 1;
        if rounds % 50 == 1 {
            tracing::warn!(rounds, "TEST FAULT: asking for presignatures of requests nobody made");
        }
    }
}

async fn sweep(node: Arc<Node>) {
    let mut saved: HashMap<u32, SignedTakes> = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        node.sessions.sweep();
        node.mailbox.sweep();
        node.taker.refill_soon();
        let given_up = node.taker.drain_dropped();
        crate::signing::pool::queue_discards(&node, &given_up);
        crate::signing::pool::send_discards_in_background(&node);
        // Peers' take counters are kept on disk, so this node still vouches for them after its
        // own restart (a whole network restarted together still catches a restored backup).
        let seen = node.peer_takes.lock().map(|m| m.clone()).unwrap_or_default();
        let changed: Vec<(u32, SignedTakes)> = seen
            .into_iter()
            .filter(|(peer, takes)| saved.get(peer) != Some(takes))
            .collect();
        if !changed.is_empty() {
            let store = Arc::clone(&node.store);
            let batch = changed.clone();
            if let Ok(Ok(())) = tokio::task::spawn_blocking(move || store.raise_peer_takes(&batch)).await {
                saved.extend(changed);
            }
        }
    }
}

/// Loads the root key shares, or makes them by DKG when this network starts for the first time.
async fn bootstrap(node: Arc<Node>) {
    // The epoch whose keys this loads or makes.
    let epoch = node.epoch();
    let store = Arc::clone(&node.store);
    let loaded = tokio::task::spawn_blocking(move || load_root_keys(&store)).await;
    let keys = match loaded {
        Ok(Ok(StoredRootKeys::Both(stored, keys))) if stored.is_none_or(|n| n == epoch.number) => {
            let keys = *keys;
            tracing::info!(node = node.me, "root key shares loaded; DKG is not run again");
            keys
        }
        Ok(Ok(StoredRootKeys::Both(Some(stored), _))) if stored < epoch.number => {
            match crate::reshare::resume_switch(&node, &epoch).await {
                Ok(keys) => keys,
                Err(e) => {
                    tracing::error!(
                        stored,
                        epoch = epoch.number,
                        "this node holds the root key shares of epoch {stored}, not of NodeSet's epoch {}: {e}; it serves nothing",
                        epoch.number
                    );
                    return;
                }
            }
        }
        Ok(Ok(StoredRootKeys::Both(stored, _))) => {
            tracing::error!(
                stored = stored.unwrap_or_default(),
                epoch = epoch.number,
                "this node holds root key shares of a later epoch than NodeSet's; it serves nothing"
            );
            return;
        }
        Ok(Ok(StoredRootKeys::Erased(at))) if !epoch.contains(node.me) => {
            // A node that left in epoch `at` and is proposed again: it joins like a new one.
            tracing::info!(
                erased_in = at,
                epoch = epoch.number + 1,
                "this node, which erased its shares when it left, is proposed again: it waits for the reshare"
            );
            return wait_for_reshare(node).await;
        }
        Ok(Ok(StoredRootKeys::Erased(at))) => {
            tracing::error!(
                erased_in = at,
                "this node erased its root key shares when NodeSet's epoch {at} left it out; it serves nothing and the DKG does not run again"
            );
            return;
        }
        Ok(Ok(StoredRootKeys::None)) if !epoch.contains(node.me) => {
            // A fresh node joining the proposed epoch: the reshare gives it its shares, and the
            // switch installs them. Nothing in its store can have been rolled back.
            tracing::info!(
                epoch = epoch.number + 1,
                "this node joins the proposed epoch: it waits for the reshare and serves once NodeSet confirms it"
            );
            return wait_for_reshare(node).await;
        }
        Ok(Ok(StoredRootKeys::None)) => {
            if let Some(next) = crate::reshare::stored_next(&node).await {
                // Shares a reshare gave this node (it joined), for the epoch NodeSet is at now.
                match crate::reshare::resume_switch(&node, &epoch).await {
                    Ok(keys) => keys,
                    Err(e) => {
                        tracing::error!(
                            reshared = next,
                            epoch = epoch.number,
                            "this node holds reshared shares but not those of NodeSet's epoch: {e}; it serves nothing"
                        );
                        return;
                    }
                }
            } else if crate::reshare::keys_recorded(&node).await {
                // A DKG run this node confirmed and the others finished while it did not (or it
                // stopped before the end): its tentative shares, if NodeSet's record is theirs.
                match crate::dkg::adopt(&node, &epoch).await {
                    Some(keys) => {
                        node.witnessed.store(true, std::sync::atomic::Ordering::Release);
                        keys
                    }
                    None => {
                        tracing::error!(
                            epoch = epoch.number,
                            "NodeSet records this network's root keys already, and this node holds no share of them (it missed the DKG or the reshare that would have given it one); it runs no DKG and waits for a reshare: propose the same nodes again (sigil admin epoch propose)"
                        );
                        return wait_for_reshare(node).await;
                    }
                }
            } else {
                match crate::dkg::first_dkg(&node, &epoch).await {
                    Some(keys) => {
                        node.witnessed.store(true, std::sync::atomic::Ordering::Release);
                        keys
                    }
                    // The other nodes finished the DKG and recorded the keys without this one:
                    // a reshare (the admin proposes the same nodes again) gives it its shares.
                    None if crate::reshare::keys_recorded(&node).await => return wait_for_reshare(node).await,
                    None => return,
                }
            }
        }
        Ok(Ok(StoredRootKeys::Partial)) => {
            tracing::error!("only one of the two root key shares is stored; refusing to run DKG again");
            return;
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot load root key shares");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot load root key shares");
            return;
        }
    };
    epoch.set_keys(keys);
    if !node.witnessed() {
        if !check_rollback(&node).await {
            tracing::error!("the rollback check could not finish; this node signs nothing until it restarts");
            return;
        }
        node.witnessed.store(true, std::sync::atomic::Ordering::Release);
    }
    discard_reserved(&node).await;
    // Only a store known not to be rolled back may hand presignatures out ahead of requests.
    node.taker.start_reserving();
    // One pool per epoch: `run` returns when the node switches to the next one.
    loop {
        crate::signing::pool::run(Arc::clone(&node)).await;
    }
}

/// For a node of this network without root key shares of its own (it joins, or its first DKG
/// finished at the others only): waits until a reshare gives it shares and the switch installs
/// them, then runs the presignature pools. Nothing in its store can have been rolled back.
async fn wait_for_reshare(node: Arc<Node>) {
    node.witnessed.store(true, std::sync::atomic::Ordering::Release);
    while node.keys().is_none() {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    node.taker.start_reserving();
    loop {
        crate::signing::pool::run(Arc::clone(&node)).await;
    }
}

/// Presignatures this node took ahead of their requests before it stopped are never used (their
/// shares may have been released): their pools' owners are told to drop the slots (this node's
/// own pool included), again by the sweep until each owner answered.
async fn discard_reserved(node: &Arc<Node>) {
    let store = Arc::clone(&node.store);
    let before = match tokio::task::spawn_blocking(move || store.reserved_before()).await {
        Ok(Ok(before)) => before,
        _ => return,
    };
    if before.is_empty() {
        return;
    }
    tracing::info!(
        count = before.len(),
        "presignatures taken ahead of requests before the restart are discarded"
    );
    crate::signing::pool::report_discarded(node, &before);
}

/// Asks the peers not in `answers` for the take counter they saw from this node, within `wait`,
/// and adds the answers that hold: a counter this node signed, or none at all (0). A peer cannot
/// make up a higher one; one whose counter does not verify is not counted.
async fn witness_round(node: &Arc<Node>, answers: &mut HashMap<u32, u64>, wait: Duration) {
    let call = serde_json::to_vec(&Call::Witness).unwrap_or_default();
    let mut asks = tokio::task::JoinSet::new();
    for peer in node.net.peer_ids().into_iter().filter(|p| !answers.contains_key(p)) {
        let node = Arc::clone(node);
        let call = call.clone();
        asks.spawn(async move { (peer, node.net.call(peer, &call, wait).await) });
    }
    while let Some(reply) = asks.join_next().await {
        let Ok((peer, Ok(bytes))) = reply else { continue };
        let Ok(Reply::Witnessed { takes, proof }) = serde_json::from_slice::<Reply>(&bytes) else {
            continue;
        };
        match SignedTakes::from_hex(takes, &proof) {
            Some(signed) if node.signed_by_me(&signed) => {
                answers.insert(peer, takes);
            }
            _ if takes == 0 => {
                answers.insert(peer, 0);
            }
            _ => tracing::warn!(
                peer,
                takes,
                "a peer reports a take counter this node never signed; ignored"
            ),
        }
    }
}

/// Asks every peer for the highest take counter it saw from this node, until `t − 1` distinct peers
/// answered (with this node, a whole signing set's worth). If one saw more than this store holds,
/// the data file is an older copy (a restored backup): the presignatures and triples in it may
/// already have been used, and using one again would leak the root key (DESIGN §6.2), so they are
/// all discarded before this node signs anything. Until enough peers answer, it signs nothing.
/// Returns false when the discarding failed (the node must then never sign).
async fn check_rollback(node: &Arc<Node>) -> bool {
    let needed = node.epoch().threshold.saturating_sub(1).max(1);
    let mut answers: HashMap<u32, u64> = HashMap::new();
    let mut last_report = Instant::now();
    while answers.len() < needed {
        witness_round(node, &mut answers, Duration::from_secs(2)).await;
        if answers.len() < needed {
            if last_report.elapsed() > Duration::from_secs(5) {
                tracing::warn!(
                    answered = answers.len(),
                    needed,
                    "waiting for peers to confirm this data file is not older than what this node used; not signing until then"
                );
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // One more round for the peers that have not answered yet: the highest count wins, so a
    // fast peer understating it does not decide alone.
    witness_round(node, &mut answers, Duration::from_secs(1)).await;
    let seen = answers.values().copied().max();
    let answered = answers.len();
    let store = Arc::clone(&node.store);
    let mine = tokio::task::spawn_blocking(move || store.takes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    match seen {
        Some(theirs) if theirs > mine => {
            let store = Arc::clone(&node.store);
            // Slot numbers restart far above any handed out since the copy was made.
            let floor = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(u64::MAX / 2);
            match tokio::task::spawn_blocking(move || store.purge_one_time(theirs, floor)).await {
                Ok(Ok(discarded)) => tracing::error!(
                    node = node.me,
                    mine,
                    theirs,
                    discarded,
                    "this data file is older than what this node already used (restored from a backup?): every presignature and triple in it was discarded"
                ),
                _ => {
                    tracing::error!("cannot discard the presignatures of a rolled-back store");
                    return false;
                }
            }
        }
        Some(_) => tracing::info!(peers = answered, "rollback check passed"),
        None => {}
    }
    true
}
