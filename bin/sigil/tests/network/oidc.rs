//! OAuth/OIDC auth methods on a real network: a local issuer serves its JWKS (and a
//! Discord-style userinfo endpoint) over loopback; a PKP that owns itself, with only an OIDC
//! identity and an access-token identity as auth methods, gets sessions from the network and
//! signs; an expired token, a token for another audience, one signed by a key the issuer does not
//! publish and one for another user are refused with their codes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand_chacha::rand_core::SeedableRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sigil_chain::alloy::primitives::{keccak256, U256};
use sigil_client::pkp::NewAuthMethod;
use sigil_client::{ActionCode, Client, ClientError, KeyRef, SessionKey};
use sigil_primitives::{AuthMethod, Resource, ResourceAbility};
use sigil_tss::derive::{derive_public_key, KeyId};

use crate::harness::{http_server, Network, DEV_KEY};

const READY: Duration = Duration::from_secs(120);
const HOUR: Duration = Duration::from_secs(3600);
const ISS: &str = "https://accounts.issuer.example";
const AUD: &str = "1234-sigil.apps.issuer.example";
const SUB: &str = "110169484474386276334";
/// The Discord-style application, and one of its users with their access token.
const APP: &str = "1052874239658692668";
const DISCORD_USER: &str = "80351110224678912";
const DISCORD_TOKEN: &str = "carols-discord-access-token";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An issuer's signing key.
struct Key {
    private: rsa::RsaPrivateKey,
    kid: &'static str,
}

impl Key {
    fn new(kid: &'static str, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Self {
            private: rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            kid,
        }
    }

    fn jwk(&self) -> Value {
        let public = self.private.to_public_key();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
        })
    }

    /// An RS256 ID token with `claims`, naming `kid`.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let der = self.private.to_pkcs1_der().unwrap();
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(der.as_bytes())).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.kid, claims)
    }
}

fn claims() -> Value {
    let t = now();
    json!({"iss": ISS, "aud": AUD, "sub": SUB, "email": "carol@example.com", "email_verified": true, "iat": t - 5, "exp": t + 3600})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn method(auth_method_type: u64, access_token: String) -> AuthMethod {
    AuthMethod {
        auth_method_type,
        access_token,
    }
}

fn signing(token: U256) -> ResourceAbility {
    ResourceAbility {
        resource: Resource {
            resource: hex::encode(token.to_be_bytes::<32>()),
            resource_prefix: "lit-pkp".into(),
        },
        ability: "pkp-signing".into(),
    }
}

fn run_any() -> ResourceAbility {
    ResourceAbility {
        resource: Resource {
            resource: "*".into(),
            resource_prefix: "lit-litaction".into(),
        },
        ability: "lit-action-execution".into(),
    }
}

/// Asks for a session for `key` with `auth` and returns the refusal (panics if granted).
async fn refused_for(
    client: &Client,
    key: SessionKey,
    public_key: &[u8; 65],
    token_id: U256,
    auth: AuthMethod,
) -> String {
    match client
        .pkp_session(key, public_key, &[auth], None, &[signing(token_id)], HOUR)
        .await
    {
        Err(ClientError::Auth(text)) => text,
        other => panic!("granted: {other:?}"),
    }
}

/// An ID token bound to `key` (its `nonce`), as a client sets it in the authorization request.
fn bound(claims: Value, key: &SessionKey) -> Value {
    with(claims, "nonce", json!(key.public_hex()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkp_owned_by_an_oidc_identity_signs_and_bad_tokens_are_refused_with_their_codes() {
    let key = Key::new("issuer-key-1", 1);
    let stranger = Key::new("stranger-key", 2);
    let jwks = json!({ "keys": [key.jwk()] }).to_string();
    let userinfo = json!({"application": {"id": APP}, "user": {"id": DISCORD_USER}}).to_string();
    // The local issuer: its JWKS, and a userinfo endpoint that knows one access token.
    let jwks_hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&jwks_hits);
    let (issuer, _) = http_server(Arc::new(move |_, head: &str| {
        if head.starts_with("get /jwks ") {
            counter.fetch_add(1, Ordering::SeqCst);
            (200, jwks.clone())
        } else if head.starts_with("get /userinfo ") && head.contains(&format!("authorization: bearer {DISCORD_TOKEN}"))
        {
            (200, userinfo.clone())
        } else if head.starts_with("get /userinfo ") {
            (401, "{\"message\": \"401: Unauthorized\"}".into())
        } else {
            (404, String::new())
        }
    }))
    .await;
    let auth = format!(
        "\n[[auth.oidc]]\nissuer = \"{ISS}\"\njwks_url = \"{issuer}/jwks\"\naudiences = [\"{AUD}\"]\n\n\
         [[auth.userinfo]]\nurl = \"{issuer}/userinfo\"\nauth_method_type = 4\napp_id = \"{APP}\"\nsessions = true\n"
    );
    let mut net = Network::start_configured(3, 8, |_| vec![], |config| config + &auth).await;
    let client = net.wait_ready(READY).await;
    let (dev, dev_provider) = net.wallet(DEV_KEY);
    let dev_auth = client.auth_sig(&dev, "localhost", HOUR).await.unwrap();

    // A PKP that owns itself; its only auth methods are the OIDC identity (id keccak256(sub:aud),
    // as Lit derives it for type 6) and the Discord-style one (keccak256(user:app), type 4).
    let oidc_id = keccak256(format!("{SUB}:{AUD}").as_bytes()).to_vec();
    let discord_id = keccak256(format!("{DISCORD_USER}:{APP}").as_bytes()).to_vec();
    let pkp = client
        .mint_with_auth_methods(
            &dev_provider,
            &dev_auth,
            &net.contracts(),
            &[
                NewAuthMethod {
                    kind: 6,
                    id: oidc_id.clone(),
                    user_pubkey: Vec::new(),
                    scopes: 1,
                },
                NewAuthMethod {
                    kind: 4,
                    id: discord_id,
                    user_pubkey: Vec::new(),
                    scopes: 1,
                },
            ],
            true,
        )
        .await
        .unwrap();
    let point = derive_public_key(client.ecdsa_root(), &KeyId(pkp.key_id));

    // The ID token, its nonce naming the session key, gets a session; the session signs, and
    // the signature verifies.
    let session_key = SessionKey::random();
    let id_token = key.sign(&bound(claims(), &session_key));
    let session = client
        .pkp_session(
            session_key,
            &pkp.public_key,
            &[method(6, id_token.clone())],
            None,
            &[signing(pkp.token_id), run_any()],
            HOUR,
        )
        .await
        .unwrap();
    let hash = [6u8; 32];
    let outcome = client
        .pkp_sign(KeyRef::KeyId(pkp.key_id), hash, &session)
        .await
        .unwrap();
    assert!(outcome.signature.verify(&point, &hash));

    // An action under that session sees the identity, the same at every node.
    let code = "Lit.Actions.setResponse({response: JSON.stringify(Lit.Auth.authMethodContexts)});";
    let ran = client
        .execute(ActionCode::Code(code.into()), json!({}), Some(&session))
        .await
        .unwrap();
    let seen: Value = serde_json::from_str(&ran.response.unwrap()).unwrap();
    assert_eq!(seen[0]["authMethodType"], 6);
    assert_eq!(seen[0]["authMethodId"], format!("0x{}", hex::encode(&oidc_id)));
    assert_eq!(seen[0]["context"]["sub"], SUB);
    assert_eq!(seen[0]["context"]["iss"], ISS);
    assert_eq!(seen[0]["context"]["email"], "carol@example.com");

    // The access token gets a session too, checked at the userinfo endpoint.
    let session = client
        .pkp_session(
            SessionKey::random(),
            &pkp.public_key,
            &[method(4, DISCORD_TOKEN.into())],
            None,
            &[signing(pkp.token_id)],
            HOUR,
        )
        .await
        .unwrap();
    let outcome = client
        .pkp_sign(KeyRef::KeyId(pkp.key_id), hash, &session)
        .await
        .unwrap();
    assert!(outcome.signature.verify(&point, &hash));

    // A node the token was shown to tries it for a session key of its own: refused everywhere.
    let (public_key, token_id) = (&pkp.public_key, pkp.token_id);
    let text = refused_for(&client, SessionKey::random(), public_key, token_id, method(6, id_token)).await;
    assert!(text.contains("OIDC_NOT_FOR_THIS_SESSION"), "{text}");
    // So does a token that names no session key.
    let text = refused_for(
        &client,
        SessionKey::random(),
        public_key,
        token_id,
        method(6, key.sign(&claims())),
    )
    .await;
    assert!(text.contains("OIDC_NOT_FOR_THIS_SESSION"), "{text}");

    // The adversary's tokens, each bound to the session key asked for and each refused by every
    // node with its own code.
    type Make<'a> = Box<dyn Fn(&SessionKey) -> String + 'a>;
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "expired",
            Box::new(|k| key.sign(&bound(with(claims(), "exp", json!(now() - 600)), k))),
            "OIDC_EXPIRED",
        ),
        (
            "another audience",
            Box::new(|k| key.sign(&bound(with(claims(), "aud", json!("someone-elses-app")), k))),
            "OIDC_WRONG_AUDIENCE",
        ),
        (
            "a key not in the JWKS",
            Box::new(|k| stranger.sign(&bound(claims(), k))),
            "OIDC_UNKNOWN_KEY",
        ),
        (
            "another key under the issuer's kid",
            Box::new(|k| stranger.sign_as(key.kid, &bound(claims(), k))),
            "OIDC_BAD_SIGNATURE",
        ),
        (
            "another issuer",
            Box::new(|k| key.sign(&bound(with(claims(), "iss", json!("https://evil.example")), k))),
            "OIDC_WRONG_ISSUER",
        ),
        (
            "a valid token of another user",
            Box::new(|k| key.sign(&bound(with(claims(), "sub", json!("someone-else")), k))),
            "AUTH_METHOD_NOT_PERMITTED",
        ),
    ];
    for (what, make, code) in cases {
        let session_key = SessionKey::random();
        let token = make(&session_key);
        let text = refused_for(&client, session_key, public_key, token_id, method(6, token)).await;
        assert!(text.contains(code), "{what}: {text}");
    }
    let text = refused_for(
        &client,
        SessionKey::random(),
        public_key,
        token_id,
        method(4, "stolen-or-made-up".into()),
    )
    .await;
    assert!(text.contains("OIDC_TOKEN_REJECTED"), "{text}");

    // Each node fetched the JWKS once, and once more for the unknown kid (rate-limited).
    let fetched = jwks_hits.load(Ordering::SeqCst);
    assert!((3..=6).contains(&fetched), "{fetched} JWKS fetches by 3 nodes");
    assert!(net.metric(0, "sigil_oidc_refused_total").await >= 5);
    net.stop().await;
}
