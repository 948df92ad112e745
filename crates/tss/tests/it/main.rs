//! In-memory tests of every protocol in sigil-tss (tier 1: all parties in one thread).

mod bls;
mod common;
mod dkg;
mod ecdsa;
mod reshare;
mod robustness;
