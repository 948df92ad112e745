//! Whether a principal may sign with a PKP: its owner, a permitted address, or a permitted auth
//! method with the right scopes, as the chain says (PKPPermissions). A PKP's own session signs
//! with that PKP while one of the auth methods it was granted for is still permitted with a
//! signing scope (read again from the chain on every request, so a revoked method stops its
//! sessions at once). Uses `auth`, `node`, `error`.

use sigil_chain::alloy::primitives::Address;
use sigil_chain::registry::{Grant, Standing, SCOPE_PERSONAL_MESSAGE, SCOPE_SIGN_ANYTHING};

use super::Principal;
use crate::error::{Error, Kind};
use crate::node::Node;

/// Checks the chain: `principal` must own PKP `pubkey`, or be a permitted address, or a permitted
/// Ethereum-wallet auth method whose scopes allow signing anything — or, for a `personal` message
/// the node hashed itself, personal messages.
pub async fn authorize(
    node: &Node,
    principal: &Principal,
    pubkey: &[u8; 65],
    personal: bool,
) -> Result<Address, Error> {
    let address = principal.address();
    let registry = node.registry()?;
    let token = sigil_chain::token_id(pubkey);
    if let Principal::Pkp {
        token: own,
        auth_methods,
        action,
        ..
    } = principal
    {
        if *own == token {
            return own_session(node, token, address, auth_methods, action.as_deref(), personal).await;
        }
    }
    match registry.standing(token, address).await.map_err(Error::chain)? {
        Standing::Granted(Grant::Owner | Grant::PermittedAddress) => Ok(address),
        Standing::Granted(Grant::AuthMethod { scopes }) if scopes & SCOPE_SIGN_ANYTHING != 0 => Ok(address),
        Standing::Granted(Grant::AuthMethod { scopes }) if personal && scopes & SCOPE_PERSONAL_MESSAGE != 0 => {
            Ok(address)
        }
        Standing::Granted(Grant::AuthMethod { scopes }) => Err(Error::new(Kind::Forbidden,
            "SCOPE_TOO_NARROW",
            format!(
                "{address} is a permitted auth method of PKP {token:#x} with scopes {scopes}: {}",
                if scopes & SCOPE_PERSONAL_MESSAGE != 0 {
                    "personal messages only (send `message`, not a raw hash)"
                } else {
                    "they do not include signing"
                }
            ),
        )),
        Standing::Unminted => Err(Error::new(Kind::Forbidden,
            "NOT_MINTED",
            format!(
                "PKP {token:#x} is not minted on chain {}; mint it with `sigil pkp mint`",
                registry.chain_id()
            ),
        )),
        Standing::Refused { burned: true } => Err(Error::new(Kind::Forbidden,
            "NOT_PERMITTED",
            format!("PKP {token:#x} is burned (it has no owner), and {address} is not one of its permitted addresses or auth methods"),
        )),
        Standing::Refused { burned: false } => Err(Error::new(Kind::Forbidden,
            "NOT_PERMITTED",
            format!("{address} is not the owner of PKP {token:#x}, nor a permitted address or auth method"),
        )),
    }
}

/// A PKP's session signing with that PKP: one of its auth methods must still be permitted with
/// a scope that covers the request, or the custom auth action that granted it still permitted.
async fn own_session(
    node: &Node,
    token: sigil_chain::alloy::primitives::U256,
    address: Address,
    auth_methods: &[super::Resolved],
    action: Option<&str>,
    personal: bool,
) -> Result<Address, Error> {
    let registry = node.registry()?;
    let mut narrow = false;
    for method in auth_methods {
        let scopes = registry
            .auth_method_scopes(token, method.kind, &method.id)
            .await
            .map_err(Error::chain)?;
        if scopes & SCOPE_SIGN_ANYTHING != 0 || (personal && scopes & SCOPE_PERSONAL_MESSAGE != 0) {
            return Ok(address);
        }
        narrow |= scopes != 0;
    }
    if let Some(cid) = action {
        let cid: sigil_primitives::Cid = cid
            .parse()
            .map_err(|e| Error::internal(format!("a granted session names action {cid}: {e}")))?;
        if registry
            .is_permitted_action(token, cid.as_bytes())
            .await
            .map_err(Error::chain)?
        {
            return Ok(address);
        }
    }
    Err(Error::new(
        Kind::Forbidden,
        if narrow { "SCOPE_TOO_NARROW" } else { "NOT_PERMITTED" },
        format!(
            "the session of PKP {token:#x} was granted for auth methods that {}",
            if narrow {
                "are now permitted for personal messages only (send `message`, not a raw hash)"
            } else {
                "it no longer permits"
            }
        ),
    ))
}
