//! Changing the node set on a real network: the admin proposes the next epoch with
//! `sigil admin epoch`, NodeSet keeps ids with their nodes, and the network serves meanwhile.

use std::time::Duration;

use std::time::Instant;

use sigil_chain::registry::read_nodes;

use crate::harness::{cli, post, Network, ALICE_KEY, DEV_KEY};
use crate::signing::{mint, sign_and_check};

const READY: Duration = Duration::from_secs(120);

/// Waits until `check` holds for the `/health` of every node in `nodes`, or panics after 20 s
/// (nodes read NodeSet every 2 s).
async fn every_health(net: &Network, nodes: &[usize], check: impl Fn(&serde_json::Value) -> bool) {
    let started = Instant::now();
    loop {
        let mut last = serde_json::Value::Null;
        let mut all = true;
        for i in nodes {
            last = reqwest::get(format!("{}/health", net.urls[*i]))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            all &= check(&last);
        }
        if all {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "health never matched: {last}"
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
