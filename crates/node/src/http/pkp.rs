//! `POST /web/pkp/sign`, `POST /web/pkp/mint-attestation` and `POST /web/pkp/claim` over
//! `signing::pkp`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use sigil_primitives::SignResponse;

use super::error::{json_body, ApiError};
use crate::node::Node;
use crate::signing::pkp;

pub(super) async fn sign(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<SignResponse>, ApiError> {
    Ok(Json(pkp::sign(&node, json_body(raw)?).await?))
}

pub(super) async fn mint_attestation(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<SignResponse>, ApiError> {
    Ok(Json(pkp::attest(&node, json_body(raw)?).await?))
}

pub(super) async fn claim(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<SignResponse>, ApiError> {
    Ok(Json(pkp::claim(&node, json_body(raw)?).await?))
}
