use sigil_tss::derive::{derive_public_key, eth_address, token_id, KeyId};
use sigil_tss::ecdsa::{self, combine};
use sigil_tss::PartyId;
use sigil_tss::{Secp256k1, TssError};

use crate::common::*;

/// Signs under a fresh PKP and checks the signature with k256 and by address recovery.
fn check_signs(keys: &[sigil_tss::KeyShare<Secp256k1>], signers: &[sigil_tss::PartyId], key_id: KeyId, hash: [u8; 32]) {
    let sig = sign(keys, signers, &key_id, &hash).expect("t signers produce a signature");
    let pkp = derive_public_key(keys[0].public_key(), &key_id);
    assert!(sig.verify(&pkp, &hash), "k256 rejects the signature");
    assert_eq!(
        sig.recover_address(&hash).unwrap(),
        eth_address(&pkp),
        "recovers to another address"
    );
    assert!(sig.recovery_id <= 1);
    // Low-s: the top bit of s is clear.
    assert!(sig.s[0] < 0x80);
}

#[test]
fn every_size_signs_for_a_derived_key() {
    for (n, t) in SIZES {
        let keys = dkg::<Secp256k1>(n, t);
        let signers = ids(0..t as u32);
        check_signs(&keys, &signers, KeyId([n as u8; 32]), [0xab; 32]);
    }
}

/// Property (seeded): any t-subset signs, for random key ids and hashes; t−1 never can.
#[test]
fn any_t_subset_signs_and_no_t_minus_1_subset_does() {
    let mut rng = rng(0x5167);
    for (n, t, cases) in [(5usize, 4usize, 5), (7, 5, 3)] {
        let keys = dkg::<Secp256k1>(n, t);
        let all = ids(0..n as u32);
        for _ in 0..cases {
            let signers = subset(&mut rng, &all, t);
            check_signs(&keys, &signers, KeyId(random_bytes(&mut rng)), random_bytes(&mut rng));
            // The public shares of any t−1 parties do not determine the key.
            let few = subset(&mut rng, &all, t - 1);
            assert_ne!(keys[0].public().interpolate(&few).unwrap(), *keys[0].public_key());
        }

        let few = subset(&mut rng, &all, t - 1);
        // t−1 parties cannot presign …
        let mut t0 = triples(&all, t, "few/t0");
        let mut t1 = triples(&all, t, "few/t1");
        let me = few[0];
        let refused = ecdsa::presigning(
            session("few"),
            &keys[me.0 as usize],
            &few,
            t0.remove(&me).unwrap(),
            t1.remove(&me).unwrap(),
        );
        assert!(matches!(refused, Err(TssError::BadParameters(_))));
        // … and t−1 shares of a real presignature do not combine.
        let hash = random_bytes(&mut rng);
        let key_id = KeyId(random_bytes(&mut rng));
        let signers = subset(&mut rng, &all, t);
        let mut shares = sign_shares(
            presignatures(&keys, &signers, "few/full"),
            keys[0].public_key(),
            &key_id,
            &hash,
        );
        shares.pop();
        let pkp = derive_public_key(keys[0].public_key(), &key_id);
        assert!(matches!(
            combine(&pkp, &hash, keys[0].threshold(), &shares),
            Err(TssError::NotEnoughShares { .. })
        ));
    }
}

#[test]
fn a_tampered_share_never_yields_a_signature() {
    let keys = dkg::<Secp256k1>(3, 2);
    let signers = ids(0..2);
    let key_id = KeyId([3; 32]);
    let hash = [9u8; 32];
    let mut shares = sign_shares(
        presignatures(&keys, &signers, "tamper"),
        keys[0].public_key(),
        &key_id,
        &hash,
    );
    let pkp = derive_public_key(keys[0].public_key(), &key_id);
    let good = combine(&pkp, &hash, keys[0].threshold(), &shares).unwrap();
    shares[1].s += sigil_tss::k256::Scalar::ONE;
    assert_eq!(
        combine(&pkp, &hash, keys[0].threshold(), &shares),
        Err(TssError::InvalidShares {
            culprits: vec![PartyId(1)]
        })
    );
    // The same shares under another key or message never verify either, and blame nobody.
    shares[1].s -= sigil_tss::k256::Scalar::ONE;
    assert_eq!(combine(&pkp, &hash, keys[0].threshold(), &shares), Ok(good));
    assert_eq!(
        combine(&pkp, &[8u8; 32], keys[0].threshold(), &shares),
        Err(TssError::SignatureInvalid)
    );
}

#[test]
fn signers_computing_different_messages_are_caught() {
    let keys = dkg::<Secp256k1>(5, 4);
    let signers = ids(0..4);
    let root = *keys[0].public_key();
    let key_id = KeyId([4; 32]);
    let entropy = [1u8; 32];
    let shares: Vec<_> = presignatures(&keys, &signers, "disagree")
        .into_iter()
        .map(|p| {
            // Party 3 saw another message: its re-randomised nonce differs from everyone else's.
            let hash = if p.me() == sigil_tss::PartyId(3) {
                [2u8; 32]
            } else {
                [1u8; 32]
            };
            ecdsa::sign_share(p, &root, &key_id, &hash, &entropy).unwrap()
        })
        .collect();
    let err = combine(
        &derive_public_key(&root, &key_id),
        &[1u8; 32],
        keys[0].threshold(),
        &shares,
    )
    .unwrap_err();
    assert_eq!(err.culprit(), Some(sigil_tss::PartyId(3)), "{err}");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let keys = dkg::<Secp256k1>(3, 2);
    let presig = presignatures(&keys, &ids(0..2), "debug").pop().unwrap();
    for text in [format!("{:?}", keys[0]), format!("{presig:?}")] {
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains(&format!("{:?}", keys[0].secret())), "{text}");
    }
}

#[test]
fn signature_share_wire_format_round_trips() {
    let keys = dkg::<Secp256k1>(3, 2);
    let shares = sign_shares(
        presignatures(&keys, &ids(0..2), "wire"),
        keys[0].public_key(),
        &KeyId([0; 32]),
        &[5; 32],
    );
    for share in &shares {
        let bytes = share.to_bytes();
        assert_eq!(ecdsa::SignatureShare::from_bytes(share.party, &bytes).unwrap(), *share);
        // A share relayed under another node's name is refused.
        let other = sigil_tss::PartyId(share.party.0 + 1);
        assert_eq!(
            ecdsa::SignatureShare::from_bytes(other, &bytes).unwrap_err().culprit(),
            Some(other)
        );
    }
}

#[test]
fn token_id_is_keccak_of_the_uncompressed_key() {
    // keccak256(0x04 || Gx || Gy), computed independently (pycryptodome) for the generator.
    let pk = sigil_tss::k256::ProjectivePoint::GENERATOR;
    assert_eq!(
        hex::encode(token_id(&pk)),
        "393a75c54f3552ba0c8900297d6e99bb8abf8cc013bb0e912d0b176596fe7b88"
    );
}

#[test]
fn an_identity_nonce_is_refused_not_a_crash() {
    let keys = dkg::<Secp256k1>(3, 2);
    let key_id = KeyId([6; 32]);
    let hash = [6u8; 32];
    let mut shares = sign_shares(
        presignatures(&keys, &ids(0..2), "identity"),
        keys[0].public_key(),
        &key_id,
        &hash,
    );
    let pkp = derive_public_key(keys[0].public_key(), &key_id);
    // On the wire: 33 zero bytes decode as the identity in k256, and are refused.
    let mut bytes = shares[1].to_bytes();
    let at = 4 + 1 + 4 * shares[1].signers.len();
    bytes[at..at + 33].fill(0);
    let err = ecdsa::SignatureShare::from_bytes(shares[1].party, &bytes).unwrap_err();
    assert_eq!(err.culprit(), Some(shares[1].party), "{err}");
    // In memory: every signer claiming the identity gives an error, never a panic or a signature.
    for share in &mut shares {
        share.big_r = sigil_tss::k256::AffinePoint::IDENTITY;
    }
    assert!(combine(&pkp, &hash, keys[0].threshold(), &shares).is_err());
}

#[test]
fn two_signers_that_disagree_blame_nobody() {
    let keys = dkg::<Secp256k1>(3, 2);
    let root = *keys[0].public_key();
    let key_id = KeyId([8; 32]);
    let shares: Vec<_> = presignatures(&keys, &ids(0..2), "tie")
        .into_iter()
        .map(|p| {
            let hash = [p.me().0 as u8; 32];
            ecdsa::sign_share(p, &root, &key_id, &hash, &[0; 32]).unwrap()
        })
        .collect();
    let err = combine(
        &derive_public_key(&root, &key_id),
        &[0; 32],
        keys[0].threshold(),
        &shares,
    )
    .unwrap_err();
    assert!(matches!(err, TssError::Protocol { suspect: None, .. }), "{err}");
}

#[test]
fn derived_shares_are_a_sharing_of_the_derived_key() {
    use sigil_tss::derive::derive_share;
    use sigil_tss::k256::ProjectivePoint;
    let keys = dkg::<Secp256k1>(5, 4);
    let key_id = KeyId([0x42; 32]);
    let pkp = derive_public_key(keys[0].public_key(), &key_id);
    let public_shares = keys
        .iter()
        .map(|k| (k.me(), ProjectivePoint::GENERATOR * *derive_share(k, &key_id)))
        .collect();
    // `new` checks that the public shares lie on one degree-(t−1) polynomial through the key.
    let derived = sigil_tss::PublicKeyPackage::<Secp256k1>::new(4, pkp, public_shares)
        .expect("consistent sharing of the PKP key");
    assert_eq!(derived.interpolate(&ids(1..5)).unwrap(), pkp);
}

#[test]
fn signature_share_wire_format_is_stable() {
    use sigil_tss::k256::{AffinePoint, Scalar};
    let g = AffinePoint::GENERATOR;
    let share = ecdsa::SignatureShare {
        party: PartyId(1),
        signers: ids(0..2),
        big_r: g,
        s: Scalar::ONE,
        delta: Scalar::ONE,
        tweak: Scalar::ZERO,
        commitments: ecdsa::PresignCommitments::new(g, vec![(PartyId(0), g, g), (PartyId(1), g, g)]).unwrap(),
    };
    let g_hex = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    // party | count | signers | R' | s | δ | ε | R | count | (party | K | Σ)* — change this only
    // together with the wire version.
    assert_eq!(
        hex::encode(share.to_bytes()),
        [
            "00000001",
            "02",
            "0000000000000001",
            g_hex,
            "0000000000000000000000000000000000000000000000000000000000000001",
            "0000000000000000000000000000000000000000000000000000000000000001",
            "0000000000000000000000000000000000000000000000000000000000000000",
            g_hex,
            "02",
            "00000000",
            g_hex,
            g_hex,
            "00000001",
            g_hex,
            g_hex,
        ]
        .concat()
    );
}

/// Signs with the exactly-t signing set `signers` of a key of threshold t, with the shares of
/// `bad` increased by one: a wrong share is named from exactly t shares, with no spare to out-vote.
fn check_bad_shares_named(n: usize, t: usize, signers: std::ops::Range<u32>, bad: &[u32]) {
    let keys = dkg::<Secp256k1>(n, t);
    let root = *keys[0].public_key();
    let key_id = KeyId([11; 32]);
    let hash = [12u8; 32];
    let pkp = derive_public_key(&root, &key_id);
    let mut shares = sign_shares(presignatures(&keys, &ids(signers), "named"), &root, &key_id, &hash);
    assert_eq!(shares.len(), t);
    assert!(combine(&pkp, &hash, t, &shares).unwrap().verify(&pkp, &hash));
    for share in shares.iter_mut().filter(|s| bad.contains(&s.party.0)) {
        share.s += sigil_tss::k256::Scalar::ONE;
    }
    let culprits: Vec<PartyId> = bad.iter().map(|b| PartyId(*b)).collect();
    assert_eq!(
        combine(&pkp, &hash, t, &shares),
        Err(TssError::InvalidShares { culprits })
    );
    // Fewer than t shares are refused outright.
    assert!(matches!(
        combine(&pkp, &hash, t, &shares[1..]),
        Err(TssError::NotEnoughShares { .. })
    ));
}

#[test]
fn a_wrong_share_is_named_from_exactly_t_shares() {
    check_bad_shares_named(5, 4, 0..4, &[2]);
}

#[test]
fn a_wrong_share_of_the_lowest_signer_is_named() {
    check_bad_shares_named(3, 2, 1..3, &[1]);
}

#[test]
fn three_wrong_shares_are_all_named() {
    check_bad_shares_named(10, 7, 2..9, &[2, 3, 4]);
}

#[test]
fn a_presignature_is_made_by_exactly_t_signers() {
    let keys = dkg::<Secp256k1>(5, 4);
    let all = ids(0..5);
    for signers in [ids(0..5), ids(0..3)] {
        let mut t0 = triples(&all, 4, "exact/t0");
        let mut t1 = triples(&all, 4, "exact/t1");
        let refused = ecdsa::presigning(
            session("exact"),
            &keys[0],
            &signers,
            t0.remove(&PartyId(0)).unwrap(),
            t1.remove(&PartyId(0)).unwrap(),
        );
        assert!(
            matches!(&refused, Err(TssError::BadParameters(m)) if m.contains("exactly t")),
            "{} signers: {refused:?}",
            signers.len()
        );
    }
}

#[test]
fn a_signer_lying_about_the_commitments_is_named() {
    let keys = dkg::<Secp256k1>(5, 4);
    let root = *keys[0].public_key();
    let key_id = KeyId([13; 32]);
    let hash = [14u8; 32];
    let pkp = derive_public_key(&root, &key_id);
    let mut shares = sign_shares(presignatures(&keys, &ids(1..5), "lying"), &root, &key_id, &hash);
    // Node 3 sends a wrong share together with commitments made up to fit it.
    let forged = ecdsa::PresignCommitments::new(
        shares[2].commitments.big_r(),
        shares[2]
            .commitments
            .parties()
            .into_iter()
            .map(|p| {
                (
                    p,
                    sigil_tss::k256::AffinePoint::GENERATOR,
                    sigil_tss::k256::AffinePoint::GENERATOR,
                )
            })
            .collect(),
    )
    .unwrap();
    shares[2].s += sigil_tss::k256::Scalar::ONE;
    shares[2].commitments = forged;
    let err = combine(&pkp, &hash, 4, &shares).unwrap_err();
    assert_eq!(err.culprits(), vec![PartyId(3)], "{err}");
}

#[test]
fn an_extra_share_from_a_non_signer_does_not_block_the_signature() {
    let keys = dkg::<Secp256k1>(5, 4);
    let root = *keys[0].public_key();
    let key_id = KeyId([15; 32]);
    let hash = [16u8; 32];
    let pkp = derive_public_key(&root, &key_id);
    let mut shares = sign_shares(presignatures(&keys, &ids(0..4), "extra"), &root, &key_id, &hash);
    // Node 4 (not a signer) posts a copy of another share under its own name, and a stray share
    // of another presignature arrives too.
    let mut stray = shares[0].clone();
    stray.party = PartyId(4);
    shares.push(stray);
    let mut other = sign_shares(presignatures(&keys, &ids(1..5), "extra/other"), &root, &key_id, &hash);
    shares.push(other.remove(0));
    assert!(combine(&pkp, &hash, 4, &shares).unwrap().verify(&pkp, &hash));
}

/// The `λ_i` of party `i` in `set` (x-coordinates `id + 1`).
fn lagrange(i: u32, set: &[u32]) -> sigil_tss::k256::Scalar {
    use sigil_tss::k256::Scalar;
    let x = |id: u32| Scalar::from(u64::from(id) + 1);
    let mut num = Scalar::ONE;
    let mut den = Scalar::ONE;
    for j in set.iter().filter(|j| **j != i) {
        num *= x(*j);
        den *= x(*j) - x(i);
    }
    num * den.invert().unwrap()
}

#[test]
fn two_signers_sending_one_holder_other_commitments_are_caught_by_the_echo() {
    use sigil_tss::k256::elliptic_curve::group::GroupEncoding;
    use sigil_tss::k256::elliptic_curve::PrimeField;
    use sigil_tss::k256::{ProjectivePoint, Scalar};
    let keys = dkg::<Secp256k1>(5, 3);
    let runs = presign_runs(&keys, &ids(0..3), "echo");
    // Parties 0 and 1 shift their K commitments and ka shares by amounts that cancel, in the
    // messages to party 2 only: every per-party and aggregate check of party 2 still passes, but
    // party 2 would hold other commitments than the rest.
    let d = Scalar::from(12345u64);
    let set = [0u32, 1, 2];
    let header = 2 + 32;
    let result = sigil_tss::run_in_memory_with(runs, |msg| {
        let payload = &mut msg.bytes[header..];
        if msg.to != PartyId(2) || payload[0] != 2 || msg.from == PartyId(2) {
            return;
        }
        let sign = if msg.from == PartyId(0) { d } else { -d };
        let read_scalar = |b: &[u8]| Scalar::from_repr(<[u8; 32]>::try_from(b).unwrap().into()).unwrap();
        let ka = read_scalar(&payload[33..65]) + sign;
        payload[33..65].copy_from_slice(&ka.to_repr());
        let mut repr = <ProjectivePoint as GroupEncoding>::Repr::default();
        repr.copy_from_slice(&payload[97..130]);
        let big_k = ProjectivePoint::from_bytes(&repr).unwrap();
        let shifted = big_k + ProjectivePoint::GENERATOR * (sign * lagrange(msg.from.0, &set).invert().unwrap());
        payload[97..130].copy_from_slice(&shifted.to_affine().to_bytes());
    });
    let err = result.unwrap_err();
    assert!(err.to_string().contains("saw other first-round messages"), "{err}");
}
