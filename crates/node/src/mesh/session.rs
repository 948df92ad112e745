//! Protocol sessions: each run of a `sigil-tss` state machine gets a thread of its own (the crypto
//! is CPU-bound and must not stall the async workers that serve requests), a message channel fed by
//! the router, and a deadline.

use std::collections::HashMap;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sigil_mesh::{Routed, Router, RouterConfig, SessionKey};
use sigil_tss::{Outgoing, PartyId, Protocol, Step, TssError};

use crate::mesh::net::Net;
use crate::mesh::wire::Message;

/// Why a session ended without output.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The protocol failed; the error may name a culprit.
    #[error(transparent)]
    Protocol(#[from] TssError),
    /// The deadline passed first.
    #[error(
        "session {session} did not finish within {seconds} s{}{}",
        if silent.is_empty() { String::new() } else { format!(" (nothing came from nodes {silent:?})") },
        if awaited.is_empty() { String::new() } else { format!(" (still waiting for nodes {awaited:?})") }
    )]
    Timeout {
        /// Session id, shortened.
        session: String,
        /// The deadline.
        seconds: u64,
        /// Participants that sent nothing at all in the session.
        silent: Vec<u32>,
        /// Participants whose next message the protocol still waited for ([`Protocol::awaiting`]).
        awaited: Vec<u32>,
    },
    /// The session thread stopped unexpectedly.
    #[error("session thread failed: {0}")]
    Thread(String),
}

#[derive(Default)]
struct Hub {
    router: Router,
    live: HashMap<SessionKey, Sender<(u32, Vec<u8>)>>,
}

/// The routing table from session ids to running sessions.
pub struct Sessions {
    hub: Mutex<Hub>,
    early_dropped: std::sync::atomic::AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(RouterConfig::default().max_early_bytes_per_peer)
    }
}

impl Sessions {
    /// A routing table keeping at most `early_bytes_per_peer` of early messages per peer.
    pub fn new(early_bytes_per_peer: usize) -> Self {
        Self {
            hub: Mutex::new(Hub {
                router: Router::new(RouterConfig {
                    max_early_bytes_per_peer: early_bytes_per_peer,
                    ..RouterConfig::default()
                }),
                live: HashMap::new(),
            }),
            early_dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Early messages dropped because a bound was reached.
    pub fn early_dropped(&self) -> u64 {
        self.early_dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hands a protocol message from `from` to its session, or buffers it until the session opens.
    pub fn deliver(&self, from: u32, key: SessionKey, body: Vec<u8>) {
        let Ok(mut hub) = self.hub.lock() else { return };
        match hub.router.route(Instant::now(), key, from, body) {
            Routed::Deliver(from, body) => {
                if let Some(tx) = hub.live.get(&key) {
                    let _ = tx.send((from, body));
                }
            }
            Routed::Buffered | Routed::DroppedClosed => {}
            Routed::DroppedFull => {
                self.early_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(peer = from, "early-message buffer full; message dropped");
            }
        }
    }

    /// Forgets stale early messages and closed sessions.
    pub fn sweep(&self) {
        if let Ok(mut hub) = self.hub.lock() {
            let expired = hub.router.expire(Instant::now());
            for key in expired {
                hub.live.remove(&key);
            }
        }
    }

    /// Runs `protocol` among `participants` to completion or until `deadline`.
    pub async fn run<P>(
        self: &Arc<Self>,
        net: &Arc<Net>,
        protocol: P,
        participants: Vec<PartyId>,
        deadline: Duration,
    ) -> Result<P::Output, SessionError>
    where
        P: Protocol + Send + 'static,
        P::Output: Send + 'static,
    {
        self.run_within(net, protocol, participants, deadline, deadline).await
    }

    /// [`Sessions::run`] that also gives up early, after `silence`, if some participant has sent
    /// nothing at all by then (every party of a protocol speaks in its first round): a node that
    /// answers pings but never joins a run costs `silence`, not the whole deadline.
    pub async fn run_within<P>(
        self: &Arc<Self>,
        net: &Arc<Net>,
        mut protocol: P,
        participants: Vec<PartyId>,
        deadline: Duration,
        silence: Duration,
    ) -> Result<P::Output, SessionError>
    where
        P: Protocol + Send + 'static,
        P::Output: Send + 'static,
    {
        let session = protocol.session();
        let key = SessionKey(session.0);
        let (tx, rx) = channel();
        let early = {
            let mut hub = self.hub.lock().map_err(|e| SessionError::Thread(e.to_string()))?;
            let early = hub.router.open(key, Instant::now() + deadline);
            hub.live.insert(key, tx);
            early
        };
        let net = Arc::clone(net);
        let me = protocol.me();
        let label = hex::encode(&session.0[..6]);
        let result = tokio::task::spawn_blocking(move || {
            let until = Instant::now() + deadline;
            let quiet_until = Instant::now() + silence.min(deadline);
            let others = participants.iter().filter(|p| **p != me).count();
            let mut heard = std::collections::BTreeSet::new();
            for (from, body) in early {
                if participants.contains(&PartyId(from)) {
                    heard.insert(from);
                }
                if let Err(e) = protocol.handle(PartyId(from), &body) {
                    tracing::debug!(session = %label, error = %e, "rejected a message");
                }
            }
            loop {
                loop {
                    match protocol.poke()? {
                        Step::Send(Outgoing::ToAll(bytes)) => {
                            for to in participants.iter().filter(|p| **p != me) {
                                net.send(to.0, Message::Protocol(session.0, bytes.clone()).encode());
                            }
                        }
                        Step::Send(Outgoing::ToOne(to, bytes)) => {
                            net.send(to.0, Message::Protocol(session.0, bytes).encode());
                        }
                        Step::Wait => break,
                        Step::Done(output) => return Ok(output),
                    }
                }
                let timeout = || SessionError::Timeout {
                    session: label.clone(),
                    seconds: deadline.as_secs(),
                    silent: participants
                        .iter()
                        .map(|p| p.0)
                        .filter(|p| *p != me.0 && !heard.contains(p))
                        .collect(),
                    awaited: protocol.awaiting().into_iter().map(|p| p.0).collect(),
                };
                let everyone_spoke = heard.len() >= others;
                let limit = if everyone_spoke { until } else { quiet_until.min(until) };
                let left = limit.checked_duration_since(Instant::now()).ok_or_else(timeout)?;
                match rx.recv_timeout(left) {
                    Ok((from, body)) => {
                        if participants.contains(&PartyId(from)) {
                            heard.insert(from);
                        }
                        if let Err(e) = protocol.handle(PartyId(from), &body) {
                            tracing::debug!(session = %label, error = %e, "rejected a message");
                        }
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return Err(timeout()),
                }
            }
        })
        .await
        .map_err(|e| SessionError::Thread(e.to_string()))
        .and_then(|r| r);
        if let Ok(mut hub) = self.hub.lock() {
            hub.router.close(Instant::now(), key);
            hub.live.remove(&key);
        }
        result
    }
}
