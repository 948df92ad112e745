//! Tests of `sigil-chain` that need no chain (tier 1: in memory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod fuzz;
