//! The verifier against a local issuer: an HTTP server on 127.0.0.1:0 serving a JWKS and a
//! userinfo endpoint, with RSA and P-256 keys made here signing real RS256/ES256 tokens. Each
//! test is an adversary trying one way in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use rand_chacha::rand_core::SeedableRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use super::*;

const ISS: &str = "https://issuer.example";
const AUD: &str = "client-1.apps.example";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---- keys

struct RsaKey {
    private: rsa::RsaPrivateKey,
    kid: String,
}

impl RsaKey {
    fn new(kid: &str, bits: usize, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let private = rsa::RsaPrivateKey::new(&mut rng, bits).expect("rsa key");
        Self {
            private,
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> Value {
        let public = self.private.to_public_key();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
        })
    }

    fn encoding(&self) -> EncodingKey {
        let der = self.private.to_pkcs1_der().expect("der");
        EncodingKey::from_rsa_der(der.as_bytes())
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding()).expect("encode")
    }
}

/// Three 2048-bit keys, made once for all tests (from fixed seeds).
fn rsa_keys() -> &'static [RsaKey; 3] {
    static KEYS: OnceLock<[RsaKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            RsaKey::new("key-a", 2048, 1),
            RsaKey::new("key-b", 2048, 2),
            RsaKey::new("key-c", 2048, 3),
        ]
    })
}

struct EcKey {
    private: p256::ecdsa::SigningKey,
    kid: String,
}

impl EcKey {
    fn new(kid: &str, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Self {
            private: p256::ecdsa::SigningKey::random(&mut rng),
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.private.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "kid": self.kid,
            "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
        })
    }

    fn sign(&self, claims: &Value) -> String {
        use p256::pkcs8::EncodePrivateKey;
        let der = self.private.to_pkcs8_der().expect("pkcs8");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(der.as_bytes())).expect("encode")
    }
}

fn claims() -> Value {
    let now = unix_now();
    json!({
        "iss": ISS, "aud": AUD, "sub": "110169484474386276334",
        "email": "user@example.com", "email_verified": true,
        "iat": now - 10, "exp": now + 3600,
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    if let Some(map) = claims.as_object_mut() {
        map.remove(key);
    }
    claims
}

// ---- the local issuer

#[derive(Default)]
struct Served {
    jwks: Mutex<Value>,
    cache_control: Mutex<Option<String>>,
    jwks_hits: AtomicUsize,
    delay_ms: AtomicU64,
    /// Serve this many bytes of JSON-looking padding, with a Content-Length.
    huge: AtomicUsize,
    /// Serve 1 MiB in chunks, without a Content-Length.
    huge_chunked: AtomicBool,
    status: AtomicU64,
    /// Userinfo answers by bearer token.
    users: Mutex<HashMap<String, Value>>,
    userinfo_hits: AtomicUsize,
}

struct LocalIssuer {
    url: String,
    served: Arc<Served>,
}

impl LocalIssuer {
    async fn start(keys: &[Value]) -> Self {
        let served = Arc::new(Served::default());
        *served.jwks.lock().expect("lock") = json!({ "keys": keys });
        served.status.store(200, Ordering::SeqCst);
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/userinfo", get(userinfo))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, served }
    }

    fn serve_keys(&self, keys: &[Value]) {
        *self.served.jwks.lock().expect("lock") = json!({ "keys": keys });
    }

    fn jwks_hits(&self) -> usize {
        self.served.jwks_hits.load(Ordering::SeqCst)
    }

    fn config(&self) -> OidcConfig {
        OidcConfig {
            oidc: vec![IssuerConfig {
                issuer: ISS.into(),
                jwks_url: format!("{}/jwks", self.url),
                audiences: vec![AUD.into(), "client-2".into()],
                auth_method_type: GOOGLE_JWT_TYPE,
            }],
            userinfo: vec![UserinfoConfig {
                url: format!("{}/userinfo", self.url),
                auth_method_type: DISCORD_TYPE,
                app_id: "1052874239658692668".into(),
                user_id_pointer: "/user/id".into(),
                app_id_pointer: "/application/id".into(),
                sessions: false,
            }],
            limits: OauthLimits {
                fetch_timeout_ms: 1000,
                ..OauthLimits::default()
            },
        }
    }

    fn verifier(&self) -> Oidc {
        Oidc::new(self.config()).expect("verifier")
    }
}

async fn jwks(State(served): State<Arc<Served>>) -> Response {
    served.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let delay = served.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = StatusCode::from_u16(served.status.load(Ordering::SeqCst) as u16).unwrap_or(StatusCode::OK);
    let huge = served.huge.load(Ordering::SeqCst);
    if huge > 0 {
        return (status, vec![b' '; huge]).into_response();
    }
    if served.huge_chunked.load(Ordering::SeqCst) {
        let chunks = (0..1024).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024]));
        return (status, axum::body::Body::from_stream(futures::stream::iter(chunks))).into_response();
    }
    let body = served.jwks.lock().expect("lock").to_string();
    let mut headers = HeaderMap::new();
    if let Some(cc) = served.cache_control.lock().expect("lock").clone() {
        headers.insert("cache-control", cc.parse().expect("header"));
    }
    (status, headers, body).into_response()
}

async fn userinfo(State(served): State<Arc<Served>>, headers: HeaderMap) -> Response {
    served.userinfo_hits.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match served.users.lock().expect("lock").get(token) {
        Some(answer) => (StatusCode::OK, answer.to_string()).into_response(),
        None => (StatusCode::UNAUTHORIZED, "{\"message\": \"401: Unauthorized\"}").into_response(),
    }
}

// ---- checks

/// Verifies `token` as type 6 and returns the refusal's code (panics if it was accepted).
async fn refused(oidc: &Oidc, token: &str) -> &'static str {
    match oidc.verify_jwt(GOOGLE_JWT_TYPE, token).await {
        Ok(identity) => panic!("accepted: {identity:?}"),
        Err(e) => e.code(),
    }
}

async fn one_key_issuer() -> (LocalIssuer, Oidc) {
    let issuer = LocalIssuer::start(&[rsa_keys()[0].jwk()]).await;
    let oidc = issuer.verifier();
    (issuer, oidc)
}

// ---- accepted tokens

#[tokio::test]
async fn rs256_token_names_sub_and_aud_as_lit_derives_them() {
    let (_issuer, oidc) = one_key_issuer().await;
    let identity = oidc
        .verify_jwt(GOOGLE_JWT_TYPE, &rsa_keys()[0].sign(&claims()))
        .await
        .expect("valid");
    let expected = keccak256(b"110169484474386276334:client-1.apps.example").0;
    assert_eq!(identity.id, expected);
    assert_eq!(identity.auth_method_type, 6);
    assert_eq!(identity.user_id, "110169484474386276334");
    assert_eq!(identity.app_id, AUD);
    assert_eq!(identity.context["iss"], ISS);
    assert_eq!(identity.context["email"], "user@example.com");
    assert_eq!(identity.context["emailVerified"], true);
    assert_eq!(identity.context["userId"], "110169484474386276334");
}

#[tokio::test]
async fn es256_token_is_accepted() {
    let ec = EcKey::new("ec-1", 7);
    let issuer = LocalIssuer::start(&[rsa_keys()[0].jwk(), ec.jwk()]).await;
    let oidc = issuer.verifier();
    let identity = oidc.verify_jwt(6, &ec.sign(&claims())).await.expect("valid");
    assert_eq!(identity.app_id, AUD);
}

#[tokio::test]
async fn a_one_audience_array_is_that_audience() {
    let (_issuer, oidc) = one_key_issuer().await;
    let token = rsa_keys()[0].sign(&with(claims(), "aud", json!(["client-2"])));
    let identity = oidc.verify_jwt(6, &token).await.expect("valid");
    assert_eq!(identity.app_id, "client-2");
}

#[tokio::test]
async fn the_jwks_is_fetched_once_and_kept() {
    let (issuer, oidc) = one_key_issuer().await;
    for _ in 0..3 {
        oidc.verify_jwt(6, &rsa_keys()[0].sign(&claims())).await.expect("valid");
    }
    assert_eq!(issuer.jwks_hits(), 1);
}

#[tokio::test]
async fn concurrent_first_tokens_fetch_the_jwks_once() {
    let (issuer, oidc) = one_key_issuer().await;
    issuer.served.delay_ms.store(100, Ordering::SeqCst);
    let token = rsa_keys()[0].sign(&claims());
    let runs = (0..8).map(|_| oidc.verify_jwt(6, &token));
    for result in futures::future::join_all(runs).await {
        result.expect("valid");
    }
    assert_eq!(issuer.jwks_hits(), 1);
}

// ---- the adversary's tokens

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (_issuer, oidc) = one_key_issuer().await;
    let now = unix_now();
    let token = rsa_keys()[0].sign(&with(claims(), "exp", json!(now - 2 * CLOCK_SKEW_SECS)));
    assert_eq!(refused(&oidc, &token).await, "OIDC_EXPIRED");
}

#[tokio::test]
async fn a_token_just_inside_the_clock_skew_is_accepted() {
    let (_issuer, oidc) = one_key_issuer().await;
    let token = rsa_keys()[0].sign(&with(claims(), "exp", json!(unix_now() - CLOCK_SKEW_SECS / 2)));
    oidc.verify_jwt(6, &token).await.expect("within the skew");
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let (_issuer, oidc) = one_key_issuer().await;
    let token = rsa_keys()[0].sign(&with(claims(), "aud", json!("someone-elses-app")));
    assert_eq!(refused(&oidc, &token).await, "OIDC_WRONG_AUDIENCE");
    // Ours among others: the id would be ambiguous.
    let token = rsa_keys()[0].sign(&with(claims(), "aud", json!([AUD, "someone-elses-app"])));
    assert_eq!(refused(&oidc, &token).await, "OIDC_WRONG_AUDIENCE");
    let token = rsa_keys()[0].sign(&without(claims(), "aud"));
    assert_eq!(refused(&oidc, &token).await, "OIDC_MALFORMED");
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let (issuer, oidc) = one_key_issuer().await;
    let token = rsa_keys()[0].sign(&with(claims(), "iss", json!("https://evil.example")));
    assert_eq!(refused(&oidc, &token).await, "OIDC_WRONG_ISSUER");
    let token = rsa_keys()[0].sign(&without(claims(), "iss"));
    assert_eq!(refused(&oidc, &token).await, "OIDC_MALFORMED");
    // The issuer is configured for type 6, not for another type.
    let err = oidc
        .verify_jwt(7, &rsa_keys()[0].sign(&claims()))
        .await
        .expect_err("type 7");
    assert_eq!(err.code(), "OIDC_WRONG_ISSUER");
    assert_eq!(issuer.jwks_hits(), 0, "no fetch for a token no issuer claims");
}

#[tokio::test]
async fn a_token_signed_by_a_key_not_in_the_jwks_is_refused() {
    let (issuer, oidc) = one_key_issuer().await;
    // Another key under the JWKS key's kid: the signature fails.
    let forged = rsa_keys()[1].sign_as("key-a", &claims());
    assert_eq!(refused(&oidc, &forged).await, "OIDC_BAD_SIGNATURE");
    // Its own kid: unknown, even after the one refetch it causes.
    let other = rsa_keys()[1].sign(&claims());
    assert_eq!(refused(&oidc, &other).await, "OIDC_UNKNOWN_KEY");
    assert_eq!(issuer.jwks_hits(), 2);
    // More unknown kids within jwks_refetch_secs fetch nothing more.
    for _ in 0..5 {
        assert_eq!(refused(&oidc, &rsa_keys()[2].sign(&claims())).await, "OIDC_UNKNOWN_KEY");
    }
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let (_issuer, oidc) = one_key_issuer().await;
    let token = rsa_keys()[0].sign(&claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let evil = b64(with(claims(), "sub", json!("victim")).to_string().as_bytes());
    parts[1] = &evil;
    assert_eq!(refused(&oidc, &parts.join(".")).await, "OIDC_BAD_SIGNATURE");
}

#[tokio::test]
async fn hs256_with_the_rsa_public_key_as_secret_is_refused() {
    let (issuer, oidc) = one_key_issuer().await;
    let public = rsa_keys()[0].private.to_public_key();
    for secret in [
        rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&public)
            .expect("der")
            .into_vec(),
        rsa_keys()[0].jwk()["n"].as_str().expect("n").as_bytes().to_vec(),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("key-a".into());
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&secret)).expect("hs");
            assert_eq!(refused(&oidc, &token).await, "OIDC_ALG_NOT_ALLOWED");
        }
    }
    assert_eq!(issuer.jwks_hits(), 0);
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_refused() {
    let (_issuer, oidc) = one_key_issuer().await;
    let payload = b64(claims().to_string().as_bytes());
    for alg in ["none", "None", "RS384", "PS256", "ES384", "EdDSA", ""] {
        let header = b64(json!({"alg": alg, "kid": "key-a", "typ": "JWT"}).to_string().as_bytes());
        for signature in ["", "AAAA"] {
            let token = format!("{header}.{payload}.{signature}");
            assert_eq!(refused(&oidc, &token).await, "OIDC_ALG_NOT_ALLOWED", "alg {alg:?}");
        }
    }
    let header = b64(json!({"kid": "key-a"}).to_string().as_bytes());
    assert_eq!(
        refused(&oidc, &format!("{header}.{payload}.AAAA")).await,
        "OIDC_MALFORMED"
    );
}

#[tokio::test]
async fn a_token_cannot_choose_es256_for_an_rsa_key() {
    let (_issuer, oidc) = one_key_issuer().await;
    let ec = EcKey::new("key-a", 9);
    assert_eq!(refused(&oidc, &ec.sign(&claims())).await, "OIDC_ALG_NOT_ALLOWED");
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let (_issuer, oidc) = one_key_issuer().await;
    let later = unix_now() + 10 * CLOCK_SKEW_SECS;
    let token = rsa_keys()[0].sign(&with(claims(), "nbf", json!(later)));
    assert_eq!(refused(&oidc, &token).await, "OIDC_NOT_YET_VALID");
    let token = rsa_keys()[0].sign(&with(claims(), "iat", json!(later)));
    assert_eq!(refused(&oidc, &token).await, "OIDC_NOT_YET_VALID");
}

#[tokio::test]
async fn required_claims_must_be_there() {
    let (_issuer, oidc) = one_key_issuer().await;
    for claim in ["exp", "sub"] {
        let token = rsa_keys()[0].sign(&without(claims(), claim));
        assert_eq!(refused(&oidc, &token).await, "OIDC_MALFORMED", "without {claim}");
    }
    let token = rsa_keys()[0].sign(&with(claims(), "sub", json!("")));
    assert_eq!(refused(&oidc, &token).await, "OIDC_MALFORMED");
    let token = rsa_keys()[0].sign(&with(claims(), "exp", json!("tomorrow")));
    assert_eq!(refused(&oidc, &token).await, "OIDC_MALFORMED");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_accepted() {
    let (issuer, oidc) = one_key_issuer().await;
    oidc.verify_jwt(6, &rsa_keys()[0].sign(&claims())).await.expect("key a");
    // The issuer rotates: key b joins.
    issuer.serve_keys(&[rsa_keys()[0].jwk(), rsa_keys()[1].jwk()]);
    oidc.verify_jwt(6, &rsa_keys()[1].sign(&claims())).await.expect("key b");
    assert_eq!(issuer.jwks_hits(), 2);
    oidc.verify_jwt(6, &rsa_keys()[1].sign(&claims()))
        .await
        .expect("key b again");
    oidc.verify_jwt(6, &rsa_keys()[0].sign(&claims()))
        .await
        .expect("key a still");
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn weak_and_foreign_keys_in_the_jwks_are_ignored() {
    let weak = RsaKey::new("weak", 1024, 11);
    let mut hmac = json!({"kty": "oct", "kid": "oct", "k": b64(b"secret")});
    let mut rs384 = rsa_keys()[1].jwk();
    rs384["alg"] = json!("RS384");
    let mut enc = rsa_keys()[2].jwk();
    enc["use"] = json!("enc");
    let issuer = LocalIssuer::start(&[weak.jwk(), hmac.take(), rs384, enc, json!({"kty": "nonsense"})]).await;
    let oidc = issuer.verifier();
    assert_eq!(refused(&oidc, &weak.sign(&claims())).await, "OIDC_UNKNOWN_KEY");
    assert_eq!(refused(&oidc, &rsa_keys()[1].sign(&claims())).await, "OIDC_UNKNOWN_KEY");
    assert_eq!(refused(&oidc, &rsa_keys()[2].sign(&claims())).await, "OIDC_UNKNOWN_KEY");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("oct".into());
    let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(b"secret")).expect("hs");
    assert_eq!(refused(&oidc, &token).await, "OIDC_ALG_NOT_ALLOWED");
}

#[tokio::test]
async fn without_a_kid_only_a_single_key_is_used() {
    let key = &rsa_keys()[0];
    let no_kid =
        |claims: &Value| jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key.encoding()).expect("encode");
    let (_issuer, oidc) = one_key_issuer().await;
    oidc.verify_jwt(6, &no_kid(&claims())).await.expect("the one key");
    let issuer = LocalIssuer::start(&[rsa_keys()[0].jwk(), rsa_keys()[1].jwk()]).await;
    let oidc = issuer.verifier();
    assert_eq!(refused(&oidc, &no_kid(&claims())).await, "OIDC_UNKNOWN_KEY");
}

#[tokio::test]
async fn malformed_tokens_are_refused_without_panicking() {
    let (issuer, oidc) = one_key_issuer().await;
    let header = b64(json!({"alg": "RS256", "kid": "key-a"}).to_string().as_bytes());
    let payload = b64(claims().to_string().as_bytes());
    let mut tokens = vec![
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        format!("{header}.{payload}"),
        format!("{header}.{payload}.sig.extra"),
        format!("{header}.!!!.sig"),
        format!("{header}.{}.sig", b64(b"[1,2,3]")),
        format!("{header}.{}.sig", b64(b"{\"iss\": 5}")),
        format!("{}.{payload}.sig", b64(b"not json")),
        format!(
            "{}.{payload}.sig",
            b64(json!({"alg": "RS256", "kid": 5}).to_string().as_bytes())
        ),
        format!(
            "{}.{payload}.sig",
            b64(json!({"alg": "RS256", "crit": ["exp"]}).to_string().as_bytes())
        ),
        format!("{header}.{payload}.%%%"),
        format!("{header}.{payload}.{}", b64(&[0u8; 4096])),
        "x".repeat(MAX_TOKEN_BYTES + 1),
        "\u{0}\u{ffff}.é.☃".into(),
    ];
    // Random bytes and random base64 parts, from a fixed seed.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    for len in 0..64 {
        let mut bytes = vec![0u8; len * 7];
        rand_chacha::rand_core::RngCore::fill_bytes(&mut rng, &mut bytes);
        tokens.push(String::from_utf8_lossy(&bytes).into_owned());
        tokens.push(format!("{header}.{}.{}", b64(&bytes), b64(&bytes)));
        tokens.push(format!("{}.{payload}.{}", b64(&bytes), b64(&bytes)));
    }
    for token in &tokens {
        let code = refused(&oidc, token).await;
        assert!(
            matches!(code, "OIDC_MALFORMED" | "OIDC_ALG_NOT_ALLOWED" | "OIDC_BAD_SIGNATURE"),
            "{token:?}: {code}"
        );
    }
    assert!(issuer.jwks_hits() <= 1);
}

// ---- a hostile or broken issuer

#[tokio::test]
async fn a_huge_jwks_is_cut_off() {
    let (issuer, oidc) = one_key_issuer().await;
    issuer.served.huge.store(4 << 20, Ordering::SeqCst);
    assert_eq!(
        refused(&oidc, &rsa_keys()[0].sign(&claims())).await,
        "OIDC_BAD_ISSUER_RESPONSE"
    );

    let (issuer, oidc) = one_key_issuer().await;
    issuer.served.huge_chunked.store(true, Ordering::SeqCst);
    assert_eq!(
        refused(&oidc, &rsa_keys()[0].sign(&claims())).await,
        "OIDC_BAD_ISSUER_RESPONSE"
    );
}

#[tokio::test]
async fn a_jwks_with_too_many_keys_is_refused() {
    let many: Vec<Value> = (0..40)
        .map(|i| with(rsa_keys()[0].jwk(), "kid", json!(format!("k{i}"))))
        .collect();
    let issuer = LocalIssuer::start(&many).await;
    let oidc = issuer.verifier();
    assert_eq!(
        refused(&oidc, &rsa_keys()[0].sign_as("k1", &claims())).await,
        "OIDC_BAD_ISSUER_RESPONSE"
    );
}

#[tokio::test]
async fn a_slow_issuer_times_out_and_is_not_asked_again_at_once() {
    let (issuer, oidc) = one_key_issuer().await;
    issuer.served.delay_ms.store(5_000, Ordering::SeqCst);
    let started = std::time::Instant::now();
    assert_eq!(
        refused(&oidc, &rsa_keys()[0].sign(&claims())).await,
        "OIDC_ISSUER_UNREACHABLE"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by fetch_timeout_ms"
    );
    // Within the failure back-off the same answer comes from memory.
    let started = std::time::Instant::now();
    assert_eq!(
        refused(&oidc, &rsa_keys()[0].sign(&claims())).await,
        "OIDC_ISSUER_UNREACHABLE"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(issuer.jwks_hits(), 1);
}

#[tokio::test]
async fn an_issuer_answering_an_error_status_or_nothing_is_unreachable() {
    let (issuer, oidc) = one_key_issuer().await;
    issuer.served.status.store(500, Ordering::SeqCst);
    assert_eq!(
        refused(&oidc, &rsa_keys()[0].sign(&claims())).await,
        "OIDC_ISSUER_UNREACHABLE"
    );

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/jwks", closed.local_addr().expect("addr"));
    drop(closed);
    let mut config = issuer.config();
    config.oidc[0].jwks_url = url;
    let oidc = Oidc::new(config).expect("verifier");
    assert_eq!(
        refused(&oidc, &rsa_keys()[0].sign(&claims())).await,
        "OIDC_ISSUER_UNREACHABLE"
    );
}

#[test]
fn cache_control_max_age_is_honoured_within_bounds() {
    let secs = |cc: Option<&str>| ttl(cc, 60, 86_400).as_secs();
    assert_eq!(secs(Some("public, max-age=19845, must-revalidate")), 19_845);
    assert_eq!(secs(Some("max-age=5")), 60);
    assert_eq!(secs(Some("max-age=999999999")), 86_400);
    assert_eq!(secs(Some("no-store")), 60);
    assert_eq!(secs(Some("max-age=junk")), 60);
    assert_eq!(secs(None), 3600);
}

#[tokio::test]
async fn the_jwks_expires_with_its_max_age() {
    let (issuer, oidc) = one_key_issuer().await;
    *issuer.served.cache_control.lock().expect("lock") = Some("max-age=0".into());
    let mut config = issuer.config();
    config.limits.jwks_min_ttl_secs = 1;
    let oidc_short = Oidc::new(config).expect("verifier");
    oidc_short
        .verify_jwt(6, &rsa_keys()[0].sign(&claims()))
        .await
        .expect("valid");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while issuer.jwks_hits() < 2 && std::time::Instant::now() < deadline {
        oidc_short
            .verify_jwt(6, &rsa_keys()[0].sign(&claims()))
            .await
            .expect("valid");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(issuer.jwks_hits(), 2, "fetched again after the TTL");
    drop(oidc);
}

// ---- access tokens (userinfo)

fn discord_answer(user: &str, app: &str) -> Value {
    json!({"application": {"id": app, "name": "app"}, "user": {"id": user, "username": "u"}, "scopes": ["identify"]})
}

#[tokio::test]
async fn an_access_token_names_the_user_as_lit_derives_discord_ids() {
    let issuer = LocalIssuer::start(&[]).await;
    issuer.served.users.lock().expect("lock").insert(
        "good-token".into(),
        discord_answer("80351110224678912", "1052874239658692668"),
    );
    let oidc = issuer.verifier();
    let identity = oidc.verify_access_token(4, "good-token").await.expect("valid");
    assert_eq!(identity.id, keccak256(b"80351110224678912:1052874239658692668").0);
    assert_eq!(identity.context["userId"], "80351110224678912");
    // Remembered: a second check within userinfo_cache_secs asks nobody.
    oidc.verify_access_token(4, "good-token").await.expect("cached");
    assert_eq!(issuer.served.userinfo_hits.load(Ordering::SeqCst), 1);
    assert!(oidc.verify(4, "good-token", None).await.is_ok());
}

// ---- tokens presented for a session grant

#[tokio::test]
async fn an_id_token_buys_a_session_only_for_the_key_its_nonce_names() {
    let issuer = LocalIssuer::start(&[rsa_keys()[0].jwk()]).await;
    let oidc = issuer.verifier();
    let mine = "ab".repeat(32);
    let bound = rsa_keys()[0].sign(&with(claims(), "nonce", json!(mine.to_uppercase())));
    oidc.verify(6, &bound, Some(&mine)).await.expect("bound to this key");
    oidc.verify(6, &bound, Some(&format!("0x{mine}")))
        .await
        .expect("0x and letter case do not matter");
    // The node the token was shown to tries it for its own session key.
    let theirs = "cd".repeat(32);
    let err = oidc.verify(6, &bound, Some(&theirs)).await.expect_err("another key");
    assert_eq!(err.code(), "OIDC_NOT_FOR_THIS_SESSION");
    // A token with no nonce names no session at all; it still names its user.
    let unbound = rsa_keys()[0].sign(&claims());
    let err = oidc.verify(6, &unbound, Some(&mine)).await.expect_err("no nonce");
    assert_eq!(err.code(), "OIDC_NOT_FOR_THIS_SESSION");
    oidc.verify(6, &unbound, None).await.expect("identifies");
}

#[tokio::test]
async fn access_tokens_buy_sessions_only_where_the_endpoint_allows_it() {
    let issuer = LocalIssuer::start(&[]).await;
    issuer.served.users.lock().expect("lock").insert(
        "good-token".into(),
        discord_answer("80351110224678912", "1052874239658692668"),
    );
    let session = "ab".repeat(32);
    let oidc = issuer.verifier();
    let err = oidc
        .verify(4, "good-token", Some(&session))
        .await
        .expect_err("sessions off");
    assert_eq!(err.code(), "OIDC_NO_SESSIONS");
    assert_eq!(
        issuer.served.userinfo_hits.load(Ordering::SeqCst),
        0,
        "refused before asking"
    );
    let mut config = issuer.config();
    config.userinfo[0].sessions = true;
    let oidc = Oidc::new(config).expect("verifier");
    oidc.verify(4, "good-token", Some(&session)).await.expect("opted in");
}

#[tokio::test]
async fn made_up_access_tokens_cost_the_provider_one_call_each_within_a_budget() {
    let issuer = LocalIssuer::start(&[]).await;
    let mut config = issuer.config();
    config.limits.userinfo_calls_per_sec = 1;
    let oidc = Oidc::new(config).expect("verifier");
    let hits = || issuer.served.userinfo_hits.load(Ordering::SeqCst);
    // The same refused token again is answered from memory.
    for _ in 0..5 {
        let err = oidc.verify_access_token(4, "made-up-1").await.expect_err("refused");
        assert_eq!(err.code(), "OIDC_TOKEN_REJECTED");
    }
    assert_eq!(hits(), 1);
    // Fresh ones spend the budget (a burst of 2 at 1 a second), then wait.
    oidc.verify_access_token(4, "made-up-2").await.expect_err("refused");
    let err = oidc.verify_access_token(4, "made-up-3").await.expect_err("over budget");
    assert_eq!(err.code(), "OIDC_BUSY");
    assert_eq!(hits(), 2, "no call over the budget");
    let error = crate::error::Error::from(err);
    assert_eq!(error.kind(), crate::error::Kind::RateLimited);
    assert!(error.retry_after().is_some());
}

/// The adversary: one client address sending made-up access tokens as fast as it can, to spend
/// the node-wide userinfo budget so that another address's valid token is turned away.
#[tokio::test]
async fn made_up_access_tokens_from_one_address_do_not_turn_away_another_addresss_valid_one() {
    let issuer = LocalIssuer::start(&[]).await;
    issuer.served.users.lock().expect("lock").insert(
        "valid".into(),
        discord_answer("80351110224678912", "1052874239658692668"),
    );
    let mut config = issuer.config();
    config.limits.userinfo_calls_per_sec = 4;
    config.limits.userinfo_calls_per_caller_per_sec = 1;
    let oidc = Oidc::new(config).expect("verifier");
    let attacker: std::net::IpAddr = "10.0.0.66".parse().expect("ip");
    let victim: std::net::IpAddr = "10.0.0.7".parse().expect("ip");
    let mut busy = 0;
    for i in 0..50 {
        let token = format!("made-up-{i}");
        let answer = crate::auth::caller::scope(attacker, oidc.verify_access_token(4, &token)).await;
        if answer.expect_err("made up").code() == "OIDC_BUSY" {
            busy += 1;
        }
    }
    // The attacker's share is a burst of 2: the other 48 never reached the provider.
    assert_eq!(busy, 48);
    assert_eq!(issuer.served.userinfo_hits.load(Ordering::SeqCst), 2);
    assert_eq!(oidc.counters.userinfo_caller_refused.load(Ordering::Relaxed), 48);
    let identity = crate::auth::caller::scope(victim, oidc.verify_access_token(4, "valid"))
        .await
        .expect("the victim's valid token is checked");
    assert_eq!(identity.auth_method_type, 4);
}

#[tokio::test]
async fn an_access_token_for_another_application_is_refused() {
    let issuer = LocalIssuer::start(&[]).await;
    issuer
        .served
        .users
        .lock()
        .expect("lock")
        .insert("phished".into(), discord_answer("80351110224678912", "999"));
    let oidc = issuer.verifier();
    let err = oidc.verify_access_token(4, "phished").await.expect_err("other app");
    assert_eq!(err.code(), "OIDC_WRONG_AUDIENCE");
}

#[tokio::test]
async fn a_rejected_or_odd_access_token_is_refused() {
    let issuer = LocalIssuer::start(&[]).await;
    issuer
        .served
        .users
        .lock()
        .expect("lock")
        .insert("no-user".into(), json!({"application": {"id": "1052874239658692668"}}));
    let oidc = issuer.verifier();
    let code = |r: Result<Identity, OidcError>| r.expect_err("refused").code();
    assert_eq!(
        code(oidc.verify_access_token(4, "unknown").await),
        "OIDC_TOKEN_REJECTED"
    );
    assert_eq!(
        code(oidc.verify_access_token(4, "no-user").await),
        "OIDC_BAD_ISSUER_RESPONSE"
    );
    assert_eq!(code(oidc.verify_access_token(4, "").await), "OIDC_MALFORMED");
    assert_eq!(
        code(oidc.verify_access_token(4, "a\r\nX-Evil: 1").await),
        "OIDC_MALFORMED"
    );
    assert_eq!(code(oidc.verify_access_token(5, "good").await), "OIDC_NOT_CONFIGURED");
    assert_eq!(
        oidc.userinfo_cached(),
        1,
        "the endpoint's refusal is remembered; odd answers and malformed tokens are not"
    );
}

// ---- configuration

#[test]
fn configuration_keeps_ids_unambiguous() {
    let issuer = |iss: &str, aud: &str, t: u64| IssuerConfig {
        issuer: iss.into(),
        jwks_url: "https://keys.example/jwks".into(),
        audiences: vec![aud.into()],
        auth_method_type: t,
    };
    let check = |oidc: Vec<IssuerConfig>| {
        OidcConfig {
            oidc,
            ..OidcConfig::default()
        }
        .check()
    };
    assert!(check(vec![issuer("https://a", "x", 6), issuer("https://b", "y", 6)]).is_ok());
    assert!(check(vec![issuer("https://a", "x", 6), issuer("https://b", "x", 7)]).is_ok());
    assert!(
        check(vec![issuer("https://a", "x", 6), issuer("https://b", "x", 6)]).is_ok(),
        "one issuer, two names"
    );
    let mut elsewhere = issuer("https://b", "x", 6);
    elsewhere.jwks_url = "https://other-keys.example/jwks".into();
    assert!(check(vec![issuer("https://a", "x", 6), elsewhere]).is_err());
    assert!(check(vec![issuer("https://a", "x", 6), issuer("https://a", "y", 6)]).is_err());
    assert!(check(vec![issuer("https://a", "x", 1)]).is_err());
    let mut plain = issuer("https://a", "x", 6);
    plain.jwks_url = "http://keys.example/jwks".into();
    assert!(check(vec![plain]).is_err());
}
