//! Sessions (Lit's `sessionSigs`): an ed25519 session key, a capability that delegates
//! abilities to it — signed by a wallet ([`Client::wallet_session`]) or by the network for a PKP's
//! auth methods ([`Client::pkp_session`]) — and one session signature per node, so what one node
//! receives is useless at another. [`Credential`] is what every call that signs, executes or
//! decrypts takes: a [`Session`] or a bare [`AuthSig`] (a bearer token: weaker).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sigil_chain::alloy::primitives::Address;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::session::{capability_identity, Recap, SessionKey, SessionMessage, DERIVED_VIA_BLS};
use sigil_chain::siwe::{rfc3339, AuthSig, SiweMessage};
use sigil_primitives::{AuthMethod, ResourceAbility, SignSessionKeyRequest, SignSessionKeyResponse};
use sigil_tss::bls::{self, BlsSignatureShare};
use sigil_tss::PartyId;

use crate::{list, post, request_id, Client, ClientError, NodeFailure};

/// A request's `authSig` and `sessionSigs` fields.
pub type Fields = (Option<serde_json::Value>, Option<BTreeMap<String, serde_json::Value>>);

/// What a request proves its caller with: a [`Session`] or a bare [`AuthSig`].
pub trait Credential: std::fmt::Debug + Send + Sync {
    /// The `authSig` and `sessionSigs` fields of a request.
    fn fields(&self) -> Result<Fields, ClientError>;
    /// The address the nodes will see as the caller (a wallet, or a PKP's own address).
    fn address(&self) -> Result<Address, ClientError>;
}

impl Credential for AuthSig {
    fn fields(&self) -> Result<Fields, ClientError> {
        Ok((Some(crate::auth_value(self)?), None))
    }

    fn address(&self) -> Result<Address, ClientError> {
        self.address
            .parse()
            .map_err(|e| ClientError::Auth(format!("authSig address: {e}")))
    }
}

impl<T: Credential + ?Sized> Credential for Arc<T> {
    fn fields(&self) -> Result<Fields, ClientError> {
        (**self).fields()
    }

    fn address(&self) -> Result<Address, ClientError> {
        (**self).address()
    }
}

/// A session: its capability and one session signature per node.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    key: SessionKey,
    capability: AuthSig,
    address: Address,
    sigs: BTreeMap<String, serde_json::Value>,
}

impl Session {
    /// The capability that delegates to the session key (a wallet's auth signature, or the
    /// network's `lit.bls` signature).
    pub fn capability(&self) -> &AuthSig {
        &self.inner.capability
    }

    /// The session's public key, hex.
    pub fn session_key(&self) -> String {
        self.inner.key.public_hex()
    }

    /// The session signatures by node URL, as requests carry them.
    pub fn session_sigs(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.inner.sigs
    }

    /// The session signature for the node at `url` alone (what Lit's clients put in `authSig`).
    pub fn for_node(&self, url: &str) -> Option<&serde_json::Value> {
        self.inner.sigs.get(url)
    }

    /// Signs a [`SessionMessage`] for `node_address` with this session's key: for tests that
    /// make one by hand.
    pub fn sign_for(&self, message: &SessionMessage) -> serde_json::Value {
        serde_json::to_value(self.inner.key.sign(message)).unwrap_or_default()
    }
}

impl Credential for Session {
    fn fields(&self) -> Result<Fields, ClientError> {
        Ok((None, Some(self.inner.sigs.clone())))
    }

    fn address(&self) -> Result<Address, ClientError> {
        Ok(self.inner.address)
    }
}

/// A session's time window: from now (a little earlier, for clock skew) for `valid_for`.
fn window(valid_for: Duration) -> (u64, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (now.saturating_sub(5), now + valid_for.as_secs())
}

impl Client {
    /// One session signature per node for `key` under `capability`.
    fn session(
        &self,
        key: SessionKey,
        capability: AuthSig,
        address: Address,
        requests: &[ResourceAbility],
        window: (u64, u64),
    ) -> Session {
        let sigs = self
            .nodes
            .iter()
            .map(|node| {
                let message = SessionMessage {
                    session_key: key.public_hex(),
                    resource_ability_requests: requests.to_vec(),
                    capabilities: vec![capability.clone()],
                    issued_at: rfc3339(window.0),
                    expiration: rfc3339(window.1),
                    node_address: node.url.clone(),
                };
                (
                    node.url.clone(),
                    serde_json::to_value(key.sign(&message)).unwrap_or_default(),
                )
            })
            .collect();
        Session {
            inner: Arc::new(Inner {
                key,
                capability,
                address,
                sigs,
            }),
        }
    }

    /// `wallet`'s auth signature of a SIWE message for `domain` on this chain, nonce the latest
    /// block hash, valid over `window` (unix seconds).
    async fn siwe(
        &self,
        wallet: &PrivateKeySigner,
        domain: &str,
        statement: &str,
        uri: String,
        window: (u64, u64),
        resources: Vec<String>,
    ) -> Result<AuthSig, ClientError> {
        let message = SiweMessage {
            domain: domain.to_string(),
            address: wallet.address(),
            statement: Some(statement.into()),
            uri,
            version: "1".into(),
            chain_id: self.chain_id.ok_or(ClientError::NoChain)?,
            nonce: self.latest_blockhash().await?,
            issued_at: window.0,
            expiration_time: Some(window.1),
            not_before: None,
            request_id: None,
            resources,
        };
        AuthSig::create(wallet, &message).map_err(|e| ClientError::Auth(e.to_string()))
    }

    /// A session whose capability `wallet` signs: SIWE for `domain` (the nodes' `auth_domain`)
    /// with `uri` `lit:session:<key>` and a ReCap of `requests`, valid for `valid_for`.
    pub async fn wallet_session(
        &self,
        wallet: &PrivateKeySigner,
        domain: &str,
        requests: &[ResourceAbility],
        valid_for: Duration,
    ) -> Result<Session, ClientError> {
        let key = SessionKey::random();
        let window = window(valid_for);
        let capability = self
            .siwe(
                wallet,
                domain,
                "Sigil: I grant the session key the listed abilities.",
                key.uri(),
                window,
                vec![Recap::granting(requests).encode()],
            )
            .await?;
        Ok(self.session(key, capability, wallet.address(), requests, window))
    }

    /// A wallet as an auth method for granting session key `key` (type 1): an auth signature
    /// delegating to exactly that key (`uri` `lit:session:<key>`), so no node that sees it can
    /// buy a session for another key with it. It is valid for `valid_for`, and a session it
    /// buys ends no later. With `scope`, it lists (as a ReCap) the only abilities the network may
    /// grant on its strength; empty, whatever the request asks and the PKP permits.
    pub async fn wallet_auth_method(
        &self,
        wallet: &PrivateKeySigner,
        domain: &str,
        key: &SessionKey,
        scope: &[ResourceAbility],
        valid_for: Duration,
    ) -> Result<AuthMethod, ClientError> {
        let auth = self
            .siwe(
                wallet,
                domain,
                "Sigil: I let the network grant this session key a session for my PKP.",
                key.uri(),
                window(valid_for),
                if scope.is_empty() {
                    Vec::new()
                } else {
                    vec![Recap::granting(scope).encode()]
                },
            )
            .await?;
        Ok(AuthMethod {
            auth_method_type: 1,
            access_token: serde_json::to_string(&auth).map_err(|e| ClientError::Invalid(e.to_string()))?,
        })
    }

    /// A session with key `key` (make one with [`SessionKey::random`]) for the PKP
    /// `pkp_public_key` (65 bytes), granted by the network for `auth_methods` (and/or a custom
    /// auth action, `custom`): every node checks them and answers `/web/sign_session_key` with a
    /// BLS share of one capability; `t` of them are combined and checked here against the
    /// network key.
    pub async fn pkp_session(
        &self,
        key: SessionKey,
        pkp_public_key: &[u8; 65],
        auth_methods: &[AuthMethod],
        custom: Option<CustomAuth>,
        requests: &[ResourceAbility],
        valid_for: Duration,
    ) -> Result<Session, ClientError> {
        let window = window(valid_for);
        let custom = custom.unwrap_or_default();
        let body = SignSessionKeyRequest {
            session_key: key.public_hex(),
            auth_methods: auth_methods.to_vec(),
            pkp_public_key: hex::encode(pkp_public_key),
            resource_ability_requests: requests.to_vec(),
            nonce: self.latest_blockhash().await?,
            issued_at: rfc3339(window.0),
            expiration: rfc3339(window.1),
            lit_action_ipfs_id: custom.ipfs_id,
            code: custom.code,
            js_params: custom.js_params,
            request_id: Some(hex::encode(request_id())),
            ..SignSessionKeyRequest::default()
        };
        let package = self
            .bls_package
            .as_ref()
            .ok_or_else(|| ClientError::Invalid("the nodes did not show their BLS key shares".into()))?;
        let mut failures = self.unreachable.clone();
        // Answers grouped by the capability text: honest nodes all sign the same one.
        let mut groups: BTreeMap<String, (String, Vec<BlsSignatureShare>)> = BTreeMap::new();
        let mut pending = self.to_every_node("/web/sign_session_key", &body, |http, url, body| async move {
            post::<SignSessionKeyResponse>(&http, &url, &body).await
        });
        use futures::StreamExt as _;
        while let Some((node, answer)) = pending.next().await {
            let fail = |reason: String| NodeFailure {
                node: Some(node.id),
                url: node.url.clone(),
                reason,
            };
            let answer = match answer {
                Ok(a) if a.node_id == node.id => a,
                Ok(_) => {
                    failures.push(fail("answered for another node".into()));
                    continue;
                }
                Err(reason) => {
                    failures.push(fail(reason));
                    continue;
                }
            };
            let identity = capability_identity(&answer.siwe_message);
            let share = match hex::decode(&answer.signature_share)
                .map_err(|e| e.to_string())
                .and_then(|b| BlsSignatureShare::from_bytes(PartyId(node.id), &b).map_err(|e| e.to_string()))
                .and_then(|s| {
                    bls::verify_share(package, &s, &identity)
                        .map(|()| s)
                        .map_err(|e| e.to_string())
                }) {
                Ok(share) => share,
                Err(reason) => {
                    failures.push(fail(format!("bad capability share: {reason}")));
                    continue;
                }
            };
            let group = groups
                .entry(answer.siwe_message.clone())
                .or_insert_with(|| (answer.pkp_eth_address.clone(), Vec::new()));
            group.1.push(share);
            if group.1.len() < self.threshold {
                continue;
            }
            let signature = bls::combine(package, &group.1, &identity)
                .map_err(|e| ClientError::Invalid(format!("capability shares do not combine: {e}")))?;
            let address: Address = group
                .0
                .parse()
                .map_err(|e| ClientError::Invalid(format!("pkpEthAddress: {e}")))?;
            let capability = AuthSig {
                sig: hex::encode(bls::signature_bytes(&signature)),
                derived_via: DERIVED_VIA_BLS.into(),
                signed_message: answer.siwe_message,
                address: address.to_checksum(None),
            };
            // The network ends a session no later than the proofs it was bought with.
            let ends = SiweMessage::parse(&capability.signed_message)
                .ok()
                .and_then(|m| m.expiration_time)
                .map_or(window.1, |e| e.min(window.1));
            return Ok(self.session(key, capability, address, requests, (window.0, ends)));
        }
        Err(ClientError::Auth(format!(
            "fewer than {} nodes granted the session: {}",
            self.threshold,
            list(&failures)
        )))
    }
}

/// A custom auth action for [`Client::pkp_session`]: its code or CID (a permitted action of the
/// PKP) and its parameters; the session is granted only if it `setResponse`s `true`.
#[derive(Clone, Debug, Default)]
pub struct CustomAuth {
    /// The action's code.
    pub code: Option<String>,
    /// Or its CIDv0.
    pub ipfs_id: Option<String>,
    /// Its `jsParams`.
    pub js_params: Option<serde_json::Value>,
}
