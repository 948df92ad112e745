//! The chain vouches for the network (DESIGN §6, invariant 9): the root keys are recorded in
//! NodeSet only with `threshold` node signatures, and a client believes a node's handshake only
//! when it is signed by the key NodeSet lists, answers the client's fresh challenge, and reports
//! the recorded keys. The attacker here sits between the client and some nodes (plain HTTP).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_chain::registry::{read_node_set, read_provider};
use sigil_client::{Client, ClientError};

use crate::harness::{mitm_proxy, Network, Rewrite};

const READY: Duration = Duration::from_secs(120);

/// A proxy that swaps the BLS key in handshakes for another valid point (node 0's public share),
/// as an attacker who wants clients to encrypt to a key it chose would.
fn swap_bls_key() -> Rewrite {
    Arc::new(|path, mut answer| {
        if path == "/web/handshake" {
            if let Some(share) = answer["blsPublicShares"]["0"].as_str().map(str::to_string) {
                answer["blsPublicKey"] = serde_json::Value::String(share);
            }
        }
        answer
    })
}

/// A proxy that answers every handshake with the first one it saw (a recorded, genuine answer).
fn replay_first_handshake() -> Rewrite {
    let first: Arc<Mutex<Option<serde_json::Value>>> = Arc::default();
    Arc::new(move |path, answer| {
        if path != "/web/handshake" {
            return answer;
        }
        first.lock().unwrap().get_or_insert(answer).clone()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_need_threshold_signatures_and_a_man_in_the_middle_is_refused() {
    // n = 4, t = 3.
    let mut net = Network::start(4, 4, |_| vec![]).await;
    let chain = net.chain();
    // Before the record exists, no client takes the nodes' word for the keys.
    net.wait_keys(READY).await;
    match Client::connect(&chain).await {
        Err(ClientError::KeysNotRecorded { .. }) => {}
        other => panic!(
            "connected without a key record: {:?}",
            other.map(|c| c.nodes().to_vec())
        ),
    }
    // Two nodes of four cannot record keys (t = 3), and nothing is recorded.
    net.kill(2);
    net.kill(3);
    let (ok, out) = net.record_keys();
    assert!(!ok, "recorded with two signatures: {out}");
    assert!(out.contains("only 2 of the 3 node signatures needed"), "{out}");
    let provider = read_provider(&chain.rpc_url).unwrap();
    let view = read_node_set(&provider, chain.node_set).await.unwrap();
    assert!(view.keys.is_empty() && view.attester.is_zero(), "{view:?}");
    net.restart(2);
    net.restart(3);
    let client = net.wait_ready(READY).await;
    let view = read_node_set(&provider, chain.node_set).await.unwrap();
    assert_eq!(view.keys_epoch, view.epoch);
    assert_eq!(hex::encode(&view.keys.bls), client.bls_root());
    assert_eq!(view.attester.to_string(), client.attester_address());
    // Recording again is a no-op that still succeeds.
    let (ok, out) = net.record_keys();
    assert!(ok, "{out}");

    // A man in the middle in front of node 2 swaps the BLS key: node 2 is named and left out,
    // the client connects through the other three and encrypts to the recorded key.
    let mut urls: BTreeMap<u32, String> = (0..4).map(|i| (i, net.urls[i as usize].clone())).collect();
    urls.insert(2, mitm_proxy(net.urls[2].clone(), swap_bls_key()).await);
    let through = Client::connect_via(&chain, &urls).await.unwrap();
    let ids: Vec<u32> = through.nodes().iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![0, 1, 3]);
    let named = &through.unreachable()[0];
    assert_eq!(named.node, Some(2));
    assert!(named.reason.contains("not signed by the key NodeSet lists"), "{named}");
    assert_eq!(through.bls_root(), hex::encode(&view.keys.bls));

    // A replayed genuine answer does not answer a fresh challenge.
    urls.insert(2, mitm_proxy(net.urls[2].clone(), replay_first_handshake()).await);
    let first = Client::connect_via(&chain, &urls).await.unwrap();
    assert_eq!(
        first.nodes().len(),
        4,
        "the first answer is live: {:?}",
        first.unreachable()
    );
    let replayed = Client::connect_via(&chain, &urls).await.unwrap();
    assert_eq!(replayed.nodes().len(), 3);
    assert_eq!(replayed.unreachable()[0].node, Some(2));
    assert!(
        replayed.unreachable()[0].reason.contains("replayed"),
        "{:?}",
        replayed.unreachable()
    );

    // An attacker in front of two nodes of four leaves fewer than t honest answers: no connection,
    // and both are named.
    urls.insert(1, mitm_proxy(net.urls[1].clone(), swap_bls_key()).await);
    urls.insert(2, mitm_proxy(net.urls[2].clone(), swap_bls_key()).await);
    match Client::connect_via(&chain, &urls).await {
        Err(ClientError::NotReady {
            ready, need, failures, ..
        }) => {
            assert_eq!((ready, need), (2, 3));
            let named: Vec<_> = failures.iter().map(|f| f.node).collect();
            assert_eq!(named, vec![Some(1), Some(2)]);
        }
        other => panic!(
            "connected through two forged handshakes: {:?}",
            other.map(|c| c.nodes().to_vec())
        ),
    }
}
