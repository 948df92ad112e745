//! Sealed envelopes.
//!
//! ```text
//! envelope  = version:u8 (=1) | from:u32 | to:u32 | body_len:u32 | handshake:48 | chunk+
//! handshake = Noise K message 1: e, es, ss (empty payload), prologue = "sigil-mesh/v1" | header
//! chunk_i   = ChaChaPoly(transport key, nonce i, body[i·CHUNK ..][..CHUNK]) — one chunk for an empty body
//! ```
//!
//! `K` gives the recipient proof that the sender holds the private key pinned for `from` (the `ss`
//! term) and encrypts to the recipient's static key with a fresh ephemeral key (`es`). The header
//! is part of the prologue, so changing `from`, `to` or the length breaks the handshake; the length
//! fixes the chunk count, so dropping trailing chunks is detected. Noise caps one message at
//! 65 535 bytes, hence the chunks (explicit nonces, stateless transport). A network attacker can
//! replay a whole envelope: protocol messages are bound to one session and idempotent, so a replay
//! changes nothing.

use crate::{Identity, NodeKey};

const VERSION: u8 = 1;
const PATTERN: &str = "Noise_K_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE_DOMAIN: &[u8] = b"sigil-mesh/v1";
const HEADER_LEN: usize = 1 + 4 + 4 + 4;
const HANDSHAKE_LEN: usize = 32 + 16;
const TAG_LEN: usize = 16;
const CHUNK: usize = 65_000;

/// Largest body one envelope carries.
pub const MAX_BODY: usize = 16 << 20;

/// Why an envelope was refused. Until an envelope authenticates, its `from` field is only a claim.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshError {
    /// The body exceeds [`MAX_BODY`].
    #[error("message body of {len} bytes exceeds the {MAX_BODY}-byte limit")]
    TooLarge {
        /// Body length.
        len: usize,
    },
    /// The envelope cannot be parsed.
    #[error("malformed envelope: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The envelope is addressed to another node.
    #[error("envelope is addressed to node {to}, not to this node")]
    NotForMe {
        /// The addressee.
        to: u32,
    },
    /// No key is pinned for the claimed sender.
    #[error("envelope claims to come from node {claimed}, which is not a known peer")]
    UnknownPeer {
        /// The claimed sender.
        claimed: u32,
    },
    /// The envelope does not authenticate under the claimed sender's pinned key: forged or corrupted.
    #[error("envelope claiming to come from node {claimed} does not authenticate (forged or corrupted)")]
    Unauthenticated {
        /// The claimed sender.
        claimed: u32,
    },
    /// The Noise library refused its parameters (a bug, not bad input).
    #[error("noise: {0}")]
    Noise(String),
}

/// An authenticated, decrypted message.
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sender, proven by its key.
    pub from: u32,
    /// The plaintext body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opened(from {}, {} bytes)", self.from, self.body.len())
    }
}

pub(crate) fn params() -> snow::params::NoiseParams {
    // The pattern string is a constant that snow knows; parsing cannot fail.
    PATTERN.parse().unwrap_or_else(|_| unreachable!("valid noise pattern"))
}

fn noise(e: snow::Error) -> MeshError {
    MeshError::Noise(e.to_string())
}

fn header(from: u32, to: u32, body_len: u32) -> [u8; HEADER_LEN] {
    let ([f0, f1, f2, f3], [t0, t1, t2, t3], [l0, l1, l2, l3]) =
        (from.to_be_bytes(), to.to_be_bytes(), body_len.to_be_bytes());
    [VERSION, f0, f1, f2, f3, t0, t1, t2, t3, l0, l1, l2, l3]
}

fn prologue(header: &[u8; HEADER_LEN]) -> Vec<u8> {
    [PROLOGUE_DOMAIN, header.as_slice()].concat()
}

enum Role {
    Initiator,
    Responder,
}

/// The Noise `K` state between `me` and the peer pinned as `peer`, bound to `header`.
fn handshake(
    me: &Identity,
    peer: &NodeKey,
    header: &[u8; HEADER_LEN],
    role: Role,
) -> Result<snow::HandshakeState, MeshError> {
    let prologue = prologue(header);
    let builder = snow::Builder::new(params())
        .local_private_key(me.secret_bytes())
        .and_then(|b| b.remote_public_key(&peer.0))
        .and_then(|b| b.prologue(&prologue));
    match role {
        Role::Initiator => builder.and_then(|b| b.build_initiator()),
        Role::Responder => builder.and_then(|b| b.build_responder()),
    }
    .map_err(noise)
}

fn chunk_count(body_len: usize) -> usize {
    body_len.div_ceil(CHUNK).max(1)
}

/// Seals `body` from node `from` (holding `me`) to node `to` (whose pinned key is `to_key`).
pub fn seal(me: &Identity, from: u32, to: u32, to_key: &NodeKey, body: &[u8]) -> Result<Vec<u8>, MeshError> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= MAX_BODY)
        .ok_or(MeshError::TooLarge { len: body.len() })?;
    let header = header(from, to, len);
    let mut handshake = handshake(me, to_key, &header, Role::Initiator)?;
    let chunks = chunk_count(body.len());
    let mut out = Vec::with_capacity(HEADER_LEN + HANDSHAKE_LEN + body.len() + chunks * TAG_LEN);
    out.extend_from_slice(&header);
    let mut buf = vec![0u8; CHUNK + TAG_LEN];
    let n = handshake.write_message(&[], &mut buf).map_err(noise)?;
    out.extend_from_slice(buf.get(..n).unwrap_or_default());
    let transport = handshake.into_stateless_transport_mode().map_err(noise)?;
    for i in 0..chunks {
        let piece = body
            .get(i * CHUNK..((i + 1) * CHUNK).min(body.len()))
            .unwrap_or_default();
        let n = transport.write_message(i as u64, piece, &mut buf).map_err(noise)?;
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    Ok(out)
}

/// Opens an envelope addressed to node `me_index` (holding `me`); `pinned` gives each peer's key.
pub fn open(
    me: &Identity,
    me_index: u32,
    pinned: impl Fn(u32) -> Option<NodeKey>,
    envelope: &[u8],
) -> Result<Opened, MeshError> {
    let malformed = |reason: &str| MeshError::Malformed {
        reason: reason.to_string(),
    };
    let (head, rest) = envelope
        .split_at_checked(HEADER_LEN)
        .ok_or_else(|| malformed("shorter than its header"))?;
    let header: [u8; HEADER_LEN] = head.try_into().map_err(|_| malformed("header"))?;
    let [version, f0, f1, f2, f3, t0, t1, t2, t3, l0, l1, l2, l3] = header;
    if version != VERSION {
        return Err(malformed(&format!("envelope version {version}, expected {VERSION}")));
    }
    let claimed = u32::from_be_bytes([f0, f1, f2, f3]);
    let to = u32::from_be_bytes([t0, t1, t2, t3]);
    let body_len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    if to != me_index {
        return Err(MeshError::NotForMe { to });
    }
    if body_len > MAX_BODY {
        return Err(MeshError::TooLarge { len: body_len });
    }
    let key = pinned(claimed)
        .filter(|_| claimed != me_index)
        .ok_or(MeshError::UnknownPeer { claimed })?;
    let chunks = chunk_count(body_len);
    if rest.len() != HANDSHAKE_LEN + body_len + chunks * TAG_LEN {
        return Err(malformed("length does not match the header"));
    }
    let (hello, mut sealed) = rest.split_at(HANDSHAKE_LEN);
    let mut handshake = handshake(me, &key, &header, Role::Responder)?;
    let unauthenticated = MeshError::Unauthenticated { claimed };
    handshake
        .read_message(hello, &mut [])
        .map_err(|_| unauthenticated.clone())?;
    let transport = handshake.into_stateless_transport_mode().map_err(noise)?;
    let mut body = vec![0u8; body_len];
    let mut buf = vec![0u8; CHUNK + TAG_LEN];
    for i in 0..chunks {
        let plain_len = (body_len - i * CHUNK).min(CHUNK);
        let (piece, tail) = sealed
            .split_at_checked(plain_len + TAG_LEN)
            .ok_or_else(|| malformed("truncated chunk"))?;
        sealed = tail;
        let n = transport
            .read_message(i as u64, piece, &mut buf)
            .map_err(|_| unauthenticated.clone())?;
        let target = body
            .get_mut(i * CHUNK..i * CHUNK + n)
            .ok_or_else(|| malformed("chunk length"))?;
        target.copy_from_slice(buf.get(..n).unwrap_or_default());
    }
    Ok(Opened { from: claimed, body })
}
