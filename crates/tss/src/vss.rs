//! Verifiable secret sharing over any [`Curve`]: distributed key generation, resharing to a new node
//! set and threshold, and refresh — one protocol, three ways to start it.
//!
//! Each *dealer* shares a secret `s_d` with a random polynomial `f_d` of degree `t − 1`, broadcasts
//! Feldman commitments `C_{d,k} = a_{d,k}·G` and sends `f_d(x_j)` privately to each *receiver* `j`.
//! A receiver checks every share against its dealer's commitments, sums them into its new share and
//! broadcasts a hash of all commitments it saw; it outputs only once every receiver reports the same
//! hash, so all receivers agree on the public key and on every party's public key share
//! `X_j = Σ_d Σ_k C_{d,k}·x_j^k`.
//!
//! * **DKG**: dealers = receivers = all parties, `s_d` random, and `C_{d,0}` comes with a Schnorr
//!   proof of knowledge bound to the session and dealer (so nobody can cancel others' contributions).
//! * **Reshare**: dealers are any ≥ t_old members of the old set with `s_d = λ_d·x_d` (Lagrange
//!   weight within the dealer set), receivers are the new set. `C_{d,0}` must equal `λ_d·X_d`, the
//!   dealer's *known* old public share, so a dealer cannot change the key, and the new shares
//!   interpolate to the same secret. Dealers need not be receivers: a shrinking set (7 → 4 nodes)
//!   works even when fewer than t_old old nodes remain.
//! * **Refresh**: reshare from the whole set to itself with the same threshold.
//!
//! **Complaints.** A receiver whose share from dealer `d` fails its check does not abort: once it
//! holds every dealing it broadcasts its list of accused dealers (every receiver sends one, most of
//! them empty), and each accused dealer answers every complaint against it by broadcasting the
//! disputed share. A revealed share that matches the dealer's commitments settles the complaint
//! (the complainer uses it); one that does not disqualifies the dealer. In a DKG the key is then
//! the sum over the remaining dealers (at least `t` of them), whose names enter the confirmed
//! transcript, and a disqualified party's confirmation is not waited for; in a reshare, whose
//! Lagrange weights fix the dealer set, the run fails naming the dealer. A dealer that never
//! answers stalls the run; [`Protocol::awaiting`] names whom each party waits for when the
//! caller's deadline passes (not proof: an accusation sent to some receivers only makes them
//! wait for an honest dealer that never heard it; complaints are not transferable).
//!
//! Known limit (the Feldman/JF-DKG bias): a corrupt dealer accused by an honest receiver sees
//! every commitment before it answers, and may choose between its dealing counting (reveal the
//! true share) or not (reveal a bad one): up to one bit of influence on the key per corrupt
//! dealer, never a key of its choice (the proofs of knowledge stop cancelling others'
//! dealings) and never a known one. A reshare cannot change the key at all.
//! Every run has the complaint round, so a dealer cannot tell whether it was accused before it
//! speaks again.
//!
//! A bad proof, a commitment that contradicts the old public share, a revealed share that fails
//! its commitment check, or two different versions of one message are proof against their sender
//! ([`TssError::culprit`]). A differing confirmation is not: the confirming party may lie, or a dealer
//! may have sent it other commitments than us, so it is only reported as a suspect
//! ([`TssError::suspect`]). Identical duplicates are ignored; messages may arrive in any order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use ff::Field;
use group::Group;
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::curve::{eval_commitment, lagrange, point_bytes, put_point, put_scalar, scalar_of, Curve};
use crate::party::{sorted_unique, MAX_PARTIES, MIN_PARTIES};
use crate::protocol::{Outgoing, Protocol, Step};
use crate::wire::{keep_once, open, seal, ProtocolKind, Reader};
use crate::{PartyId, SessionId, TssError};

const TAG_COMMIT: u8 = 1;
const TAG_SHARE: u8 = 2;
const TAG_CONFIRM: u8 = 3;
const TAG_COMPLAIN: u8 = 4;
const TAG_REVEAL: u8 = 5;
const POK_DST: &[u8] = b"SIGIL-VSS-POK-V1";
const PACKAGE_FORMAT: u8 = 1;
const SHARE_FORMAT: u8 = 1;

/// The public side of a shared key: what any party (or client) may know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyPackage<C: Curve> {
    threshold: usize,
    public_key: C::Point,
    shares: BTreeMap<PartyId, C::Point>,
}

impl<C: Curve> PublicKeyPackage<C> {
    /// Builds a package from its parts (e.g. read from storage or a handshake); checks that the
    /// public key shares are consistent with the public key and the threshold.
    pub fn new(threshold: usize, public_key: C::Point, shares: BTreeMap<PartyId, C::Point>) -> Result<Self, TssError> {
        let package = Self {
            threshold,
            public_key,
            shares,
        };
        package.check()?;
        Ok(package)
    }

    /// Shares needed to use the key.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The shared public key.
    pub fn public_key(&self) -> &C::Point {
        &self.public_key
    }

    /// Every party holding a share, in order.
    pub fn parties(&self) -> Vec<PartyId> {
        self.shares.keys().copied().collect()
    }

    /// `x_p·G` for party `p`.
    pub fn public_share(&self, party: PartyId) -> Option<&C::Point> {
        self.shares.get(&party)
    }

    /// Interpolates the public key from the public shares of `set` (at least `threshold` of them,
    /// or the result is some other point).
    pub fn interpolate(&self, set: &[PartyId]) -> Result<C::Point, TssError> {
        let set = sorted_unique(set).ok_or_else(|| TssError::BadParameters("a party appears twice".into()))?;
        let mut acc = C::Point::identity();
        for p in &set {
            let share = self
                .shares
                .get(p)
                .ok_or_else(|| TssError::BadParameters(format!("party {p} holds no share")))?;
            acc += *share * lagrange::<C>(*p, &set)?;
        }
        Ok(acc)
    }

    /// `format:u8 | threshold:u8 | key | n:u8 | (party:u32 | public share)*`, points compressed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![PACKAGE_FORMAT];
        self.write(&mut out);
        out
    }

    /// Decodes and re-checks a package (shares on one polynomial through the key).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TssError> {
        let mut r = Reader::stored("public key package", PACKAGE_FORMAT, bytes)?;
        let package = Self::read(&mut r)?;
        r.finish()?;
        Ok(package)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.threshold.min(usize::from(u8::MAX)) as u8);
        put_point::<C>(out, &self.public_key);
        out.push(self.shares.len().min(usize::from(u8::MAX)) as u8);
        for (party, share) in self.shares.iter().take(usize::from(u8::MAX)) {
            out.extend_from_slice(&party.0.to_be_bytes());
            put_point::<C>(out, share);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, TssError> {
        let threshold = usize::from(r.u8("threshold")?);
        let public_key = r.nonzero_point::<C>("public key")?;
        let n = r.u8("party count")?;
        let mut shares = BTreeMap::new();
        for _ in 0..n {
            let party = r.party("party")?;
            if shares.insert(party, r.point::<C>("public share")?).is_some() {
                return Err(r.source().error(format!("party {party} appears twice")));
            }
        }
        Self::new(threshold, public_key, shares).map_err(|e| r.source().error(e.to_string()))
    }

    /// Checks that the public shares lie on one polynomial of degree `threshold − 1` through the key.
    fn check(&self) -> Result<(), TssError> {
        let n = self.shares.len();
        if self.threshold < 2 || self.threshold > n {
            return Err(TssError::BadParameters(format!(
                "threshold {} with {n} parties",
                self.threshold
            )));
        }
        let parties = self.parties();
        let (base, rest) = parties.split_at(self.threshold - 1);
        for p in rest {
            // Any t points fix the polynomial: the first t−1 plus p must give back the key.
            let mut set = base.to_vec();
            set.push(*p);
            if self.interpolate(&set)? != self.public_key {
                return Err(TssError::InvalidShare {
                    culprit: *p,
                    what: "public key share (off the key's polynomial)".into(),
                });
            }
        }
        Ok(())
    }
}

/// One party's share of a threshold key. The secret is wiped on drop and never printed.
pub struct KeyShare<C: Curve> {
    me: PartyId,
    secret: C::Scalar,
    public: PublicKeyPackage<C>,
}

impl<C: Curve> KeyShare<C> {
    /// Rebuilds a share from storage; checks that the secret matches this party's public share.
    pub fn from_parts(me: PartyId, secret: C::Scalar, public: PublicKeyPackage<C>) -> Result<Self, TssError> {
        let share = Self { me, secret, public };
        match share.public.public_share(me) {
            Some(expected) if C::Point::generator() * share.secret == *expected => Ok(share),
            _ => Err(TssError::BadParameters(format!(
                "secret share of party {me} does not match its public share"
            ))),
        }
    }

    /// The holder.
    pub fn me(&self) -> PartyId {
        self.me
    }

    /// The public side: key, threshold, every party's public share.
    pub fn public(&self) -> &PublicKeyPackage<C> {
        &self.public
    }

    /// The shared public key.
    pub fn public_key(&self) -> &C::Point {
        &self.public.public_key
    }

    /// Shares needed to use the key.
    pub fn threshold(&self) -> usize {
        self.public.threshold
    }

    /// The secret scalar, for the protocols in this crate and for encrypted storage in the node.
    pub fn secret(&self) -> &C::Scalar {
        &self.secret
    }

    /// `format:u8 | me:u32 | secret | package` — secret material: encrypt it before it touches disk.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![SHARE_FORMAT]);
        out.extend_from_slice(&self.me.0.to_be_bytes());
        put_scalar::<C>(&mut out, &self.secret);
        self.public.write(&mut out);
        out
    }

    /// Decodes a stored share and checks the secret against its public share.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TssError> {
        let mut r = Reader::stored("key share", SHARE_FORMAT, bytes)?;
        let me = r.party("holder")?;
        let mut secret = r.scalar::<C>("secret share")?;
        let public = PublicKeyPackage::read(&mut r);
        let finished = r.finish();
        let share = public.and_then(|public| finished.and_then(|()| Self::from_parts(me, secret, public)));
        secret.zeroize();
        share.map_err(|e| match e {
            TssError::Corrupt(_) => e,
            other => TssError::Corrupt(format!("key share: {other}")),
        })
    }
}

impl<C: Curve> Clone for KeyShare<C> {
    fn clone(&self) -> Self {
        Self {
            me: self.me,
            secret: self.secret,
            public: self.public.clone(),
        }
    }
}

impl<C: Curve> Drop for KeyShare<C> {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl<C: Curve> fmt::Debug for KeyShare<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("curve", &C::NAME)
            .field("me", &self.me)
            .field("secret", &"<redacted>")
            .field("threshold", &self.public.threshold)
            .finish()
    }
}

enum Phase {
    Dealing,
    /// Every dealing is in and this party's complaint list is sent: waiting for every receiver's
    /// list and for the accused dealers' answers.
    Complaining,
    Confirming {
        transcript: [u8; 32],
    },
    Finished,
    Failed(TssError),
}

struct Pinned<C: Curve> {
    /// `λ_d·X_d` for every dealer.
    constants: BTreeMap<PartyId, C::Point>,
    public_key: C::Point,
}

/// One party's run of DKG, reshare or refresh. Output: `Some(share)` for a receiver, `None` for a
/// dealer that leaves the set.
pub struct Vss<C: Curve> {
    session: SessionId,
    me: PartyId,
    threshold: usize,
    dealers: Vec<PartyId>,
    receivers: Vec<PartyId>,
    pinned: Option<Pinned<C>>,
    outbox: VecDeque<Outgoing>,
    commitments: BTreeMap<PartyId, Vec<C::Point>>,
    shares: BTreeMap<PartyId, C::Scalar>,
    /// What this party dealt to each other receiver, kept to answer complaints.
    dealt: BTreeMap<PartyId, C::Scalar>,
    /// Each receiver's list of accused dealers (this party's own included).
    complaints: BTreeMap<PartyId, BTreeSet<PartyId>>,
    /// Shares revealed by accused dealers: (dealer, receiver) → share.
    reveals: BTreeMap<(PartyId, PartyId), C::Scalar>,
    /// Receivers whose complaints against this party it has answered.
    answered: BTreeSet<PartyId>,
    /// Dealers whose revealed share failed its check (DKG only).
    disqualified: BTreeSet<PartyId>,
    confirmations: BTreeMap<PartyId, [u8; 32]>,
    /// This party's share once the complaints are settled, before every confirmation is in.
    tentative: Option<KeyShare<C>>,
    phase: Phase,
}

impl<C: Curve> fmt::Debug for Vss<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vss")
            .field("curve", &C::NAME)
            .field("session", &self.session)
            .field("me", &self.me)
            .field("dealers", &self.dealers)
            .field("receivers", &self.receivers)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl<C: Curve> Drop for Vss<C> {
    fn drop(&mut self) {
        self.shares.values_mut().for_each(Zeroize::zeroize);
        self.dealt.values_mut().for_each(Zeroize::zeroize);
        self.reveals.values_mut().for_each(Zeroize::zeroize);
        // Unsent private messages carry shares.
        for msg in &mut self.outbox {
            match msg {
                Outgoing::ToAll(bytes) | Outgoing::ToOne(_, bytes) => bytes.zeroize(),
            }
        }
    }
}

impl<C: Curve> Vss<C> {
    /// Distributed key generation among `parties` with the given threshold.
    pub fn dkg(session: SessionId, me: PartyId, parties: &[PartyId], threshold: usize) -> Result<Self, TssError> {
        let parties = check_set(parties, threshold, me)?;
        let secret = C::Scalar::random(OsRng);
        Self::start(session, me, parties.clone(), parties, threshold, None, Some(secret))
    }

    /// Moves the key of `old` to `new_parties` with `new_threshold`, keeping the public key.
    ///
    /// `dealers` are the old parties taking part as dealers (at least `old.threshold()` of them; all
    /// of them must run). `my_old_share` is required when `me` is a dealer. Every participant of
    /// the run (dealers and new parties) must pass the same `old`, `dealers`, `new_parties` and
    /// `new_threshold`.
    pub fn reshare(
        session: SessionId,
        me: PartyId,
        old: &PublicKeyPackage<C>,
        dealers: &[PartyId],
        my_old_share: Option<&KeyShare<C>>,
        new_parties: &[PartyId],
        new_threshold: usize,
    ) -> Result<Self, TssError> {
        let dealers = sorted_unique(dealers).ok_or_else(|| TssError::BadParameters("a dealer appears twice".into()))?;
        if dealers.len() < old.threshold() {
            return Err(TssError::BadParameters(format!(
                "{} dealers cannot reshare a key of threshold {}",
                dealers.len(),
                old.threshold()
            )));
        }
        let receivers =
            sorted_unique(new_parties).ok_or_else(|| TssError::BadParameters("a new party appears twice".into()))?;
        check_threshold(receivers.len(), new_threshold)?;
        if !dealers.contains(&me) && !receivers.contains(&me) {
            return Err(TssError::BadParameters(format!(
                "party {me} is neither a dealer nor a new party"
            )));
        }
        let mut constants = BTreeMap::new();
        for d in &dealers {
            let share = old
                .public_share(*d)
                .ok_or_else(|| TssError::BadParameters(format!("dealer {d} holds no old share")))?;
            constants.insert(*d, *share * lagrange::<C>(*d, &dealers)?);
        }
        let secret = match (dealers.contains(&me), my_old_share) {
            (false, _) => None,
            (true, Some(share)) if share.me == me && share.public == *old => {
                Some(share.secret * lagrange::<C>(me, &dealers)?)
            }
            (true, _) => {
                return Err(TssError::BadParameters(format!(
                    "dealer {me} needs its own share of this key"
                )))
            }
        };
        let pinned = Pinned {
            constants,
            public_key: *old.public_key(),
        };
        Self::start(session, me, dealers, receivers, new_threshold, Some(pinned), secret)
    }

    /// Re-randomises every share of the key within the same set and threshold. All parties must run.
    pub fn refresh(session: SessionId, share: &KeyShare<C>) -> Result<Self, TssError> {
        let parties = share.public.parties();
        Self::reshare(
            session,
            share.me,
            &share.public,
            &parties,
            Some(share),
            &parties,
            share.threshold(),
        )
    }

    fn start(
        session: SessionId,
        me: PartyId,
        dealers: Vec<PartyId>,
        receivers: Vec<PartyId>,
        threshold: usize,
        pinned: Option<Pinned<C>>,
        secret: Option<C::Scalar>,
    ) -> Result<Self, TssError> {
        let mut vss = Self {
            session,
            me,
            threshold,
            dealers,
            receivers,
            pinned,
            outbox: VecDeque::new(),
            commitments: BTreeMap::new(),
            shares: BTreeMap::new(),
            dealt: BTreeMap::new(),
            complaints: BTreeMap::new(),
            reveals: BTreeMap::new(),
            answered: BTreeSet::new(),
            disqualified: BTreeSet::new(),
            confirmations: BTreeMap::new(),
            tentative: None,
            phase: Phase::Dealing,
        };
        if let Some(mut secret) = secret {
            vss.deal(&secret);
            secret.zeroize();
        }
        Ok(vss)
    }

    fn deal(&mut self, secret: &C::Scalar) {
        let mut coeffs: Vec<C::Scalar> = std::iter::once(*secret)
            .chain((1..self.threshold).map(|_| C::Scalar::random(OsRng)))
            .collect();
        let commitments: Vec<C::Point> = coeffs.iter().map(|a| C::Point::generator() * a).collect();

        let mut msg = vec![TAG_COMMIT];
        msg.extend_from_slice(&(commitments.len() as u16).to_be_bytes());
        commitments.iter().for_each(|c| put_point::<C>(&mut msg, c));
        if self.pinned.is_none() {
            // DKG: prove knowledge of the constant term.
            let mut nonce = C::Scalar::random(OsRng);
            let big_r = C::Point::generator() * nonce;
            let challenge = self.pok_challenge(self.me, commitments.first(), &big_r);
            let z = nonce + challenge * secret;
            nonce.zeroize();
            put_point::<C>(&mut msg, &big_r);
            put_scalar::<C>(&mut msg, &z);
        }
        self.outbox
            .push_back(Outgoing::ToAll(seal(ProtocolKind::Vss, &self.session, &msg)));

        for j in self.receivers.clone() {
            let x = scalar_of::<C>(j.x());
            let mut value = coeffs.iter().rev().fold(C::Scalar::ZERO, |acc, a| acc * x + a);
            if j == self.me {
                self.shares.insert(j, value);
            } else {
                self.dealt.insert(j, value);
                let mut msg = vec![TAG_SHARE];
                put_scalar::<C>(&mut msg, &value);
                self.outbox
                    .push_back(Outgoing::ToOne(j, seal(ProtocolKind::Vss, &self.session, &msg)));
                msg.zeroize();
            }
            value.zeroize();
        }
        coeffs.iter_mut().for_each(Zeroize::zeroize);
        self.commitments.insert(self.me, commitments);
    }

    fn pok_challenge(&self, dealer: PartyId, constant: Option<&C::Point>, big_r: &C::Point) -> C::Scalar {
        let mut msg = Vec::with_capacity(32 + 4 + 2 * C::POINT_LEN);
        msg.extend_from_slice(&self.session.0);
        msg.extend_from_slice(&dealer.0.to_be_bytes());
        if let Some(c) = constant {
            put_point::<C>(&mut msg, c);
        }
        put_point::<C>(&mut msg, big_r);
        C::hash_to_scalar(POK_DST, &msg)
    }

    fn transcript(&self) -> [u8; 32] {
        let mut h = Sha256::new_with_prefix(b"sigil/vss/transcript/v1");
        h.update(C::NAME);
        h.update(self.session.0);
        h.update((self.threshold as u16).to_be_bytes());
        for r in &self.receivers {
            h.update(r.0.to_be_bytes());
        }
        for (d, coeffs) in &self.commitments {
            h.update(d.0.to_be_bytes());
            coeffs.iter().for_each(|c| h.update(point_bytes::<C>(c)));
        }
        // Nothing is added when nobody was disqualified: such a transcript is the one every
        // earlier version of this protocol confirmed.
        for d in &self.disqualified {
            h.update(b"disqualified");
            h.update(d.0.to_be_bytes());
        }
        h.finalize().into()
    }

    fn fail(&mut self, err: TssError) -> TssError {
        self.phase = Phase::Failed(err.clone());
        err
    }

    fn on_commit(&mut self, mut r: Reader<'_>, from: PartyId) -> Result<(), TssError> {
        if !self.dealers.contains(&from) {
            return Err(TssError::malformed(
                from,
                "commitments from a party that is not a dealer",
            ));
        }
        let count = usize::from(r.u16("commitment count")?);
        if count != self.threshold {
            return Err(TssError::malformed(
                from,
                format!("{count} commitments, expected {}", self.threshold),
            ));
        }
        let coeffs = (0..count)
            .map(|_| r.point::<C>("commitment"))
            .collect::<Result<Vec<_>, _>>()?;
        let proof = match self.pinned {
            None => Some((r.point::<C>("proof nonce")?, r.scalar::<C>("proof response")?)),
            Some(_) => None,
        };
        r.finish()?;
        if let Some(known) = self.commitments.get(&from) {
            return if *known == coeffs {
                Ok(())
            } else {
                Err(self.fail(TssError::Equivocation {
                    from,
                    what: "commitment",
                }))
            };
        }
        let constant = coeffs.first().copied().unwrap_or_else(C::Point::identity);
        let valid = match (&self.pinned, proof) {
            (Some(pinned), _) => pinned.constants.get(&from) == Some(&constant),
            (None, Some((big_r, z))) => {
                C::Point::generator() * z == big_r + constant * self.pok_challenge(from, Some(&constant), &big_r)
            }
            (None, None) => false,
        };
        if !valid {
            let what = if self.pinned.is_some() {
                "commitment (its constant term is not its old public share)"
            } else {
                "proof of knowledge"
            };
            return Err(self.fail(TssError::InvalidShare {
                culprit: from,
                what: what.into(),
            }));
        }
        self.commitments.insert(from, coeffs);
        Ok(())
    }

    fn on_share(&mut self, mut r: Reader<'_>, from: PartyId) -> Result<(), TssError> {
        if !self.dealers.contains(&from) || !self.receivers.contains(&self.me) {
            return Err(TssError::malformed(from, "a secret share this party does not expect"));
        }
        let value = r.scalar::<C>("secret share")?;
        r.finish()?;
        if !matches!(self.phase, Phase::Dealing) {
            // Shares were summed and wiped, but the commitments fix our share: a late copy that
            // matches them is the same value (a duplicate); one that does not is a bad share.
            let matches = self
                .commitments
                .get(&from)
                .is_some_and(|coeffs| C::Point::generator() * value == eval_commitment::<C>(coeffs, self.me.x()));
            return if matches {
                Ok(())
            } else {
                Err(TssError::InvalidShare {
                    culprit: from,
                    what: "secret share (a late copy that differs)".into(),
                })
            };
        }
        keep_once(&mut self.shares, from, value, from, "secret share").map_err(|e| self.fail(e))
    }

    fn on_confirm(&mut self, mut r: Reader<'_>, from: PartyId) -> Result<(), TssError> {
        if !self.receivers.contains(&from) {
            return Err(TssError::malformed(
                from,
                "a confirmation from a party that receives no share",
            ));
        }
        let hash = r.array::<32>("transcript hash")?;
        r.finish()?;
        keep_once(&mut self.confirmations, from, hash, from, "confirmation").map_err(|e| self.fail(e))
    }

    fn on_complain(&mut self, mut r: Reader<'_>, from: PartyId) -> Result<(), TssError> {
        if !self.receivers.contains(&from) {
            return Err(TssError::malformed(
                from,
                "a complaint from a party that receives no share",
            ));
        }
        let count = usize::from(r.u16("complaint count")?);
        if count > self.dealers.len() {
            return Err(TssError::malformed(
                from,
                format!("{count} complaints, more than the dealers"),
            ));
        }
        let mut accused = BTreeSet::new();
        for _ in 0..count {
            let d = PartyId(r.u32("accused dealer")?);
            if !self.dealers.contains(&d) || d == from || !accused.insert(d) {
                return Err(TssError::malformed(
                    from,
                    format!("a complaint against {d}, which is not another dealer or is accused twice"),
                ));
            }
        }
        r.finish()?;
        keep_once(&mut self.complaints, from, accused, from, "complaint list").map_err(|e| self.fail(e))
    }

    fn on_reveal(&mut self, mut r: Reader<'_>, from: PartyId) -> Result<(), TssError> {
        if !self.dealers.contains(&from) {
            return Err(TssError::malformed(
                from,
                "a revealed share from a party that is not a dealer",
            ));
        }
        let receiver = PartyId(r.u32("complainer")?);
        if !self.receivers.contains(&receiver) || receiver == from {
            return Err(TssError::malformed(
                from,
                format!("a share revealed for {receiver}, which is not another receiver"),
            ));
        }
        let value = r.scalar::<C>("revealed share")?;
        r.finish()?;
        keep_once(&mut self.reveals, (from, receiver), value, from, "revealed share").map_err(|e| self.fail(e))
    }

    /// Every dealing is in: checks each share and sends this party's complaints (possibly none).
    fn finish_dealing(&mut self) {
        if self.receivers.contains(&self.me) {
            let x = self.me.x();
            let accused: BTreeSet<PartyId> = self
                .dealers
                .iter()
                .copied()
                .filter(|d| {
                    let good = match (self.commitments.get(d), self.shares.get(d)) {
                        (Some(coeffs), Some(share)) => C::Point::generator() * share == eval_commitment::<C>(coeffs, x),
                        _ => false,
                    };
                    !good
                })
                .collect();
            for d in &accused {
                if let Some(mut share) = self.shares.remove(d) {
                    share.zeroize();
                }
            }
            let mut msg = vec![TAG_COMPLAIN];
            msg.extend_from_slice(&(accused.len() as u16).to_be_bytes());
            accused.iter().for_each(|d| msg.extend_from_slice(&d.0.to_be_bytes()));
            self.outbox
                .push_back(Outgoing::ToAll(seal(ProtocolKind::Vss, &self.session, &msg)));
            self.complaints.insert(self.me, accused);
        }
        self.phase = Phase::Complaining;
    }

    /// Answers the complaints against this party and settles the others. True once every
    /// receiver's list is in and (for a receiver) every complaint has its answer.
    fn settle_complaints(&mut self) -> Result<bool, TssError> {
        let against_me: Vec<PartyId> = self
            .complaints
            .iter()
            .filter(|(j, accused)| accused.contains(&self.me) && !self.answered.contains(*j))
            .map(|(j, _)| *j)
            .collect();
        for j in against_me {
            if let Some(value) = self.dealt.get(&j).copied() {
                let mut msg = vec![TAG_REVEAL];
                msg.extend_from_slice(&j.0.to_be_bytes());
                put_scalar::<C>(&mut msg, &value);
                self.outbox
                    .push_back(Outgoing::ToAll(seal(ProtocolKind::Vss, &self.session, &msg)));
                msg.zeroize();
                self.reveals.insert((self.me, j), value);
            }
            self.answered.insert(j);
        }
        if !self.receivers.iter().all(|j| self.complaints.contains_key(j)) {
            return Ok(false);
        }
        if !self.receivers.contains(&self.me) {
            return Ok(true);
        }
        let disputed: Vec<(PartyId, PartyId)> = self
            .complaints
            .iter()
            .flat_map(|(j, accused)| accused.iter().map(move |d| (*d, *j)))
            .collect();
        let mut open = false;
        for (d, j) in disputed {
            if self.disqualified.contains(&d) {
                continue;
            }
            let Some(value) = self.reveals.get(&(d, j)) else {
                open = true;
                continue;
            };
            let holds = self
                .commitments
                .get(&d)
                .is_some_and(|coeffs| C::Point::generator() * value == eval_commitment::<C>(coeffs, j.x()));
            if holds {
                continue;
            }
            if self.pinned.is_some() {
                return Err(self.fail(TssError::InvalidShare {
                    culprit: d,
                    what: format!("the share it revealed on party {j}'s complaint (does not match its commitments)"),
                }));
            }
            self.disqualified.insert(d);
        }
        Ok(!open)
    }

    /// Complaints settled: sums this party's shares from the dealers that remain, keeps the
    /// result as its tentative share and confirms the transcript.
    fn confirm(&mut self) -> Result<(), TssError> {
        let qualified: Vec<PartyId> = self
            .dealers
            .iter()
            .copied()
            .filter(|d| !self.disqualified.contains(d))
            .collect();
        // A reshare disqualifies nobody (it fails instead); a DKG keeps at least t dealers, so
        // that at least one of them is honest while fewer than t parties collude.
        if self.pinned.is_none() && qualified.len() < self.threshold {
            let disqualified: Vec<String> = self.disqualified.iter().map(ToString::to_string).collect();
            return Err(self.fail(TssError::Protocol {
                suspect: self.disqualified.first().copied(),
                reason: format!(
                    "only {} dealers remain after disqualifying {}; a key of threshold {} needs as many",
                    qualified.len(),
                    disqualified.join(", "),
                    self.threshold
                ),
            }));
        }
        let accused = self.complaints.get(&self.me).cloned().unwrap_or_default();
        let mut secret = C::Scalar::ZERO;
        for d in &qualified {
            let share = if accused.contains(d) {
                self.reveals.get(&(*d, self.me))
            } else {
                self.shares.get(d)
            };
            let Some(share) = share else {
                secret.zeroize();
                return Err(self.fail(TssError::Protocol {
                    suspect: Some(*d),
                    reason: format!("internal: no share from dealer {d}"),
                }));
            };
            secret += share;
        }
        self.shares.values_mut().for_each(Zeroize::zeroize);
        self.shares.clear();
        let public = match self.package(&qualified) {
            Ok(public) => public,
            Err(e) => {
                secret.zeroize();
                return Err(self.fail(e));
            }
        };
        let share = KeyShare::from_parts(self.me, secret, public);
        secret.zeroize();
        self.tentative = Some(share.map_err(|e| self.fail(e))?);
        let transcript = self.transcript();
        self.confirmations.insert(self.me, transcript);
        let mut msg = vec![TAG_CONFIRM];
        msg.extend_from_slice(&transcript);
        self.outbox
            .push_back(Outgoing::ToAll(seal(ProtocolKind::Vss, &self.session, &msg)));
        self.phase = Phase::Confirming { transcript };
        Ok(())
    }

    /// The public key package the commitments of `qualified` define.
    fn package(&self, qualified: &[PartyId]) -> Result<PublicKeyPackage<C>, TssError> {
        let mut aggregate = vec![C::Point::identity(); self.threshold];
        for coeffs in qualified.iter().filter_map(|d| self.commitments.get(d)) {
            aggregate.iter_mut().zip(coeffs).for_each(|(a, c)| *a += c);
        }
        let public_key = aggregate.first().copied().unwrap_or_else(C::Point::identity);
        if let Some(pinned) = &self.pinned {
            if pinned.public_key != public_key {
                return Err(TssError::Protocol {
                    suspect: None,
                    reason: "reshared public key differs from the old one".into(),
                });
            }
        }
        let shares = self
            .receivers
            .iter()
            .map(|j| (*j, eval_commitment::<C>(&aggregate, j.x())))
            .collect();
        Ok(PublicKeyPackage {
            threshold: self.threshold,
            public_key,
            shares,
        })
    }

    fn finish_confirming(&mut self, transcript: &[u8; 32]) -> Result<KeyShare<C>, TssError> {
        let differing = self
            .confirmations
            .iter()
            .find(|(p, h)| !self.disqualified.contains(p) && *h != transcript)
            .map(|(p, _)| *p);
        if let Some(suspect) = differing {
            return Err(self.fail(TssError::Protocol {
                suspect: Some(suspect),
                reason: format!("party {suspect} saw different commitments: it lies or a dealer equivocated"),
            }));
        }
        match self.tentative.take() {
            Some(share) => Ok(share),
            None => Err(self.fail(TssError::Protocol {
                suspect: None,
                reason: "internal: no tentative share".into(),
            })),
        }
    }

    /// This party's share as it stands once the complaints are settled and its confirmation is
    /// sent, before (or without) every other confirmation: the caller stores it before the
    /// confirmation leaves, so that a run the others finish is never lost to a crash or to a
    /// confirmation that did not arrive. It is the key's share only if the run (or a record the
    /// others made of its public keys) says so. Kept after a failed confirmation; None before.
    pub fn tentative(&self) -> Option<&KeyShare<C>> {
        self.tentative.as_ref()
    }

    /// Dealers disqualified in this run (their revealed share failed its check).
    pub fn disqualified(&self) -> Vec<PartyId> {
        self.disqualified.iter().copied().collect()
    }

    /// Every complaint this party has seen, as (complainer, accused dealer).
    pub fn complaints(&self) -> Vec<(PartyId, PartyId)> {
        self.complaints
            .iter()
            .flat_map(|(j, accused)| accused.iter().map(move |d| (*j, *d)))
            .collect()
    }
}

impl<C: Curve> Protocol for Vss<C> {
    type Output = Option<KeyShare<C>>;

    fn me(&self) -> PartyId {
        self.me
    }

    fn session(&self) -> SessionId {
        self.session
    }

    fn handle(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), TssError> {
        match &self.phase {
            Phase::Failed(e) => return Err(e.clone()),
            Phase::Finished => return Err(TssError::Terminated),
            _ => {}
        }
        if from == self.me || !(self.dealers.contains(&from) || self.receivers.contains(&from)) {
            return Err(TssError::UnknownSender { from });
        }
        let payload = open(ProtocolKind::Vss, &self.session, from, bytes)?;
        let mut r = Reader::new(from, payload);
        match r.u8("message tag")? {
            TAG_COMMIT => self.on_commit(r, from),
            TAG_SHARE => self.on_share(r, from),
            TAG_CONFIRM => self.on_confirm(r, from),
            TAG_COMPLAIN => self.on_complain(r, from),
            TAG_REVEAL => self.on_reveal(r, from),
            tag => Err(TssError::malformed(from, format!("unknown message tag {tag}"))),
        }
    }

    fn poke(&mut self) -> Result<Step<Self::Output>, TssError> {
        loop {
            if let Some(msg) = self.outbox.pop_front() {
                return Ok(Step::Send(msg));
            }
            let receiver = self.receivers.contains(&self.me);
            match std::mem::replace(&mut self.phase, Phase::Finished) {
                Phase::Failed(e) => {
                    self.phase = Phase::Failed(e.clone());
                    return Err(e);
                }
                Phase::Finished => return Err(TssError::Terminated),
                Phase::Dealing => {
                    self.phase = Phase::Dealing;
                    let ready = !receiver
                        || self
                            .dealers
                            .iter()
                            .all(|d| self.commitments.contains_key(d) && self.shares.contains_key(d));
                    if !ready {
                        return Ok(Step::Wait);
                    }
                    self.finish_dealing();
                }
                Phase::Complaining => {
                    self.phase = Phase::Complaining;
                    let settled = self.settle_complaints()?;
                    if !self.outbox.is_empty() {
                        continue;
                    }
                    if !settled {
                        return Ok(Step::Wait);
                    }
                    if !receiver {
                        self.phase = Phase::Finished;
                        return Ok(Step::Done(None));
                    }
                    self.confirm()?;
                }
                Phase::Confirming { transcript } => {
                    let all_in = self
                        .receivers
                        .iter()
                        .filter(|j| !self.disqualified.contains(j))
                        .all(|j| self.confirmations.contains_key(j));
                    if !all_in {
                        self.phase = Phase::Confirming { transcript };
                        return Ok(Step::Wait);
                    }
                    let share = self.finish_confirming(&transcript)?;
                    return Ok(Step::Done(Some(share)));
                }
            }
        }
    }

    fn awaiting(&self) -> Vec<PartyId> {
        let mut from = BTreeSet::new();
        match &self.phase {
            Phase::Dealing => {
                let receiver = self.receivers.contains(&self.me);
                from.extend(
                    self.dealers
                        .iter()
                        .filter(|d| !self.commitments.contains_key(d) || (receiver && !self.shares.contains_key(d))),
                );
            }
            Phase::Complaining => {
                from.extend(self.receivers.iter().filter(|j| !self.complaints.contains_key(j)));
                for (j, accused) in &self.complaints {
                    from.extend(
                        accused
                            .iter()
                            .filter(|d| !self.disqualified.contains(d) && !self.reveals.contains_key(&(**d, *j))),
                    );
                }
            }
            Phase::Confirming { .. } => from.extend(
                self.receivers
                    .iter()
                    .filter(|j| !self.disqualified.contains(j) && !self.confirmations.contains_key(j)),
            ),
            Phase::Finished | Phase::Failed(_) => {}
        }
        from.remove(&self.me);
        from.into_iter().collect()
    }
}

fn check_threshold(n: usize, threshold: usize) -> Result<(), TssError> {
    if !(MIN_PARTIES..=MAX_PARTIES).contains(&n) {
        return Err(TssError::BadParameters(format!(
            "{n} parties; a key is shared among {MIN_PARTIES} to {MAX_PARTIES}"
        )));
    }
    if !(2..=n).contains(&threshold) {
        return Err(TssError::BadParameters(format!(
            "threshold {threshold} is impossible with {n} parties"
        )));
    }
    Ok(())
}

fn check_set(parties: &[PartyId], threshold: usize, me: PartyId) -> Result<Vec<PartyId>, TssError> {
    let parties = sorted_unique(parties).ok_or_else(|| TssError::BadParameters("a party appears twice".into()))?;
    check_threshold(parties.len(), threshold)?;
    if !parties.contains(&me) {
        return Err(TssError::BadParameters(format!(
            "party {me} is not in the participant list"
        )));
    }
    Ok(parties)
}
