//! Peer liveness: one heartbeat task per peer pings it every [`HEARTBEAT`], marks it up or down
//! in the mesh, and keeps the take counter it signed (the rollback check hands it back). Started
//! for every peer at start-up and for every node that joins (`reshare`). Uses `node` and `mesh`.

use std::sync::Arc;
use std::time::Duration;

use crate::mesh::wire::{Call, Reply};
use crate::node::Node;
use crate::store::SignedTakes;

/// How often a peer is pinged.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// Pings `peer` until the node stops.
pub async fn heartbeat(node: Arc<Node>, peer: u32) {
    let ping = serde_json::to_vec(&Call::Ping).unwrap_or_default();
    let mut was_up = None;
    loop {
        let reply = node.net.call(peer, &ping, Duration::from_secs(1)).await;
        let (up, ready) = match reply.as_deref().map(serde_json::from_slice::<Reply>) {
            Ok(Ok(Reply::Pong {
                ready,
                epoch,
                takes,
                proof,
            })) => {
                if let (Some(signed), Ok(mut seen)) = (SignedTakes::from_hex(takes, &proof), node.peer_takes.lock()) {
                    // An equal count replaces a kept one too, so a stale signature does not stay.
                    if seen.get(&peer).is_none_or(|s| s.takes <= takes) {
                        seen.insert(peer, signed);
                    }
                }
                (true, (ready, epoch))
            }
            Ok(_) => (true, (false, 0)),
            Err(_) => (false, (false, 0)),
        };
        node.net.mark(peer, up);
        if let Ok(mut map) = node.peers_ready.lock() {
            map.insert(peer, ready);
        }
        if was_up != Some(up) {
            if up {
                tracing::info!(peer, "peer up");
            } else if was_up.is_some() {
                tracing::warn!(peer, "peer down");
            }
            was_up = Some(up);
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}
