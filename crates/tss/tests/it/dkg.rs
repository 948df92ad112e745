use sigil_tss::derive::KeyId;
use sigil_tss::k256::ProjectivePoint;
use sigil_tss::{
    run_in_memory, run_in_memory_each, run_in_memory_with, Bls12381G1, Curve, Ed25519, InFlight, KeyShare, PartyId,
    Secp256k1, TssError, Vss,
};

use crate::common::*;

fn check_dkg<C: Curve>() {
    for (n, t) in SIZES {
        check_key(&dkg::<C>(n, t), n, t);
    }
}

#[test]
fn ecdsa_dkg_every_size() {
    check_dkg::<Secp256k1>();
}

#[test]
fn bls_dkg_every_size() {
    check_dkg::<Bls12381G1>();
}

#[test]
fn ed25519_dkg_every_size() {
    check_dkg::<Ed25519>();
}

#[test]
fn an_ed25519_key_from_the_dkg_is_an_ed25519_public_key_its_shares_interpolate_to() {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use group::GroupEncoding;
    let shares = dkg::<Ed25519>(5, 4);
    let package = check_key(&shares, 5, 4);
    // The key's bytes are a valid ed25519-dalek verifying key (a compressed Edwards point of the
    // prime-order subgroup), and any t shares' public parts interpolate to it.
    let bytes = package.public_key().to_bytes();
    let point = CompressedEdwardsY(bytes).decompress().unwrap();
    assert!(point.is_torsion_free());
    for set in [ids(0..4), ids(1..5)] {
        assert_eq!(package.interpolate(&set).unwrap(), *package.public_key());
    }
    // A point with a small-order component is refused as a commitment or key.
    let mixed = (point + curve25519_dalek::constants::EIGHT_TORSION[1]).compress();
    assert!(sigil_tss::decode_point::<Ed25519>(&mixed.0).is_none());
    assert!(sigil_tss::decode_point::<Ed25519>(&bytes).is_some());
}

fn check_refresh<C: Curve>() {
    let old = dkg::<C>(5, 4);
    let runs = old
        .iter()
        .map(|s| Vss::refresh(session("refresh"), s).unwrap())
        .collect();
    let new = shares(run_in_memory(runs).unwrap());
    let package = check_key(&new, 5, 4);
    assert_eq!(package.public_key(), old[0].public_key());
    for (a, b) in old.iter().zip(&new) {
        assert_ne!(a.secret(), b.secret(), "refresh must change party {}'s share", a.me());
    }
}

#[test]
fn refresh_changes_every_share_and_keeps_the_key() {
    check_refresh::<Secp256k1>();
    check_refresh::<Bls12381G1>();
    check_refresh::<Ed25519>();
}

#[test]
fn dkg_refuses_impossible_parameters() {
    let p = ids(0..5);
    let s = session("params");
    assert!(matches!(
        Vss::<Secp256k1>::dkg(s, p[0], &p, 1),
        Err(TssError::BadParameters(_))
    ));
    assert!(matches!(
        Vss::<Secp256k1>::dkg(s, p[0], &p, 6),
        Err(TssError::BadParameters(_))
    ));
    assert!(matches!(
        Vss::<Secp256k1>::dkg(s, PartyId(9), &p, 3),
        Err(TssError::BadParameters(_))
    ));
    assert!(matches!(
        Vss::<Secp256k1>::dkg(s, p[0], &[p[0], p[0], p[1]], 2),
        Err(TssError::BadParameters(_))
    ));
}

/// Message tags after the 34-byte envelope header.
const SHARE: u8 = 2;
const COMPLAIN: u8 = 4;
const REVEAL: u8 = 5;

fn tag(m: &InFlight) -> Option<u8> {
    m.bytes.get(34).copied()
}

fn flip_last(m: &mut InFlight) {
    let last = m.bytes.len() - 1;
    m.bytes[last] ^= 1;
}

fn dkg_runs<C: Curve>(label: &str, n: u32, t: usize) -> Vec<Vss<C>> {
    let parties = ids(0..n);
    parties
        .iter()
        .map(|me| Vss::<C>::dkg(session(label), *me, &parties, t).unwrap())
        .collect()
}

fn check_bad_share_settled<C: Curve>() {
    // Party 2 sends party 0 a share off its committed polynomial; party 0 complains, party 2
    // reveals the share it dealt, and the run goes on.
    let outcomes = run_in_memory_each(dkg_runs::<C>("bad-share", 4, 3), |m| {
        if m.from == PartyId(2) && m.to == PartyId(0) && tag(m) == Some(SHARE) {
            flip_last(m);
        }
        true
    });
    let shares: Vec<KeyShare<C>> = outcomes
        .into_iter()
        .map(|(id, out)| out.unwrap_or_else(|e| panic!("party {id}: {e}")).unwrap())
        .collect();
    check_key(&shares, 4, 3);
}

#[test]
fn a_bad_share_is_settled_by_the_dealers_reveal_and_every_party_ends_with_the_same_key() {
    check_bad_share_settled::<Secp256k1>();
    check_bad_share_settled::<Bls12381G1>();
    check_bad_share_settled::<Ed25519>();
}

#[test]
fn a_dealer_whose_revealed_share_fails_too_is_disqualified_and_the_others_agree_without_it() {
    let outcomes = run_in_memory_each(dkg_runs::<Secp256k1>("bad-reveal", 5, 3), |m| {
        let share_to_0 = m.to == PartyId(0) && tag(m) == Some(SHARE);
        if m.from == PartyId(2) && (share_to_0 || tag(m) == Some(REVEAL)) {
            flip_last(m);
        }
        true
    });
    let honest: Vec<KeyShare<Secp256k1>> = outcomes
        .iter()
        .filter(|(id, _)| **id != PartyId(2))
        .map(|(id, out)| match out {
            Ok(Some(share)) => share.clone(),
            other => panic!("party {id}: {other:?}"),
        })
        .collect();
    // The four honest parties hold one key of threshold 3 (party 2 keeps a slot in the package,
    // and its share, counting its own disqualified dealing, is not one of it).
    let package = honest[0].public().clone();
    for share in &honest {
        assert_eq!(*share.public(), package);
        assert_eq!(
            *package.public_share(share.me()).unwrap(),
            ProjectivePoint::GENERATOR * share.secret()
        );
    }
    let set = ids(0..5).into_iter().filter(|p| *p != PartyId(2)).collect::<Vec<_>>();
    assert_eq!(package.interpolate(&set[..3]).unwrap(), *package.public_key());
    assert_eq!(package.interpolate(&set[1..]).unwrap(), *package.public_key());
    sign(&honest, &set[..3], &KeyId([3; 32]), &[9; 32]).expect("the honest parties sign");
    // Party 2 does not know it was disqualified; the others' confirmations tell it something
    // is wrong.
    assert!(outcomes[&PartyId(2)].is_err(), "{:?}", outcomes[&PartyId(2)]);
}

#[test]
fn a_dealer_that_never_answers_a_complaint_stalls_the_run_for_everyone_and_is_named() {
    let outcomes = run_in_memory_each(dkg_runs::<Secp256k1>("silent-dealer", 4, 3), |m| {
        if m.from == PartyId(2) && m.to == PartyId(0) && tag(m) == Some(SHARE) {
            flip_last(m);
        }
        !(m.from == PartyId(2) && tag(m) == Some(REVEAL))
    });
    // Nobody ends with a share, and every honest party names the dealer it waits for.
    for (id, out) in &outcomes {
        let Err(e) = out else { panic!("party {id} finished") };
        if *id != PartyId(2) {
            assert_eq!(e.suspect(), Some(PartyId(2)), "party {id}: {e}");
        }
    }
}

#[test]
fn a_false_complaint_against_an_honest_dealer_costs_it_one_revealed_share_and_nothing_else() {
    let outcomes = run_in_memory_each(dkg_runs::<Bls12381G1>("false-complaint", 4, 3), |m| {
        if m.from == PartyId(0) && tag(m) == Some(COMPLAIN) {
            // Party 0's (empty) list, rewritten everywhere to accuse party 1.
            m.bytes.truncate(35);
            m.bytes.extend_from_slice(&1u16.to_be_bytes());
            m.bytes.extend_from_slice(&1u32.to_be_bytes());
        }
        true
    });
    let shares: Vec<KeyShare<Bls12381G1>> = outcomes
        .into_iter()
        .map(|(id, out)| out.unwrap_or_else(|e| panic!("party {id}: {e}")).unwrap())
        .collect();
    check_key(&shares, 4, 3);
}

#[test]
fn a_complaint_list_sent_in_two_versions_stalls_the_run_and_nobody_finishes_alone() {
    let outcomes = run_in_memory_each(dkg_runs::<Secp256k1>("two-lists", 4, 3), |m| {
        if m.from == PartyId(3) && m.to == PartyId(1) && tag(m) == Some(COMPLAIN) {
            m.bytes.truncate(35);
            m.bytes.extend_from_slice(&1u16.to_be_bytes());
            m.bytes.extend_from_slice(&2u32.to_be_bytes());
        }
        true
    });
    // Party 1 waits for a reveal nobody else asked for: the run stalls, and nobody finishes
    // with a key the others do not hold.
    assert!(outcomes[&PartyId(1)].is_err());
    for (id, out) in &outcomes {
        if let Ok(Some(share)) = out {
            panic!("party {id} finished alone: {share:?}");
        }
    }
}

#[test]
fn a_forged_proof_of_knowledge_names_the_dealer() {
    let parties = ids(0..3);
    let runs = parties
        .iter()
        .map(|me| Vss::<Bls12381G1>::dkg(session("bad-pok"), *me, &parties, 2).unwrap())
        .collect();
    let err = run_in_memory_with(runs, |m| {
        let is_commit = m.bytes.get(34) == Some(&1);
        if m.from == PartyId(1) && is_commit {
            // Replace the proof's response (the last 32 bytes) with another canonical scalar.
            let n = m.bytes.len();
            m.bytes[n - 32..].copy_from_slice(&[0u8; 32]);
            m.bytes[n - 32] = 1;
        }
    })
    .unwrap_err();
    assert_eq!(err.culprit(), Some(PartyId(1)), "{err}");
}

#[test]
fn equivocating_confirmation_is_detected() {
    let parties = ids(0..3);
    let runs = parties
        .iter()
        .map(|me| Vss::<Secp256k1>::dkg(session("confirm"), *me, &parties, 2).unwrap())
        .collect();
    let err = run_in_memory_with(runs, |m| {
        if m.from == PartyId(2) && m.bytes.get(34) == Some(&3) {
            let last = m.bytes.len() - 1;
            m.bytes[last] ^= 0xff;
        }
    })
    .unwrap_err();
    // A lying confirmer and an equivocating dealer look the same to us: a suspect, not a culprit.
    assert_eq!(err.suspect(), Some(PartyId(2)), "{err}");
    assert_eq!(err.culprit(), None, "{err}");
}

#[test]
fn the_largest_network_runs_dkg() {
    let (n, t) = (sigil_tss::MAX_PARTIES, sigil_tss::threshold_for(sigil_tss::MAX_PARTIES));
    check_key(&dkg::<Secp256k1>(n, t), n, t);
    check_key(&dkg::<Bls12381G1>(n, t), n, t);
}

#[test]
fn network_size_is_bounded() {
    for n in [2usize, sigil_tss::MAX_PARTIES + 1] {
        let p = ids(0..n as u32);
        let err = Vss::<Secp256k1>::dkg(session("size"), p[0], &p, 2).unwrap_err();
        assert!(err.to_string().contains("parties"), "{err}");
    }
}
