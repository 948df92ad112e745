//! What arrives over the mesh, opened and handed to its service: protocol messages to their
//! session, presignature orders and notices to the pool, action values to the mailbox, and calls
//! (ping, witness, allocate, discard) answered. Uses `node`, `signing::pool`, `mesh`, `error`;
//! never `http`.

use std::sync::Arc;

use crate::error::{hex_bytes, Error, Kind};
use crate::mesh::net::frames;
use crate::mesh::wire::{Call, Message, Reply};
use crate::node::Node;
use crate::signing::pool::{allocate, AllocateCall};

/// Opens each sealed envelope of a `/mesh/send` batch and hands its message to its service.
/// Stops at the first envelope that does not open (`MESH_REJECTED`).
pub fn receive(node: &Arc<Node>, raw: &[u8]) -> Result<(), Error> {
    let frames = frames(raw).map_err(Error::bad_request)?;
    for frame in frames {
        let opened = match node.net.open(frame) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "rejected a mesh envelope");
                return Err(Error::new(Kind::Forbidden, "MESH_REJECTED", e.to_string()));
            }
        };
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
    }
    Ok(())
}

/// Opens a `/mesh/call` envelope, answers the call, and seals the reply to its sender.
pub async fn answer(node: &Arc<Node>, raw: &[u8]) -> Result<Vec<u8>, Error> {
    let opened = node
        .net
        .open(raw)
        .map_err(|e| Error::new(Kind::Forbidden, "MESH_REJECTED", e.to_string()))?;
    let reply = match serde_json::from_slice::<Call>(&opened.body) {
        Ok(Call::Ping) => {
            let signed = node.sign_takes(node.store.takes().unwrap_or(0));
            Reply::Pong {
                ready: node.keys().is_some(),
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
        }) => {
            if node.keys().is_none() {
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
            } else if hex_bytes::<16>("requestId", &request).is_err() || hex_bytes::<32>("digest", &digest).is_err() {
                Reply::Error {
                    code: "BAD_REQUEST".into(),
                    message: "allocation request with a malformed id".into(),
                }
            } else {
                let call = AllocateCall {
                    request: &request,
                    digest: &digest,
                    exclude: &exclude,
                    at,
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
