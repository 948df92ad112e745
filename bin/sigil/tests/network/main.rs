//! Multi-process tests: real `sigil` node processes and a real anvil on loopback, free ports,
//! bounded in time; `hosts` puts each node in its own network namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod actions;
mod bounds;
mod chain;
mod encryption;
mod epochs;
mod harness;
mod hostile;
mod hosts;
mod integrity;
mod oidc;
mod passkeys;
mod platform;
mod schemes;
mod schnorr_attacks;
mod session_attacks;
mod sessions;
mod signing;
mod vouch;
