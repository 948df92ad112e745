//! Node tests (tier 1 today: storage, in process).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod store;
