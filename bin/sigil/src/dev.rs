//! `sigil dev`: a local network of node processes on free loopback ports, and the `network.json`
//! file that client commands read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sigil_node::config::{NodeConfig, PeerConfig};
use sigil_node::init_data_dir;
use sigil_node::store::StorageKey;
use sigil_tss::{threshold_for, MAX_PARTIES, MIN_PARTIES};
use tokio::process::{Child, Command};

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

/// Writes configs and data directories for `n` nodes under `dir`, unless a network is there already;
/// returns the network file.
pub fn init(dir: &Path, n: usize, presign_stock: usize, refill_below: Option<usize>) -> anyhow::Result<NetworkFile> {
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
        return Ok(existing);
    }
    if !(MIN_PARTIES..=MAX_PARTIES).contains(&n) {
        bail!("--nodes must be between {MIN_PARTIES} and {MAX_PARTIES}, got {n}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ports = free_ports(n)?;
    let mut keys = Vec::new();
    let mut peers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let storage_key = StorageKey::generate();
        let identity = init_data_dir(&dir.join(format!("node{i}")).join("data"), &storage_key)?;
        peers.push(PeerConfig {
            id: i as u32,
            url: format!("http://127.0.0.1:{port}"),
            key: identity.to_string(),
        });
        keys.push(storage_key);
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
            dev_open_signing: true,
            peers: peers.clone(),
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
        version: 1,
        threshold: threshold_for(n),
        nodes,
    };
    std::fs::write(&network_path, serde_json::to_string_pretty(&network)? + "\n")
        .with_context(|| format!("writing {}", network_path.display()))?;
    Ok(network)
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
        .arg("--dev-open-signing")
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

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let network = init(&args.dir, args.nodes, args.presign_stock, None)?;
    let network_path = args.dir.join("network.json");
    if args.init_only {
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
    if let Err(e) = ready {
        stop(&mut children).await;
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
    println!("network file: {}", network_path.display());
    println!("try:");
    println!(
        "  sigil --network {} sign --key-id {} --hash {}",
        network_path.display(),
        "01".repeat(32),
        "02".repeat(32)
    );
    println!("  sigil --network {} status", network_path.display());
    println!("Ctrl-C stops the network.");
    tokio::select! {
        () = crate::node_cmd::shutdown() => {}
        exited = async {
            loop {
                for (node, child) in network.nodes.iter().zip(children.iter_mut()) {
                    if let Ok(Some(status)) = child.try_wait() {
                        return (node.id, status);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        } => eprintln!("node {} exited ({}); stopping the network", exited.0, exited.1),
    }
    stop(&mut children).await;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}
