//! Networks for the tests, started through `sigil::devnet` like `sigil dev`'s, plus what only the
//! tests need: per-node flags and config edits, `kill -9` and restarts, the CLI as a given
//! wallet, raw JSON-RPC, test HTTP servers and a man in the middle.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil::devnet::{Devnet, Hosts, Setup, Tools};
use sigil_chain::alloy::providers::DynProvider;
use sigil_chain::alloy::signers::local::PrivateKeySigner;
use sigil_chain::Contracts;
use sigil_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn sigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
}

/// anvil's first funded account: the dev wallet and NodeSet's admin.
pub const DEV_KEY: &str = sigil::devnet::DEV_PRIVATE_KEY;
/// anvil's second and third funded accounts.
pub const ALICE_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
pub const BOB_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// A PKP the dev wallet mints to itself (it owns itself), with `wallet`'s address as its only
/// auth method (type 1, scope 1: sign anything).
pub async fn wallet_owned_pkp(
    net: &Network,
    client: &Client,
    wallet: sigil_chain::alloy::primitives::Address,
) -> sigil_client::pkp::MintedPkp {
    let (dev, dev_provider) = net.wallet(DEV_KEY);
    let dev_auth = client
        .auth_sig(&dev, "localhost", Duration::from_secs(3600))
        .await
        .expect("the dev wallet's authSig");
    let only = sigil_client::pkp::NewAuthMethod {
        kind: 1,
        id: wallet.to_vec(),
        user_pubkey: Vec::new(),
        scopes: 1,
    };
    client
        .mint_with_auth_methods(&dev_provider, &dev_auth, &net.contracts(), &[only], true)
        .await
        .expect("minting a self-owned PKP")
}

/// `sigil pkp grant-action` as the dev wallet: PKP `token` permits the action `cid`.
pub fn grant_action(net: &Network, token: sigil_chain::alloy::primitives::U256, cid: &sigil_primitives::Cid) {
    let (ok, _, err) = cli(
        net,
        DEV_KEY,
        &["pkp", "grant-action", &format!("{token:#x}"), "--cid", &cid.to_string()],
    );
    assert!(ok, "grant-action {cid} on {token:#x}: {err}");
}

/// Runs the CLI against the network as `key`; returns (success, stdout, stderr).
pub fn cli(net: &Network, key: &str, args: &[&str]) -> (bool, String, String) {
    let out = sigil()
        .arg("--network")
        .arg(net.network_file())
        .args(["--private-key", key])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How a test server answers request number `n` (from 1) with this lower-cased request head:
/// a status code and a body.
pub type Respond = Arc<dyn Fn(u64, &str) -> (u16, String) + Send + Sync>;

/// A loopback HTTP server answering with `respond`; returns its URL and the request count.
pub async fn http_server(respond: Respond) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            let respond = Arc::clone(&respond);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..read]).to_lowercase();
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let (status, body) = respond(n, &head);
                let reason = if status == 200 { "OK" } else { "Error" };
                let reply = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

/// What a man in the middle does to one answer: `(path, answer) -> answer`.
pub type Rewrite = Arc<dyn Fn(&str, serde_json::Value) -> serde_json::Value + Send + Sync>;

/// A loopback HTTP proxy in front of `target` that forwards every POST and passes each JSON
/// answer through `rewrite` on its way back; returns its URL.
pub async fn mitm_proxy(target: String, rewrite: Rewrite) -> String {
    mitm_proxy_after(target, Duration::ZERO, rewrite).await
}

/// [`mitm_proxy`] holding each answer back for `delay` (a node farther from the client than
/// the others); the client's epoch header is passed on.
pub async fn mitm_proxy_after(target: String, delay: Duration, rewrite: Rewrite) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::new();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (target, rewrite, http) = (target.clone(), Arc::clone(&rewrite), http.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 16384];
                // One request per connection: the head, then content-length bytes of body.
                let (head_len, length) = loop {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_len + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let body = buf[head_len..head_len + length].to_vec();
                let mut request = http
                    .post(format!("{target}{path}"))
                    .header("content-type", "application/json")
                    .body(body);
                for (name, value) in head.lines().filter_map(|l| l.split_once(':')) {
                    if name.trim().eq_ignore_ascii_case(sigil_client::EPOCH_HEADER) {
                        request = request.header(name.trim(), value.trim());
                    }
                }
                let Ok(answer) = request.send().await else {
                    return;
                };
                let status = answer.status().as_u16();
                let json: serde_json::Value = answer.json().await.unwrap_or(serde_json::Value::Null);
                let out = serde_json::to_string(&rewrite(&path, json)).unwrap();
                tokio::time::sleep(delay).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

/// POSTs `body` as JSON; returns the status and the answer (`Null` if it is not JSON).
pub async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// The network's anvil, for JSON-RPC calls of the tests' own (the process is the devnet's).
pub struct Anvil {
    pub url: String,
}

impl Anvil {
    /// A raw JSON-RPC call.
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(&self.url)
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }
}

/// Where the tests find what a network runs: the `sigil` binary cargo built for them, and this
/// checkout's pinned tools and compiled contracts (`make contracts`).
fn tools() -> Tools {
    Tools {
        sigil: Some(PathBuf::from(env!("CARGO_BIN_EXE_sigil"))),
        checkout: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")),
    }
}

/// Kills a process at once (`kill -9`) and reaps it.
fn kill_now(mut child: tokio::process::Child) {
    let _ = child.start_kill();
    let until = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A network of node processes in a temporary directory, on its own anvil, run by
/// [`sigil::devnet`]; every process is killed on drop.
pub struct Network {
    // Dropped before `dir`: its processes go before their directory does.
    devnet: Devnet,
    pub dir: tempfile::TempDir,
    pub urls: Vec<String>,
    pub anvil: Anvil,
}

impl Network {
    /// Starts anvil, deploys the contracts and writes configs for `n` nodes (through
    /// [`Devnet::prepare`]), and starts the nodes; `extra(i)` adds flags to node `i`.
    pub async fn start(n: usize, stock: usize, extra: impl Fn(usize) -> Vec<String>) -> Self {
        Self::start_configured(n, stock, extra, |config| config).await
    }

    /// [`Network::start`], with each node's `node.toml` passed through `edit` first.
    pub async fn start_configured(
        n: usize,
        stock: usize,
        extra: impl Fn(usize) -> Vec<String>,
        edit: impl Fn(String) -> String,
    ) -> Self {
        Self::start_setup(n, stock, None, None, extra, edit).await
    }

    /// [`Network::start`] of nodes with the given ids, one per node in list order.
    pub async fn start_with_ids(ids: Vec<u32>, stock: usize) -> Self {
        Self::start_setup(ids.len(), stock, None, Some(ids), |_| vec![], |config| config).await
    }

    /// [`Network::start`] on the given hosts (addresses, namespaces, links).
    pub async fn start_on(n: usize, stock: usize, hosts: Hosts) -> Self {
        Self::start_setup(n, stock, Some(hosts), None, |_| vec![], |config| config).await
    }

    /// [`Network::start_on`], with each node's `node.toml` passed through `edit` first.
    pub async fn start_on_configured(n: usize, stock: usize, hosts: Hosts, edit: impl Fn(String) -> String) -> Self {
        Self::start_setup(n, stock, Some(hosts), None, |_| vec![], edit).await
    }

    async fn start_setup(
        n: usize,
        stock: usize,
        hosts: Option<Hosts>,
        ids: Option<Vec<u32>>,
        extra: impl Fn(usize) -> Vec<String>,
        edit: impl Fn(String) -> String,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup {
            nodes: n,
            presign_stock: stock,
            tools: tools(),
            hosts,
            ids,
            ..Setup::default()
        };
        let devnet = Devnet::prepare(dir.path(), &setup).await.unwrap();
        let urls = devnet.network().urls();
        let anvil = Anvil {
            url: devnet.network().rpc_url().unwrap().to_string(),
        };
        let mut net = Network {
            devnet,
            dir,
            urls,
            anvil,
        };
        for i in 0..n {
            let path = net.config(i);
            let config = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, edit(config)).unwrap();
            net.devnet.start_node(i, &extra(i)).unwrap();
        }
        net
    }

    pub fn network_file(&self) -> PathBuf {
        self.devnet.network_path()
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{i}/node.log"))).unwrap_or_default()
    }

    /// Creates a node NodeSet does not list yet ([`Devnet::add_node`]; start it with
    /// [`Network::restart`] once it is proposed); returns its index and the `--add` argument
    /// that proposes it.
    pub fn add_node(&mut self, id: u32) -> (usize, String) {
        let (i, listed) = self.devnet.add_node(id).unwrap();
        self.urls.push(listed.url.clone());
        (
            i,
            format!(
                "{},{},{},{}",
                listed.id,
                hex::encode(listed.identity_key),
                listed.signer,
                listed.url
            ),
        )
    }

    /// `kill -9`.
    pub fn kill(&mut self, i: usize) {
        if let Some(child) = self.devnet.take_node(i) {
            kill_now(child);
        }
    }

    /// Starts node `i` again (without the flags it started with); it must not be running.
    pub fn restart(&mut self, i: usize) {
        self.devnet.start_node(i, &[]).unwrap();
    }

    /// Waits until every node holds its root keys, then makes sure they are recorded in NodeSet
    /// (a no-op once done) and connects to the whole network.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Client {
        let started = Instant::now();
        self.wait_keys(timeout).await;
        self.devnet.register(None).await.unwrap();
        loop {
            match Client::connect(&self.chain()).await {
                Ok(client)
                    if self
                        .devnet
                        .network()
                        .nodes
                        .iter()
                        .all(|node| client.nodes().iter().any(|n| n.id == node.id)) =>
                {
                    return client
                }
                other => assert!(
                    started.elapsed() < timeout,
                    "cannot connect within {timeout:?}: {:?}",
                    other.map(|c| c.unreachable().to_vec())
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `sigil admin record-keys`; returns whether it succeeded, and its output.
    pub fn record_keys(&self) -> (bool, String) {
        let out = sigil()
            .arg("--network")
            .arg(self.network_file())
            .args(["admin", "record-keys"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// Waits until every node holds its root keys ([`Devnet::wait_ready`]).
    pub async fn wait_keys(&mut self, timeout: Duration) {
        if let Err(e) = self.devnet.wait_ready(timeout).await {
            panic!(
                "network not ready within {timeout:?}: {e:#}; node 0 log:\n{}",
                self.log(0)
            );
        }
    }

    /// The network as a client finds it: anvil and NodeSet.
    pub fn chain(&self) -> sigil_client::Network {
        self.devnet.network().network().unwrap()
    }

    pub fn contracts(&self) -> Contracts {
        self.devnet.network().contracts().unwrap()
    }

    /// A wallet on this network's chain.
    pub fn wallet(&self, key: &str) -> (PrivateKeySigner, DynProvider) {
        let signer: PrivateKeySigner = key.parse().unwrap();
        let provider = sigil_chain::deploy::wallet_provider(&self.anvil.url, signer.clone()).unwrap();
        (signer, provider)
    }

    /// The process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.devnet.pid(i)
    }

    pub async fn metrics(&self, i: usize) -> String {
        reqwest::get(format!("{}/metrics", self.urls[i]))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the metric line `series ` (a name, with its labels if any) on node `i`; 0 when
    /// absent.
    pub async fn metric(&self, i: usize, series: &str) -> u64 {
        self.metrics(i)
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{series} "))?.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    }

    /// Stops every node gracefully (SIGTERM) and waits for it ([`Devnet::stop_nodes`]).
    pub async fn stop(&mut self) {
        self.devnet.stop_nodes().await;
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}/data"))
    }

    pub fn config(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}/node.toml"))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for i in 0..self.urls.len() {
            if let Some(child) = self.devnet.take_node(i) {
                kill_now(child);
            }
        }
    }
}

/// Opens node `i`'s store with the key from its config (the node must be stopped).
/// The extra arguments [`Network::start`] takes that switch test fault `fault` on at node `node`
/// alone (a build with the `test-faults` feature).
#[cfg(feature = "test-faults")]
pub fn fault_at(node: usize, fault: &'static str) -> impl Fn(usize) -> Vec<String> {
    move |i| {
        if i == node {
            vec!["--fault".into(), fault.into()]
        } else {
            Vec::new()
        }
    }
}

pub fn open_store(config: &Path, data_dir: &Path) -> sigil_node::store::Store {
    let settings = sigil_node::NodeConfig::load(config).unwrap();
    let key = settings.storage_key().unwrap();
    sigil_node::store::Store::open(&data_dir.join("sigil.redb"), &key).unwrap()
}
