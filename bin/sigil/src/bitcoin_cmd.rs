//! `sigil bitcoin`: a PKP's Bitcoin addresses, and transactions spending its coins signed by the
//! network. Uses `sigil::network`; the transaction is printed, never broadcast.

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{bail, Context};
use sigil_client::btc::bitcoin::{self, Address, Amount, OutPoint, TxOut, Txid};
use sigil_client::{BitcoinOutput, Client, Coin, KeyRef};

use crate::client_cmd::key_id_arg;
use sigil::network::{auth_sig, wallet, NetworkFile};

/// `sigil bitcoin …`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the PKP's P2WPKH (ECDSA) and P2TR key-path (Schnorr) addresses.
    Address {
        /// The PKP's key id, 32 bytes hex.
        #[arg(long, required_unless_present = "token_id", conflicts_with = "token_id")]
        key_id: Option<String>,
        /// The PKP's token id (decimal or 0x hex).
        #[arg(long)]
        token_id: Option<String>,
        /// The Bitcoin network: bitcoin, testnet, signet or regtest.
        #[arg(long, default_value = "bitcoin")]
        chain: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Build a transaction spending the PKP's coins, have the network sign every input, and
    /// print it (hex, ready to broadcast).
    Spend {
        /// The PKP's key id, 32 bytes hex.
        #[arg(long, required_unless_present = "token_id", conflicts_with = "token_id")]
        key_id: Option<String>,
        /// The PKP's token id (decimal or 0x hex).
        #[arg(long)]
        token_id: Option<String>,
        /// A coin of the PKP: `TXID:VOUT:SATS:p2wpkh` or `TXID:VOUT:SATS:p2tr` (repeat).
        #[arg(long = "coin", required = true)]
        coins: Vec<String>,
        /// An output: `ADDRESS:SATS` (repeat). What the coins hold beyond them is the fee.
        #[arg(long = "to", required = true)]
        outputs: Vec<String>,
        /// The Bitcoin network: bitcoin, testnet, signet or regtest (the outputs' addresses must
        /// be of it).
        #[arg(long, default_value = "bitcoin")]
        chain: String,
    },
}

fn network_arg(text: &str) -> anyhow::Result<bitcoin::Network> {
    bitcoin::Network::from_str(text).with_context(|| format!("--chain {text:?}: bitcoin, testnet, signet or regtest"))
}

/// `TXID:VOUT:SATS:KIND`.
fn coin_arg(text: &str) -> anyhow::Result<Coin> {
    let parts: Vec<&str> = text.split(':').collect();
    let [txid, vout, sats, kind] = parts.as_slice() else {
        bail!("--coin {text:?}: expected TXID:VOUT:SATS:p2wpkh|p2tr");
    };
    let output = match *kind {
        "p2wpkh" => BitcoinOutput::P2wpkh,
        "p2tr" => BitcoinOutput::P2tr,
        other => bail!("--coin {text:?}: {other:?} is neither p2wpkh nor p2tr"),
    };
    Ok(Coin {
        outpoint: OutPoint {
            txid: Txid::from_str(txid).with_context(|| format!("--coin {text:?}: bad txid"))?,
            vout: vout
                .parse()
                .with_context(|| format!("--coin {text:?}: bad output index"))?,
        },
        amount: Amount::from_sat(sats.parse().with_context(|| format!("--coin {text:?}: bad amount"))?),
        output,
    })
}

/// `ADDRESS:SATS` on `network`.
fn output_arg(text: &str, network: bitcoin::Network) -> anyhow::Result<TxOut> {
    let (address, sats) = text
        .rsplit_once(':')
        .with_context(|| format!("--to {text:?}: expected ADDRESS:SATS"))?;
    let address = Address::from_str(address)
        .with_context(|| format!("--to {text:?}: not a Bitcoin address"))?
        .require_network(network)
        .with_context(|| format!("--to {text:?}: not an address of {network}"))?;
    Ok(TxOut {
        value: Amount::from_sat(sats.parse().with_context(|| format!("--to {text:?}: bad amount"))?),
        script_pubkey: address.script_pubkey(),
    })
}

/// Runs `sigil bitcoin …`.
pub async fn run(network_path: &Path, private_key: Option<&str>, command: Command) -> anyhow::Result<ExitCode> {
    let file = NetworkFile::load(network_path)?;
    match command {
        Command::Address {
            key_id,
            token_id,
            chain,
            json,
        } => {
            let network = network_arg(&chain)?;
            let key = KeyRef::KeyId(key_id_arg(&file, key_id.as_deref(), token_id.as_deref()).await?);
            let client = Client::connect(&file.network()?).await?;
            let p2wpkh = client.pkp_bitcoin_address(key, BitcoinOutput::P2wpkh, network)?;
            let p2tr = client.pkp_bitcoin_address(key, BitcoinOutput::P2tr, network)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "p2wpkh": p2wpkh.to_string(), "p2tr": p2tr.to_string() })
                );
            } else {
                println!("p2wpkh  {p2wpkh}  (ECDSA)");
                println!("p2tr    {p2tr}  (Schnorr, key path)");
            }
        }
        Command::Spend {
            key_id,
            token_id,
            coins,
            outputs,
            chain,
        } => {
            let network = network_arg(&chain)?;
            let coins = coins.iter().map(|c| coin_arg(c)).collect::<anyhow::Result<Vec<_>>>()?;
            let outputs = outputs
                .iter()
                .map(|o| output_arg(o, network))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let key = KeyRef::KeyId(key_id_arg(&file, key_id.as_deref(), token_id.as_deref()).await?);
            let signer = wallet(private_key, &file)?;
            let client = Client::connect(&file.network()?).await?;
            let auth = auth_sig(&client, &signer).await?;
            let tx = client.pkp_bitcoin_spend(key, &coins, outputs, &auth).await?;
            println!("{}", bitcoin::consensus::encode::serialize_hex(&tx));
        }
    }
    Ok(ExitCode::SUCCESS)
}
