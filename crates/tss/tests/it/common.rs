//! Helpers shared by the in-memory tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sigil_tss::derive::{derive_public_key, KeyId};
use sigil_tss::ecdsa::{self, EcdsaSignature, Presignature, Triple};
use sigil_tss::k256::ProjectivePoint;
use sigil_tss::{run_in_memory, Curve, KeyShare, PartyId, PublicKeyPackage, Secp256k1, SessionId, TssError, Vss};

/// The (n, t) pairs the issue asks every protocol to run with.
pub const SIZES: [(usize, usize); 3] = [(3, 2), (5, 4), (10, 7)];

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn ids(range: std::ops::Range<u32>) -> Vec<PartyId> {
    range.map(PartyId).collect()
}

pub fn session(label: &str) -> SessionId {
    SessionId::from_label(label)
}

pub fn dkg<C: Curve>(n: usize, t: usize) -> Vec<KeyShare<C>> {
    let parties = ids(0..n as u32);
    let runs = parties
        .iter()
        .map(|me| Vss::<C>::dkg(session("dkg"), *me, &parties, t).expect("valid parameters"))
        .collect();
    shares(run_in_memory(runs).expect("dkg succeeds"))
}

pub fn shares<C: Curve>(outputs: Vec<(PartyId, Option<KeyShare<C>>)>) -> Vec<KeyShare<C>> {
    outputs.into_iter().filter_map(|(_, s)| s).collect()
}

pub fn reshare<C: Curve>(
    old: &[KeyShare<C>],
    dealers: &[PartyId],
    new_parties: &[PartyId],
    new_t: usize,
) -> Vec<KeyShare<C>> {
    let package = old[0].public().clone();
    let by_id: BTreeMap<PartyId, &KeyShare<C>> = old.iter().map(|s| (s.me(), s)).collect();
    let mut everyone: Vec<PartyId> = dealers.iter().chain(new_parties).copied().collect();
    everyone.sort();
    everyone.dedup();
    let runs = everyone
        .iter()
        .map(|me| {
            let mine = dealers.contains(me).then(|| by_id[me]);
            Vss::reshare(session("reshare"), *me, &package, dealers, mine, new_parties, new_t)
                .expect("valid parameters")
        })
        .collect();
    shares(run_in_memory(runs).expect("reshare succeeds"))
}

/// Checks what every share of one key must satisfy; returns the common public package.
pub fn check_key<C: Curve>(shares: &[KeyShare<C>], n: usize, t: usize) -> PublicKeyPackage<C> {
    assert_eq!(shares.len(), n);
    let package = shares[0].public().clone();
    assert_eq!(package.threshold(), t);
    assert_eq!(package.parties().len(), n);
    for s in shares {
        assert_eq!(*s.public(), package, "party {} disagrees on the public package", s.me());
        // Rebuilding checks secret·G against the public share.
        KeyShare::from_parts(s.me(), *s.secret(), package.clone()).expect("share matches its public share");
    }
    let parties = package.parties();
    assert_eq!(package.interpolate(&parties[..t]).unwrap(), *package.public_key());
    assert_eq!(package.interpolate(&parties[n - t..]).unwrap(), *package.public_key());
    assert_ne!(
        package.interpolate(&parties[..t - 1]).unwrap(),
        *package.public_key(),
        "t−1 shares must not give the key"
    );
    package
}

pub fn triples(parties: &[PartyId], t: usize, label: &str) -> BTreeMap<PartyId, Triple> {
    let runs = parties
        .iter()
        .map(|me| ecdsa::triple_generation(session(label), *me, parties, t).unwrap())
        .collect();
    run_in_memory(runs)
        .expect("triple generation succeeds")
        .into_iter()
        .collect()
}

/// Each signer's presigning run over two fresh triples among `signers` (the signing set of exactly t).
pub fn presign_runs(keys: &[KeyShare<Secp256k1>], signers: &[PartyId], label: &str) -> Vec<ecdsa::Presigning> {
    let t = keys[0].threshold();
    let mut t0 = triples(signers, t, &format!("{label}/t0"));
    let mut t1 = triples(signers, t, &format!("{label}/t1"));
    keys.iter()
        .filter(|k| signers.contains(&k.me()))
        .map(|k| {
            ecdsa::presigning(
                session(label),
                k,
                signers,
                t0.remove(&k.me()).unwrap(),
                t1.remove(&k.me()).unwrap(),
            )
            .unwrap()
        })
        .collect()
}

/// Two fresh triples among `signers` (the signing set of exactly t), then a presignature among them.
pub fn presignatures(keys: &[KeyShare<Secp256k1>], signers: &[PartyId], label: &str) -> Vec<Presignature> {
    run_in_memory(presign_runs(keys, signers, label))
        .expect("presigning succeeds")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

pub fn sign_shares(
    presigs: Vec<Presignature>,
    root: &ProjectivePoint,
    key_id: &KeyId,
    hash: &[u8; 32],
) -> Vec<ecdsa::SignatureShare> {
    let entropy = [7u8; 32];
    presigs
        .into_iter()
        .map(|p| ecdsa::sign_share(p, root, key_id, hash, &entropy).unwrap())
        .collect()
}

pub fn sign(
    keys: &[KeyShare<Secp256k1>],
    signers: &[PartyId],
    key_id: &KeyId,
    hash: &[u8; 32],
) -> Result<EcdsaSignature, TssError> {
    let root = *keys[0].public_key();
    let shares = sign_shares(presignatures(keys, signers, "sign"), &root, key_id, hash);
    ecdsa::combine(&derive_public_key(&root, key_id), hash, keys[0].threshold(), &shares)
}

pub fn random_bytes<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

/// A random subset of `k` elements, in order.
pub fn subset(rng: &mut ChaCha20Rng, all: &[PartyId], k: usize) -> Vec<PartyId> {
    let mut pool = all.to_vec();
    let mut out = Vec::new();
    while out.len() < k {
        let i = (rng.next_u32() as usize) % pool.len();
        out.push(pool.remove(i));
    }
    out.sort();
    out
}

/// Runs all parties, delivering pending messages in a random (seeded) order and re-delivering about
/// one in four later as a duplicate. Every honest message must be accepted.
pub fn run_shuffled<P: sigil_tss::Protocol>(parties: Vec<P>, seed: u64) -> Vec<(PartyId, P::Output)> {
    use sigil_tss::{InFlight, Outgoing, Step};
    let mut rng = rng(seed);
    let mut by_id: BTreeMap<PartyId, P> = parties.into_iter().map(|p| (p.me(), p)).collect();
    let ids: Vec<PartyId> = by_id.keys().copied().collect();
    let mut outputs = BTreeMap::new();
    let mut pool: Vec<InFlight> = Vec::new();
    loop {
        for id in &ids {
            while !outputs.contains_key(id) {
                match by_id.get_mut(id).unwrap().poke().expect("honest run") {
                    Step::Wait => break,
                    Step::Done(out) => {
                        outputs.insert(*id, out);
                    }
                    Step::Send(Outgoing::ToAll(bytes)) => {
                        for to in ids.iter().filter(|to| *to != id) {
                            pool.push(InFlight {
                                from: *id,
                                to: *to,
                                bytes: bytes.clone(),
                            });
                        }
                    }
                    Step::Send(Outgoing::ToOne(to, bytes)) => pool.push(InFlight { from: *id, to, bytes }),
                }
            }
        }
        if outputs.len() == ids.len() {
            return outputs.into_iter().collect();
        }
        assert!(!pool.is_empty(), "stalled with nothing in flight");
        let msg = pool.swap_remove(rng.next_u32() as usize % pool.len());
        if rng.next_u32() % 4 == 0 {
            pool.push(msg.clone());
        }
        if !outputs.contains_key(&msg.to) {
            by_id
                .get_mut(&msg.to)
                .unwrap()
                .handle(msg.from, &msg.bytes)
                .expect("an honest message, however late or repeated, is accepted");
        }
    }
}
