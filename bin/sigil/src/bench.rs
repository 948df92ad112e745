//! `sigil bench`: measurements of a real local network (node processes on loopback, optionally
//! behind delay links: a WAN on one machine). Starts it with `sigil::devnet` and `sigil::link`
//! and talks to it with `sigil::network`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand_core::{OsRng, RngCore};
use sigil_client::{Client, Credential, KeyRef};
use sigil_primitives::{Resource, ResourceAbility, SigningScheme};
use tokio::sync::Mutex;

use sigil::devnet::{free_ports, Devnet, Host, Hosts, Setup};
use sigil::link::Link;
use sigil::network::{auth_sig, wallet, NetworkFile};

/// `sigil bench` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Threshold signing latency and throughput with presignatures stocked.
    Sign(SignArgs),
    /// Action latency: a trivial action, one that draws random bytes (the network's agreed
    /// seed), one that loads ethers itself, one that reads the chain through an ethers provider
    /// (on spare runtimes with ethers loaded, then back to back), and one that signs once.
    Action(SignArgs),
    /// Decryption latency end to end: t shares released after a balance condition, verified,
    /// combined, and the data decrypted (`--stock` and `--concurrency` are not used).
    Decrypt(SignArgs),
    /// Signing while the network changes epoch (two nodes join): how long the change takes,
    /// requests failed and retried, and sign latency before, during and after it.
    Epoch(crate::bench_epoch::EpochArgs),
}

/// The action `bench action` runs without signing.
const TRIVIAL_ACTION: &str = "Lit.Actions.setResponse({ response: 'ok' });";
/// The action `bench action` runs to draw agreed randomness (a threshold signature per run).
const RANDOM_ACTION: &str =
    "Lit.Actions.setResponse({ response: String(crypto.getRandomValues(new Uint8Array(16)).length) });";
/// The action `bench action` runs to load ethers only (what the provider action pays first).
/// Its code does not name `ethers` (it builds the name), so it never runs on a spare runtime with
/// ethers loaded: every run pays for loading it.
const ETHERS_LOAD_ACTION: &str = "Lit.Actions.setResponse({ response: typeof globalThis[\"eth\" + \"ers\"].utils });";
/// The action `bench action` runs to read the chain the way most Lit actions do.
const ETHERS_ACTION: &str = r#"(async () => {
  const provider = new ethers.providers.JsonRpcProvider(await Lit.Actions.getRpcUrl({ chain: "sigil" }));
  const [network, balance] = [await provider.getNetwork(), await provider.getBalance(wallet)];
  Lit.Actions.setResponse({ response: String(network.chainId > 0 && balance.gte(0)) });
})();"#;
/// The action `bench action` runs to sign once (a fresh hash per run, as an array of bytes).
const SIGNING_ACTION: &str = r#"(async () => {
  await Lit.Actions.signEcdsa({ toSign: hash, publicKey, sigName: "bench" });
  Lit.Actions.setResponse({ response: "signed" });
})();"#;

/// Options of `sigil bench sign`.
#[derive(clap::Args)]
pub struct SignArgs {
    /// Nodes in the network started for the benchmark.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// How long to sign, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Sign requests in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Presignatures stocked before timing starts; the timed phase ends early when they run out.
    #[arg(long, default_value_t = 100)]
    stock: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Directory for the benchmark network (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// One-way delay, in milliseconds, of a link (a userspace proxy) in front of every node:
    /// node-to-node and client-to-node traffic each take this long per direction, like nodes on
    /// a WAN. 0: no links.
    #[arg(long, default_value_t = 0)]
    link_delay_ms: u64,
    /// Sign with session signatures (a wallet session, one per node) instead of a bare
    /// authSig; with both flags, requests alternate between the two and each gets its figures.
    #[arg(long)]
    sessions: bool,
    /// With `--sessions`: also sign with the bare authSig, alternating, for a ratio in one run.
    #[arg(long)]
    compare_auth_sig: bool,
    /// The signing scheme: EcdsaK256Sha256 (presignatures) or SchnorrK256Taproot (FROST nonces;
    /// `--stock` then counts nonces, and their generation rate is reported).
    #[arg(long, default_value = "EcdsaK256Sha256", value_parser = crate::client_cmd::parse_scheme)]
    scheme: SigningScheme,
}

/// The metrics of `scheme`'s one-time material: (stock gauge, made counter, name).
fn material_metrics(scheme: SigningScheme) -> (&'static str, &'static str, &'static str) {
    match scheme {
        SigningScheme::EcdsaK256Sha256 => (
            "sigil_presignature_stock",
            "sigil_presignatures_made_total",
            "presignatures",
        ),
        SigningScheme::SchnorrK256Taproot => (
            "sigil_schnorr_stock",
            "sigil_schnorr_nonces_made_total",
            "Schnorr nonces",
        ),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let value: f64 = number.parse().map_err(|_| format!("bad duration {text:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("bad duration unit in {text:?} (use ms, s or m)")),
    };
    if !(seconds > 0.0 && seconds < 86_400.0) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Sign(args) => sign(args, false).await,
        Command::Action(args) => sign(args, true).await,
        Command::Decrypt(args) => decrypt(args).await,
        Command::Epoch(args) => crate::bench_epoch::run(args).await,
    }
}

/// Starts a network, encrypts 1 KiB under "holds at least 1 ETH" and decrypts it as the dev
/// wallet, one request at a time.
async fn decrypt(args: SignArgs) -> anyhow::Result<ExitCode> {
    // Decryption uses no presignatures: keep the background work to one.
    let mut bench = BenchNetwork::start(&args, 1).await?;
    let result = measure_decrypt(&args, &mut bench.devnet).await;
    bench.stop().await;
    result
}

async fn measure_decrypt(args: &SignArgs, devnet: &mut Devnet) -> anyhow::Result<ExitCode> {
    eprintln!(
        "bench decrypt: {} nodes, threshold {}",
        devnet.network().nodes.len(),
        devnet.network().threshold
    );
    devnet.wait_ready(Duration::from_secs(180)).await?;
    devnet.register(None).await?;
    let network = devnet.network();
    let client = Client::connect(&network.network()?).await?;
    let signer = wallet(None, network)?;
    let auth = auth_sig(&client, &signer).await?;
    let conditions = serde_json::json!({ "accessControlConditions": [{
        "contractAddress": "", "standardContractType": "", "chain": "sigil", "method": "eth_getBalance",
        "parameters": [":userAddress", "latest"],
        "returnValueTest": { "comparator": ">=", "value": "1000000000000000000" }
    }]});
    let mut data = vec![0u8; 1024];
    OsRng.fill_bytes(&mut data);
    let mut encrypt_ms = Vec::new();
    let mut sealed = client.encrypt(&conditions, &data)?;
    for _ in 0..50 {
        let t = Instant::now();
        sealed = client.encrypt(&conditions, &data)?;
        encrypt_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // Warm up the connections.
    client.decrypt(&sealed, Some(&auth)).await?;
    eprintln!("  decrypting for {:.1} s", args.duration.as_secs_f64());
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    while started.elapsed() < args.duration {
        let t = Instant::now();
        match client.decrypt(&sealed, Some(&auth)).await {
            Ok(out) if out.plaintext.as_slice() == data.as_slice() => {
                latencies.push(t.elapsed().as_secs_f64() * 1000.0)
            }
            Ok(_) => failures.push("decrypted to other data".to_string()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let runs = latencies.len();
    let (p50, p95, p99) = summary(latencies);
    let (e50, _, e99) = summary(encrypt_ms);
    if args.json {
        let json = serde_json::json!({
            "nodes": network.nodes.len(),
            "link_delay_ms": args.link_delay_ms,
            "threshold": network.threshold,
            "duration_s": elapsed,
            "bytes": data.len(),
            "decryptions": runs,
            "errors": failures.len(),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "per_second": runs as f64 / elapsed,
            "encrypt_p50_ms": e50,
            "encrypt_p99_ms": e99,
        });
        println!("{json}");
    } else {
        println!(
            "decrypt, {} nodes (threshold {}){}, 1 KiB under a balance condition, one request at a time, {elapsed:.1} s",
            network.nodes.len(),
            network.threshold,
            links_note(args)
        );
        println!("  {:<34} {:>10}", "decryptions", runs);
        println!("  {:<34} {:>10}", "errors", failures.len());
        println!("  {:<34} {:>10.2}", "p50 ms", p50);
        println!("  {:<34} {:>10.2}", "p95 ms", p95);
        println!("  {:<34} {:>10.2}", "p99 ms", p99);
        println!("  {:<34} {:>10.1}", "decryptions / s", runs as f64 / elapsed);
        println!("  {:<34} {:>10.2}", "encrypt p50 ms (client, offline)", e50);
    }
    Ok(finish(&failures))
}

/// The allocator's URL: the lowest id, wherever it is listed.
pub(crate) fn allocator_url(network: &NetworkFile) -> String {
    network
        .nodes
        .iter()
        .min_by_key(|n| n.id)
        .map(|n| n.url.clone())
        .unwrap_or_default()
}

/// Waits until the allocator at `allocator` stocks `stock` presignatures, with a progress line.
pub(crate) async fn wait_for_stock(http: &reqwest::Client, allocator: &str, stock: usize) -> anyhow::Result<()> {
    wait_for_material(http, allocator, stock, SigningScheme::EcdsaK256Sha256).await
}

/// Waits until the allocator at `allocator` stocks `stock` pieces of `scheme`'s material.
async fn wait_for_material(
    http: &reqwest::Client,
    allocator: &str,
    stock: usize,
    scheme: SigningScheme,
) -> anyhow::Result<()> {
    let (gauge, _, what) = material_metrics(scheme);
    let started = Instant::now();
    loop {
        let have = metric(http, allocator, gauge).await? as usize;
        eprint!(
            "\r  stocking {what}: {have}/{stock} ({:.0} s)   ",
            started.elapsed().as_secs_f64()
        );
        if have >= stock {
            eprintln!();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn metric(http: &reqwest::Client, url: &str, name: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{url}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("{url}/metrics has no {name}"))
}

/// Seconds spent in each sign phase and how many requests passed through it, summed over the
/// nodes at `urls` (from `sigil_sign_phase_seconds` in their `/metrics`).
async fn phase_totals(
    http: &reqwest::Client,
    urls: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, (f64, f64)>> {
    let mut totals = std::collections::BTreeMap::<String, (f64, f64)>::new();
    for url in urls {
        let text = http
            .get(format!("{url}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .text()
            .await?;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("sigil_sign_phase_seconds_") else {
                continue;
            };
            let Some((kind, rest)) = rest.split_once("{phase=\"") else {
                continue;
            };
            let Some((phase, value)) = rest.split_once("\"} ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let entry = totals.entry(phase.to_string()).or_default();
            match kind {
                "sum" => entry.0 += value,
                "count" => entry.1 += value,
                _ => {}
            }
        }
    }
    Ok(totals)
}

/// Mean milliseconds per request in each phase between two [`phase_totals`] readings, in the
/// order the phases run.
fn phase_means(
    before: &std::collections::BTreeMap<String, (f64, f64)>,
    after: &std::collections::BTreeMap<String, (f64, f64)>,
) -> Vec<(String, f64)> {
    let order = ["authorize", "allocate", "take", "share"];
    let mut means: Vec<(String, f64)> = after
        .iter()
        .filter_map(|(phase, (sum, count))| {
            let (sum0, count0) = before.get(phase).copied().unwrap_or_default();
            let n = count - count0;
            (n > 0.0).then(|| (phase.clone(), (sum - sum0) / n * 1000.0))
        })
        .collect();
    means.sort_by_key(|(phase, _)| order.iter().position(|p| p == phase).unwrap_or(order.len()));
    means
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or(0.0)
}

/// A network started for one benchmark, in `--dir` or a fresh temporary directory.
struct BenchNetwork {
    devnet: Devnet,
    keep: bool,
    /// The links in front of the nodes (`--link-delay-ms`), alive as long as the network.
    _links: Vec<Link>,
}

impl BenchNetwork {
    /// Prepares and starts `args.nodes` nodes that stock `stock` presignatures and refill only
    /// once the stock is gone, so the timed phase measures the request, not the request while the
    /// same two cores make triples.
    async fn start(args: &SignArgs, stock: usize) -> anyhow::Result<Self> {
        let dir = match &args.dir {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir().join(format!("sigil-bench-{}-{}", std::process::id(), OsRng.next_u32())),
        };
        let (links, hosts) = if args.link_delay_ms > 0 {
            if args.dir.as_ref().is_some_and(|d| d.join("network.json").exists()) {
                bail!("--link-delay-ms needs a fresh network: NodeSet lists the links' addresses");
            }
            let (links, hosts) = links(args.nodes, Duration::from_millis(args.link_delay_ms)).await?;
            (links, Some(hosts))
        } else {
            (Vec::new(), None)
        };
        // Only the material of the scheme measured is made (plus presignatures for the mint
        // attestation and the warm-up when it is Schnorr), so the two cores make nothing else.
        let (presign_stock, schnorr_stock) = match args.scheme {
            SigningScheme::EcdsaK256Sha256 => (stock, 0),
            SigningScheme::SchnorrK256Taproot => (4, stock),
        };
        let setup = Setup {
            nodes: args.nodes,
            presign_stock,
            presign_refill_below: Some(1),
            schnorr_stock: Some(schnorr_stock),
            hosts,
            ..Setup::default()
        };
        let mut bench = Self {
            devnet: Devnet::prepare(&dir, &setup).await?,
            keep: args.dir.is_some(),
            _links: links,
        };
        if let Err(e) = bench.devnet.start_nodes() {
            bench.stop().await;
            return Err(e);
        }
        Ok(bench)
    }

    async fn stop(mut self) {
        self.devnet.stop().await;
        if !self.keep {
            let _ = std::fs::remove_dir_all(self.devnet.dir());
        }
    }
}

/// One link with `delay` in front of each of `n` nodes on loopback, and the hosts that make
/// NodeSet list the links.
async fn links(n: usize, delay: Duration) -> anyhow::Result<(Vec<Link>, Hosts)> {
    let loopback = std::net::Ipv4Addr::LOCALHOST.into();
    let mut links = Vec::new();
    let mut nodes = Vec::new();
    for port in free_ports(n)? {
        let listen = std::net::SocketAddr::new(loopback, port);
        let link = Link::start(std::net::SocketAddr::new(loopback, 0), listen, delay)
            .await
            .context("starting a link")?;
        nodes.push(Host {
            listen,
            url: Some(link.url()),
            launch: Vec::new(),
        });
        links.push(link);
    }
    Ok((links, Hosts { anvil: None, nodes }))
}

async fn sign(args: SignArgs, actions: bool) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let stock = args.stock.max(1);
    let mut bench = BenchNetwork::start(&args, stock).await?;
    let result = measure(&args, &mut bench.devnet, stock, actions).await;
    bench.stop().await;
    result
}

async fn measure(args: &SignArgs, devnet: &mut Devnet, stock: usize, actions: bool) -> anyhow::Result<ExitCode> {
    eprintln!(
        "bench {}: {} nodes, threshold {}",
        if actions { "action" } else { "sign" },
        devnet.network().nodes.len(),
        devnet.network().threshold
    );
    devnet.wait_ready(Duration::from_secs(180)).await?;
    devnet.register(None).await?;
    let network = devnet.network();
    let http = reqwest::Client::new();
    let allocator = allocator_url(network);
    let (stock_gauge, made_counter, material) = material_metrics(args.scheme);
    let started = Instant::now();
    let made_before = metric(&http, &allocator, made_counter).await?;
    wait_for_material(&http, &allocator, stock, args.scheme).await?;
    let made = metric(&http, &allocator, made_counter).await? - made_before;
    let presign_rate = made / started.elapsed().as_secs_f64();
    let client = Client::connect(&network.network()?)
        .await?
        .with_contracts(&network.contracts()?);
    // One PKP owned by the dev wallet (its mint takes one presignature for the attestation).
    let signer = wallet(None, network)?;
    let provider = sigil_chain::deploy::wallet_provider(network.rpc_url()?, signer.clone())?;
    let auth = Arc::new(auth_sig(&client, &signer).await?);
    let pkp = client.mint_pkp(&provider, &auth, &network.contracts()?).await?;
    let key_id = pkp.key_id;
    let public_key = client.pkp_public_key(KeyRef::KeyId(key_id));
    if actions {
        return measure_actions(args, network, &client, &provider, pkp.token_id, &public_key, stock).await;
    }
    // What each request proves its caller with: the authSig, a session, or both in turn.
    let mut credentials: Vec<(&str, Arc<dyn Credential>)> = Vec::new();
    if !args.sessions || args.compare_auth_sig {
        credentials.push(("authSig", auth.clone()));
    }
    if args.sessions {
        let token = hex::encode(pkp.token_id.to_be_bytes::<32>());
        let requests = [ResourceAbility {
            resource: Resource {
                resource: token,
                resource_prefix: "lit-pkp".into(),
            },
            ability: "pkp-signing".into(),
        }];
        let session = client
            .wallet_session(&signer, "localhost", &requests, Duration::from_secs(3600))
            .await?;
        credentials.push(("sessionSigs", Arc::new(session)));
    }
    let credentials = Arc::new(credentials);
    let client = Arc::new(client);
    let scheme = args.scheme;
    let output_key = client.pkp_taproot_key(KeyRef::KeyId(key_id))?;
    // One signature by `scheme`, and whether it verifies (the client has verified it; this check
    // is the benchmark's own: k256 for ECDSA, libsecp256k1 for BIP-340).
    let sign_once = move |client: Arc<Client>, hash: [u8; 32], credential: Arc<dyn Credential>| async move {
        match scheme {
            SigningScheme::EcdsaK256Sha256 => client
                .pkp_sign(KeyRef::KeyId(key_id), hash, credential.as_ref())
                .await
                .map(|o| o.signature.verify(&public_key, &hash)),
            SigningScheme::SchnorrK256Taproot => client
                .pkp_sign_schnorr(KeyRef::KeyId(key_id), hash, credential.as_ref())
                .await
                .map(|o| verify_bip340(&output_key, &hash, &o.signature)),
        }
    };
    // Warm the connections (and each node's capability cache), then measure.
    for (_, credential) in credentials.iter() {
        sign_once(Arc::clone(&client), [0; 32], Arc::clone(credential)).await?;
    }
    eprintln!(
        "  signing for {:.1} s with {} in flight",
        args.duration.as_secs_f64(),
        args.concurrency
    );
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let made_at_start = metric(&http, &allocator, made_counter).await?;
    let phases_before = phase_totals(&http, &network.urls()).await?;
    let until = Instant::now() + args.duration;
    // Stay within the stock (one presignature went to the mint attestation, one to the warm-up).
    let spent = match scheme {
        SigningScheme::EcdsaK256Sha256 => 1 + credentials.len(),
        SigningScheme::SchnorrK256Taproot => credentials.len(),
    };
    let budget = Arc::new(std::sync::atomic::AtomicUsize::new(stock.saturating_sub(spent)));
    let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let run_started = Instant::now();
    let workers = (0..args.concurrency).map(|_| {
        let client = Arc::clone(&client);
        let latencies = Arc::clone(&latencies);
        let failures = Arc::clone(&failures);
        let budget = Arc::clone(&budget);
        let credentials = Arc::clone(&credentials);
        let turn = Arc::clone(&turn);
        async move {
            while Instant::now() < until
                && budget
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |b| b.checked_sub(1),
                    )
                    .is_ok()
            {
                let mut hash = [0u8; 32];
                OsRng.fill_bytes(&mut hash);
                let which = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % credentials.len();
                let Some((_, credential)) = credentials.get(which) else {
                    break;
                };
                let t = Instant::now();
                let signed = sign_once(Arc::clone(&client), hash, Arc::clone(credential)).await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                match signed {
                    Ok(true) => {
                        latencies.lock().await.push((which, ms));
                    }
                    Ok(false) => failures.lock().await.push("a signature did not verify".to_string()),
                    Err(e) => failures.lock().await.push(e.to_string()),
                }
            }
        }
    });
    futures::future::join_all(workers).await;
    let elapsed = run_started.elapsed().as_secs_f64();
    let made_during = metric(&http, &allocator, made_counter).await? - made_at_start;
    let left = metric(&http, &allocator, stock_gauge).await?;
    let phases = phase_means(&phases_before, &phase_totals(&http, &network.urls()).await?);
    let measured = latencies.lock().await.clone();
    let failures = failures.lock().await.clone();
    let count = measured.len();
    let per_second = count as f64 / elapsed;
    let (p50, p95, p99) = summary(measured.iter().map(|(_, ms)| *ms).collect());
    // Per credential kind, when there is more than one.
    let by_kind: Vec<(&str, (f64, f64, f64))> = if credentials.len() > 1 {
        credentials
            .iter()
            .enumerate()
            .map(|(i, (label, _))| {
                (
                    *label,
                    summary(measured.iter().filter(|(w, _)| *w == i).map(|(_, ms)| *ms).collect()),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let auth_label = credentials.iter().map(|(l, _)| *l).collect::<Vec<_>>().join("+");
    if args.json {
        let json = serde_json::json!({
            "nodes": network.nodes.len(),
            "link_delay_ms": args.link_delay_ms,
            "threshold": network.threshold,
            "duration_s": args.duration.as_secs_f64(),
            "concurrency": args.concurrency,
            "stock": stock,
            "signatures": count,
            "errors": failures.len(),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "per_second": per_second,
            "presign_per_second": presign_rate,
            "presign_per_second_while_signing": made_during / elapsed,
            "stock_left": left,
            "signing_scheme": scheme.name(),
            "auth": auth_label,
            "by_auth": by_kind.iter().map(|(l, (p50, _, p99))| ((*l).to_string(), serde_json::json!({"p50_ms": p50, "p99_ms": p99}))).collect::<serde_json::Map<String, serde_json::Value>>(),
            "node_phase_ms": phases.iter().map(|(p, ms)| (p.clone(), serde_json::json!(ms))).collect::<serde_json::Map<String, serde_json::Value>>(),
        });
        println!("{json}");
    } else {
        println!(
            "sign {}, {} nodes (threshold {}){}, concurrency {}, {:.1} s",
            scheme.name(),
            network.nodes.len(),
            network.threshold,
            links_note(args),
            args.concurrency,
            elapsed
        );
        println!("  {:<34} {:>10}", "signatures", count);
        println!("  {:<34} {:>10}", "errors", failures.len());
        println!("  {:<34} {:>10.2}", "p50 ms", p50);
        println!("  {:<34} {:>10.2}", "p95 ms", p95);
        println!("  {:<34} {:>10.2}", "p99 ms", p99);
        println!("  {:<34} {:>10.1}", "signatures / s", per_second);
        println!("  {:<34} {:>10.2}", format!("{material} / s (stocking)"), presign_rate);
        println!(
            "  {:<34} {:>10.2}",
            format!("{material} / s (while signing)"),
            made_during / elapsed
        );
        println!("  {:<34} {:>10}", "stock left", left);
        println!("  {:<34} {:>10}", "credential", auth_label);
        for (label, (p50, _, p99)) in &by_kind {
            println!("    {:<32} {:>10.2}", format!("{label} p50 ms"), p50);
            println!("    {:<32} {:>10.2}", format!("{label} p99 ms"), p99);
        }
        if let [(_, (base, _, _)), (_, (session, _, _))] = by_kind.as_slice() {
            println!("    {:<32} {:>10.3}", "sessionSigs / authSig p50", session / base);
        }
        println!("  node time per request, mean over nodes:");
        for (phase, ms) in &phases {
            println!("    {:<32} {:>10.3}", format!("{phase} ms"), ms);
        }
    }
    Ok(finish(&failures))
}

/// The heading's note on `--link-delay-ms`.
fn links_note(args: &SignArgs) -> String {
    match args.link_delay_ms {
        0 => String::new(),
        ms => format!(", {ms} ms one-way links"),
    }
}

/// Prints the first failure; success only without any.
fn finish(failures: &[String]) -> ExitCode {
    if let Some(first) = failures.first() {
        eprintln!("first error: {first}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// p50/p95/p99 of latencies in ms (sorted here).
fn summary(mut latencies: Vec<f64>) -> (f64, f64, f64) {
    latencies.sort_by(|a, b| a.total_cmp(b));
    (
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
    )
}

/// Runs `code` one request at a time for `duration` or `budget` runs; latencies in ms. With
/// `paced` (the nodes' URLs), each run starts only once every node has a spare runtime ready
/// (`sigil_action_spares_ready`, waited for at most 10 s and not timed).
async fn time_action(
    client: &Client,
    code: &str,
    params: impl Fn() -> serde_json::Value,
    duration: Duration,
    budget: usize,
    paced: &[String],
    check: impl Fn(&sigil_client::ExecuteOutcome) -> bool,
) -> (Vec<f64>, Vec<String>, f64) {
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    let http = reqwest::Client::new();
    while started.elapsed() < duration && latencies.len() + failures.len() < budget {
        for url in paced {
            let waited = Instant::now();
            while metric(&http, url, "sigil_action_spares_ready").await.unwrap_or(0.0) < 1.0
                && waited.elapsed() < Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let t = Instant::now();
        match client
            .execute(sigil_client::ActionCode::Code(code.to_string()), params(), None)
            .await
        {
            Ok(outcome) if check(&outcome) => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
            Ok(outcome) => failures.push(format!("unexpected outcome: {:?}", outcome.response)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    (latencies, failures, started.elapsed().as_secs_f64())
}

async fn measure_actions(
    args: &SignArgs,
    network: &NetworkFile,
    client: &Client,
    provider: &sigil_chain::alloy::providers::DynProvider,
    token: sigil_chain::alloy::primitives::U256,
    public_key: &sigil_tss::k256::ProjectivePoint,
    stock: usize,
) -> anyhow::Result<ExitCode> {
    use sigil_chain::alloy::primitives::Bytes;
    use sigil_chain::bindings::PKPPermissions;

    let cid = sigil_primitives::Cid::of_file(SIGNING_ACTION.as_bytes())?;
    let call = PKPPermissions::new(network.contracts()?.pkp_permissions, provider)
        .addPermittedAction(token, Bytes::copy_from_slice(cid.as_bytes()))
        .into_transaction_request();
    sigil_chain::deploy::send(provider, call, "PKPPermissions.addPermittedAction").await?;
    let public_hex = format!("0x{}", hex::encode(sigil_tss::derive::uncompressed(public_key)));
    // Warm up the connections.
    client
        .execute(
            sigil_client::ActionCode::Code(TRIVIAL_ACTION.into()),
            serde_json::json!({}),
            None,
        )
        .await?;
    let half = args.duration / 6;
    let urls: Vec<String> = network.nodes.iter().map(|n| n.url.clone()).collect();
    eprintln!("  trivial action for {:.1} s", half.as_secs_f64());
    let (trivial, mut failures, trivial_s) = time_action(
        client,
        TRIVIAL_ACTION,
        || serde_json::json!({}),
        half,
        usize::MAX,
        &[],
        |o| o.response.as_deref() == Some("ok"),
    )
    .await;
    eprintln!("  random-drawing action for {:.1} s", half.as_secs_f64());
    let (random, random_failures, random_s) = time_action(
        client,
        RANDOM_ACTION,
        || serde_json::json!({}),
        half,
        usize::MAX,
        &[],
        |o| o.response.as_deref() == Some("16"),
    )
    .await;
    failures.extend(random_failures);
    eprintln!("  ethers-loading action for {:.1} s", half.as_secs_f64());
    let (load, load_failures, load_s) = time_action(
        client,
        ETHERS_LOAD_ACTION,
        || serde_json::json!({}),
        half,
        usize::MAX,
        &[],
        |o| o.response.as_deref() == Some("object"),
    )
    .await;
    failures.extend(load_failures);
    eprintln!(
        "  ethers provider action for {:.1} s, each run once every node has a spare runtime",
        half.as_secs_f64()
    );
    let wallet = "0x000000000000000000000000000000000000dEaD";
    // Each node's first action that names ethers loads it itself and starts its spares.
    client
        .execute(
            sigil_client::ActionCode::Code(ETHERS_ACTION.into()),
            serde_json::json!({ "wallet": wallet }),
            None,
        )
        .await?;
    let (ethers, ethers_failures, ethers_s) = time_action(
        client,
        ETHERS_ACTION,
        || serde_json::json!({ "wallet": wallet }),
        half,
        usize::MAX,
        &urls,
        |o| o.response.as_deref() == Some("true"),
    )
    .await;
    failures.extend(ethers_failures);
    eprintln!("  ethers provider action back to back for {:.1} s", half.as_secs_f64());
    let (busy, busy_failures, busy_s) = time_action(
        client,
        ETHERS_ACTION,
        || serde_json::json!({ "wallet": wallet }),
        half,
        usize::MAX,
        &[],
        |o| o.response.as_deref() == Some("true"),
    )
    .await;
    failures.extend(busy_failures);
    eprintln!(
        "  signing action for {:.1} s (at most {} runs: the stock)",
        half.as_secs_f64(),
        stock.saturating_sub(1)
    );
    let params = || {
        let mut hash = [0u8; 32];
        OsRng.fill_bytes(&mut hash);
        serde_json::json!({ "publicKey": public_hex, "hash": hash.to_vec() })
    };
    let (signing, sign_failures, signing_s) = time_action(
        client,
        SIGNING_ACTION,
        params,
        half,
        stock.saturating_sub(1),
        &[],
        // The client combined the shares into a signature it verified against the PKP key.
        |o| o.signatures.contains_key("bench"),
    )
    .await;
    failures.extend(sign_failures);
    let (trivial_runs, signing_runs) = (trivial.len(), signing.len());
    let (random_runs, ethers_runs) = (random.len(), ethers.len());
    let (r50, r95, r99) = summary(random);
    let (e50, e95, e99) = summary(ethers);
    let busy_runs = busy.len();
    let (b50, b95, b99) = summary(busy);
    let load_runs = load.len();
    let (l50, l95, l99) = summary(load);
    let (t50, t95, t99) = summary(trivial);
    let (s50, s95, s99) = summary(signing);
    if args.json {
        let json = serde_json::json!({
            "nodes": network.nodes.len(),
            "link_delay_ms": args.link_delay_ms,
            "threshold": network.threshold,
            "duration_s": args.duration.as_secs_f64(),
            "stock": stock,
            "errors": failures.len(),
            "trivial": { "runs": trivial_runs, "p50_ms": t50, "p95_ms": t95, "p99_ms": t99, "per_second": trivial_runs as f64 / trivial_s },
            "random": { "runs": random_runs, "p50_ms": r50, "p95_ms": r95, "p99_ms": r99, "per_second": random_runs as f64 / random_s },
            "ethers_load": { "runs": load_runs, "p50_ms": l50, "p95_ms": l95, "p99_ms": l99, "per_second": load_runs as f64 / load_s },
            "ethers_provider": { "runs": ethers_runs, "p50_ms": e50, "p95_ms": e95, "p99_ms": e99, "per_second": ethers_runs as f64 / ethers_s },
            "ethers_provider_back_to_back": { "runs": busy_runs, "p50_ms": b50, "p95_ms": b95, "p99_ms": b99, "per_second": busy_runs as f64 / busy_s },
            "sign": { "runs": signing_runs, "p50_ms": s50, "p95_ms": s95, "p99_ms": s99, "per_second": signing_runs as f64 / signing_s },
        });
        println!("{json}");
    } else {
        println!(
            "action, {} nodes (threshold {}){}, one request at a time",
            network.nodes.len(),
            network.threshold,
            links_note(args)
        );
        println!(
            "  {:<16} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "action", "runs", "p50 ms", "p95 ms", "p99 ms", "runs/s"
        );
        println!(
            "  {:<16} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
            "trivial",
            trivial_runs,
            t50,
            t95,
            t99,
            trivial_runs as f64 / trivial_s
        );
        for (name, runs, p50, p95, p99, secs) in [
            ("draws randomness", random_runs, r50, r95, r99, random_s),
            ("loads ethers", load_runs, l50, l95, l99, load_s),
            ("ethers provider", ethers_runs, e50, e95, e99, ethers_s),
            ("  back to back", busy_runs, b50, b95, b99, busy_s),
        ] {
            println!(
                "  {:<16} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
                name,
                runs,
                p50,
                p95,
                p99,
                runs as f64 / secs
            );
        }
        println!(
            "  {:<16} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
            "signs once",
            signing_runs,
            s50,
            s95,
            s99,
            signing_runs as f64 / signing_s
        );
        println!("  errors {}", failures.len());
    }
    Ok(finish(&failures))
}

/// Whether `signature` is a BIP-340 signature of `message` under the x-only key `key`, checked
/// by libsecp256k1 (through rust-bitcoin): a verifier that is not Sigil's.
fn verify_bip340(key: &[u8; 32], message: &[u8; 32], signature: &[u8; 64]) -> bool {
    use sigil_client::btc::bitcoin::secp256k1::{schnorr, Message, Secp256k1, XOnlyPublicKey};
    let (Ok(key), Ok(signature)) = (
        XOnlyPublicKey::from_slice(key),
        schnorr::Signature::from_slice(signature),
    ) else {
        return false;
    };
    Secp256k1::verification_only()
        .verify_schnorr(&signature, &Message::from_digest(*message), &key)
        .is_ok()
}
