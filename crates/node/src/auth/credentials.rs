//! A request's credentials — its `authSig` and `sessionSigs` fields — resolved to a
//! [`Principal`]: this node's session signature ([`super::session`]) when there is one, else a
//! bare auth signature ([`super::authenticate_auth_sig`]). Uses `auth`, `node`, `error`.

use std::collections::BTreeMap;

use sigil_chain::session::Need;

use super::{authenticate_auth_sig, session, unauthorized, Principal};
use crate::error::Error;
use crate::node::Node;

/// A request's credentials as its body carries them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credentials<'a> {
    /// `authSig`: an auth signature, or this node's session signature.
    pub auth_sig: Option<&'a serde_json::Value>,
    /// `sessionSigs`: session signatures by node URL.
    pub session_sigs: Option<&'a BTreeMap<String, serde_json::Value>>,
}

impl<'a> Credentials<'a> {
    /// The credentials of a request.
    pub fn new(
        auth_sig: Option<&'a serde_json::Value>,
        session_sigs: Option<&'a BTreeMap<String, serde_json::Value>>,
    ) -> Self {
        Self { auth_sig, session_sigs }
    }

    /// Whether the request carries any.
    pub fn present(&self) -> bool {
        self.auth_sig.is_some() || self.session_sigs.is_some()
    }
}

/// Resolves `credentials` to a principal. A session signature must be for this node and grant
/// `need` (when given: what the request does); an auth signature grants everything its signer may
/// do (see [`authenticate_auth_sig`]).
pub async fn authenticate(node: &Node, credentials: Credentials<'_>, need: Option<&Need>) -> Result<Principal, Error> {
    if let Some(value) = credentials.auth_sig {
        if let Some(sig) = sigil_chain::session::SessionSig::from_value(value) {
            let sig = sig.map_err(session::refusal)?;
            return session::verify(node, &sig, need).await;
        }
    }
    if let Some(map) = credentials.session_sigs {
        let me = session::own_url(node)?;
        let entry = map
            .iter()
            .find(|(url, _)| session::same_url(url, &me))
            .map(|(_, v)| v)
            .ok_or_else(|| {
                unauthorized(
                    "SESSION_WRONG_NODE",
                    format!(
                        "sessionSigs has no entry for this node ({me}); it has {}",
                        map.keys().take(8).cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
        let sig = sigil_chain::session::SessionSig::from_value(entry)
            .unwrap_or_else(|| {
                Err(sigil_chain::session::SessionError::Malformed(
                    "a sessionSigs entry is not a session signature (derivedVia litSessionSignViaNacl)".into(),
                ))
            })
            .map_err(session::refusal)?;
        return session::verify(node, &sig, need).await;
    }
    authenticate_auth_sig(node, credentials.auth_sig).await
}
