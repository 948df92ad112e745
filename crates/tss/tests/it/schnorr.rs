//! BIP-340 / taproot Schnorr signatures by FROST with the secp256k1 root key's shares, checked
//! by k256's own BIP-340 verifier (not the FROST code that made them).

use std::collections::BTreeMap;

use sigil_tss::derive::KeyId;
use sigil_tss::k256::schnorr::signature::hazmat::PrehashVerifier;
use sigil_tss::k256::schnorr::{Signature, VerifyingKey};
use sigil_tss::schnorr::{combine, commit, output_key, sign_share, Commitment, Nonces, SchnorrShare};
use sigil_tss::{KeyShare, PartyId, Secp256k1, TssError};

use crate::common::*;

/// One signature by `signers` of `message` under PKP `key_id`; `tamper` may change the shares.
fn schnorr_sign(
    keys: &[KeyShare<Secp256k1>],
    signers: &[PartyId],
    key_id: &KeyId,
    message: &[u8; 32],
    tamper: impl FnOnce(&mut Vec<SchnorrShare>),
) -> Result<[u8; 64], TssError> {
    let by_id: BTreeMap<PartyId, &KeyShare<Secp256k1>> = keys.iter().map(|k| (k.me(), k)).collect();
    let mut nonces: BTreeMap<PartyId, Nonces> = BTreeMap::new();
    let mut commitments: BTreeMap<PartyId, Commitment> = BTreeMap::new();
    for s in signers {
        let (n, c) = commit(by_id[s]).unwrap();
        // As a node keeps them: stored, then read back for the one signature they serve.
        nonces.insert(*s, Nonces::from_bytes(&n.to_bytes()).unwrap());
        commitments.insert(*s, c);
    }
    let mut shares: Vec<SchnorrShare> = signers
        .iter()
        .map(|s| sign_share(by_id[s], key_id, message, &commitments, nonces.remove(s).unwrap()).unwrap())
        .collect();
    tamper(&mut shares);
    combine(keys[0].public(), key_id, message, &commitments, &shares)
}

fn verifies(keys: &[KeyShare<Secp256k1>], key_id: &KeyId, message: &[u8; 32], signature: &[u8; 64]) -> bool {
    let key = VerifyingKey::from_bytes(&output_key(keys[0].public_key(), key_id).unwrap()).unwrap();
    let signature = Signature::try_from(&signature[..]).unwrap();
    key.verify_prehash(message, &signature).is_ok()
}

#[test]
fn fifty_random_messages_by_random_signing_sets_verify_under_each_pkps_taproot_key() {
    let (n, t) = (5, 4);
    let keys = dkg::<Secp256k1>(n, t);
    let all = ids(0..n as u32);
    let mut rng = rng(340);
    for _ in 0..50 {
        let key_id = KeyId(random_bytes(&mut rng));
        let message: [u8; 32] = random_bytes(&mut rng);
        let signers = subset(&mut rng, &all, t);
        let signature = schnorr_sign(&keys, &signers, &key_id, &message, |_| {}).unwrap();
        assert!(verifies(&keys, &key_id, &message, &signature), "set {signers:?}");
        // Another PKP's key, or another message, does not verify it.
        assert!(!verifies(&keys, &KeyId(random_bytes(&mut rng)), &message, &signature));
        let mut other = message;
        other[0] ^= 1;
        assert!(!verifies(&keys, &key_id, &other, &signature));
    }
}

#[test]
fn a_corrupt_share_is_named_and_no_signature_comes_out() {
    let keys = dkg::<Secp256k1>(4, 3);
    let signers = ids(1..4);
    let key_id = KeyId([7; 32]);
    // Party 2 sends its share of another message.
    let err = schnorr_sign(&keys, &signers, &key_id, &[1; 32], |shares| {
        let (n, c) = commit(&keys[2]).unwrap();
        let mut commitments = BTreeMap::new();
        commitments.insert(PartyId(2), c);
        for p in [1, 3] {
            commitments.insert(PartyId(p), commit(&keys[p as usize]).unwrap().1);
        }
        shares[1] = sign_share(&keys[2], &key_id, &[2; 32], &commitments, n).unwrap();
    })
    .unwrap_err();
    assert_eq!(err.culprits(), vec![PartyId(2)], "{err}");
}

#[test]
fn a_signing_set_is_exactly_t_and_each_signer_signs_only_with_its_own_commitment() {
    let keys = dkg::<Secp256k1>(4, 3);
    let key_id = KeyId([9; 32]);
    let mut commitments = BTreeMap::new();
    let mut nonces = BTreeMap::new();
    for p in 0..4u32 {
        let (n, c) = commit(&keys[p as usize]).unwrap();
        commitments.insert(PartyId(p), c);
        nonces.insert(p, n);
    }
    // Four of a threshold-3 key: refused (the nonces are gone with the call all the same).
    let (spare, _) = commit(&keys[0]).unwrap();
    let err = sign_share(&keys[0], &key_id, &[0; 32], &commitments, spare).unwrap_err();
    assert!(matches!(err, TssError::BadParameters(_)), "{err}");
    // Party 0's nonces while the set names another commitment for it: refused.
    commitments.remove(&PartyId(3));
    let c1 = commitments[&PartyId(1)];
    commitments.insert(PartyId(0), c1);
    let err = sign_share(&keys[0], &key_id, &[0; 32], &commitments, nonces.remove(&0).unwrap()).unwrap_err();
    assert!(matches!(err, TssError::BadParameters(_)), "{err}");
}

#[test]
fn stored_nonces_and_commitments_decode_only_from_their_own_encodings() {
    let keys = dkg::<Secp256k1>(3, 2);
    let (n, c) = commit(&keys[0]).unwrap();
    assert_eq!(Nonces::from_bytes(&n.to_bytes()).unwrap().commitment(), c);
    assert_eq!(Commitment::from_bytes(&c.to_bytes(), PartyId(0)).unwrap(), c);
    assert!(Nonces::from_bytes(&[0xff; 64]).is_err());
    assert!(Nonces::from_bytes(&[1; 63]).is_err());
    assert!(Commitment::from_bytes(&[5; 66], PartyId(0)).is_err());
    assert!(Commitment::from_bytes(&c.to_bytes()[..65], PartyId(0)).is_err());
    assert!(format!("{n:?}").contains("redacted"));
}

#[test]
fn a_signing_set_makes_material_together_and_each_piece_signs_once_after_storage() {
    use sigil_tss::schnorr::{Material, Preprocessing};
    use sigil_tss::{run_in_memory, SessionId};
    let keys = dkg::<Secp256k1>(5, 4);
    let signers = ids(1..5);
    let runs = signers
        .iter()
        .map(|p| Preprocessing::new(SessionId::from_label("nonces"), &keys[p.0 as usize], &signers).unwrap())
        .collect();
    let made = run_in_memory(runs).unwrap();
    let commitments = made[0].1.commitments().clone();
    let key_id = KeyId([3; 32]);
    let message = [4u8; 32];
    let mut shares = Vec::new();
    for (p, material) in made {
        assert_eq!(material.signers(), signers);
        assert_eq!(
            *material.commitments(),
            commitments,
            "party {p} agrees on the set's commitments"
        );
        let stored = material.to_bytes();
        assert!(
            Material::from_bytes(&stored, PartyId(p.0 % 4 + 1)).is_err(),
            "another holder's nonces"
        );
        let material = Material::from_bytes(&stored, p).unwrap();
        shares.push(material.sign(&keys[p.0 as usize], &key_id, &message).unwrap());
    }
    let signature = combine(keys[0].public(), &key_id, &message, &commitments, &shares).unwrap();
    assert!(verifies(&keys, &key_id, &message, &signature));
    // Not a set of exactly t, or without the caller: refused before any nonce is made.
    assert!(Preprocessing::new(SessionId::from_label("n"), &keys[0], &ids(0..5)).is_err());
    assert!(Preprocessing::new(SessionId::from_label("n"), &keys[0], &ids(1..5)).is_err());
}

#[test]
fn a_signer_that_shows_two_commitments_stops_the_set_before_any_holder_keeps_material() {
    use sigil_tss::schnorr::Preprocessing;
    use sigil_tss::{run_in_memory_each, SessionId};
    let keys = dkg::<Secp256k1>(4, 3);
    let signers = ids(0..3);
    let runs = signers
        .iter()
        .map(|p| Preprocessing::new(SessionId::from_label("two"), &keys[p.0 as usize], &signers).unwrap())
        .collect();
    // Party 1 shows party 2 another commitment (a valid one) than it shows party 0.
    let other = commit(&keys[1]).unwrap().1.to_bytes();
    let outcomes = run_in_memory_each(runs, |m| {
        if m.from == PartyId(1) && m.to == PartyId(2) && m.bytes.get(34) == Some(&1) {
            m.bytes.truncate(35);
            m.bytes.extend_from_slice(&other);
        }
        true
    });
    for (id, out) in &outcomes {
        assert!(out.is_err(), "party {id} kept material");
    }
    assert_eq!(outcomes[&PartyId(0)].as_ref().unwrap_err().suspect(), Some(PartyId(2)));
}

#[test]
fn two_corrupt_shares_are_both_named() {
    let keys = dkg::<Secp256k1>(4, 3);
    let signers = ids(0..3);
    let key_id = KeyId([8; 32]);
    let err = schnorr_sign(&keys, &signers, &key_id, &[1; 32], |shares| {
        // Parties 0 and 2 each send another party's share under their own name.
        let (a, b) = (shares[1].to_bytes(), shares[1].to_bytes());
        shares[0] = SchnorrShare::from_bytes(&a, PartyId(0)).unwrap();
        shares[2] = SchnorrShare::from_bytes(&b, PartyId(2)).unwrap();
    })
    .unwrap_err();
    assert_eq!(err.culprits(), vec![PartyId(0), PartyId(2)], "{err}");
}

#[test]
fn zero_nonces_an_id_without_a_frost_identifier_and_a_finished_run_are_refused_without_a_panic() {
    use sigil_tss::schnorr::Preprocessing;
    use sigil_tss::{Outgoing, Protocol, SessionId, Step};
    assert!(Nonces::from_bytes(&[0; 64]).is_err());
    let mut half_zero = [0u8; 64];
    half_zero[63] = 1;
    assert!(Nonces::from_bytes(&half_zero).is_err());
    let keys = dkg::<Secp256k1>(3, 2);
    let (n, c) = commit(&keys[0]).unwrap();
    let mut commitments = BTreeMap::new();
    commitments.insert(PartyId(0), c);
    commitments.insert(PartyId(u32::MAX), c);
    // A party that holds no share (and has no identifier) is refused, not overflowed.
    assert!(sign_share(&keys[0], &KeyId([1; 32]), &[0; 32], &commitments, n).is_err());
    let (_, c1) = commit(&keys[1]).unwrap();
    let mut commitments = BTreeMap::new();
    commitments.insert(PartyId(1), c1);
    commitments.insert(PartyId(u32::MAX), c1);
    assert!(combine(keys[0].public(), &KeyId([1; 32]), &[0; 32], &commitments, &[]).is_err());
    // A run that gave its material says so when asked again.
    let signers = ids(0..2);
    let mut runs = [
        Preprocessing::new(SessionId::from_label("once"), &keys[0], &signers).unwrap(),
        Preprocessing::new(SessionId::from_label("once"), &keys[1], &signers).unwrap(),
    ];
    let mut done = [false, false];
    while done != [true, true] {
        for i in 0..2 {
            if done[i] {
                continue;
            }
            match runs[i].poke().unwrap() {
                Step::Send(Outgoing::ToAll(bytes)) => {
                    let from = runs[i].me();
                    runs[1 - i].handle(from, &bytes).unwrap();
                }
                Step::Send(Outgoing::ToOne(..)) => panic!("no private messages"),
                Step::Wait => {}
                Step::Done(material) => {
                    assert_eq!(material.signers(), signers);
                    done[i] = true;
                }
            }
        }
    }
    let [mut a, mut b] = runs;
    assert!(matches!(a.poke(), Err(TssError::Terminated)));
    assert!(matches!(b.poke(), Err(TssError::Terminated)));
}
