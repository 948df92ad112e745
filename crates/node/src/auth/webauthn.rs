//! WebAuthn passkeys as an auth method (Lit's `AuthMethodType` 3): the relying party's checks of
//! one assertion, sans-IO.
//!
//! A client proves it holds a passkey by sending, as the auth method's `accessToken`, the JSON of
//! the `PublicKeyCredential` its browser (or SimpleWebAuthn's `startAuthentication`) returned:
//! `{id, rawId, type: "public-key", response: {authenticatorData, clientDataJSON, signature,
//! userHandle}}`, the byte fields base64url. Other members (`clientExtensionResults`,
//! `authenticatorAttachment`, `userHandle`) are ignored. The challenge it signed is a recent block
//! hash of this network's chain, as for `authSig` nonces, followed — when the assertion buys a
//! session — by the session key being granted ([`session_challenge`]).
//!
//! [`Assertion::parse`] decodes a token, bounded in size ([`MAX_TOKEN_BYTES`]) and without
//! panicking on any input; the caller then checks the challenge is a fresh block hash (that
//! needs the chain), looks up the credential key registered on chain with the auth method
//! ([`CredentialKey::from_cose`]) and the last sign counter it stored, and calls
//! [`Assertion::verify`], which runs the checks of WebAuthn §7.2 in its order: `type` is
//! `webauthn.get`, the challenge, the origin, the RP ID hash, the user-present (and, if the
//! [`Policy`] asks, user-verified) flag, the ES256 signature over `authenticatorData ‖
//! SHA-256(clientDataJSON)`, and last the sign counter ([`counter_advances`]). The caller stores
//! the returned counter durably before it acts on the assertion.
//!
//! The auth method id is Lit's: `keccak256(utf8(rawId + ":lit"))` over the `rawId` text as sent
//! ([`Assertion::auth_method_id`]). Only ES256 (COSE EC2 on P-256) credential keys are accepted.
//!
//! Everything above is sans-IO and uses nothing else of the crate. [`resolve`] is the node's
//! side: the `[auth]` config as [`Policy`], the challenge's freshness (`auth::fresh_block`), the
//! key from PKPPermissions (`userPubkey`), and the counter kept durably per (PKP, credential) in
//! the store, advanced in one write transaction before the assertion counts. Uses `auth`,
//! `node`, `store`, `error`.

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use coset::{iana, CborSerializable, CoseKey, KeyType, Label, RegisteredLabelWithPrivate};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::EncodedPoint;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sigil_chain::alloy::primitives::{keccak256, B256, U256};
use sigil_primitives::AuthMethod;

use super::{fresh_block, Resolved};
use crate::error::{Error, Kind};
use crate::node::Node;

/// Lit's `AuthMethodType` for WebAuthn passkeys.
pub const AUTH_METHOD_TYPE: u64 = 3;

/// Largest accepted `accessToken`, in bytes. A real assertion is well under 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Largest credential id WebAuthn allows (§5.8.3, `credential ID`), in bytes.
pub const MAX_CREDENTIAL_ID_BYTES: usize = 1023;

/// Largest accepted COSE_Key of a credential, in bytes. An EC2 P-256 key is about 77.
pub const MAX_COSE_KEY_BYTES: usize = 1024;

/// What Lit appends to the `rawId` text before hashing it into the auth method id (its default
/// relying-party name).
pub const AUTH_METHOD_ID_SUFFIX: &str = ":lit";

/// `clientDataJSON.type` of an assertion (as opposed to `webauthn.create`, a registration).
const ASSERTION_TYPE: &str = "webauthn.get";

/// Flag bits of `authenticatorData` (WebAuthn §6.1).
const FLAG_USER_PRESENT: u8 = 0x01;
const FLAG_USER_VERIFIED: u8 = 0x04;

/// `rpIdHash` (32) ‖ flags (1) ‖ `signCount` (4, big-endian); extensions may follow.
const AUTH_DATA_MIN_BYTES: usize = 37;

/// Longest piece of offending input quoted back in an error message, in characters.
const QUOTE_CHARS: usize = 64;

/// Base64url as browsers and SimpleWebAuthn write it (no padding), also accepting padding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a passkey assertion was refused. Each variant has a stable [`code`](WebauthnError::code).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebauthnError {
    /// The token, or a part of it, does not have the required shape; the text says which.
    #[error("malformed WebAuthn assertion: {0}")]
    Malformed(String),
    /// The token is over [`MAX_TOKEN_BYTES`].
    #[error("WebAuthn assertion is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `clientDataJSON.type` is not `webauthn.get` (a registration, or something else).
    #[error("clientDataJSON.type is {0:?}; an assertion has \"webauthn.get\"")]
    WrongType(String),
    /// The signed challenge is not the one expected.
    #[error("the assertion signed another challenge; sign a recent block hash (latestBlockhash from /web/handshake)")]
    WrongChallenge,
    /// For a session grant, the challenge is not the block hash followed by the session key
    /// being granted ([`session_challenge`]).
    #[error("{}", if *.unbound { "a passkey assertion for a session must sign a recent block hash followed by the session key being granted, not the block hash alone" } else { "the passkey assertion was made for another session key" })]
    NotForThisSession {
        /// Whether the challenge was a block hash alone (as Lit's clients sign it).
        unbound: bool,
    },
    /// The assertion was made on a page this node does not accept, or inside a frame of another
    /// site.
    #[error("the assertion was made for origin {got:?}{}, which this node does not accept", if *.cross_origin { " inside a cross-origin frame" } else { "" })]
    WrongOrigin {
        /// `clientDataJSON.origin`, shortened.
        got: String,
        /// Whether the client said it was embedded in another origin.
        cross_origin: bool,
    },
    /// `rpIdHash` is not SHA-256 of this node's relying-party id.
    #[error("the assertion is for another relying party (rpIdHash is not SHA-256 of {expected:?})")]
    WrongRp {
        /// The relying-party id this node expects.
        expected: String,
    },
    /// The authenticator did not see the user (the UP flag is clear).
    #[error("the authenticator did not confirm user presence (UP flag clear)")]
    UserNotPresent,
    /// The policy asks for user verification and the UV flag is clear.
    #[error("the authenticator did not verify the user (UV flag clear), and this node requires it")]
    UserNotVerified,
    /// The credential key registered on chain is not a usable ES256 COSE_Key.
    #[error("the registered credential key is unusable: {0}")]
    BadKey(String),
    /// The signature does not verify under the registered credential key.
    #[error("the assertion's signature does not verify under the registered credential key")]
    BadSignature,
    /// The sign counter did not advance past the last one seen: a replay or a cloned authenticator.
    #[error("sign counter {got} does not advance past {last}, the last one seen for this credential (replayed assertion or cloned authenticator)")]
    CounterReplayed {
        /// The assertion's counter.
        got: u32,
        /// The last counter this node stored for the credential.
        last: u32,
    },
}

impl WebauthnError {
    /// Stable code for HTTP responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "WEBAUTHN_MALFORMED",
            Self::TooLarge { .. } => "WEBAUTHN_TOO_LARGE",
            Self::WrongType(_) => "WEBAUTHN_WRONG_TYPE",
            Self::WrongChallenge => "WEBAUTHN_WRONG_CHALLENGE",
            Self::NotForThisSession { .. } => "WEBAUTHN_NOT_FOR_THIS_SESSION",
            Self::WrongOrigin { .. } => "WEBAUTHN_WRONG_ORIGIN",
            Self::WrongRp { .. } => "WEBAUTHN_WRONG_RP",
            Self::UserNotPresent => "WEBAUTHN_USER_NOT_PRESENT",
            Self::UserNotVerified => "WEBAUTHN_USER_NOT_VERIFIED",
            Self::BadKey(_) => "WEBAUTHN_BAD_KEY",
            Self::BadSignature => "WEBAUTHN_BAD_SIGNATURE",
            Self::CounterReplayed { .. } => "WEBAUTHN_COUNTER_REPLAYED",
        }
    }
}

fn malformed(what: impl Into<String>) -> WebauthnError {
    WebauthnError::Malformed(what.into())
}

fn quote(text: &str) -> String {
    text.chars().take(QUOTE_CHARS).collect()
}

/// What this node accepts as a relying party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The relying-party id passkeys are registered for (a domain, e.g. `example.com`).
    pub rp_id: String,
    /// Exact origins (`scheme://host[:port]`) whose pages may make assertions.
    pub origins: Vec<String>,
    /// Whether the UV flag (PIN, biometrics) is required, not only user presence.
    pub require_user_verified: bool,
}

/// The JSON of a `PublicKeyCredential` holding an assertion, as clients serialise it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialJson {
    raw_id: String,
    #[serde(rename = "type")]
    kind: String,
    response: ResponseJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseJson {
    authenticator_data: String,
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    signature: String,
}

/// The members of `clientDataJSON` the checks read; others (`tokenBinding`, vendor keys) are
/// ignored, as WebAuthn asks.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(default)]
    cross_origin: Option<bool>,
}

/// A decoded passkey assertion; nothing in it is verified yet.
#[derive(Clone, PartialEq, Eq)]
pub struct Assertion {
    raw_id: String,
    credential_id: Vec<u8>,
    authenticator_data: Vec<u8>,
    client_data_json: Vec<u8>,
    kind: String,
    challenge: Vec<u8>,
    origin: String,
    cross_origin: bool,
    signature: Vec<u8>,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertion")
            .field("raw_id", &self.raw_id)
            .field("origin", &self.origin)
            .field("counter", &self.counter())
            .finish_non_exhaustive()
    }
}

fn decode(field: &str, text: &str, max: usize) -> Result<Vec<u8>, WebauthnError> {
    let bytes = B64URL
        .decode(text)
        .map_err(|e| malformed(format!("{field} is not base64url: {e}")))?;
    if bytes.len() > max {
        return Err(malformed(format!("{field} is {} bytes; at most {max}", bytes.len())));
    }
    Ok(bytes)
}

impl Assertion {
    /// Decodes an `accessToken`. Fails with [`WebauthnError::TooLarge`] over
    /// [`MAX_TOKEN_BYTES`] and [`WebauthnError::Malformed`] for any other shape problem.
    pub fn parse(access_token: &str) -> Result<Self, WebauthnError> {
        if access_token.len() > MAX_TOKEN_BYTES {
            return Err(WebauthnError::TooLarge {
                len: access_token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        let json: CredentialJson = serde_json::from_str(access_token)
            .map_err(|e| malformed(format!("accessToken is not a PublicKeyCredential's JSON: {e}")))?;
        if json.kind != "public-key" {
            return Err(malformed(format!(
                "type is {:?}; a passkey credential has \"public-key\"",
                quote(&json.kind)
            )));
        }
        let credential_id = decode("rawId", &json.raw_id, MAX_CREDENTIAL_ID_BYTES)?;
        if credential_id.is_empty() {
            return Err(malformed("rawId is empty"));
        }
        let response = json.response;
        let authenticator_data = decode("authenticatorData", &response.authenticator_data, MAX_TOKEN_BYTES)?;
        if authenticator_data.len() < AUTH_DATA_MIN_BYTES {
            return Err(malformed(format!(
                "authenticatorData is {} bytes; it has at least {AUTH_DATA_MIN_BYTES}",
                authenticator_data.len()
            )));
        }
        let client_data_json = decode("clientDataJSON", &response.client_data_json, MAX_TOKEN_BYTES)?;
        let client_data: ClientData =
            serde_json::from_slice(&client_data_json).map_err(|e| malformed(format!("clientDataJSON: {e}")))?;
        let challenge = decode("clientDataJSON.challenge", &client_data.challenge, MAX_TOKEN_BYTES)?;
        let signature = decode("signature", &response.signature, MAX_TOKEN_BYTES)?;
        Ok(Self {
            raw_id: json.raw_id,
            credential_id,
            authenticator_data,
            client_data_json,
            kind: client_data.kind,
            challenge,
            origin: client_data.origin,
            cross_origin: client_data.cross_origin.unwrap_or(false),
            signature,
        })
    }

    /// The auth method id, as Lit derives it: `keccak256(utf8(rawId + ":lit"))`, over the
    /// `rawId` text exactly as sent.
    pub fn auth_method_id(&self) -> B256 {
        auth_method_id(&self.raw_id)
    }

    /// The credential id (`rawId`, decoded).
    pub fn credential_id(&self) -> &[u8] {
        &self.credential_id
    }

    /// The challenge the authenticator signed (`clientDataJSON.challenge`, decoded). The caller
    /// decides whether it is acceptable (a fresh block hash) and passes it to [`Self::verify`].
    pub fn challenge(&self) -> &[u8] {
        &self.challenge
    }

    /// The sign counter `authenticatorData` carries (unverified until [`Self::verify`] passes).
    pub fn counter(&self) -> u32 {
        match self.authenticator_data.get(33..37) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    fn flags(&self) -> u8 {
        self.authenticator_data.get(32).copied().unwrap_or(0)
    }

    /// Runs every check of WebAuthn §7.2 on this assertion: signed for `challenge`, on an origin
    /// and relying party of `policy`, with the user present (and verified, if required), signed
    /// by `key`, and with a sign counter past `last_counter` ([`counter_advances`]). Returns the
    /// counter to store.
    pub fn verify(
        &self,
        policy: &Policy,
        challenge: &[u8],
        key: &CredentialKey,
        last_counter: u32,
    ) -> Result<Verified, WebauthnError> {
        if self.kind != ASSERTION_TYPE {
            return Err(WebauthnError::WrongType(quote(&self.kind)));
        }
        if self.challenge != challenge {
            return Err(WebauthnError::WrongChallenge);
        }
        if self.cross_origin || !policy.origins.contains(&self.origin) {
            return Err(WebauthnError::WrongOrigin {
                got: quote(&self.origin),
                cross_origin: self.cross_origin,
            });
        }
        let rp_id_hash = Sha256::digest(policy.rp_id.as_bytes());
        if self.authenticator_data.get(..32) != Some(&rp_id_hash[..]) {
            return Err(WebauthnError::WrongRp {
                expected: policy.rp_id.clone(),
            });
        }
        let flags = self.flags();
        if flags & FLAG_USER_PRESENT == 0 {
            return Err(WebauthnError::UserNotPresent);
        }
        let user_verified = flags & FLAG_USER_VERIFIED != 0;
        if policy.require_user_verified && !user_verified {
            return Err(WebauthnError::UserNotVerified);
        }
        let signature = Signature::from_der(&self.signature).map_err(|_| WebauthnError::BadSignature)?;
        let signed = [
            &self.authenticator_data[..],
            &Sha256::digest(&self.client_data_json)[..],
        ]
        .concat();
        key.0
            .verify(&signed, &signature)
            .map_err(|_| WebauthnError::BadSignature)?;
        let counter = self.counter();
        if !counter_advances(last_counter, counter) {
            return Err(WebauthnError::CounterReplayed {
                got: counter,
                last: last_counter,
            });
        }
        Ok(Verified { counter, user_verified })
    }
}

/// What a verified assertion tells the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The sign counter to store for the credential before acting on the assertion.
    pub counter: u32,
    /// Whether the authenticator verified the user (UV flag), not only saw them.
    pub user_verified: bool,
}

/// The challenge a passkey signs to get a session for `session_key` (its ed25519 public key):
/// a recent block hash of the chain followed by the key, 64 bytes. Lit's clients sign the block
/// hash alone, which binds the assertion to no session; nodes refuse that for a session.
pub fn session_challenge(block: &B256, session_key: &[u8; 32]) -> [u8; 64] {
    let mut challenge = [0u8; 64];
    let (head, tail) = challenge.split_at_mut(32);
    head.copy_from_slice(block.as_slice());
    tail.copy_from_slice(session_key);
    challenge
}

/// Lit's auth method id of a passkey credential: `keccak256(utf8(raw_id + ":lit"))`, `raw_id`
/// being the credential id as the client wrote it (base64url).
pub fn auth_method_id(raw_id: &str) -> B256 {
    keccak256(format!("{raw_id}{AUTH_METHOD_ID_SUFFIX}"))
}

/// Whether an assertion's sign counter `new` may follow `last` (WebAuthn §7.2 step 21): it must
/// be strictly greater, unless both are zero — an authenticator that keeps no counter (many
/// synced passkeys) always sends zero.
pub fn counter_advances(last: u32, new: u32) -> bool {
    (last == 0 && new == 0) || new > last
}

/// A credential's public key, as registered on chain with the auth method (its `userPubkey`):
/// a COSE_Key (RFC 9052 §7) of type EC2 on P-256, for ES256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialKey(VerifyingKey);

impl CredentialKey {
    /// Decodes and checks a COSE_Key: kty EC2, crv P-256, alg absent or ES256, 32-byte `x` and
    /// `y` that lie on the curve. At most [`MAX_COSE_KEY_BYTES`].
    pub fn from_cose(bytes: &[u8]) -> Result<Self, WebauthnError> {
        let bad = |why: &str| WebauthnError::BadKey(why.to_owned());
        if bytes.len() > MAX_COSE_KEY_BYTES {
            return Err(WebauthnError::BadKey(format!(
                "{} bytes; at most {MAX_COSE_KEY_BYTES}",
                bytes.len()
            )));
        }
        let key = CoseKey::from_slice(bytes).map_err(|e| WebauthnError::BadKey(format!("not a COSE_Key: {e}")))?;
        if key.kty != KeyType::Assigned(iana::KeyType::EC2) {
            return Err(bad("not an EC2 key; only ES256 (P-256) passkeys are supported"));
        }
        match &key.alg {
            None | Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) => {}
            Some(_) => return Err(bad("its algorithm is not ES256; only ES256 passkeys are supported")),
        }
        let param = |label: iana::Ec2KeyParameter| {
            let mut found = key.params.iter().filter(|(l, _)| *l == Label::Int(label as i64));
            match (found.next(), found.next()) {
                (Some((_, value)), None) => Ok(value),
                (None, _) => Err(bad("a parameter (crv, x or y) is missing")),
                (Some(_), Some(_)) => Err(bad("a parameter appears twice")),
            }
        };
        let crv = param(iana::Ec2KeyParameter::Crv)?;
        if crv.as_integer() != Some((iana::EllipticCurve::P_256 as i64).into()) {
            return Err(bad("its curve is not P-256"));
        }
        let coordinate = |label| -> Result<[u8; 32], WebauthnError> {
            param(label)?
                .as_bytes()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| bad("x and y must be 32-byte strings"))
        };
        let x = coordinate(iana::Ec2KeyParameter::X)?;
        let y = coordinate(iana::Ec2KeyParameter::Y)?;
        let point = EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
        VerifyingKey::from_encoded_point(&point)
            .map(Self)
            .map_err(|_| bad("(x, y) is not a point of P-256"))
    }
}

impl From<WebauthnError> for Error {
    fn from(e: WebauthnError) -> Self {
        let kind = match e {
            WebauthnError::TooLarge { .. } => Kind::TooLarge,
            WebauthnError::BadKey(_) => Kind::Forbidden,
            _ => Kind::Unauthenticated,
        };
        Error::new(kind, e.code(), e.to_string())
    }
}

/// This node's relying-party policy, from `[auth]`; `None` when passkeys are not configured.
fn policy(node: &Node) -> Option<Policy> {
    let auth = &node.settings.config.auth;
    Some(Policy {
        rp_id: auth.webauthn_rp_id.clone()?,
        origins: auth.webauthn_origins.clone(),
        require_user_verified: auth.webauthn_require_uv,
    })
}

/// The store's key of a credential's sign counter: PKP token id ‖ SHA-256(credential id).
fn counter_key(token: U256, credential_id: &[u8]) -> [u8; 64] {
    let mut key = [0u8; 64];
    let (pkp, credential) = key.split_at_mut(32);
    pkp.copy_from_slice(&token.to_be_bytes::<32>());
    credential.copy_from_slice(&Sha256::digest(credential_id));
    key
}

/// Type 3: checks a passkey assertion presented for PKP `token` (see the module doc) and
/// resolves it to Lit's auth method id. The new sign counter is stored before this returns.
///
/// With `session_key` (hex: the key a session grant is for), the challenge must be
/// [`session_challenge`] of a fresh block and that key, so an assertion a node or an eavesdropper
/// sees cannot buy a session for a key of its own before the honest request reaches the others;
/// otherwise (naming the method's id) a fresh block hash alone.
pub async fn resolve(
    node: &Node,
    method: &AuthMethod,
    token: Option<U256>,
    session_key: Option<&str>,
) -> Result<Resolved, Error> {
    let policy = policy(node).ok_or_else(|| {
        Error::new(
            Kind::Invalid,
            "WEBAUTHN_DISABLED",
            "this node accepts no passkeys ([auth] webauthn_rp_id is not set)",
        )
    })?;
    let token = token.ok_or_else(|| {
        Error::new(
            Kind::Invalid,
            "WEBAUTHN_NEEDS_PKP",
            "a passkey is checked against the credential key registered with a PKP: present it for one",
        )
    })?;
    let assertion = Assertion::parse(&method.access_token)?;
    let block = assertion
        .challenge()
        .get(..32)
        .and_then(|b| B256::try_from(b).ok())
        .ok_or(WebauthnError::WrongChallenge)?;
    let challenge = match session_key {
        Some(key) => {
            let key: [u8; 32] = hex::decode(key.trim_start_matches("0x"))
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| malformed("the session key is not 32 bytes of hex"))?;
            let challenge = session_challenge(&block, &key);
            if assertion.challenge() != challenge {
                return Err(WebauthnError::NotForThisSession {
                    unbound: assertion.challenge().len() == 32,
                }
                .into());
            }
            challenge.to_vec()
        }
        None => block.to_vec(),
    };
    // The authSig nonce rule, under a code of this method's own.
    fresh_block(node, block).await.map_err(|e| match e.code() {
        "AUTH_STALE_NONCE" => Error::new(
            Kind::Unauthenticated,
            "WEBAUTHN_STALE_CHALLENGE",
            format!(
                "the passkey signed a challenge that is not a fresh block hash: {}",
                e.message()
            ),
        ),
        _ => e,
    })?;
    let id = assertion.auth_method_id();
    let registry = node.registry()?;
    let cose = registry
        .auth_method_pubkey(token, AUTH_METHOD_TYPE, id.as_slice())
        .await
        .map_err(Error::chain)?;
    if cose.is_empty() {
        return Err(Error::new(
            Kind::Forbidden,
            "WEBAUTHN_UNKNOWN_CREDENTIAL",
            format!(
                "no credential key is registered on PKP {token:#x} for passkey {} (auth method id {id})",
                quote(&assertion.raw_id)
            ),
        ));
    }
    let key = CredentialKey::from_cose(&cose)?;
    let counter_key = counter_key(token, assertion.credential_id());
    let store = node.store.clone();
    let last = store
        .sign_counter(&counter_key)
        .map_err(|e| Error::internal(format!("store: {e}")))?;
    let verified = assertion.verify(&policy, &challenge, &key, last)?;
    // A request racing this one with the same counter read the same `last`; the transaction
    // lets only one of them through.
    let counter = verified.counter;
    tokio::task::spawn_blocking(move || store.advance_sign_counter(&counter_key, counter, counter_advances))
        .await
        .map_err(|e| Error::internal(format!("store: {e}")))?
        .map_err(|e| Error::internal(format!("store: {e}")))?
        .map_err(|last| WebauthnError::CounterReplayed { got: counter, last })?;
    Ok(Resolved {
        kind: AUTH_METHOD_TYPE,
        id: id.to_vec(),
        // A credential id is public and the PKP's owner registers the key that goes with it, so
        // the id means something only together with the key and the PKP it is registered on.
        context: serde_json::json!({
            "credentialId": assertion.raw_id,
            "userVerified": verified.user_verified,
            "pkpTokenId": format!("{token:#x}"),
            "publicKeyHash": format!("{:#x}", sigil_chain::alloy::primitives::keccak256(&cose)),
        }),
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use serde_json::Value;
    use sigil_client::passkey::{Ceremony, SoftPasskey, FLAG_UP, FLAG_UV};

    use super::*;

    const RP: &str = "localhost";
    const ORIGIN: &str = "http://localhost:5173";
    const BLOCK: [u8; 32] = [0x42; 32];

    fn policy() -> Policy {
        Policy {
            rp_id: RP.into(),
            origins: vec!["https://app.example".into(), ORIGIN.into()],
            require_user_verified: false,
        }
    }

    fn passkey() -> SoftPasskey {
        SoftPasskey::new([7; 32], RP)
    }

    fn key_of(passkey: &SoftPasskey) -> CredentialKey {
        CredentialKey::from_cose(&passkey.cose_public_key()).unwrap()
    }

    /// Parses `token` and verifies it against `passkey`'s key, [`policy`] and [`BLOCK`], after
    /// `last` as the stored counter.
    fn check(token: &str, passkey: &SoftPasskey, last: u32) -> Result<Verified, WebauthnError> {
        check_with(token, &key_of(passkey), &policy(), last)
    }

    fn check_with(token: &str, key: &CredentialKey, policy: &Policy, last: u32) -> Result<Verified, WebauthnError> {
        Assertion::parse(token)?.verify(policy, &BLOCK, key, last)
    }

    fn code(result: Result<Verified, WebauthnError>) -> &'static str {
        result.unwrap_err().code()
    }

    /// `token` with its JSON changed by `edit`.
    fn edited(token: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut value: Value = serde_json::from_str(token).unwrap();
        edit(&mut value);
        value.to_string()
    }

    /// `token` with the decoded bytes of `response.<field>` changed by `edit`.
    fn edited_bytes(token: &str, field: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
        edited(token, |v| {
            let slot = &mut v["response"][field];
            let mut bytes = B64URL.decode(slot.as_str().unwrap()).unwrap();
            edit(&mut bytes);
            *slot = Value::String(B64URL.encode(&bytes));
        })
    }

    #[test]
    fn honest_assertion_verifies_and_reports_its_counter() {
        let mut pk = passkey();
        let token = pk.get(&BLOCK, ORIGIN);
        let verified = check(&token, &pk, 0).unwrap();
        assert_eq!(
            verified,
            Verified {
                counter: 1,
                user_verified: true
            }
        );
        let assertion = Assertion::parse(&token).unwrap();
        assert_eq!(assertion.challenge(), BLOCK);
        assert_eq!(assertion.auth_method_id(), auth_method_id(&pk.raw_id()));
        assert_eq!(B64URL.encode(assertion.credential_id()), pk.raw_id());
    }

    #[test]
    fn successive_assertions_verify_after_each_stored_counter() {
        let mut pk = passkey();
        let mut last = 0;
        for expected in 1..=3 {
            let token = pk.get(&BLOCK, ORIGIN);
            last = check(&token, &pk, last).unwrap().counter;
            assert_eq!(last, expected);
        }
    }

    /// An assertion made by Node's WebCrypto-compatible `crypto.sign` (P-256, SHA-256, DER), with
    /// no code of ours on the signing side.
    #[test]
    fn assertion_signed_elsewhere_verifies() {
        let x = hex::decode("10f6dad4e34a63396446229d2fd858610e7a424d0e94888e42bedb2f7c0ff309").unwrap();
        let y = hex::decode("39f55766541940e225b4ffbdfa46f1f7a5f3addbf32278086c4676abe3af3b44").unwrap();
        let cose = coset::CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x, y)
            .build()
            .to_vec()
            .unwrap();
        let token = r#"{"id":"bm9kZS1jcnlwdG8tY3JlZGVudGlhbA","rawId":"bm9kZS1jcnlwdG8tY3JlZGVudGlhbA","response":{"authenticatorData":"SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAABw","clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiUWtKQ1FrSkNRa0pDUWtKQ1FrSkNRa0pDUWtKQ1FrSkNRa0pDUWtKQ1FrSSIsIm9yaWdpbiI6Imh0dHA6Ly9sb2NhbGhvc3Q6NTE3MyIsImNyb3NzT3JpZ2luIjpmYWxzZX0","signature":"MEQCICFffgRykZjRc5NksvH7Srk5j84jvWYmVSlvD3NNGw_uAiBgru0G5xSns04orV2i2DRMudOGULKixjd2Elu2HIZPRw","userHandle":null},"type":"public-key","clientExtensionResults":{}}"#;
        let key = CredentialKey::from_cose(&cose).unwrap();
        assert_eq!(
            check_with(token, &key, &policy(), 6).unwrap(),
            Verified {
                counter: 7,
                user_verified: true
            }
        );
        assert_eq!(code(check_with(token, &key, &policy(), 7)), "WEBAUTHN_COUNTER_REPLAYED");
    }

    #[test]
    fn a_session_challenge_is_the_block_hash_then_the_session_key() {
        let block = B256::from([1; 32]);
        let challenge = session_challenge(&block, &[2; 32]);
        assert_eq!(challenge[..32], [1; 32]);
        assert_eq!(challenge[32..], [2; 32]);
        let mut pk = passkey();
        let token = pk.get(&challenge, ORIGIN);
        let assertion = Assertion::parse(&token).unwrap();
        assert_eq!(assertion.challenge(), challenge);
        assert!(assertion.verify(&policy(), &challenge, &key_of(&pk), 0).is_ok());
        let other = session_challenge(&block, &[3; 32]);
        assert_eq!(
            assertion.verify(&policy(), &other, &key_of(&pk), 0).unwrap_err(),
            WebauthnError::WrongChallenge
        );
    }

    /// Lit's derivation (`keccak256(toUtf8Bytes(rawId + ":lit"))`), computed with ethers v5.
    #[test]
    fn auth_method_id_is_lits() {
        assert_eq!(
            auth_method_id("9a8ImvW9lNNKy2SXC8dfZ4t0gKY8ldH8Ti-UN9ZT9nA").to_string(),
            "0x8b730898c018919b8923226b999848fab01cd2ec616b8fd08668f5e7379fa325"
        );
    }

    #[test]
    fn wrong_origin_is_refused() {
        let mut pk = passkey();
        for origin in [
            "https://evil.example",
            "http://localhost:5174",
            "http://localhost:5173/",
            "",
        ] {
            let token = pk.get(&BLOCK, origin);
            assert_eq!(code(check(&token, &pk, 0)), "WEBAUTHN_WRONG_ORIGIN", "{origin}");
        }
    }

    #[test]
    fn assertion_from_a_cross_origin_frame_is_refused() {
        let mut pk = passkey();
        let token = pk.assert(&Ceremony {
            cross_origin: true,
            ..Ceremony::new(&BLOCK, ORIGIN)
        });
        assert_eq!(code(check(&token, &pk, 0)), "WEBAUTHN_WRONG_ORIGIN");
    }

    #[test]
    fn replayed_counter_is_refused() {
        let mut pk = passkey();
        let token = pk.get(&BLOCK, ORIGIN);
        let stored = check(&token, &pk, 0).unwrap().counter;
        // The same assertion again.
        assert_eq!(code(check(&token, &pk, stored)), "WEBAUTHN_COUNTER_REPLAYED");
        // A fresh signature with the same counter, and with a lower one.
        for counter in [stored, stored - 1] {
            let token = pk.assert(&Ceremony {
                counter: Some(counter),
                ..Ceremony::new(&BLOCK, ORIGIN)
            });
            assert_eq!(code(check(&token, &pk, stored)), "WEBAUTHN_COUNTER_REPLAYED");
        }
    }

    #[test]
    fn counter_back_to_zero_is_refused() {
        let mut pk = passkey();
        let token = pk.assert(&Ceremony {
            counter: Some(0),
            ..Ceremony::new(&BLOCK, ORIGIN)
        });
        assert_eq!(
            check(&token, &pk, 9).unwrap_err(),
            WebauthnError::CounterReplayed { got: 0, last: 9 }
        );
    }

    #[test]
    fn passkey_without_counter_verifies_at_zero() {
        let mut pk = passkey().without_counter();
        for _ in 0..2 {
            let token = pk.get(&BLOCK, ORIGIN);
            assert_eq!(check(&token, &pk, 0).unwrap().counter, 0);
        }
    }

    #[test]
    fn counter_rule() {
        assert!(counter_advances(0, 0));
        assert!(counter_advances(0, 1));
        assert!(counter_advances(1, 2));
        assert!(counter_advances(1, u32::MAX));
        assert!(!counter_advances(1, 1));
        assert!(!counter_advances(2, 1));
        assert!(!counter_advances(1, 0));
        assert!(!counter_advances(u32::MAX, u32::MAX));
    }

    #[test]
    fn tampered_authenticator_data_is_refused() {
        let mut pk = passkey();
        let token = pk.get(&BLOCK, ORIGIN);
        // A higher counter, to get past a stored one without the authenticator.
        let raised = edited_bytes(&token, "authenticatorData", |d| d[36] = d[36].wrapping_add(100));
        assert_eq!(code(check(&raised, &pk, 0)), "WEBAUTHN_BAD_SIGNATURE");
        // The UV flag set on an assertion made without it.
        let token = pk.assert(&Ceremony {
            flags: FLAG_UP,
            ..Ceremony::new(&BLOCK, ORIGIN)
        });
        let verified = edited_bytes(&token, "authenticatorData", |d| d[32] |= FLAG_UV);
        assert_eq!(code(check(&verified, &pk, 0)), "WEBAUTHN_BAD_SIGNATURE");
        // Extension bytes appended.
        let longer = edited_bytes(&token, "authenticatorData", |d| d.push(0xa0));
        assert_eq!(code(check(&longer, &pk, 0)), "WEBAUTHN_BAD_SIGNATURE");
    }

    #[test]
    fn tampered_client_data_is_refused() {
        let mut pk = passkey();
        let token = pk.get(&BLOCK, ORIGIN);
        let extra = edited_bytes(&token, "clientDataJSON", |c| {
            let mut value: Value = serde_json::from_slice(c).unwrap();
            value["tokenBinding"] = serde_json::json!({"status": "present"});
            *c = value.to_string().into_bytes();
        });
        assert_eq!(code(check(&extra, &pk, 0)), "WEBAUTHN_BAD_SIGNATURE");
    }

    #[test]
    fn signature_by_another_key_is_refused() {
        let mut pk = passkey();
        let other = SoftPasskey::new([8; 32], RP);
        let token = pk.get(&BLOCK, ORIGIN);
        assert_eq!(code(check(&token, &other, 0)), "WEBAUTHN_BAD_SIGNATURE");
        // Another key's signature spliced into this passkey's assertion.
        let mut other = other;
        let theirs: Value = serde_json::from_str(&other.get(&BLOCK, ORIGIN)).unwrap();
        let spliced = edited(&token, |v| {
            v["response"]["signature"] = theirs["response"]["signature"].clone()
        });
        assert_eq!(code(check(&spliced, &pk, 0)), "WEBAUTHN_BAD_SIGNATURE");
    }

    #[test]
    fn signature_that_is_not_der_is_refused() {
        let mut pk = passkey();
        let token = pk.get(&BLOCK, ORIGIN);
        for edit in [
            (|s: &mut Vec<u8>| s.clear()) as fn(&mut Vec<u8>),
            |s| s.truncate(10),
            |s| s.push(0),
            |s| *s = vec![0x11; 64],
        ] {
            let bad = edited_bytes(&token, "signature", edit);
            assert_eq!(code(check(&bad, &pk, 0)), "WEBAUTHN_BAD_SIGNATURE");
        }
    }

    #[test]
    fn challenge_for_another_block_is_refused() {
        let mut pk = passkey();
        let token = pk.get(&[0x43; 32], ORIGIN);
        assert_eq!(code(check(&token, &pk, 0)), "WEBAUTHN_WRONG_CHALLENGE");
        let short = pk.get(&BLOCK[..31], ORIGIN);
        assert_eq!(code(check(&short, &pk, 0)), "WEBAUTHN_WRONG_CHALLENGE");
    }

    #[test]
    fn wrong_rp_id_is_refused() {
        let mut pk = passkey();
        for rp_id in ["evil.example", "localhost.", "LOCALHOST", ""] {
            let token = pk.assert(&Ceremony {
                rp_id: Some(rp_id),
                ..Ceremony::new(&BLOCK, ORIGIN)
            });
            assert_eq!(code(check(&token, &pk, 0)), "WEBAUTHN_WRONG_RP", "{rp_id:?}");
        }
    }

    #[test]
    fn user_not_present_is_refused() {
        let mut pk = passkey();
        for flags in [0, FLAG_UV] {
            let token = pk.assert(&Ceremony {
                flags,
                ..Ceremony::new(&BLOCK, ORIGIN)
            });
            assert_eq!(code(check(&token, &pk, 0)), "WEBAUTHN_USER_NOT_PRESENT");
        }
    }

    #[test]
    fn user_verification_is_enforced_when_required() {
        let mut pk = passkey();
        let token = pk.assert(&Ceremony {
            flags: FLAG_UP,
            ..Ceremony::new(&BLOCK, ORIGIN)
        });
        assert_eq!(
            check(&token, &pk, 0).unwrap(),
            Verified {
                counter: 1,
                user_verified: false
            }
        );
        let strict = Policy {
            require_user_verified: true,
            ..policy()
        };
        assert_eq!(
            code(check_with(&token, &key_of(&pk), &strict, 0)),
            "WEBAUTHN_USER_NOT_VERIFIED"
        );
        let token = pk.get(&BLOCK, ORIGIN);
        assert!(check_with(&token, &key_of(&pk), &strict, 1).unwrap().user_verified);
    }

    #[test]
    fn registration_client_data_is_refused() {
        let mut pk = passkey();
        for kind in ["webauthn.create", "payment.get", ""] {
            let token = pk.assert(&Ceremony {
                kind,
                ..Ceremony::new(&BLOCK, ORIGIN)
            });
            assert_eq!(code(check(&token, &pk, 0)), "WEBAUTHN_WRONG_TYPE");
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let mut pk = passkey();
        let token = pk.get(&BLOCK, ORIGIN);
        let cases: Vec<String> = vec![
            String::new(),
            "not json".into(),
            "[]".into(),
            "null".into(),
            "{}".into(),
            edited(&token, |v| v["type"] = "password".into()),
            edited(&token, |v| v["rawId"] = "".into()),
            edited(&token, |v| v["rawId"] = "a+b/".into()),
            edited(&token, |v| v["rawId"] = B64URL.encode([1; 1024]).into()),
            edited(&token, |v| v["rawId"] = 7.into()),
            edited(&token, |v| {
                v.as_object_mut().unwrap().remove("response").map(drop).unwrap()
            }),
            edited(&token, |v| v["response"]["authenticatorData"] = "@@@".into()),
            edited(&token, |v| v["response"]["clientDataJSON"] = "%".into()),
            edited(&token, |v| v["response"]["signature"] = Value::Null),
            edited_bytes(&token, "authenticatorData", |d| d.truncate(36)),
            edited_bytes(&token, "clientDataJSON", |c| c.truncate(c.len() / 2)),
            edited_bytes(&token, "clientDataJSON", |c| {
                *c = b"{\"type\":\"webauthn.get\"}".to_vec()
            }),
            edited_bytes(&token, "clientDataJSON", |c| *c = vec![0xff, 0xfe]),
            edited_bytes(&token, "clientDataJSON", |c| {
                let mut value: Value = serde_json::from_slice(c).unwrap();
                value["challenge"] = "!!".into();
                *c = value.to_string().into_bytes();
            }),
        ];
        for (i, bad) in cases.iter().enumerate() {
            assert_eq!(
                Assertion::parse(bad).unwrap_err().code(),
                "WEBAUTHN_MALFORMED",
                "case {i}: {bad}"
            );
        }
    }

    #[test]
    fn padded_base64_and_unknown_members_are_accepted() {
        let mut pk = passkey();
        let token = pk.get(&BLOCK, ORIGIN);
        let padded = edited(&token, |v| {
            let field = &mut v["response"]["signature"];
            let text = field.as_str().unwrap().to_owned();
            let pad = (4 - text.len() % 4) % 4;
            *field = format!("{text}{}", "=".repeat(pad)).into();
            v["somethingNew"] = serde_json::json!({"a": [1, 2]});
        });
        assert_eq!(check(&padded, &pk, 0).unwrap().counter, 1);
    }

    #[test]
    fn oversized_token_is_refused_before_parsing() {
        let mut pk = passkey();
        let token = pk.get(&BLOCK, ORIGIN);
        let huge = edited(&token, |v| v["padding"] = "x".repeat(MAX_TOKEN_BYTES).into());
        assert_eq!(
            Assertion::parse(&huge).unwrap_err(),
            WebauthnError::TooLarge {
                len: huge.len(),
                max: MAX_TOKEN_BYTES
            }
        );
        let deep = "[".repeat(MAX_TOKEN_BYTES);
        assert_eq!(Assertion::parse(&deep).unwrap_err().code(), "WEBAUTHN_MALFORMED");
    }

    fn cose(kty: iana::KeyType, params: Vec<(i64, coset::cbor::Value)>, alg: Option<iana::Algorithm>) -> Vec<u8> {
        let key = CoseKey {
            kty: KeyType::Assigned(kty),
            alg: alg.map(RegisteredLabelWithPrivate::Assigned),
            params: params.into_iter().map(|(l, v)| (Label::Int(l), v)).collect(),
            ..Default::default()
        };
        key.to_vec().unwrap()
    }

    #[test]
    fn unusable_credential_keys_are_refused() {
        use coset::cbor::Value as Cbor;
        let pk = passkey();
        let genuine = CoseKey::from_slice(&pk.cose_public_key()).unwrap();
        let coord = |label: iana::Ec2KeyParameter| {
            genuine
                .params
                .iter()
                .find(|(l, _)| *l == Label::Int(label as i64))
                .unwrap()
                .1
                .clone()
        };
        let (x, y) = (coord(iana::Ec2KeyParameter::X), coord(iana::Ec2KeyParameter::Y));
        let p256 = Cbor::from(iana::EllipticCurve::P_256 as u64);
        let ec2 = |params: Vec<(i64, Cbor)>| cose(iana::KeyType::EC2, params, Some(iana::Algorithm::ES256));
        // coset will not write a key with a label twice; ciborium will.
        let mut duplicated_y = Vec::new();
        let entries = [
            (1, Cbor::from(2)),
            (3, Cbor::from(-7)),
            (-1, p256.clone()),
            (-2, x.clone()),
            (-3, y.clone()),
            (-3, y.clone()),
        ];
        let map = Cbor::Map(entries.into_iter().map(|(l, v)| (Cbor::from(l), v)).collect());
        coset::cbor::ser::into_writer(&map, &mut duplicated_y).unwrap();
        let mut off_curve = x.as_bytes().unwrap().clone();
        off_curve[0] ^= 1;
        let cases = [
            Vec::new(),
            vec![0xa0],
            vec![0xff; 80],
            vec![0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            cose(
                iana::KeyType::OKP,
                vec![(-1, Cbor::from(6)), (-2, x.clone())],
                Some(iana::Algorithm::EdDSA),
            ),
            cose(
                iana::KeyType::EC2,
                vec![(-1, p256.clone()), (-2, x.clone()), (-3, y.clone())],
                Some(iana::Algorithm::ES384),
            ),
            ec2(vec![
                (-1, Cbor::from(iana::EllipticCurve::P_384 as u64)),
                (-2, x.clone()),
                (-3, y.clone()),
            ]),
            ec2(vec![(-1, p256.clone()), (-2, x.clone())]),
            ec2(vec![(-1, p256.clone()), (-2, x.clone()), (-3, Cbor::Bool(true))]),
            ec2(vec![
                (-1, p256.clone()),
                (-2, Cbor::Bytes(vec![1; 31])),
                (-3, y.clone()),
            ]),
            ec2(vec![(-1, p256.clone()), (-2, Cbor::Bytes(off_curve)), (-3, y.clone())]),
            duplicated_y,
            [pk.cose_public_key(), vec![0]].concat(),
            vec![0; MAX_COSE_KEY_BYTES + 1],
        ];
        for (i, bad) in cases.iter().enumerate() {
            assert_eq!(
                CredentialKey::from_cose(bad).unwrap_err().code(),
                "WEBAUTHN_BAD_KEY",
                "case {i}: {}",
                hex::encode(bad)
            );
        }
        // Without `alg` the key is still ES256 (EC2 on P-256 says so).
        assert!(CredentialKey::from_cose(&cose(iana::KeyType::EC2, vec![(-1, p256), (-2, x), (-3, y)], None)).is_ok());
    }

    #[test]
    fn errors_have_distinct_codes() {
        let errors = [
            WebauthnError::Malformed(String::new()),
            WebauthnError::TooLarge { len: 0, max: 0 },
            WebauthnError::WrongType(String::new()),
            WebauthnError::WrongChallenge,
            WebauthnError::NotForThisSession { unbound: true },
            WebauthnError::WrongOrigin {
                got: String::new(),
                cross_origin: false,
            },
            WebauthnError::WrongRp {
                expected: String::new(),
            },
            WebauthnError::UserNotPresent,
            WebauthnError::UserNotVerified,
            WebauthnError::BadKey(String::new()),
            WebauthnError::BadSignature,
            WebauthnError::CounterReplayed { got: 0, last: 0 },
        ];
        let codes: std::collections::BTreeSet<_> = errors.iter().map(WebauthnError::code).collect();
        assert_eq!(codes.len(), errors.len());
        assert!(codes.iter().all(|c| c.starts_with("WEBAUTHN_")));
    }
}
