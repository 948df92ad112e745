use sigil_tss::bls::{self, BlsSignatureShare};
use sigil_tss::{Bls12381G1, KeyShare, PartyId, TssError};

use crate::common::*;

const IDENTITY: &[u8] = b"sigil-acc://conditions/data";

fn sign_all(keys: &[KeyShare<Bls12381G1>], identity: &[u8]) -> Vec<BlsSignatureShare> {
    keys.iter().map(|k| bls::sign_share(k, identity).unwrap()).collect()
}

#[test]
fn every_size_signs_verifies_combines_and_decrypts() {
    for (n, t) in SIZES {
        let keys = dkg::<Bls12381G1>(n, t);
        let package = keys[0].public();
        let ciphertext = bls::encrypt(package.public_key(), IDENTITY, b"secret payload").unwrap();
        let shares = sign_all(&keys, IDENTITY);
        for share in &shares {
            bls::verify_share(package, share, IDENTITY).unwrap();
        }
        // Any t shares (here: the last t) combine into the one network signature.
        let signature = bls::combine(package, &shares[n - t..], IDENTITY).unwrap();
        assert_eq!(signature, bls::combine(package, &shares[..t], IDENTITY).unwrap());
        assert_eq!(
            bls::decrypt(&signature, IDENTITY, &ciphertext).unwrap(),
            b"secret payload"
        );
        assert!(matches!(
            bls::combine(package, &shares[..t - 1], IDENTITY),
            Err(TssError::NotEnoughShares { .. })
        ));
    }
}

#[test]
fn a_tampered_share_is_rejected_and_its_sender_named() {
    let keys = dkg::<Bls12381G1>(5, 4);
    let package = keys[0].public();
    let mut shares = sign_all(&keys, IDENTITY);
    // Node 2 answers with a valid share for another identity.
    shares[2] = bls::sign_share(&keys[2], b"another identity").unwrap();
    let err = bls::verify_share(package, &shares[2], IDENTITY).unwrap_err();
    assert_eq!(err.culprit(), Some(PartyId(2)));
    assert_eq!(
        bls::combine(package, &shares, IDENTITY).unwrap_err().culprit(),
        Some(PartyId(2))
    );
    // A share relabelled as another node's is caught too.
    let mut relabelled = shares[0].clone();
    relabelled.party = PartyId(1);
    assert_eq!(
        bls::verify_share(package, &relabelled, IDENTITY).unwrap_err().culprit(),
        Some(PartyId(1))
    );
    // The client still decrypts from the honest four, and learns who misbehaved.
    let ciphertext = bls::encrypt(package.public_key(), IDENTITY, b"x").unwrap();
    let (signature, bad) = bls::combine_valid(package, &shares, IDENTITY).unwrap();
    assert_eq!(
        bad.iter().map(|e| e.culprit()).collect::<Vec<_>>(),
        vec![Some(PartyId(2))]
    );
    assert_eq!(bls::decrypt(&signature, IDENTITY, &ciphertext).unwrap(), b"x");
}

#[test]
fn garbage_share_bytes_name_the_sender() {
    for bytes in [&[][..], &[1, 2, 3][..], &[0xff; 200][..]] {
        assert_eq!(
            BlsSignatureShare::from_bytes(PartyId(4), bytes).unwrap_err().culprit(),
            Some(PartyId(4))
        );
    }
}

#[test]
fn hybrid_encryption_handles_any_size_and_rejects_tampering() {
    let keys = dkg::<Bls12381G1>(3, 2);
    let package = keys[0].public();
    let signature = bls::combine(package, &sign_all(&keys, IDENTITY), IDENTITY).unwrap();
    let mut rng = rng(1);
    for size in [0usize, 1, 4096, 1 << 20] {
        let mut data = vec![0u8; size];
        rand_chacha::rand_core::RngCore::fill_bytes(&mut rng, &mut data);
        let ciphertext = bls::encrypt(package.public_key(), IDENTITY, &data).unwrap();
        assert_eq!(bls::decrypt(&signature, IDENTITY, &ciphertext).unwrap(), data);
        // Flip one byte in each region: version, length, key capsule, nonce, body, tag.
        let len = ciphertext.len();
        for at in [0, 2, 10, len - 30, len - 17, len - 1] {
            let mut bad = ciphertext.clone();
            bad[at] ^= 0x40;
            assert!(
                matches!(bls::decrypt(&signature, IDENTITY, &bad), Err(TssError::Decryption(_))),
                "flip at {at} of {len}"
            );
        }
        assert!(matches!(
            bls::decrypt(&signature, IDENTITY, &ciphertext[..len - 1]),
            Err(TssError::Decryption(_))
        ));
    }
    // The signature over one identity opens nothing encrypted to another.
    let other = bls::encrypt(package.public_key(), b"other", b"data").unwrap();
    assert!(matches!(
        bls::decrypt(&signature, b"other", &other),
        Err(TssError::Decryption(_))
    ));
}

#[test]
fn a_share_under_another_scheme_is_refused_and_named() {
    use sigil_tss::blsful::{Bls12381G2Impl, SecretKeyShare, SignatureSchemes};
    let keys = dkg::<Bls12381G1>(3, 2);
    let x = sigil_tss::blsful::inner_types::Scalar::from(keys[1].me().x());
    let basic = SecretKeyShare::<Bls12381G2Impl>((x, *keys[1].secret()).into())
        .sign(SignatureSchemes::Basic, IDENTITY)
        .unwrap();
    let bytes = Vec::try_from(&basic).unwrap();
    let err = BlsSignatureShare::from_bytes(PartyId(1), &bytes).unwrap_err();
    assert_eq!(err.culprit(), Some(PartyId(1)), "{err}");
}

#[test]
fn an_empty_key_capsule_is_an_error_not_a_crash() {
    use sigil_tss::blsful::{Bls12381G2Impl, TimeCryptCiphertext};
    let keys = dkg::<Bls12381G1>(3, 2);
    let package = keys[0].public();
    let signature = bls::combine(package, &sign_all(&keys, IDENTITY), IDENTITY).unwrap();
    let ciphertext = bls::encrypt(package.public_key(), IDENTITY, b"data").unwrap();
    let len = u32::from_be_bytes(ciphertext[1..5].try_into().unwrap()) as usize;
    let mut capsule = TimeCryptCiphertext::<Bls12381G2Impl>::try_from(&ciphertext[5..5 + len]).unwrap();
    capsule.w.clear();
    let capsule = Vec::try_from(&capsule).unwrap();
    let mut forged = vec![1u8];
    forged.extend_from_slice(&(capsule.len() as u32).to_be_bytes());
    forged.extend_from_slice(&capsule);
    forged.extend_from_slice(&ciphertext[5 + len..]);
    assert!(matches!(
        bls::decrypt(&signature, IDENTITY, &forged),
        Err(TssError::Decryption(_))
    ));
}

#[test]
fn open_checks_shares_only_when_the_combination_fails() {
    let keys = dkg::<Bls12381G1>(5, 4);
    let package = keys[0].public();
    let ciphertext = bls::encrypt(package.public_key(), IDENTITY, b"opened").unwrap();
    let mut shares = sign_all(&keys, IDENTITY);

    // All good: opened, nobody named.
    let (plaintext, bad) = bls::open(package, &shares, IDENTITY, &ciphertext);
    assert_eq!(plaintext.unwrap().as_slice(), b"opened");
    assert!(bad.is_empty());

    // Node 1 sends a share for another identity: named, and the other four still open it.
    shares[1] = bls::sign_share(&keys[1], b"another identity").unwrap();
    let (plaintext, bad) = bls::open(package, &shares, IDENTITY, &ciphertext);
    assert_eq!(plaintext.unwrap().as_slice(), b"opened");
    assert_eq!(
        bad.iter().map(|e| e.culprit()).collect::<Vec<_>>(),
        vec![Some(PartyId(1))]
    );

    // With only four shares, one of them bad: not enough, and the bad one is named.
    let (plaintext, bad) = bls::open(package, &shares[..4], IDENTITY, &ciphertext);
    assert!(matches!(plaintext, Err(TssError::NotEnoughShares { have: 3, need: 4 })));
    assert_eq!(bad.len(), 1);

    // Good shares and a tampered ciphertext: a decryption error, nobody named, no plaintext.
    let good = sign_all(&keys, IDENTITY);
    let mut tampered = ciphertext.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let (plaintext, bad) = bls::open(package, &good, IDENTITY, &tampered);
    assert!(matches!(plaintext, Err(TssError::Decryption(_))), "{plaintext:?}");
    assert!(bad.is_empty());

    // Fewer than t shares.
    let (plaintext, _) = bls::open(package, &good[..3], IDENTITY, &ciphertext);
    assert!(matches!(plaintext, Err(TssError::NotEnoughShares { have: 3, need: 4 })));
}

#[test]
fn the_fast_share_is_blsfuls_share() {
    let keys = dkg::<Bls12381G1>(4, 3);
    for identity in [&b""[..], IDENTITY, &[0xff; 300][..]] {
        for key in &keys {
            assert_eq!(
                bls::sign_share(key, identity).unwrap(),
                bls::sign_share_reference(key, identity).unwrap()
            );
        }
    }
}

#[test]
fn a_combined_signature_verifies_from_its_bytes_and_only_for_its_identity() {
    let keys = dkg::<Bls12381G1>(4, 3);
    let package = keys[0].public();
    let signature = bls::combine(package, &sign_all(&keys[..3], IDENTITY), IDENTITY).unwrap();
    let bytes = bls::signature_bytes(&signature);
    bls::verify_signature(package, &bytes, IDENTITY).unwrap();
    assert!(bls::verify_signature(package, &bytes, b"sigil-acc://other/data").is_err());
    let mut flipped = bytes;
    flipped[95] ^= 1;
    assert!(bls::verify_signature(package, &flipped, IDENTITY).is_err());
    assert!(bls::verify_signature(package, &bytes[..95], IDENTITY).is_err());
    // one node's share alone is not the network's signature
    let share = bls::sign_share(&keys[0], IDENTITY).unwrap().to_bytes();
    assert!(bls::verify_signature(package, &share, IDENTITY).is_err());
}
