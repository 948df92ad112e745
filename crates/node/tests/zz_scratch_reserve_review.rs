#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! SCRATCH (security review of 72076e2) — delete after use.
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_node::store::{PresignatureId, StorageKey, Store, StoreError, Taker};
use sigil_tss::ecdsa::{self, Presignature};
use sigil_tss::{run_in_memory, KeyShare, PartyId, Secp256k1, SessionId, Vss};

fn dkg() -> Vec<KeyShare<Secp256k1>> {
    let parties: Vec<PartyId> = (0..3).map(PartyId).collect();
    let runs = parties
        .iter()
        .map(|me| Vss::<Secp256k1>::dkg(SessionId([1; 32]), *me, &parties, 2).unwrap())
        .collect();
    run_in_memory(runs)
        .unwrap()
        .into_iter()
        .filter_map(|(_, s)| s)
        .collect()
}

fn presignature_bytes() -> Vec<u8> {
    let keys = dkg();
    let parties: Vec<PartyId> = (0..3).map(PartyId).collect();
    let triples = |n: u8| -> std::collections::BTreeMap<_, _> {
        let runs = parties
            .iter()
            .map(|me| ecdsa::triple_generation(SessionId([n; 32]), *me, &parties, 2).unwrap())
            .collect();
        run_in_memory(runs).unwrap().into_iter().collect()
    };
    let (mut t0, mut t1) = (triples(2), triples(3));
    let signers = [PartyId(0), PartyId(1)];
    let runs = signers
        .iter()
        .map(|me| {
            ecdsa::presigning(
                SessionId([4; 32]),
                &keys[me.0 as usize],
                &signers,
                t0.remove(me).unwrap(),
                t1.remove(me).unwrap(),
            )
            .unwrap()
        })
        .collect();
    let (_, mine) = run_in_memory(runs).unwrap().into_iter().next().unwrap();
    mine.to_bytes().to_vec()
}

fn id(seq: u64) -> PresignatureId {
    PresignatureId { pool: [7; 32], seq }
}

async fn reserved(taker: &Taker, n: usize) {
    let started = Instant::now();
    while taker.reserved() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} reserved",
            taker.reserved()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// F: a durable take racing the refill that reserves the same slot gets `Discarded` (spurious).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_durable_take_vs_refill() {
    let bytes = presignature_bytes();
    let mut discarded = 0;
    let mut given = 0;
    let mut iterations = 0;
    for _ in 0..60 {
        iterations += 1;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let key = StorageKey::generate();
        let store = Arc::new(Store::open(&path, &key).unwrap());
        for seq in 0..48 {
            store
                .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
                .unwrap();
        }
        let taker = Arc::new(Taker::start(Arc::clone(&store)).unwrap());
        taker.start_reserving();
        reserved(&taker, 16).await;
        // Drain the reserve (wakes the refill), then ask for the next stock slots durably at once.
        let mut handles = Vec::new();
        for seq in 0..16u64 {
            assert!(matches!(taker.take(id(seq), [9; 32]).await, Ok(Some(_))));
        }
        for seq in 16..32u64 {
            let taker = Arc::clone(&taker);
            handles.push(tokio::spawn(async move { taker.take(id(seq), [seq as u8; 32]).await }));
        }
        for h in handles {
            match h.await.unwrap() {
                Ok(Some(_)) => given += 1,
                Err(StoreError::Discarded(_)) => discarded += 1,
                other => panic!("{:?}", other.map(|p| p.is_some())),
            }
        }
    }
    eprintln!("RACE: iterations={iterations} given={given} spurious_discarded={discarded}");
}

/// F: with no request at all, reserved presignatures expire after RESERVE_AGE and are silently
/// burned (durably used), and the reserver burns 16 more. The allocator is never told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn idle_reserve_burns_the_stock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let bytes = presignature_bytes();
    let store = Arc::new(Store::open(&path, &key).unwrap());
    for seq in 0..40 {
        store
            .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
            .unwrap();
    }
    let taker = Taker::start(Arc::clone(&store)).unwrap();
    taker.start_reserving();
    reserved(&taker, 16).await;
    assert_eq!(store.presignature_count().unwrap(), 24);
    tokio::time::sleep(Duration::from_secs(603)).await;
    eprintln!(
        "IDLE: stock={} reserved_in_memory={} reserved_ids_table={}",
        store.presignature_count().unwrap(),
        taker.reserved(),
        store.reserved_before().unwrap().len()
    );
    // The first slot the allocator would hand out (lowest seq) is now dead at this holder.
    let first = taker.take(id(0), [1; 32]).await;
    eprintln!(
        "IDLE: take(id 0) after idle = {:?}",
        first.as_ref().map(|p| p.is_some())
    );
    assert!(matches!(first, Err(StoreError::Discarded(_))));
    assert_eq!(store.presignature_count().unwrap(), 8, "16 more burned with no request");
}
