//! `POST /web/encryption/sign` over `encryption`, deciding conditions with the node's
//! environment (its chains and action sandbox).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use sigil_primitives::EncryptionShare;

use super::error::{json_body, ApiError};
use crate::actions::env::NodeEnv;
use crate::encryption;
use crate::node::Node;

pub(super) async fn sign(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<EncryptionShare>, ApiError> {
    let env = NodeEnv::new(&node);
    Ok(Json(encryption::sign(&node, &env, json_body(raw)?).await?))
}
