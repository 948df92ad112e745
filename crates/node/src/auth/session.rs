//! Session signatures on a node: this node's entry of a request's `sessionSigs` (or its
//! `authSig`, when `derivedVia` says it is a session signature) is accepted only if the session key
//! signed it for **this node's URL**, it is unexpired, the session asked for what the request
//! does, and one of its capabilities grants it: a wallet's SIWE + ReCap (checked as an auth
//! signature, delegated to `lit:session:<key>`) or the network's own BLS signature over a PKP's
//! capability ([`super::grant`]). Verified capabilities are remembered until they expire, so a
//! session costs one ed25519 verification per request. Uses `auth`, `node`, `error`.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use sigil_chain::alloy::primitives::{Address, B256, U256};
use sigil_chain::session::{
    capability_identity, requested, Need, Recap, SessionError, SessionSig, DERIVED_VIA_BLS, SESSION_URI_PREFIX,
};
use sigil_chain::siwe::{parse_rfc3339, AuthSig, SiweMessage, CLOCK_SKEW_SECS, DERIVED_VIA};

use super::{check_lifetime, expected, grant, now, unauthorized, Principal, Resolved};
use crate::error::Error;
use crate::node::Node;

/// Most verified capabilities a node remembers (the map is emptied when full).
const VERIFIED_CAPABILITY_CACHE: usize = 4096;
/// Most capabilities one session signature may carry (each may cost a chain read or a pairing).
pub const MAX_CAPABILITIES: usize = 4;

/// A capability that passed its checks: whom it speaks for, what it grants, until when.
#[derive(Clone, Debug)]
pub struct Capability {
    /// The wallet or PKP it speaks for.
    pub principal: Principal,
    /// What it grants.
    pub recap: Recap,
    /// Its expiration, unix seconds.
    pub expires: u64,
    /// The session key it delegates to, hex (lowercase).
    pub session_key: String,
}

/// A [`SessionError`] as the node answers it (401, its code).
pub(crate) fn refusal(e: SessionError) -> Error {
    unauthorized(e.code(), e.to_string())
}

/// This node's URL as NodeSet lists it: what its session signatures must name.
pub(crate) fn own_url(node: &Node) -> Result<String, Error> {
    node.epoch()
        .peers
        .iter()
        .find(|(id, _, _)| *id == node.me)
        .map(|(_, url, _)| url.clone())
        .ok_or_else(|| Error::internal("this node is not in its own peer list"))
}

/// URLs compared as NodeSet and clients write them: scheme and host in any case, one trailing
/// slash or none.
pub(crate) fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/').eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// Checks session signature `sig` for this node and `need`, and returns its principal.
pub async fn verify(node: &Node, sig: &SessionSig, need: Option<&Need>) -> Result<Principal, Error> {
    let message = sig.open().map_err(refusal)?;
    let me = own_url(node)?;
    if !same_url(&message.node_address, &me) {
        return Err(refusal(SessionError::WrongNode {
            signed_for: message.node_address,
            this: me,
        }));
    }
    let now = now();
    let time = |field: &str, text: &str| {
        parse_rfc3339(text).map_err(|e| refusal(SessionError::Malformed(format!("{field}: {e}"))))
    };
    let issued = time("issuedAt", &message.issued_at)?;
    let expires = time("expiration", &message.expiration)?;
    if expires <= now {
        return Err(refusal(SessionError::Expired { at: expires, now }));
    }
    if issued > now + CLOCK_SKEW_SECS {
        return Err(refusal(SessionError::NotYetValid { at: issued, now }));
    }
    let max = super::MAX_AUTH_LIFETIME_SECS;
    if expires.saturating_sub(issued) > max {
        return Err(refusal(SessionError::TooLong {
            lifetime: expires.saturating_sub(issued),
            max,
        }));
    }
    if let Some(need) = need {
        if !requested(&message.resource_ability_requests, need) {
            return Err(refusal(SessionError::NotRequested(format!(
                "{} on {}",
                need.ability.lit_name(),
                need.uri()
            ))));
        }
    }
    if message.capabilities.len() > MAX_CAPABILITIES {
        return Err(refusal(SessionError::Malformed(format!(
            "{} capabilities; at most {MAX_CAPABILITIES}",
            message.capabilities.len()
        ))));
    }
    if message.capabilities.is_empty() {
        return Err(refusal(SessionError::NotGranted(
            "anything: the session has no capabilities".into(),
        )));
    }
    let mut last_error = None;
    for (index, auth) in message.capabilities.iter().enumerate() {
        match capability(node, index, auth, now).await {
            Ok(cap) if !cap.session_key.eq_ignore_ascii_case(&message.session_key) => {
                last_error = Some(refusal(SessionError::BadCapability {
                    index,
                    why: format!(
                        "it delegates to session key {}, not to the key that signed this request",
                        cap.session_key
                    ),
                }));
            }
            Ok(cap) => match need {
                Some(need) if !cap.recap.grants(need) => {
                    last_error = Some(refusal(SessionError::NotGranted(format!(
                        "{} on {}",
                        need.ability.lit_name(),
                        need.uri()
                    ))));
                }
                _ => {
                    still_permitted(node, &cap.principal).await?;
                    return Ok(cap.principal.clone());
                }
            },
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| refusal(SessionError::NotGranted("anything".into()))))
}

/// Checks capability `auth` (position `index`), remembering it once it passed.
async fn capability(node: &Node, index: usize, auth: &AuthSig, now: u64) -> Result<Arc<Capability>, Error> {
    let key: [u8; 32] = {
        let mut h = Sha256::new();
        for part in [&auth.sig, &auth.derived_via, &auth.signed_message, &auth.address] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    };
    let cached = node
        .verified_capabilities
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned())
        .and_then(|c| c.downcast::<Capability>().ok());
    if let Some(cap) = cached {
        if cap.expires <= now {
            return Err(refusal(SessionError::BadCapability {
                index,
                why: format!("it expired at {}", cap.expires),
            }));
        }
        return Ok(cap);
    }
    let bad = |why: String| refusal(SessionError::BadCapability { index, why });
    let cap = match auth.derived_via.as_str() {
        DERIVED_VIA => wallet_capability(node, auth, now).await,
        DERIVED_VIA_BLS => network_capability(node, auth, now).await,
        other => Err(format!("derivedVia {other:?} is neither a wallet's nor the network's")),
    }
    .map_err(bad)?;
    let cap = Arc::new(cap);
    if let Ok(mut map) = node.verified_capabilities.lock() {
        if map.len() >= VERIFIED_CAPABILITY_CACHE {
            map.clear();
        }
        map.insert(key, cap.clone() as Arc<dyn std::any::Any + Send + Sync>);
    }
    Ok(cap)
}

/// The session key a capability's `uri` delegates to.
fn delegate(message: &SiweMessage) -> Result<String, String> {
    message
        .uri
        .strip_prefix(SESSION_URI_PREFIX)
        .map(|k| k.to_ascii_lowercase())
        .ok_or_else(|| {
            format!(
                "its uri is {:?}, not {SESSION_URI_PREFIX}<session key>: it is not a session capability",
                message.uri
            )
        })
}

/// A wallet's capability: an ordinary auth signature (signature, domain, chain, time) whose
/// nonce is a block of this chain, delegating to a session key with a ReCap.
async fn wallet_capability(node: &Node, auth: &AuthSig, now: u64) -> Result<Capability, String> {
    let expected = expected(node).map_err(|e| e.to_string())?;
    let verified = auth.verify(&expected, now).map_err(|e| e.to_string())?;
    let message = &verified.message;
    check_lifetime(message.issued_at, message.expiration_time, "the capability").map_err(|e| e.to_string())?;
    let session_key = delegate(message)?;
    // A session outlives any nonce freshness window; the nonce must still be this chain's.
    let block: B256 = message
        .nonce
        .parse()
        .map_err(|_| format!("nonce {:?} is not a block hash", message.nonce))?;
    let registry = node.registry().map_err(|e| e.to_string())?;
    if registry.block(block).await.map_err(|e| e.to_string())?.is_none() {
        return Err(format!(
            "nonce {block} is not the hash of a block on chain {}",
            registry.chain_id()
        ));
    }
    Ok(Capability {
        principal: Principal::Wallet(verified.address),
        recap: Recap::of(&message.resources)?,
        expires: message.expiration_time.unwrap_or(0),
        session_key,
    })
}

/// A PKP's network-granted session counts only while one of the auth methods it was granted for
/// is still permitted (or its custom auth action is): revoking the method ends its sessions at
/// once, read from the chain on every request.
async fn still_permitted(node: &Node, principal: &Principal) -> Result<(), Error> {
    let Principal::Pkp {
        token,
        auth_methods,
        action,
        ..
    } = principal
    else {
        return Ok(());
    };
    let registry = node.registry()?;
    for method in auth_methods {
        if registry
            .auth_method_scopes(*token, method.kind, &method.id)
            .await
            .map_err(Error::chain)?
            != 0
        {
            return Ok(());
        }
    }
    if let Some(cid) = action.as_deref().and_then(|c| c.parse::<sigil_primitives::Cid>().ok()) {
        if registry
            .is_permitted_action(*token, cid.as_bytes())
            .await
            .map_err(Error::chain)?
        {
            return Ok(());
        }
    }
    Err(Error::new(
        crate::error::Kind::Forbidden,
        "SESSION_REVOKED",
        format!("PKP {token:#x} no longer permits the auth methods (or the action) its session was granted for"),
    ))
}

/// A capability the network signed with its BLS key for a PKP (`/web/sign_session_key`); the
/// pairing check runs on a blocking thread.
async fn network_capability(node: &Node, auth: &AuthSig, now: u64) -> Result<Capability, String> {
    let message = SiweMessage::parse(&auth.signed_message).map_err(|e| e.to_string())?;
    let expected = expected(node).map_err(|e| e.to_string())?;
    if message.domain != expected.domain || message.chain_id != expected.chain_id {
        return Err(format!(
            "it is for {} on chain {}, not this network ({} on chain {})",
            message.domain, message.chain_id, expected.domain, expected.chain_id
        ));
    }
    let expires = message.expiration_time.ok_or("it has no expiration")?;
    if expires <= now {
        return Err(format!("it expired at {expires} (now {now})"));
    }
    if message.issued_at > now + CLOCK_SKEW_SECS {
        return Err(format!("it is issued at {}, in the future", message.issued_at));
    }
    let claimed: Address = auth.address.parse().map_err(|_| "address is not an Ethereum address")?;
    if claimed != message.address {
        return Err("address is not the capability's address".into());
    }
    let signature = hex::decode(auth.sig.trim_start_matches("0x")).map_err(|_| "sig is not hex")?;
    let keys = node.keys().ok_or("this node holds no root keys yet")?;
    let identity = capability_identity(&auth.signed_message);
    tokio::task::spawn_blocking(move || sigil_tss::bls::verify_signature(keys.bls.public(), &signature, &identity))
        .await
        .map_err(|e| format!("verifying: {e}"))?
        .map_err(|_| "the network's BLS signature over it does not verify".to_string())?;
    let session_key = delegate(&message)?;
    let recap = Recap::of(&message.resources)?;
    let context = recap
        .auth_context()
        .ok_or("it carries no auth context (lit-resolvedauthcontext://*)")?;
    let context: grant::AuthContext =
        serde_json::from_value(context.clone()).map_err(|e| format!("auth context: {e}"))?;
    let token = U256::from_str_radix(context.pkp_token_id.trim_start_matches("0x"), 16)
        .map_err(|_| "auth context: pkpTokenId is not hex")?;
    Ok(Capability {
        principal: Principal::Pkp {
            token,
            address: message.address,
            auth_methods: context.auth_method_contexts.iter().map(Resolved::from).collect(),
            action: context.lit_action_ipfs_id,
        },
        recap,
        expires,
        session_key,
    })
}
