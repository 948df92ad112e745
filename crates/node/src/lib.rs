//! The Sigil node: storage, the mesh over HTTP, root-key DKG, presignature pools, the HTTP API.
//!
//! * [`config`] — `node.toml`.
//! * [`store`] — one redb file, records sealed at rest; presignatures taken once, durably.
//! * [`net`] — sealed envelopes over `POST /mesh/send|call`, a queue per peer.
//! * [`session`] — protocol runs on their own threads, routed by session id, with deadlines.
//! * [`pool`] — the presignature pool and its single allocator.
//! * [`api`] — `fn app(node) -> Router`: `/web/handshake`, `/web/pkp/sign`, `/health`, `/metrics`.
//! * [`actions`] — `/web/execute` and `/web/actions`: runs actions in the sandbox and answers
//!   their host operations (signing, fetch, runOnce, broadcastAndCollect, permissions, call).
//! * [`encryption`] — `/web/encryption/sign`, and decryption inside actions: the node decides the
//!   access-control conditions (`sigil-conditions`) before it releases its BLS share.
//! * [`node`] — start-up, the first DKG, peer liveness, shutdown.
//! * [`vouch`] — what the node signs for clients and the chain: its handshake, the root-key record.

pub mod actions;
pub mod api;
pub mod config;
pub mod encryption;
mod metrics;
pub mod net;
pub mod node;
pub mod pool;
pub mod session;
pub mod store;
pub mod vouch;
pub mod wire;

pub use config::{NodeConfig, PeerConfig, Settings};
pub use node::{init_data_dir, run, Fault, Node, NodeError, PublicIdentity, RunOptions};
