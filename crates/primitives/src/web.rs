//! The bodies of every `/web` endpoint, requests and answers, declared once so the node
//! (`sigil-node`) and the clients (`sigil-client`, the CLI) cannot drift apart.

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
    /// Each node's public share of the ECDSA root (SEC1 compressed hex) by node id, to check
    /// Schnorr signature shares one by one (empty until ready). A client trusts a map only when
    /// `t` nodes report it identically (at least one of them honest) and it fits the recorded root.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub ecdsa_public_shares: std::collections::BTreeMap<u32, String>,
}

/// A signature scheme a PKP signs with, named as Lit's `signingScheme` names it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningScheme {
    /// ECDSA over secp256k1 of a 32-byte prehash (Ethereum, Cosmos, Bitcoin P2WPKH).
    #[default]
    EcdsaK256Sha256,
    /// BIP-340 Schnorr over secp256k1 under the PKP's BIP-341 taproot output key (Bitcoin P2TR
    /// key-path spends); the 32-byte message is signed as given.
    SchnorrK256Taproot,
}

impl SigningScheme {
    /// Every scheme, as the API names them.
    pub const ALL: [SigningScheme; 2] = [Self::EcdsaK256Sha256, Self::SchnorrK256Taproot];

    /// The scheme's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaK256Sha256 => "EcdsaK256Sha256",
            Self::SchnorrK256Taproot => "SchnorrK256Taproot",
        }
    }

    /// The scheme named `name` (Lit's spelling), if Sigil signs with it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether this is the default scheme (ECDSA), left out of request bodies.
    pub fn is_ecdsa(&self) -> bool {
        *self == Self::EcdsaK256Sha256
    }
}

/// The request header in which a client names the epoch it connected in: a node of a later epoch
/// answers `EPOCH_CHANGED` (409), and the client connects again.
pub const EPOCH_HEADER: &str = "x-sigil-epoch";

/// `GET /web/epoch/confirmation` answer: the new root key shares a node holds for the epoch
/// NodeSet's admin proposed (after the reshare), with its signature for `NodeSet.confirmEpoch`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EpochConfirmation {
    /// The node that answered.
    pub node_id: u32,
    /// The proposed epoch.
    pub epoch: u64,
    /// The proposal the shares were reshared for (NodeSet's proposal id).
    pub proposal_id: u64,
    /// ECDSA root public key, SEC1 compressed hex (the same as the current epoch's).
    pub ecdsa_public_key: String,
    /// BLS root public key (G1, compressed) hex (the same as the current epoch's).
    pub bls_public_key: String,
    /// Each proposed node's new BLS public key share (G1, compressed hex), by node id.
    pub bls_public_shares: std::collections::BTreeMap<u32, String>,
    /// The mint attester (the same as the current epoch's).
    pub attester: String,
    /// The node's signature (65 bytes r ‖ s ‖ v, hex) over
    /// `sigil_chain::vouch::confirmation_digest` of this record (absent without a chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
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
    /// The PKP public key, 65 bytes uncompressed hex; for `SchnorrK256Taproot`, the 32-byte
    /// x-only taproot output key the signature verifies under.
    pub public_key: String,
    /// The one-time material used (a presignature, or Schnorr nonces), `pool:seq`.
    pub presignature: String,
    /// Its holders.
    pub participants: Vec<u32>,
    /// Shares needed.
    pub threshold: usize,
    /// The scheme the share is of.
    #[serde(default, skip_serializing_if = "SigningScheme::is_ecdsa")]
    pub signing_scheme: SigningScheme,
    /// Schnorr only: the signing set's nonce commitments (node id → 66 bytes hex), which the
    /// combiner needs with the shares; every holder reports the same ones.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub commitments: std::collections::BTreeMap<u32, String>,
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
    /// The keys the action claimed (`Lit.Actions.claimKey`), by its `keyId`. Each one's
    /// attestation share is in `signatures` under `claim/{keyId}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub claims: std::collections::BTreeMap<String, ActionClaim>,
}

/// A key an action claimed: the PKP derived from the claiming action's CID and the action's
/// `keyId`, which PKPHelper `claimActionKey` mints with the network's attestation.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActionClaim {
    /// The claiming action's IPFS CIDv0 (a child of `call` claims as itself).
    pub cid: String,
    /// Lit's `derivedKeyId`: `keccak256(utf8(cid ‖ "_" ‖ keyId))`, hex.
    pub derived_key_id: String,
    /// The PKP's key id (`PKPHelper.actionClaimKeyIdFor(cid, derivedKeyId)`), hex.
    pub key_id: String,
    /// The PKP's public key, 65 bytes uncompressed hex.
    pub public_key: String,
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
    /// The scheme signed with.
    #[serde(default, skip_serializing_if = "SigningScheme::is_ecdsa")]
    pub signing_scheme: SigningScheme,
    /// Schnorr only: the PKP's key id (hex), which a combiner needs to check each share against
    /// its node's derived public share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
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

/// `POST /web/pkp/sign` body.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignRequest {
    /// The PKP's key id (32 bytes hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The PKP's public key (65 bytes uncompressed hex), if the node has seen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The PKP's token id (32 bytes hex), if the node has seen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The 32-byte prehash: hex or an array of bytes. Give this or `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_sign: Option<serde_json::Value>,
    /// A personal message (hex, at most 16 KiB) that the node hashes as EIP-191 itself, so auth
    /// methods permitted for personal messages only (scope 2) may sign it. Give this or `toSign`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// 16 random bytes (hex), the same at every node for one signature.
    pub request_id: String,
    /// EIP-4361 auth signature (`{sig, derivedVia, signedMessage, address}`) of the PKP's owner,
    /// a permitted address or a permitted Ethereum-wallet auth method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_sig: Option<serde_json::Value>,
    /// Session signatures (Lit's `sessionSigs`), keyed by node URL as NodeSet lists it: each node
    /// reads its own entry. A node's own entry may also come in `authSig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_sigs: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Node ids to leave out of the signing set (a retry after they failed or sent a bad share).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<u32>,
    /// The scheme to sign with (default `EcdsaK256Sha256`).
    #[serde(default, skip_serializing_if = "SigningScheme::is_ecdsa")]
    pub signing_scheme: SigningScheme,
}

/// Tries (each a presignature at most) one mint request pays for.
pub const ATTESTATION_ATTEMPTS: u8 = 3;

/// `POST /web/pkp/mint-attestation` body: who mints, and how.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestRequest {
    /// The mint's salt (32 bytes hex). The key id is computed by the node from the authenticated
    /// minter: `keccak256(minter ‖ salt)`, or through PKPHelper
    /// `keccak256(helper ‖ keccak256(minter ‖ salt))`.
    pub salt: String,
    /// The mint goes through PKPHelper (`mintWithPermissions`, `mintGrantBurn`).
    #[serde(default)]
    pub via_helper: bool,
    /// Accepted for compatibility and ignored: the request id of an attestation is derived from
    /// the key id and `attempt`, so one paid mint request spends at most
    /// [`ATTESTATION_ATTEMPTS`] presignatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Which try this is (0, 1 or 2): a retry after a failed signing set.
    #[serde(default)]
    pub attempt: u8,
    /// The minter's auth signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_sig: Option<serde_json::Value>,
    /// Session signatures (Lit's `sessionSigs`), keyed by node URL as NodeSet lists it: each node
    /// reads its own entry. A node's own entry may also come in `authSig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_sigs: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Node ids to leave out of the signing set.
    #[serde(default)]
    pub exclude: Vec<u32>,
}

/// `POST /web/execute` body.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The action's code. Give this or `ipfsId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The action's IPFS CIDv0, for code stored with `POST /web/actions` or on the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipfs_id: Option<String>,
    /// Parameters: each field becomes a global, and the whole object `jsParams`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_params: Option<serde_json::Value>,
    /// The caller's auth signature (`Lit.Auth.authSigAddress`); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_sig: Option<serde_json::Value>,
    /// Session signatures (Lit's `sessionSigs`), keyed by node URL as NodeSet lists it: each node
    /// reads its own entry. A node's own entry may also come in `authSig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_sigs: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// 16 random bytes (hex), the same at every node: seeds `Math.random` and names signatures.
    pub request_id: String,
    /// What `Date.now()` returns (ms since 1970), the same at every node; within 5 minutes of
    /// the node's clock. Without it, the node's clock is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
}

/// `POST /web/actions` body.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreRequest {
    /// The action's code.
    pub code: String,
}

/// `POST /web/encryption/sign` body (Lit's field names).
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptionSignRequest {
    /// `evmBasic` conditions. Give exactly one of the three condition fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_conditions: Option<serde_json::Value>,
    /// `evmContract` conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evm_contract_conditions: Option<serde_json::Value>,
    /// Conditions tagged with `conditionType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified_access_control_conditions: Option<serde_json::Value>,
    /// SHA-256 of the plaintext, hex.
    pub data_to_encrypt_hash: String,
    /// The caller's auth signature: whose `:userAddress` the conditions test. Without it,
    /// conditions that name `:userAddress` do not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_sig: Option<serde_json::Value>,
    /// Session signatures (Lit's `sessionSigs`), keyed by node URL as NodeSet lists it: each node
    /// reads its own entry. A node's own entry may also come in `authSig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_sigs: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Accepted for compatibility; each condition names its own chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Accepted for compatibility; the node answers with its current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// An auth method as a request carries it (Lit's shape): its type and the proof of it.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthMethod {
    /// Lit's type number: 1 Ethereum wallet, 3 WebAuthn passkey, 4 Discord, 6 OIDC (Google) JWT.
    pub auth_method_type: u64,
    /// The proof: an auth signature (JSON), a WebAuthn assertion (JSON), a JWT, an access token.
    pub access_token: String,
}

/// A resource and the ability wanted on it (Lit's `resourceAbilityRequests` entry).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAbility {
    /// The resource.
    pub resource: Resource,
    /// `pkp-signing`, `lit-action-execution` or `access-control-condition-decryption`.
    pub ability: String,
}

/// A resource as Lit names it: `{resource: "<tokenId>|<cid>|<hash>|*", resourcePrefix: "lit-pkp"}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// The part after `://`; `*` for every resource of the kind.
    pub resource: String,
    /// `lit-pkp`, `lit-litaction` or `lit-accesscontrolcondition`.
    pub resource_prefix: String,
}

/// `POST /web/sign_session_key` body: auth methods prove who asks, and the network answers with
/// its BLS signature shares over a SIWE capability for the PKP's session key.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignSessionKeyRequest {
    /// The session's ed25519 public key, hex (32 bytes).
    pub session_key: String,
    /// Proofs of the auth methods; the PKP must permit each (with a signing scope).
    #[serde(default)]
    pub auth_methods: Vec<AuthMethod>,
    /// The PKP (65 bytes uncompressed hex) the session acts for.
    pub pkp_public_key: String,
    /// What the session may do; `*` resources allowed.
    pub resource_ability_requests: Vec<ResourceAbility>,
    /// A recent block hash of the network's chain (the SIWE nonce).
    pub nonce: String,
    /// RFC 3339: when the capability starts (within the clock skew of every node).
    pub issued_at: String,
    /// RFC 3339: when it ends.
    pub expiration: String,
    /// Custom auth: the action (its CIDv0, which the PKP must permit) that decides, given
    /// `jsParams`; the session is granted only if it `setResponse`s `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lit_action_ipfs_id: Option<String>,
    /// Custom auth: the action's code (its CID must be permitted). Give this or `litActionIpfsId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Parameters of the custom auth action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_params: Option<serde_json::Value>,
    /// 16 random bytes (hex), the same at every node: names the custom auth run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Accepted for compatibility: always BLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve_type: Option<String>,
    /// Accepted for compatibility; the node answers with its current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// `POST /web/sign_session_key` answer: one node's share of the capability.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SignSessionKeyResponse {
    /// The node that answered.
    pub node_id: u32,
    /// Its BLS signature share (hex) over the capability (`sigil_chain::session::capability_identity`).
    pub signature_share: String,
    /// The SIWE capability it signed; every honest node signs the same text.
    pub siwe_message: String,
    /// The PKP's Ethereum address (the capability's `address`).
    pub pkp_eth_address: String,
}

/// `POST /web/pkp/claim` body: the attestation for the PKP derived from an auth method, which
/// the caller proves (PKPHelper `claimKey`). The mint of its key id must be requested first.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    /// The auth method and its proof.
    pub auth_method: AuthMethod,
    /// Which try this is (0, 1 or 2).
    #[serde(default)]
    pub attempt: u8,
    /// Node ids to leave out of the signing set.
    #[serde(default)]
    pub exclude: Vec<u32>,
}

/// `POST /web/auth_method_id` body: an auth method whose proof the node checks.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthMethodIdRequest {
    /// The auth method and its proof.
    pub auth_method: AuthMethod,
}

/// `POST /web/auth_method_id` answer: the proven auth method's id, and the key it may claim.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthMethodIdResponse {
    /// Lit's type number.
    pub auth_method_type: u64,
    /// Its id, 0x-hex (what PKPPermissions lists).
    pub auth_method_id: String,
    /// The key id it may claim through PKPHelper, 0x-hex.
    pub claim_key_id: String,
}
