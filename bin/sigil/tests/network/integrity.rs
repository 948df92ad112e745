//! Signing integrity on a real network (DESIGN §4, invariant 2): a presignature belongs to exactly
//! its `t` signers, a malicious allocator gets at most one share per presignature from each honest
//! holder, a restarted allocator binds no slot twice, and a silent node does not stop production.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sigil_client::Client;

use crate::harness::Network;
use crate::signing::{mint, sign_and_check, Owned};

const READY: Duration = Duration::from_secs(120);

async fn metric(net: &Network, i: usize, name: &str) -> u64 {
    net.metric(i, name).await
}

/// Signs `count` times, each outcome with exactly `t` signers and its own presignature.
async fn sign_many(client: &Client, owned: &Owned, count: usize, presignatures: &mut BTreeSet<String>) {
    for _ in 0..count {
        let outcome = sign_and_check(client, owned).await;
        assert_eq!(outcome.signers.len(), client.threshold(), "{:?}", outcome.signers);
        assert!(
            presignatures.insert(outcome.presignature.clone()),
            "presignature {} made two signatures",
            outcome.presignature
        );
    }
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocator_binding_a_presignature_twice_gets_one_share_per_holder_and_signing_goes_on() {
    // Node 0 is the allocator, and hands every other presignature to the next request as well.
    let mut net = Network::start(4, 16, |i| {
        if i == 0 {
            vec!["--fault".into(), "double-bind".into()]
        } else {
            vec![]
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let mut presignatures = BTreeSet::new();
    sign_many(&client, &owned, 12, &mut presignatures).await;
    // Every holder of a twice-bound presignature refused the second request, durably, and said so.
    let mut conflicts = Vec::new();
    for i in 0..4 {
        conflicts.push(metric(&net, i, "sigil_presignature_conflicts_total").await);
    }
    for i in 1..4 {
        assert!(conflicts[i] >= 1, "node {i} never saw a second binding: {conflicts:?}");
        assert!(
            net.log(i)
                .contains("bound a presignature this node already used to another request"),
            "node {i} did not log the conflict"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocator_killed_and_restarted_mid_load_binds_no_slot_twice() {
    let mut net = Network::start(3, 24, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let started = Instant::now();
    while metric(&net, 0, "sigil_presignature_stock").await < 12 {
        assert!(started.elapsed() < Duration::from_secs(240), "no stock");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut presignatures = BTreeSet::new();
    // Load in flight while the allocator dies: some requests fail, none may bind a slot twice.
    let load = {
        let client = client.clone();
        let auth = owned.auth.clone();
        let key_ids = owned.key_ids.clone();
        tokio::spawn(async move {
            let owned = Owned { key_ids, auth };
            let mut done = Vec::new();
            for _ in 0..6 {
                let batch = futures::future::join_all((0..4).map(|_| async {
                    let hash = rand_hash();
                    client
                        .pkp_sign(sigil_client::KeyRef::KeyId(owned.key_ids[0]), hash, &owned.auth)
                        .await
                }))
                .await;
                done.extend(batch.into_iter().filter_map(Result::ok).map(|o| o.presignature));
            }
            done
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    net.kill(0);
    net.restart(0);
    for id in load.await.unwrap() {
        assert!(
            presignatures.insert(id.clone()),
            "presignature {id} made two signatures"
        );
    }
    let client = net.wait_ready(READY).await;
    sign_many(&client, &owned, 8, &mut presignatures).await;
    for i in 0..3 {
        assert_eq!(
            metric(&net, i, "sigil_presignature_conflicts_total").await,
            0,
            "node {i} was asked to use a presignature for a second request:\n{}",
            net.log(i)
        );
    }
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_answers_pings_but_never_joins_runs_does_not_stop_signing() {
    let mut net = Network::start(4, 6, |i| {
        if i == 3 {
            vec!["--fault".into(), "silent-presigner".into()]
        } else {
            vec![]
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let mut presignatures = BTreeSet::new();
    sign_many(&client, &owned, 6, &mut presignatures).await;
    assert!(
        net.log(0).contains("node stalled a presignature run"),
        "the allocator never noticed node 3:\n{}",
        net.log(0)
    );
}

fn rand_hash() -> [u8; 32] {
    use rand_core::RngCore;
    let mut out = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_old_data_directory_does_not_sign_with_a_used_presignature() {
    let mut net = Network::start(3, 12, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let started = Instant::now();
    while metric(&net, 0, "sigil_presignature_stock").await < 8 {
        assert!(started.elapsed() < Duration::from_secs(240), "no stock");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A backup of the allocator's data file, with its stock of slots and presignature shares.
    net.kill(0);
    let data = net.data_dir(0).join("sigil.redb");
    let backup = net.dir.path().join("node0-backup.redb");
    std::fs::copy(&data, &backup).unwrap();
    net.restart(0);
    let client = net.wait_ready(READY).await;
    let mut presignatures = BTreeSet::new();
    sign_many(&client, &owned, 6, &mut presignatures).await;
    // Heartbeats carry node 0's take counter to its peers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The operator restores the backup: the slots and shares used since are back in it.
    net.kill(0);
    std::fs::copy(&backup, &data).unwrap();
    net.restart(0);
    let client = net.wait_ready(READY).await;
    sign_many(&client, &owned, 6, &mut presignatures).await;
    assert!(
        net.log(0).contains("older than what this node already used"),
        "node 0 did not notice the rollback:\n{}",
        net.log(0)
    );
    for i in 1..3 {
        assert_eq!(
            metric(&net, i, "sigil_presignature_conflicts_total").await,
            0,
            "node {i} was asked to use a presignature again:\n{}",
            net.log(i)
        );
    }
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_inflating_a_restarted_nodes_take_counter_does_not_make_it_discard_its_stock() {
    // Node 2 answers every rollback check with a counter a million above what it saw, carrying
    // the asker's real signature over the true count.
    let mut net = Network::start(3, 8, |i| {
        if i == 2 {
            vec!["--fault".into(), "inflated-witness".into()]
        } else {
            vec![]
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let mut presignatures = BTreeSet::new();
    sign_many(&client, &owned, 4, &mut presignatures).await;
    // Heartbeats carry node 0's signed counter to its peers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Node 0 restarts while node 1 is down, so the liar's is the only answer it gets: it is not
    // believed, and node 0 waits (signing nothing) rather than discard its stock or trust it.
    net.kill(0);
    net.kill(1);
    net.restart(0);
    let started = Instant::now();
    while !net
        .log(0)
        .contains("a peer reports a take counter this node never signed")
    {
        assert!(
            started.elapsed() < READY,
            "node 0 never heard the liar:\n{}",
            net.log(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!net.log(0).contains("rollback check passed"), "{}", net.log(0));
    net.restart(1);
    let client = net.wait_ready(READY).await;
    let started = Instant::now();
    while !net.log(0).contains("rollback check passed") {
        assert!(
            started.elapsed() < READY,
            "node 0 never passed its rollback check:\n{}",
            net.log(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = net.log(0);
    assert!(
        !log.contains("older than what this node already used"),
        "a made-up counter made node 0 discard its stock:\n{log}"
    );
    sign_many(&client, &owned, 4, &mut presignatures).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_unfunded_wallets_asking_for_mint_attestations_spend_no_presignature() {
    use sigil_chain::alloy::primitives::B256;
    use sigil_chain::alloy::signers::local::PrivateKeySigner;
    let mut net = Network::start(3, 4, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(metric(&net, i, "sigil_presignatures_allocated_total").await);
    }
    for _ in 0..40 {
        let wallet = PrivateKeySigner::from_bytes(&B256::from(rand_hash())).unwrap();
        let auth = client
            .auth_sig(&wallet, "localhost", Duration::from_secs(600))
            .await
            .unwrap();
        let body = serde_json::json!({"salt": hex::encode(rand_hash()), "authSig": auth}).to_string();
        for url in &net.urls {
            let (status, json) = crate::harness::post(&format!("{url}/web/pkp/mint-attestation"), body.clone()).await;
            assert_eq!(
                (status, json["error"]["code"].as_str()),
                (403, Some("MINT_NOT_REQUESTED")),
                "{json}"
            );
        }
    }
    for (i, before) in before.into_iter().enumerate() {
        assert_eq!(
            metric(&net, i, "sigil_presignatures_allocated_total").await,
            before,
            "node {i} allocated presignatures for unpaid attestations"
        );
    }
    // A funded wallet that requested its mint on chain gets its PKP.
    let owned = mint(&net, &client, 1).await;
    assert_eq!(owned.key_ids.len(), 1);
}

/// A peer that binds a request id first cannot take the request from the others: allocations are
/// keyed by request id and digest. The adversary is node 1. It asks the allocator for every
/// request's presignature with a digest of its own (and releases no share), and it is asked first,
/// alone, for all three attempts of a mint attestation (whose request ids every node derives from
/// the key id the same way), so it has bound each of them before any honest node asks.
#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_binding_every_attestation_request_first_with_another_digest_does_not_stop_the_mint() {
    use sigil_chain::alloy::primitives::Bytes;
    let mut net = Network::start(4, 12, |i| {
        if i == 1 {
            vec!["--fault".into(), "squat-requests".into()]
        } else {
            vec![]
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    let (signer, provider) = net.wallet(crate::harness::DEV_KEY);
    let auth = client
        .auth_sig(&signer, "localhost", Duration::from_secs(600))
        .await
        .unwrap();
    let salt = rand_hash();
    let key_id = client.key_id_for(&auth, &salt, None).unwrap();
    client.request_mint(&provider, &net.contracts(), key_id).await.unwrap();
    for attempt in 0..3 {
        let body = serde_json::json!({"salt": hex::encode(salt), "authSig": auth, "attempt": attempt}).to_string();
        let (status, json) = crate::harness::post(&format!("{}/web/pkp/mint-attestation", net.urls[1]), body).await;
        assert_eq!(status, 502, "attempt {attempt}: {json}");
    }
    assert_eq!(
        net.log(1)
            .matches("TEST FAULT: asked for this request's presignature with another digest")
            .count(),
        3,
        "node 1 did not squat the three attempts:\n{}",
        net.log(1)
    );
    let (key, attestation) = client.mint_attestation(salt, None, &auth).await.unwrap();
    assert_eq!(key, key_id);
    let pubkey = sigil_tss::derive::uncompressed(&client.pkp_public_key(sigil_client::KeyRef::KeyId(key)));
    sigil_chain::bindings::PKPNFT::new(net.contracts().pkp_nft, &provider)
        .mint(
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
    // The minted key signs, with the squatter in the network.
    let owned = Owned {
        key_ids: vec![key_id],
        auth,
    };
    let mut presignatures = BTreeSet::new();
    sign_many(&client, &owned, 3, &mut presignatures).await;
}
