//! Node tests (tier 1 today: storage, in process; and the crate's module graph).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod epoch;
mod fuzz;
mod modules;
mod store;
