//! `sigil`: the one Sigil binary. For now it runs the threshold core in-process (`sigil demo`);
//! the node, the local network and the client commands arrive with the network issue.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sigil",
    version,
    about = "Sigil: a decentralized key network with programmable signing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
    }
}
