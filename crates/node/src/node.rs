//! The running node: state shared by the HTTP handlers and the background tasks, start-up, the
//! root-key DKG, peer liveness and shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::registry::Registry;
use sigil_mesh::NodeKey;
use sigil_tss::derive::KeyId;
use sigil_tss::k256::ProjectivePoint;

use crate::config::{ConfigError, Settings};
use crate::epoch::{Epoch, EpochHandle, RootKeys};
use crate::error::{Error, Kind};
use crate::mesh::net::Net;
use crate::mesh::session::Sessions;
use crate::metrics::Metrics;
use crate::store::{SignedTakes, Store, StoreError, Taker};

/// Name of the data file inside the data directory.
pub const DATA_FILE: &str = "sigil.redb";

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
    /// As allocator, answers every Schnorr request with an ECDSA presignature slot (material of
    /// another scheme, which a holder must never sign the request with).
    CrossSchemeBind,
    /// Answers pings as ready but never takes part in presignature runs.
    SilentPresigner,
    /// Tells a restarting peer it saw a far higher take counter from it than it did (the proof
    /// is the peer's real signature over another count), to make it discard its stock.
    InflatedWitness,
    /// Asks the allocator for each request's presignature with another digest than the one it
    /// computed (to bind the request id before the honest nodes ask), and releases no share.
    SquatRequests,
    /// Sends its peers a stream of pool notices for runs that do not exist (stored, failed naming
    /// every node), presignature orders it may not give, protocol messages for sessions nobody
    /// opens (a new session every 0.8 s), action values for requests nobody runs, and malformed
    /// allocation calls.
    FloodPeers,
    /// Asks every peer, 200 times a second, for presignatures of requests nobody made (random
    /// request ids and digests), to drain the allocator's pool.
    DrainPool,
    /// As a dealer of a reshare, sends every receiver a share that fails its commitment check
    /// (a valid scalar, off by one), and reveals the same bad shares when they complain.
    BadReshareDealer,
    /// In the first DKG, sends its confirmation to every node but the highest other one, which
    /// then never finishes while the others do.
    WithholdDkgConfirmation,
    /// In the first DKG, sends the highest other node a confirmation of another transcript than
    /// the one it sends the rest (it equivocates).
    EquivocateDkgConfirmation,
    /// In the first DKG, sends the highest other node a share that fails its commitment check,
    /// and reveals the true one when that node complains (a dealer caught in a slip).
    BadDkgDealer,
    /// In a Schnorr `signAndCombine` where it holds no share, sends every node a copy of the
    /// first share another node posted, as its own (an extra share naming the set's commitments).
    EchoSchnorrShares,
}

impl Fault {
    const ALL: [Fault; 13] = [
        Self::CorruptSignatureShares,
        Self::DoubleBind,
        Self::CrossSchemeBind,
        Self::SilentPresigner,
        Self::InflatedWitness,
        Self::SquatRequests,
        Self::FloodPeers,
        Self::DrainPool,
        Self::BadReshareDealer,
        Self::WithholdDkgConfirmation,
        Self::EquivocateDkgConfirmation,
        Self::BadDkgDealer,
        Self::EchoSchnorrShares,
    ];

    /// The name used on the command line and in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CorruptSignatureShares => "corrupt-signature-shares",
            Self::DoubleBind => "double-bind",
            Self::CrossSchemeBind => "cross-scheme-bind",
            Self::SilentPresigner => "silent-presigner",
            Self::InflatedWitness => "inflated-witness",
            Self::SquatRequests => "squat-requests",
            Self::FloodPeers => "flood-peers",
            Self::DrainPool => "drain-pool",
            Self::BadReshareDealer => "bad-reshare-dealer",
            Self::WithholdDkgConfirmation => "withhold-dkg-confirmation",
            Self::EquivocateDkgConfirmation => "equivocate-dkg-confirmation",
            Self::BadDkgDealer => "bad-dkg-dealer",
            Self::EchoSchnorrShares => "echo-schnorr-shares",
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

/// Everything a running node shares between its tasks.
pub struct Node {
    /// Checked configuration.
    pub settings: Settings,
    /// This node's id.
    pub me: u32,
    /// The data file.
    pub store: Arc<Store>,
    /// Action code by CID, in a file of its own (`actions.redb`).
    pub action_store: Arc<crate::actions::store::ActionStore>,
    /// Takes presignatures for sign requests, many per durable commit.
    pub taker: Taker,
    /// The mesh.
    pub net: Arc<Net>,
    /// Running protocol sessions.
    pub sessions: Arc<Sessions>,
    /// What the mesh bodies being read hold of envelopes not yet authenticated: those from the
    /// node list's addresses, and those from anywhere else, each within its own budget, so a
    /// stranger holding replayed prefixes cannot take the budget the peers' bodies need.
    pub unverified: crate::mesh::frames::Budgets,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Command-line switches.
    pub options: RunOptions,
    /// The secp256k1 key this node signs its handshakes and the root-key record with.
    pub(crate) signer: PrivateKeySigner,
    /// The current epoch: keys, peers, threshold, pool.
    pub(crate) epoch: EpochHandle,
    /// Each peer's last answer to a ping: whether it holds root key shares, and the epoch it
    /// runs (0: too old to say).
    pub(crate) peers_ready: Mutex<HashMap<u32, (bool, u64)>>,
    /// The highest take counter each peer reported, as it signed it (see [`Store::takes`]).
    pub(crate) peer_takes: Mutex<HashMap<u32, SignedTakes>>,
    /// This node's last signed take counter (see [`Node::sign_takes`]).
    pub(crate) signed_takes: Mutex<Option<SignedTakes>>,
    /// Set once this node checked with its peers that its store was not rolled back.
    pub(crate) witnessed: std::sync::atomic::AtomicBool,
    pub(crate) known_keys: Mutex<HashMap<Vec<u8>, KeyId>>,
    /// Auth signatures already verified, by hash of their fields: a wallet reuses one until it
    /// expires, and the signature recovery need not run again (time limits are re-checked).
    pub(crate) verified_auth: Mutex<HashMap<[u8; 32], sigil_chain::siwe::VerifiedAuth>>,
    /// Session capabilities already verified (wallet or network signed), by hash of their fields:
    /// `auth::session::Capability` values, kept opaque here so the node does not depend on `auth`.
    pub(crate) verified_capabilities: Mutex<HashMap<[u8; 32], Arc<dyn std::any::Any + Send + Sync>>>,
    /// Request rates per principal (`[auth]` rate_per_principal).
    pub(crate) principal_limits: Mutex<crate::auth::limits::PrincipalLimits>,
    /// OIDC issuers' keys (JWKS, per issuer, bounded) and recent userinfo answers, for the
    /// OAuth auth methods (`[auth]` oidc, userinfo, oauth).
    pub oidc: crate::auth::oidc::Oidc,
    /// PKP public keys derived so far, by key id (with the root they were derived from).
    pub(crate) derived: Mutex<HashMap<[u8; 32], (ProjectivePoint, ProjectivePoint)>>,
    /// Values exchanged between the nodes running the same action request.
    pub mailbox: crate::actions::mailbox::Mailbox,
    /// The actions' `fetch`, under the egress policy.
    pub(crate) fetcher: crate::actions::fetch::Fetcher,
    /// Action runs allowed at once.
    pub(crate) action_slots: Arc<tokio::sync::Semaphore>,
    /// Actions run as access-control conditions allowed at once.
    pub(crate) condition_slots: Arc<tokio::sync::Semaphore>,
    /// Runtimes with ethers loaded, for the actions that use it (`[actions] warm_ethers`).
    pub spares: Arc<crate::actions::warm::Spares>,
    /// NodeSet as the node last read it while running (`follow`); none before the first read or
    /// without a chain.
    pub(crate) chain_view: Mutex<Option<Arc<ChainView>>>,
    /// The new shares a reshare gave this node for the proposed epoch, until NodeSet confirms it.
    pub(crate) next: Mutex<Vec<Arc<crate::epoch::NextEpoch>>>,
    /// Saving reshared shares and switching epochs, one at a time.
    pub(crate) key_writes: tokio::sync::Mutex<()>,
    /// Participants the last failed run this node led names (silent, or caught cheating).
    pub(crate) reshare_suspects: Mutex<Vec<u32>>,
    /// The reshare run this node takes part in now: its id and its task.
    pub(crate) resharing: Mutex<Option<([u8; 32], tokio::task::JoinHandle<()>)>>,
    /// The latest NodeSet epoch this node settled into (switched to, or left out of).
    pub(crate) settled: std::sync::atomic::AtomicU64,
    /// The latest NodeSet epoch a failed settle was logged for (once per epoch).
    pub(crate) settle_said: std::sync::atomic::AtomicU64,
}

/// What NodeSet says now, as `follow` reads it every few seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainView {
    /// NodeSet's current epoch.
    pub epoch: u64,
    /// Whether this node (its id with its signer) is among that epoch's nodes.
    pub member: bool,
    /// The ids of that epoch's nodes, in list order.
    pub nodes: Vec<u32>,
    /// The proposed next epoch, if any.
    pub proposal: Option<sigil_chain::registry::Proposal>,
}

impl Node {
    /// The current epoch (a request takes it once and keeps it to the end).
    pub fn epoch(&self) -> Arc<Epoch> {
        self.epoch.current()
    }

    /// The current epoch's root key shares, once DKG has run.
    pub fn keys(&self) -> Option<Arc<RootKeys>> {
        self.epoch().keys()
    }

    /// Node ids currently reachable, this one included, sorted.
    pub fn live(&self) -> Vec<u32> {
        self.epoch().ids().filter(|id| self.net.is_up(*id)).collect()
    }

    /// Node ids reachable and holding root key shares of this node's epoch, this one included
    /// (if it has them), sorted: a peer still in the previous epoch (or already in the next)
    /// refuses this epoch's presignature orders.
    pub fn ready(&self) -> Vec<u32> {
        let ready = self.peers_ready.lock().map(|m| m.clone()).unwrap_or_default();
        let epoch = self.epoch();
        let me_ready = epoch.keys().is_some();
        self.live()
            .into_iter()
            .filter(|id| {
                if *id == self.me {
                    me_ready
                } else {
                    ready
                        .get(id)
                        .is_some_and(|(ready, theirs)| *ready && (*theirs == 0 || *theirs == epoch.number))
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

    /// Remembers a PKP's public key and token id, so later requests can name it by either; at
    /// most `[limits] known_keys` PKPs (when full, an arbitrary eighth is forgotten: a request
    /// naming one of those by public key is told to name it by key id, and one naming it by token
    /// id finds it on chain again).
    pub fn remember_key(&self, key_id: KeyId, public_key: &[u8; 65], token_id: &[u8; 32]) {
        let capacity = self.settings.config.limits.known_keys.saturating_mul(2).max(2);
        if let Ok(mut map) = self.known_keys.lock() {
            if map.len() + 2 > capacity && !map.contains_key(public_key.as_slice()) {
                let excess = map.len() + 2 - (capacity - capacity / 8);
                let mut seen = 0;
                map.retain(|_, _| {
                    seen += 1;
                    seen > excess
                });
            }
            map.insert(public_key.to_vec(), key_id);
            map.insert(token_id.to_vec(), key_id);
        }
    }

    /// PKP names (public keys and token ids) remembered now.
    pub fn known_key_names(&self) -> usize {
        self.known_keys.lock().map(|m| m.len()).unwrap_or(0)
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

    /// NodeSet as last read while running (see [`ChainView`]).
    pub fn chain_view(&self) -> Option<Arc<ChainView>> {
        self.chain_view.lock().ok().and_then(|view| view.clone())
    }

    /// `NOT_A_MEMBER` once NodeSet has moved to an epoch without this node: it serves no client
    /// request from then on (health and metrics stay, and say so).
    pub fn left(&self) -> Option<Error> {
        let view = self.chain_view()?;
        let running = self.epoch().number;
        if view.epoch <= running {
            return None;
        }
        if view.member {
            return Some(Error::new(
                Kind::Unavailable,
                "EPOCH_CHANGED",
                format!(
                    "NodeSet is at epoch {}; node {} still runs epoch {running} and serves again once it switched",
                    view.epoch, self.me
                ),
            ));
        }
        Some(Error::new(
            Kind::Unavailable,
            "NOT_A_MEMBER",
            format!(
                "node {} is not among the nodes of epoch {} in NodeSet ({:?}); it no longer serves",
                self.me, view.epoch, view.nodes
            ),
        ))
    }

    /// The reshared records this node holds for the proposed epoch, oldest first, until NodeSet
    /// confirms one.
    pub fn next_epochs(&self) -> Vec<Arc<crate::epoch::NextEpoch>> {
        self.next.lock().map(|next| next.clone()).unwrap_or_default()
    }

    /// The chain registry; `NO_CHAIN` without one (such a node signs nothing).
    pub fn registry(&self) -> Result<&Arc<Registry>, Error> {
        self.options.registry.as_ref().ok_or_else(|| {
            Error::new(
                Kind::Forbidden,
                "NO_CHAIN",
                format!(
                    "node {} has no chain configured, so it cannot check permissions and signs nothing",
                    self.me
                ),
            )
        })
    }

    /// The RPC URL of chain `chain`: the network's own chain (`sigil`, or its chain id) or one
    /// of `[actions] rpc_urls`.
    pub fn rpc_url(&self, chain: &str) -> Result<String, Error> {
        if let Some(url) = self.settings.config.actions.rpc_urls.get(chain) {
            return Ok(url.clone());
        }
        if let Some(registry) = &self.options.registry {
            if chain.is_empty() || chain == "sigil" || chain == registry.chain_id().to_string() {
                return Ok(registry.rpc_url().to_string());
            }
        }
        let mut known: Vec<String> = self.settings.config.actions.rpc_urls.keys().cloned().collect();
        if let Some(registry) = &self.options.registry {
            known.push(format!("sigil ({})", registry.chain_id()));
        }
        Err(Error::new(
            Kind::Invalid,
            "UNKNOWN_CHAIN",
            format!("no RPC URL for chain {chain:?}; this node knows: {}", known.join(", ")),
        ))
    }

    /// The RPC URL `Lit.Actions.getRpcUrl` hands to actions for `chain`: `[actions]
    /// public_rpc_urls`, else the node's own URL if it carries no credential (no user, password
    /// or query string). Actions' code and logs are public; a node's credentials are not.
    pub fn public_rpc_url(&self, chain: &str) -> Result<String, Error> {
        let public = &self.settings.config.actions.public_rpc_urls;
        if let Some(url) = public.get(chain) {
            return Ok(url.clone());
        }
        if let Some(registry) = &self.options.registry {
            if chain.is_empty() || chain == "sigil" || chain == registry.chain_id().to_string() {
                if let Some(url) = public
                    .get("sigil")
                    .or_else(|| public.get(&registry.chain_id().to_string()))
                {
                    return Ok(url.clone());
                }
            }
        }
        let url = self.rpc_url(chain)?;
        if carries_credential(&url) {
            return Err(Error::new(
                Kind::Invalid,
                "RPC_URL_PRIVATE",
                format!("node {}'s RPC URL for chain {chain:?} carries a credential, so actions are not given it; its operator can set [actions] public_rpc_urls.{chain}", self.me),
            ));
        }
        Ok(url)
    }

    /// Every RPC URL this node may hand to actions (see [`Node::public_rpc_url`]): the egress
    /// policy lets actions reach their hosts.
    pub(crate) fn action_rpc_urls(settings: &crate::config::Settings, registry: Option<&str>) -> Vec<String> {
        let actions = &settings.config.actions;
        actions
            .rpc_urls
            .values()
            .map(String::as_str)
            .chain(registry)
            .filter(|u| !carries_credential(u))
            .chain(actions.public_rpc_urls.values().map(String::as_str))
            .map(str::to_string)
            .collect()
    }

    /// Peers that answered their last ping as ready (holding root key shares).
    pub fn peers_ready(&self) -> usize {
        self.peers_ready
            .lock()
            .map(|m| m.values().filter(|(ready, _)| *ready).count())
            .unwrap_or(0)
    }
}

/// Whether a URL carries a credential an action must not see: a user or password, or a query
/// string (where API keys usually go).
pub(crate) fn carries_credential(url: &str) -> bool {
    match url.parse::<http::Uri>() {
        Ok(uri) => uri.authority().is_some_and(|a| a.as_str().contains('@')) || uri.query().is_some(),
        Err(_) => true,
    }
}
