//! Storage encodings: what a node writes to disk comes back identical, and damaged bytes are refused.

use sigil_tss::derive::{derive_public_key, KeyId};
use sigil_tss::ecdsa::{self, Presignature, Triple};
use sigil_tss::{Bls12381G1, Curve, KeyShare, PublicKeyPackage, Secp256k1, TssError};

use crate::common::*;

/// Every truncation and a flip of every byte of `bytes` decodes to an error or to a value that
/// differs from the original — never to a panic.
fn check_damage<T: PartialEq + std::fmt::Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, TssError>,
    original: &T,
) {
    for cut in 0..bytes.len() {
        assert!(
            matches!(decode(&bytes[..cut]), Err(TssError::Corrupt(_))),
            "truncated to {cut} bytes"
        );
    }
    for at in 0..bytes.len() {
        let mut bad = bytes.to_vec();
        bad[at] ^= 0x01;
        if let Ok(decoded) = decode(&bad) {
            assert_ne!(&decoded, original, "a flipped byte {at} went unnoticed");
        }
    }
}

fn check_key_share<C: Curve>() {
    let keys = dkg::<C>(5, 4);
    let bytes = keys[2].to_bytes();
    let restored = KeyShare::<C>::from_bytes(&bytes).unwrap();
    assert_eq!(restored.me(), keys[2].me());
    assert_eq!(restored.secret(), keys[2].secret());
    assert_eq!(restored.public(), keys[2].public());
    // A secret that no longer matches the public share is refused, not loaded.
    let mut bad = bytes.to_vec();
    bad[5] ^= 0x01;
    assert!(matches!(KeyShare::<C>::from_bytes(&bad), Err(TssError::Corrupt(_))));
    let package = keys[0].public();
    check_damage(&package.to_bytes(), PublicKeyPackage::<C>::from_bytes, package);
}

#[test]
fn key_shares_and_packages_round_trip() {
    check_key_share::<Secp256k1>();
    check_key_share::<Bls12381G1>();
    check_key_share::<sigil_tss::Ed25519>();
}

#[test]
fn a_stored_presignature_still_signs() {
    let keys = dkg::<Secp256k1>(3, 2);
    let presigs = presignatures(&keys, &ids(0..2), "stored");
    let stored: Vec<_> = presigs.iter().map(Presignature::to_bytes).collect();
    drop(presigs);
    let restored: Vec<_> = stored.iter().map(|b| Presignature::from_bytes(b).unwrap()).collect();
    let key_id = KeyId([1; 32]);
    let hash = [3u8; 32];
    let shares = sign_shares(restored, keys[0].public_key(), &key_id, &hash);
    let pkp = derive_public_key(keys[0].public_key(), &key_id);
    assert!(ecdsa::combine(&pkp, &hash, keys[0].threshold(), &shares)
        .unwrap()
        .verify(&pkp, &hash));
    for bytes in &stored {
        for cut in 0..bytes.len() {
            assert!(matches!(
                Presignature::from_bytes(&bytes[..cut]),
                Err(TssError::Corrupt(_))
            ));
        }
    }
}

#[test]
fn a_stored_triple_still_presigns() {
    let keys = dkg::<Secp256k1>(3, 2);
    let parties = ids(0..3);
    let round_trip = |t: std::collections::BTreeMap<_, Triple>| {
        t.into_iter()
            .map(|(p, t)| (p, Triple::from_bytes(&t.to_bytes()).unwrap()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let mut t0 = round_trip(triples(&parties, 2, "stored/t0"));
    let mut t1 = round_trip(triples(&parties, 2, "stored/t1"));
    let signers = ids(1..3);
    let runs = signers
        .iter()
        .map(|me| {
            ecdsa::presigning(
                session("stored"),
                &keys[me.0 as usize],
                &signers,
                t0.remove(me).unwrap(),
                t1.remove(me).unwrap(),
            )
            .unwrap()
        })
        .collect();
    let presigs = sigil_tss::run_in_memory(runs)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let key_id = KeyId([2; 32]);
    let shares = sign_shares(presigs, keys[0].public_key(), &key_id, &[4; 32]);
    assert!(ecdsa::combine(
        &derive_public_key(keys[0].public_key(), &key_id),
        &[4; 32],
        keys[0].threshold(),
        &shares
    )
    .is_ok());
    let bytes = t0.remove(&parties[0]).unwrap().to_bytes();
    for cut in 0..bytes.len() {
        assert!(matches!(Triple::from_bytes(&bytes[..cut]), Err(TssError::Corrupt(_))));
    }
}
