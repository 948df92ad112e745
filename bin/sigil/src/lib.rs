//! The `sigil` package's library: what its commands and its multi-process tests share.
//!
//! - [`network`]: talking to a network through its `network.json` — the file, the wallet, auth
//!   signatures, health, recording the root keys. Every command uses it.
//! - [`devnet`]: running a local network of node processes — `sigil dev`, `sigil bench` and the
//!   tests start their networks with it. It uses [`network`].
//! - [`link`]: delay proxies in front of nodes (a WAN on one machine), which can be cut and healed.
//!
//! The commands themselves (flags, output) live in the binary, `main.rs` and its modules; this
//! library uses none of them.

pub mod devnet;
pub mod link;
pub mod network;
