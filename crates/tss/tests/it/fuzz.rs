//! Fuzzed message handlers and record decoders of every protocol (driver: `sigil-fuzz`; budget
//! and replay in its docs). `robustness.rs` feeds fixed mutations; these run the driver's
//! mutations for the case budget.
//!
//! | target | decoder | corpus | cases |
//! |---|---|---|---|
//! | `vss_dkg_secp256k1`, `vss_dkg_bls` | `Vss::dkg` → `Protocol::handle` + `poke` of party 0 | every message party 0 gets in an honest run | 10⁴ |
//! | `vss_reshare_secp256k1` | `Vss::reshare` → `handle` + `poke` of new party 2 | the same for a reshare | 10⁴ |
//! | `triple` | `ecdsa::triple_generation` → `handle` + `poke` (cait-sith inside) | the same | 10⁴ |
//! | `presign` | `ecdsa::presigning` → `handle` + `poke` | the same | 10⁴ |
//! | `ecdsa_signature_share` | `SignatureShare::from_bytes` | a genuine share | 10⁴ |
//! | `bls_signature_share` | `bls::BlsSignatureShare::from_bytes` | a genuine share | 10⁴ |
//! | `bls_ciphertext` | `bls::decrypt` with the right signature | a genuine ciphertext | 10³: every well-formed capsule costs a pairing |
//! | `records_secp256k1`, `records_bls` | `KeyShare::from_bytes`, `PublicKeyPackage::from_bytes` | stored encodings | 10⁴; BLS 2500: G1 multiplications and decompressions |
//! | `records_ecdsa` | `Presignature::from_bytes`, `Triple::from_bytes` | stored encodings | 10⁴ |
//!
//! A protocol input is `sender:u8 | message`, so mutations also forge the sender; the party is
//! rebuilt every 64 cases, so a run aborted by an attack does not hide the decoders from later
//! cases. Each case must return without panicking and allocate at most 64 × input + 1 MiB; a
//! record that decodes must encode back to the same bytes.

use std::cell::RefCell;

use sigil_fuzz::Target;
use sigil_tss::derive::KeyId;
use sigil_tss::ecdsa::{self, Presignature, SignatureShare, Triple};
use sigil_tss::{
    bls, run_in_memory_with, Bls12381G1, Curve, InFlight, KeyShare, PartyId, Protocol, PublicKeyPackage, Secp256k1,
    Step, Vss,
};

use crate::common::*;

/// Cases between fresh parties.
const REBUILD: u64 = 64;

/// Runs a protocol once; every message it sends.
fn record<P: Protocol>(runs: Vec<P>) -> Vec<InFlight> {
    let seen = RefCell::new(Vec::new());
    run_in_memory_with(runs, |m| seen.borrow_mut().push(m.clone())).expect("honest run succeeds");
    seen.into_inner()
}

/// Fuzzes `fresh(to)`'s handler with the messages `recorded` delivered to `to`.
fn hammer<P: Protocol>(name: &str, recorded: &[InFlight], to: PartyId, n_parties: u32, fresh: impl Fn() -> P) {
    let corpus: Vec<Vec<u8>> = recorded
        .iter()
        .filter(|m| m.to == to)
        .map(|m| [&[m.from.0 as u8][..], &m.bytes].concat())
        .collect();
    assert!(!corpus.is_empty(), "{name}: nothing recorded for {to}");
    Target::new(name)
        .corpus(corpus)
        .run_with(fresh, REBUILD, |party, bytes| {
            let Some((&from, message)) = bytes.split_first() else {
                return;
            };
            let from = PartyId(u32::from(from) % (n_parties + 1));
            if party.handle(from, message).is_ok() {
                for _ in 0..4 {
                    match party.poke() {
                        Ok(Step::Send(_)) => continue,
                        _ => break,
                    }
                }
            }
        });
}

fn dkg_target<C: Curve>(name: &str) {
    let parties = ids(0..3);
    let dkg = |me| Vss::<C>::dkg(session("fuzz-dkg"), me, &parties, 2).unwrap();
    let recorded = record(parties.iter().map(|p| dkg(*p)).collect());
    hammer(name, &recorded, PartyId(0), 3, || dkg(PartyId(0)));
}

#[test]
fn fuzz_vss_dkg_secp256k1() {
    dkg_target::<Secp256k1>("vss_dkg_secp256k1");
}

#[test]
fn fuzz_vss_dkg_bls() {
    dkg_target::<Bls12381G1>("vss_dkg_bls");
}

#[test]
fn fuzz_vss_reshare_secp256k1() {
    let old = dkg::<Secp256k1>(3, 2);
    let package = old[0].public().clone();
    let new = ids(1..5);
    let dealers = ids(0..2);
    let reshare = |me: PartyId| {
        let mine = dealers.contains(&me).then(|| &old[me.0 as usize]);
        Vss::<Secp256k1>::reshare(session("fuzz-reshare"), me, &package, &dealers, mine, &new, 3).unwrap()
    };
    let recorded = record(ids(0..5).into_iter().map(reshare).collect());
    hammer("vss_reshare_secp256k1", &recorded, PartyId(2), 5, || {
        reshare(PartyId(2))
    });
}

#[test]
fn fuzz_triple() {
    let parties = ids(0..3);
    let triple = |me| ecdsa::triple_generation(session("fuzz-triple"), me, &parties, 2).unwrap();
    let recorded = record(parties.iter().map(|p| triple(*p)).collect());
    hammer("triple", &recorded, PartyId(0), 3, || triple(PartyId(0)));
}

#[test]
fn fuzz_presign() {
    let keys = dkg::<Secp256k1>(3, 2);
    let signers = ids(0..2);
    let t0 = triples(&signers, 2, "fuzz/t0");
    let t1 = triples(&signers, 2, "fuzz/t1");
    // Triples are used up by presigning; each fresh party gets copies decoded from storage.
    let stored = |t: &std::collections::BTreeMap<PartyId, Triple>, me: PartyId| t[&me].to_bytes().to_vec();
    let (a, b) = (stored(&t0, PartyId(0)), stored(&t1, PartyId(0)));
    let presign = |me: PartyId, a: &[u8], b: &[u8]| {
        ecdsa::presigning(
            session("fuzz-presign"),
            &keys[me.0 as usize],
            &signers,
            Triple::from_bytes(a).unwrap(),
            Triple::from_bytes(b).unwrap(),
        )
        .unwrap()
    };
    let recorded = record(
        signers
            .iter()
            .map(|me| presign(*me, &stored(&t0, *me), &stored(&t1, *me)))
            .collect(),
    );
    hammer("presign", &recorded, PartyId(0), 2, || presign(PartyId(0), &a, &b));
}

#[test]
fn fuzz_ecdsa_signature_share() {
    let keys = dkg::<Secp256k1>(3, 2);
    let share = sign_shares(
        presignatures(&keys, &ids(0..2), "fuzz-share"),
        keys[0].public_key(),
        &KeyId([0; 32]),
        &[0; 32],
    )
    .remove(0);
    Target::new("ecdsa_signature_share")
        .corpus([share.to_bytes()])
        .run(|bytes| {
            if let Ok(decoded) = SignatureShare::from_bytes(share.party, bytes) {
                assert_eq!(decoded.to_bytes(), bytes);
            }
        });
}

fn check_bls_share(bytes: &[u8]) {
    if let Ok(decoded) = bls::BlsSignatureShare::from_bytes(PartyId(0), bytes) {
        assert_eq!(decoded.to_bytes(), bytes);
    }
}

#[test]
fn fuzz_bls_signature_share() {
    let keys = dkg::<Bls12381G1>(3, 2);
    let share = bls::sign_share(&keys[0], b"id").unwrap();
    let target = Target::new("bls_signature_share").corpus([share.to_bytes()]);
    // Found by this target: blsful ignored bytes after a share, so one share had many encodings.
    let mut trailing = share.to_bytes();
    trailing.extend_from_within(..39);
    target.check_input(&trailing, check_bls_share);
    target.run(check_bls_share);
}

#[test]
fn fuzz_bls_ciphertext() {
    let keys = dkg::<Bls12381G1>(3, 2);
    let signature = bls::combine(
        keys[0].public(),
        &[
            bls::sign_share(&keys[0], b"id").unwrap(),
            bls::sign_share(&keys[1], b"id").unwrap(),
        ],
        b"id",
    )
    .unwrap();
    let ciphertexts = [
        bls::encrypt(keys[0].public().public_key(), b"id", b"payload").unwrap(),
        bls::encrypt(keys[0].public().public_key(), b"id", &[7; 300]).unwrap(),
    ];
    Target::new("bls_ciphertext")
        .corpus(&ciphertexts)
        .divide_cases(10)
        .run(|bytes| {
            if let Ok(plaintext) = bls::decrypt(&signature, b"id", bytes) {
                // Only a genuine ciphertext opens.
                assert!(
                    ciphertexts.iter().any(|c| c == bytes),
                    "{} bytes opened",
                    plaintext.len()
                );
            }
        });
}

fn records<C: Curve>(name: &str) {
    let keys = dkg::<C>(3, 2);
    let share = keys[1].to_bytes().to_vec();
    let package = keys[1].public().to_bytes();
    // A well-formed share costs a scalar multiplication and its package a point decompression per
    // party; on BLS12-381 that is about a millisecond a case, so BLS records run 10^4 / 4 cases.
    let divisor = if C::NAME == Bls12381G1::NAME { 4 } else { 1 };
    Target::new(name)
        .corpus([&share, &package])
        .divide_cases(divisor)
        .run(|bytes| {
            if let Ok(decoded) = KeyShare::<C>::from_bytes(bytes) {
                assert_eq!(decoded.to_bytes().as_slice(), bytes);
            }
            if let Ok(decoded) = PublicKeyPackage::<C>::from_bytes(bytes) {
                assert_eq!(decoded.to_bytes(), bytes);
            }
        });
}

#[test]
fn fuzz_records_secp256k1() {
    records::<Secp256k1>("records_secp256k1");
}

#[test]
fn fuzz_records_bls() {
    records::<Bls12381G1>("records_bls");
}

#[test]
fn fuzz_records_ecdsa() {
    let keys = dkg::<Secp256k1>(3, 2);
    let presignature = presignatures(&keys, &ids(0..2), "fuzz-records")
        .remove(0)
        .to_bytes()
        .to_vec();
    let triple = triples(&ids(0..3), 2, "fuzz-records/t")
        .remove(&PartyId(1))
        .unwrap()
        .to_bytes()
        .to_vec();
    Target::new("records_ecdsa")
        .corpus([&presignature, &triple])
        .run(|bytes| {
            if let Ok(decoded) = Presignature::from_bytes(bytes) {
                assert_eq!(decoded.to_bytes().as_slice(), bytes);
            }
            if let Ok(decoded) = Triple::from_bytes(bytes) {
                assert_eq!(decoded.to_bytes().as_slice(), bytes);
            }
        });
}
