//! Node identity keys.

use std::fmt;

use curve25519_dalek::MontgomeryPoint;
use zeroize::Zeroizing;

/// A node's public X25519 key: what peers pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey(pub [u8; 32]);

impl NodeKey {
    /// Parses 64 hex characters (an optional `0x` prefix is allowed).
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text.strip_prefix("0x").unwrap_or(text)).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", hex::encode(&self.0[..6]))
    }
}

/// A node's static key pair. The secret is wiped on drop and never printed.
pub struct Identity {
    secret: Zeroizing<[u8; 32]>,
    public: NodeKey,
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Result<Self, crate::MeshError> {
        let builder = snow::Builder::new(crate::envelope::params());
        let pair = builder
            .generate_keypair()
            .map_err(|e| crate::MeshError::Noise(e.to_string()))?;
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&pair.private);
        Ok(Self::from_secret(*secret))
    }

    /// Rebuilds an identity from its 32 secret bytes (as stored in the node's data directory).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let public = NodeKey(MontgomeryPoint::mul_base_clamped(secret).to_bytes());
        Self {
            secret: Zeroizing::new(secret),
            public,
        }
    }

    /// The public key peers pin.
    pub fn public(&self) -> NodeKey {
        self.public
    }

    /// The secret bytes, to store (encrypted) and nothing else.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}
