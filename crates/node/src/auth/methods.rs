//! Auth methods: each proof a request carries (Lit's `authMethods`) resolves to the method's
//! type, its id within that type (what PKPPermissions lists) and a context that actions see in
//! `Lit.Auth.authMethodContexts`. One function per type; [`resolve`] picks it. Uses `auth`,
//! `node`, `error`.

use serde::{Deserialize, Serialize};
use sigil_chain::alloy::primitives::U256;
use sigil_chain::registry::AUTH_METHOD_ETH_WALLET;
use sigil_primitives::AuthMethod;

use crate::error::{Error, Kind};
use crate::node::Node;

/// Longest accepted proof (`accessToken`).
pub const MAX_ACCESS_TOKEN_BYTES: usize = 16 * 1024;

/// An auth method whose proof checked out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// Lit's type number.
    pub kind: u64,
    /// Its id within the type, as PKPPermissions holds it.
    pub id: Vec<u8>,
    /// What actions see of it (`Lit.Auth.authMethodContexts`); the same at every node.
    pub context: serde_json::Value,
}

/// Checks the proof of `method` and resolves it. `token` is the PKP it is presented for, when
/// the method's key is registered with that PKP (WebAuthn).
pub async fn resolve(node: &Node, method: &AuthMethod, token: Option<U256>) -> Result<Resolved, Error> {
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
        AUTH_METHOD_ETH_WALLET => eth_wallet(node, method).await,
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
    let method = resolve(node, &request.auth_method, None).await?;
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
async fn eth_wallet(node: &Node, method: &AuthMethod) -> Result<Resolved, Error> {
    let value: serde_json::Value = serde_json::from_str(&method.access_token).map_err(|e| {
        super::unauthorized(
            "AUTH_MALFORMED",
            format!("an Ethereum wallet auth method's accessToken is an authSig as JSON: {e}"),
        )
    })?;
    let address = super::authenticate_auth_sig(node, Some(&value)).await?.address();
    Ok(Resolved {
        kind: AUTH_METHOD_ETH_WALLET,
        id: address.to_vec(),
        context: serde_json::json!({ "address": address.to_checksum(None) }),
    })
}
