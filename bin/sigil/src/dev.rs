//! `sigil dev`: a local network of node processes on free loopback ports, and the `network.json`
//! file that client commands read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sigil_chain::alloy::primitives::Address;
use sigil_chain::alloy::providers::Provider;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::deploy::{deploy, set_nodes, wallet_provider};
use sigil_chain::registry::{read_provider, ListedNode};
use sigil_chain::Contracts;
use sigil_node::config::{ActionsConfig, ChainConfig, NodeConfig};
use sigil_node::store::StorageKey;
use sigil_node::{init_data_dir, PublicIdentity};
use sigil_tss::{threshold_for, MAX_PARTIES, MIN_PARTIES};
use tokio::process::{Child, Command};

/// Private key of anvil's first funded account: the dev wallet, NodeSet's admin in a dev network.
pub const DEV_PRIVATE_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Options of `sigil dev`.
#[derive(clap::Args)]
pub struct Args {
    /// Number of nodes (3 to 31); the threshold is ⌈2n/3⌉.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Directory for the node configs, data and logs, and `network.json`. An existing network there
    /// is restarted with its keys.
    #[arg(long, default_value = ".sigil")]
    dir: PathBuf,
    /// Presignatures kept in stock.
    #[arg(long, default_value_t = 32)]
    presign_stock: usize,
    /// Write the configs and `network.json`, then exit without starting the nodes.
    #[arg(long)]
    init_only: bool,
    /// Seconds to wait for the root keys.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Use this EVM chain instead of starting anvil (the wallet must be funded there).
    #[arg(long)]
    rpc_url: Option<String>,
    /// Compiled contracts (`forge build` output); default `contracts/out` here or beside the binary's checkout.
    #[arg(long)]
    contracts: Option<PathBuf>,
}

/// `network.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NetworkFile {
    /// Format version.
    pub version: u32,
    /// Shares needed.
    pub threshold: usize,
    /// Every node.
    pub nodes: Vec<NetworkNode>,
    /// JSON-RPC URL of the chain holding NodeSet and the PKP contracts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_url: Option<String>,
    /// Its chain id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// The contracts, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracts: Option<Contracts>,
    /// A funded wallet for local development (anvil's first account), NodeSet's admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_wallet: Option<DevWallet>,
    /// The anvil `sigil dev` runs for this network, if it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anvil: Option<AnvilInfo>,
}

/// The dev wallet in `network.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DevWallet {
    /// Its address.
    pub address: String,
    /// Its private key (a well-known anvil key: never use it on a real chain).
    pub private_key: String,
}

/// How `sigil dev` restarts its anvil.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct AnvilInfo {
    /// Loopback port.
    pub port: u16,
    /// State file, relative to the network file.
    pub state: String,
}

/// A node in `network.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NetworkNode {
    /// Node id.
    pub id: u32,
    /// Base URL.
    pub url: String,
    /// Its config file, relative to the network file.
    pub config: String,
}

impl NetworkFile {
    /// Reads a network file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading {} (start a network with `sigil dev` or pass --network)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Node URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// The network as a client finds it: the chain and its NodeSet.
    pub fn network(&self) -> anyhow::Result<sigil_client::Network> {
        Ok(sigil_client::Network {
            rpc_url: self.rpc_url()?.to_string(),
            node_set: self.contracts()?.node_set,
        })
    }

    /// The chain's RPC URL.
    pub fn rpc_url(&self) -> anyhow::Result<&str> {
        self.rpc_url
            .as_deref()
            .context("this network file names no chain (rpcUrl); start the network with `sigil dev`")
    }

    /// The contract addresses.
    pub fn contracts(&self) -> anyhow::Result<Contracts> {
        self.contracts
            .context("this network file names no contracts; start the network with `sigil dev`")
    }
}

/// Finds an executable on PATH, else in `tools/node_modules/.bin` of the current directory or of
/// the checkout the running binary was built in.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(checkout_candidates(&format!("tools/node_modules/.bin/{name}")))
        .find(|p| p.is_file())
}

fn checkout_candidates(relative: &str) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(relative)];
    if let Ok(exe) = std::env::current_exe() {
        // target/{debug,release}/sigil → the checkout is two levels up.
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            out.push(root.join(relative));
        }
    }
    out
}

/// ethers v5's UMD bundle from the pinned tools, made absolute so node configs work from anywhere.
pub fn find_ethers_bundle() -> Option<PathBuf> {
    checkout_candidates("tools/node_modules/ethers/dist/ethers.umd.min.js")
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

/// The compiled contracts directory.
pub fn find_artifacts(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    checkout_candidates("contracts/out")
        .into_iter()
        .find(|p| p.join("NodeSet.sol").is_dir())
        .context("compiled contracts not found (contracts/out): run `make contracts`, or pass --contracts DIR")
}

/// Starts anvil on loopback `port` with its state kept in `state`, and waits until it answers.
pub async fn start_anvil(port: u16, state: &Path) -> anyhow::Result<Child> {
    let anvil = find_tool("anvil")
        .context("anvil not found on PATH or in tools/node_modules/.bin: run `make tools`, or pass --rpc-url")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.with_extension("log"))
        .with_context(|| format!("opening the anvil log beside {}", state.display()))?;
    let mut child = Command::new(&anvil)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--state-interval",
            "1",
            "--state",
        ])
        .arg(state)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", anvil.display()))?;
    let url = format!("http://127.0.0.1:{port}");
    let provider = read_provider(&url)?;
    let started = Instant::now();
    loop {
        if provider.get_chain_id().await.is_ok() {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            bail!("anvil exited ({status}); see {}", state.with_extension("log").display());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("anvil did not answer on {url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where a network's chain comes from.
pub struct ChainChoice<'a> {
    /// An existing chain, or `None` to start anvil.
    pub rpc_url: Option<&'a str>,
    /// The admin wallet (default: the dev wallet).
    pub private_key: Option<&'a str>,
    /// Compiled contracts.
    pub artifacts: Option<&'a Path>,
}

/// Brings up the chain of the network in `dir` — restarting its anvil, or creating the network:
/// anvil (unless an RPC URL is given), contracts, node set, node configs, `network.json`.
/// Returns the network and the anvil process, if one runs.
pub async fn prepare(
    dir: &Path,
    n: usize,
    presign_stock: usize,
    refill_below: Option<usize>,
    chain: &ChainChoice<'_>,
) -> anyhow::Result<(NetworkFile, Option<Child>)> {
    let network_path = dir.join("network.json");
    if network_path.exists() {
        let existing = NetworkFile::load(&network_path)?;
        if existing.nodes.len() != n {
            bail!(
                "{} holds a {}-node network; use another --dir for {n} nodes",
                dir.display(),
                existing.nodes.len()
            );
        }
        let anvil = match &existing.anvil {
            Some(info) => Some(start_anvil(info.port, &dir.join(&info.state)).await?),
            None => None,
        };
        return Ok((existing, anvil));
    }
    if !(MIN_PARTIES..=MAX_PARTIES).contains(&n) {
        bail!("--nodes must be between {MIN_PARTIES} and {MAX_PARTIES}, got {n}");
    }
    let artifacts = find_artifacts(chain.artifacts)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (rpc_url, anvil, anvil_info) = match chain.rpc_url {
        Some(url) => (url.to_string(), None, None),
        None => {
            let port = free_ports(1)?.first().copied().context("no free port")?;
            let state = "anvil-state.json".to_string();
            let child = start_anvil(port, &dir.join(&state)).await?;
            (
                format!("http://127.0.0.1:{port}"),
                Some(child),
                Some(AnvilInfo { port, state }),
            )
        }
    };
    let key = chain.private_key.unwrap_or(DEV_PRIVATE_KEY);
    let signer: PrivateKeySigner = key.parse().context("the admin private key must be 32 bytes hex")?;
    let admin = signer.address();
    let provider = wallet_provider(&rpc_url, signer)?;
    eprintln!("deploying the contracts to {rpc_url} …");
    let contracts = deploy(&provider, &artifacts, admin).await?;
    let chain_id = provider.get_chain_id().await.context("reading the chain id")?;
    let (mut network, identities) = init(dir, n, presign_stock, refill_below, (&rpc_url, contracts.node_set))?;
    let list: Vec<ListedNode> = network
        .nodes
        .iter()
        .zip(identities)
        .map(|(node, identity)| ListedNode {
            id: node.id,
            identity_key: identity.key.0,
            signer: identity.signer,
            url: node.url.clone(),
        })
        .collect();
    set_nodes(&provider, contracts.node_set, &list, network.threshold as u32).await?;
    network.rpc_url = Some(rpc_url);
    network.chain_id = Some(chain_id);
    network.contracts = Some(contracts);
    // Only anvil's well-known key is written down; a real admin key stays with its owner.
    network.dev_wallet = (key == DEV_PRIVATE_KEY).then(|| DevWallet {
        address: admin.to_checksum(None),
        private_key: key.to_string(),
    });
    network.anvil = anvil_info;
    std::fs::write(&network_path, serde_json::to_string_pretty(&network)? + "\n")
        .with_context(|| format!("writing {}", network_path.display()))?;
    Ok((network, anvil))
}

fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free loopback ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<anyhow::Result<Vec<u16>>>()
}

/// Writes configs and data directories for `n` nodes under `dir`; returns the network (not yet
/// written) and the nodes' identity keys.
fn init(
    dir: &Path,
    n: usize,
    presign_stock: usize,
    refill_below: Option<usize>,
    chain: (&str, Address),
) -> anyhow::Result<(NetworkFile, Vec<PublicIdentity>)> {
    let ports = free_ports(n)?;
    let mut keys = Vec::new();
    let mut identities = Vec::new();
    for i in 0..n {
        let storage_key = StorageKey::generate();
        let identity = init_data_dir(&dir.join(format!("node{i}")).join("data"), &storage_key)?;
        identities.push(identity);
        keys.push(storage_key);
    }
    let ethers = find_ethers_bundle();
    if ethers.is_none() {
        eprintln!(
            "note: ethers v5 not found in tools/node_modules; actions that use `ethers` will fail (run `make tools`)"
        );
    }
    let mut nodes = Vec::new();
    for (i, (port, key)) in ports.iter().zip(&keys).enumerate() {
        let config = NodeConfig {
            id: i as u32,
            listen: format!("127.0.0.1:{port}").parse()?,
            data_dir: PathBuf::from("data"),
            storage_key: Some(key.to_hex().to_string()),
            threshold: None,
            presign_stock,
            presign_refill_below: refill_below,
            presign_parallel: 2,
            chain: Some(ChainConfig {
                rpc_url: chain.0.to_string(),
                node_set: chain.1.to_string(),
                auth_domain: "localhost".into(),
                nonce_max_age_secs: 600,
            }),
            // The node list lives in NodeSet.
            peers: Vec::new(),
            actions: ActionsConfig {
                ethers_bundle: ethers.clone(),
                ..ActionsConfig::default()
            },
        };
        let path = dir.join(format!("node{i}")).join("node.toml");
        write_private(&path, &toml::to_string(&config)?)?;
        nodes.push(NetworkNode {
            id: i as u32,
            url: format!("http://127.0.0.1:{port}"),
            config: format!("node{i}/node.toml"),
        });
    }
    let network = NetworkFile {
        version: 2,
        threshold: threshold_for(n),
        nodes,
        rpc_url: None,
        chain_id: None,
        contracts: None,
        dev_wallet: None,
        anvil: None,
    };
    Ok((network, identities))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Starts one node process with its log in its directory.
pub fn spawn_node(dir: &Path, node: &NetworkNode, extra: &[&str]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the sigil binary")?;
    let config = dir.join(&node.config);
    let log_path = config.with_file_name("node.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(&config)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting node {}", node.id))
}

/// Health of every node, `None` for those that do not answer.
pub async fn health_all(http: &reqwest::Client, network: &NetworkFile) -> Vec<Option<serde_json::Value>> {
    let asks = network.nodes.iter().map(|node| async move {
        let answer = http
            .get(format!("{}/health", node.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        answer.json::<serde_json::Value>().await.ok()
    });
    futures::future::join_all(asks).await
}

/// Waits until every node holds its root key shares, with a progress line on stderr.
pub async fn wait_ready(
    network: &NetworkFile,
    children: &mut [Child],
    dir: &Path,
    timeout: Duration,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let n = network.nodes.len();
    loop {
        for (node, child) in network.nodes.iter().zip(children.iter_mut()) {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "node {} exited ({status}) while starting; see {}",
                    node.id,
                    dir.join(&node.config).with_file_name("node.log").display()
                );
            }
        }
        let health = health_all(&http, network).await;
        let up = health.iter().filter(|h| h.is_some()).count();
        let ready = health
            .iter()
            .filter(|h| h.as_ref().and_then(|h| h.get("rootKeys")).and_then(|v| v.as_bool()) == Some(true))
            .count();
        eprint!(
            "\r  {up}/{n} nodes up, {ready}/{n} hold root key shares ({:.1} s)   ",
            started.elapsed().as_secs_f64()
        );
        if ready == n {
            eprintln!();
            return Ok(());
        }
        if started.elapsed() > timeout {
            eprintln!();
            bail!(
                "the network did not make its root keys within {} s; node logs are in {}",
                timeout.as_secs(),
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first restart delay of a node that exited; it doubles (up to [`RESTART_MAX`]) while the
/// node keeps exiting within [`RESTART_RESET`] of its start.
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);
const RESTART_RESET: Duration = Duration::from_secs(60);

/// Watches the node processes: one that exits is reported, the others keep serving, and it is
/// started again after a back-off. Runs until the future is dropped.
async fn supervise(dir: &Path, network: &NetworkFile, children: &mut [Child]) {
    struct Watch {
        started: Instant,
        delay: Duration,
        restart_at: Option<Instant>,
    }
    let mut watch: Vec<Watch> = children
        .iter()
        .map(|_| Watch {
            started: Instant::now(),
            delay: RESTART_FIRST,
            restart_at: None,
        })
        .collect();
    loop {
        for ((node, child), w) in network.nodes.iter().zip(children.iter_mut()).zip(watch.iter_mut()) {
            match w.restart_at {
                None => {
                    if let Ok(Some(status)) = child.try_wait() {
                        if w.started.elapsed() >= RESTART_RESET {
                            w.delay = RESTART_FIRST;
                        }
                        eprintln!(
                            "node {} exited ({status}); the other nodes keep serving; restarting it in {} s (log: {})",
                            node.id,
                            w.delay.as_secs(),
                            dir.join(&node.config).with_file_name("node.log").display()
                        );
                        w.restart_at = Some(Instant::now() + w.delay);
                        w.delay = (w.delay * 2).min(RESTART_MAX);
                    }
                }
                Some(at) if Instant::now() >= at => match spawn_node(dir, node, &[]) {
                    Ok(fresh) => {
                        *child = fresh;
                        w.started = Instant::now();
                        w.restart_at = None;
                        eprintln!("node {} restarted", node.id);
                    }
                    Err(e) => {
                        eprintln!("node {} could not be restarted: {e:#}; trying again", node.id);
                        w.restart_at = Some(Instant::now() + w.delay);
                    }
                },
                Some(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Stops node processes: SIGTERM, then SIGKILL after a grace period.
pub async fn stop(children: &mut [Child]) {
    for child in children.iter() {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    for child in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

pub async fn run(args: Args, private_key: Option<&str>) -> anyhow::Result<ExitCode> {
    let choice = ChainChoice {
        rpc_url: args.rpc_url.as_deref(),
        private_key,
        artifacts: args.contracts.as_deref(),
    };
    let (network, mut anvil) = prepare(&args.dir, args.nodes, args.presign_stock, None, &choice).await?;
    let network_path = args.dir.join("network.json");
    if args.init_only {
        // SIGINT makes anvil write its state, so the next `sigil dev` finds the contracts.
        stop_anvil(&mut anvil).await;
        println!("{}", network_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "starting {} nodes (threshold {}) in {}",
        network.nodes.len(),
        network.threshold,
        args.dir.display()
    );
    let mut children = network
        .nodes
        .iter()
        .map(|node| spawn_node(&args.dir, node, &[]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ready = tokio::select! {
        r = wait_ready(&network, &mut children, &args.dir, Duration::from_secs(args.timeout)) => r,
        () = crate::node_cmd::shutdown() => Err(anyhow::anyhow!("interrupted")),
    };
    let ready = match ready {
        Ok(()) => register(&network, private_key).await,
        Err(e) => Err(e),
    };
    if let Err(e) = ready {
        stop(&mut children).await;
        stop_anvil(&mut anvil).await;
        return Err(e);
    }
    println!(
        "Sigil dev network: {} nodes, threshold {}",
        network.nodes.len(),
        network.threshold
    );
    for node in &network.nodes {
        println!("  node {}  {}", node.id, node.url);
    }
    if let (Some(rpc), Some(contracts), Some(wallet)) = (&network.rpc_url, &network.contracts, &network.dev_wallet) {
        println!("  chain   {rpc} (chain id {})", network.chain_id.unwrap_or_default());
        println!("  NodeSet {}  PKPNFT {}", contracts.node_set, contracts.pkp_nft);
        println!(
            "  PKPPermissions {}  PKPHelper {}",
            contracts.pkp_permissions, contracts.pkp_helper
        );
        println!("  dev wallet {} (key {})", wallet.address, wallet.private_key);
    }
    println!("network file: {}", network_path.display());
    let net = if network_path == Path::new(crate::DEFAULT_NETWORK) {
        String::new()
    } else {
        format!("--network {} ", network_path.display())
    };
    println!("try:");
    println!("  sigil {net}pkp mint                      # a PKP owned by the dev wallet");
    println!("  sigil {net}sign --token-id TOKEN --hash {}", "02".repeat(32));
    println!("  sigil {net}pkp send-eth TOKEN --to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --value 1000");
    println!("      (fund the PKP address first, e.g. with tools/node_modules/.bin/cast send)");
    println!("  sigil {net}status");
    println!("A node that exits is started again; Ctrl-C stops the network.");
    tokio::select! {
        () = crate::node_cmd::shutdown() => {}
        () = supervise(&args.dir, &network, &mut children) => {}
    }
    stop(&mut children).await;
    stop_anvil(&mut anvil).await;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// After the root keys exist: records them (and so the mint attester) in NodeSet with the nodes'
/// signatures, sent from the given (or the dev) wallet.
pub async fn register(network: &NetworkFile, private_key: Option<&str>) -> anyhow::Result<()> {
    let Some(rpc) = &network.rpc_url else {
        return Ok(());
    };
    let signer = crate::pkp_cmd::wallet(private_key, network)?;
    let sender = wallet_provider(rpc, signer)?;
    let keys = crate::pkp_cmd::record_keys(network, &sender).await?;
    eprintln!(
        "root keys recorded in NodeSet by {} nodes' signatures; mint attester {}",
        keys.signatures.len(),
        keys.keys.attester
    );
    Ok(())
}

/// Stops anvil with SIGINT so it writes its state, then kills it if it lingers.
pub async fn stop_anvil(anvil: &mut Option<Child>) {
    if let Some(child) = anvil {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-INT")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}
