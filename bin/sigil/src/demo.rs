//! `sigil demo`: the whole threshold core end to end, every party in this process. Uses only the
//! threshold core (`sigil-tss`): no network, no other module.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use rand_core::{OsRng, RngCore};
use sha3::{Digest, Keccak256};
use sigil_tss::derive::{checksum_address, derive_public_key, eth_address, token_id, uncompressed, KeyId};
use sigil_tss::ecdsa::{self, Triple};
use sigil_tss::{
    bls, run_in_memory, threshold_for, Bls12381G1, Curve, KeyShare, PartyId, Secp256k1, SessionId, Vss, MAX_PARTIES,
    MIN_PARTIES,
};

/// Options of `sigil demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Number of parties (3 to 31); the threshold is ⌈2n/3⌉.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Message to sign with the PKP (as an EIP-191 personal message).
    #[arg(long, default_value = "hello from a key no one holds")]
    message: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let n = args.nodes;
    if !(MIN_PARTIES..=MAX_PARTIES).contains(&n) {
        bail!("--nodes must be between {MIN_PARTIES} and {MAX_PARTIES}, got {n}");
    }
    let t = threshold_for(n);
    let parties: Vec<PartyId> = (0..n as u32).map(PartyId).collect();
    println!(
        "Sigil threshold core demo: {n} parties in this process, threshold {t} (any {t} can use a key, {} cannot)\n",
        t - 1
    );

    step("1. DKG: ECDSA root key (secp256k1)");
    let ecdsa_keys = timed(|| dkg::<Secp256k1>(&parties, t))?;
    let root = *ecdsa_keys.first().context("DKG returned no shares")?.public_key();
    println!("   root public key  0x{}", hex::encode(&uncompressed(&root)[1..]));
    step("2. DKG: BLS12-381 encryption key");
    let bls_keys = timed(|| dkg::<Bls12381G1>(&parties, t))?;
    let bls_public = bls_keys.first().context("DKG returned no shares")?.public().clone();
    println!(
        "   public key       0x{}",
        hex::encode(group::GroupEncoding::to_bytes(bls_public.public_key()))
    );
    println!("   every party holds one share; each checked its share against the others' commitments\n");

    let mut key_id = [0u8; 32];
    OsRng.fill_bytes(&mut key_id);
    let key_id = KeyId(key_id);
    let pkp = derive_public_key(&root, &key_id);
    let address = eth_address(&pkp);
    step("3. Derive a PKP: P = P_root + h(keyId)·G (no protocol run needed)");
    println!("   keyId            0x{}", hex::encode(key_id.0));
    println!("   public key       0x{}", hex::encode(uncompressed(&pkp)));
    println!("   tokenId          0x{}", hex::encode(token_id(&pkp)));
    println!("   address          {}\n", checksum_address(&address));

    let signers: Vec<PartyId> = parties.iter().copied().take(t).collect();
    step(&format!(
        "4. Presign (offline phase): 2 triples and a presignature among exactly t = {t} parties {} (its signing set)",
        list(&signers)
    ));
    let presignatures = timed(|| -> anyhow::Result<_> {
        let mut t0 = triples(&signers, t, "triple-0")?;
        let mut t1 = triples(&signers, t, "triple-1")?;
        let runs = ecdsa_keys
            .iter()
            .filter(|k| signers.contains(&k.me()))
            .map(|k| {
                let (a, b) = (
                    t0.remove(&k.me()).context("triple")?,
                    t1.remove(&k.me()).context("triple")?,
                );
                Ok(ecdsa::presigning(
                    SessionId::from_label("demo/presign"),
                    k,
                    &signers,
                    a,
                    b,
                )?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(run_in_memory(runs)?)
    })?;

    let hash = eip191_hash(args.message.as_bytes());
    step(&format!(
        "5. Sign \"{}\" (online phase: one share per signer, no interaction)",
        args.message
    ));
    let mut entropy = [0u8; 32];
    OsRng.fill_bytes(&mut entropy);
    let signature = timed(|| -> anyhow::Result<_> {
        let shares = presignatures
            .into_iter()
            .map(|(_, p)| ecdsa::sign_share(p, &root, &key_id, &hash, &entropy))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ecdsa::combine(&pkp, &hash, t, &shares)?)
    })?;
    println!("   r                0x{}", hex::encode(signature.r));
    println!("   s                0x{}", hex::encode(signature.s));
    println!("   v (recovery id)  {}", signature.recovery_id);
    ensure!(signature.verify(&pkp, &hash), "the signature does not verify");
    let recovered = signature.recover_address(&hash)?;
    ensure!(
        recovered == address,
        "recovered {} instead of the PKP address",
        checksum_address(&recovered)
    );
    println!(
        "   verified with k256; ecrecover gives {} = the PKP address\n",
        checksum_address(&recovered)
    );

    step("6. Encrypt to the network key, decrypt with t BLS signature shares");
    let identity = b"sigil-acc://demo";
    let plaintext = b"only a threshold of nodes can open this";
    let ciphertext = bls::encrypt(bls_public.public_key(), identity, plaintext)?;
    let opened = timed(|| -> anyhow::Result<_> {
        let shares = bls_keys
            .iter()
            .skip(n - t)
            .map(|k| bls::sign_share(k, identity))
            .collect::<Result<Vec<_>, _>>()?;
        let signature = bls::combine(&bls_public, &shares, identity)?;
        Ok(bls::decrypt(&signature, identity, &ciphertext)?)
    })?;
    ensure!(opened == plaintext.as_slice(), "decryption returned other bytes");
    println!(
        "   {} bytes of ciphertext decrypted by parties {}: \"{}\"",
        ciphertext.len(),
        list(parties.get(n - t..).unwrap_or_default()),
        String::from_utf8_lossy(&opened)
    );
    println!("\nDone: no process ever combined the private key; the signature and the decryption came from shares.");
    Ok(ExitCode::SUCCESS)
}

fn dkg<C: Curve>(parties: &[PartyId], t: usize) -> anyhow::Result<Vec<KeyShare<C>>> {
    let runs = parties
        .iter()
        .map(|me| Vss::<C>::dkg(SessionId::from_label(&format!("demo/dkg/{}", C::NAME)), *me, parties, t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(run_in_memory(runs)?
        .into_iter()
        .filter_map(|(_, share)| share)
        .collect())
}

fn triples(parties: &[PartyId], t: usize, label: &str) -> anyhow::Result<BTreeMap<PartyId, Triple>> {
    let session = SessionId::from_label(&format!("demo/{label}"));
    let runs = parties
        .iter()
        .map(|me| ecdsa::triple_generation(session, *me, parties, t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(run_in_memory(runs)?.into_iter().collect())
}

/// keccak256("\x19Ethereum Signed Message:\n" + len + message), as `personal_sign` hashes.
fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(format!("\x19Ethereum Signed Message:\n{}", message.len()));
    h.update(message);
    h.finalize().into()
}

fn step(what: &str) {
    println!("{what}");
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    println!("   ({} ms)", start.elapsed().as_millis());
    out
}

fn list(parties: &[PartyId]) -> String {
    parties.iter().map(|p| p.0.to_string()).collect::<Vec<_>>().join(", ")
}
