//! Starts and stops node processes for the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sigil_client::Client;

pub fn sigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
}

/// A network of node processes in a temporary directory; every process is killed on drop.
pub struct Network {
    pub dir: tempfile::TempDir,
    pub urls: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Network {
    /// Writes configs for `n` nodes with `sigil dev --init-only` and starts them; `extra(i)` adds
    /// flags to node `i`.
    pub fn start(n: usize, stock: usize, extra: impl Fn(usize) -> Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = sigil()
            .args([
                "dev",
                "--init-only",
                "--nodes",
                &n.to_string(),
                "--presign-stock",
                &stock.to_string(),
                "--dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let network: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("network.json")).unwrap()).unwrap();
        let urls = network["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["url"].as_str().unwrap().to_string())
            .collect();
        let mut net = Network {
            dir,
            urls,
            children: Vec::new(),
        };
        for i in 0..n {
            let child = net.spawn(i, &extra(i));
            net.children.push(Some(child));
        }
        net
    }

    pub fn network_file(&self) -> PathBuf {
        self.dir.path().join("network.json")
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{i}/node.log"))).unwrap_or_default()
    }

    fn spawn(&self, i: usize, extra: &[String]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{i}/node.log")))
            .unwrap();
        sigil()
            .arg("node")
            .arg("--config")
            .arg(self.dir.path().join(format!("node{i}/node.toml")))
            .arg("--dev-open-signing")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// `kill -9`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn restart(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "node {i} is running");
        self.children[i] = Some(self.spawn(i, &[]));
    }

    /// Waits until every listed node answers the handshake with root keys.
    pub async fn wait_ready(&self, nodes: &[usize], timeout: Duration) -> Client {
        let urls: Vec<String> = nodes.iter().map(|i| self.urls[*i].clone()).collect();
        let started = Instant::now();
        loop {
            if let Ok(client) = Client::connect(&urls).await {
                if client.nodes().len() == urls.len() {
                    return Client::connect(&self.urls).await.unwrap();
                }
            }
            assert!(
                started.elapsed() < timeout,
                "network not ready within {timeout:?}; node 0 log:\n{}",
                self.log(0)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn metrics(&self, i: usize) -> String {
        reqwest::get(format!("{}/metrics", self.urls[i]))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops every node gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        for child in self.children.iter().flatten() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        }
        for slot in &mut self.children {
            if let Some(mut child) = slot.take() {
                let until = Instant::now() + Duration::from_secs(10);
                while child.try_wait().unwrap().is_none() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
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
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Opens node `i`'s store with the key from its config (the node must be stopped).
pub fn open_store(config: &Path, data_dir: &Path) -> sigil_node::store::Store {
    let settings = sigil_node::NodeConfig::load(config).unwrap();
    let key = settings.storage_key().unwrap();
    sigil_node::store::Store::open(&data_dir.join("sigil.redb"), &key).unwrap()
}
