//! What this node signs so that others need not take its word: its handshake, the root-key
//! record that `NodeSet.recordKeys` accepts with `threshold` node signatures
//! (`sigil_chain::vouch` has the formats), and its take counter, which peers keep and hand back
//! after a restart (the rollback check believes only a counter this node signed, so a lying
//! peer cannot make it discard its stock). Uses the node's keys and its registry; knows no HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use group::GroupEncoding;
use sigil_chain::alloy::primitives::{keccak256, Address, B256};
use sigil_chain::attester_key_id;
use sigil_chain::vouch::{
    bls_shares_digest, handshake_digest, root_keys_digest, sign_digest, signer_of, HandshakeClaim,
};
use sigil_tss::derive::{derive_public_key, eth_address, KeyId};
use sigil_tss::k256::elliptic_curve::sec1::ToEncodedPoint;

use crate::node::{Node, RootKeys};
use crate::store::SignedTakes;

/// `keccak256("sigil-takes-v1" ‖ node id (4) ‖ takes (8))`. Only the node's own key is ever
/// checked against it, and nothing that changes with the node set is in it, so a counter peers
/// kept from before a change of the node list still counts.
fn takes_digest(node: u32, takes: u64) -> B256 {
    keccak256([&b"sigil-takes-v1"[..], &node.to_be_bytes(), &takes.to_be_bytes()].concat())
}

/// The public parts of this node's root keys, as the handshake shows them.
pub struct PublicKeys {
    /// ECDSA root, SEC1 compressed.
    pub ecdsa: Vec<u8>,
    /// BLS root, G1 compressed.
    pub bls: Vec<u8>,
    /// Every node's BLS public share, by node id.
    pub bls_shares: BTreeMap<u32, [u8; 48]>,
    /// The mint attester derived from the ECDSA root.
    pub attester: Address,
}

impl PublicKeys {
    /// Reads them off this node's key shares.
    pub fn of(keys: &RootKeys) -> Self {
        let ecdsa_root = keys.ecdsa.public_key();
        let package = keys.bls.public();
        let bls_shares = package
            .parties()
            .into_iter()
            .filter_map(|p| {
                Some((
                    p.0,
                    <[u8; 48]>::try_from(package.public_share(p)?.to_bytes().as_ref()).ok()?,
                ))
            })
            .collect();
        Self {
            ecdsa: ecdsa_root.to_affine().to_encoded_point(true).as_bytes().to_vec(),
            bls: keys.bls.public_key().to_bytes().as_ref().to_vec(),
            bls_shares,
            attester: Address::from(eth_address(&derive_public_key(ecdsa_root, &KeyId(attester_key_id())))),
        }
    }

    /// The record NodeSet keeps of them.
    pub fn record(&self) -> sigil_chain::vouch::RootKeys {
        sigil_chain::vouch::RootKeys {
            ecdsa: self.ecdsa.clone(),
            bls: self.bls.clone(),
            bls_shares: bls_shares_digest(self.bls_shares.iter().map(|(id, share)| (*id, share))),
            attester: self.attester,
        }
    }
}

impl Node {
    /// The public parts of this node's root keys (read once, after the DKG) with its signature
    /// over their record (None without a chain).
    pub fn public_keys(&self) -> Option<Arc<(PublicKeys, Option<[u8; 65]>)>> {
        let keys = self.keys()?;
        if let Some(done) = self.public.get() {
            return Some(Arc::clone(done));
        }
        let public = PublicKeys::of(&keys);
        let signature = self.options.registry.as_ref().map(|registry| {
            let digest = root_keys_digest(
                registry.chain_id(),
                registry.contracts().node_set,
                self.settings.epoch,
                &public.record(),
            );
            sign_digest(&self.signer, &digest)
        });
        Some(Arc::clone(self.public.get_or_init(|| Arc::new((public, signature)))))
    }

    /// Signs a handshake answering `challenge` that reports `keys` (None before the DKG). Without
    /// a chain there is no NodeSet to vouch for the signer, and nothing is signed.
    pub fn sign_handshake(&self, keys: Option<&PublicKeys>, challenge: &[u8; 32]) -> Option<[u8; 65]> {
        let registry = self.options.registry.as_ref()?;
        let claim = HandshakeClaim {
            chain_id: registry.chain_id(),
            node_set: registry.contracts().node_set,
            epoch: self.settings.epoch,
            node_id: self.me,
            identity_key: self.identity_key(),
            threshold: u32::try_from(self.threshold).unwrap_or(u32::MAX),
            keys: keys.map(PublicKeys::record).unwrap_or_default(),
        };
        Some(sign_digest(&self.signer, &handshake_digest(&claim, challenge)))
    }

    /// This node's X25519 mesh key, as NodeSet lists it.
    pub fn identity_key(&self) -> [u8; 32] {
        self.settings
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
