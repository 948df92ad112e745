//! Threshold encryption: [`Client::encrypt`] works offline against the network key the handshake
//! gave; [`Client::decrypt`] asks every node for its decryption share and tries the first `t`
//! (`bls::open`): when they do not open the data, each share is checked against its node's public
//! share, the bad ones are named in the outcome and the others are used.

use base64::Engine;
use futures::stream::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigil_conditions::{identity, Conditions};
use sigil_primitives::{EncryptionShare, EncryptionSignRequest};
use sigil_tss::bls::{self, BlsSignatureShare};
use sigil_tss::{PartyId, TssError};
use zeroize::Zeroizing;

use crate::{Client, ClientError, NodeFailure};

/// Version of [`Encrypted`].
pub const ENCRYPTED_VERSION: u32 = 1;

/// Encrypted data with everything needed to decrypt it but the key: what `sigil encrypt` writes.
/// The conditions and the data hash are bound into the identity the data is encrypted to, so
/// changing either makes decryption fail.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Encrypted {
    /// Format version (1).
    pub version: u32,
    /// The network's BLS public key it is encrypted to, hex.
    pub network_key: String,
    /// `evmBasic` conditions (one of the three condition fields is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_conditions: Option<serde_json::Value>,
    /// `evmContract` conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evm_contract_conditions: Option<serde_json::Value>,
    /// Conditions tagged with `conditionType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified_access_control_conditions: Option<serde_json::Value>,
    /// SHA-256 of the plaintext, hex.
    pub data_to_encrypt_hash: String,
    /// The ciphertext, base64.
    pub ciphertext: String,
}

impl Encrypted {
    /// The conditions, parsed and checked.
    pub fn conditions(&self) -> Result<Conditions, ClientError> {
        Conditions::from_fields(
            self.access_control_conditions.as_ref(),
            self.evm_contract_conditions.as_ref(),
            self.unified_access_control_conditions.as_ref(),
        )
        .map_err(|e| ClientError::Invalid(format!("conditions: {e}")))
    }
}

/// Decrypted data.
#[derive(Debug)]
pub struct Decrypted {
    /// The plaintext (wiped from memory when dropped).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The nodes whose shares were combined.
    pub shares_from: Vec<u32>,
    /// Nodes that refused, failed or sent a share that does not verify.
    pub failures: Vec<NodeFailure>,
}

impl Client {
    /// Encrypts `data` to the network under `conditions`: either an array of conditions, or an
    /// object with one of Lit's fields (`accessControlConditions`, `evmContractConditions`,
    /// `unifiedAccessControlConditions`). Nothing is sent to the nodes.
    pub fn encrypt(&self, conditions: &serde_json::Value, data: &[u8]) -> Result<Encrypted, ClientError> {
        let (field, value) = match conditions {
            serde_json::Value::Array(_) => ("unifiedAccessControlConditions", conditions.clone()),
            serde_json::Value::Object(map) => {
                let mut fields = map.iter();
                match (fields.next(), fields.next()) {
                    (Some((name, value)), None) => (name.as_str(), value.clone()),
                    _ => {
                        return Err(ClientError::Invalid(
                            "conditions: give an array, or an object with exactly one condition field".into(),
                        ))
                    }
                }
            }
            _ => {
                return Err(ClientError::Invalid(
                    "conditions: expected an array or an object".into(),
                ))
            }
        };
        let mut encrypted = Encrypted {
            version: ENCRYPTED_VERSION,
            network_key: self.bls_root.clone(),
            access_control_conditions: None,
            evm_contract_conditions: None,
            unified_access_control_conditions: None,
            data_to_encrypt_hash: String::new(),
            ciphertext: String::new(),
        };
        match field {
            "accessControlConditions" => encrypted.access_control_conditions = Some(value),
            "evmContractConditions" => encrypted.evm_contract_conditions = Some(value),
            "unifiedAccessControlConditions" => encrypted.unified_access_control_conditions = Some(value),
            other => return Err(ClientError::Invalid(format!("conditions: unknown field {other:?}"))),
        }
        let parsed = encrypted.conditions()?;
        let data_hash: [u8; 32] = Sha256::digest(data).into();
        let identity = identity(&parsed.hash(), &data_hash);
        let key = hex::decode(&self.bls_root)
            .ok()
            .and_then(|b| bls::decode_g1(&b))
            .ok_or_else(|| ClientError::Invalid("the nodes report an undecodable BLS key".into()))?;
        let ciphertext =
            bls::encrypt(&key, identity.as_bytes(), data).map_err(|e| ClientError::Invalid(e.to_string()))?;
        encrypted.data_to_encrypt_hash = hex::encode(data_hash);
        encrypted.ciphertext = base64::engine::general_purpose::STANDARD.encode(ciphertext);
        Ok(encrypted)
    }

    /// Decrypts as the holder of `auth` (whose address the conditions test as `:userAddress`).
    pub async fn decrypt(
        &self,
        encrypted: &Encrypted,
        auth: Option<&dyn crate::Credential>,
    ) -> Result<Decrypted, ClientError> {
        let (started, mut pause, mut client) = (
            std::time::Instant::now(),
            std::time::Duration::from_millis(250),
            self.current(),
        );
        loop {
            match client.decrypt_in_epoch(encrypted, auth).await {
                Err(e) => match self.after_failure(&e, started, &mut pause).await {
                    Some(next) => client = next,
                    None => return Err(e),
                },
                done => return done,
            }
        }
    }

    /// [`Client::decrypt`] within this connection's epoch.
    async fn decrypt_in_epoch(
        &self,
        encrypted: &Encrypted,
        auth: Option<&dyn crate::Credential>,
    ) -> Result<Decrypted, ClientError> {
        if encrypted.version != ENCRYPTED_VERSION {
            return Err(ClientError::Invalid(format!(
                "unknown encrypted-data version {}",
                encrypted.version
            )));
        }
        if !encrypted.network_key.eq_ignore_ascii_case(&self.bls_root) {
            return Err(ClientError::Invalid(format!(
                "the data is encrypted to network key {}, this network's key is {}",
                encrypted.network_key, self.bls_root
            )));
        }
        let package = self.bls_package.as_ref().ok_or_else(|| {
            ClientError::Invalid("the nodes report no BLS public shares to check shares against".into())
        })?;
        let conditions = encrypted.conditions()?;
        let data_hash: [u8; 32] = hex::decode(&encrypted.data_to_encrypt_hash)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ClientError::Invalid("dataToEncryptHash: expected 32 bytes of hex".into()))?;
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(encrypted.ciphertext.trim())
            .map_err(|e| ClientError::Invalid(format!("ciphertext: not base64 ({e})")))?;
        let identity = identity(&conditions.hash(), &data_hash);
        let (auth_sig, session_sigs) = auth.map(|a| a.fields()).transpose()?.unwrap_or_default();
        let body = EncryptionSignRequest {
            access_control_conditions: encrypted.access_control_conditions.clone(),
            evm_contract_conditions: encrypted.evm_contract_conditions.clone(),
            unified_access_control_conditions: encrypted.unified_access_control_conditions.clone(),
            data_to_encrypt_hash: encrypted.data_to_encrypt_hash.clone(),
            auth_sig,
            session_sigs,
            ..EncryptionSignRequest::default()
        };
        let mut pending = self.to_every_node("/web/encryption/sign", &body, |http, url, body| async move {
            crate::post_coded::<EncryptionShare>(&http, &url, &body).await
        });
        let mut failures = self.unreachable.clone();
        let mut refusals: Vec<(String, String)> = Vec::new();
        // Shares are combined as they come and checked one by one only when a combination does
        // not open the data (`bls::open`): a bad share is named, and the others still serve.
        let mut candidates: Vec<BlsSignatureShare> = Vec::new();
        let mut tried = 0;
        while let Some((node, answer)) = pending.next().await {
            let fail = |reason: String| NodeFailure {
                node: Some(node.id),
                url: node.url.clone(),
                reason,
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    if let Some(fields) = e.fields {
                        refusals.push((fields.code, fields.message));
                    }
                    failures.push(fail(e.text));
                    continue;
                }
            };
            if answer.node_id != node.id || answer.identity != identity {
                failures.push(fail("answered for another node or another identity".into()));
                continue;
            }
            let share = hex::decode(&answer.share)
                .map_err(|e| e.to_string())
                .and_then(|b| BlsSignatureShare::from_bytes(PartyId(node.id), &b).map_err(|e| e.to_string()));
            match share {
                Ok(share) => candidates.push(share),
                Err(reason) => {
                    failures.push(fail(format!("sent a bad decryption share: {reason}")));
                    continue;
                }
            }
            if candidates.len() < self.threshold || candidates.len() == tried {
                continue;
            }
            let (outcome, bad) = bls::open(package, &candidates, identity.as_bytes(), &ciphertext);
            for error in bad {
                let culprit = error.culprit();
                candidates.retain(|s| Some(s.party) != culprit);
                failures.push(NodeFailure {
                    node: culprit.map(|p| p.0),
                    url: self
                        .nodes
                        .iter()
                        .find(|n| Some(PartyId(n.id)) == culprit)
                        .map(|n| n.url.clone())
                        .unwrap_or_default(),
                    reason: format!("sent a bad decryption share: {error}"),
                });
            }
            tried = candidates.len();
            let plaintext = match outcome {
                Ok(plaintext) => plaintext,
                Err(TssError::NotEnoughShares { .. }) => continue,
                Err(e) => {
                    return Err(ClientError::Decrypt {
                        code: "DECRYPT_FAILED".into(),
                        message: e.to_string(),
                        failures,
                    })
                }
            };
            if <[u8; 32]>::from(Sha256::digest(plaintext.as_slice())) != data_hash {
                return Err(ClientError::Decrypt {
                    code: "DECRYPT_FAILED".into(),
                    message: "the plaintext does not hash to dataToEncryptHash".into(),
                    failures,
                });
            }
            let mut shares_from: Vec<u32> = candidates.iter().map(|s| s.party.0).collect();
            shares_from.sort_unstable();
            shares_from.dedup();
            shares_from.truncate(self.threshold);
            return Ok(Decrypted {
                plaintext,
                shares_from,
                failures,
            });
        }
        // The most common refusal speaks for the network.
        let mut counts: std::collections::BTreeMap<&(String, String), usize> = Default::default();
        for refusal in &refusals {
            *counts.entry(refusal).or_default() += 1;
        }
        let (code, message) = counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|((c, m), _)| (c.clone(), m.clone()))
            .unwrap_or_else(|| {
                (
                    "NOT_ENOUGH_SHARES".into(),
                    format!(
                        "{} valid decryption shares, {} needed",
                        candidates.len(),
                        self.threshold
                    ),
                )
            });
        Err(ClientError::Decrypt {
            code,
            message,
            failures,
        })
    }
}
