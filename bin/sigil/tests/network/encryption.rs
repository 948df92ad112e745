//! Threshold encryption on a real network (node processes, anvil): conditions on balances, an
//! NFT, a contract call, time, `or`, and an action; tampering; a node with bad shares; too few
//! nodes; and an action that decrypts a secret, uses it and signs the answer.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use sha3::{Digest, Keccak256};
use sigil_chain::alloy::dyn_abi::{DynSolValue, JsonAbiExt};
use sigil_chain::alloy::json_abi::Function;
use sigil_chain::alloy::primitives::{Address, U256};
use sigil_chain::alloy::providers::DynProvider;
use sigil_chain::alloy::rpc::types::TransactionRequest;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_client::{ActionCode, AuthSig, Client, ClientError, Encrypted};
use sigil_tss::ecdsa::EcdsaSignature;

use crate::harness::{cli, http_server, Network, ALICE_KEY, BOB_KEY, DEV_KEY};

const READY: Duration = Duration::from_secs(120);
const CHAIN: &str = "sigil";

pub fn basic(standard: &str, contract: &str, method: &str, params: &[&str], comparator: &str, value: &str) -> Value {
    json!({
        "contractAddress": contract, "standardContractType": standard, "chain": CHAIN, "method": method,
        "parameters": params, "returnValueTest": { "comparator": comparator, "value": value }
    })
}

fn at_least_one_eth() -> Value {
    basic(
        "",
        "",
        "eth_getBalance",
        &[":userAddress", "latest"],
        ">=",
        "1000000000000000000",
    )
}

fn owns(nft: Address, token: u64) -> Value {
    basic(
        "ERC721",
        &format!("{nft:#x}"),
        "ownerOf",
        &[&token.to_string()],
        "=",
        ":userAddress",
    )
}

pub fn timestamp(comparator: &str, value: u64) -> Value {
    basic(
        "timestamp",
        "",
        "eth_getBlockByNumber",
        &["latest"],
        comparator,
        &value.to_string(),
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn wallet(key: &str) -> PrivateKeySigner {
    key.parse().unwrap()
}

/// A wallet that holds nothing on anvil.
fn empty_wallet() -> PrivateKeySigner {
    let key: [u8; 32] = Keccak256::digest(b"sigil test: an empty wallet").into();
    PrivateKeySigner::from_slice(&key).unwrap()
}

async fn auth(client: &Client, signer: &PrivateKeySigner) -> AuthSig {
    client
        .auth_sig(signer, "localhost", Duration::from_secs(600))
        .await
        .unwrap()
}

/// Decrypts and expects `plaintext`.
async fn opens(client: &Client, encrypted: &Encrypted, who: &AuthSig, plaintext: &[u8]) {
    let decrypted = client.decrypt(encrypted, Some(who)).await.unwrap();
    assert_eq!(decrypted.plaintext.as_slice(), plaintext);
}

/// Decrypts and expects a refusal with `code`; returns the message.
async fn refused(client: &Client, encrypted: &Encrypted, who: Option<&AuthSig>, code: &str) -> String {
    match client.decrypt(encrypted, who.map(|a| a as _)).await {
        Err(ClientError::Decrypt { code: got, message, .. }) => {
            assert_eq!(got, code, "{message}");
            message
        }
        Ok(d) => panic!("decrypted {} bytes; expected {code}", d.plaintext.len()),
        Err(e) => panic!("expected {code}, got {e}"),
    }
}

fn artifacts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/out")
}

/// Deploys the test NFT and mints `token` to `owner`.
async fn nft_minted_to(provider: &DynProvider, owner: Address, token: u64) -> Address {
    let nft = sigil_chain::deploy::create(provider, &artifacts(), "TestNFT", Vec::new())
        .await
        .unwrap();
    let data = Function::parse("function mint(address,uint256)")
        .unwrap()
        .abi_encode_input(&[DynSolValue::Address(owner), DynSolValue::Uint(U256::from(token), 256)])
        .unwrap();
    let mint = TransactionRequest::default().to(nft).input(data.into());
    sigil_chain::deploy::send(provider, mint, "TestNFT.mint").await.unwrap();
    nft
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_decide_who_decrypts() {
    let mut net = Network::start(5, 2, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let dir = net.dir.path().to_path_buf();
    let alice = auth(&client, &wallet(ALICE_KEY)).await;
    let bob = auth(&client, &wallet(BOB_KEY)).await;

    // "Holds at least 1 ETH", through the CLI: the funded dev wallet decrypts, an empty one is
    // refused with the condition named.
    let conditions = dir.join("one-eth.json");
    std::fs::write(
        &conditions,
        json!({ "accessControlConditions": [at_least_one_eth()] }).to_string(),
    )
    .unwrap();
    let plain = dir.join("plain.txt");
    std::fs::write(&plain, "the launch code is 0000").unwrap();
    let sealed = dir.join("sealed.json");
    let (ok, _, stderr) = cli(
        &net,
        DEV_KEY,
        &[
            "encrypt",
            "--conditions",
            conditions.to_str().unwrap(),
            "--in",
            plain.to_str().unwrap(),
            "--out",
            sealed.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    let file = std::fs::read_to_string(&sealed).unwrap();
    assert!(!file.contains("launch code"), "{file}");
    let opened = dir.join("opened.txt");
    let args = [
        "decrypt",
        "--in",
        sealed.to_str().unwrap(),
        "--out",
        opened.to_str().unwrap(),
    ];
    let (ok, _, stderr) = cli(&net, DEV_KEY, &args);
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), "the launch code is 0000");
    let empty = format!("0x{}", hex::encode(empty_wallet().to_bytes()));
    let (ok, _, stderr) = cli(&net, &empty, &args);
    assert!(!ok);
    assert!(stderr.contains("CONDITION_FAILED"), "{stderr}");
    assert!(stderr.contains("accessControlConditions[0]"), "{stderr}");
    assert!(stderr.contains("found 0"), "{stderr}");

    // ERC-721 ownership of a test NFT deployed here: Alice owns token 1, Bob does not.
    let (_, dev) = net.wallet(DEV_KEY);
    let nft = nft_minted_to(&dev, wallet(ALICE_KEY).address(), 1).await;
    let secret = b"only for the holder of token 1";
    let sealed = client.encrypt(&json!([owns(nft, 1)]), secret).unwrap();
    opens(&client, &sealed, &alice, secret).await;
    let why = refused(&client, &sealed, Some(&bob), "CONDITION_FAILED").await;
    assert!(why.contains("ownerOf(1)"), "{why}");

    // evmContract: any view function, here balanceOf(address) with its ABI.
    let balance_of = json!({
        "conditionType": "evmContract",
        "contractAddress": format!("{nft:#x}"),
        "functionName": "balanceOf",
        "functionParams": [":userAddress"],
        "functionAbi": {
            "type": "function", "name": "balanceOf", "stateMutability": "view",
            "inputs": [{ "name": "owner", "type": "address" }],
            "outputs": [{ "name": "", "type": "uint256" }]
        },
        "chain": CHAIN,
        "returnValueTest": { "key": "", "comparator": ">", "value": "0" }
    });
    let sealed = client
        .encrypt(&json!({ "evmContractConditions": [balance_of] }), b"holders only")
        .unwrap();
    opens(&client, &sealed, &alice, b"holders only").await;
    refused(&client, &sealed, Some(&bob), "CONDITION_FAILED").await;

    // Time: a condition that has held since an hour ago, and one that never will.
    let sealed = client
        .encrypt(&json!([timestamp(">=", now() - 3600)]), b"published")
        .unwrap();
    opens(&client, &sealed, &bob, b"published").await;
    let sealed = client.encrypt(&json!([timestamp("<", 1)]), b"never").unwrap();
    refused(&client, &sealed, Some(&bob), "CONDITION_FAILED").await;

    // `or` of two failing conditions and one that holds for Alice only.
    let any = json!([
        basic("", "", "eth_getBalance", &[":userAddress", "latest"], ">=", "1000000000000000000000000000"),
        { "operator": "or" },
        timestamp("<", 1),
        { "operator": "or" },
        owns(nft, 1),
    ]);
    let sealed = client.encrypt(&any, b"one of three").unwrap();
    opens(&client, &sealed, &alice, b"one of three").await;
    let why = refused(&client, &sealed, Some(&bob), "CONDITION_FAILED").await;
    assert!(why.contains("none holds"), "{why}");

    // An action condition: the nodes run the action and decrypt only when it returns true.
    let gate = "// Allows decryption above a threshold.\nconst go = async (limit) => Number(limit) > 40;\n";
    let (cid, _) = client.store_action(gate).await.unwrap();
    let action = |limit: &str| {
        json!([basic(
            "LitAction",
            &format!("ipfs://{cid}"),
            "go",
            &[limit],
            "=",
            "true"
        )])
    };
    let sealed = client.encrypt(&action("41"), b"gated by an action").unwrap();
    opens(&client, &sealed, &bob, b"gated by an action").await;
    let sealed = client.encrypt(&action("40"), b"gated by an action").unwrap();
    let why = refused(&client, &sealed, Some(&bob), "CONDITION_FAILED").await;
    assert!(why.contains("found \"false\""), "{why}");

    // Tampering gives an error, never garbage: a flipped ciphertext byte, another data hash,
    // other conditions.
    let sealed = client.encrypt(&json!([timestamp(">=", 1)]), b"intact").unwrap();
    opens(&client, &sealed, &bob, b"intact").await;
    let mut bytes = base64_decode(&sealed.ciphertext);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut flipped = sealed.clone();
    flipped.ciphertext = base64_encode(&bytes);
    let why = refused(&client, &flipped, Some(&bob), "DECRYPT_FAILED").await;
    assert!(why.contains("altered"), "{why}");
    let mut other_hash = sealed.clone();
    other_hash.data_to_encrypt_hash = hex::encode([7u8; 32]);
    refused(&client, &other_hash, Some(&bob), "DECRYPT_FAILED").await;
    let mut other_conditions = sealed.clone();
    other_conditions.unified_access_control_conditions = Some(json!([timestamp(">=", 2)]));
    refused(&client, &other_conditions, Some(&bob), "DECRYPT_FAILED").await;

    // Malformed conditions: refused by the client at encrypt time and by a node at decrypt
    // time, with the path named.
    let mut bad = timestamp(">=", 1);
    bad["returnValueTest"]["comparator"] = json!("=>");
    let error = client
        .encrypt(&json!([timestamp(">=", 1), { "operator": "and" }, bad]), b"x")
        .unwrap_err();
    assert!(error.to_string().contains("[2].returnValueTest.comparator"), "{error}");
    let (status, body) = crate::harness::post(
        &format!("{}/web/encryption/sign", net.urls[0]),
        json!({ "accessControlConditions": [bad], "dataToEncryptHash": hex::encode([0u8; 32]) }).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "BAD_CONDITION");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("accessControlConditions[0].returnValueTest.comparator"),
        "{body}"
    );
    let (status, body) =
        crate::harness::post(&format!("{}/web/encryption/sign", net.urls[0]), "{\"accessControl").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "BAD_JSON");

    // Fewer than t nodes: with two of five down, three shares cannot decrypt.
    net.kill(3);
    net.kill(4);
    let why = refused(&client, &sealed, Some(&bob), "NOT_ENOUGH_SHARES").await;
    assert!(why.contains("3 valid decryption shares, 4 needed"), "{why}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_share_is_named_and_decryption_still_succeeds() {
    // Node 3 of 4 releases shares that do not verify; t = 3.
    let mut net = Network::start(4, 2, |i| {
        if i == 3 {
            vec!["--fault".into(), "corrupt-signature-shares".into()]
        } else {
            Vec::new()
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    assert_eq!(client.threshold(), 3);
    let bob = auth(&client, &wallet(BOB_KEY)).await;
    let conditions = json!([timestamp(">=", 1)]);
    for i in 0..3 {
        let secret = format!("message {i}");
        let sealed = client.encrypt(&conditions, secret.as_bytes()).unwrap();
        let decrypted = client.decrypt(&sealed, Some(&bob)).await.unwrap();
        assert_eq!(decrypted.plaintext.as_slice(), secret.as_bytes());
        assert!(!decrypted.shares_from.contains(&3), "{:?}", decrypted.shares_from);
        // Node 3 is named whenever its share arrived before the decryption finished (a share
        // that arrives after t good ones is not needed, so not looked at).
        for failure in &decrypted.failures {
            assert_eq!(failure.node, Some(3), "{failure}");
            assert!(failure.reason.contains("bad decryption share"), "{failure}");
        }
    }
    // A client that reaches nodes 0, 1 and 3 only gets two good shares of three needed: it
    // cannot decrypt, and it says which share was bad.
    let three = Client::connect_via(
        &net.chain(),
        &[0, 1, 3]
            .into_iter()
            .map(|i| (i, net.urls[i as usize].clone()))
            .collect(),
    )
    .await
    .unwrap();
    let sealed = three.encrypt(&conditions, b"needs three").unwrap();
    match three.decrypt(&sealed, Some(&bob)).await {
        Err(ClientError::Decrypt { code, failures, .. }) => {
            assert_eq!(code, "NOT_ENOUGH_SHARES");
            let named: Vec<_> = failures.iter().map(|f| f.node).collect();
            assert_eq!(named, vec![Some(3)], "{failures:?}");
            assert!(failures[0].reason.contains("bad decryption share"), "{failures:?}");
        }
        Ok(_) => panic!("decrypted with a bad share among three"),
        Err(e) => panic!("{e}"),
    }
    // Inside an action each node checks the shares it receives, so the bad one is skipped too.
    let sealed = client.encrypt(&conditions, b"inside").unwrap();
    let code = "(async () => { const text = await Lit.Actions.decryptAndCombine({ unifiedAccessControlConditions: conditions, ciphertext, dataToEncryptHash, authSig: null, chain: 'sigil' }); Lit.Actions.setResponse({ response: text.length.toString() }); })();";
    let params = json!({
        "conditions": conditions,
        "ciphertext": sealed.ciphertext,
        "dataToEncryptHash": sealed.data_to_encrypt_hash,
    });
    let outcome = client
        .execute(ActionCode::Code(code.into()), params, None)
        .await
        .unwrap_or_else(|e| panic!("{e}: {e:?}"));
    assert_eq!(outcome.response.as_deref(), Some("6"));
    // Each node checked each share it looked at once (at most one per node of the network, not
    // one per share each time another arrived), and node 3, which always sees its own bad share
    // first, dropped it and named itself.
    for i in 0..4 {
        let metrics = net.metrics(i).await;
        let value = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or(0)
        };
        let checked = value("sigil_decryption_share_verifications_total");
        let rejected = value("sigil_decryption_shares_rejected_total");
        assert!((3..=4).contains(&checked), "node {i} checked {checked} shares");
        assert!(rejected <= 1, "node {i} rejected {rejected} shares");
        if i == 3 {
            assert_eq!(rejected, 1, "node 3 did not reject its own bad share");
        }
    }
    assert!(
        net.log(3).contains("node 3 sent a bad signature share"),
        "{}",
        net.log(3)
    );
}

/// A loopback API that answers "forecast: sunny" only to `Authorization: Bearer <key>`, and
/// keeps every request head it saw.
async fn api_server(key: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let heads = Arc::clone(&seen);
    let (url, _) = http_server(Arc::new(move |_, head| {
        heads.lock().unwrap().push(head.to_string());
        if head.contains(&format!("authorization: bearer {}", key.to_lowercase())) {
            (200, "forecast: sunny".to_string())
        } else {
            (401, "no key".to_string())
        }
    }))
    .await;
    (format!("{url}/forecast"), seen)
}

const WEATHER: &str = r#"// Decrypts an API key that only this action may decrypt, calls the API with it and signs
// the answer. The key never leaves the action.
(async () => {
  const apiKey = await Lit.Actions.decryptAndCombine({
    accessControlConditions, ciphertext, dataToEncryptHash, authSig: null, chain: "sigil",
  });
  const answer = await (await fetch(url, { headers: { Authorization: `Bearer ${apiKey}` } })).text();
  const toSign = ethers.utils.arrayify(ethers.utils.keccak256(ethers.utils.toUtf8Bytes(answer)));
  await Lit.Actions.signEcdsa({ toSign, publicKey, sigName: "answer" });
  Lit.Actions.setResponse({ response: answer });
})();
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_decrypts_a_secret_uses_it_and_signs_the_answer() {
    const API_KEY: &str = "sk-live-7f3a9c2e5b1d4068";
    let mut net = Network::start(5, 4, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let (url, seen) = api_server(API_KEY).await;
    let dir = net.dir.path();
    let weather = dir.join("weather.js");
    std::fs::write(&weather, WEATHER).unwrap();
    let cid = sigil_primitives::Cid::of_file(WEATHER.as_bytes()).unwrap().to_string();

    // A key only this exact program can use, and a secret only this program can decrypt.
    let (ok, minted, stderr) = cli(
        &net,
        DEV_KEY,
        &[
            "pkp",
            "mint-grant-burn",
            "--action",
            weather.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let minted: Value = serde_json::from_str(&minted).unwrap();
    let only_this_action = json!([basic("", "", "", &[":currentActionIpfsId"], "=", &cid)]);
    let sealed = client
        .encrypt(
            &json!({ "accessControlConditions": only_this_action }),
            API_KEY.as_bytes(),
        )
        .unwrap();

    let params = json!({
        "accessControlConditions": only_this_action,
        "ciphertext": sealed.ciphertext,
        "dataToEncryptHash": sealed.data_to_encrypt_hash,
        "url": url,
        "publicKey": minted["publicKey"],
    });
    let outcome = client
        .execute(ActionCode::Code(WEATHER.into()), params.clone(), None)
        .await
        .unwrap();
    assert_eq!(outcome.response.as_deref(), Some("forecast: sunny"));
    let signature = &outcome.signatures["answer"].signature;
    let hash: [u8; 32] = Keccak256::digest(b"forecast: sunny").into();
    let recovered = EcdsaSignature::recover_address(signature, &hash).unwrap();
    assert_eq!(
        format!("0x{}", hex::encode(recovered)),
        minted["ethAddress"].as_str().unwrap().to_lowercase()
    );
    // Every node called the API with the key; it appears in no response, log line or node log.
    let heads = seen.lock().unwrap().clone();
    assert!(heads.len() >= 4, "{heads:?}");
    assert!(heads.iter().all(|h| h.contains(&API_KEY.to_lowercase())));
    assert!(outcome.logs.iter().all(|l| !l.contains(API_KEY)));
    for i in 0..5 {
        assert!(!net.log(i).contains(API_KEY), "node {i} logged the key");
    }

    // Outside that action the same ciphertext does not open: not for a client, not for
    // another action.
    let dev = auth(&client, &wallet(DEV_KEY)).await;
    let why = refused(&client, &sealed, Some(&dev), "CONDITION_FAILED").await;
    assert!(why.contains("outside an action"), "{why}");
    let thief = format!("{WEATHER}// another program\n");
    let (code, message) = match client.execute(ActionCode::Code(thief), params, None).await {
        Err(ClientError::Action { code, message, .. }) => (code, message),
        Ok(o) => panic!("decrypted outside its action: {:?}", o.response),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(code, "CONDITION_FAILED", "{message}");

    // encrypt, checkConditions and decryptToSingleNode inside an action: one node decrypts,
    // every node returns the same ciphertext, which the client can open too.
    let code = r#"(async () => {
      const conditions = [{ contractAddress: "", standardContractType: "timestamp", chain: "sigil",
        method: "eth_getBlockByNumber", parameters: ["latest"], returnValueTest: { comparator: ">=", value: "1" } }];
      const { ciphertext, dataToEncryptHash } = await Lit.Actions.encrypt({
        accessControlConditions: conditions, to_encrypt: new TextEncoder().encode("made inside"),
      });
      const holds = await Lit.Actions.checkConditions({ conditions, authSig: null, chain: "sigil" });
      const never = await Lit.Actions.checkConditions({ conditions: [{ ...conditions[0], returnValueTest: { comparator: "<", value: "1" } }], authSig: null, chain: "sigil" });
      const single = await Lit.Actions.decryptToSingleNode({
        accessControlConditions: conditions, ciphertext, dataToEncryptHash, authSig: null, chain: "sigil",
      });
      Lit.Actions.setResponse({ response: JSON.stringify({ holds, never, single, ciphertext, dataToEncryptHash }) });
    })();"#;
    let outcome = client
        .execute(ActionCode::Code(code.into()), json!({}), None)
        .await
        .unwrap();
    let response: Value = serde_json::from_str(outcome.response.as_deref().unwrap()).unwrap();
    assert_eq!(response["holds"], true, "{response}");
    assert_eq!(response["never"], false, "{response}");
    assert_eq!(response["single"], "made inside", "{response}");
    let inside = Encrypted {
        version: sigil_client::ENCRYPTED_VERSION,
        network_key: client.bls_root().to_string(),
        access_control_conditions: Some(json!([timestamp(">=", 1)])),
        evm_contract_conditions: None,
        unified_access_control_conditions: None,
        data_to_encrypt_hash: response["dataToEncryptHash"].as_str().unwrap().into(),
        ciphertext: response["ciphertext"].as_str().unwrap().into(),
    };
    opens(&client, &inside, &dev, b"made inside").await;
}
