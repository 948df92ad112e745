//! Threshold decryption on a node.
//!
//! Data is encrypted by clients alone, to the network's BLS key and the identity
//! `sigil-acc://{hash(conditions)}/{hash(data)}`. Decrypting needs the BLS signature over that
//! identity, so a node "allows decryption" by releasing its signature share — which it does only
//! after deciding the access-control conditions itself:
//!
//! - [`sign`] (`POST /web/encryption/sign`) answers a client with the share, or `CONDITION_FAILED`
//!   naming the condition that failed.
//! - Inside actions (`actions::decrypt`), `decryptAndCombine` sends the share to the other nodes
//!   running the same request and combines `t` valid ones there, so the plaintext exists only
//!   inside the action.
//!
//! Conditions read chains and run action conditions through an [`Environment`] the caller gives
//! (`actions::env::NodeEnv` on a node), so this module needs nothing of the action runtime.
//! Uses `auth`, `node`, `error`; never `http` or `actions`.

use std::sync::Arc;
use std::time::Duration;

use sigil_conditions::{identity, Conditions, Context, Environment, EvalError, Verdict};
use sigil_primitives::EncryptionShare;
use sigil_tss::bls::{self, BlsSignatureShare};

use crate::auth::check_rate;
use crate::auth::credentials::{authenticate, Credentials};
use crate::epoch::RootKeys;
use crate::error::{hex_bytes, Error, Kind};
use crate::node::{Fault, Node};

pub use sigil_primitives::EncryptionSignRequest;

fn bad_condition(e: sigil_conditions::ConditionError) -> Error {
    Error::new(Kind::Invalid, "BAD_CONDITION", e.to_string())
}

fn eval_error(e: EvalError) -> Error {
    if e.error.code == "BUSY" {
        // No condition slot freed up in `slot_wait_ms`: try again in a second.
        return Error::busy(e.to_string(), 1);
    }
    let status = match e.error.code.as_str() {
        "UNKNOWN_CHAIN" => Kind::Invalid,
        "ACTION_NOT_FOUND" => Kind::NotFound,
        "CONDITION_TIMEOUT" => Kind::UpstreamTimeout,
        "INTERNAL" => Kind::Internal,
        _ => Kind::Upstream,
    };
    Error::new(status, e.error.code.clone(), e.to_string())
}

/// Decides `conditions` for `context`: `Ok` when they hold, 403 `CONDITION_FAILED` naming the
/// failed condition when they do not.
pub(crate) async fn decide(
    node: &Node,
    env: &dyn Environment,
    conditions: &Conditions,
    context: &Context,
) -> Result<(), Error> {
    // One request's conditions together get one action's wall time (plus slack for the chain).
    let deadline = node.settings.config.actions.limits.wall_time + Duration::from_secs(5);
    match tokio::time::timeout(deadline, conditions.evaluate(context, env)).await {
        Ok(Ok(Verdict::Granted)) => Ok(()),
        Ok(Ok(Verdict::Denied(why))) => Err(Error::new(Kind::Forbidden, "CONDITION_FAILED", why)),
        Ok(Err(e)) => Err(eval_error(e)),
        Err(_) => Err(Error::new(
            Kind::UpstreamTimeout,
            "CONDITION_TIMEOUT",
            format!("the conditions were not decided within {} s", deadline.as_secs()),
        )),
    }
}

/// This node's BLS signature share over `identity`.
pub(crate) fn share_for(node: &Node, keys: &RootKeys, identity: &str) -> Result<BlsSignatureShare, Error> {
    // The test fault signs something else: a well-formed share that does not verify.
    let signed = if node.has_fault(Fault::CorruptSignatureShares) {
        format!("{identity}#corrupt")
    } else {
        identity.to_string()
    };
    bls::sign_share(&keys.bls, signed.as_bytes()).map_err(|e| Error::internal(e.to_string()))
}

/// Releases this node's decryption share for the identity of (conditions, data hash) if the
/// conditions hold for the caller.
pub async fn sign(
    node: &Arc<Node>,
    env: &dyn Environment,
    request: EncryptionSignRequest,
) -> Result<EncryptionShare, Error> {
    let conditions = Conditions::from_fields(
        request.access_control_conditions.as_ref(),
        request.evm_contract_conditions.as_ref(),
        request.unified_access_control_conditions.as_ref(),
    )
    .map_err(bad_condition)?;
    let data_hash = hex_bytes::<32>("dataToEncryptHash", &request.data_to_encrypt_hash)?;
    let keys = node.keys().ok_or_else(Error::not_ready)?;
    let conditions_hash = conditions.hash();
    let credentials = Credentials::new(request.auth_sig.as_ref(), request.session_sigs.as_ref());
    let user = if credentials.present() {
        let need = sigil_chain::session::Need::decryption(&hex::encode(conditions_hash), &hex::encode(data_hash));
        let principal = authenticate(node, credentials, Some(&need)).await?;
        check_rate(node, &principal)?;
        Some(principal.address())
    } else {
        None
    };
    let context = Context { user, action: None };
    decide(node, env, &conditions, &context).await?;
    let identity = identity(&conditions_hash, &data_hash);
    let share = share_for(node, &keys, &identity)?;
    tracing::debug!(%identity, "decryption share released");
    Ok(EncryptionShare {
        node_id: node.me,
        share: hex::encode(share.to_bytes()),
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_waiting_for_a_slot_answer_busy_with_a_time_to_retry() {
        let busy = eval_error(EvalError {
            path: "[0]".into(),
            error: sigil_conditions::EnvError::new("BUSY", "no action condition slot"),
        });
        assert_eq!(
            (busy.kind(), busy.code(), busy.retry_after()),
            (Kind::Unavailable, "BUSY", Some(1))
        );
        let other = eval_error(EvalError {
            path: "[0]".into(),
            error: sigil_conditions::EnvError::new("CHAIN_UNAVAILABLE", "down"),
        });
        assert_eq!((other.kind(), other.retry_after()), (Kind::Upstream, None));
    }
}
