//! Attacks on session signatures (review of 474051e/39329ed). Each test asserts the SECURE
//! behaviour, so on the reviewed commit each one fails, showing the attack succeeding:
//!
//! - a wallet's session capability (a SIWE delegating to `lit:session:<key>`, nonce = latest
//!   block) is also a valid plain `authSig` for `nonce_max_age_secs`: whoever receives a session
//!   signature (any node) uses it as a bearer authSig with no resource limits;
//! - the same capability (or any authSig) is accepted as an Ethereum-wallet auth method by
//!   `/web/sign_session_key`, which then grants a 7-day network capability to the attacker's key;
//! - unauthenticated `/web/sign_session_key` requests drain a PKP's per-principal rate bucket,
//!   which is the same bucket its own sessions sign/execute/decrypt under;
//! - inside an action, `checkConditions`/`decryptAndCombine` accept a session signature with no
//!   `need`: a session that grants only signing decrypts everything locked to its wallet.

use std::time::Duration;

use serde_json::{json, Value};
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::siwe::rfc3339;
use sigil_client::pkp::NewAuthMethod;
use sigil_client::{ActionCode, ClientError, KeyRef, SessionKey};
use sigil_primitives::{AuthMethod, Resource, ResourceAbility};
use sigil_tss::derive::{derive_public_key, uncompressed, KeyId};

use crate::harness::{post, Network, BOB_KEY, DEV_KEY};
use crate::signing::mint;

const READY: Duration = Duration::from_secs(120);
const HOUR: Duration = Duration::from_secs(3600);

fn ability(prefix: &str, resource: &str, ability: &str) -> ResourceAbility {
    ResourceAbility {
        resource: Resource {
            resource: resource.into(),
            resource_prefix: prefix.into(),
        },
        ability: ability.into(),
    }
}

fn signing(token: &str) -> ResourceAbility {
    ability("lit-pkp", token, "pkp-signing")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn rand_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    id
}

/// The capability inside a session signature (what every node, honest or not, receives) used as
/// a plain `authSig`: it signs with a PKP the session never asked for, and decrypts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_wallet_session_capability_is_not_a_bearer_auth_sig() {
    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 2).await;
    let (key_a, key_b) = (owned.key_ids[0], owned.key_ids[1]);
    let token_a = sigil_chain::token_id(&uncompressed(&derive_public_key(client.ecdsa_root(), &KeyId(key_a))));
    let dev: PrivateKeySigner = DEV_KEY.parse().unwrap();
    // The victim grants its session key signing with PKP A only.
    let session = client
        .wallet_session(
            &dev,
            "localhost",
            &[signing(&hex::encode(token_a.to_be_bytes::<32>()))],
            HOUR,
        )
        .await
        .unwrap();
    // A node that received any entry of `sessionSigs` extracts the capability...
    let entry = session.for_node(&net.urls[0]).unwrap();
    let message: Value = serde_json::from_str(entry["signedMessage"].as_str().unwrap()).unwrap();
    let stolen: sigil_chain::siwe::AuthSig = serde_json::from_value(message["capabilities"][0].clone()).unwrap();
    // ...and sends it to every node as an authSig: signing with PKP B, never granted.
    let hash = [5u8; 32];
    let signed = client.pkp_sign(KeyRef::KeyId(key_b), hash, &stolen).await;
    assert!(
        signed.is_err(),
        "ATTACK: the session's capability, used as a plain authSig, signed with a PKP the session never granted"
    );
    // ...and decrypting as the wallet, which the session never granted either.
    let conditions = json!([{
        "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "",
        "parameters": [":userAddress"],
        "returnValueTest": {"comparator": "=", "value": format!("{:#x}", dev.address())}
    }]);
    let encrypted = client.encrypt(&conditions, b"dev's secret").unwrap();
    let opened = client.decrypt(&encrypted, Some(&stolen)).await;
    assert!(
        opened.is_err(),
        "ATTACK: the session's capability, used as a plain authSig, decrypted the wallet's data"
    );
    net.stop().await;
}

/// A malicious node turns a wallet's session capability (or any authSig it sees) into a
/// network-signed 7-day session for the wallet's self-owned PKP, delegated to its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_received_capability_does_not_buy_a_network_session() {
    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let (dev, dev_provider) = net.wallet(DEV_KEY);
    let dev_auth = client.auth_sig(&dev, "localhost", HOUR).await.unwrap();
    let bob: PrivateKeySigner = BOB_KEY.parse().unwrap();
    let pkp = client
        .mint_with_auth_methods(
            &dev_provider,
            &dev_auth,
            &net.contracts(),
            &[NewAuthMethod {
                kind: 1,
                id: bob.address().to_vec(),
                user_pubkey: Vec::new(),
                scopes: 1,
            }],
            true,
        )
        .await
        .unwrap();
    // Bob opens a narrow session: running one action, nothing else.
    let narrow = client
        .wallet_session(
            &bob,
            "localhost",
            &[ability(
                "lit-litaction",
                "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
                "lit-action-execution",
            )],
            HOUR,
        )
        .await
        .unwrap();
    // A node that received it presents the capability as Bob's wallet auth method, for its own
    // session key, asking for everything, for six days.
    let method = AuthMethod {
        auth_method_type: 1,
        access_token: serde_json::to_string(narrow.capability()).unwrap(),
    };
    let everything = [
        signing("*"),
        ability("lit-litaction", "*", "lit-action-execution"),
        ability("lit-accesscontrolcondition", "*", "access-control-condition-decryption"),
    ];
    let granted = client
        .pkp_session(
            SessionKey::random(),
            &pkp.public_key,
            &[method],
            None,
            &everything,
            Duration::from_secs(6 * 24 * 3600),
        )
        .await;
    if let Ok(session) = &granted {
        let hash = [6u8; 32];
        let signed = client.pkp_sign(KeyRef::KeyId(pkp.key_id), hash, session).await;
        assert!(
            signed.is_err(),
            "ATTACK: a 6-day network session bought with Bob's narrow session capability signed with his PKP"
        );
    }
    assert!(
        granted.is_err(),
        "ATTACK: the network granted a session for Bob's PKP from a capability delegated to another key"
    );
    net.stop().await;
}

/// Anyone drains a PKP's rate bucket with `/web/sign_session_key` requests that prove nothing,
/// and the PKP's own session is then turned away with 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_unauthenticated_grants_do_not_spend_a_pkps_rate() {
    let mut net = Network::start_configured(
        3,
        8,
        |_| vec![],
        |config| {
            config
                .replace("rate_per_principal = 50000", "rate_per_principal = 1")
                .replace("burst_per_principal = 100000", "burst_per_principal = 8")
        },
    )
    .await;
    let client = net.wait_ready(READY).await;
    let (dev, dev_provider) = net.wallet(DEV_KEY);
    let dev_auth = client.auth_sig(&dev, "localhost", HOUR).await.unwrap();
    let bob: PrivateKeySigner = BOB_KEY.parse().unwrap();
    let pkp = client
        .mint_with_auth_methods(
            &dev_provider,
            &dev_auth,
            &net.contracts(),
            &[NewAuthMethod {
                kind: 1,
                id: bob.address().to_vec(),
                user_pubkey: Vec::new(),
                scopes: 1,
            }],
            true,
        )
        .await
        .unwrap();
    let key = SessionKey::random();
    let method = client
        .wallet_auth_method(&bob, "localhost", &key, &[], HOUR)
        .await
        .unwrap();
    let session = client
        .pkp_session(key, &pkp.public_key, &[method], None, &[signing("*")], HOUR)
        .await
        .unwrap();
    // The attacker: no credentials at all, just the PKP's public key.
    let url = &net.urls[0];
    let t = now();
    let bogus = json!({
        "sessionKey": "11".repeat(32),
        "authMethods": [],
        "pkpPublicKey": hex::encode(pkp.public_key),
        "resourceAbilityRequests": [serde_json::to_value(signing("*")).unwrap()],
        "nonce": format!("0x{}", "00".repeat(32)),
        "issuedAt": rfc3339(t),
        "expiration": rfc3339(t + 600),
    })
    .to_string();
    let mut codes = Vec::new();
    for _ in 0..12 {
        let (status, answer) = post(&format!("{url}/web/sign_session_key"), bogus.clone()).await;
        codes.push((status, answer["error"]["code"].as_str().unwrap_or("").to_string()));
    }
    // The PKP's own session at that node.
    let body = json!({
        "keyId": hex::encode(pkp.key_id),
        "toSign": hex::encode([7u8; 32]),
        "requestId": hex::encode(rand_id()),
        "authSig": session.for_node(url).unwrap(),
    })
    .to_string();
    let (status, answer) = post(&format!("{url}/web/pkp/sign"), body).await;
    assert_ne!(
        (status, answer["error"]["code"].as_str().unwrap_or("")),
        (429, "RATE_LIMITED"),
        "ATTACK: unauthenticated grant requests ({codes:?}) rate-limited the PKP's own session"
    );
    net.stop().await;
}

/// A session that grants only signing decrypts, inside an action, everything locked to its
/// wallet: the action finds each node's own entry with `checkConditions` and hands it to
/// `decryptAndCombine`, which never asks what the session grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_signing_session_does_not_decrypt_inside_an_action() {
    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let key_a = owned.key_ids[0];
    let token_a = sigil_chain::token_id(&uncompressed(&derive_public_key(client.ecdsa_root(), &KeyId(key_a))));
    let dev: PrivateKeySigner = DEV_KEY.parse().unwrap();
    let session = client
        .wallet_session(
            &dev,
            "localhost",
            &[signing(&hex::encode(token_a.to_be_bytes::<32>()))],
            HOUR,
        )
        .await
        .unwrap();
    let conditions = json!([{
        "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "",
        "parameters": [":userAddress"],
        "returnValueTest": {"comparator": "=", "value": format!("{:#x}", dev.address())}
    }]);
    let encrypted = client.encrypt(&conditions, b"dev's secret").unwrap();
    // Directly, the session is refused...
    match client.decrypt(&encrypted, Some(&session)).await {
        Err(ClientError::Decrypt { code, .. }) => assert_eq!(code, "SESSION_RESOURCE_NOT_REQUESTED"),
        other => panic!("a signing session decrypted directly: {other:?}"),
    }
    // ...inside an action (run with no credentials), it is not.
    let code = r#"(async () => {
        let mine = null;
        for (const s of jsParams.sigs) {
            try { await Lit.Actions.checkConditions({ unifiedAccessControlConditions: conditions, authSig: s }); mine = s; break; } catch (e) {}
        }
        try {
            const text = await Lit.Actions.decryptAndCombine({ unifiedAccessControlConditions: conditions, ciphertext, dataToEncryptHash, authSig: mine, chain: 'sigil' });
            Lit.Actions.setResponse({ response: text });
        } catch (e) { Lit.Actions.setResponse({ response: 'refused: ' + e }); }
    })();"#;
    let sigs: Vec<Value> = session.session_sigs().values().cloned().collect();
    let params = json!({
        "sigs": sigs,
        "conditions": conditions,
        "ciphertext": encrypted.ciphertext,
        "dataToEncryptHash": encrypted.data_to_encrypt_hash,
    });
    let outcome = client.execute(ActionCode::Code(code.into()), params, None).await;
    let response = outcome.ok().and_then(|o| o.response);
    assert_ne!(
        response.as_deref(),
        Some("dev's secret"),
        "ATTACK: a session granting only pkp-signing decrypted the wallet's data inside an action"
    );
    net.stop().await;
}
