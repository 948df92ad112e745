//! `POST /web/sign_session_key` over `auth::grant`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use sigil_primitives::SignSessionKeyResponse;

use super::error::{json_body, ApiError};
use crate::auth::grant;
use crate::node::Node;

pub(super) async fn sign_session_key(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<SignSessionKeyResponse>, ApiError> {
    Ok(Json(grant::sign_session_key(&node, json_body(raw)?).await?))
}
