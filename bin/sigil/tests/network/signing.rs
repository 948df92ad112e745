//! Signing on a real network: correctness, node failures, a lying node, concurrency, bad input.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use sigil_client::{AuthSig, Client, KeyRef, SignOutcome};
use sigil_tss::derive::{derive_public_key, eth_address, KeyId};

use crate::harness::{open_store, post, sigil, Network, DEV_KEY};

const READY: Duration = Duration::from_secs(120);

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

/// A PKP minted to the dev wallet, and the dev wallet's auth signature.
pub struct Owned {
    pub key_ids: Vec<[u8; 32]>,
    pub auth: AuthSig,
}

/// Mints `count` PKPs to the dev wallet.
pub async fn mint(net: &Network, client: &Client, count: usize) -> Owned {
    let (signer, provider) = net.wallet(DEV_KEY);
    let auth = client
        .auth_sig(&signer, "localhost", Duration::from_secs(600))
        .await
        .unwrap();
    let mut key_ids = Vec::new();
    for _ in 0..count {
        let pkp = client.mint_pkp(&provider, &auth, &net.contracts()).await.unwrap();
        key_ids.push(pkp.key_id);
    }
    Owned { key_ids, auth }
}

/// Signs a random hash with one of the owned PKPs and checks the signature like a verifier would,
/// and that exactly the `t` nodes of one signing set made it.
pub async fn sign_and_check(client: &Client, owned: &Owned) -> SignOutcome {
    let key_id = owned.key_ids[(random::<1>()[0] as usize) % owned.key_ids.len()];
    let hash = random::<32>();
    let outcome = client.pkp_sign(KeyRef::KeyId(key_id), hash, &owned.auth).await.unwrap();
    let pkp = derive_public_key(client.ecdsa_root(), &KeyId(key_id));
    assert!(outcome.signature.verify(&pkp, &hash));
    assert_eq!(outcome.signature.recover_address(&hash).unwrap(), eth_address(&pkp));
    assert_eq!(
        outcome.signers.len(),
        client.threshold(),
        "signing set {:?}",
        outcome.signers
    );
    outcome
}

async fn wait_for_stock(net: &Network, node: usize, at_least: u64, timeout: Duration) {
    let started = Instant::now();
    loop {
        let metrics = net.metrics(node).await;
        let stock: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("sigil_presignature_stock ")?.trim().parse().ok())
            .unwrap_or(0);
        if stock >= at_least {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "stock {stock} < {at_least} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_sign_a_hundred_random_hashes_and_turn_away_malformed_input() {
    let mut net = Network::start(5, 32, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    assert_eq!(client.threshold(), 4);
    let owned = mint(&net, &client, 4).await;
    let sign_url = format!("{}/web/pkp/sign", net.urls[1]);

    // Malformed input: a 4xx with a stable code and a message that says what is wrong.
    let good = |field: &str, value: serde_json::Value| {
        let mut body = serde_json::json!({
            "keyId": hex::encode([1u8; 32]),
            "toSign": hex::encode([2u8; 32]),
            "requestId": hex::encode([3u8; 16]),
        });
        body[field] = value;
        body.to_string()
    };
    let cases: Vec<(String, u16, &str, &str)> = vec![
        ("{not json".into(), 400, "BAD_JSON", "request body"),
        ("[]".into(), 400, "BAD_REQUEST", "request body"),
        (good("toSign", hex::encode([2u8; 31]).into()), 400, "BAD_REQUEST", "toSign: 31 bytes"),
        (good("toSign", serde_json::json!([1, 2, 300])), 400, "BAD_REQUEST", "toSign"),
        (good("keyId", "zz".into()), 400, "BAD_REQUEST", "keyId: not hex"),
        (good("requestId", hex::encode([3u8; 8]).into()), 400, "BAD_REQUEST", "requestId: 8 bytes"),
        (good("surprise", 1.into()), 400, "BAD_REQUEST", "unknown field `surprise`"),
        (
            serde_json::json!({"publicKey": format!("04{}", "11".repeat(64)), "toSign": hex::encode([2u8; 32]), "requestId": hex::encode([4u8; 16])}).to_string(),
            404,
            "UNKNOWN_KEY",
            "no PKP with this public key",
        ),
        (
            serde_json::json!({"tokenId": "22".repeat(32), "toSign": hex::encode([2u8; 32]), "requestId": hex::encode([5u8; 16])}).to_string(),
            404,
            "UNKNOWN_KEY",
            "token id",
        ),
        ("x".repeat(200 * 1024), 413, "BODY_TOO_LARGE", "limit"),
    ];
    for (body, status, code, message) in cases {
        let (got, json) = post(&sign_url, body.clone()).await;
        assert_eq!(got, status, "{} → {json}", &body[..body.len().min(80)]);
        assert_eq!(json["error"]["code"], code, "{json}");
        let text = json["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text:?} should mention {message:?}");
    }
    let (status, json) = post(&format!("{}/mesh/send", net.urls[1]), vec![0u8, 0, 0, 9, 1, 2]).await;
    assert_eq!((status, json["error"]["code"].as_str()), (400, Some("BAD_REQUEST")));
    let (status, json) = post(&format!("{}/mesh/call", net.urls[1]), vec![7u8; 100]).await;
    assert_eq!((status, json["error"]["code"].as_str()), (403, Some("MESH_REJECTED")));
    let (status, json) = post(&format!("{}/web/nothing", net.urls[1]), "{}").await;
    assert_eq!((status, json["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    // … and the node keeps serving.
    let health: serde_json::Value = reqwest::get(format!("{}/health", net.urls[1]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    // The CLI: status exits 0 and sign prints exactly one JSON object.
    let status = sigil()
        .arg("--network")
        .arg(net.network_file())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stdout));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["canSign"], true);
    let (key_id, hash) = (owned.key_ids[0], random::<32>());
    let out = sigil()
        .arg("--network")
        .arg(net.network_file())
        .args([
            "sign",
            "--key-id",
            &hex::encode(key_id),
            "--hash",
            &hex::encode(hash),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pkp = derive_public_key(client.ecdsa_root(), &KeyId(key_id));
    let expected_address = sigil_tss::derive::checksum_address(&eth_address(&pkp));
    assert_eq!(json["address"], expected_address.as_str());
    assert_eq!(
        json["publicKey"],
        format!("0x{}", hex::encode(sigil_tss::derive::uncompressed(&pkp))).as_str()
    );
    let r = hex::decode(json["signature"]["r"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let s = hex::decode(json["signature"]["s"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let signature = sigil_tss::ecdsa::EcdsaSignature {
        r: r.try_into().unwrap(),
        s: s.try_into().unwrap(),
        recovery_id: json["signature"]["v"].as_u64().unwrap() as u8,
    };
    assert_eq!(signature.recover_address(&hash).unwrap(), eth_address(&pkp));

    // A hundred random hashes under four freshly minted PKPs, two at a time.
    let mut presignatures = BTreeSet::new();
    for _ in 0..50 {
        let batch = futures::future::join_all((0..2).map(|_| sign_and_check(&client, &owned))).await;
        for outcome in batch {
            assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
            assert!(
                presignatures.insert(outcome.presignature.clone()),
                "presignature reused"
            );
        }
    }
    assert_eq!(presignatures.len(), 100);
    // The node now also knows the PKPs by public key.
    let (status, json) = post(
        &sign_url,
        serde_json::json!({"publicKey": json["publicKey"].as_str().unwrap().trim_start_matches("0x"), "toSign": hex::encode([9u8; 32]), "requestId": hex::encode(random::<16>()), "authSig": owned.auth}).to_string(),
    )
    .await;
    assert!(
        status == 200 || json["error"]["code"] == "NOT_A_SIGNER",
        "{status} {json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_nodes_sign_through_two_kill_9s_and_the_killed_rejoin_without_dkg() {
    let mut net = Network::start(7, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    assert_eq!(client.threshold(), 5);
    wait_for_stock(&net, 0, 4, Duration::from_secs(240)).await;
    let owned = mint(&net, &client, 1).await;
    sign_and_check(&client, &owned).await;

    net.kill(5);
    net.kill(6);
    for _ in 0..3 {
        let outcome = sign_and_check(&client, &owned).await;
        assert!(!outcome.signers.contains(&5) && !outcome.signers.contains(&6));
        assert!(outcome.failures.iter().any(|f| f.node == Some(5) || f.node == Some(6)));
    }

    net.restart(5);
    net.restart(6);
    let client = net.wait_ready(READY).await;
    for i in [5, 6] {
        let log = net.log(i);
        assert_eq!(
            log.matches("running DKG for the root keys").count(),
            1,
            "node {i} ran DKG again:\n{log}"
        );
        assert!(log.contains("root key shares loaded; DKG is not run again"), "{log}");
    }
    for i in 0..5 {
        assert_eq!(net.log(i).matches("running DKG for the root keys").count(), 1);
    }
    for _ in 0..2 {
        sign_and_check(&client, &owned).await;
    }
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_corrupts_its_shares_is_named_and_signing_still_succeeds() {
    let mut net = Network::start(4, 16, |i| {
        if i == 2 {
            vec!["--fault".into(), "corrupt-signature-shares".into()]
        } else {
            vec![]
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    assert_eq!(client.threshold(), 3);
    let owned = mint(&net, &client, 1).await;
    let mut named = 0;
    for _ in 0..10 {
        let outcome = sign_and_check(&client, &owned).await;
        for failure in &outcome.failures {
            assert_eq!(failure.node, Some(2), "only node 2 misbehaves: {failure}");
            assert!(failure.reason.contains("does not fit"), "{failure}");
            named += 1;
        }
    }
    assert!(named > 0, "node 2's bad shares were never noticed");
    assert!(net
        .metrics(2)
        .await
        .contains("sigil_test_fault{node=\"2\",fault=\"corrupt-signature-shares\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_signs_all_verify_and_no_presignature_is_used_twice() {
    let mut net = Network::start(3, 201, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    wait_for_stock(&net, 0, 200, Duration::from_secs(600)).await;
    let outcomes = futures::future::join_all((0..200).map(|_| sign_and_check(&client, &owned))).await;
    let ids: BTreeSet<String> = outcomes.iter().map(|o| o.presignature.clone()).collect();
    assert_eq!(ids.len(), 200, "two requests got the same presignature");
    net.stop().await;
    // Storage: each signature's presignature is marked used by at least t = 2 nodes (the shares the
    // client combined; the third node's request may have been cancelled once the signature was
    // made), no node holds a used slot twice, and no used slot is still in stock anywhere.
    let signed: Vec<u64> = ids
        .iter()
        .map(|id| id.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    let mut used_per_node = Vec::new();
    for i in 0..3 {
        let store = open_store(&net.config(i), &net.data_dir(i));
        let used = store.used().unwrap();
        let distinct: BTreeSet<_> = used.iter().map(|id| (id.pool, id.seq)).collect();
        assert_eq!(distinct.len(), used.len(), "node {i} lists a slot twice");
        assert!(
            used.len() <= 201,
            "node {i} used {} presignatures for 200 signatures and one mint attestation",
            used.len()
        );
        for id in &used {
            assert!(
                store.peek_presignature(*id).unwrap().is_none(),
                "used {id} still in stock"
            );
        }
        used_per_node.push(used.iter().map(|id| id.seq).collect::<BTreeSet<u64>>());
    }
    for seq in signed {
        let holders = used_per_node.iter().filter(|used| used.contains(&seq)).count();
        assert!(holders >= 2, "presignature {seq} marked used on {holders} nodes");
    }
}

/// Starts `sigil dev` with 3 nodes in `dir` and waits until it printed its "try" list (the network
/// is up and its keys recorded); returns the process, its stderr piped, and what it printed.
/// It runs in the checkout's root, where it finds `contracts/out` and `tools/` wherever the
/// binary was built (`CARGO_TARGET_DIR` may be outside the checkout).
async fn start_sigil_dev(dir: &std::path::Path, stock: &str) -> (tokio::process::Child, String) {
    let mut dev = tokio::process::Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["dev", "--nodes", "3", "--presign-stock", stock, "--dir"])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(dev.stdout.take().unwrap()));
    let mut printed = String::new();
    tokio::time::timeout(READY, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("Ctrl-C stops the network") {
                return;
            }
        }
        panic!("sigil dev exited early:\n{printed}");
    })
    .await
    .expect("sigil dev never became ready");
    (dev, printed)
}

/// `sigil pkp mint --json` on `network`; returns its JSON answer.
fn cli_mint(network: &std::path::Path) -> serde_json::Value {
    let mint = sigil()
        .arg("--network")
        .arg(network)
        .args(["pkp", "mint", "--json"])
        .output()
        .unwrap();
    assert!(mint.status.success(), "{}", String::from_utf8_lossy(&mint.stderr));
    serde_json::from_slice(&mint.stdout).unwrap()
}

/// `sigil sign` of `hash` with `token` on `network`; asserts it succeeded and returns its output.
fn cli_sign(network: &std::path::Path, token: &str, hash: &str) -> String {
    let out = sigil()
        .arg("--network")
        .arg(network)
        .args(["sign", "--token-id", token, "--hash", hash])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops `sigil dev` with SIGTERM and asserts it exits cleanly.
async fn stop_sigil_dev(dev: &mut tokio::process::Child) {
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(dev.id().unwrap().to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), dev.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigil_dev_starts_a_network_that_signs_and_stops_it_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dev, printed) = start_sigil_dev(dir.path(), "2").await;
    let network = dir.path().join("network.json");
    assert!(
        printed.contains("dev wallet 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
        "{printed}"
    );
    let status = sigil().arg("--network").arg(&network).arg("status").output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stdout));
    let minted = cli_mint(&network);
    let stdout = cli_sign(&network, minted["tokenId"].as_str().unwrap(), &"cd".repeat(32));
    assert!(
        stdout.contains(&format!("address    {}", minted["ethAddress"].as_str().unwrap())),
        "{stdout}"
    );
    let rpc_url = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&network).unwrap()).unwrap()["rpcUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let urls: Vec<String> = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&network).unwrap()).unwrap()
        ["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["url"].as_str().unwrap().to_string())
        .collect();
    stop_sigil_dev(&mut dev).await;
    for url in urls {
        assert!(reqwest::get(format!("{url}/health")).await.is_err(), "{url} still up");
    }
    assert!(
        reqwest::Client::new().post(&rpc_url).body("{}").send().await.is_err(),
        "anvil at {rpc_url} still up"
    );
}

/// The pid of the `sigil node` process running `config`, found in /proc.
fn node_pid(config: &std::path::Path) -> Option<u32> {
    let wanted = config.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (args.iter().any(|a| a == "node") && args.contains(&wanted)).then_some(pid)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigil_dev_keeps_serving_when_a_node_is_killed_and_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dev, _) = start_sigil_dev(dir.path(), "4").await;
    let network = dir.path().join("network.json");
    let mut err = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(dev.stderr.take().unwrap()));
    let minted = cli_mint(&network);
    let token = minted["tokenId"].as_str().unwrap();
    // kill -9 node 2: sigil dev says so and keeps running; nodes 0 and 1 (t = 2) still sign.
    let pid = node_pid(&dir.path().join("node2/node.toml")).expect("node 2's process");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let mut said = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = err.next_line().await.unwrap() {
            said.push_str(&line);
            said.push('\n');
            if line.contains("node 2 exited") {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("sigil dev did not report the exit:\n{said}"));
    assert!(said.contains("the other nodes keep serving"), "{said}");
    assert!(dev.try_wait().unwrap().is_none(), "sigil dev stopped");
    cli_sign(&network, token, &"ab".repeat(32));
    // It comes back by itself and takes part again.
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = err.next_line().await.unwrap() {
            if line.contains("node 2 restarted") {
                return;
            }
        }
    })
    .await
    .expect("node 2 was not restarted");
    assert_ne!(node_pid(&dir.path().join("node2/node.toml")), Some(pid));
    cli_sign(&network, token, &"ac".repeat(32));
    stop_sigil_dev(&mut dev).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ids_are_the_nodes_own_not_their_places_in_the_list() {
    // Listed out of order, none of them 0..n: every id is a node's own (DESIGN §9), as after
    // epochs in which nodes joined and left.
    let ids = vec![77, 3, 40, 8, 21];
    let mut net = Network::start_with_ids(ids.clone(), 6).await;
    let client = net.wait_ready(READY).await;
    assert_eq!(client.threshold(), 4);
    let known: BTreeSet<u32> = client.nodes().iter().map(|n| n.id).collect();
    assert_eq!(known, ids.iter().copied().collect());
    let owned = mint(&net, &client, 1).await;
    for _ in 0..3 {
        let outcome = sign_and_check(&client, &owned).await;
        assert!(
            outcome.signers.iter().all(|s| known.contains(s)),
            "{:?}",
            outcome.signers
        );
    }

    // `exclude` names nodes by their ids: one that is no node's is refused, whatever its size.
    let sign_url = format!("{}/web/pkp/sign", net.urls[0]);
    for stranger in [0u32, 4, 1000] {
        let body = serde_json::json!({
            "keyId": hex::encode(owned.key_ids[0]),
            "toSign": hex::encode(random::<32>()),
            "requestId": hex::encode(random::<16>()),
            "authSig": owned.auth,
            "exclude": [stranger],
        });
        let (status, json) = post(&sign_url, body.to_string()).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{json}"
        );
        assert!(json["error"]["message"].as_str().unwrap().contains("exclude"), "{json}");
    }

    // Threshold decryption combines shares by id.
    let conditions = serde_json::json!([{
        "contractAddress": "", "standardContractType": "timestamp",
        "chain": "sigil", "method": "eth_getBlockByNumber", "parameters": ["latest"],
        "returnValueTest": { "comparator": ">=", "value": "1" },
    }]);
    let sealed = client.encrypt(&conditions, b"combined by id").unwrap();
    let opened = client.decrypt(&sealed, Some(&owned.auth)).await.unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"combined by id");

    // The node with id 40 (third in the list) dies: the sets the allocator picks leave it out,
    // and the client names it by its id.
    net.kill(2);
    for _ in 0..3 {
        let outcome = sign_and_check(&client, &owned).await;
        assert!(!outcome.signers.contains(&40), "{:?}", outcome.signers);
    }
    let opened = client.decrypt(&sealed, Some(&owned.auth)).await.unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"combined by id");
}
