//! The actions' web platform on a real network (3 node processes, anvil): an ethers provider
//! action that finishes at once (its request timers are cleared), HTTPS to a server with a
//! certificate from the test's own CA, the egress policy refusing internal addresses (also
//! behind a redirect, also the node's own listener), and random bytes every node agrees on that
//! fewer than t nodes cannot make.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sigil_client::{ActionCode, ClientError};
use sigil_primitives::ExecuteRequest;

use crate::harness::{http_server, post, Network, DEV_KEY};

const READY: Duration = Duration::from_secs(120);

/// A test CA's PEM and an HTTPS server on 127.0.0.1 with a certificate it issued, answering by
/// path: `/price` a JSON body, `/to/{url}` a 302 to `{url}`. Returns (CA PEM, base URL).
async fn https_server() -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Sigil test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
                    match tls.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..read]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let reply = match path.strip_prefix("/to/") {
                    Some(target) => format!(
                        "HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    ),
                    None => {
                        let body = r#"{"usd":42.5}"#;
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (ca_cert.pem(), url)
}

/// The error code an execution failed with.
fn code_of(result: Result<sigil_client::ExecuteOutcome, ClientError>) -> (String, String) {
    match result {
        Err(ClientError::Action { code, message, .. }) => (code, message),
        Ok(outcome) => panic!("expected an error, got {:?}", outcome.response),
        Err(e) => panic!("expected an action error, got {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_use_ethers_providers_https_and_agreed_randomness_and_cannot_reach_inside() {
    let (ca, https) = https_server().await;
    let https_port = https.rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    // The default policy, opened only for the test's HTTPS server and (to show that a node's
    // own listener stays closed anyway) the node's own port, plus the test CA.
    let ca_path = ca_file.display().to_string();
    let mut net = Network::start_configured(
        3,
        8,
        |_| Vec::new(),
        move |config| {
            let allow_line = config
                .lines()
                .find(|l| l.starts_with("allow = "))
                .expect("the dev config has an egress allow list")
                .to_string();
            let listen = config
                .lines()
                .find_map(|l| l.strip_prefix("listen = "))
                .expect("the config has a listen address")
                .trim_matches('"')
                .to_string();
            config.replace(
                &allow_line,
                &format!("allow = [\"127.0.0.1:{https_port}\", \"{listen}\"]\nextra_ca_file = {ca_path:?}"),
            )
        },
    )
    .await;
    let client = net.wait_ready(READY).await;
    let run = |code: &str, params: serde_json::Value| {
        let client = &client;
        let code = code.to_string();
        async move { client.execute(ActionCode::Code(code), params, None).await }
    };

    // The most common Lit pattern: an ethers provider on getRpcUrl. Every call succeeds and the
    // run ends as soon as the action does (ethers clears its 120 s request timers).
    let dev = sigil_chain::alloy::signers::local::PrivateKeySigner::from_bytes(
        &hex::decode(DEV_KEY.trim_start_matches("0x"))
            .unwrap()
            .as_slice()
            .try_into()
            .unwrap(),
    )
    .unwrap()
    .address();
    let provider = r#"(async () => {
        const provider = new ethers.providers.JsonRpcProvider(await Lit.Actions.getRpcUrl({ chain: "sigil" }));
        const network = await provider.getNetwork();
        const balance = await provider.getBalance(wallet);
        const abi = ["function name() view returns (string)"];
        const nft = new ethers.Contract(pkpNft, abi, provider);
        // Lit's own chain reads: a nonce, and a call of a serialized transaction.
        const nonce = await Lit.Actions.getLatestNonce({ address: wallet, chain: "sigil" });
        const txn = ethers.utils.serializeTransaction({ to: pkpNft, data: new ethers.utils.Interface(abi).encodeFunctionData("name") });
        const called = ethers.utils.defaultAbiCoder.decode(["string"], await Lit.Actions.callContract({ chain: "sigil", txn }))[0];
        Lit.Actions.setResponse({ response: JSON.stringify({ chainId: network.chainId, balance: balance.toString(), name: await nft.name(), called, nonce }) });
    })();"#;
    let params = json!({ "wallet": dev.to_string(), "pkpNft": net.contracts().pkp_nft.to_string() });
    // The first run on each node loads ethers itself and starts the node's spare runtimes; once
    // they are ready, the same action runs on one with ethers already loaded.
    let started = Instant::now();
    let first = run(provider, params.clone()).await.unwrap();
    let cold = started.elapsed();
    for i in 0..3 {
        assert_eq!(
            net.metric(i, "sigil_action_ethers_runs_total{runtime=\"cold\"}").await,
            1
        );
        let waited = Instant::now();
        while net.metric(i, "sigil_action_spares_ready").await < 2 {
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "node {i} made no spare runtimes"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let started = Instant::now();
    let outcome = run(provider, params).await.unwrap();
    let took = started.elapsed();
    for i in 0..3 {
        assert_eq!(
            net.metric(i, "sigil_action_ethers_runs_total{runtime=\"warm\"}").await,
            1
        );
    }
    assert_eq!(outcome.response, first.response);
    let answer: serde_json::Value = serde_json::from_str(outcome.response.as_deref().unwrap()).unwrap();
    let balance = net
        .anvil
        .rpc("eth_getBalance", json!([dev.to_string(), "latest"]))
        .await;
    let balance = u128::from_str_radix(balance.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(answer["chainId"], json!(31337));
    assert_eq!(answer["balance"], json!(balance.to_string()));
    assert!(answer["name"].as_str().unwrap().len() > 1, "{answer}");
    assert_eq!(answer["called"], answer["name"]);
    let nonce = net
        .anvil
        .rpc("eth_getTransactionCount", json!([dev.to_string(), "latest"]))
        .await;
    assert_eq!(answer["nonce"], nonce, "{answer}");
    eprintln!(
        "ethers provider action: {} ms loading ethers, {} ms on spare runtimes",
        cold.as_millis(),
        took.as_millis()
    );
    assert!(took < Duration::from_secs(10), "the provider action took {took:?}");

    // The action's own key: no mint, only this code signs with it, and the client derives the
    // same public key from the root key and the CID.
    let identity = r#"(async () => {
        const me = Lit.Auth.actionIpfsIdStack[0];
        const sig = await Lit.Actions.signAsAction({ toSign: "attested", sigName: "me", signingScheme: "EcdsaK256Sha256" });
        const key = await Lit.Actions.getActionPublicKey({ signingScheme: "EcdsaK256Sha256", actionIpfsCid: me });
        const ok = await Lit.Actions.verifyActionSignature({ signingScheme: "EcdsaK256Sha256", actionIpfsCid: me, toSign: "attested", signOutput: sig });
        const forOther = await Lit.Actions.verifyActionSignature({ signingScheme: "EcdsaK256Sha256", actionIpfsCid: other, toSign: "attested", signOutput: sig });
        const otherMessage = await Lit.Actions.verifyActionSignature({ signingScheme: "EcdsaK256Sha256", actionIpfsCid: me, toSign: "forged", signOutput: sig });
        Lit.Actions.setResponse({ response: JSON.stringify({ sig: JSON.parse(sig), key, ok, forOther, otherMessage }) });
    })();"#;
    let other = sigil_primitives::Cid::of_file(b"another action").unwrap().to_string();
    let outcome = run(identity, json!({ "other": other })).await.unwrap();
    let answer: serde_json::Value = serde_json::from_str(outcome.response.as_deref().unwrap()).unwrap();
    assert_eq!(
        (
            answer["ok"].clone(),
            answer["forOther"].clone(),
            answer["otherMessage"].clone()
        ),
        (json!(true), json!(false), json!(false)),
        "{answer}"
    );
    let cid = sigil_primitives::Cid::of_file(identity.as_bytes()).unwrap();
    let key_id = sigil_node::actions::host::action_key_id(&cid);
    let expected = client.pkp_public_key(sigil_client::KeyRef::KeyId(key_id));
    assert_eq!(
        answer["key"].as_str().unwrap(),
        format!("0x{}", hex::encode(sigil_tss::derive::uncompressed(&expected)))
    );
    let sig = &answer["sig"];
    let part = |f: &str| -> [u8; 32] {
        let h = hex::decode(sig[f].as_str().unwrap()).unwrap();
        h[h.len() - 32..].try_into().unwrap()
    };
    let signature = sigil_tss::ecdsa::EcdsaSignature {
        r: part("r"),
        s: part("s"),
        recovery_id: sig["v"].as_u64().unwrap() as u8,
    };
    let hash: [u8; 32] = <sigil_tss::k256::sha2::Sha256 as sigil_tss::k256::sha2::Digest>::digest(b"attested").into();
    assert_eq!(
        signature.recover_address(&hash).unwrap(),
        sigil_tss::derive::eth_address(&expected)
    );
    // The attack: the action's key through the PKP signing endpoint, as a stranger would ask.
    let (wallet, _) = net.wallet(DEV_KEY);
    let auth = client
        .auth_sig(&wallet, "localhost", Duration::from_secs(600))
        .await
        .unwrap();
    let refused = client
        .pkp_sign(sigil_client::KeyRef::KeyId(key_id), [5; 32], &auth)
        .await;
    let why = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        why.contains("NOT_MINTED"),
        "an action's key signs only inside that action: {why}"
    );

    // The attack: a parent fills the mailbox topic its child will use, then calls it. The child
    // collects only what the nodes running it sent under its own name.
    let child = r#"(async () => {
        const values = await Lit.Actions.broadcastAndCollect({ name: "price", value: "honest" });
        Lit.Actions.setResponse({ response: JSON.stringify(values) });
    })();"#;
    let (child_cid, _) = client.store_action(child).await.unwrap();
    let parent = r#"(async () => {
        await Lit.Actions.broadcastAndCollect({ name: "price", value: "evil" });
        const seen = await Lit.Actions.call({ ipfsId: child });
        Lit.Actions.setResponse({ response: seen });
    })();"#;
    let outcome = run(parent, json!({ "child": child_cid })).await.unwrap();
    let seen: Vec<String> = serde_json::from_str(outcome.response.as_deref().unwrap()).unwrap();
    assert!(
        !seen.is_empty() && seen.iter().all(|v| v == "honest"),
        "the parent's values reached its child: {seen:?}"
    );

    // HTTPS to a server whose certificate the test's own CA issued.
    let price = r#"(async () => {
        const r = await fetch(url + "/price", { headers: { accept: "application/json" } });
        Lit.Actions.setResponse({ response: JSON.stringify([r.status, (await r.json()).usd]) });
    })();"#;
    let outcome = run(price, json!({ "url": https })).await.unwrap();
    assert_eq!(outcome.response.as_deref(), Some("[200,42.5]"));

    // Internal addresses, directly and behind a redirect from an allowed host: FETCH_BLOCKED.
    let (inside, hits) = http_server(Arc::new(|_, _| (200, "internal secret".into()))).await;
    let fetch_one =
        "(async () => { const r = await fetch(url); Lit.Actions.setResponse({ response: await r.text() }); })();";
    for url in [
        inside.clone(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://[::1]:9/".to_string(),
        format!("{https}/to/{inside}/"),
        format!("{https}/to/http://169.254.169.254/latest/meta-data/"),
    ] {
        let (code, message) = code_of(run(fetch_one, json!({ "url": url })).await);
        assert_eq!(code, "FETCH_BLOCKED", "{url}: {message}");
        assert!(message.contains("may not reach"), "{url}: {message}");
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached the internal server"
    );
    // Each node's own listener stays closed although `allow` names it: each node is refused
    // exactly one of the three node URLs as its own (the others are loopback, closed by default).
    let own = r#"(async () => {
        let mine = 0;
        for (const u of urls) {
            try { await fetch(u + "/health"); } catch (e) { if (/own address/.test(e.message)) mine++; }
        }
        Lit.Actions.setResponse({ response: String(mine) });
    })();"#;
    let outcome = run(own, json!({ "urls": net.urls })).await.unwrap();
    assert_eq!(outcome.response.as_deref(), Some("1"));

    // Random bytes: the same on every node for one request, other bytes for another request.
    let random = r#"(async () => {
        const bytes = Array.from(crypto.getRandomValues(new Uint8Array(16)));
        Lit.Actions.setResponse({ response: JSON.stringify([bytes, crypto.randomUUID(), Math.random()]) });
    })();"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let every_node = |request_id: &str| {
        let body = serde_json::to_string(&ExecuteRequest {
            code: Some(random.to_string()),
            ipfs_id: None,
            js_params: Some(json!({})),
            auth_sig: None,
            session_sigs: None,
            request_id: request_id.to_string(),
            timestamp: Some(now),
        })
        .unwrap();
        let urls = net.urls.clone();
        async move {
            let targets: Vec<String> = urls.iter().map(|u| format!("{u}/web/execute")).collect();
            let calls = targets.iter().map(|t| post(t, body.clone()));
            futures::future::join_all(calls)
                .await
                .into_iter()
                .map(|(status, answer)| {
                    assert_eq!(status, 200, "{answer}");
                    answer["response"].as_str().unwrap().to_string()
                })
                .collect::<Vec<_>>()
        }
    };
    let first = every_node(&"ab".repeat(16)).await;
    let again = every_node(&"ab".repeat(16)).await;
    let other = every_node(&"cd".repeat(16)).await;
    assert!(first.iter().all(|r| *r == first[0]), "nodes disagree: {first:?}");
    assert_eq!(first, again);
    assert!(other.iter().all(|r| *r == other[0]), "nodes disagree: {other:?}");
    assert_ne!(first[0], other[0]);
    // The old scheme seeded Math.random by the request alone, which the caller knows: the bytes
    // now come from the network's signature, which fewer than t nodes cannot make. With one node
    // of three up, a run that draws fails instead of drawing something else.
    net.kill(1);
    net.kill(2);
    let (status, answer) = post(
        &format!("{}/web/execute", net.urls[0]),
        serde_json::to_string(&ExecuteRequest {
            code: Some(random.to_string()),
            ipfs_id: None,
            js_params: Some(json!({})),
            auth_sig: None,
            session_sigs: None,
            request_id: "ef".repeat(16),
            timestamp: None,
        })
        .unwrap(),
    )
    .await;
    assert_ne!(status, 200, "{answer}");
    assert_eq!(answer["error"]["code"], json!("RANDOMNESS_FAILED"), "{answer}");
}

/// Seed 004: an action that builds an EIP-1559 transaction, signs it with
/// `signAndCombineEcdsa`, serializes it with ethers and sends it inside `runOnce`.
const SEND: &str = r#"(async () => {
  const provider = new ethers.providers.JsonRpcProvider(await Lit.Actions.getRpcUrl({ chain: "sigil" }));
  const from = ethers.utils.computeAddress(publicKey);
  const tx = {
    type: 2, chainId: 31337, nonce: await provider.getTransactionCount(from), to,
    value: ethers.utils.parseEther("0.01"), gasLimit: 21000,
    maxFeePerGas: ethers.utils.parseUnits("2", "gwei"), maxPriorityFeePerGas: ethers.utils.parseUnits("1", "gwei"),
  };
  const hash = ethers.utils.arrayify(ethers.utils.keccak256(ethers.utils.serializeTransaction(tx)));
  const sig = JSON.parse(await Lit.Actions.signAndCombineEcdsa({ toSign: hash, publicKey, sigName: "tx" }));
  const raw = ethers.utils.serializeTransaction(tx, ethers.utils.joinSignature({ r: "0x" + sig.r.substring(2), s: "0x" + sig.s, v: sig.v }));
  const sent = await Lit.Actions.runOnce({ waitForResponse: true, name: "send" }, async () => {
    // The test's cue: the sender has signed and is about to send.
    if (delay > 0) { await fetch(cue); await new Promise((resolve) => setTimeout(resolve, delay)); }
    return (await provider.sendTransaction(raw)).hash;
  });
  Lit.Actions.setResponse({ response: sent });
})();"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_signs_and_sends_a_transaction_once_also_when_its_sender_dies() {
    let mut net = Network::start(3, 8, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let out = crate::harness::sigil()
        .arg("--network")
        .arg(net.network_file())
        .args(["--private-key", DEV_KEY, "pkp", "mint", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let minted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token: sigil_chain::alloy::primitives::U256 = minted["tokenId"].as_str().unwrap().parse().unwrap();
    let pkp = minted["ethAddress"].as_str().unwrap().to_string();
    crate::harness::grant_action(&net, token, &sigil_primitives::Cid::of_file(SEND.as_bytes()).unwrap());
    net.anvil
        .rpc("anvil_setBalance", json!([pkp, "0xde0b6b3a7640000"]))
        .await;
    let to = "0x000000000000000000000000000000000000bEEF";
    let nonce = |net: &Network| {
        let rpc = net.anvil.url.clone();
        let pkp = pkp.clone();
        async move {
            let anvil = crate::harness::Anvil { url: rpc };
            let n = anvil.rpc("eth_getTransactionCount", json!([pkp, "latest"])).await;
            u64::from_str_radix(n.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        }
    };
    let public_key = minted["publicKey"].clone();
    let (cue, cued) = http_server(Arc::new(|_, _| (200, "ok".into()))).await;
    let params = move |delay: u64| json!({ "publicKey": public_key, "to": to, "delay": delay, "cue": cue });

    // Every node signs; one sends; all answer its hash; the chain has exactly one transaction.
    let outcome = client
        .execute(ActionCode::Code(SEND.to_string()), params(0), None)
        .await
        .unwrap();
    let hash = outcome.response.clone().unwrap();
    let receipt = net.anvil.rpc("eth_getTransactionReceipt", json!([hash])).await;
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    assert_eq!(receipt["from"].as_str().unwrap().to_lowercase(), pkp.to_lowercase());
    assert_eq!(nonce(&net).await, 1);
    let balance = net.anvil.rpc("eth_getBalance", json!([to, "latest"])).await;
    assert_eq!(balance, json!("0x2386f26fc10000"), "0.01 ETH arrived");

    // The node that runs `runOnce` (the lowest live one, node 0) dies while it waits to send:
    // the run fails cleanly or another node sends once; never twice.
    let running = {
        let client = client.clone();
        let params = params(6000);
        tokio::spawn(async move { client.execute(ActionCode::Code(SEND.to_string()), params, None).await })
    };
    let waited = Instant::now();
    while cued.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the sender never reached runOnce"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.kill(0);
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(40), running)
        .await
        .expect("the run ends within its bounds")
        .unwrap();
    eprintln!(
        "after the kill: {:?} in {:?}",
        result.as_ref().map(|o| o.response.clone()),
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = nonce(&net).await;
    match result {
        Ok(outcome) => {
            assert_eq!(after, 2, "a run that answered sent exactly one transaction");
            let receipt = net
                .anvil
                .rpc("eth_getTransactionReceipt", json!([outcome.response.unwrap()]))
                .await;
            assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
        }
        Err(e) => {
            assert!(after <= 2, "never two transactions: nonce {after}");
            // The nodes that waited for node 0 say why, well before their time is up.
            assert!(e.to_string().contains("RUN_ONCE_LEADER_DOWN"), "{e}");
            assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        }
    }
}

/// An action claims a key per user (`Lit.Actions.claimKey`), anyone mints it with the network's
/// attestation, and then only that action can sign with it. The adversary: another action
/// claiming the same keyId, a relayer swapping its own action's CID into the mint, and an
/// action naming its own signature like a claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_claims_a_key_that_only_it_can_use() {
    use sigil_chain::alloy::primitives::{Bytes, B256};
    use sigil_chain::bindings::{PKPHelper, PKPPermissions, PKPNFT};

    const CLAIMER: &str = r#"(async () => {
  const derived = await Lit.Actions.claimKey({ keyId: userId });
  if (publicKey) await Lit.Actions.signEcdsa({ toSign: hash, publicKey, sigName: "user" });
  Lit.Actions.setResponse({ response: derived });
})();"#;
    let mut net = Network::start(3, 8, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let (cid, _) = client.store_action(CLAIMER).await.unwrap();
    let (_, wallet) = net.wallet(DEV_KEY);
    let contracts = net.contracts();
    let hash = [7u8; 32];
    let params = |user: &str, key: Option<&[u8; 65]>| json!({ "userId": user, "publicKey": key.map(|k| format!("0x{}", hex::encode(k))), "hash": hash.to_vec() });

    // The nodes attest a claim only once its mint was requested (and paid for); the action sees
    // the same either way.
    let unpaid = client
        .execute(ActionCode::Cid(cid.clone()), params("alice", None), None)
        .await
        .unwrap();
    assert_eq!(
        unpaid.claims["alice"].attestation, None,
        "a claim was attested without a mint request"
    );
    match client
        .claim_action_key(&wallet, &contracts, &unpaid.claims["alice"])
        .await
    {
        Err(e) => assert!(e.to_string().contains("no attestation"), "{e}"),
        Ok(_) => panic!("minted a claim without an attestation"),
    }
    client
        .request_action_claim(&wallet, &contracts, &cid, "alice")
        .await
        .unwrap();
    let outcome = client
        .execute(ActionCode::Cid(cid.clone()), params("alice", None), None)
        .await
        .unwrap();
    let claim = outcome
        .claims
        .get("alice")
        .expect("the run claimed alice's key")
        .clone();
    // Lit's derivedKeyId, and the key id PKPHelper computes for this action.
    let derived = sigil_chain::action_claim_derived_key_id(&cid, "alice");
    assert_eq!(claim.derived_key_id, derived);
    assert_eq!(outcome.response, Some(format!("0x{}", hex::encode(derived))));
    let helper = PKPHelper::new(contracts.pkp_helper, &wallet);
    let cid_bytes = sigil_primitives::Cid::of_file(CLAIMER.as_bytes())
        .unwrap()
        .as_bytes()
        .to_vec();
    let on_chain = helper
        .actionClaimKeyIdFor(Bytes::from(cid_bytes.clone()), B256::from(derived))
        .call()
        .await
        .unwrap();
    assert_eq!(on_chain.0, claim.key_id);
    assert!(
        !outcome.signatures.contains_key("claim/alice"),
        "the attestation is the claim's, not a signature"
    );

    // Another action claiming "alice" gets another key, and its attestation mints nothing for
    // the first action's CID (a relayer swapping CIDs gets a revert).
    let impostor_code = format!("{CLAIMER}\n// another action");
    let impostor_cid = sigil_primitives::Cid::of_file(impostor_code.as_bytes())
        .unwrap()
        .to_string();
    client
        .request_action_claim(&wallet, &contracts, &impostor_cid, "alice")
        .await
        .unwrap();
    let impostor = client
        .execute(ActionCode::Code(impostor_code.clone()), params("alice", None), None)
        .await
        .unwrap();
    let stolen = impostor.claims.get("alice").unwrap().clone();
    assert_ne!(stolen.public_key, claim.public_key);
    let swapped = helper
        .claimActionKey(
            Bytes::from(cid_bytes.clone()),
            B256::from(stolen.derived_key_id),
            Bytes::copy_from_slice(&stolen.public_key),
            Bytes::copy_from_slice(&stolen.attestation.unwrap()),
        )
        .call()
        .await;
    assert!(swapped.is_err(), "a claim of another action minted a key for this one");

    // Anyone mints the claim: the PKP owns itself and permits exactly this action.
    let minted = client.claim_action_key(&wallet, &contracts, &claim).await.unwrap();
    assert_eq!(minted.public_key, claim.public_key);
    let owner = PKPNFT::new(contracts.pkp_nft, &wallet)
        .ownerOf(minted.token_id)
        .call()
        .await
        .unwrap();
    assert_eq!(owner, minted.eth_address);
    let actions = PKPPermissions::new(contracts.pkp_permissions, &wallet)
        .getPermittedActions(minted.token_id)
        .call()
        .await
        .unwrap();
    assert_eq!(actions, vec![Bytes::from(cid_bytes)]);

    // Now the action signs with alice's key. Its claim is not attested again: the attempt's
    // presignature is spent, so one paid request costs at most three, however often it runs.
    let signed = client
        .execute(
            ActionCode::Cid(cid.clone()),
            params("alice", Some(&claim.public_key)),
            None,
        )
        .await
        .unwrap();
    let point = sigil_tss::derive::derive_public_key(client.ecdsa_root(), &sigil_tss::derive::KeyId(claim.key_id));
    assert!(signed.signatures["user"].signature.verify(&point, &hash));
    assert_eq!(signed.claims["alice"].attestation, None);
    match client
        .claim_action_key(&wallet, &contracts, &signed.claims["alice"])
        .await
    {
        Err(e) => assert!(e.to_string().contains("minted already"), "{e}"),
        Ok(_) => panic!("a claimed key was minted twice"),
    }
    // The other action cannot sign with it, and no action names a signature like a claim.
    match client
        .execute(
            ActionCode::Code(impostor_code),
            params("alice", Some(&claim.public_key)),
            None,
        )
        .await
    {
        Err(e) => assert!(e.to_string().contains("NOT_PERMITTED"), "{e}"),
        Ok(o) => panic!("another action signed with a claimed key: {:?}", o.response),
    }
    let reserved = format!(
        "(async () => {{ await Lit.Actions.signEcdsa({{ toSign: {:?}, publicKey: {:?}, sigName: \"claim/alice\" }}); }})();",
        hash.to_vec(),
        format!("0x{}", hex::encode(claim.public_key))
    );
    match client.execute(ActionCode::Code(reserved), json!({}), None).await {
        Err(e) => assert!(e.to_string().contains("RESERVED_SIG_NAME"), "{e}"),
        Ok(_) => panic!("an action signed under a claim's name"),
    }
    // The CLI: run, print the claim, and mint it.
    let out = crate::harness::sigil()
        .arg("--network")
        .arg(net.network_file())
        .args([
            "--private-key",
            DEV_KEY,
            "action",
            "run",
            "--cid",
            &cid,
            "--request-claim",
            "carol",
            "--mint-claims",
            "--json",
            "--params",
        ])
        .arg(params("carol", None).to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let carol = &printed["claims"]["carol"];
    assert!(carol["mintTx"].as_str().unwrap().starts_with("0x"), "{printed}");
    let token: sigil_chain::alloy::primitives::U256 = carol["tokenId"].as_str().unwrap().parse().unwrap();
    let owner = PKPNFT::new(contracts.pkp_nft, &wallet)
        .ownerOf(token)
        .call()
        .await
        .unwrap();
    assert_eq!(owner.to_string(), carol["ethAddress"].as_str().unwrap());

    // A keyId too long is refused in the sandbox.
    match client
        .execute(ActionCode::Cid(cid), params(&"x".repeat(257), None), None)
        .await
    {
        Err(e) => assert!(e.to_string().contains("keyId must be 1 to 256 bytes"), "{e}"),
        Ok(_) => panic!("claimed a 257-byte keyId"),
    }
}
