//! The seam between a signature scheme and the signing service: a scheme's one-time material
//! (made ahead of requests by a signing set of exactly `t` nodes, each holding a share, used at
//! most once) and how one holder turns its share of it into a signature share.
//!
//! [`Ecdsa`] — cait-sith presignatures for secp256k1 PKPs — is the first implementation; a FROST
//! scheme (nonce commitments, which leak the key share if used twice just like presignatures)
//! implements the same trait. The take-once storage and the allocation checks in
//! [`super::share`] are the same for every scheme. Uses nothing else of the crate.

use sigil_tss::derive::KeyId;
use sigil_tss::ecdsa::{sign_share_derived, Presignature, SignatureShare};
use sigil_tss::k256::{ProjectivePoint, Scalar};

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
