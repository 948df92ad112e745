//! Test-only misbehaviour inside protocol runs ([`crate::Fault`], switched on only in a build
//! with the `test-faults` feature): wrappers around a [`Protocol`] that change what it sends.
//! They know two things of `sigil-tss`'s wire format: a message starts with a 34-byte header
//! (version, kind, session id) followed by its tag, and a VSS confirmation's tag is 3.
//! Uses nothing else of the node.

use std::collections::VecDeque;

use sigil_tss::{Outgoing, PartyId, Protocol, SessionId, Step, TssError};

/// Bytes before a protocol message's tag.
const HEADER: usize = 34;
/// The tag of a VSS confirmation (the hash of every commitment its sender saw).
const VSS_CONFIRM: u8 = 3;

/// [`crate::Fault::BadReshareDealer`]: every private message (a dealt share) leaves with its
/// last byte changed, still a valid scalar, so the receiver's commitment check catches it and
/// names this node.
pub struct CorruptShares<P>(pub P);

impl<P: Protocol> Protocol for CorruptShares<P> {
    type Output = P::Output;

    fn me(&self) -> PartyId {
        self.0.me()
    }

    fn session(&self) -> SessionId {
        self.0.session()
    }

    fn handle(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), TssError> {
        self.0.handle(from, bytes)
    }

    fn poke(&mut self) -> Result<Step<P::Output>, TssError> {
        Ok(match self.0.poke()? {
            Step::Send(Outgoing::ToOne(to, mut bytes)) => {
                if let Some(last) = bytes.last_mut() {
                    *last ^= 1;
                }
                Step::Send(Outgoing::ToOne(to, bytes))
            }
            other => other,
        })
    }
}

/// [`crate::Fault::WithholdDkgConfirmation`]: this node's VSS confirmation goes to every
/// participant but `victim`, so the others finish the run and `victim` never does (a party that
/// equivocates by silence: the unreliable broadcast the first DKG must survive).
pub struct WithholdConfirmation<P> {
    inner: P,
    victim: PartyId,
    others: Vec<PartyId>,
    queue: VecDeque<Outgoing>,
}

impl<P: Protocol> WithholdConfirmation<P> {
    /// Wraps `inner`, a run among `participants`, withholding from `victim`.
    pub fn new(inner: P, participants: &[PartyId], victim: PartyId) -> Self {
        let me = inner.me();
        Self {
            others: participants
                .iter()
                .copied()
                .filter(|p| *p != me && *p != victim)
                .collect(),
            inner,
            victim,
            queue: VecDeque::new(),
        }
    }
}

impl<P: Protocol> Protocol for WithholdConfirmation<P> {
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
                tracing::warn!(victim = %self.victim, "TEST FAULT: withholding a DKG confirmation");
                self.queue
                    .extend(self.others.iter().map(|p| Outgoing::ToOne(*p, bytes.clone())));
                self.poke()
            }
            other => Ok(other),
        }
    }
}
