//! Who is asking: every request's credentials resolve to a [`Principal`] here, which permissions
//! ([`permission`]), access-control conditions (`:userAddress`) and actions (`Lit.Auth`) use alike.
//!
//! Credentials are either an EIP-4361 auth signature (`authSig`, a bearer token: weaker, kept
//! for compatibility) whose nonce is a recent block hash of this network's chain, or a session
//! signature ([`session`], Lit's `sessionSigs`) made for this node alone, whose capability comes
//! from a wallet or from the network itself for a PKP's auth methods ([`grant`], [`methods`]).
//! Verified signatures are remembered until they expire. Per-principal request rates are
//! bounded in [`limits`]. Uses `node` (the chain, the config) and `error`; never `http`.

use sha2::{Digest, Sha256};
use sigil_chain::alloy::primitives::{Address, B256, U256};
use sigil_chain::siwe::{AuthError, AuthSig, Expected, VerifiedAuth, CLOCK_SKEW_SECS};

use crate::error::{Error, Kind};
use crate::node::Node;

pub mod caller;
pub mod credentials;
pub mod fetch;
pub mod grant;
pub mod limits;
pub mod methods;
pub mod oidc;
pub mod permission;
pub mod session;
pub mod webauthn;

/// An auth method whose proof checked out ([`methods::resolve`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resolved {
    /// Lit's type number.
    pub kind: u64,
    /// Its id within the type, as PKPPermissions holds it.
    pub id: Vec<u8>,
    /// What actions see of it (`Lit.Auth.authMethodContexts`); the same at every node.
    pub context: serde_json::Value,
    /// When its proof stops being valid, in seconds since the Unix epoch, where the proof says
    /// so the same at every node (an ID token's `exp`, a wallet delegation's expiration): a
    /// session it buys ends no later.
    #[serde(skip)]
    pub expires_at: Option<u64>,
}

impl Resolved {
    /// As `Lit.Auth.authMethodContexts` lists it: `{authMethodType, authMethodId, context}`.
    pub fn lit_context(&self) -> serde_json::Value {
        serde_json::json!({
            "authMethodType": self.kind,
            "authMethodId": format!("0x{}", hex::encode(&self.id)),
            "context": self.context,
        })
    }
}

/// Who a request speaks for, once its credentials are checked. Permissions, conditions
/// (`:userAddress`) and actions (`Lit.Auth`) all read it from here.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// An Ethereum wallet, proven by an auth signature or a session it delegated to.
    Wallet(Address),
    /// A PKP, through a session the network granted it for its auth methods.
    Pkp {
        /// Its token id.
        token: U256,
        /// Its Ethereum address.
        address: Address,
        /// The auth methods (or custom auth action) the session was granted for.
        auth_methods: Vec<Resolved>,
        /// The custom auth action that granted it, if one did.
        action: Option<String>,
    },
}

impl Principal {
    /// The Ethereum address it acts as: the one PKP permissions and conditions test.
    pub fn address(&self) -> Address {
        match self {
            Self::Wallet(address) | Self::Pkp { address, .. } => *address,
        }
    }

    /// The key its request rate is counted under.
    pub fn rate_key(&self) -> [u8; 32] {
        match self {
            Self::Wallet(address) => address.into_word().0,
            Self::Pkp { token, .. } => token.to_be_bytes(),
        }
    }
}

pub(crate) fn unauthorized(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(Kind::Unauthenticated, code, message)
}

/// Longest accepted lifetime of an auth signature (expiration − issued at).
pub const MAX_AUTH_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// Spends one request of `principal`'s rate (`[auth]`): 429 `RATE_LIMITED` with `Retry-After`
/// when it is over it.
pub fn check_rate(node: &Node, principal: &Principal) -> Result<(), Error> {
    check_rate_of(node, principal.rate_key(), &principal.address().to_string())
}

/// [`check_rate`] for the caller counted under `key`, named `who` in the error.
pub fn check_rate_of(node: &Node, key: [u8; 32], who: &str) -> Result<(), Error> {
    let Ok(mut limits) = node.principal_limits.lock() else {
        return Ok(());
    };
    limits.spend(key, std::time::Instant::now()).map_err(|wait| {
        let auth = &node.settings.config.auth;
        Error::rate_limited(
            format!(
                "{who} is over its rate of {} requests a second (burst {}) at this node",
                auth.rate_per_principal, auth.burst_per_principal
            ),
            wait.ceil().max(1.0) as u64,
        )
    })
}

/// The node's SIWE expectations: its domain and chain.
pub(crate) fn expected(node: &Node) -> Result<Expected, Error> {
    let registry = node.registry()?;
    let chain = chain_config(node)?;
    Ok(Expected {
        domain: chain.auth_domain.clone(),
        chain_id: registry.chain_id(),
    })
}

fn chain_config(node: &Node) -> Result<&crate::config::ChainConfig, Error> {
    node.settings
        .config
        .chain
        .as_ref()
        .ok_or_else(|| Error::internal("a registry without a [chain] section in the config"))
}

/// Unix seconds by the node's clock.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks an auth signature: EIP-191 signature of an EIP-4361 message for this network's domain
/// and chain, unexpired, not valid for longer than [`MAX_AUTH_LIFETIME_SECS`], and with a fresh
/// nonce — the hash of a block of this chain at most `nonce_max_age_secs` older than the head,
/// and (unless it is the head itself) no older than that by the clock either. Returns the signer
/// as a [`Principal::Wallet`].
pub async fn authenticate_auth_sig(node: &Node, auth: Option<&serde_json::Value>) -> Result<Principal, Error> {
    let auth = auth.ok_or_else(|| {
        unauthorized(
            "AUTH_MISSING",
            "authSig or sessionSigs is required: an EIP-4361 (SIWE) message signed by the PKP's owner or a permitted address, or a session signature for this node",
        )
    })?;
    let auth: AuthSig =
        serde_json::from_value(auth.clone()).map_err(|e| unauthorized("AUTH_MALFORMED", format!("authSig: {e}")))?;
    let now = now();
    let verified = verified_auth(node, &auth, &expected(node)?, now)?;
    let message = &verified.message;
    if message.uri.starts_with(sigil_chain::session::SESSION_URI_PREFIX) {
        return Err(unauthorized(
            "AUTH_IS_SESSION_CAPABILITY",
            "this SIWE message delegates to a session key (its uri is lit:session:…): it counts only inside that key's session signatures, never as an authSig",
        ));
    }
    check_lifetime(message.issued_at, message.expiration_time, "authSig")?;
    let nonce = &message.nonce;
    let stale = |why: String| {
        let e = AuthError::StaleNonce(why);
        unauthorized(e.code(), e.to_string())
    };
    let block_hash: B256 = nonce.parse().map_err(|_| {
        stale(format!(
            "nonce {nonce:?} is not a block hash; use a recent block hash (latestBlockhash from /web/handshake)"
        ))
    })?;
    fresh_block(node, block_hash).await?;
    Ok(Principal::Wallet(verified.address))
}

/// An auth signature or capability may live at most [`MAX_AUTH_LIFETIME_SECS`].
pub(crate) fn check_lifetime(issued_at: u64, expires: Option<u64>, what: &str) -> Result<(), Error> {
    if let Some(expires) = expires {
        let lifetime = expires.saturating_sub(issued_at);
        if lifetime > MAX_AUTH_LIFETIME_SECS {
            return Err(unauthorized(
                "AUTH_LIFETIME_TOO_LONG",
                format!("{what} is valid for {lifetime} s; at most {MAX_AUTH_LIFETIME_SECS} s is accepted"),
            ));
        }
    }
    Ok(())
}

/// Checks that `block_hash` is a fresh block of this network's chain — at most
/// `nonce_max_age_secs` older than the head, and (unless it is the head itself) no older than
/// that by the clock either: the rule for authSig nonces and WebAuthn challenges.
pub async fn fresh_block(node: &Node, block_hash: B256) -> Result<(), Error> {
    let registry = node.registry()?;
    let max_age = chain_config(node)?.nonce_max_age_secs;
    let stale = |why: String| {
        let e = AuthError::StaleNonce(why);
        unauthorized(e.code(), e.to_string())
    };
    let head = registry.sync().await.map_err(Error::chain)?;
    let (number, timestamp) = registry.block(block_hash).await.map_err(Error::chain)?.ok_or_else(|| {
        stale(format!(
            "nonce {block_hash} is not the hash of a block on chain {}",
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
    let clock_age = now().saturating_sub(timestamp);
    if block_hash != head.hash && clock_age > max_age {
        return Err(stale(format!(
            "nonce is block {number}, mined {clock_age} s ago (limit {max_age} s); use the latest block hash"
        )));
    }
    Ok(())
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
