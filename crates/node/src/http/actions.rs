//! `POST /web/execute` and `POST /web/actions` over `actions`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use sigil_primitives::{ExecuteResponse, StoredAction};

use super::error::{json_body, ApiError};
use crate::actions;
use crate::node::Node;

pub(super) async fn execute(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<ExecuteResponse>, ApiError> {
    Ok(Json(actions::execute(&node, json_body(raw)?).await?))
}

pub(super) async fn store(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<StoredAction>, ApiError> {
    Ok(Json(actions::code::store_action(&node, json_body(raw)?).await?))
}
