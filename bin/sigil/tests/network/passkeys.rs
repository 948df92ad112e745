//! Passkeys (WebAuthn, Lit's auth method 3) on a real network: a PKP that owns itself, with a
//! passkey as its only auth method, gets a session from the network and sends an EIP-1559
//! transaction that anvil mines. Refused with their own codes: the assertion replayed (also at a
//! node restarted since), one with a lower counter, one made on another page, one of a block the
//! chain does not have, one from a passkey the PKP never registered, the assertion presented for
//! another session key (a node that saw it cannot buy itself a session), and one that signed the
//! block hash alone.

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
use sigil_client::{Client, PkpSigner, SessionKey};
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

/// A passkey assertion for a session of `session_key` (hex): the challenge is the chain's latest
/// block hash followed by the key, and the rest as `edit` makes the ceremony.
async fn assertion(
    client: &Client,
    passkey: &mut SoftPasskey,
    session_key: &str,
    edit: impl FnOnce(Ceremony) -> Ceremony,
) -> AuthMethod {
    let block: B256 = client.latest_blockhash().await.unwrap().parse().unwrap();
    let challenge = [block.as_slice(), &hex::decode(session_key).unwrap()].concat();
    AuthMethod {
        auth_method_type: 3,
        access_token: passkey.assert(&edit(Ceremony::new(&challenge, ORIGIN))),
    }
}

/// `/web/sign_session_key` at the node at `url`, for `method` and session key `session_key`
/// (hex): the status and the error code.
async fn ask(
    client: &Client,
    url: &str,
    pkp: &[u8; 65],
    token: U256,
    session_key: &str,
    method: &AuthMethod,
) -> (u16, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = SignSessionKeyRequest {
        session_key: session_key.to_owned(),
        auth_methods: vec![method.clone()],
        pkp_public_key: hex::encode(pkp),
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

/// Every node refuses `method` for `session_key` with `status` and `code`.
async fn refused_by_all(
    net: &Network,
    client: &Client,
    pkp: &[u8; 65],
    token: U256,
    session_key: &str,
    method: &AuthMethod,
    (status, code): (u16, &str),
) {
    for url in &net.urls {
        assert_eq!(
            ask(client, url, pkp, token, session_key, method).await,
            (status, code.to_owned()),
            "{url}"
        );
    }
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
    let (key, token) = (pkp.public_key, pkp.token_id);
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
    let session_key = SessionKey::random();
    let granted = session_key.public_hex();
    let first = assertion(&client, &mut passkey, &granted, |c| c).await;
    let session = client
        .pkp_session(
            session_key,
            &key,
            std::slice::from_ref(&first),
            None,
            &[signing(token)],
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

    let replayed = (401, "WEBAUTHN_COUNTER_REPLAYED");
    // The same assertion again, for the same session key.
    refused_by_all(&net, &client, &key, token, &granted, &first, replayed).await;
    // The same assertion for another session key: what a node that saw it would try.
    let thief = hex::encode([0x77; 32]);
    let not_for = (401, "WEBAUTHN_NOT_FOR_THIS_SESSION");
    refused_by_all(&net, &client, &key, token, &thief, &first, not_for).await;
    // As Lit's clients sign: the block hash alone, bound to no session.
    let block: B256 = client.latest_blockhash().await.unwrap().parse().unwrap();
    let unbound = AuthMethod {
        auth_method_type: 3,
        access_token: passkey.get(block.as_slice(), ORIGIN),
    };
    refused_by_all(&net, &client, &key, token, &granted, &unbound, not_for).await;
    // A fresh assertion with a lower counter.
    let lower = assertion(&client, &mut passkey, &granted, |c| Ceremony { counter: Some(0), ..c }).await;
    refused_by_all(&net, &client, &key, token, &granted, &lower, replayed).await;
    // Made on another page.
    let phished = assertion(&client, &mut passkey, &granted, |c| Ceremony {
        origin: "https://evil.example",
        counter: Some(10),
        ..c
    })
    .await;
    refused_by_all(
        &net,
        &client,
        &key,
        token,
        &granted,
        &phished,
        (401, "WEBAUTHN_WRONG_ORIGIN"),
    )
    .await;
    // Of a block the chain does not have.
    let stale = AuthMethod {
        auth_method_type: 3,
        access_token: passkey.assert(&Ceremony {
            counter: Some(10),
            ..Ceremony::new(&[&[0x55; 32][..], &hex::decode(&granted).unwrap()].concat(), ORIGIN)
        }),
    };
    refused_by_all(
        &net,
        &client,
        &key,
        token,
        &granted,
        &stale,
        (401, "WEBAUTHN_STALE_CHALLENGE"),
    )
    .await;
    // From a passkey the PKP never registered.
    let mut stranger = SoftPasskey::new([12; 32], DEV_WEBAUTHN_RP_ID);
    let unknown = assertion(&client, &mut stranger, &granted, |c| c).await;
    refused_by_all(
        &net,
        &client,
        &key,
        token,
        &granted,
        &unknown,
        (403, "WEBAUTHN_UNKNOWN_CREDENTIAL"),
    )
    .await;

    // The counters are durable: restarted, node 0 still refuses the first assertion, and takes
    // the passkey's next one.
    net.kill(0);
    net.restart(0);
    net.wait_keys(READY).await;
    let url = net.urls[0].clone();
    assert_eq!(
        ask(&client, &url, &key, token, &granted, &first).await,
        (401, "WEBAUTHN_COUNTER_REPLAYED".to_owned())
    );
    let next = assertion(&client, &mut passkey, &granted, |c| Ceremony { counter: Some(11), ..c }).await;
    assert_eq!(
        ask(&client, &url, &key, token, &granted, &next).await,
        (200, String::new())
    );
    net.stop().await;
}
