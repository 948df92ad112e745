//! Actions on a node: `POST /web/execute` runs an action in the sandbox (`sigil-actions`) on its
//! own thread, and [`ActionHost`] answers what the action asks of the node — signature shares
//! (only for PKPs that permit the action's CID), HTTP fetches, `runOnce`, `broadcastAndCollect`,
//! permission reads and child actions. `POST /web/actions` stores code under its CID.
//!
//! Nodes running the same request talk through the [`Mailbox`]: a value sent over the mesh
//! under (request id, topic) waits there until the local run asks for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use sigil_actions::{ActionError, Completion, Host, HostError, HostOp, RunRequest};
use sigil_chain::alloy::primitives::{eip191_hash_message, Address, U256};
use sigil_chain::attester_key_id;
use sigil_primitives::{ActionShare, Cid, ExecuteResponse, StoredAction};
use sigil_tss::derive::{uncompressed, KeyId};
use sigil_tss::ecdsa::{self, SignatureShare};
use sigil_tss::k256::elliptic_curve::sec1::FromEncodedPoint;
use sigil_tss::k256::{AffinePoint, EncodedPoint, ProjectivePoint};
use sigil_tss::PartyId;
use tokio::sync::Notify;

use crate::api::{authenticate, body, chain_error, hex_bytes, parse_json, registry, threshold_share, ApiError};
use crate::node::Node;
use crate::wire::Message;
pub use sigil_primitives::{ExecuteRequest, StoreRequest};

/// How far a request's timestamp may be from this node's clock.
const TIMESTAMP_SKEW_MS: u64 = 5 * 60 * 1000;
/// How long mailbox values are kept.
const MAILBOX_TTL: Duration = Duration::from_secs(300);
/// Most (request, topic) slots the mailbox holds.
const MAILBOX_SLOTS: usize = 10_000;
/// How long one `fetch` may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest `fetch` response body.
const FETCH_MAX_BYTES: usize = 16 << 20;
/// How long a node waits for the others in `broadcastAndCollect` and `signAndCombineEcdsa`.
const COLLECT_WAIT: Duration = Duration::from_secs(10);
/// How long an action condition waits for a free condition slot.
const CONDITION_SLOT_WAIT: Duration = Duration::from_secs(2);
/// Stack of the thread an action runs on (QuickJS itself is bounded to 1 MiB).
const ACTION_THREAD_STACK: usize = 8 << 20;

/// When a slot was opened, and the value of each sender.
type Slot = (Instant, BTreeMap<u32, String>);

/// Values from the nodes running the same request, by (request id, topic) and sender.
#[derive(Default)]
pub struct Mailbox {
    slots: Mutex<HashMap<([u8; 16], String), Slot>>,
    changed: Notify,
}

impl Mailbox {
    /// Records `from`'s value (the first one per sender counts).
    pub fn put(&self, request: [u8; 16], topic: &str, from: u32, value: String) {
        if let Ok(mut slots) = self.slots.lock() {
            if slots.len() >= MAILBOX_SLOTS && !slots.contains_key(&(request, topic.to_string())) {
                tracing::warn!("action mailbox full; dropping a value");
                return;
            }
            slots
                .entry((request, topic.to_string()))
                .or_insert_with(|| (Instant::now(), BTreeMap::new()))
                .1
                .entry(from)
                .or_insert(value);
        }
        self.changed.notify_waiters();
    }

    fn snapshot(&self, request: [u8; 16], topic: &str) -> BTreeMap<u32, String> {
        self.slots
            .lock()
            .ok()
            .and_then(|s| s.get(&(request, topic.to_string())).map(|(_, v)| v.clone()))
            .unwrap_or_default()
    }

    /// Waits until `done` holds for the values of (request, topic), or `wait` passes; returns
    /// the values either way.
    pub async fn wait(
        &self,
        request: [u8; 16],
        topic: &str,
        wait: Duration,
        mut done: impl FnMut(&BTreeMap<u32, String>) -> bool,
    ) -> BTreeMap<u32, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let values = self.snapshot(request, topic);
            if done(&values) {
                return values;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.snapshot(request, topic);
            }
        }
    }

    /// Forgets old values.
    pub fn sweep(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|_, (at, _)| at.elapsed() < MAILBOX_TTL);
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn code_too_large(len: usize, max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ACTION_LIMIT",
        format!("action code of {len} bytes is over the {max}-byte code size limit"),
    )
}

/// Stores code under its CID on this node.
pub async fn store_action(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<StoredAction>, ApiError> {
    let raw = body(raw)?;
    let request: StoreRequest = parse_json(&raw)?;
    let max = node.settings.config.actions.limits.code_bytes;
    if request.code.len() > max {
        return Err(code_too_large(request.code.len(), max));
    }
    let cid = Cid::of_file(request.code.as_bytes()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let size = request.code.len();
    let store = Arc::clone(&node.store);
    let key = cid.to_string();
    tokio::task::spawn_blocking(move || store.put_action(&key, request.code.as_bytes()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tracing::info!(%cid, size, "action stored");
    Ok(Json(StoredAction {
        cid: cid.to_string(),
        size,
    }))
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

/// Reads at most `max` bytes of a response body.
async fn read_capped(mut response: reqwest::Response, max: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{what}: {e}"))? {
        if out.len() + chunk.len() > max {
            return Err(format!("{what}: the body is over {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The code of action `cid`: from this node's store, else from the IPFS gateway (hash checked).
async fn load_code(node: &Arc<Node>, cid: &Cid) -> Result<String, ApiError> {
    let key = cid.to_string();
    let store = Arc::clone(&node.store);
    let lookup = key.clone();
    let stored = tokio::task::spawn_blocking(move || store.action(&lookup))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let not_found = |why: &str| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ACTION_NOT_FOUND",
            format!("node {} has no code for action {key}{why}; store it with `sigil action deploy FILE` (POST /web/actions)", node.me),
        )
    };
    let bytes = match stored {
        Some(bytes) => bytes,
        None => {
            let Some(gateway) = &node.settings.config.actions.ipfs_gateway else {
                return Err(not_found(" and no IPFS gateway is configured"));
            };
            let url = format!("{}/ipfs/{key}", gateway.trim_end_matches('/'));
            let max = node.settings.config.actions.limits.code_bytes;
            let response = http()
                .get(&url)
                .send()
                .await
                .map_err(|e| not_found(&format!(" (gateway {url}: {e})")))?;
            if !response.status().is_success() {
                return Err(not_found(&format!(" (gateway {url}: {})", response.status())));
            }
            let bytes = read_capped(response, max, &url)
                .await
                .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "ACTION_NOT_FOUND", e))?;
            let got = Cid::of_file(&bytes).map_err(|e| ApiError::internal(e.to_string()))?;
            if got != *cid {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "ACTION_HASH_MISMATCH",
                    format!("gateway {url} returned code that hashes to {got}, not {key}"),
                ));
            }
            let store = Arc::clone(&node.store);
            let (save, copy) = (key.clone(), bytes.clone());
            let _ = tokio::task::spawn_blocking(move || store.put_action(&save, &copy)).await;
            bytes
        }
    };
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request(format!("action {key} is not UTF-8 text")))
}

fn action_error(error: ActionError, logs: Vec<String>) -> ApiError {
    let status = match &error {
        ActionError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        ActionError::OutOfMemory(_) | ActionError::Limit { .. } | ActionError::Script(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ActionError::Host { code, .. } => match code.as_str() {
            "NOT_PERMITTED" | "NOT_MINTED" | "RESERVED_KEY" | "CONDITION_FAILED" => StatusCode::FORBIDDEN,
            "BAD_CONDITION" | "UNKNOWN_CHAIN" => StatusCode::BAD_REQUEST,
            "NODES_DISAGREED" | "DUPLICATE_SIG_NAME" => StatusCode::CONFLICT,
            "CHAIN_UNAVAILABLE" | "POOL_EMPTY" | "NO_ALLOCATOR" | "NOT_READY" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        },
        ActionError::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let code = error.code().to_string();
    ApiError::new(status, code, error.to_string()).with_logs(logs)
}

/// Runs an action and returns this node's response, logs and signature shares.
pub async fn execute(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<ExecuteResponse>, ApiError> {
    let raw = body(raw)?;
    let request: ExecuteRequest = parse_json(&raw)?;
    let request_id = hex_bytes::<16>("requestId", &request.request_id)?;
    let now = now_ms();
    let timestamp = match request.timestamp {
        Some(t) if t.abs_diff(now) > TIMESTAMP_SKEW_MS => {
            return Err(ApiError::bad_request(format!(
                "timestamp {t} is more than {} s from node {}'s clock ({now})",
                TIMESTAMP_SKEW_MS / 1000,
                node.me
            )))
        }
        Some(t) => t,
        None => now,
    };
    let max = node.settings.config.actions.limits.code_bytes;
    let (code, cid) = match (request.code, request.ipfs_id) {
        (Some(code), None) => {
            if code.len() > max {
                return Err(code_too_large(code.len(), max));
            }
            let cid = Cid::of_file(code.as_bytes()).map_err(|e| ApiError::bad_request(e.to_string()))?;
            (code, cid)
        }
        (None, Some(id)) => {
            let cid: Cid = id.parse().map_err(|e| ApiError::bad_request(format!("ipfsId: {e}")))?;
            (load_code(&node, &cid).await?, cid)
        }
        (None, None) => return Err(ApiError::bad_request("give the action's code or its ipfsId")),
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give either code or ipfsId, not both")),
    };
    let js_params = match request.js_params {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => return Err(ApiError::bad_request("jsParams must be a JSON object")),
    };
    let auth_sig_address = match &request.auth_sig {
        Some(auth) => Some(authenticate(&node, Some(auth)).await?.to_checksum(None)),
        None => None,
    };
    if node.keys().is_none() {
        return Err(ApiError::not_ready());
    }
    // The slot goes with the thread: a client that hangs up does not free it early.
    let slot = Arc::clone(&node.action_slots)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("node shutting down"))?;
    // What the nodes of this run share (mailbox, signature requests, Math.random) is keyed by the
    // whole request, not the caller's id alone: another request reusing the id cannot mix in.
    let run_id: [u8; 16] = {
        let mut h = Sha256::new();
        h.update(b"sigil-action-run/v1");
        h.update(request_id);
        h.update(cid.as_bytes());
        h.update(timestamp.to_be_bytes());
        h.update(serde_json::Value::Object(js_params.clone()).to_string().as_bytes());
        h.update(auth_sig_address.as_deref().unwrap_or("").as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        let mut id = [0u8; 16];
        id.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
        id
    };
    let seed = run_id;
    let run = RunRequest {
        code,
        cid: cid.to_string(),
        js_params,
        auth_sig_address,
        seed,
        now_ms: timestamp,
    };
    let inner = Arc::new(HostInner::new(&node, run_id, Mode::Full));
    let outcome = run_on_thread(&node, run, Arc::clone(&inner), slot).await?;
    if let Err(error) = outcome.result {
        tracing::info!(%cid, code = error.code(), "action failed");
        return Err(action_error(error, outcome.logs));
    }
    let signatures = inner.signed.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(Json(ExecuteResponse {
        node_id: node.me,
        response: outcome.response,
        logs: outcome.logs,
        signatures,
        single_node: inner.single_node.lock().ok().and_then(|s| *s),
    }))
}

/// Runs action `cid` as an access-control condition: its code, then `method(...params)`; the
/// result is returned as text (a string as is, anything else as JSON). The run is read-only
/// ([`Mode::Condition`]) and takes a condition slot, never an action slot, so an action that
/// decrypts cannot wait on a slot its own condition needs.
pub(crate) async fn run_condition(
    node: &Arc<Node>,
    cid: &Cid,
    method: &str,
    params: &[String],
    context: &sigil_conditions::Context,
) -> Result<Result<String, String>, sigil_conditions::EnvError> {
    let env_error = |e: ApiError| sigil_conditions::EnvError::new(e.code(), e.message());
    let code = load_code(node, cid).await.map_err(env_error)?;
    let params_json = serde_json::to_string(params).unwrap_or_else(|_| "[]".into());
    // `method` is checked to be an identifier when the conditions are parsed.
    let code = format!(
        "{code}\n;(async () => {{ const __sigilResult = await {method}(...{params_json}); Lit.Actions.setResponse({{ response: typeof __sigilResult === \"string\" ? __sigilResult : JSON.stringify(__sigilResult) }}); }})();\n"
    );
    let user = context.user;
    let seed: [u8; 16] = {
        let mut h = Sha256::new();
        h.update(b"sigil-condition-run/v1");
        h.update(cid.as_bytes());
        h.update(method.as_bytes());
        h.update(params_json.as_bytes());
        h.update(user.map(|a| a.to_vec()).unwrap_or_default());
        let digest: [u8; 32] = h.finalize().into();
        let mut id = [0u8; 16];
        id.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
        id
    };
    // A full pool is an answer ("busy"), not a queue: a flood of condition runs cannot hold
    // requests open behind it.
    let slot = tokio::time::timeout(CONDITION_SLOT_WAIT, Arc::clone(&node.condition_slots).acquire_owned())
        .await
        .map_err(|_| {
            sigil_conditions::EnvError::new(
                "BUSY",
                format!(
                    "node {} runs as many action conditions as it may; retry shortly",
                    node.me
                ),
            )
        })?
        .map_err(|_| sigil_conditions::EnvError::new("BUSY", "node shutting down"))?;
    let run = RunRequest {
        code,
        cid: cid.to_string(),
        js_params: serde_json::Map::new(),
        auth_sig_address: user.map(|a| a.to_checksum(None)),
        seed,
        now_ms: now_ms(),
    };
    let inner = Arc::new(HostInner::new(node, seed, Mode::Condition));
    let outcome = run_on_thread(node, run, inner, slot).await.map_err(env_error)?;
    Ok(match outcome.result {
        Ok(_) => Ok(outcome.response.unwrap_or_else(|| "undefined".into())),
        Err(e) => Err(format!("{}: {e}", e.code())),
    })
}

/// Runs `run` on its own thread (QuickJS blocks it) with `inner` as its host, holding `slot`
/// until the thread ends: a client that hangs up does not free it early.
pub(crate) async fn run_on_thread(
    node: &Node,
    run: RunRequest,
    inner: Arc<HostInner>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<sigil_actions::Outcome, ApiError> {
    let host = Arc::new(ActionHost(inner));
    let config = sigil_actions::Config {
        limits: node.settings.config.actions.limits.clone(),
        ethers_bundle: node.settings.config.actions.ethers_bundle.clone(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("action-{}", hex::encode(run.seed.get(..4).unwrap_or_default())))
        .stack_size(ACTION_THREAD_STACK)
        .spawn(move || {
            let _slot = slot;
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sigil_actions::run(&config, run, host)))
                    .unwrap_or_else(|_| sigil_actions::Outcome {
                        response: None,
                        logs: Vec::new(),
                        result: Err(ActionError::Engine("the action runtime panicked".into())),
                    });
            let _ = tx.send(outcome);
        })
        .map_err(|e| ApiError::internal(format!("cannot start the action thread: {e}")))?;
    rx.await
        .map_err(|_| ApiError::internal("the action thread stopped without an answer"))
}

/// What a run may ask of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A `/web/execute` run: everything.
    Full,
    /// An action run as an access-control condition: each node runs it on its own, so nothing
    /// that involves the other nodes (signing, `runOnce`, broadcasts, decryption).
    Condition,
}

pub(crate) struct HostInner {
    pub(crate) node: Arc<Node>,
    handle: tokio::runtime::Handle,
    pub(crate) request: [u8; 16],
    mode: Mode,
    signed: Mutex<BTreeMap<String, ActionShare>>,
    /// Every sigName used in this run (with or without a share here).
    names: Mutex<Vec<String>>,
    /// Set by `decryptToSingleNode`: the node that decrypts.
    pub(crate) single_node: Mutex<Option<u32>>,
}

impl HostInner {
    pub(crate) fn new(node: &Arc<Node>, request: [u8; 16], mode: Mode) -> Self {
        Self {
            node: Arc::clone(node),
            handle: tokio::runtime::Handle::current(),
            request,
            mode,
            signed: Mutex::new(BTreeMap::new()),
            names: Mutex::new(Vec::new()),
            single_node: Mutex::new(None),
        }
    }
}

/// The node side of one action run.
pub struct ActionHost(Arc<HostInner>);

impl Host for ActionHost {
    fn start(&self, op: HostOp, action: &str, done: Completion) {
        let inner = Arc::clone(&self.0);
        let action = action.to_string();
        self.0.handle.spawn(async move {
            done.finish(inner.op(op, &action).await);
        });
    }
}

fn host_error(e: ApiError) -> HostError {
    HostError::new(e.code(), e.message())
}

fn bad(message: impl Into<String>) -> HostError {
    HostError::new("BAD_REQUEST", message)
}

fn parse_point(text: &str) -> Result<ProjectivePoint, HostError> {
    let bytes = hex::decode(text.trim_start_matches("0x")).map_err(|e| bad(format!("publicKey: not hex ({e})")))?;
    let point = EncodedPoint::from_bytes(&bytes).map_err(|_| bad("publicKey: not a secp256k1 point"))?;
    Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&point))
        .map(ProjectivePoint::from)
        .ok_or_else(|| bad("publicKey: not a secp256k1 point"))
}

fn parse_token(text: &str) -> Result<U256, HostError> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => U256::from_str_radix(hex, 16),
        None => U256::from_str_radix(text, 10),
    };
    parsed.map_err(|_| bad(format!("tokenId {text:?}: expected a decimal or 0x-hex number")))
}

/// The allocation request id of signature `sig_name` of action request `request`.
fn signature_request(request: &[u8; 16], sig_name: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"sigil-action-sign/v1");
    h.update(request);
    h.update(sig_name.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    let mut id = [0u8; 16];
    id.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    id
}

impl HostInner {
    async fn op(&self, op: HostOp, action: &str) -> Result<serde_json::Value, HostError> {
        let node = &self.node;
        if self.mode == Mode::Condition {
            if let HostOp::Sign { .. }
            | HostOp::SignMessage { .. }
            | HostOp::RunOnceLeader { .. }
            | HostOp::RunOncePublish { .. }
            | HostOp::RunOnceWait { .. }
            | HostOp::Broadcast { .. }
            | HostOp::Encrypt { .. }
            | HostOp::Decrypt { .. }
            | HostOp::CheckConditions { .. } = op
            {
                return Err(HostError::new(
                    "NOT_IN_CONDITION",
                    "an action run as an access-control condition can fetch and read the chain and permissions, but not sign, encrypt, decrypt, check conditions or talk to other nodes",
                ));
            }
        }
        match op {
            HostOp::Sign {
                to_sign,
                public_key,
                sig_name,
                combine,
            } => {
                let hash = hex_bytes::<32>("toSign", &to_sign).map_err(host_error)?;
                self.sign(hash, &public_key, &sig_name, combine, action).await
            }
            HostOp::SignMessage {
                message,
                public_key,
                sig_name,
            } => {
                let bytes = hex::decode(&message).map_err(|e| bad(format!("message: not hex ({e})")))?;
                self.sign(eip191_hash_message(&bytes).0, &public_key, &sig_name, false, action)
                    .await
            }
            HostOp::Fetch {
                url,
                method,
                headers,
                body,
            } => fetch(url, method, headers, body).await,
            HostOp::Sleep { ms } => {
                let max = node.settings.config.actions.limits.wall_time;
                tokio::time::sleep(Duration::from_millis(ms).min(max)).await;
                Ok(serde_json::Value::Null)
            }
            HostOp::RunOnceLeader { .. } => {
                let leader = node.live().into_iter().min().unwrap_or(node.me);
                Ok(json!(leader == node.me))
            }
            HostOp::RunOncePublish { name, value } => {
                self.send_all(&format!("once/{name}"), value);
                Ok(serde_json::Value::Null)
            }
            HostOp::RunOnceWait { name } => {
                // Only the leader's value counts: another node cannot answer for it.
                let leader = node.live().into_iter().min().unwrap_or(node.me);
                let wait = node.settings.config.actions.limits.wall_time;
                let mut values = node
                    .mailbox
                    .wait(self.request, &format!("once/{name}"), wait, |v| v.contains_key(&leader))
                    .await;
                values.remove(&leader).map(serde_json::Value::String).ok_or_else(|| {
                    HostError::new(
                        "RUN_ONCE_TIMEOUT",
                        format!("runOnce {name:?}: node {leader}, which runs it, sent no result"),
                    )
                })
            }
            HostOp::Broadcast { name, value } => {
                let topic = format!("collect/{name}");
                self.send_all(&topic, value);
                let live = node.live();
                let values = node
                    .mailbox
                    .wait(self.request, &topic, COLLECT_WAIT, |v| {
                        live.iter().all(|id| v.contains_key(id))
                    })
                    .await;
                Ok(json!(values.into_values().collect::<Vec<_>>()))
            }
            HostOp::RpcUrl { chain } => chain_rpc_url(node, &chain).map(|url| json!(url)),
            HostOp::IsPermittedAction { token_id, ipfs_id } => {
                let cid: Cid = ipfs_id.parse().map_err(|e| bad(format!("ipfsId: {e}")))?;
                let registry = registry(node).map_err(host_error)?;
                registry
                    .is_permitted_action(parse_token(&token_id)?, cid.as_bytes())
                    .await
                    .map(|b| json!(b))
                    .map_err(|e| host_error(chain_error(e)))
            }
            HostOp::IsPermittedAddress { token_id, address } => {
                let address: Address = address.parse().map_err(|_| bad(format!("address {address:?}")))?;
                let registry = registry(node).map_err(host_error)?;
                registry
                    .is_permitted_address(parse_token(&token_id)?, address)
                    .await
                    .map(|b| json!(b))
                    .map_err(|e| host_error(chain_error(e)))
            }
            HostOp::IsPermittedAuthMethod {
                token_id,
                auth_method_type,
                user_id,
            } => {
                let id = hex::decode(&user_id).map_err(|e| bad(format!("userId: not hex ({e})")))?;
                let registry = registry(node).map_err(host_error)?;
                registry
                    .is_permitted_auth_method(parse_token(&token_id)?, U256::from(auth_method_type), &id)
                    .await
                    .map(|b| json!(b))
                    .map_err(|e| host_error(chain_error(e)))
            }
            HostOp::PermittedActions { token_id } => {
                let registry = registry(node).map_err(host_error)?;
                let list = registry
                    .permitted_actions(parse_token(&token_id)?)
                    .await
                    .map_err(|e| host_error(chain_error(e)))?;
                Ok(json!(list
                    .iter()
                    .map(|b| Cid::from_bytes(b)
                        .map(|c| c.to_string())
                        .unwrap_or_else(|_| format!("0x{}", hex::encode(b))))
                    .collect::<Vec<_>>()))
            }
            HostOp::PermittedAddresses { token_id } => {
                let registry = registry(node).map_err(host_error)?;
                let list = registry
                    .permitted_addresses(parse_token(&token_id)?)
                    .await
                    .map_err(|e| host_error(chain_error(e)))?;
                Ok(json!(list.iter().map(|a| a.to_checksum(None)).collect::<Vec<_>>()))
            }
            HostOp::PermittedAuthMethods { token_id } => {
                let registry = registry(node).map_err(host_error)?;
                let list = registry
                    .permitted_auth_methods(parse_token(&token_id)?)
                    .await
                    .map_err(|e| host_error(chain_error(e)))?;
                Ok(json!(list
                    .iter()
                    .map(|(kind, id, scopes)| json!({
                        "auth_method_type": format!("{kind:#x}"),
                        "id": format!("0x{}", hex::encode(id)),
                        "user_pubkey": "0x",
                        "scopes": format!("{scopes:#x}"),
                    }))
                    .collect::<Vec<_>>()))
            }
            HostOp::CheckConditions { conditions, auth_sig } => {
                self.check_conditions(&conditions, auth_sig.as_ref(), action).await
            }
            HostOp::Encrypt { conditions, data } => self.encrypt(&conditions, &data),
            HostOp::Decrypt {
                conditions,
                ciphertext,
                data_to_encrypt_hash,
                auth_sig,
                single_node,
            } => {
                self.decrypt(
                    &conditions,
                    &ciphertext,
                    &data_to_encrypt_hash,
                    auth_sig.as_ref(),
                    single_node,
                    action,
                )
                .await
            }
            HostOp::LoadAction { cid } => {
                let cid: Cid = cid.parse().map_err(|e| bad(format!("ipfsId: {e}")))?;
                load_code(node, &cid)
                    .await
                    .map(serde_json::Value::String)
                    .map_err(host_error)
            }
        }
    }

    pub(crate) fn send_all(&self, topic: &str, value: String) {
        let node = &self.node;
        for peer in node.net.peer_ids() {
            if peer != node.me {
                let message = Message::Action {
                    request: self.request,
                    topic: topic.to_string(),
                    value: value.clone(),
                };
                node.net.send(peer, message.encode());
            }
        }
        node.mailbox.put(self.request, topic, node.me, value);
    }

    /// A signature share for `hash` under the PKP `public_key`, if action `action` may use it.
    async fn sign(
        &self,
        hash: [u8; 32],
        public_key: &str,
        sig_name: &str,
        combine: bool,
        action: &str,
    ) -> Result<serde_json::Value, HostError> {
        let node = &self.node;
        {
            let mut names = self.names.lock().map_err(|_| HostError::new("INTERNAL", "lock"))?;
            if names.iter().any(|n| n == sig_name) {
                return Err(HostError::new(
                    "DUPLICATE_SIG_NAME",
                    format!("sigName {sig_name:?} is used twice in this action; give each signature its own name"),
                ));
            }
            names.push(sig_name.to_string());
        }
        let point = parse_point(public_key)?;
        let public_bytes = uncompressed(&point);
        let token = sigil_chain::token_id(&public_bytes);
        let registry = registry(node).map_err(host_error)?;
        let key_id = registry
            .key_id(token)
            .await
            .map_err(|e| host_error(chain_error(e)))?
            .ok_or_else(|| {
                HostError::new(
                    "NOT_MINTED",
                    format!("PKP {token:#x} is not minted on chain {}", registry.chain_id()),
                )
            })?;
        if key_id == attester_key_id() {
            return Err(HostError::new(
                "RESERVED_KEY",
                "the mint attester key signs nothing else",
            ));
        }
        let keys = node.keys().ok_or_else(|| host_error(ApiError::not_ready()))?;
        let root = *keys.ecdsa.public_key();
        if node.pkp_public_key(&root, &KeyId(key_id)) != point {
            return Err(bad(format!("publicKey is not the key of PKP {token:#x}")));
        }
        let cid: Cid = action.parse().map_err(|e| bad(format!("action CID: {e}")))?;
        let permitted = registry
            .is_permitted_action(token, cid.as_bytes())
            .await
            .map_err(|e| host_error(chain_error(e)))?;
        if !permitted {
            return Err(HostError::new(
                "NOT_PERMITTED",
                format!("action {cid} is not a permitted action of PKP {token:#x}, so it cannot sign with it"),
            ));
        }
        node.remember_key(KeyId(key_id), &public_bytes, &sigil_tss::derive::token_id(&point));
        let request = signature_request(&self.request, sig_name);
        let share = match threshold_share(node, &root, KeyId(key_id), hash, request, &[]).await {
            Ok(share) => Some(share),
            // This node holds no share of the presignature: the others sign.
            Err(e) if e.code() == "NOT_A_SIGNER" => None,
            Err(e) if e.code() == "REQUEST_CONFLICT" => {
                return Err(HostError::new(
                    "NODES_DISAGREED",
                    format!(
                        "nodes disagreed on what to sign under sigName {sig_name:?}: this node computed 0x{}, another node something else; no signature was made",
                        hex::encode(hash)
                    ),
                ))
            }
            Err(e) => return Err(host_error(e)),
        };
        if !combine {
            // Also without a share of its own, the node says what it would have signed, so its
            // answer agrees with the signers'.
            let entry = ActionShare {
                to_sign: hex::encode(hash),
                public_key: hex::encode(public_bytes),
                share,
            };
            if let Ok(mut signed) = self.signed.lock() {
                signed.insert(sig_name.to_string(), entry);
            }
            return Ok(json!("success"));
        }
        // signAndCombineEcdsa: exchange shares with the other signers and combine here.
        let topic = format!("combine/{sig_name}");
        if let Some(share) = &share {
            self.send_all(&topic, serde_json::to_string(share).unwrap_or_default());
        }
        let threshold = node.threshold;
        let mut tried = 0;
        let mut found = None;
        node.mailbox
            .wait(self.request, &topic, COLLECT_WAIT, |values| {
                if values.len() < threshold || values.len() == tried {
                    return false;
                }
                tried = values.len();
                let shares: Vec<SignatureShare> = values
                    .iter()
                    .filter_map(|(from, text)| {
                        let response: sigil_primitives::SignResponse = serde_json::from_str(text).ok()?;
                        let bytes = hex::decode(&response.share).ok()?;
                        SignatureShare::from_bytes(PartyId(*from), &bytes).ok()
                    })
                    .collect();
                match ecdsa::combine(&point, &hash, threshold, &shares) {
                    Ok(signature) => {
                        found = Some(signature);
                        true
                    }
                    Err(_) => false,
                }
            })
            .await;
        let signature = found.ok_or_else(|| {
            HostError::new(
                "COMBINE_FAILED",
                format!("signAndCombineEcdsa {sig_name:?}: fewer than {threshold} valid shares arrived from the other nodes"),
            )
        })?;
        let prefix = if signature.recovery_id & 1 == 1 { "03" } else { "02" };
        let text = json!({
            "r": format!("{prefix}{}", hex::encode(signature.r)),
            "s": hex::encode(signature.s),
            "v": signature.recovery_id,
        })
        .to_string();
        Ok(serde_json::Value::String(text))
    }
}

/// The RPC URL of chain `chain`: the network's own chain (`sigil`, or its chain id) or one of
/// `[actions] rpc_urls`.
pub(crate) fn chain_rpc_url(node: &Node, chain: &str) -> Result<String, HostError> {
    if let Some(url) = node.settings.config.actions.rpc_urls.get(chain) {
        return Ok(url.clone());
    }
    if let Some(registry) = &node.options.registry {
        if chain.is_empty() || chain == "sigil" || chain == registry.chain_id().to_string() {
            return Ok(registry.rpc_url().to_string());
        }
    }
    let mut known: Vec<String> = node.settings.config.actions.rpc_urls.keys().cloned().collect();
    if let Some(registry) = &node.options.registry {
        known.push(format!("sigil ({})", registry.chain_id()));
    }
    Err(HostError::new(
        "UNKNOWN_CHAIN",
        format!("no RPC URL for chain {chain:?}; this node knows: {}", known.join(", ")),
    ))
}

async fn fetch(
    url: String,
    method: String,
    headers: BTreeMap<String, String>,
    body: Option<String>,
) -> Result<serde_json::Value, HostError> {
    let method =
        reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| bad(format!("fetch: method {method:?}")))?;
    let mut request = http().request(method, &url);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| HostError::new("FETCH_FAILED", format!("fetch {url}: {e}")))?;
    let status = response.status();
    let mut out_headers = BTreeMap::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out_headers
            .entry(name.as_str().to_string())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let final_url = response.url().to_string();
    let bytes = read_capped(response, FETCH_MAX_BYTES, &format!("fetch {url}"))
        .await
        .map_err(|e| HostError::new("FETCH_FAILED", e))?;
    Ok(json!({
        "status": status.as_u16(),
        "statusText": status.canonical_reason().unwrap_or(""),
        "headers": out_headers,
        "url": final_url,
        "body": String::from_utf8_lossy(&bytes),
    }))
}
