//! Node-to-node messaging for Sigil, sans-IO.
//!
//! * [`Identity`] / [`NodeKey`]: a node's static X25519 key pair; peers pin each other's public key
//!   (from the config today, from the NodeSet contract later).
//! * [`Endpoint`]: seals and opens envelopes, one self-contained envelope per message,
//!   authenticated by the sender's pinned key and encrypted to the recipient's with the Noise `K`
//!   pattern (`Noise_K_25519_ChaChaPoly_BLAKE2s`) — so it rides on plain HTTP requests with no
//!   connection state, and a retry is just a resend. A sender reuses one handshake per peer for a
//!   while ([`SessionPolicy`]) and a recipient remembers it, so most envelopes cost one AEAD.
//! * [`Router`]: routes opened messages to protocol sessions by session key, buffers messages that
//!   arrive before their session opens, drops late ones, and expires sessions at their deadline.
//!
//! This crate does no I/O and spawns nothing: the node carries the bytes (one queue per peer) and
//! drives the router's clock. It depends on no other Sigil crate.

mod envelope;
mod identity;
mod router;

pub use envelope::{Endpoint, MeshError, Opened, SessionPolicy, MAX_BODY, OVERHEAD, PREFIX_LEN};
pub use identity::{Identity, NodeKey};
pub use router::{Routed, Router, RouterConfig, SessionKey, EARLY_MESSAGE_OVERHEAD};
