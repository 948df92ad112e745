//! Changing the node set on a real network: the admin proposes the next epoch with
//! `sigil admin epoch`, NodeSet keeps ids with their nodes, and the network serves meanwhile.

use std::time::Duration;

use crate::harness::{cli, Network, ALICE_KEY, DEV_KEY};
use crate::signing::{mint, sign_and_check};

const READY: Duration = Duration::from_secs(120);

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
    assert!(err.contains("NotAdmin(address)"), "{err}");

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
    // The current epoch serves on: proposing changes nothing until the new nodes confirm.
    sign_and_check(&client, &owned).await;

    let (ok, out, err) = cli(&net, DEV_KEY, &["admin", "epoch", "cancel"]);
    assert!(ok, "{err}");
    assert!(out.contains("the proposal of epoch 2 is withdrawn"), "{out}");
    let (_, out, _) = cli(&net, DEV_KEY, &["admin", "epoch", "show"]);
    assert!(
        out.contains("epoch 1: threshold 3") && out.contains("no epoch is proposed"),
        "{out}"
    );

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
}
