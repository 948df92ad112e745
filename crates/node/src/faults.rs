//! Test-only misbehaviour inside protocol runs ([`crate::Fault`], switched on only in a build
//! with the `test-faults` feature): wrappers around a [`Protocol`] that change what it sends.
//! They know two things of `sigil-tss`'s wire format: a message starts with a 34-byte header
//! (version, kind, session id) followed by its tag, and VSS tags 3 (a confirmation: the hash of
//! the transcript its sender saw) and 5 (a share revealed on a complaint).
//! Uses nothing else of the node.

use std::collections::VecDeque;

use sigil_tss::{Outgoing, PartyId, Protocol, SessionId, Step, TssError};

/// Bytes before a protocol message's tag.
const HEADER: usize = 34;
/// The tag of a VSS confirmation.
const VSS_CONFIRM: u8 = 3;
/// The tag of a VSS share revealed on a complaint.
const VSS_REVEAL: u8 = 5;

fn flip_last(bytes: &mut [u8]) {
    if let Some(last) = bytes.last_mut() {
        *last ^= 1;
    }
}

/// Dealt shares that leave with their last byte changed, still a valid scalar, so the
/// receiver's commitment check catches them and its complaint names this node.
pub struct CorruptShares<P> {
    inner: P,
    /// Only the share to this party (else every share).
    only: Option<PartyId>,
    /// Whether the shares revealed on complaints are corrupted too (a dealer then proven to
    /// cheat) or true (a dealer whose slip the complaint round repairs).
    reveals: bool,
}

impl<P> CorruptShares<P> {
    /// [`crate::Fault::BadReshareDealer`]: every share, and every revealed one.
    pub fn all(inner: P) -> Self {
        Self {
            inner,
            only: None,
            reveals: true,
        }
    }

    /// [`crate::Fault::BadDkgDealer`]: the share to `victim` only; the revealed share is true.
    pub fn one(inner: P, victim: PartyId) -> Self {
        Self {
            inner,
            only: Some(victim),
            reveals: false,
        }
    }
}

impl<P: Protocol> Protocol for CorruptShares<P> {
    type Output = P::Output;

    fn me(&self) -> PartyId {
        self.inner.me()
    }

    fn session(&self) -> SessionId {
        self.inner.session()
    }

    fn handle(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), TssError> {
        self.inner.handle(from, bytes)
    }

    fn poke(&mut self) -> Result<Step<P::Output>, TssError> {
        Ok(match self.inner.poke()? {
            Step::Send(Outgoing::ToOne(to, mut bytes)) if self.only.is_none_or(|v| v == to) => {
                tracing::warn!(to = %to, "TEST FAULT: dealing a bad share");
                flip_last(&mut bytes);
                Step::Send(Outgoing::ToOne(to, bytes))
            }
            Step::Send(Outgoing::ToAll(mut bytes)) if self.reveals && bytes.get(HEADER) == Some(&VSS_REVEAL) => {
                tracing::warn!("TEST FAULT: revealing a bad share");
                flip_last(&mut bytes);
                Step::Send(Outgoing::ToAll(bytes))
            }
            other => other,
        })
    }

    fn awaiting(&self) -> Vec<PartyId> {
        self.inner.awaiting()
    }
}

/// How [`SkewConfirmation`] treats its victim.
#[derive(Clone, Copy, Debug)]
pub enum Skew {
    /// [`crate::Fault::WithholdDkgConfirmation`]: the victim gets no confirmation (a party that
    /// equivocates by silence: the unreliable broadcast the first DKG must survive).
    Withhold,
    /// [`crate::Fault::EquivocateDkgConfirmation`]: the victim gets a confirmation of another
    /// transcript.
    Equivocate,
}

/// This node's VSS confirmation goes as it should to every participant but `victim`, so the
/// others finish the run and `victim` does not.
pub struct SkewConfirmation<P> {
    inner: P,
    victim: PartyId,
    skew: Skew,
    others: Vec<PartyId>,
    queue: VecDeque<Outgoing>,
}

impl<P: Protocol> SkewConfirmation<P> {
    /// Wraps `inner`, a run among `participants`, skewing what `victim` gets.
    pub fn new(inner: P, participants: &[PartyId], victim: PartyId, skew: Skew) -> Self {
        let me = inner.me();
        Self {
            others: participants
                .iter()
                .copied()
                .filter(|p| *p != me && *p != victim)
                .collect(),
            inner,
            victim,
            skew,
            queue: VecDeque::new(),
        }
    }
}

impl<P: Protocol> Protocol for SkewConfirmation<P> {
    type Output = P::Output;

    fn me(&self) -> PartyId {
        self.inner.me()
    }

    fn session(&self) -> SessionId {
        self.inner.session()
    }

    fn handle(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), TssError> {
        self.inner.handle(from, bytes)
    }

    fn poke(&mut self) -> Result<Step<P::Output>, TssError> {
        if let Some(next) = self.queue.pop_front() {
            return Ok(Step::Send(next));
        }
        match self.inner.poke()? {
            Step::Send(Outgoing::ToAll(bytes)) if bytes.get(HEADER) == Some(&VSS_CONFIRM) => {
                tracing::warn!(victim = %self.victim, skew = ?self.skew, "TEST FAULT: skewing a DKG confirmation");
                self.queue
                    .extend(self.others.iter().map(|p| Outgoing::ToOne(*p, bytes.clone())));
                if let Skew::Equivocate = self.skew {
                    let mut other = bytes;
                    flip_last(&mut other);
                    self.queue.push_back(Outgoing::ToOne(self.victim, other));
                }
                self.poke()
            }
            other => Ok(other),
        }
    }

    fn awaiting(&self) -> Vec<PartyId> {
        self.inner.awaiting()
    }
}
