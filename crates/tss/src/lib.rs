//! Sigil's threshold cryptography, sans-IO.
//!
//! Everything a node computes with key material lives here, as state machines that take
//! `(from, bytes)` and are polled for messages and output ([`Protocol`]). This crate knows nothing of
//! sockets, HTTP, storage, clocks or the chain; the node owns those, and the client uses only the
//! public parts (combination and verification).
//!
//! * [`Vss`] — distributed key generation, resharing to a new set and threshold, refresh; for the
//!   secp256k1 root key ([`Secp256k1`]) and the BLS12-381 key ([`Bls12381G1`]).
//! * [`derive`] — PKP keys derived from the root key by an additive tweak; token ids and addresses.
//! * [`ecdsa`] — triples (cait-sith) and presignatures among exactly `t` signers with per-holder
//!   commitments (`presign`), re-randomised signature shares, combination of exactly `t` shares
//!   into a verified low-s signature with recovery id, naming every wrong share.
//! * [`schnorr`] — BIP-340 / taproot Schnorr signatures by FROST (the ZF ciphersuite) with the
//!   secp256k1 root key's shares: nonce commitments made ahead, exactly `t` signers, every bad
//!   share named.
//! * [`bls`] — signature shares over identities, their verification and combination, and hybrid
//!   identity-based encryption.
//!
//! Invariants kept here: secret scalars are wiped on drop and print `<redacted>`; a presignature is
//! consumed by the call that uses it; no message handler panics on any input, and errors caused by a
//! peer name it ([`TssError::culprit`]).

pub mod bls;
mod cs;
mod curve;
pub mod derive;
pub mod ecdsa;
mod error;
mod party;
mod presign;
mod protocol;
pub mod schnorr;
mod vss;
mod wire;

pub use cs::{CaitSithRun, MAX_MESSAGES_PER_PEER};
pub use curve::{decode_point, Bls12381G1, Curve, Ed25519, Secp256k1};
pub use error::TssError;
pub use party::{threshold_for, PartyId, SessionId, MAX_PARTIES, MIN_PARTIES};
pub use protocol::{run_in_memory, run_in_memory_each, run_in_memory_with, InFlight, Outgoing, Protocol, Step};
pub use vss::{KeyShare, PublicKeyPackage, Vss};
pub use wire::{ProtocolKind, WIRE_VERSION};

/// Re-exported curve crates, so callers use the same versions.
pub use {blsful, k256};
