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
//!
//! Review of 02dba97 (proofs bound to the session they buy, custom auth deciding on unpermitted
//! auth methods, userinfo budget). Again each test asserts the SECURE behaviour:
//!
//! - a passkey's auth method id (`keccak256(rawId ‖ ":lit")`) is bound to its key only per PKP,
//!   so anyone registers a victim's credential id with their own key on their own PKP and their
//!   session's `Lit.Auth.authMethodContexts` claims the victim's passkey;
//! - a custom auth action cannot see what it grants (`Lit.Auth.resources` stays empty), so an
//!   action meant to refuse signing sessions grants them;
//! - the response a child action set is the parent's answer unless the parent overrides it: a
//!   custom auth action that binds a verified ticket to `Lit.Auth.sessionKey` and stays silent
//!   when the binding fails grants the session to a key the ticket was never for;
//! - the userinfo call budget is one bucket for the whole node: one client posting made-up access
//!   tokens turns every other client's valid token away with `OIDC_BUSY`.
//!
//! And one on request ids: `/web/pkp/sign` took the caller's request id as the allocator's, so a
//! PKP owner could take the (public) ids of someone else's mint attestation first.

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
    let bob: PrivateKeySigner = BOB_KEY.parse().unwrap();
    let pkp = crate::harness::wallet_owned_pkp(&net, &client, bob.address()).await;
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
    let bob: PrivateKeySigner = BOB_KEY.parse().unwrap();
    let pkp = crate::harness::wallet_owned_pkp(&net, &client, bob.address()).await;
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

// ---------------------------------------------------------------------------------------------
// Review of 02dba97.

/// An action that answers whether `Lit.Auth.authMethodContexts` lists the passkey `victim`
/// (its auth method id, 0x-hex), as an action gating on "the caller holds passkey X" would.
const HOLDS_VICTIMS_PASSKEY: &str = "Lit.Actions.setResponse({response: String(Lit.Auth.authMethodContexts.some(m => m.authMethodType === 3 && m.authMethodId === jsParams.victim))});";

/// Anyone claims a victim's passkey: the credential id is public (every node sees it in every
/// assertion, and it names the auth method), a passkey's key is registered per PKP, and the id is
/// derived from the credential id alone. The attacker mints a PKP that lists the victim's id with
/// the attacker's own key, asserts with their key under the victim's `rawId` (not signed by
/// WebAuthn), and the session's auth context — which later actions trust — names the victim's
/// passkey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_passkey_id_registered_with_another_key_does_not_pass_as_the_victims() {
    use sigil::devnet::{DEV_WEBAUTHN_ORIGINS, DEV_WEBAUTHN_RP_ID};
    use sigil_client::passkey::{Ceremony, SoftPasskey};

    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let (dev, dev_provider) = net.wallet(DEV_KEY);
    let dev_auth = client.auth_sig(&dev, "localhost", HOUR).await.unwrap();
    // The victim's passkey: only its credential id is needed, and that is public.
    let victim = SoftPasskey::new([21; 32], DEV_WEBAUTHN_RP_ID);
    let victim_id = format!("0x{}", hex::encode(victim.auth_method_id()));
    // The victim registered it on their PKP, which is how its id became public.
    client
        .mint_with_auth_methods(
            &dev_provider,
            &dev_auth,
            &net.contracts(),
            &[NewAuthMethod {
                kind: 3,
                id: victim.auth_method_id().to_vec(),
                user_pubkey: victim.cose_public_key(),
                scopes: 1,
            }],
            true,
        )
        .await
        .unwrap();
    // The attacker's PKP lists the victim's passkey id with the attacker's key.
    let mut attacker = SoftPasskey::new([22; 32], DEV_WEBAUTHN_RP_ID);
    let minted = client
        .mint_with_auth_methods(
            &dev_provider,
            &dev_auth,
            &net.contracts(),
            &[NewAuthMethod {
                kind: 3,
                id: victim.auth_method_id().to_vec(),
                user_pubkey: attacker.cose_public_key(),
                scopes: 1,
            }],
            true,
        )
        .await;
    let pkp = match minted {
        Err(e) => {
            // Secure: the chain binds a passkey id to the key it was first registered with
            // (PKPPermissions.PubkeyBoundElsewhere; the victim's mint above went through).
            eprintln!("the attacker's mint was refused: {e}");
            net.stop().await;
            return;
        }
        Ok(pkp) => pkp,
    };
    let key = SessionKey::random();
    let block = client.latest_blockhash().await.unwrap();
    let block = hex::decode(block.trim_start_matches("0x")).unwrap();
    let challenge = [block.as_slice(), &hex::decode(key.public_hex()).unwrap()].concat();
    let mut assertion: Value =
        serde_json::from_str(&attacker.assert(&Ceremony::new(&challenge, DEV_WEBAUTHN_ORIGINS[0]))).unwrap();
    assertion["id"] = json!(victim.raw_id());
    assertion["rawId"] = json!(victim.raw_id());
    let method = AuthMethod {
        auth_method_type: 3,
        access_token: assertion.to_string(),
    };
    let granted = client
        .pkp_session(
            key,
            &pkp.public_key,
            &[method],
            None,
            &[ability("lit-litaction", "*", "lit-action-execution")],
            HOUR,
        )
        .await;
    let Ok(session) = granted else {
        net.stop().await;
        return;
    };
    let ran = client
        .execute(
            ActionCode::Code(HOLDS_VICTIMS_PASSKEY.into()),
            json!({ "victim": victim_id }),
            Some(&session),
        )
        .await
        .unwrap();
    assert_ne!(
        ran.response.as_deref(),
        Some("true"),
        "ATTACK: a session proven with the attacker's key shows actions the victim's passkey {victim_id}"
    );
    net.stop().await;
}

/// The PKP's owner permits a custom auth action meant to grant sessions for anything but
/// signing. `Lit.Auth.resources` — where Lit's actions read what the session asks for — is always
/// empty here (and nothing else says what is asked, nor for how long), so the action cannot tell
/// and grants a signing session, which signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_custom_auth_action_sees_the_abilities_it_grants() {
    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let (dev, dev_provider) = net.wallet(DEV_KEY);
    let dev_auth = client.auth_sig(&dev, "localhost", HOUR).await.unwrap();
    let pkp = client
        .mint_with_auth_methods(&dev_provider, &dev_auth, &net.contracts(), &[], false)
        .await
        .unwrap();
    let no_signing = "Lit.Actions.setResponse({response: String(!Lit.Auth.resources.some(r => /pkp-signing|lit-pkp|Threshold\\/Signing/.test(JSON.stringify(r))))});";
    let cid = sigil_primitives::Cid::of_file(no_signing.as_bytes()).unwrap();
    crate::harness::grant_action(&net, pkp.token_id, &cid);
    let granted = client
        .pkp_session(
            SessionKey::random(),
            &pkp.public_key,
            &[],
            Some(sigil_client::CustomAuth {
                code: Some(no_signing.into()),
                ipfs_id: None,
                js_params: None,
            }),
            &[signing(&hex::encode(pkp.token_id.to_be_bytes::<32>()))],
            HOUR,
        )
        .await;
    if let Ok(session) = &granted {
        let signed = client.pkp_sign(KeyRef::KeyId(pkp.key_id), [8u8; 32], session).await;
        assert!(
            signed.is_err(),
            "ATTACK: an action that refuses signing sessions granted one, and it signed"
        );
    }
    assert!(
        granted.is_err(),
        "ATTACK: a custom auth action meant to refuse signing sessions granted one (it cannot see what is asked)"
    );
    net.stop().await;
}

/// Lit's custom auth pattern done right: the owner signs the session key it allows (a ticket),
/// a shared verifier action checks the signature, and the PKP's action grants only when the
/// ticket names `Lit.Auth.sessionKey` — and stays silent otherwise (no response is a refusal).
/// The verifier's "true" is still the run's response, so a node that saw the owner's ticket
/// replays it for a session key of its own and is granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_child_actions_answer_is_not_the_custom_auth_answer() {
    use sigil_chain::alloy::signers::SignerSync;

    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let (dev, dev_provider) = net.wallet(DEV_KEY);
    let dev_auth = client.auth_sig(&dev, "localhost", HOUR).await.unwrap();
    let pkp = client
        .mint_with_auth_methods(&dev_provider, &dev_auth, &net.contracts(), &[], false)
        .await
        .unwrap();
    let verifier = "Lit.Actions.setResponse({response: String(ethers.utils.verifyMessage(message, signature).toLowerCase() === signer.toLowerCase())});";
    let (verifier_cid, _) = client.store_action(verifier).await.unwrap();
    let owner = format!("{:#x}", dev.address());
    let gate = format!(
        r#"(async () => {{
            const ok = await Lit.Actions.call({{ ipfsId: "{verifier_cid}", params: {{ message: jsParams.ticket, signature: jsParams.signature, signer: "{owner}" }} }});
            if (String(ok) === "true" && jsParams.ticket === Lit.Auth.sessionKey) Lit.Actions.setResponse({{ response: "true" }});
        }})();"#
    );
    let cid = sigil_primitives::Cid::of_file(gate.as_bytes()).unwrap();
    crate::harness::grant_action(&net, pkp.token_id, &cid);
    let custom = |ticket: &str, signature: &str| sigil_client::CustomAuth {
        code: Some(gate.clone()),
        ipfs_id: None,
        js_params: Some(json!({ "ticket": ticket, "signature": signature })),
    };
    let requests = [signing(&hex::encode(pkp.token_id.to_be_bytes::<32>()))];
    // The owner's ticket for the owner's session key works.
    let owners_key = SessionKey::random();
    let ticket = format!("0x{}", owners_key.public_hex());
    let signature = dev.sign_message_sync(ticket.as_bytes()).unwrap();
    let signature = format!("0x{}", hex::encode(signature.as_bytes()));
    client
        .pkp_session(
            owners_key,
            &pkp.public_key,
            &[],
            Some(custom(&ticket, &signature)),
            &requests,
            HOUR,
        )
        .await
        .unwrap();
    // A node that saw it replays the ticket for its own key.
    let granted = client
        .pkp_session(
            SessionKey::random(),
            &pkp.public_key,
            &[],
            Some(custom(&ticket, &signature)),
            &requests,
            HOUR,
        )
        .await;
    assert!(
        granted.is_err(),
        "ATTACK: the verifier child's \"true\" granted a session to a key the owner's ticket does not name"
    );
    net.stop().await;
}

/// The id the nodes give the attestation of a mint of `key_id` (its `attempt`): public, since
/// key ids of requested mints are on chain.
fn attestation_request_id(key_id: &[u8; 32], attempt: u8) -> [u8; 16] {
    use sigil_tss::k256::sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"sigil-attestation-request/v1");
    h.update(key_id);
    h.update([attempt]);
    let digest: [u8; 32] = h.finalize().into();
    digest[..16].try_into().unwrap()
}

/// A PKP owner sends `/web/pkp/sign` with the request ids the attestation of someone else's
/// requested mint will use (every attempt), hoping to bind them to its own digest first so the
/// victim's mint can never be attested. Sign request ids are tagged, so the victim mints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_sign_request_cannot_take_the_ids_of_a_pending_mints_attestation() {
    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let attacker = mint(&net, &client, 1).await;
    let (bob, bob_provider) = net.wallet(BOB_KEY);
    let bob_auth = client.auth_sig(&bob, "localhost", HOUR).await.unwrap();
    let salt = [5u8; 32];
    let key_id = sigil_chain::mint_key_id(bob.address(), &salt, None);
    client
        .request_mint(&bob_provider, &net.contracts(), key_id)
        .await
        .unwrap();
    // To every node at once, as a client signs (the allocator spends a presignature only for a
    // request t nodes ask for).
    for attempt in 0..sigil_primitives::ATTESTATION_ATTEMPTS {
        let body = json!({
            "keyId": hex::encode(attacker.key_ids[0]),
            "toSign": hex::encode([0xee; 32]),
            "requestId": hex::encode(attestation_request_id(&key_id, attempt)),
            "authSig": serde_json::to_value(&attacker.auth).unwrap(),
        })
        .to_string();
        let urls: Vec<String> = net.urls.iter().map(|url| format!("{url}/web/pkp/sign")).collect();
        futures::future::join_all(urls.iter().map(|url| post(url, body.clone()))).await;
    }
    let (attested, attestation) = client.mint_attestation(salt, None, &bob_auth).await.unwrap();
    assert_eq!(attested, key_id);
    let pubkey = uncompressed(&derive_public_key(client.ecdsa_root(), &KeyId(key_id)));
    let digest = sigil_chain::attestation_digest(client.chain_id().unwrap(), net.contracts().pkp_nft, &key_id, &pubkey);
    let signature = sigil_chain::alloy::primitives::Signature::from_raw(&attestation).unwrap();
    let signer = signature
        .recover_address_from_prehash(&sigil_chain::alloy::primitives::B256::from(digest))
        .unwrap();
    assert_eq!(signer.to_checksum(None), client.attester_address());
}
