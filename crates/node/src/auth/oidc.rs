//! OAuth and OpenID Connect auth methods: an ID token (a JWT) signed by an issuer the network
//! configures — Lit's Google JWT, type 6, and any other OIDC provider — and an opaque OAuth
//! access token checked by calling the provider's userinfo endpoint (Lit's Discord, type 4).
//!
//! **JWTs.** RS256 and ES256 only (never `none`, never an HMAC algorithm: a public key must not
//! double as a shared secret). The token's `iss` picks the configured issuer; its `kid` picks a
//! key of that issuer's JWKS, which the node fetches itself and keeps per issuer (bounded in
//! `[auth.oauth]`: at most `jwks_max_keys` keys of at most `jwks_max_bytes`, kept for the
//! response's `Cache-Control: max-age` clamped to `[jwks_min_ttl_secs, jwks_max_ttl_secs]`).
//! A `kid` not in the set makes the node fetch it again — the issuer rotated its keys — at
//! most once per `jwks_refetch_secs` per issuer, one request at a time; a failed fetch is not
//! retried for [`FAILURE_BACKOFF`]. The key's own type fixes the algorithm, so a token cannot
//! pick another one for it. Then the
//! signature, `exp` (with [`CLOCK_SKEW_SECS`]), `nbf`, `iat` not in the future, `iss`, and an
//! `aud` that is exactly one of the issuer's configured audiences. The auth method id is
//! `keccak256("{sub}:{aud}")`, as Lit derives it for type 6. A token presented for a session
//! grant must carry the session key (hex) as its `nonce` claim — the client sets it in the
//! authorization request — so a node that sees the token cannot buy a session for its own key.
//!
//! **Access tokens.** `GET {url}` with `Authorization: Bearer {token}`; a 2xx JSON answer names
//! the user (at `user_id_pointer`) and, where the provider says it, the application the token
//! was issued to (at `app_id_pointer`), which must be the configured `app_id` — otherwise a
//! token a user gave to any other application would open their PKPs here. The id is
//! `keccak256("{user id}:{app_id}")`, as Lit derives it for Discord. Answers, and refusals, are
//! remembered for `userinfo_cache_secs` (at most `userinfo_cache_entries`), by a hash of the
//! token, and the node calls the endpoints at most `userinfo_calls_per_sec` times a second in
//! all, so strangers posting made-up tokens cannot turn it into a client hammering the provider.
//! An access token names no session key, so one a node has seen could buy that node a session:
//! an endpoint's tokens buy sessions only where it opts in (`sessions = true`).
//!
//! Uses [`fetch`](super::fetch) for HTTP, [`limits`](super::limits) for the call budget and
//! [`crate::error`]; nothing else of the crate. The node holds one [`Oidc`] and calls
//! [`Oidc::verify`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigil_chain::alloy::primitives::keccak256;

use super::fetch::{check_url, FetchError, Fetcher};
use crate::error::{Error, Kind};

/// Lit's auth method type for a Google ID token; the default for a configured issuer.
pub const GOOGLE_JWT_TYPE: u64 = 6;

/// Lit's auth method type for a Discord access token.
pub const DISCORD_TYPE: u64 = 4;

/// Seconds a token's `exp`, `nbf` and `iat` may be off from this node's clock.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Longest token accepted, in bytes (ID tokens are a few hundred bytes to a few KiB).
pub const MAX_TOKEN_BYTES: usize = 16 << 10;

/// How long a failed JWKS fetch is answered from memory before the node tries again.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// Time to live of a JWKS whose response sets no `max-age` (then clamped like any other).
const DEFAULT_JWKS_TTL_SECS: u64 = 3600;

/// Smallest and largest RSA modulus accepted in a JWKS, in bits: below is forgeable, above only
/// makes verification slow.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// Auth method types with a meaning of their own (wallet, action, WebAuthn), which no issuer
/// or userinfo endpoint may take.
const RESERVED_TYPES: [u64; 3] = [1, 2, 3];

// ---------------------------------------------------------------------------------------------
// Configuration

/// `[[auth.oidc]]`: an OpenID Connect issuer whose ID tokens are an auth method.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` claim, exactly (e.g. `https://accounts.google.com`).
    pub issuer: String,
    /// Where the issuer publishes its keys (e.g. `https://www.googleapis.com/oauth2/v3/certs`):
    /// `https://`, or `http://` to a loopback host.
    pub jwks_url: String,
    /// The OAuth client ids whose tokens are accepted (the `aud` claim).
    pub audiences: Vec<String>,
    /// The auth method type its tokens are (default 6, Lit's Google JWT).
    #[serde(default = "default_jwt_type")]
    pub auth_method_type: u64,
}

fn default_jwt_type() -> u64 {
    GOOGLE_JWT_TYPE
}

/// `[[auth.userinfo]]`: an OAuth provider whose access tokens are an auth method, checked by
/// calling its userinfo endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserinfoConfig {
    /// The endpoint (e.g. `https://discord.com/api/oauth2/@me`): `https://`, or `http://` to a
    /// loopback host.
    pub url: String,
    /// The auth method type its tokens are (Lit's Discord is 4).
    pub auth_method_type: u64,
    /// The OAuth application (client) id: the second half of the auth method id.
    pub app_id: String,
    /// JSON pointer to the user id in the answer (default `/user/id`, Discord's
    /// `oauth2/@me`); a string or a number.
    #[serde(default = "default_user_pointer")]
    pub user_id_pointer: String,
    /// JSON pointer to the id of the application the token was issued to, which must equal
    /// `app_id` (default `/application/id`). Empty for a provider that does not say: then any
    /// token the provider accepts counts as one for `app_id`.
    #[serde(default = "default_app_pointer")]
    pub app_id_pointer: String,
    /// Whether its tokens may buy sessions (default false). An access token cannot name the
    /// session key it is for, so any node it is shown to could use it, for as long as the
    /// provider accepts it, to get a session of its own for the same PKP.
    #[serde(default)]
    pub sessions: bool,
}

fn default_user_pointer() -> String {
    "/user/id".into()
}

fn default_app_pointer() -> String {
    "/application/id".into()
}

/// `[auth.oauth]`: bounds of what the node fetches and keeps for OIDC issuers and userinfo
/// endpoints.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OauthLimits {
    /// Deadline of one JWKS or userinfo request, connect to last byte, in ms (default 5000).
    pub fetch_timeout_ms: u64,
    /// Largest JWKS response, in bytes (default 256 KiB).
    pub jwks_max_bytes: usize,
    /// Most keys in one JWKS (default 32).
    pub jwks_max_keys: usize,
    /// Shortest time a JWKS is kept, whatever its `max-age` (default 60 s).
    pub jwks_min_ttl_secs: u64,
    /// Longest time a JWKS is kept, whatever its `max-age` (default 1 day).
    pub jwks_max_ttl_secs: u64,
    /// Least time between two fetches of one issuer's JWKS for an unknown `kid` (default 30 s).
    pub jwks_refetch_secs: u64,
    /// Largest userinfo response, in bytes (default 64 KiB).
    pub userinfo_max_bytes: usize,
    /// How long a userinfo answer is reused for the same token, in seconds (default 60).
    pub userinfo_cache_secs: u64,
    /// Most userinfo answers remembered (default 4096).
    pub userinfo_cache_entries: usize,
    /// Most userinfo calls a second, all endpoints together (default 20, bursts of twice that).
    pub userinfo_calls_per_sec: u32,
    /// Most of them a second for tokens sent from one client address (an IPv4 address or an IPv6
    /// /64; default 5, bursts of twice that), so one address sending made-up tokens cannot spend
    /// the whole budget and turn away another's valid one.
    pub userinfo_calls_per_caller_per_sec: u32,
    /// Client addresses whose userinfo rate is remembered (default 4096; the idlest forgotten).
    pub userinfo_tracked_callers: usize,
}

impl Default for OauthLimits {
    fn default() -> Self {
        Self {
            fetch_timeout_ms: 5000,
            jwks_max_bytes: 256 << 10,
            jwks_max_keys: 32,
            jwks_min_ttl_secs: 60,
            jwks_max_ttl_secs: 86_400,
            jwks_refetch_secs: 30,
            userinfo_max_bytes: 64 << 10,
            userinfo_cache_secs: 60,
            userinfo_cache_entries: 4096,
            userinfo_calls_per_sec: 20,
            userinfo_calls_per_caller_per_sec: 5,
            userinfo_tracked_callers: 4096,
        }
    }
}

/// What an [`Oidc`] verifier checks tokens against: `[auth]`'s issuers (`[[auth.oidc]]`),
/// userinfo endpoints (`[[auth.userinfo]]`) and bounds (`[auth.oauth]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OidcConfig {
    /// OIDC issuers.
    pub oidc: Vec<IssuerConfig>,
    /// Userinfo endpoints.
    pub userinfo: Vec<UserinfoConfig>,
    /// Bounds.
    pub limits: OauthLimits,
}

impl OidcConfig {
    /// Checks the bounds and that every auth method type names one way to check a token: an
    /// issuer's audiences are disjoint from those of any other issuer of the same type (else one
    /// issuer could mint ids that belong to the other's users) unless both publish the same JWKS
    /// (one issuer under two names), and a userinfo type is its own.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("fetch_timeout_ms", self.limits.fetch_timeout_ms as usize),
            ("jwks_max_bytes", self.limits.jwks_max_bytes),
            ("jwks_max_keys", self.limits.jwks_max_keys),
            ("jwks_min_ttl_secs", self.limits.jwks_min_ttl_secs as usize),
            ("jwks_refetch_secs", self.limits.jwks_refetch_secs as usize),
            ("userinfo_max_bytes", self.limits.userinfo_max_bytes),
            ("userinfo_cache_entries", self.limits.userinfo_cache_entries),
            ("userinfo_calls_per_sec", self.limits.userinfo_calls_per_sec as usize),
            (
                "userinfo_calls_per_caller_per_sec",
                self.limits.userinfo_calls_per_caller_per_sec as usize,
            ),
            ("userinfo_tracked_callers", self.limits.userinfo_tracked_callers),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("auth.oauth.{key} must be at least 1"));
        }
        if self.limits.jwks_max_ttl_secs < self.limits.jwks_min_ttl_secs {
            return Err("auth.oauth.jwks_max_ttl_secs must be at least auth.oauth.jwks_min_ttl_secs".into());
        }
        let mut audiences: HashMap<u64, HashMap<&str, &str>> = HashMap::new();
        let mut issuers = HashSet::new();
        for issuer in &self.oidc {
            let name = &issuer.issuer;
            if name.is_empty() {
                return Err("auth.oidc: an issuer is empty".into());
            }
            if !issuers.insert(name.as_str()) {
                return Err(format!("auth.oidc: issuer {name} is listed twice"));
            }
            check_url(&issuer.jwks_url).map_err(|e| format!("auth.oidc {name}: jwks_url {e}"))?;
            if issuer.audiences.is_empty() || issuer.audiences.iter().any(String::is_empty) {
                return Err(format!(
                    "auth.oidc {name}: audiences must list at least one non-empty client id"
                ));
            }
            if RESERVED_TYPES.contains(&issuer.auth_method_type) {
                return Err(format!(
                    "auth.oidc {name}: auth_method_type {} is reserved",
                    issuer.auth_method_type
                ));
            }
            // Audiences are shared only by names of one issuer, which publish the same keys
            // (Google signs as both `https://accounts.google.com` and `accounts.google.com`).
            let taken = audiences.entry(issuer.auth_method_type).or_default();
            for aud in &issuer.audiences {
                match taken.insert(aud, &issuer.jwks_url) {
                    Some(jwks) if jwks != issuer.jwks_url.as_str() => {
                        return Err(format!(
                            "auth.oidc {name}: audience {aud} of type {} is already another issuer's",
                            issuer.auth_method_type
                        ))
                    }
                    _ => {}
                }
            }
        }
        let mut userinfo_types = HashSet::new();
        for endpoint in &self.userinfo {
            let t = endpoint.auth_method_type;
            check_url(&endpoint.url).map_err(|e| format!("auth.userinfo: url {e}"))?;
            if RESERVED_TYPES.contains(&t) || audiences.contains_key(&t) || !userinfo_types.insert(t) {
                return Err(format!(
                    "auth.userinfo {}: auth_method_type {t} is reserved or already taken",
                    endpoint.url
                ));
            }
            if endpoint.app_id.is_empty() {
                return Err(format!("auth.userinfo {}: app_id is empty", endpoint.url));
            }
            // The app id pointer may be empty (the provider does not say); the user's may not.
            let pointers = [
                ("user_id_pointer", &endpoint.user_id_pointer, false),
                ("app_id_pointer", &endpoint.app_id_pointer, true),
            ];
            for (key, pointer, may_be_empty) in pointers {
                let ok = pointer.starts_with('/') || (may_be_empty && pointer.is_empty());
                if !ok {
                    return Err(format!(
                        "auth.userinfo {}: {key} must be a JSON pointer such as /user/id",
                        endpoint.url
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a token was refused, or could not be checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// Not a JWT (three base64url parts of JSON), over [`MAX_TOKEN_BYTES`], or missing a claim.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// The header names an algorithm other than RS256 or ES256, or another one than its key's.
    #[error("alg {0} is not accepted: tokens are RS256 or ES256, as their issuer's key says")]
    AlgNotAllowed(String),
    /// The `iss` claim is no issuer this network configures.
    #[error("issuer {0:?} is not configured on this network")]
    WrongIssuer(String),
    /// The `aud` claim (or the application a userinfo endpoint names) is not configured.
    #[error("audience {audience:?} is not accepted for {issuer}")]
    WrongAudience {
        /// The issuer or userinfo URL.
        issuer: String,
        /// The audience found.
        audience: String,
    },
    /// `exp` has passed.
    #[error("the token expired at {exp} (now {now})")]
    Expired {
        /// The `exp` claim.
        exp: u64,
        /// This node's clock.
        now: u64,
    },
    /// `nbf` or `iat` is in the future.
    #[error("the token is not valid before {at} (now {now})")]
    NotYetValid {
        /// The `nbf` or `iat` claim.
        at: u64,
        /// This node's clock.
        now: u64,
    },
    /// The issuer's JWKS has no key with the token's `kid`, even fetched again.
    #[error("{issuer} publishes no key {kid:?}")]
    UnknownKey {
        /// The issuer.
        issuer: String,
        /// The `kid` header, if any.
        kid: Option<String>,
    },
    /// The signature does not verify against the issuer's key.
    #[error("the signature does not verify against {issuer}'s key {kid:?}")]
    BadSignature {
        /// The issuer.
        issuer: String,
        /// The key's `kid`.
        kid: Option<String>,
    },
    /// The JWKS or userinfo endpoint did not answer, or answered with an error status.
    #[error("{0}")]
    IssuerUnreachable(String),
    /// The JWKS or userinfo answer is too large or not what it should be.
    #[error("{0}")]
    BadIssuerResponse(String),
    /// The userinfo endpoint refused the access token (401 or 403).
    #[error("{url} refused the access token (status {status})")]
    TokenRejected {
        /// The endpoint.
        url: String,
        /// Its status.
        status: u16,
    },
    /// No issuer or userinfo endpoint has this auth method type.
    #[error("auth method type {0} is not configured on this network")]
    NotConfigured(u64),
    /// A token presented for a session grant does not name that session key as its `nonce`.
    #[error(
        "an ID token buys a session only for the key its nonce claim names: want nonce {want}, the token has {found:?}"
    )]
    NotForThisSession {
        /// The session key being granted.
        want: String,
        /// The token's `nonce`, if any.
        found: Option<String>,
    },
    /// This endpoint's access tokens do not buy sessions (`sessions` is off).
    #[error("access tokens of auth method type {0} do not buy sessions on this network: an access token names no session key, so the nodes it is shown to could reuse it")]
    NoSessions(u64),
    /// The node made as many userinfo calls as `userinfo_calls_per_sec` allows.
    #[error("too many access tokens to check right now; retry in {retry_after_secs} s")]
    Busy {
        /// Seconds until a call is allowed.
        retry_after_secs: u64,
    },
}

impl OidcError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "OIDC_MALFORMED",
            Self::AlgNotAllowed(_) => "OIDC_ALG_NOT_ALLOWED",
            Self::WrongIssuer(_) => "OIDC_WRONG_ISSUER",
            Self::WrongAudience { .. } => "OIDC_WRONG_AUDIENCE",
            Self::Expired { .. } => "OIDC_EXPIRED",
            Self::NotYetValid { .. } => "OIDC_NOT_YET_VALID",
            Self::UnknownKey { .. } => "OIDC_UNKNOWN_KEY",
            Self::BadSignature { .. } => "OIDC_BAD_SIGNATURE",
            Self::IssuerUnreachable(_) => "OIDC_ISSUER_UNREACHABLE",
            Self::BadIssuerResponse(_) => "OIDC_BAD_ISSUER_RESPONSE",
            Self::TokenRejected { .. } => "OIDC_TOKEN_REJECTED",
            Self::NotConfigured(_) => "OIDC_NOT_CONFIGURED",
            Self::NotForThisSession { .. } => "OIDC_NOT_FOR_THIS_SESSION",
            Self::NoSessions(_) => "OIDC_NO_SESSIONS",
            Self::Busy { .. } => "OIDC_BUSY",
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Self::IssuerUnreachable(_) | Self::BadIssuerResponse(_) => Kind::Upstream,
            Self::NotConfigured(_) => Kind::Invalid,
            Self::NoSessions(_) => Kind::Forbidden,
            Self::Busy { .. } => Kind::RateLimited,
            _ => Kind::Unauthenticated,
        }
    }
}

impl From<OidcError> for Error {
    fn from(e: OidcError) -> Self {
        let error = Error::new(e.kind(), e.code(), e.to_string());
        match e {
            OidcError::Busy { retry_after_secs } => error.with_retry_after(retry_after_secs),
            _ => error,
        }
    }
}

fn from_fetch(e: FetchError) -> OidcError {
    match e {
        FetchError::TooLarge { .. } => OidcError::BadIssuerResponse(e.to_string()),
        _ => OidcError::IssuerUnreachable(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Verified identities

/// A token that passed: who it names, as an auth method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The auth method type (6 for a Google-style JWT, the configured type otherwise).
    pub auth_method_type: u64,
    /// The auth method id PKP permissions list: `keccak256("{user_id}:{app_id}")`.
    pub id: [u8; 32],
    /// `sub`, or the user id a userinfo endpoint named.
    pub user_id: String,
    /// `aud`, or the configured `app_id`.
    pub app_id: String,
    /// When the token stops being valid (`exp`; for an access token, when the answer is
    /// forgotten), in seconds since the Unix epoch.
    pub expires_at: u64,
    /// What actions see of it (`Lit.Auth.authMethodContexts`): `authMethodType`, `userId`,
    /// `appId`, and for a JWT `iss`, `sub`, `aud`, and `email` / `emailVerified` when present.
    /// The same on every node (no fetch times), so every node's action sees the same value.
    pub context: serde_json::Value,
}

/// `keccak256("{user_id}:{app_id}")`: the auth method id Lit derives for Google JWTs (type 6,
/// `sub:aud`) and Discord (type 4, `user id:client id`).
pub fn auth_method_id(user_id: &str, app_id: &str) -> [u8; 32] {
    keccak256(format!("{user_id}:{app_id}").as_bytes()).0
}

// ---------------------------------------------------------------------------------------------
// Keys

/// A verification key from a JWKS, with the one algorithm it verifies.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

struct KeySet {
    keys: Vec<Key>,
    expires: Instant,
}

enum Found {
    Key(Key),
    /// The `kid` is there, for another algorithm.
    OtherAlg(Algorithm),
    Missing,
}

impl KeySet {
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Found {
        match kid {
            Some(kid) => match self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                Some(k) if k.alg == alg => Found::Key(k.clone()),
                Some(k) => Found::OtherAlg(k.alg),
                None => Found::Missing,
            },
            // No kid: only unambiguous when the set has one key for the algorithm.
            None => {
                let mut of_alg = self.keys.iter().filter(|k| k.alg == alg);
                match (of_alg.next(), of_alg.next()) {
                    (Some(k), None) => Found::Key(k.clone()),
                    _ => Found::Missing,
                }
            }
        }
    }
}

/// The key a JWK is, if it is one this module verifies with: RSA of 2048 to 4096 bits for
/// RS256, or P-256 for ES256, for signing, and not declared for another algorithm.
fn usable_key(jwk: &Jwk) -> Option<Key> {
    use jsonwebtoken::jwk::{KeyAlgorithm, PublicKeyUse};
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
            let leading = n.iter().position(|b| *b != 0).unwrap_or(n.len());
            let bytes = n.len() - leading;
            let bits = bytes * 8 - n.get(leading).map(|b| b.leading_zeros() as usize).unwrap_or(0);
            if !RSA_BITS.contains(&bits) {
                return None;
            }
            Algorithm::RS256
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    if !declared_ok {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// The keys of a JWKS document this module can use. Keys of other kinds are skipped; a
/// document over `max_keys` keys, or not a JWKS, is refused.
fn parse_jwks(url: &str, body: &[u8], max_keys: usize) -> Result<Vec<Key>, OidcError> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|e| OidcError::BadIssuerResponse(format!("{url}: not a JWKS: {e}")))?;
    if document.keys.len() > max_keys {
        return Err(OidcError::BadIssuerResponse(format!(
            "{url}: the JWKS has {} keys; at most {max_keys} are accepted",
            document.keys.len()
        )));
    }
    Ok(document
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .filter_map(|jwk| usable_key(&jwk))
        .collect())
}

/// `max-age` of a `Cache-Control` header, clamped to `[min, max]`; `no-store`/`no-cache` and
/// `max-age=0` mean `min`, no header means [`DEFAULT_JWKS_TTL_SECS`] (clamped).
fn ttl(cache_control: Option<&str>, min: u64, max: u64) -> Duration {
    let mut secs = DEFAULT_JWKS_TTL_SECS;
    for directive in cache_control.unwrap_or("").split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            secs = 0;
            break;
        }
        if let Some(value) = directive.strip_prefix("max-age=") {
            secs = value.trim_matches('"').parse().unwrap_or(0);
        }
    }
    Duration::from_secs(secs.clamp(min, max))
}

// ---------------------------------------------------------------------------------------------
// The verifier

#[derive(Default)]
struct FetchState {
    /// The last fetch made because a token named a kid the fresh set lacked.
    last_refetch: Option<Instant>,
    last_failure: Option<(Instant, OidcError)>,
}

struct Issuer {
    config: IssuerConfig,
    keys: Mutex<Option<Arc<KeySet>>>,
    /// Held while fetching, so one request fetches and the others wait for its result.
    fetching: tokio::sync::Mutex<FetchState>,
}

impl Issuer {
    fn current(&self, now: Instant) -> Option<Arc<KeySet>> {
        self.keys
            .lock()
            .ok()
            .and_then(|k| k.clone())
            .filter(|set| set.expires > now)
    }
}

/// Counters of what the verifier fetched and refused (exported as metrics).
#[derive(Debug, Default)]
pub struct OidcCounters {
    /// JWKS responses fetched and accepted.
    pub jwks_fetches: AtomicU64,
    /// JWKS fetches that failed or were refused.
    pub jwks_fetch_failures: AtomicU64,
    /// Userinfo calls made.
    pub userinfo_calls: AtomicU64,
    /// Access tokens answered from the userinfo cache.
    pub userinfo_cache_hits: AtomicU64,
    /// Access tokens not checked because their client address spent its share of the budget.
    pub userinfo_caller_refused: AtomicU64,
    /// Tokens refused (any reason).
    pub refused: AtomicU64,
}

/// A userinfo answer and when it came.
type Answer = (Instant, Result<Identity, OidcError>);

/// Checks ID tokens and access tokens against the configured issuers and endpoints; holds each
/// issuer's JWKS and the recent userinfo answers.
pub struct Oidc {
    config: OidcConfig,
    issuers: Vec<Issuer>,
    fetcher: Fetcher,
    /// Recent userinfo answers by token hash: who it named, or why the endpoint refused it.
    userinfo: Mutex<HashMap<[u8; 32], Answer>>,
    /// The budget of userinfo calls (one bucket).
    userinfo_budget: Mutex<super::limits::PrincipalLimits>,
    /// Its share per client address ([`super::caller`]).
    userinfo_per_caller: Mutex<super::limits::PrincipalLimits>,
    /// What it fetched and refused.
    pub counters: OidcCounters,
}

impl Oidc {
    /// A verifier for `config` (checked with [`OidcConfig::check`]).
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        config.check()?;
        let fetcher = Fetcher::new(Duration::from_millis(config.limits.fetch_timeout_ms))?;
        let issuers = config
            .oidc
            .iter()
            .map(|c| Issuer {
                config: c.clone(),
                keys: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(FetchState::default()),
            })
            .collect();
        let rate = config.limits.userinfo_calls_per_sec;
        let per_caller = super::limits::PrincipalLimits::new(
            config.limits.userinfo_calls_per_caller_per_sec,
            config.limits.userinfo_calls_per_caller_per_sec.saturating_mul(2),
            config.limits.userinfo_tracked_callers,
        );
        Ok(Self {
            config,
            issuers,
            fetcher,
            userinfo: Mutex::new(HashMap::new()),
            userinfo_budget: Mutex::new(super::limits::PrincipalLimits::new(rate, rate.saturating_mul(2), 1)),
            userinfo_per_caller: Mutex::new(per_caller),
            counters: OidcCounters::default(),
        })
    }

    /// Whether `auth_method_type` is one an issuer's ID tokens are.
    pub fn is_jwt_type(&self, auth_method_type: u64) -> bool {
        self.issuers
            .iter()
            .any(|i| i.config.auth_method_type == auth_method_type)
    }

    /// Whether `auth_method_type` is one a userinfo endpoint checks.
    pub fn is_access_token_type(&self, auth_method_type: u64) -> bool {
        self.config
            .userinfo
            .iter()
            .any(|u| u.auth_method_type == auth_method_type)
    }

    /// Checks an auth method of a configured type: an ID token for an issuer's type, an access
    /// token for a userinfo endpoint's. With `session_key` (hex), the token is presented to buy
    /// a session for that key: an ID token's `nonce` must name it, and an access token's
    /// endpoint must allow sessions.
    pub async fn verify(
        &self,
        auth_method_type: u64,
        token: &str,
        session_key: Option<&str>,
    ) -> Result<Identity, OidcError> {
        if self.is_jwt_type(auth_method_type) {
            self.counted(self.check_jwt(auth_method_type, token, session_key).await)
        } else {
            self.counted(
                self.check_access_token(auth_method_type, token, session_key.is_some())
                    .await,
            )
        }
    }

    fn counted(&self, result: Result<Identity, OidcError>) -> Result<Identity, OidcError> {
        if result.is_err() {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Checks an ID token of `auth_method_type` (see the module docs), not for a session, and
    /// returns who it names.
    pub async fn verify_jwt(&self, auth_method_type: u64, token: &str) -> Result<Identity, OidcError> {
        self.counted(self.check_jwt(auth_method_type, token, None).await)
    }

    async fn check_jwt(
        &self,
        auth_method_type: u64,
        token: &str,
        session_key: Option<&str>,
    ) -> Result<Identity, OidcError> {
        let malformed = |why: &str| OidcError::Malformed(why.to_string());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(OidcError::Malformed(format!("over {MAX_TOKEN_BYTES} bytes")));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a JWT has three parts separated by dots"));
        };
        let header = decode_part(header).ok_or_else(|| malformed("the header is not base64url JSON"))?;
        if header.get("crit").is_some() {
            return Err(malformed("critical header extensions (crit) are not supported"));
        }
        let alg = match header.get("alg").and_then(|a| a.as_str()) {
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some(other) => return Err(OidcError::AlgNotAllowed(other.to_string())),
            None => return Err(malformed("the header names no alg")),
        };
        let kid = match header.get("kid") {
            None => None,
            Some(serde_json::Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(malformed("kid is not a string")),
        };
        // The issuer is read before the signature is checked, only to pick whose keys to use:
        // the signature then covers it, and the validation below checks it again.
        let claims = decode_part(payload).ok_or_else(|| malformed("the payload is not base64url JSON"))?;
        let iss = claims
            .get("iss")
            .and_then(|i| i.as_str())
            .ok_or_else(|| malformed("no iss claim"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss && i.config.auth_method_type == auth_method_type)
            .ok_or_else(|| OidcError::WrongIssuer(iss.to_string()))?;
        let key = self.key(issuer, kid, alg).await?;

        let mut validation = Validation::new(alg);
        validation.leeway = CLOCK_SKEW_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[iss]);
        validation.set_audience(&issuer.config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let now = unix_now();
        let verified = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            let number = |name: &str| claims.get(name).and_then(|v| v.as_u64()).unwrap_or(0);
            match e.kind() {
                K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) | K::InvalidKeyFormat => {
                    OidcError::BadSignature {
                        issuer: iss.to_string(),
                        kid: key.kid.clone(),
                    }
                }
                K::InvalidAlgorithm => OidcError::AlgNotAllowed(format!("{alg:?}")),
                K::ExpiredSignature => OidcError::Expired {
                    exp: number("exp"),
                    now,
                },
                K::ImmatureSignature => OidcError::NotYetValid { at: number("nbf"), now },
                K::InvalidIssuer => OidcError::WrongIssuer(iss.to_string()),
                K::InvalidAudience => OidcError::WrongAudience {
                    issuer: iss.to_string(),
                    audience: claims.get("aud").map(|a| a.to_string()).unwrap_or_default(),
                },
                K::MissingRequiredClaim(claim) | K::InvalidClaimFormat(claim) => {
                    OidcError::Malformed(format!("the {claim} claim is missing or not of its type"))
                }
                other => OidcError::Malformed(format!("{other:?}")),
            }
        })?;
        let claims = verified.claims;
        if let Some(iat) = claims.get("iat") {
            let iat = iat
                .as_u64()
                .ok_or_else(|| malformed("iat is not a number of seconds"))?;
            if iat > now + CLOCK_SKEW_SECS {
                return Err(OidcError::NotYetValid { at: iat, now });
            }
        }
        let sub = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed("sub is empty"))?;
        // One audience: the id is `sub:aud`, and Lit's SDK and node read `aud` as one string.
        let aud = match claims.get("aud") {
            Some(serde_json::Value::String(aud)) => aud.as_str(),
            Some(serde_json::Value::Array(auds)) if auds.len() == 1 => {
                auds.first().and_then(|a| a.as_str()).ok_or_else(|| malformed("aud"))?
            }
            other => {
                return Err(OidcError::WrongAudience {
                    issuer: iss.to_string(),
                    audience: format!(
                        "{} (a token must name exactly one audience)",
                        other.cloned().unwrap_or_default()
                    ),
                })
            }
        };
        if let Some(key) = session_key {
            let want = key.trim_start_matches("0x").to_ascii_lowercase();
            let found = claims.get("nonce").and_then(|n| n.as_str());
            if found.map(|n| n.trim_start_matches("0x").to_ascii_lowercase()) != Some(want.clone()) {
                return Err(OidcError::NotForThisSession {
                    want,
                    found: found.map(str::to_owned),
                });
            }
        }
        let exp = claims.get("exp").and_then(|e| e.as_u64()).unwrap_or(0);
        let mut context = serde_json::json!({
            "authMethodType": auth_method_type,
            "userId": sub,
            "appId": aud,
            "iss": iss,
            "sub": sub,
            "aud": aud,
        });
        if let Some(map) = context.as_object_mut() {
            if let Some(email) = claims.get("email").and_then(|e| e.as_str()) {
                map.insert("email".into(), email.into());
            }
            match claims.get("email_verified") {
                Some(serde_json::Value::Bool(b)) => {
                    map.insert("emailVerified".into(), (*b).into());
                }
                Some(serde_json::Value::String(s)) => {
                    map.insert("emailVerified".into(), (s == "true").into());
                }
                _ => {}
            }
        }
        Ok(Identity {
            auth_method_type,
            id: auth_method_id(sub, aud),
            user_id: sub.to_string(),
            app_id: aud.to_string(),
            expires_at: exp,
            context,
        })
    }

    /// The key `kid` (or the one key for `alg` when the token names none) of `issuer`,
    /// fetching the JWKS when it is missing, expired, or lacks the kid (rotation; rate-limited).
    async fn key(&self, issuer: &Issuer, kid: Option<&str>, alg: Algorithm) -> Result<Key, OidcError> {
        let unknown = || OidcError::UnknownKey {
            issuer: issuer.config.issuer.clone(),
            kid: kid.map(str::to_string),
        };
        let other_alg = |key_alg: Algorithm| {
            OidcError::AlgNotAllowed(format!(
                "{alg:?} (the key {kid:?} is for {key_alg:?})",
                kid = kid.unwrap_or("")
            ))
        };
        if let Some(set) = issuer.current(Instant::now()) {
            match set.find(kid, alg) {
                Found::Key(key) => return Ok(key),
                Found::OtherAlg(a) => return Err(other_alg(a)),
                Found::Missing => {}
            }
        }
        let mut state = issuer.fetching.lock().await;
        let now = Instant::now();
        // Another request may have fetched while this one waited.
        let current = issuer.current(now);
        if let Some(set) = &current {
            match set.find(kid, alg) {
                Found::Key(key) => return Ok(key),
                Found::OtherAlg(a) => return Err(other_alg(a)),
                Found::Missing => {}
            }
        }
        if let Some((at, error)) = &state.last_failure {
            if now.duration_since(*at) < FAILURE_BACKOFF {
                return Err(error.clone());
            }
        }
        let refetch = Duration::from_secs(self.config.limits.jwks_refetch_secs);
        if current.is_some() {
            if state.last_refetch.is_some_and(|at| now.duration_since(at) < refetch) {
                return Err(unknown());
            }
            state.last_refetch = Some(now);
        }
        match self.fetch_jwks(&issuer.config).await {
            Ok(set) => {
                state.last_failure = None;
                self.counters.jwks_fetches.fetch_add(1, Ordering::Relaxed);
                let set = Arc::new(set);
                if let Ok(mut keys) = issuer.keys.lock() {
                    *keys = Some(set.clone());
                }
                match set.find(kid, alg) {
                    Found::Key(key) => Ok(key),
                    Found::OtherAlg(a) => Err(other_alg(a)),
                    Found::Missing => Err(unknown()),
                }
            }
            Err(error) => {
                self.counters.jwks_fetch_failures.fetch_add(1, Ordering::Relaxed);
                state.last_failure = Some((now, error.clone()));
                Err(error)
            }
        }
    }

    async fn fetch_jwks(&self, issuer: &IssuerConfig) -> Result<KeySet, OidcError> {
        let url = &issuer.jwks_url;
        let fetched = self
            .fetcher
            .get(url, None, self.config.limits.jwks_max_bytes)
            .await
            .map_err(from_fetch)?;
        if !(200..300).contains(&fetched.status) {
            return Err(OidcError::IssuerUnreachable(format!(
                "{url}: status {}",
                fetched.status
            )));
        }
        let keys = parse_jwks(url, &fetched.body, self.config.limits.jwks_max_keys)?;
        let ttl = ttl(
            fetched.cache_control.as_deref(),
            self.config.limits.jwks_min_ttl_secs,
            self.config.limits.jwks_max_ttl_secs,
        );
        tracing::debug!(issuer = %issuer.issuer, keys = keys.len(), ttl_secs = ttl.as_secs(), "fetched JWKS");
        Ok(KeySet {
            keys,
            expires: Instant::now() + ttl,
        })
    }

    /// Checks an access token of `auth_method_type` with its userinfo endpoint (see the module
    /// docs), not for a session, and returns who it names.
    pub async fn verify_access_token(&self, auth_method_type: u64, token: &str) -> Result<Identity, OidcError> {
        self.counted(self.check_access_token(auth_method_type, token, false).await)
    }

    async fn check_access_token(
        &self,
        auth_method_type: u64,
        token: &str,
        for_session: bool,
    ) -> Result<Identity, OidcError> {
        let endpoint = self
            .config
            .userinfo
            .iter()
            .find(|u| u.auth_method_type == auth_method_type)
            .ok_or(OidcError::NotConfigured(auth_method_type))?;
        if for_session && !endpoint.sessions {
            return Err(OidcError::NoSessions(auth_method_type));
        }
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(OidcError::Malformed(format!(
                "an access token is 1 to {MAX_TOKEN_BYTES} visible ASCII characters"
            )));
        }
        let cache_key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(auth_method_type.to_be_bytes());
            h.update(token.as_bytes());
            h.finalize().into()
        };
        let now = Instant::now();
        if let Some((at, answer)) = self.userinfo.lock().ok().and_then(|m| m.get(&cache_key).cloned()) {
            if now.duration_since(at) < Duration::from_secs(self.config.limits.userinfo_cache_secs) {
                self.counters.userinfo_cache_hits.fetch_add(1, Ordering::Relaxed);
                return answer;
            }
        }
        // The caller's share first: one address's made-up tokens stop at it, and leave the rest
        // of the budget to the others.
        let share = super::caller::address().and_then(|caller| {
            let mut table = self.userinfo_per_caller.lock().ok()?;
            table.spend(super::caller::key(caller), now).err()
        });
        if let Some(wait) = share {
            self.counters.userinfo_caller_refused.fetch_add(1, Ordering::Relaxed);
            return Err(OidcError::Busy {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            });
        }
        let budget = self.userinfo_budget.lock().ok().map(|mut b| b.spend([0; 32], now));
        if let Some(Err(wait)) = budget {
            return Err(OidcError::Busy {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            });
        }
        self.counters.userinfo_calls.fetch_add(1, Ordering::Relaxed);
        let answer = self.ask_userinfo(endpoint, auth_method_type, token).await;
        // Answers and refusals are remembered; an unreachable endpoint is asked again.
        let remember = match &answer {
            Ok(_) | Err(OidcError::TokenRejected { .. } | OidcError::WrongAudience { .. }) => true,
            Err(_) => false,
        };
        if remember {
            if let Ok(mut cache) = self.userinfo.lock() {
                if cache.len() >= self.config.limits.userinfo_cache_entries {
                    let max_age = Duration::from_secs(self.config.limits.userinfo_cache_secs);
                    cache.retain(|_, (at, _)| now.duration_since(*at) < max_age);
                    if cache.len() >= self.config.limits.userinfo_cache_entries {
                        cache.clear();
                    }
                }
                cache.insert(cache_key, (now, answer.clone()));
            }
        }
        answer
    }

    /// One call to `endpoint` with `token`.
    async fn ask_userinfo(
        &self,
        endpoint: &UserinfoConfig,
        auth_method_type: u64,
        token: &str,
    ) -> Result<Identity, OidcError> {
        let url = &endpoint.url;
        let fetched = self
            .fetcher
            .get(url, Some(token), self.config.limits.userinfo_max_bytes)
            .await
            .map_err(from_fetch)?;
        match fetched.status {
            200..=299 => {}
            401 | 403 => {
                return Err(OidcError::TokenRejected {
                    url: url.clone(),
                    status: fetched.status,
                })
            }
            status => return Err(OidcError::IssuerUnreachable(format!("{url}: status {status}"))),
        }
        let bad = |why: String| OidcError::BadIssuerResponse(format!("{url}: {why}"));
        let answer: serde_json::Value =
            serde_json::from_slice(&fetched.body).map_err(|e| bad(format!("not JSON: {e}")))?;
        let text = |pointer: &str| match answer.pointer(pointer) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let user_id = text(&endpoint.user_id_pointer)
            .ok_or_else(|| bad(format!("no user id at {}", endpoint.user_id_pointer)))?;
        if !endpoint.app_id_pointer.is_empty() {
            let app = text(&endpoint.app_id_pointer)
                .ok_or_else(|| bad(format!("no application id at {}", endpoint.app_id_pointer)))?;
            if app != endpoint.app_id {
                return Err(OidcError::WrongAudience {
                    issuer: url.clone(),
                    audience: app,
                });
            }
        }
        let app_id = endpoint.app_id.clone();
        let identity = Identity {
            auth_method_type,
            id: auth_method_id(&user_id, &app_id),
            context: serde_json::json!({
                "authMethodType": auth_method_type,
                "userId": user_id,
                "appId": app_id,
            }),
            user_id,
            app_id,
            expires_at: unix_now() + self.config.limits.userinfo_cache_secs,
        };
        Ok(identity)
    }

    /// Userinfo answers remembered now.
    pub fn userinfo_cached(&self) -> usize {
        self.userinfo.lock().map(|m| m.len()).unwrap_or(0)
    }
}

fn decode_part(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
