//! What nodes say to each other inside sealed envelopes.

use serde::{Deserialize, Serialize};

const PROTOCOL: u8 = 1;
const START: u8 = 2;
const STORED: u8 = 3;
const ACTION: u8 = 4;
const FAILED: u8 = 5;
/// Slots one discard notice may name.
pub const MAX_DISCARDED: usize = 1024;
/// Largest value one node sends another for an action (runOnce, broadcastAndCollect, shares).
pub const MAX_ACTION_VALUE: usize = 1 << 20;

/// A one-way message (`POST /mesh/send`).
#[derive(Debug)]
pub enum Message {
    /// A protocol message for session `.0`.
    Protocol([u8; 32], Vec<u8>),
    /// The pool owner asks the participants to make one presignature.
    Start(Start),
    /// A participant tells the pool owner it stored its share of presignature `seq`.
    Stored(u64),
    /// A participant tells the pool owner that presignature `seq` failed, and which participants
    /// it never heard from (so the owner leaves them out of new signing sets for a while).
    Failed {
        /// Sequence number in the owner's pool.
        seq: u64,
        /// Participants that sent nothing before the deadline.
        silent: Vec<u32>,
    },
    /// A value for the other nodes running the same action request.
    Action {
        /// The execute request's id.
        request: [u8; 16],
        /// What it is for (`once/NAME`, `collect/NAME`, `combine/SIGNAME`).
        topic: String,
        /// The value.
        value: String,
    },
}

#[derive(Serialize, Deserialize)]
struct ActionValue {
    topic: String,
    value: String,
}

/// An order to make presignature `seq` of the sender's pool among `participants`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Start {
    /// Sequence number in the owner's pool.
    pub seq: u64,
    /// The signing set, sorted: exactly `t` nodes, each of which will hold a share.
    pub participants: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct FailedNotice {
    seq: u64,
    silent: Vec<u32>,
}

impl Message {
    /// `1 | session:32 | bytes`, `2 | json`, `3 | seq:u64`, `4 | request:16 | json` or `5 | json`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Protocol(session, bytes) => [&[PROTOCOL][..], session, bytes].concat(),
            Self::Start(start) => {
                let mut out = vec![START];
                out.extend(serde_json::to_vec(start).unwrap_or_default());
                out
            }
            Self::Stored(seq) => [&[STORED][..], &seq.to_be_bytes()].concat(),
            Self::Failed { seq, silent } => {
                let mut out = vec![FAILED];
                out.extend(
                    serde_json::to_vec(&FailedNotice {
                        seq: *seq,
                        silent: silent.clone(),
                    })
                    .unwrap_or_default(),
                );
                out
            }
            Self::Action { request, topic, value } => {
                let mut out = vec![ACTION];
                out.extend_from_slice(request);
                out.extend(
                    serde_json::to_vec(&ActionValue {
                        topic: topic.clone(),
                        value: value.clone(),
                    })
                    .unwrap_or_default(),
                );
                out
            }
        }
    }

    /// Decodes a message; errors say what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&PROTOCOL, rest)) => {
                let (session, body) = rest
                    .split_at_checked(32)
                    .ok_or("protocol message without a session id")?;
                let session = <[u8; 32]>::try_from(session).map_err(|_| "session id")?;
                Ok(Self::Protocol(session, body.to_vec()))
            }
            Some((&START, rest)) => serde_json::from_slice(rest)
                .map(Self::Start)
                .map_err(|e| format!("start order: {e}")),
            Some((&STORED, rest)) => <[u8; 8]>::try_from(rest)
                .map(|b| Self::Stored(u64::from_be_bytes(b)))
                .map_err(|_| "stored notice: expected an 8-byte sequence number".into()),
            Some((&FAILED, rest)) => {
                let notice: FailedNotice = serde_json::from_slice(rest).map_err(|e| format!("failure notice: {e}"))?;
                if notice.silent.len() > sigil_tss::MAX_PARTIES {
                    return Err("failure notice names too many nodes".into());
                }
                Ok(Self::Failed {
                    seq: notice.seq,
                    silent: notice.silent,
                })
            }
            Some((&ACTION, rest)) => {
                let (request, body) = rest.split_at_checked(16).ok_or("action message without a request id")?;
                let request = <[u8; 16]>::try_from(request).map_err(|_| "request id")?;
                let ActionValue { topic, value } =
                    serde_json::from_slice(body).map_err(|e| format!("action message: {e}"))?;
                if value.len() > MAX_ACTION_VALUE || topic.len() > 1024 {
                    return Err("action message too large".into());
                }
                Ok(Self::Action { request, topic, value })
            }
            Some((kind, _)) => Err(format!("unknown message kind {kind}")),
            None => Err("empty message".into()),
        }
    }
}

/// A request over `POST /mesh/call`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Call {
    /// Liveness and key check.
    Ping,
    /// On start: the highest take counter the peer has seen from the caller (rollback check).
    Witness,
    /// A holder tells the pool owner it will never use its shares of these slots (taken ahead of
    /// their requests before it restarted), so the owner drops them instead of allocating them;
    /// the holder asks again until it gets [`Reply::Dropped`]. At most [`MAX_DISCARDED`].
    Discard {
        /// Sequence numbers in the owner's pool.
        seqs: Vec<u64>,
    },
    /// Asks the allocator for the presignature of one sign request.
    Allocate {
        /// The client's request id, the same at every node.
        request: String,
        /// `sha256(keyId | hash)`, hex: binds the allocation to one key and one message.
        digest: String,
        /// Nodes the client wants left out of the signing set (it named them before).
        #[serde(default)]
        exclude: Vec<u32>,
        /// When the asking node sent this call (unix seconds): the allocator refuses calls older
        /// than its replay window, so a replayed call cannot spend a presignature.
        #[serde(default)]
        at: u64,
        /// The scheme whose material the request needs.
        #[serde(default, skip_serializing_if = "sigil_primitives::SigningScheme::is_ecdsa")]
        scheme: sigil_primitives::SigningScheme,
    },
    /// The leader of a reshare into the proposed epoch asks the caller's peer to run its part
    /// (`crate::reshare`); the peer checks the run against the proposal it read from NodeSet.
    Reshare {
        /// The proposal's id in NodeSet.
        proposal: u64,
        /// The leader's number for this run.
        run: u64,
        /// The dealers: nodes of the current epoch, at least its threshold.
        dealers: Vec<u32>,
        /// The current epoch's public key packages (ECDSA, BLS; hex), for a joining node: it
        /// checks them against NodeSet's record before it uses them.
        #[serde(default)]
        packages: (String, String),
    },
    /// Which new shares of `proposal` the peer holds ([`Reply::NextKeys`]).
    NextKeys {
        /// The proposal's id in NodeSet.
        proposal: u64,
    },
}

/// A presignature bound to one sign request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// The pool owner (the allocator).
    pub pool: u32,
    /// Slot in the pool.
    pub seq: u64,
    /// Holders of the presignature: its signing set of exactly `t` nodes.
    pub participants: Vec<u32>,
    /// Re-randomisation entropy fixed by the allocator, hex.
    pub entropy: String,
    /// What it was allocated for, hex.
    pub digest: String,
}

/// A reply over `POST /mesh/call`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Reply {
    /// To [`Call::Ping`].
    Pong {
        /// Whether the root keys exist on that node.
        ready: bool,
        /// The epoch that node runs (a peer of another epoch is not ready for this one's work).
        #[serde(default)]
        epoch: u64,
        /// Presignatures that node ever took (its store's take counter).
        #[serde(default)]
        takes: u64,
        /// That node's signature over `takes` (`crate::vouch`), hex; peers hand it back in
        /// [`Reply::Witnessed`].
        #[serde(default)]
        proof: String,
    },
    /// To [`Call::Witness`].
    Witnessed {
        /// The highest take counter seen from the caller (0: never seen).
        takes: u64,
        /// The caller's own signature over it, as it sent it (empty when never seen).
        #[serde(default)]
        proof: String,
    },
    /// To [`Call::Allocate`].
    Allocated(Allocation),
    /// To [`Call::Discard`]: the slots the caller holds are out of the pool.
    Dropped {
        /// Slots removed.
        count: usize,
    },
    /// To [`Call::Reshare`]: the peer runs its part.
    Resharing,
    /// To [`Call::NextKeys`]: the confirmation digests of the reshared records held (hex).
    NextKeys {
        /// `confirmationDigest` of each record, hex (at most `epoch::MAX_NEXT`).
        digests: Vec<String>,
    },
    /// A refusal with a stable code.
    Error {
        /// Stable code, as in the HTTP API.
        code: String,
        /// Human message.
        message: String,
    },
}
