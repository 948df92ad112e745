//! Session signatures on a real network: a wallet's session signs, decrypts and runs actions;
//! every way an adversary bends one (another node's entry, expired, early, another resource or
//! ability, a tampered capability, a wallet that does not control the PKP) is refused with its
//! own code; a PKP with only an auth method gets a session from the network; custom auth actions
//! grant exactly what they are asked, or nothing; one principal's rate is bounded.

use std::time::Duration;

use serde_json::{json, Value};
use sigil_chain::alloy::primitives::U256;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::session::SessionMessage;
use sigil_chain::siwe::rfc3339;
use sigil_client::{ActionCode, Client, ClientError, CustomAuth, KeyRef, Session, SessionKey};
use sigil_primitives::{AuthMethod, Cid, Resource, ResourceAbility};
use sigil_tss::derive::{derive_public_key, uncompressed, KeyId};

use crate::harness::{post, Network, ALICE_KEY, BOB_KEY, DEV_KEY};
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

fn token_hex(token: U256) -> String {
    hex::encode(token.to_be_bytes::<32>())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `/web/pkp/sign` body for `key_id` carrying `auth_sig` as the credential.
fn sign_body(key_id: [u8; 32], auth_sig: &Value) -> String {
    json!({
        "keyId": hex::encode(key_id),
        "toSign": hex::encode([7u8; 32]),
        "requestId": hex::encode(rand_id()),
        "authSig": auth_sig,
    })
    .to_string()
}

fn rand_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    id
}

/// POSTs a sign request to `url` and returns (status, code).
async fn sign_at(url: &str, key_id: [u8; 32], auth_sig: &Value) -> (u16, String) {
    let (status, answer) = post(&format!("{url}/web/pkp/sign"), sign_body(key_id, auth_sig)).await;
    (status, answer["error"]["code"].as_str().unwrap_or("").to_string())
}

/// A session message for `url` under `session`'s capability, with the given window and requests.
fn message(session: &Session, url: &str, requests: Vec<ResourceAbility>, from: u64, to: u64) -> SessionMessage {
    SessionMessage {
        session_key: session.session_key(),
        resource_ability_requests: requests,
        capabilities: vec![session.capability().clone()],
        issued_at: rfc3339(from),
        expiration: rfc3339(to),
        node_address: url.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_session_works_only_for_its_node_its_time_and_what_it_grants() {
    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 2).await;
    let (key_a, key_b) = (owned.key_ids[0], owned.key_ids[1]);
    let token_of = |key_id: [u8; 32]| {
        sigil_chain::token_id(&uncompressed(&derive_public_key(client.ecdsa_root(), &KeyId(key_id))))
    };
    let token_a = token_of(key_a);
    let dev: PrivateKeySigner = DEV_KEY.parse().unwrap();

    // A session for PKP A signs through the sessionSigs map, and the signature verifies.
    let session = client
        .wallet_session(&dev, "localhost", &[signing(&token_hex(token_a))], HOUR)
        .await
        .unwrap();
    let hash = [9u8; 32];
    let outcome = client.pkp_sign(KeyRef::KeyId(key_a), hash, &session).await.unwrap();
    let pkp = derive_public_key(client.ecdsa_root(), &KeyId(key_a));
    assert!(outcome.signature.verify(&pkp, &hash));

    // One node's own entry in `authSig`, as Lit's clients send it, is accepted there...
    let (url0, url1) = (&net.urls[0], &net.urls[1]);
    let mine = session.for_node(url0).unwrap().clone();
    let (status, code) = sign_at(url0, key_a, &mine).await;
    assert!(
        status == 200 || code == "NOT_A_SIGNER",
        "own entry refused: {status} {code}"
    );
    // ...and replayed to another node it is refused.
    assert_eq!(sign_at(url1, key_a, &mine).await, (401, "SESSION_WRONG_NODE".into()));

    // The capability alone, lifted out of a session signature, is no authSig.
    let lifted = serde_json::to_value(session.capability()).unwrap();
    assert_eq!(
        sign_at(url0, key_a, &lifted).await,
        (401, "AUTH_IS_SESSION_CAPABILITY".into())
    );

    // Expired, and not yet valid.
    let t = now();
    let requests = vec![signing(&token_hex(token_a))];
    let expired = session.sign_for(&message(&session, url0, requests.clone(), t - 600, t - 60));
    assert_eq!(sign_at(url0, key_a, &expired).await, (401, "SESSION_EXPIRED".into()));
    let early = session.sign_for(&message(&session, url0, requests.clone(), t + 600, t + 1200));
    assert_eq!(
        sign_at(url0, key_a, &early).await,
        (401, "SESSION_NOT_YET_VALID".into())
    );

    // Another resource: not requested by the session, or requested but not granted.
    assert_eq!(
        sign_at(url0, key_b, &mine).await,
        (401, "SESSION_RESOURCE_NOT_REQUESTED".into())
    );
    let overreach = session.sign_for(&message(&session, url0, vec![signing("*")], t - 5, t + 600));
    assert_eq!(
        sign_at(url0, key_b, &overreach).await,
        (401, "SESSION_NOT_GRANTED".into())
    );

    // Another ability: a session for running actions does not sign.
    let runner = client
        .wallet_session(
            &dev,
            "localhost",
            &[ability("lit-litaction", "*", "lit-action-execution")],
            HOUR,
        )
        .await
        .unwrap();
    assert_eq!(
        sign_at(url0, key_a, runner.for_node(url0).unwrap()).await,
        (401, "SESSION_RESOURCE_NOT_REQUESTED".into())
    );
    let crossed = runner.sign_for(&message(&runner, url0, vec![signing("*")], t - 5, t + 600));
    assert_eq!(
        sign_at(url0, key_a, &crossed).await,
        (401, "SESSION_NOT_GRANTED".into())
    );

    // A tampered capability: the ReCap widened to every PKP after the wallet signed it.
    let mut forged = session.capability().clone();
    let widened = sigil_chain::session::Recap::granting(&[signing("*")]).encode();
    let original = sigil_chain::siwe::SiweMessage::parse(&forged.signed_message)
        .unwrap()
        .resources[0]
        .clone();
    forged.signed_message = forged.signed_message.replace(&original, &widened);
    let mut tampered = message(&session, url0, vec![signing("*")], t - 5, t + 600);
    tampered.capabilities = vec![forged];
    let tampered = session.sign_for(&tampered);
    assert_eq!(
        sign_at(url0, key_b, &tampered).await,
        (401, "SESSION_BAD_CAPABILITY".into())
    );

    // A capability delegated to another session key.
    let other = client
        .wallet_session(&dev, "localhost", &[signing("*")], HOUR)
        .await
        .unwrap();
    let mut borrowed = message(&session, url0, vec![signing("*")], t - 5, t + 600);
    borrowed.capabilities = vec![other.capability().clone()];
    assert_eq!(
        sign_at(url0, key_a, &session.sign_for(&borrowed)).await,
        (401, "SESSION_BAD_CAPABILITY".into())
    );

    // A wallet that does not control the PKP gets a valid session, and no signature.
    let alice: PrivateKeySigner = ALICE_KEY.parse().unwrap();
    let stranger = client
        .wallet_session(&alice, "localhost", &[signing("*")], HOUR)
        .await
        .unwrap();
    match client.pkp_sign(KeyRef::KeyId(key_a), hash, &stranger).await {
        Err(ClientError::Sign { failures, .. }) => {
            assert!(
                failures.iter().any(|f| f.reason.contains("NOT_PERMITTED")),
                "{failures:?}"
            );
        }
        other => panic!("a stranger's session signed: {other:?}"),
    }

    // Decryption under `:userAddress` with a session; another user's session is refused.
    let conditions = json!([{
        "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "",
        "parameters": [":userAddress"],
        "returnValueTest": {"comparator": "=", "value": format!("{:#x}", dev.address())}
    }]);
    let encrypted = client.encrypt(&conditions, b"for the dev wallet only").unwrap();
    let decrypting = client
        .wallet_session(
            &dev,
            "localhost",
            &[ability(
                "lit-accesscontrolcondition",
                "*",
                "access-control-condition-decryption",
            )],
            HOUR,
        )
        .await
        .unwrap();
    let opened = client.decrypt(&encrypted, Some(&decrypting)).await.unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"for the dev wallet only");
    let alice_decrypting = client
        .wallet_session(
            &alice,
            "localhost",
            &[ability(
                "lit-accesscontrolcondition",
                "*",
                "access-control-condition-decryption",
            )],
            HOUR,
        )
        .await
        .unwrap();
    match client.decrypt(&encrypted, Some(&alice_decrypting)).await {
        Err(ClientError::Decrypt { code, .. }) => assert_eq!(code, "CONDITION_FAILED"),
        other => panic!("another user's session decrypted: {other:?}"),
    }
    // A signing session does not decrypt.
    match client.decrypt(&encrypted, Some(&session)).await {
        Err(ClientError::Decrypt { code, .. }) => assert_eq!(code, "SESSION_RESOURCE_NOT_REQUESTED"),
        other => panic!("a signing session decrypted: {other:?}"),
    }

    // An action run under a session sees the wallet as `Lit.Auth.authSigAddress`.
    let code = "Lit.Actions.setResponse({response: String(Lit.Auth.authSigAddress)});";
    let ran = client
        .execute(ActionCode::Code(code.into()), json!({}), Some(&runner))
        .await
        .unwrap();
    assert_eq!(ran.response.unwrap().to_lowercase(), format!("{:#x}", dev.address()));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkp_with_only_an_auth_method_gets_a_session_and_custom_auth_grants_exactly_what_it_is_asked() {
    // Every principal is held to a burst of 8 and 1 request a second here.
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

    // A PKP that owns itself, with Bob's wallet as its only auth method.
    let pkp = crate::harness::wallet_owned_pkp(&net, &client, bob.address()).await;
    let bob_auth = client.auth_sig(&bob, "localhost", HOUR).await.unwrap();
    let own = signing(&token_hex(pkp.token_id));
    // Bob's wallet proof must delegate to the very session key being granted: his ordinary
    // authSig, or one delegating to another key, buys nothing.
    for proof in [
        bob_auth.clone(),
        serde_json::from_str(
            &client
                .wallet_auth_method(&bob, "localhost", &SessionKey::random(), &[], HOUR)
                .await
                .unwrap()
                .access_token,
        )
        .unwrap(),
    ] {
        let stolen = AuthMethod {
            auth_method_type: 1,
            access_token: serde_json::to_string(&proof).unwrap(),
        };
        match client
            .pkp_session(
                SessionKey::random(),
                &pkp.public_key,
                &[stolen],
                None,
                std::slice::from_ref(&own),
                HOUR,
            )
            .await
        {
            Err(ClientError::Auth(text)) => assert!(text.contains("AUTH_METHOD_NOT_FOR_THIS_SESSION"), "{text}"),
            other => panic!("a proof for another session key got a session: {other:?}"),
        }
    }
    let key = SessionKey::random();
    let method = client
        .wallet_auth_method(&bob, "localhost", &key, &[], HOUR)
        .await
        .unwrap();
    let run_any = ability("lit-litaction", "*", "lit-action-execution");
    let session = client
        .pkp_session(
            key,
            &pkp.public_key,
            std::slice::from_ref(&method),
            None,
            &[own.clone(), run_any],
            HOUR,
        )
        .await
        .unwrap();
    assert_eq!(session.capability().derived_via, "lit.bls");
    let hash = [3u8; 32];
    let outcome = client
        .pkp_sign(KeyRef::KeyId(pkp.key_id), hash, &session)
        .await
        .unwrap();
    let point = derive_public_key(client.ecdsa_root(), &KeyId(pkp.key_id));
    assert!(outcome.signature.verify(&point, &hash));

    // A delegation that lists its abilities buys no more than those: Bob lets the network grant
    // only signing with this PKP, so a request that also asks to decrypt is refused.
    let decrypt_any = ability("lit-accesscontrolcondition", "*", "access-control-condition-decryption");
    let scoped_key = SessionKey::random();
    let scoped = client
        .wallet_auth_method(&bob, "localhost", &scoped_key, std::slice::from_ref(&own), HOUR)
        .await
        .unwrap();
    match client
        .pkp_session(
            scoped_key,
            &pkp.public_key,
            &[scoped],
            None,
            &[own.clone(), decrypt_any],
            HOUR,
        )
        .await
    {
        Err(ClientError::Auth(text)) => assert!(text.contains("AUTH_METHOD_SCOPE_EXCEEDED"), "{text}"),
        other => panic!("a signing-only delegation bought a decrypting session: {other:?}"),
    }
    // Within its scope it is granted, and the session ends when the delegation does (ten
    // minutes), however long the request asked for.
    let scoped_key = SessionKey::random();
    let scoped = client
        .wallet_auth_method(
            &bob,
            "localhost",
            &scoped_key,
            std::slice::from_ref(&own),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let short = client
        .pkp_session(
            scoped_key,
            &pkp.public_key,
            &[scoped],
            None,
            std::slice::from_ref(&own),
            HOUR,
        )
        .await
        .unwrap();
    let capability = sigil_chain::siwe::SiweMessage::parse(&short.capability().signed_message).unwrap();
    let ends = capability.expiration_time.unwrap();
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        ends <= unix_now + 600,
        "the capability ends at {ends}, past the delegation"
    );
    client
        .pkp_sign(KeyRef::KeyId(pkp.key_id), [4u8; 32], &short)
        .await
        .unwrap();

    // An action run under the session sees the PKP as its caller, and the auth method it used.
    let code =
        "Lit.Actions.setResponse({response: JSON.stringify([Lit.Auth.authSigAddress, Lit.Auth.authMethodContexts])});";
    let ran = client
        .execute(ActionCode::Code(code.into()), json!({}), Some(&session))
        .await
        .unwrap();
    let seen: Value = serde_json::from_str(&ran.response.unwrap()).unwrap();
    assert_eq!(seen[0].as_str().unwrap(), pkp.eth_address.to_checksum(None));
    assert_eq!(seen[1][0]["authMethodType"], 1);
    assert_eq!(
        seen[1][0]["authMethodId"].as_str().unwrap(),
        format!("0x{}", hex::encode(bob.address()))
    );

    // The dev wallet minted it but controls nothing: the NFT belongs to the PKP itself.
    match client.pkp_sign(KeyRef::KeyId(pkp.key_id), hash, &dev_auth).await {
        Err(ClientError::Sign { failures, .. }) => {
            assert!(
                failures.iter().any(|f| f.reason.contains("NOT_PERMITTED")),
                "{failures:?}"
            )
        }
        other => panic!("the minter signed with a self-owned PKP: {other:?}"),
    }
    // Alice's wallet is no auth method of it.
    let alice: PrivateKeySigner = ALICE_KEY.parse().unwrap();
    let alice_key = SessionKey::random();
    let alice_method = client
        .wallet_auth_method(&alice, "localhost", &alice_key, &[], HOUR)
        .await
        .unwrap();
    match client
        .pkp_session(
            alice_key,
            &pkp.public_key,
            &[alice_method],
            None,
            std::slice::from_ref(&own),
            HOUR,
        )
        .await
    {
        Err(ClientError::Auth(text)) => assert!(text.contains("AUTH_METHOD_NOT_PERMITTED"), "{text}"),
        other => panic!("a foreign auth method got a session: {other:?}"),
    }
    // A network capability for this PKP does not reach another PKP.
    let other = client
        .mint_pkp(&dev_provider, &dev_auth, &net.contracts())
        .await
        .unwrap();
    match client.pkp_sign(KeyRef::KeyId(other.key_id), hash, &session).await {
        Err(ClientError::Sign { failures, .. }) => assert!(
            failures
                .iter()
                .any(|f| f.reason.contains("SESSION_RESOURCE_NOT_REQUESTED")),
            "{failures:?}"
        ),
        other => panic!("a PKP session signed with another PKP: {other:?}"),
    }

    // Claiming: Alice proves her wallet as an auth method and the dev wallet relays the claim;
    // the PKP derived from her auth method is minted to itself, and her session signs with it.
    let claimed = client
        .claim_key(&dev_provider, &net.contracts(), &alice_method_of(&client, &alice).await)
        .await
        .unwrap();
    let helper = net.contracts().pkp_helper;
    assert_eq!(
        claimed.key_id,
        sigil_chain::claim_key_id(helper, 1, alice.address().as_slice())
    );
    let claim_key = SessionKey::random();
    let claim_method = client
        .wallet_auth_method(&alice, "localhost", &claim_key, &[], HOUR)
        .await
        .unwrap();
    let alice_session = client
        .pkp_session(
            claim_key,
            &claimed.public_key,
            &[claim_method],
            None,
            &[signing(&token_hex(claimed.token_id))],
            HOUR,
        )
        .await
        .unwrap();
    let outcome = client
        .pkp_sign(KeyRef::KeyId(claimed.key_id), hash, &alice_session)
        .await
        .unwrap();
    let point = derive_public_key(client.ecdsa_root(), &KeyId(claimed.key_id));
    assert!(outcome.signature.verify(&point, &hash));
    // The same key cannot be claimed twice.
    match client
        .claim_key(&dev_provider, &net.contracts(), &alice_method_of(&client, &alice).await)
        .await
    {
        Err(e) => assert!(e.to_string().contains("ALREADY_MINTED"), "{e}"),
        Ok(_) => panic!("a key was claimed twice"),
    }

    // Custom auth: a PKP permitting two actions, one that says yes, one that says no.
    let yes = "Lit.Actions.setResponse({response: jsParams.password === 'open sesame' ? 'true' : 'false'});";
    let no = "Lit.Actions.setResponse({response: 'false'});";
    // Lit's custom auth pattern: the action decides on the auth methods the request proves and
    // sees the session key it grants.
    let lit_style = "Lit.Actions.setResponse({response: String(Lit.Auth.authMethodContexts.some(m => m.authMethodType === 1 && m.authMethodId === jsParams.alice) && Lit.Auth.sessionKey === jsParams.key && Lit.Auth.pkpPublicKey === jsParams.pkp)});";
    let yes_cid = Cid::of_file(yes.as_bytes()).unwrap();
    let no_cid = Cid::of_file(no.as_bytes()).unwrap();
    let lit_style_cid = Cid::of_file(lit_style.as_bytes()).unwrap();
    let gated = client
        .mint_with_auth_methods(&dev_provider, &dev_auth, &net.contracts(), &[], false)
        .await
        .unwrap();
    for cid in [&yes_cid, &no_cid, &lit_style_cid] {
        crate::harness::grant_action(&net, gated.token_id, cid);
    }
    let gated_signing = signing(&token_hex(gated.token_id));
    let custom = |code: &str, password: &str| CustomAuth {
        code: Some(code.into()),
        ipfs_id: None,
        js_params: Some(json!({ "password": password })),
    };
    match client
        .pkp_session(
            SessionKey::random(),
            &gated.public_key,
            &[],
            Some(custom(no, "")),
            std::slice::from_ref(&gated_signing),
            HOUR,
        )
        .await
    {
        Err(ClientError::Auth(text)) => assert!(text.contains("CUSTOM_AUTH_REFUSED"), "{text}"),
        other => panic!("an action that said no granted a session: {other:?}"),
    }
    match client
        .pkp_session(
            SessionKey::random(),
            &gated.public_key,
            &[],
            Some(custom(yes, "wrong")),
            std::slice::from_ref(&gated_signing),
            HOUR,
        )
        .await
    {
        Err(ClientError::Auth(text)) => assert!(text.contains("CUSTOM_AUTH_REFUSED"), "{text}"),
        other => panic!("a wrong password granted a session: {other:?}"),
    }
    // An action the PKP does not permit decides nothing.
    let stranger = "Lit.Actions.setResponse({response: 'true'});";
    match client
        .pkp_session(
            SessionKey::random(),
            &gated.public_key,
            &[],
            Some(custom(stranger, "")),
            std::slice::from_ref(&gated_signing),
            HOUR,
        )
        .await
    {
        Err(ClientError::Auth(text)) => assert!(text.contains("ACTION_NOT_PERMITTED"), "{text}"),
        other => panic!("an unpermitted action granted a session: {other:?}"),
    }
    // Yes: exactly the listed resources — signing with this PKP, not decrypting.
    let granted = client
        .pkp_session(
            SessionKey::random(),
            &gated.public_key,
            &[],
            Some(custom(yes, "open sesame")),
            &[gated_signing],
            HOUR,
        )
        .await
        .unwrap();
    let outcome = client
        .pkp_sign(KeyRef::KeyId(gated.key_id), hash, &granted)
        .await
        .unwrap();
    let point = derive_public_key(client.ecdsa_root(), &KeyId(gated.key_id));
    assert!(outcome.signature.verify(&point, &hash));
    let conditions = json!([{
        "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "",
        "parameters": [":userAddress"],
        "returnValueTest": {"comparator": "=", "value": format!("{:#x}", pkp_address(&client, gated.key_id))}
    }]);
    let encrypted = client.encrypt(&conditions, b"x").unwrap();
    match client.decrypt(&encrypted, Some(&granted)).await {
        Err(ClientError::Decrypt { code, .. }) => assert_eq!(code, "SESSION_RESOURCE_NOT_REQUESTED"),
        other => panic!("a signing-only custom session decrypted: {other:?}"),
    }

    // The Lit-style action grants a session on Alice's wallet, which the PKP does not list.
    let alice_key = SessionKey::random();
    let alice_method = client
        .wallet_auth_method(&alice, "localhost", &alice_key, &[], HOUR)
        .await
        .unwrap();
    let params = json!({
        "alice": format!("0x{}", hex::encode(alice.address())),
        "key": format!("0x{}", alice_key.public_hex()),
        "pkp": format!("0x{}", hex::encode(gated.public_key)),
    });
    let decided = client
        .pkp_session(
            alice_key,
            &gated.public_key,
            &[alice_method],
            Some(CustomAuth {
                code: Some(lit_style.into()),
                ipfs_id: None,
                js_params: Some(params),
            }),
            &[signing(&token_hex(gated.token_id))],
            HOUR,
        )
        .await
        .unwrap();
    client
        .pkp_sign(KeyRef::KeyId(gated.key_id), hash, &decided)
        .await
        .unwrap();

    // One principal's rate: Bob (burst 8, then 1 a second) is turned away with 429 and
    // Retry-After; a request from another principal still goes through meanwhile.
    let url = &net.urls[0];
    let mut limited = None;
    for _ in 0..24 {
        let response = reqwest::Client::new()
            .post(format!("{url}/web/execute"))
            .json(&json!({
                "code": "Lit.Actions.setResponse({response: 'hi'});",
                "requestId": hex::encode(rand_id()),
                "authSig": bob_auth,
            }))
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 429 {
            let retry = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            limited = Some((body["error"]["code"].as_str().unwrap_or("").to_string(), retry));
            break;
        }
    }
    let (code, retry) = limited.expect("Bob was never limited");
    assert_eq!(code, "RATE_LIMITED");
    assert!(retry.is_some(), "429 without Retry-After");
    let dev_run = client
        .execute(
            ActionCode::Code("Lit.Actions.setResponse({response: 'still here'});".into()),
            json!({}),
            Some(&dev_auth),
        )
        .await
        .unwrap();
    assert_eq!(dev_run.response.as_deref(), Some("still here"));
    net.stop().await;
}

/// Alice's wallet as an auth method (type 1): a fresh authSig as its access token.
async fn alice_method_of(client: &Client, alice: &PrivateKeySigner) -> AuthMethod {
    AuthMethod {
        auth_method_type: 1,
        access_token: serde_json::to_string(&client.auth_sig(alice, "localhost", HOUR).await.unwrap()).unwrap(),
    }
}

fn pkp_address(client: &Client, key_id: [u8; 32]) -> sigil_chain::alloy::primitives::Address {
    let point = derive_public_key(client.ecdsa_root(), &KeyId(key_id));
    sigil_chain::alloy::primitives::Address::from(sigil_tss::derive::eth_address(&point))
}
