//! Tests of sealed envelopes and session routing (tier 1: in memory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod envelope;
mod fuzz;
mod router;
