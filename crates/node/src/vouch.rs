//! What this node signs so that others need not take its word: its handshake, the root-key
//! record that `NodeSet.recordKeys` accepts with `threshold` node signatures
//! (`sigil_chain::vouch` has the formats), and its take counter, which peers keep and hand back
//! after a restart (the rollback check believes only a counter this node signed, so a lying
//! peer cannot make it discard its stock). Uses the node's keys and its registry; knows no HTTP.

use std::sync::Arc;

use sigil_chain::alloy::primitives::{keccak256, Address, B256};
use sigil_chain::vouch::{handshake_digest, root_keys_digest, sign_digest, signer_of, HandshakeClaim};

use crate::epoch::{Epoch, PublicKeys, SignedPublicKeys};
use crate::node::Node;
use crate::store::SignedTakes;

/// `keccak256("sigil-takes-v1" ‖ node id (4) ‖ takes (8))`. Only the node's own key is ever
/// checked against it, and nothing that changes with the node set is in it, so a counter peers
/// kept from before a change of the node list still counts.
fn takes_digest(node: u32, takes: u64) -> B256 {
    keccak256([&b"sigil-takes-v1"[..], &node.to_be_bytes(), &takes.to_be_bytes()].concat())
}

impl Node {
    /// The public parts of this node's root keys (read once, after the DKG) with its signature
    /// over their record (None without a chain).
    pub fn public_keys(&self, epoch: &Epoch) -> Option<Arc<SignedPublicKeys>> {
        epoch.public_keys(|keys| {
            let public = PublicKeys::of(keys);
            let signature = self.options.registry.as_ref().map(|registry| {
                let digest = root_keys_digest(
                    registry.chain_id(),
                    registry.contracts().node_set,
                    epoch.number,
                    &public.record(),
                );
                sign_digest(&self.signer, &digest)
            });
            (public, signature)
        })
    }

    /// Signs a handshake answering `challenge` that reports `keys` (None before the DKG). Without
    /// a chain there is no NodeSet to vouch for the signer, and nothing is signed.
    pub fn sign_handshake(&self, epoch: &Epoch, keys: Option<&PublicKeys>, challenge: &[u8; 32]) -> Option<[u8; 65]> {
        let registry = self.options.registry.as_ref()?;
        let claim = HandshakeClaim {
            chain_id: registry.chain_id(),
            node_set: registry.contracts().node_set,
            epoch: epoch.number,
            node_id: self.me,
            identity_key: self.identity_key(epoch),
            threshold: u32::try_from(epoch.threshold).unwrap_or(u32::MAX),
            keys: keys.map(PublicKeys::record).unwrap_or_default(),
        };
        Some(sign_digest(&self.signer, &handshake_digest(&claim, challenge)))
    }

    /// This node's X25519 mesh key, as NodeSet lists it.
    pub fn identity_key(&self, epoch: &Epoch) -> [u8; 32] {
        epoch
            .peers
            .iter()
            .find(|(id, _, _)| *id == self.me)
            .map(|(_, _, k)| k.0)
            .unwrap_or_default()
    }

    /// The address of this node's signing key.
    pub fn signer_address(&self) -> Address {
        self.signer.address()
    }

    /// This node's take counter `takes`, signed (the last one is reused while it stands).
    pub fn sign_takes(&self, takes: u64) -> SignedTakes {
        if let Ok(mut last) = self.signed_takes.lock() {
            if let Some(signed) = last.filter(|s| s.takes == takes) {
                return signed;
            }
            let signed = SignedTakes {
                takes,
                signature: sign_digest(&self.signer, &takes_digest(self.me, takes)),
            };
            *last = Some(signed);
            return signed;
        }
        SignedTakes {
            takes,
            signature: sign_digest(&self.signer, &takes_digest(self.me, takes)),
        }
    }

    /// Whether `signed` is a counter this node signed.
    pub fn signed_by_me(&self, signed: &SignedTakes) -> bool {
        signer_of(&takes_digest(self.me, signed.takes), &signed.signature) == Some(self.signer.address())
    }
}
