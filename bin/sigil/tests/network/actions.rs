//! Actions on a real network (5 node processes, anvil): the prime certifier behind a
//! Mint/Grant/Burn PKP, signing inside actions, agreement between nodes, runOnce,
//! broadcastAndCollect, child actions, fetch, and the limits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sha3::{Digest, Keccak256};
use sigil_client::{ActionCode, Client, ClientError, ExecuteOutcome};
use sigil_tss::ecdsa::EcdsaSignature;

use crate::harness::{http_server, sigil, Network, DEV_KEY};

const READY: Duration = Duration::from_secs(120);

const PRIME: &str = r#"// Signs "prime:N" only if N is prime.
(async () => {
  const n = Number(number);
  const isPrime = (n) => {
    if (!Number.isInteger(n) || n < 2) return false;
    for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
    return true;
  };
  if (!isPrime(n)) {
    Lit.Actions.setResponse({ response: JSON.stringify({ certified: false, reason: `${n} is not prime` }) });
    return;
  }
  const toSign = ethers.utils.arrayify(ethers.utils.keccak256(ethers.utils.toUtf8Bytes(`prime:${n}`)));
  await Lit.Actions.signEcdsa({ toSign, publicKey, sigName: "prime" });
  Lit.Actions.setResponse({ response: JSON.stringify({ certified: true, number: n }) });
})();
"#;

fn keccak(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

pub(crate) fn cli(net: &Network, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = sigil()
        .arg("--network")
        .arg(net.network_file())
        .args(["--private-key", DEV_KEY])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::String(stdout));
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Checks a `sigil action run --json` signature against `hash` and the expected address.
fn assert_signature(signature: &serde_json::Value, hash: &[u8; 32], address: &str) {
    let bytes = |field: &str| -> [u8; 32] {
        hex::decode(signature[field].as_str().unwrap().trim_start_matches("0x"))
            .unwrap()
            .try_into()
            .unwrap()
    };
    let sig = EcdsaSignature {
        r: bytes("r"),
        s: bytes("s"),
        recovery_id: signature["v"].as_u64().unwrap() as u8,
    };
    let recovered = sig.recover_address(hash).unwrap();
    assert_eq!(
        hex::encode(recovered),
        address.trim_start_matches("0x").to_lowercase(),
        "{signature}"
    );
    assert_eq!(signature["address"].as_str().unwrap(), address);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prime_certifier_signs_primes_only_and_only_its_own_code_can_sign() {
    let mut net = Network::start(5, 8, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let dir = net.dir.path();
    let prime = dir.join("prime.js");
    std::fs::write(&prime, PRIME).unwrap();
    let prime_path = prime.to_str().unwrap();

    // The key can only ever be used by this exact code.
    let (ok, minted, stderr) = cli(&net, &["pkp", "mint-grant-burn", "--action", prime_path, "--json"]);
    assert!(ok, "{stderr}");
    let (ok, cid, _) = cli(&net, &["action", "cid", prime_path]);
    assert!(ok);
    assert_eq!(minted["action"].as_str().unwrap(), cid.as_str().unwrap().trim());
    let public_key = minted["publicKey"].as_str().unwrap();
    let address = minted["ethAddress"].as_str().unwrap();

    let params = json!({ "number": 7919, "publicKey": public_key }).to_string();
    let (ok, out, stderr) = cli(&net, &["action", "run", prime_path, "--params", &params, "--json"]);
    assert!(ok, "{stderr}\n{out}");
    assert_eq!(out["response"], r#"{"certified":true,"number":7919}"#);
    assert_signature(&out["signatures"]["prime"], &keccak(b"prime:7919"), address);

    let params = json!({ "number": 7917, "publicKey": public_key }).to_string();
    let (ok, out, stderr) = cli(&net, &["action", "run", prime_path, "--params", &params, "--json"]);
    assert!(ok, "{stderr}");
    assert_eq!(out["response"], r#"{"certified":false,"reason":"7917 is not prime"}"#);
    assert_eq!(out["signatures"], json!({}));

    // One byte more is another program: another CID, which the PKP does not permit.
    let edited = dir.join("prime-edited.js");
    std::fs::write(&edited, format!("{PRIME} ")).unwrap();
    let edited_path = edited.to_str().unwrap();
    let (_, edited_cid, _) = cli(&net, &["action", "cid", edited_path]);
    assert_ne!(edited_cid, cid);
    let params = json!({ "number": 7919, "publicKey": public_key }).to_string();
    let (ok, out, _) = cli(&net, &["action", "run", edited_path, "--params", &params, "--json"]);
    assert!(!ok, "{out}");
    assert_eq!(out["error"]["code"], "NOT_PERMITTED", "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a permitted action"),
        "{out}"
    );

    // `sigil verify`: the chain of trust of the certifier's signature, link by link.
    let (ok, out, stderr) = cli(
        &net,
        &[
            "action",
            "run",
            prime_path,
            "--params",
            &json!({ "number": 7919, "publicKey": public_key }).to_string(),
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let certified = out["signatures"]["prime"].to_string();
    let verify = |signature: &str, file: &str| {
        let (ok, report, stderr) = cli(
            &net,
            &[
                "verify",
                "--signature",
                signature,
                "--message",
                "prime:7919",
                "--action",
                file,
                "--json",
            ],
        );
        assert_eq!(ok, report["holds"] == json!(true), "{report} {stderr}");
        let failed: Vec<String> = report["links"]
            .as_array()
            .unwrap_or_else(|| panic!("{report} {stderr}"))
            .iter()
            .filter(|l| l["ok"] == json!(false))
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect();
        (ok, failed, report)
    };
    let (ok, failed, report) = verify(&certified, prime_path);
    assert!(ok && failed.is_empty(), "{report}");
    assert_eq!(
        report["address"].as_str().unwrap().to_lowercase(),
        address.to_lowercase()
    );
    // Another file is another program: the PKP does not permit it.
    let (ok, failed, _) = verify(&certified, edited_path);
    assert!(!ok);
    assert_eq!(failed, vec!["only-action"]);
    // Another message: the signature recovers to some other key, no PKP of this network.
    let (ok, report, _) = cli(
        &net,
        &[
            "verify",
            "--signature",
            &certified,
            "--message",
            "prime:7907",
            "--action",
            prime_path,
            "--json",
        ],
    );
    assert!(!ok);
    assert_eq!(report["links"][1]["name"], "minted", "{report}");
    assert_eq!(report["links"][1]["ok"], false, "{report}");
    // The attack: the certifier's code as a custom auth action, to get a session that signs
    // anything with the burned PKP. A burned PKP signs only inside its actions.
    let refused = client
        .pkp_session(
            sigil_client::SessionKey::random(),
            &hex::decode(public_key.trim_start_matches("0x"))
                .unwrap()
                .try_into()
                .unwrap(),
            &[],
            Some(sigil_client::CustomAuth {
                code: Some(PRIME.into()),
                ipfs_id: None,
                js_params: Some(json!({ "number": 7919, "publicKey": public_key })),
            }),
            &[sigil_primitives::ResourceAbility {
                resource: sigil_primitives::Resource {
                    resource: "*".into(),
                    resource_prefix: "lit-pkp".into(),
                },
                ability: "pkp-signing".into(),
            }],
            Duration::from_secs(600),
        )
        .await;
    match refused {
        Err(e) => assert!(e.to_string().contains("PKP_BURNED"), "{e}"),
        Ok(_) => panic!("ATTACK: a burned PKP's action granted a session"),
    }

    // The same code behind a PKP its owner kept, with a second permitted action: it signs the
    // same message, and verify refuses both links.
    let (ok, kept, stderr) = cli(&net, &["pkp", "mint", "--json"]);
    assert!(ok, "{stderr}");
    let kept_token = kept["tokenId"].as_str().unwrap().to_string();
    for code in [PRIME, "Lit.Actions.setResponse({ response: 'other' });"] {
        let cid = sigil_primitives::Cid::of_file(code.as_bytes()).unwrap().to_string();
        let (ok, _, stderr) = cli(&net, &["pkp", "grant-action", &kept_token, "--cid", &cid]);
        assert!(ok, "{stderr}");
    }
    let params = json!({ "number": 7919, "publicKey": kept["publicKey"] }).to_string();
    let (ok, out, stderr) = cli(&net, &["action", "run", prime_path, "--params", &params, "--json"]);
    assert!(ok, "{stderr}");
    let (ok, failed, report) = verify(&out["signatures"]["prime"].to_string(), prime_path);
    assert!(!ok, "{report}");
    assert_eq!(failed, vec!["mint-grant-burn", "only-action"], "{report}");

    // Stored on the nodes, the same code runs by CID.
    let (ok, deployed, stderr) = cli(&net, &["action", "deploy", prime_path]);
    assert!(ok, "{stderr}");
    assert_eq!(deployed, cid);
    let cid_text = cid.as_str().unwrap().trim().to_string();
    let params = json!({ "number": 104729, "publicKey": public_key }).to_string();
    let (ok, out, stderr) = cli(
        &net,
        &["action", "run", "--cid", &cid_text, "--params", &params, "--json"],
    );
    assert!(ok, "{stderr}");
    assert_signature(&out["signatures"]["prime"], &keccak(b"prime:104729"), address);
}

/// A loopback HTTP server answering every request with the number of requests so far.
async fn counter_server() -> (String, Arc<AtomicU64>) {
    http_server(Arc::new(|n, _| (200, n.to_string()))).await
}

async fn run(client: &Client, code: &str, params: serde_json::Value) -> Result<ExecuteOutcome, ClientError> {
    client.execute(ActionCode::Code(code.to_string()), params, None).await
}

pub(crate) fn error_code(result: Result<ExecuteOutcome, ClientError>) -> (String, String) {
    match result {
        Err(ClientError::Action { code, message, .. }) => (code, message),
        Ok(outcome) => panic!("expected an error, got {:?}", outcome.response),
        Err(e) => panic!("expected an action error, got {e}"),
    }
}

/// Mints a PKP owned by the dev wallet and permits `code`'s CID for it; returns the public key.
pub(crate) fn permit(net: &Network, token: &str, code: &str) {
    let cid = sigil_primitives::Cid::of_file(code.as_bytes()).unwrap().to_string();
    let (ok, _, stderr) = cli(net, &["pkp", "grant-action", token, "--cid", &cid]);
    assert!(ok, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_sign_agree_share_values_call_children_and_fetch() {
    let mut net = Network::start(5, 16, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let (server, hits) = counter_server().await;
    let (ok, minted, stderr) = cli(&net, &["pkp", "mint", "--json"]);
    assert!(ok, "{stderr}");
    let token = minted["tokenId"].as_str().unwrap().to_string();
    let public_key = minted["publicKey"].as_str().unwrap().to_string();
    let address = minted["ethAddress"].as_str().unwrap().to_lowercase();

    // signAndCombineEcdsa: the whole signature inside the action, none returned to the client.
    let combine = r#"(async () => {
        const sig = await Lit.Actions.signAndCombineEcdsa({ toSign: new Uint8Array(32).fill(7), publicKey, sigName: "c" });
        Lit.Actions.setResponse({ response: sig });
    })();"#;
    // Math.random is seeded per request, the same on every node.
    let random = r#"(async () => {
        const bytes = new Uint8Array(32).map(() => Math.floor(Math.random() * 256));
        await Lit.Actions.signEcdsa({ toSign: bytes, publicKey, sigName: "r" });
        Lit.Actions.setResponse({ response: ethers.utils.hexlify(bytes) });
    })();"#;
    // Each node sees another counter value, so each wants to sign something else.
    let disagree = r#"(async () => {
        const seen = await (await fetch(url)).text();
        const toSign = ethers.utils.arrayify(ethers.utils.keccak256(ethers.utils.toUtf8Bytes(seen)));
        await Lit.Actions.signEcdsa({ toSign, publicKey, sigName: "d" });
    })();"#;
    // Reading permissions from inside an action.
    let permissions = r#"(async () => {
        const tokenId = Lit.Actions.pubkeyToTokenId({ publicKey });
        const mine = Lit.Auth.actionIpfsIdStack[0];
        const actions = await Lit.Actions.getPermittedActions({ tokenId });
        Lit.Actions.setResponse({ response: JSON.stringify({
            tokenId,
            permitted: await Lit.Actions.isPermittedAction({ tokenId, ipfsId: mine }),
            listed: actions.includes(mine),
            stranger: await Lit.Actions.isPermittedAddress({ tokenId, address: "0x000000000000000000000000000000000000dEaD" }),
            rpc: await Lit.Actions.getRpcUrl({ chain: "sigil" }),
        }) });
    })();"#;
    // An EIP-191 personal message, hashed by the node.
    let personal = r#"(async () => {
        await Lit.Actions.ethPersonalSignMessageEcdsa({ message: "gm from an action", publicKey, sigName: "p" });
    })();"#;
    for code in [combine, random, disagree, permissions, personal] {
        permit(&net, &token, code);
    }
    let params = json!({ "publicKey": public_key, "url": server });

    let outcome = run(&client, combine, params.clone()).await.unwrap();
    assert!(outcome.signatures.is_empty());
    let sig: serde_json::Value = serde_json::from_str(outcome.response.as_deref().unwrap()).unwrap();
    let r = sig["r"].as_str().unwrap();
    assert_eq!(r.len(), 66, "r is the compressed R point: {sig}");
    let signature = EcdsaSignature {
        r: hex::decode(&r[2..]).unwrap().try_into().unwrap(),
        s: hex::decode(sig["s"].as_str().unwrap()).unwrap().try_into().unwrap(),
        recovery_id: sig["v"].as_u64().unwrap() as u8,
    };
    assert_eq!(hex::encode(signature.recover_address(&[7; 32]).unwrap()), address[2..]);

    let outcome = run(&client, random, params.clone()).await.unwrap();
    let bytes: [u8; 32] = hex::decode(outcome.response.as_deref().unwrap().trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap();
    let signed = &outcome.signatures["r"];
    assert_eq!(
        hex::encode(signed.signature.recover_address(&bytes).unwrap()),
        address[2..]
    );
    assert!(outcome.agreeing.len() >= 4);

    let outcome = run(&client, personal, params.clone()).await.unwrap();
    let hash = sigil_chain::alloy::primitives::eip191_hash_message(b"gm from an action");
    assert_eq!(
        hex::encode(outcome.signatures["p"].signature.recover_address(&hash.0).unwrap()),
        address[2..]
    );

    let (code, message) = error_code(run(&client, disagree, params.clone()).await);
    assert_eq!(code, "NODES_DISAGREED", "{message}");

    let outcome = run(&client, permissions, params.clone()).await.unwrap();
    let seen: serde_json::Value = serde_json::from_str(outcome.response.as_deref().unwrap()).unwrap();
    let as_number =
        |v: &str| sigil_chain::alloy::primitives::U256::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
    assert_eq!(
        as_number(seen["tokenId"].as_str().unwrap()),
        as_number(&token),
        "{seen}"
    );
    assert_eq!(seen["permitted"], true, "{seen}");
    assert_eq!(seen["listed"], true, "{seen}");
    assert_eq!(seen["stranger"], false, "{seen}");
    assert_eq!(seen["rpc"], net.anvil.url.as_str(), "{seen}");

    // runOnce: one node fetches; every node returns its result.
    let before = hits.load(Ordering::SeqCst);
    let once = r#"(async () => {
        const v = await Lit.Actions.runOnce({ waitForResponse: true, name: "hit" }, async () => (await fetch(url)).text());
        Lit.Actions.setResponse({ response: "got " + v });
    })();"#;
    let outcome = run(&client, once, params.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hits.load(Ordering::SeqCst), before + 1, "runOnce ran more than once");
    assert_eq!(outcome.response.unwrap(), format!("got {}", before + 1));

    // broadcastAndCollect: one value per node.
    let collect = r#"(async () => {
        const all = await Lit.Actions.broadcastAndCollect({ name: "b", value: "v" + Lit.Auth.actionIpfsIdStack.length });
        Lit.Actions.setResponse({ response: JSON.stringify(all) });
    })();"#;
    let outcome = run(&client, collect, params.clone()).await.unwrap();
    assert_eq!(outcome.response.unwrap(), r#"["v1","v1","v1","v1","v1"]"#);

    // call: a child by CID, with its params as globals, sharing the response; depth ≤ 5.
    let leaf = r#"(async () => { Lit.Actions.setResponse({ response: "leaf " + greeting + " at " + Lit.Auth.actionIpfsIdStack.length }); })();"#;
    let (mut cid, _) = client.store_action(leaf).await.unwrap();
    let outcome = run(
        &client,
        &format!(r#"(async () => {{ const r = await Lit.Actions.call({{ ipfsId: "{cid}", params: {{ greeting: "hi" }} }}); console.log("child: " + r); }})();"#),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(outcome.response.as_deref(), Some("leaf hi at 2"));
    assert_eq!(outcome.logs, vec!["child: leaf hi at 2"]);
    for depth in 0..6 {
        if depth == 5 {
            // The leaf five calls deep still runs.
            let outcome = client
                .execute(ActionCode::Cid(cid.clone()), json!({ "greeting": "deep" }), None)
                .await
                .unwrap();
            assert_eq!(outcome.response.as_deref(), Some("leaf deep at 6"));
        }
        let parent =
            format!(r#"(async () => {{ await Lit.Actions.call({{ ipfsId: "{cid}", params: {{ greeting }} }}); }})();"#);
        cid = client.store_action(&parent).await.unwrap().0;
    }
    // Six calls deep: one too many.
    let (code, message) = error_code(
        client
            .execute(ActionCode::Cid(cid), json!({ "greeting": "deep" }), None)
            .await,
    );
    assert_eq!(code, "ACTION_LIMIT", "{message}");
    assert!(message.contains("call depth"), "{message}");

    // fetch: 50 per run, http(s) only.
    let fetches = r#"(async () => {
        for (let i = 0; i < 51; i++) {
            try { await fetch(url); } catch (e) { Lit.Actions.setResponse({ response: i + ": " + e.message }); throw e; }
        }
    })();"#;
    let (code, message) = error_code(run(&client, fetches, params.clone()).await);
    assert_eq!(code, "ACTION_LIMIT", "{message}");
    assert!(message.contains("fetches per run limit (50)"), "{message}");
    let (code, message) = error_code(
        run(
            &client,
            r#"(async () => { await fetch("file:///etc/passwd"); })();"#,
            json!({}),
        )
        .await,
    );
    assert_eq!(code, "ACTION_ERROR");
    assert!(message.contains("only http and https"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_actions_stop_at_their_limits_and_the_nodes_keep_serving() {
    // An IPFS gateway that serves the same code for every CID.
    const SERVED: &str = "Lit.Actions.setResponse({ response: 'from the gateway' });";
    let (gateway, _) = http_server(Arc::new(|_, _| (200, SERVED.to_string()))).await;
    let mut net = Network::start_configured(
        5,
        4,
        |_| Vec::new(),
        |config| {
            config
                .replace("wall_time = 30000", "wall_time = 3000")
                .replace("memory_bytes = 268435456", "memory_bytes = 67108864")
                .replace(
                    "max_concurrent = 8\n",
                    &format!("max_concurrent = 8\nipfs_gateway = \"{gateway}\"\n"),
                )
        },
    )
    .await;
    let client = net.wait_ready(READY).await;
    for (code, expected) in [
        ("while (true) {}", "ACTION_TIMEOUT"),
        (
            "(async () => { await Promise.resolve(); while (true) {} })();",
            "ACTION_TIMEOUT",
        ),
        ("/^(a+)+$/.test('a'.repeat(40) + 'b');", "ACTION_TIMEOUT"),
        (
            "const a = []; while (true) a.push(new Array(100000).fill(1.5));",
            "ACTION_OUT_OF_MEMORY",
        ),
    ] {
        let started = Instant::now();
        let (got, message) = error_code(run(&client, code, json!({})).await);
        let took = started.elapsed();
        assert_eq!(got, expected, "{code}: {message}");
        assert!(took < Duration::from_secs(15), "{code} took {took:?}");
    }
    let outcome = run(
        &client,
        "Lit.Actions.setResponse({ response: 'still here ' + (6 * 7) });",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(outcome.response.as_deref(), Some("still here 42"));
    assert!(outcome.agreeing.len() >= 4);

    // Code by CID from the gateway is hash-checked: the right code runs, other code is refused.
    let cid = sigil_primitives::Cid::of_file(SERVED.as_bytes()).unwrap().to_string();
    let outcome = client.execute(ActionCode::Cid(cid), json!({}), None).await.unwrap();
    assert_eq!(outcome.response.as_deref(), Some("from the gateway"));
    let other = sigil_primitives::Cid::of_file(b"something else").unwrap().to_string();
    let (code, message) = error_code(client.execute(ActionCode::Cid(other), json!({}), None).await);
    assert_eq!(code, "ACTION_HASH_MISMATCH", "{message}");
}
