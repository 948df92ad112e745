//! The agreed random seed of an action run: randomness every node of the run shares and no one
//! can compute in advance, neither the caller nor fewer than t nodes.
//!
//! The seed is the SHA-256 of the network's threshold BLS signature over
//! `sigil-random://{run id}`, the run id binding the request id, the action's CID, its timestamp,
//! its `jsParams` and its caller. A BLS signature is unique, so every node that combines t valid
//! shares gets the same one; making it needs t key shares, and the caller learns nothing of it
//! (only bytes drawn from a stream keyed by its hash). The identity scheme cannot collide with
//! decryption identities (`sigil-acc://…`) or capabilities, so a seed never opens a ciphertext.
//!
//! A run asks for its seed only when it first draws randomness, so runs that never draw pay
//! nothing. Uses `node`, `encryption`, `actions::host`, `actions::decrypt`.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigil_actions::HostError;
use sigil_tss::bls::{self, BlsSignatureShare};
use sigil_tss::PartyId;

use super::host::HostInner;
use crate::encryption::share_for;
use crate::error::Error;

/// The identity the network signs for the run `run` (its mailbox id).
pub(crate) fn identity(run: &[u8; 16]) -> String {
    format!("sigil-random://{}", hex::encode(run))
}

/// The seed from the network's signature over the run's identity.
pub(crate) fn seed_from(signature: &[u8; 96]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sigil-action-randomness/v1");
    h.update(signature);
    h.finalize().into()
}

impl HostInner {
    /// Sends this node's share of the run's signature to the others, combines t valid shares
    /// and answers the seed (hex).
    pub(crate) async fn randomness(&self) -> Result<Value, HostError> {
        let node = &self.node;
        let epoch = node.epoch();
        let keys = epoch
            .keys()
            .ok_or_else(|| HostError::new("NOT_READY", Error::not_ready().message()))?;
        let identity = identity(&self.request);
        let share = share_for(node, &keys, &identity).map_err(|e| HostError::new(e.code(), e.message()))?;
        let topic = "random";
        self.send_all(topic, hex::encode(share.to_bytes()));
        let threshold = epoch.threshold;
        let wait = super::host::COLLECT_WAIT.min(node.settings.config.actions.limits.wall_time);
        let public = keys.bls.public().clone();
        let started = std::time::Instant::now();
        // The first t shares to arrive, combined unchecked and the result checked once: one
        // pairing when every node is honest.
        let first = node
            .mailbox
            .wait(self.request, topic, wait, |values| values.len() >= threshold)
            .await;
        let shares: Vec<BlsSignatureShare> = first
            .iter()
            .filter_map(|(from, text)| BlsSignatureShare::from_bytes(PartyId(*from), &hex::decode(text).ok()?).ok())
            .collect();
        if shares.len() >= threshold {
            let (public, id) = (public.clone(), identity.clone());
            let fast = tokio::task::spawn_blocking(move || bls::combine_verified(&public, &shares, id.as_bytes()))
                .await
                .map_err(|e| HostError::new("INTERNAL", e.to_string()))?;
            if let Ok(signature) = fast {
                return Ok(json!(hex::encode(seed_from(&bls::signature_bytes(&signature)))));
            }
        }
        // Some share is bad (or too few came): check them one by one, drop and name the bad ones.
        // One deadline for both tries: what is left of it.
        let left = wait.saturating_sub(started.elapsed());
        let collected = self
            .collect_shares(&keys, threshold, epoch.peers.len(), topic, &identity, left)
            .await?;
        let named = collected.named_bad();
        if collected.good.len() < threshold {
            return Err(HostError::new(
                "RANDOMNESS_FAILED",
                format!(
                    "{} of the {threshold} valid signature shares a random seed needs arrived in {} s (are the other nodes running this request?){named}",
                    collected.good.len(),
                    wait.as_secs()
                ),
            ));
        }
        let shares = collected.good;
        let signature =
            tokio::task::spawn_blocking(move || bls::combine_verified(&public, &shares, identity.as_bytes()))
                .await
                .map_err(|e| HostError::new("INTERNAL", e.to_string()))?
                .map_err(|e| HostError::new("RANDOMNESS_FAILED", format!("combining the seed's shares: {e}{named}")))?;
        Ok(json!(hex::encode(seed_from(&bls::signature_bytes(&signature)))))
    }
}
