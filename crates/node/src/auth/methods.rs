//! Auth methods: each proof a request carries (Lit's `authMethods`) resolves to the method's
//! type, its id within that type (what PKPPermissions lists) and a context that actions see in
//! `Lit.Auth.authMethodContexts`. One function per type; [`resolve`] picks it. Uses `auth`,
//! `node`, `error`.

use sigil_chain::alloy::primitives::U256;
use sigil_chain::registry::AUTH_METHOD_ETH_WALLET;
use sigil_primitives::AuthMethod;

use super::Resolved;
use crate::error::{Error, Kind};
use crate::node::Node;

/// Longest accepted proof (`accessToken`).
pub const MAX_ACCESS_TOKEN_BYTES: usize = 16 * 1024;

/// What a proof is presented for; a method whose proof can name it must.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// Granting the session key `key` (hex) a capability: a wallet's proof must delegate to
    /// exactly that key, so a proof seen once cannot buy a session for another key.
    Session(&'a str),
    /// Naming the method's id, or claiming its key (whoever claims, the outcome is the same).
    Identify,
}

/// Checks the proof of `method` and resolves it. `token` is the PKP it is presented for, when
/// the method's key is registered with that PKP (WebAuthn); `purpose` what for.
pub async fn resolve(
    node: &Node,
    method: &AuthMethod,
    token: Option<U256>,
    purpose: Purpose<'_>,
) -> Result<Resolved, Error> {
    if method.access_token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Err(Error::new(
            Kind::TooLarge,
            "AUTH_METHOD_TOO_LARGE",
            format!(
                "accessToken is {} bytes; at most {MAX_ACCESS_TOKEN_BYTES}",
                method.access_token.len()
            ),
        ));
    }
    match method.auth_method_type {
        AUTH_METHOD_ETH_WALLET => eth_wallet(node, method, purpose).await,
        kind if node.oidc.is_jwt_type(kind) || node.oidc.is_access_token_type(kind) => oauth(node, method).await,
        super::webauthn::AUTH_METHOD_TYPE => super::webauthn::resolve(node, method, token).await,
        other => Err(Error::new(
            Kind::Invalid,
            "UNSUPPORTED_AUTH_METHOD",
            format!("auth method type {other} is not one this node verifies"),
        )),
    }
}

/// `POST /web/auth_method_id`: proves an auth method and names its id and the key it may claim.
pub async fn identify(
    node: &Node,
    request: sigil_primitives::AuthMethodIdRequest,
) -> Result<sigil_primitives::AuthMethodIdResponse, Error> {
    let method = resolve(node, &request.auth_method, None, Purpose::Identify).await?;
    let helper = node.registry()?.contracts().pkp_helper;
    Ok(sigil_primitives::AuthMethodIdResponse {
        auth_method_type: method.kind,
        auth_method_id: format!("0x{}", hex::encode(&method.id)),
        claim_key_id: format!(
            "0x{}",
            hex::encode(sigil_chain::claim_key_id(helper, method.kind, &method.id))
        ),
    })
}

/// Type 1: the access token is an auth signature (JSON); the id is the wallet's 20-byte address.
/// For a session grant it must be the wallet's delegation to that session key (`uri`
/// `lit:session:<key>`, a recent block hash as nonce); otherwise an ordinary auth signature.
async fn eth_wallet(node: &Node, method: &AuthMethod, purpose: Purpose<'_>) -> Result<Resolved, Error> {
    let value: serde_json::Value = serde_json::from_str(&method.access_token).map_err(|e| {
        super::unauthorized(
            "AUTH_MALFORMED",
            format!("an Ethereum wallet auth method's accessToken is an authSig as JSON: {e}"),
        )
    })?;
    let address = match purpose {
        Purpose::Identify => super::authenticate_auth_sig(node, Some(&value)).await?.address(),
        Purpose::Session(key) => delegation(node, &value, key).await?,
    };
    Ok(Resolved {
        kind: AUTH_METHOD_ETH_WALLET,
        id: address.to_vec(),
        context: serde_json::json!({ "address": address.to_checksum(None) }),
    })
}

/// A wallet's auth signature delegating to session key `key`: signature, domain, chain, time,
/// lifetime, `uri` = `lit:session:<key>`, and a fresh block hash as nonce.
async fn delegation(
    node: &Node,
    value: &serde_json::Value,
    key: &str,
) -> Result<sigil_chain::alloy::primitives::Address, Error> {
    let auth: sigil_chain::siwe::AuthSig = serde_json::from_value(value.clone())
        .map_err(|e| super::unauthorized("AUTH_MALFORMED", format!("authSig: {e}")))?;
    let verified = auth
        .verify(&super::expected(node)?, super::now())
        .map_err(|e| super::unauthorized(e.code(), e.to_string()))?;
    let message = &verified.message;
    super::check_lifetime(message.issued_at, message.expiration_time, "the auth method's authSig")?;
    let wanted = format!(
        "{}{}",
        sigil_chain::session::SESSION_URI_PREFIX,
        key.trim_start_matches("0x")
    );
    if !message.uri.eq_ignore_ascii_case(&wanted) {
        return Err(super::unauthorized(
            "AUTH_METHOD_NOT_FOR_THIS_SESSION",
            format!(
                "a wallet auth method's authSig must delegate to the session key being granted (uri {wanted}); its uri is {}",
                message.uri
            ),
        ));
    }
    let nonce: sigil_chain::alloy::primitives::B256 = message
        .nonce
        .parse()
        .map_err(|_| super::unauthorized("AUTH_STALE_NONCE", "the authSig's nonce is not a block hash"))?;
    super::fresh_block(node, nonce).await?;
    Ok(verified.address)
}

/// An OIDC ID token (type 6, Lit's Google JWT, or any configured issuer's type) or an OAuth
/// access token checked at a userinfo endpoint (type 4, Lit's Discord, or another configured
/// one): [`super::oidc`]. The id is `keccak256("{user}:{app}")`, as Lit derives it.
async fn oauth(node: &Node, method: &AuthMethod) -> Result<Resolved, Error> {
    let identity = node.oidc.verify(method.auth_method_type, &method.access_token).await?;
    Ok(Resolved {
        kind: identity.auth_method_type,
        id: identity.id.to_vec(),
        context: identity.context,
    })
}
