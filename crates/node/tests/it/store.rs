use std::collections::BTreeSet;

use redb::ReadableTable;

use sigil_node::store::{
    Allocated, OneTime, PresignatureId, SignedTakes, StorageKey, Store, StoreError, Taker, SCHNORR_SLOTS,
};
use sigil_tss::ecdsa::{self, Presignature};
use sigil_tss::{run_in_memory, Bls12381G1, KeyShare, PartyId, Secp256k1, SessionId, Vss};

fn dkg<C: sigil_tss::Curve>() -> Vec<KeyShare<C>> {
    let parties: Vec<PartyId> = (0..3).map(PartyId).collect();
    let runs = parties
        .iter()
        .map(|me| Vss::<C>::dkg(SessionId([1; 32]), *me, &parties, 2).unwrap())
        .collect();
    run_in_memory(runs)
        .unwrap()
        .into_iter()
        .filter_map(|(_, s)| s)
        .collect()
}

/// One real presignature of party 0 (signers 0 and 1), as stored bytes.
fn presignature_bytes() -> Vec<u8> {
    let keys = dkg::<Secp256k1>();
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

#[test]
fn key_shares_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let ecdsa = dkg::<Secp256k1>();
    let bls = dkg::<Bls12381G1>();
    {
        let store = Store::open(&path, &key).unwrap();
        assert!(store.key_share::<Secp256k1>("ecdsa-root").unwrap().is_none());
        store.put_key_share("ecdsa-root", &ecdsa[1]).unwrap();
        store.put_key_share("bls-root", &bls[1]).unwrap();
    }
    let key = StorageKey::from_hex(&key.to_hex()).unwrap();
    let store = Store::open(&path, &key).unwrap();
    let restored = store.key_share::<Secp256k1>("ecdsa-root").unwrap().unwrap();
    assert_eq!(
        (restored.me(), restored.secret(), restored.public()),
        (ecdsa[1].me(), ecdsa[1].secret(), ecdsa[1].public())
    );
    let restored = store.key_share::<Bls12381G1>("bls-root").unwrap().unwrap();
    assert_eq!(restored.secret(), bls[1].secret());
    // The secret is not in the file in the clear.
    drop(store);
    let file = std::fs::read(&path).unwrap();
    let secret = sigil_tss::k256::elliptic_curve::PrimeField::to_repr(ecdsa[1].secret());
    assert!(
        !file.windows(32).any(|w| w == &secret[..]),
        "the key share is stored in the clear"
    );
}

/// Root key shares load from a data file made before records named their epoch, from one made
/// since, and a file holding one share without the other is never taken for a fresh network.
#[test]
fn root_keys_load_by_epoch_and_from_legacy_files() {
    use sigil_node::epoch::{load_root_keys, save_root_keys, RootKeys, StoredRootKeys};
    let mut ecdsa = dkg::<Secp256k1>();
    let mut bls = dkg::<Bls12381G1>();
    let secrets: Vec<_> = ecdsa.iter().map(|k| *k.secret()).collect();
    let open = || {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("node.redb"), &StorageKey::generate()).unwrap();
        (dir, store)
    };
    let secret_of = |stored: StoredRootKeys| match stored {
        StoredRootKeys::Both(_, keys) => *keys.ecdsa.secret(),
        StoredRootKeys::None => panic!("no root keys loaded"),
        StoredRootKeys::Partial => panic!("taken for a damaged file"),
        StoredRootKeys::Erased(_) => panic!("taken for erased"),
    };
    // Fresh: nothing.
    let (_dir, store) = open();
    assert!(matches!(load_root_keys(&store).unwrap(), StoredRootKeys::None));
    // Saved in epoch 3: loaded, under names that carry the epoch.
    let keys = RootKeys {
        ecdsa: ecdsa.remove(0),
        bls: bls.remove(0),
    };
    save_root_keys(&store, 3, &keys).unwrap();
    assert_eq!(secret_of(load_root_keys(&store).unwrap()), secrets[0]);
    assert!(store.key_share::<Secp256k1>("ecdsa-root/epoch-3").unwrap().is_some());
    assert!(store.key_share::<Secp256k1>("ecdsa-root").unwrap().is_none());
    // A file from before: the legacy names load.
    let (_dir, legacy) = open();
    legacy.put_key_share("ecdsa-root", &ecdsa[0]).unwrap();
    legacy.put_key_share("bls-root", &bls[0]).unwrap();
    assert_eq!(secret_of(load_root_keys(&legacy).unwrap()), secrets[1]);
    // One share without the other (a damaged file, or one written before both shares and the
    // record went in one transaction): refused, not "fresh".
    let (_dir, half) = open();
    half.put_secret("root-epoch", &0u64.to_be_bytes()).unwrap();
    half.put_key_share("ecdsa-root/epoch-0", &ecdsa[1]).unwrap();
    assert!(matches!(load_root_keys(&half).unwrap(), StoredRootKeys::Partial));
    let (_dir, legacy_half) = open();
    legacy_half.put_key_share("ecdsa-root", &ecdsa[1]).unwrap();
    assert!(matches!(load_root_keys(&legacy_half).unwrap(), StoredRootKeys::Partial));
}

#[test]
fn reshared_shares_wait_beside_the_current_ones_never_replace_another_run_and_a_leaving_node_erases_all() {
    use sigil_node::epoch::{
        erase_root_keys, load_next_root_keys, load_root_keys, prune_next_root_keys, save_next_root_keys,
        save_root_keys, switch_root_keys, NextRef, RootKeys, StoredRootKeys, MAX_NEXT,
    };
    let mut ecdsa = dkg::<Secp256k1>();
    let mut bls = dkg::<Bls12381G1>();
    let secrets: Vec<_> = ecdsa.iter().map(|k| *k.secret()).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.redb"), &StorageKey::generate()).unwrap();
    let mut take = || RootKeys {
        ecdsa: ecdsa.remove(0),
        bls: bls.remove(0),
    };
    let current = take();
    let run_a = take();
    let run_b = take();
    let at = |proposal: u64, digest: u8| NextRef {
        epoch: 2,
        proposal,
        digest: [digest; 32],
    };
    save_root_keys(&store, 1, &current).unwrap();
    save_next_root_keys(&store, at(7, 0xA), &run_a).unwrap();
    // A second run of the same proposal is kept beside the first, which it does not replace.
    save_next_root_keys(&store, at(7, 0xB), &run_b).unwrap();
    save_next_root_keys(&store, at(7, 0xB), &run_b).unwrap();
    // The current epoch's shares stay current until the switch.
    match load_root_keys(&store).unwrap() {
        StoredRootKeys::Both(Some(1), keys) => assert_eq!(*keys.ecdsa.secret(), secrets[0]),
        _ => panic!("epoch 1's shares are not the current ones"),
    }
    let waiting = load_next_root_keys(&store).unwrap();
    assert_eq!(waiting.len(), 2);
    assert_eq!(
        (waiting[0].epoch, waiting[0].proposal, waiting[0].digest),
        (2, 7, [0xA; 32])
    );
    assert_eq!(*waiting[0].keys.ecdsa.secret(), secrets[1]);
    assert_eq!(*waiting[1].keys.ecdsa.secret(), secrets[2]);
    // NodeSet confirmed run A: it becomes current; epoch 1's shares, run B's, and the one-time
    // material go, in one transaction.
    // Two presignatures of epoch 1's pools: they go with epoch 1's shares, marked used.
    let bytes = presignature_bytes();
    for seq in [1, 2] {
        store
            .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
            .unwrap();
    }
    assert_eq!(switch_root_keys(&store, 2, &waiting[0].keys).unwrap(), (6, 2));
    assert_eq!(store.presignature_count().unwrap(), 0);
    assert!(store.is_used(id(1)).unwrap() && store.is_used(id(2)).unwrap());
    match load_root_keys(&store).unwrap() {
        StoredRootKeys::Both(Some(2), keys) => assert_eq!(*keys.ecdsa.secret(), secrets[1]),
        _ => panic!("epoch 2's shares are not the current ones"),
    }
    assert!(load_next_root_keys(&store).unwrap().is_empty());
    assert!(store.key_share::<Secp256k1>("ecdsa-root/epoch-1").unwrap().is_none());
    assert!(store.key_share::<Bls12381G1>("bls-root/epoch-1").unwrap().is_none());
    // Bounded without ever dropping a record of a pending proposal: past MAX_NEXT records of
    // one proposal the next is refused (an attacker running runs cannot push out the record it
    // holds signatures of); a withdrawn proposal's records make room, or are pruned.
    let copy = || RootKeys {
        ecdsa: waiting[1].keys.ecdsa.clone(),
        bls: waiting[1].keys.bls.clone(),
    };
    let of = |proposal: u64, digest: u8| NextRef {
        epoch: 3,
        proposal,
        digest: [digest; 32],
    };
    for digest in 0..MAX_NEXT as u8 {
        save_next_root_keys(&store, of(8, digest), &copy()).unwrap();
    }
    assert!(save_next_root_keys(&store, of(8, 0xEE), &copy()).is_err());
    let kept = load_next_root_keys(&store).unwrap();
    assert_eq!(kept.len(), MAX_NEXT);
    assert_eq!(kept[0].digest, [0; 32]);
    // Proposal 8 was withdrawn: a record of proposal 9 takes the place of one of 8's.
    save_next_root_keys(&store, of(9, 0x99), &copy()).unwrap();
    let kept = load_next_root_keys(&store).unwrap();
    assert_eq!(kept.len(), MAX_NEXT);
    assert_eq!(kept.last().map(|n| n.proposal), Some(9));
    assert_eq!(
        prune_next_root_keys(&store, |_, proposal| proposal == 9).unwrap(),
        2 * (MAX_NEXT - 1)
    );
    assert_eq!(load_next_root_keys(&store).unwrap().len(), 1);
    // A node the next epoch leaves out erases everything, and the file says so: it is not a
    // fresh file on which the DKG would run again.
    save_next_root_keys(
        &store,
        NextRef {
            epoch: 3,
            proposal: 9,
            digest: [9; 32],
        },
        &current,
    )
    .unwrap();
    // (epoch 2's shares, proposal 9's two records)
    assert_eq!(erase_root_keys(&store, 3).unwrap(), (6, 0));
    assert!(matches!(load_root_keys(&store).unwrap(), StoredRootKeys::Erased(3)));
    assert!(load_next_root_keys(&store).unwrap().is_empty());
    for name in [
        "ecdsa-root/epoch-2".to_string(),
        format!("ecdsa-root/next/3/{}", "09".repeat(32)),
    ] {
        assert!(store.key_share::<Secp256k1>(&name).unwrap().is_none());
    }
}

/// A pool's slot counter under a new name continues the old one, so a slot number an old
/// allocation record names is never handed out again.
#[test]
fn a_renamed_counter_continues_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.redb"), &StorageKey::generate()).unwrap();
    for expected in 0..5 {
        assert_eq!(store.next("presign-seq/old").unwrap(), expected);
    }
    assert_eq!(store.next_continuing("presign-seq/new", "presign-seq/old").unwrap(), 5);
    assert_eq!(store.next_continuing("presign-seq/new", "presign-seq/old").unwrap(), 6);
    // Once it exists, the new counter is its own.
    assert_eq!(store.next("presign-seq/old").unwrap(), 5);
    assert_eq!(store.next_continuing("presign-seq/new", "presign-seq/old").unwrap(), 7);
    assert_eq!(
        store.next_continuing("presign-seq/fresh", "presign-seq/none").unwrap(),
        0
    );
}

#[test]
fn a_wrong_storage_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    Store::open(&path, &StorageKey::generate())
        .unwrap()
        .put_key_share("ecdsa-root", &dkg::<Secp256k1>()[0])
        .unwrap();
    let other = Store::open(&path, &StorageKey::generate()).unwrap();
    let err = other.key_share::<Secp256k1>("ecdsa-root").unwrap_err();
    assert!(matches!(err, StoreError::Decrypt { .. }), "{err}");
    assert!(err.to_string().contains("wrong storage key"), "{err}");
    assert!(matches!(StorageKey::from_hex("abcd"), Err(StoreError::BadKey)));
    assert!(matches!(
        StorageKey::from_hex(&"zz".repeat(32)),
        Err(StoreError::BadKey)
    ));
    assert_eq!(format!("{:?}", StorageKey::generate()), "StorageKey(<redacted>)");
}

#[test]
fn a_presignature_is_taken_once_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let bytes = presignature_bytes();
    {
        let store = Store::open(&path, &key).unwrap();
        store
            .put_presignature(id(1), &Presignature::from_bytes(&bytes).unwrap())
            .unwrap();
        store
            .put_presignature(id(2), &Presignature::from_bytes(&bytes).unwrap())
            .unwrap();
        assert_eq!(store.presignature_count().unwrap(), 2);
        assert!(store.take_presignature(id(1)).unwrap().is_some());
        assert!(matches!(
            store.take_presignature(id(1)),
            Err(StoreError::AlreadyUsed(_))
        ));
        assert!(store.take_presignature(id(3)).unwrap().is_none());
        // The process dies here, after the take committed and before a share went out.
    }
    let store = Store::open(&path, &key).unwrap();
    assert!(store.is_used(id(1)).unwrap());
    assert!(matches!(
        store.take_presignature(id(1)),
        Err(StoreError::AlreadyUsed(_))
    ));
    // A used slot cannot be refilled (a pool bug would otherwise hand out a nonce twice).
    let refill = store.put_presignature(id(1), &Presignature::from_bytes(&bytes).unwrap());
    assert!(matches!(refill, Err(StoreError::AlreadyUsed(_))));
    assert_eq!(store.presignature_count().unwrap(), 1);
    assert!(store.take_presignature(id(2)).unwrap().is_some());
}

#[test]
fn concurrent_takers_never_share_a_presignature() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.redb"), &StorageKey::generate()).unwrap();
    let bytes = presignature_bytes();
    for seq in 0..24 {
        store
            .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
            .unwrap();
    }
    let taken: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..24)
                        .filter(|seq| matches!(store.take_presignature(id(*seq)), Ok(Some(_))))
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<u64> = taken.concat();
    assert_eq!(all.len(), 24, "every presignature taken exactly once: {taken:?}");
    assert_eq!(all.iter().copied().collect::<BTreeSet<_>>().len(), 24);
    assert_eq!(store.presignature_count().unwrap(), 0);
}

#[test]
fn one_transaction_takes_many_and_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let bytes = presignature_bytes();
    {
        let store = Store::open(&path, &key).unwrap();
        for seq in [1, 2, 3] {
            store
                .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
                .unwrap();
        }
        assert!(store.take_presignature(id(3)).unwrap().is_some());
        let answers = store.take_presignatures(&[
            (id(1), [0; 32]),
            (id(2), [0; 32]),
            (id(1), [0; 32]),
            (id(3), [0; 32]),
            (id(9), [0; 32]),
        ]);
        assert!(matches!(answers[0], Ok(Some(_))));
        assert!(matches!(answers[1], Ok(Some(_))));
        assert!(
            matches!(answers[2], Err(StoreError::AlreadyUsed(_))),
            "the same id twice in a batch"
        );
        assert!(matches!(answers[3], Err(StoreError::AlreadyUsed(_))), "taken before");
        assert!(matches!(answers[4], Ok(None)), "an empty slot");
    }
    // After a restart the batch is on disk: both are used, none is left.
    let store = Store::open(&path, &key).unwrap();
    assert!(store.is_used(id(1)).unwrap() && store.is_used(id(2)).unwrap());
    assert_eq!(store.presignature_count().unwrap(), 0);
}

/// A take running on its own task: the slot asked for, and the answer.
type TakeTask = tokio::task::JoinHandle<(u64, Result<Option<OneTime>, StoreError>)>;

/// The slots concurrent takes were given, sorted; every other answer must be a refusal.
async fn handed_out(requests: Vec<TakeTask>) -> Vec<u64> {
    let mut given = Vec::new();
    for request in requests {
        match request.await.unwrap() {
            (seq, Ok(Some(_))) => given.push(seq),
            (_, Err(StoreError::AlreadyUsed(_) | StoreError::UsedForAnother(_))) => {}
            (seq, other) => panic!("slot {seq}: {:?}", other.map(|p| p.is_some())),
        }
    }
    given.sort_unstable();
    given
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_taker_batches_concurrent_takes_and_hands_each_presignature_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let bytes = presignature_bytes();
    {
        let store = std::sync::Arc::new(Store::open(&path, &key).unwrap());
        for seq in 0..32 {
            store
                .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
                .unwrap();
        }
        let taker = std::sync::Arc::new(Taker::start(std::sync::Arc::clone(&store)).unwrap());
        // 128 requests, four for each slot, all at once.
        let requests: Vec<_> = (0..128u64)
            .map(|i| {
                let taker = std::sync::Arc::clone(&taker);
                tokio::spawn(async move { (i % 32, taker.take(id(i % 32), [i as u8; 32]).await) })
            })
            .collect();
        let given = handed_out(requests).await;
        assert_eq!(given, (0..32).collect::<Vec<_>>(), "each slot handed out exactly once");
    }
    let store = Store::open(&path, &key).unwrap();
    assert!((0..32).all(|seq| store.is_used(id(seq)).unwrap()));
}

/// Waits until the taker holds `n` presignatures reserved.
async fn reserved(taker: &Taker, n: usize) {
    let started = std::time::Instant::now();
    while taker.reserved() < n {
        taker.refill_soon();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{} reserved",
            taker.reserved()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_presignatures_are_handed_out_once_and_never_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let bytes = presignature_bytes();
    let reserve = sigil_node::store::RESERVE as u64;
    {
        let store = std::sync::Arc::new(Store::open(&path, &key).unwrap());
        for seq in 0..reserve + 8 {
            store
                .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
                .unwrap();
        }
        let taker = std::sync::Arc::new(Taker::start(std::sync::Arc::clone(&store)).unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        taker.reserve_from(id(0).pool);
        taker.refill_soon();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(
            taker.reserved(),
            0,
            "nothing is reserved before the rollback check allows it"
        );
        taker.start_reserving();
        reserved(&taker, sigil_node::store::RESERVE).await;
        // The lowest ids were taken from the store, durably marked used, bound to nothing.
        assert_eq!(store.presignature_count().unwrap(), 8);
        assert!((0..reserve).all(|seq| store.is_used(id(seq)).unwrap()));
        assert_eq!(store.reserved_before().unwrap().len(), sigil_node::store::RESERVE);
        // From memory: once for its request, again for the same request, never for another.
        assert!(matches!(taker.take(id(0), [1; 32]).await, Ok(Some(_))));
        assert!(matches!(
            taker.take(id(0), [1; 32]).await,
            Err(StoreError::AlreadyUsed(_))
        ));
        assert!(matches!(
            taker.take(id(0), [2; 32]).await,
            Err(StoreError::UsedForAnother(_))
        ));
        // 64 concurrent requests over reserved and stored slots: each slot handed out once.
        let requests: Vec<_> = (0..64u64)
            .map(|i| {
                let taker = std::sync::Arc::clone(&taker);
                let seq = 1 + i % 20;
                tokio::spawn(async move { (seq, taker.take(id(seq), [i as u8 + 3; 32]).await) })
            })
            .collect();
        let given = handed_out(requests).await;
        assert_eq!(given, (1..21).collect::<Vec<_>>(), "each slot handed out exactly once");
        // The reserve refills from what is left in the stock (24 made, 21 taken).
        reserved(&taker, 3).await;
    }
    // A crash: what was reserved, bound or not, is never used again; the unbound ones can be
    // reported, and a bound one recorded before the crash keeps its binding's answers.
    let store = std::sync::Arc::new(Store::open(&path, &key).unwrap());
    let before = store.reserved_before().unwrap();
    assert!(!before.is_empty());
    assert!(!before.contains(&id(0)), "slot 0's binding was recorded by a refill");
    let taker = Taker::start(std::sync::Arc::clone(&store)).unwrap();
    assert!(matches!(
        taker.take(id(0), [1; 32]).await,
        Err(StoreError::AlreadyUsed(_))
    ));
    assert!(matches!(
        taker.take(id(0), [9; 32]).await,
        Err(StoreError::UsedForAnother(_))
    ));
    for seq in 1..reserve + 8 {
        match taker.take(id(seq), [0xee; 32]).await {
            Err(StoreError::Discarded(_) | StoreError::UsedForAnother(_)) => {}
            other => panic!("slot {seq} after the restart: {:?}", other.map(|p| p.is_some())),
        }
    }
    assert!(before.iter().all(|id| store.is_used(*id).unwrap()));
    store.forget_reserved(&before).unwrap();
    assert!(store.reserved_before().unwrap().is_empty());
}

/// A take racing a refill of the same slot is answered from memory, never refused (the refill and
/// the takes run on one thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_racing_refills_are_never_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = StorageKey::generate();
    let store = std::sync::Arc::new(Store::open(&dir.path().join("node.redb"), &key).unwrap());
    let bytes = presignature_bytes();
    for seq in 0..400 {
        store
            .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
            .unwrap();
    }
    let taker = std::sync::Arc::new(Taker::start(std::sync::Arc::clone(&store)).unwrap());
    taker.start_reserving();
    taker.reserve_from(id(0).pool);
    let refills = {
        let taker = std::sync::Arc::clone(&taker);
        tokio::spawn(async move {
            for _ in 0..2000 {
                taker.refill_soon();
                tokio::task::yield_now().await;
            }
        })
    };
    // Waves of 64 concurrent takes, in slot order as an allocator hands them out: a reserved slot
    // is asked for well within the STALE_AFTER takes after which the reserve gives it up (that
    // limit has its own test: `reserved_presignatures_passed_over_are_given_up_not_kept_forever`).
    for wave in (0..400u64).collect::<Vec<_>>().chunks(64) {
        let requests: Vec<_> = wave
            .iter()
            .map(|&seq| {
                let taker = std::sync::Arc::clone(&taker);
                tokio::spawn(async move { (seq, taker.take(id(seq), [seq as u8; 32]).await) })
            })
            .collect();
        for request in requests {
            match request.await.unwrap() {
                (_, Ok(Some(_))) => {}
                (seq, other) => panic!("slot {seq}: {:?}", other.map(|p| p.is_some())),
            }
        }
    }
    refills.await.unwrap();
}

#[test]
fn a_record_moved_to_another_slot_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let bytes = presignature_bytes();
    Store::open(&path, &key)
        .unwrap()
        .put_presignature(id(1), &Presignature::from_bytes(&bytes).unwrap())
        .unwrap();
    {
        // Someone with write access to the file copies slot 1's sealed record into slot 9.
        let raw = redb::Database::create(&path).unwrap();
        let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("presignatures");
        let txn = raw.begin_write().unwrap();
        {
            let mut t = txn.open_table(table).unwrap();
            let mut key1 = [7u8; 40];
            key1[32..].copy_from_slice(&1u64.to_be_bytes());
            let mut key9 = key1;
            key9[32..].copy_from_slice(&9u64.to_be_bytes());
            let record = t.get(key1.as_slice()).unwrap().unwrap().value().to_vec();
            t.insert(key9.as_slice(), record.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(&path, &key).unwrap();
    assert!(matches!(
        store.take_presignature(id(9)),
        Err(StoreError::Decrypt { .. })
    ));
    assert!(store.take_presignature(id(1)).unwrap().is_some());
}

#[test]
fn triples_are_taken_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.redb"), &StorageKey::generate()).unwrap();
    let parties: Vec<PartyId> = (0..3).map(PartyId).collect();
    let runs = parties
        .iter()
        .map(|me| ecdsa::triple_generation(SessionId([9; 32]), *me, &parties, 2).unwrap())
        .collect();
    let (_, triple) = run_in_memory(runs).unwrap().into_iter().next().unwrap();
    store.put_triple(b"t1", &triple).unwrap();
    let back = store.take_triple(b"t1").unwrap().unwrap();
    assert_eq!(back.participants(), triple.participants());
    assert!(store.take_triple(b"t1").unwrap().is_none());
}

#[test]
fn pool_listings_counters_and_secrets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let bytes = presignature_bytes();
    {
        let store = Store::open(&path, &key).unwrap();
        for seq in [3, 1, 2] {
            store
                .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
                .unwrap();
        }
        // Another pool's slots are not listed with this one.
        let other = PresignatureId { pool: [8; 32], seq: 0 };
        store
            .put_presignature(other, &Presignature::from_bytes(&bytes).unwrap())
            .unwrap();
        assert!(store.take_presignature(id(2)).unwrap().is_some());
        assert_eq!((store.next("seq").unwrap(), store.next("seq").unwrap()), (0, 1));
        store.put_secret("identity", &[5; 32]).unwrap();
    }
    let store = Store::open(&path, &key).unwrap();
    assert_eq!(store.stocked(&[7; 32]).unwrap(), vec![1, 3]);
    assert_eq!(store.used().unwrap(), vec![id(2)]);
    let peeked = store.peek_presignature(id(1)).unwrap().unwrap();
    assert_eq!(peeked.signers(), &[PartyId(0), PartyId(1)]);
    assert!(store.peek_presignature(id(2)).unwrap().is_none());
    // A counter never hands out a value twice, also across restarts.
    assert_eq!(store.next("seq").unwrap(), 2);
    assert_eq!(store.secret("identity").unwrap().unwrap().as_slice(), &[5; 32]);
    assert!(store.secret("missing").unwrap().is_none());
    // Under another key, the secret does not open.
    drop(store);
    let wrong = Store::open(&path, &StorageKey::generate()).unwrap();
    assert!(matches!(wrong.secret("identity"), Err(StoreError::Decrypt { .. })));
}

#[test]
fn a_slot_taken_for_one_request_is_refused_to_another_and_the_store_tells_them_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.redb"), &StorageKey::generate()).unwrap();
    store
        .put_presignature(id(1), &Presignature::from_bytes(&presignature_bytes()).unwrap())
        .unwrap();
    let answers = store.take_presignatures(&[(id(1), [1; 32]), (id(1), [1; 32]), (id(1), [2; 32])]);
    assert!(matches!(answers[0], Ok(Some(_))));
    assert!(
        matches!(answers[1], Err(StoreError::AlreadyUsed(_))),
        "the same request again"
    );
    assert!(
        matches!(answers[2], Err(StoreError::UsedForAnother(_))),
        "a second binding"
    );
    assert_eq!(store.takes().unwrap(), 1);
}

#[test]
fn a_leased_slot_leaves_the_pool_once_and_a_restart_discards_every_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let pool = [9u8; 32];
    let slot = |seq| PresignatureId { pool, seq };
    {
        let store = Store::open(&path, &key).unwrap();
        for seq in 1..=3 {
            store.add_slot(slot(seq), &[0, 2]).unwrap();
        }
        assert_eq!(store.lease(&[slot(1), slot(2)]).unwrap(), vec![slot(1), slot(2)]);
        // A slot leased (or allocated) once cannot be leased again.
        assert_eq!(store.lease(&[slot(1), slot(3)]).unwrap(), vec![slot(3)]);
        assert_eq!(
            store.allocate(&[1; 16], slot(1), b"first", 100).unwrap(),
            Allocated::Fresh
        );
        // The same request again gets its record back.
        assert_eq!(
            store.allocate(&[1; 16], slot(2), b"second", 101).unwrap(),
            Allocated::Existing(b"first".to_vec())
        );
    }
    // After a restart: no slot is back in the pool, and the leases are discarded.
    let store = Store::open(&path, &key).unwrap();
    assert!(store.slots(&pool).unwrap().is_empty());
    assert_eq!(
        store.discard_leases().unwrap(),
        2,
        "slots 2 and 3 were leased, 1 allocated"
    );
    assert!(store.lease(&[slot(2), slot(3)]).unwrap().is_empty());
    assert_eq!(store.allocation(&[1; 16]).unwrap(), Some(b"first".to_vec()));
    assert_eq!(store.prune_allocations(101).unwrap(), 1);
    assert_eq!(store.allocation(&[1; 16]).unwrap(), None);
}

#[test]
fn purging_one_time_material_leaves_nothing_to_sign_with_and_raises_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.redb"), &StorageKey::generate()).unwrap();
    for seq in 0..3 {
        store
            .put_presignature(id(seq), &Presignature::from_bytes(&presignature_bytes()).unwrap())
            .unwrap();
    }
    store.add_slot(id(7), &[0, 1]).unwrap();
    assert_eq!(store.next("presign-seq/x").unwrap(), 0);
    store.raise_peer_takes(&[(2, signed(17))]).unwrap();
    assert_eq!(store.purge_one_time(40, 1_000_000).unwrap(), 3);
    assert_eq!(
        store.peer_takes().unwrap().get(&2),
        Some(&signed(17)),
        "peers' counters are not touched"
    );
    assert_eq!(store.presignature_count().unwrap(), 0);
    assert!(store.slots(&id(7).pool).unwrap().is_empty());
    assert!(
        (0..3).all(|seq| store.is_used(id(seq)).unwrap()),
        "purged slots count as used"
    );
    assert!(
        store.knows_slot(id(0)).unwrap(),
        "an order to refill a purged slot is refused"
    );
    assert_eq!(store.takes().unwrap(), 40);
    assert_eq!(
        store.next("presign-seq/x").unwrap(),
        1_000_000,
        "slot numbers jump past the copy's"
    );
}

/// A counter with a made-up signature (the store keeps it as given; the node checks it).
fn signed(takes: u64) -> SignedTakes {
    SignedTakes {
        takes,
        signature: [takes as u8; 65],
    }
}

#[test]
fn peers_take_counters_survive_a_restart_and_never_go_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    {
        let store = Store::open(&path, &key).unwrap();
        store.raise_peer_takes(&[(1, signed(10)), (2, signed(5))]).unwrap();
        store.raise_peer_takes(&[(1, signed(3))]).unwrap();
    }
    let store = Store::open(&path, &key).unwrap();
    let seen = store.peer_takes().unwrap();
    assert_eq!((seen.get(&1), seen.get(&2)), (Some(&signed(10)), Some(&signed(5))));
}

/// A reserved presignature nobody asks for while many others are taken is given up (never used)
/// and handed to the node to report, instead of blocking the reserve for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_presignatures_passed_over_are_given_up_not_kept_forever() {
    let dir = tempfile::tempdir().unwrap();
    let key = StorageKey::generate();
    let store = std::sync::Arc::new(Store::open(&dir.path().join("node.redb"), &key).unwrap());
    let bytes = presignature_bytes();
    let reserve = sigil_node::store::RESERVE as u64;
    for seq in 0..reserve + 140 {
        store
            .put_presignature(id(seq), &Presignature::from_bytes(&bytes).unwrap())
            .unwrap();
    }
    let taker = Taker::start(std::sync::Arc::clone(&store)).unwrap();
    taker.start_reserving();
    taker.reserve_from(id(0).pool);
    reserved(&taker, sigil_node::store::RESERVE).await;
    // 140 takes of other slots: the reserve refills from them as it goes, never from 0..16.
    for seq in (reserve + 139..reserve + 140).chain(reserve..reserve + 139) {
        assert!(taker.take(id(seq), [seq as u8; 32]).await.is_ok());
    }
    let started = std::time::Instant::now();
    let mut dropped = Vec::new();
    while dropped.len() < sigil_node::store::RESERVE {
        taker.refill_soon();
        dropped.extend(taker.drain_dropped());
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{dropped:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!((0..reserve).all(|seq| dropped.contains(&id(seq))), "{dropped:?}");
    // Given up means never used.
    assert!(matches!(
        taker.take(id(0), [1; 32]).await,
        Err(StoreError::Discarded(_))
    ));
}

#[test]
fn sign_counters_only_advance_survive_a_restart_and_let_one_of_two_racers_through() {
    use sigil_node::auth::webauthn::counter_advances;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let (a, b) = ([1u8; 64], [2u8; 64]);
    {
        let store = Store::open(&path, &key).unwrap();
        assert_eq!(store.sign_counter(&a).unwrap(), 0);
        // A credential without a counter stays at 0 and writes nothing.
        assert_eq!(store.advance_sign_counter(&a, 0, counter_advances).unwrap(), Ok(()));
        assert_eq!(store.advance_sign_counter(&a, 5, counter_advances).unwrap(), Ok(()));
        assert_eq!(store.advance_sign_counter(&a, 5, counter_advances).unwrap(), Err(5));
        assert_eq!(store.advance_sign_counter(&a, 4, counter_advances).unwrap(), Err(5));
        assert_eq!(store.advance_sign_counter(&a, 0, counter_advances).unwrap(), Err(5));
        // Another credential (or the same one on another PKP) has its own counter.
        assert_eq!(store.advance_sign_counter(&b, 1, counter_advances).unwrap(), Ok(()));
    }
    let store = std::sync::Arc::new(Store::open(&path, &key).unwrap());
    assert_eq!(
        (store.sign_counter(&a).unwrap(), store.sign_counter(&b).unwrap()),
        (5, 1)
    );
    assert_eq!(store.advance_sign_counter(&a, 5, counter_advances).unwrap(), Err(5));
    // Two requests carrying counter 6, both having read 5: one passes.
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || store.advance_sign_counter(&a, 6, counter_advances).unwrap())
        })
        .collect();
    let outcomes: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&Err(6)), "{outcomes:?}");
}

/// Party 0's Schnorr nonce material for signing set {0, 1}, from a real preprocessing run.
fn schnorr_material(keys: &[KeyShare<Secp256k1>]) -> sigil_tss::schnorr::Material {
    let signers = [PartyId(0), PartyId(1)];
    let runs = signers
        .iter()
        .map(|me| {
            let share = keys.iter().find(|k| k.me() == *me).unwrap();
            sigil_tss::schnorr::Preprocessing::new(SessionId([9; 32]), share, &signers).unwrap()
        })
        .collect();
    run_in_memory(runs)
        .unwrap()
        .into_iter()
        .find(|(p, _)| *p == PartyId(0))
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schnorr_nonces_live_in_their_own_slots_are_never_reserved_ahead_and_are_taken_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let key = StorageKey::generate();
    let keys = dkg::<Secp256k1>();
    let pool = [7u8; 32];
    let schnorr = |n: u64| PresignatureId {
        pool,
        seq: SCHNORR_SLOTS | n,
    };
    {
        let store = std::sync::Arc::new(Store::open(&path, &key).unwrap());
        // A slot holds one kind: nonces never go into a presignature slot, nor the reverse.
        assert!(store
            .put_schnorr(PresignatureId { pool, seq: 1 }, &schnorr_material(&keys))
            .is_err());
        let presignature = Presignature::from_bytes(&presignature_bytes()).unwrap();
        assert!(store.put_presignature(schnorr(1), &presignature).is_err());
        for n in 0..4 {
            store.put_schnorr(schnorr(n), &schnorr_material(&keys)).unwrap();
        }
        let taker = Taker::start(std::sync::Arc::clone(&store)).unwrap();
        taker.start_reserving();
        taker.reserve_from(pool);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(taker.reserved(), 0, "nonces were taken ahead of their requests");
        let material = match taker.take(schnorr(0), [1; 32]).await.unwrap() {
            Some(OneTime::Schnorr(bytes)) => sigil_tss::schnorr::Material::from_bytes(&bytes, PartyId(0)).unwrap(),
            other => panic!("slot 0: {other:?}"),
        };
        assert_eq!(material.signers(), vec![PartyId(0), PartyId(1)]);
        // The same request again, and another message: neither gets the nonces a second time.
        assert!(matches!(
            taker.take(schnorr(0), [1; 32]).await,
            Err(StoreError::AlreadyUsed(_))
        ));
        assert!(matches!(
            taker.take(schnorr(0), [2; 32]).await,
            Err(StoreError::UsedForAnother(_))
        ));
        assert!(matches!(
            taker.take(schnorr(1), [3; 32]).await,
            Ok(Some(OneTime::Schnorr(_)))
        ));
    }
    // After a restart (the store reopened, as after kill -9), the used ones stay used.
    let store = std::sync::Arc::new(Store::open(&path, &key).unwrap());
    let taker = Taker::start(std::sync::Arc::clone(&store)).unwrap();
    assert!(matches!(
        taker.take(schnorr(0), [9; 32]).await,
        Err(StoreError::UsedForAnother(_))
    ));
    assert!(matches!(
        taker.take(schnorr(1), [3; 32]).await,
        Err(StoreError::AlreadyUsed(_))
    ));
    assert!(matches!(
        taker.take(schnorr(2), [4; 32]).await,
        Ok(Some(OneTime::Schnorr(_)))
    ));
    assert!(
        store.put_schnorr(schnorr(0), &schnorr_material(&keys)).is_err(),
        "a used slot was refilled"
    );
}
