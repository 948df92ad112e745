//! Deploying Sigil's contracts from their compiled artifacts (`contracts/out`, written by
//! `forge build`), and the admin calls that register a network in NodeSet.

use std::path::{Path, PathBuf};

use alloy::network::{ReceiptResponse, TransactionBuilder};
use alloy::primitives::{Address, Bytes, FixedBytes};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;

use crate::bindings::NodeSet;
use crate::registry::ListedNode;
use crate::vouch::RootKeys;
use crate::{ChainError, Contracts};

/// A provider that signs and sends transactions as `signer`.
pub fn wallet_provider(url: &str, signer: PrivateKeySigner) -> Result<DynProvider, ChainError> {
    let parsed = url.parse().map_err(|e| ChainError::Rpc {
        url: url.to_string(),
        reason: format!("not a URL: {e}"),
    })?;
    Ok(ProviderBuilder::new().wallet(signer).connect_http(parsed).erased())
}

/// The creation bytecode of contract `name` from `out/<name>.sol/<name>.json`.
pub fn bytecode(artifacts: &Path, name: &str) -> Result<Vec<u8>, ChainError> {
    let path: PathBuf = artifacts.join(format!("{name}.sol")).join(format!("{name}.json"));
    let fail = |reason: String| ChainError::Artifact {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let object = json
        .get("bytecode")
        .and_then(|b| b.get("object"))
        .and_then(|o| o.as_str())
        .ok_or_else(|| fail("no bytecode.object".into()))?;
    let code = hex::decode(object.trim_start_matches("0x")).map_err(|e| fail(format!("bytecode: {e}")))?;
    if code.is_empty() {
        return Err(fail("empty bytecode (an interface or abstract contract?)".into()));
    }
    Ok(code)
}

/// Sends a transaction and waits for its receipt; a revert is an error naming `what`.
pub async fn send(
    provider: &DynProvider,
    request: TransactionRequest,
    what: &str,
) -> Result<alloy::rpc::types::TransactionReceipt, ChainError> {
    let pending = provider
        .send_transaction(request)
        .await
        .map_err(|e| ChainError::Contract {
            contract: "transaction",
            call: "send",
            reason: format!("{what}: {e}"),
        })?;
    let receipt = pending.get_receipt().await.map_err(|e| ChainError::Contract {
        contract: "transaction",
        call: "receipt",
        reason: format!("{what}: {e}"),
    })?;
    if !receipt.status() {
        return Err(ChainError::Reverted {
            what: what.to_string(),
            tx: receipt.transaction_hash,
        });
    }
    Ok(receipt)
}

/// Deploys contract `name` from `artifacts` with ABI-encoded constructor `args`; returns its address.
pub async fn create(
    provider: &DynProvider,
    artifacts: &Path,
    name: &str,
    args: Vec<u8>,
) -> Result<Address, ChainError> {
    let mut code = bytecode(artifacts, name)?;
    code.extend_from_slice(&args);
    let request = TransactionRequest::default().with_deploy_code(Bytes::from(code));
    let receipt = send(provider, request, &format!("deploy {name}")).await?;
    receipt.contract_address().ok_or_else(|| ChainError::Contract {
        contract: "transaction",
        call: "deploy",
        reason: format!("{name}: the receipt names no contract address"),
    })
}

/// Deploys NodeSet (administered by `admin`), PKPNFT, PKPPermissions and PKPHelper with
/// `provider`'s wallet, and records the PKP contracts in NodeSet. The wallet must be `admin`.
pub async fn deploy(provider: &DynProvider, artifacts: &Path, admin: Address) -> Result<Contracts, ChainError> {
    let node_set = create(provider, artifacts, "NodeSet", admin.abi_encode()).await?;
    let pkp_nft = create(provider, artifacts, "PKPNFT", node_set.abi_encode()).await?;
    let pkp_permissions = create(provider, artifacts, "PKPPermissions", pkp_nft.abi_encode()).await?;
    let pkp_helper = create(
        provider,
        artifacts,
        "PKPHelper",
        (pkp_nft, pkp_permissions).abi_encode_params(),
    )
    .await?;
    let call = NodeSet::new(node_set, provider)
        .setContracts(pkp_nft, pkp_permissions, pkp_helper)
        .into_transaction_request();
    send(provider, call, "NodeSet.setContracts").await?;
    Ok(Contracts {
        node_set,
        pkp_nft,
        pkp_permissions,
        pkp_helper,
    })
}

/// Replaces the node list in NodeSet (admin only); the epoch goes up by one and a pending
/// proposal is cancelled.
pub async fn set_nodes(
    provider: &DynProvider,
    node_set: Address,
    nodes: &[ListedNode],
    threshold: u32,
) -> Result<(), ChainError> {
    let call = NodeSet::new(node_set, provider)
        .setNodes(listed(nodes), threshold)
        .into_transaction_request();
    send(provider, call, "NodeSet.setNodes").await.map(drop)
}

fn listed(nodes: &[ListedNode]) -> Vec<NodeSet::Node> {
    nodes
        .iter()
        .map(|node| NodeSet::Node {
            id: node.id,
            identityKey: FixedBytes(node.identity_key),
            signer: node.signer,
            url: node.url.clone(),
        })
        .collect()
}

/// What NodeSet answered `call` with when it refused it: its error's signature and arguments
/// (`BadNode(uint256) 2`, `NotAdmin(address) 0x70…`) when the revert data names one (every
/// argument of NodeSet's errors is one word: a number or an address), else the RPC's message.
pub(crate) fn refused(call: &'static str, error: &alloy::contract::Error) -> ChainError {
    let named = error.as_revert_data().and_then(|data| {
        let (selector, args) = data.split_at_checked(4)?;
        let signature = NodeSet::NodeSetErrors::signature_by_selector(selector.try_into().ok()?)?;
        let types = signature.split_once('(')?.1.trim_end_matches(')').split(',');
        let words: Vec<String> = args
            .chunks(32)
            .zip(types)
            .map(|(word, kind)| match kind {
                "address" => word
                    .get(12..32)
                    .and_then(|bytes| <[u8; 20]>::try_from(bytes).ok())
                    .map_or_else(|| hex::encode(word), |bytes| Address::from(bytes).to_string()),
                _ => alloy::primitives::U256::from_be_slice(word).to_string(),
            })
            .collect();
        Some(format!("{signature} {}", words.join(" ")).trim_end().to_string())
    });
    let reason = named.unwrap_or_else(|| error.to_string());
    ChainError::Contract {
        contract: "NodeSet",
        call,
        reason,
    }
}

/// Proposes the next epoch in NodeSet (admin only): its node list and threshold. The call is
/// simulated first, so a refusal names NodeSet's reason (`ProposalPending(uint64) 2`,
/// `KeysNotRecorded(uint64) 1`, `BadNode(uint256) 3` for a node that takes another's id or
/// changes its own, `BadThreshold(uint32,uint256) 2 4`).
pub async fn propose_epoch(
    provider: &DynProvider,
    node_set: Address,
    nodes: &[ListedNode],
    threshold: u32,
) -> Result<(), ChainError> {
    let contract = NodeSet::new(node_set, provider);
    let call = contract.proposeEpoch(listed(nodes), threshold);
    call.call().await.map_err(|e| refused("proposeEpoch", &e))?;
    send(provider, call.into_transaction_request(), "NodeSet.proposeEpoch")
        .await
        .map(drop)
}

/// Withdraws the proposed epoch (admin only; `NoProposal` when there is none).
pub async fn cancel_proposal(provider: &DynProvider, node_set: Address) -> Result<(), ChainError> {
    let contract = NodeSet::new(node_set, provider);
    let call = contract.cancelProposal();
    call.call().await.map_err(|e| refused("cancelProposal", &e))?;
    send(provider, call.into_transaction_request(), "NodeSet.cancelProposal")
        .await
        .map(drop)
}

/// Starts the proposed epoch in NodeSet with the record its nodes confirmed and at least its
/// threshold of their signatures over
/// [`confirmation_digest`](crate::vouch::confirmation_digest). Anyone may send it. The call is
/// simulated first, so a refusal names NodeSet's reason (`NotEnoughSignatures(uint256,uint32)`,
/// `KeysChanged()`, `NoProposal()`).
pub async fn confirm_epoch(
    provider: &DynProvider,
    node_set: Address,
    keys: &RootKeys,
    signatures: &[[u8; 65]],
) -> Result<(), ChainError> {
    let contract = NodeSet::new(node_set, provider);
    let call = contract.confirmEpoch(
        keys.ecdsa.clone().into(),
        keys.bls.clone().into(),
        FixedBytes(keys.bls_shares),
        keys.attester,
        signatures.iter().map(|s| s.to_vec().into()).collect(),
    );
    call.call().await.map_err(|e| refused("confirmEpoch", &e))?;
    send(provider, call.into_transaction_request(), "NodeSet.confirmEpoch")
        .await
        .map(drop)
}

/// Records the network's root keys (and so its mint attester) in NodeSet for the current epoch,
/// with at least `threshold` node signatures over [`root_keys_digest`](crate::vouch::root_keys_digest).
/// Anyone may send it: the signatures authorise it.
pub async fn record_keys(
    provider: &DynProvider,
    node_set: Address,
    keys: &RootKeys,
    signatures: &[[u8; 65]],
) -> Result<(), ChainError> {
    let call = NodeSet::new(node_set, provider)
        .recordKeys(
            keys.ecdsa.clone().into(),
            keys.bls.clone().into(),
            FixedBytes(keys.bls_shares),
            keys.attester,
            signatures.iter().map(|s| s.to_vec().into()).collect(),
        )
        .into_transaction_request();
    send(provider, call, "NodeSet.recordKeys").await.map(drop)
}
