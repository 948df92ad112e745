//! Tests of `sigil-primitives` (tier 1: in memory, plus a cross-check against the JS reference).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod cid;
mod fuzz;
