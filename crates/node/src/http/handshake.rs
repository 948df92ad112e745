//! `POST /web/handshake`: who this node is, its keys, its peers and chain, signed over the
//! caller's challenge.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use sigil_primitives::{Handshake, HandshakeRequest, PeerInfo};

use super::error::{body, parse_json, ApiError};
use crate::error::Error;
use crate::node::Node;

pub(super) async fn handshake(
    State(node): State<Arc<Node>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Handshake>, ApiError> {
    let raw = body(raw)?;
    let request: HandshakeRequest = if raw.iter().all(u8::is_ascii_whitespace) {
        HandshakeRequest::default()
    } else {
        // The body is optional, but when given it must be a JSON object.
        let object: serde_json::Map<String, serde_json::Value> = parse_json(&raw)?;
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| ApiError::from(Error::bad_request(format!("handshake body: {e}"))))?
    };
    let challenge = match request.challenge.as_deref() {
        None => None,
        Some(text) => Some(
            hex::decode(text.trim_start_matches("0x"))
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| ApiError::from(Error::bad_request("challenge must be 32 bytes of hex")))?,
        ),
    };
    // One epoch for the whole answer, so the signed claim never mixes two.
    let epoch = node.epoch();
    let cached = node.public_keys(&epoch);
    let public = cached.as_ref().map(|c| &c.0);
    // Signed only when asked with a challenge: an unsigned answer is worth nothing to a client.
    let signature = challenge.and_then(|c| node.sign_handshake(&epoch, public, &c));
    let (chain_id, latest_blockhash, node_set) = match &node.options.registry {
        Some(registry) => (
            Some(registry.chain_id()),
            registry.head().await.ok().map(|head| head.hash.to_string()),
            Some(registry.contracts().node_set.to_string()),
        ),
        None => (None, None, None),
    };
    Ok(Json(Handshake {
        chain_id,
        latest_blockhash,
        node_set,
        node_id: node.me,
        epoch: epoch.number,
        threshold: epoch.threshold,
        ready: public.is_some(),
        ecdsa_public_key: public.as_ref().map(|k| hex::encode(&k.ecdsa)),
        bls_public_key: public.as_ref().map(|k| hex::encode(&k.bls)),
        bls_public_shares: public
            .as_ref()
            .map(|k| {
                k.bls_shares
                    .iter()
                    .map(|(id, share)| (*id, hex::encode(share)))
                    .collect()
            })
            .unwrap_or_default(),
        ecdsa_public_shares: match (public, epoch.keys()) {
            (Some(_), Some(keys)) => {
                let package = keys.ecdsa.public();
                package
                    .parties()
                    .into_iter()
                    .filter_map(|id| {
                        package.public_share(id).map(|share| {
                            (
                                id.0,
                                hex::encode(sigil_tss::k256::elliptic_curve::group::GroupEncoding::to_bytes(share)),
                            )
                        })
                    })
                    .collect()
            }
            _ => Default::default(),
        },
        attester: public.as_ref().map(|k| k.attester.to_string()),
        identity_key: hex::encode(node.identity_key(&epoch)),
        signer: Some(node.signer_address().to_string()),
        signature: signature.map(hex::encode),
        keys_signature: cached.as_ref().and_then(|c| c.1).map(hex::encode),
        peers: epoch
            .peers
            .iter()
            .map(|(id, url, key)| PeerInfo {
                id: *id,
                url: url.clone(),
                key: key.to_string(),
            })
            .collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }))
}
