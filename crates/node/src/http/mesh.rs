//! `POST /mesh/send` (a batch of sealed envelopes, answered 204) and `POST /mesh/call` (one
//! sealed call, answered with a sealed reply) over `mesh::dispatch`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{body, ApiError};
use crate::mesh::dispatch;
use crate::node::Node;

pub(super) async fn send(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    dispatch::receive(&node, &body(raw)?)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn call(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, ApiError> {
    Ok(dispatch::answer(&node, &body(raw)?).await?)
}
