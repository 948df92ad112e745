//! Adapter from cait-sith's `poke`/`message` protocols to [`Protocol`]: adds the envelope with the
//! session id, refuses strangers and self-messages, and turns any panic inside cait-sith into a typed
//! error so that no input can crash the caller.

use std::panic::{catch_unwind, AssertUnwindSafe};

use cait_sith::protocol::{Action, Participant, Protocol as CsProtocol};

use crate::protocol::{Outgoing, Protocol, Step};
use crate::wire::{open, seal, ProtocolKind};
use crate::{PartyId, SessionId, TssError};

/// cait-sith prefixes every message with a 20-byte channel tag and an 8-byte waitpoint.
const CS_HEADER_LEN: usize = 28;

/// cait-sith buffers every message until the protocol asks for it, so a peer could grow our memory
/// without bound. Honest peers send far fewer than this per run (a triple needs a few dozen).
pub const MAX_MESSAGES_PER_PEER: usize = 512;

pub(crate) type Finish<T, O> = Box<dyn FnOnce(T) -> Result<O, TssError> + Send>;

/// A cait-sith protocol run behind Sigil's [`Protocol`] interface.
pub struct CaitSithRun<T, O> {
    kind: ProtocolKind,
    session: SessionId,
    me: PartyId,
    participants: Vec<PartyId>,
    inner: Box<dyn CsProtocol<Output = T> + Send>,
    finish: Option<Finish<T, O>>,
    last_from: Option<PartyId>,
    received: std::collections::BTreeMap<PartyId, usize>,
    failed: Option<TssError>,
}

impl<T, O> CaitSithRun<T, O> {
    pub(crate) fn new(
        kind: ProtocolKind,
        session: SessionId,
        me: PartyId,
        participants: Vec<PartyId>,
        inner: Box<dyn CsProtocol<Output = T> + Send>,
        finish: Finish<T, O>,
    ) -> Self {
        Self {
            kind,
            session,
            me,
            participants,
            inner,
            finish: Some(finish),
            last_from: None,
            received: Default::default(),
            failed: None,
        }
    }

    fn fail(&mut self, err: TssError) -> TssError {
        self.failed = Some(err.clone());
        err
    }
}

impl<T, O> std::fmt::Debug for CaitSithRun<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaitSithRun")
            .field("kind", &self.kind)
            .field("session", &self.session)
            .field("me", &self.me)
            .field("participants", &self.participants)
            .finish_non_exhaustive()
    }
}

pub(crate) fn participants(parties: &[PartyId]) -> Vec<Participant> {
    parties.iter().map(|p| Participant::from(p.0)).collect()
}

impl<T, O> Protocol for CaitSithRun<T, O> {
    type Output = O;

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
        if self.finish.is_none() {
            return Err(TssError::Terminated);
        }
        if from == self.me || !self.participants.contains(&from) {
            return Err(TssError::UnknownSender { from });
        }
        let payload = open(self.kind, &self.session, from, bytes)?;
        let count = self.received.entry(from).or_default();
        if *count >= MAX_MESSAGES_PER_PEER {
            return Err(TssError::malformed(
                from,
                format!("more than {MAX_MESSAGES_PER_PEER} messages in one run"),
            ));
        }
        *count += 1;
        if payload.len() < CS_HEADER_LEN {
            return Err(TssError::malformed(
                from,
                format!("{} bytes is shorter than a protocol header", payload.len()),
            ));
        }
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| {
            inner.message(Participant::from(from.0), payload.to_vec())
        })) {
            Ok(()) => {
                self.last_from = Some(from);
                Ok(())
            }
            Err(_) => Err(self.fail(TssError::Protocol {
                suspect: Some(from),
                reason: "message crashed the protocol".into(),
            })),
        }
    }

    fn poke(&mut self) -> Result<Step<O>, TssError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finish.is_none() {
            return Err(TssError::Terminated);
        }
        let inner = &mut self.inner;
        let action = match catch_unwind(AssertUnwindSafe(|| inner.poke())) {
            Ok(Ok(action)) => action,
            Ok(Err(e)) => {
                let suspect = self.last_from;
                return Err(self.fail(TssError::Protocol {
                    suspect,
                    reason: e.to_string(),
                }));
            }
            Err(_) => {
                let suspect = self.last_from;
                return Err(self.fail(TssError::Protocol {
                    suspect,
                    reason: "the protocol crashed".into(),
                }));
            }
        };
        Ok(match action {
            Action::Wait => Step::Wait,
            Action::SendMany(m) => Step::Send(Outgoing::ToAll(seal(self.kind, &self.session, &m))),
            Action::SendPrivate(to, m) => Step::Send(Outgoing::ToOne(
                PartyId(u32::from(to)),
                seal(self.kind, &self.session, &m),
            )),
            Action::Return(out) => {
                let finish = self.finish.take().ok_or(TssError::Terminated)?;
                Step::Done(finish(out).map_err(|e| self.fail(e))?)
            }
        })
    }
}
