//! Rust SDK for Sigil.
//!
//! [`Client::connect`] reads the network from its NodeSet contract (nodes, threshold, the root-key
//! record `threshold` nodes signed) and keeps the nodes whose signed handshakes match it. [`Client::pkp_sign`] sends one sign request to every node in
//! parallel and returns as soon as `t` shares combine into a signature that verifies against the PKP
//! key; shares that do not fit are named, with their node, in the outcome; if no signature comes
//! out, the error lists every node that failed and why.
//!
//! [`Client::pkp_sign_schnorr`] does the same by BIP-340 Schnorr under the PKP's taproot key; the
//! [`btc`] and [`cosmos`] modules build and sign Bitcoin and Cosmos SDK transactions from a PKP.
//!
//! Signing needs an auth signature ([`Client::auth_sig`], EIP-4361) from the PKP's owner or a
//! permitted address; [`Client::mint_pkp`] mints a PKP, and [`PkpSigner`] is an alloy signer
//! backed by a PKP.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sigil_client::ClientError> {
//! use std::time::Duration;
//! use sigil_client::{Client, KeyRef};
//! let wallet = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d".parse().unwrap();
//! let network = sigil_client::Network {
//!     rpc_url: "http://127.0.0.1:8545".into(),
//!     node_set: "0x5FbDB2315678afecb367f032d93F642f64180aa3".parse().unwrap(),
//! };
//! let client = Client::connect(&network).await?;
//! let auth = client.auth_sig(&wallet, "localhost", Duration::from_secs(600)).await?;
//! let outcome = client.pkp_sign(KeyRef::KeyId([7; 32]), [1; 32], &auth).await?;
//! println!("{}", outcome.address);
//! # Ok(()) }
//! ```

mod action;
pub mod btc;
mod connect;
pub mod cosmos;
mod encryption;
#[cfg(feature = "test-passkey")]
pub mod passkey;
pub mod pkp;
pub mod session;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use action::{ActionCode, ActionKeyClaim, ExecuteOutcome};
pub use btc::{BitcoinOutput, Coin};
pub use connect::{
    epoch_confirmations, key_confirmations, EpochConfirmations, KeyConfirmations, Network, EPOCH_HEADER,
};
pub use cosmos::CosmosSend;
pub use encryption::{Decrypted, Encrypted, ENCRYPTED_VERSION};
use futures::stream::{FuturesUnordered, StreamExt};
pub use pkp::{MintedPkp, PkpSigner};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
pub use session::{Credential, CustomAuth, Session};
use sigil_chain::alloy::primitives::Address;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
pub use sigil_chain::session::SessionKey;
pub use sigil_chain::siwe::AuthSig;
use sigil_chain::siwe::SiweMessage;
use sigil_chain::Contracts;
pub use sigil_primitives::Handshake;
use sigil_primitives::HandshakeRequest;
use sigil_primitives::{AttestRequest, ClaimRequest, ErrorBody, SignRequest, SignResponse};
use sigil_tss::derive::{checksum_address, derive_public_key, eth_address, uncompressed, KeyId};
use sigil_tss::ecdsa::{combine, EcdsaSignature, SignatureShare};
use sigil_tss::k256::elliptic_curve::sec1::FromEncodedPoint;
use sigil_tss::k256::{AffinePoint, EncodedPoint, ProjectivePoint};
use sigil_tss::{Bls12381G1, PartyId, PublicKeyPackage, Secp256k1};

/// PKP keys a client remembers (the cache is emptied when full).
const DERIVED_KEYS: usize = 1024;

/// How long one node may take to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a sign or decrypt call keeps trying through an epoch change (`EPOCH_CHANGED`: it
/// connects again) or an empty pool (`POOL_EMPTY`: a new epoch's pools fill right after the
/// switch) before the error stands.
pub const TRANSITION_BUDGET: Duration = Duration::from_secs(45);

/// One node that failed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeFailure {
    /// Node id, if known.
    pub node: Option<u32>,
    /// Its URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(id) => write!(f, "node {id} ({}): {}", self.url, self.reason),
            None => write!(f, "{}: {}", self.url, self.reason),
        }
    }
}

fn list(failures: &[NodeFailure]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No node URLs given.
    #[error("no node URLs given")]
    NoNodes,
    /// Too few nodes answered the handshake with root keys.
    #[error("{ready} of {total} nodes are ready (need {need}): {}", list(.failures))]
    NotReady {
        /// Nodes ready.
        ready: usize,
        /// Nodes asked.
        total: usize,
        /// Nodes needed.
        need: usize,
        /// Who failed.
        failures: Vec<NodeFailure>,
    },
    /// NodeSet holds no record of the network's root keys yet, so no node's keys can be checked.
    #[error(
        "NodeSet {node_set} records no root keys for its epoch {epoch} yet: once the nodes are ready, \
         `sigil admin record-keys` submits their signed record"
    )]
    KeysNotRecorded {
        /// The NodeSet contract.
        node_set: String,
        /// NodeSet's current epoch.
        epoch: u64,
    },
    /// Not enough valid shares to make a signature.
    #[error("no signature: {valid} usable shares of {need} needed; {}", list(.failures))]
    Sign {
        /// Shares that arrived and decoded.
        valid: usize,
        /// Threshold.
        need: usize,
        /// Every node that failed.
        failures: Vec<NodeFailure>,
    },
    /// Bad argument.
    #[error("{0}")]
    Invalid(String),
    /// The call needs the chain, and the nodes report none (or the client was not given the
    /// contracts with [`Client::with_contracts`]).
    #[error("this needs the network's chain: the nodes report no chain, or the client has no contract addresses")]
    NoChain,
    /// A chain call failed.
    #[error("chain: {0}")]
    Chain(String),
    /// Making or signing an auth signature failed.
    #[error("auth signature: {0}")]
    Auth(String),
    /// Decryption failed: the nodes refused (the most common refusal, e.g. `CONDITION_FAILED`
    /// naming the condition), too few valid shares arrived, or the ciphertext does not open
    /// (`DECRYPT_FAILED`: tampered with, or for other conditions or data).
    #[error("{code}: {message}")]
    Decrypt {
        /// Stable code.
        code: String,
        /// Human message.
        message: String,
        /// Every node that failed, and why.
        failures: Vec<NodeFailure>,
    },
    /// An action run gave no usable answer: it failed (the most common error code among the
    /// nodes), or the nodes disagreed (`NODES_DISAGREED`).
    #[error("{code}: {message}")]
    Action {
        /// Stable code, e.g. `ACTION_TIMEOUT`, `NOT_PERMITTED`, `NODES_DISAGREED`.
        code: String,
        /// Human message.
        message: String,
        /// The action's console output up to the error, from one node.
        logs: Vec<String>,
        /// Every node that failed, and why.
        failures: Vec<NodeFailure>,
    },
}

impl ClientError {
    /// Whether a node answered `EPOCH_CHANGED` (the network moved to a later epoch than this
    /// client connected in) or that it is switching to NodeSet's new epoch: connect again
    /// ([`Client::connect`]) and retry.
    pub fn epoch_changed(&self) -> bool {
        let failures = match self {
            Self::NotReady { failures, .. }
            | Self::Sign { failures, .. }
            | Self::Decrypt { failures, .. }
            | Self::Action { failures, .. } => failures.as_slice(),
            _ => &[],
        };
        let code = match self {
            Self::Decrypt { code, .. } | Self::Action { code, .. } => code.as_str(),
            _ => "",
        };
        code == "EPOCH_CHANGED" || failures.iter().any(|f| f.reason.contains("EPOCH_CHANGED"))
    }

    /// Whether a node answered `POOL_EMPTY` (no presignature in stock: a new epoch's pool
    /// fills right after the switch).
    pub fn pool_empty(&self) -> bool {
        matches!(self, Self::Sign { failures, .. } if failures.iter().any(|f| f.reason.contains("POOL_EMPTY")))
    }
}

/// A node of the connected network.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    /// Node id.
    pub id: u32,
    /// Base URL.
    pub url: String,
}

/// How a sign request names its PKP.
#[derive(Clone, Copy, Debug)]
pub enum KeyRef {
    /// By key id.
    KeyId([u8; 32]),
}

/// A signature and what went into it.
#[derive(Clone, Debug)]
pub struct SignOutcome {
    /// The signature, verified against the PKP key.
    pub signature: EcdsaSignature,
    /// PKP public key, uncompressed.
    pub public_key: [u8; 65],
    /// EIP-55 address.
    pub address: String,
    /// The presignature used (`pool:seq`).
    pub presignature: String,
    /// Nodes whose shares were used or checked.
    pub signers: Vec<u32>,
    /// Nodes that failed or sent a share that does not fit the signature.
    pub failures: Vec<NodeFailure>,
}

/// A BIP-340 Schnorr signature by a PKP (`SchnorrK256Taproot`) and what went into it.
#[derive(Clone, Debug)]
pub struct SchnorrOutcome {
    /// `R.x ‖ s`, verified against `output_key`.
    pub signature: [u8; 64],
    /// The PKP's x-only taproot output key (BIP-341 tweak of its key, no script tree): what a
    /// P2TR address encodes.
    pub output_key: [u8; 32],
    /// The nonce material used (`pool:seq`).
    pub presignature: String,
    /// Nodes whose shares were used.
    pub signers: Vec<u32>,
    /// Nodes that failed or sent a share that does not fit the signature.
    pub failures: Vec<NodeFailure>,
}

/// A signature of either scheme, as one signing round makes it.
enum Made {
    Ecdsa(EcdsaSignature),
    Schnorr([u8; 64]),
}

/// How one round checks and combines the signing set's shares.
#[derive(Clone, Copy)]
enum Combiner<'a> {
    /// ECDSA under `public_key`, of a 32-byte prehash.
    Ecdsa(&'a ProjectivePoint),
    /// Schnorr under the taproot output key of PKP `key_id` (whose shares `package` checks).
    Schnorr {
        key_id: KeyId,
        output_key: [u8; 32],
        package: &'a PublicKeyPackage<Secp256k1>,
    },
}

impl Combiner<'_> {
    /// The public key every answer must name, hex.
    fn public_hex(&self) -> String {
        match self {
            Self::Ecdsa(point) => hex::encode(uncompressed(point)),
            Self::Schnorr { output_key, .. } => hex::encode(output_key),
        }
    }

    fn scheme(&self) -> sigil_primitives::SigningScheme {
        match self {
            Self::Ecdsa(_) => sigil_primitives::SigningScheme::EcdsaK256Sha256,
            Self::Schnorr { .. } => sigil_primitives::SigningScheme::SchnorrK256Taproot,
        }
    }

    /// Checks that `node`'s share decodes.
    fn decode(&self, node: u32, share: &[u8]) -> Result<(), String> {
        match self {
            Self::Ecdsa(_) => SignatureShare::from_bytes(PartyId(node), share).map(drop),
            Self::Schnorr { .. } => sigil_tss::schnorr::SchnorrShare::from_bytes(share, PartyId(node)).map(drop),
        }
        .map_err(|e| e.to_string())
    }

    /// Combines the set's `shares` of `hash` (with the agreed `commitments` for Schnorr);
    /// on failure, the nodes whose shares are wrong.
    fn combine(
        &self,
        hash: &[u8; 32],
        threshold: usize,
        shares: &BTreeMap<u32, Vec<u8>>,
        commitments: &BTreeMap<u32, String>,
    ) -> Result<Made, (Vec<u32>, String)> {
        let plain = |e: String| (Vec::new(), e);
        match self {
            Self::Ecdsa(public_key) => {
                let mut only = Vec::with_capacity(shares.len());
                for (id, bytes) in shares {
                    only.push(SignatureShare::from_bytes(PartyId(*id), bytes).map_err(|e| plain(e.to_string()))?);
                }
                combine(public_key, hash, threshold, &only)
                    .map(Made::Ecdsa)
                    .map_err(|e| (e.culprits().iter().map(|p| p.0).collect(), e.to_string()))
            }
            Self::Schnorr { key_id, package, .. } => {
                use sigil_tss::schnorr::{Commitment, SchnorrShare};
                let mut agreed = BTreeMap::new();
                for (id, text) in commitments {
                    let bytes = hex::decode(text).map_err(|_| plain(format!("node {id}'s commitment is not hex")))?;
                    agreed.insert(
                        PartyId(*id),
                        Commitment::from_bytes(&bytes, PartyId(*id)).map_err(|e| plain(e.to_string()))?,
                    );
                }
                let mut only = Vec::with_capacity(shares.len());
                for (id, bytes) in shares {
                    only.push(SchnorrShare::from_bytes(bytes, PartyId(*id)).map_err(|e| plain(e.to_string()))?);
                }
                sigil_tss::schnorr::combine(package, key_id, hash, &agreed, &only)
                    .map(Made::Schnorr)
                    .map_err(|e| (e.culprits().iter().map(|p| p.0).collect(), e.to_string()))
            }
        }
    }
}

/// A connected network. Sign and decrypt calls follow the network into later epochs on their
/// own ([`TRANSITION_BUDGET`]): the connection made then serves this client and its clones.
#[derive(Clone, Debug)]
pub struct Client {
    /// How this client connected, to connect again when the epoch changes (None: made by hand).
    origin: Option<std::sync::Arc<connect::Origin>>,
    /// The connection to the latest epoch a call of this client (or a clone) moved to.
    successor: std::sync::Arc<std::sync::Mutex<Option<Client>>>,
    http: reqwest::Client,
    nodes: Vec<NodeHandle>,
    unreachable: Vec<NodeFailure>,
    threshold: usize,
    epoch: u64,
    ecdsa_root: ProjectivePoint,
    /// PKP keys derived so far (a bounded cache: deriving costs a scalar multiplication).
    derived: std::sync::Arc<std::sync::Mutex<BTreeMap<[u8; 32], ProjectivePoint>>>,
    bls_root: String,
    bls_package: Option<PublicKeyPackage<Bls12381G1>>,
    /// The ECDSA root's public shares, as `t` nodes reported them identically (to check Schnorr
    /// shares one by one); `None` when no `t` agreed.
    ecdsa_package: Option<PublicKeyPackage<Secp256k1>>,
    chain_id: Option<u64>,
    pkp_nft: Option<Address>,
}

/// A failed POST: the node's error fields when it sent them, and one line saying what happened.
struct PostError {
    fields: Option<sigil_primitives::ErrorFields>,
    text: String,
}

impl PostError {
    fn plain(text: String) -> Self {
        Self { fields: None, text }
    }
}

/// A signing request as it is sent again after a failed round.
#[derive(Clone)]
enum SignBody {
    /// `POST /web/pkp/sign`.
    Pkp(SignRequest),
    /// `POST /web/pkp/mint-attestation`.
    Attestation(AttestRequest),
    /// `POST /web/pkp/claim`.
    Claim(ClaimRequest),
}

impl SignBody {
    /// The next try, leaving out `exclude`: a sign request gets a fresh request id, while an
    /// attestation's request id is derived from its key and `attempt`.
    fn retry(&mut self, attempt: u8, exclude: &[u32]) {
        match self {
            Self::Pkp(body) => {
                body.request_id = hex::encode(request_id());
                body.exclude = exclude.to_vec();
            }
            Self::Attestation(body) => {
                body.attempt = attempt;
                body.exclude = exclude.to_vec();
            }
            Self::Claim(body) => {
                body.attempt = attempt;
                body.exclude = exclude.to_vec();
            }
        }
    }

    fn encode(&self) -> Result<(&'static str, serde_json::Value), ClientError> {
        let (path, value) = match self {
            Self::Pkp(body) => ("/web/pkp/sign", serde_json::to_value(body)),
            Self::Attestation(body) => ("/web/pkp/mint-attestation", serde_json::to_value(body)),
            Self::Claim(body) => ("/web/pkp/claim", serde_json::to_value(body)),
        };
        Ok((path, value.map_err(|e| ClientError::Invalid(e.to_string()))?))
    }
}

/// An auth signature as a request body carries it.
pub(crate) fn auth_value(auth: &AuthSig) -> Result<serde_json::Value, ClientError> {
    serde_json::to_value(auth).map_err(|e| ClientError::Invalid(format!("authSig: {e}")))
}

/// An error and its causes, `: `-separated: reqwest's own text names only the URL, the cause
/// (refused, no route to host, timed out) is further down.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// POSTs `body` to `url` and decodes the answer, keeping the node's error fields.
async fn post_coded<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    url: &str,
    body: &impl Serialize,
) -> Result<T, PostError> {
    let response = http
        .post(url)
        .timeout(REQUEST_TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| PostError::plain(format!("unreachable: {}", with_causes(&e))))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| PostError::plain(format!("reading the answer: {}", with_causes(&e))))?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => PostError {
                text: format!("{} {}: {}", status.as_u16(), e.error.code, e.error.message),
                fields: Some(e.error),
            },
            Err(_) => PostError::plain(format!("{status}: {}", String::from_utf8_lossy(&bytes))),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| PostError::plain(format!("unexpected answer: {e}")))
}

/// POSTs `body` to `url`; errors are one line of text.
async fn post<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    url: &str,
    body: &impl Serialize,
) -> Result<T, String> {
    post_coded(http, url, body).await.map_err(|e| e.text)
}

fn decode_point(text: &str) -> Option<ProjectivePoint> {
    let bytes = hex::decode(text).ok()?;
    let point = EncodedPoint::from_bytes(bytes).ok()?;
    Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&point)).map(ProjectivePoint::from)
}

impl Client {
    /// Tells the client where the PKP contracts are (from `network.json`), for minting.
    pub fn with_contracts(mut self, contracts: &Contracts) -> Self {
        self.pkp_nft = Some(contracts.pkp_nft);
        self
    }

    /// The chain id the nodes report.
    pub fn chain_id(&self) -> Option<u64> {
        self.chain_id
    }

    /// A fresh SIWE auth signature by `wallet` for `domain` (the nodes' `auth_domain`,
    /// `localhost` by default), valid for `valid_for`, with the latest block hash as its nonce.
    pub async fn auth_sig(
        &self,
        wallet: &PrivateKeySigner,
        domain: &str,
        valid_for: Duration,
    ) -> Result<AuthSig, ClientError> {
        let chain_id = self.chain_id.ok_or(ClientError::NoChain)?;
        let nonce = self.latest_blockhash().await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let message = SiweMessage {
            domain: domain.to_string(),
            address: wallet.address(),
            statement: Some("Sign with my Sigil PKPs.".into()),
            uri: format!("sigil://{domain}"),
            version: "1".into(),
            chain_id,
            nonce,
            issued_at: now,
            expiration_time: Some(now + valid_for.as_secs()),
            not_before: None,
            request_id: None,
            resources: Vec::new(),
        };
        AuthSig::create(wallet, &message).map_err(|e| ClientError::Auth(e.to_string()))
    }

    /// The chain's latest block hash as the nodes report it: the nonce of SIWE messages.
    pub async fn latest_blockhash(&self) -> Result<String, ClientError> {
        let mut last = Vec::new();
        for node in &self.nodes {
            let url = format!("{}/web/handshake", node.url);
            match post::<Handshake>(&self.http, &url, &HandshakeRequest::default()).await {
                Ok(Handshake {
                    latest_blockhash: Some(nonce),
                    ..
                }) => return Ok(nonce),
                Ok(_) => last.push(NodeFailure {
                    node: Some(node.id),
                    url: node.url.clone(),
                    reason: "reports no latest block hash (no chain)".into(),
                }),
                Err(reason) => last.push(NodeFailure {
                    node: Some(node.id),
                    url: node.url.clone(),
                    reason,
                }),
            }
        }
        Err(ClientError::Auth(format!("no node gave a nonce: {}", list(&last))))
    }

    /// Shares needed, in the latest epoch a call moved to.
    pub fn threshold(&self) -> usize {
        self.current().threshold
    }

    /// The epoch of the latest connection (a call moves to a later one on `EPOCH_CHANGED`).
    pub fn epoch(&self) -> u64 {
        self.current().epoch
    }

    /// The connection calls use now: the latest one a call moved to, or this one.
    pub(crate) fn current(&self) -> Client {
        self.successor
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .filter(|c| c.epoch > self.epoch)
            .unwrap_or_else(|| self.clone())
    }

    /// After a failed try at `started`: the connection to try again with, after a pause (which
    /// doubles, up to 4 s), or None when the error stands. `EPOCH_CHANGED` connects again (the
    /// chain says which epoch and nodes to trust; a node still switching says it again until it
    /// is done); `POOL_EMPTY` waits. Both give up after [`TRANSITION_BUDGET`].
    async fn after_failure(
        &self,
        err: &ClientError,
        started: std::time::Instant,
        pause: &mut Duration,
    ) -> Option<Client> {
        let changed = err.epoch_changed();
        if !(changed || err.pool_empty()) || started.elapsed() + *pause > TRANSITION_BUDGET {
            return None;
        }
        tokio::time::sleep(*pause).await;
        *pause = (*pause * 2).min(Duration::from_secs(4));
        if changed && self.origin.is_none() {
            return None;
        }
        if changed {
            // Keys of the new epoch not recorded yet, or too few nodes switched: try again.
            let _ = self.follow_epoch().await;
        }
        Some(self.current())
    }

    /// Connects again the way this client connected (the chain names the epoch, its nodes,
    /// threshold and BLS shares) and makes that connection the one this client and its clones
    /// use; returns its epoch. Sign and decrypt calls do this on their own on `EPOCH_CHANGED`;
    /// call it before running an action again ([`ClientError::epoch_changed`]).
    pub async fn follow_epoch(&self) -> Result<u64, ClientError> {
        let origin = self
            .origin
            .as_ref()
            .ok_or_else(|| ClientError::Invalid("this client was not made by connect; connect again".into()))?;
        let mut fresh = Self::connect_inner(&origin.network, origin.urls.as_ref()).await?;
        fresh.successor = std::sync::Arc::clone(&self.successor);
        fresh.pkp_nft = self.pkp_nft.or(fresh.pkp_nft);
        let epoch = fresh.epoch;
        if let Ok(mut latest) = self.successor.lock() {
            if latest.as_ref().is_none_or(|c| c.epoch <= epoch) {
                *latest = Some(fresh);
            }
        }
        Ok(epoch)
    }

    /// Nodes that answered the handshake ready (when this client connected; calls reach the
    /// nodes of the latest epoch, [`Client::epoch`]).
    pub fn nodes(&self) -> &[NodeHandle] {
        &self.nodes
    }

    /// Nodes that did not, and why.
    pub fn unreachable(&self) -> &[NodeFailure] {
        &self.unreachable
    }

    /// The ECDSA root public key.
    pub fn ecdsa_root(&self) -> &ProjectivePoint {
        &self.ecdsa_root
    }

    /// The BLS root public key, hex.
    pub fn bls_root(&self) -> &str {
        &self.bls_root
    }

    /// A PKP's public key, derived locally from the root key.
    pub fn pkp_public_key(&self, key: KeyRef) -> ProjectivePoint {
        match key {
            KeyRef::KeyId(id) => {
                if let Some(key) = self.derived.lock().ok().and_then(|m| m.get(&id).copied()) {
                    return key;
                }
                let key = derive_public_key(&self.ecdsa_root, &KeyId(id));
                if let Ok(mut map) = self.derived.lock() {
                    if map.len() >= DERIVED_KEYS {
                        map.clear();
                    }
                    map.insert(id, key);
                }
                key
            }
        }
    }

    /// Signs the 32-byte prehash `hash` with a PKP, as the holder of `auth` (the PKP's owner, a
    /// permitted address or a permitted auth method; see [`Client::auth_sig`]).
    pub async fn pkp_sign(
        &self,
        key: KeyRef,
        hash: [u8; 32],
        auth: &dyn Credential,
    ) -> Result<SignOutcome, ClientError> {
        let KeyRef::KeyId(key_id) = key;
        let public_key = self.pkp_public_key(key);
        let (auth_sig, session_sigs) = auth.fields()?;
        let body = SignRequest {
            key_id: Some(hex::encode(key_id)),
            to_sign: Some(hex::encode(hash).into()),
            request_id: hex::encode(request_id()),
            auth_sig,
            session_sigs,
            ..SignRequest::default()
        };
        self.threshold_sign(SignBody::Pkp(body), &public_key, hash).await
    }

    /// Signs the 32-byte message `message` with a PKP by BIP-340 Schnorr (`SchnorrK256Taproot`,
    /// FROST among the signing set) under the PKP's taproot output key, as the holder of `auth`.
    /// Every share is checked against its node's public share: a wrong one is named and its node
    /// left out of the next try.
    pub async fn pkp_sign_schnorr(
        &self,
        key: KeyRef,
        message: [u8; 32],
        auth: &dyn Credential,
    ) -> Result<SchnorrOutcome, ClientError> {
        let KeyRef::KeyId(key_id) = key;
        let (auth_sig, session_sigs) = auth.fields()?;
        let body = SignBody::Pkp(SignRequest {
            key_id: Some(hex::encode(key_id)),
            to_sign: Some(hex::encode(message).into()),
            request_id: hex::encode(request_id()),
            auth_sig,
            session_sigs,
            signing_scheme: sigil_primitives::SigningScheme::SchnorrK256Taproot,
            ..SignRequest::default()
        });
        let (started, mut pause, mut client) = (std::time::Instant::now(), Duration::from_millis(250), self.current());
        loop {
            let attempt = async {
                let package = client.ecdsa_package.as_ref().ok_or_else(|| {
                    ClientError::Invalid(
                        "no t nodes reported the same ECDSA public shares, so Schnorr shares cannot be checked".into(),
                    )
                })?;
                let output_key = sigil_tss::schnorr::output_key(&client.ecdsa_root, &KeyId(key_id))
                    .map_err(|e| ClientError::Invalid(e.to_string()))?;
                let combiner = Combiner::Schnorr {
                    key_id: KeyId(key_id),
                    output_key,
                    package,
                };
                let (made, presignature, signers, failures) =
                    client.sign_in_epoch(body.clone(), combiner, message).await?;
                match made {
                    Made::Schnorr(signature) => Ok(SchnorrOutcome {
                        signature,
                        output_key,
                        presignature,
                        signers,
                        failures,
                    }),
                    Made::Ecdsa(_) => Err(ClientError::Invalid("an ECDSA signature for a Schnorr request".into())),
                }
            };
            match attempt.await {
                Err(e) => match self.after_failure(&e, started, &mut pause).await {
                    Some(next) => client = next,
                    None => return Err(e),
                },
                done => return done,
            }
        }
    }

    /// The PKP's x-only taproot output key (what its P2TR address encodes).
    pub fn pkp_taproot_key(&self, key: KeyRef) -> Result<[u8; 32], ClientError> {
        let KeyRef::KeyId(key_id) = key;
        sigil_tss::schnorr::output_key(&self.ecdsa_root, &KeyId(key_id))
            .map_err(|e| ClientError::Invalid(e.to_string()))
    }

    /// Signs `message` as an EIP-191 personal message with a PKP; the nodes hash it themselves,
    /// so auth methods permitted for personal messages only (scope 2) may use this.
    pub async fn pkp_sign_message(
        &self,
        key: KeyRef,
        message: &[u8],
        auth: &dyn Credential,
    ) -> Result<SignOutcome, ClientError> {
        let KeyRef::KeyId(key_id) = key;
        let public_key = self.pkp_public_key(key);
        let hash = sigil_chain::alloy::primitives::eip191_hash_message(message).0;
        let (auth_sig, session_sigs) = auth.fields()?;
        let body = SignRequest {
            key_id: Some(hex::encode(key_id)),
            message: Some(hex::encode(message)),
            request_id: hex::encode(request_id()),
            auth_sig,
            session_sigs,
            ..SignRequest::default()
        };
        self.threshold_sign(SignBody::Pkp(body), &public_key, hash).await
    }

    /// The network's attestation for a mint by the holder of `auth` with `salt` (directly on
    /// PKPNFT, or through PKPHelper at `helper`), for `mint`: the key id and 65 bytes `r ‖ s ‖ v`,
    /// checked here against the attester key before they are returned. The mint must have been
    /// requested on chain first ([`Client::request_mint`]).
    pub async fn mint_attestation(
        &self,
        salt: [u8; 32],
        helper: Option<Address>,
        auth: &dyn Credential,
    ) -> Result<([u8; 32], [u8; 65]), ClientError> {
        let minter = auth.address()?;
        let (auth_sig, session_sigs) = auth.fields()?;
        let key_id = sigil_chain::mint_key_id(minter, &salt, helper);
        let attester = derive_public_key(&self.ecdsa_root, &KeyId(sigil_chain::attester_key_id()));
        let chain_id = self.chain_id.ok_or(ClientError::NoChain)?;
        let pkp_nft = self.pkp_nft.ok_or(ClientError::NoChain)?;
        let pubkey = uncompressed(&self.pkp_public_key(KeyRef::KeyId(key_id)));
        let digest = sigil_chain::attestation_digest(chain_id, pkp_nft, &key_id, &pubkey);
        let body = AttestRequest {
            salt: hex::encode(salt),
            via_helper: helper.is_some(),
            auth_sig,
            session_sigs,
            ..AttestRequest::default()
        };
        let outcome = self
            .threshold_sign(SignBody::Attestation(body), &attester, digest)
            .await?;
        Ok((key_id, outcome.signature.to_rsv()))
    }

    /// The network's attestation for the PKP that auth method `method` may claim (its key id,
    /// `claim_key_id`), checked against the attester key: for PKPHelper `claimKey`. The mint of
    /// that key id must have been requested on chain first.
    pub async fn claim_attestation(
        &self,
        method: &sigil_primitives::AuthMethod,
        key_id: [u8; 32],
    ) -> Result<[u8; 65], ClientError> {
        let attester = derive_public_key(&self.ecdsa_root, &KeyId(sigil_chain::attester_key_id()));
        let chain_id = self.chain_id.ok_or(ClientError::NoChain)?;
        let pkp_nft = self.pkp_nft.ok_or(ClientError::NoChain)?;
        let pubkey = uncompressed(&self.pkp_public_key(KeyRef::KeyId(key_id)));
        let digest = sigil_chain::attestation_digest(chain_id, pkp_nft, &key_id, &pubkey);
        let body = ClaimRequest {
            auth_method: method.clone(),
            ..ClaimRequest::default()
        };
        let outcome = self.threshold_sign(SignBody::Claim(body), &attester, digest).await?;
        Ok(outcome.signature.to_rsv())
    }

    /// Sends `body` to `path` at every node at once with `send(http, url, body)`; the answers
    /// come out in the order they arrive, each with its node.
    fn to_every_node<B: Clone, T, F, Fut>(
        &self,
        path: &str,
        body: &B,
        send: F,
    ) -> FuturesUnordered<impl std::future::Future<Output = (NodeHandle, T)>>
    where
        F: Fn(reqwest::Client, String, B) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        self.nodes
            .iter()
            .map(|node| {
                let answer = send(self.http.clone(), format!("{}{path}", node.url), body.clone());
                let node = node.clone();
                async move { (node, answer.await) }
            })
            .collect()
    }

    /// The mint attester's Ethereum address (what `NodeSet.attester` must hold).
    pub fn attester_address(&self) -> String {
        let attester = derive_public_key(&self.ecdsa_root, &KeyId(sigil_chain::attester_key_id()));
        checksum_address(&eth_address(&attester))
    }

    /// Sends `body` to `path` at every node and combines the shares of the signing set the
    /// allocator chose: exactly `t` nodes, whose shares must all arrive and fit. If one of them fails
    /// or sends a wrong share, the request is made again (fresh request id) with those nodes
    /// excluded, up to [`SIGN_ATTEMPTS`] times; the outcome names them.
    async fn threshold_sign(
        &self,
        body: SignBody,
        public_key: &ProjectivePoint,
        hash: [u8; 32],
    ) -> Result<SignOutcome, ClientError> {
        let (started, mut pause, mut client) = (std::time::Instant::now(), Duration::from_millis(250), self.current());
        loop {
            match client
                .sign_in_epoch(body.clone(), Combiner::Ecdsa(public_key), hash)
                .await
            {
                Err(e) => match self.after_failure(&e, started, &mut pause).await {
                    Some(next) => client = next,
                    None => return Err(e),
                },
                Ok((Made::Ecdsa(signature), presignature, signers, failures)) => {
                    return Ok(SignOutcome {
                        signature,
                        public_key: uncompressed(public_key),
                        address: checksum_address(&eth_address(public_key)),
                        presignature,
                        signers,
                        failures,
                    })
                }
                Ok((Made::Schnorr(_), ..)) => {
                    return Err(ClientError::Invalid("a Schnorr signature for an ECDSA request".into()))
                }
            }
        }
    }

    /// [`Client::threshold_sign`] within this connection's epoch.
    async fn sign_in_epoch(
        &self,
        mut body: SignBody,
        combiner: Combiner<'_>,
        hash: [u8; 32],
    ) -> Result<(Made, String, Vec<u32>, Vec<NodeFailure>), ClientError> {
        let mut failures = self.unreachable.clone();
        let mut exclude: Vec<u32> = Vec::new();
        let mut valid = 0;
        for attempt in 0..SIGN_ATTEMPTS {
            if attempt > 0 {
                body.retry(u8::try_from(attempt).unwrap_or(u8::MAX), &exclude);
            }
            let (path, value) = body.encode()?;
            match self.sign_round(path, &value, combiner, hash).await {
                Ok((made, presignature, signers, round_failures)) => {
                    merge(&mut failures, round_failures);
                    return Ok((made, presignature, signers, failures));
                }
                Err(round) => {
                    valid = valid.max(round.valid);
                    merge(&mut failures, round.failures);
                    // Suspects come from what nodes report: only ids of this network's nodes are
                    // excluded, reachable from here or not (a node naming a made-up id would have
                    // every retry refused).
                    let listed = |id: &u32| {
                        self.nodes.iter().any(|n| n.id == *id) || self.unreachable.iter().any(|f| f.node == Some(*id))
                    };
                    let fresh: Vec<u32> = round
                        .suspects
                        .into_iter()
                        .filter(|s| !exclude.contains(s) && listed(s))
                        .collect();
                    if fresh.is_empty() && !round.retry {
                        break;
                    }
                    exclude.extend(fresh);
                    exclude.sort_unstable();
                    // Only reachable nodes count: a suspect may be one the handshake never
                    // reached (the allocator still took it for live), and it costs nothing here.
                    let left = self.nodes.iter().filter(|n| !exclude.contains(&n.id)).count();
                    if left < self.threshold {
                        break;
                    }
                }
            }
        }
        Err(ClientError::Sign {
            valid,
            need: self.threshold,
            failures,
        })
    }

    /// One request to every node: the signature from the signing set's `t` shares, with the
    /// failures seen on the way; or what went wrong and whom to exclude next time.
    async fn sign_round(
        &self,
        path: &str,
        body: &serde_json::Value,
        combiner: Combiner<'_>,
        hash: [u8; 32],
    ) -> Result<(Made, String, Vec<u32>, Vec<NodeFailure>), SignRound> {
        let public_hex = combiner.public_hex();
        let mut pending = self.to_every_node(path, body, |http, url, body| async move {
            post_coded::<SignResponse>(&http, &url, &body).await
        });
        let mut round = SignRound::default();
        // Answers grouped by the allocation they name (and, for Schnorr, the commitments); only a
        // member of the set may answer for it, so a node cannot make up a set that honest answers
        // then fail to match.
        type Group = (Vec<u32>, String, BTreeMap<u32, String>);
        let mut groups: BTreeMap<Group, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
        let mut failed: BTreeMap<u32, NodeFailure> = BTreeMap::new();
        let mut used_elsewhere: Vec<u32> = Vec::new();
        while let Some((node, answer)) = pending.next().await {
            let fail = |reason: String| NodeFailure {
                node: Some(node.id),
                url: node.url.clone(),
                reason,
            };
            let response = match answer {
                Ok(r) => r,
                Err(e) => {
                    match e.fields.as_ref().map(|f| f.code.as_str()) {
                        // Not in the signing set: nothing was spent, nothing is wrong.
                        Some("NOT_A_SIGNER") => {}
                        // The allocator bound the presignature twice, or the holder restarted
                        // since it reserved it: the holder is not at fault, another slot is asked for.
                        Some("PRESIGNATURE_USED" | "PRESIGNATURE_DISCARDED") => {
                            round.retry = true;
                            used_elsewhere.push(node.id);
                            round.failures.push(fail(e.text));
                        }
                        _ => {
                            failed.insert(node.id, fail(e.text));
                        }
                    }
                    continue;
                }
            };
            if response.node_id != node.id || response.public_key != public_hex {
                failed.insert(node.id, fail("answered for another node or another public key".into()));
                continue;
            }
            if response.signing_scheme != combiner.scheme() {
                failed.insert(
                    node.id,
                    fail(format!("answered with a {} share", response.signing_scheme.name())),
                );
                continue;
            }
            if response.participants.len() != self.threshold || !response.participants.contains(&node.id) {
                failed.insert(
                    node.id,
                    fail(format!(
                        "answered for the signing set {:?}, which is not {} nodes including it",
                        response.participants, self.threshold
                    )),
                );
                continue;
            }
            let share = match hex::decode(&response.share).map_err(|e| e.to_string()).and_then(|b| {
                combiner.decode(node.id, &b)?;
                Ok(b)
            }) {
                Ok(share) => share,
                Err(reason) => {
                    failed.insert(node.id, fail(format!("undecodable share: {reason}")));
                    continue;
                }
            };
            let commitments = match combiner {
                Combiner::Ecdsa(_) => BTreeMap::new(),
                Combiner::Schnorr { .. } => {
                    if response.commitments.keys().copied().collect::<Vec<u32>>() != response.participants {
                        failed.insert(
                            node.id,
                            fail("sent nonce commitments for another set than its signing set".into()),
                        );
                        continue;
                    }
                    response.commitments.clone()
                }
            };
            let key = (
                response.participants.clone(),
                response.presignature.clone(),
                commitments,
            );
            let group = groups.entry(key.clone()).or_default();
            group.insert(node.id, share);
            let (members, presignature, commitments) = key;
            if !members.iter().all(|m| group.contains_key(m)) {
                continue;
            }
            round.valid = group.len();
            round.failures.extend(failed.into_values());
            return match combiner.combine(&hash, self.threshold, group, &commitments) {
                Ok(made) => Ok((made, presignature, members, round.failures)),
                Err((culprits, e)) => {
                    for culprit in &culprits {
                        round.failures.push(NodeFailure {
                            node: Some(*culprit),
                            url: self.url_of(*culprit),
                            reason: format!("sent a signature share that does not fit its presignature commitments (wrong share): {e}"),
                        });
                    }
                    if culprits.is_empty() {
                        round.failures.push(NodeFailure {
                            node: None,
                            url: String::new(),
                            reason: format!("the shares of the signing set {members:?} do not combine: {e}"),
                        });
                    }
                    round.suspects = culprits;
                    Err(round)
                }
            };
        }
        // No set answered in full. The set most members answered for is the allocation; its
        // members that gave no share for it (down, refusing, or answering for another set) are the
        // suspects — except those that refused because the allocator bound the slot twice.
        if let Some(((members, _, _), group)) = groups.iter().max_by_key(|(_, g)| g.len()) {
            round.suspects = members
                .iter()
                .copied()
                .filter(|m| !group.contains_key(m) && !used_elsewhere.contains(m))
                .collect();
            round.retry = round.retry || !round.suspects.is_empty();
            round.valid = group.len();
        }
        round.failures.extend(failed.into_values());
        Err(round)
    }

    fn url_of(&self, id: u32) -> String {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.url.clone())
            .unwrap_or_default()
    }
}

/// How many signing sets one signature request tries (the first, then with the failed excluded).
pub const SIGN_ATTEMPTS: usize = 3;

/// What one round of a sign request left behind when it made no signature.
#[derive(Default)]
struct SignRound {
    valid: usize,
    failures: Vec<NodeFailure>,
    suspects: Vec<u32>,
    retry: bool,
}

/// Adds `more` to `failures`, skipping exact repeats.
fn merge(failures: &mut Vec<NodeFailure>, more: Vec<NodeFailure>) {
    for failure in more {
        if !failures.contains(&failure) {
            failures.push(failure);
        }
    }
}

/// The BLS public key package from a handshake (`None` when the nodes list no shares); shares
/// that do not fit the key are an error.
fn bls_package(
    key: Option<&str>,
    shares: &BTreeMap<u32, String>,
    threshold: usize,
) -> Result<Option<PublicKeyPackage<Bls12381G1>>, ClientError> {
    let (Some(key), false) = (key, shares.is_empty()) else {
        return Ok(None);
    };
    let g1 = |text: &str| hex::decode(text).ok().and_then(|b| sigil_tss::bls::decode_g1(&b));
    let bad = |what: String| ClientError::Invalid(format!("the nodes report a bad BLS {what}"));
    let key = g1(key).ok_or_else(|| bad("key".into()))?;
    let mut points = BTreeMap::new();
    for (id, text) in shares {
        points.insert(
            PartyId(*id),
            g1(text).ok_or_else(|| bad(format!("public share for node {id}")))?,
        );
    }
    PublicKeyPackage::new(threshold, key, points)
        .map(Some)
        .map_err(|e| bad(format!("public key package: {e}")))
}

fn request_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    id
}
