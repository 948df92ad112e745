//! A local network of node processes on free loopback ports (or on hosts the caller gives: other
//! addresses, network namespaces, links in front of the nodes): finding the pinned tools and the
//! compiled contracts, starting and stopping anvil, deploying the contracts and writing the node
//! configs and `network.json`, starting the nodes, waiting until they hold their root keys,
//! recording the keys in NodeSet, restarting nodes that exit, and stopping it all.
//!
//! `sigil dev`, `sigil bench` and the multi-process tests run their networks through this module.
//! It uses [`crate::network`] (the file it writes, the wallet, recording the keys) and the library
//! crates (`sigil-node` for configs and data directories, `sigil-chain` to deploy); never a
//! command module, and it prints only progress (stderr), never a command's output.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sigil_chain::alloy::primitives::Address;
use sigil_chain::alloy::providers::Provider;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::deploy::{deploy, set_nodes, wallet_provider};
use sigil_chain::registry::{read_provider, ListedNode};
use sigil_node::actions::egress::EgressConfig;
use sigil_node::config::{ActionsConfig, AuthConfig, ChainConfig, LimitsConfig, NodeConfig};
use sigil_node::store::StorageKey;
use sigil_node::{init_data_dir, PublicIdentity};
use sigil_tss::{threshold_for, MAX_PARTIES, MIN_PARTIES};
use tokio::process::{Child, Command};

use crate::network::{health_all, record_keys, wallet, AnvilInfo, DevWallet, NetworkFile, NetworkNode};

/// The WebAuthn relying-party id of a dev network's nodes: passkeys registered on `localhost`.
pub const DEV_WEBAUTHN_RP_ID: &str = "localhost";
/// The origins a dev network's nodes accept passkey assertions from (a dev server's usual ports).
pub const DEV_WEBAUTHN_ORIGINS: [&str; 2] = ["http://localhost:5173", "http://localhost:3000"];

/// Private key of anvil's first funded account: the dev wallet, NodeSet's admin in a dev network.
pub const DEV_PRIVATE_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// The first restart delay of a node that exited; it doubles (up to [`RESTART_MAX`]) while the
/// node keeps exiting within [`RESTART_RESET`] of its start.
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);
const RESTART_RESET: Duration = Duration::from_secs(60);

/// Where a local network finds the programs and files it runs.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    /// The `sigil` binary the nodes run (`sigil node`); default: the running executable.
    pub sigil: Option<PathBuf>,
    /// A checkout whose pinned tools (`tools/node_modules`: anvil, ethers) and compiled contracts
    /// (`contracts/out`) are used, and only those. Default: anvil on PATH, else the tools and
    /// contracts of the current directory or of the checkout the running binary was built in.
    pub checkout: Option<PathBuf>,
}

impl Tools {
    /// Where `relative` (a path inside a checkout) may be.
    fn candidates(&self, relative: &str) -> Vec<PathBuf> {
        if let Some(root) = &self.checkout {
            return vec![root.join(relative)];
        }
        let mut out = vec![PathBuf::from(relative)];
        if let Ok(exe) = std::env::current_exe() {
            // target/{debug,release}/sigil → the checkout is two levels up.
            if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
                out.push(root.join(relative));
            }
        }
        out
    }

    /// An executable on PATH (unless a checkout is given), else in `tools/node_modules/.bin`.
    fn find_tool(&self, name: &str) -> Option<PathBuf> {
        let on_path = match (&self.checkout, std::env::var_os("PATH")) {
            (None, Some(p)) => std::env::split_paths(&p).map(|d| d.join(name)).collect(),
            _ => Vec::new(),
        };
        on_path
            .into_iter()
            .chain(self.candidates(&format!("tools/node_modules/.bin/{name}")))
            .find(|p| p.is_file())
    }

    /// ethers v5's UMD bundle from the pinned tools, made absolute so node configs work from
    /// anywhere.
    fn ethers_bundle(&self) -> Option<PathBuf> {
        self.candidates("tools/node_modules/ethers/dist/ethers.umd.min.js")
            .into_iter()
            .find(|p| p.is_file())
            .and_then(|p| p.canonicalize().ok())
    }

    /// The compiled contracts directory.
    fn artifacts(&self, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
        if let Some(dir) = explicit {
            return Ok(dir.to_path_buf());
        }
        self.candidates("contracts/out")
            .into_iter()
            .find(|p| p.join("NodeSet.sol").is_dir())
            .context("compiled contracts not found (contracts/out): run `make contracts`, or pass --contracts DIR")
    }

    /// The `sigil` binary.
    fn sigil(&self) -> anyhow::Result<PathBuf> {
        match &self.sigil {
            Some(path) => Ok(path.clone()),
            None => std::env::current_exe().context("locating the sigil binary"),
        }
    }
}

/// Where a network's chain comes from.
#[derive(Clone, Debug, Default)]
pub struct ChainChoice {
    /// An existing chain, or `None` to start anvil.
    pub rpc_url: Option<String>,
    /// The admin wallet (default: the dev wallet).
    pub private_key: Option<String>,
    /// Compiled contracts (default: found with [`Tools`]).
    pub artifacts: Option<PathBuf>,
}

/// A local network to create in a directory, or to find there if it was made before.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Number of nodes ([`MIN_PARTIES`] to [`MAX_PARTIES`]); the threshold is ⌈2n/3⌉.
    pub nodes: usize,
    /// Presignatures each node keeps in stock.
    pub presign_stock: usize,
    /// Refill the stock only once it is below this (default: the node's own rule).
    pub presign_refill_below: Option<usize>,
    /// Schnorr nonce material each node keeps in stock (default: as many as presignatures).
    pub schnorr_stock: Option<usize>,
    /// Where the chain comes from.
    pub chain: ChainChoice,
    /// Where the programs and files are.
    pub tools: Tools,
    /// Where anvil and each node listen and how the nodes are reached and started (default:
    /// loopback, a free port each, reached directly).
    pub hosts: Option<Hosts>,
    /// The nodes' ids, one per node, distinct (default: 0 to n − 1). A node's id is its own,
    /// not its place in the list.
    pub ids: Option<Vec<u32>>,
}

/// Where the processes of a network listen when they are not all on loopback: other addresses
/// of this machine, network namespaces, links (proxies) in front of the nodes.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    /// The address anvil listens on; it must be reachable from every node and from the
    /// commands run here (default: loopback).
    pub anvil: Option<IpAddr>,
    /// One per node, in order.
    pub nodes: Vec<Host>,
}

/// Where one node listens, how the others and the clients reach it, and how it is started.
#[derive(Clone, Debug)]
pub struct Host {
    /// The address the node listens on.
    pub listen: SocketAddr,
    /// The URL NodeSet lists for it (default: `http://{listen}`), e.g. a link in front of it.
    pub url: Option<String>,
    /// A command the node's command line is handed to, e.g. `ip netns exec NAME` (default:
    /// none, the node is started directly).
    pub launch: Vec<String>,
}

/// A local network in a directory: its network file, its anvil (if it runs one) and its node
/// processes, one slot per node. Processes still running when it is dropped are killed.
pub struct Devnet {
    dir: PathBuf,
    network: NetworkFile,
    tools: Tools,
    anvil: Option<Child>,
    nodes: Vec<Option<Child>>,
    /// Each node's launch command ([`Host::launch`]); empty for none.
    launch: Vec<Vec<String>>,
}

impl Devnet {
    /// Brings up the chain of the network in `dir` — restarting its anvil, or creating the
    /// network: anvil (unless an RPC URL is given), contracts, node set, node configs,
    /// `network.json`. Starts no node.
    pub async fn prepare(dir: &Path, setup: &Setup) -> anyhow::Result<Self> {
        let (network, anvil) = prepare(dir, setup).await?;
        let nodes = network.nodes.iter().map(|_| None).collect();
        let launch = (0..network.nodes.len())
            .map(|i| {
                setup
                    .hosts
                    .as_ref()
                    .and_then(|h| h.nodes.get(i))
                    .map(|h| h.launch.clone())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            network,
            tools: setup.tools.clone(),
            anvil,
            nodes,
            launch,
        })
    }

    /// The directory: node configs, data and logs, `network.json`, anvil's state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network file's contents.
    pub fn network(&self) -> &NetworkFile {
        &self.network
    }

    /// Where the network file is.
    pub fn network_path(&self) -> PathBuf {
        self.dir.join("network.json")
    }

    /// Starts node `i` (a `sigil node` process, its log in its directory) with `args` after its
    /// config; fails if it runs already.
    pub fn start_node(&mut self, i: usize, args: &[String]) -> anyhow::Result<()> {
        let (Some(node), Some(slot)) = (self.network.nodes.get(i), self.nodes.get_mut(i)) else {
            bail!("this network has no node {i}");
        };
        if slot.is_some() {
            bail!("node {} is running", node.id);
        }
        let launch = self.launch.get(i).map(Vec::as_slice).unwrap_or_default();
        *slot = Some(spawn_node(&self.tools, &self.dir, node, launch, args)?);
        Ok(())
    }

    /// Creates a node NodeSet does not list yet, to join the network through an epoch change
    /// (`sigil admin epoch propose --add`): its directory, data (identity and signing key) and
    /// config made like the others', on a free loopback port, and a slot to start it in. The
    /// network file lists it from now on. Returns its index and what NodeSet is to list for it.
    pub fn add_node(&mut self, id: u32) -> anyhow::Result<(usize, ListedNode)> {
        if self.network.nodes.iter().any(|n| n.id == id) {
            bail!("node id {id} is taken in this network");
        }
        let first = self.network.nodes.first().context("this network has no node")?;
        let text = std::fs::read_to_string(self.dir.join(&first.config))
            .with_context(|| format!("reading {}", first.config))?;
        let mut config: NodeConfig = toml::from_str(&text).context("node 0's config")?;
        let i = self.network.nodes.len();
        let port = free_ports(1)?.first().copied().context("no free port")?;
        config.id = id;
        config.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let storage_key = StorageKey::generate();
        config.storage_key = Some(storage_key.to_hex().to_string());
        let node_dir = self.dir.join(format!("node{i}"));
        let identity = init_data_dir(&node_dir.join("data"), &storage_key)?;
        write_private(&node_dir.join("node.toml"), &toml::to_string(&config)?)?;
        let url = format!("http://{}", config.listen);
        self.network.nodes.push(NetworkNode {
            id,
            url: url.clone(),
            config: format!("node{i}/node.toml"),
        });
        self.network.save(&self.network_path())?;
        self.nodes.push(None);
        self.launch.push(Vec::new());
        Ok((
            i,
            ListedNode {
                id,
                identity_key: identity.key.0,
                signer: identity.signer,
                url,
            },
        ))
    }

    /// Starts every node, in order, without extra arguments.
    pub fn start_nodes(&mut self) -> anyhow::Result<()> {
        (0..self.nodes.len()).try_for_each(|i| self.start_node(i, &[]))
    }

    /// The process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i)?.as_ref()?.id()
    }

    /// Takes node `i`'s process out of the network's hands (for a caller that stops it itself):
    /// it is no longer waited for, restarted or stopped here, and its slot is free to start again.
    pub fn take_node(&mut self, i: usize) -> Option<Child> {
        self.nodes.get_mut(i).and_then(Option::take)
    }

    /// Waits until every node holds its root key shares, with a progress line on stderr; fails
    /// when a node is not running or exits, or after `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let started = Instant::now();
        let n = self.network.nodes.len();
        loop {
            for (node, slot) in self.network.nodes.iter().zip(self.nodes.iter_mut()) {
                let Some(child) = slot else {
                    bail!("node {} is not running", node.id);
                };
                if let Some(status) = child.try_wait()? {
                    let log = log_path(&self.dir, node);
                    bail!(
                        "node {} exited ({status}) while starting; the end of {}:\n{}",
                        node.id,
                        log.display(),
                        log_tail(&log, 12)
                    );
                }
            }
            let health = health_all(&http, &self.network).await;
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
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// After the root keys exist: records them (and so the mint attester) in NodeSet with the
    /// nodes' signatures, sent from the given (or the dev) wallet.
    pub async fn register(&self, private_key: Option<&str>) -> anyhow::Result<()> {
        let Some(rpc) = &self.network.rpc_url else {
            return Ok(());
        };
        let signer = wallet(private_key, &self.network)?;
        let sender = wallet_provider(rpc, signer)?;
        let keys = record_keys(&self.network, &sender).await?;
        eprintln!(
            "root keys recorded in NodeSet by {} nodes' signatures; mint attester {}",
            keys.signatures.len(),
            keys.keys.attester
        );
        Ok(())
    }

    /// Watches the node processes: one that exits is reported, the others keep serving, and it is
    /// started again (without extra arguments) after a back-off. Runs until the future is
    /// dropped.
    pub async fn supervise(&mut self) {
        struct Watch {
            started: Instant,
            delay: Duration,
            restart_at: Option<Instant>,
        }
        let mut watch: Vec<Watch> = self
            .nodes
            .iter()
            .map(|_| Watch {
                started: Instant::now(),
                delay: RESTART_FIRST,
                restart_at: None,
            })
            .collect();
        loop {
            for (((node, slot), w), launch) in self
                .network
                .nodes
                .iter()
                .zip(self.nodes.iter_mut())
                .zip(watch.iter_mut())
                .zip(&self.launch)
            {
                let Some(child) = slot else {
                    continue;
                };
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
                                log_path(&self.dir, node).display()
                            );
                            w.restart_at = Some(Instant::now() + w.delay);
                            w.delay = (w.delay * 2).min(RESTART_MAX);
                        }
                    }
                    Some(at) if Instant::now() >= at => match spawn_node(&self.tools, &self.dir, node, launch, &[]) {
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

    /// Stops the node processes: SIGTERM, then SIGKILL after a grace period.
    pub async fn stop_nodes(&mut self) {
        for child in self.nodes.iter().flatten() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        for slot in &mut self.nodes {
            if let Some(mut child) = slot.take() {
                if tokio::time::timeout(Duration::from_secs(5), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
        }
    }

    /// Stops anvil with SIGINT so it writes its state, then kills it if it lingers.
    pub async fn stop_anvil(&mut self) {
        if let Some(child) = &mut self.anvil {
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

    /// Stops the nodes, then anvil.
    pub async fn stop(&mut self) {
        self.stop_nodes().await;
        self.stop_anvil().await;
    }
}

/// A node's log file.
fn log_path(dir: &Path, node: &NetworkNode) -> PathBuf {
    dir.join(&node.config).with_file_name("node.log")
}

/// Starts anvil on `host`:`port` with its state kept in `state`, and waits until it answers.
async fn start_anvil(tools: &Tools, host: IpAddr, port: u16, state: &Path) -> anyhow::Result<Child> {
    let anvil = tools
        .find_tool("anvil")
        .context("anvil not found on PATH or in tools/node_modules/.bin: run `make tools`, or pass --rpc-url")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.with_extension("log"))
        .with_context(|| format!("opening the anvil log beside {}", state.display()))?;
    let mut child = Command::new(&anvil)
        .args([
            "--host",
            &host.to_string(),
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
    let url = format!("http://{}", SocketAddr::new(host, port));
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

/// [`Devnet::prepare`]: the network and the anvil process, if one runs.
async fn prepare(dir: &Path, setup: &Setup) -> anyhow::Result<(NetworkFile, Option<Child>)> {
    let n = setup.nodes;
    let chain = &setup.chain;
    let anvil_host = setup
        .hosts
        .as_ref()
        .and_then(|h| h.anvil)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
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
        let ids: Vec<u32> = existing.nodes.iter().map(|node| node.id).collect();
        if setup.ids.as_ref().is_some_and(|wanted| *wanted != ids) {
            bail!(
                "{} holds a network of node ids {ids:?}; use another --dir for other ids",
                dir.display()
            );
        }
        let anvil = match &existing.anvil {
            Some(info) => Some(start_anvil(&setup.tools, anvil_host, info.port, &dir.join(&info.state)).await?),
            None => None,
        };
        return Ok((existing, anvil));
    }
    if !(MIN_PARTIES..=MAX_PARTIES).contains(&n) {
        bail!("--nodes must be between {MIN_PARTIES} and {MAX_PARTIES}, got {n}");
    }
    let artifacts = setup.tools.artifacts(chain.artifacts.as_deref())?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (rpc_url, anvil, anvil_info) = match &chain.rpc_url {
        Some(url) => (url.clone(), None, None),
        None => {
            let port = free_ports(1)?.first().copied().context("no free port")?;
            let state = "anvil-state.json".to_string();
            let child = start_anvil(&setup.tools, anvil_host, port, &dir.join(&state)).await?;
            (
                format!("http://{}", SocketAddr::new(anvil_host, port)),
                Some(child),
                Some(AnvilInfo { port, state }),
            )
        }
    };
    let key = chain.private_key.as_deref().unwrap_or(DEV_PRIVATE_KEY);
    let signer: PrivateKeySigner = key.parse().context("the admin private key must be 32 bytes hex")?;
    let admin = signer.address();
    let provider = wallet_provider(&rpc_url, signer)?;
    eprintln!("deploying the contracts to {rpc_url} …");
    let contracts = deploy(&provider, &artifacts, admin).await?;
    let chain_id = provider.get_chain_id().await.context("reading the chain id")?;
    let (mut network, identities) = init(dir, setup, (&rpc_url, contracts.node_set))?;
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
    network.save(&network_path)?;
    Ok((network, anvil))
}

/// The last `lines` lines of a log file (empty when it cannot be read).
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}

/// `n` distinct loopback ports that are free now, drawn at random from below the kernel's ephemeral
/// range: a port handed out by `bind(0)` is an ephemeral one, and any outbound connection on the
/// machine (another test's client, say) can take it before the node binds it or while a killed
/// node is down. Ports under the range are only ever taken by an explicit bind.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    use rand_core::{OsRng, RngCore};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_000 + 2_000));
    let mut ports = Vec::with_capacity(n);
    let mut held = Vec::with_capacity(n);
    for _ in 0..(n * 200).max(1_000) {
        if ports.len() == n {
            break;
        }
        let port = low + (OsRng.next_u32() % u32::from(high - low)) as u16;
        if ports.contains(&port) {
            continue;
        }
        // Held until all are found, so two picks in one call never collide.
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
            ports.push(port);
        }
    }
    if ports.len() < n {
        bail!("found only {} free loopback ports of {n} in {low}..{high}", ports.len());
    }
    Ok(ports)
}

/// Writes configs and data directories for `setup.nodes` nodes under `dir`; returns the network
/// (not yet written) and the nodes' identity keys.
fn init(dir: &Path, setup: &Setup, chain: (&str, Address)) -> anyhow::Result<(NetworkFile, Vec<PublicIdentity>)> {
    let n = setup.nodes;
    let hosts: Vec<(SocketAddr, String)> = match &setup.hosts {
        Some(hosts) if !hosts.nodes.is_empty() => {
            if hosts.nodes.len() != n {
                bail!("{} hosts given for {n} nodes", hosts.nodes.len());
            }
            hosts
                .nodes
                .iter()
                .map(|h| {
                    (
                        h.listen,
                        h.url.clone().unwrap_or_else(|| format!("http://{}", h.listen)),
                    )
                })
                .collect()
        }
        _ => free_ports(n)?
            .into_iter()
            .map(|port| {
                let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
                (listen, format!("http://{listen}"))
            })
            .collect(),
    };
    let ids: Vec<u32> = match &setup.ids {
        Some(ids) => {
            let mut distinct = ids.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if ids.len() != n || distinct.len() != n {
                bail!(
                    "{} node ids given for {n} nodes; each node needs its own id: {ids:?}",
                    ids.len()
                );
            }
            ids.clone()
        }
        None => (0..n as u32).collect(),
    };
    let mut keys = Vec::new();
    let mut identities = Vec::new();
    for i in 0..n {
        let storage_key = StorageKey::generate();
        let identity = init_data_dir(&dir.join(format!("node{i}")).join("data"), &storage_key)?;
        identities.push(identity);
        keys.push(storage_key);
    }
    let ethers = setup.tools.ethers_bundle();
    if ethers.is_none() {
        eprintln!(
            "note: ethers v5 not found in tools/node_modules; actions that use `ethers` will fail (run `make tools`)"
        );
    }
    let mut nodes = Vec::new();
    for (i, (((listen, url), key), id)) in hosts.into_iter().zip(&keys).zip(ids).enumerate() {
        let config = NodeConfig {
            id,
            listen,
            data_dir: PathBuf::from("data"),
            storage_key: Some(key.to_hex().to_string()),
            threshold: None,
            mesh_source_address: None,
            presign_stock: setup.presign_stock,
            presign_refill_below: setup.presign_refill_below,
            presign_parallel: 2,
            schnorr_stock: setup.schnorr_stock.unwrap_or(setup.presign_stock),
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
                // A dev network's actions reach what runs on this machine (test servers, a local
                // IPFS gateway); the node's own listener stays closed to them.
                egress: EgressConfig {
                    allow: vec!["127.0.0.0/8".into(), "[::1]".into()],
                    ..EgressConfig::default()
                },
                ..ActionsConfig::default()
            },
            // Every client of a dev network, benchmarks included, comes from 127.0.0.1: one
            // address's rate is the whole network's.
            limits: LimitsConfig {
                rate_per_ip: 50_000,
                burst_per_ip: 100_000,
                ..LimitsConfig::default()
            },
            // Benchmarks sign as one wallet.
            auth: AuthConfig {
                rate_per_principal: 50_000,
                burst_per_principal: 100_000,
                webauthn_rp_id: Some(DEV_WEBAUTHN_RP_ID.into()),
                webauthn_origins: DEV_WEBAUTHN_ORIGINS.iter().map(|o| o.to_string()).collect(),
                ..AuthConfig::default()
            },
        };
        let path = dir.join(format!("node{i}")).join("node.toml");
        write_private(&path, &toml::to_string(&config)?)?;
        nodes.push(NetworkNode {
            id,
            url,
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

/// Starts one node process with its log in its directory, handed to `launch` if that is not
/// empty.
fn spawn_node(
    tools: &Tools,
    dir: &Path,
    node: &NetworkNode,
    launch: &[String],
    args: &[String],
) -> anyhow::Result<Child> {
    let exe = tools.sigil()?;
    let config = dir.join(&node.config);
    let log_path = log_path(dir, node);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut command = match launch.split_first() {
        Some((program, launch_args)) => {
            let mut command = Command::new(program);
            command.args(launch_args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command
        .arg("node")
        .arg("--config")
        .arg(&config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting node {}", node.id))
}
