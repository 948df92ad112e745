//! Encryption inside actions: `checkConditions`, `encrypt`, and `decryptAndCombine` /
//! `decryptToSingleNode`, whose shares travel through the mailbox so the plaintext exists only
//! inside the action. Uses `node`, `auth`, `encryption`, `actions::host`, `error`.

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigil_actions::HostError;
use sigil_conditions::{identity, Conditions, Context};
use sigil_tss::bls::{self, BlsSignatureShare};
use sigil_tss::PartyId;
use zeroize::Zeroizing;

use super::host::HostInner;
use crate::auth::authenticate;
use crate::encryption::{decide, share_for};
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

fn data_hash(text: &str) -> Result<[u8; 32], HostError> {
    hex_bytes::<32>("dataToEncryptHash", text).map_err(host_error)
}

impl HostInner {
    /// Who asks, inside an action: the address of the `authSig` given to the call (none without
    /// one: the run's own `authSig` is not lent to the action, or any action a user runs could
    /// decrypt everything locked to that user), and the action itself (`:currentActionIpfsId`).
    async fn condition_context(&self, auth: Option<&Value>, action: &str) -> Result<Context, HostError> {
        let user = match auth {
            Some(auth) => Some(
                authenticate(&self.node, Some(auth))
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
        let context = self.condition_context(auth, action).await?;
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
        let epoch = node.epoch();
        let keys = epoch.keys().ok_or_else(|| host_error(Error::not_ready()))?;
        let context = self.condition_context(auth, action).await?;
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
        let package = keys.bls.public();
        let threshold = epoch.threshold;
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
