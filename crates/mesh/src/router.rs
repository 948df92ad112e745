//! Routing of opened messages to protocol sessions.
//!
//! Peers start a session (a DKG, a triple, a presignature) at slightly different times, so a message
//! can arrive before this node opened the session it belongs to. The router keeps such messages for a
//! while (bounded per session, per peer in bytes, and in sessions) and hands them over when the session opens. Messages for
//! a session that already closed are dropped, and every open session has a deadline after which
//! [`Router::expire`] reports it so the node can abort it. The clock is passed in: no I/O here.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Identifies one protocol run across all its participants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SessionKey(pub [u8; 32]);

/// Bounds on what the router keeps for sessions that are not open yet.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Messages kept per not-yet-open session.
    pub max_early_messages: usize,
    /// Bytes kept per not-yet-open session.
    pub max_early_bytes: usize,
    /// Bytes kept for one peer across all not-yet-open sessions: a peer that sends for sessions
    /// that never open fills only its own share.
    pub max_early_bytes_per_peer: usize,
    /// Not-yet-open sessions tracked at once.
    pub max_early_sessions: usize,
    /// Not-yet-open sessions one peer may start (a session is charged to the peer whose message
    /// created its entry): no peer can take every slot from the others.
    pub max_early_sessions_per_peer: usize,
    /// How long early messages, and the memory of closed sessions, are kept.
    pub retention: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            max_early_messages: 1024,
            max_early_bytes: 16 << 20,
            max_early_bytes_per_peer: 16 << 20,
            max_early_sessions: 4096,
            max_early_sessions_per_peer: 256,
            retention: Duration::from_secs(60),
        }
    }
}

/// What happened to a routed message.
#[derive(Debug, PartialEq, Eq)]
pub enum Routed {
    /// The session is open: hand the message to it now.
    Deliver(u32, Vec<u8>),
    /// Kept until the session opens.
    Buffered,
    /// The session closed already.
    DroppedClosed,
    /// The limits for early messages are reached; the message is dropped.
    DroppedFull,
}

/// Bytes each early message is charged on top of its body (its keeping costs memory even when
/// the body is empty).
pub const EARLY_MESSAGE_OVERHEAD: usize = 64;

struct Early {
    /// The peer whose message created the entry.
    creator: u32,
    since: Instant,
    bytes: usize,
    messages: Vec<(u32, Vec<u8>)>,
}

/// Session routing table with early-message buffering and deadlines.
#[derive(Default)]
pub struct Router {
    config: RouterConfig,
    open: HashMap<SessionKey, Instant>,
    early: HashMap<SessionKey, Early>,
    /// Early bytes kept per peer.
    peer_bytes: HashMap<u32, usize>,
    /// Early sessions started per peer.
    peer_sessions: HashMap<u32, usize>,
    closed: HashMap<SessionKey, Instant>,
    closed_order: VecDeque<(Instant, SessionKey)>,
}

impl Router {
    /// A router with the given limits.
    pub fn new(config: RouterConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Opens a session that must finish by `deadline`; returns the messages that arrived early, in order.
    pub fn open(&mut self, key: SessionKey, deadline: Instant) -> Vec<(u32, Vec<u8>)> {
        self.open.insert(key, deadline);
        match self.early.remove(&key) {
            Some(early) => {
                self.forget(&early);
                early.messages
            }
            None => Vec::new(),
        }
    }

    /// Early bytes kept for `peer` now.
    pub fn early_bytes_of(&self, peer: u32) -> usize {
        self.peer_bytes.get(&peer).copied().unwrap_or(0)
    }

    /// Whether `key` is open.
    pub fn is_open(&self, key: &SessionKey) -> bool {
        self.open.contains_key(key)
    }

    /// Routes a message from peer `from` for session `key`.
    pub fn route(&mut self, now: Instant, key: SessionKey, from: u32, body: Vec<u8>) -> Routed {
        if self.open.contains_key(&key) {
            return Routed::Deliver(from, body);
        }
        if self.closed.contains_key(&key) {
            return Routed::DroppedClosed;
        }
        if !self.early.contains_key(&key) {
            let started = self.peer_sessions.get(&from).copied().unwrap_or(0);
            if self.early.len() >= self.config.max_early_sessions || started >= self.config.max_early_sessions_per_peer
            {
                return Routed::DroppedFull;
            }
        }
        let cost = body.len() + EARLY_MESSAGE_OVERHEAD;
        let of_peer = self.peer_bytes.get(&from).copied().unwrap_or(0);
        let (count, bytes) = self.early.get(&key).map_or((0, 0), |e| (e.messages.len(), e.bytes));
        if count >= self.config.max_early_messages
            || bytes + cost > self.config.max_early_bytes
            || of_peer + cost > self.config.max_early_bytes_per_peer
        {
            return Routed::DroppedFull;
        }
        let early = self.early.entry(key).or_insert_with(|| {
            *self.peer_sessions.entry(from).or_default() += 1;
            Early {
                creator: from,
                since: now,
                bytes: 0,
                messages: Vec::new(),
            }
        });
        early.bytes += cost;
        *self.peer_bytes.entry(from).or_default() += cost;
        early.messages.push((from, body));
        Routed::Buffered
    }

    /// Closes a session; later messages for it are dropped for [`RouterConfig::retention`].
    pub fn close(&mut self, now: Instant, key: SessionKey) {
        self.open.remove(&key);
        if let Some(early) = self.early.remove(&key) {
            self.forget(&early);
        }
        self.closed.insert(key, now);
        self.closed_order.push_back((now, key));
    }

    /// Closes and returns the sessions whose deadline passed, and forgets stale early messages and
    /// closed sessions older than the retention period.
    pub fn expire(&mut self, now: Instant) -> Vec<SessionKey> {
        let mut overdue: Vec<SessionKey> = self.open.iter().filter(|(_, d)| **d <= now).map(|(k, _)| *k).collect();
        overdue.sort();
        for key in &overdue {
            self.close(now, *key);
        }
        let retention = self.config.retention;
        let stale: Vec<SessionKey> = self
            .early
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.since) >= retention)
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            if let Some(early) = self.early.remove(&key) {
                self.forget(&early);
            }
        }
        while let Some((at, key)) = self.closed_order.front().copied() {
            if now.saturating_duration_since(at) < retention {
                break;
            }
            self.closed_order.pop_front();
            if self.closed.get(&key) == Some(&at) {
                self.closed.remove(&key);
            }
        }
        overdue
    }
}

impl Router {
    /// Takes a removed entry off its creator's session count and its senders' byte counts.
    fn forget(&mut self, early: &Early) {
        if let Some(n) = self.peer_sessions.get_mut(&early.creator) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.peer_sessions.remove(&early.creator);
            }
        }
        for (from, body) in &early.messages {
            if let Some(bytes) = self.peer_bytes.get_mut(from) {
                *bytes = bytes.saturating_sub(body.len() + EARLY_MESSAGE_OVERHEAD);
                if *bytes == 0 {
                    self.peer_bytes.remove(from);
                }
            }
        }
    }
}
