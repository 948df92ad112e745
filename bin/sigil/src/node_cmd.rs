//! `sigil node --config node.toml`: one node, until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sigil_node::{Fault, NodeConfig, RunOptions};

/// Options of `sigil node`.
#[derive(clap::Args)]
pub struct Args {
    /// The node's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Sign for any caller, without permission checks (local development only).
    #[arg(long)]
    dev_open_signing: bool,
    /// Misbehave on purpose, for robustness tests only (corrupt-signature-shares).
    #[arg(long, hide = true)]
    fault: Option<Fault>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let settings = NodeConfig::load(&args.config).with_context(|| format!("loading {}", args.config.display()))?;
    let options = RunOptions {
        dev_open_signing: args.dev_open_signing || settings.config.dev_open_signing,
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
