//! Client commands: `sigil sign` and `sigil status`. Uses `sigil::network`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use sigil_client::{Client, KeyRef};
use sigil_primitives::SigningScheme;

use sigil::network::{auth_sig, health_all, key_id_of, wallet, NetworkFile};

/// Options of `sigil sign`.
#[derive(clap::Args)]
pub struct SignArgs {
    /// The PKP's key id, 32 bytes hex.
    #[arg(long, required_unless_present = "token_id", conflicts_with = "token_id")]
    key_id: Option<String>,
    /// The PKP's token id (decimal or 0x hex); its key id is read from PKPNFT.
    #[arg(long)]
    token_id: Option<String>,
    /// The 32-byte hash to sign, hex (for SchnorrK256Taproot: the 32-byte message, e.g. a
    /// BIP-341 sighash).
    #[arg(long)]
    hash: String,
    /// The signing scheme: EcdsaK256Sha256 (default) or SchnorrK256Taproot (BIP-340 under the
    /// PKP's taproot output key).
    #[arg(long, default_value = "EcdsaK256Sha256", value_parser = parse_scheme)]
    scheme: SigningScheme,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// A `--scheme` value: one of the schemes' names as Lit spells them.
pub fn parse_scheme(text: &str) -> Result<SigningScheme, String> {
    SigningScheme::parse(text).ok_or_else(|| {
        let names: Vec<&str> = SigningScheme::ALL.iter().map(|s| s.name()).collect();
        format!("unknown signing scheme {text:?}; one of {}", names.join(", "))
    })
}

/// The PKP a command names by `--key-id` or `--token-id` (read from PKPNFT).
pub async fn key_id_arg(
    network: &NetworkFile,
    key_id: Option<&str>,
    token_id: Option<&str>,
) -> anyhow::Result<[u8; 32]> {
    match (key_id, token_id) {
        (Some(key_id), _) => hex32("--key-id", key_id),
        (None, Some(token)) => key_id_of(network, sigil::network::token(token)?).await,
        (None, None) => bail!("name the PKP with --token-id or --key-id"),
    }
}

/// Options of `sigil status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn hex32(what: &str, text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.strip_prefix("0x").unwrap_or(text)).with_context(|| format!("{what} is not hex"))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{what} must be 32 bytes, got {len}"))
}

pub async fn sign(network: &Path, private_key: Option<&str>, args: SignArgs) -> anyhow::Result<ExitCode> {
    let hash = hex32("--hash", &args.hash)?;
    let network = NetworkFile::load(network)?;
    let key_id = key_id_arg(&network, args.key_id.as_deref(), args.token_id.as_deref()).await?;
    let signer = wallet(private_key, &network)?;
    let client = Client::connect(&network.network()?).await?;
    let auth = auth_sig(&client, &signer).await?;
    if args.scheme == SigningScheme::SchnorrK256Taproot {
        let outcome = client.pkp_sign_schnorr(KeyRef::KeyId(key_id), hash, &auth).await?;
        for failure in &outcome.failures {
            eprintln!("warning: {failure}");
        }
        if args.json {
            let json = serde_json::json!({
                "signingScheme": args.scheme.name(),
                "signature": format!("0x{}", hex::encode(outcome.signature)),
                "outputKey": format!("0x{}", hex::encode(outcome.output_key)),
            });
            println!("{json}");
        } else {
            println!("signature  0x{} (BIP-340)", hex::encode(outcome.signature));
            println!(
                "outputKey  0x{} (x-only, BIP-341 taproot)",
                hex::encode(outcome.output_key)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = client.pkp_sign(KeyRef::KeyId(key_id), hash, &auth).await?;
    let sig = &outcome.signature;
    for failure in &outcome.failures {
        eprintln!("warning: {failure}");
    }
    if args.json {
        let json = serde_json::json!({
            "signature": {
                "r": format!("0x{}", hex::encode(sig.r)),
                "s": format!("0x{}", hex::encode(sig.s)),
                "v": sig.recovery_id,
            },
            "publicKey": format!("0x{}", hex::encode(outcome.public_key)),
            "address": outcome.address,
        });
        println!("{json}");
    } else {
        println!("r          0x{}", hex::encode(sig.r));
        println!("s          0x{}", hex::encode(sig.s));
        println!(
            "v          {} (recovery id; {} for ecrecover)",
            sig.recovery_id,
            27 + sig.recovery_id
        );
        println!("publicKey  0x{}", hex::encode(outcome.public_key));
        println!("address    {}", outcome.address);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(network_path: &Path, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let network = NetworkFile::load(network_path)?;
    let http = reqwest::Client::new();
    let health = health_all(&http, &network).await;
    let connected = Client::connect(&network.network()?).await;
    let can_sign = connected.is_ok();
    let ready = health
        .iter()
        .filter(|h| h.as_ref().and_then(|h| h.get("rootKeys")).and_then(|v| v.as_bool()) == Some(true))
        .count();
    if args.json {
        let nodes: Vec<_> = network
            .nodes
            .iter()
            .zip(&health)
            .map(|(node, h)| {
                serde_json::json!({
                    "id": node.id,
                    "url": node.url,
                    "up": h.is_some(),
                    "health": h,
                })
            })
            .collect();
        let json = serde_json::json!({
            "threshold": network.threshold,
            "nodes": nodes,
            "rootKeys": ready >= network.threshold,
            "canSign": can_sign,
            "error": connected.as_ref().err().map(ToString::to_string),
        });
        println!("{json}");
    } else {
        println!("threshold {} of {}", network.threshold, network.nodes.len());
        for (node, h) in network.nodes.iter().zip(&health) {
            match h {
                Some(h) => println!(
                    "  node {}  {}  {}  root keys: {}  peers up: {}  presignatures: {}",
                    node.id,
                    node.url,
                    h.get("status").and_then(|v| v.as_str()).unwrap_or("?"),
                    if h.get("rootKeys").and_then(|v| v.as_bool()) == Some(true) {
                        "yes"
                    } else {
                        "no"
                    },
                    h.get("peersUp").and_then(|v| v.as_u64()).unwrap_or(0),
                    h.get("presignatures").and_then(|v| v.as_u64()).unwrap_or(0),
                ),
                None => println!("  node {}  {}  DOWN", node.id, node.url),
            }
        }
        // NodeSet as the nodes follow it: a proposed next epoch, if one is pending.
        let proposal = health
            .iter()
            .flatten()
            .find_map(|h| h.get("chain")?.get("proposal").filter(|p| !p.is_null()).cloned());
        if let Some(p) = proposal {
            let field = |name: &str| p.get(name).cloned().unwrap_or_default();
            println!(
                "epoch {} is proposed in NodeSet: threshold {}, nodes {}",
                field("epoch"),
                field("threshold"),
                field("nodes")
            );
        }
        match &connected {
            Ok(_) => println!("the network can sign ({ready} nodes hold root key shares)"),
            Err(e) => println!("the network cannot sign: {e}"),
        }
    }
    Ok(if can_sign { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
