//! Threshold ECDSA on secp256k1: triples and presignatures (cait-sith), then a non-interactive online
//! phase — each signer turns its presignature into a signature share for one message and one PKP,
//! and anyone combines the shares into a verified, low-s signature with its recovery id.
//!
//! # Re-randomised presignatures with additive derivation (DESIGN §6.3)
//!
//! A presignature for the root key `x` (with `X = x·G`) is, shared among the signers, a nonce point
//! `R = k⁻¹·G` with shares of `k` and of `σ = k·x`. To sign the 32-byte hash `m` with the PKP key
//! `x + ε` (`ε = h(keyId)`, see [`crate::derive`]) every signer computes, from public values only,
//!
//! ```text
//! δ  = H(P, m, R, S, ε, ρ)            P = X + ε·G, S = the signer set, ρ = request entropy
//! R' = δ·R                           r' = x(R') mod n
//! k' = δ⁻¹·k                         σ' = δ⁻¹·(σ + ε·k)   (= k'·(x + ε))
//! s_i = m·k'_i + r'·σ'_i
//! ```
//!
//! The shares of `k` and `σ` are Shamir shares of degree `t − 1` over `S`, and so is `s_i`: any `t`
//! signers `T ⊆ S` interpolate `s = Σ_{i∈T} λ_i^T·s_i = k'·(m + r'·(x + ε))`, a valid ECDSA
//! signature `(r', s)` under `P` with nonce `k'⁻¹ = δ·k⁻¹` (its point is exactly `R'`). A
//! presignature made by more than `t` nodes therefore still signs when some of them are down, and
//! spare shares let [`combine_naming`] find and name a signer whose share is wrong. Releasing more
//! than `t` points of the same degree-`t − 1` polynomial reveals nothing beyond `s` itself.
//!
//! Why: with additive derivation, a plain presignature lets an attacker who sees `R` before choosing
//! the message and the tweak turn one signature into a forgery for a related key (Groth & Shoup,
//! EUROCRYPT 2022, eprint 2021/1330). They prove that re-randomising the presignature by a hash of
//! the public key, the message and `R` restores security. `δ` is that hash, extended with the signer
//! set, the tweak and a fresh value `ρ` that the allocator fixes per request, so `R'` is unknowable
//! until message, key and presignature are all bound — and two requests never share a nonce even if
//! the same message is signed twice. δ uses only public inputs, so signers need no extra round.
//! The rescaling is multiplicative (`R' = δ·R`) because signers hold shares of `k = r⁻¹`, the
//! inverse nonce: scaling `k` by `δ⁻¹` is local and linear, while shifting the nonce additively
//! (`r + δ`) would need shares of `(r + δ)⁻¹`, i.e. another interactive round.
//!
//! # A presignature is used once
//!
//! [`sign_share`] takes the [`Presignature`] by value, so using one twice does not compile:
//!
//! ```compile_fail,E0382
//! # use sigil_tss::{derive::KeyId, ecdsa, k256::ProjectivePoint};
//! fn sign_twice(presignature: ecdsa::Presignature, root: &ProjectivePoint) {
//!     let _ = ecdsa::sign_share(presignature, root, &KeyId([0; 32]), &[1; 32], &[0; 32]);
//!     let _ = ecdsa::sign_share(presignature, root, &KeyId([0; 32]), &[2; 32], &[0; 32]);
//! }
//! ```
//!
//! while one use does:
//!
//! ```
//! # use sigil_tss::{derive::KeyId, ecdsa, k256::ProjectivePoint};
//! fn sign_once(presignature: ecdsa::Presignature, root: &ProjectivePoint) {
//!     let _ = ecdsa::sign_share(presignature, root, &KeyId([0; 32]), &[1; 32], &[0; 32]);
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use cait_sith::triples::{generate_triple, TripleGenerationOutput, TriplePub, TripleShare};
use cait_sith::{presign, KeygenOutput, PresignArguments, PresignOutput};
use ff::PrimeField;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use k256::elliptic_curve::group::Group;
use k256::elliptic_curve::ops::{Invert, LinearCombination, Reduce};
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::scalar::IsHigh;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar, U256};
use zeroize::{Zeroize, Zeroizing};

use crate::cs::{participants, CaitSithRun};
use crate::curve::lagrange;
use crate::derive::{derivation_tweak, derive_public_key, eth_address, KeyId};
use crate::party::sorted_unique;
use crate::wire::{put_parties, ProtocolKind, Reader};
use crate::{Curve, KeyShare, PartyId, Secp256k1, SessionId, TssError};

type K = k256::Secp256k1;
const RERANDOMIZE_DST: &[u8] = b"SIGIL-ECDSA-RERANDOMIZE-V1";
const TRIPLE_FORMAT: u8 = 1;
const PRESIGNATURE_FORMAT: u8 = 1;

/// A Beaver triple share, input to one presignature. Wiped on drop.
pub struct Triple {
    share: TripleShare<K>,
    public: TriplePub<K>,
}

impl Triple {
    /// The parties that generated the triple (any t of them can use it).
    pub fn participants(&self) -> Vec<PartyId> {
        self.public
            .participants
            .iter()
            .map(|p| PartyId(u32::from(*p)))
            .collect()
    }

    /// `format:u8 | threshold:u8 | participants | a | b | c | A | B | C` — secret material.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let threshold = self.public.threshold.min(usize::from(u8::MAX)) as u8;
        let mut out = Zeroizing::new(vec![TRIPLE_FORMAT, threshold]);
        put_parties(&mut out, &self.participants());
        for s in [&self.share.a, &self.share.b, &self.share.c] {
            out.extend_from_slice(&s.to_repr());
        }
        for p in [&self.public.big_a, &self.public.big_b, &self.public.big_c] {
            out.extend_from_slice(&compressed(p));
        }
        out
    }

    /// Decodes a stored triple.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TssError> {
        let mut r = Reader::stored("triple", TRIPLE_FORMAT, bytes)?;
        let threshold = usize::from(r.u8("threshold")?);
        let holders = r.parties("participants")?;
        if sorted_unique(&holders).as_deref() != Some(holders.as_slice()) || !(2..=holders.len()).contains(&threshold) {
            return Err(r.source().error("participants or threshold out of range".into()));
        }
        let share = TripleShare {
            a: r.scalar::<Secp256k1>("a")?,
            b: r.scalar::<Secp256k1>("b")?,
            c: r.scalar::<Secp256k1>("c")?,
        };
        let public = TriplePub {
            big_a: r.nonzero_point::<Secp256k1>("A")?.to_affine(),
            big_b: r.nonzero_point::<Secp256k1>("B")?.to_affine(),
            big_c: r.nonzero_point::<Secp256k1>("C")?.to_affine(),
            participants: participants(&holders),
            threshold,
        };
        r.finish()?;
        Ok(Triple { share, public })
    }
}

impl Drop for Triple {
    fn drop(&mut self) {
        self.share.a.zeroize();
        self.share.b.zeroize();
        self.share.c.zeroize();
    }
}

impl fmt::Debug for Triple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Triple")
            .field("participants", &self.participants())
            .field("share", &"<redacted>")
            .finish()
    }
}

/// One party's run of triple generation.
pub type TripleGeneration = CaitSithRun<TripleGenerationOutput<K>, Triple>;

/// Starts generating one triple among `parties`, usable later by any `threshold` of them.
pub fn triple_generation(
    session: SessionId,
    me: PartyId,
    parties: &[PartyId],
    threshold: usize,
) -> Result<TripleGeneration, TssError> {
    let parties = sorted_unique(parties).ok_or_else(|| TssError::BadParameters("a party appears twice".into()))?;
    if !parties.contains(&me) || threshold < 2 || threshold > parties.len() {
        return Err(TssError::BadParameters(format!(
            "party {me}, threshold {threshold}, {} parties",
            parties.len()
        )));
    }
    let inner = generate_triple::<K>(&participants(&parties), me.0.into(), threshold)
        .map_err(|e| TssError::BadParameters(e.to_string()))?;
    Ok(CaitSithRun::new(
        ProtocolKind::Triple,
        session,
        me,
        parties,
        Box::new(inner),
        Box::new(|(share, public)| Ok(Triple { share, public })),
    ))
}

/// A presignature share of the root key: consumed by [`sign_share`], never usable twice.
pub struct Presignature {
    me: PartyId,
    signers: Vec<PartyId>,
    big_r: AffinePoint,
    k: Scalar,
    sigma: Scalar,
}

impl Presignature {
    /// The holder.
    pub fn me(&self) -> PartyId {
        self.me
    }

    /// The parties that made this presignature; any `threshold` of them can sign with it.
    pub fn signers(&self) -> &[PartyId] {
        &self.signers
    }

    /// The (not yet re-randomised) nonce point, a public value.
    pub fn big_r(&self) -> AffinePoint {
        self.big_r
    }

    /// `format:u8 | me:u32 | signers | R | k | σ` — secret material. Storing a presignature does not
    /// make it reusable: the node must delete (or mark) the stored copy before releasing a share.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![PRESIGNATURE_FORMAT]);
        out.extend_from_slice(&self.me.0.to_be_bytes());
        put_parties(&mut out, &self.signers);
        out.extend_from_slice(&compressed(&self.big_r));
        out.extend_from_slice(&self.k.to_repr());
        out.extend_from_slice(&self.sigma.to_repr());
        out
    }

    /// Decodes a stored presignature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TssError> {
        let mut r = Reader::stored("presignature", PRESIGNATURE_FORMAT, bytes)?;
        let me = r.party("holder")?;
        let signers = r.parties("signers")?;
        if sorted_unique(&signers).as_deref() != Some(signers.as_slice()) || !signers.contains(&me) {
            return Err(r
                .source()
                .error("signer list is not sorted, unique and inclusive".into()));
        }
        let presignature = Presignature {
            me,
            signers,
            big_r: r.nonzero_point::<Secp256k1>("R")?.to_affine(),
            k: r.scalar::<Secp256k1>("k")?,
            sigma: r.scalar::<Secp256k1>("sigma")?,
        };
        r.finish()?;
        Ok(presignature)
    }
}

impl Drop for Presignature {
    fn drop(&mut self) {
        self.k.zeroize();
        self.sigma.zeroize();
    }
}

impl fmt::Debug for Presignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presignature")
            .field("me", &self.me)
            .field("signers", &self.signers)
            .field("shares", &"<redacted>")
            .finish()
    }
}

/// One party's run of presigning.
pub type Presigning = CaitSithRun<PresignOutput<K>, Presignature>;

/// Starts a presignature for the root key among `signers` (every one of them must take part and,
/// later, sign). Consumes two triples generated by a superset of `signers`.
pub fn presigning(
    session: SessionId,
    key: &KeyShare<Secp256k1>,
    signers: &[PartyId],
    triple0: Triple,
    triple1: Triple,
) -> Result<Presigning, TssError> {
    let me = key.me();
    let signers = sorted_unique(signers).ok_or_else(|| TssError::BadParameters("a signer appears twice".into()))?;
    let key_parties = key.public().parties();
    if !signers.contains(&me) || signers.iter().any(|s| !key_parties.contains(s)) {
        return Err(TssError::BadParameters(
            "signers must include this party and hold shares of the key".into(),
        ));
    }
    if signers.len() < key.threshold() {
        return Err(TssError::BadParameters(format!(
            "{} signers cannot presign for a key of threshold {}",
            signers.len(),
            key.threshold()
        )));
    }
    for triple in [&triple0, &triple1] {
        let holders = triple.participants();
        if triple.public.threshold != key.threshold() || signers.iter().any(|s| !holders.contains(s)) {
            return Err(TssError::BadParameters(
                "a triple was not generated for these signers and this threshold".into(),
            ));
        }
    }
    let args = PresignArguments {
        triple0: (triple0.share.clone(), triple0.public.clone()),
        triple1: (triple1.share.clone(), triple1.public.clone()),
        keygen_out: KeygenOutput {
            private_share: *key.secret(),
            public_key: key.public_key().to_affine(),
        },
        threshold: key.threshold(),
    };
    drop((triple0, triple1));
    let inner =
        presign::<K>(&participants(&signers), me.0.into(), args).map_err(|e| TssError::BadParameters(e.to_string()))?;
    let finish_signers = signers.clone();
    Ok(CaitSithRun::new(
        ProtocolKind::Presign,
        session,
        me,
        signers,
        Box::new(inner),
        Box::new(move |out: PresignOutput<K>| {
            Ok(Presignature {
                me,
                signers: finish_signers,
                big_r: out.big_r,
                k: out.k,
                sigma: out.sigma,
            })
        }),
    ))
}

/// What one signer releases for one request: its point on the `s` polynomial and the re-randomised
/// nonce point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureShare {
    /// The signer.
    pub party: PartyId,
    /// Every holder of the presignature (any threshold of them can combine).
    pub signers: Vec<PartyId>,
    /// `R' = δ·R`.
    pub big_r: AffinePoint,
    /// `s_i`.
    pub s: Scalar,
}

impl SignatureShare {
    /// `party:u32 | n:u8 | signers:u32* | R':33 | s:32`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 1 + 4 * self.signers.len() + 65);
        out.extend_from_slice(&self.party.0.to_be_bytes());
        put_parties(&mut out, &self.signers);
        out.extend_from_slice(&compressed(&self.big_r));
        out.extend_from_slice(&self.s.to_repr());
        out
    }

    /// Decodes a share received from node `from`; errors name `from`.
    pub fn from_bytes(from: PartyId, bytes: &[u8]) -> Result<Self, TssError> {
        let mut r = Reader::new(from, bytes);
        let party = r.party("party")?;
        let signers = r.parties("signers")?;
        let big_r = r.nonzero_point::<Secp256k1>("nonce point")?.to_affine();
        let s = r.scalar::<Secp256k1>("signature share")?;
        r.finish()?;
        if party != from {
            return Err(TssError::malformed(
                from,
                format!("share claims to come from party {party}"),
            ));
        }
        Ok(Self {
            party,
            signers,
            big_r,
            s,
        })
    }
}

/// Turns a presignature into this party's signature share for `msg_hash` under the PKP `key_id`.
///
/// `entropy` is the per-request random value fixed by the presignature allocator; every signer must
/// use the same one. The presignature is consumed, whatever the outcome.
pub fn sign_share(
    presignature: Presignature,
    root_public_key: &ProjectivePoint,
    key_id: &KeyId,
    msg_hash: &[u8; 32],
    entropy: &[u8; 32],
) -> Result<SignatureShare, TssError> {
    let public_key = derive_public_key(root_public_key, key_id);
    sign_share_derived(presignature, &public_key, key_id, msg_hash, entropy)
}

/// [`sign_share`] for a caller that already holds the PKP key `pkp_public_key`, which must be
/// `derive_public_key(root, key_id)` (a node keeps them): saves one scalar multiplication. With
/// another key the share is wrong, and combining names this party.
pub fn sign_share_derived(
    presignature: Presignature,
    pkp_public_key: &ProjectivePoint,
    key_id: &KeyId,
    msg_hash: &[u8; 32],
    entropy: &[u8; 32],
) -> Result<SignatureShare, TssError> {
    let tweak = derivation_tweak(key_id);
    let public_key = *pkp_public_key;
    let delta = rerandomizer(
        &public_key,
        msg_hash,
        &presignature.big_r,
        &presignature.signers,
        &tweak,
        entropy,
    );
    let delta_inv: Scalar = Option::from(delta.invert()).ok_or_else(|| TssError::Protocol {
        suspect: None,
        reason: "re-randomiser is zero".into(),
    })?;
    let big_r = (ProjectivePoint::from(presignature.big_r) * delta).to_affine();
    let r = x_scalar(&big_r);
    if bool::from(r.is_zero()) {
        return Err(TssError::Protocol {
            suspect: None,
            reason: "nonce point has a zero x-coordinate".into(),
        });
    }
    let mut k = delta_inv * presignature.k;
    let mut sigma = delta_inv * (presignature.sigma + tweak * presignature.k);
    let s = message_scalar(msg_hash) * k + r * sigma;
    k.zeroize();
    sigma.zeroize();
    Ok(SignatureShare {
        party: presignature.me,
        signers: presignature.signers.clone(),
        big_r,
        s,
    })
}

/// The `δ` of the module docs.
fn rerandomizer(
    public_key: &ProjectivePoint,
    msg_hash: &[u8; 32],
    big_r: &AffinePoint,
    signers: &[PartyId],
    tweak: &Scalar,
    entropy: &[u8; 32],
) -> Scalar {
    let mut input = Vec::with_capacity(33 + 32 + 33 + 1 + 4 * signers.len() + 64);
    input.extend_from_slice(&compressed(&public_key.to_affine()));
    input.extend_from_slice(msg_hash);
    input.extend_from_slice(&compressed(big_r));
    put_parties(&mut input, signers);
    input.extend_from_slice(&tweak.to_repr());
    input.extend_from_slice(entropy);
    Secp256k1::hash_to_scalar(RERANDOMIZE_DST, &input)
}

/// 33-byte SEC1 compressed encoding; the identity (never a valid nonce or key) is 33 zero bytes.
fn compressed(point: &AffinePoint) -> [u8; 33] {
    <[u8; 33]>::try_from(point.to_encoded_point(true).as_bytes()).unwrap_or([0u8; 33])
}

fn message_scalar(msg_hash: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*msg_hash))
}

/// Verifies the ECDSA signature `(r, s)` of `msg_hash` under `public_key` and returns its recovery
/// id, read off the one point verification computes, `R = s⁻¹·(m·G + r·Q)`: bit 0 is the parity of
/// `R.y`, bit 1 says `R.x ≥ n`. One multi-scalar multiplication, where trying recovery ids costs
/// up to four recoveries.
fn verify_recovering(public_key: &ProjectivePoint, msg_hash: &[u8; 32], r: &Scalar, s: &Scalar) -> Option<u8> {
    if bool::from(r.is_zero()) || bool::from(s.is_high()) {
        return None;
    }
    let s_inv: Scalar = Option::from(Invert::invert_vartime(s))?;
    let u1 = message_scalar(msg_hash) * s_inv;
    let u2 = *r * s_inv;
    let point = ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &u1, public_key, &u2);
    if bool::from(point.is_identity()) {
        return None;
    }
    let point = point.to_affine();
    let x = point.x();
    let reduced = <Scalar as Reduce<U256>>::reduce_bytes(&x);
    if reduced != *r {
        return None;
    }
    let overflow = reduced.to_repr() != x;
    Some(point.y_is_odd().unwrap_u8() | (u8::from(overflow) << 1))
}

fn x_scalar(point: &AffinePoint) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(&point.x())
}

/// A complete secp256k1 signature: low-s, with the recovery id Ethereum needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// Big-endian `r`.
    pub r: [u8; 32],
    /// Big-endian `s`, at most n/2.
    pub s: [u8; 32],
    /// 0 or 1 (2 and 3 cannot occur for a valid secp256k1 nonce in practice, but are kept if they do).
    pub recovery_id: u8,
}

impl EcdsaSignature {
    fn to_k256(self) -> Result<Signature, TssError> {
        Signature::from_scalars(self.r, self.s).map_err(|_| TssError::SignatureInvalid)
    }

    /// Verifies against a public key with k256.
    pub fn verify(&self, public_key: &ProjectivePoint, msg_hash: &[u8; 32]) -> bool {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        let (Ok(sig), Ok(vk)) = (self.to_k256(), VerifyingKey::from_affine(public_key.to_affine())) else {
            return false;
        };
        vk.verify_prehash(msg_hash, &sig).is_ok()
    }

    /// Recovers the signer's public key, as `ecrecover` does.
    pub fn recover(&self, msg_hash: &[u8; 32]) -> Result<ProjectivePoint, TssError> {
        let recid = RecoveryId::from_byte(self.recovery_id).ok_or(TssError::SignatureInvalid)?;
        let vk = VerifyingKey::recover_from_prehash(msg_hash, &self.to_k256()?, recid)
            .map_err(|_| TssError::SignatureInvalid)?;
        Ok(ProjectivePoint::from(*vk.as_affine()))
    }

    /// Recovers the signer's Ethereum address.
    pub fn recover_address(&self, msg_hash: &[u8; 32]) -> Result<[u8; 20], TssError> {
        self.recover(msg_hash).map(|pk| eth_address(&pk))
    }

    /// `r | s | v` with `v = 27 + recovery id`, the form `ecrecover` and wallets use.
    pub fn to_rsv(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = 27 + self.recovery_id;
        out
    }
}

/// How many signer subsets [`combine_naming`] tries before giving up.
pub const MAX_COMBINATIONS: usize = 512;

/// Combines signature shares of one presignature into a signature that verifies against the PKP
/// public key; see [`combine_naming`].
pub fn combine(
    public_key: &ProjectivePoint,
    msg_hash: &[u8; 32],
    threshold: usize,
    shares: &[SignatureShare],
) -> Result<EcdsaSignature, TssError> {
    combine_naming(public_key, msg_hash, threshold, shares).map(|(signature, _)| signature)
}

/// Combines signature shares of one presignature into a low-s signature with recovery id, returned
/// only if k256 verifies it against `public_key`, together with the signers whose share is wrong.
///
/// Any `threshold` correct shares suffice. Shares that disagree with the majority on the holder set
/// or the nonce point are named at once. A wrong `s_i` cannot be seen on its own (cait-sith commits to
/// no per-share value), so with spare shares the function searches `threshold`-subsets (at most
/// [`MAX_COMBINATIONS`]) for one that verifies, then names every other share that does not fit it.
/// With no spare share, a wrong share gives [`TssError::SignatureInvalid`] and no signature.
pub fn combine_naming(
    public_key: &ProjectivePoint,
    msg_hash: &[u8; 32],
    threshold: usize,
    shares: &[SignatureShare],
) -> Result<(EcdsaSignature, Vec<PartyId>), TssError> {
    let by_party = consistent_shares(shares)?;
    let big_r = match by_party.values().next() {
        Some(share) => share.big_r,
        None => {
            return Err(TssError::NotEnoughShares {
                have: 0,
                need: threshold,
            })
        }
    };
    if threshold < 2 || by_party.len() < threshold {
        return Err(TssError::NotEnoughShares {
            have: by_party.len(),
            need: threshold.max(2),
        });
    }
    if bool::from(public_key.is_identity()) {
        return Err(TssError::BadParameters("public key is the identity".into()));
    }
    let r = x_scalar(&big_r);
    let parties: Vec<PartyId> = by_party.keys().copied().collect();
    let attempt = |subset: &[PartyId]| -> Option<EcdsaSignature> {
        let mut s = Scalar::ZERO;
        for party in subset {
            let lambda = lagrange::<Secp256k1>(*party, subset).ok()?;
            s += lambda * by_party.get(party)?.s;
        }
        if bool::from(s.is_high()) {
            s = -s;
        }
        let recovery_id = verify_recovering(public_key, msg_hash, &r, &s)?;
        Some(EcdsaSignature {
            r: r.to_repr().into(),
            s: s.to_repr().into(),
            recovery_id,
        })
    };
    let mut subset: Vec<usize> = (0..threshold).collect();
    for _ in 0..MAX_COMBINATIONS {
        let chosen: Vec<PartyId> = subset.iter().filter_map(|i| parties.get(*i).copied()).collect();
        if let Some(signature) = attempt(&chosen) {
            // Each remaining share is checked by swapping it in for one member of the good subset.
            let bad = parties
                .iter()
                .filter(|p| !chosen.contains(p))
                .filter(|p| {
                    let mut swapped = chosen.clone();
                    if let Some(last) = swapped.last_mut() {
                        *last = **p;
                    }
                    swapped.sort();
                    attempt(&swapped).is_none()
                })
                .copied()
                .collect();
            return Ok((signature, bad));
        }
        if !next_combination(&mut subset, parties.len()) {
            break;
        }
    }
    Err(TssError::SignatureInvalid)
}

/// Advances `indices` (sorted, distinct, below `n`) to the next combination; false after the last.
fn next_combination(indices: &mut [usize], n: usize) -> bool {
    let k = indices.len();
    let mut i = k;
    while i > 0 {
        i -= 1;
        let Some(&current) = indices.get(i) else { return false };
        if current < n - k + i {
            for (offset, slot) in indices.iter_mut().skip(i).enumerate() {
                *slot = current + 1 + offset;
            }
            return true;
        }
    }
    false
}

/// Checks that the shares agree on the holder set and nonce point (naming those that differ from the
/// majority) and that each comes from a holder once; returns them by party.
fn consistent_shares(shares: &[SignatureShare]) -> Result<BTreeMap<PartyId, &SignatureShare>, TssError> {
    let mut votes: BTreeMap<(Vec<PartyId>, [u8; 33]), usize> = BTreeMap::new();
    let key_of = |s: &SignatureShare| (s.signers.clone(), compressed(&s.big_r));
    for share in shares {
        *votes.entry(key_of(share)).or_default() += 1;
    }
    let top = votes
        .values()
        .copied()
        .max()
        .ok_or(TssError::NotEnoughShares { have: 0, need: 2 })?;
    let mut leaders = votes.iter().filter(|(_, count)| **count == top).map(|(key, _)| key);
    let reference = leaders.next().ok_or(TssError::NotEnoughShares { have: 0, need: 2 })?;
    if leaders.next().is_some() {
        return Err(TssError::Protocol {
            suspect: None,
            reason: "signers disagree on the presignature or the message, with no majority".into(),
        });
    }
    if let Some(odd) = shares.iter().find(|s| key_of(s) != *reference) {
        return Err(TssError::InvalidShare {
            culprit: odd.party,
            what: "signature share (the majority of signers computed another nonce: it signed another message, key or presignature)".into(),
        });
    }
    let (signers, _) = reference;
    let mut by_party: BTreeMap<PartyId, &SignatureShare> = BTreeMap::new();
    for share in shares {
        if !signers.contains(&share.party) {
            return Err(TssError::InvalidShare {
                culprit: share.party,
                what: "signature share (not a signer of this presignature)".into(),
            });
        }
        if by_party.insert(share.party, share).is_some_and(|prev| prev != share) {
            return Err(TssError::Equivocation {
                from: share.party,
                what: "signature share",
            });
        }
    }
    Ok(by_party)
}

#[cfg(test)]
mod tests {
    use k256::ecdsa::SigningKey;

    use super::*;

    /// The recovery id read off the verification point is the one k256 signs with, for both
    /// parities; a signature under another key, another message or with high s is refused.
    #[test]
    fn verification_yields_the_signers_recovery_id() {
        let mut seen = [false; 2];
        for i in 0u8..64 {
            let key = SigningKey::from_bytes(&FieldBytes::from([i.wrapping_add(1); 32])).unwrap();
            let public = ProjectivePoint::from(*key.verifying_key().as_affine());
            let hash = [i.wrapping_mul(37); 32];
            let (sig, recid) = key.sign_prehash_recoverable(&hash).unwrap();
            let (r, s) = (*sig.r(), *sig.s());
            assert_eq!(verify_recovering(&public, &hash, &r, &s), Some(recid.to_byte()));
            seen[usize::from(recid.to_byte() & 1)] = true;
            assert_eq!(verify_recovering(&public, &[i ^ 0xff; 32], &r, &s), None);
            assert_eq!(
                verify_recovering(&(public + ProjectivePoint::GENERATOR), &hash, &r, &s),
                None
            );
            assert_eq!(verify_recovering(&public, &hash, &r, &-s), None, "high s");
        }
        assert_eq!(seen, [true, true], "both parities were exercised");
    }
}
