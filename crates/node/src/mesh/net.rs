//! The mesh over HTTP: sealed envelopes (see `sigil-mesh`) carried by `POST /mesh/send` (one-way,
//! batched) and `POST /mesh/call` (request and sealed reply).
//!
//! Every peer has its own queue and sender task, so a slow or dead peer delays only its own
//! messages. A failed batch is retried with backoff for a few seconds, then dropped: the protocol
//! session that needed it fails at its deadline, it never hangs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_mesh::{Endpoint, Identity, MeshError, NodeKey, Opened, SessionPolicy};
use tokio::sync::mpsc;

/// Messages in one `POST /mesh/send`.
const MAX_BATCH: usize = 64;
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
    /// Sealing or opening failed.
    #[error(transparent)]
    Mesh(#[from] MeshError),
}

struct Peer {
    url: String,
    queue: mpsc::UnboundedSender<Vec<u8>>,
}

/// This node's end of the mesh.
pub struct Net {
    me: u32,
    endpoint: Endpoint,
    peers: BTreeMap<u32, Peer>,
    http: reqwest::Client,
    up: Mutex<BTreeMap<u32, bool>>,
}

impl Net {
    /// Starts one sender task per peer (other than `me`); must run inside a tokio runtime.
    pub fn start(me: u32, identity: Identity, peers: &[(u32, String, NodeKey)]) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        let mut receivers = Vec::new();
        let mut map = BTreeMap::new();
        for (id, url, _) in peers {
            if *id == me {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            receivers.push((*id, rx));
            map.insert(
                *id,
                Peer {
                    url: url.clone(),
                    queue: tx,
                },
            );
        }
        let pinned = peers.iter().map(|(id, _, key)| (*id, *key));
        let net = Arc::new(Self {
            me,
            endpoint: Endpoint::new(me, identity, pinned, SessionPolicy::default()),
            peers: map,
            http,
            up: Mutex::new(BTreeMap::new()),
        });
        for (id, rx) in receivers {
            tokio::spawn(sender(Arc::downgrade(&net), id, rx));
        }
        net
    }

    /// This node.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// Queues a one-way message to `to`.
    pub fn send(&self, to: u32, body: Vec<u8>) {
        if let Some(peer) = self.peers.get(&to) {
            // The receiver lives as long as `self`; a closed queue only happens during shutdown.
            let _ = peer.queue.send(body);
        }
    }

    /// Sends `body` to `to` and waits for its sealed reply.
    pub async fn call(&self, to: u32, body: &[u8], timeout: Duration) -> Result<Vec<u8>, NetError> {
        let peer = self.peers.get(&to).ok_or(NetError::UnknownPeer(to))?;
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

    /// Seals a reply to `to`.
    pub fn seal_to(&self, to: u32, body: &[u8]) -> Result<Vec<u8>, NetError> {
        if !self.peers.contains_key(&to) {
            return Err(NetError::UnknownPeer(to));
        }
        Ok(self.endpoint.seal(to, body)?)
    }

    /// Records whether `peer` answered its last message.
    pub fn mark(&self, peer: u32, up: bool) {
        if let Ok(mut map) = self.up.lock() {
            map.insert(peer, up);
        }
    }

    /// Whether `peer` answered its last message (this node is always up).
    pub fn is_up(&self, peer: u32) -> bool {
        peer == self.me || self.up.lock().map(|m| m.get(&peer) == Some(&true)).unwrap_or(false)
    }

    /// Peer ids, this node excluded.
    pub fn peer_ids(&self) -> Vec<u32> {
        self.peers.keys().copied().collect()
    }
}

/// Splits a `/mesh/send` body into its envelopes: `len:u32 | envelope`, repeated.
pub fn frames(mut body: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let (len, rest) = body.split_at_checked(4).ok_or("truncated frame length")?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| "frame length")?) as usize;
        let (frame, rest) = rest.split_at_checked(len).ok_or("truncated frame")?;
        out.push(frame);
        body = rest;
    }
    Ok(out)
}

async fn sender(net: std::sync::Weak<Net>, to: u32, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(first) = rx.recv().await {
        let Some(net) = net.upgrade() else { return };
        let Some(peer) = net.peers.get(&to) else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let mut body = Vec::new();
        for message in &batch {
            match net.endpoint.seal(to, message) {
                Ok(envelope) => {
                    body.extend_from_slice(&(envelope.len() as u32).to_be_bytes());
                    body.extend_from_slice(&envelope);
                }
                Err(e) => tracing::warn!(peer = to, error = %e, "cannot seal a message"),
            }
        }
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
                    net.mark(to, false);
                    let Some(wait) = RETRY_BACKOFF_MS.get(attempt) else {
                        tracing::debug!(peer = to, error = %e, dropped = batch.len(), "peer unreachable; messages dropped");
                        break;
                    };
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(*wait)).await;
                }
            }
        }
    }
}
