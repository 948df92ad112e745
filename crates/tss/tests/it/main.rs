//! In-memory tests of every protocol in sigil-tss (tier 1: all parties in one thread).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod attack;
mod bls;
mod common;
mod dkg;
mod ecdsa;
mod fuzz;
mod persist;
mod reshare;
mod robustness;
mod schnorr;
