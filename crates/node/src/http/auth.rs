//! `POST /web/sign_session_key` over `auth::grant`, `POST /web/auth_method_id` over
//! `auth::methods`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use sigil_primitives::{AuthMethodIdResponse, SignSessionKeyResponse};

use super::error::{json_body, ApiError};
use crate::auth::{grant, methods};
use crate::node::Node;

pub(super) async fn sign_session_key(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<SignSessionKeyResponse>, ApiError> {
    Ok(Json(grant::sign_session_key(&node, json_body(raw)?).await?))
}

pub(super) async fn auth_method_id(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<AuthMethodIdResponse>, ApiError> {
    Ok(Json(methods::identify(&node, json_body(raw)?).await?))
}
