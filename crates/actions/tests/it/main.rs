//! Tests of `sigil-actions` (tier 1: the sandbox in memory, with a host that answers from
//! threads the way a node does).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod host;
mod platform;
mod sandbox;
