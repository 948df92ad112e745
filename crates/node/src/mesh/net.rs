//! The mesh over HTTP: sealed envelopes (see `sigil-mesh`) carried by `POST /mesh/send` (one-way,
//! batched) and `POST /mesh/call` (request and sealed reply).
//!
//! Every peer has its own queue and sender task, so a slow or dead peer delays only its own
//! messages. A failed batch is retried with backoff for a few seconds, then dropped: the protocol
//! session that needed it fails at its deadline, it never hangs. A queue is bounded in messages
//! and bytes ([`QueueLimits`]) and drops its oldest message when full; nothing is queued to a
//! peer a batch could not reach through every retry, until it answers again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sigil_mesh::{Endpoint, Identity, MeshError, NodeKey, Opened, SessionPolicy, OVERHEAD};
use tokio::sync::Notify;

use crate::mesh::frames::{self, MAX_FRAMES, MAX_FRAME_BYTES, MAX_SEND_BYTES};

/// Bounds of each peer's send queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Messages queued to one peer.
    pub messages: usize,
    /// Bytes queued to one peer.
    pub bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            messages: 4096,
            bytes: 64 << 20,
        }
    }
}

/// Outgoing messages the mesh dropped, by reason.
#[derive(Debug, Default)]
pub struct Dropped {
    /// The peer's queue was full: its oldest message went.
    pub queue_full: AtomicU64,
    /// The peer was given up on (a batch failed through every retry) and has not answered since.
    pub peer_down: AtomicU64,
    /// Larger than one envelope may be.
    pub too_large: AtomicU64,
    /// The peer stayed unreachable through every retry of a batch.
    pub unreachable: AtomicU64,
}

#[derive(Default)]
struct Queued {
    messages: VecDeque<Vec<u8>>,
    bytes: usize,
    closed: bool,
}

/// One peer's bounded queue.
#[derive(Default)]
struct Queue {
    state: Mutex<Queued>,
    ready: Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `body`; returns how many old messages made room for it.
    fn push(&self, body: Vec<u8>, limits: QueueLimits) -> u64 {
        let mut dropped = 0;
        {
            let mut q = self.lock();
            q.bytes += body.len();
            q.messages.push_back(body);
            while q.messages.len() > limits.messages.max(1) || (q.bytes > limits.bytes && q.messages.len() > 1) {
                if let Some(old) = q.messages.pop_front() {
                    q.bytes -= old.len();
                    dropped += 1;
                }
            }
        }
        self.ready.notify_one();
        dropped
    }

    /// Empties the queue; returns how many messages it held.
    fn clear(&self) -> u64 {
        let mut q = self.lock();
        let n = q.messages.len() as u64;
        q.messages.clear();
        q.bytes = 0;
        n
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Waits for messages, then takes a batch: at most [`MAX_FRAMES`], and at most
    /// [`MAX_SEND_BYTES`] once sealed and framed. `None` once closed.
    async fn next_batch(&self) -> Option<Vec<Vec<u8>>> {
        loop {
            {
                let mut q = self.lock();
                if q.closed {
                    return None;
                }
                if !q.messages.is_empty() {
                    let mut batch = Vec::new();
                    let mut size = 0;
                    while let Some(next) = q.messages.front() {
                        let framed = 4 + OVERHEAD + next.len();
                        if batch.len() == MAX_FRAMES || (!batch.is_empty() && size + framed > MAX_SEND_BYTES) {
                            break;
                        }
                        size += framed;
                        if let Some(message) = q.messages.pop_front() {
                            q.bytes -= message.len();
                            batch.push(message);
                        }
                    }
                    return Some(batch);
                }
            }
            self.ready.notified().await;
        }
    }
}
/// Backoff before each retry of a failed batch.
const RETRY_BACKOFF_MS: [u64; 6] = [20, 50, 100, 250, 500, 1000];

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No such peer.
    #[error("node {0} is not a peer")]
    UnknownPeer(u32),
    /// The peer could not be reached or did not answer in time.
    #[error("node {node} unreachable: {reason}")]
    Unreachable {
        /// The peer.
        node: u32,
        /// The transport error.
        reason: String,
    },
    /// The peer answered with something other than a sealed reply.
    #[error("node {node} answered {status}: {body}")]
    Refused {
        /// The peer.
        node: u32,
        /// HTTP status.
        status: u16,
        /// The body, shortened.
        body: String,
    },
    /// A peer is listed with another mesh key than the one pinned for it.
    #[error("node {0} is listed with another mesh key than the one pinned for it")]
    KeyChanged(u32),
    /// Sealing or opening failed.
    #[error(transparent)]
    Mesh(#[from] MeshError),
}

#[derive(Clone)]
struct Peer {
    url: String,
    queue: Arc<Queue>,
}

/// This node's end of the mesh.
pub struct Net {
    me: u32,
    endpoint: Endpoint,
    /// Peers by id; nodes joining the network are added ([`Net::add_peer`]), none is removed.
    peers: std::sync::RwLock<BTreeMap<u32, Peer>>,
    http: reqwest::Client,
    up: Mutex<BTreeMap<u32, bool>>,
    /// Peers a batch could not reach through every retry, not heard from since: nothing is
    /// queued for them.
    given_up: Mutex<std::collections::BTreeSet<u32>>,
    limits: QueueLimits,
    /// Outgoing messages dropped, by reason.
    pub dropped: Dropped,
}

impl Drop for Net {
    fn drop(&mut self) {
        for peer in self.peers.read().unwrap_or_else(PoisonError::into_inner).values() {
            peer.queue.close();
        }
    }
}

impl Net {
    /// Starts one sender task per peer (other than `me`); must run inside a tokio runtime.
    /// Connections to peers leave from `source` when it is set.
    pub fn start(
        me: u32,
        identity: Identity,
        peers: &[(u32, String, NodeKey)],
        limits: QueueLimits,
        source: Option<std::net::IpAddr>,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .local_address(source)
            .pool_max_idle_per_host(16)
            // Peers close connections idle for `[limits] idle_timeout_secs` (a minute by
            // default); let go first.
            .pool_idle_timeout(Duration::from_secs(20))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        let mut receivers = Vec::new();
        let mut map = BTreeMap::new();
        for (id, url, _) in peers {
            if *id == me {
                continue;
            }
            let queue = Arc::new(Queue::default());
            receivers.push((*id, Arc::clone(&queue)));
            map.insert(
                *id,
                Peer {
                    url: url.clone(),
                    queue,
                },
            );
        }
        let pinned = peers.iter().map(|(id, _, key)| (*id, *key));
        let net = Arc::new(Self {
            me,
            endpoint: Endpoint::new(me, identity, pinned, SessionPolicy::default()),
            peers: std::sync::RwLock::new(map),
            http,
            up: Mutex::new(BTreeMap::new()),
            given_up: Mutex::new(std::collections::BTreeSet::new()),
            limits,
            dropped: Dropped::default(),
        });
        for (id, queue) in receivers {
            tokio::spawn(sender(Arc::downgrade(&net), id, queue));
        }
        net
    }

    /// This node.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// Queues a one-way message to `to`; drops it when `to` was given up on or the message is
    /// larger than an envelope may be, and drops `to`'s oldest message when its queue is full.
    pub fn send(&self, to: u32, body: Vec<u8>) {
        let Some(peer) = self.peer(to) else { return };
        if body.len() + OVERHEAD > MAX_FRAME_BYTES {
            tracing::warn!(peer = to, bytes = body.len(), "mesh message too large to send; dropped");
            self.dropped.too_large.fetch_add(1, Ordering::Relaxed);
        } else if self.is_down(to) {
            self.dropped.peer_down.fetch_add(1, Ordering::Relaxed);
        } else {
            let old = peer.queue.push(body, self.limits);
            if old > 0 {
                self.dropped.queue_full.fetch_add(old, Ordering::Relaxed);
            }
        }
    }

    /// Messages waiting for `to`.
    pub fn queued(&self, to: u32) -> (usize, usize) {
        self.peer(to).map_or((0, 0), |p| {
            let q = p.queue.lock();
            (q.messages.len(), q.bytes)
        })
    }

    /// Sends `body` to `to` and waits for its sealed reply.
    pub async fn call(&self, to: u32, body: &[u8], timeout: Duration) -> Result<Vec<u8>, NetError> {
        let peer = self.peer(to).ok_or(NetError::UnknownPeer(to))?;
        let envelope = self.endpoint.seal(to, body)?;
        let unreachable = |e: reqwest::Error| NetError::Unreachable {
            node: to,
            reason: e.to_string(),
        };
        let response = self
            .http
            .post(format!("{}/mesh/call", peer.url))
            .timeout(timeout)
            .body(envelope)
            .send()
            .await
            .map_err(|e| {
                self.mark(to, false);
                unreachable(e)
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        self.mark(to, true);
        if !status.is_success() {
            return Err(NetError::Refused {
                node: to,
                status: status.as_u16(),
                body: String::from_utf8_lossy(bytes.get(..200).unwrap_or(&bytes)).into_owned(),
            });
        }
        let opened = self.open(&bytes)?;
        if opened.from != to {
            return Err(MeshError::Unauthenticated { claimed: opened.from }.into());
        }
        Ok(opened.body)
    }

    /// Opens an envelope addressed to this node.
    pub fn open(&self, envelope: &[u8]) -> Result<Opened, MeshError> {
        self.endpoint.open(envelope)
    }

    /// Authenticates an envelope's prefix before the rest is read (`len`: the envelope's length,
    /// if declared); returns the sender. See [`Endpoint::check_prefix`].
    pub fn check_prefix(&self, prefix: &[u8], len: Option<usize>) -> Result<u32, MeshError> {
        self.endpoint.check_prefix(prefix, len)
    }

    /// Seals a reply to `to`.
    pub fn seal_to(&self, to: u32, body: &[u8]) -> Result<Vec<u8>, NetError> {
        if self.peer(to).is_none() {
            return Err(NetError::UnknownPeer(to));
        }
        Ok(self.endpoint.seal(to, body)?)
    }

    /// Records whether `peer` answered its last message; an answer also ends [`Net::give_up`].
    pub fn mark(&self, peer: u32, up: bool) {
        if let Ok(mut map) = self.up.lock() {
            map.insert(peer, up);
        }
        if up {
            self.given_up
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&peer);
        }
    }

    /// A batch to `peer` failed through every retry: it is marked down, its queue is emptied,
    /// and nothing is queued for it until it answers again (a heartbeat, a call, a batch). A
    /// single slow answer (a heartbeat that timed out) marks it down without dropping anything.
    fn give_up(&self, peer: u32) {
        self.mark(peer, false);
        self.given_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer);
        if let Some(p) = self.peer(peer) {
            let n = p.queue.clear();
            self.dropped.peer_down.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Whether messages to `peer` are dropped rather than queued (see [`Net::give_up`]).
    fn is_down(&self, peer: u32) -> bool {
        self.given_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&peer)
    }

    /// Whether `peer` answered its last message (this node is always up).
    pub fn is_up(&self, peer: u32) -> bool {
        peer == self.me || self.up.lock().map(|m| m.get(&peer) == Some(&true)).unwrap_or(false)
    }

    /// Peer ids, this node excluded.
    pub fn peer_ids(&self) -> Vec<u32> {
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    fn peer(&self, id: u32) -> Option<Peer> {
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Adds a node joining the network as a peer at `url` with mesh key `key` (as NodeSet lists
    /// it) and starts its sender task. `Ok(true)` when added, `Ok(false)` for this node or a peer
    /// known with that key (its URL is kept); an error, changing nothing, for a peer known with
    /// another key (a pin never changes).
    pub fn add_peer(self: &Arc<Self>, id: u32, url: &str, key: NodeKey) -> Result<bool, NetError> {
        if id == self.me {
            return Ok(false);
        }
        let queue = {
            let mut peers = self.peers.write().unwrap_or_else(PoisonError::into_inner);
            if peers.contains_key(&id) || self.endpoint.pinned_key(id).is_some() {
                return match self.endpoint.pinned_key(id) {
                    Some(pinned) if pinned == key => Ok(false),
                    _ => Err(NetError::KeyChanged(id)),
                };
            }
            if !self.endpoint.pin(id, key) {
                return Err(NetError::KeyChanged(id));
            }
            let queue = Arc::new(Queue::default());
            peers.insert(
                id,
                Peer {
                    url: url.to_string(),
                    queue: Arc::clone(&queue),
                },
            );
            queue
        };
        tokio::spawn(sender(Arc::downgrade(self), id, queue));
        Ok(true)
    }
}

async fn sender(net: std::sync::Weak<Net>, to: u32, queue: Arc<Queue>) {
    while let Some(batch) = queue.next_batch().await {
        let Some(net) = net.upgrade() else { return };
        let Some(peer) = net.peer(to) else { return };
        let mut sealed = Vec::with_capacity(batch.len());
        for message in &batch {
            match net.endpoint.seal(to, message) {
                Ok(envelope) => sealed.push(envelope),
                Err(e) => tracing::warn!(peer = to, error = %e, "cannot seal a message"),
            }
        }
        let body = frames::batch(sealed.iter().map(Vec::as_slice));
        let url = format!("{}/mesh/send", peer.url);
        let mut attempt = 0;
        loop {
            let result = net
                .http
                .post(&url)
                .timeout(Duration::from_secs(10))
                .body(body.clone())
                .send()
                .await;
            match result {
                Ok(response) if response.status().is_success() => {
                    net.mark(to, true);
                    break;
                }
                Ok(response) => {
                    // The peer refused the batch (a bug or a key mismatch): retrying will not help.
                    tracing::warn!(peer = to, status = %response.status(), "peer refused messages");
                    break;
                }
                Err(e) => {
                    let Some(wait) = RETRY_BACKOFF_MS.get(attempt) else {
                        tracing::debug!(peer = to, error = %e, dropped = batch.len(), "peer unreachable; messages dropped");
                        net.dropped.unreachable.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        // Down until it answers again: nothing more is queued for it.
                        net.give_up(to);
                        break;
                    };
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(*wait)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(limits: QueueLimits) -> Arc<Net> {
        let me = Identity::generate().unwrap();
        let peer = Identity::generate().unwrap();
        // Port 9 on loopback: nothing listens, every batch fails.
        let peers = [
            (0, "http://127.0.0.1:9".to_string(), me.public()),
            (1, "http://127.0.0.1:9".to_string(), peer.public()),
        ];
        Net::start(0, me, &peers, limits, None)
    }

    #[test]
    fn a_full_queue_drops_its_oldest_messages_and_stays_within_its_bounds() {
        let queue = Queue::default();
        let limits = QueueLimits {
            messages: 3,
            bytes: 100,
        };
        let dropped: u64 = (0..10u8).map(|i| queue.push(vec![i; 10], limits)).sum();
        assert_eq!(dropped, 7);
        let held: Vec<u8> = queue.lock().messages.iter().map(|m| m[0]).collect();
        assert_eq!(held, [7, 8, 9], "the newest are kept");
        let dropped = queue.push(vec![0; 95], limits);
        assert_eq!(dropped, 3, "bytes bound: only the 95-byte message fits");
        assert_eq!(queue.lock().bytes, 95);
        // One message larger than the byte bound is still kept alone (it fits an envelope).
        assert_eq!(queue.push(vec![0; 500], limits), 1);
        assert_eq!(queue.lock().messages.len(), 1);
    }

    #[tokio::test]
    async fn nothing_is_queued_to_a_peer_given_up_on_or_larger_than_an_envelope() {
        let net = net(QueueLimits::default());
        // A heartbeat that timed out marks it down but drops nothing.
        net.mark(1, false);
        net.send(1, vec![0; 10]);
        assert_eq!(net.dropped.peer_down.load(Ordering::Relaxed), 0);
        // A batch that failed through every retry: the queue goes, and nothing more is queued.
        net.give_up(1);
        assert_eq!(net.dropped.peer_down.load(Ordering::Relaxed), 1);
        for _ in 0..100 {
            net.send(1, vec![0; 1000]);
        }
        assert_eq!(net.queued(1), (0, 0));
        assert_eq!(net.dropped.peer_down.load(Ordering::Relaxed), 101);
        // Once it answers, messages are queued again.
        net.mark(1, true);
        net.send(1, vec![0; 10]);
        assert_eq!(net.dropped.peer_down.load(Ordering::Relaxed), 101);
        net.send(1, vec![0; MAX_FRAME_BYTES]);
        assert_eq!(net.dropped.too_large.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_its_frame_count_and_body_size() {
        let queue = Queue::default();
        let limits = QueueLimits::default();
        for _ in 0..100 {
            queue.push(vec![0; 10], limits);
        }
        assert_eq!(queue.next_batch().await.unwrap().len(), MAX_FRAMES);
        assert_eq!(queue.next_batch().await.unwrap().len(), 100 - MAX_FRAMES);
        for _ in 0..5 {
            queue.push(vec![0; 3 << 20], limits);
        }
        let batch = queue.next_batch().await.unwrap();
        assert!(batch.iter().map(|m| m.len() + OVERHEAD + 4).sum::<usize>() <= MAX_SEND_BYTES);
        assert_eq!(batch.len(), 5);
        queue.close();
        assert!(queue.next_batch().await.is_none());
    }
}
