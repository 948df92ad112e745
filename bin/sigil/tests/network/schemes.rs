//! Signing schemes beyond ECDSA on a real network: BIP-340 Schnorr by FROST under a PKP's taproot
//! output key, checked by verifiers that are not Sigil's (k256's BIP-340, Bitcoin Core's script
//! interpreter), through a kill -9, against a lying node and an allocator that binds nonces twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::PrimeField;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sigil_client::{Client, KeyRef, SchnorrOutcome};
use sigil_tss::derive::{derive_public_key, KeyId};

use crate::harness::{open_store, Network};
use crate::signing::{mint, Owned};

const READY: Duration = Duration::from_secs(120);

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

fn tagged_hash(tag: &str, data: &[&[u8]]) -> [u8; 32] {
    let tag = Sha256::digest(tag.as_bytes());
    let mut h = Sha256::new();
    h.update(tag);
    h.update(tag);
    for d in data {
        h.update(d);
    }
    h.finalize().into()
}

/// BIP-341's output key for an internal key with no script tree, computed here with k256 alone:
/// lift the internal key to even y, add `tagged_hash("TapTweak", x)·G`, take x.
pub fn bip341_output_key(internal: &k256::ProjectivePoint) -> [u8; 32] {
    let affine = internal.to_affine();
    let even = if bool::from(affine.y_is_odd()) {
        -*internal
    } else {
        *internal
    };
    let x: [u8; 32] = even.to_affine().x().into();
    let tweak = tagged_hash("TapTweak", &[&x]);
    let t = Option::<k256::Scalar>::from(k256::Scalar::from_repr(tweak.into())).unwrap();
    let q = even + k256::ProjectivePoint::GENERATOR * t;
    q.to_affine().x().into()
}

/// Checks a Schnorr outcome like a Bitcoin verifier would: the key is the PKP's BIP-341 output
/// key, and the signature verifies under it by BIP-340 (k256's implementation).
pub fn check_schnorr(client: &Client, key_id: [u8; 32], message: &[u8; 32], outcome: &SchnorrOutcome) {
    let internal = derive_public_key(client.ecdsa_root(), &KeyId(key_id));
    assert_eq!(
        outcome.output_key,
        bip341_output_key(&internal),
        "not the BIP-341 output key"
    );
    let key = k256::schnorr::VerifyingKey::from_bytes(&outcome.output_key).unwrap();
    let signature = k256::schnorr::Signature::try_from(&outcome.signature[..]).unwrap();
    key.verify_raw(message, &signature)
        .unwrap_or_else(|e| panic!("BIP-340 verification failed: {e}"));
    assert_eq!(
        outcome.signers.len(),
        client.threshold(),
        "signing set {:?}",
        outcome.signers
    );
}

async fn metric(net: &Network, i: usize, name: &str) -> u64 {
    net.metrics(i)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_for_schnorr_stock(net: &Network, node: usize, at_least: u64) {
    let started = Instant::now();
    while metric(net, node, "sigil_schnorr_stock").await < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no Schnorr stock on node {node}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Signs a random message with a random one of `owned`'s PKPs by Schnorr and checks it.
async fn sign_schnorr(client: &Client, owned: &Owned) -> SchnorrOutcome {
    let key_id = owned.key_ids[(random::<1>()[0] as usize) % owned.key_ids.len()];
    let message = random::<32>();
    let outcome = client
        .pkp_sign_schnorr(KeyRef::KeyId(key_id), message, &owned.auth)
        .await
        .unwrap_or_else(|e| panic!("Schnorr signing failed: {e}"));
    check_schnorr(client, key_id, &message, &outcome);
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_schnorr_signatures_from_random_sets_verify_under_bip340_and_no_nonce_is_used_twice_across_kill_9() {
    let mut net = Network::start(5, 8, |_| vec![]).await;
    let client = net.wait_ready(READY).await;
    assert_eq!(client.threshold(), 4);
    let owned = mint(&net, &client, 3).await;
    wait_for_schnorr_stock(&net, 0, 4).await;
    let mut outcomes = Vec::new();
    for _ in 0..25 {
        outcomes.push(sign_schnorr(&client, &owned).await);
    }
    // kill -9 a holder of nonces it may have taken ahead: signing goes on without it…
    net.kill(4);
    for _ in 0..20 {
        let outcome = sign_schnorr(&client, &owned).await;
        assert!(
            !outcome.signers.contains(&4),
            "the killed node signed: {:?}",
            outcome.signers
        );
        outcomes.push(outcome);
    }
    // … and after it restarts, it signs again with fresh nonces only.
    net.restart(4);
    let client = net.wait_ready(READY).await;
    for _ in 0..5 {
        outcomes.push(sign_schnorr(&client, &owned).await);
    }
    let sets: BTreeSet<Vec<u32>> = outcomes.iter().map(|o| o.signers.clone()).collect();
    assert!(sets.len() >= 2, "every signature came from one signing set: {sets:?}");
    let slots: BTreeSet<&str> = outcomes.iter().map(|o| o.presignature.as_str()).collect();
    assert_eq!(slots.len(), outcomes.len(), "two signatures used the same nonces");
    net.stop().await;

    // Storage: every Schnorr slot a node used is marked used once, no used slot is still in
    // stock, and each signature's nonces were taken (durably) by all t holders whose shares made it.
    let mut used_by: BTreeMap<u64, usize> = BTreeMap::new();
    for i in 0..5 {
        let store = open_store(&net.config(i), &net.data_dir(i));
        let used: Vec<_> = store.used().unwrap().into_iter().filter(|id| id.is_schnorr()).collect();
        let distinct: BTreeSet<_> = used.iter().map(|id| (id.pool, id.seq)).collect();
        assert_eq!(distinct.len(), used.len(), "node {i} lists a slot twice");
        for id in &used {
            let stocked = store.stocked(&id.pool).unwrap();
            assert!(
                !stocked.contains(&id.seq),
                "node {i}: used Schnorr slot {id} still in stock"
            );
            *used_by.entry(id.seq).or_default() += 1;
        }
    }
    for outcome in &outcomes {
        let seq: u64 = outcome.presignature.split(':').nth(1).unwrap().parse().unwrap();
        assert!(
            seq >= sigil_node::store::SCHNORR_SLOTS,
            "{} is no Schnorr slot",
            outcome.presignature
        );
        let holders = used_by.get(&seq).copied().unwrap_or(0);
        assert!(
            holders >= 4,
            "Schnorr slot {seq} marked used on {holders} nodes, not t = 4"
        );
    }
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sending_wrong_schnorr_shares_is_named_and_signing_still_succeeds() {
    let mut net = Network::start(4, 8, |i| {
        if i == 2 {
            vec!["--fault".into(), "corrupt-signature-shares".into()]
        } else {
            vec![]
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    wait_for_schnorr_stock(&net, 0, 4).await;
    let mut named = 0;
    for _ in 0..8 {
        let outcome = sign_schnorr(&client, &owned).await;
        assert!(!outcome.signers.contains(&2), "node 2's wrong share was combined");
        for failure in &outcome.failures {
            assert_eq!(failure.node, Some(2), "only node 2 misbehaves: {failure}");
            assert!(failure.reason.contains("does not fit"), "{failure}");
            named += 1;
        }
    }
    assert!(named > 0, "node 2's wrong Schnorr shares were never noticed");
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocator_binding_schnorr_nonces_to_two_messages_gets_no_second_share() {
    // Node 0 allocates, and hands every other nonce slot to the next request as well: a second
    // share from the same nonces for another message would give away the holder's key share.
    let mut net = Network::start(4, 8, |i| {
        if i == 0 {
            vec!["--fault".into(), "double-bind".into()]
        } else {
            vec![]
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    wait_for_schnorr_stock(&net, 0, 4).await;
    let mut slots = BTreeSet::new();
    for _ in 0..12 {
        let outcome = sign_schnorr(&client, &owned).await;
        assert!(
            slots.insert(outcome.presignature.clone()),
            "nonces {} used twice",
            outcome.presignature
        );
    }
    for i in 1..4 {
        assert!(
            metric(&net, i, "sigil_presignature_conflicts_total").await >= 1,
            "node {i} never saw a second binding"
        );
        assert!(
            net.log(i)
                .contains("bound a presignature this node already used to another request"),
            "node {i} did not log the conflict"
        );
    }
}
