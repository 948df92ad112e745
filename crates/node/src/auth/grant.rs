//! `POST /web/sign_session_key`: the network grants a PKP's session key a capability when the
//! request proves auth methods the PKP permits (or a custom auth action the PKP permits returns
//! `true`). Every node builds the same SIWE capability from the request — the PKP's address, the
//! session key as `uri`, a ReCap of the requested abilities plus the resolved auth context — checks
//! it, and answers with its BLS signature share over it; the client combines `t` shares into a
//! `lit.bls` capability that every node verifies against the network's BLS key
//! ([`super::session`]). That is how a passkey or an OIDC identity, with no wallet at all, gets a
//! session for its PKP. Uses `auth`, `actions` (custom auth), `node`, `error`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sigil_chain::alloy::primitives::{Address, B256, U256};
use sigil_chain::session::{capability_identity, Ability, Recap, AUTH_CONTEXT_RESOURCE, SESSION_URI_PREFIX};
use sigil_chain::siwe::{parse_rfc3339, SiweMessage, CLOCK_SKEW_SECS};
use sigil_primitives::{Cid, ExecuteRequest, SignSessionKeyRequest, SignSessionKeyResponse};

use super::{check_lifetime, expected, fresh_block, methods, now, unauthorized, Principal, Resolved};
use crate::error::{hex_bytes, Error, Kind};
use crate::node::Node;

/// Most auth methods one request may prove.
pub const MAX_AUTH_METHODS: usize = 8;
/// Most resource/ability pairs one session may ask for.
pub const MAX_RESOURCE_REQUESTS: usize = 32;
/// The statement of every capability the network signs.
pub const STATEMENT: &str = "Sigil: the network grants the session key the listed abilities for this PKP.";

/// One auth method as a capability's auth context lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthMethodContext {
    /// Lit's type number.
    pub auth_method_type: u64,
    /// Its id, 0x-hex.
    pub auth_method_id: String,
    /// What actions see of it.
    #[serde(default)]
    pub context: serde_json::Value,
}

impl From<&Resolved> for AuthMethodContext {
    fn from(r: &Resolved) -> Self {
        Self {
            auth_method_type: r.kind,
            auth_method_id: format!("0x{}", hex::encode(&r.id)),
            context: r.context.clone(),
        }
    }
}

impl From<&AuthMethodContext> for Resolved {
    fn from(c: &AuthMethodContext) -> Self {
        Self {
            kind: c.auth_method_type,
            id: hex::decode(c.auth_method_id.trim_start_matches("0x")).unwrap_or_default(),
            context: c.context.clone(),
            expires_at: None,
        }
    }
}

/// The auth context a network-signed capability carries (ReCap `lit-resolvedauthcontext://*`,
/// `Auth/Auth`): for which PKP, and on the strength of which auth methods or action.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthContext {
    /// The PKP's token id, 0x-hex.
    pub pkp_token_id: String,
    /// The auth methods proven.
    #[serde(default)]
    pub auth_method_contexts: Vec<AuthMethodContext>,
    /// The custom auth action that returned `true`, if one decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lit_action_ipfs_id: Option<String>,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(Kind::Invalid, code, message)
}

/// Grants (this node's share of) a session capability for a PKP; see the module doc.
pub async fn sign_session_key(
    node: &Arc<Node>,
    request: SignSessionKeyRequest,
) -> Result<SignSessionKeyResponse, Error> {
    let pubkey = hex_bytes::<65>("pkpPublicKey", request.pkp_public_key.trim_start_matches("0x"))?;
    if pubkey[0] != 4 {
        return Err(invalid(
            "BAD_PUBLIC_KEY",
            "pkpPublicKey is an uncompressed key: 0x04 ‖ x ‖ y",
        ));
    }
    let token = sigil_chain::token_id(&pubkey);
    let address = Address::from_raw_public_key(&pubkey[1..]);
    let session_key = hex_bytes::<32>("sessionKey", request.session_key.trim_start_matches("0x"))?;
    if request.auth_methods.len() > MAX_AUTH_METHODS {
        return Err(invalid(
            "TOO_MANY_AUTH_METHODS",
            format!(
                "{} auth methods; at most {MAX_AUTH_METHODS}",
                request.auth_methods.len()
            ),
        ));
    }
    let requests = &request.resource_ability_requests;
    if requests.is_empty() || requests.len() > MAX_RESOURCE_REQUESTS {
        return Err(invalid(
            "BAD_RESOURCE_REQUESTS",
            format!("resourceAbilityRequests: give 1 to {MAX_RESOURCE_REQUESTS} entries"),
        ));
    }
    for entry in requests {
        let ability = Ability::from_lit_name(&entry.ability)
            .ok_or_else(|| invalid("BAD_RESOURCE_REQUESTS", format!("unknown ability {:?}", entry.ability)))?;
        if entry.resource.resource_prefix != ability.prefix() || entry.resource.resource.is_empty() {
            return Err(invalid(
                "BAD_RESOURCE_REQUESTS",
                format!(
                    "ability {} applies to {}:// resources, not {}://{}",
                    entry.ability,
                    ability.prefix(),
                    entry.resource.resource_prefix,
                    entry.resource.resource
                ),
            ));
        }
    }
    let registry = node.registry()?;
    if !registry.minted(token).await.map_err(Error::chain)? {
        return Err(Error::new(
            Kind::Forbidden,
            "NOT_MINTED",
            format!("PKP {token:#x} is not minted on chain {}", registry.chain_id()),
        ));
    }
    // Who asks: each auth method proven and permitted, or a permitted action that says yes
    // (which sees the proven auth methods, permitted or not, and decides).
    let custom = request.code.is_some() || request.lit_action_ipfs_id.is_some();
    let mut resolved = Vec::with_capacity(request.auth_methods.len());
    for method in &request.auth_methods {
        let purpose = methods::Purpose::Session {
            key: &request.session_key,
            requests,
        };
        let method = methods::resolve(node, method, Some(token), purpose).await?;
        if custom {
            resolved.push(method);
            continue;
        }
        let scopes = registry
            .auth_method_scopes(token, method.kind, &method.id)
            .await
            .map_err(Error::chain)?;
        if scopes == 0 {
            return Err(Error::new(
                Kind::Forbidden,
                "AUTH_METHOD_NOT_PERMITTED",
                format!(
                    "auth method type {} id 0x{} is not permitted for PKP {token:#x}",
                    method.kind,
                    hex::encode(&method.id)
                ),
            ));
        }
        resolved.push(method);
    }
    let action = custom_auth(node, &request, token, &resolved).await?;
    if resolved.is_empty() && action.is_none() {
        return Err(unauthorized(
            "AUTH_MISSING",
            "give authMethods the PKP permits, or a custom auth action (litActionIpfsId or code) it permits",
        ));
    }

    // Counted against the PKP only once the caller proved it speaks for it: strangers cannot
    // spend a PKP's rate (they are bounded per address by `[limits]`).
    super::check_rate(
        node,
        &Principal::Pkp {
            token,
            address,
            auth_methods: Vec::new(),
            action: None,
        },
    )?;

    // The capability: the same text at every honest node.
    let nonce: B256 = request
        .nonce
        .parse()
        .map_err(|_| invalid("BAD_NONCE", "nonce is a recent block hash (0x, 32 bytes)"))?;
    fresh_block(node, nonce).await?;
    let issued_at = parse_rfc3339(&request.issued_at).map_err(|e| invalid("BAD_TIME", format!("issuedAt: {e}")))?;
    let requested = parse_rfc3339(&request.expiration).map_err(|e| invalid("BAD_TIME", format!("expiration: {e}")))?;
    // A session ends no later than the proofs it was bought with.
    let expiration = resolved.iter().filter_map(|r| r.expires_at).fold(requested, u64::min);
    let now = now();
    if issued_at > now + CLOCK_SKEW_SECS || issued_at + node_max_age(node) < now {
        return Err(invalid(
            "BAD_TIME",
            format!("issuedAt is {issued_at}; it must be within the nonce window of this node's clock ({now})"),
        ));
    }
    if expiration <= now {
        return Err(if expiration < requested {
            unauthorized("AUTH_METHOD_EXPIRED", "an auth method's proof has expired")
        } else {
            invalid("BAD_TIME", "expiration is in the past")
        });
    }
    check_lifetime(issued_at, Some(expiration), "the session")?;
    let mut recap = Recap::granting(requests);
    let context = AuthContext {
        pkp_token_id: format!("{token:#x}"),
        auth_method_contexts: resolved.iter().map(AuthMethodContext::from).collect(),
        lit_action_ipfs_id: action,
    };
    let context = serde_json::to_value(&context).map_err(|e| Error::internal(e.to_string()))?;
    recap
        .att
        .entry(AUTH_CONTEXT_RESOURCE.into())
        .or_default()
        .insert("Auth/Auth".into(), vec![context]);
    let expected = expected(node)?;
    let message = SiweMessage {
        domain: expected.domain,
        address,
        statement: Some(STATEMENT.into()),
        uri: format!("{SESSION_URI_PREFIX}{}", hex::encode(session_key)),
        version: "1".into(),
        chain_id: expected.chain_id,
        nonce: format!("{nonce:#x}"),
        issued_at,
        expiration_time: Some(expiration),
        not_before: None,
        request_id: None,
        resources: vec![recap.encode()],
    };
    let text = message.render();
    let keys = node.keys().ok_or_else(Error::not_ready)?;
    let share = sigil_tss::bls::sign_share(&keys.bls, &capability_identity(&text))
        .map_err(|e| Error::internal(format!("BLS share: {e}")))?;
    Ok(SignSessionKeyResponse {
        node_id: node.me,
        signature_share: hex::encode(share.to_bytes()),
        siwe_message: text,
        pkp_eth_address: address.to_checksum(None),
    })
}

fn node_max_age(node: &Node) -> u64 {
    node.settings
        .config
        .chain
        .as_ref()
        .map(|c| c.nonce_max_age_secs)
        .unwrap_or(600)
}

/// Custom auth: runs the action the request names (its CID must be a permitted action of the
/// PKP) with the request's `jsParams`; `Some(cid)` when it answered `true`, 403
/// `CUSTOM_AUTH_REFUSED` otherwise (only the response the action set itself counts, not one a
/// child it calls set). `None` when the request names no action. The action sees the proven auth
/// methods in `Lit.Auth.authMethodContexts`; `Lit.Auth.sessionKey` and `Lit.Auth.pkpPublicKey`
/// (both 0x-hex), `Lit.Auth.resources` (`prefix://resource` of each request),
/// `Lit.Auth.resourceAbilityRequests`, `Lit.Auth.issuedAt` and `Lit.Auth.expiration` say what it
/// decides on.
async fn custom_auth(
    node: &Arc<Node>,
    request: &SignSessionKeyRequest,
    token: U256,
    proven: &[Resolved],
) -> Result<Option<String>, Error> {
    let cid = match (&request.code, &request.lit_action_ipfs_id) {
        (None, None) => return Ok(None),
        (Some(code), None) => Cid::of_file(code.as_bytes()).map_err(|e| Error::bad_request(e.to_string()))?,
        (None, Some(id)) => id
            .parse::<Cid>()
            .map_err(|e| Error::bad_request(format!("litActionIpfsId: {e}")))?,
        (Some(_), Some(_)) => return Err(Error::bad_request("give either code or litActionIpfsId, not both")),
    };
    let registry = node.registry()?;
    if !registry
        .is_permitted_action(token, cid.as_bytes())
        .await
        .map_err(Error::chain)?
    {
        return Err(Error::new(
            Kind::Forbidden,
            "ACTION_NOT_PERMITTED",
            format!("action {cid} is not a permitted action of PKP {token:#x}"),
        ));
    }
    // A burned PKP signs only inside its actions (Mint/Grant/Burn: "only this code can sign"):
    // a session from its action would hand its key to whoever holds the session.
    if registry.burned(token).await.map_err(Error::chain)? {
        return Err(Error::new(
            Kind::Forbidden,
            "PKP_BURNED",
            format!("PKP {token:#x} was burned: its key signs only inside its permitted actions, so no custom auth action can grant a session for it"),
        ));
    }
    let request_id = request
        .request_id
        .clone()
        .ok_or_else(|| Error::bad_request("custom auth needs requestId (16 bytes hex, the same at every node)"))?;
    let hex0x = |text: &str| format!("0x{}", text.trim_start_matches("0x").to_ascii_lowercase());
    let mut auth_extra = serde_json::Map::new();
    auth_extra.insert("sessionKey".into(), hex0x(&request.session_key).into());
    auth_extra.insert("pkpPublicKey".into(), hex0x(&request.pkp_public_key).into());
    let requests = &request.resource_ability_requests;
    let resources: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| format!("{}://{}", r.resource.resource_prefix, r.resource.resource).into())
        .collect();
    auth_extra.insert("resources".into(), resources.into());
    auth_extra.insert(
        "resourceAbilityRequests".into(),
        serde_json::to_value(requests).map_err(|e| Error::internal(e.to_string()))?,
    );
    auth_extra.insert("issuedAt".into(), request.issued_at.clone().into());
    auth_extra.insert("expiration".into(), request.expiration.clone().into());
    let caller = crate::actions::Caller {
        auth_method_contexts: proven.iter().map(Resolved::lit_context).collect(),
        auth_extra,
    };
    let outcome = crate::actions::execute_for(
        node,
        ExecuteRequest {
            code: request.code.clone(),
            ipfs_id: request.code.is_none().then(|| cid.to_string()),
            js_params: request.js_params.clone(),
            request_id,
            ..ExecuteRequest::default()
        },
        caller,
    )
    .await?;
    let yes = outcome.response.as_deref().map(str::trim).is_some_and(|r| {
        r == "true" || serde_json::from_str::<serde_json::Value>(r).is_ok_and(|v| v == serde_json::Value::Bool(true))
    });
    if !yes {
        return Err(Error::new(
            Kind::Forbidden,
            "CUSTOM_AUTH_REFUSED",
            format!(
                "custom auth action {cid} answered {:?}, not true: no session is granted",
                outcome.response.as_deref().unwrap_or("nothing")
            ),
        ));
    }
    Ok(Some(cid.to_string()))
}
