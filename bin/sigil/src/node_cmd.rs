//! `sigil node --config node.toml`: one node, until SIGTERM or Ctrl-C. Uses `sigil-node` and
//! `sigil-chain` (its NodeSet), never the CLI's network file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use std::sync::Arc;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use sigil_chain::alloy::primitives::Address;
use sigil_chain::registry::{read_proposal, Registry};
use sigil_node::config::PeerConfig;
#[cfg(feature = "test-faults")]
use sigil_node::Fault;
use sigil_node::{NodeConfig, RunOptions};

/// Options of `sigil node`.
#[derive(clap::Args)]
pub struct Args {
    /// The node's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Misbehave on purpose, for robustness tests only (corrupt-signature-shares, double-bind,
    /// silent-presigner). Exists only in builds with the `test-faults` feature.
    #[cfg(feature = "test-faults")]
    #[arg(long, hide = true)]
    fault: Option<Fault>,
}

/// The log filter `SIGIL_LOG` asks for ("debug", "info,sigil_node=debug"); `info` when it is
/// unset or cannot be read, which the node then says.
fn log_filter(setting: Option<&str>) -> tracing_subscriber::filter::Targets {
    let info = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO);
    match setting.map(str::parse::<tracing_subscriber::filter::Targets>) {
        None => info(),
        Some(Ok(filter)) => filter,
        Some(Err(e)) => {
            eprintln!("SIGIL_LOG: {e}; logging at info");
            info()
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(log_filter(std::env::var("SIGIL_LOG").ok().as_deref()))
        .init();
    let mut settings = NodeConfig::load(&args.config).with_context(|| format!("loading {}", args.config.display()))?;
    let registry = match settings.config.chain.clone() {
        Some(chain) => {
            let node_set: Address = chain
                .node_set
                .parse()
                .with_context(|| format!("chain.node_set {:?} is not an address", chain.node_set))?;
            let registry = Registry::connect(&chain.rpc_url, node_set)
                .await
                .with_context(|| format!("reading NodeSet {node_set} on {}", chain.rpc_url))?
                .with_cache_capacity(settings.config.limits.registry_cache);
            let view = registry.node_set().await?;
            let me = settings.config.id;
            // A node joining the proposed epoch is not in the current list: it meets the current
            // nodes and the other proposed ones, and waits for the reshare.
            let mut listed = view.nodes.clone();
            if !listed.iter().any(|n| n.id == me) {
                let proposal = read_proposal(registry.provider(), node_set).await?;
                if let Some(proposal) = proposal.filter(|p| p.nodes.iter().any(|n| n.id == me)) {
                    tracing::info!(
                        epoch = proposal.epoch,
                        "this node joins the epoch proposed in NodeSet; it serves once NodeSet confirms it"
                    );
                    settings.members = Some(view.nodes.iter().map(|n| n.id).collect());
                    for node in proposal.nodes {
                        if !listed.iter().any(|n| n.id == node.id) {
                            listed.push(node);
                        }
                    }
                }
            }
            if !listed.iter().any(|n| n.id == me) && view.keys_epoch == view.epoch {
                // Left out of an epoch its nodes confirmed while this node was down.
                let erased = sigil_node::retire(&settings, view.epoch, &view.keys)?;
                anyhow::bail!(
                    "node {me} is not among the nodes of NodeSet {node_set}'s epoch {} nor of a proposed one{}",
                    view.epoch,
                    if erased > 0 {
                        "; its root key shares were erased"
                    } else {
                        ""
                    }
                );
            }
            let peers: Vec<PeerConfig> = listed
                .iter()
                .map(|node| PeerConfig {
                    id: node.id,
                    url: node.url.clone(),
                    key: hex::encode(node.identity_key),
                })
                .collect();
            settings.signer = listed
                .iter()
                .find(|node| node.id == settings.config.id)
                .map(|node| node.signer.to_string());
            // A joining node's list holds both epochs' nodes: the current threshold is checked
            // against the current nodes only, by NodeSet.
            let threshold = settings.members.is_none().then_some(view.threshold as usize);
            settings
                .adopt_peers(&peers, threshold)
                .with_context(|| format!("the node list in NodeSet {node_set}"))?;
            settings.threshold = view.threshold as usize;
            settings.epoch = view.epoch;
            tracing::info!(chain = registry.chain_id(), %node_set, epoch = view.epoch, nodes = peers.len(), "node set read from the chain");
            Some(Arc::new(registry))
        }
        None => {
            tracing::warn!(
                "no [chain] in the config: this node cannot check permissions and will refuse every sign request"
            );
            None
        }
    };
    let options = RunOptions {
        registry,
        #[cfg(feature = "test-faults")]
        fault: args.fault,
    };
    sigil_node::run(settings, options, shutdown()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn sigil_log_sets_levels_per_target_and_a_bad_setting_falls_back_to_info() {
        let info = log_filter(None);
        assert!(info.would_enable("sigil_node::mesh", &Level::INFO));
        assert!(!info.would_enable("sigil_node::mesh", &Level::DEBUG));
        let some = log_filter(Some("info,sigil_node::mesh=debug"));
        assert!(some.would_enable("sigil_node::mesh::net", &Level::DEBUG));
        assert!(!some.would_enable("sigil_node::signing", &Level::DEBUG));
        assert!(some.would_enable("hyper", &Level::INFO));
        assert!(log_filter(Some("debug")).would_enable("alloy", &Level::DEBUG));
        let bad = log_filter(Some("sigil_node=loud"));
        assert!(bad.would_enable("sigil_node", &Level::INFO));
        assert!(!bad.would_enable("sigil_node", &Level::DEBUG));
    }
}
