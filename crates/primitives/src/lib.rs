//! Sigil's shared wire types: the JSON bodies nodes send and clients read, declared once so the
//! node (`sigil-node`) and the SDK (`sigil-client`) cannot drift apart. No I/O, no logic.

mod cid;

pub use cid::{Cid, CidError};
use serde::{Deserialize, Serialize};

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorFields,
}

/// A stable code and a human message.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    /// Stable code, e.g. `BAD_JSON`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// An action's console output up to the error (`/web/execute` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// `POST /web/handshake` body (optional; other fields are ignored, as Lit's clients send some).
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct HandshakeRequest {
    /// 32 fresh random bytes, hex (`0x` optional): the node signs its answer over them, so an
    /// old answer cannot be replayed. Absent: all zeros.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}

/// `POST /web/handshake` answer.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// This node.
    pub node_id: u32,
    /// Root key epoch.
    pub epoch: u64,
    /// Shares needed.
    pub threshold: usize,
    /// Whether the root keys exist.
    pub ready: bool,
    /// ECDSA root public key, SEC1 compressed hex (absent until ready).
    pub ecdsa_public_key: Option<String>,
    /// BLS root public key (G1, compressed) hex (absent until ready).
    pub bls_public_key: Option<String>,
    /// Each node's BLS public key share (G1, compressed hex) by node id, to check decryption
    /// shares one by one (empty until ready).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub bls_public_shares: std::collections::BTreeMap<u32, String>,
    /// This node's identity key.
    pub identity_key: String,
    /// Every node.
    pub peers: Vec<PeerInfo>,
    /// Software version.
    pub version: String,
    /// The chain this network's registry lives on (absent without a chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// The latest block hash, to use as a SIWE nonce (absent without a chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_blockhash: Option<String>,
    /// The NodeSet contract this node belongs to (absent without a chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_set: Option<String>,
    /// The address of this node's signing key, as NodeSet lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The mint attester derived from the ECDSA root key (absent until ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attester: Option<String>,
    /// This node's signature (65 bytes r ‖ s ‖ v, hex) over `sigil_chain::vouch::handshake_digest`
    /// of this answer and the request's challenge (absent without a chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// This node's signature over the root-key record for `NodeSet.recordKeys`
    /// (`sigil_chain::vouch::root_keys_digest`; absent until ready, or without a chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_signature: Option<String>,
}

/// A node as the handshake lists it.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    /// Node id.
    pub id: u32,
    /// Base URL.
    pub url: String,
    /// Identity key, hex.
    pub key: String,
}

/// `POST /web/pkp/sign` answer: this node's signature share.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SignResponse {
    /// The node.
    pub node_id: u32,
    /// The encoded share, hex.
    pub share: String,
    /// The PKP public key, 65 bytes uncompressed hex.
    pub public_key: String,
    /// The presignature used, `pool:seq`.
    pub presignature: String,
    /// Its holders.
    pub participants: Vec<u32>,
    /// Shares needed.
    pub threshold: usize,
}

/// `POST /web/execute` answer: one node's run of an action.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteResponse {
    /// The node.
    pub node_id: u32,
    /// The action's last `Lit.Actions.setResponse`, if any.
    pub response: Option<String>,
    /// Its console lines.
    pub logs: Vec<String>,
    /// This node's signature shares by `sigName`.
    pub signatures: std::collections::BTreeMap<String, ActionShare>,
    /// Set when the action used `decryptToSingleNode`: the node that decrypted, whose response
    /// is the run's response (the others agree on everything else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_node: Option<u32>,
}

/// A signature an action asked for: what it signs, and this node's share if it holds one of
/// the presignature used.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActionShare {
    /// The 32-byte hash signed, hex.
    pub to_sign: String,
    /// The PKP public key, 65 bytes uncompressed hex.
    pub public_key: String,
    /// The share (`None` when this node holds no share of the presignature).
    pub share: Option<SignResponse>,
}

/// `POST /web/actions` answer.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredAction {
    /// The code's IPFS CIDv0.
    pub cid: String,
    /// Its size in bytes.
    pub size: usize,
}

/// `POST /web/encryption/sign` answer: this node's BLS signature share over the identity, which
/// the client verifies against the node's public share, combines with `t - 1` others and uses
/// to decrypt.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionShare {
    /// The node.
    pub node_id: u32,
    /// The share (blsful encoding), hex.
    pub share: String,
    /// The identity signed: `sigil-acc://{hash(conditions)}/{hash(data)}`.
    pub identity: String,
}
