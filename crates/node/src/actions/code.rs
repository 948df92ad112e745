//! Action code by CID: stored on this node (`/web/actions`), or fetched from the IPFS gateway and
//! checked against its hash. Uses `node`, `actions::store`, `error`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sigil_primitives::StoreRequest;
use sigil_primitives::{Cid, StoredAction};

use super::fetch::{http, read_capped};
use super::store::Stored;
use crate::error::{Error, Kind};
use crate::node::Node;

pub(crate) fn code_too_large(len: usize, max: usize) -> Error {
    Error::new(
        Kind::TooLarge,
        "ACTION_LIMIT",
        format!("action code of {len} bytes is over the {max}-byte code size limit"),
    )
}

/// Stores code under its CID in this node's action store (bounded: see `actions::store`).
pub async fn store_action(node: &Arc<Node>, request: StoreRequest) -> Result<StoredAction, Error> {
    let max = node.settings.config.actions.limits.code_bytes;
    if request.code.len() > max {
        node.metrics.actions.store_rejected("too_large");
        return Err(code_too_large(request.code.len(), max));
    }
    let cid = Cid::of_file(request.code.as_bytes()).map_err(|e| Error::bad_request(e.to_string()))?;
    let size = request.code.len();
    let stored = save(node, &cid, request.code.into_bytes()).await?;
    if !stored.existed {
        tracing::info!(%cid, size, evicted = stored.evicted.len(), "action stored");
    }
    Ok(StoredAction {
        cid: cid.to_string(),
        size,
    })
}

/// Puts code in the action store, counting refusals and evictions.
async fn save(node: &Node, cid: &Cid, code: Vec<u8>) -> Result<Stored, Error> {
    let wait = Duration::from_millis(node.settings.config.actions.slot_wait_ms);
    let counters = &node.metrics.actions;
    match node.action_store.put(cid.to_string(), code, wait).await {
        Ok(stored) => {
            counters
                .store_evicted
                .fetch_add(stored.evicted.len() as u64, Ordering::Relaxed);
            for evicted in &stored.evicted {
                tracing::info!(%evicted, "action evicted from the full action store");
            }
            Ok(stored)
        }
        Err(e) => {
            counters.store_rejected(match e.code() {
                "ACTION_STORE_FULL" => "full",
                "BUSY" => "busy",
                _ => "error",
            });
            Err(e)
        }
    }
}

/// The code of action `cid`: from this node's store, else from the IPFS gateway (hash checked).
pub(crate) async fn load_code(node: &Arc<Node>, cid: &Cid) -> Result<String, Error> {
    let key = cid.to_string();
    let store = Arc::clone(&node.action_store);
    let lookup = key.clone();
    let stored = tokio::task::spawn_blocking(move || store.get(&lookup))
        .await
        .map_err(|e| Error::internal(e.to_string()))?
        .map_err(|e| Error::internal(e.to_string()))?;
    let not_found = |why: &str| {
        Error::new(Kind::NotFound,
            "ACTION_NOT_FOUND",
            format!("node {} has no code for action {key}{why}; store it with `sigil action deploy FILE` (POST /web/actions)", node.me),
        )
    };
    let bytes = match stored {
        Some(bytes) => bytes,
        None => {
            let Some(gateway) = &node.settings.config.actions.ipfs_gateway else {
                return Err(not_found(" and no IPFS gateway is configured"));
            };
            let url = format!("{}/ipfs/{key}", gateway.trim_end_matches('/'));
            let max = node.settings.config.actions.limits.code_bytes;
            let response = http()
                .get(&url)
                .send()
                .await
                .map_err(|e| not_found(&format!(" (gateway {url}: {e})")))?;
            if !response.status().is_success() {
                return Err(not_found(&format!(" (gateway {url}: {})", response.status())));
            }
            let bytes = read_capped(response, max, &url)
                .await
                .map_err(|e| Error::new(Kind::Upstream, "ACTION_NOT_FOUND", e))?;
            let got = Cid::of_file(&bytes).map_err(|e| Error::internal(e.to_string()))?;
            if got != *cid {
                return Err(Error::new(
                    Kind::Upstream,
                    "ACTION_HASH_MISMATCH",
                    format!("gateway {url} returned code that hashes to {got}, not {key}"),
                ));
            }
            // Kept for the next run if there is room; the run goes on either way.
            let _ = save(node, cid, bytes.clone()).await;
            bytes
        }
    };
    String::from_utf8(bytes).map_err(|_| Error::bad_request(format!("action {key} is not UTF-8 text")))
}
