//! The running node: state shared by the HTTP handlers and the background tasks, start-up, the
//! root-key DKG, peer liveness and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sigil_mesh::{Identity, NodeKey};
use sigil_tss::derive::KeyId;
use sigil_tss::k256::ProjectivePoint;
use sigil_tss::{Bls12381G1, KeyShare, PartyId, Secp256k1, SessionId, Vss};

use sigil_chain::alloy::primitives::Address;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::registry::Registry;

use crate::config::{ConfigError, Settings};
use crate::metrics::Metrics;
use crate::net::Net;
use crate::pool::Pool;
use crate::session::Sessions;
use crate::store::{SignedTakes, StorageKey, Store, StoreError, Taker};
use crate::wire::{Call, Reply};

/// Name of the data file inside the data directory.
pub const DATA_FILE: &str = "sigil.redb";
const ECDSA_ROOT: &str = "ecdsa-root";
const BLS_ROOT: &str = "bls-root";
const IDENTITY: &str = "identity";
/// The secret record of the node's secp256k1 signing key (handshakes, root-key records).
const SIGNER: &str = "signer";
const DKG_DEADLINE: Duration = Duration::from_secs(60);
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Most derived PKP public keys remembered (the map is emptied when full).
const DERIVED_KEYS: usize = 4096;

/// A deliberate misbehaviour, for tests of the network's robustness only. It can be switched on
/// only in a build with the `test-faults` feature ([`RunOptions::fault`]); release builds have
/// no way to set one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every signature share this node releases is wrong.
    CorruptSignatureShares,
    /// As allocator, binds every other presignature to two requests (the next one gets it too).
    DoubleBind,
    /// Answers pings as ready but never takes part in presignature runs.
    SilentPresigner,
    /// Tells a restarting peer it saw a far higher take counter from it than it did (the proof
    /// is the peer's real signature over another count), to make it discard its stock.
    InflatedWitness,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Self::CorruptSignatureShares,
        Self::DoubleBind,
        Self::SilentPresigner,
        Self::InflatedWitness,
    ];

    /// The name used on the command line and in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CorruptSignatureShares => "corrupt-signature-shares",
            Self::DoubleBind => "double-bind",
            Self::SilentPresigner => "silent-presigner",
            Self::InflatedWitness => "inflated-witness",
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(Fault::name).collect();
            format!("unknown fault {s:?} (known: {})", known.join(", "))
        })
    }
}

/// Switches given on the command line.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// The chain: node set, PKP owners and permissions. Without it every sign request is refused.
    pub registry: Option<Arc<Registry>>,
    /// Test-only misbehaviour.
    #[cfg(feature = "test-faults")]
    pub fault: Option<Fault>,
}

impl RunOptions {
    /// The test fault switched on, if any (always `None` without the `test-faults` feature).
    pub fn fault(&self) -> Option<Fault> {
        #[cfg(feature = "test-faults")]
        return self.fault;
        #[cfg(not(feature = "test-faults"))]
        None
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why the node cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory or the listener.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The signing key in the data directory is not the one NodeSet lists for this node.
    #[error("this node's signing address is {actual}, but NodeSet lists {listed} for node {id}")]
    SignerMismatch {
        /// Node id.
        id: u32,
        /// Address of the key in the data directory.
        actual: String,
        /// Address in NodeSet.
        listed: String,
    },
    /// The identity in the data directory is not the key the peer list pins for this node.
    #[error("this node's identity key is {actual}, but the peer list pins {pinned} for node {id}")]
    IdentityMismatch {
        /// Node id.
        id: u32,
        /// Key in the data directory.
        actual: NodeKey,
        /// Key in the config.
        pinned: NodeKey,
    },
}

/// This node's shares of the network's root keys.
pub struct RootKeys {
    /// secp256k1 (PKPs derive from it).
    pub ecdsa: KeyShare<Secp256k1>,
    /// BLS12-381 (encryption).
    pub bls: KeyShare<Bls12381G1>,
}

/// Everything a running node shares between its tasks.
pub struct Node {
    /// Checked configuration.
    pub settings: Settings,
    /// This node's id.
    pub me: u32,
    /// Shares needed.
    pub threshold: usize,
    /// The data file.
    pub store: Arc<Store>,
    /// Takes presignatures for sign requests, many per durable commit.
    pub taker: Taker,
    /// The mesh.
    pub net: Arc<Net>,
    /// Running protocol sessions.
    pub sessions: Arc<Sessions>,
    /// Presignature pool and allocator.
    pub pool: Pool,
    /// Request metrics.
    pub metrics: Metrics,
    /// Command-line switches.
    pub options: RunOptions,
    /// Hash of the node set (ids and keys): separates this network's sessions from any other's.
    pub fingerprint: [u8; 32],
    /// The secp256k1 key this node signs its handshakes and the root-key record with.
    pub(crate) signer: PrivateKeySigner,
    keys: RwLock<Option<Arc<RootKeys>>>,
    peers_ready: Mutex<HashMap<u32, bool>>,
    /// The highest take counter each peer reported, as it signed it (see [`Store::takes`]).
    peer_takes: Mutex<HashMap<u32, SignedTakes>>,
    /// The public parts of the root keys and their signed record (see [`Node::public_keys`]).
    pub(crate) public: std::sync::OnceLock<Arc<(crate::vouch::PublicKeys, Option<[u8; 65]>)>>,
    /// This node's last signed take counter (see [`Node::sign_takes`]).
    pub(crate) signed_takes: Mutex<Option<SignedTakes>>,
    /// Set once this node checked with its peers that its store was not rolled back.
    witnessed: std::sync::atomic::AtomicBool,
    known_keys: Mutex<HashMap<Vec<u8>, KeyId>>,
    /// Auth signatures already verified, by hash of their fields: a wallet reuses one until it
    /// expires, and the signature recovery need not run again (time limits are re-checked).
    pub(crate) verified_auth: Mutex<HashMap<[u8; 32], sigil_chain::siwe::VerifiedAuth>>,
    /// PKP public keys derived so far, by key id (with the root they were derived from).
    derived: Mutex<HashMap<[u8; 32], (ProjectivePoint, ProjectivePoint)>>,
    /// Values exchanged between the nodes running the same action request.
    pub mailbox: crate::actions::Mailbox,
    /// Action runs allowed at once.
    pub(crate) action_slots: Arc<tokio::sync::Semaphore>,
    /// Actions run as access-control conditions allowed at once.
    pub(crate) condition_slots: Arc<tokio::sync::Semaphore>,
}

impl Node {
    /// The root key shares, once DKG has run.
    pub fn keys(&self) -> Option<Arc<RootKeys>> {
        self.keys.read().ok().and_then(|k| k.clone())
    }

    /// Node ids currently reachable, this one included, sorted.
    pub fn live(&self) -> Vec<u32> {
        self.settings
            .peers
            .iter()
            .map(|(id, _, _)| *id)
            .filter(|id| self.net.is_up(*id))
            .collect()
    }

    /// Node ids reachable and holding root key shares, this one included (if it has them), sorted.
    pub fn ready(&self) -> Vec<u32> {
        let ready = self.peers_ready.lock().map(|m| m.clone()).unwrap_or_default();
        let me_ready = self.keys().is_some();
        self.live()
            .into_iter()
            .filter(|id| {
                if *id == self.me {
                    me_ready
                } else {
                    ready.get(id).copied().unwrap_or(false)
                }
            })
            .collect()
    }

    /// Whether the rollback check has passed (sign requests wait for it).
    pub fn witnessed(&self) -> bool {
        self.witnessed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The highest take counter `peer` reported to this node, with its signature.
    pub fn seen_takes(&self, peer: u32) -> Option<SignedTakes> {
        self.peer_takes.lock().ok().and_then(|m| m.get(&peer).copied())
    }

    /// Whether the test fault `fault` is on.
    pub fn has_fault(&self, fault: Fault) -> bool {
        self.options.fault() == Some(fault)
    }

    /// Whether this node is the lowest live node, which owns the presignature pool.
    pub fn is_allocator(&self) -> bool {
        self.live().first() == Some(&self.me)
    }

    /// Remembers a PKP's public key and token id, so later requests can name it by either.
    pub fn remember_key(&self, key_id: KeyId, public_key: &[u8; 65], token_id: &[u8; 32]) {
        if let Ok(mut map) = self.known_keys.lock() {
            map.insert(public_key.to_vec(), key_id);
            map.insert(token_id.to_vec(), key_id);
        }
    }

    /// The public key of the PKP `key_id` under `root`, remembered (a derivation is a base-point
    /// multiplication, and every sign request needs it).
    pub fn pkp_public_key(&self, root: &ProjectivePoint, key_id: &KeyId) -> ProjectivePoint {
        if let Ok(map) = self.derived.lock() {
            if let Some((from, key)) = map.get(&key_id.0) {
                if from == root {
                    return *key;
                }
            }
        }
        let key = sigil_tss::derive::derive_public_key(root, key_id);
        if let Ok(mut map) = self.derived.lock() {
            if map.len() >= DERIVED_KEYS {
                map.clear();
            }
            map.insert(key_id.0, (*root, key));
        }
        key
    }

    /// The key id of a PKP named by its uncompressed public key or token id, if seen before.
    pub fn lookup_key(&self, name: &[u8]) -> Option<KeyId> {
        self.known_keys.lock().ok().and_then(|m| m.get(name).copied())
    }

    fn peers_ready(&self) -> usize {
        self.peers_ready
            .lock()
            .map(|m| m.values().filter(|r| **r).count())
            .unwrap_or(0)
    }
}

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
    let mut hasher = Sha256::new();
    hasher.update(b"sigil-network/v1");
    hasher.update((settings.threshold as u32).to_be_bytes());
    for (id, _, key) in &settings.peers {
        hasher.update(id.to_be_bytes());
        hasher.update(key.0);
    }
    let fingerprint: [u8; 32] = hasher.finalize().into();
    let listener = tokio::net::TcpListener::bind(settings.config.listen)
        .await
        .map_err(|source| NodeError::Io {
            what: format!("listening on {}", settings.config.listen),
            source,
        })?;
    let net = Net::start(me, identity, &settings.peers);
    let threshold = settings.threshold;
    let taker = Taker::start(Arc::clone(&store))?;
    let peer_takes = store.peer_takes()?;
    let node = Arc::new(Node {
        me,
        threshold,
        store,
        taker,
        net,
        sessions: Arc::new(Sessions::default()),
        pool: Pool::default(),
        metrics: Metrics::default(),
        options,
        fingerprint,
        signer,
        keys: RwLock::new(None),
        peers_ready: Mutex::new(HashMap::new()),
        peer_takes: Mutex::new(peer_takes),
        signed_takes: Mutex::new(None),
        public: std::sync::OnceLock::new(),
        witnessed: std::sync::atomic::AtomicBool::new(false),
        known_keys: Mutex::new(HashMap::new()),
        verified_auth: Mutex::new(HashMap::new()),
        derived: Mutex::new(HashMap::new()),
        mailbox: crate::actions::Mailbox::default(),
        action_slots: Arc::new(tokio::sync::Semaphore::new(settings.config.actions.max_concurrent)),
        condition_slots: Arc::new(tokio::sync::Semaphore::new(settings.config.actions.max_concurrent)),
        settings,
    });
    tracing::info!(
        node = me,
        listen = %node.settings.config.listen,
        nodes = node.settings.peers.len(),
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
        tasks.spawn(heartbeat(Arc::clone(&node), peer));
    }
    tasks.spawn(sweep(Arc::clone(&node)));
    tasks.spawn(bootstrap(Arc::clone(&node)));
    let app = crate::api::app(Arc::clone(&node));
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    tasks.abort_all();
    tracing::info!(node = me, "node stopped");
    served.map_err(|source| NodeError::Io {
        what: "serving HTTP".into(),
        source,
    })
}

async fn heartbeat(node: Arc<Node>, peer: u32) {
    let ping = serde_json::to_vec(&Call::Ping).unwrap_or_default();
    let mut was_up = None;
    loop {
        let reply = node.net.call(peer, &ping, Duration::from_secs(1)).await;
        let (up, ready) = match reply.as_deref().map(serde_json::from_slice::<Reply>) {
            Ok(Ok(Reply::Pong { ready, takes, proof })) => {
                if let (Some(signed), Ok(mut seen)) = (SignedTakes::from_hex(takes, &proof), node.peer_takes.lock()) {
                    // An equal count replaces a kept one too, so a stale signature does not stay.
                    if seen.get(&peer).is_none_or(|s| s.takes <= takes) {
                        seen.insert(peer, signed);
                    }
                }
                (true, ready)
            }
            Ok(_) => (true, false),
            Err(_) => (false, false),
        };
        node.net.mark(peer, up);
        if let Ok(mut map) = node.peers_ready.lock() {
            map.insert(peer, ready);
        }
        if was_up != Some(up) {
            if up {
                tracing::info!(peer, "peer up");
            } else if was_up.is_some() {
                tracing::warn!(peer, "peer down");
            }
            was_up = Some(up);
        }
        tokio::time::sleep(HEARTBEAT).await;
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
        crate::pool::queue_discards(&node, &given_up);
        crate::pool::send_discards_in_background(&node);
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
    let store = Arc::clone(&node.store);
    let loaded = tokio::task::spawn_blocking(move || {
        Ok::<_, StoreError>((
            store.key_share::<Secp256k1>(ECDSA_ROOT)?,
            store.key_share::<Bls12381G1>(BLS_ROOT)?,
        ))
    })
    .await;
    let keys = match loaded {
        Ok(Ok((Some(ecdsa), Some(bls)))) => {
            tracing::info!(node = node.me, "root key shares loaded; DKG is not run again");
            RootKeys { ecdsa, bls }
        }
        Ok(Ok((None, None))) => match first_dkg(&node).await {
            Some(keys) => {
                node.witnessed.store(true, std::sync::atomic::Ordering::Release);
                keys
            }
            None => return,
        },
        Ok(Ok(_)) => {
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
    if let Ok(mut slot) = node.keys.write() {
        *slot = Some(Arc::new(keys));
    }
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
    crate::pool::run(node).await;
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
    crate::pool::report_discarded(node, &before);
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
    let needed = node.threshold.saturating_sub(1).max(1);
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

async fn first_dkg(node: &Arc<Node>) -> Option<RootKeys> {
    let parties: Vec<PartyId> = node.settings.peers.iter().map(|(id, _, _)| PartyId(*id)).collect();
    let n = parties.len();
    let mut last_report = Instant::now();
    for attempt in 0u32.. {
        loop {
            let up = node.live().len();
            if up == n {
                break;
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                tracing::info!(reachable = up, nodes = n, "waiting for every node before the first DKG");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(
            nodes = n,
            threshold = node.threshold,
            attempt,
            "running DKG for the root keys"
        );
        let started = Instant::now();
        let session = |curve: &str| {
            let mut h = Sha256::new();
            h.update(b"sigil-root-dkg/v1");
            h.update(curve.as_bytes());
            h.update(node.fingerprint);
            h.update(node.settings.epoch.to_be_bytes());
            h.update(attempt.to_be_bytes());
            SessionId(h.finalize().into())
        };
        let ecdsa = Vss::<Secp256k1>::dkg(session("secp256k1"), PartyId(node.me), &parties, node.threshold);
        let bls = Vss::<Bls12381G1>::dkg(session("bls12-381"), PartyId(node.me), &parties, node.threshold);
        let (ecdsa, bls) = match (ecdsa, bls) {
            (Ok(e), Ok(b)) => (e, b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot start DKG");
                return None;
            }
        };
        let (ecdsa, bls) = tokio::join!(
            node.sessions.run(&node.net, ecdsa, parties.clone(), DKG_DEADLINE),
            node.sessions.run(&node.net, bls, parties.clone(), DKG_DEADLINE),
        );
        match (ecdsa, bls) {
            (Ok(Some(ecdsa)), Ok(Some(bls))) => {
                let store = Arc::clone(&node.store);
                let saved = tokio::task::spawn_blocking(move || {
                    store.put_key_share(ECDSA_ROOT, &ecdsa)?;
                    store.put_key_share(BLS_ROOT, &bls)?;
                    Ok::<_, StoreError>(RootKeys { ecdsa, bls })
                })
                .await;
                match saved {
                    Ok(Ok(keys)) => {
                        tracing::info!(
                            ms = started.elapsed().as_millis() as u64,
                            ecdsa_root = %hex::encode(sigil_tss::derive::uncompressed(keys.ecdsa.public_key())),
                            "root keys made and stored"
                        );
                        return Some(keys);
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot store root key shares"),
                    Err(e) => tracing::error!(error = %e, "cannot store root key shares"),
                }
                return None;
            }
            (Ok(_), Ok(_)) => {
                tracing::error!("DKG finished without a share for this node");
                return None;
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, attempt, "DKG failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    None
}

/// Health as `GET /health` reports it.
pub fn health(node: &Node) -> serde_json::Value {
    let ready = node.keys().is_some();
    serde_json::json!({
        "status": if ready { "ok" } else { "starting" },
        "nodeId": node.me,
        "rootKeys": ready,
        "peersUp": node.live().len(),
        "peersReady": node.peers_ready() + usize::from(ready),
        "nodes": node.settings.peers.len(),
        "threshold": node.threshold,
        "presignatures": node.pool.stock(),
        "version": env!("CARGO_PKG_VERSION"),
    })
}
