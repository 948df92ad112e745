//! What arrives over the mesh, opened and handed to its service: protocol messages to their
//! session, presignature orders and notices to the pool, action values to the mailbox, and calls
//! (ping, witness, allocate, discard) answered. Uses `node`, `signing::pool`, `mesh`, `error`;
//! never `http`.

use std::net::IpAddr;
use std::sync::Arc;

use crate::error::{hex_bytes, Error, Kind};
use crate::mesh::frames::{FrameError, FrameReader, Framing, Ready};
use crate::mesh::wire::{Call, Message, Reply};
use crate::metrics::Refusal;
use crate::node::Node;
use crate::signing::pool::{allocate, AllocateCall};

/// A body a peer is posting, checked as its bytes arrive ([`crate::mesh::frames`]): each
/// envelope's prefix is authenticated before the envelope is kept, each envelope is opened and
/// handed to its service before the next is read, and every envelope of a body must come from
/// the same peer. The first failure ends the body: a stranger costs the 69 bytes of its first
/// prefix, and nothing after a bad envelope is read.
///
/// The bytes an envelope holds between its prefix check and its authentication are charged to
/// the budget of its source ([`crate::mesh::frames::Budgets`]: its address's share of the
/// listed budget if it is one of the node list's, else everyone else's; a replayed genuine
/// prefix passes the check): past it the body is refused with
/// `BUSY`, and a body's charge ends with it.
pub struct Inbound {
    node: Arc<Node>,
    reader: FrameReader,
    from: Option<u32>,
    /// Envelopes of this body opened (authenticated) so far.
    opened: usize,
    charge: Charge,
}

/// What one body has charged to its unverified-bytes budget (its listed address's, or everyone
/// else's: [`crate::mesh::frames::Budgets`]); given back when dropped.
struct Charge {
    node: Arc<Node>,
    source: Option<IpAddr>,
    held: usize,
}

impl Charge {
    /// The body now holds `to` unverified bytes: false if that does not fit the budget.
    fn to(&mut self, to: usize) -> bool {
        let fits = self.node.unverified.charge(self.source, self.held, to);
        if fits {
            self.held = to;
        }
        fits
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.node.unverified.charge(self.source, self.held, 0);
    }
}

impl Inbound {
    /// A `/mesh/send` body from `source`: a batch of one-way messages.
    pub fn batch(node: &Arc<Node>, source: Option<IpAddr>) -> Self {
        Self::new(node, Framing::Batch, source)
    }

    /// A `/mesh/call` body from `source`: one call.
    pub fn call(node: &Arc<Node>, source: Option<IpAddr>) -> Self {
        Self::new(node, Framing::Single, source)
    }

    fn new(node: &Arc<Node>, framing: Framing, source: Option<IpAddr>) -> Self {
        Self {
            node: Arc::clone(node),
            reader: FrameReader::new(framing),
            from: None,
            opened: 0,
            charge: Charge {
                node: Arc::clone(node),
                source,
                held: 0,
            },
        }
    }

    /// How many whole envelopes of this body have been authenticated and handed on.
    pub fn opened(&self) -> usize {
        self.opened
    }

    /// The next bytes of the body.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<(), Error> {
        loop {
            let pushed = self.reader.push(&mut chunk);
            if !self.charge.to(self.reader.unverified()) {
                self.node.metrics.refused(Refusal::MeshRejected, "unverified_bytes");
                return Err(Error::new(
                    Kind::Unavailable,
                    "BUSY",
                    format!(
                        "node {} holds {} bytes of mesh envelopes not yet authenticated from this address (or, for an address not in the node list, from all such addresses), its limit (limits.mesh_unverified_bytes); retry shortly",
                        self.node.me,
                        self.node.unverified.held_for(self.charge.source)
                    ),
                ));
            }
            match pushed {
                Ok(None) => return Ok(()),
                Ok(Some(Ready::Prefix { prefix, len })) => {
                    let from = self
                        .node
                        .net
                        .check_prefix(&prefix, len)
                        .map_err(|e| self.reject("prefix", e.to_string()))?;
                    if self.from.is_some_and(|first| first != from) {
                        return Err(self.reject(
                            "mixed_senders",
                            format!(
                                "a body from node {} carries an envelope from node {from}",
                                self.from.unwrap_or(from)
                            ),
                        ));
                    }
                    self.from = Some(from);
                }
                Ok(Some(Ready::Frame(envelope))) => {
                    self.deliver(&envelope)?;
                    self.opened += 1;
                }
                Err(e) => return Err(self.frame_error(e)),
            }
        }
    }

    /// The body ended; for a call, the envelope it carried.
    pub fn finish(self) -> Result<Option<Vec<u8>>, Error> {
        let node = Arc::clone(&self.node);
        self.reader.finish().map_err(|e| {
            node.metrics.refused(Refusal::MeshRejected, "framing");
            Error::bad_request(e.to_string())
        })
    }

    fn frame_error(&self, e: FrameError) -> Error {
        let reason = match e {
            FrameError::TooManyFrames => "frames",
            FrameError::TooLarge => "body_size",
            FrameError::FrameSize { .. } => "frame_size",
            FrameError::Truncated { .. } => "framing",
        };
        self.node.metrics.refused(Refusal::MeshRejected, reason);
        match e {
            FrameError::FrameSize { len, .. } if len < sigil_mesh::OVERHEAD => Error::bad_request(e.to_string()),
            FrameError::Truncated { .. } => Error::bad_request(e.to_string()),
            _ => Error::new(Kind::TooLarge, "MESH_TOO_LARGE", e.to_string()),
        }
    }

    fn reject(&self, reason: &'static str, message: String) -> Error {
        self.node.metrics.refused(Refusal::MeshRejected, reason);
        tracing::warn!(reason, error = %message, "rejected a mesh body");
        Error::new(Kind::Forbidden, "MESH_REJECTED", message)
    }

    /// Opens one envelope of a batch and hands its message to its service.
    fn deliver(&self, envelope: &[u8]) -> Result<(), Error> {
        let node = &self.node;
        let opened = node
            .net
            .open(envelope)
            .map_err(|e| self.reject("envelope", e.to_string()))?;
        match Message::decode(&opened.body) {
            Ok(Message::Protocol(session, bytes)) => {
                node.sessions
                    .deliver(opened.from, sigil_mesh::SessionKey(session), bytes)
            }
            Ok(Message::Start(start)) => {
                if let Err(e) = crate::signing::pool::join(node, opened.from, start) {
                    tracing::warn!(peer = opened.from, error = %e, "presignature order refused");
                }
            }
            Ok(Message::Stored(seq)) => crate::signing::pool::stored(node, opened.from, seq),
            Ok(Message::Failed { seq, silent }) => crate::signing::pool::failed(node, opened.from, seq, &silent),
            Ok(Message::Action { request, topic, value }) => node.mailbox.put(request, &topic, opened.from, value),
            Err(e) => tracing::warn!(peer = opened.from, error = %e, "malformed mesh message"),
        }
        Ok(())
    }
}

/// Opens a `/mesh/call` envelope (read by [`Inbound::call`]), answers the call, and seals the
/// reply to its sender.
pub async fn answer(node: &Arc<Node>, raw: &[u8]) -> Result<Vec<u8>, Error> {
    let opened = node.net.open(raw).map_err(|e| {
        node.metrics.refused(Refusal::MeshRejected, "envelope");
        Error::new(Kind::Forbidden, "MESH_REJECTED", e.to_string())
    })?;
    let reply = match serde_json::from_slice::<Call>(&opened.body) {
        Ok(Call::Ping) => {
            let signed = node.sign_takes(node.store.takes().unwrap_or(0));
            let epoch = node.epoch();
            Reply::Pong {
                ready: epoch.keys().is_some(),
                epoch: epoch.number,
                takes: signed.takes,
                proof: hex::encode(signed.signature),
            }
        }
        Ok(Call::Discard { seqs }) if seqs.len() <= crate::mesh::wire::MAX_DISCARDED => Reply::Dropped {
            count: crate::signing::pool::discarded(node, opened.from, &seqs).await,
        },
        Ok(Call::Discard { .. }) => Reply::Error {
            code: "BAD_REQUEST".into(),
            message: format!("at most {} slots per discard", crate::mesh::wire::MAX_DISCARDED),
        },
        Ok(Call::Witness) => {
            let mut seen = node.seen_takes(opened.from);
            if node.options.fault() == Some(crate::Fault::InflatedWitness) {
                seen = seen.map(|s| crate::store::SignedTakes {
                    takes: s.takes.saturating_add(1_000_000),
                    ..s
                });
            }
            Reply::Witnessed {
                takes: seen.map_or(0, |s| s.takes),
                proof: seen.map(|s| hex::encode(s.signature)).unwrap_or_default(),
            }
        }
        Ok(Call::Allocate {
            request,
            digest,
            exclude,
            at,
            scheme,
        }) => {
            if !node.epoch().contains(opened.from) {
                // A peer pinned for a proposal (a joining node) is not a member yet.
                Reply::Error {
                    code: "NOT_A_MEMBER".into(),
                    message: format!("node {} is not a node of this epoch", opened.from),
                }
            } else if node.keys().is_none() {
                Reply::Error {
                    code: "NOT_READY".into(),
                    message: Error::not_ready().message().to_string(),
                }
            } else if !node.is_allocator() {
                // Two allocators answering one request would bind it to two presignatures.
                Reply::Error {
                    code: "NOT_ALLOCATOR".into(),
                    message: format!("node {} is not the allocator: a lower node is live", node.me),
                }
            } else if hex_bytes::<16>("requestId", &request).is_err()
                || hex_bytes::<32>("digest", &digest).is_err()
                || exclude.len() > node.epoch().peers.len()
            {
                Reply::Error {
                    code: "BAD_REQUEST".into(),
                    message: "allocation request with a malformed id".into(),
                }
            } else {
                let call = AllocateCall {
                    from: opened.from,
                    request: &request,
                    digest: &digest,
                    exclude: &exclude,
                    at,
                    scheme,
                };
                match allocate(node, call).await {
                    Ok(a) => Reply::Allocated(a),
                    Err(e) => Reply::Error {
                        code: e.code().into(),
                        message: e.to_string(),
                    },
                }
            }
        }
        Ok(Call::Reshare {
            proposal,
            run,
            dealers,
            packages,
        }) if dealers.len() <= node.epoch().peers.len() => {
            let asked = crate::reshare::Asked {
                from: opened.from,
                proposal,
                run,
                dealers: &dealers,
                packages: &packages,
            };
            match crate::reshare::accept(node, asked).await {
                Ok(()) => Reply::Resharing,
                Err((code, message)) => Reply::Error {
                    code: code.into(),
                    message,
                },
            }
        }
        Ok(Call::Reshare { .. }) => Reply::Error {
            code: "BAD_REQUEST".into(),
            message: "more dealers than nodes".into(),
        },
        Ok(Call::NextKeys { proposal }) => Reply::NextKeys {
            digests: crate::reshare::held(node, proposal).iter().map(hex::encode).collect(),
        },
        Err(e) => Reply::Error {
            code: "BAD_REQUEST".into(),
            message: format!("mesh call: {e}"),
        },
    };
    let bytes = serde_json::to_vec(&reply).map_err(|e| Error::internal(e.to_string()))?;
    node.net
        .seal_to(opened.from, &bytes)
        .map_err(|e| Error::internal(e.to_string()))
}
