//! `sigil verify`: the seeds' chain of trust for one signature, checked against the network's
//! chain (`sigil_client::Network::verify_signature`) and printed link by link.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sigil_chain::verify::Claim;
use sigil_primitives::Cid;

use sigil::network::NetworkFile;

/// Options of `sigil verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The signature: 65 bytes hex (r ‖ s ‖ v), or the JSON `{r, s, v}` that `sigil action run
    /// --json` prints for it.
    #[arg(long)]
    signature: String,
    /// The message whose keccak256 was signed (as `ethers.utils.keccak256(toUtf8Bytes(message))`).
    /// A bare hash is not accepted: anyone can make a signature that recovers to any key from a
    /// hash of their choosing, but not from a message.
    #[arg(long, conflicts_with = "message_hex", required_unless_present = "message_hex")]
    message: Option<String>,
    /// The message as hex bytes, when it is not text.
    #[arg(long)]
    message_hex: Option<String>,
    /// The action's code: it must hash to the CID the PKP permits.
    #[arg(long, conflicts_with = "cid", required_unless_present = "cid")]
    action: Option<PathBuf>,
    /// The action's CID, when you have no file.
    #[arg(long)]
    cid: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The 65 signature bytes from hex or `{r, s, v}`.
fn signature_bytes(text: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim();
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text).context("--signature is not JSON")?;
        let part = |field: &str| -> anyhow::Result<Vec<u8>> {
            let hex_text = value
                .get(field)
                .and_then(|v| v.as_str())
                .with_context(|| format!("--signature has no string {field:?}"))?;
            let bytes = hex::decode(hex_text.trim_start_matches("0x"))
                .with_context(|| format!("--signature {field} is not hex"))?;
            anyhow::ensure!(bytes.len() == 32, "--signature {field} must be 32 bytes");
            Ok(bytes)
        };
        let v = value
            .get("v")
            .or_else(|| value.get("recoveryId"))
            .and_then(|v| v.as_u64())
            .context("--signature has no number v")?;
        let mut out = part("r")?;
        out.extend(part("s")?);
        out.push(u8::try_from(v).context("--signature v is out of range")?);
        return Ok(out);
    }
    hex::decode(text.trim_start_matches("0x")).context("--signature is neither hex nor JSON")
}

pub async fn run(network: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let file = NetworkFile::load(network)?;
    let signature = signature_bytes(&args.signature)?;
    let message: Vec<u8> = match (&args.message, &args.message_hex) {
        (Some(m), _) => m.as_bytes().to_vec(),
        (None, Some(h)) => hex::decode(h.trim_start_matches("0x")).context("--message-hex is not hex")?,
        (None, None) => anyhow::bail!("give --message or --message-hex"),
    };
    let code = match &args.action {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let cid: Cid = match (&args.cid, &code) {
        (Some(text), _) => text.parse().context("--cid")?,
        (None, Some(code)) => Cid::of_file(code)?,
        (None, None) => anyhow::bail!("give --action or --cid"),
    };
    let claim = Claim {
        signature: &signature,
        message: &message,
        cid,
        code: code.as_deref(),
    };
    let report = file.network()?.verify_signature(&claim).await?;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("holds".into(), serde_json::Value::Bool(report.holds()));
        }
        println!("{value}");
    } else {
        for link in &report.links {
            println!(
                "{} {:<16} {}",
                if link.ok { "ok  " } else { "FAIL" },
                link.name,
                link.detail
            );
        }
        if report.holds() {
            println!("verified: only action {cid} can have made this signature");
        } else {
            println!("not verified");
        }
    }
    Ok(if report.holds() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
