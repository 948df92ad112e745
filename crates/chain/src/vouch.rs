//! What nodes sign so that the chain, not a node's word, vouches for the network.
//!
//! Every node has a secp256k1 signing key besides its X25519 mesh key; NodeSet lists both (the
//! signing key as its Ethereum address, `Node.signer`). With it a node signs two things:
//!
//! - **The root-key record** ([`RootKeys`], [`root_keys_digest`]): the network's ECDSA and BLS root
//!   public keys, a digest of the nodes' BLS public shares and the mint attester derived from the
//!   ECDSA root. `NodeSet.recordKeys` stores it only with the signatures of `threshold` distinct
//!   current nodes, and only then names the attester.
//! - **Its handshake** ([`handshake_digest`]): the keys it reports, its identity and the client's
//!   fresh challenge. A client checks the signature against the signer NodeSet lists and the keys
//!   against NodeSet's record, so a man in the middle can neither substitute a key nor replay an
//!   old answer.
//!
//! Signatures are 65 bytes r ‖ s ‖ v (v = 27 or 28, low s) over the raw 32-byte digest, which
//! starts with a Sigil domain string, so a node key signs nothing that means anything elsewhere.

use alloy::primitives::{keccak256, Address, Signature, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;

/// The record NodeSet keeps for an epoch (`NodeSet.RootKeys`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RootKeys {
    /// ECDSA root public key, SEC1 compressed (33 bytes).
    pub ecdsa: Vec<u8>,
    /// BLS root public key, G1 compressed (48 bytes).
    pub bls: Vec<u8>,
    /// [`bls_shares_digest`] of every node's BLS public share.
    pub bls_shares: [u8; 32],
    /// The mint attester's address (derived from the ECDSA root key).
    pub attester: Address,
}

impl RootKeys {
    /// Whether this is the empty record NodeSet returns before any was made.
    pub fn is_empty(&self) -> bool {
        self.ecdsa.is_empty() && self.attester == Address::ZERO
    }
}

/// What `NodeSet.recordKeys` checks signatures over (as `NodeSet.rootKeysDigest`):
/// `keccak256("sigil-root-keys-v1" ‖ chainId ‖ NodeSet ‖ epoch ‖ keccak256(ecdsa) ‖ keccak256(bls) ‖ blsShares ‖ attester)`,
/// integers as 32-byte big-endian words, addresses as 20 bytes.
pub fn root_keys_digest(chain_id: u64, node_set: Address, epoch: u64, keys: &RootKeys) -> B256 {
    keys_digest(b"sigil-root-keys-v1", chain_id, node_set, &[epoch], keys)
}

/// `keccak256(tag ‖ chainId ‖ NodeSet ‖ each of words ‖ keccak256(ecdsa) ‖ keccak256(bls) ‖
/// blsShares ‖ attester)`, integers as 32-byte big-endian words, addresses as 20 bytes.
fn keys_digest(tag: &[u8], chain_id: u64, node_set: Address, words: &[u64], keys: &RootKeys) -> B256 {
    let mut data = Vec::with_capacity(tag.len() + 32 + 20 + 32 * words.len() + 32 * 3 + 20);
    data.extend_from_slice(tag);
    data.extend_from_slice(&U256::from(chain_id).to_be_bytes::<32>());
    data.extend_from_slice(node_set.as_slice());
    for word in words {
        data.extend_from_slice(&U256::from(*word).to_be_bytes::<32>());
    }
    data.extend_from_slice(keccak256(&keys.ecdsa).as_slice());
    data.extend_from_slice(keccak256(&keys.bls).as_slice());
    data.extend_from_slice(&keys.bls_shares);
    data.extend_from_slice(keys.attester.as_slice());
    keccak256(&data)
}

/// What `NodeSet.confirmEpoch` checks signatures over (as `NodeSet.confirmationDigest`): the
/// nodes of proposal `proposal_id`, the next epoch `epoch`, confirm they hold `keys`.
/// `keccak256("sigil-epoch-confirmation-v1" ‖ chainId (32) ‖ NodeSet (20) ‖ epoch (32) ‖
/// proposal id (32) ‖ keccak256(ecdsa) ‖ keccak256(bls) ‖ blsShares (32) ‖ attester (20))`: another
/// tag than [`root_keys_digest`], so a confirmation is never a key record, and the proposal id,
/// so it confirms no other proposal.
pub fn confirmation_digest(chain_id: u64, node_set: Address, epoch: u64, proposal_id: u64, keys: &RootKeys) -> B256 {
    keys_digest(
        b"sigil-epoch-confirmation-v1",
        chain_id,
        node_set,
        &[epoch, proposal_id],
        keys,
    )
}

/// A digest of the nodes' BLS public shares: `keccak256(‖ id (4 bytes BE) ‖ share (48 bytes))` in
/// increasing id order (fixed widths, so no two share maps give one digest). Clients check
/// decryption shares one by one against these.
pub fn bls_shares_digest<'a>(shares: impl IntoIterator<Item = (u32, &'a [u8; 48])>) -> [u8; 32] {
    let mut sorted: Vec<(u32, &[u8; 48])> = shares.into_iter().collect();
    sorted.sort_by_key(|(id, _)| *id);
    let mut data = Vec::with_capacity(sorted.len() * 52);
    for (id, share) in sorted {
        data.extend_from_slice(&id.to_be_bytes());
        data.extend_from_slice(share);
    }
    keccak256(&data).0
}

/// What a handshake says about its node, the part a client must be able to trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeClaim {
    /// The chain the network's NodeSet lives on.
    pub chain_id: u64,
    /// The NodeSet contract.
    pub node_set: Address,
    /// The node's epoch.
    pub epoch: u64,
    /// The node's id.
    pub node_id: u32,
    /// Its X25519 mesh identity key.
    pub identity_key: [u8; 32],
    /// Shares needed.
    pub threshold: u32,
    /// The keys it holds shares of (empty before the DKG).
    pub keys: RootKeys,
}

/// What a node signs in its handshake:
/// `keccak256("sigil-handshake-v1" ‖ challenge ‖ chainId ‖ NodeSet ‖ epoch ‖ node id (4) ‖ identity key (32) ‖ threshold (4) ‖ rootKeysDigest)`.
pub fn handshake_digest(claim: &HandshakeClaim, challenge: &[u8; 32]) -> B256 {
    let mut data = Vec::with_capacity(18 + 32 * 4 + 20 + 4 + 32 + 4);
    data.extend_from_slice(b"sigil-handshake-v1");
    data.extend_from_slice(challenge);
    data.extend_from_slice(&U256::from(claim.chain_id).to_be_bytes::<32>());
    data.extend_from_slice(claim.node_set.as_slice());
    data.extend_from_slice(&U256::from(claim.epoch).to_be_bytes::<32>());
    data.extend_from_slice(&claim.node_id.to_be_bytes());
    data.extend_from_slice(&claim.identity_key);
    data.extend_from_slice(&claim.threshold.to_be_bytes());
    data.extend_from_slice(root_keys_digest(claim.chain_id, claim.node_set, claim.epoch, &claim.keys).as_slice());
    keccak256(&data)
}

/// Signs `digest` with a node's signing key: 65 bytes r ‖ s ‖ v, v = 27 or 28, low s.
pub fn sign_digest(key: &PrivateKeySigner, digest: &B256) -> [u8; 65] {
    // k256 signs deterministically (RFC 6979) and normalises s; a failure would be a bug in it.
    let signature = key
        .sign_hash_sync(digest)
        .unwrap_or_else(|_| Signature::new(U256::ZERO, U256::ZERO, false));
    signature.as_bytes()
}

/// The address that signed `digest`, if `signature` is 65 well-formed bytes with v 0, 1, 27 or 28
/// and a low s (the rule `NodeSet` applies too).
pub fn signer_of(digest: &B256, signature: &[u8]) -> Option<Address> {
    if !matches!(signature.get(64), Some(0 | 1 | 27 | 28)) {
        return None;
    }
    let signature = Signature::try_from(signature).ok()?;
    if signature.normalize_s().is_some() {
        return None;
    }
    signature.recover_address_from_prehash(digest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RootKeys {
        RootKeys {
            ecdsa: [2u8; 33].to_vec(),
            bls: [7u8; 48].to_vec(),
            bls_shares: bls_shares_digest([(1, &[1u8; 48]), (0, &[0u8; 48])]),
            attester: Address::repeat_byte(0xa7),
        }
    }

    fn claim() -> HandshakeClaim {
        HandshakeClaim {
            chain_id: 31337,
            node_set: Address::repeat_byte(0x5e),
            epoch: 1,
            node_id: 2,
            identity_key: [9; 32],
            threshold: 2,
            keys: keys(),
        }
    }

    #[test]
    fn a_signature_names_its_signer_and_nothing_else() {
        let key = PrivateKeySigner::random();
        let digest = handshake_digest(&claim(), &[1; 32]);
        let signature = sign_digest(&key, &digest);
        assert_eq!(signer_of(&digest, &signature), Some(key.address()));
        // another challenge, another key, another field: another digest
        assert_ne!(
            signer_of(&handshake_digest(&claim(), &[2; 32]), &signature),
            Some(key.address())
        );
        let mut other = claim();
        other.keys.bls[0] ^= 1;
        assert_ne!(
            signer_of(&handshake_digest(&other, &[1; 32]), &signature),
            Some(key.address())
        );
        let mut other = claim();
        other.node_id = 3;
        assert_ne!(
            signer_of(&handshake_digest(&other, &[1; 32]), &signature),
            Some(key.address())
        );
        // truncated or padded signatures, and any v but 0, 1, 27, 28, are refused (as NodeSet does)
        assert_eq!(signer_of(&digest, &signature[..64]), None);
        for v in [2u8, 26, 29, 35, 36, 37, 255] {
            let mut odd = signature;
            odd[64] = v;
            assert_eq!(signer_of(&digest, &odd), None, "v = {v}");
        }
        assert_eq!(signer_of(&digest, &[&signature[..], &[0]].concat()), None);
    }

    #[test]
    fn a_high_s_twin_of_a_valid_signature_is_refused() {
        let key = PrivateKeySigner::random();
        let digest = root_keys_digest(1, Address::ZERO, 1, &keys());
        let signature = Signature::try_from(&sign_digest(&key, &digest)[..]).unwrap();
        let order = U256::from_be_slice(
            &hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141").unwrap(),
        );
        let twin = Signature::new(signature.r(), order - signature.s(), !signature.v());
        assert_eq!(twin.recover_address_from_prehash(&digest).ok(), Some(key.address()));
        assert_eq!(signer_of(&digest, &twin.as_bytes()), None);
    }

    /// The keys and NodeSet address of the vectors `contracts/test/NodeSet.t.sol` checks too.
    fn vector_keys() -> (RootKeys, Address) {
        let keys = RootKeys {
            ecdsa: hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798").unwrap(),
            bls: hex::decode(
                "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb",
            )
            .unwrap(),
            bls_shares: keccak256(b"bls shares").0,
            attester: "0x83Ae882bE86b8Ab6C4Eb270ee2B0c0383EC41f3C".parse().unwrap(),
        };
        (keys, "0x5FbDB2315678afecb367f032d93F642f64180aa3".parse().unwrap())
    }

    /// The vector `contracts/test/NodeSet.t.sol` checks `NodeSet.rootKeysDigest` against.
    #[test]
    fn the_digest_and_signature_match_the_contracts_vector() {
        let (keys, node_set) = vector_keys();
        let digest = root_keys_digest(31337, node_set, 1, &keys);
        assert_eq!(
            hex::encode(digest),
            "18bc47230d8fa36c2c3a289a99ef5baef68ebb462d670ef0fc6d38b0750db77d"
        );
        let mut secret = [0u8; 32];
        secret[30..].copy_from_slice(&[0x10, 0x01]);
        let node = PrivateKeySigner::from_slice(&secret).unwrap();
        assert_eq!(
            hex::encode(sign_digest(&node, &digest)),
            "8faa5833e7c2729cae4bfa050f6ebb2a1efab2cba5babd69dd322a49726aa8956e53d904a155d6dc875fc08d5612261328e8756aace3ba1cdd688b83d75cf85b1b"
        );
    }

    /// The vector `contracts/test/NodeSet.t.sol` checks `NodeSet.confirmationDigest` against.
    #[test]
    fn the_confirmation_digest_matches_the_contracts_vector_and_is_no_key_record() {
        let (keys, node_set) = vector_keys();
        let digest = confirmation_digest(31337, node_set, 2, 7, &keys);
        assert_eq!(
            hex::encode(digest),
            "d66f9275e771309974e6d7cd6762c1702e6393d2c9d4efb198c414b2897a9daa"
        );
        assert_ne!(digest, root_keys_digest(31337, node_set, 2, &keys));
        assert_ne!(digest, confirmation_digest(31337, node_set, 2, 8, &keys));
    }

    #[test]
    fn the_shares_digest_does_not_depend_on_order() {
        let a = bls_shares_digest([(0, &[0u8; 48]), (1, &[1u8; 48])]);
        let b = bls_shares_digest([(1, &[1u8; 48]), (0, &[0u8; 48])]);
        assert_eq!(a, b);
        assert_ne!(a, bls_shares_digest([(0, &[1u8; 48]), (1, &[0u8; 48])]));
    }
}
