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
//! The shares of `k` and `σ` are Shamir shares of degree `t − 1` over `S`, and so is `s_i`: the `t`
//! signers of `S` interpolate `s = Σ_{i∈S} λ_i·s_i = k'·(m + r'·(x + ε))`, a valid ECDSA signature
//! `(r', s)` under `P` with nonce `k'⁻¹ = δ·k⁻¹` (its point is exactly `R'`).
//!
//! # Exactly `t` holders (DESIGN §4)
//!
//! A share is linear in its holder's secrets. If a presignature had `t + 1` holders, an allocator
//! could bind it to message `m₁` at one honest holder and to `m₂` at another, and with `t − 2`
//! colluders solve `2t` linear equations for the `2t` coefficients of the `k` and `σ` polynomials,
//! hence `k`, `σ = k·x` and the root secret `x`. With exactly `t` holders each honest holder gives at
//! most one equation (it releases once) and the coalition stays one short. So [`presigning`] runs
//! among exactly `t` signers and [`combine`] takes exactly their `t` shares; `tests/it/attack.rs`
//! carries out the attack on `t + 1` holders and shows the system is underdetermined with `t`.
//!
//! # Naming a bad share without spare shares
//!
//! With exactly `t` shares there is nothing to out-vote, so presigning publishes per-holder
//! commitments `K_j = k_j·G`, `Σ_j = σ_j·G` ([`PresignCommitments`], see the `presign` module for
//! why that is sound and leaks nothing). Each share carries them with `δ` and `ε`, and when the
//! combination does not verify, `s_j·δ·G = (m + r'·ε)·K_j + r'·Σ_j` names every share that is wrong.
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
/// Format 2 adds the holders' commitments; format 1 presignatures (made among more than `t`
/// nodes) are refused, never used.
const PRESIGNATURE_FORMAT: u8 = 2;

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
    commitments: PresignCommitments,
}

impl Presignature {
    /// The holder.
    pub fn me(&self) -> PartyId {
        self.me
    }

    /// The parties that made this presignature, its signing set: exactly the key's threshold of
    /// them, and only they together can sign with it.
    pub fn signers(&self) -> &[PartyId] {
        &self.signers
    }

    /// The public commitments to every holder's shares.
    pub fn commitments(&self) -> &PresignCommitments {
        &self.commitments
    }

    pub(crate) fn from_parts(
        me: PartyId,
        signers: Vec<PartyId>,
        k: Scalar,
        sigma: Scalar,
        commitments: PresignCommitments,
    ) -> Self {
        Self {
            me,
            signers,
            big_r: commitments.big_r,
            k,
            sigma,
            commitments,
        }
    }

    /// The (not yet re-randomised) nonce point, a public value.
    pub fn big_r(&self) -> AffinePoint {
        self.big_r
    }

    /// `format:u8 | me:u32 | signers | k | σ | commitments` — secret material. Storing a
    /// presignature does not make it reusable: the node must delete (or mark) the stored copy
    /// before releasing a share.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![PRESIGNATURE_FORMAT]);
        out.extend_from_slice(&self.me.0.to_be_bytes());
        put_parties(&mut out, &self.signers);
        out.extend_from_slice(&self.k.to_repr());
        out.extend_from_slice(&self.sigma.to_repr());
        out.extend_from_slice(&self.commitments.to_bytes());
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
        let k = r.scalar::<Secp256k1>("k")?;
        let sigma = r.scalar::<Secp256k1>("sigma")?;
        let commitments = PresignCommitments::read(&mut r)?;
        r.finish()?;
        if commitments.parties() != signers {
            return Err(TssError::Corrupt("presignature: commitments for other holders".into()));
        }
        Ok(Presignature::from_parts(me, signers, k, sigma, commitments))
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

pub use crate::presign::Presigning;

/// Starts a presignature for the root key among `signers`, which must be exactly `key.threshold()`
/// parties holding shares of the key (its signing set: every one of them takes part and, later,
/// signs). Consumes two triples generated by (a superset of) `signers` for this threshold.
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
    if signers.len() != key.threshold() {
        return Err(TssError::BadParameters(format!(
            "{} signers for a key of threshold {}: a presignature is made by exactly t parties (DESIGN §4)",
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
    let public_shares = signers
        .iter()
        .filter_map(|p| Some((*p, *key.public().public_share(*p)?)))
        .collect();
    crate::presign::Presigning::start(crate::presign::Inputs {
        session,
        me,
        signers,
        public_shares,
        secret: key.secret(),
        triple0: (&triple0.share, &triple0.public),
        triple1: (&triple1.share, &triple1.public),
    })
}

/// The public side of one presignature: its nonce point `R` and, for each of its `t` holders,
/// `K_j = k_j·G` and `Σ_j = σ_j·G`. Every holder stores the same copy; signature shares carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignCommitments {
    big_r: AffinePoint,
    holders: Vec<(PartyId, AffinePoint, AffinePoint)>,
}

impl PresignCommitments {
    /// Commitments for holders `(party, K, Σ)`, which must be sorted by party and unique.
    pub fn new(big_r: AffinePoint, holders: Vec<(PartyId, AffinePoint, AffinePoint)>) -> Result<Self, TssError> {
        let parties: Vec<PartyId> = holders.iter().map(|(p, _, _)| *p).collect();
        if sorted_unique(&parties).as_deref() != Some(parties.as_slice()) || parties.len() > crate::MAX_PARTIES {
            return Err(TssError::BadParameters(
                "commitment holders must be sorted and unique".into(),
            ));
        }
        Ok(Self { big_r, holders })
    }

    /// The presignature's (not re-randomised) nonce point.
    pub fn big_r(&self) -> AffinePoint {
        self.big_r
    }

    /// The holders, sorted.
    pub fn parties(&self) -> Vec<PartyId> {
        self.holders.iter().map(|(p, _, _)| *p).collect()
    }

    fn of(&self, party: PartyId) -> Option<(ProjectivePoint, ProjectivePoint)> {
        self.holders
            .iter()
            .find(|(p, _, _)| *p == party)
            .map(|(_, k, sigma)| (ProjectivePoint::from(*k), ProjectivePoint::from(*sigma)))
    }

    /// `R:33 | count:u8 | (party:u32 | K:33 | Σ:33)*`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(34 + 70 * self.holders.len());
        out.extend_from_slice(&compressed(&self.big_r));
        out.push(self.holders.len().min(usize::from(u8::MAX)) as u8);
        for (party, k, sigma) in &self.holders {
            out.extend_from_slice(&party.0.to_be_bytes());
            out.extend_from_slice(&compressed(k));
            out.extend_from_slice(&compressed(sigma));
        }
        out
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, TssError> {
        let big_r = r.nonzero_point::<Secp256k1>("R")?.to_affine();
        let count = r.u8("holder count")?;
        let mut holders = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let party = r.party("holder")?;
            let k = r.nonzero_point::<Secp256k1>("K commitment")?.to_affine();
            let sigma = r.nonzero_point::<Secp256k1>("Σ commitment")?.to_affine();
            holders.push((party, k, sigma));
        }
        Self::new(big_r, holders).map_err(|e| r.source().error(e.to_string()))
    }
}

/// What one signer releases for one request: its point on the `s` polynomial and the re-randomised
/// nonce point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureShare {
    /// The signer.
    pub party: PartyId,
    /// Every holder of the presignature: its signing set of exactly `t` parties.
    pub signers: Vec<PartyId>,
    /// `R' = δ·R`.
    pub big_r: AffinePoint,
    /// `s_i`.
    pub s: Scalar,
    /// The re-randomiser `δ` (public).
    pub delta: Scalar,
    /// The key derivation tweak `ε` (public).
    pub tweak: Scalar,
    /// The presignature's commitments, as this signer holds them.
    pub commitments: PresignCommitments,
}

impl SignatureShare {
    /// `party:u32 | n:u8 | signers:u32* | R':33 | s:32 | δ:32 | ε:32 | commitments`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let commitments = self.commitments.to_bytes();
        let mut out = Vec::with_capacity(4 + 1 + 4 * self.signers.len() + 129 + commitments.len());
        out.extend_from_slice(&self.party.0.to_be_bytes());
        put_parties(&mut out, &self.signers);
        out.extend_from_slice(&compressed(&self.big_r));
        out.extend_from_slice(&self.s.to_repr());
        out.extend_from_slice(&self.delta.to_repr());
        out.extend_from_slice(&self.tweak.to_repr());
        out.extend_from_slice(&commitments);
        out
    }

    /// Decodes a share received from node `from`; errors name `from`.
    pub fn from_bytes(from: PartyId, bytes: &[u8]) -> Result<Self, TssError> {
        let mut r = Reader::new(from, bytes);
        let party = r.party("party")?;
        let signers = r.parties("signers")?;
        let big_r = r.nonzero_point::<Secp256k1>("nonce point")?.to_affine();
        let s = r.scalar::<Secp256k1>("signature share")?;
        let delta = r.scalar::<Secp256k1>("re-randomiser")?;
        let tweak = r.scalar::<Secp256k1>("derivation tweak")?;
        let commitments = PresignCommitments::read(&mut r)?;
        r.finish()?;
        if party != from {
            return Err(TssError::malformed(
                from,
                format!("share claims to come from party {party}"),
            ));
        }
        if commitments.parties() != signers {
            return Err(TssError::malformed(from, "commitments for another holder set"));
        }
        Ok(Self {
            party,
            signers,
            big_r,
            s,
            delta,
            tweak,
            commitments,
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
        delta,
        tweak,
        commitments: presignature.commitments.clone(),
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
pub(crate) fn compressed(point: &AffinePoint) -> [u8; 33] {
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

/// Combines the `t` signature shares of one presignature into a low-s signature with recovery id,
/// returned only if it verifies against `public_key`.
///
/// Shares are grouped by what they claim in public (holder set, nonce point, re-randomiser, tweak,
/// commitments); a group whose holder set has exactly `threshold` members and a share from each
/// of them is combined, so extra shares — from non-signers, or for another presignature — cannot
/// block a signature. If the one complete group does not verify, every share in it is checked
/// against its holder's commitments and the error names each one that fails
/// ([`TssError::InvalidShares`]); an honest share never fails (see the module docs). When no group
/// is complete, a share that claims the largest group's set but differs from it is named.
pub fn combine(
    public_key: &ProjectivePoint,
    msg_hash: &[u8; 32],
    threshold: usize,
    shares: &[SignatureShare],
) -> Result<EcdsaSignature, TssError> {
    if bool::from(public_key.is_identity()) {
        return Err(TssError::BadParameters("public key is the identity".into()));
    }
    if threshold < 2 {
        return Err(TssError::BadParameters(format!("threshold {threshold}")));
    }
    let groups = group_shares(shares)?;
    let mut failed = None;
    for group in groups.iter().filter(|g| g.is_complete(threshold)) {
        match combine_group(public_key, msg_hash, group) {
            Ok(signature) => return Ok(signature),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    // Nothing combines: say why, naming a share that breaks the largest group if there is one.
    let top = groups.iter().map(|g| g.by_party.len()).max().unwrap_or(0);
    let mut largest = groups.iter().filter(|g| g.by_party.len() == top);
    let (Some(reference), None) = (largest.next(), largest.next()) else {
        if top == 0 {
            return Err(TssError::NotEnoughShares {
                have: 0,
                need: threshold,
            });
        }
        return Err(TssError::Protocol {
            suspect: None,
            reason: "signers disagree on the presignature or the message, with no majority".into(),
        });
    };
    if reference.signers.len() != threshold {
        return Err(TssError::BadParameters(format!(
            "the presignature has {} holders; exactly the threshold {threshold} may hold one (DESIGN §4)",
            reference.signers.len()
        )));
    }
    let odd = shares
        .iter()
        .find(|s| reference.signers.contains(&s.party) && !reference.by_party.contains_key(&s.party));
    if let Some(odd) = odd {
        return Err(TssError::InvalidShare {
            culprit: odd.party,
            what: "signature share (the majority of signers computed another nonce: it signed another message, key or presignature)".into(),
        });
    }
    Err(TssError::NotEnoughShares {
        have: reference.by_party.len(),
        need: threshold,
    })
}

/// Shares that agree on everything public, one per holder.
struct ShareGroup<'a> {
    signers: Vec<PartyId>,
    reference: &'a SignatureShare,
    by_party: BTreeMap<PartyId, &'a SignatureShare>,
}

impl ShareGroup<'_> {
    fn is_complete(&self, threshold: usize) -> bool {
        self.signers.len() == threshold && self.signers.iter().all(|p| self.by_party.contains_key(p))
    }
}

type GroupKey = (Vec<PartyId>, [u8; 33], Vec<u8>, Vec<u8>, Vec<u8>);

fn group_key(s: &SignatureShare) -> GroupKey {
    (
        s.signers.clone(),
        compressed(&s.big_r),
        s.delta.to_repr().to_vec(),
        s.tweak.to_repr().to_vec(),
        s.commitments.to_bytes(),
    )
}

/// Groups shares by their public claims; shares from outside their own holder set are dropped,
/// and a holder that sent two different shares in one group is an equivocation.
fn group_shares(shares: &[SignatureShare]) -> Result<Vec<ShareGroup<'_>>, TssError> {
    let mut groups: BTreeMap<GroupKey, ShareGroup<'_>> = BTreeMap::new();
    for share in shares.iter().filter(|s| s.signers.contains(&s.party)) {
        let group = groups.entry(group_key(share)).or_insert_with(|| ShareGroup {
            signers: share.signers.clone(),
            reference: share,
            by_party: BTreeMap::new(),
        });
        if group
            .by_party
            .insert(share.party, share)
            .is_some_and(|prev| prev != share)
        {
            return Err(TssError::Equivocation {
                from: share.party,
                what: "signature share",
            });
        }
    }
    Ok(groups.into_values().collect())
}

/// Interpolates one complete group and verifies; on failure names the shares that miss their
/// commitments.
fn combine_group(
    public_key: &ProjectivePoint,
    msg_hash: &[u8; 32],
    group: &ShareGroup<'_>,
) -> Result<EcdsaSignature, TssError> {
    let reference = group.reference;
    let r = x_scalar(&reference.big_r);
    let mut s = Scalar::ZERO;
    for (party, share) in &group.by_party {
        s += lagrange::<Secp256k1>(*party, &group.signers)? * share.s;
    }
    if bool::from(s.is_high()) {
        s = -s;
    }
    if let Some(recovery_id) = verify_recovering(public_key, msg_hash, &r, &s) {
        return Ok(EcdsaSignature {
            r: r.to_repr().into(),
            s: s.to_repr().into(),
            recovery_id,
        });
    }
    let culprits: Vec<PartyId> = group
        .by_party
        .values()
        .filter(|share| !share_matches(share, reference, msg_hash))
        .map(|share| share.party)
        .collect();
    // Fewer than t parties are corrupt, so at least one share is honest, and an honest share always
    // matches. When none does, the caller's message is not the one the signers signed.
    if culprits.is_empty() || culprits.len() == group.by_party.len() {
        return Err(TssError::SignatureInvalid);
    }
    Err(TssError::InvalidShares { culprits })
}

/// Whether `share` matches its holder's commitments in `reference`:
/// `δ·s_j·G = (m + r'·ε)·K_j + r'·Σ_j`, with `R' = δ·R`.
fn share_matches(share: &SignatureShare, reference: &SignatureShare, msg_hash: &[u8; 32]) -> bool {
    let commitments = &reference.commitments;
    let Some((big_k, big_sigma)) = commitments.of(share.party) else {
        return false;
    };
    if (ProjectivePoint::from(commitments.big_r) * reference.delta).to_affine() != reference.big_r {
        return false;
    }
    let r = x_scalar(&reference.big_r);
    let lhs = ProjectivePoint::GENERATOR * (reference.delta * share.s);
    let rhs = ProjectivePoint::lincomb(
        &big_k,
        &(message_scalar(msg_hash) + r * reference.tweak),
        &big_sigma,
        &r,
    );
    lhs == rhs
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
