//! Threshold decryption on a node.
//!
//! Data is encrypted by clients alone, to the network's BLS key and the identity
//! `sigil-acc://{hash(conditions)}/{hash(data)}`. Decrypting needs the BLS signature over that
//! identity, so a node "allows decryption" by releasing its signature share — which it does only
//! after deciding the access-control conditions itself:
//!
//! - `POST /web/encryption/sign` answers a client with the share, or 403 `CONDITION_FAILED`
//!   naming the condition that failed.
//! - Inside actions, `decryptAndCombine` sends the share to the other nodes running the same
//!   request (through the action mailbox) and combines `t` valid ones there, so the plaintext
//!   exists only inside the action; `decryptToSingleNode` sends the shares to one node only.
//!
//! Conditions read chains through [`NodeEnv`]: the network's own chain (`sigil`, or its chain id)
//! and the `[actions] rpc_urls` table; action conditions run in the sandbox in a read-only mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigil_actions::HostError;
use sigil_chain::alloy::eips::BlockNumberOrTag;
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_chain::alloy::providers::{DynProvider, Provider};
use sigil_chain::alloy::rpc::types::TransactionRequest;
use sigil_chain::registry::read_provider;
use sigil_conditions::{identity, Conditions, Context, EnvError, Environment, EvalError, Verdict};
use sigil_primitives::{Cid, EncryptionShare};
use sigil_tss::bls::{self, BlsSignatureShare};
use sigil_tss::PartyId;
use zeroize::Zeroizing;

use crate::actions::{chain_rpc_url, HostInner};
use crate::api::{authenticate, body, hex_bytes, parse_json, ApiError};
use crate::node::{Fault, Node, RootKeys};
use crate::wire::Message;
pub use sigil_primitives::EncryptionSignRequest;

fn bad_condition(e: sigil_conditions::ConditionError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BAD_CONDITION", e.to_string())
}

fn eval_error(e: EvalError) -> ApiError {
    let status = match e.error.code.as_str() {
        "UNKNOWN_CHAIN" => StatusCode::BAD_REQUEST,
        "ACTION_NOT_FOUND" => StatusCode::NOT_FOUND,
        "BUSY" => StatusCode::SERVICE_UNAVAILABLE,
        "CONDITION_TIMEOUT" => StatusCode::GATEWAY_TIMEOUT,
        "INTERNAL" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    };
    ApiError::new(status, e.error.code.clone(), e.to_string())
}

/// Decides `conditions` for `context`: `Ok` when they hold, 403 `CONDITION_FAILED` naming the
/// failed condition when they do not.
pub(crate) async fn decide(node: &Arc<Node>, conditions: &Conditions, context: &Context) -> Result<(), ApiError> {
    let env = NodeEnv { node: Arc::clone(node) };
    // One request's conditions together get one action's wall time (plus slack for the chain).
    let deadline = node.settings.config.actions.limits.wall_time + Duration::from_secs(5);
    match tokio::time::timeout(deadline, conditions.evaluate(context, &env)).await {
        Ok(Ok(Verdict::Granted)) => Ok(()),
        Ok(Ok(Verdict::Denied(why))) => Err(ApiError::new(StatusCode::FORBIDDEN, "CONDITION_FAILED", why)),
        Ok(Err(e)) => Err(eval_error(e)),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "CONDITION_TIMEOUT",
            format!("the conditions were not decided within {} s", deadline.as_secs()),
        )),
    }
}

/// This node's BLS signature share over `identity`.
fn share_for(node: &Node, keys: &RootKeys, identity: &str) -> Result<BlsSignatureShare, ApiError> {
    // The test fault signs something else: a well-formed share that does not verify.
    let signed = if node.has_fault(Fault::CorruptSignatureShares) {
        format!("{identity}#corrupt")
    } else {
        identity.to_string()
    };
    bls::sign_share(&keys.bls, signed.as_bytes()).map_err(|e| ApiError::internal(e.to_string()))
}

/// Releases this node's decryption share for the identity of (conditions, data hash) if the
/// conditions hold for the caller.
pub async fn encryption_sign(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<EncryptionShare>, ApiError> {
    let raw = body(raw)?;
    let request: EncryptionSignRequest = parse_json(&raw)?;
    let conditions = Conditions::from_fields(
        request.access_control_conditions.as_ref(),
        request.evm_contract_conditions.as_ref(),
        request.unified_access_control_conditions.as_ref(),
    )
    .map_err(bad_condition)?;
    let data_hash = hex_bytes::<32>("dataToEncryptHash", &request.data_to_encrypt_hash)?;
    let keys = node.keys().ok_or_else(ApiError::not_ready)?;
    let user = match &request.auth_sig {
        Some(auth) => Some(authenticate(&node, Some(auth)).await?),
        None => None,
    };
    let context = Context { user, action: None };
    decide(&node, &conditions, &context).await?;
    let identity = identity(&conditions.hash(), &data_hash);
    let share = share_for(&node, &keys, &identity)?;
    tracing::debug!(%identity, "decryption share released");
    Ok(Json(EncryptionShare {
        node_id: node.me,
        share: hex::encode(share.to_bytes()),
        identity,
    }))
}

/// What conditions read, for a node: its chains and its action sandbox.
pub(crate) struct NodeEnv {
    pub(crate) node: Arc<Node>,
}

fn unavailable(chain: &str) -> impl Fn(sigil_chain::alloy::transports::TransportError) -> EnvError + '_ {
    move |e| EnvError::new("CHAIN_UNAVAILABLE", format!("chain {chain:?}: {e}"))
}

impl NodeEnv {
    fn provider(&self, chain: &str) -> Result<DynProvider, EnvError> {
        let url = chain_rpc_url(&self.node, chain).map_err(|e| EnvError::new(e.code, e.message))?;
        if let Some(registry) = &self.node.options.registry {
            if registry.rpc_url() == url {
                return Ok(registry.provider().clone());
            }
        }
        static PROVIDERS: OnceLock<Mutex<HashMap<String, DynProvider>>> = OnceLock::new();
        let providers = PROVIDERS.get_or_init(Default::default);
        if let Some(provider) = providers.lock().ok().and_then(|p| p.get(&url).cloned()) {
            return Ok(provider);
        }
        let provider = read_provider(&url).map_err(|e| EnvError::new("CHAIN_UNAVAILABLE", e.to_string()))?;
        if let Ok(mut providers) = providers.lock() {
            providers.insert(url, provider.clone());
        }
        Ok(provider)
    }
}

#[async_trait]
impl Environment for NodeEnv {
    async fn balance(&self, chain: &str, owner: Address) -> Result<U256, EnvError> {
        self.provider(chain)?
            .get_balance(owner)
            .await
            .map_err(unavailable(chain))
    }

    async fn call(&self, chain: &str, to: Address, data: Vec<u8>) -> Result<Result<Vec<u8>, String>, EnvError> {
        let request = TransactionRequest::default().to(to).input(data.into());
        match self.provider(chain)?.call(request).await {
            Ok(bytes) => Ok(Ok(bytes.to_vec())),
            // A revert fails the condition; any other error (rate limit, missing state, transport)
            // leaves the answer unknown.
            Err(e) => match e.as_error_resp() {
                Some(payload) if payload.code == 3 || payload.message.contains("revert") => {
                    Ok(Err(payload.message.to_string()))
                }
                _ => Err(unavailable(chain)(e)),
            },
        }
    }

    async fn latest_timestamp(&self, chain: &str) -> Result<u64, EnvError> {
        let block = self
            .provider(chain)?
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(unavailable(chain))?
            .ok_or_else(|| EnvError::new("CHAIN_UNAVAILABLE", format!("chain {chain:?} has no latest block")))?;
        Ok(block.header.timestamp)
    }

    async fn run_action(
        &self,
        cid: &Cid,
        method: &str,
        params: &[String],
        context: &Context,
    ) -> Result<Result<String, String>, EnvError> {
        crate::actions::run_condition(&self.node, cid, method, params, context).await
    }
}

fn bad(message: impl Into<String>) -> HostError {
    HostError::new("BAD_REQUEST", message)
}

fn host_error(e: ApiError) -> HostError {
    HostError::new(e.code(), e.message())
}

/// The conditions an action passed: `{field: [...]}` with one of Lit's field names (or
/// `conditions`, from `checkConditions`).
fn action_conditions(value: &Value) -> Result<Conditions, HostError> {
    let map = value
        .as_object()
        .ok_or_else(|| bad("conditions: expected an object with one condition field"))?;
    let mut fields = map.iter();
    let (Some((field, conditions)), None) = (fields.next(), fields.next()) else {
        return Err(bad(
            "give exactly one of accessControlConditions, evmContractConditions, unifiedAccessControlConditions",
        ));
    };
    if !matches!(
        field.as_str(),
        "accessControlConditions" | "evmContractConditions" | "unifiedAccessControlConditions" | "conditions"
    ) {
        return Err(bad(format!("unknown condition field {field:?}")));
    }
    Conditions::parse(field, conditions).map_err(|e| HostError::new("BAD_CONDITION", e.to_string()))
}

fn data_hash(text: &str) -> Result<[u8; 32], HostError> {
    hex_bytes::<32>("dataToEncryptHash", text).map_err(host_error)
}

impl HostInner {
    /// Who asks, inside an action: the address of the `authSig` given to the call (none without
    /// one: the run's own `authSig` is not lent to the action, or any action a user runs could
    /// decrypt everything locked to that user), and the action itself (`:currentActionIpfsId`).
    async fn condition_context(&self, auth: Option<&Value>, action: &str) -> Result<Context, HostError> {
        let user = match auth {
            Some(auth) => Some(authenticate(&self.node, Some(auth)).await.map_err(host_error)?),
            None => None,
        };
        Ok(Context {
            user,
            action: Some(action.to_string()),
        })
    }

    /// `Lit.Actions.checkConditions`.
    pub(crate) async fn check_conditions(
        &self,
        conditions: &Value,
        auth: Option<&Value>,
        action: &str,
    ) -> Result<Value, HostError> {
        let conditions = action_conditions(conditions)?;
        let context = self.condition_context(auth, action).await?;
        match decide(&self.node, &conditions, &context).await {
            Ok(()) => Ok(json!(true)),
            Err(e) if e.code() == "CONDITION_FAILED" => Ok(json!(false)),
            Err(e) => Err(host_error(e)),
        }
    }

    /// `Lit.Actions.encrypt` on this node (the prelude runs it on one node only).
    pub(crate) fn encrypt(&self, conditions: &Value, data: &str) -> Result<Value, HostError> {
        let conditions = action_conditions(conditions)?;
        let data = Zeroizing::new(hex::decode(data).map_err(|e| bad(format!("to_encrypt: not hex ({e})")))?);
        let keys = self.node.keys().ok_or_else(|| host_error(ApiError::not_ready()))?;
        let hash: [u8; 32] = Sha256::digest(data.as_slice()).into();
        let identity = identity(&conditions.hash(), &hash);
        let ciphertext = bls::encrypt(keys.bls.public_key(), identity.as_bytes(), &data)
            .map_err(|e| HostError::new("ENCRYPT_FAILED", e.to_string()))?;
        Ok(json!({
            "ciphertext": base64::engine::general_purpose::STANDARD.encode(ciphertext),
            "dataToEncryptHash": hex::encode(hash),
        }))
    }

    /// `Lit.Actions.decryptAndCombine` / `decryptToSingleNode`.
    pub(crate) async fn decrypt(
        &self,
        conditions: &Value,
        ciphertext: &str,
        data_hash_hex: &str,
        auth: Option<&Value>,
        single_node: bool,
        action: &str,
    ) -> Result<Value, HostError> {
        let node = &self.node;
        let conditions = action_conditions(conditions)?;
        let data_hash = data_hash(data_hash_hex)?;
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(ciphertext.trim())
            .map_err(|e| bad(format!("ciphertext: not base64 ({e})")))?;
        let keys = node.keys().ok_or_else(|| host_error(ApiError::not_ready()))?;
        let context = self.condition_context(auth, action).await?;
        decide(node, &conditions, &context).await.map_err(host_error)?;
        let identity = identity(&conditions.hash(), &data_hash);
        let share = hex::encode(share_for(node, &keys, &identity).map_err(host_error)?.to_bytes());
        let topic = format!("decrypt/{identity}");
        if single_node {
            let leader = node.live().into_iter().min().unwrap_or(node.me);
            if let Ok(mut single) = self.single_node.lock() {
                *single = Some(leader);
            }
            if leader != node.me {
                let message = Message::Action {
                    request: self.request,
                    topic,
                    value: share,
                };
                node.net.send(leader, message.encode());
                return Ok(Value::Null);
            }
            node.mailbox.put(self.request, &topic, node.me, share);
        } else {
            self.send_all(&topic, share);
        }
        let package = keys.bls.public();
        let threshold = node.threshold;
        let mut tried = 0;
        let mut opened = None;
        let mut failure = None;
        // Other nodes may still be deciding the conditions (an action condition may take the
        // whole wall time): wait as long as the action itself may run.
        let wait = node.settings.config.actions.limits.wall_time;
        node.mailbox
            .wait(self.request, &topic, wait, |values| {
                if values.len() < threshold || values.len() == tried {
                    return false;
                }
                tried = values.len();
                let shares: Vec<BlsSignatureShare> = values
                    .iter()
                    .filter_map(|(from, text)| {
                        BlsSignatureShare::from_bytes(PartyId(*from), &hex::decode(text).ok()?).ok()
                    })
                    .collect();
                match bls::open(package, &shares, identity.as_bytes(), &ciphertext) {
                    (Ok(plaintext), _) => {
                        opened = Some(plaintext);
                        true
                    }
                    (Err(sigil_tss::TssError::NotEnoughShares { .. }), _) => false,
                    (Err(e), _) => {
                        failure = Some(e.to_string());
                        true
                    }
                }
            })
            .await;
        if let Some(reason) = failure {
            return Err(HostError::new("DECRYPT_FAILED", reason));
        }
        let plaintext = opened.ok_or_else(|| {
            HostError::new(
                "DECRYPT_FAILED",
                format!(
                    "fewer than {threshold} nodes released a valid decryption share in {} s (the conditions may not hold for them, or they are down)",
                    wait.as_secs()
                ),
            )
        })?;
        if <[u8; 32]>::from(Sha256::digest(plaintext.as_slice())) != data_hash {
            return Err(HostError::new(
                "DECRYPT_FAILED",
                "the plaintext does not hash to dataToEncryptHash",
            ));
        }
        let text = std::str::from_utf8(&plaintext).map_err(|_| {
            HostError::new(
                "DECRYPTED_NOT_TEXT",
                "the plaintext is not UTF-8 text; actions receive decrypted data as a string",
            )
        })?;
        Ok(json!(text))
    }
}
