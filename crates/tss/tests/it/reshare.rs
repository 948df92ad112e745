use sigil_tss::bls;
use sigil_tss::derive::KeyId;
use sigil_tss::{run_in_memory_each, run_in_memory_with, Bls12381G1, Curve, KeyShare, PartyId, Secp256k1, Vss};

use crate::common::*;

/// 5 nodes (t = 4) → 7 nodes (t = 5) → 4 entirely new nodes (t = 3). Public keys stay, new sets
/// sign, and data encrypted before the first reshare decrypts after the second.
#[test]
fn reshare_five_to_seven_to_four() {
    let ecdsa5 = dkg::<Secp256k1>(5, 4);
    let bls5 = dkg::<Bls12381G1>(5, 4);
    let ecdsa_key = *ecdsa5[0].public_key();
    let bls_key = *bls5[0].public_key();
    let identity = b"sigil-acc://before/reshare";
    let ciphertext = bls::encrypt(&bls_key, identity, b"written before the reshare").unwrap();

    // 5 → 7: node 4 is away, so four of the old nodes deal; nodes 5 and 6 join.
    let seven = ids(0..7);
    let dealers = ids(0..4);
    let ecdsa7 = reshare(&ecdsa5, &dealers, &seven, 5);
    let bls7 = reshare(&bls5, &dealers, &seven, 5);
    check_key(&ecdsa7, 7, 5);
    check_key(&bls7, 7, 5);
    assert_eq!(*ecdsa7[0].public_key(), ecdsa_key);
    assert_eq!(*bls7[0].public_key(), bls_key);
    sign(&ecdsa7, &ids(2..7), &KeyId([7; 32]), &[1; 32]).expect("the 7-node set signs");

    // 7 → 4: five of the seven deal to four new nodes that never held a share; only the new set keeps one.
    let four = ids(10..14);
    let dealers = ids(2..7);
    let ecdsa4 = reshare(&ecdsa7, &dealers, &four, 3);
    let bls4 = reshare(&bls7, &dealers, &four, 3);
    check_key(&ecdsa4, 4, 3);
    check_key(&bls4, 4, 3);
    assert_eq!(*ecdsa4[0].public_key(), ecdsa_key);
    assert_eq!(*bls4[0].public_key(), bls_key);
    sign(&ecdsa4, &ids(11..14), &KeyId([4; 32]), &[2; 32]).expect("the 4-node set signs");

    let shares: Vec<_> = bls4[1..]
        .iter()
        .map(|k| bls::sign_share(k, identity).unwrap())
        .collect();
    let signature = bls::combine(bls4[0].public(), &shares, identity).unwrap();
    assert_eq!(
        bls::decrypt(&signature, identity, &ciphertext).unwrap(),
        b"written before the reshare"
    );
}

fn check_dealer_cannot_change_the_key<C: Curve>() {
    let old = dkg::<C>(4, 3);
    let package = old[0].public().clone();
    let dealers = ids(0..3);
    let new = ids(0..4);
    let runs = new
        .iter()
        .map(|me| {
            let mine: Option<&KeyShare<C>> = dealers.contains(me).then(|| &old[me.0 as usize]);
            Vss::reshare(session("evil-dealer"), *me, &package, &dealers, mine, &new, 3).unwrap()
        })
        .collect();
    // Dealer 1 commits to another constant term (the generator) than its weighted old share.
    let g = group::GroupEncoding::to_bytes(&<C::Point as group::Group>::generator());
    let err = run_in_memory_with(runs, |m| {
        if m.from == PartyId(1) && m.bytes.get(34) == Some(&1) {
            m.bytes[37..37 + C::POINT_LEN].copy_from_slice(g.as_ref());
        }
    })
    .unwrap_err();
    assert_eq!(err.culprit(), Some(PartyId(1)), "{err}");
}

#[test]
fn a_dealer_cannot_change_the_key_during_reshare() {
    check_dealer_cannot_change_the_key::<Secp256k1>();
    check_dealer_cannot_change_the_key::<Bls12381G1>();
    check_dealer_cannot_change_the_key::<sigil_tss::Ed25519>();
}

#[test]
fn reshare_refuses_too_few_dealers() {
    let old = dkg::<Secp256k1>(5, 4);
    let err = Vss::reshare(
        session("few"),
        PartyId(0),
        old[0].public(),
        &ids(0..3),
        Some(&old[0]),
        &ids(0..5),
        4,
    )
    .unwrap_err();
    assert!(matches!(err, sigil_tss::TssError::BadParameters(_)), "{err}");
}

fn check_every_size<C: Curve>() {
    for (n, t) in SIZES {
        let keys = dkg::<C>(n, t);
        let key = *keys[0].public_key();
        // Refresh in place.
        let runs = keys
            .iter()
            .map(|s| Vss::refresh(session("refresh-size"), s).unwrap())
            .collect();
        let refreshed = shares(sigil_tss::run_in_memory(runs).unwrap());
        assert_eq!(*check_key(&refreshed, n, t).public_key(), key);
        // Reshare from a threshold of the old set to the next size in the cycle 3 → 5 → 10 → 3,
        // onto ids that partly overlap the old ones.
        let (m, u) = SIZES[(SIZES.iter().position(|s| *s == (n, t)).unwrap() + 1) % SIZES.len()];
        let new = ids(n as u32 / 2..(n / 2 + m) as u32);
        let moved = reshare(&refreshed, &ids(0..t as u32), &new, u);
        assert_eq!(*check_key(&moved, m, u).public_key(), key);
    }
}

#[test]
fn refresh_and_reshare_at_every_size() {
    check_every_size::<Secp256k1>();
    check_every_size::<Bls12381G1>();
    check_every_size::<sigil_tss::Ed25519>();
}

/// Proactive refresh: a node that leaves keeps nothing useful. Its old share and `t_new − 1` new
/// shares do not make the key (while `t_new` new shares do), so an adversary holding the old share
/// of a removed node and fewer than `t_new` new shares learns nothing.
#[test]
fn a_removed_nodes_old_share_does_not_combine_with_new_ones() {
    use sigil_tss::k256::{ProjectivePoint, Scalar};
    let old = dkg::<Secp256k1>(5, 4);
    let key = *old[0].public_key();
    let four = ids(0..4);
    let new = reshare(&old, &ids(0..5), &four, 3);
    // `(x, secret)` points, x = id + 1: the value at 0 of the polynomial through them.
    let at_zero = |points: &[(u64, Scalar)]| -> ProjectivePoint {
        let mut sum = Scalar::ZERO;
        for (i, (xi, yi)) in points.iter().enumerate() {
            let mut weight = Scalar::ONE;
            for (j, (xj, _)) in points.iter().enumerate() {
                if i != j {
                    let (xi, xj) = (Scalar::from(*xi), Scalar::from(*xj));
                    weight *= xj * (xj - xi).invert().unwrap();
                }
            }
            sum += weight * yi;
        }
        ProjectivePoint::GENERATOR * sum
    };
    let point = |share: &KeyShare<Secp256k1>| (u64::from(share.me().0) + 1, *share.secret());
    // Three new shares make the key...
    assert_eq!(at_zero(&[point(&new[0]), point(&new[1]), point(&new[2])]), key);
    // ...the leaver's old share with two new ones does not, whichever two.
    for (a, b) in [(0, 1), (1, 2), (2, 3), (0, 3)] {
        assert_ne!(at_zero(&[point(&old[4]), point(&new[a]), point(&new[b])]), key);
    }
    // Nor does an old share of a node that stays, in place of its new one.
    assert_ne!(at_zero(&[point(&old[0]), point(&new[1]), point(&new[2])]), key);
}

fn reshare_runs(
    old: &[KeyShare<Secp256k1>],
    label: &str,
    new_parties: &[PartyId],
    new_t: usize,
) -> Vec<Vss<Secp256k1>> {
    let package = old[0].public().clone();
    let dealers: Vec<PartyId> = old.iter().map(|s| s.me()).collect();
    let mut everyone: Vec<PartyId> = dealers.iter().chain(new_parties).copied().collect();
    everyone.sort();
    everyone.dedup();
    everyone
        .iter()
        .map(|me| {
            let mine = old.iter().find(|s| s.me() == *me);
            Vss::reshare(session(label), *me, &package, &dealers, mine, new_parties, new_t).unwrap()
        })
        .collect()
}

#[test]
fn a_bad_reshared_share_is_settled_by_its_dealers_reveal_and_the_key_stays() {
    let old = dkg::<Secp256k1>(4, 3);
    let new = ids(2..7);
    // Old party 1 (a leaving dealer) sends new party 5 a bad share, then answers its complaint.
    let outcomes = run_in_memory_each(reshare_runs(&old, "reshare-bad-share", &new, 4), |m| {
        if m.from == PartyId(1) && m.to == PartyId(5) && m.bytes.get(34) == Some(&2) {
            let last = m.bytes.len() - 1;
            m.bytes[last] ^= 1;
        }
        true
    });
    let shares: Vec<KeyShare<Secp256k1>> = outcomes
        .into_iter()
        .filter_map(|(id, out)| out.unwrap_or_else(|e| panic!("party {id}: {e}")))
        .collect();
    check_key(&shares, 5, 4);
    assert_eq!(shares[0].public_key(), old[0].public_key());
}

#[test]
fn a_reshare_dealer_whose_revealed_share_fails_is_named_by_every_receiver() {
    let old = dkg::<Secp256k1>(4, 3);
    let new = ids(0..5);
    let outcomes = run_in_memory_each(reshare_runs(&old, "reshare-bad-reveal", &new, 4), |m| {
        let tag = m.bytes.get(34).copied();
        if m.from == PartyId(3) && ((m.to == PartyId(4) && tag == Some(2)) || tag == Some(5)) {
            let last = m.bytes.len() - 1;
            m.bytes[last] ^= 1;
        }
        true
    });
    // The dealer set fixes the Lagrange weights, so nobody can drop party 3 within the run:
    // it fails, and every honest receiver has the proof against it.
    for (id, out) in &outcomes {
        if *id == PartyId(3) {
            continue;
        }
        match out {
            Err(e) => assert_eq!(e.culprit(), Some(PartyId(3)), "party {id}: {e}"),
            Ok(_) => panic!("party {id} finished"),
        }
    }
}
