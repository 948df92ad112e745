//! Actions on a node: [`execute`] runs an action in the sandbox (`sigil-actions`) on its own
//! thread and answers with this node's response, logs and signature shares.
//!
//! * [`chains`] — a provider per chain, and `eth_call`, for actions and conditions.
//! * [`code`] — action code by CID (stored here, or from the IPFS gateway).
//! * [`store`] — the bounded action store, `actions.redb`.
//! * [`run`] — a run on its own thread, holding a slot; action conditions.
//! * [`host`] — what an action asks of the node ([`host::ActionHost`]).
//! * [`decrypt`] — `checkConditions`, `encrypt`, `decryptAndCombine` inside actions.
//! * [`env`] — what conditions read on a node ([`env::NodeEnv`]).
//! * [`evm`] — `getLatestNonce` and `callContract` (a serialized transaction decoded for a call).
//! * [`fetch`] — HTTP(S) for actions, under [`egress`], the policy of where they may connect.
//! * [`mailbox`] — values between the nodes running the same request.
//! * [`random`] — the run's agreed random seed, a threshold signature of the network.
//! * [`warm`] — runtimes with ethers loaded, kept ready for the actions that use it.
//!
//! Uses `node`, `auth`, `signing`, `encryption`, `mesh`, `error`; never `http`.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use sigil_actions::{ActionError, RunRequest};
use sigil_primitives::{Cid, ExecuteRequest, ExecuteResponse};

use crate::auth::check_rate;
use crate::auth::credentials::{authenticate, Credentials};
use crate::error::{hex_bytes, Error, Kind};
use crate::node::Node;
use code::{code_too_large, load_code};
use env::NodeEnv;
use host::HostInner;
use run::{now_ms, run_on_thread};

pub mod chains;
pub mod code;
pub mod decrypt;
pub mod egress;
pub mod env;
pub mod evm;
pub mod fetch;
pub mod host;
pub mod mailbox;
pub mod random;
pub mod run;
pub mod store;
pub mod warm;

/// How far a request's timestamp may be from this node's clock.
const TIMESTAMP_SKEW_MS: u64 = 5 * 60 * 1000;

fn action_error(error: ActionError, logs: Vec<String>) -> Error {
    let status = match &error {
        ActionError::Timeout(_) => Kind::TimedOut,
        ActionError::OutOfMemory(_) | ActionError::Limit { .. } | ActionError::Script(_) => Kind::Failed,
        ActionError::Host { code, .. } => match code.as_str() {
            "NOT_PERMITTED" | "NOT_MINTED" | "RESERVED_KEY" | "CONDITION_FAILED" | "FETCH_BLOCKED" => Kind::Forbidden,
            "BAD_CONDITION" | "UNKNOWN_CHAIN" | "RPC_URL_PRIVATE" => Kind::Invalid,
            "NODES_DISAGREED" | "DUPLICATE_SIG_NAME" => Kind::Conflict,
            "CHAIN_UNAVAILABLE" | "POOL_EMPTY" | "NO_ALLOCATOR" | "NOT_READY" | "RANDOMNESS_FAILED" => {
                Kind::Unavailable
            }
            _ => Kind::Failed,
        },
        ActionError::Engine(_) => Kind::Internal,
    };
    let code = error.code().to_string();
    Error::new(status, code, error.to_string()).with_logs(logs)
}

/// Who a run is for, as `Lit.Auth` shows it, when the node itself decides rather than the
/// request's credentials (a custom auth action deciding a session grant).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// `Lit.Auth.authMethodContexts`: each `{authMethodType, authMethodId, context}`.
    pub auth_method_contexts: Vec<serde_json::Value>,
    /// Further `Lit.Auth` fields.
    pub auth_extra: serde_json::Map<String, serde_json::Value>,
}

/// Runs an action and returns this node's response, logs and signature shares.
pub async fn execute(node: &Arc<Node>, request: ExecuteRequest) -> Result<ExecuteResponse, Error> {
    run_action(node, request, None).await
}

/// Runs an action for `caller` (the request's credentials are not read) and answers with the
/// response the top-level action set itself: a child it `call`s cannot answer for it.
pub async fn execute_for(node: &Arc<Node>, request: ExecuteRequest, caller: Caller) -> Result<ExecuteResponse, Error> {
    run_action(node, request, Some(caller)).await
}

async fn run_action(
    node: &Arc<Node>,
    request: ExecuteRequest,
    caller: Option<Caller>,
) -> Result<ExecuteResponse, Error> {
    let request_id = hex_bytes::<16>("requestId", &request.request_id)?;
    let now = now_ms();
    let timestamp = match request.timestamp {
        Some(t) if t.abs_diff(now) > TIMESTAMP_SKEW_MS => {
            return Err(Error::bad_request(format!(
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
            let cid = Cid::of_file(code.as_bytes()).map_err(|e| Error::bad_request(e.to_string()))?;
            (code, cid)
        }
        (None, Some(id)) => {
            let cid: Cid = id.parse().map_err(|e| Error::bad_request(format!("ipfsId: {e}")))?;
            (load_code(node, &cid).await?, cid)
        }
        (None, None) => return Err(Error::bad_request("give the action's code or its ipfsId")),
        (Some(_), Some(_)) => return Err(Error::bad_request("give either code or ipfsId, not both")),
    };
    let js_params = match request.js_params {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => return Err(Error::bad_request("jsParams must be a JSON object")),
    };
    let credentials = Credentials::new(request.auth_sig.as_ref(), request.session_sigs.as_ref());
    let decision = caller.is_some();
    let principal = if caller.is_some() {
        None
    } else if credentials.present() {
        let need = sigil_chain::session::Need::action(&cid.to_string());
        let principal = authenticate(node, credentials, Some(&need)).await?;
        check_rate(node, &principal)?;
        Some(principal)
    } else {
        None
    };
    let auth_sig_address = principal.as_ref().map(|p| p.address().to_checksum(None));
    let Caller {
        auth_method_contexts,
        auth_extra,
    } = match (caller, &principal) {
        (Some(caller), _) => caller,
        (None, Some(crate::auth::Principal::Pkp { auth_methods, .. })) => Caller {
            auth_method_contexts: auth_methods.iter().map(crate::auth::Resolved::lit_context).collect(),
            auth_extra: serde_json::Map::new(),
        },
        (None, _) => Caller::default(),
    };
    if node.keys().is_none() {
        return Err(Error::not_ready());
    }
    // The slot goes with the thread: a client that hangs up does not free it early.
    let slot = run::take_slot(node, &node.action_slots, "actions").await?;
    // What the nodes of this run share (mailbox, signature requests, the random seed) is keyed by
    // the whole request, not the caller's id alone: another request reusing the id cannot mix in,
    // and the random bytes of a run cannot be learnt beforehand by running it with other params.
    let run_id: [u8; 16] = {
        let mut h = Sha256::new();
        h.update(b"sigil-action-run/v1");
        h.update(request_id);
        h.update(cid.as_bytes());
        h.update(timestamp.to_be_bytes());
        h.update(serde_json::Value::Object(js_params.clone()).to_string().as_bytes());
        h.update(auth_sig_address.as_deref().unwrap_or("").as_bytes());
        h.update(serde_json::Value::Object(auth_extra.clone()).to_string().as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        let mut id = [0u8; 16];
        id.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
        id
    };
    let run = RunRequest {
        code,
        cid: cid.to_string(),
        js_params,
        auth_sig_address,
        auth_method_contexts,
        auth_extra,
        now_ms: timestamp,
    };
    let inner = Arc::new(HostInner::full(node, run_id, Arc::new(NodeEnv::new(node)))?);
    let outcome = run_on_thread(node, run, Arc::clone(&inner), slot).await?;
    if let Err(error) = outcome.result {
        tracing::info!(%cid, code = error.code(), "action failed");
        return Err(action_error(error, outcome.logs));
    }
    let signatures = inner.signed.lock().map(|s| s.clone()).unwrap_or_default();
    let claims = inner.claims.lock().map(|c| c.clone()).unwrap_or_default();
    Ok(ExecuteResponse {
        node_id: node.me,
        response: if decision {
            outcome.root_response
        } else {
            outcome.response
        },
        logs: outcome.logs,
        signatures,
        single_node: inner.single_node.lock().ok().and_then(|s| *s),
        claims,
    })
}
