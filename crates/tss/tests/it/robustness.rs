//! Random bytes, truncations, bit flips, replays and strangers fed to every protocol's message
//! handler: every call returns (an error or Ok) and nothing panics.

use std::cell::RefCell;

use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha20Rng;
use sigil_tss::derive::KeyId;
use sigil_tss::ecdsa::{self, SignatureShare};
use sigil_tss::{bls, run_in_memory_with, Bls12381G1, Curve, InFlight, PartyId, Protocol, Secp256k1, Vss};

use crate::common::*;

/// Mutations of one genuine message.
fn variants(bytes: &[u8], rng: &mut ChaCha20Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let len = bytes.len();
    let cuts: Vec<usize> = if len <= 96 {
        (0..len).collect()
    } else {
        (0..48).map(|_| rng.next_u32() as usize % len).chain(0..40).collect()
    };
    out.extend(cuts.into_iter().map(|cut| bytes[..cut].to_vec()));
    for _ in 0..24 {
        let mut flipped = bytes.to_vec();
        let at = rng.next_u32() as usize % len.max(1);
        if let Some(b) = flipped.get_mut(at) {
            *b ^= 1 << (rng.next_u32() % 8);
        }
        out.push(flipped);
    }
    for _ in 0..12 {
        // Same envelope, random payload: reaches the protocol's own decoder.
        let mut noise = bytes[..bytes.len().min(35)].to_vec();
        let extra = rng.next_u32() as usize % (len + 64);
        let mut tail = vec![0u8; extra];
        rng.fill_bytes(&mut tail);
        noise.extend(tail);
        out.push(noise);
        let mut random = vec![0u8; rng.next_u32() as usize % 256];
        rng.fill_bytes(&mut random);
        out.push(random);
    }
    let mut longer = bytes.to_vec();
    longer.extend_from_slice(&[0u8; 17]);
    out.push(longer);
    out
}

/// Feeds mutations of each recorded message to a fresh instance for its recipient.
fn hammer<P: Protocol>(label: &str, recorded: &[InFlight], cap: usize, mut fresh: impl FnMut(PartyId) -> P) {
    let mut rng = rng(0xf022);
    let mut calls = 0usize;
    for msg in recorded.iter().take(cap) {
        let mut party = fresh(msg.to);
        for bad in variants(&msg.bytes, &mut rng) {
            let _ = party.handle(msg.from, &bad);
            let _ = party.poke();
            calls += 1;
        }
        assert!(
            party.handle(PartyId(99), &msg.bytes).is_err(),
            "{label}: a stranger's message was accepted"
        );
        assert!(
            party.handle(msg.to, &msg.bytes).is_err(),
            "{label}: a message from ourselves was accepted"
        );
        // Replays of the genuine message.
        for _ in 0..3 {
            let _ = party.handle(msg.from, &msg.bytes);
            let _ = party.poke();
        }
    }
    assert!(calls > 0, "{label}: nothing was fed");
}

/// Runs a protocol once and returns every message sent.
fn record<P: Protocol>(runs: Vec<P>) -> Vec<InFlight> {
    let seen = RefCell::new(Vec::new());
    run_in_memory_with(runs, |m| seen.borrow_mut().push(m.clone())).expect("honest run succeeds");
    seen.into_inner()
}

fn hammer_vss<C: Curve>() {
    let parties = ids(0..3);
    let dkg = |me| Vss::<C>::dkg(session("fuzz-dkg"), me, &parties, 2).unwrap();
    let recorded = record(parties.iter().map(|p| dkg(*p)).collect());
    hammer(C::NAME, &recorded, usize::MAX, dkg);

    let old = crate::common::dkg::<C>(3, 2);
    let package = old[0].public().clone();
    let new = ids(1..5);
    let dealers = ids(0..2);
    let reshare = |me: PartyId| {
        let mine = dealers.contains(&me).then(|| &old[me.0 as usize]);
        Vss::<C>::reshare(session("fuzz-reshare"), me, &package, &dealers, mine, &new, 3).unwrap()
    };
    let recorded = record(ids(0..5).into_iter().map(reshare).collect());
    hammer(C::NAME, &recorded, usize::MAX, reshare);
}

#[test]
fn vss_handlers_survive_garbage() {
    hammer_vss::<Secp256k1>();
    hammer_vss::<Bls12381G1>();
    hammer_vss::<sigil_tss::Ed25519>();
}

#[test]
fn triple_and_presign_handlers_survive_garbage() {
    let parties = ids(0..3);
    let triple = |me| ecdsa::triple_generation(session("fuzz-triple"), me, &parties, 2).unwrap();
    let recorded = record(parties.iter().map(|p| triple(*p)).collect());
    hammer("triple", &recorded, 10, triple);

    let keys = dkg::<Secp256k1>(3, 2);
    let signers = ids(0..2);
    let mut t0 = triples(&parties, 2, "fuzz/t0");
    let mut t1 = triples(&parties, 2, "fuzz/t1");
    let recorded = record(
        signers
            .iter()
            .map(|me| {
                ecdsa::presigning(
                    session("fuzz-presign"),
                    &keys[me.0 as usize],
                    &signers,
                    t0.remove(me).unwrap(),
                    t1.remove(me).unwrap(),
                )
                .unwrap()
            })
            .collect(),
    );
    let presign = |me: PartyId| {
        let mut t0 = triples(&parties, 2, "fuzz/f0");
        let mut t1 = triples(&parties, 2, "fuzz/f1");
        ecdsa::presigning(
            session("fuzz-presign"),
            &keys[me.0 as usize],
            &signers,
            t0.remove(&me).unwrap(),
            t1.remove(&me).unwrap(),
        )
        .unwrap()
    };
    hammer("presign", &recorded, 4, presign);
}

#[test]
fn share_and_ciphertext_decoders_survive_garbage() {
    let keys = dkg::<Secp256k1>(3, 2);
    let share = sign_shares(
        presignatures(&keys, &ids(0..2), "fuzz-share"),
        keys[0].public_key(),
        &KeyId([0; 32]),
        &[0; 32],
    )
    .remove(0);
    let bls_keys = dkg::<Bls12381G1>(3, 2);
    let bls_share = bls::sign_share(&bls_keys[0], b"id").unwrap();
    let bls_sig = bls::combine(
        bls_keys[0].public(),
        &[bls_share.clone(), bls::sign_share(&bls_keys[1], b"id").unwrap()],
        b"id",
    )
    .unwrap();
    let ciphertext = bls::encrypt(bls_keys[0].public().public_key(), b"id", b"payload").unwrap();
    let mut rng = rng(3);
    for bad in variants(&share.to_bytes(), &mut rng) {
        let _ = SignatureShare::from_bytes(share.party, &bad);
    }
    for bad in variants(&bls_share.to_bytes(), &mut rng) {
        let _ = bls::BlsSignatureShare::from_bytes(PartyId(0), &bad);
    }
    for bad in variants(&ciphertext, &mut rng) {
        if bad != ciphertext {
            assert!(bls::decrypt(&bls_sig, b"id", &bad).is_err());
        }
    }
}

fn check_vss_in_any_order<C: Curve>() {
    for seed in 0..3 {
        let parties = ids(0..5);
        let runs = parties
            .iter()
            .map(|me| Vss::<C>::dkg(session("shuffled"), *me, &parties, 4).unwrap())
            .collect();
        let keys = shares(run_shuffled(runs, seed));
        check_key(&keys, 5, 4);

        let package = keys[0].public().clone();
        let new = ids(2..8);
        let dealers = ids(0..4);
        let runs = ids(0..8)
            .into_iter()
            .map(|me| {
                let mine = dealers.contains(&me).then(|| &keys[me.0 as usize]);
                Vss::<C>::reshare(session("shuffled-reshare"), me, &package, &dealers, mine, &new, 4).unwrap()
            })
            .collect();
        let reshared = shares(run_shuffled(runs, seed + 100));
        assert_eq!(check_key(&reshared, 6, 4).public_key(), package.public_key());
    }
}

#[test]
fn vss_is_correct_with_reordered_and_duplicated_messages() {
    check_vss_in_any_order::<Secp256k1>();
    check_vss_in_any_order::<Bls12381G1>();
    check_vss_in_any_order::<sigil_tss::Ed25519>();
}

#[test]
fn ecdsa_is_correct_with_reordered_and_duplicated_messages() {
    use sigil_tss::derive::derive_public_key;
    let keys = dkg::<Secp256k1>(4, 3);
    let parties = ids(0..4);
    let signers = ids(1..4);
    let triples = |label: &str, seed| {
        let runs = parties
            .iter()
            .map(|me| ecdsa::triple_generation(session(label), *me, &parties, 3).unwrap())
            .collect();
        run_shuffled(runs, seed)
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (mut t0, mut t1) = (triples("shuffled/t0", 1), triples("shuffled/t1", 2));
    let runs = signers
        .iter()
        .map(|me| {
            let (a, b) = (t0.remove(me).unwrap(), t1.remove(me).unwrap());
            ecdsa::presigning(session("shuffled/presign"), &keys[me.0 as usize], &signers, a, b).unwrap()
        })
        .collect();
    let presigs = run_shuffled(runs, 3).into_iter().map(|(_, p)| p).collect();
    let key_id = KeyId([1; 32]);
    let hash = [2u8; 32];
    let shares = sign_shares(presigs, keys[0].public_key(), &key_id, &hash);
    let pkp = derive_public_key(keys[0].public_key(), &key_id);
    assert!(ecdsa::combine(&pkp, &hash, keys[0].threshold(), &shares)
        .unwrap()
        .verify(&pkp, &hash));
}

#[test]
fn a_flooding_peer_is_cut_off() {
    let parties = ids(0..3);
    let mut run = ecdsa::triple_generation(session("flood"), PartyId(0), &parties, 2).unwrap();
    let mut message = vec![sigil_tss::WIRE_VERSION, sigil_tss::ProtocolKind::Triple as u8];
    message.extend_from_slice(&session("flood").0);
    message.extend_from_slice(&[0xee; 40]);
    let accepted = (0..2 * sigil_tss::MAX_MESSAGES_PER_PEER)
        .filter(|_| run.handle(PartyId(1), &message).is_ok())
        .count();
    assert_eq!(accepted, sigil_tss::MAX_MESSAGES_PER_PEER);
    // The other peer is unaffected.
    assert!(run.handle(PartyId(2), &message).is_ok());
}

#[test]
fn debug_output_of_messages_shows_no_bytes() {
    let parties = ids(0..3);
    let mut run = Vss::<Secp256k1>::dkg(session("debug"), PartyId(0), &parties, 2).unwrap();
    let mut printed = Vec::new();
    while let Ok(sigil_tss::Step::Send(msg)) = run.poke() {
        printed.push(format!("{msg:?}"));
    }
    assert!(printed.iter().any(|p| p.starts_with("ToOne(")), "{printed:?}");
    assert!(printed.iter().all(|p| p.ends_with("bytes)")), "{printed:?}");
}
