//! Who is asking: every request's credentials resolve to a [`Principal`] here, which permissions
//! ([`permission`]), access-control conditions (`:userAddress`) and actions (`Lit.Auth`) use alike.
//!
//! Today a principal is an Ethereum wallet proven by an EIP-4361 auth signature (`authSig`) whose
//! nonce is a recent block hash of this network's chain; verified signatures are remembered until
//! they expire. Auth methods and session keys add variants to [`Principal`]. Uses `node` (the
//! chain, the config) and `error`; never `http`.

use sha2::{Digest, Sha256};
use sigil_chain::alloy::primitives::{Address, B256};
use sigil_chain::siwe::{AuthError, AuthSig, Expected, VerifiedAuth, CLOCK_SKEW_SECS};

use crate::error::{Error, Kind};
use crate::node::Node;

pub mod permission;
pub mod webauthn;

/// Who a request speaks for, once its credentials are checked. Permissions, conditions
/// (`:userAddress`) and actions (`Lit.Auth`) all read it from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// An Ethereum wallet, proven by an EIP-4361 auth signature.
    Wallet(Address),
}

impl Principal {
    /// The Ethereum address it acts as: the one PKP permissions and conditions test.
    pub fn address(&self) -> Address {
        match self {
            Self::Wallet(address) => *address,
        }
    }
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(Kind::Unauthenticated, code, message)
}

/// Longest accepted lifetime of an auth signature (expiration − issued at).
pub const MAX_AUTH_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// Checks an auth signature: EIP-191 signature of an EIP-4361 message for this network's domain
/// and chain, unexpired, not valid for longer than [`MAX_AUTH_LIFETIME_SECS`], and with a fresh
/// nonce — the hash of a block of this chain at most `nonce_max_age_secs` older than the head,
/// and (unless it is the head itself) no older than that by the clock either. Returns the signer
/// as a [`Principal::Wallet`].
pub async fn authenticate(node: &Node, auth: Option<&serde_json::Value>) -> Result<Principal, Error> {
    let registry = node.registry()?;
    let chain = node
        .settings
        .config
        .chain
        .as_ref()
        .ok_or_else(|| Error::internal("a registry without a [chain] section in the config"))?;
    let auth = auth.ok_or_else(|| {
        unauthorized(
            "AUTH_MISSING",
            "authSig is required: an EIP-4361 (SIWE) message signed by the PKP's owner or a permitted address",
        )
    })?;
    let auth: AuthSig =
        serde_json::from_value(auth.clone()).map_err(|e| unauthorized("AUTH_MALFORMED", format!("authSig: {e}")))?;
    let max_age = chain.nonce_max_age_secs;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expected = Expected {
        domain: chain.auth_domain.clone(),
        chain_id: registry.chain_id(),
    };
    let verified = verified_auth(node, &auth, &expected, now)?;
    let message = &verified.message;
    if let Some(expires) = message.expiration_time {
        let lifetime = expires.saturating_sub(message.issued_at);
        if lifetime > MAX_AUTH_LIFETIME_SECS {
            return Err(unauthorized(
                "AUTH_LIFETIME_TOO_LONG",
                format!("authSig is valid for {lifetime} s; at most {MAX_AUTH_LIFETIME_SECS} s is accepted"),
            ));
        }
    }
    let stale = |why: String| {
        let e = AuthError::StaleNonce(why);
        unauthorized(e.code(), e.to_string())
    };
    let nonce = &message.nonce;
    let block_hash: B256 = nonce.parse().map_err(|_| {
        stale(format!(
            "nonce {nonce:?} is not a block hash; use a recent block hash (latestBlockhash from /web/handshake)"
        ))
    })?;
    let head = registry.sync().await.map_err(Error::chain)?;
    let (number, timestamp) = registry.block(block_hash).await.map_err(Error::chain)?.ok_or_else(|| {
        stale(format!(
            "nonce {nonce} is not the hash of a block on chain {}",
            registry.chain_id()
        ))
    })?;
    let age = head.timestamp.saturating_sub(timestamp);
    if age > max_age {
        return Err(stale(format!(
            "nonce is block {number}, {age} s older than the head block {} (limit {max_age} s)",
            head.number
        )));
    }
    let clock_age = now.saturating_sub(timestamp);
    if block_hash != head.hash && clock_age > max_age {
        return Err(stale(format!(
            "nonce is block {number}, mined {clock_age} s ago (limit {max_age} s); use the latest block hash"
        )));
    }
    Ok(Principal::Wallet(verified.address))
}

/// Most verified auth signatures a node remembers (the map is emptied when full).
const VERIFIED_AUTH_CACHE: usize = 4096;

/// [`AuthSig::verify`], remembering signatures that passed: a cached one is only checked again
/// against the clock (expiration, not-before).
fn verified_auth(node: &Node, auth: &AuthSig, expected: &Expected, now: u64) -> Result<VerifiedAuth, Error> {
    let key: [u8; 32] = {
        let mut h = Sha256::new();
        for part in [&auth.sig, &auth.derived_via, &auth.signed_message, &auth.address] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    };
    let cached = node.verified_auth.lock().ok().and_then(|m| m.get(&key).cloned());
    if let Some(verified) = cached {
        let message = &verified.message;
        let error = match (message.expiration_time, message.not_before) {
            (Some(at), _) if at <= now => Some(AuthError::Expired { at, now }),
            (_, Some(at)) if at > now + CLOCK_SKEW_SECS => Some(AuthError::NotYetValid { at, now }),
            _ => None,
        };
        return match error {
            Some(e) => Err(unauthorized(e.code(), e.to_string())),
            None => Ok(verified),
        };
    }
    let verified = auth
        .verify(expected, now)
        .map_err(|e| unauthorized(e.code(), e.to_string()))?;
    if let Ok(mut map) = node.verified_auth.lock() {
        if map.len() >= VERIFIED_AUTH_CACHE {
            map.clear();
        }
        map.insert(key, verified.clone());
    }
    Ok(verified)
}
