//! PKP key derivation (DESIGN §3): `P_k = P_root + h(keyId)·G`.
//!
//! `h` is the RFC 9380 hash to a secp256k1 scalar (expand_message_xmd with SHA-256) under a
//! Sigil-specific domain separation tag. Each node's derived share is `x_i + h(keyId)`: Lagrange
//! weights over any signing set sum to one, so the shares of a t-set interpolate to `x + h(keyId)`.
//! Nodes do not store derived shares: signing applies the same tweak to a presignature of the root key.

use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{ProjectivePoint, Scalar};
use sha3::{Digest, Keccak256};
use zeroize::Zeroizing;

use crate::{KeyShare, Secp256k1};

const DERIVE_DST: &[u8] = b"SIGIL-PKP-DERIVE-V1_secp256k1_XMD:SHA-256_RO_";

/// A PKP's key id, fixed by the contract as `keccak256(minter, salt)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

/// `h(keyId)`, the additive tweak from the root key to a PKP key.
pub fn derivation_tweak(key_id: &KeyId) -> Scalar {
    use crate::Curve;
    Secp256k1::hash_to_scalar(DERIVE_DST, &key_id.0)
}

/// The PKP public key for `key_id` under the network's root key.
pub fn derive_public_key(root: &ProjectivePoint, key_id: &KeyId) -> ProjectivePoint {
    *root + ProjectivePoint::GENERATOR * derivation_tweak(key_id)
}

/// A node's share of the PKP key: `x_i + h(keyId)`, wiped on drop.
pub fn derive_share(share: &KeyShare<Secp256k1>, key_id: &KeyId) -> Zeroizing<Scalar> {
    Zeroizing::new(*share.secret() + derivation_tweak(key_id))
}

/// The 65-byte uncompressed SEC1 encoding (`0x04 | x | y`).
///
/// The identity (which no real key is) has no such encoding and maps to 65 zero bytes.
pub fn uncompressed(public_key: &ProjectivePoint) -> [u8; 65] {
    <[u8; 65]>::try_from(public_key.to_affine().to_encoded_point(false).as_bytes()).unwrap_or([0u8; 65])
}

/// The PKP's NFT token id: `keccak256(uncompressed public key)`, as a big-endian uint256.
pub fn token_id(public_key: &ProjectivePoint) -> [u8; 32] {
    Keccak256::digest(uncompressed(public_key)).into()
}

/// The Ethereum address: the last 20 bytes of `keccak256(x | y)`.
pub fn eth_address(public_key: &ProjectivePoint) -> [u8; 20] {
    let full = uncompressed(public_key);
    let hash = Keccak256::digest(full.get(1..).unwrap_or_default());
    let mut out = [0u8; 20];
    out.copy_from_slice(hash.get(12..).unwrap_or_default());
    out
}

/// EIP-55 mixed-case checksum address, `0x`-prefixed.
pub fn checksum_address(address: &[u8; 20]) -> String {
    let lower = hex::encode(address);
    let hash = Keccak256::digest(lower.as_bytes());
    let mixed: String = lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let nibble = hash
                .get(i / 2)
                .map(|b| if i % 2 == 0 { b >> 4 } else { b & 0x0f })
                .unwrap_or(0);
            if c.is_ascii_alphabetic() && nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    format!("0x{mixed}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eth_address_of_generator() {
        // The address of private key 1 is a well-known constant.
        let addr = eth_address(&ProjectivePoint::GENERATOR);
        assert_eq!(checksum_address(&addr), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
    }

    #[test]
    fn tweak_is_domain_separated_and_deterministic() {
        let a = derivation_tweak(&KeyId([1; 32]));
        assert_eq!(a, derivation_tweak(&KeyId([1; 32])));
        assert_ne!(a, derivation_tweak(&KeyId([2; 32])));
    }
}
