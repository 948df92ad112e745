//! The Sigil node.
//!
//! Today this crate holds the node's storage ([`store`]): one redb file per node, key material sealed
//! at rest, and presignatures that can be taken exactly once, durably. Protocol sessions, the
//! presignature pools, the mesh transport and the HTTP API (`fn app(state) -> Router`) will live here
//! too; the node composes `sigil-tss` and `sigil-mesh` and is the only crate that does I/O for them.

pub mod store;
