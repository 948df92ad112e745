//! Passkeys (WebAuthn, Lit's auth method 3) on a real network: a PKP that owns itself, with a
//! passkey as its only auth method, gets a session from the network and sends an EIP-1559
//! transaction that anvil mines; an assertion replayed (before and after a node restarts), one
//! with a lower counter, one from another origin, one of a block the chain does not have and one
//! from an unregistered passkey are refused with their own codes.

use std::time::Duration;

use serde_json::Value;
use sigil::devnet::{DEV_WEBAUTHN_ORIGINS, DEV_WEBAUTHN_RP_ID};
use sigil_chain::alloy::network::{EthereumWallet, TransactionBuilder};
use sigil_chain::alloy::primitives::{B256, U256};
use sigil_chain::alloy::providers::{Provider, ProviderBuilder};
use sigil_chain::alloy::rpc::types::TransactionRequest;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::siwe::rfc3339;
use sigil_client::passkey::{Ceremony, SoftPasskey};
use sigil_client::pkp::NewAuthMethod;
use sigil_client::{Client, ClientError, PkpSigner, SessionKey};
use sigil_primitives::{AuthMethod, Resource, ResourceAbility, SignSessionKeyRequest};

use crate::harness::{post, Network, ALICE_KEY, DEV_KEY};

const READY: Duration = Duration::from_secs(120);
const HOUR: Duration = Duration::from_secs(3600);
const ORIGIN: &str = DEV_WEBAUTHN_ORIGINS[0];

fn signing(token: U256) -> ResourceAbility {
    ResourceAbility {
        resource: Resource {
            resource: hex::encode(token.to_be_bytes::<32>()),
            resource_prefix: "lit-pkp".into(),
        },
        ability: "pkp-signing".into(),
    }
}

/// A passkey assertion of the chain's latest block hash, made as `ceremony` describes.
async fn assertion(client: &Client, passkey: &mut SoftPasskey, edit: impl FnOnce(Ceremony) -> Ceremony) -> AuthMethod {
    let block: B256 = client.latest_blockhash().await.unwrap().parse().unwrap();
    AuthMethod {
        auth_method_type: 3,
        access_token: passkey.assert(&edit(Ceremony::new(block.as_slice(), ORIGIN))),
    }
}

/// Asks every node for a session on the strength of `method` and expects each refusal to carry
/// `code`.
async fn refused(client: &Client, public_key: &[u8; 65], token: U256, method: AuthMethod, code: &str) {
    match client
        .pkp_session(
            SessionKey::random(),
            public_key,
            &[method],
            None,
            &[signing(token)],
            HOUR,
        )
        .await
    {
        Err(ClientError::Auth(text)) => assert!(text.contains(code), "expected {code}: {text}"),
        other => panic!("expected {code}, got {other:?}"),
    }
}

/// `/web/sign_session_key` at one node, for `method`: its status and error code.
async fn ask_one(client: &Client, url: &str, public_key: &[u8; 65], token: U256, method: AuthMethod) -> (u16, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = SignSessionKeyRequest {
        session_key: hex::encode([9u8; 32]),
        auth_methods: vec![method],
        pkp_public_key: hex::encode(public_key),
        resource_ability_requests: vec![signing(token)],
        nonce: client.latest_blockhash().await.unwrap(),
        issued_at: rfc3339(now),
        expiration: rfc3339(now + 600),
        ..SignSessionKeyRequest::default()
    };
    let (status, answer): (u16, Value) = post(
        &format!("{url}/web/sign_session_key"),
        serde_json::to_string(&body).unwrap(),
    )
    .await;
    (status, answer["error"]["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkp_with_only_a_passkey_sends_a_mined_transaction_and_replays_and_other_origins_are_refused() {
    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let (dev, dev_provider) = net.wallet(DEV_KEY);
    let dev_auth = client.auth_sig(&dev, "localhost", HOUR).await.unwrap();

    // The PKP owns itself; its only auth method is the passkey, registered with its COSE key.
    let mut passkey = SoftPasskey::new([11; 32], DEV_WEBAUTHN_RP_ID);
    let pkp = client
        .mint_with_auth_methods(
            &dev_provider,
            &dev_auth,
            &net.contracts(),
            &[NewAuthMethod {
                kind: 3,
                id: passkey.auth_method_id().to_vec(),
                user_pubkey: passkey.cose_public_key(),
                scopes: 1,
            }],
            true,
        )
        .await
        .unwrap();
    let fund = TransactionRequest::default()
        .with_to(pkp.eth_address)
        .with_value(U256::from(10u128.pow(18)));
    assert!(dev_provider
        .send_transaction(fund)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .status());

    // The passkey gets a session, and the session signs a transaction anvil mines.
    let first = assertion(&client, &mut passkey, |c| c).await;
    let session = client
        .pkp_session(
            SessionKey::random(),
            &pkp.public_key,
            &[first.clone()],
            None,
            &[signing(pkp.token_id)],
            HOUR,
        )
        .await
        .unwrap();
    assert_eq!(session.capability().derived_via, "lit.bls");
    let alice = ALICE_KEY.parse::<PrivateKeySigner>().unwrap().address();
    let before = dev_provider.get_balance(alice).await.unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(PkpSigner::new(
            client.clone(),
            pkp.key_id,
            session,
        )))
        .connect_http(net.anvil.url.parse().unwrap());
    let receipt = provider
        .send_transaction(
            TransactionRequest::default()
                .with_to(alice)
                .with_value(U256::from(4242u64)),
        )
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.from, pkp.eth_address);
    let tx = provider
        .get_transaction_by_hash(receipt.transaction_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.inner.tx_type() as u8, 2, "an EIP-1559 transaction");
    assert_eq!(
        dev_provider.get_balance(alice).await.unwrap() - before,
        U256::from(4242u64)
    );

    // The same assertion again, a fresh one with a lower counter, one made on another page, and
    // one from a passkey the PKP never registered.
    refused(
        &client,
        &pkp.public_key,
        pkp.token_id,
        first.clone(),
        "WEBAUTHN_COUNTER_REPLAYED",
    )
    .await;
    let lower = assertion(&client, &mut passkey, |c| Ceremony { counter: Some(0), ..c }).await;
    refused(
        &client,
        &pkp.public_key,
        pkp.token_id,
        lower,
        "WEBAUTHN_COUNTER_REPLAYED",
    )
    .await;
    let phished = assertion(&client, &mut passkey, |c| Ceremony {
        origin: "https://evil.example",
        counter: Some(5),
        ..c
    })
    .await;
    refused(&client, &pkp.public_key, pkp.token_id, phished, "WEBAUTHN_WRONG_ORIGIN").await;
    let stale = AuthMethod {
        auth_method_type: 3,
        access_token: passkey.assert(&Ceremony {
            counter: Some(5),
            ..Ceremony::new(&[0x55; 32], ORIGIN)
        }),
    };
    refused(
        &client,
        &pkp.public_key,
        pkp.token_id,
        stale,
        "WEBAUTHN_STALE_CHALLENGE",
    )
    .await;
    let mut stranger = SoftPasskey::new([12; 32], DEV_WEBAUTHN_RP_ID);
    let unknown = assertion(&client, &mut stranger, |c| c).await;
    refused(
        &client,
        &pkp.public_key,
        pkp.token_id,
        unknown,
        "WEBAUTHN_UNKNOWN_CREDENTIAL",
    )
    .await;

    // The counter is durable: restarted, node 0 still refuses the first assertion, and takes
    // the passkey's next one.
    net.kill(0);
    net.restart(0);
    net.wait_keys(READY).await;
    let url = net.urls[0].clone();
    assert_eq!(
        ask_one(&client, &url, &pkp.public_key, pkp.token_id, first).await,
        (401, "WEBAUTHN_COUNTER_REPLAYED".to_owned())
    );
    let next = assertion(&client, &mut passkey, |c| Ceremony { counter: Some(6), ..c }).await;
    assert_eq!(ask_one(&client, &url, &pkp.public_key, pkp.token_id, next).await.0, 200);
    net.stop().await;
}
