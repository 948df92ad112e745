//! Talking to a Sigil network: the `network.json` file that names it (nodes, threshold, chain,
//! contracts, dev wallet), the wallet a command acts as, the auth signatures it makes, the nodes'
//! health, PKP token ids and key ids, and recording the root keys in NodeSet.
//!
//! Every command may use this module. It uses only the library crates (`sigil-client`,
//! `sigil-chain`) and HTTP, never `devnet` nor a command module: a network file works the same
//! whoever started the network.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sigil_chain::alloy::primitives::U256;
use sigil_chain::alloy::providers::DynProvider;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::bindings::PKPNFT;
use sigil_chain::deploy::record_keys as record_keys_on_chain;
use sigil_chain::registry::read_provider;
use sigil_chain::Contracts;
use sigil_client::{key_confirmations, AuthSig, Client, KeyConfirmations};

/// How long the auth signatures the CLI makes stay valid.
pub const AUTH_VALID_FOR: Duration = Duration::from_secs(600);

/// `network.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NetworkFile {
    /// Format version.
    pub version: u32,
    /// Shares needed.
    pub threshold: usize,
    /// Every node.
    pub nodes: Vec<NetworkNode>,
    /// JSON-RPC URL of the chain holding NodeSet and the PKP contracts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_url: Option<String>,
    /// Its chain id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// The contracts, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracts: Option<Contracts>,
    /// A funded wallet for local development (anvil's first account), NodeSet's admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_wallet: Option<DevWallet>,
    /// The anvil `sigil dev` runs for this network, if it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anvil: Option<AnvilInfo>,
}

/// The dev wallet in `network.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DevWallet {
    /// Its address.
    pub address: String,
    /// Its private key (a well-known anvil key: never use it on a real chain).
    pub private_key: String,
}

/// How `sigil dev` restarts its anvil.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct AnvilInfo {
    /// Loopback port.
    pub port: u16,
    /// State file, relative to the network file.
    pub state: String,
}

/// A node in `network.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NetworkNode {
    /// Node id.
    pub id: u32,
    /// Base URL.
    pub url: String,
    /// Its config file, relative to the network file.
    pub config: String,
}

impl NetworkFile {
    /// Reads a network file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading {} (start a network with `sigil dev` or pass --network)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes the network file (pretty JSON).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Node URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// The network as a client finds it: the chain and its NodeSet.
    pub fn network(&self) -> anyhow::Result<sigil_client::Network> {
        Ok(sigil_client::Network {
            rpc_url: self.rpc_url()?.to_string(),
            node_set: self.contracts()?.node_set,
        })
    }

    /// The chain's RPC URL.
    pub fn rpc_url(&self) -> anyhow::Result<&str> {
        self.rpc_url
            .as_deref()
            .context("this network file names no chain (rpcUrl); start the network with `sigil dev`")
    }

    /// The contract addresses.
    pub fn contracts(&self) -> anyhow::Result<Contracts> {
        self.contracts
            .context("this network file names no contracts; start the network with `sigil dev`")
    }
}

/// The wallet the CLI acts as: `--private-key` / `SIGIL_PRIVATE_KEY`, else the dev wallet.
pub fn wallet(private_key: Option<&str>, network: &NetworkFile) -> anyhow::Result<PrivateKeySigner> {
    let text =
        match private_key {
            Some(key) => key.to_string(),
            None => network.dev_wallet.as_ref().map(|w| w.private_key.clone()).context(
                "no wallet: pass --private-key (or set SIGIL_PRIVATE_KEY); this network file has no dev wallet",
            )?,
        };
    text.trim()
        .parse::<PrivateKeySigner>()
        .context("the private key must be 32 bytes hex")
}

/// A fresh auth signature by the CLI's wallet.
pub async fn auth_sig(client: &Client, signer: &PrivateKeySigner) -> anyhow::Result<AuthSig> {
    Ok(client.auth_sig(signer, "localhost", AUTH_VALID_FOR).await?)
}

/// Health of every node, `None` for those that do not answer.
pub async fn health_all(http: &reqwest::Client, network: &NetworkFile) -> Vec<Option<serde_json::Value>> {
    let asks = network.nodes.iter().map(|node| async move {
        let answer = http
            .get(format!("{}/health", node.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        answer.json::<serde_json::Value>().await.ok()
    });
    futures::future::join_all(asks).await
}

/// Parses a token id given in decimal or `0x` hex.
pub fn token(text: &str) -> anyhow::Result<U256> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16),
        None => U256::from_str_radix(text, 10),
    };
    parsed.with_context(|| format!("token id {text:?} is neither decimal nor 0x hex"))
}

/// A token id as the CLI prints it: `0x` and 64 hex digits.
pub fn token_hex(token: U256) -> String {
    format!("{token:#066x}")
}

/// The key id of minted PKP `token`, from PKPNFT.
pub async fn key_id_of(network: &NetworkFile, token: U256) -> anyhow::Result<[u8; 32]> {
    let provider = read_provider(network.rpc_url()?)?;
    let key_id = PKPNFT::new(network.contracts()?.pkp_nft, &provider)
        .getKeyId(token)
        .call()
        .await
        .with_context(|| format!("PKP {} is not minted on this network's chain", token_hex(token)))?;
    Ok(key_id.0)
}

/// Records the root keys the nodes sign in NodeSet (sent by `sender`) unless this epoch's record
/// exists; fails when fewer than `threshold` nodes sign the same keys.
pub async fn record_keys(network: &NetworkFile, sender: &DynProvider) -> anyhow::Result<KeyConfirmations> {
    let node_set = network.contracts()?.node_set;
    let confirmations = key_confirmations(&network.network()?).await?;
    if let Some(recorded) = &confirmations.recorded {
        if *recorded != confirmations.keys {
            bail!(
                "NodeSet {node_set} records other root keys for epoch {} (ECDSA {}) than the nodes sign ({})",
                confirmations.epoch,
                hex::encode(&recorded.ecdsa),
                hex::encode(&confirmations.keys.ecdsa)
            );
        }
        return Ok(confirmations);
    }
    if confirmations.signatures.len() < confirmations.threshold {
        bail!(
            "only {} of the {} node signatures needed: {}",
            confirmations.signatures.len(),
            confirmations.threshold,
            confirmations
                .failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    // Exactly `threshold` of them: each was checked against its node's NodeSet signer.
    let signatures: Vec<[u8; 65]> = confirmations
        .signatures
        .iter()
        .take(confirmations.threshold)
        .map(|(_, s)| *s)
        .collect();
    record_keys_on_chain(sender, node_set, &confirmations.keys, &signatures).await?;
    Ok(confirmations)
}
