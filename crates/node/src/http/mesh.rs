//! `POST /mesh/send` (a batch of sealed envelopes, answered 204) and `POST /mesh/call` (one
//! sealed call, answered with a sealed reply) over `mesh::dispatch`. Bodies are streamed into a
//! [`dispatch::Inbound`], which authenticates each envelope before it keeps the next: an
//! unauthenticated sender is cut off after its first 69 bytes, and the rest of its body is never
//! read.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use futures::StreamExt;

use super::error::ApiError;
use super::guard::PeerAddr;
use crate::error::{Error, Kind};
use crate::mesh::dispatch::{self, Inbound};
use crate::node::Node;

/// How long a body may take to deliver each whole envelope (the first from the body's start,
/// each next from the one before): a sender trickling a byte at a time (each byte resets the
/// idle timeout), a stranger or one replaying a captured envelope, would otherwise hold its
/// connection as long as it likes. Ample for the largest envelope over a slow link; a peer
/// gives up on a batch after 10 s.
const ENVELOPE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Pushes `body` into `inbound` as it arrives; the first refusal ends the read.
async fn stream(mut inbound: Inbound, body: Body) -> Result<Option<Vec<u8>>, Error> {
    let mut chunks = body.into_data_stream();
    let mut deadline = tokio::time::Instant::now() + ENVELOPE_WITHIN;
    let mut opened = 0;
    loop {
        let next = tokio::time::timeout_at(deadline, chunks.next()).await.map_err(|_| {
            Error::new(
                Kind::TimedOut,
                "BODY_TIMEOUT",
                format!(
                    "envelope {} of the body did not arrive whole within {} s",
                    opened + 1,
                    ENVELOPE_WITHIN.as_secs()
                ),
            )
        })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| Error::bad_request(format!("reading the body: {e}")))?;
        inbound.push(&chunk)?;
        if inbound.opened() > opened {
            opened = inbound.opened();
            deadline = tokio::time::Instant::now() + ENVELOPE_WITHIN;
        }
    }
    inbound.finish()
}

/// The address a body comes from (the connection's), if the server recorded it.
fn source(request: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    request
        .get::<ConnectInfo<PeerAddr>>()
        .map(|ConnectInfo(PeerAddr(addr))| addr.ip())
}

pub(super) async fn send(State(node): State<Arc<Node>>, request: Request) -> Result<StatusCode, ApiError> {
    let source = source(request.extensions());
    stream(Inbound::batch(&node, source), request.into_body()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn call(State(node): State<Arc<Node>>, request: Request) -> Result<Vec<u8>, ApiError> {
    let source = source(request.extensions());
    let envelope = stream(Inbound::call(&node, source), request.into_body())
        .await?
        .unwrap_or_default();
    Ok(dispatch::answer(&node, &envelope).await?)
}
