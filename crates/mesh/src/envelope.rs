//! Sealed envelopes over reused Noise `K` sessions.
//!
//! ```text
//! envelope = header | session | ciphertext | tag
//! header   = version:u8 (=2) | from:u32 | to:u32 | counter:u64
//! session  = Noise K message 1: e, es, ss (empty payload), prologue = "sigil-mesh/v2" | from | to
//! ciphertext, tag = ChaCha20-Poly1305(k, nonce = counter, ad = header | session, body)
//! ```
//!
//! `k` is the initiator's sending key from the `K` handshake in `session`. `K` gives the recipient
//! proof that the sender holds the private key pinned for `from` (the `ss` term) and encrypts to the
//! recipient's static key with the sender's ephemeral key (`es`). (Like every one-message pattern,
//! `K` cannot stop someone who has stolen the recipient's static key from forging envelopes to it.)
//!
//! A sender keeps one session per peer and reuses it for [`SessionPolicy::max_messages`] envelopes
//! or [`SessionPolicy::max_age`], whichever ends first, counting envelopes in `counter` (the AEAD
//! nonce, never repeated within a session). The recipient remembers the last few sessions of each
//! peer, so an envelope on a known session costs one AEAD and no Diffie-Hellman; an unknown session
//! (a peer that restarted, a forgotten one) is derived again from its handshake. That cache is only
//! a shortcut: every envelope carries its whole session, so it opens anywhere, in any order, after
//! any restart.
//!
//! A network attacker can replay a whole envelope: protocol messages are bound to one session id
//! and idempotent, so a replay changes nothing. A replayed reply to a call is not bound to its
//! request either, so callers check that a reply answers what they asked (an allocation names the
//! request's digest).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use zeroize::Zeroize;

use crate::{Identity, NodeKey};

const VERSION: u8 = 2;
const PATTERN: &str = "Noise_K_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE_DOMAIN: &[u8] = b"sigil-mesh/v2";
const HEADER_LEN: usize = 1 + 4 + 4 + 8;
const SESSION_LEN: usize = 32 + 16;
const TAG_LEN: usize = 16;
/// Envelope bytes besides the body.
pub const OVERHEAD: usize = HEADER_LEN + SESSION_LEN + TAG_LEN;
/// The envelope's first bytes, header and session, that [`Endpoint::check_prefix`] authenticates
/// before the body is read.
pub const PREFIX_LEN: usize = HEADER_LEN + SESSION_LEN;
/// Sessions of one peer a recipient remembers.
const REMEMBERED_SESSIONS: usize = 4;

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
    /// No key is pinned for the claimed sender (or the recipient is not a pinned peer).
    #[error("node {claimed} is not a known peer")]
    UnknownPeer {
        /// The claimed sender, or the unknown recipient when sealing.
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

/// How long a sender reuses one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Envelopes per session.
    pub max_messages: u64,
    /// Age at which a session is replaced.
    pub max_age: Duration,
}

impl Default for SessionPolicy {
    /// A new session every 100 000 envelopes or 5 minutes: the handshake then costs nothing
    /// measurable, and the sending key a sender holds in memory opens at most that much traffic.
    /// (Recipients keep the keys of a peer's last four sessions; and whoever holds a recipient's
    /// static key can open everything sent to it, as with any one-message Noise pattern.)
    fn default() -> Self {
        Self {
            max_messages: 100_000,
            max_age: Duration::from_secs(300),
        }
    }
}

pub(crate) fn params() -> snow::params::NoiseParams {
    // The pattern string is a constant that snow knows; parsing cannot fail.
    PATTERN.parse().unwrap_or_else(|_| unreachable!("valid noise pattern"))
}

fn noise(e: snow::Error) -> MeshError {
    MeshError::Noise(e.to_string())
}

fn prologue(from: u32, to: u32) -> Vec<u8> {
    [PROLOGUE_DOMAIN, &from.to_be_bytes(), &to.to_be_bytes()].concat()
}

fn nonce(counter: u64) -> Nonce {
    // Noise's ChaChaPoly nonce: four zero bytes, then the counter little-endian.
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::from(bytes)
}

/// The AEAD under the initiator's sending key of a finished handshake; both raw keys are wiped.
fn sending_cipher(handshake: &mut snow::HandshakeState) -> ChaCha20Poly1305 {
    let (mut send, mut receive) = handshake.dangerously_get_raw_split();
    let cipher = ChaCha20Poly1305::new(&send.into());
    send.zeroize();
    receive.zeroize();
    cipher
}

/// Starts a session from `from` (holding `me`) to `to`: the `K` handshake message and the key it
/// gives the initiator for sending.
fn initiate(
    me: &Identity,
    from: u32,
    to: u32,
    to_key: &NodeKey,
) -> Result<([u8; SESSION_LEN], ChaCha20Poly1305), MeshError> {
    let prologue = prologue(from, to);
    let mut handshake = snow::Builder::new(params())
        .local_private_key(me.secret_bytes())
        .and_then(|b| b.remote_public_key(&to_key.0))
        .and_then(|b| b.prologue(&prologue))
        .and_then(|b| b.build_initiator())
        .map_err(noise)?;
    let mut message = [0u8; SESSION_LEN];
    let n = handshake.write_message(&[], &mut message).map_err(noise)?;
    if n != SESSION_LEN {
        return Err(MeshError::Noise(format!(
            "handshake message of {n} bytes, expected {SESSION_LEN}"
        )));
    }
    Ok((message, sending_cipher(&mut handshake)))
}

/// Reads a session's handshake `message`, claimed to come from `from` (pinned as `from_key`), at
/// `to` (holding `me`): the key the initiator sends with. Fails unless `from` really made it.
fn respond(
    me: &Identity,
    from: u32,
    to: u32,
    from_key: &NodeKey,
    message: &[u8],
) -> Result<ChaCha20Poly1305, MeshError> {
    let prologue = prologue(from, to);
    let mut handshake = snow::Builder::new(params())
        .local_private_key(me.secret_bytes())
        .and_then(|b| b.remote_public_key(&from_key.0))
        .and_then(|b| b.prologue(&prologue))
        .and_then(|b| b.build_responder())
        .map_err(noise)?;
    handshake
        .read_message(message, &mut [])
        .map_err(|_| MeshError::Unauthenticated { claimed: from })?;
    Ok(sending_cipher(&mut handshake))
}

struct Sending {
    session: [u8; SESSION_LEN],
    cipher: ChaCha20Poly1305,
    next: u64,
    started: Instant,
}

struct Receiving {
    session: [u8; SESSION_LEN],
    cipher: ChaCha20Poly1305,
}

/// One node's end of the mesh's encryption: seals envelopes to its pinned peers and opens theirs.
/// Shared between threads; sessions are kept inside.
pub struct Endpoint {
    me: u32,
    identity: Identity,
    pinned: std::sync::RwLock<BTreeMap<u32, NodeKey>>,
    policy: SessionPolicy,
    sending: Mutex<BTreeMap<u32, Sending>>,
    receiving: Mutex<BTreeMap<u32, VecDeque<Receiving>>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("me", &self.me)
            .field("identity", &self.identity)
            .field("peers", &self.pinned_keys().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Endpoint {
    /// Node `me` holding `identity`, with each peer's pinned key (an entry for `me` is ignored).
    pub fn new(
        me: u32,
        identity: Identity,
        pinned: impl IntoIterator<Item = (u32, NodeKey)>,
        policy: SessionPolicy,
    ) -> Self {
        Self {
            me,
            identity,
            pinned: std::sync::RwLock::new(pinned.into_iter().filter(|(id, _)| *id != me).collect()),
            policy,
            sending: Mutex::new(BTreeMap::new()),
            receiving: Mutex::new(BTreeMap::new()),
        }
    }

    fn pinned_keys(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, NodeKey>> {
        self.pinned.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key pinned for peer `id`, if any.
    pub fn pinned_key(&self, id: u32) -> Option<NodeKey> {
        self.pinned_keys().get(&id).copied()
    }

    /// Pins `key` for a new peer `id` (a node joining the network). A pin never changes: false,
    /// and nothing done, when `id` is this node or already pinned to another key.
    pub fn pin(&self, id: u32, key: NodeKey) -> bool {
        if id == self.me {
            return false;
        }
        let mut pinned = self.pinned.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match pinned.get(&id) {
            Some(existing) => *existing == key,
            None => {
                pinned.insert(id, key);
                true
            }
        }
    }

    /// This node's index.
    pub fn me(&self) -> u32 {
        self.me
    }

    /// This node's public key.
    pub fn public(&self) -> NodeKey {
        self.identity.public()
    }

    /// Seals `body` to peer `to`.
    pub fn seal(&self, to: u32, body: &[u8]) -> Result<Vec<u8>, MeshError> {
        if body.len() > MAX_BODY {
            return Err(MeshError::TooLarge { len: body.len() });
        }
        let to_key = self.pinned_key(to).ok_or(MeshError::UnknownPeer { claimed: to })?;
        let expired = |s: &Sending| s.next >= self.policy.max_messages || s.started.elapsed() >= self.policy.max_age;
        let mut started: Option<([u8; SESSION_LEN], ChaCha20Poly1305)> = None;
        // Reserve a counter under the lock; the handshake and the encryption run outside it.
        let (session, cipher, counter) = loop {
            let mut sending = self.sending.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((session, cipher)) = started.take() {
                // Ours, unless another thread started one meanwhile that is still good.
                if sending.get(&to).is_none_or(expired) {
                    sending.insert(
                        to,
                        Sending {
                            session,
                            cipher: cipher.clone(),
                            next: 1,
                            started: Instant::now(),
                        },
                    );
                    break (session, cipher, 0);
                }
            }
            match sending.get_mut(&to) {
                Some(state) if !expired(state) => {
                    let counter = state.next;
                    state.next += 1;
                    break (state.session, state.cipher.clone(), counter);
                }
                _ => {
                    drop(sending);
                    started = Some(initiate(&self.identity, self.me, to, &to_key)?);
                }
            }
        };
        let mut out = Vec::with_capacity(OVERHEAD + body.len());
        out.push(VERSION);
        out.extend_from_slice(&self.me.to_be_bytes());
        out.extend_from_slice(&to.to_be_bytes());
        out.extend_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(&session);
        let ad_len = out.len();
        out.extend_from_slice(body);
        let (ad, plain) = out.split_at_mut(ad_len);
        let tag = cipher
            .encrypt_in_place_detached(&nonce(counter), ad, plain)
            .map_err(|_| MeshError::TooLarge { len: body.len() })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Checks an envelope's first [`PREFIX_LEN`] bytes before the rest of it (`len` bytes in all,
    /// when known) is read: the version, the addressee, the sender's pinned key, the length, and
    /// the session's handshake, which only the claimed sender can have made. Returns the sender.
    /// A stranger fails here, having sent 65 bytes; only the body's tag, checked by
    /// [`Endpoint::open`], tells a genuine envelope from a replayed session with another body.
    pub fn check_prefix(&self, prefix: &[u8], len: Option<usize>) -> Result<u32, MeshError> {
        let prefix = prefix.get(..PREFIX_LEN).ok_or_else(|| MeshError::Malformed {
            reason: "shorter than its header and session".into(),
        })?;
        if len.is_some_and(|len| len < OVERHEAD) {
            return Err(MeshError::Malformed {
                reason: "shorter than its header, session and tag".into(),
            });
        }
        let (header, session) = prefix.split_at(HEADER_LEN);
        let (claimed, _) = self.header(header, len.map_or(0, |len| len - OVERHEAD))?;
        let key = self.pinned_key(claimed).ok_or(MeshError::UnknownPeer { claimed })?;
        if self.known_session(claimed, session).is_none() {
            let cipher = respond(&self.identity, claimed, self.me, &key, session)?;
            self.remember(claimed, session, cipher);
        }
        Ok(claimed)
    }

    /// The sender and counter of an envelope's header, checked against this node and a body of
    /// `body_len` bytes.
    fn header(&self, header: &[u8], body_len: usize) -> Result<(u32, u64), MeshError> {
        let field = |at: usize| -> [u8; 4] {
            let mut b = [0u8; 4];
            b.copy_from_slice(header.get(at..at + 4).unwrap_or(&[0; 4]));
            b
        };
        let version = header.first().copied().unwrap_or_default();
        if version != VERSION {
            return Err(MeshError::Malformed {
                reason: format!("envelope version {version}, expected {VERSION}"),
            });
        }
        let claimed = u32::from_be_bytes(field(1));
        let to = u32::from_be_bytes(field(5));
        let mut counter = [0u8; 8];
        counter.copy_from_slice(header.get(9..17).unwrap_or(&[0; 8]));
        if to != self.me {
            return Err(MeshError::NotForMe { to });
        }
        if body_len > MAX_BODY {
            return Err(MeshError::TooLarge { len: body_len });
        }
        Ok((claimed, u64::from_be_bytes(counter)))
    }

    /// The cipher of a session of `peer` this node authenticated before.
    fn known_session(&self, peer: u32, session: &[u8]) -> Option<ChaCha20Poly1305> {
        self.receiving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .and_then(|known| known.iter().find(|r| r.session.as_slice() == session))
            .map(|r| r.cipher.clone())
    }

    /// Remembers an authenticated session of `peer` (its last [`REMEMBERED_SESSIONS`]).
    fn remember(&self, peer: u32, session: &[u8], cipher: ChaCha20Poly1305) {
        let mut remembered = [0u8; SESSION_LEN];
        remembered.copy_from_slice(session);
        let mut receiving = self.receiving.lock().unwrap_or_else(PoisonError::into_inner);
        let known = receiving.entry(peer).or_default();
        if !known.iter().any(|r| r.session == remembered) {
            known.push_front(Receiving {
                session: remembered,
                cipher,
            });
            known.truncate(REMEMBERED_SESSIONS);
        }
    }

    /// Opens an envelope addressed to this node.
    pub fn open(&self, envelope: &[u8]) -> Result<Opened, MeshError> {
        let malformed = |reason: &str| MeshError::Malformed {
            reason: reason.to_string(),
        };
        if envelope.len() < OVERHEAD {
            return Err(malformed("shorter than its header, session and tag"));
        }
        let body_len = envelope.len() - OVERHEAD;
        let (ad, rest) = envelope.split_at(HEADER_LEN + SESSION_LEN);
        let (sealed, tag) = rest.split_at(body_len);
        let (header, session) = ad.split_at(HEADER_LEN);
        let (claimed, counter) = self.header(header, body_len)?;
        let key = self.pinned_key(claimed).ok_or(MeshError::UnknownPeer { claimed })?;
        let unauthenticated = MeshError::Unauthenticated { claimed };
        let mut body = sealed.to_vec();
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| malformed("tag"))?;
        let tag = &Tag::from(tag);
        // The lock only finds the session; decryption runs outside it, so a large body does not
        // hold up other envelopes.
        match self.known_session(claimed, session) {
            Some(cipher) => cipher
                .decrypt_in_place_detached(&nonce(counter), ad, &mut body, tag)
                .map_err(|_| unauthenticated)?,
            None => {
                // A session not seen yet (or forgotten): derive it, outside the lock.
                let cipher = respond(&self.identity, claimed, self.me, &key, session)?;
                cipher
                    .decrypt_in_place_detached(&nonce(counter), ad, &mut body, tag)
                    .map_err(|_| unauthenticated)?;
                self.remember(claimed, session, cipher);
            }
        }
        Ok(Opened { from: claimed, body })
    }
}
