//! PKPs on a real chain (anvil): minting, permissions, transfers, Mint/Grant/Burn, transactions
//! from PKP addresses, and auth signatures that must be refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use sigil_chain::alloy::dyn_abi::TypedData;
use sigil_chain::alloy::network::TransactionBuilder;
use sigil_chain::alloy::primitives::{Address, Bytes, U256};
use sigil_chain::alloy::providers::Provider;
use sigil_chain::alloy::rpc::types::TransactionRequest;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::alloy::signers::Signer;
use sigil_chain::bindings::PKPPermissions;
use sigil_chain::siwe::{AuthSig, SiweMessage};
use sigil_client::{Client, KeyRef, PkpSigner};

use crate::harness::{cli, post, Network, ALICE_KEY, BOB_KEY, DEV_KEY};

const READY: Duration = Duration::from_secs(120);

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn cli_json(net: &Network, key: &str, args: &[&str]) -> serde_json::Value {
    let (ok, stdout, stderr) = cli(net, key, args);
    assert!(ok, "sigil {args:?} failed:\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn address(key: &str) -> Address {
    key.parse::<PrivateKeySigner>().unwrap().address()
}

async fn auth(client: &Client, key: &str) -> AuthSig {
    let signer: PrivateKeySigner = key.parse().unwrap();
    client
        .auth_sig(&signer, "localhost", Duration::from_secs(600))
        .await
        .unwrap()
}

fn key_id(minted: &serde_json::Value) -> [u8; 32] {
    hex::decode(minted["keyId"].as_str().unwrap().trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap()
}

/// Signs a random hash as the holder of `auth`; `Ok` only if it verifies.
async fn try_sign(client: &Client, key_id: [u8; 32], auth: &AuthSig) -> Result<(), String> {
    let hash = random::<32>();
    let outcome = client
        .pkp_sign(KeyRef::KeyId(key_id), hash, auth)
        .await
        .map_err(|e| e.to_string())?;
    assert!(outcome
        .signature
        .verify(&client.pkp_public_key(KeyRef::KeyId(key_id)), &hash));
    Ok(())
}

/// One raw sign request to one node: (status, error code).
async fn post_sign(url: &str, key_id: [u8; 32], auth: Option<&AuthSig>) -> (u16, String) {
    let body = serde_json::json!({
        "keyId": hex::encode(key_id),
        "toSign": hex::encode(random::<32>()),
        "requestId": hex::encode(random::<16>()),
    });
    post_code(&format!("{url}/web/pkp/sign"), body, auth).await
}

/// POSTs `body` (with `auth` as its `authSig`, if given): (status, error code or "").
async fn post_code(url: &str, mut body: serde_json::Value, auth: Option<&AuthSig>) -> (u16, String) {
    if let Some(auth) = auth {
        body["authSig"] = serde_json::to_value(auth).unwrap();
    }
    let (status, json) = post(url, body.to_string()).await;
    (status, json["error"]["code"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_permitted_addresses_sign_strangers_do_not_and_transfers_move_control() {
    let mut net = Network::start(3, 16, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let (dev, alice, bob) = (address(DEV_KEY), address(ALICE_KEY), address(BOB_KEY));

    let minted = cli_json(&net, DEV_KEY, &["pkp", "mint", "--json"]);
    for field in ["tokenId", "keyId", "publicKey", "ethAddress"] {
        assert!(minted[field].as_str().unwrap().starts_with("0x"), "{minted}");
    }
    let token = minted["tokenId"].as_str().unwrap();
    let key = key_id(&minted);
    let expected = sigil_tss::derive::checksum_address(&sigil_tss::derive::eth_address(
        &client.pkp_public_key(KeyRef::KeyId(key)),
    ));
    assert_eq!(minted["ethAddress"], expected.as_str());

    // The owner signs; a stranger is refused with the reason.
    let (dev_auth, alice_auth, bob_auth) = (
        auth(&client, DEV_KEY).await,
        auth(&client, ALICE_KEY).await,
        auth(&client, BOB_KEY).await,
    );
    try_sign(&client, key, &dev_auth).await.unwrap();
    let refused = try_sign(&client, key, &alice_auth).await.unwrap_err();
    assert!(refused.contains("403 NOT_PERMITTED"), "{refused}");
    assert!(refused.contains(&alice.to_string()), "{refused}");
    assert_eq!(
        post_sign(&net.urls[0], key, Some(&alice_auth)).await,
        (403, "NOT_PERMITTED".into())
    );
    assert_eq!(post_sign(&net.urls[0], key, None).await, (401, "AUTH_MISSING".into()));
    // An unminted key id is refused too.
    assert_eq!(
        post_sign(&net.urls[0], random::<32>(), Some(&dev_auth)).await,
        (403, "NOT_MINTED".into())
    );

    // grant-address: now Alice signs.
    let (ok, _, stderr) = cli(&net, DEV_KEY, &["pkp", "grant-address", token, &alice.to_string()]);
    assert!(ok, "{stderr}");
    try_sign(&client, key, &alice_auth).await.unwrap();

    // transfer: the old owner is refused, the new owner signs, Alice keeps her permission.
    let (ok, _, stderr) = cli(&net, DEV_KEY, &["pkp", "transfer", token, &bob.to_string()]);
    assert!(ok, "{stderr}");
    let refused = try_sign(&client, key, &dev_auth).await.unwrap_err();
    assert!(refused.contains("403 NOT_PERMITTED"), "{refused}");
    try_sign(&client, key, &bob_auth).await.unwrap();
    try_sign(&client, key, &alice_auth).await.unwrap();
    // An auth method permitted for personal messages only (scope 2): messages yes, raw hashes no.
    let carol: PrivateKeySigner = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
        .parse()
        .unwrap();
    let (_, bob_wallet) = net.wallet(BOB_KEY);
    let token_id = U256::from_str_radix(token.trim_start_matches("0x"), 16).unwrap();
    PKPPermissions::new(net.contracts().pkp_permissions, &bob_wallet)
        .addPermittedAuthMethod(
            token_id,
            U256::from(1),
            Bytes::copy_from_slice(carol.address().as_slice()),
            U256::from(2),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let carol_auth = client
        .auth_sig(&carol, "localhost", Duration::from_secs(600))
        .await
        .unwrap();
    let refused = try_sign(&client, key, &carol_auth).await.unwrap_err();
    assert!(
        refused.contains("SCOPE_TOO_NARROW") && refused.contains("personal messages only"),
        "{refused}"
    );
    let signed = client
        .pkp_sign_message(KeyRef::KeyId(key), b"gm from a scoped key", &carol_auth)
        .await
        .unwrap();
    let pkp_address: Address = minted["ethAddress"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        sigil_client::pkp::to_alloy(&signed.signature)
            .recover_address_from_msg(b"gm from a scoped key")
            .unwrap(),
        pkp_address
    );

    // grant-action by the new owner, seen by `show`.
    let cid = sigil_primitives::Cid::of_file(b"LitActions.setResponse({response: 'x'});").unwrap();
    let (ok, _, stderr) = cli(
        &net,
        BOB_KEY,
        &["pkp", "grant-action", token, "--cid", &cid.to_string()],
    );
    assert!(ok, "{stderr}");

    // … and only the new owner changes permissions.
    let (ok, _, _) = cli(&net, DEV_KEY, &["pkp", "grant-address", token, &dev.to_string()]);
    assert!(!ok, "the old owner changed permissions");

    let shown = cli_json(&net, DEV_KEY, &["pkp", "show", token, "--json"]);
    assert_eq!(shown["owner"], bob.to_checksum(None).as_str());
    assert_eq!(shown["burned"], false);
    assert_eq!(shown["publicKey"], minted["publicKey"]);
    assert_eq!(
        shown["permittedAddresses"],
        serde_json::json!([alice.to_checksum(None)])
    );

    // Mint/Grant/Burn: no owner, the action is permitted, and nothing can change that.
    let action = net.dir.path().join("action.js");
    std::fs::write(
        &action,
        "const go = async () => { LitActions.setResponse({response: 'hi'}); };\ngo();\n",
    )
    .unwrap();
    let action_path = action.to_str().unwrap();
    let burned = cli_json(
        &net,
        DEV_KEY,
        &["pkp", "mint-grant-burn", "--action", action_path, "--json"],
    );
    let cid = sigil_primitives::Cid::of_file(&std::fs::read(&action).unwrap()).unwrap();
    assert_eq!(burned["action"], cid.to_string().as_str());
    let burned_token = burned["tokenId"].as_str().unwrap();
    let shown = cli_json(&net, DEV_KEY, &["pkp", "show", burned_token, "--json"]);
    assert_eq!(shown["burned"], true, "{shown}");
    assert_eq!(shown["owner"], serde_json::Value::Null);
    assert_eq!(shown["permittedActions"], serde_json::json!([cid.to_string()]));
    let (ok, _, stderr) = cli(&net, DEV_KEY, &["pkp", "grant-address", burned_token, &dev.to_string()]);
    assert!(!ok && !stderr.is_empty(), "a burned PKP's permissions changed");
    let (ok, _, _) = cli(
        &net,
        DEV_KEY,
        &["pkp", "grant-action", burned_token, "--cid", &cid.to_string()],
    );
    assert!(!ok, "a burned PKP's permissions changed");
    let (_, provider) = net.wallet(DEV_KEY);
    let token_id = U256::from_str_radix(burned_token.trim_start_matches("0x"), 16).unwrap();
    let remove = PKPPermissions::new(net.contracts().pkp_permissions, &provider)
        .removePermittedAction(token_id, Bytes::copy_from_slice(cid.as_bytes()))
        .send()
        .await;
    assert!(remove.is_err(), "removing the action from a burned PKP did not revert");
    let shown = cli_json(&net, DEV_KEY, &["pkp", "show", burned_token, "--json"]);
    assert_eq!(shown["permittedActions"], serde_json::json!([cid.to_string()]));
    // Nobody signs with it directly: not even its minter.
    let refused = try_sign(&client, key_id(&burned), &dev_auth).await.unwrap_err();
    assert!(refused.contains("burned"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkp_sends_a_mined_eip1559_transaction_and_signs_messages_and_typed_data() {
    let mut net = Network::start(3, 16, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let minted = cli_json(&net, DEV_KEY, &["pkp", "mint", "--json"]);
    let token = minted["tokenId"].as_str().unwrap();
    let pkp_address: Address = minted["ethAddress"].as_str().unwrap().parse().unwrap();

    // Fund the PKP address from the dev wallet.
    let (_, dev) = net.wallet(DEV_KEY);
    let fund = TransactionRequest::default()
        .with_to(pkp_address)
        .with_value(U256::from(10u128.pow(18)));
    let receipt = dev.send_transaction(fund).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());

    let alice = address(ALICE_KEY);
    let before = dev.get_balance(alice).await.unwrap();
    let sent = cli_json(
        &net,
        DEV_KEY,
        &[
            "pkp",
            "send-eth",
            token,
            "--to",
            &alice.to_string(),
            "--value",
            "123456789",
            "--json",
        ],
    );
    let tx_hash = sent["txHash"].as_str().unwrap().parse().unwrap();
    let receipt = dev.get_transaction_receipt(tx_hash).await.unwrap().unwrap();
    assert!(receipt.status(), "{sent}");
    assert_eq!(receipt.from, pkp_address);
    let tx = dev.get_transaction_by_hash(tx_hash).await.unwrap().unwrap();
    assert_eq!(tx.inner.tx_type() as u8, 2, "an EIP-1559 transaction");
    assert_eq!(
        dev.get_balance(alice).await.unwrap() - before,
        U256::from(123_456_789u64)
    );

    // The alloy signer: EIP-191 messages and EIP-712 typed data recover to the PKP address.
    let signer = PkpSigner::new(client.clone(), key_id(&minted), auth(&client, DEV_KEY).await);
    assert_eq!(signer.address(), pkp_address);
    let signature = signer.sign_message(b"hello from a PKP").await.unwrap();
    assert_eq!(
        signature.recover_address_from_msg(b"hello from a PKP").unwrap(),
        pkp_address
    );
    let typed: TypedData = serde_json::from_value(serde_json::json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}
            ],
            "Mail": [{"name": "to", "type": "address"}, {"name": "contents", "type": "string"}]
        },
        "primaryType": "Mail",
        "domain": {"name": "Sigil test", "version": "1", "chainId": 31337},
        "message": {"to": alice.to_string(), "contents": "typed"}
    }))
    .unwrap();
    let signature = signer.sign_dynamic_typed_data(&typed).await.unwrap();
    assert_eq!(
        signature
            .recover_address_from_prehash(&typed.eip712_signing_hash().unwrap())
            .unwrap(),
        pkp_address
    );
    // A stranger's signer gets the node's refusal.
    let stranger = PkpSigner::new(client.clone(), key_id(&minted), auth(&client, BOB_KEY).await);
    let refused = stranger.sign_message(b"not mine").await.unwrap_err().to_string();
    assert!(refused.contains("NOT_PERMITTED"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_wrong_domain_and_stale_nonce_auth_sigs_are_refused_with_distinct_errors() {
    let mut net = Network::start(3, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let minted = cli_json(&net, DEV_KEY, &["pkp", "mint", "--json"]);
    let key = key_id(&minted);
    let signer: PrivateKeySigner = DEV_KEY.parse().unwrap();
    let good = auth(&client, DEV_KEY).await;
    let message = SiweMessage::parse(&good.signed_message).unwrap();
    let url = &net.urls[1];
    assert_eq!(post_sign(url, key, Some(&good)).await.0, 200);

    let resign = |edit: &dyn Fn(&mut SiweMessage)| {
        let mut m = message.clone();
        edit(&mut m);
        AuthSig::create(&signer, &m).unwrap()
    };
    let expired = resign(&|m| {
        m.issued_at = now() - 3600;
        m.expiration_time = Some(now() - 60);
    });
    let mut forged = good.clone();
    forged.signed_message = forged
        .signed_message
        .replace("Sign with my Sigil PKPs.", "Sign anything at all.");
    let wrong_domain = resign(&|m| m.domain = "evil.example".into());
    let unknown_nonce = resign(&|m| m.nonce = format!("0x{}", hex::encode(random::<32>())));

    let mut codes = Vec::new();
    for (what, auth, code) in [
        ("expired", &expired, "AUTH_EXPIRED"),
        ("forged", &forged, "AUTH_BAD_SIGNATURE"),
        ("wrong domain", &wrong_domain, "AUTH_WRONG_DOMAIN"),
        ("unknown nonce", &unknown_nonce, "AUTH_STALE_NONCE"),
    ] {
        assert_eq!(post_sign(url, key, Some(auth)).await, (401, code.to_string()), "{what}");
        codes.push(code);
    }
    // Attestations need an auth signature too, and are refused for keys that exist.
    let attest = |auth: Option<&AuthSig>, salt: [u8; 32]| {
        let body = serde_json::json!({"salt": hex::encode(salt), "requestId": hex::encode(random::<16>())});
        let url = format!("{url}/web/pkp/mint-attestation");
        let auth = auth.cloned();
        async move { post_code(&url, body, auth.as_ref()).await }
    };
    assert_eq!(attest(None, random::<32>()).await, (401, "AUTH_MISSING".into()));
    assert_eq!(
        attest(Some(&expired), random::<32>()).await,
        (401, "AUTH_EXPIRED".into())
    );
    let (_, provider) = net.wallet(DEV_KEY);
    let salt = random::<32>();
    let call = sigil_chain::bindings::PKPNFT::new(net.contracts().pkp_nft, &provider);
    // Without a mint request on chain, nothing is attested (and no presignature spent).
    assert_eq!(attest(Some(&good), salt).await, (403, "MINT_NOT_REQUESTED".into()));
    let key_id = client.key_id_for(&good, &salt, None).unwrap();
    client.request_mint(&provider, &net.contracts(), key_id).await.unwrap();
    let (key, attestation) = client.mint_attestation(salt, None, &good).await.unwrap();
    let pubkey = sigil_tss::derive::uncompressed(&client.pkp_public_key(KeyRef::KeyId(key)));
    call.mint(
        salt.into(),
        Bytes::copy_from_slice(&pubkey),
        Bytes::copy_from_slice(&attestation),
    )
    .send()
    .await
    .unwrap()
    .get_receipt()
    .await
    .unwrap();
    assert_eq!(attest(Some(&good), salt).await, (409, "ALREADY_MINTED".into()));
    let too_long = resign(&|m| m.expiration_time = Some(m.issued_at + 8 * 24 * 3600));
    assert_eq!(
        post_sign(url, key, Some(&too_long)).await,
        (401, "AUTH_LIFETIME_TOO_LONG".into())
    );

    // The client's error carries the reason too.
    let refused = try_sign(&client, key, &expired).await.unwrap_err();
    assert!(
        refused.contains("AUTH_EXPIRED") && refused.contains("expired at"),
        "{refused}"
    );

    // Stale: an hour of chain time later, the nonce block is too old.
    net.anvil.rpc("evm_increaseTime", serde_json::json!([3600])).await;
    net.anvil.rpc("evm_mine", serde_json::json!([])).await;
    assert_eq!(post_sign(url, key, Some(&good)).await, (401, "AUTH_STALE_NONCE".into()));
    let refused = try_sign(&client, key, &good).await.unwrap_err();
    assert!(refused.contains("older than the head"), "{refused}");
    codes.push("AUTH_STALE_NONCE");
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 4, "distinct codes: {codes:?}");
    // A fresh auth signature works again.
    try_sign(&client, key, &auth(&client, DEV_KEY).await).await.unwrap();
}
