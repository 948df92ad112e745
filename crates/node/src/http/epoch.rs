//! `GET /web/epoch/confirmation`: the reshared root key records this node holds for the proposed
//! epoch (newest first), each with its signature for `NodeSet.confirmEpoch` (`sigil admin epoch confirm` collects
//! them).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use sigil_primitives::EpochConfirmation;

use super::error::ApiError;
use crate::error::{Error, Kind};
use crate::node::Node;

pub(super) async fn confirmation(State(node): State<Arc<Node>>) -> Result<Json<Vec<EpochConfirmation>>, ApiError> {
    let held = node.next_epochs();
    if held.is_empty() {
        return Err(Error::new(
            Kind::NotFound,
            "NO_RESHARE",
            format!(
                "node {} holds no reshared root key shares for a proposed epoch",
                node.me
            ),
        )
        .into());
    }
    // Newest first: a record a node signed is never replaced, so it may hold several.
    Ok(Json(
        held.iter()
            .rev()
            .map(|next| EpochConfirmation {
                node_id: node.me,
                epoch: next.epoch,
                proposal_id: next.proposal,
                ecdsa_public_key: hex::encode(&next.public.ecdsa),
                bls_public_key: hex::encode(&next.public.bls),
                bls_public_shares: next
                    .public
                    .bls_shares
                    .iter()
                    .map(|(id, share)| (*id, hex::encode(share)))
                    .collect(),
                attester: next.public.attester.to_string(),
                signature: next.signature.map(hex::encode),
            })
            .collect(),
    ))
}
