//! Sigil's view of the EVM chain.
//!
//! - [`bindings`]: `sol!` bindings to the contracts in `contracts/src` (NodeSet, PKPNFT,
//!   PKPPermissions, PKPHelper).
//! - [`registry`]: what a node reads — the node set, token owners and permissions — with a short
//!   cache that the contracts' events invalidate, and block lookups for SIWE nonce freshness.
//! - [`deploy`]: deploying the compiled contracts (for `sigil dev` and tests).
//! - [`siwe`]: EIP-4361 auth signatures (`authSig`), checked without chain access.
//! - [`vouch`]: what nodes sign for the chain and for clients (the root-key record, handshakes).
//!
//! The mint attestation format lives here too, because the contract, the nodes and the client
//! must agree on it byte for byte.

pub mod bindings;
pub mod deploy;
pub mod registry;
pub mod session;
pub mod siwe;
pub mod verify;
pub mod vouch;

pub use alloy;
use alloy::primitives::{keccak256, Address, B256, U256};
use serde::{Deserialize, Serialize};

/// The reserved key id of the network's mint attester: the attester key is derived from the
/// root key like a PKP, under this id, which no mint can produce (a minted key id is
/// `keccak256(minter ‖ salt)`, 52 bytes hashed, never this domain string).
pub fn attester_key_id() -> [u8; 32] {
    keccak256(b"sigil/mint-attester/v1").0
}

/// What the network signs before a PKP can be minted:
/// `keccak256("sigil-mint-attestation-v1" ‖ chainId (32 bytes) ‖ PKPNFT address (20) ‖ keyId (32) ‖ pubkey (65))`.
pub fn attestation_digest(chain_id: u64, pkp_nft: Address, key_id: &[u8; 32], pubkey: &[u8; 65]) -> [u8; 32] {
    let mut data = Vec::with_capacity(25 + 32 + 20 + 32 + 65);
    data.extend_from_slice(b"sigil-mint-attestation-v1");
    data.extend_from_slice(&U256::from(chain_id).to_be_bytes::<32>());
    data.extend_from_slice(pkp_nft.as_slice());
    data.extend_from_slice(key_id);
    data.extend_from_slice(pubkey);
    keccak256(&data).0
}

/// The key id PKPNFT fixes for a mint by `minter` with `salt`: `keccak256(minter ‖ salt)`; through
/// PKPHelper at `helper` the contract's minter is the helper and the salt `keccak256(minter ‖ salt)`.
pub fn mint_key_id(minter: Address, salt: &[u8; 32], helper: Option<Address>) -> [u8; 32] {
    let direct = |minter: Address, salt: &[u8]| keccak256([minter.as_slice(), salt].concat());
    match helper {
        None => direct(minter, salt).0,
        Some(helper) => direct(helper, direct(minter, salt).as_slice()).0,
    }
}

/// Key id of the PKP that auth method (`kind`, `id`) may claim through PKPHelper at `helper`
/// (`PKPHelper.claimKeyIdFor`): `keccak256(helper ‖ keccak256("sigil-claim-v1" ‖ kind ‖ keccak256(id)))`.
pub fn claim_key_id(helper: Address, kind: u64, id: &[u8]) -> [u8; 32] {
    let salt = keccak256(
        [
            b"sigil-claim-v1".as_slice(),
            &U256::from(kind).to_be_bytes::<32>(),
            keccak256(id).as_slice(),
        ]
        .concat(),
    );
    keccak256([helper.as_slice(), salt.as_slice()].concat()).0
}

/// The `derivedKeyId` of `Lit.Actions.claimKey({ keyId })` run by action `cid` (its `Qm…` text):
/// `keccak256(utf8(cid ‖ "_" ‖ keyId))`, as Lit computes it.
pub fn action_claim_derived_key_id(cid: &str, key_id: &str) -> [u8; 32] {
    keccak256(format!("{cid}_{key_id}").as_bytes()).0
}

/// Key id of the PKP that action `cid` (its 34-byte multihash) claims as `derived`
/// (`PKPHelper.actionClaimKeyIdFor`):
/// `keccak256(helper ‖ keccak256("sigil-action-claim-v1" ‖ cid ‖ derived))`.
pub fn action_claim_key_id(helper: Address, cid: &[u8], derived: &[u8; 32]) -> [u8; 32] {
    let salt = keccak256([b"sigil-action-claim-v1".as_slice(), cid, derived.as_slice()].concat());
    keccak256([helper.as_slice(), salt.as_slice()].concat()).0
}

/// A PKP's token id: `uint256(keccak256(uncompressed public key))`.
pub fn token_id(pubkey: &[u8; 65]) -> U256 {
    U256::from_be_bytes(keccak256(pubkey).0)
}

/// The deployed contracts, by contract name (as in `network.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contracts {
    /// The node registry, and the root of discovery: it names the other three.
    #[serde(rename = "NodeSet")]
    pub node_set: Address,
    /// The PKP NFT.
    #[serde(rename = "PKPNFT")]
    pub pkp_nft: Address,
    /// Permissions per PKP.
    #[serde(rename = "PKPPermissions")]
    pub pkp_permissions: Address,
    /// Mint-with-permissions and Mint/Grant/Burn.
    #[serde(rename = "PKPHelper")]
    pub pkp_helper: Address,
}

/// Errors talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The JSON-RPC endpoint failed or answered with an error.
    #[error("chain RPC {url}: {reason}")]
    Rpc {
        /// The endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A contract call reverted or returned something unexpected.
    #[error("{contract}.{call}: {reason}")]
    Contract {
        /// Contract name.
        contract: &'static str,
        /// Function name.
        call: &'static str,
        /// Revert reason or decoding error.
        reason: String,
    },
    /// A compiled contract could not be read.
    #[error("contract artifact {path}: {reason} (run `make contracts`)")]
    Artifact {
        /// The artifact file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A transaction was mined but reverted.
    #[error("transaction {tx} ({what}) reverted")]
    Reverted {
        /// What the transaction did.
        what: String,
        /// Its hash.
        tx: B256,
    },
}
