//! BLS12-381 threshold signatures over identities and identity-based encryption to the network key
//! (blsful, `Bls12381G2Impl`: public keys in G1, signatures in G2, proof-of-possession scheme).
//!
//! Encrypting to identity `id` needs only the network public key. Decrypting needs the BLS signature
//! over `id`, which exists only once t nodes released their signature shares — so a node releasing its
//! share for `id` is what "allowing decryption" means. [`combine`] verifies shares one by one against
//! each node's public key share before combining them (blsful's combination does not check them);
//! [`open`] combines first and verifies one by one only when the combination does not open the
//! ciphertext, which is as safe (a wrong combination never opens it) and four pairings cheaper.
//!
//! Payloads of any size use a hybrid: the IBE ciphertext protects a fresh 256-bit key, and
//! ChaCha20-Poly1305 protects the data under that key with the identity as associated data.
//!
//! ```text
//! ciphertext = version:u8 (=1) | ibe_len:u32 | ibe (blsful TimeCryptCiphertext) | nonce:12 | aead
//! ```

use std::collections::BTreeMap;

use blsful::inner_types::{G1Projective, G2Affine, G2Projective, Scalar};
use blsful::{
    Bls12381G2Impl, InnerPointShareG1, InnerPointShareG2, PublicKey, PublicKeyShare, SecretKeyShare, Signature,
    SignatureSchemes, TimeCryptCiphertext,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::curve::scalar_of;
use crate::{Bls12381G1, KeyShare, PartyId, PublicKeyPackage, TssError};

const SCHEME: SignatureSchemes = SignatureSchemes::ProofOfPossession;
const CIPHERTEXT_VERSION: u8 = 1;
const AEAD_DOMAIN: &[u8] = b"sigil/hybrid-ibe/v1";

/// The network's BLS public key in blsful's type.
pub fn public_key(package: &PublicKeyPackage<Bls12381G1>) -> PublicKey<Bls12381G2Impl> {
    PublicKey(*package.public_key())
}

/// One node's BLS signature share over an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlsSignatureShare {
    /// The node that made it.
    pub party: PartyId,
    share: blsful::SignatureShare<Bls12381G2Impl>,
}

impl BlsSignatureShare {
    /// Encoded for the wire (blsful's encoding, which embeds the share identifier).
    pub fn to_bytes(&self) -> Vec<u8> {
        Vec::try_from(&self.share).unwrap_or_default()
    }

    /// Decodes a share that node `party` sent.
    pub fn from_bytes(party: PartyId, bytes: &[u8]) -> Result<Self, TssError> {
        let share = blsful::SignatureShare::<Bls12381G2Impl>::try_from(bytes)
            .map_err(|e| TssError::malformed(party, format!("BLS signature share: {e}")))?;
        if !matches!(share, blsful::SignatureShare::ProofOfPossession(_)) {
            return Err(TssError::malformed(
                party,
                "BLS signature share for another signature scheme",
            ));
        }
        let share = Self { party, share };
        // blsful reads a prefix and ignores what follows; one share has one encoding.
        if share.to_bytes() != bytes {
            return Err(TssError::malformed(party, "BLS signature share: trailing bytes"));
        }
        Ok(share)
    }
}

/// blsful's signature DST for `Bls12381G2Impl` under the proof-of-possession scheme.
const SIG_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// This node's signature share over `identity`: `H(identity)^x_i`, the value blsful's
/// `SecretKeyShare::sign` computes, computed by blst (hash to G2 and the multiplication in
/// assembly, several times faster than blsful's pure-Rust curve code) and wrapped in blsful's type.
pub fn sign_share(key: &KeyShare<Bls12381G1>, identity: &[u8]) -> Result<BlsSignatureShare, TssError> {
    let secret = Zeroizing::new(key.secret().to_be_bytes());
    let signer = blst::min_pk::SecretKey::from_bytes(secret.as_ref())
        .map_err(|e| TssError::BadParameters(format!("BLS key share: {e:?}")))?;
    let compressed = signer.sign(identity, SIG_DST, &[]).compress();
    let point = Option::<G2Affine>::from(G2Affine::from_compressed_unchecked(&compressed))
        .ok_or_else(|| TssError::BadParameters("BLS signing produced no point".into()))?;
    let share = blsful::SignatureShare::<Bls12381G2Impl>::ProofOfPossession(InnerPointShareG2(
        (scalar_of::<Bls12381G1>(key.me().x()), G2Projective::from(point)).into(),
    ));
    Ok(BlsSignatureShare { party: key.me(), share })
}

/// [`sign_share`] through blsful alone, to check that both compute the same share.
#[doc(hidden)]
pub fn sign_share_reference(key: &KeyShare<Bls12381G1>, identity: &[u8]) -> Result<BlsSignatureShare, TssError> {
    let mut secret = SecretKeyShare::<Bls12381G2Impl>((scalar_of::<Bls12381G1>(key.me().x()), *key.secret()).into());
    let share = secret.sign(SCHEME, identity);
    secret.0.zeroize();
    let share = share.map_err(|e| TssError::BadParameters(format!("BLS signing: {e}")))?;
    Ok(BlsSignatureShare { party: key.me(), share })
}

/// Checks one share against its sender's public key share. Errors name the sender.
pub fn verify_share(
    package: &PublicKeyPackage<Bls12381G1>,
    share: &BlsSignatureShare,
    identity: &[u8],
) -> Result<(), TssError> {
    let culprit = share.party;
    // A share under another scheme could verify on its own and still break the combination.
    if !matches!(share.share, blsful::SignatureShare::ProofOfPossession(_)) {
        return Err(TssError::InvalidShare {
            culprit,
            what: "BLS signature share (another signature scheme)".into(),
        });
    }
    let public_share = package.public_share(culprit).ok_or_else(|| TssError::InvalidShare {
        culprit,
        what: "BLS signature share (sender holds no key share)".into(),
    })?;
    let pks = PublicKeyShare::<Bls12381G2Impl>(InnerPointShareG1(
        (scalar_of::<Bls12381G1>(culprit.x()), *public_share).into(),
    ));
    pks.verify(&share.share, identity).map_err(|_| TssError::InvalidShare {
        culprit,
        what: "BLS signature share (does not verify)".into(),
    })
}

/// Verifies each share, then combines a threshold of valid ones into the signature over `identity`
/// and checks it against the network key. A bad share is an error naming its sender; use
/// [`combine_valid`] to skip bad shares instead.
pub fn combine(
    package: &PublicKeyPackage<Bls12381G1>,
    shares: &[BlsSignatureShare],
    identity: &[u8],
) -> Result<Signature<Bls12381G2Impl>, TssError> {
    for share in shares {
        verify_share(package, share, identity)?;
    }
    combine_verified(package, shares, identity)
}

/// Like [`combine`], but drops invalid shares and reports their senders next to the signature, so a
/// client can still decrypt when one node misbehaves and say which one did.
pub fn combine_valid(
    package: &PublicKeyPackage<Bls12381G1>,
    shares: &[BlsSignatureShare],
    identity: &[u8],
) -> Result<(Signature<Bls12381G2Impl>, Vec<TssError>), TssError> {
    let (good, bad): (Vec<_>, Vec<_>) = shares
        .iter()
        .map(|s| (s, verify_share(package, s, identity)))
        .partition(|(_, r)| r.is_ok());
    let good: Vec<BlsSignatureShare> = good.into_iter().map(|(s, _)| s.clone()).collect();
    let bad = bad.into_iter().filter_map(|(_, r)| r.err()).collect();
    Ok((combine_verified(package, &good, identity)?, bad))
}

/// Decrypts `ciphertext` with signature shares over `identity`, checking as little as it can:
/// the first `t` shares are combined unchecked and tried — a wrong combination cannot open the
/// ciphertext (the data key would be wrong and the AEAD refuses it), so a success proves them.
/// Only when that fails is every share verified one by one; the invalid ones are returned next to
/// the outcome (naming their senders), and the valid ones are tried again. With every share valid
/// and still no plaintext, the ciphertext itself is bad: a `Decryption` error.
pub fn open(
    package: &PublicKeyPackage<Bls12381G1>,
    shares: &[BlsSignatureShare],
    identity: &[u8],
    ciphertext: &[u8],
) -> (Result<Zeroizing<Vec<u8>>, TssError>, Vec<TssError>) {
    let need = package.threshold();
    let unique = unique_shares(shares);
    if unique.len() < need {
        let have = unique.len();
        return (Err(TssError::NotEnoughShares { have, need }), Vec::new());
    }
    let first: Vec<BlsSignatureShare> = unique.iter().take(need).map(|s| (*s).clone()).collect();
    if let Ok(signature) = combine_unchecked(&first) {
        if let Ok(plaintext) = decrypt(&signature, identity, ciphertext) {
            return (Ok(Zeroizing::new(plaintext)), Vec::new());
        }
    }
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for share in unique {
        match verify_share(package, share, identity) {
            Ok(()) => good.push(share.clone()),
            Err(e) => bad.push(e),
        }
    }
    if good.len() < need {
        let have = good.len();
        return (Err(TssError::NotEnoughShares { have, need }), bad);
    }
    let outcome = good
        .get(..need)
        .ok_or(TssError::NotEnoughShares { have: good.len(), need })
        .and_then(combine_unchecked)
        .and_then(|signature| decrypt(&signature, identity, ciphertext))
        .map(Zeroizing::new);
    (outcome, bad)
}

/// One share per sender (the first), in sender order.
fn unique_shares(shares: &[BlsSignatureShare]) -> Vec<&BlsSignatureShare> {
    let mut unique: BTreeMap<PartyId, &BlsSignatureShare> = BTreeMap::new();
    for share in shares {
        unique.entry(share.party).or_insert(share);
    }
    unique.into_values().collect()
}

/// Lagrange-combines shares (one per sender) at zero without checking anything: one
/// multi-exponentiation in blst (several times faster than a multiplication per share in
/// blsful's pure-Rust curve code); the points and coefficients are public.
fn combine_unchecked(shares: &[BlsSignatureShare]) -> Result<Signature<Bls12381G2Impl>, TssError> {
    use blst::MultiPoint;
    let failed = |reason: &str| TssError::Protocol {
        suspect: None,
        reason: format!("BLS combine: {reason}"),
    };
    let xs: Vec<Scalar> = shares.iter().map(|s| scalar_of::<Bls12381G1>(s.party.x())).collect();
    let mut scalars = Vec::with_capacity(32 * xs.len());
    for (i, xi) in xs.iter().enumerate() {
        let (mut numerator, mut denominator) = (Scalar::ONE, Scalar::ONE);
        for (j, xj) in xs.iter().enumerate() {
            if i != j {
                numerator *= xj;
                denominator *= *xj - xi;
            }
        }
        let inverse =
            Option::<Scalar>::from(denominator.invert()).ok_or_else(|| failed("two shares from one sender"))?;
        scalars.extend_from_slice(&(numerator * inverse).to_le_bytes());
    }
    let points = shares
        .iter()
        .map(|s| {
            let point = match s.share {
                blsful::SignatureShare::ProofOfPossession(share)
                | blsful::SignatureShare::Basic(share)
                | blsful::SignatureShare::MessageAugmentation(share) => share.0.value.0,
            };
            let compressed = G2Affine::from(point).to_compressed();
            blst::min_pk::Signature::uncompress(&compressed).map_err(|e| failed(&format!("share point: {e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let combined = points.mult(&scalars, 255).to_signature().compress();
    let point = Option::<G2Affine>::from(G2Affine::from_compressed_unchecked(&combined))
        .ok_or_else(|| failed("the combination is not a point"))?;
    Ok(Signature::ProofOfPossession(G2Projective::from(point)))
}

/// Combines the first threshold of distinct shares into the signature over `identity` and checks
/// only the result against the network key: one pairing check, not one per share. With shares
/// not checked one by one (with [`verify_share`]), a bad one makes this fail (`SignatureInvalid`)
/// and the caller checks them singly to find and drop it.
pub fn combine_verified(
    package: &PublicKeyPackage<Bls12381G1>,
    shares: &[BlsSignatureShare],
    identity: &[u8],
) -> Result<Signature<Bls12381G2Impl>, TssError> {
    let unique = unique_shares(shares);
    let need = package.threshold();
    if unique.len() < need {
        return Err(TssError::NotEnoughShares {
            have: unique.len(),
            need,
        });
    }
    let chosen: Vec<BlsSignatureShare> = unique.into_iter().take(need).cloned().collect();
    let signature = combine_unchecked(&chosen)?;
    signature
        .verify(&public_key(package), identity)
        .map_err(|_| TssError::SignatureInvalid)?;
    Ok(signature)
}

/// A combined signature's encoding: its G2 point, compressed (96 bytes).
pub fn signature_bytes(signature: &Signature<Bls12381G2Impl>) -> [u8; 96] {
    let point = match signature {
        Signature::Basic(p) | Signature::MessageAugmentation(p) | Signature::ProofOfPossession(p) => *p,
    };
    G2Affine::from(point).to_compressed()
}

/// Checks a combined signature (as [`signature_bytes`] encodes it) over `identity` against the
/// network key: what a node does with a capability the network signed.
pub fn verify_signature(
    package: &PublicKeyPackage<Bls12381G1>,
    signature: &[u8],
    identity: &[u8],
) -> Result<(), TssError> {
    let bytes: [u8; 96] = signature.try_into().map_err(|_| TssError::SignatureInvalid)?;
    let point = Option::<G2Affine>::from(G2Affine::from_compressed(&bytes)).ok_or(TssError::SignatureInvalid)?;
    Signature::<Bls12381G2Impl>::ProofOfPossession(G2Projective::from(point))
        .verify(&public_key(package), identity)
        .map_err(|_| TssError::SignatureInvalid)
}

/// Encrypts `plaintext` of any size so that only the holder of the network signature over `identity`
/// can read it.
pub fn encrypt(network_key: &G1Projective, identity: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, TssError> {
    let mut data_key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(data_key.as_mut());
    let ibe = PublicKey::<Bls12381G2Impl>(*network_key)
        .encrypt_time_lock(SCHEME, data_key.as_ref(), identity)
        .map_err(|e| TssError::BadParameters(format!("identity encryption: {e}")))?;
    let ibe = Vec::try_from(&ibe).map_err(|e| TssError::BadParameters(format!("ciphertext encoding: {e}")))?;
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let aad = aad(identity);
    let mut key = Key::from(*data_key);
    let sealed = ChaCha20Poly1305::new(&key)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| TssError::BadParameters("payload too large".into()));
    key.zeroize();
    let sealed = sealed?;
    let ibe_len = u32::try_from(ibe.len()).map_err(|_| TssError::BadParameters("ciphertext too large".into()))?;
    let mut out = Vec::with_capacity(1 + 4 + ibe.len() + 12 + sealed.len());
    out.push(CIPHERTEXT_VERSION);
    out.extend_from_slice(&ibe_len.to_be_bytes());
    out.extend_from_slice(&ibe);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts with the combined signature over `identity`. A tampered ciphertext, another identity or
/// a wrong signature is an error, never garbage.
pub fn decrypt(signature: &Signature<Bls12381G2Impl>, identity: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, TssError> {
    let bad = |what: &str| TssError::Decryption(what.to_string());
    let (version, rest) = ciphertext.split_first().ok_or_else(|| bad("empty ciphertext"))?;
    if *version != CIPHERTEXT_VERSION {
        return Err(bad(&format!("unknown ciphertext version {version}")));
    }
    let (len, rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated ciphertext"))?;
    let len = u32::from_be_bytes(len.try_into().map_err(|_| bad("truncated ciphertext"))?) as usize;
    let (ibe, rest) = rest.split_at_checked(len).ok_or_else(|| bad("truncated ciphertext"))?;
    let (nonce, sealed) = rest.split_at_checked(12).ok_or_else(|| bad("truncated ciphertext"))?;
    let mut nonce_bytes = [0u8; 12];
    nonce_bytes.copy_from_slice(nonce);
    let ibe = TimeCryptCiphertext::<Bls12381G2Impl>::try_from(ibe).map_err(|_| bad("malformed key capsule"))?;
    // Our capsules hold a 32-byte key (plus a length prefix). Checking first also keeps blsful's own
    // debug assertion (a keystream of all zeros, certain for an empty body) away from untrusted input.
    if ibe.w.len() < 32 || ibe.scheme != SCHEME {
        return Err(bad("malformed key capsule"));
    }
    let data_key: Option<Vec<u8>> = ibe.decrypt(signature).into();
    let data_key = Zeroizing::new(
        data_key.ok_or_else(|| bad("the key does not open this ciphertext (tampered, or another identity)"))?,
    );
    if data_key.len() != 32 {
        return Err(bad("key capsule holds no data key"));
    }
    let aad = aad(identity);
    let mut key = Key::default();
    key.copy_from_slice(&data_key);
    let result = ChaCha20Poly1305::new(&key)
        .decrypt(&Nonce::from(nonce_bytes), Payload { msg: sealed, aad: &aad })
        .map_err(|_| bad("authentication failed: the ciphertext was altered or is for another identity"));
    key.zeroize();
    result
}

fn aad(identity: &[u8]) -> Vec<u8> {
    [AEAD_DOMAIN, identity].concat()
}

/// Decodes a BLS public key share from its compressed bytes (48 bytes).
pub fn decode_g1(bytes: &[u8]) -> Option<G1Projective> {
    crate::curve::decode_point::<Bls12381G1>(bytes)
}
