//! The Sigil node: storage, the mesh over HTTP, root-key DKG, presignature pools, actions,
//! threshold decryption, and the HTTP API over them.
//!
//! Layers, each using only those below it (checked by the test `tests/it/modules.rs`: no import
//! cycle between modules, no `http` import outside `http` and `start`):
//!
//! * [`http`] — the only module that knows HTTP: router, error mapping, one handler module per
//!   endpoint group. Used only by [`start`].
//! * Services, which return domain errors ([`error::Error`]) and know nothing of HTTP:
//!   [`auth`] (who asks: a [`auth::Principal`]), [`signing`] (pools, allocation, take, shares;
//!   behind a scheme seam), [`actions`] (the sandbox's host, the mailbox), [`encryption`]
//!   (conditions, decryption shares), [`mesh::dispatch`] (what peers send).
//! * State: [`node`] (the state every task shares), [`epoch`] (keys, peers, threshold and pool
//!   of one epoch, behind a swappable handle), [`vouch`] (what the node signs for clients and
//!   the chain), [`follow`] (NodeSet read while running: the epoch on chain, membership, the
//!   proposed next epoch), [`dkg`] (the first DKG: tentative shares, adoption, agreed retries),
//!   [`reshare`] (the root keys reshared into a proposed epoch, and the switch to it once NodeSet
//!   confirms it), [`liveness`] (peer heartbeats).
//! * [`faults`]: test-only protocol wrappers behind [`Fault`].
//! * Foundations: [`store`] (one redb file, records sealed at rest; presignatures taken once,
//!   durably), [`mesh`] (`net`, `session`, `wire`), [`config`], [`error`], `metrics`.
//! * [`start`] — start-up and the background tasks; wires everything together.

pub mod actions;
pub mod auth;
pub mod config;
pub mod dkg;
pub mod encryption;
pub mod epoch;
pub mod error;
pub mod faults;
pub mod follow;
pub mod http;
pub mod liveness;
pub mod mesh;
mod metrics;
pub mod node;
pub mod reshare;
pub mod signing;
pub mod start;
pub mod store;
pub mod vouch;

pub use config::{NodeConfig, PeerConfig, Settings};
pub use node::{Fault, Node, NodeError, RunOptions};
pub use start::{init_data_dir, retire, run, PublicIdentity};
