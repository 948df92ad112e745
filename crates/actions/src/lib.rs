//! Sandboxed JavaScript for Sigil actions.
//!
//! An action runs in a fresh QuickJS context ([`run`]) with the `Lit.Actions` API, `fetch`,
//! `console`, `jsParams` and the other globals Lit actions expect (DESIGN §5). The runtime has no
//! file, environment or socket access: everything an action does outside pure computation is a
//! [`HostOp`] handed to the [`Host`] the node implements, and the host's answer resolves the
//! promise the action awaits. The runtime never sees key shares; it only counts and forwards.
//!
//! Every run is bounded by [`Limits`]: wall time (also for CPU-bound code inside promise jobs and
//! regular expressions, through QuickJS's interrupt handler), memory, code size, response size,
//! signatures, fetches and nested calls. A hit limit ends the run with a typed [`ActionError`].
//!
//! The web platform actions expect (Lit's runtime is Deno) is there: timers that can be cleared,
//! `URL`, `TextEncoder`, `AbortController`, `Headers`/`Request`/`Response`, `structuredClone`, and
//! `crypto.subtle` backed by RustCrypto ([`platform`]). Every node computes the same thing:
//! `Date.now` comes from the request, and `crypto.getRandomValues`, `crypto.randomUUID` and
//! `Math.random` draw from one stream keyed by a seed the host gives ([`HostOp::Randomness`]) the
//! first time a run draws; a node derives it from a threshold signature of the network, so the
//! nodes agree on it and no caller can know it in advance.
//!
//! [`run`] blocks its thread until the action is done: call it off the async workers.

mod platform;
mod sandbox;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use sandbox::{run, run_warm, Warm};

/// Bounds on one action run (Lit's defaults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default, deny_unknown_fields)]
pub struct Limits {
    /// Wall time of the whole run, host calls included.
    #[serde(with = "millis")]
    pub wall_time: Duration,
    /// JavaScript heap.
    pub memory_bytes: usize,
    /// Size of the action's code (and of each child action's).
    pub code_bytes: usize,
    /// Size of the response set with `setResponse`.
    pub response_bytes: usize,
    /// Signatures per run (`signEcdsa`, `signAndCombineEcdsa`, `ethPersonalSignMessageEcdsa`).
    pub signatures: usize,
    /// `fetch` calls per run.
    pub fetches: usize,
    /// Depth of nested `Lit.Actions.call`.
    pub call_depth: usize,
    /// Total size of the console output kept per run.
    pub log_bytes: usize,
    /// Host operations per run (fetch, signing, runOnce, broadcastAndCollect, permission reads,
    /// child actions, timers): bounds what one run can make the node do and hold.
    pub host_calls: usize,
    /// Size of one value sent to the other nodes (`broadcastAndCollect`, `runOnce` results).
    pub shared_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall_time: Duration::from_secs(30),
            memory_bytes: 256 * 1024 * 1024,
            code_bytes: 16 * 1024 * 1024,
            response_bytes: 100 * 1024,
            signatures: 10,
            fetches: 50,
            call_depth: 5,
            log_bytes: 1024 * 1024,
            host_calls: 1000,
            shared_value_bytes: 64 * 1024,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Which limit a run hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Limit {
    /// [`Limits::wall_time`].
    WallTime,
    /// [`Limits::memory_bytes`].
    Memory,
    /// [`Limits::code_bytes`].
    CodeSize,
    /// [`Limits::response_bytes`].
    ResponseSize,
    /// [`Limits::signatures`].
    Signatures,
    /// [`Limits::fetches`].
    Fetches,
    /// [`Limits::call_depth`].
    CallDepth,
    /// [`Limits::log_bytes`].
    LogSize,
    /// [`Limits::host_calls`].
    HostCalls,
    /// [`Limits::shared_value_bytes`].
    SharedValueSize,
}

impl Limit {
    /// The limit's name as users see it.
    pub fn name(self) -> &'static str {
        match self {
            Self::WallTime => "wall time",
            Self::Memory => "memory",
            Self::CodeSize => "code size",
            Self::ResponseSize => "response size",
            Self::Signatures => "signatures per run",
            Self::Fetches => "fetches per run",
            Self::CallDepth => "call depth",
            Self::LogSize => "console output",
            Self::HostCalls => "host calls per run",
            Self::SharedValueSize => "shared value size",
        }
    }
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The run went past its wall time.
    #[error("the action ran past its time limit of {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The JavaScript heap reached its limit.
    #[error("the action ran out of memory (limit {} MiB)", .0 / (1024 * 1024))]
    OutOfMemory(usize),
    /// Another limit was hit.
    #[error("the action exceeded its {} limit ({max})", .limit.name())]
    Limit {
        /// Which limit.
        limit: Limit,
        /// Its value.
        max: usize,
    },
    /// An error thrown by the action and not caught.
    #[error("the action threw: {0}")]
    Script(String),
    /// A host operation failed and the action did not catch it.
    #[error("{message}")]
    Host {
        /// The host's stable code.
        code: String,
        /// The host's message.
        message: String,
    },
    /// The engine failed (not the action's fault).
    #[error("the JavaScript engine failed: {0}")]
    Engine(String),
}

impl ActionError {
    /// Stable code for the HTTP API.
    pub fn code(&self) -> &str {
        match self {
            Self::Timeout(_) => "ACTION_TIMEOUT",
            Self::OutOfMemory(_) => "ACTION_OUT_OF_MEMORY",
            Self::Limit { .. } => "ACTION_LIMIT",
            Self::Script(_) => "ACTION_ERROR",
            Self::Host { code, .. } => code,
            Self::Engine(_) => "ACTION_ENGINE",
        }
    }
}

/// What a run needs besides its host.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// The action's code.
    pub code: String,
    /// Its IPFS CIDv0, the bottom of `Lit.Auth.actionIpfsIdStack`.
    pub cid: String,
    /// `jsParams`: each field becomes a global too.
    pub js_params: serde_json::Map<String, serde_json::Value>,
    /// The address that signed the request's authSig, if any (`Lit.Auth.authSigAddress`).
    pub auth_sig_address: Option<String>,
    /// The auth methods of the caller's session, if a network-granted one (each
    /// `{authMethodType, authMethodId, context}`): `Lit.Auth.authMethodContexts`.
    pub auth_method_contexts: Vec<serde_json::Value>,
    /// More fields of `Lit.Auth`, each added unless `Lit.Auth` has it already (a custom auth
    /// action deciding a session grant sees `sessionKey` and `pkpPublicKey` here).
    pub auth_extra: serde_json::Map<String, serde_json::Value>,
    /// What `Date.now()` returns, in milliseconds, the same on every node.
    pub now_ms: u64,
}

/// Longest `keyId` a `claimKey` takes, in bytes.
pub const MAX_CLAIM_KEY_ID: usize = 256;

/// Runtime settings shared by every run of a node.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The limits of each run.
    pub limits: Limits,
    /// ethers v5's UMD bundle (`ethers/dist/ethers.umd.min.js`), evaluated when an action first
    /// touches `ethers`. Without it, `ethers` throws a clear error.
    pub ethers_bundle: Option<PathBuf>,
}

/// What a run leaves behind, also when it failed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The last `Lit.Actions.setResponse` value (children of `call` share it with their parent).
    pub response: Option<String>,
    /// The last value the top-level action set itself: what a decision (custom auth) reads, so a
    /// child it calls cannot answer for it.
    pub root_response: Option<String>,
    /// Console lines, in order.
    pub logs: Vec<String>,
    /// `Ok` when the action finished without an uncaught error.
    pub result: Result<(), ActionError>,
}

/// A request from the action to the node. Byte strings are hex without `0x`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum HostOp {
    /// Sign a 32-byte hash with a PKP; with `combine`, gather the other nodes' shares and resolve
    /// to the whole signature instead of sending the share to the client.
    Sign {
        /// The hash.
        to_sign: String,
        /// The PKP's public key (65 or 33 bytes).
        public_key: String,
        /// The name the client sees the signature under.
        sig_name: String,
        /// `signAndCombineEcdsa` / `signAndCombine`.
        combine: bool,
        /// Lit's `signingScheme` (absent: `EcdsaK256Sha256`).
        #[serde(default)]
        signing_scheme: Option<String>,
    },
    /// Sign the EIP-191 hash of a message.
    SignMessage {
        /// The message bytes.
        message: String,
        /// The PKP's public key.
        public_key: String,
        /// The name the client sees the signature under.
        sig_name: String,
    },
    /// An HTTP request.
    Fetch {
        /// Absolute URL.
        url: String,
        /// Upper-case method.
        method: String,
        /// Request headers.
        headers: BTreeMap<String, String>,
        /// Request body, base64. The answer is `{status, statusText, headers, url, redirected,
        /// body}` with the body in base64 too.
        body: Option<String>,
    },
    /// The run's 32-byte random seed, hex (asked once per run, when it first draws randomness;
    /// the run waits for it). Every node of the run must answer the same seed, and no caller may
    /// be able to compute it.
    Randomness,
    /// Whether this node runs `runOnce` block `name` (one node does).
    RunOnceLeader {
        /// The block's name.
        name: String,
    },
    /// The leader tells the others the result of block `name`.
    RunOncePublish {
        /// The block's name.
        name: String,
        /// Its result.
        value: String,
    },
    /// Wait for the leader's result of block `name`.
    RunOnceWait {
        /// The block's name.
        name: String,
    },
    /// Send `value` to every node and collect every node's value for `name`.
    Broadcast {
        /// The round's name.
        name: String,
        /// This node's value.
        value: String,
    },
    /// The RPC URL of a chain.
    RpcUrl {
        /// Chain name.
        chain: String,
    },
    /// `isPermittedAction`.
    IsPermittedAction {
        /// 0x-hex token id.
        token_id: String,
        /// Base58 CID.
        ipfs_id: String,
    },
    /// `isPermittedAddress`.
    IsPermittedAddress {
        /// 0x-hex token id.
        token_id: String,
        /// 0x address.
        address: String,
    },
    /// `isPermittedAuthMethod`.
    IsPermittedAuthMethod {
        /// 0x-hex token id.
        token_id: String,
        /// Auth method type.
        auth_method_type: u64,
        /// Auth method id (hex).
        user_id: String,
    },
    /// `signAsAction`: sign with the running action's own key (derived from its CID; no mint)
    /// and resolve to the whole signature.
    SignAsAction {
        /// The message (hex); the scheme hashes it.
        message: String,
        /// The name of the signature.
        sig_name: String,
        /// Lit's scheme name (`EcdsaK256Sha256`).
        signing_scheme: String,
    },
    /// `claimKey`: the network's attestation of the PKP the running action claims as `keyId`
    /// (derived from its CID and `keyId`), for whoever mints it. Resolves to the claim's
    /// `derivedKeyId`, also where the node made no attestation share (the client learns that).
    ClaimKey {
        /// The action's name for the key (a user id, say): at most [`MAX_CLAIM_KEY_ID`] bytes.
        key_id: String,
        /// Which of the claim's three attestation attempts (0 unless an earlier one failed).
        #[serde(default)]
        attempt: u8,
    },
    /// `getActionPublicKey`: the public key of action `cid` (0x-hex, uncompressed).
    ActionPublicKey {
        /// Base58 CID.
        cid: String,
        /// Lit's scheme name.
        signing_scheme: String,
    },
    /// `verifyActionSignature`: whether `signature` (as `signAsAction` resolved) signs `message`
    /// under action `cid`'s key.
    VerifyActionSignature {
        /// Base58 CID.
        cid: String,
        /// Lit's scheme name.
        signing_scheme: String,
        /// The message (hex).
        message: String,
        /// The signature, as `signAsAction` resolved it.
        signature: String,
    },
    /// `getPermittedAuthMethodScopes`: whether each scope id below `max_scope_id` is on.
    PermittedAuthMethodScopes {
        /// 0x-hex token id.
        token_id: String,
        /// Auth method type.
        auth_method_type: u64,
        /// Auth method id (hex).
        user_id: String,
        /// How many scope ids to answer for (at most 256).
        max_scope_id: u64,
    },
    /// `getLatestNonce`: the transaction count of `address` on `chain` (0x-hex).
    LatestNonce {
        /// 0x address.
        address: String,
        /// Chain name.
        chain: String,
    },
    /// `callContract`: an `eth_call` of a serialized (unsigned) transaction on `chain`; the
    /// answer is the returned data, 0x-hex.
    CallContract {
        /// Chain name.
        chain: String,
        /// The transaction, as ethers' `serializeTransaction` makes it (hex).
        txn: String,
    },
    /// `getPermittedActions`.
    PermittedActions {
        /// 0x-hex token id.
        token_id: String,
    },
    /// `getPermittedAddresses`.
    PermittedAddresses {
        /// 0x-hex token id.
        token_id: String,
    },
    /// `getPermittedAuthMethods`.
    PermittedAuthMethods {
        /// 0x-hex token id.
        token_id: String,
    },
    /// The code of the action with this CID (`Lit.Actions.call`); the runtime checks the hash.
    LoadAction {
        /// Base58 CID.
        cid: String,
    },
    /// `checkConditions`: whether access-control conditions hold for the caller.
    CheckConditions {
        /// `{accessControlConditions | evmContractConditions | unifiedAccessControlConditions: [...]}`.
        conditions: serde_json::Value,
        /// The caller's auth signature; without it, the run's own (`Lit.Auth.authSigAddress`).
        auth_sig: Option<serde_json::Value>,
    },
    /// `encrypt`: encrypts to the network key under conditions (one node encrypts, the prelude
    /// shares its ciphertext through `runOnce`, so every node returns the same one).
    Encrypt {
        /// As for `CheckConditions`.
        conditions: serde_json::Value,
        /// The plaintext, hex.
        data: String,
    },
    /// `decryptAndCombine` (every node gets the plaintext) or `decryptToSingleNode` (only the
    /// `runOnce` leader does; the others resolve to `null`).
    Decrypt {
        /// As for `CheckConditions`.
        conditions: serde_json::Value,
        /// The ciphertext, base64.
        ciphertext: String,
        /// SHA-256 of the plaintext, hex.
        data_to_encrypt_hash: String,
        /// As for `CheckConditions`.
        auth_sig: Option<serde_json::Value>,
        /// `decryptToSingleNode`.
        single_node: bool,
    },
}

/// A failed host operation, as the action sees it (a rejected promise).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HostError {
    /// Stable code (as in the HTTP API).
    pub code: String,
    /// Human message.
    pub message: String,
}

impl HostError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Where a host sends the result of one operation; it may be finished from any thread.
pub struct Completion {
    id: u64,
    tx: mpsc::Sender<(u64, Result<serde_json::Value, HostError>)>,
}

impl Completion {
    /// The operation's id, as [`Host::cancel`] names it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Delivers the result. A run that has already ended ignores it.
    pub fn finish(self, result: Result<serde_json::Value, HostError>) {
        let _ = self.tx.send((self.id, result));
    }
}

/// What the node does for actions.
pub trait Host: Send + Sync + 'static {
    /// Starts `op` for the action with CID `action` (the top of its `actionIpfsIdStack`) and
    /// returns at once; `done` is finished when the operation completes.
    fn start(&self, op: HostOp, action: &str, done: Completion);

    /// The run no longer waits for operation `id` (an aborted `fetch`): stop it if it still runs.
    fn cancel(&self, id: u64) {
        let _ = id;
    }

    /// The run is over: stop whatever of its operations still runs (those it cancelled, or all
    /// of them when it failed or ran out of time).
    fn finished(&self) {}
}
