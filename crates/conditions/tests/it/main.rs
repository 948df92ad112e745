//! Tests of `sigil-conditions` (tier 1: in memory): parsing with paths, canonical hashing, and
//! evaluation against a fake chain and action runner.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod eval;
mod fuzz;
mod parse;
