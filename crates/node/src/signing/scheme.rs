//! The seam between a signature scheme and the signing service: a scheme's one-time material
//! (made ahead of requests by a signing set of exactly `t` nodes, each holding a share, used at
//! most once) and how one holder turns its share of it into a signature share.
//!
//! [`Ecdsa`] — cait-sith presignatures for secp256k1 PKPs — and [`SchnorrTaproot`] — FROST nonces
//! with their signing set's agreed commitments, which leak the key share if used twice just like
//! presignatures — implement it. The take-once storage and the allocation checks in
//! [`super::share`] are the same for every scheme. Uses nothing else of the crate.

use sigil_tss::derive::KeyId;
use sigil_tss::ecdsa::{sign_share_derived, Presignature, SignatureShare};
use sigil_tss::k256::{ProjectivePoint, Scalar};
use sigil_tss::schnorr::{Material, SchnorrShare};
use sigil_tss::{KeyShare, Secp256k1};

/// A signature scheme whose signing consumes one-time material.
pub trait Scheme {
    /// One holder's share of one piece of material; used at most once.
    type Material;
    /// A PKP's public key in this scheme.
    type PublicKey;
    /// One node's share of a signature.
    type Share;
    /// The scheme's name, as Lit's `signingScheme` spells it.
    const NAME: &'static str;

    /// The signing set that made `material` (node ids, sorted).
    fn holders(material: &Self::Material) -> Vec<u32>;

    /// This holder's share of the signature of `hash` under the PKP `key_id` whose key is
    /// `public_key`, consuming `material`; `entropy` is the allocator's, the same at every holder.
    fn sign(
        material: Self::Material,
        public_key: &Self::PublicKey,
        key_id: &KeyId,
        hash: &[u8; 32],
        entropy: &[u8; 32],
    ) -> Result<Self::Share, String>;

    /// The share as clients receive it.
    fn encode(share: &Self::Share) -> Vec<u8>;

    /// Test fault `corrupt-signature-shares`: the share, still well formed, made wrong.
    fn corrupt(share: &mut Self::Share);
}

/// ECDSA over secp256k1 with cait-sith presignatures (`EcdsaK256Sha256`).
pub struct Ecdsa;

impl Scheme for Ecdsa {
    type Material = Presignature;
    type PublicKey = ProjectivePoint;
    type Share = SignatureShare;
    const NAME: &'static str = "EcdsaK256Sha256";

    fn holders(material: &Presignature) -> Vec<u32> {
        material.signers().iter().map(|p| p.0).collect()
    }

    fn sign(
        material: Presignature,
        public_key: &ProjectivePoint,
        key_id: &KeyId,
        hash: &[u8; 32],
        entropy: &[u8; 32],
    ) -> Result<SignatureShare, String> {
        sign_share_derived(material, public_key, key_id, hash, entropy).map_err(|e| e.to_string())
    }

    fn encode(share: &SignatureShare) -> Vec<u8> {
        share.to_bytes()
    }

    fn corrupt(share: &mut SignatureShare) {
        share.s += Scalar::ONE;
    }
}

/// BIP-340 Schnorr over secp256k1 by FROST under the PKP's taproot output key
/// (`SchnorrK256Taproot`). Its material is one holder's nonces with the set's commitments, and the
/// holder's share of the root key they sign with.
pub struct SchnorrTaproot;

impl Scheme for SchnorrTaproot {
    type Material = (Material, KeyShare<Secp256k1>);
    /// The key is derived from the root inside the share; nothing else is needed.
    type PublicKey = ();
    type Share = SchnorrShare;
    const NAME: &'static str = "SchnorrK256Taproot";

    fn holders(material: &Self::Material) -> Vec<u32> {
        material.0.signers().iter().map(|p| p.0).collect()
    }

    fn sign(
        (material, share): Self::Material,
        _public_key: &(),
        key_id: &KeyId,
        hash: &[u8; 32],
        _entropy: &[u8; 32],
    ) -> Result<SchnorrShare, String> {
        material.sign(&share, key_id, hash).map_err(|e| e.to_string())
    }

    fn encode(share: &SchnorrShare) -> Vec<u8> {
        share.to_bytes().to_vec()
    }

    fn corrupt(share: &mut SchnorrShare) {
        let mut bytes = share.to_bytes();
        bytes[31] ^= 1;
        if let Ok(wrong) = SchnorrShare::from_bytes(&bytes, share.from) {
            *share = wrong;
        }
    }
}
