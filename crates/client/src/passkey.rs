//! A software passkey for tests (feature `test-passkey`): a P-256 credential that makes real
//! WebAuthn assertions, serialised as browsers and SimpleWebAuthn do, so a test can use the
//! passkey auth method (Lit's `AuthMethodType` 3) without a browser.
//!
//! [`SoftPasskey::cose_public_key`] is what is registered on chain with the auth method;
//! [`SoftPasskey::get`] answers a challenge with an `accessToken`. [`Ceremony`] lets a test make
//! what an honest authenticator would not: another relying party, flags, counter, type or origin.
//!
//! The key is held in memory without protection and derived from a seed the test chooses: never
//! a place for a real credential.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use coset::{iana, CborSerializable, CoseKeyBuilder};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use sha2::{Digest, Sha256};

/// Authenticator data flags: user present, user verified.
pub const FLAG_UP: u8 = 0x01;
/// User verified (PIN or biometrics).
pub const FLAG_UV: u8 = 0x04;

/// A software WebAuthn authenticator holding one ES256 credential for one relying party.
pub struct SoftPasskey {
    key: SigningKey,
    credential_id: Vec<u8>,
    rp_id: String,
    counter: u32,
    counts: bool,
}

impl std::fmt::Debug for SoftPasskey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftPasskey")
            .field("raw_id", &self.raw_id())
            .field("rp_id", &self.rp_id)
            .field("counter", &self.counter)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// One assertion's inputs, with everything an honest authenticator and browser fill in made
/// explicit so a test can change it.
#[derive(Clone, Debug)]
pub struct Ceremony<'a> {
    /// The challenge to sign (for Sigil: a recent block hash).
    pub challenge: &'a [u8],
    /// The page's origin, as the browser puts it in `clientDataJSON`.
    pub origin: &'a str,
    /// `clientDataJSON.type`.
    pub kind: &'a str,
    /// The relying party hashed into `authenticatorData`; `None` for the passkey's own.
    pub rp_id: Option<&'a str>,
    /// `authenticatorData` flags.
    pub flags: u8,
    /// The sign counter; `None` for the passkey's next one.
    pub counter: Option<u32>,
    /// `clientDataJSON.crossOrigin`.
    pub cross_origin: bool,
}

impl<'a> Ceremony<'a> {
    /// An honest assertion of `challenge` on `origin`: user present and verified, the next
    /// counter, the passkey's own relying party.
    pub fn new(challenge: &'a [u8], origin: &'a str) -> Self {
        Self {
            challenge,
            origin,
            kind: "webauthn.get",
            rp_id: None,
            flags: FLAG_UP | FLAG_UV,
            counter: None,
            cross_origin: false,
        }
    }
}

impl SoftPasskey {
    /// A passkey for `rp_id` whose key and credential id derive from `seed`. Its counter starts
    /// at 0 and each assertion increments it first (the first assertion carries 1).
    pub fn new(seed: [u8; 32], rp_id: &str) -> Self {
        let mut i = 0u8;
        let key = loop {
            let scalar: [u8; 32] = Sha256::new()
                .chain_update(b"sigil-soft-passkey-key")
                .chain_update(seed)
                .chain_update([i])
                .finalize()
                .into();
            // A hash is a valid P-256 scalar except with negligible probability; try the next.
            if let Ok(key) = SigningKey::from_bytes(&scalar.into()) {
                break key;
            }
            i = i.wrapping_add(1);
        };
        let credential_id = Sha256::new()
            .chain_update(b"sigil-soft-passkey-id")
            .chain_update(seed)
            .finalize()
            .to_vec();
        Self {
            key,
            credential_id,
            rp_id: rp_id.to_owned(),
            counter: 0,
            counts: true,
        }
    }

    /// The same passkey, keeping no counter: every assertion carries 0 (as many synced passkeys
    /// do).
    pub fn without_counter(mut self) -> Self {
        self.counts = false;
        self
    }

    /// The credential id, base64url as `rawId` carries it.
    pub fn raw_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.credential_id)
    }

    /// The auth method id Lit derives for this credential: `keccak256(utf8(rawId + ":lit"))`,
    /// what PKPPermissions lists for it (type 3).
    pub fn auth_method_id(&self) -> [u8; 32] {
        sigil_chain::alloy::primitives::keccak256(format!("{}:lit", self.raw_id())).0
    }

    /// The counter of the last assertion made.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The credential public key as a COSE_Key (EC2, P-256, ES256): what a registration's
    /// attested credential data carries and what is registered on chain as the auth method's
    /// `userPubkey`.
    pub fn cose_public_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| c.map(|c| c.to_vec()).unwrap_or_default();
        CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, coordinate(point.x()), coordinate(point.y()))
            .algorithm(iana::Algorithm::ES256)
            .build()
            .to_vec()
            .unwrap_or_default()
    }

    /// An honest assertion of `challenge` on `origin` (see [`Ceremony::new`]): the `accessToken`
    /// of a passkey auth method.
    pub fn get(&mut self, challenge: &[u8], origin: &str) -> String {
        self.assert(&Ceremony::new(challenge, origin))
    }

    /// An assertion as `ceremony` describes it, as the JSON SimpleWebAuthn's
    /// `startAuthentication` returns. Advances the counter unless the ceremony fixes it.
    pub fn assert(&mut self, ceremony: &Ceremony) -> String {
        let counter = match ceremony.counter {
            Some(counter) => counter,
            None if self.counts => self.counter.wrapping_add(1),
            None => 0,
        };
        self.counter = counter;
        let rp_id = ceremony.rp_id.unwrap_or(&self.rp_id);
        let mut authenticator_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        authenticator_data.push(ceremony.flags);
        authenticator_data.extend_from_slice(&counter.to_be_bytes());
        // Members in the order browsers write them; the relying party must not depend on it.
        let client_data_json = serde_json::json!({
            "type": ceremony.kind,
            "challenge": URL_SAFE_NO_PAD.encode(ceremony.challenge),
            "origin": ceremony.origin,
            "crossOrigin": ceremony.cross_origin,
        })
        .to_string();
        let signature = self.sign(&authenticator_data, client_data_json.as_bytes());
        let raw_id = self.raw_id();
        serde_json::json!({
            "id": raw_id,
            "rawId": raw_id,
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(&authenticator_data),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data_json.as_bytes()),
                "signature": URL_SAFE_NO_PAD.encode(&signature),
                "userHandle": URL_SAFE_NO_PAD.encode(b"sigil-test-user"),
            },
            "type": "public-key",
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
        .to_string()
    }

    /// The DER-encoded ES256 signature over `authenticator_data ‖ SHA-256(client_data_json)`,
    /// for tests that assemble an assertion by hand.
    pub fn sign(&self, authenticator_data: &[u8], client_data_json: &[u8]) -> Vec<u8> {
        let signed = [authenticator_data, &Sha256::digest(client_data_json)[..]].concat();
        let signature: Signature = self.key.sign(&signed);
        signature.to_der().as_bytes().to_vec()
    }
}
