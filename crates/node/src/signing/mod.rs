//! Threshold signing: one-time material made ahead of requests by signing sets of exactly `t`
//! nodes, kept in a pool with a single allocator, taken once and durably, and turned into
//! signature shares.
//!
//! * [`scheme`] — the seam between a signature scheme and the pool: what one-time material is
//!   and how a share is made from it ([`scheme::Ecdsa`], cait-sith presignatures, and
//!   [`scheme::SchnorrTaproot`], FROST nonces).
//! * [`stock`] — the pool's state on one node.
//! * [`pool`] — making material (triples and presignatures, Schnorr nonces) and allocating it.
//! * [`share`] — one signature share for one request: allocation, checks, take, sign.
//! * [`pkp`] — the client-facing services: a PKP signature, a mint attestation.
//!
//! Uses `node`, `store`, `mesh`, `auth`, `error`; never `http`.

pub mod pkp;
pub mod pool;
pub mod scheme;
pub mod share;
pub mod stock;
