//! Session signatures (Lit's `sessionSigs`): the shapes and the checks that need no chain.
//!
//! A client makes an ed25519 **session key**. A **capability** delegates to it: a SIWE message
//! whose `uri` is `lit:session:<sessionKeyHex>` and whose one `urn:recap:` resource (EIP-5573
//! ReCap) grants abilities on resources — signed either by a wallet (an ordinary [`AuthSig`]) or
//! by the network's BLS key for a PKP ([`DERIVED_VIA_BLS`], made by `/web/sign_session_key`).
//! For **each node** the session key then signs a [`SessionMessage`] naming that node's URL, so
//! what one node receives cannot be replayed to another.
//!
//! Resources: `lit-pkp://<tokenId hex>` (ability `pkp-signing`, ReCap `Threshold/Signing`),
//! `lit-litaction://<CIDv0>` (`lit-action-execution`, `Threshold/Execution`),
//! `lit-accesscontrolcondition://<conditions hash>/<data hash>`
//! (`access-control-condition-decryption`, `Threshold/Decryption`); `*` after `://` stands for every
//! resource of that kind.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sigil_primitives::ResourceAbility;

use crate::siwe::AuthSig;

/// `derivedVia` of a session signature.
pub const DERIVED_VIA_SESSION: &str = "litSessionSignViaNacl";
/// `derivedVia` of a capability signed by the network's BLS key.
pub const DERIVED_VIA_BLS: &str = "lit.bls";
/// `algo` of a session signature.
pub const ALGO: &str = "ed25519";
/// What a capability's `uri` starts with; the session key (hex) follows.
pub const SESSION_URI_PREFIX: &str = "lit:session:";
/// What the ReCap resource starts with; base64url JSON follows.
pub const RECAP_PREFIX: &str = "urn:recap:";
/// The resource whose ReCap entry carries the auth methods a network-signed capability was
/// granted for (ability `Auth/Auth`).
pub const AUTH_CONTEXT_RESOURCE: &str = "lit-resolvedauthcontext://*";
/// Longest accepted session signature (the signed message carries its capabilities).
pub const MAX_SESSION_SIG_BYTES: usize = 64 * 1024;

/// What a request asks to do, and on what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ability {
    /// Sign with a PKP: `lit-pkp://<tokenId>`.
    PkpSigning,
    /// Run an action: `lit-litaction://<cid>`.
    ActionExecution,
    /// Decrypt under conditions: `lit-accesscontrolcondition://<hash>/<hash>`.
    Decryption,
}

impl Ability {
    /// Lit's ability name (`resourceAbilityRequests`).
    pub fn lit_name(self) -> &'static str {
        match self {
            Self::PkpSigning => "pkp-signing",
            Self::ActionExecution => "lit-action-execution",
            Self::Decryption => "access-control-condition-decryption",
        }
    }

    /// The ReCap ability (namespace/name) that grants it.
    pub fn recap_name(self) -> &'static str {
        match self {
            Self::PkpSigning => "Threshold/Signing",
            Self::ActionExecution => "Threshold/Execution",
            Self::Decryption => "Threshold/Decryption",
        }
    }

    /// The resource prefix it applies to.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::PkpSigning => "lit-pkp",
            Self::ActionExecution => "lit-litaction",
            Self::Decryption => "lit-accesscontrolcondition",
        }
    }

    /// The ability Lit calls `name`.
    pub fn from_lit_name(name: &str) -> Option<Self> {
        [Self::PkpSigning, Self::ActionExecution, Self::Decryption]
            .into_iter()
            .find(|a| a.lit_name() == name)
    }
}

/// A resource a request acts on: its ability and the part after `://`, normalised (token ids
/// as 64 lowercase hex digits).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Need {
    /// What is asked.
    pub ability: Ability,
    /// On what (never `*`).
    pub resource: String,
}

impl Need {
    /// Signing with PKP `token`.
    pub fn pkp(token: alloy::primitives::U256) -> Self {
        Self {
            ability: Ability::PkpSigning,
            resource: hex::encode(token.to_be_bytes::<32>()),
        }
    }

    /// Running the action `cid` (CIDv0 text).
    pub fn action(cid: &str) -> Self {
        Self {
            ability: Ability::ActionExecution,
            resource: cid.to_owned(),
        }
    }

    /// Decrypting the data hashed `data_hash` under conditions hashed `conditions_hash` (hex).
    pub fn decryption(conditions_hash: &str, data_hash: &str) -> Self {
        Self {
            ability: Ability::Decryption,
            resource: format!("{conditions_hash}/{data_hash}"),
        }
    }

    /// `prefix://resource`.
    pub fn uri(&self) -> String {
        format!("{}://{}", self.ability.prefix(), self.resource)
    }
}

/// Normalises the part after `://` of a resource of `ability`; `*` stays `*`.
fn normalise(ability: Ability, resource: &str) -> Option<String> {
    if resource == "*" {
        return Some("*".into());
    }
    match ability {
        Ability::PkpSigning => {
            let digits = resource.strip_prefix("0x").unwrap_or(resource);
            let token = alloy::primitives::U256::from_str_radix(digits, 16).ok()?;
            Some(hex::encode(token.to_be_bytes::<32>()))
        }
        Ability::ActionExecution | Ability::Decryption => Some(resource.to_owned()),
    }
}

/// Whether `entries` (Lit's `resourceAbilityRequests`) include `need`, by name or by `*`.
pub fn requested(entries: &[ResourceAbility], need: &Need) -> bool {
    entries.iter().any(|entry| {
        entry.ability == need.ability.lit_name()
            && entry.resource.resource_prefix == need.ability.prefix()
            && normalise(need.ability, &entry.resource.resource).is_some_and(|r| r == "*" || r == need.resource)
    })
}

/// Errors of the checks made here. Each has a stable [`SessionError::code`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// Not a session signature, or not one that parses.
    #[error("malformed session signature: {0}")]
    Malformed(String),
    /// The ed25519 signature does not verify under the session key.
    #[error("the session signature does not verify under session key {0}")]
    BadSignature(String),
    /// The session signature names another node.
    #[error("the session signature is for node {signed_for:?}, not this node ({this:?}): session signatures are made per node")]
    WrongNode {
        /// The node it names.
        signed_for: String,
        /// This node.
        this: String,
    },
    /// Past its expiration.
    #[error("the session expired at {at} (now {now})")]
    Expired {
        /// Its expiration, unix seconds.
        at: u64,
        /// The node's clock.
        now: u64,
    },
    /// Issued in the future.
    #[error("the session is issued at {at}, later than now ({now}) plus the clock skew")]
    NotYetValid {
        /// When it says it was issued.
        at: u64,
        /// The node's clock.
        now: u64,
    },
    /// Lives longer than the node allows.
    #[error("the session is valid for {lifetime} s; at most {max} s is accepted")]
    TooLong {
        /// expiration − issued at.
        lifetime: u64,
        /// The limit.
        max: u64,
    },
    /// The session did not ask for what the request does.
    #[error("the session did not request {0} (its resourceAbilityRequests)")]
    NotRequested(String),
    /// No capability grants what the request does.
    #[error("no capability of the session grants {0}")]
    NotGranted(String),
    /// A capability is bad: delegated to another key, malformed ReCap, or badly signed.
    #[error("capability {index}: {why}")]
    BadCapability {
        /// Its position in `capabilities`.
        index: usize,
        /// What is wrong.
        why: String,
    },
}

impl SessionError {
    /// The stable error code a node answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "SESSION_MALFORMED",
            Self::BadSignature(_) => "SESSION_BAD_SIGNATURE",
            Self::WrongNode { .. } => "SESSION_WRONG_NODE",
            Self::Expired { .. } => "SESSION_EXPIRED",
            Self::NotYetValid { .. } => "SESSION_NOT_YET_VALID",
            Self::TooLong { .. } => "SESSION_LIFETIME_TOO_LONG",
            Self::NotRequested(_) => "SESSION_RESOURCE_NOT_REQUESTED",
            Self::NotGranted(_) => "SESSION_NOT_GRANTED",
            Self::BadCapability { .. } => "SESSION_BAD_CAPABILITY",
        }
    }
}

/// A session signature as requests carry it (Lit's shape).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionSig {
    /// ed25519 signature over `signedMessage`, hex.
    pub sig: String,
    /// [`DERIVED_VIA_SESSION`].
    pub derived_via: String,
    /// The [`SessionMessage`] as JSON text.
    pub signed_message: String,
    /// The session key, hex.
    pub address: String,
    /// [`ALGO`].
    #[serde(default)]
    pub algo: Option<String>,
}

/// What the session key signs for one node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionMessage {
    /// The session key, hex.
    pub session_key: String,
    /// What the session may be used for.
    pub resource_ability_requests: Vec<ResourceAbility>,
    /// The capabilities delegating to the session key.
    pub capabilities: Vec<AuthSig>,
    /// RFC 3339.
    pub issued_at: String,
    /// RFC 3339.
    pub expiration: String,
    /// The node it is for: its URL as NodeSet lists it.
    pub node_address: String,
}

/// A session key (ed25519); the secret is zeroized on drop.
pub struct SessionKey(SigningKey);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKey({})", self.public_hex())
    }
}

impl SessionKey {
    /// A fresh random session key.
    pub fn random() -> Self {
        Self(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The public key, hex: what capabilities name in `lit:session:<hex>`.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().as_bytes())
    }

    /// The capability `uri` for this key.
    pub fn uri(&self) -> String {
        format!("{SESSION_URI_PREFIX}{}", self.public_hex())
    }

    /// Signs `message` (for one node).
    pub fn sign(&self, message: &SessionMessage) -> SessionSig {
        let text = serde_json::to_string(message).unwrap_or_default();
        let signature = self.0.sign(text.as_bytes());
        SessionSig {
            sig: hex::encode(signature.to_bytes()),
            derived_via: DERIVED_VIA_SESSION.into(),
            signed_message: text,
            address: self.public_hex(),
            algo: Some(ALGO.into()),
        }
    }
}

impl SessionSig {
    /// Reads a session signature from a request's JSON, or `None` if it is not one (an
    /// ordinary auth signature).
    pub fn from_value(value: &serde_json::Value) -> Option<Result<Self, SessionError>> {
        let via = value.get("derivedVia")?.as_str()?;
        if via != DERIVED_VIA_SESSION {
            return None;
        }
        Some(serde_json::from_value(value.clone()).map_err(|e| SessionError::Malformed(e.to_string())))
    }

    /// Checks the ed25519 signature and returns the signed message. Nothing else is checked.
    pub fn open(&self) -> Result<SessionMessage, SessionError> {
        if self.signed_message.len() > MAX_SESSION_SIG_BYTES {
            return Err(SessionError::Malformed(format!(
                "signedMessage is {} bytes, more than {MAX_SESSION_SIG_BYTES}",
                self.signed_message.len()
            )));
        }
        if self.derived_via != DERIVED_VIA_SESSION {
            return Err(SessionError::Malformed(format!("derivedVia is {:?}", self.derived_via)));
        }
        if let Some(algo) = &self.algo {
            if algo != ALGO {
                return Err(SessionError::Malformed(format!("algo is {algo:?}, expected {ALGO:?}")));
            }
        }
        let key: [u8; 32] = hex::decode(&self.address)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SessionError::Malformed("address is not a 32-byte ed25519 key in hex".into()))?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| SessionError::Malformed("address is not an ed25519 public key".into()))?;
        let signature: [u8; 64] = hex::decode(&self.sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SessionError::Malformed("sig is not 64 bytes of hex".into()))?;
        key.verify_strict(self.signed_message.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| SessionError::BadSignature(self.address.clone()))?;
        let message: SessionMessage = serde_json::from_str(&self.signed_message)
            .map_err(|e| SessionError::Malformed(format!("signedMessage: {e}")))?;
        if !message.session_key.eq_ignore_ascii_case(&self.address) {
            return Err(SessionError::Malformed(
                "signedMessage.sessionKey is not the key that signed it".into(),
            ));
        }
        Ok(message)
    }
}

/// A ReCap (EIP-5573) object: abilities granted per resource URI, each with its caveats.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recap {
    /// resource URI → ability (`namespace/name`) → caveats (one object each).
    pub att: BTreeMap<String, BTreeMap<String, Vec<serde_json::Value>>>,
    /// Proofs (CIDs); unused here.
    #[serde(default)]
    pub prf: Vec<serde_json::Value>,
}

impl Recap {
    /// Grants the abilities of `requests` (Lit's names) in ReCap form.
    pub fn granting(requests: &[ResourceAbility]) -> Self {
        let mut recap = Self::default();
        for request in requests {
            if let Some(ability) = Ability::from_lit_name(&request.ability) {
                let uri = format!("{}://{}", request.resource.resource_prefix, request.resource.resource);
                recap
                    .att
                    .entry(uri)
                    .or_default()
                    .insert(ability.recap_name().into(), vec![serde_json::json!({})]);
            }
        }
        recap
    }

    /// The `urn:recap:…` resource.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{RECAP_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Reads a `urn:recap:…` resource.
    pub fn decode(resource: &str) -> Result<Self, String> {
        let data = resource
            .strip_prefix(RECAP_PREFIX)
            .ok_or_else(|| format!("{resource:?} is not a {RECAP_PREFIX} resource"))?;
        let json = URL_SAFE_NO_PAD
            .decode(data.trim_end_matches('='))
            .map_err(|e| format!("ReCap is not base64url: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| format!("ReCap JSON: {e}"))
    }

    /// The ReCap among a SIWE message's resources: exactly one is required.
    pub fn of(resources: &[String]) -> Result<Self, String> {
        let mut recaps = resources.iter().filter(|r| r.starts_with(RECAP_PREFIX));
        let first = recaps.next().ok_or("the SIWE message has no urn:recap: resource")?;
        if recaps.next().is_some() {
            return Err("the SIWE message has more than one urn:recap: resource".into());
        }
        Self::decode(first)
    }

    /// Whether it grants `need`: its resource by name or by `prefix://*`, its ability by name or
    /// by `*/*`.
    pub fn grants(&self, need: &Need) -> bool {
        let prefix = need.ability.prefix();
        self.att.iter().any(|(uri, abilities)| {
            let Some(rest) = uri.strip_prefix(prefix).and_then(|r| r.strip_prefix("://")) else {
                return false;
            };
            let resource_ok = normalise(need.ability, rest).is_some_and(|r| r == "*" || r == need.resource);
            resource_ok && (abilities.contains_key(need.ability.recap_name()) || abilities.contains_key("*/*"))
        })
    }

    /// Whether it grants all that `request` (one of Lit's `resourceAbilityRequests`) asks: a
    /// named resource as [`Recap::grants`] says, a `*` request only through `prefix://*`.
    pub fn covers(&self, request: &ResourceAbility) -> bool {
        let Some(ability) = Ability::from_lit_name(&request.ability) else {
            return false;
        };
        if request.resource.resource_prefix != ability.prefix() {
            return false;
        }
        match normalise(ability, &request.resource.resource) {
            None => false,
            Some(resource) if resource == "*" => {
                let wildcard = format!("{}://*", ability.prefix());
                self.att
                    .get(&wildcard)
                    .is_some_and(|a| a.contains_key(ability.recap_name()) || a.contains_key("*/*"))
            }
            Some(resource) => self.grants(&Need { ability, resource }),
        }
    }

    /// The caveats of the auth-context entry ([`AUTH_CONTEXT_RESOURCE`], `Auth/Auth`), if any.
    pub fn auth_context(&self) -> Option<&serde_json::Value> {
        self.att.get(AUTH_CONTEXT_RESOURCE)?.get("Auth/Auth")?.first()
    }
}

/// What the network's BLS key signs for a capability: domain-separated from the identities
/// ciphertexts are encrypted to (`sigil-acc://…`), so a session capability can never open one.
pub fn capability_identity(siwe_text: &str) -> Vec<u8> {
    let mut identity = b"sigil-session-capability/v1:".to_vec();
    identity.extend_from_slice(siwe_text.as_bytes());
    identity
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_primitives::Resource;

    fn ra(prefix: &str, resource: &str, ability: &str) -> ResourceAbility {
        ResourceAbility {
            resource: Resource {
                resource: resource.into(),
                resource_prefix: prefix.into(),
            },
            ability: ability.into(),
        }
    }

    fn message(key: &SessionKey) -> SessionMessage {
        SessionMessage {
            session_key: key.public_hex(),
            resource_ability_requests: vec![ra("lit-pkp", "*", "pkp-signing")],
            capabilities: Vec::new(),
            issued_at: "2026-12-01T00:00:00Z".into(),
            expiration: "2026-12-02T00:00:00Z".into(),
            node_address: "http://127.0.0.1:7470".into(),
        }
    }

    #[test]
    fn a_session_signature_opens_and_a_tampered_one_does_not() {
        let key = SessionKey::random();
        let sig = key.sign(&message(&key));
        assert_eq!(sig.open().unwrap(), message(&key));
        let value = serde_json::to_value(&sig).unwrap();
        assert_eq!(SessionSig::from_value(&value).unwrap().unwrap(), sig);

        let mut tampered = sig.clone();
        tampered.signed_message = tampered.signed_message.replace("7470", "7471");
        assert_eq!(tampered.open().unwrap_err().code(), "SESSION_BAD_SIGNATURE");

        // another key claiming the message
        let other = SessionKey::random();
        let mut stolen = sig.clone();
        stolen.address = other.public_hex();
        assert_eq!(stolen.open().unwrap_err().code(), "SESSION_BAD_SIGNATURE");

        // a key that signs a message naming another session key
        let mut lying = message(&key);
        lying.session_key = other.public_hex();
        assert_eq!(key.sign(&lying).open().unwrap_err().code(), "SESSION_MALFORMED");

        for garbage in ["", "zz", &"00".repeat(63)] {
            let mut bad = sig.clone();
            bad.sig = garbage.into();
            assert_eq!(bad.open().unwrap_err().code(), "SESSION_MALFORMED");
        }
        let mut huge = sig;
        huge.signed_message = "x".repeat(MAX_SESSION_SIG_BYTES + 1);
        assert_eq!(huge.open().unwrap_err().code(), "SESSION_MALFORMED");
    }

    #[test]
    fn an_ordinary_auth_sig_is_not_a_session_signature() {
        let value = serde_json::json!({"sig": "0x", "derivedVia": "web3.eth.personal.sign", "signedMessage": "", "address": "0x"});
        assert!(SessionSig::from_value(&value).is_none());
        assert!(SessionSig::from_value(&serde_json::json!("text")).is_none());
    }

    #[test]
    fn recap_grants_by_name_or_wildcard_and_nothing_else() {
        let token = alloy::primitives::U256::from(0xabcdu64);
        let recap = Recap::granting(&[
            ra("lit-pkp", "abcd", "pkp-signing"),
            ra("lit-litaction", "*", "lit-action-execution"),
        ]);
        let back = Recap::decode(&recap.encode()).unwrap();
        assert_eq!(back, recap);
        assert!(back.grants(&Need::pkp(token)));
        assert!(!back.grants(&Need::pkp(token + alloy::primitives::U256::from(1))));
        assert!(back.grants(&Need::action("QmAnything")));
        assert!(!back.grants(&Need::decryption("aa", "bb")));

        // the ability must match the resource kind
        let crossed = Recap::granting(&[ra("lit-pkp", "*", "lit-action-execution")]);
        assert!(!crossed.grants(&Need::pkp(token)));
        assert!(!crossed.grants(&Need::action("Qm")));

        assert!(Recap::decode("urn:recap:!!!").is_err());
        assert!(Recap::decode("urn:other:e30").is_err());
        assert!(Recap::of(&[]).is_err());
        assert!(Recap::of(&[recap.encode(), recap.encode()]).is_err());
    }

    #[test]
    fn a_recap_covers_a_request_only_when_it_grants_all_of_it() {
        let recap = Recap::granting(&[
            ra("lit-pkp", "0xabcd", "pkp-signing"),
            ra("lit-litaction", "*", "lit-action-execution"),
        ]);
        assert!(recap.covers(&ra("lit-pkp", "abcd", "pkp-signing")));
        assert!(recap.covers(&ra("lit-litaction", "QmAny", "lit-action-execution")));
        assert!(recap.covers(&ra("lit-litaction", "*", "lit-action-execution")));
        // one PKP delegated is not every PKP, and signing is not decryption
        assert!(!recap.covers(&ra("lit-pkp", "*", "pkp-signing")));
        assert!(!recap.covers(&ra("lit-pkp", "abce", "pkp-signing")));
        assert!(!recap.covers(&ra(
            "lit-accesscontrolcondition",
            "*",
            "access-control-condition-decryption"
        )));
        assert!(!recap.covers(&ra("lit-pkp", "abcd", "lit-action-execution")));
        assert!(!recap.covers(&ra("lit-pkp", "abcd", "no-such-ability")));
    }

    #[test]
    fn requested_matches_normalised_token_ids() {
        let token = alloy::primitives::U256::from(0xabcdu64);
        let entries = [ra("lit-pkp", "0x000abcd", "pkp-signing")];
        assert!(requested(&entries, &Need::pkp(token)));
        assert!(!requested(&entries, &Need::action("Qm")));
        assert!(requested(
            &[ra(
                "lit-accesscontrolcondition",
                "*",
                "access-control-condition-decryption"
            )],
            &Need::decryption("a", "b")
        ));
        assert!(!requested(
            &[ra("lit-pkp", "*", "access-control-condition-decryption")],
            &Need::pkp(token)
        ));
    }

    #[test]
    fn capability_identities_never_look_like_ciphertext_identities() {
        assert!(!capability_identity("sigil-acc://x").starts_with(b"sigil-acc://"));
    }
}
