//! Auth methods: each proof a request carries (Lit's `authMethods`) resolves to the method's
//! type, its id within that type (what PKPPermissions lists) and a context that actions see in
//! `Lit.Auth.authMethodContexts`. One function per type; [`resolve`] picks it. Uses `auth`,
//! `node`, `error`.

use sigil_chain::alloy::primitives::U256;
use sigil_chain::registry::AUTH_METHOD_ETH_WALLET;
use sigil_chain::session::Recap;
use sigil_primitives::{AuthMethod, ResourceAbility};

use super::Resolved;
use crate::error::{Error, Kind};
use crate::node::Node;

/// Longest accepted proof (`accessToken`).
pub const MAX_ACCESS_TOKEN_BYTES: usize = 16 * 1024;

/// What a proof is presented for; a method whose proof can name it must.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// Granting the session key `key` (hex) the abilities `requests`: a proof must name exactly
    /// that key (a wallet's delegation, a passkey's challenge, an ID token's nonce), so a proof
    /// seen once cannot buy a session for another key; a wallet's delegation that lists
    /// abilities must list every one requested.
    Session {
        /// The session key, hex.
        key: &'a str,
        /// The abilities asked for.
        requests: &'a [ResourceAbility],
    },
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
        kind if node.oidc.is_jwt_type(kind) || node.oidc.is_access_token_type(kind) => {
            oauth(node, method, purpose).await
        }
        super::webauthn::AUTH_METHOD_TYPE => super::webauthn::resolve(node, method, token, purpose.session_key()).await,
        other => Err(Error::new(
            Kind::Invalid,
            "UNSUPPORTED_AUTH_METHOD",
            format!("auth method type {other} is not one this node verifies"),
        )),
    }
}

impl Purpose<'_> {
    /// The session key a proof must name, if any.
    fn session_key(&self) -> Option<&str> {
        match self {
            Purpose::Session { key, .. } => Some(key),
            Purpose::Identify => None,
        }
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
    let (address, expires_at) = match purpose {
        Purpose::Identify => (super::authenticate_auth_sig(node, Some(&value)).await?.address(), None),
        Purpose::Session { key, requests } => delegation(node, &value, key, requests).await?,
    };
    Ok(Resolved {
        kind: AUTH_METHOD_ETH_WALLET,
        id: address.to_vec(),
        context: serde_json::json!({ "address": address.to_checksum(None) }),
        expires_at,
    })
}

/// A wallet's auth signature delegating to session key `key`: signature, domain, chain, time,
/// lifetime, `uri` = `lit:session:<key>`, a fresh block hash as nonce, and — when it carries a
/// ReCap — every one of `requests` among the abilities it delegates. Returns the wallet and when
/// the delegation ends.
async fn delegation(
    node: &Node,
    value: &serde_json::Value,
    key: &str,
    requests: &[ResourceAbility],
) -> Result<(sigil_chain::alloy::primitives::Address, Option<u64>), Error> {
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
    if message
        .resources
        .iter()
        .any(|r| r.starts_with(sigil_chain::session::RECAP_PREFIX))
    {
        let recap = Recap::of(&message.resources)
            .map_err(|e| super::unauthorized("AUTH_MALFORMED", format!("the authSig's ReCap: {e}")))?;
        if let Some(missing) = requests.iter().find(|r| !recap.covers(r)) {
            return Err(Error::new(
                Kind::Forbidden,
                "AUTH_METHOD_SCOPE_EXCEEDED",
                format!(
                    "the wallet's authSig delegates abilities that do not include {} on {}://{}",
                    missing.ability, missing.resource.resource_prefix, missing.resource.resource
                ),
            ));
        }
    }
    Ok((verified.address, message.expiration_time))
}

/// An OIDC ID token (type 6, Lit's Google JWT, or any configured issuer's type) or an OAuth
/// access token checked at a userinfo endpoint (type 4, Lit's Discord, or another configured
/// one): [`super::oidc`]. The id is `keccak256("{user}:{app}")`, as Lit derives it.
/// For a session, an ID token's `nonce` must be the session key and an access token's endpoint
/// must allow sessions.
async fn oauth(node: &Node, method: &AuthMethod, purpose: Purpose<'_>) -> Result<Resolved, Error> {
    let kind = method.auth_method_type;
    let identity = node
        .oidc
        .verify(kind, &method.access_token, purpose.session_key())
        .await?;
    Ok(Resolved {
        kind: identity.auth_method_type,
        id: identity.id.to_vec(),
        context: identity.context,
        // An ID token's `exp` is the same at every node; a userinfo answer's lifetime is not.
        expires_at: node.oidc.is_jwt_type(kind).then_some(identity.expires_at),
    })
}
