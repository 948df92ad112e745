//! The node side of one action run ([`ActionHost`]): what an action asks of the node — signature
//! shares (only for PKPs that permit the action's CID), fetches, `runOnce`, `broadcastAndCollect`,
//! permission reads, child actions, and the encryption operations of [`super::decrypt`].
//! Uses `node`, `auth`, `signing`, `actions`, `error`; never `http`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use sigil_actions::{Completion, Host, HostError, HostOp};
use sigil_chain::alloy::primitives::{eip191_hash_message, Address, U256};
use sigil_chain::attester_key_id;
use sigil_primitives::{ActionClaim, ActionShare, Cid, SigningScheme};
use sigil_tss::derive::{uncompressed, KeyId};
use sigil_tss::ecdsa::{self, SignatureShare};
use sigil_tss::k256::elliptic_curve::sec1::FromEncodedPoint;
use sigil_tss::k256::{AffinePoint, EncodedPoint, ProjectivePoint};
use sigil_tss::PartyId;

use super::code::load_code;
use crate::error::{hex_bytes, Error};
use crate::mesh::wire::Message;
use crate::node::Node;
use crate::signing::share::{request_id, threshold_share};

/// How long the `runOnce` leader must look down before the others give up on it.
const LEADER_DOWN_AFTER: Duration = Duration::from_secs(3);

/// How long a node waits for the others in `broadcastAndCollect`, `signAndCombineEcdsa` and for
/// the shares of a random seed.
pub(crate) const COLLECT_WAIT: Duration = Duration::from_secs(10);

/// What a run may ask of the node.
#[derive(Clone)]
pub(crate) enum Mode {
    /// A `/web/execute` run: everything, with `Environment` to decide access-control conditions.
    Full(Arc<dyn sigil_conditions::Environment>),
    /// An action run as an access-control condition: each node runs it on its own, so nothing
    /// that involves the other nodes (signing, `runOnce`, broadcasts, decryption).
    Condition,
}

pub(crate) struct HostInner {
    pub(crate) node: Arc<Node>,
    handle: tokio::runtime::Handle,
    pub(crate) request: [u8; 16],
    mode: Mode,
    /// This node's signature shares by sigName.
    pub(crate) signed: Mutex<BTreeMap<String, ActionShare>>,
    /// Every sigName used in this run (with or without a share here).
    names: Mutex<Vec<String>>,
    /// The keys claimed in this run (`claimKey`), by keyId.
    pub(crate) claims: Mutex<BTreeMap<String, ActionClaim>>,
    /// Set by `decryptToSingleNode`: the node that decrypts.
    pub(crate) single_node: Mutex<Option<u32>>,
    /// The run's operations still running, by id: a cancelled fetch, and everything once the
    /// run is over, is aborted rather than left to finish for no one.
    tasks: Mutex<BTreeMap<u64, tokio::task::AbortHandle>>,
}

impl HostInner {
    /// Where this run decides access-control conditions; none in a condition run, which may not.
    pub(crate) fn environment(&self) -> Result<&dyn sigil_conditions::Environment, HostError> {
        match &self.mode {
            Mode::Full(env) => Ok(env.as_ref()),
            Mode::Condition => Err(HostError::new(
                "NOT_IN_CONDITION",
                "an action run as an access-control condition cannot check conditions",
            )),
        }
    }

    /// The host of the `/web/execute` run of `request`, deciding conditions in `env`; refused
    /// with `REQUEST_CONFLICT` while the same request already runs here (the two runs would
    /// share what the nodes send for it, and the first to end would clear it for the other).
    pub(crate) fn full(
        node: &Arc<Node>,
        request: [u8; 16],
        env: Arc<dyn sigil_conditions::Environment>,
    ) -> Result<Self, crate::error::Error> {
        if !node.mailbox.begin(request) {
            return Err(crate::error::Error::new(
                crate::error::Kind::Conflict,
                "REQUEST_CONFLICT",
                format!(
                    "this request (its requestId, action, jsParams and timestamp) already runs on node {}; wait for that run's answer, or send a new requestId",
                    node.me
                ),
            ));
        }
        Ok(Self::new(node, request, Mode::Full(env)))
    }

    /// The host of an action run as an access-control condition, under `seed`.
    pub(crate) fn condition(node: &Arc<Node>, seed: [u8; 16]) -> Self {
        Self::new(node, seed, Mode::Condition)
    }

    fn new(node: &Arc<Node>, request: [u8; 16], mode: Mode) -> Self {
        Self {
            node: Arc::clone(node),
            handle: tokio::runtime::Handle::current(),
            request,
            mode,
            signed: Mutex::new(BTreeMap::new()),
            names: Mutex::new(Vec::new()),
            claims: Mutex::new(BTreeMap::new()),
            single_node: Mutex::new(None),
            tasks: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Drop for HostInner {
    /// The run is over: the values the nodes sent for it are no longer needed here, and the
    /// request may run again.
    fn drop(&mut self) {
        if matches!(self.mode, Mode::Full(_)) {
            self.node.mailbox.finish(self.request);
        }
    }
}

/// The node side of one action run.
pub struct ActionHost(pub(crate) Arc<HostInner>);

impl Host for ActionHost {
    fn start(&self, op: HostOp, action: &str, done: Completion) {
        let inner = Arc::clone(&self.0);
        let action = action.to_string();
        let id = done.id();
        // Held until the task is registered, so its own removal comes after.
        let mut tasks = self.0.tasks.lock().ok();
        let task = self.0.handle.spawn(async move {
            let result = inner.op(op, &action).await;
            if let Ok(mut tasks) = inner.tasks.lock() {
                tasks.remove(&id);
            }
            done.finish(result);
        });
        if let Some(tasks) = tasks.as_mut() {
            tasks.insert(id, task.abort_handle());
        }
    }

    fn cancel(&self, id: u64) {
        let task = self.0.tasks.lock().ok().and_then(|mut t| t.remove(&id));
        if let Some(task) = task {
            task.abort();
        }
    }

    fn finished(&self) {
        let tasks = self
            .0
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks.into_values() {
            task.abort();
        }
    }
}

fn host_error(e: Error) -> HostError {
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

/// The key id of action `cid`'s own key: `keccak256("sigil-action-key/v1" ‖ CID bytes)`, a
/// 53-byte preimage. A PKP's key id is `keccak256(minter ‖ salt)` over 52 bytes (PKPNFT, also
/// through PKPHelper), so no PKP can be minted with an action's key.
pub fn action_key_id(cid: &Cid) -> [u8; 32] {
    let mut preimage = b"sigil-action-key/v1".to_vec();
    preimage.extend_from_slice(cid.as_bytes());
    sigil_chain::alloy::primitives::keccak256(preimage).0
}

/// The allocation request id of signature `sig_name` of action request `request`.
/// Where `claimKey`'s attestation shares sit among a run's signatures: `claim/{keyId}`.
pub const CLAIM_PREFIX: &str = "claim/";

/// The allocator's request id of a claim's attestation: by key id and attempt only, so every run
/// that claims the key asks for the same presignature.
fn claim_request_id(key_id: &[u8; 32], attempt: u8) -> [u8; 16] {
    request_id(b"sigil-action-claim-request/v1", &[key_id, &[attempt]])
}

fn signature_request(request: &[u8; 16], sig_name: &str) -> [u8; 16] {
    request_id(b"sigil-action-sign/v1", &[request, sig_name.as_bytes()])
}

impl HostInner {
    async fn op(&self, op: HostOp, action: &str) -> Result<serde_json::Value, HostError> {
        let node = &self.node;
        if matches!(self.mode, Mode::Condition) {
            if let HostOp::Sign { .. }
            | HostOp::SignMessage { .. }
            | HostOp::SignAsAction { .. }
            | HostOp::ClaimKey { .. }
            | HostOp::RunOnceLeader { .. }
            | HostOp::RunOncePublish { .. }
            | HostOp::RunOnceWait { .. }
            | HostOp::Broadcast { .. }
            | HostOp::Encrypt { .. }
            | HostOp::Decrypt { .. }
            | HostOp::Randomness
            | HostOp::CheckConditions { .. } = op
            {
                return Err(HostError::new(
                    "NOT_IN_CONDITION",
                    "an action run as an access-control condition can fetch and read the chain and permissions, but not sign, encrypt, decrypt, check conditions, draw random numbers or talk to other nodes",
                ));
            }
        }
        match op {
            HostOp::Sign {
                to_sign,
                public_key,
                sig_name,
                combine,
                signing_scheme,
            } => {
                let hash = hex_bytes::<32>("toSign", &to_sign).map_err(host_error)?;
                let scheme = match signing_scheme.as_deref() {
                    None => SigningScheme::EcdsaK256Sha256,
                    Some(name) => SigningScheme::parse(name).ok_or_else(|| {
                        let names: Vec<&str> = SigningScheme::ALL.iter().map(|s| s.name()).collect();
                        HostError::new(
                            "UNSUPPORTED_SCHEME",
                            format!(
                                "signingScheme {name:?} is not one Sigil signs with ({})",
                                names.join(", ")
                            ),
                        )
                    })?,
                };
                self.sign(hash, &public_key, &sig_name, combine, action, scheme).await
            }
            HostOp::SignMessage {
                message,
                public_key,
                sig_name,
            } => {
                let bytes = hex::decode(&message).map_err(|e| bad(format!("message: not hex ({e})")))?;
                self.sign(
                    eip191_hash_message(&bytes).0,
                    &public_key,
                    &sig_name,
                    false,
                    action,
                    SigningScheme::EcdsaK256Sha256,
                )
                .await
            }
            HostOp::Fetch {
                url,
                method,
                headers,
                body,
            } => node.fetcher.fetch(url, method, headers, body).await,
            HostOp::Randomness => self.randomness().await,
            HostOp::RunOnceLeader { .. } => {
                let leader = node.live().into_iter().min().unwrap_or(node.me);
                Ok(json!(leader == node.me))
            }
            HostOp::RunOncePublish { name, value } => {
                self.send_all(&format!("once/{action}/{name}"), value);
                Ok(serde_json::Value::Null)
            }
            HostOp::RunOnceWait { name } => {
                // Only the leader's value counts: another node cannot answer for it.
                let leader = node.live().into_iter().min().unwrap_or(node.me);
                let deadline = tokio::time::Instant::now() + node.settings.config.actions.limits.wall_time;
                let topic = format!("once/{action}/{name}");
                // Checked every half second: a leader that stays down for LEADER_DOWN_AFTER
                // answers nothing, and the run says so instead of waiting out its time (one
                // missed heartbeat is not enough: the leader may be slow, and still send).
                let mut down_since: Option<tokio::time::Instant> = None;
                loop {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let step = left.min(Duration::from_millis(500));
                    let mut values = node
                        .mailbox
                        .wait(self.request, &topic, step, |v| v.contains_key(&leader))
                        .await;
                    if let Some(value) = values.remove(&leader) {
                        return Ok(serde_json::Value::String(value));
                    }
                    if node.live().contains(&leader) {
                        down_since = None;
                    } else if down_since.get_or_insert_with(tokio::time::Instant::now).elapsed() >= LEADER_DOWN_AFTER {
                        return Err(HostError::new(
                            "RUN_ONCE_LEADER_DOWN",
                            format!("runOnce {name:?}: node {leader}, which runs it, went down before it answered; whether it did its work (sent a transaction, say) is unknown: check before running again"),
                        ));
                    }
                    if left.is_zero() {
                        return Err(HostError::new(
                            "RUN_ONCE_TIMEOUT",
                            format!("runOnce {name:?}: node {leader}, which runs it, sent no result"),
                        ));
                    }
                }
            }
            HostOp::Broadcast { name, value } => {
                let topic = format!("collect/{action}/{name}");
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
            HostOp::RpcUrl { chain } => node.public_rpc_url(&chain).map(|url| json!(url)).map_err(host_error),
            HostOp::IsPermittedAction { token_id, ipfs_id } => {
                let cid: Cid = ipfs_id.parse().map_err(|e| bad(format!("ipfsId: {e}")))?;
                let registry = node.registry().map_err(host_error)?;
                registry
                    .is_permitted_action(parse_token(&token_id)?, cid.as_bytes())
                    .await
                    .map(|b| json!(b))
                    .map_err(|e| host_error(Error::chain(e)))
            }
            HostOp::IsPermittedAddress { token_id, address } => {
                let address: Address = address.parse().map_err(|_| bad(format!("address {address:?}")))?;
                let registry = node.registry().map_err(host_error)?;
                registry
                    .is_permitted_address(parse_token(&token_id)?, address)
                    .await
                    .map(|b| json!(b))
                    .map_err(|e| host_error(Error::chain(e)))
            }
            HostOp::IsPermittedAuthMethod {
                token_id,
                auth_method_type,
                user_id,
            } => {
                let id = hex::decode(&user_id).map_err(|e| bad(format!("userId: not hex ({e})")))?;
                let registry = node.registry().map_err(host_error)?;
                registry
                    .is_permitted_auth_method(parse_token(&token_id)?, U256::from(auth_method_type), &id)
                    .await
                    .map(|b| json!(b))
                    .map_err(|e| host_error(Error::chain(e)))
            }
            HostOp::SignAsAction {
                message,
                sig_name,
                signing_scheme,
            } => {
                check_scheme(&signing_scheme)?;
                let bytes = hex::decode(&message).map_err(|e| bad(format!("toSign: not hex ({e})")))?;
                self.sign_as_action(&bytes, &sig_name, action).await
            }
            HostOp::ClaimKey { key_id, attempt } => self.claim_key(&key_id, attempt, action).await,
            HostOp::ActionPublicKey { cid, signing_scheme } => {
                check_scheme(&signing_scheme)?;
                Ok(json!(format!(
                    "0x{}",
                    hex::encode(uncompressed(&self.action_public_key(&cid)?))
                )))
            }
            HostOp::VerifyActionSignature {
                cid,
                signing_scheme,
                message,
                signature,
            } => {
                check_scheme(&signing_scheme)?;
                let point = self.action_public_key(&cid)?;
                let bytes = hex::decode(&message).map_err(|e| bad(format!("toSign: not hex ({e})")))?;
                let hash: [u8; 32] = Sha256::digest(&bytes).into();
                Ok(json!(verify_signature_json(&signature, &point, &hash)))
            }
            HostOp::PermittedAuthMethodScopes {
                token_id,
                auth_method_type,
                user_id,
                max_scope_id,
            } => {
                let id = hex::decode(&user_id).map_err(|e| bad(format!("userId: not hex ({e})")))?;
                if max_scope_id > 256 {
                    return Err(bad("maxScopeId: at most 256"));
                }
                let registry = node.registry().map_err(host_error)?;
                let list = registry
                    .permitted_auth_methods(parse_token(&token_id)?)
                    .await
                    .map_err(|e| host_error(Error::chain(e)))?;
                let scopes = list
                    .iter()
                    .find(|(kind, method, _)| *kind == U256::from(auth_method_type) && *method == id)
                    .map_or(U256::ZERO, |(_, _, scopes)| *scopes);
                Ok(json!((0..max_scope_id)
                    .map(|bit| usize::try_from(bit).is_ok_and(|b| scopes.bit(b)))
                    .collect::<Vec<_>>()))
            }
            HostOp::LatestNonce { address, chain } => {
                let address: Address = address.parse().map_err(|_| bad(format!("address {address:?}")))?;
                let provider =
                    super::chains::provider(node, &chain).map_err(|e| HostError::new(e.code.clone(), e.to_string()))?;
                let nonce = sigil_chain::alloy::providers::Provider::get_transaction_count(&provider, address)
                    .await
                    .map_err(|e| HostError::new("CHAIN_UNAVAILABLE", format!("chain {chain:?}: {e}")))?;
                Ok(json!(format!("{nonce:#x}")))
            }
            HostOp::CallContract { chain, txn } => {
                let call = super::evm::decode_call(&txn)?;
                let answer = super::chains::call(node, &chain, call.to, call.data)
                    .await
                    .map_err(|e| HostError::new(e.code.clone(), e.to_string()))?;
                match answer {
                    Ok(data) => Ok(json!(format!("0x{}", hex::encode(data)))),
                    Err(revert) => Err(HostError::new("CALL_REVERTED", format!("callContract: {revert}"))),
                }
            }
            HostOp::PermittedActions { token_id } => {
                let registry = node.registry().map_err(host_error)?;
                let list = registry
                    .permitted_actions(parse_token(&token_id)?)
                    .await
                    .map_err(|e| host_error(Error::chain(e)))?;
                Ok(json!(list
                    .iter()
                    .map(|b| Cid::from_bytes(b)
                        .map(|c| c.to_string())
                        .unwrap_or_else(|_| format!("0x{}", hex::encode(b))))
                    .collect::<Vec<_>>()))
            }
            HostOp::PermittedAddresses { token_id } => {
                let registry = node.registry().map_err(host_error)?;
                let list = registry
                    .permitted_addresses(parse_token(&token_id)?)
                    .await
                    .map_err(|e| host_error(Error::chain(e)))?;
                Ok(json!(list.iter().map(|a| a.to_checksum(None)).collect::<Vec<_>>()))
            }
            HostOp::PermittedAuthMethods { token_id } => {
                let registry = node.registry().map_err(host_error)?;
                let list = registry
                    .permitted_auth_methods(parse_token(&token_id)?)
                    .await
                    .map_err(|e| host_error(Error::chain(e)))?;
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

    /// `signAsAction`: signs SHA-256(`message`) with the key of action `action` (which only that
    /// action can use) and answers the whole signature.
    async fn sign_as_action(
        &self,
        message: &[u8],
        sig_name: &str,
        action: &str,
    ) -> Result<serde_json::Value, HostError> {
        let cid: Cid = action.parse().map_err(|e| bad(format!("action CID: {e}")))?;
        self.reserve_sig_name(sig_name)?;
        let epoch = self.node.epoch();
        let keys = epoch.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        let key_id = KeyId(action_key_id(&cid));
        let point = self.node.pkp_public_key(keys.ecdsa.public_key(), &key_id);
        let hash: [u8; 32] = Sha256::digest(message).into();
        self.sign_with(
            &epoch,
            point,
            key_id,
            hash,
            sig_name,
            true,
            SigningScheme::EcdsaK256Sha256,
        )
        .await
    }

    /// `getActionPublicKey`: the uncompressed public key of action `cid`, 0x-hex.
    pub(crate) fn action_public_key(&self, cid: &str) -> Result<ProjectivePoint, HostError> {
        let cid: Cid = cid.parse().map_err(|e| bad(format!("actionIpfsCid: {e}")))?;
        let keys = self.node.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        Ok(self
            .node
            .pkp_public_key(keys.ecdsa.public_key(), &KeyId(action_key_id(&cid))))
    }

    /// `claimKey`: this node's share of the network's attestation of the PKP that action `action`
    /// claims as `key_id` — key id `action_claim_key_id(PKPHelper, cid, derivedKeyId)`, so the
    /// attestation mints it for this action only (PKPHelper `claimActionKey`). The share is the
    /// run's signature `claim/{key_id}`. As every attestation, it needs the mint requested on
    /// chain first (`PKPNFT.requestMint`, gas and the mint fee) and is rate limited per key id;
    /// whether the PKP is minted already is the client's to read (nodes reading the chain
    /// mid-run could disagree). Resolves to the derivedKeyId.
    async fn claim_key(&self, key_id: &str, attempt: u8, action: &str) -> Result<serde_json::Value, HostError> {
        let node = &self.node;
        let cid: Cid = action.parse().map_err(|e| bad(format!("action CID: {e}")))?;
        if attempt >= sigil_primitives::ATTESTATION_ATTEMPTS {
            return Err(bad(format!(
                "claimKey {key_id:?}: attempt {attempt}, at most {}",
                sigil_primitives::ATTESTATION_ATTEMPTS - 1
            )));
        }
        let sig_name = format!("{CLAIM_PREFIX}{key_id}");
        self.claim_sig_name(&sig_name).map_err(|_| {
            HostError::new(
                "DUPLICATE_CLAIM",
                format!("claimKey {key_id:?} is made twice in this run; claim each key once"),
            )
        })?;
        let registry = node.registry().map_err(host_error)?;
        let derived = sigil_chain::action_claim_derived_key_id(&cid.to_string(), key_id);
        let pkp_key_id = sigil_chain::action_claim_key_id(registry.contracts().pkp_helper, cid.as_bytes(), &derived);
        let epoch = node.epoch();
        let keys = epoch.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        let root = *keys.ecdsa.public_key();
        let pubkey = uncompressed(&node.pkp_public_key(&root, &KeyId(pkp_key_id)));
        let digest =
            sigil_chain::attestation_digest(registry.chain_id(), registry.contracts().pkp_nft, &pkp_key_id, &pubkey);
        let attester = node.pkp_public_key(&root, &KeyId(attester_key_id()));
        let what = format!("claimKey {key_id:?} of action {cid}");
        let share = self
            .claim_share(&epoch, &root, pkp_key_id, digest, attempt, &what)
            .await;
        let entry = ActionShare {
            to_sign: hex::encode(digest),
            public_key: hex::encode(uncompressed(&attester)),
            share,
            signing_scheme: SigningScheme::EcdsaK256Sha256,
            key_id: None,
        };
        if let Ok(mut signed) = self.signed.lock() {
            signed.insert(sig_name, entry);
        }
        let claim = ActionClaim {
            cid: cid.to_string(),
            derived_key_id: hex::encode(derived),
            key_id: hex::encode(pkp_key_id),
            public_key: hex::encode(pubkey),
        };
        if let Ok(mut claims) = self.claims.lock() {
            claims.insert(key_id.to_string(), claim);
        }
        Ok(json!(format!("0x{}", hex::encode(derived))))
    }

    /// This node's share of a claim's attestation, or none: when the claim's mint was not
    /// requested on chain (gas and the mint fee, as for every attestation), the key id is over its
    /// rate, or the presignature of this (key id, attempt) was used already. Whatever this node
    /// finds, the action sees the same answer as on every other node: what the chain and the
    /// allocator say reaches only the client, as a claim with or without an attestation. The
    /// request id is fixed by the key id and the attempt (at most three), so one paid request
    /// spends at most three presignatures, however often the action runs.
    async fn claim_share(
        &self,
        epoch: &Arc<crate::epoch::Epoch>,
        root: &ProjectivePoint,
        pkp_key_id: [u8; 32],
        digest: [u8; 32],
        attempt: u8,
        what: &str,
    ) -> Option<sigil_primitives::SignResponse> {
        let node = &self.node;
        let registry = node.registry().ok()?;
        match registry.mint_requested(pkp_key_id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%what, key_id = %hex::encode(pkp_key_id), "no attestation: the claim's mint was not requested");
                return None;
            }
            Err(e) => {
                tracing::warn!(%what, error = %e, "no attestation: cannot read the claim's mint request");
                return None;
            }
        }
        if let Err(e) = crate::auth::check_rate_of(node, pkp_key_id, what) {
            tracing::info!(%what, error = %e.message(), "no attestation: over the key id's rate");
            return None;
        }
        let request = claim_request_id(&pkp_key_id, attempt);
        match threshold_share(
            node,
            epoch,
            root,
            sigil_primitives::SigningScheme::EcdsaK256Sha256,
            KeyId(attester_key_id()),
            digest,
            request,
            &[],
        )
        .await
        {
            Ok(share) => Some(share),
            Err(e) => {
                if e.code() != "NOT_A_SIGNER" {
                    tracing::info!(%what, code = e.code(), "no attestation share from this node");
                }
                None
            }
        }
    }

    /// Reserves `sig_name` for this run: each signature has its own name, and `claim/…` names
    /// are `claimKey`'s ([`Self::claim_key`]).
    fn reserve_sig_name(&self, sig_name: &str) -> Result<(), HostError> {
        if sig_name.starts_with(CLAIM_PREFIX) {
            return Err(HostError::new(
                "RESERVED_SIG_NAME",
                format!("sigName {sig_name:?}: names starting with {CLAIM_PREFIX:?} are claimKey's"),
            ));
        }
        self.claim_sig_name(sig_name)
    }

    /// Reserves `sig_name` for this run.
    fn claim_sig_name(&self, sig_name: &str) -> Result<(), HostError> {
        let mut names = self.names.lock().map_err(|_| HostError::new("INTERNAL", "lock"))?;
        if names.iter().any(|n| n == sig_name) {
            return Err(HostError::new(
                "DUPLICATE_SIG_NAME",
                format!("sigName {sig_name:?} is used twice in this action; give each signature its own name"),
            ));
        }
        names.push(sig_name.to_string());
        Ok(())
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

    /// A signature share of `scheme` for `hash` under the PKP `public_key`, if action `action`
    /// may use it.
    async fn sign(
        &self,
        hash: [u8; 32],
        public_key: &str,
        sig_name: &str,
        combine: bool,
        action: &str,
        scheme: SigningScheme,
    ) -> Result<serde_json::Value, HostError> {
        let node = &self.node;
        self.reserve_sig_name(sig_name)?;
        let point = parse_point(public_key)?;
        let public_bytes = uncompressed(&point);
        let token = sigil_chain::token_id(&public_bytes);
        let registry = node.registry().map_err(host_error)?;
        let key_id = registry
            .key_id(token)
            .await
            .map_err(|e| host_error(Error::chain(e)))?
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
        let epoch = node.epoch();
        let keys = epoch.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        let root = *keys.ecdsa.public_key();
        if node.pkp_public_key(&root, &KeyId(key_id)) != point {
            return Err(bad(format!("publicKey is not the key of PKP {token:#x}")));
        }
        let cid: Cid = action.parse().map_err(|e| bad(format!("action CID: {e}")))?;
        let permitted = registry
            .is_permitted_action(token, cid.as_bytes())
            .await
            .map_err(|e| host_error(Error::chain(e)))?;
        if !permitted {
            return Err(HostError::new(
                "NOT_PERMITTED",
                format!("action {cid} is not a permitted action of PKP {token:#x}, so it cannot sign with it"),
            ));
        }
        node.remember_key(KeyId(key_id), &public_bytes, &sigil_tss::derive::token_id(&point));
        self.sign_with(&epoch, point, KeyId(key_id), hash, sig_name, combine, scheme)
            .await
    }

    /// Signs `hash` by `scheme` with the key `key_id` (whose public key is `point`) under this
    /// run's `sig_name`: this node's share for the client, or with `combine` the whole signature.
    #[allow(clippy::too_many_arguments)]
    async fn sign_with(
        &self,
        epoch: &Arc<crate::epoch::Epoch>,
        point: ProjectivePoint,
        key_id: KeyId,
        hash: [u8; 32],
        sig_name: &str,
        combine: bool,
        scheme: SigningScheme,
    ) -> Result<serde_json::Value, HostError> {
        let node = &self.node;
        let keys = epoch.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        let root = *keys.ecdsa.public_key();
        let public_bytes = uncompressed(&point);
        let request = signature_request(&self.request, sig_name);
        let share = match threshold_share(node, epoch, &root, scheme, key_id, hash, request, &[]).await {
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
                signing_scheme: scheme,
                key_id: (!scheme.is_ecdsa()).then(|| hex::encode(key_id.0)),
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
        if share.is_none() && !scheme.is_ecdsa() && node.has_fault(crate::node::Fault::EchoSchnorrShares) {
            let me = node.me;
            let values = node
                .mailbox
                .wait(self.request, &topic, COLLECT_WAIT, |v| v.keys().any(|f| *f != me))
                .await;
            if let Some((from, text)) = values.iter().find(|(f, _)| **f != me) {
                tracing::warn!(from, "TEST FAULT: echoed another node's Schnorr share as its own");
                self.send_all(&topic, text.clone());
            }
        }
        let threshold = epoch.threshold;
        if scheme == SigningScheme::SchnorrK256Taproot {
            return self
                .combine_schnorr(epoch, &root, &key_id, &hash, sig_name, &topic)
                .await;
        }
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

impl HostInner {
    /// `signAndCombine` with `SchnorrK256Taproot`: the signing set's shares from the mailbox,
    /// each checked against its node's public share and the set's agreed commitments, combined
    /// into a BIP-340 signature under the PKP's taproot output key. Resolves to the JSON text
    /// `{"signature": hex (64 bytes), "publicKey": hex (x-only output key)}`.
    async fn combine_schnorr(
        &self,
        epoch: &Arc<crate::epoch::Epoch>,
        root: &ProjectivePoint,
        key_id: &KeyId,
        hash: &[u8; 32],
        sig_name: &str,
        topic: &str,
    ) -> Result<serde_json::Value, HostError> {
        use sigil_tss::schnorr::{combine, Commitment, SchnorrShare};
        let keys = epoch.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        let threshold = epoch.threshold;
        let mut tried = 0;
        let mut found = None;
        self.node
            .mailbox
            .wait(self.request, topic, COLLECT_WAIT, |values| {
                if values.len() < threshold || values.len() == tried {
                    return false;
                }
                tried = values.len();
                // Shares grouped by the commitments their senders report, each only from a member
                // of the set it names; a group holding every member's share is tried.
                let mut groups: BTreeMap<BTreeMap<u32, String>, BTreeMap<u32, SchnorrShare>> = BTreeMap::new();
                for (from, text) in values {
                    let Ok(response) = serde_json::from_str::<sigil_primitives::SignResponse>(text) else {
                        continue;
                    };
                    if !response.commitments.contains_key(from)
                        || response.commitments.keys().copied().collect::<Vec<u32>>() != response.participants
                    {
                        continue;
                    }
                    let Some(share) = hex::decode(&response.share)
                        .ok()
                        .and_then(|b| SchnorrShare::from_bytes(&b, PartyId(*from)).ok())
                    else {
                        continue;
                    };
                    groups.entry(response.commitments).or_default().insert(*from, share);
                }
                for (commitments, shares) in groups.into_iter().filter(|(c, s)| c.keys().all(|k| s.contains_key(k))) {
                    let shares: Vec<SchnorrShare> = shares.into_values().collect();
                    let agreed: Option<BTreeMap<PartyId, Commitment>> = commitments
                        .iter()
                        .map(|(id, text)| {
                            let bytes = hex::decode(text).ok()?;
                            Some((PartyId(*id), Commitment::from_bytes(&bytes, PartyId(*id)).ok()?))
                        })
                        .collect();
                    let Some(agreed) = agreed else { continue };
                    if let Ok(signature) = combine(keys.ecdsa.public(), key_id, hash, &agreed, &shares) {
                        found = Some(signature);
                        return true;
                    }
                }
                false
            })
            .await;
        let signature = found.ok_or_else(|| {
            HostError::new(
                "COMBINE_FAILED",
                format!("signAndCombine {sig_name:?} (SchnorrK256Taproot): the signing set's valid shares did not all arrive from the other nodes"),
            )
        })?;
        let output_key =
            sigil_tss::schnorr::output_key(root, key_id).map_err(|e| host_error(Error::internal(e.to_string())))?;
        let text = json!({
            "signature": hex::encode(signature),
            "publicKey": hex::encode(output_key),
        })
        .to_string();
        Ok(serde_json::Value::String(text))
    }
}

/// The one signing scheme action keys have today.
fn check_scheme(scheme: &str) -> Result<(), HostError> {
    if scheme == "EcdsaK256Sha256" {
        Ok(())
    } else {
        Err(HostError::new(
            "UNSUPPORTED_SCHEME",
            format!("signing scheme {scheme:?} is not supported for action keys yet (use EcdsaK256Sha256)"),
        ))
    }
}

/// Whether `{r, s, v}` (as `signAndCombineEcdsa` and `signAsAction` answer, `r` the compressed
/// R point) is a signature of `hash` by `point`.
fn verify_signature_json(text: &str, point: &ProjectivePoint, hash: &[u8; 32]) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let field = |name: &str| -> Option<[u8; 32]> {
        let text = value.get(name)?.as_str()?.trim_start_matches("0x");
        let bytes = hex::decode(text).ok()?;
        // `r` carries the R point's prefix byte.
        let bytes = if bytes.len() == 33 {
            bytes.get(1..)?.to_vec()
        } else {
            bytes
        };
        bytes.try_into().ok()
    };
    let (Some(r), Some(s), Some(v)) = (field("r"), field("s"), value.get("v").and_then(|v| v.as_u64())) else {
        return false;
    };
    let signature = ecdsa::EcdsaSignature {
        r,
        s,
        recovery_id: u8::try_from(v % 27).unwrap_or(0),
    };
    signature
        .recover_address(hash)
        .is_ok_and(|address| address == sigil_tss::derive::eth_address(point))
}
