//! Changing the node set on a real network: the admin proposes the next epoch with
//! `sigil admin epoch`, NodeSet keeps ids with their nodes, and the network serves meanwhile.

use std::time::Duration;

use std::time::Instant;

use sigil_chain::registry::read_nodes;

use crate::harness::{cli, post, Network, ALICE_KEY, DEV_KEY};
use crate::signing::{mint, sign_and_check};

const READY: Duration = Duration::from_secs(120);

/// Waits until `check` holds for the `/health` of every node in `nodes`, or panics after 30 s
/// (nodes read NodeSet every 2 s).
/// Waits up to 10 s for node `i`'s log to say `text` (a log line lands a moment after the state
/// it reports).
async fn wait_log(net: &Network, i: usize, text: &str) {
    let started = Instant::now();
    while !net.log(i).contains(text) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node {i} never logged {text:?}:\n{}",
            net.log(i)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn every_health(net: &Network, nodes: &[usize], check: impl Fn(&serde_json::Value) -> bool) {
    let started = Instant::now();
    loop {
        let mut last = serde_json::Value::Null;
        let mut all = true;
        for i in nodes {
            // A node still starting is not listening yet: that is a "no".
            last = match reqwest::get(format!("{}/health", net.urls[*i])).await {
                Ok(answer) => answer.json().await.unwrap_or_default(),
                Err(e) => serde_json::json!({ "node": i, "unreachable": e.to_string() }),
            };
            all &= check(&last);
        }
        if all {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "health never matched: {last}; logs:\n{}",
            nodes
                .iter()
                .map(|i| format!("--- node {i}\n{}", net.log(*i)))
                .collect::<String>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_proposes_and_withdraws_an_epoch_ids_stay_with_their_nodes_and_signing_goes_on() {
    let mut net = Network::start(4, 4, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    sign_and_check(&client, &owned).await;

    let (ok, out, err) = cli(&net, DEV_KEY, &["admin", "epoch", "show"]);
    assert!(ok, "{err}");
    assert!(out.contains("epoch 1: threshold 3, nodes 0, 1, 2, 3"), "{out}");
    assert!(out.contains("no epoch is proposed"), "{out}");

    let joining = format!(
        "7,{},0x00000000000000000000000000000000000000a7,http://127.0.0.1:9",
        "ab".repeat(32)
    );
    // Only the admin proposes.
    let (ok, _, err) = cli(
        &net,
        ALICE_KEY,
        &["admin", "epoch", "propose", "--remove", "0", "--add", &joining],
    );
    assert!(!ok);
    // NodeSet's error, decoded: the caller's address as an address.
    assert!(
        err.contains("NotAdmin(address) 0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        "{err}"
    );

    // Node 0 leaves, node 7 joins; the threshold is ⌈2·4/3⌉ = 3.
    let (ok, out, err) = cli(
        &net,
        DEV_KEY,
        &["admin", "epoch", "propose", "--remove", "0", "--add", &joining],
    );
    assert!(ok, "{err}");
    assert!(out.contains("epoch 2 proposed: threshold 3, nodes 1, 2, 3, 7"), "{out}");
    // One proposal at a time.
    let (ok, _, err) = cli(&net, DEV_KEY, &["admin", "epoch", "propose", "--threshold", "4"]);
    assert!(!ok);
    assert!(err.contains("ProposalPending(uint64) 2"), "{err}");
    // Every node follows NodeSet and shows the proposal; the current epoch serves on: proposing
    // changes nothing until the new nodes confirm.
    every_health(&net, &[0, 1, 2, 3], |h| {
        h["chain"]["proposal"]["epoch"] == 2 && h["chain"]["proposal"]["nodes"] == serde_json::json!([1, 2, 3, 7])
    })
    .await;
    assert!(
        net.log(0).contains("epoch proposed in NodeSet; this node leaves"),
        "{}",
        net.log(0)
    );
    assert!(
        net.log(1).contains("epoch proposed in NodeSet; this node stays"),
        "{}",
        net.log(1)
    );
    let (ok, out, err) = cli(&net, DEV_KEY, &["status"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("epoch 2 is proposed in NodeSet: threshold 3, nodes [1,2,3,7]"),
        "{out}"
    );
    sign_and_check(&client, &owned).await;

    let (ok, out, err) = cli(&net, DEV_KEY, &["admin", "epoch", "cancel"]);
    assert!(ok, "{err}");
    assert!(out.contains("the proposal of epoch 2 is withdrawn"), "{out}");
    let (_, out, _) = cli(&net, DEV_KEY, &["admin", "epoch", "show"]);
    assert!(
        out.contains("epoch 1: threshold 3") && out.contains("no epoch is proposed"),
        "{out}"
    );
    every_health(&net, &[0, 1, 2, 3], |h| {
        h["chain"]["proposal"].is_null() && h["chain"]["epoch"] == 1
    })
    .await;

    // An id is its node's for life: node 1's id cannot pass to another signer, even as node 1
    // leaves, and a node cannot take a new id (its shares sit at its id).
    let (ok, _, err) = cli(
        &net,
        DEV_KEY,
        &[
            "admin",
            "epoch",
            "propose",
            "--remove",
            "1",
            "--add",
            &joining.replacen("7,", "1,", 1),
        ],
    );
    assert!(!ok);
    assert!(err.contains("BadNode(uint256) 3"), "{err}");
    // Mistakes the CLI can see are refused before any transaction.
    let (ok, _, err) = cli(&net, DEV_KEY, &["admin", "epoch", "propose", "--remove", "5"]);
    assert!(!ok && err.contains("--remove 5: no node of the current epoch"), "{err}");
    let (ok, _, err) = cli(
        &net,
        DEV_KEY,
        &["admin", "epoch", "propose", "--remove", "0", "--remove", "1"],
    );
    assert!(!ok && err.contains("would have 2 nodes"), "{err}");

    sign_and_check(&client, &owned).await;

    // The admin's reset lists the nodes without node 3: node 3 learns it from the chain and
    // serves no client from then on, and says why; the others are still members.
    let (_, admin) = net.wallet(DEV_KEY);
    let node_set = net.contracts().node_set;
    let without: Vec<_> = read_nodes(&admin, node_set)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.id != 3)
        .collect();
    sigil_chain::deploy::set_nodes(&admin, node_set, &without, 2)
        .await
        .unwrap();
    every_health(&net, &[3], |h| h["status"] == "left" && h["chain"]["member"] == false).await;
    every_health(&net, &[0, 1, 2], |h| {
        h["chain"]["epoch"] == 2 && h["chain"]["member"] == true
    })
    .await;
    let (status, json) = post(&format!("{}/web/pkp/sign", net.urls[3]), "{}").await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (503, Some("NOT_A_MEMBER")),
        "{json}"
    );
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("node 3 is not among the nodes of epoch 2"),
        "{message}"
    );
    assert!(
        net.log(3)
            .contains("this node is not among the nodes of NodeSet's current epoch"),
        "{}",
        net.log(3)
    );
    let (status, _) = post(&format!("{}/web/handshake", net.urls[3]), "{}").await;
    assert_eq!(status, 503);
}

/// What the client workload saw while the epochs changed.
#[derive(Default, Debug)]
struct Workload {
    /// Signatures and decryptions that succeeded (after retries).
    done: u64,
    /// Tries that failed and were retried.
    retried: u64,
    /// Tries that failed with `EPOCH_CHANGED` (the client should have followed the network to
    /// its new epoch on its own).
    reconnects: u64,
    /// Operations that failed through every retry, with the last error.
    failed: Vec<String>,
    /// Sign latencies in ms with the epoch the client was connected in.
    sign_ms: Vec<(u64, f64)>,
}

/// Signs with a PKP minted in epoch 1 and decrypts a ciphertext made in epoch 1, in turn, until
/// `stop`, with one client connected in epoch 1, which follows the epochs on its own; an
/// operation that fails anyway is tried again up to 20 times over ~10 s (and counted).
async fn workload(
    client: sigil_client::Client,
    owned: crate::signing::Owned,
    sealed: sigil_client::Encrypted,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Workload {
    use sigil_client::KeyRef;
    let mut seen = Workload::default();
    let mut turn = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        turn += 1;
        let mut last = String::new();
        let mut ok = false;
        for _ in 0..20 {
            let started = Instant::now();
            let result = if turn % 2 == 0 {
                let hash: [u8; 32] = rand_core::RngCore::next_u64(&mut rand_core::OsRng)
                    .to_be_bytes()
                    .repeat(4)
                    .try_into()
                    .unwrap();
                client
                    .pkp_sign(KeyRef::KeyId(owned.key_ids[0]), hash, &owned.auth)
                    .await
                    .map(|outcome| {
                        let pkp = sigil_tss::derive::derive_public_key(
                            client.ecdsa_root(),
                            &sigil_tss::derive::KeyId(owned.key_ids[0]),
                        );
                        assert!(outcome.signature.verify(&pkp, &hash));
                        seen.sign_ms
                            .push((client.epoch(), started.elapsed().as_secs_f64() * 1e3));
                    })
            } else {
                client.decrypt(&sealed, Some(&owned.auth)).await.map(|d| {
                    assert_eq!(d.plaintext.as_slice(), b"sealed in epoch 1");
                })
            };
            match result {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(e) => {
                    seen.retried += 1;
                    last = e.to_string();
                    eprintln!("workload: try failed after {:?}: {last}", started.elapsed());
                    if e.epoch_changed() {
                        seen.reconnects += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if ok {
            seen.done += 1;
        } else {
            seen.failed.push(last);
        }
    }
    seen
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Signs with `client` once the new epoch's pool has stock: right after a switch (and a restart)
/// the allocator makes its first presignatures, which with `t = n` need every node; a client
/// retries `POOL_EMPTY` the same way.
async fn sign_when_stocked(client: &sigil_client::Client, owned: &crate::signing::Owned) -> sigil_client::SignOutcome {
    let started = Instant::now();
    loop {
        let key_id = owned.key_ids[0];
        let mut hash = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut hash);
        match client
            .pkp_sign(sigil_client::KeyRef::KeyId(key_id), hash, &owned.auth)
            .await
        {
            Ok(outcome) => {
                let pkp = sigil_tss::derive::derive_public_key(client.ecdsa_root(), &sigil_tss::derive::KeyId(key_id));
                assert!(outcome.signature.verify(&pkp, &hash));
                return outcome;
            }
            Err(e) if e.to_string().contains("POOL_EMPTY") && started.elapsed() < Duration::from_secs(150) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("no signature after {:?}: {e}", started.elapsed()),
        }
    }
}

/// Runs `sigil admin epoch confirm` until the proposed nodes all confirm (the reshare runs on its
/// own once they read the proposal), or panics after 90 s.
fn confirm(net: &Network) -> String {
    let started = Instant::now();
    loop {
        let (ok, out, err) = cli(net, DEV_KEY, &["admin", "epoch", "confirm"]);
        if ok {
            return out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "never confirmed: {out}{err}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_grow_to_seven_shrink_to_four_and_raise_the_threshold_while_a_client_signs_and_decrypts() {
    let mut net = Network::start(5, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    assert_eq!(client.threshold(), 4);
    let owned = mint(&net, &client, 1).await;
    let conditions = serde_json::json!([crate::encryption::timestamp(">=", 1)]);
    let sealed = client.encrypt(&conditions, b"sealed in epoch 1").unwrap();
    let ecdsa_root = *client.ecdsa_root();
    let bls_root = client.bls_root().to_string();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(workload(
        client.clone(),
        crate::signing::Owned {
            key_ids: owned.key_ids.clone(),
            auth: owned.auth.clone(),
        },
        sealed.clone(),
        std::sync::Arc::clone(&stop),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Epoch 2: nodes 5 and 6 join; 7 nodes, threshold ⌈2·7/3⌉ = 5. They start once proposed:
    // they find themselves in NodeSet's proposal, not in its list.
    let (i5, add5) = net.add_node(5);
    let (i6, add6) = net.add_node(6);
    let proposed = Instant::now();
    let (ok, out, err) = cli(
        &net,
        DEV_KEY,
        &["admin", "epoch", "propose", "--add", &add5, "--add", &add6],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("epoch 2 proposed: threshold 5, nodes 0, 1, 2, 3, 4, 5, 6"),
        "{out}"
    );
    net.restart(i5);
    net.restart(i6);
    // Every proposed node reshares on its own; until NodeSet confirms, epoch 1 serves.
    every_health(&net, &[0, 1, 2, 3, 4, 5, 6], |h| {
        h["reshared"]["epoch"] == 2 && h["epoch"] == 1
    })
    .await;
    assert!(
        net.log(i5).contains("this node joins the epoch proposed in NodeSet"),
        "{}",
        net.log(i5)
    );
    let out = confirm(&net);
    assert!(out.contains("epoch 2 started"), "{out}");
    let to_epoch_2 = proposed.elapsed();
    every_health(&net, &[0, 1, 2, 3, 4, 5, 6], |h| {
        h["status"] == "ok" && h["epoch"] == 2 && h["threshold"] == 5 && h["reshared"].is_null()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Epoch 3: three leave (node 0, the allocator, node 1, and node 5 that just joined); 4 nodes,
    // threshold 3.
    let proposed = Instant::now();
    let (ok, out, err) = cli(
        &net,
        DEV_KEY,
        &[
            "admin", "epoch", "propose", "--remove", "0", "--remove", "1", "--remove", "5",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("epoch 3 proposed: threshold 3, nodes 2, 3, 4, 6"), "{out}");
    every_health(&net, &[2, 3, 4, i6], |h| h["reshared"]["epoch"] == 3).await;
    let out = confirm(&net);
    assert!(out.contains("epoch 3 started"), "{out}");
    let to_epoch_3 = proposed.elapsed();
    every_health(&net, &[2, 3, 4, i6], |h| {
        h["status"] == "ok" && h["epoch"] == 3 && h["threshold"] == 3
    })
    .await;
    every_health(&net, &[0, 1, i5], |h| h["status"] == "left").await;
    // A node reads that it left before it erases (within a second or two).
    let started = Instant::now();
    for i in [0, 1, i5] {
        while !net.log(i).contains("root key shares and presignatures are erased") {
            assert!(started.elapsed() < Duration::from_secs(20), "{}", net.log(i));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Epoch 4: the same nodes, threshold 4.
    let proposed = Instant::now();
    let (ok, out, err) = cli(&net, DEV_KEY, &["admin", "epoch", "propose", "--threshold", "4"]);
    assert!(ok, "{err}");
    assert!(out.contains("epoch 4 proposed: threshold 4, nodes 2, 3, 4, 6"), "{out}");
    let out = confirm(&net);
    assert!(out.contains("epoch 4 started"), "{out}");
    let to_epoch_4 = proposed.elapsed();
    every_health(&net, &[2, 3, 4, i6], |h| h["epoch"] == 4 && h["threshold"] == 4).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    stop.store(true, std::sync::atomic::Ordering::Release);
    let seen = load.await.unwrap();
    for i in [2, 6] {
        for line in net
            .log(i)
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(40)
        {
            eprintln!("node {i}: {}", &line[..line.len().min(400)]);
        }
    }
    assert!(seen.failed.is_empty(), "operations failed: {seen:?}");
    // The client followed every epoch change itself: no call of it ended in EPOCH_CHANGED.
    assert_eq!(seen.reconnects, 0, "{seen:?}");
    assert!(seen.done >= 10, "{seen:?}");

    // The keys never changed: a client connecting now finds the same roots, a PKP minted in
    // epoch 1 signs, and a ciphertext made in epoch 1 decrypts.
    let now = sigil_client::Client::connect(&net.chain()).await.unwrap();
    assert_eq!(now.epoch(), 4);
    assert_eq!(now.threshold(), 4);
    assert_eq!(*now.ecdsa_root(), ecdsa_root);
    assert_eq!(now.bls_root(), bls_root);
    let outcome = sign_when_stocked(&now, &owned).await;
    assert_eq!(outcome.signers.len(), 4);
    let opened = now.decrypt(&sealed, Some(&owned.auth)).await.unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"sealed in epoch 1");
    assert!(
        opened.shares_from.iter().all(|id| [2, 3, 4, 6].contains(id)),
        "{:?}",
        opened.shares_from
    );

    // The nodes that left hold no root key share any more, of any epoch, nor a presignature,
    // and never run the DKG again.
    for i in [0, 1, i5] {
        net.kill(i);
        let store = crate::harness::open_store(&net.config(i), &net.data_dir(i));
        match sigil_node::epoch::load_root_keys(&store).unwrap() {
            sigil_node::epoch::StoredRootKeys::Erased(3) => {}
            sigil_node::epoch::StoredRootKeys::Erased(n) => panic!("erased in epoch {n}"),
            sigil_node::epoch::StoredRootKeys::Both(n, _) => panic!("root key shares of epoch {n:?} remain"),
            sigil_node::epoch::StoredRootKeys::Partial => panic!("one root key share remains"),
            sigil_node::epoch::StoredRootKeys::None => panic!("a fresh file, on which the DKG would run"),
        }
        assert!(sigil_node::epoch::load_next_root_keys(&store).unwrap().is_empty());
        for epoch in 1..=4 {
            let (ecdsa, bls) = sigil_node::epoch::Epoch::root_records(epoch);
            assert!(store.key_share::<sigil_tss::Secp256k1>(&ecdsa).unwrap().is_none());
            assert!(store.key_share::<sigil_tss::Bls12381G1>(&bls).unwrap().is_none());
        }
        assert_eq!(store.presignature_count().unwrap(), 0);
    }

    // A node that left comes back under its own id: it joins like a new node (its file says it
    // erased its shares) and gets fresh ones.
    let settings = sigil_node::NodeConfig::load(&net.config(0)).unwrap();
    let identity = sigil_node::init_data_dir(&net.data_dir(0), &settings.storage_key().unwrap()).unwrap();
    let back = format!("0,{},{},{}", hex::encode(identity.key.0), identity.signer, net.urls[0]);
    let (ok, out, err) = cli(&net, DEV_KEY, &["admin", "epoch", "propose", "--add", &back]);
    assert!(ok, "{err}");
    assert!(
        out.contains("epoch 5 proposed: threshold 4, nodes 2, 3, 4, 6, 0"),
        "{out}"
    );
    net.restart(0);
    every_health(&net, &[0, 2, 3, 4, i6], |h| h["reshared"]["epoch"] == 5).await;
    let out = confirm(&net);
    assert!(out.contains("epoch 5 started"), "{out}");
    every_health(&net, &[0, 2, 3, 4, i6], |h| h["epoch"] == 5 && h["status"] == "ok").await;
    let back_in = sigil_client::Client::connect(&net.chain()).await.unwrap();
    assert_eq!(back_in.nodes().len(), 5, "{:?}", back_in.unreachable());
    assert_eq!(*back_in.ecdsa_root(), ecdsa_root);

    let mut by_epoch: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    for (epoch, ms) in &seen.sign_ms {
        by_epoch.entry(*epoch).or_default().push(*ms);
    }
    println!(
        "epoch changes: proposal to epoch on chain 5→7 {:.1} s, 7→4 {:.1} s, t 3→4 {:.1} s; {} operations, {} retried tries ({} after EPOCH_CHANGED), {} failed",
        to_epoch_2.as_secs_f64(),
        to_epoch_3.as_secs_f64(),
        to_epoch_4.as_secs_f64(),
        seen.done,
        seen.retried,
        seen.reconnects,
        seen.failed.len()
    );
    for (epoch, mut ms) in by_epoch {
        ms.sort_by(f64::total_cmp);
        println!(
            "  sign in epoch {epoch}: n={} p50 {:.1} ms p99 {:.1} ms",
            ms.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dealer_that_deals_bad_shares_is_named_and_the_reshare_completes_without_it() {
    let mut net = Network::start(5, 4, |i| {
        if i == 4 {
            vec!["--fault".into(), "bad-reshare-dealer".into()]
        } else {
            vec![]
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    // The same five nodes, threshold 5: node 4 deals bad shares in the first run.
    let (ok, out, err) = cli(&net, DEV_KEY, &["admin", "epoch", "propose", "--threshold", "5"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("epoch 2 proposed: threshold 5, nodes 0, 1, 2, 3, 4"),
        "{out}"
    );
    every_health(&net, &[0, 1, 2, 3, 4], |h| h["reshared"]["epoch"] == 2).await;
    // The receivers caught node 4's shares and named it; the leader ran again without it as a
    // dealer (node 4 still receives: it stays in the epoch).
    let leader = net.log(0);
    assert!(
        leader.contains("reshare run failed") && leader.contains("suspects=[4]"),
        "{leader}"
    );
    assert!(leader.contains("dealers=[0, 1, 2, 3]"), "{leader}");
    let out = confirm(&net);
    assert!(out.contains("epoch 2 started"), "{out}");
    every_health(&net, &[0, 1, 2, 3, 4], |h| h["epoch"] == 2 && h["threshold"] == 5).await;
    let now = sigil_client::Client::connect(&net.chain()).await.unwrap();
    assert_eq!((now.epoch(), now.threshold()), (2, 5));
    assert_eq!(now.ecdsa_root(), client.ecdsa_root());
    let outcome = sign_when_stocked(&now, &owned).await;
    assert_eq!(outcome.signers.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_killed_during_a_reshare_and_before_the_switch_come_back_into_the_new_epoch() {
    let mut net = Network::start(5, 4, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let (ok, _, err) = cli(&net, DEV_KEY, &["admin", "epoch", "propose", "--threshold", "5"]);
    assert!(ok, "{err}");
    // The leader dies at once (kill -9), and comes back: a run needs every proposed node, so the
    // reshare waits for it, then completes.
    net.kill(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    net.restart(0);
    every_health(&net, &[0, 1, 2, 3, 4], |h| h["reshared"]["epoch"] == 2).await;
    // A node killed after it stored its new shares serves them again after its restart.
    net.kill(3);
    net.restart(3);
    every_health(&net, &[3], |h| h["reshared"]["epoch"] == 2 && h["epoch"] == 1).await;
    let out = confirm(&net);
    assert!(out.contains("epoch 2 started"), "{out}");
    // Killed right after NodeSet confirmed (before it switched, most likely): after its restart
    // it starts in the new epoch with the confirmed shares.
    net.kill(2);
    every_health(&net, &[0, 1, 3, 4], |h| h["epoch"] == 2 && h["status"] == "ok").await;
    net.restart(2);
    every_health(&net, &[2], |h| {
        h["epoch"] == 2 && h["status"] == "ok" && h["rootKeys"] == true
    })
    .await;
    let now = sigil_client::Client::connect(&net.chain()).await.unwrap();
    assert_eq!((now.epoch(), now.threshold()), (2, 5));
    assert_eq!(now.nodes().len(), 5);
    let outcome = sign_when_stocked(&now, &owned).await;
    assert_eq!(outcome.signers.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_dkg_that_one_node_never_finishes_is_recorded_without_it_and_that_node_keeps_the_shares_it_confirmed() {
    // Node 0 sends its DKG confirmation to nodes 1 and 2 only: they and node 0 finish, node 3
    // never does (an unreliable broadcast).
    let net = Network::start(4, 4, |i| {
        if i == 0 {
            vec!["--fault".into(), "withhold-dkg-confirmation".into()]
        } else {
            vec![]
        }
    })
    .await;
    every_health(&net, &[0, 1, 2], |h| h["rootKeys"] == true).await;
    every_health(&net, &[3], |h| h["rootKeys"] == false).await;
    // Three of four nodes are the threshold: they record the keys.
    let (ok, out) = net.record_keys();
    assert!(ok, "{out}");
    // Node 3 stored its shares of the run before it confirmed; NodeSet's record is theirs.
    every_health(&net, &[0, 1, 2, 3], |h| h["rootKeys"] == true && h["status"] == "ok").await;
    wait_log(&net, 3, "tentative shares of it are its root key shares").await;
    // Every node's handshake matches NodeSet's record, node 3's included, and the key signs.
    let client = sigil_client::Client::connect(&net.chain()).await.unwrap();
    assert_eq!(client.nodes().len(), 4, "{:?}", client.unreachable());
    let owned = mint(&net, &client, 1).await;
    sign_when_stocked(&client, &owned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_dkg_with_a_dealer_that_deals_one_bad_share_and_a_node_that_equivocates_its_confirmation_ends_with_one_key_at_every_node(
) {
    // Node 1 deals node 4 a share off its committed polynomial (and reveals the true one when
    // node 4 complains); node 2 confirms another transcript to node 4 than to the others.
    let net = Network::start(5, 4, |i| match i {
        1 => vec!["--fault".into(), "bad-dkg-dealer".into()],
        2 => vec!["--fault".into(), "equivocate-dkg-confirmation".into()],
        _ => vec![],
    })
    .await;
    every_health(&net, &[0, 1, 2, 3], |h| h["rootKeys"] == true).await;
    // The complaint round settled node 4's complaint: everyone saw it, and node 1's answer.
    for i in 0..5 {
        let said = if i == 4 {
            "node 4 complained that dealer 1's share fails its commitments; dealer 1 revealed one that matches them"
        } else {
            "node 4 complained about dealer 1's share; the share dealer 1 revealed matches its commitments"
        };
        wait_log(&net, i, said).await;
        assert!(!net.log(i).contains("disqualified"), "node {i}:\n{}", net.log(i));
    }
    // Node 4 saw node 2's other confirmation: its run failed naming node 2, after it stored the
    // shares it confirmed.
    every_health(&net, &[4], |h| h["rootKeys"] == false).await;
    wait_log(&net, 4, "DKG failed (blamed: nodes [2])").await;
    // Four of five are the threshold: they record the keys, and node 4's shares are theirs.
    let (ok, out) = net.record_keys();
    assert!(ok, "{out}");
    every_health(&net, &[0, 1, 2, 3, 4], |h| h["rootKeys"] == true && h["status"] == "ok").await;
    wait_log(&net, 4, "tentative shares of it are its root key shares").await;
    let client = sigil_client::Client::connect(&net.chain()).await.unwrap();
    // Each node's handshake carries its public keys and is checked against NodeSet's record:
    // all five hold shares of the one key.
    assert_eq!(client.nodes().len(), 5, "{:?}", client.unreachable());
    let owned = mint(&net, &client, 1).await;
    sign_when_stocked(&client, &owned).await;
}
