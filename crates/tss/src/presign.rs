//! Presigning among exactly one signing set, with a public commitment to every holder's shares.
//!
//! This is cait-sith's presigning protocol (spec §1–2: one broadcast round over two Beaver triples)
//! and an echo round that checks every party saw the same messages,
//! with one addition: each party also publishes commitments to the triple shares it uses, so that
//! at the end every holder knows, for every holder `j`,
//!
//! ```text
//! K_j = k_j·G          (k_j: j's share of k, where R = k⁻¹·G)
//! Σ_j = σ_j·G          (σ_j: j's share of σ = k·x)
//! ```
//!
//! A signature share `s_j = m·k'_j + r'·σ'_j` is then checkable on its own against `(K_j, Σ_j)`
//! ([`crate::ecdsa::combine`] names a bad share from exactly `t` shares, with nothing to out-vote).
//!
//! # The round
//!
//! With `λ_j` the Lagrange coefficients over the signing set, triple 0 = `(k, d, kd)` and
//! triple 1 = `(a, b, c = ab)`, party `j` broadcasts the additive values cait-sith opens,
//! `kd_j = λ_j·kd_j'`, `ka_j = λ_j·(k_j + a_j)`, `xb_j = λ_j·(x_j + b_j)`, and the points
//! `K_j = k_j·G, KD_j = kd_j'·G, A_j = a_j·G, B_j = b_j·G, C_j = c_j·G` (shares of triple 0's `k`
//! and `kd`, of triple 1's `a`, `b`, `c`). Every party checks, naming `j` on failure,
//!
//! ```text
//! kd_j·G = λ_j·KD_j     ka_j·G = λ_j·(K_j + A_j)     xb_j·G = λ_j·(X_j + B_j)
//! ```
//!
//! (`X_j` is `j`'s public share of the root key), and that the commitments interpolate to the
//! triples' public values: `Σ λ_j·K_j = K`, `Σ λ_j·KD_j = KD`, `Σ λ_j·A_j = A`, `Σ λ_j·B_j = B`,
//! `Σ λ_j·C_j = C`. Then `kd = Σ kd_j`, `ka = Σ ka_j`, `xb = Σ xb_j`, `R = D·kd⁻¹`,
//! `σ_i = ka·x_i − xb·a_i + c_i` (a degree `t−1` sharing of `k·x`), and everybody computes
//! `Σ_j = ka·X_j − xb·A_j + C_j`. A second round (an echo) has every party broadcast a hash of
//! all first-round messages it received; any difference aborts the run, so every honest holder
//! ends up with the same commitments even if a party sent different values to different parties.
//!
//! # Why the commitments make share checks sound
//!
//! An honest holder's signature share always matches its commitments. The aggregate checks give
//! `Σ λ_j·K_j = k·G` and `Σ λ_j·Σ_j = ka·X − xb·A + C = σ·G` whatever the other parties publish.
//! If every share matches its commitments, the combination `s = Σ λ_j·s_j` therefore satisfies
//! `s·G = m·K' + r'·Σ'` for the true `K'`, `Σ'`, i.e. it is the valid signature. So when a
//! combination does not verify, at least one share misses its commitments, and every share that
//! misses them comes from a party that deviated (an honest one never does).
//!
//! # Why publishing them leaks nothing
//!
//! `K_j, A_j, B_j, C_j, KD_j` are Feldman-style commitments to Shamir shares whose secrets' points
//! (`K, A, B, C, KD` of the triples, and `R`, `X`) are public already. The signing set has exactly
//! `t` members, so a coalition of the other `t − 1` knows its own shares, and the honest party's
//! commitment is determined by them and the public point (`K_h = λ_h⁻¹·(K − Σ_{j≠h} λ_j·K_j)`):
//! the coalition can compute every published value itself. Smaller coalitions learn only points
//! they could simulate from random shares consistent with the public points. `Σ_j` is a public
//! function of the other published values. The opened scalars `kd`, `ka`, `xb` are cait-sith's own.

use std::collections::BTreeMap;

use cait_sith::triples::{TriplePub, TripleShare};
use ff::PrimeField;
use k256::elliptic_curve::group::Group;
use k256::elliptic_curve::ops::LinearCombination;
use k256::{AffinePoint, ProjectivePoint, Scalar};
use zeroize::Zeroize;

use crate::curve::lagrange;
use crate::ecdsa::{compressed, PresignCommitments, Presignature};
use crate::protocol::{Outgoing, Protocol, Step};
use crate::wire::{keep_once, open, seal, ProtocolKind, Reader};
use crate::{PartyId, Secp256k1, SessionId, TssError};

/// Format of the first presigning message (distinguishes it from cait-sith's messages).
const ROUND_FORMAT: u8 = 2;
/// Format of the echo: a hash of every first-round message a party received.
const ECHO_FORMAT: u8 = 3;

/// What each party broadcasts.
#[derive(Clone, PartialEq, Eq)]
struct Round {
    kd: Scalar,
    ka: Scalar,
    xb: Scalar,
    big_k: ProjectivePoint,
    big_kd: ProjectivePoint,
    big_a: ProjectivePoint,
    big_b: ProjectivePoint,
    big_c: ProjectivePoint,
}

impl Round {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 3 * 32 + 5 * 33);
        out.push(ROUND_FORMAT);
        for s in [&self.kd, &self.ka, &self.xb] {
            out.extend_from_slice(&s.to_repr());
        }
        for p in [&self.big_k, &self.big_kd, &self.big_a, &self.big_b, &self.big_c] {
            out.extend_from_slice(&compressed(&p.to_affine()));
        }
        out
    }

    fn from_bytes(from: PartyId, bytes: &[u8]) -> Result<Self, TssError> {
        let mut r = Reader::new(from, bytes);
        let format = r.u8("message format")?;
        if format != ROUND_FORMAT {
            return Err(TssError::malformed(
                from,
                format!("presigning message format {format}, expected {ROUND_FORMAT}"),
            ));
        }
        let round = Round {
            kd: r.scalar::<Secp256k1>("kd share")?,
            ka: r.scalar::<Secp256k1>("ka share")?,
            xb: r.scalar::<Secp256k1>("xb share")?,
            big_k: r.nonzero_point::<Secp256k1>("K commitment")?,
            big_kd: r.nonzero_point::<Secp256k1>("KD commitment")?,
            big_a: r.nonzero_point::<Secp256k1>("A commitment")?,
            big_b: r.nonzero_point::<Secp256k1>("B commitment")?,
            big_c: r.nonzero_point::<Secp256k1>("C commitment")?,
        };
        r.finish()?;
        Ok(round)
    }
}

/// This party's secret inputs, wiped on drop.
struct Secrets {
    k: Scalar,
    a: Scalar,
    c: Scalar,
    x: Scalar,
}

impl Drop for Secrets {
    fn drop(&mut self) {
        self.k.zeroize();
        self.a.zeroize();
        self.c.zeroize();
        self.x.zeroize();
    }
}

enum State {
    /// Collecting first-round messages.
    Running,
    /// Every first-round message is in; collecting the others' hashes of them.
    Echoing([u8; 32]),
    Failed(TssError),
    Done,
}

/// One party's run of presigning (see the module docs).
pub struct Presigning {
    session: SessionId,
    me: PartyId,
    signers: Vec<PartyId>,
    lambdas: BTreeMap<PartyId, Scalar>,
    public_shares: BTreeMap<PartyId, ProjectivePoint>,
    triple0: TriplePub<k256::Secp256k1>,
    triple1: TriplePub<k256::Secp256k1>,
    secrets: Secrets,
    received: BTreeMap<PartyId, Round>,
    echoes: BTreeMap<PartyId, [u8; 32]>,
    outbox: Option<Vec<u8>>,
    state: State,
}

impl std::fmt::Debug for Presigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presigning")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("signers", &self.signers)
            .finish_non_exhaustive()
    }
}

/// The inputs of one party, checked by [`crate::ecdsa::presigning`].
pub(crate) struct Inputs<'a> {
    pub session: SessionId,
    pub me: PartyId,
    pub signers: Vec<PartyId>,
    pub public_shares: BTreeMap<PartyId, ProjectivePoint>,
    pub secret: &'a Scalar,
    pub triple0: (&'a TripleShare<k256::Secp256k1>, &'a TriplePub<k256::Secp256k1>),
    pub triple1: (&'a TripleShare<k256::Secp256k1>, &'a TriplePub<k256::Secp256k1>),
}

impl Presigning {
    pub(crate) fn start(inputs: Inputs<'_>) -> Result<Self, TssError> {
        let mut lambdas = BTreeMap::new();
        for p in &inputs.signers {
            lambdas.insert(*p, lagrange::<Secp256k1>(*p, &inputs.signers)?);
        }
        let lambda = *lambdas
            .get(&inputs.me)
            .ok_or_else(|| TssError::BadParameters("this party is not a signer".into()))?;
        let (share0, _) = inputs.triple0;
        let (share1, _) = inputs.triple1;
        let g = ProjectivePoint::GENERATOR;
        let mine = Round {
            kd: lambda * share0.c,
            ka: lambda * (share0.a + share1.a),
            xb: lambda * (inputs.secret + share1.b),
            big_k: g * share0.a,
            big_kd: g * share0.c,
            big_a: g * share1.a,
            big_b: g * share1.b,
            big_c: g * share1.c,
        };
        let outbox = Some(seal(ProtocolKind::Presign, &inputs.session, &mine.to_bytes()));
        let mut received = BTreeMap::new();
        received.insert(inputs.me, mine);
        Ok(Self {
            session: inputs.session,
            me: inputs.me,
            signers: inputs.signers,
            lambdas,
            public_shares: inputs.public_shares,
            triple0: inputs.triple0.1.clone(),
            triple1: inputs.triple1.1.clone(),
            secrets: Secrets {
                k: share0.a,
                a: share1.a,
                c: share1.c,
                x: *inputs.secret,
            },
            received,
            echoes: BTreeMap::new(),
            outbox,
            state: State::Running,
        })
    }

    /// The hash of every first-round message, which every party must have seen alike: a party
    /// that sent different values (say, commitments) to different parties is caught here, before
    /// anyone holds a presignature whose commitments differ between holders.
    fn transcript(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new_with_prefix(b"sigil/presign/echo/v1");
        h.update(self.session.0);
        for (party, round) in &self.received {
            h.update(party.0.to_be_bytes());
            h.update(round.to_bytes());
        }
        h.finalize().into()
    }

    fn fail(&mut self, err: TssError) -> TssError {
        self.state = State::Failed(err.clone());
        err
    }

    /// Every message is in: check them, then compute the presignature.
    fn finish(&mut self) -> Result<Presignature, TssError> {
        let g = ProjectivePoint::GENERATOR;
        let lambda = |p: &PartyId| self.lambdas.get(p).copied().unwrap_or(Scalar::ZERO);
        let (mut kd, mut ka, mut xb) = (Scalar::ZERO, Scalar::ZERO, Scalar::ZERO);
        let mut sums = [ProjectivePoint::IDENTITY; 5];
        for (party, round) in &self.received {
            let l = lambda(party);
            let x_j = self
                .public_shares
                .get(party)
                .copied()
                .unwrap_or(ProjectivePoint::IDENTITY);
            let checks = [
                (round.kd, round.big_kd, "kd share (does not match its commitment)"),
                (
                    round.ka,
                    round.big_k + round.big_a,
                    "ka share (does not match its commitments)",
                ),
                (
                    round.xb,
                    x_j + round.big_b,
                    "xb share (does not match its key share and commitment)",
                ),
            ];
            for (value, committed, what) in checks {
                if !bool::from(ProjectivePoint::lincomb(&g, &value, &committed, &-l).is_identity()) {
                    let culprit = *party;
                    return Err(self.fail(TssError::InvalidShare {
                        culprit,
                        what: what.into(),
                    }));
                }
            }
            kd += round.kd;
            ka += round.ka;
            xb += round.xb;
            for (sum, point) in sums
                .iter_mut()
                .zip([round.big_k, round.big_kd, round.big_a, round.big_b, round.big_c])
            {
                *sum += point * l;
            }
        }
        let expected: [ProjectivePoint; 5] = [
            self.triple0.big_a.into(),
            self.triple0.big_c.into(),
            self.triple1.big_a.into(),
            self.triple1.big_b.into(),
            self.triple1.big_c.into(),
        ];
        if sums != expected {
            return Err(self.fail(TssError::Protocol {
                suspect: None,
                reason: "the signers' commitments do not interpolate to the triples' public values".into(),
            }));
        }
        let kd_inv: Scalar = Option::from(kd.invert()).ok_or_else(|| {
            self.fail(TssError::Protocol {
                suspect: None,
                reason: "kd is zero".into(),
            })
        })?;
        let big_r: AffinePoint = (ProjectivePoint::from(self.triple0.big_b) * kd_inv).to_affine();
        if bool::from(ProjectivePoint::from(big_r).is_identity()) {
            return Err(self.fail(TssError::Protocol {
                suspect: None,
                reason: "the nonce point is the identity".into(),
            }));
        }
        let sigma = ka * self.secrets.x - xb * self.secrets.a + self.secrets.c;
        let holders = self
            .received
            .iter()
            .map(|(party, round)| {
                let x_j = self
                    .public_shares
                    .get(party)
                    .copied()
                    .unwrap_or(ProjectivePoint::IDENTITY);
                let sigma_j = ProjectivePoint::lincomb(&x_j, &ka, &round.big_a, &-xb) + round.big_c;
                (*party, round.big_k.to_affine(), sigma_j.to_affine())
            })
            .collect();
        let commitments = PresignCommitments::new(big_r, holders)?;
        Ok(Presignature::from_parts(
            self.me,
            self.signers.clone(),
            self.secrets.k,
            sigma,
            commitments,
        ))
    }
}

impl Protocol for Presigning {
    type Output = Presignature;

    fn me(&self) -> PartyId {
        self.me
    }

    fn session(&self) -> SessionId {
        self.session
    }

    fn handle(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), TssError> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done => return Err(TssError::Terminated),
            State::Running | State::Echoing(_) => {}
        }
        if from == self.me || !self.signers.contains(&from) {
            return Err(TssError::UnknownSender { from });
        }
        let payload = open(ProtocolKind::Presign, &self.session, from, bytes)?;
        if payload.first() == Some(&ECHO_FORMAT) {
            let mut r = Reader::new(from, payload.get(1..).unwrap_or_default());
            let hash = r.array::<32>("echo")?;
            r.finish()?;
            return keep_once(&mut self.echoes, from, hash, from, "presigning echo").map_err(|e| self.fail(e));
        }
        if matches!(self.state, State::Echoing(_)) && !self.received.contains_key(&from) {
            return Err(TssError::malformed(from, "a first-round message after the echo"));
        }
        let round = Round::from_bytes(from, payload)?;
        keep_once(&mut self.received, from, round, from, "presigning").map_err(|e| self.fail(e))
    }

    fn poke(&mut self) -> Result<Step<Presignature>, TssError> {
        if let Some(msg) = self.outbox.take() {
            return Ok(Step::Send(Outgoing::ToAll(msg)));
        }
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            State::Done => Err(TssError::Terminated),
            State::Running if self.received.len() < self.signers.len() => Ok(Step::Wait),
            State::Running => {
                let transcript = self.transcript();
                self.state = State::Echoing(transcript);
                let mut msg = vec![ECHO_FORMAT];
                msg.extend_from_slice(&transcript);
                Ok(Step::Send(Outgoing::ToAll(seal(
                    ProtocolKind::Presign,
                    &self.session,
                    &msg,
                ))))
            }
            State::Echoing(_) if self.echoes.len() + 1 < self.signers.len() => Ok(Step::Wait),
            State::Echoing(transcript) => {
                let transcript = *transcript;
                if let Some((party, _)) = self.echoes.iter().find(|(_, h)| **h != transcript) {
                    let suspect = *party;
                    return Err(self.fail(TssError::Protocol {
                        suspect: None,
                        reason: format!(
                            "party {suspect} saw other first-round messages than this party: someone sent different values to different parties"
                        ),
                    }));
                }
                let presignature = self.finish()?;
                self.state = State::Done;
                Ok(Step::Done(presignature))
            }
        }
    }
}
