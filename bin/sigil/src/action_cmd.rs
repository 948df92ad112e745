//! `sigil action cid|deploy|run`: IPFS CIDs of action files, storing them on the nodes, running them.
//! Uses `sigil::network`.

use std::collections::BTreeMap;
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
        /// Before the run, request (and pay for) the mint of the key the action will claim as
        /// this keyId (`Lit.Actions.claimKey`): the nodes attest only requested claims. Repeat it
        /// for several keys.
        #[arg(long, value_name = "KEY_ID")]
        request_claim: Vec<String>,
        /// Mint the keys the action claimed with the wallet of --private-key: each PKP owns
        /// itself and permits only the claiming action.
        #[arg(long)]
        mint_claims: bool,
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
            request_claim,
            mint_claims,
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
            if !request_claim.is_empty() {
                let cid = match &code {
                    ActionCode::Code(code) => Cid::of_file(code.as_bytes())?.to_string(),
                    ActionCode::Cid(cid) => cid.clone(),
                };
                let signer = wallet(private_key, &network)?;
                let provider = sigil_chain::deploy::wallet_provider(network.rpc_url()?, signer)?;
                for key in &request_claim {
                    let key_id = client
                        .request_action_claim(&provider, &network.contracts()?, &cid, key)
                        .await
                        .with_context(|| format!("requesting the mint of the key claimed as {key:?}"))?;
                    eprintln!("claim {key:?}: mint of key id 0x{} requested", hex::encode(key_id));
                }
            }
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
                    let minted = if mint_claims {
                        mint(&client, &network, private_key, &outcome).await?
                    } else {
                        BTreeMap::new()
                    };
                    print_outcome(&outcome, &minted, json);
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

/// Mints every claim of `outcome` that is not minted yet; the mint transaction of each, by keyId.
async fn mint(
    client: &Client,
    network: &NetworkFile,
    private_key: Option<&str>,
    outcome: &sigil_client::ExecuteOutcome,
) -> anyhow::Result<BTreeMap<String, String>> {
    let signer = wallet(private_key, network)?;
    let provider = sigil_chain::deploy::wallet_provider(network.rpc_url()?, signer)?;
    let contracts = network.contracts()?;
    let mut minted = BTreeMap::new();
    for (key, claim) in &outcome.claims {
        if claim.attestation.is_none() {
            eprintln!(
                "claim {key:?}: the nodes made no attestation (mint not requested, or the attempt used already); not minted"
            );
            continue;
        }
        eprintln!("claim {key:?}: minting PKP {}", claim.eth_address);
        let pkp = client
            .claim_action_key(&provider, &contracts, claim)
            .await
            .with_context(|| format!("minting the key claimed as {key:?}"))?;
        minted.insert(key.clone(), format!("{:#x}", pkp.tx_hash));
    }
    Ok(minted)
}

fn print_outcome(outcome: &sigil_client::ExecuteOutcome, minted: &BTreeMap<String, String>, json: bool) {
    let claim_json = |key: &String, c: &sigil_client::ActionKeyClaim| {
        serde_json::json!({
            "derivedKeyId": format!("0x{}", hex::encode(c.derived_key_id)),
            "keyId": format!("0x{}", hex::encode(c.key_id)),
            "publicKey": format!("0x{}", hex::encode(c.public_key)),
            "ethAddress": c.eth_address,
            "tokenId": sigil_chain::token_id(&c.public_key).to_string(),
            "attestation": c.attestation.map(|a| format!("0x{}", hex::encode(a))),
            "mintTx": minted.get(key),
        })
    };
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
        let claims: serde_json::Map<String, serde_json::Value> = outcome
            .claims
            .iter()
            .map(|(k, c)| (k.clone(), claim_json(k, c)))
            .collect();
        let out = serde_json::json!({
            "response": outcome.response,
            "signatures": signatures,
            "claims": claims,
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
    for (key, c) in &outcome.claims {
        println!("claim      {key}");
        println!("  address  {}", c.eth_address);
        println!("  keyId    0x{}", hex::encode(c.key_id));
        match (minted.get(key), c.attestation) {
            (Some(tx), _) => println!("  minted   {tx}"),
            (None, Some(_)) => println!("  minted   not by this run (--mint-claims mints it)"),
            (None, None) => println!("  attested no (mint not requested, or this attempt used already)"),
        }
    }
    for line in &outcome.logs {
        println!("log        {line}");
    }
}
