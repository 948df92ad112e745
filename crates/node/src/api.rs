//! The HTTP API (`fn app(node) -> Router`): client endpoints under `/web`, health and metrics, and
//! the two mesh endpoints peers use.
//!
//! Every error is JSON — `{"error": {"code": "...", "message": "..."}}` — with a stable code.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sigil_chain::alloy::primitives::eip191_hash_message;
use sigil_chain::alloy::primitives::{Address, B256};
use sigil_chain::registry::{Grant, Registry, Standing, SCOPE_PERSONAL_MESSAGE, SCOPE_SIGN_ANYTHING};
use sigil_chain::siwe::{AuthError, AuthSig, Expected, VerifiedAuth, CLOCK_SKEW_SECS};
use sigil_chain::{attestation_digest, attester_key_id, mint_key_id, ChainError};
use sigil_tss::derive::{derive_public_key, token_id, uncompressed, KeyId};
use sigil_tss::ecdsa::sign_share_derived;
use sigil_tss::k256::{ProjectivePoint, Scalar};

use crate::metrics::{metric, SignPhase};
use crate::net::{frames, NetError};
use crate::node::{health, unix_now, Fault, Node};
use crate::pool::{allocate, pool_id, AllocateCall, AllocateError};
use crate::store::{PresignatureId, StoreError};
use crate::wire::{Allocation, Call, Message, Reply};
pub use sigil_primitives::{
    AttestRequest, ErrorBody, ErrorFields, Handshake, HandshakeRequest, PeerInfo, SignRequest, SignResponse,
    ATTESTATION_ATTEMPTS,
};

/// Largest body accepted on `/web` endpoints.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest personal message `/web/pkp/sign` hashes for the caller.
pub const MAX_PERSONAL_MESSAGE: usize = 16 * 1024;
/// Largest body accepted on `/mesh` endpoints (one batch of envelopes).
pub const MAX_MESH_BYTES: usize = 64 << 20;
const ALLOCATOR_CALL: Duration = Duration::from_secs(40);

/// An error as clients see it.
#[derive(Clone, Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    logs: Vec<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            logs: Vec::new(),
        }
    }

    /// The same error carrying an action's console output.
    pub(crate) fn with_logs(mut self, logs: Vec<String>) -> Self {
        self.logs = logs;
        self
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400 with a message naming the bad field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    /// 503: the pool has nothing to allocate.
    pub fn pool_empty(node: u32) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "POOL_EMPTY",
            format!("node {node} has no presignature in stock; the pool refills in the background, retry shortly"),
        )
    }

    /// 409: a request id reused for another key or message.
    pub fn conflict(request: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "REQUEST_CONFLICT",
            format!("requestId {request} was already used for another key or message; use a fresh random requestId"),
        )
    }

    pub(crate) fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            "the root keys do not exist yet (the network is still starting)",
        )
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    fn from_code(code: &str, message: String) -> Self {
        let (status, code) = match code {
            "POOL_EMPTY" => (StatusCode::SERVICE_UNAVAILABLE, "POOL_EMPTY"),
            "STALE_CALL" => (StatusCode::BAD_GATEWAY, "ALLOCATOR_ERROR"),
            "NOT_READY" => (StatusCode::SERVICE_UNAVAILABLE, "NOT_READY"),
            "REQUEST_CONFLICT" => (StatusCode::CONFLICT, "REQUEST_CONFLICT"),
            "BAD_REQUEST" => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            _ => (StatusCode::BAD_GATEWAY, "ALLOCATOR_ERROR"),
        };
        Self::new(status, code, message)
    }
}

impl From<AllocateError> for ApiError {
    fn from(e: AllocateError) -> Self {
        let status = match &e {
            AllocateError::PoolEmpty(_) => StatusCode::SERVICE_UNAVAILABLE,
            AllocateError::Conflict(_) => StatusCode::CONFLICT,
            AllocateError::Stale { .. } => StatusCode::BAD_GATEWAY,
            AllocateError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorFields {
                code: self.code.into_owned(),
                message: self.message,
                logs: self.logs,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The router for one node.
pub fn app(node: Arc<Node>) -> Router {
    let web = Router::new()
        .route("/web/handshake", post(handshake))
        .route("/web/pkp/sign", post(pkp_sign))
        .route("/web/pkp/mint-attestation", post(mint_attestation))
        .route("/web/encryption/sign", post(crate::encryption::encryption_sign))
        .route("/health", get(health_route))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES));
    // Action code may be large: these two take the code limit, with room for JSON escaping.
    let code_limit = node.settings.config.actions.limits.code_bytes;
    let actions = Router::new()
        .route("/web/execute", post(crate::actions::execute))
        .route("/web/actions", post(crate::actions::store_action))
        .layer(DefaultBodyLimit::max(
            code_limit.saturating_mul(2).saturating_add(1 << 20),
        ));
    let mesh = Router::new()
        .route("/mesh/send", post(mesh_send))
        .route("/mesh/call", post(mesh_call))
        .layer(DefaultBodyLimit::max(MAX_MESH_BYTES));
    web.merge(actions)
        .merge(mesh)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&node), track))
        .with_state(node)
}

async fn track(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let started = Instant::now();
    let response = next.run(request).await;
    node.metrics
        .observe(&endpoint, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "wrong HTTP method for this endpoint",
    )
}

/// Turns a body extraction failure (too large, unreadable) into our JSON error.
pub(crate) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "BODY_TOO_LARGE",
                format!("request body too large: {}", e.body_text()),
            )
        } else {
            ApiError::new(status, "BAD_BODY", e.body_text())
        }
    })
}

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            "BAD_JSON"
        } else {
            "BAD_REQUEST"
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, format!("request body: {e}"))
    })
}

async fn health_route(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(health(&node))
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let mut out = String::new();
    node.metrics.render(&mut out);
    let up = node.live().len();
    metric(
        &mut out,
        "sigil_peers_up",
        "gauge",
        "Nodes reachable, this one included.",
        up,
    );
    metric(
        &mut out,
        "sigil_nodes",
        "gauge",
        "Nodes in the network.",
        node.settings.peers.len(),
    );
    metric(
        &mut out,
        "sigil_root_keys_ready",
        "gauge",
        "1 once this node holds its root key shares.",
        u8::from(node.keys().is_some()),
    );
    metric(
        &mut out,
        "sigil_presignature_stock",
        "gauge",
        "Presignatures this node can allocate (nonzero only on the allocator).",
        node.pool.stock(),
    );
    let reserved = node.taker.reserved() as u64;
    let stored = node.store.presignature_count().unwrap_or(0);
    metric(
        &mut out,
        "sigil_presignature_shares_stored",
        "gauge",
        "Presignature shares held by this node (in the store, or reserved in memory).",
        stored + reserved,
    );
    metric(
        &mut out,
        "sigil_presignatures_reserved",
        "gauge",
        "Presignature shares taken ahead of their requests and held in memory (at most 16).",
        reserved,
    );
    metric(
        &mut out,
        "sigil_presignatures_made_total",
        "counter",
        "Presignatures this node helped make since it started.",
        node.pool.made(),
    );
    metric(
        &mut out,
        "sigil_presignatures_per_second",
        "gauge",
        "Presignature generation rate over the last minute.",
        format!("{:.3}", node.pool.rate()),
    );
    metric(
        &mut out,
        "sigil_presignatures_allocated_total",
        "counter",
        "Presignatures this node allocated to sign requests.",
        node.pool.allocated(),
    );
    metric(
        &mut out,
        "sigil_presignature_conflicts_total",
        "counter",
        "Sign requests refused because their presignature was already used for another request (an allocator bound it twice).",
        node.pool.conflicts(),
    );
    metric(
        &mut out,
        "sigil_signing_set_penalized",
        "gauge",
        "Nodes left out of new signing sets (as allocator) because they stalled a presignature run.",
        node.pool.penalized().len(),
    );
    if let Some(fault) = node.options.fault() {
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!(
                "# HELP sigil_test_fault A test-only fault switch is on: this node misbehaves on purpose.\n# TYPE sigil_test_fault gauge\nsigil_test_fault{{node=\"{}\",fault=\"{}\"}} 1\n",
                node.me,
                fault.name()
            ),
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn handshake(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Handshake>, ApiError> {
    let raw = body(raw)?;
    let request: HandshakeRequest = if raw.iter().all(u8::is_ascii_whitespace) {
        HandshakeRequest::default()
    } else {
        // The body is optional, but when given it must be a JSON object.
        let object: serde_json::Map<String, serde_json::Value> = parse_json(&raw)?;
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| ApiError::bad_request(format!("handshake body: {e}")))?
    };
    let challenge = match request.challenge.as_deref() {
        None => None,
        Some(text) => Some(
            hex::decode(text.trim_start_matches("0x"))
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| ApiError::bad_request("challenge must be 32 bytes of hex"))?,
        ),
    };
    let cached = node.public_keys();
    let public = cached.as_ref().map(|c| &c.0);
    // Signed only when asked with a challenge: an unsigned answer is worth nothing to a client.
    let signature = challenge.and_then(|c| node.sign_handshake(public, &c));
    let (chain_id, latest_blockhash, node_set) = match &node.options.registry {
        Some(registry) => (
            Some(registry.chain_id()),
            registry.head().await.ok().map(|head| head.hash.to_string()),
            Some(registry.contracts().node_set.to_string()),
        ),
        None => (None, None, None),
    };
    Ok(Json(Handshake {
        chain_id,
        latest_blockhash,
        node_set,
        node_id: node.me,
        epoch: node.settings.epoch,
        threshold: node.threshold,
        ready: public.is_some(),
        ecdsa_public_key: public.as_ref().map(|k| hex::encode(&k.ecdsa)),
        bls_public_key: public.as_ref().map(|k| hex::encode(&k.bls)),
        bls_public_shares: public
            .as_ref()
            .map(|k| {
                k.bls_shares
                    .iter()
                    .map(|(id, share)| (*id, hex::encode(share)))
                    .collect()
            })
            .unwrap_or_default(),
        attester: public.as_ref().map(|k| k.attester.to_string()),
        identity_key: hex::encode(node.identity_key()),
        signer: Some(node.signer_address().to_string()),
        signature: signature.map(hex::encode),
        keys_signature: cached.as_ref().and_then(|c| c.1).map(hex::encode),
        peers: node
            .settings
            .peers
            .iter()
            .map(|(id, url, key)| PeerInfo {
                id: *id,
                url: url.clone(),
                key: key.to_string(),
            })
            .collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }))
}

pub(crate) fn hex_bytes<const N: usize>(field: &str, text: &str) -> Result<[u8; N], ApiError> {
    let raw = hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|e| ApiError::bad_request(format!("{field}: not hex ({e})")))?;
    let len = raw.len();
    raw.try_into()
        .map_err(|_| ApiError::bad_request(format!("{field}: {len} bytes, expected {N}")))
}

fn to_sign(value: &serde_json::Value) -> Result<[u8; 32], ApiError> {
    match value {
        serde_json::Value::String(text) => hex_bytes::<32>("toSign", text),
        serde_json::Value::Array(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            let bytes = bytes.ok_or_else(|| ApiError::bad_request("toSign: array items must be bytes (0-255)"))?;
            let len = bytes.len();
            bytes
                .try_into()
                .map_err(|_| ApiError::bad_request(format!("toSign: {len} bytes, expected a 32-byte hash")))
        }
        _ => Err(ApiError::bad_request(
            "toSign: expected a hex string or an array of 32 bytes",
        )),
    }
}

/// `exclude` may name at most n − t distinct nodes of this network.
fn check_exclude(node: &Node, exclude: &[u32]) -> Result<(), ApiError> {
    let n = node.settings.peers.len();
    let mut ids = exclude.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != exclude.len() || ids.iter().any(|id| *id as usize >= n) {
        return Err(ApiError::bad_request(format!("exclude: distinct node ids below {n}")));
    }
    if ids.len() > n - node.threshold {
        return Err(ApiError::bad_request(format!(
            "exclude: at most n − t = {} nodes can be left out",
            n - node.threshold
        )));
    }
    Ok(())
}

fn resolve_key(node: &Node, request: &SignRequest) -> Result<KeyId, ApiError> {
    let unknown = |what: &str| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "UNKNOWN_KEY",
            format!("no PKP with this {what} is known to node {}; name it by keyId", node.me),
        )
    };
    match (&request.key_id, &request.public_key, &request.token_id) {
        (Some(id), None, None) => Ok(KeyId(hex_bytes::<32>("keyId", id)?)),
        (None, Some(pk), None) => {
            let pk = hex_bytes::<65>("publicKey", pk)?;
            node.lookup_key(&pk).ok_or_else(|| unknown("public key"))
        }
        (None, None, Some(token)) => {
            let token = hex_bytes::<32>("tokenId", token)?;
            node.lookup_key(&token).ok_or_else(|| unknown("token id"))
        }
        (None, None, None) => Err(ApiError::bad_request("name the key: keyId, publicKey or tokenId")),
        _ => Err(ApiError::bad_request("give exactly one of keyId, publicKey, tokenId")),
    }
}

async fn pkp_sign(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<SignResponse>, ApiError> {
    let raw = body(raw)?;
    let request: SignRequest = parse_json(&raw)?;
    let (hash, personal) = match (&request.to_sign, &request.message) {
        (Some(value), None) => (to_sign(value)?, false),
        (None, Some(text)) => {
            let message = hex::decode(text.strip_prefix("0x").unwrap_or(text))
                .map_err(|e| ApiError::bad_request(format!("message: not hex ({e})")))?;
            if message.len() > MAX_PERSONAL_MESSAGE {
                return Err(ApiError::bad_request(format!(
                    "message: {} bytes, at most {MAX_PERSONAL_MESSAGE}",
                    message.len()
                )));
            }
            (eip191_hash_message(&message).0, true)
        }
        (None, None) => return Err(ApiError::bad_request("give toSign (a 32-byte hash) or message (hex)")),
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give either toSign or message, not both")),
    };
    let request_id = hex_bytes::<16>("requestId", &request.request_id)?;
    check_exclude(&node, &request.exclude)?;
    let key_id = resolve_key(&node, &request)?;
    if key_id.0 == attester_key_id() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "RESERVED_KEY",
            "this key id belongs to the network's mint attester and signs only mint attestations",
        ));
    }
    let keys = node.keys().ok_or_else(ApiError::not_ready)?;
    let root = *keys.ecdsa.public_key();
    let public_key = node.pkp_public_key(&root, &key_id);
    let public_bytes = uncompressed(&public_key);
    let started = Instant::now();
    authorize(&node, request.auth_sig.as_ref(), &public_bytes, personal).await?;
    node.metrics
        .observe_phase(SignPhase::Authorize, started.elapsed().as_secs_f64());
    node.remember_key(key_id, &public_bytes, &token_id(&public_key));
    threshold_share(&node, &root, key_id, hash, request_id, &request.exclude)
        .await
        .map(Json)
}

/// A share of the network's attestation that the PKP under `keyId` exists: the attester key
/// signs `attestation_digest(chainId, PKPNFT, keyId, pubkey)`, which PKPNFT checks on mint.
/// The mint must have been requested on chain first (`PKPNFT.requestMint`, which costs gas and
/// the mint fee): a wallet without funds cannot make the nodes spend presignatures.
async fn mint_attestation(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<SignResponse>, ApiError> {
    let raw = body(raw)?;
    let request: AttestRequest = parse_json(&raw)?;
    let salt = hex_bytes::<32>("salt", &request.salt)?;
    if request.attempt >= ATTESTATION_ATTEMPTS {
        return Err(ApiError::bad_request(format!(
            "attempt: {}, at most {}",
            request.attempt,
            ATTESTATION_ATTEMPTS - 1
        )));
    }
    check_exclude(&node, &request.exclude)?;
    let registry = registry(&node)?;
    let keys = node.keys().ok_or_else(ApiError::not_ready)?;
    let minter = authenticate(&node, request.auth_sig.as_ref()).await?;
    let key_id = KeyId(mint_key_id(
        minter,
        &salt,
        request.via_helper.then_some(registry.contracts().pkp_helper),
    ));
    let root = *keys.ecdsa.public_key();
    let pubkey = uncompressed(&derive_public_key(&root, &key_id));
    let token = sigil_chain::token_id(&pubkey);
    if registry.minted(token).await.map_err(chain_error)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ALREADY_MINTED",
            format!(
                "PKP {token:#x} (salt 0x{}) is already minted; use a fresh salt",
                hex::encode(salt)
            ),
        ));
    }
    if !registry.mint_requested(key_id.0).await.map_err(chain_error)? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "MINT_NOT_REQUESTED",
            format!(
                "no mint request for key id 0x{} on chain {}: call PKPNFT.requestMint(keyId) first (it costs gas and the mint fee)",
                hex::encode(key_id.0),
                registry.chain_id()
            ),
        ));
    }
    let request_id: [u8; 16] = {
        let mut h = Sha256::new();
        h.update(b"sigil-attestation-request/v1");
        h.update(key_id.0);
        h.update([request.attempt]);
        let digest: [u8; 32] = h.finalize().into();
        let mut id = [0u8; 16];
        id.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
        id
    };
    let digest = attestation_digest(registry.chain_id(), registry.contracts().pkp_nft, &key_id.0, &pubkey);
    threshold_share(
        &node,
        &root,
        KeyId(attester_key_id()),
        digest,
        request_id,
        &request.exclude,
    )
    .await
    .map(Json)
}

pub(crate) fn registry(node: &Node) -> Result<&Arc<Registry>, ApiError> {
    node.options.registry.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "NO_CHAIN",
            format!(
                "node {} has no chain configured, so it cannot check permissions and signs nothing",
                node.me
            ),
        )
    })
}

pub(crate) fn chain_error(e: ChainError) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "CHAIN_UNAVAILABLE", e.to_string())
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Longest accepted lifetime of an auth signature (expiration − issued at).
pub const MAX_AUTH_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// Checks an auth signature: EIP-191 signature of an EIP-4361 message for this network's domain
/// and chain, unexpired, not valid for longer than [`MAX_AUTH_LIFETIME_SECS`], and with a fresh
/// nonce — the hash of a block of this chain at most `nonce_max_age_secs` older than the head,
/// and (unless it is the head itself) no older than that by the clock either. Returns the signer.
pub(crate) async fn authenticate(node: &Node, auth: Option<&serde_json::Value>) -> Result<Address, ApiError> {
    let registry = registry(node)?;
    let chain = node
        .settings
        .config
        .chain
        .as_ref()
        .ok_or_else(|| ApiError::internal("a registry without a [chain] section in the config"))?;
    let auth = auth.ok_or_else(|| {
        unauthorized(
            "AUTH_MISSING",
            "authSig is required: an EIP-4361 (SIWE) message signed by the PKP's owner or a permitted address",
        )
    })?;
    let auth: AuthSig =
        serde_json::from_value(auth.clone()).map_err(|e| unauthorized("AUTH_MALFORMED", format!("authSig: {e}")))?;
    let max_age = chain.nonce_max_age_secs;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expected = Expected {
        domain: chain.auth_domain.clone(),
        chain_id: registry.chain_id(),
    };
    let verified = verified_auth(node, &auth, &expected, now)?;
    let message = &verified.message;
    if let Some(expires) = message.expiration_time {
        let lifetime = expires.saturating_sub(message.issued_at);
        if lifetime > MAX_AUTH_LIFETIME_SECS {
            return Err(unauthorized(
                "AUTH_LIFETIME_TOO_LONG",
                format!("authSig is valid for {lifetime} s; at most {MAX_AUTH_LIFETIME_SECS} s is accepted"),
            ));
        }
    }
    let stale = |why: String| {
        let e = AuthError::StaleNonce(why);
        unauthorized(e.code(), e.to_string())
    };
    let nonce = &message.nonce;
    let block_hash: B256 = nonce.parse().map_err(|_| {
        stale(format!(
            "nonce {nonce:?} is not a block hash; use a recent block hash (latestBlockhash from /web/handshake)"
        ))
    })?;
    let head = registry.sync().await.map_err(chain_error)?;
    let (number, timestamp) = registry.block(block_hash).await.map_err(chain_error)?.ok_or_else(|| {
        stale(format!(
            "nonce {nonce} is not the hash of a block on chain {}",
            registry.chain_id()
        ))
    })?;
    let age = head.timestamp.saturating_sub(timestamp);
    if age > max_age {
        return Err(stale(format!(
            "nonce is block {number}, {age} s older than the head block {} (limit {max_age} s)",
            head.number
        )));
    }
    let clock_age = now.saturating_sub(timestamp);
    if block_hash != head.hash && clock_age > max_age {
        return Err(stale(format!(
            "nonce is block {number}, mined {clock_age} s ago (limit {max_age} s); use the latest block hash"
        )));
    }
    Ok(verified.address)
}

/// Most verified auth signatures a node remembers (the map is emptied when full).
const VERIFIED_AUTH_CACHE: usize = 4096;

/// [`AuthSig::verify`], remembering signatures that passed: a cached one is only checked again
/// against the clock (expiration, not-before).
fn verified_auth(node: &Node, auth: &AuthSig, expected: &Expected, now: u64) -> Result<VerifiedAuth, ApiError> {
    let key: [u8; 32] = {
        let mut h = Sha256::new();
        for part in [&auth.sig, &auth.derived_via, &auth.signed_message, &auth.address] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    };
    let cached = node.verified_auth.lock().ok().and_then(|m| m.get(&key).cloned());
    if let Some(verified) = cached {
        let message = &verified.message;
        let error = match (message.expiration_time, message.not_before) {
            (Some(at), _) if at <= now => Some(AuthError::Expired { at, now }),
            (_, Some(at)) if at > now + CLOCK_SKEW_SECS => Some(AuthError::NotYetValid { at, now }),
            _ => None,
        };
        return match error {
            Some(e) => Err(unauthorized(e.code(), e.to_string())),
            None => Ok(verified),
        };
    }
    let verified = auth
        .verify(expected, now)
        .map_err(|e| unauthorized(e.code(), e.to_string()))?;
    if let Ok(mut map) = node.verified_auth.lock() {
        if map.len() >= VERIFIED_AUTH_CACHE {
            map.clear();
        }
        map.insert(key, verified.clone());
    }
    Ok(verified)
}

/// Checks the auth signature and the chain: the signer must own PKP `pubkey`, or be a permitted
/// address, or a permitted Ethereum-wallet auth method whose scopes allow signing anything — or,
/// for a `personal` message the node hashed itself, personal messages.
async fn authorize(
    node: &Node,
    auth: Option<&serde_json::Value>,
    pubkey: &[u8; 65],
    personal: bool,
) -> Result<Address, ApiError> {
    let address = authenticate(node, auth).await?;
    let registry = registry(node)?;
    let token = sigil_chain::token_id(pubkey);
    match registry.standing(token, address).await.map_err(chain_error)? {
        Standing::Granted(Grant::Owner | Grant::PermittedAddress) => Ok(address),
        Standing::Granted(Grant::AuthMethod { scopes }) if scopes & SCOPE_SIGN_ANYTHING != 0 => Ok(address),
        Standing::Granted(Grant::AuthMethod { scopes }) if personal && scopes & SCOPE_PERSONAL_MESSAGE != 0 => {
            Ok(address)
        }
        Standing::Granted(Grant::AuthMethod { scopes }) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "SCOPE_TOO_NARROW",
            format!(
                "{address} is a permitted auth method of PKP {token:#x} with scopes {scopes}: {}",
                if scopes & SCOPE_PERSONAL_MESSAGE != 0 {
                    "personal messages only (send `message`, not a raw hash)"
                } else {
                    "they do not include signing"
                }
            ),
        )),
        Standing::Unminted => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_MINTED",
            format!(
                "PKP {token:#x} is not minted on chain {}; mint it with `sigil pkp mint`",
                registry.chain_id()
            ),
        )),
        Standing::Refused { burned: true } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_PERMITTED",
            format!("PKP {token:#x} is burned (it has no owner), and {address} is not one of its permitted addresses or auth methods"),
        )),
        Standing::Refused { burned: false } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_PERMITTED",
            format!("{address} is not the owner of PKP {token:#x}, nor a permitted address or auth method"),
        )),
    }
}

/// Takes this request's presignature (marking it used) and returns this node's share of the
/// signature of `hash` under the key derived by `key_id`.
///
/// The share is released only if the allocation comes from the allocator that was asked, names a
/// signing set of exactly `t` nodes, this node among them, and that set is exactly the holder set
/// of the stored presignature; the take is durable and bound to this request, so an allocator that
/// binds the presignature to a second request gets nothing more from this node (DESIGN §4).
pub(crate) async fn threshold_share(
    node: &Arc<Node>,
    root: &ProjectivePoint,
    key_id: KeyId,
    hash: [u8; 32],
    request_id: [u8; 16],
    exclude: &[u32],
) -> Result<SignResponse, ApiError> {
    let public_key = node.pkp_public_key(root, &key_id);
    let public_bytes = uncompressed(&public_key);
    let digest = {
        let mut h = Sha256::new();
        h.update(key_id.0);
        h.update(hash);
        hex::encode(h.finalize())
    };
    if !node.witnessed() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            format!(
                "node {} is checking with its peers that its data is not older than what it already used",
                node.me
            ),
        ));
    }
    let request_hex = hex::encode(request_id);
    let started = Instant::now();
    let (allocator, allocation) = allocation(node, &request_hex, &digest, exclude).await?;
    node.metrics
        .observe_phase(SignPhase::Allocate, started.elapsed().as_secs_f64());
    let refuse = |message: String| ApiError::new(StatusCode::BAD_GATEWAY, "ALLOCATOR_ERROR", message);
    if allocation.pool != allocator {
        return Err(refuse(format!(
            "node {allocator} answered with a presignature of node {}'s pool",
            allocation.pool
        )));
    }
    if allocation.participants.len() != node.threshold {
        return Err(refuse(format!(
            "node {allocator} allocated a presignature of {} holders; a signing set is exactly t = {}",
            allocation.participants.len(),
            node.threshold
        )));
    }
    if !allocation.participants.contains(&node.me) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NOT_A_SIGNER",
            format!(
                "node {} is not in the signing set {:?} of the presignature allocated to this request",
                node.me, allocation.participants
            ),
        ));
    }
    let entropy = hex_bytes::<32>("entropy", &allocation.entropy).map_err(|e| ApiError::internal(e.message))?;
    let id = PresignatureId {
        pool: pool_id(node, allocation.pool),
        seq: allocation.seq,
    };
    let binding: [u8; 32] = {
        let mut h = Sha256::new();
        h.update(b"sigil-take/v1");
        h.update(request_id);
        h.update(digest.as_bytes());
        h.finalize().into()
    };
    node.taker.reserve_from(id.pool);
    let started = Instant::now();
    let taken = node.taker.take(id, binding).await;
    node.metrics
        .observe_phase(SignPhase::Take, started.elapsed().as_secs_f64());
    let presignature = match taken {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "PRESIGNATURE_MISSING",
                format!("node {} does not hold presignature {id}", node.me),
            ))
        }
        Err(StoreError::AlreadyUsed(what)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "PRESIGNATURE_USED",
                format!(
                    "presignature {what} was already used by node {} for this request; it is never used twice",
                    node.me
                ),
            ))
        }
        Err(StoreError::UsedForAnother(what)) => {
            node.pool.record_conflict();
            tracing::warn!(
                allocator,
                presignature = %what,
                request = %request_hex,
                "the allocator bound a presignature this node already used to another request; no share released"
            );
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "PRESIGNATURE_USED",
                format!(
                    "presignature {what} was already used by node {} for another request: allocator {allocator} bound it twice; no share released",
                    node.me
                ),
            ));
        }
        Err(StoreError::Discarded(what)) => {
            crate::pool::report_discarded(node, &[id]);
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "PRESIGNATURE_DISCARDED",
                format!(
                    "node {} took presignature {what} ahead of its request before it restarted, so it never uses it; retry",
                    node.me
                ),
            ));
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let holders: Vec<u32> = presignature.signers().iter().map(|p| p.0).collect();
    if holders != allocation.participants {
        node.pool.record_conflict();
        tracing::warn!(allocator, presignature = %id, ?holders, named = ?allocation.participants, "an allocation named another holder set; presignature discarded, no share released");
        return Err(refuse(format!(
            "node {allocator} named the signing set {:?}, but presignature {id} is held by {holders:?}; it is discarded",
            allocation.participants
        )));
    }
    let started = Instant::now();
    let mut share = sign_share_derived(presignature, &public_key, &key_id, &hash, &entropy)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    node.metrics
        .observe_phase(SignPhase::Share, started.elapsed().as_secs_f64());
    if node.has_fault(Fault::CorruptSignatureShares) {
        share.s += Scalar::ONE;
    }
    Ok(SignResponse {
        node_id: node.me,
        share: hex::encode(share.to_bytes()),
        public_key: hex::encode(public_bytes),
        presignature: format!("{}:{}", allocation.pool, allocation.seq),
        participants: allocation.participants,
        threshold: node.threshold,
    })
}

/// Asks the allocator — the lowest node that answers — for this request's presignature; returns
/// the allocator's id with its answer.
async fn allocation(
    node: &Arc<Node>,
    request: &str,
    digest: &str,
    exclude: &[u32],
) -> Result<(u32, Allocation), ApiError> {
    let at = unix_now();
    let call = serde_json::to_vec(&Call::Allocate {
        request: request.to_string(),
        digest: digest.to_string(),
        exclude: exclude.to_vec(),
        at,
    })
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut unreachable = Vec::new();
    for (id, _, _) in &node.settings.peers {
        if *id == node.me {
            let call = AllocateCall {
                request,
                digest,
                exclude,
                at,
            };
            return Ok((node.me, allocate(node, call).await?));
        }
        match node.net.call(*id, &call, ALLOCATOR_CALL).await {
            Ok(bytes) => {
                return match serde_json::from_slice::<Reply>(&bytes) {
                    // A reply is not bound to its call: one for another request is refused here.
                    Ok(Reply::Allocated(a)) if a.digest == digest => Ok((*id, a)),
                    Ok(Reply::Allocated(_)) => Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "ALLOCATOR_ERROR",
                        format!("node {id} answered with the allocation of another request"),
                    )),
                    Ok(Reply::Error { code, message }) => Err(ApiError::from_code(&code, message)),
                    _ => Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "ALLOCATOR_ERROR",
                        format!("node {id} answered the allocation with something else"),
                    )),
                };
            }
            Err(e @ (NetError::Unreachable { .. } | NetError::Refused { .. })) => unreachable.push(e.to_string()),
            Err(e) => unreachable.push(e.to_string()),
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "NO_ALLOCATOR",
        format!("no allocator reachable: {}", unreachable.join("; ")),
    ))
}

async fn mesh_send(State(node): State<Arc<Node>>, raw: Result<Bytes, BytesRejection>) -> Result<StatusCode, ApiError> {
    let raw = body(raw)?;
    let frames = frames(&raw).map_err(ApiError::bad_request)?;
    for frame in frames {
        let opened = match node.net.open(frame) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "rejected a mesh envelope");
                return Err(ApiError::new(StatusCode::FORBIDDEN, "MESH_REJECTED", e.to_string()));
            }
        };
        match Message::decode(&opened.body) {
            Ok(Message::Protocol(session, bytes)) => {
                node.sessions
                    .deliver(opened.from, sigil_mesh::SessionKey(session), bytes)
            }
            Ok(Message::Start(start)) => {
                if let Err(e) = crate::pool::join(&node, opened.from, start) {
                    tracing::warn!(peer = opened.from, error = %e, "presignature order refused");
                }
            }
            Ok(Message::Stored(seq)) => crate::pool::stored(&node, opened.from, seq),
            Ok(Message::Failed { seq, silent }) => crate::pool::failed(&node, opened.from, seq, &silent),
            Ok(Message::Action { request, topic, value }) => node.mailbox.put(request, &topic, opened.from, value),
            Err(e) => tracing::warn!(peer = opened.from, error = %e, "malformed mesh message"),
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn mesh_call(State(node): State<Arc<Node>>, raw: Result<Bytes, BytesRejection>) -> Result<Vec<u8>, ApiError> {
    let raw = body(raw)?;
    let opened = node
        .net
        .open(&raw)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, "MESH_REJECTED", e.to_string()))?;
    let reply = match serde_json::from_slice::<Call>(&opened.body) {
        Ok(Call::Ping) => {
            let signed = node.sign_takes(node.store.takes().unwrap_or(0));
            Reply::Pong {
                ready: node.keys().is_some(),
                takes: signed.takes,
                proof: hex::encode(signed.signature),
            }
        }
        Ok(Call::Discard { seqs }) if seqs.len() <= crate::wire::MAX_DISCARDED => Reply::Dropped {
            count: crate::pool::discarded(&node, opened.from, &seqs).await,
        },
        Ok(Call::Discard { .. }) => Reply::Error {
            code: "BAD_REQUEST".into(),
            message: format!("at most {} slots per discard", crate::wire::MAX_DISCARDED),
        },
        Ok(Call::Witness) => {
            let mut seen = node.seen_takes(opened.from);
            if node.options.fault() == Some(crate::Fault::InflatedWitness) {
                seen = seen.map(|s| crate::store::SignedTakes {
                    takes: s.takes.saturating_add(1_000_000),
                    ..s
                });
            }
            Reply::Witnessed {
                takes: seen.map_or(0, |s| s.takes),
                proof: seen.map(|s| hex::encode(s.signature)).unwrap_or_default(),
            }
        }
        Ok(Call::Allocate {
            request,
            digest,
            exclude,
            at,
        }) => {
            if node.keys().is_none() {
                Reply::Error {
                    code: "NOT_READY".into(),
                    message: ApiError::not_ready().message,
                }
            } else if !node.is_allocator() {
                // Two allocators answering one request would bind it to two presignatures.
                Reply::Error {
                    code: "NOT_ALLOCATOR".into(),
                    message: format!("node {} is not the allocator: a lower node is live", node.me),
                }
            } else if hex_bytes::<16>("requestId", &request).is_err() || hex_bytes::<32>("digest", &digest).is_err() {
                Reply::Error {
                    code: "BAD_REQUEST".into(),
                    message: "allocation request with a malformed id".into(),
                }
            } else {
                let call = AllocateCall {
                    request: &request,
                    digest: &digest,
                    exclude: &exclude,
                    at,
                };
                match allocate(&node, call).await {
                    Ok(a) => Reply::Allocated(a),
                    Err(e) => Reply::Error {
                        code: e.code().into(),
                        message: e.to_string(),
                    },
                }
            }
        }
        Err(e) => Reply::Error {
            code: "BAD_REQUEST".into(),
            message: format!("mesh call: {e}"),
        },
    };
    let bytes = serde_json::to_vec(&reply).map_err(|e| ApiError::internal(e.to_string()))?;
    node.net
        .seal_to(opened.from, &bytes)
        .map_err(|e| ApiError::internal(e.to_string()))
}
