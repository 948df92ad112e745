//! `sigil encrypt` and `sigil decrypt`: threshold encryption of files under access-control
//! conditions. Uses `sigil::network`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sigil_client::{Client, ClientError, Encrypted};

use sigil::network::{auth_sig, wallet, NetworkFile};

/// `sigil encrypt`
#[derive(clap::Args)]
pub struct EncryptArgs {
    /// The access-control conditions: a JSON array, or an object with one of
    /// `accessControlConditions`, `evmContractConditions`, `unifiedAccessControlConditions`.
    #[arg(long)]
    conditions: PathBuf,
    /// The plaintext file (`-` for standard input).
    #[arg(long = "in")]
    input: PathBuf,
    /// Where to write the encrypted file (JSON: conditions, data hash, ciphertext).
    #[arg(long = "out")]
    output: PathBuf,
}

/// `sigil decrypt`
#[derive(clap::Args)]
pub struct DecryptArgs {
    /// The encrypted file `sigil encrypt` wrote.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where to write the plaintext (`-` for standard output).
    #[arg(long = "out")]
    output: PathBuf,
    /// Send no auth signature (conditions on `:userAddress` then do not hold).
    #[arg(long)]
    no_auth: bool,
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut out).context("reading standard input")?;
        return Ok(out);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path == Path::new("-") {
        return std::io::Write::write_all(&mut std::io::stdout(), bytes).context("writing standard output");
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub async fn encrypt(network_path: &Path, args: EncryptArgs) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(&args.conditions).with_context(|| format!("reading {}", args.conditions.display()))?;
    let conditions: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", args.conditions.display()))?;
    let data = read_input(&args.input)?;
    let network = NetworkFile::load(network_path)?;
    // The handshake gives the network key; nothing about the data is sent.
    let client = Client::connect(&network.network()?).await?;
    let encrypted = client.encrypt(&conditions, &data)?;
    let json = serde_json::to_string_pretty(&encrypted)?;
    write_output(&args.output, json.as_bytes())?;
    eprintln!(
        "encrypted {} bytes (sha256 {}) to {}",
        data.len(),
        encrypted.data_to_encrypt_hash,
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn decrypt(network_path: &Path, private_key: Option<&str>, args: DecryptArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let encrypted: Encrypted = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a file written by `sigil encrypt`", args.input.display()))?;
    let network = NetworkFile::load(network_path)?;
    let client = Client::connect(&network.network()?).await?;
    let auth = if args.no_auth {
        None
    } else {
        let signer = wallet(private_key, &network)?;
        Some(auth_sig(&client, &signer).await?)
    };
    match client.decrypt(&encrypted, auth.as_ref().map(|a| a as _)).await {
        Ok(decrypted) => {
            for failure in &decrypted.failures {
                eprintln!("warning: {failure}");
            }
            write_output(&args.output, &decrypted.plaintext)?;
            if args.output != Path::new("-") {
                let from: Vec<String> = decrypted.shares_from.iter().map(ToString::to_string).collect();
                eprintln!(
                    "decrypted {} bytes to {} (shares of nodes {})",
                    decrypted.plaintext.len(),
                    args.output.display(),
                    from.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Decrypt {
            code,
            message,
            failures,
        }) => {
            for failure in &failures {
                eprintln!("  {failure}");
            }
            eprintln!("error: {code}: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
