//! `sigil admin epoch`: the NodeSet admin proposes the next epoch (nodes that leave, a new
//! threshold), withdraws a proposal, and shows the current and proposed epochs; `confirm` starts
//! the proposed epoch once its nodes show they hold the reshared root keys. The nodes reshare on
//! their own when they read the proposal (`sigil_node::reshare`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use sigil_chain::alloy::primitives::Address;
use sigil_chain::deploy::{cancel_proposal, confirm_epoch, propose_epoch, wallet_provider};
use sigil_chain::registry::{read_node_set, read_proposal, ListedNode, Proposal};
use sigil_client::epoch_confirmations;
use sigil_tss::{threshold_for, MAX_PARTIES, MIN_PARTIES};

use sigil::network::{wallet, NetworkFile};

/// `sigil admin epoch` subcommands.
#[derive(clap::Subcommand)]
pub enum EpochCommand {
    /// Propose the next epoch: the current nodes, without those removed, with those added.
    Propose {
        /// A node that joins: `ID,IDENTITY_KEY,SIGNER,URL` (the id is its own for life and no
        /// node's before; the identity key and signer are what its `/web/handshake` shows).
        /// Repeat for several.
        #[arg(long, value_name = "ID,IDENTITY_KEY,SIGNER,URL")]
        add: Vec<String>,
        /// The id of a node that leaves. Repeat for several.
        #[arg(long, value_name = "ID")]
        remove: Vec<u32>,
        /// The new epoch's threshold (default ⌈2n/3⌉ of its nodes).
        #[arg(long)]
        threshold: Option<u32>,
    },
    /// Start the proposed epoch: collect the proposed nodes' confirmations that they hold the
    /// reshared root keys and send them to NodeSet (anyone may; the signatures authorise it).
    /// NodeSet needs every proposed node's confirmation of the same shares; a node that cannot
    /// give one is proposed out again (`cancel`, then `propose --remove`).
    Confirm,
    /// Withdraw the proposed epoch.
    Cancel,
    /// Show the current epoch and the proposed one, if any.
    Show,
}

/// Runs `sigil admin epoch …` as the admin wallet.
pub async fn run(network_path: &Path, private_key: Option<&str>, command: EpochCommand) -> anyhow::Result<ExitCode> {
    let network = NetworkFile::load(network_path)?;
    let provider = wallet_provider(network.rpc_url()?, wallet(private_key, &network)?)?;
    let node_set = network.contracts()?.node_set;
    let current = read_node_set(&provider, node_set).await?;
    match command {
        EpochCommand::Propose { add, remove, threshold } => {
            let added = add
                .iter()
                .map(|text| parse_node(text))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let nodes = next_nodes(&current.nodes, &remove, added)?;
            let threshold = match threshold {
                Some(t) => t,
                None => u32::try_from(threshold_for(nodes.len())).context("threshold")?,
            };
            propose_epoch(&provider, node_set, &nodes, threshold)
                .await
                .context("NodeSet refused the proposal")?;
            let proposed = read_proposal(&provider, node_set)
                .await?
                .context("the proposal is not on chain after its transaction")?;
            println!("proposed in NodeSet {node_set}:");
            print_proposal(&proposed);
        }
        EpochCommand::Confirm => {
            let confirmations = epoch_confirmations(&network.network()?)
                .await?
                .context("no epoch is proposed in NodeSet")?;
            let proposal = &confirmations.proposal;
            let have = confirmations.signatures.len();
            for failure in &confirmations.failures {
                println!("  {failure}");
            }
            if have < proposal.nodes.len() {
                bail!(
                    "{have} of the {} proposed nodes confirm the same reshared keys of epoch {} (NodeSet needs every one); the reshare may still be running: try again shortly",
                    proposal.nodes.len(),
                    proposal.epoch,
                );
            }
            let signatures: Vec<[u8; 65]> = confirmations.signatures.iter().map(|(_, s)| *s).collect();
            confirm_epoch(&provider, node_set, &confirmations.keys, &signatures)
                .await
                .context("NodeSet refused the confirmation")?;
            println!(
                "epoch {} started in NodeSet {node_set}: threshold {}, nodes {} ({have} confirmations)",
                proposal.epoch,
                proposal.threshold,
                ids(&proposal.nodes)
            );
        }
        EpochCommand::Cancel => {
            cancel_proposal(&provider, node_set)
                .await
                .context("NodeSet refused to cancel")?;
            println!("the proposal of epoch {} is withdrawn", current.epoch + 1);
        }
        EpochCommand::Show => {
            println!(
                "epoch {}: threshold {}, nodes {}",
                current.epoch,
                current.threshold,
                ids(&current.nodes)
            );
            match read_proposal(&provider, node_set).await? {
                Some(proposed) => print_proposal(&proposed),
                None => println!("no epoch is proposed"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ID,IDENTITY_KEY,SIGNER,URL` → a node to list.
fn parse_node(text: &str) -> anyhow::Result<ListedNode> {
    let fields: Vec<&str> = text.splitn(4, ',').map(str::trim).collect();
    let [id, key, signer, url] = fields.as_slice() else {
        bail!("--add {text:?}: expected ID,IDENTITY_KEY,SIGNER,URL");
    };
    let id: u32 = id
        .parse()
        .with_context(|| format!("--add {text:?}: the id must be a number"))?;
    let identity_key: [u8; 32] = hex::decode(key.trim_start_matches("0x"))
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .with_context(|| format!("--add {text:?}: the identity key must be 32 bytes hex"))?;
    let signer: Address = signer
        .parse()
        .with_context(|| format!("--add {text:?}: the signer must be an address"))?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        bail!("--add {text:?}: the URL must start with http:// or https://");
    }
    Ok(ListedNode {
        id,
        identity_key,
        signer,
        url: url.trim_end_matches('/').to_string(),
    })
}

/// The current nodes without `remove`, then `add`; every id removed must be listed, every id
/// added new to the list, and the result within the network's size.
fn next_nodes(current: &[ListedNode], remove: &[u32], add: Vec<ListedNode>) -> anyhow::Result<Vec<ListedNode>> {
    if let Some(id) = remove.iter().find(|id| !current.iter().any(|n| n.id == **id)) {
        bail!(
            "--remove {id}: no node of the current epoch has that id ({})",
            ids(current)
        );
    }
    let mut nodes: Vec<ListedNode> = current.iter().filter(|n| !remove.contains(&n.id)).cloned().collect();
    for node in add {
        if nodes.iter().any(|n| n.id == node.id) {
            bail!("--add: id {} is taken by a node of the new epoch", node.id);
        }
        nodes.push(node);
    }
    if !(MIN_PARTIES..=MAX_PARTIES).contains(&nodes.len()) {
        bail!(
            "the new epoch would have {} nodes; a network has {MIN_PARTIES} to {MAX_PARTIES}",
            nodes.len()
        );
    }
    Ok(nodes)
}

fn ids(nodes: &[ListedNode]) -> String {
    nodes.iter().map(|n| n.id.to_string()).collect::<Vec<_>>().join(", ")
}

fn print_proposal(proposed: &Proposal) {
    println!(
        "epoch {} proposed: threshold {}, nodes {}",
        proposed.epoch,
        proposed.threshold,
        ids(&proposed.nodes)
    );
    for node in &proposed.nodes {
        println!("  node {}  {}  signer {}", node.id, node.url, node.signer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32) -> ListedNode {
        ListedNode {
            id,
            identity_key: [id as u8; 32],
            signer: Address::repeat_byte(id as u8 + 1),
            url: format!("http://127.0.0.1:{}", 7000 + id),
        }
    }

    #[test]
    fn the_next_list_drops_the_removed_and_appends_the_added_checking_ids() {
        let current: Vec<ListedNode> = [0, 1, 2, 3, 4].map(node).to_vec();
        let next = next_nodes(&current, &[0, 3], vec![node(9)]).unwrap();
        assert_eq!(next.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2, 4, 9]);
        let err = next_nodes(&current, &[7], vec![]).unwrap_err().to_string();
        assert!(err.contains("--remove 7: no node of the current epoch"), "{err}");
        let err = next_nodes(&current, &[], vec![node(2)]).unwrap_err().to_string();
        assert!(err.contains("id 2 is taken"), "{err}");
        let err = next_nodes(&current, &[0, 1, 2], vec![]).unwrap_err().to_string();
        assert!(err.contains("would have 2 nodes"), "{err}");
    }

    #[test]
    fn an_added_node_is_parsed_with_each_field_checked() {
        let key = "ab".repeat(32);
        let signer = "0x00000000000000000000000000000000000000a1";
        let parsed = parse_node(&format!("12,{key},{signer},http://10.0.0.7:7470/")).unwrap();
        assert_eq!(parsed.id, 12);
        assert_eq!(parsed.identity_key, [0xab; 32]);
        assert_eq!(parsed.url, "http://10.0.0.7:7470");
        for (bad, says) in [
            (format!("x,{key},{signer},http://a"), "id must be a number"),
            (format!("1,abcd,{signer},http://a"), "identity key must be 32 bytes"),
            (format!("1,{key},0x12,http://a"), "signer must be an address"),
            (format!("1,{key},{signer},ftp://a"), "must start with http"),
            (format!("1,{key},{signer}"), "expected ID,IDENTITY_KEY,SIGNER,URL"),
        ] {
            let err = parse_node(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
