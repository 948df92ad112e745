//! The sans-IO protocol interface and an in-memory runner.
//!
//! A protocol object is one party's view of one run. The owner feeds it every message addressed to it
//! with [`Protocol::handle`] and calls [`Protocol::poke`] until it says [`Step::Wait`] (needs more input)
//! or [`Step::Done`]. Sockets, timers, retries and storage belong to the caller.

use std::collections::{BTreeMap, VecDeque};

use crate::{PartyId, SessionId, TssError};

/// A message the protocol wants delivered. `Debug` prints sizes only: private messages carry shares.
#[derive(Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// To every other participant of the session.
    ToAll(Vec<u8>),
    /// To one participant only; the transport must keep it confidential.
    ToOne(PartyId, Vec<u8>),
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ToAll(bytes) => write!(f, "ToAll({} bytes)", bytes.len()),
            Self::ToOne(to, bytes) => write!(f, "ToOne({to}, {} bytes)", bytes.len()),
        }
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InFlight({} -> {}, {} bytes)", self.from, self.to, self.bytes.len())
    }
}

/// What a protocol wants next.
#[derive(Debug)]
pub enum Step<T> {
    /// Deliver this message, then poke again.
    Send(Outgoing),
    /// Nothing to do until another message arrives.
    Wait,
    /// Finished. Poking again returns [`TssError::Terminated`].
    Done(T),
}

/// One party's state machine for one protocol run.
pub trait Protocol {
    /// What a successful run yields.
    type Output;

    /// This party.
    fn me(&self) -> PartyId;

    /// The session every message of this run carries.
    fn session(&self) -> SessionId;

    /// Accepts a message from `from`, in any order relative to the others. Malformed or foreign input
    /// is an error naming `from`; an identical duplicate is accepted and ignored; the protocol never
    /// panics on any input. An error here does not end the run unless the message was an attack the
    /// run cannot survive (two conflicting versions of a message, a share that fails its check): in
    /// that case the following [`poke`](Protocol::poke) returns the same error.
    fn handle(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), TssError>;

    /// Advances the protocol as far as the input so far allows.
    fn poke(&mut self) -> Result<Step<Self::Output>, TssError>;

    /// The parties whose next message this party waits for, as far as it can tell: what a
    /// caller reports when its deadline passes. Not proof against them: past a protocol's first
    /// round a third party can make an honest party wait for another honest one (in a VSS, an
    /// accusation sent to some receivers only). Empty when it does not know.
    fn awaiting(&self) -> Vec<PartyId> {
        Vec::new()
    }
}

/// A message in flight inside [`run_in_memory_with`].
#[derive(Clone)]
pub struct InFlight {
    /// Sender.
    pub from: PartyId,
    /// Recipient.
    pub to: PartyId,
    /// Encoded message; a test may rewrite it.
    pub bytes: Vec<u8>,
}

/// Runs every party in this thread, delivering each message at once, until all are done.
///
/// Parties whose id is not in `parties` (a sender's `ToOne` to a stranger) are an error.
pub fn run_in_memory<P: Protocol>(parties: Vec<P>) -> Result<Vec<(PartyId, P::Output)>, TssError> {
    run_in_memory_with(parties, |_| {})
}

/// Like [`run_in_memory`], with a hook that sees (and may alter) every message before delivery:
/// the tests use it to play a malicious party.
pub fn run_in_memory_with<P: Protocol>(
    parties: Vec<P>,
    mut tamper: impl FnMut(&mut InFlight),
) -> Result<Vec<(PartyId, P::Output)>, TssError> {
    let mut by_id: BTreeMap<PartyId, P> = parties.into_iter().map(|p| (p.me(), p)).collect();
    let ids: Vec<PartyId> = by_id.keys().copied().collect();
    let mut outputs = BTreeMap::new();
    let mut queue: VecDeque<InFlight> = VecDeque::new();
    loop {
        let mut progressed = false;
        for id in &ids {
            if outputs.contains_key(id) {
                continue;
            }
            let Some(party) = by_id.get_mut(id) else {
                continue;
            };
            loop {
                match party.poke()? {
                    Step::Wait => break,
                    Step::Done(out) => {
                        outputs.insert(*id, out);
                        progressed = true;
                        break;
                    }
                    Step::Send(Outgoing::ToAll(bytes)) => {
                        progressed = true;
                        for to in ids.iter().filter(|to| *to != id) {
                            queue.push_back(InFlight {
                                from: *id,
                                to: *to,
                                bytes: bytes.clone(),
                            });
                        }
                    }
                    Step::Send(Outgoing::ToOne(to, bytes)) => {
                        progressed = true;
                        queue.push_back(InFlight { from: *id, to, bytes });
                    }
                }
            }
        }
        while let Some(mut msg) = queue.pop_front() {
            progressed = true;
            tamper(&mut msg);
            if outputs.contains_key(&msg.to) {
                continue;
            }
            let recipient = by_id
                .get_mut(&msg.to)
                .ok_or_else(|| TssError::BadParameters(format!("message addressed to unknown party {}", msg.to)))?;
            recipient.handle(msg.from, &msg.bytes)?;
        }
        if outputs.len() == ids.len() {
            return Ok(outputs.into_iter().collect());
        }
        if !progressed {
            let waiting: Vec<String> = ids
                .iter()
                .filter(|id| !outputs.contains_key(id))
                .map(|id| id.to_string())
                .collect();
            return Err(TssError::Protocol {
                suspect: None,
                reason: format!("stalled: parties {} wait for messages nobody sends", waiting.join(", ")),
            });
        }
    }
}

/// Every party's own outcome of a run in this thread: unlike [`run_in_memory_with`], one party's
/// failure does not end the others' run, and `deliver` may drop a message (return false) as well
/// as alter it. A party still waiting when nothing moves any more ends with an error naming the
/// parties it awaits ([`Protocol::awaiting`]). The tests use it to play a malicious party.
pub fn run_in_memory_each<P: Protocol>(
    parties: Vec<P>,
    mut deliver: impl FnMut(&mut InFlight) -> bool,
) -> BTreeMap<PartyId, Result<P::Output, TssError>> {
    let mut by_id: BTreeMap<PartyId, P> = parties.into_iter().map(|p| (p.me(), p)).collect();
    let ids: Vec<PartyId> = by_id.keys().copied().collect();
    let mut outcomes: BTreeMap<PartyId, Result<P::Output, TssError>> = BTreeMap::new();
    let mut queue: VecDeque<InFlight> = VecDeque::new();
    loop {
        let mut progressed = false;
        for id in &ids {
            if outcomes.contains_key(id) {
                continue;
            }
            let Some(party) = by_id.get_mut(id) else {
                continue;
            };
            loop {
                match party.poke() {
                    Ok(Step::Wait) => break,
                    Ok(Step::Done(out)) => {
                        outcomes.insert(*id, Ok(out));
                        progressed = true;
                        break;
                    }
                    Err(e) => {
                        outcomes.insert(*id, Err(e));
                        progressed = true;
                        break;
                    }
                    Ok(Step::Send(Outgoing::ToAll(bytes))) => {
                        progressed = true;
                        for to in ids.iter().filter(|to| *to != id) {
                            queue.push_back(InFlight {
                                from: *id,
                                to: *to,
                                bytes: bytes.clone(),
                            });
                        }
                    }
                    Ok(Step::Send(Outgoing::ToOne(to, bytes))) => {
                        progressed = true;
                        queue.push_back(InFlight { from: *id, to, bytes });
                    }
                }
            }
        }
        while let Some(mut msg) = queue.pop_front() {
            progressed = true;
            if !deliver(&mut msg) || outcomes.contains_key(&msg.to) {
                continue;
            }
            if let Some(recipient) = by_id.get_mut(&msg.to) {
                // A rejected message is the recipient's to judge; a fatal one shows at its next poke.
                let _ = recipient.handle(msg.from, &msg.bytes);
            }
        }
        if outcomes.len() == ids.len() || !progressed {
            for (id, party) in &by_id {
                if !outcomes.contains_key(id) {
                    let awaited: Vec<String> = party.awaiting().iter().map(ToString::to_string).collect();
                    outcomes.insert(
                        *id,
                        Err(TssError::Protocol {
                            suspect: party.awaiting().first().copied(),
                            reason: format!("stalled, awaiting parties {}", awaited.join(", ")),
                        }),
                    );
                }
            }
            return outcomes;
        }
    }
}
