//! The HTTP layer, and the only module that knows HTTP: `fn app(node) -> Router` with the client
//! endpoints under `/web`, health and metrics, and the two mesh endpoints peers use. Each handler
//! parses its body ([`error::parse_json`]), calls a service, and maps the service's domain error
//! to a status and a stable code ([`error::ApiError`]).
//!
//! Every error is JSON — `{"error": {"code": "...", "message": "..."}}` — with a stable code.
//! Uses the services (`auth`, `signing`, `actions`, `encryption`, `mesh`) and `node`; no module
//! imports this one but `start`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::error::{Error, Kind};
use crate::node::Node;
use error::ApiError;

mod actions;
mod auth;
mod encryption;
mod epoch;
pub mod error;
pub mod guard;
mod handshake;
mod mesh;
mod ops;
mod pkp;
pub mod serve;

/// Largest body accepted on `/web` endpoints.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The router for one node, without per-IP bounds (for in-process use).
pub fn app(node: Arc<Node>) -> Router {
    let guard = guard::Guard::new(&node.settings.config.limits, []);
    guarded_app(node, guard)
}

/// The router for one node, every endpoint but the mesh under `guard`'s per-IP bounds (which
/// count only when served through a [`guard::GuardedListener`]).
pub fn guarded_app(node: Arc<Node>, guard: Arc<guard::Guard>) -> Router {
    let limited = (guard, Arc::clone(&node.metrics));
    let web = Router::new()
        .route("/web/handshake", post(handshake::handshake))
        .route("/web/pkp/sign", post(pkp::sign))
        .route("/web/pkp/mint-attestation", post(pkp::mint_attestation))
        .route("/web/pkp/claim", post(pkp::claim))
        .route("/web/auth_method_id", post(auth::auth_method_id))
        .route("/web/encryption/sign", post(encryption::sign))
        .route("/web/epoch/confirmation", get(epoch::confirmation))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES));
    // Health and metrics stay up on a node that left: they say so.
    let ops = Router::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics));
    // Action code may be large: these two take the code limit, with room for JSON escaping.
    let code_limit = node.settings.config.actions.limits.code_bytes;
    let actions = Router::new()
        .route("/web/execute", post(actions::execute))
        .route("/web/actions", post(actions::store))
        // Custom auth carries action code too.
        .route("/web/sign_session_key", post(auth::sign_session_key))
        .layer(DefaultBodyLimit::max(
            code_limit.saturating_mul(2).saturating_add(1 << 20),
        ));
    // Mesh bodies are read by `mesh::frames`, which bounds them (`MAX_SEND_BYTES`, `MAX_FRAMES`,
    // `MAX_FRAME_BYTES`) and authenticates each envelope before it keeps the next.
    let mesh = Router::new()
        .route("/mesh/send", post(mesh::send))
        .route("/mesh/call", post(mesh::call));
    web.merge(actions)
        .layer(middleware::from_fn_with_state(Arc::clone(&node), members_only))
        .merge(ops)
        .layer(middleware::from_fn_with_state(limited, guard::limit))
        .merge(mesh)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&node), track))
        .with_state(node)
}

async fn track(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let started = Instant::now();
    let response = next.run(request).await;
    node.metrics
        .observe(&endpoint, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// Refuses every client request with `NOT_A_MEMBER` once NodeSet has moved to an epoch without
/// this node ([`Node::left`]).
async fn members_only(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    if let Some(error) = node.left().or_else(|| stale_client(&node, &request)) {
        return axum::response::IntoResponse::into_response(ApiError::from(error));
    }
    next.run(request).await
}

/// `EPOCH_CHANGED` for a client that says (header [`EPOCH_HEADER`]) it connected in an earlier
/// epoch: the node set, threshold and BLS public shares it checks answers against are no longer
/// this epoch's, so it must connect again (read NodeSet, handshake) and retry.
fn stale_client(node: &Node, request: &Request) -> Option<Error> {
    let theirs: u64 = request
        .headers()
        .get(EPOCH_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let current = node.epoch().number;
    (theirs < current).then(|| {
        Error::new(
            Kind::Conflict,
            "EPOCH_CHANGED",
            format!("the network moved from epoch {theirs} to epoch {current}: connect again and retry"),
        )
    })
}

pub use sigil_primitives::EPOCH_HEADER;

async fn not_found() -> ApiError {
    Error::new(Kind::NotFound, "NOT_FOUND", "no such endpoint").into()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
