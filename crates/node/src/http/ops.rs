//! `GET /health` and `GET /metrics` (Prometheus text).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::metrics::metric;
use crate::node::Node;

pub(super) async fn health(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(health_of(&node))
}

pub(super) async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let mut out = String::new();
    node.metrics.render(&mut out);
    mesh_metrics(&node, &mut out);
    cache_metrics(&node, &mut out).await;
    metric(
        &mut out,
        "sigil_action_spares_ready",
        "gauge",
        "Runtimes with ethers loaded, ready for the next actions that use it ([actions] warm_ethers).",
        node.spares.ready(),
    );
    let up = node.live().len();
    metric(
        &mut out,
        "sigil_peers_up",
        "gauge",
        "Nodes reachable, this one included.",
        up,
    );
    metric(
        &mut out,
        "sigil_nodes",
        "gauge",
        "Nodes in the network.",
        node.epoch().peers.len(),
    );
    metric(
        &mut out,
        "sigil_root_keys_ready",
        "gauge",
        "1 once this node holds its root key shares.",
        u8::from(node.keys().is_some()),
    );
    metric(
        &mut out,
        "sigil_presignature_stock",
        "gauge",
        "Presignatures this node can allocate (nonzero only on the allocator).",
        node.epoch().pool.stock(),
    );
    let reserved = node.taker.reserved() as u64;
    let stored = node.store.presignature_count().unwrap_or(0);
    metric(
        &mut out,
        "sigil_presignature_shares_stored",
        "gauge",
        "Presignature shares held by this node (in the store, or reserved in memory).",
        stored + reserved,
    );
    metric(
        &mut out,
        "sigil_presignatures_reserved",
        "gauge",
        "Presignature shares taken ahead of their requests and held in memory (at most 16).",
        reserved,
    );
    metric(
        &mut out,
        "sigil_presignatures_made_total",
        "counter",
        "Presignatures this node helped make since it started.",
        node.epoch().pool.made(),
    );
    metric(
        &mut out,
        "sigil_schnorr_stock",
        "gauge",
        "Schnorr nonce slots this node can allocate (nonzero only on the allocator).",
        node.epoch().pool.schnorr_stock(),
    );
    metric(
        &mut out,
        "sigil_schnorr_nonces_made_total",
        "counter",
        "Schnorr nonce material (FROST preprocessing) this node helped make since it started.",
        node.epoch().pool.made_schnorr(),
    );
    metric(
        &mut out,
        "sigil_presignatures_per_second",
        "gauge",
        "Presignature generation rate over the last minute.",
        format!("{:.3}", node.epoch().pool.rate()),
    );
    metric(
        &mut out,
        "sigil_presignatures_allocated_total",
        "counter",
        "Presignatures this node allocated to sign requests.",
        node.epoch().pool.allocated(),
    );
    metric(
        &mut out,
        "sigil_action_mailbox_dropped_total",
        "counter",
        "Action values from peers dropped because the mailbox, or their sender's share of it (limits.mailbox_bytes_per_peer, 2500 values, 2 MiB per request), was full.",
        node.mailbox.dropped(),
    );
    metric(
        &mut out,
        "sigil_allocations_unconfirmed_total",
        "counter",
        "Allocation asks refused because fewer than t nodes asked for their request within the wait (a member asking for requests nobody made).",
        node.epoch().pool.unconfirmed(),
    );
    metric(
        &mut out,
        "sigil_allocations_over_share_total",
        "counter",
        "Allocations nobody joined, pushed out by newer ones of their node past limits.open_asks_per_node.",
        node.epoch().pool.over_share(),
    );
    metric(
        &mut out,
        "sigil_presignature_conflicts_total",
        "counter",
        "Sign requests refused because their presignature was already used for another request (an allocator bound it twice).",
        node.epoch().pool.conflicts(),
    );
    metric(
        &mut out,
        "sigil_signing_set_penalized",
        "gauge",
        "Nodes left out of new signing sets (as allocator) because they stalled a presignature run.",
        node.epoch().pool.penalized().len(),
    );
    let (actions, bytes) = node.action_store.usage();
    metric(
        &mut out,
        "sigil_action_store_actions",
        "gauge",
        "Actions in the action store.",
        actions,
    );
    metric(
        &mut out,
        "sigil_action_store_bytes",
        "gauge",
        "Bytes of code in the action store.",
        bytes,
    );
    if let Some(fault) = node.options.fault() {
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!(
                "# HELP sigil_test_fault A test-only fault switch is on: this node misbehaves on purpose.\n# TYPE sigil_test_fault gauge\nsigil_test_fault{{node=\"{}\",fault=\"{}\"}} 1\n",
                node.me,
                fault.name()
            ),
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Health as `GET /health` reports it.
fn health_of(node: &Node) -> serde_json::Value {
    let epoch = node.epoch();
    let ready = node.keys().is_some();
    let view = node.chain_view();
    let status = match node.left().as_ref().map(|e| e.code()) {
        Some("NOT_A_MEMBER") => "left",
        Some(_) => "switching",
        None if ready => "ok",
        None => "starting",
    };
    let next = node.next_epochs();
    serde_json::json!({
        "status": status,
        "nodeId": node.me,
        "rootKeys": ready,
        "peersUp": node.live().len(),
        "peersReady": node.peers_ready() + usize::from(ready),
        "nodes": epoch.peers.len(),
        "threshold": epoch.threshold,
        "presignatures": epoch.pool.stock(),
        "epoch": epoch.number,
        // NodeSet as last read: its epoch, whether this node is in it, the proposed next epoch.
        "chain": view.map(|view| serde_json::json!({
            "epoch": view.epoch,
            "member": view.member,
            "nodes": view.nodes,
            "proposal": view.proposal.as_ref().map(|p| serde_json::json!({
                "epoch": p.epoch,
                "threshold": p.threshold,
                "nodes": p.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
            })),
        })),
        // The reshared shares this node holds for the proposed epoch, until NodeSet confirms it.
        "reshared": next.last().map(|n| serde_json::json!({
            "epoch": n.epoch,
            "proposal": n.proposal,
            "threshold": n.keys.ecdsa.threshold(),
            "records": next.len(),
        })),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The mesh's bounds: what its queues hold and what they dropped.
fn mesh_metrics(node: &Node, out: &mut String) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let dropped = &node.net.dropped;
    out.push_str("# HELP sigil_mesh_dropped_total Outgoing mesh messages dropped, by reason.\n");
    out.push_str("# TYPE sigil_mesh_dropped_total counter\n");
    for (reason, count) in [
        ("queue_full", &dropped.queue_full),
        ("peer_down", &dropped.peer_down),
        ("too_large", &dropped.too_large),
        ("unreachable", &dropped.unreachable),
    ] {
        let _ = writeln!(
            out,
            "sigil_mesh_dropped_total{{reason=\"{reason}\"}} {}",
            count.load(Relaxed)
        );
    }
    let (messages, bytes) = node
        .net
        .peer_ids()
        .into_iter()
        .map(|peer| node.net.queued(peer))
        .fold((0, 0), |(m, b), (pm, pb)| (m + pm, b + pb));
    metric(
        out,
        "sigil_mesh_queued_messages",
        "gauge",
        "Messages waiting in the peers' send queues.",
        messages,
    );
    metric(
        out,
        "sigil_mesh_queued_bytes",
        "gauge",
        "Bytes waiting in the peers' send queues.",
        bytes,
    );
    metric(
        out,
        "sigil_early_dropped_total",
        "counter",
        "Protocol messages for sessions not open yet that the bounds of the early buffer dropped.",
        node.sessions.early_dropped(),
    );
    metric(
        out,
        "sigil_mesh_unverified_bytes",
        "gauge",
        "Bytes of mesh envelopes being read whose header passed its check and whose authentication is not verified yet ([limits] mesh_unverified_bytes).",
        node.unverified.held(),
    );
}

/// How full the bounded caches are (`[limits] known_keys`, `registry_cache`, `[auth.oauth]`),
/// and what the OIDC verifier fetched and refused.
async fn cache_metrics(node: &Node, out: &mut String) {
    metric(
        out,
        "sigil_known_pkp_names",
        "gauge",
        "PKP public keys and token ids this node remembers (two per PKP).",
        node.known_key_names(),
    );
    let oidc = &node.oidc.counters;
    use std::sync::atomic::Ordering::Relaxed as R;
    for (name, kind, help, value) in [
        (
            "sigil_oidc_jwks_fetches_total",
            "counter",
            "JWKS documents fetched from OIDC issuers and accepted.",
            oidc.jwks_fetches.load(R),
        ),
        (
            "sigil_oidc_jwks_fetch_failures_total",
            "counter",
            "JWKS fetches that failed, timed out or were refused (too large, too many keys).",
            oidc.jwks_fetch_failures.load(R),
        ),
        (
            "sigil_oidc_userinfo_calls_total",
            "counter",
            "Calls to userinfo endpoints for OAuth access tokens.",
            oidc.userinfo_calls.load(R),
        ),
        (
            "sigil_oidc_userinfo_caller_refused_total",
            "counter",
            "Access tokens not checked because their client address had spent its share of the userinfo budget (`[auth.oauth] userinfo_calls_per_caller_per_sec`).",
            oidc.userinfo_caller_refused.load(R),
        ),
        (
            "sigil_oidc_refused_total",
            "counter",
            "OIDC ID tokens and OAuth access tokens refused.",
            oidc.refused.load(R),
        ),
    ] {
        metric(out, name, kind, help, value);
    }
    metric(
        out,
        "sigil_oidc_userinfo_cache_entries",
        "gauge",
        "Userinfo answers remembered (`[auth.oauth] userinfo_cache_entries`).",
        node.oidc.userinfo_cached(),
    );
    if let Some(registry) = &node.options.registry {
        let (standing, actions) = registry.cached().await;
        metric(
            out,
            "sigil_registry_cache_entries",
            "gauge",
            "Entries of the chain permission caches (owners and permitted addresses, and permitted actions).",
            standing + actions,
        );
    }
}
