//! Benchmarks of the threshold core. All parties run in this one thread, so protocol figures are the
//! total CPU of all parties (divide by n for one node's share of the work); no network is involved.
//!
//! `cargo bench -p sigil-tss` — or `make bench`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use sigil_tss::derive::{derive_public_key, KeyId};
use sigil_tss::ecdsa::{self, Presignature, Triple};
use sigil_tss::{bls, run_in_memory, Bls12381G1, Curve, KeyShare, PartyId, Secp256k1, SessionId, Vss};

fn ids(n: usize) -> Vec<PartyId> {
    (0..n as u32).map(PartyId).collect()
}

fn dkg<C: Curve>(n: usize, t: usize) -> Vec<KeyShare<C>> {
    let parties = ids(n);
    let runs = parties
        .iter()
        .map(|me| Vss::<C>::dkg(SessionId([1; 32]), *me, &parties, t).expect("parameters"))
        .collect();
    run_in_memory(runs)
        .expect("dkg")
        .into_iter()
        .filter_map(|(_, s)| s)
        .collect()
}

fn triples(parties: &[PartyId], t: usize) -> BTreeMap<PartyId, Triple> {
    let runs = parties
        .iter()
        .map(|me| ecdsa::triple_generation(SessionId([2; 32]), *me, parties, t).expect("parameters"))
        .collect();
    run_in_memory(runs).expect("triples").into_iter().collect()
}

fn presign(
    keys: &[KeyShare<Secp256k1>],
    mut t0: BTreeMap<PartyId, Triple>,
    mut t1: BTreeMap<PartyId, Triple>,
) -> Vec<Presignature> {
    let signers: Vec<PartyId> = keys.iter().map(|k| k.me()).collect();
    let runs = keys
        .iter()
        .map(|k| {
            let (a, b) = (t0.remove(&k.me()).expect("triple"), t1.remove(&k.me()).expect("triple"));
            ecdsa::presigning(SessionId([3; 32]), k, &signers, a, b).expect("parameters")
        })
        .collect();
    run_in_memory(runs)
        .expect("presign")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn bench_dkg(c: &mut Criterion) {
    let mut g = c.benchmark_group("dkg");
    g.sample_size(10);
    for n in [5usize, 10] {
        let t = sigil_tss::threshold_for(n);
        g.bench_function(BenchmarkId::new("secp256k1", n), |b| b.iter(|| dkg::<Secp256k1>(n, t)));
        g.bench_function(BenchmarkId::new("bls12381", n), |b| b.iter(|| dkg::<Bls12381G1>(n, t)));
    }
}

fn bench_presign(c: &mut Criterion) {
    let mut g = c.benchmark_group("presignature");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for t in [4usize, 7] {
        // t signers that are the whole key set: the triples and the presignature involve exactly them.
        let keys = dkg::<Secp256k1>(t, t);
        let parties = ids(t);
        g.bench_function(BenchmarkId::new("triple", t), |b| b.iter(|| triples(&parties, t)));
        g.bench_function(BenchmarkId::new("presign_from_triples", t), |b| {
            b.iter_batched(
                || (triples(&parties, t), triples(&parties, t)),
                |(t0, t1)| presign(&keys, t0, t1),
                BatchSize::PerIteration,
            )
        });
        g.bench_function(BenchmarkId::new("full", t), |b| {
            b.iter(|| presign(&keys, triples(&parties, t), triples(&parties, t)))
        });
    }
}

fn bench_sign(c: &mut Criterion) {
    let mut g = c.benchmark_group("ecdsa");
    let keys = dkg::<Secp256k1>(4, 4);
    let parties = ids(4);
    let root = *keys[0].public_key();
    let key_id = KeyId([9; 32]);
    let hash = [7u8; 32];
    let entropy = [5u8; 32];
    // Presignatures are consumed, so make a stock up front (not timed).
    let mut stock: Vec<Presignature> = (0..24)
        .flat_map(|_| presign(&keys, triples(&parties, 4), triples(&parties, 4)))
        .collect();
    g.bench_function("sign_share", |b| {
        b.iter_batched(
            || {
                stock
                    .pop()
                    .unwrap_or_else(|| presign(&keys, triples(&parties, 4), triples(&parties, 4)).remove(0))
            },
            |p| ecdsa::sign_share(p, &root, &key_id, &hash, &entropy),
            BatchSize::PerIteration,
        )
    });
    let shares: Vec<_> = presign(&keys, triples(&parties, 4), triples(&parties, 4))
        .into_iter()
        .map(|p| ecdsa::sign_share(p, &root, &key_id, &hash, &entropy).expect("share"))
        .collect();
    let pkp = derive_public_key(&root, &key_id);
    g.bench_function("combine_and_verify_t4", |b| {
        b.iter(|| ecdsa::combine(&pkp, &hash, keys[0].threshold(), black_box(&shares)).expect("valid"))
    });
}

/// FROST taproot: one holder's nonce pair (what a Schnorr pool stocks: no triples, no protocol
/// run), one holder's share, and the verified combination of t = 4.
fn bench_schnorr(c: &mut Criterion) {
    use sigil_tss::schnorr;
    let mut g = c.benchmark_group("schnorr");
    let keys = dkg::<Secp256k1>(4, 4);
    let key_id = KeyId([9; 32]);
    let message = [7u8; 32];
    g.bench_function("commit_one_nonce_pair", |b| {
        b.iter(|| schnorr::commit(&keys[0]).expect("nonces"))
    });
    let round = || {
        let made: Vec<_> = keys.iter().map(|k| schnorr::commit(k).expect("nonces")).collect();
        let commitments: BTreeMap<PartyId, schnorr::Commitment> =
            keys.iter().zip(&made).map(|(k, (_, c))| (k.me(), *c)).collect();
        (made.into_iter().map(|(n, _)| n).collect::<Vec<_>>(), commitments)
    };
    g.bench_function("sign_share", |b| {
        b.iter_batched(
            || {
                let (mut nonces, commitments) = round();
                (nonces.remove(0), commitments)
            },
            |(n, commitments)| schnorr::sign_share(&keys[0], &key_id, &message, &commitments, n).expect("share"),
            BatchSize::PerIteration,
        )
    });
    let (nonces, commitments) = round();
    let shares: Vec<_> = keys
        .iter()
        .zip(nonces)
        .map(|(k, n)| schnorr::sign_share(k, &key_id, &message, &commitments, n).expect("share"))
        .collect();
    g.bench_function("combine_and_verify_t4", |b| {
        b.iter(|| {
            schnorr::combine(keys[0].public(), &key_id, &message, &commitments, black_box(&shares)).expect("valid")
        })
    });
}

fn bench_bls(c: &mut Criterion) {
    let mut g = c.benchmark_group("bls");
    let keys = dkg::<Bls12381G1>(5, 4);
    let package = keys[0].public();
    let identity = b"sigil-acc://bench";
    let shares: Vec<_> = keys
        .iter()
        .map(|k| bls::sign_share(k, identity).expect("share"))
        .collect();
    g.bench_function("sign_share", |b| {
        b.iter(|| bls::sign_share(&keys[0], black_box(identity)))
    });
    g.bench_function("verify_share", |b| {
        b.iter(|| bls::verify_share(package, &shares[0], identity))
    });
    g.bench_function("combine_t4_verified", |b| {
        b.iter(|| bls::combine(package, &shares[..4], identity).expect("valid"))
    });

    let signature = bls::combine(package, &shares[..4], identity).expect("valid");
    let data = vec![0x5au8; 1024];
    let ciphertext = bls::encrypt(package.public_key(), identity, &data).expect("encrypt");
    g.bench_function("ibe_encrypt_1KiB", |b| {
        b.iter(|| bls::encrypt(package.public_key(), identity, black_box(&data)))
    });
    g.bench_function("ibe_decrypt_1KiB", |b| {
        b.iter(|| bls::decrypt(&signature, identity, black_box(&ciphertext)))
    });
    // What a client does with t shares: combine unchecked, decrypt (the fast path of `open`).
    g.bench_function("open_t4_1KiB", |b| {
        b.iter(|| bls::open(package, &shares[..4], identity, black_box(&ciphertext)))
    });
}

criterion_group!(benches, bench_dkg, bench_presign, bench_sign, bench_schnorr, bench_bls);
criterion_main!(benches);
