//! The groups Sigil shares keys in, behind one small trait so that DKG, resharing and refresh are
//! written once: secp256k1 (ECDSA and BIP-340 PKPs), BLS12-381 G1 (the network's encryption key;
//! signatures live in G2, as in blsful's `Bls12381G2Impl`) and edwards25519's prime-order subgroup
//! (Ed25519 keys).

use ff::{Field, PrimeField};
use group::{Group, GroupEncoding};
use zeroize::Zeroize;

use crate::{wire::Reader, PartyId, TssError};

/// A prime-order group with a hash to its scalar field.
pub trait Curve: Copy + std::fmt::Debug + PartialEq + Eq + Send + Sync + 'static {
    /// Human-readable name, also used for domain separation.
    const NAME: &'static str;
    /// Length of a canonical scalar encoding.
    const SCALAR_LEN: usize;
    /// Length of a compressed point.
    const POINT_LEN: usize;
    /// Scalar field.
    type Scalar: PrimeField + Zeroize + Send + Sync;
    /// Group element.
    type Point: Group<Scalar = Self::Scalar> + GroupEncoding + Send + Sync;

    /// RFC 9380 hash to a scalar with the given domain separation tag.
    fn hash_to_scalar(dst: &[u8], msg: &[u8]) -> Self::Scalar;
}

/// secp256k1, for the ECDSA root key and PKPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secp256k1;

impl Curve for Secp256k1 {
    const NAME: &'static str = "secp256k1";
    const SCALAR_LEN: usize = 32;
    const POINT_LEN: usize = 33;
    type Scalar = k256::Scalar;
    type Point = k256::ProjectivePoint;

    fn hash_to_scalar(dst: &[u8], msg: &[u8]) -> k256::Scalar {
        use k256::elliptic_curve::hash2curve::{ExpandMsgXmd, GroupDigest};
        // Only fails for a DST longer than 255 bytes; ours are short constants (checked in tests).
        debug_assert!(dst.len() <= 255, "domain separation tag too long");
        k256::Secp256k1::hash_to_scalar::<ExpandMsgXmd<sha2::Sha256>>(&[msg], &[dst]).unwrap_or(k256::Scalar::ONE)
    }
}

/// BLS12-381 G1, the group of the network's BLS public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bls12381G1;

impl Curve for Bls12381G1 {
    const NAME: &'static str = "bls12381g1";
    const SCALAR_LEN: usize = 32;
    const POINT_LEN: usize = 48;
    type Scalar = blsful::inner_types::Scalar;
    type Point = blsful::inner_types::G1Projective;

    fn hash_to_scalar(dst: &[u8], msg: &[u8]) -> Self::Scalar {
        use blsful::inner_types::ExpandMsgXmd;
        Self::Scalar::hash::<ExpandMsgXmd<sha2::Sha256>>(msg, dst)
    }
}

/// edwards25519's prime-order subgroup (the group of Ed25519 keys). Points are compressed
/// Edwards y-coordinates; decoding refuses any point outside the prime-order subgroup, so a
/// peer cannot slip a small-order component into a commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl Curve for Ed25519 {
    const NAME: &'static str = "ed25519";
    const SCALAR_LEN: usize = 32;
    const POINT_LEN: usize = 32;
    type Scalar = curve25519_dalek::Scalar;
    type Point = curve25519_dalek::edwards::SubgroupPoint;

    /// RFC 9380 `hash_to_field` for the Ed25519 scalar field: `expand_message_xmd` with
    /// SHA-512, 48 bytes, read big-endian and reduced mod ℓ.
    fn hash_to_scalar(dst: &[u8], msg: &[u8]) -> Self::Scalar {
        use k256::elliptic_curve::hash2curve::{ExpandMsg, ExpandMsgXmd, Expander};
        debug_assert!(dst.len() <= 255, "domain separation tag too long");
        let mut uniform = [0u8; 48];
        // Fails only for a DST over 255 bytes or an output over 255·64 bytes: neither happens.
        if let Ok(mut expander) = ExpandMsgXmd::<sha2::Sha512>::expand_message(&[msg], &[dst], uniform.len()) {
            expander.fill_bytes(&mut uniform);
        }
        let mut wide = [0u8; 64];
        for (to, from) in wide.iter_mut().zip(uniform.iter().rev()) {
            *to = *from;
        }
        curve25519_dalek::Scalar::from_bytes_mod_order_wide(&wide)
    }
}

pub(crate) fn scalar_of<C: Curve>(x: u64) -> C::Scalar {
    C::Scalar::from(x)
}

pub(crate) fn put_scalar<C: Curve>(out: &mut Vec<u8>, s: &C::Scalar) {
    out.extend_from_slice(s.to_repr().as_ref());
}

pub(crate) fn put_point<C: Curve>(out: &mut Vec<u8>, p: &C::Point) {
    out.extend_from_slice(p.to_bytes().as_ref());
}

pub(crate) fn point_bytes<C: Curve>(p: &C::Point) -> Vec<u8> {
    p.to_bytes().as_ref().to_vec()
}

impl Reader<'_> {
    pub(crate) fn scalar<C: Curve>(&mut self, what: &str) -> Result<C::Scalar, TssError> {
        let mut repr = <C::Scalar as PrimeField>::Repr::default();
        repr.as_mut().copy_from_slice(self.take(C::SCALAR_LEN, what)?);
        let scalar: Option<C::Scalar> = C::Scalar::from_repr(repr).into();
        scalar.ok_or_else(|| self.source().error(format!("{what} is not a canonical scalar")))
    }

    /// A point that must not be the identity (a nonce, a public key).
    pub(crate) fn nonzero_point<C: Curve>(&mut self, what: &str) -> Result<C::Point, TssError> {
        let point = self.point::<C>(what)?;
        if bool::from(point.is_identity()) {
            return Err(self.source().error(format!("{what} is the identity")));
        }
        Ok(point)
    }

    pub(crate) fn point<C: Curve>(&mut self, what: &str) -> Result<C::Point, TssError> {
        let mut repr = <C::Point as GroupEncoding>::Repr::default();
        repr.as_mut().copy_from_slice(self.take(C::POINT_LEN, what)?);
        let point: Option<C::Point> = C::Point::from_bytes(&repr).into();
        point.ok_or_else(|| self.source().error(format!("{what} is not a valid {} point", C::NAME)))
    }
}

/// Decodes a compressed point from trusted-shape bytes (a public key in a config or a request).
pub fn decode_point<C: Curve>(bytes: &[u8]) -> Option<C::Point> {
    let mut repr = <C::Point as GroupEncoding>::Repr::default();
    if repr.as_ref().len() != bytes.len() {
        return None;
    }
    repr.as_mut().copy_from_slice(bytes);
    Option::<C::Point>::from(C::Point::from_bytes(&repr)).filter(|p| !bool::from(p.is_identity()))
}

/// Lagrange coefficient at zero for `me` within `set` (x-coordinates `id + 1`).
pub(crate) fn lagrange<C: Curve>(me: PartyId, set: &[PartyId]) -> Result<C::Scalar, TssError> {
    let xi = scalar_of::<C>(me.x());
    let mut num = C::Scalar::ONE;
    let mut den = C::Scalar::ONE;
    for other in set.iter().filter(|p| **p != me) {
        let xj = scalar_of::<C>(other.x());
        num *= xj;
        den *= xj - xi;
    }
    Option::from(den.invert())
        .map(|inv: C::Scalar| num * inv)
        .ok_or_else(|| TssError::BadParameters(format!("party {me} appears twice in the interpolation set")))
}

/// Evaluates the committed polynomial `Σ c_k x^k` in the exponent (Horner's rule).
///
/// `x` is a small public party coordinate, so each step multiplies by it with a few doublings
/// instead of a full-width scalar multiplication: this is most of the cost of DKG and reshare.
pub(crate) fn eval_commitment<C: Curve>(coeffs: &[C::Point], x: u64) -> C::Point {
    coeffs
        .iter()
        .rev()
        .fold(C::Point::identity(), |acc, c| mul_small(acc, x) + c)
}

/// `k·p` by double-and-add over the bits of a public `k` (not constant time; `k` is not secret).
fn mul_small<P: Group>(p: P, k: u64) -> P {
    (0..u64::BITS - k.leading_zeros())
        .rev()
        .fold(P::identity(), |acc, bit| {
            let doubled = acc.double();
            if (k >> bit) & 1 == 1 {
                doubled + p
            } else {
                doubled
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_multiplication_matches_scalar_multiplication() {
        let g = k256::ProjectivePoint::GENERATOR;
        for k in [0u64, 1, 2, 3, 31, 32, 1000, u64::MAX] {
            assert_eq!(mul_small(g, k), g * k256::Scalar::from(k), "k = {k}");
        }
    }
}
