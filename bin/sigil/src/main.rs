//! `sigil`: the one Sigil binary — a node (`sigil node`), a local network (`sigil dev`), client
//! commands (`sign`, `status`, `pkp`, `action`), benchmarks (`bench`) and an in-process demo of the core.
//!
//! Here: the command line and one module per command. What commands share — the network file and
//! the local network of node processes — is the `sigil` library (`sigil::network`,
//! `sigil::devnet`).

mod action_cmd;
mod bench;
mod bench_epoch;
mod bitcoin_cmd;
mod client_cmd;
mod demo;
mod dev;
mod encrypt_cmd;
mod epoch_cmd;
mod node_cmd;
mod pkp_cmd;
mod verify_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Where `sigil dev` writes the network file by default.
pub const DEFAULT_NETWORK: &str = ".sigil/network.json";

#[derive(Parser)]
#[command(
    name = "sigil",
    version,
    about = "Sigil: a decentralized key network with programmable signing"
)]
struct Cli {
    /// The network file written by `sigil dev` (node URLs, threshold, chain, contracts, dev wallet).
    #[arg(long, global = true, env = "SIGIL_NETWORK", default_value = DEFAULT_NETWORK)]
    network: PathBuf,
    /// The wallet client commands act as (32 bytes hex); default: the dev wallet in the network file.
    #[arg(long, global = true, env = "SIGIL_PRIVATE_KEY", hide_env_values = true)]
    private_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of a network.
    Node(node_cmd::Args),
    /// Start a local network of N node processes on free loopback ports.
    Dev(dev::Args),
    /// Sign a 32-byte hash with a PKP you own or may use (ECDSA, or BIP-340 Schnorr with
    /// `--scheme SchnorrK256Taproot`).
    Sign(client_cmd::SignArgs),
    /// A PKP's Bitcoin addresses (P2WPKH, P2TR) and transactions spending its coins.
    #[command(subcommand)]
    Bitcoin(bitcoin_cmd::Command),
    /// Mint PKPs, grant and show their permissions, send ETH from them.
    #[command(subcommand)]
    Pkp(pkp_cmd::Command),
    /// Actions: compute CIDs, store code on the nodes, run actions.
    #[command(subcommand)]
    Action(action_cmd::Command),
    /// Encrypt a file to the network under access-control conditions (offline).
    Encrypt(encrypt_cmd::EncryptArgs),
    /// Decrypt a file `sigil encrypt` wrote, if its conditions hold for your wallet.
    Decrypt(encrypt_cmd::DecryptArgs),
    /// NodeSet administration.
    #[command(subcommand)]
    Admin(pkp_cmd::AdminCommand),
    /// Check that a signature can only have come from one action: the PKP is this network's, was
    /// minted, granted and burned in one transaction, permits that action alone, and the file is
    /// that action. Exits 0 only if every link holds.
    Verify(verify_cmd::Args),
    /// Show each node's health; exits 0 only when the network can sign.
    Status(client_cmd::StatusArgs),
    /// Measure the network.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Run the threshold core in one process: DKG among N parties, derive a PKP, presign, sign,
    /// verify, and encrypt/decrypt to the network key — printing each step.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Command::Demo(args) = &cli.command {
        return demo::run(args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => node_cmd::run(args).await,
            Command::Dev(args) => dev::run(args, cli.private_key.as_deref()).await,
            Command::Sign(args) => client_cmd::sign(&cli.network, cli.private_key.as_deref(), args).await,
            Command::Bitcoin(command) => bitcoin_cmd::run(&cli.network, cli.private_key.as_deref(), command).await,
            Command::Pkp(command) => pkp_cmd::run(&cli.network, cli.private_key.as_deref(), command).await,
            Command::Action(command) => action_cmd::run(&cli.network, cli.private_key.as_deref(), command).await,
            Command::Encrypt(args) => encrypt_cmd::encrypt(&cli.network, args).await,
            Command::Decrypt(args) => encrypt_cmd::decrypt(&cli.network, cli.private_key.as_deref(), args).await,
            Command::Admin(pkp_cmd::AdminCommand::RecordKeys) => {
                pkp_cmd::record_keys_cmd(&cli.network, cli.private_key.as_deref()).await
            }
            Command::Admin(pkp_cmd::AdminCommand::Epoch(command)) => {
                epoch_cmd::run(&cli.network, cli.private_key.as_deref(), command).await
            }
            Command::Status(args) => client_cmd::status(&cli.network, args).await,
            Command::Verify(args) => verify_cmd::run(&cli.network, args).await,
            Command::Bench(command) => bench::run(command).await,
            Command::Demo(_) => Ok(ExitCode::SUCCESS),
        }
    })
}
