//! Schnorr signatures by FROST (RFC 9591) with the secp256k1 root key: BIP-340 signatures under a
//! PKP's taproot output key (BIP-341 key path, no script tree), as Lit's `SchnorrK256Taproot`.
//! The arithmetic is the ZF `frost-secp256k1-tr` ciphersuite's; this module maps Sigil's shares
//! onto it.
//!
//! * **Keys.** A PKP's internal key is its ECDSA key, `P_k = P_root + h(keyId)·G` ([`crate::derive`]),
//!   so one NFT has one key for both schemes; its taproot output key is that key made even-y and
//!   tweaked by BIP-341's `t = H_TapTweak(P_k)` ([`output_key`]). A holder's share is
//!   `x_i + h(keyId)`, negated and tweaked the same way by the ciphersuite.
//! * **One-time material.** Each holder makes nonce pairs ahead of requests ([`commit`]): the
//!   commitment is public, the nonces secret and good for exactly one signature (two signatures
//!   with one nonce pair reveal the share). [`sign_share`] consumes them; whoever stores them must
//!   take each out once, durably, as presignatures are.
//! * **Material.** [`Preprocessing`] is the protocol by which a signing set of exactly `t`
//!   holders makes one piece: each commits, every commitment goes to every holder, and each
//!   confirms a hash of all of them before it keeps its [`Material`] (its nonces and the set's
//!   commitments), so the holders of one piece agree on it as they do on a presignature.
//! * **Signing.** A signing set of exactly `t` holders; each signs the message with the set's
//!   commitments ([`sign_share`]); [`combine`] checks every share against its holder's public
//!   share and commitment, naming every bad one, and returns a signature that verifies under the
//!   output key.
//!
//! Party `i` is FROST identifier `i + 1`, the same evaluation point as Sigil's shares.

use std::collections::BTreeMap;

use frost_secp256k1_tr as frost;
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::ProjectivePoint;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::derive::{derivation_tweak, derive_public_key, KeyId};
use crate::protocol::{Outgoing, Protocol, Step};
use crate::wire::{keep_once, open, seal, ProtocolKind, Reader};
use crate::{KeyShare, PartyId, PublicKeyPackage, Secp256k1, SessionId, TssError};

/// Encoded length of a [`Commitment`]: two compressed points.
pub const COMMITMENT_LEN: usize = 66;
/// Encoded length of [`Nonces`]: two scalars.
pub const NONCES_LEN: usize = 64;

/// One holder's secret nonce pair for one signature (FROST round 1). Wiped on drop; consumed by
/// [`sign_share`].
pub struct Nonces(frost::round1::SigningNonces);

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces(<redacted>)")
    }
}

impl Nonces {
    /// The encoding to store (hiding ‖ binding scalars, big-endian); wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(NONCES_LEN));
        out.extend_from_slice(&Zeroizing::new(self.0.hiding().serialize()));
        out.extend_from_slice(&Zeroizing::new(self.0.binding().serialize()));
        out
    }

    /// Reads stored nonces.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TssError> {
        let bad = || TssError::Corrupt("Schnorr nonces".into());
        if bytes.len() != NONCES_LEN {
            return Err(bad());
        }
        let (hiding, binding) = bytes.split_at(32);
        if hiding.iter().all(|b| *b == 0) || binding.iter().all(|b| *b == 0) {
            return Err(bad());
        }
        let hiding = frost_core::round1::Nonce::<frost::Secp256K1Sha256TR>::deserialize(hiding).map_err(|_| bad())?;
        let binding = frost_core::round1::Nonce::<frost::Secp256K1Sha256TR>::deserialize(binding).map_err(|_| bad())?;
        Ok(Self(frost::round1::SigningNonces::from_nonces(hiding, binding)))
    }

    /// The public commitment to these nonces.
    pub fn commitment(&self) -> Commitment {
        Commitment(*self.0.commitments())
    }
}

/// The public commitment to one holder's [`Nonces`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commitment(frost::round1::SigningCommitments);

impl Commitment {
    /// Hiding ‖ binding commitments, each a compressed point.
    pub fn to_bytes(&self) -> [u8; COMMITMENT_LEN] {
        let mut out = [0u8; COMMITMENT_LEN];
        let (hiding, binding) = out.split_at_mut(33);
        // A commitment that decoded or was made here is never the identity; were it one, its
        // half stays zero (which decodes as nothing) rather than panicking.
        for (half, point) in [(hiding, self.0.hiding()), (binding, self.0.binding())] {
            if let Ok(bytes) = point.serialize() {
                if bytes.len() == half.len() {
                    half.copy_from_slice(&bytes);
                }
            }
        }
        out
    }

    /// Reads a commitment sent by `from`.
    pub fn from_bytes(bytes: &[u8], from: PartyId) -> Result<Self, TssError> {
        if bytes.len() != COMMITMENT_LEN {
            return Err(TssError::malformed(
                from,
                format!("a {}-byte nonce commitment", bytes.len()),
            ));
        }
        let (hiding, binding) = bytes.split_at(33);
        let point = |b: &[u8]| {
            frost::round1::NonceCommitment::deserialize(b)
                .map_err(|_| TssError::malformed(from, "a nonce commitment that is not a point"))
        };
        Ok(Self(frost::round1::SigningCommitments::new(
            point(hiding)?,
            point(binding)?,
        )))
    }
}

/// One holder's share of a Schnorr signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchnorrShare {
    /// Its holder.
    pub from: PartyId,
    share: frost::round2::SignatureShare,
}

impl SchnorrShare {
    /// The share's 32-byte scalar.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.share.serialize());
        out
    }

    /// Reads the share `from` sent.
    pub fn from_bytes(bytes: &[u8], from: PartyId) -> Result<Self, TssError> {
        let share = frost::round2::SignatureShare::deserialize(bytes)
            .map_err(|_| TssError::malformed(from, "a Schnorr signature share that is not a scalar"))?;
        Ok(Self { from, share })
    }
}

/// A BIP-340 signature: `R.x ‖ s`.
pub type SchnorrSignature = [u8; 64];

fn identifier(party: PartyId) -> Result<frost::Identifier, TssError> {
    party
        .0
        .checked_add(1)
        .and_then(|x| u16::try_from(x).ok())
        .and_then(|x| frost::Identifier::try_from(x).ok())
        .ok_or_else(|| TssError::BadParameters(format!("party {party} has no FROST identifier")))
}

fn point_of(p: &ProjectivePoint) -> Result<[u8; 33], TssError> {
    <[u8; 33]>::try_from(p.to_affine().to_encoded_point(true).as_bytes())
        .map_err(|_| TssError::BadParameters("the identity is no key".into()))
}

fn verifying_share(p: &ProjectivePoint) -> Result<frost::keys::VerifyingShare, TssError> {
    frost::keys::VerifyingShare::deserialize(&point_of(p)?).map_err(|e| TssError::BadParameters(e.to_string()))
}

fn verifying_key(p: &ProjectivePoint) -> Result<frost::VerifyingKey, TssError> {
    frost::VerifyingKey::deserialize(&point_of(p)?).map_err(|e| TssError::BadParameters(e.to_string()))
}

/// A PKP's taproot output key (x-only, 32 bytes: what a P2TR address encodes and BIP-340
/// signatures verify under).
pub fn output_key(root: &ProjectivePoint, key_id: &KeyId) -> Result<[u8; 32], TssError> {
    use frost::keys::Tweak;
    let internal = derive_public_key(root, key_id);
    let public = frost::keys::PublicKeyPackage::new(BTreeMap::new(), verifying_key(&internal)?, None);
    let x = public.tweak::<&[u8]>(None).verifying_key().to_element().to_affine().x();
    let mut out = [0u8; 32];
    out.copy_from_slice(&x);
    Ok(out)
}

/// A fresh nonce pair for `share`'s holder and its commitment. The nonces come from the OS's
/// generator alone, each a wiped scalar (RFC 9591's `nonce_generate` would hedge them with the
/// share, in buffers the ciphersuite leaves unwiped).
pub fn commit(share: &KeyShare<Secp256k1>) -> Result<(Nonces, Commitment), TssError> {
    let _ = share.me();
    let nonce = || -> Result<frost_core::round1::Nonce<frost::Secp256K1Sha256TR>, TssError> {
        use k256::elliptic_curve::Field;
        let k = Zeroizing::new(k256::Scalar::random(&mut OsRng));
        let bytes = Zeroizing::new(k.to_bytes());
        frost_core::round1::Nonce::deserialize(&bytes[..]).map_err(|e| TssError::BadParameters(e.to_string()))
    };
    let nonces = frost::round1::SigningNonces::from_nonces(nonce()?, nonce()?);
    let commitments = *nonces.commitments();
    Ok((Nonces(nonces), Commitment(commitments)))
}

/// The FROST signing package: `message` and the signing set's commitments.
fn package(message: &[u8], commitments: &BTreeMap<PartyId, Commitment>) -> Result<frost::SigningPackage, TssError> {
    let mut by_id = BTreeMap::new();
    for (party, c) in commitments {
        by_id.insert(identifier(*party)?, c.0);
    }
    Ok(frost::SigningPackage::new(by_id, message))
}

/// The PKP's public package for FROST: every holder's derived public share and the derived key.
fn public_package(
    package: &PublicKeyPackage<Secp256k1>,
    key_id: &KeyId,
    signers: impl Iterator<Item = PartyId>,
) -> Result<frost::keys::PublicKeyPackage, TssError> {
    let tweak = ProjectivePoint::GENERATOR * derivation_tweak(key_id);
    let mut shares = BTreeMap::new();
    for party in signers {
        let public = package
            .public_share(party)
            .ok_or_else(|| TssError::BadParameters(format!("party {party} holds no share of this key")))?;
        shares.insert(identifier(party)?, verifying_share(&(*public + tweak))?);
    }
    let key = verifying_key(&(*package.public_key() + tweak))?;
    let min = u16::try_from(package.threshold()).ok();
    Ok(frost::keys::PublicKeyPackage::new(shares, key, min))
}

fn check_set(
    package: &PublicKeyPackage<Secp256k1>,
    commitments: &BTreeMap<PartyId, Commitment>,
) -> Result<(), TssError> {
    if commitments.len() != package.threshold() {
        return Err(TssError::BadParameters(format!(
            "a signing set is exactly t = {} holders, not {}",
            package.threshold(),
            commitments.len()
        )));
    }
    Ok(())
}

/// `share`'s holder's share of the PKP `key_id`'s signature of `message`, with `nonces` (its own,
/// whose commitment is its entry in `commitments`: the signing set's, exactly `t`).
pub fn sign_share(
    share: &KeyShare<Secp256k1>,
    key_id: &KeyId,
    message: &[u8],
    commitments: &BTreeMap<PartyId, Commitment>,
    nonces: Nonces,
) -> Result<SchnorrShare, TssError> {
    check_set(share.public(), commitments)?;
    let me = share.me();
    if let Some(p) = commitments.keys().find(|p| share.public().public_share(**p).is_none()) {
        return Err(TssError::BadParameters(format!("party {p} holds no share of this key")));
    }
    if commitments.get(&me) != Some(&nonces.commitment()) {
        return Err(TssError::BadParameters(format!(
            "the signing set's commitment for party {me} is not that of these nonces"
        )));
    }
    let tweak = derivation_tweak(key_id);
    let secret = Zeroizing::new((*share.secret() + tweak).to_bytes());
    let signing =
        frost::keys::SigningShare::deserialize(&secret[..]).map_err(|e| TssError::BadParameters(e.to_string()))?;
    let public = share
        .public()
        .public_share(me)
        .ok_or_else(|| TssError::BadParameters(format!("party {me} is not in its own package")))?;
    let g_tweak = ProjectivePoint::GENERATOR * tweak;
    let key = frost::keys::KeyPackage::new(
        identifier(me)?,
        signing,
        verifying_share(&(*public + g_tweak))?,
        verifying_key(&(*share.public_key() + g_tweak))?,
        u16::try_from(share.threshold()).map_err(|e| TssError::BadParameters(e.to_string()))?,
    );
    let signing_package = package(message, commitments)?;
    let out = frost::round2::sign_with_tweak(&signing_package, &nonces.0, &key, None)
        .map_err(|e| TssError::BadParameters(format!("FROST signing: {e}")))?;
    Ok(SchnorrShare { from: me, share: out })
}

/// Combines the signing set's shares of the PKP `key_id`'s signature of `message` into a BIP-340
/// signature that verifies under [`output_key`]. Every share is checked against its holder's
/// public share and commitment; the error names every bad one ([`TssError::InvalidShares`]).
/// The blame holds only for `commitments` the holders agreed on ([`Preprocessing`]'s): a list
/// that one signer supplies, with another entry swapped, makes honest shares look bad.
pub fn combine(
    package: &PublicKeyPackage<Secp256k1>,
    key_id: &KeyId,
    message: &[u8],
    commitments: &BTreeMap<PartyId, Commitment>,
    shares: &[SchnorrShare],
) -> Result<SchnorrSignature, TssError> {
    check_set(package, commitments)?;
    let mut by_id = BTreeMap::new();
    let mut parties = BTreeMap::new();
    for s in shares {
        if !commitments.contains_key(&s.from) {
            return Err(TssError::malformed(
                s.from,
                "a Schnorr share from outside the signing set",
            ));
        }
        let id = identifier(s.from)?;
        parties.insert(id, s.from);
        by_id.insert(id, s.share);
    }
    if by_id.len() != commitments.len() {
        return Err(TssError::BadParameters(format!(
            "{} distinct shares for a signing set of {}",
            by_id.len(),
            commitments.len()
        )));
    }
    let public = public_package(package, key_id, commitments.keys().copied())?;
    let signing_package = self::package(message, commitments)?;
    use frost::keys::Tweak;
    let public = public.tweak::<&[u8]>(None);
    let signature = frost_core::aggregate_custom(
        &signing_package,
        &by_id,
        &public,
        frost_core::CheaterDetection::AllCheaters,
    )
    .map_err(|e| match e {
        frost::Error::InvalidSignatureShare { culprits } => TssError::InvalidShares {
            culprits: culprits.iter().filter_map(|c| parties.get(c).copied()).collect(),
        },
        other => TssError::Protocol {
            suspect: None,
            reason: format!("FROST aggregation: {other}"),
        },
    })?;
    let bytes = signature.serialize().map_err(|e| TssError::Protocol {
        suspect: None,
        reason: format!("FROST signature encoding: {e}"),
    })?;
    <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| TssError::Protocol {
        suspect: None,
        reason: format!("a {}-byte Schnorr signature", bytes.len()),
    })
}

const TAG_COMMITMENT: u8 = 1;
const TAG_CONFIRM: u8 = 2;
const MATERIAL_FORMAT: u8 = 1;

/// One holder's piece of Schnorr one-time material: its nonces and the signing set's agreed
/// commitments. Used for at most one signature ([`Material::sign`] consumes it).
#[derive(Debug)]
pub struct Material {
    nonces: Nonces,
    commitments: BTreeMap<PartyId, Commitment>,
}

impl Material {
    /// The signing set that made it.
    pub fn signers(&self) -> Vec<PartyId> {
        self.commitments.keys().copied().collect()
    }

    /// The set's commitments (what a combiner needs besides the shares).
    pub fn commitments(&self) -> &BTreeMap<PartyId, Commitment> {
        &self.commitments
    }

    /// This holder's share of PKP `key_id`'s signature of `message`, consuming the material.
    pub fn sign(self, share: &KeyShare<Secp256k1>, key_id: &KeyId, message: &[u8]) -> Result<SchnorrShare, TssError> {
        sign_share(share, key_id, message, &self.commitments, self.nonces)
    }

    /// Storage encoding: format ‖ nonces ‖ count (u16) ‖ (party (u32) ‖ commitment)*; wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(1 + NONCES_LEN + 2 + self.commitments.len() * 70));
        out.push(MATERIAL_FORMAT);
        out.extend_from_slice(&self.nonces.to_bytes());
        out.extend_from_slice(&(self.commitments.len() as u16).to_be_bytes());
        for (p, c) in &self.commitments {
            out.extend_from_slice(&p.0.to_be_bytes());
            out.extend_from_slice(&c.to_bytes());
        }
        out
    }

    /// Reads stored material; the nonces must be those of this holder's commitment (`me`).
    pub fn from_bytes(bytes: &[u8], me: PartyId) -> Result<Self, TssError> {
        let mut r = Reader::stored("Schnorr material", MATERIAL_FORMAT, bytes)?;
        let nonces = Nonces::from_bytes(r.take(NONCES_LEN, "nonces")?)?;
        let count = usize::from(r.u16("commitment count")?);
        let mut commitments = BTreeMap::new();
        for _ in 0..count {
            let party = PartyId(r.u32("party")?);
            let c = Commitment::from_bytes(r.take(COMMITMENT_LEN, "commitment")?, party)
                .map_err(|_| TssError::Corrupt("Schnorr material: a commitment".into()))?;
            commitments.insert(party, c);
        }
        r.finish()?;
        if commitments.get(&me) != Some(&nonces.commitment()) {
            return Err(TssError::Corrupt(
                "Schnorr material: the nonces are not this holder's".into(),
            ));
        }
        Ok(Self { nonces, commitments })
    }
}

/// One holder's run of making a piece of [`Material`] with its signing set (exactly `t`
/// holders of the key): commit, exchange, confirm.
pub struct Preprocessing {
    session: SessionId,
    me: PartyId,
    signers: Vec<PartyId>,
    nonces: Option<Nonces>,
    commitments: BTreeMap<PartyId, Commitment>,
    confirmations: BTreeMap<PartyId, [u8; 32]>,
    outbox: Vec<Outgoing>,
    confirmed: Option<[u8; 32]>,
    failed: Option<TssError>,
    done: bool,
}

impl std::fmt::Debug for Preprocessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessing")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("signers", &self.signers)
            .finish_non_exhaustive()
    }
}

impl Preprocessing {
    /// Starts `share`'s holder's run with `signers` (exactly the key's threshold, itself among them).
    pub fn new(session: SessionId, share: &KeyShare<Secp256k1>, signers: &[PartyId]) -> Result<Self, TssError> {
        let signers = crate::party::sorted_unique(signers)
            .ok_or_else(|| TssError::BadParameters("a signer appears twice".into()))?;
        let me = share.me();
        if signers.len() != share.threshold() || !signers.contains(&me) {
            return Err(TssError::BadParameters(format!(
                "a signing set is exactly t = {} holders including party {me}, not {signers:?}",
                share.threshold()
            )));
        }
        if let Some(p) = signers.iter().find(|p| share.public().public_share(**p).is_none()) {
            return Err(TssError::BadParameters(format!("party {p} holds no share of this key")));
        }
        let (nonces, commitment) = commit(share)?;
        let mut msg = vec![TAG_COMMITMENT];
        msg.extend_from_slice(&commitment.to_bytes());
        let mut commitments = BTreeMap::new();
        commitments.insert(me, commitment);
        Ok(Self {
            outbox: vec![Outgoing::ToAll(seal(ProtocolKind::SchnorrNonces, &session, &msg))],
            session,
            me,
            signers,
            nonces: Some(nonces),
            commitments,
            confirmations: BTreeMap::new(),
            confirmed: None,
            failed: None,
            done: false,
        })
    }

    fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new_with_prefix(b"sigil/schnorr-nonces/v1");
        h.update(self.session.0);
        for (p, c) in &self.commitments {
            h.update(p.0.to_be_bytes());
            h.update(c.to_bytes());
        }
        h.finalize().into()
    }

    fn fail(&mut self, e: TssError) -> TssError {
        self.nonces = None;
        self.failed = Some(e.clone());
        e
    }
}

impl Protocol for Preprocessing {
    type Output = Material;

    fn me(&self) -> PartyId {
        self.me
    }

    fn session(&self) -> SessionId {
        self.session
    }

    fn handle(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), TssError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if from == self.me || !self.signers.contains(&from) {
            return Err(TssError::UnknownSender { from });
        }
        let payload = open(ProtocolKind::SchnorrNonces, &self.session, from, bytes)?;
        let mut r = Reader::new(from, payload);
        match r.u8("message tag")? {
            TAG_COMMITMENT => {
                let c = Commitment::from_bytes(r.take(COMMITMENT_LEN, "commitment")?, from)?;
                r.finish()?;
                keep_once(&mut self.commitments, from, c, from, "nonce commitment").map_err(|e| self.fail(e))
            }
            TAG_CONFIRM => {
                let hash = r.array::<32>("commitments hash")?;
                r.finish()?;
                keep_once(&mut self.confirmations, from, hash, from, "confirmation").map_err(|e| self.fail(e))
            }
            tag => Err(TssError::malformed(from, format!("unknown message tag {tag}"))),
        }
    }

    fn poke(&mut self) -> Result<Step<Material>, TssError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.done {
            return Err(TssError::Terminated);
        }
        if let Some(msg) = self.outbox.pop() {
            return Ok(Step::Send(msg));
        }
        if self.commitments.len() < self.signers.len() {
            return Ok(Step::Wait);
        }
        let Some(mine) = self.confirmed else {
            let digest = self.digest();
            self.confirmed = Some(digest);
            let mut msg = vec![TAG_CONFIRM];
            msg.extend_from_slice(&digest);
            return Ok(Step::Send(Outgoing::ToAll(seal(
                ProtocolKind::SchnorrNonces,
                &self.session,
                &msg,
            ))));
        };
        if self.confirmations.len() + 1 < self.signers.len() {
            return Ok(Step::Wait);
        }
        if let Some((p, _)) = self.confirmations.iter().find(|(_, h)| **h != mine) {
            let suspect = *p;
            return Err(self.fail(TssError::Protocol {
                suspect: Some(suspect),
                reason: format!("party {suspect} saw other nonce commitments: it lies or another signer equivocated"),
            }));
        }
        let nonces = self.nonces.take().ok_or(TssError::Terminated)?;
        self.done = true;
        Ok(Step::Done(Material {
            nonces,
            commitments: std::mem::take(&mut self.commitments),
        }))
    }

    fn awaiting(&self) -> Vec<PartyId> {
        self.signers
            .iter()
            .copied()
            .filter(|p| {
                *p != self.me
                    && if self.commitments.len() < self.signers.len() {
                        !self.commitments.contains_key(p)
                    } else {
                        !self.confirmations.contains_key(p)
                    }
            })
            .collect()
    }
}
