use sigil_tss::{run_in_memory, run_in_memory_with, Bls12381G1, Curve, PartyId, Secp256k1, TssError, Vss};

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

#[test]
fn a_share_that_fails_its_commitments_names_the_dealer() {
    let parties = ids(0..4);
    let runs = parties
        .iter()
        .map(|me| Vss::<Secp256k1>::dkg(session("bad-share"), *me, &parties, 3).unwrap())
        .collect();
    // Party 2 sends party 0 a share that does not lie on its committed polynomial.
    let err = run_in_memory_with(runs, |m| {
        let is_share = m.bytes.get(34) == Some(&2);
        if m.from == PartyId(2) && m.to == PartyId(0) && is_share {
            let last = m.bytes.len() - 1;
            m.bytes[last] ^= 1;
        }
    })
    .unwrap_err();
    assert_eq!(err.culprit(), Some(PartyId(2)), "{err}");
    assert!(matches!(err, TssError::InvalidShare { .. }), "{err}");
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
