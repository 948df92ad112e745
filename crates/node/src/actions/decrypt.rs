//! Encryption inside actions: `checkConditions`, `encrypt`, and `decryptAndCombine` /
//! `decryptToSingleNode`, whose shares travel through the mailbox so the plaintext exists only
//! inside the action. Each share is verified once, off the async runtime, and a sender of a bad
//! one is dropped and named. Uses `node`, `auth`, `encryption`, `epoch`, `actions::host`, `error`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigil_actions::HostError;
use sigil_conditions::{identity, Conditions, Context};
use sigil_tss::bls::{self, BlsSignatureShare};
use sigil_tss::PartyId;
use zeroize::Zeroizing;

use super::host::HostInner;
use crate::auth::credentials::{authenticate, Credentials};
use crate::encryption::{decide, share_for};
use crate::epoch::RootKeys;
use crate::error::{hex_bytes, Error};
use crate::mesh::wire::Message;

fn bad(message: impl Into<String>) -> HostError {
    HostError::new("BAD_REQUEST", message)
}

fn host_error(e: Error) -> HostError {
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

/// The shares [`HostInner::collect_shares`] gathered: at most a threshold of valid ones, and
/// why each rejected sender's share was refused.
pub(crate) struct Collected {
    pub(crate) good: Vec<BlsSignatureShare>,
    pub(crate) bad: BTreeMap<u32, String>,
}

impl Collected {
    /// "; bad … shares from node 2: …", or nothing when every share was good.
    pub(crate) fn named_bad(&self) -> String {
        if self.bad.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self
            .bad
            .iter()
            .map(|(from, why)| format!("node {from}: {why}"))
            .collect();
        format!("; bad shares from {}", list.join(", "))
    }
}

fn data_hash(text: &str) -> Result<[u8; 32], HostError> {
    hex_bytes::<32>("dataToEncryptHash", text).map_err(host_error)
}

impl HostInner {
    /// Who asks, inside an action: the address of the `authSig` given to the call (none without
    /// one: the run's own `authSig` is not lent to the action, or any action a user runs could
    /// decrypt everything locked to that user), and the action itself (`:currentActionIpfsId`).
    /// A session signature passed here must grant `need` (decrypting those data, or — for
    /// `checkConditions` — every data under those conditions), as it must outside actions.
    async fn condition_context(
        &self,
        auth: Option<&Value>,
        action: &str,
        need: &sigil_chain::session::Need,
    ) -> Result<Context, HostError> {
        let user = match auth {
            Some(auth) => Some(
                authenticate(&self.node, Credentials::new(Some(auth), None), Some(need))
                    .await
                    .map_err(host_error)?
                    .address(),
            ),
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
        let need = sigil_chain::session::Need::decryption(&hex::encode(conditions.hash()), "*");
        let context = self.condition_context(auth, action, &need).await?;
        match decide(&self.node, self.environment()?, &conditions, &context).await {
            Ok(()) => Ok(json!(true)),
            Err(e) if e.code() == "CONDITION_FAILED" => Ok(json!(false)),
            Err(e) => Err(host_error(e)),
        }
    }

    /// `Lit.Actions.encrypt` on this node (the prelude runs it on one node only).
    pub(crate) fn encrypt(&self, conditions: &Value, data: &str) -> Result<Value, HostError> {
        let conditions = action_conditions(conditions)?;
        let data = Zeroizing::new(hex::decode(data).map_err(|e| bad(format!("to_encrypt: not hex ({e})")))?);
        let keys = self.node.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        let hash: [u8; 32] = Sha256::digest(data.as_slice()).into();
        let identity = identity(&conditions.hash(), &hash);
        let ciphertext = bls::encrypt(keys.bls.public_key(), identity.as_bytes(), &data)
            .map_err(|e| HostError::new("ENCRYPT_FAILED", e.to_string()))?;
        Ok(json!({
            "ciphertext": base64::engine::general_purpose::STANDARD.encode(ciphertext),
            "dataToEncryptHash": hex::encode(hash),
        }))
    }

    /// Waits for decryption shares over `identity` under `topic` and opens `ciphertext` with the
    /// first `threshold` valid ones (see [`HostInner::collect_shares`]).
    #[allow(clippy::too_many_arguments)]
    async fn collect_and_open(
        &self,
        keys: &Arc<RootKeys>,
        threshold: usize,
        n_nodes: usize,
        topic: &str,
        identity: &str,
        ciphertext: Vec<u8>,
        wait: Duration,
    ) -> Result<Zeroizing<Vec<u8>>, HostError> {
        let collected = self
            .collect_shares(keys, threshold, n_nodes, topic, identity, wait)
            .await?;
        let named = collected.named_bad();
        let Collected { good, .. } = collected;
        if good.len() < threshold {
            return Err(HostError::new(
                "DECRYPT_FAILED",
                format!(
                    "{} of the {threshold} valid decryption shares needed arrived in {} s (the conditions may not hold for the other nodes, or they are down){named}",
                    good.len(),
                    wait.as_secs(),
                ),
            ));
        }
        let keys = Arc::clone(keys);
        let id = identity.to_string();
        let (opened, _) =
            tokio::task::spawn_blocking(move || bls::open(keys.bls.public(), &good, id.as_bytes(), &ciphertext))
                .await
                .map_err(|e| HostError::new("INTERNAL", e.to_string()))?;
        opened.map_err(|e| HostError::new("DECRYPT_FAILED", format!("{e}{named}")))
    }

    /// Waits for BLS signature shares over `identity` under `topic` until `threshold` valid ones
    /// are in (or `wait` ends). Each share is verified exactly once, as it arrives, on a blocking
    /// thread (a pairing check takes a millisecond); a sender whose share does not verify is
    /// dropped and named. So a malicious node costs one pairing per run, not a check of every
    /// share each time another arrives. Stops early once too few nodes of `n_nodes` are left to
    /// make up the threshold.
    pub(crate) async fn collect_shares(
        &self,
        keys: &Arc<RootKeys>,
        threshold: usize,
        n_nodes: usize,
        topic: &str,
        identity: &str,
        wait: Duration,
    ) -> Result<Collected, HostError> {
        let node = &self.node;
        let counters = &node.metrics.actions;
        let deadline = tokio::time::Instant::now() + wait;
        let mut good: BTreeMap<u32, BlsSignatureShare> = BTreeMap::new();
        let mut bad: BTreeMap<u32, String> = BTreeMap::new();
        while good.len() < threshold {
            if good.len() + n_nodes.saturating_sub(good.len() + bad.len()) < threshold {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let values = node
                .mailbox
                .wait(self.request, topic, left, |values| {
                    values
                        .keys()
                        .any(|from| !good.contains_key(from) && !bad.contains_key(from))
                })
                .await;
            let fresh: Vec<(u32, String)> = values
                .into_iter()
                .filter(|(from, _)| !good.contains_key(from) && !bad.contains_key(from))
                .collect();
            if fresh.is_empty() {
                break;
            }
            counters
                .share_verifications
                .fetch_add(fresh.len() as u64, Ordering::Relaxed);
            let (keys, id) = (Arc::clone(keys), identity.to_string());
            let checked = tokio::task::spawn_blocking(move || {
                fresh
                    .into_iter()
                    .map(|(from, text)| {
                        let share = hex::decode(&text)
                            .map_err(|e| format!("not hex ({e})"))
                            .and_then(|bytes| {
                                BlsSignatureShare::from_bytes(PartyId(from), &bytes).map_err(|e| e.to_string())
                            })
                            .and_then(|share| {
                                bls::verify_share(keys.bls.public(), &share, id.as_bytes())
                                    .map(|()| share)
                                    .map_err(|e| e.to_string())
                            });
                        (from, share)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| HostError::new("INTERNAL", e.to_string()))?;
            for (from, share) in checked {
                match share {
                    Ok(share) => {
                        good.insert(from, share);
                    }
                    Err(why) => {
                        counters.shares_rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(sender = from, %why, %topic, "node {from} sent a bad signature share; dropped");
                        bad.insert(from, why);
                    }
                }
            }
        }
        Ok(Collected {
            good: good.into_values().take(threshold).collect(),
            bad,
        })
    }

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
        let epoch = node.epoch();
        let keys = epoch.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        let need = sigil_chain::session::Need::decryption(&hex::encode(conditions.hash()), &hex::encode(data_hash));
        let context = self.condition_context(auth, action, &need).await?;
        decide(node, self.environment()?, &conditions, &context)
            .await
            .map_err(host_error)?;
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
        // Other nodes may still be deciding the conditions (an action condition may take the
        // whole wall time): wait as long as the action itself may run.
        let wait = node.settings.config.actions.limits.wall_time;
        let plaintext = self
            .collect_and_open(
                &keys,
                epoch.threshold,
                epoch.peers.len(),
                &topic,
                &identity,
                ciphertext,
                wait,
            )
            .await?;
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
