//! `sigil action cid|deploy|run`: IPFS CIDs of action files, storing them on the nodes, running them.
//! Uses `sigil::network`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sigil_client::{ActionCode, Client, ClientError};
use sigil_primitives::Cid;

use sigil::network::{auth_sig, wallet, NetworkFile};

/// `sigil action …`
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a file's IPFS CIDv0, as `ipfs add --only-hash` computes it.
    Cid {
        /// The action's JavaScript file.
        file: PathBuf,
    },
    /// Store an action on every node (so it can be run by CID); prints its CID.
    Deploy {
        /// The action's JavaScript file.
        file: PathBuf,
    },
    /// Run an action on every node and combine its signatures.
    Run {
        /// The action's JavaScript file, or its CID with --cid.
        file: Option<PathBuf>,
        /// Run code the nodes already hold, by CID.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        cid: Option<String>,
        /// jsParams, a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Send no auth signature (Lit.Auth.authSigAddress is then null).
        #[arg(long)]
        no_auth: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

pub async fn run(network_path: &Path, private_key: Option<&str>, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Cid { file } => {
            let code = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            println!("{}", Cid::of_file(&code)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy { file } => {
            let code = read(&file)?;
            let network = NetworkFile::load(network_path)?;
            let client = Client::connect(&network.network()?).await?;
            let (cid, failures) = client.store_action(&code).await?;
            for failure in &failures {
                eprintln!("warning: {failure}");
            }
            println!("{cid}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            file,
            cid,
            params,
            no_auth,
            json,
        } => {
            let params: serde_json::Value = serde_json::from_str(&params).context("--params must be a JSON object")?;
            let code = match (file, cid) {
                (Some(file), None) => ActionCode::Code(read(&file)?),
                (None, Some(cid)) => ActionCode::Cid(cid.parse::<Cid>()?.to_string()),
                _ => anyhow::bail!("give the action's file or --cid"),
            };
            let network = NetworkFile::load(network_path)?;
            let client = Client::connect(&network.network()?).await?;
            let auth = if no_auth {
                None
            } else {
                let signer = wallet(private_key, &network)?;
                Some(auth_sig(&client, &signer).await?)
            };
            match client.execute(code, params, auth.as_ref().map(|a| a as _)).await {
                Ok(outcome) => {
                    for failure in &outcome.failures {
                        eprintln!("warning: {failure}");
                    }
                    print_outcome(&outcome, json);
                    Ok(ExitCode::SUCCESS)
                }
                Err(ClientError::Action {
                    code,
                    message,
                    logs,
                    failures,
                }) => {
                    if json {
                        let out = serde_json::json!({
                            "error": { "code": code, "message": message },
                            "logs": logs,
                            "failures": failures,
                        });
                        println!("{out}");
                    } else {
                        for line in &logs {
                            println!("log        {line}");
                        }
                        for failure in &failures {
                            eprintln!("  {failure}");
                        }
                        eprintln!("error: {code}: {message}");
                    }
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn print_outcome(outcome: &sigil_client::ExecuteOutcome, json: bool) {
    if json {
        let signatures: serde_json::Map<String, serde_json::Value> = outcome
            .signatures
            .iter()
            .map(|(name, s)| {
                let sig = &s.signature;
                (
                    name.clone(),
                    serde_json::json!({
                        "r": format!("0x{}", hex::encode(sig.r)),
                        "s": format!("0x{}", hex::encode(sig.s)),
                        "v": sig.recovery_id,
                        "publicKey": format!("0x{}", hex::encode(s.public_key)),
                        "address": s.address,
                    }),
                )
            })
            .collect();
        let out = serde_json::json!({
            "response": outcome.response,
            "signatures": signatures,
            "logs": outcome.logs,
            "nodes": outcome.agreeing,
        });
        println!("{out}");
        return;
    }
    match &outcome.response {
        Some(response) => println!("response   {response}"),
        None => println!("response   (none set)"),
    }
    for (name, s) in &outcome.signatures {
        let sig = &s.signature;
        println!("signature  {name}");
        println!("  r        0x{}", hex::encode(sig.r));
        println!("  s        0x{}", hex::encode(sig.s));
        println!("  v        {}", sig.recovery_id);
        println!("  address  {}", s.address);
    }
    for line in &outcome.logs {
        println!("log        {line}");
    }
}
