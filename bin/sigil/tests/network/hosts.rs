//! Nodes on separate hosts of one machine: every node in its own network namespace with its own
//! address, the namespaces joined by bridges the test makes and removes, and the links between
//! them cut and healed (DESIGN §4: a minority cannot sign; the majority keeps signing; after the
//! heal every node serves and no presignature was used twice).
//!
//! Each node's namespace has two interfaces: `mesh`, on a bridge shared with the other nodes and
//! with this process (the client), and `chain`, on a second bridge where anvil listens — the chain
//! is an outside service that both sides of a partition still reach. A partition moves the
//! minority's `mesh` ends onto a bridge of their own: they still reach each other and the chain,
//! not the majority or this process. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip`; where
//! the kernel refuses namespaces the tests print why and skip.
//!
//! On loopback, which needs nothing, a link (`sigil::link`) in front of every node stands for the
//! network: the minority's links are cut and healed (a one-way cut; see [`check_cut_links`]).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sigil::devnet::{Host, Hosts};
use sigil::link::Link;
use sigil_client::Client;

use crate::harness::{Network, DEV_KEY};
use crate::signing::{mint, sign_and_check, Owned};

const READY: Duration = Duration::from_secs(180);
/// The port every node listens on, each on its own address.
const NODE_PORT: u16 = 7470;
/// Names of this machine's namespaces and links made here start with this, then the pid of the
/// process that made them.
const NAME_PREFIX: &str = "sg";

/// Runs `ip` with `args`; its stderr on failure.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The pid in a name made here (`sg<pid>…`), if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes namespaces and bridges left by test processes that died without cleaning up.
fn remove_stale() {
    let dead = |name: &str| owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
    for line in ip(&["netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if dead(name) {
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in ip(&["-o", "link", "show"]).unwrap_or_default().lines() {
        // "12: sg123am0@if11: <…>"
        let name = line.split(": ").nth(1).unwrap_or_default();
        let name = name.split('@').next().unwrap_or_default();
        if dead(name) {
            let _ = ip(&["link", "del", name]);
        }
    }
}

/// Per-process count of the namespace sets made, so two tests in one process never share names.
static MADE: AtomicUsize = AtomicUsize::new(0);

/// A namespace per node, the bridges between them and their addresses, removed on drop.
pub struct Namespaces {
    /// `sg<pid><letter>`: every name below starts with it.
    prefix: String,
    /// The private /24 in use: `10.a.b.0`.
    subnet: [u8; 2],
    n: usize,
}

impl Namespaces {
    /// Makes `n` namespaces and their links, or says why it cannot.
    pub fn create(n: usize) -> Result<Self, String> {
        remove_stale();
        let made = MADE.fetch_add(1, Ordering::SeqCst);
        let letter = char::from(b'a' + (made % 26) as u8);
        let prefix = format!("{NAME_PREFIX}{}{letter}", std::process::id());
        let subnet = free_subnet(std::process::id() as usize * 26 + made)?;
        let spaces = Self { prefix, subnet, n };
        // From here on, drop removes whatever was made.
        spaces.build()?;
        Ok(spaces)
    }

    fn build(&self) -> Result<(), String> {
        let (mesh, chain, cut) = (self.bridge("m"), self.bridge("c"), self.bridge("p"));
        for bridge in [&mesh, &chain, &cut] {
            ip(&["link", "add", bridge, "type", "bridge"])?;
            ip(&["link", "set", bridge, "up"])?;
        }
        ip(&["addr", "add", &format!("{}/25", self.root_mesh()), "dev", &mesh])?;
        ip(&["addr", "add", &format!("{}/25", self.anvil()), "dev", &chain])?;
        for i in 0..self.n {
            let ns = self.namespace(i);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            for (kind, bridge, inside, address) in [
                ("m", &mesh, "mesh", self.node_ip(i)),
                ("c", &chain, "chain", self.chain_ip(i)),
            ] {
                let outside = format!("{}{kind}{i}", self.prefix);
                let peer = format!("{}{}{i}", self.prefix, kind.to_uppercase());
                ip(&["link", "add", &outside, "type", "veth", "peer", "name", &peer])?;
                ip(&["link", "set", &peer, "netns", &ns])?;
                ip(&["-n", &ns, "link", "set", &peer, "name", inside])?;
                ip(&["-n", &ns, "addr", "add", &format!("{address}/25"), "dev", inside])?;
                ip(&["-n", &ns, "link", "set", inside, "up"])?;
                ip(&["link", "set", &outside, "master", bridge])?;
                ip(&["link", "set", &outside, "up"])?;
            }
        }
        Ok(())
    }

    fn bridge(&self, kind: &str) -> String {
        format!("{}b{kind}", self.prefix)
    }

    fn namespace(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    fn address(&self, last: usize) -> IpAddr {
        let [a, b] = self.subnet;
        IpAddr::V4(Ipv4Addr::new(10, a, b, last as u8))
    }

    /// This process's address on the nodes' bridge.
    fn root_mesh(&self) -> IpAddr {
        self.address(1)
    }

    /// Where anvil listens: this process's address on the chain bridge.
    fn anvil(&self) -> IpAddr {
        self.address(129)
    }

    fn node_ip(&self, i: usize) -> IpAddr {
        self.address(10 + i)
    }

    fn chain_ip(&self, i: usize) -> IpAddr {
        self.address(140 + i)
    }

    /// Where the network runs: anvil on the chain bridge, node `i` in namespace `i` on its own
    /// address.
    pub fn hosts(&self) -> Hosts {
        Hosts {
            anvil: Some(self.anvil()),
            nodes: (0..self.n)
                .map(|i| Host {
                    listen: SocketAddr::new(self.node_ip(i), NODE_PORT),
                    url: None,
                    launch: ["ip", "netns", "exec", &self.namespace(i)].map(String::from).to_vec(),
                })
                .collect(),
        }
    }

    /// Cuts `minority` off: they reach each other and the chain, not the others nor this process.
    pub fn cut_off(&self, minority: &[usize]) {
        self.move_to(minority, "p");
    }

    /// Joins `minority` to the others again.
    pub fn heal(&self, minority: &[usize]) {
        self.move_to(minority, "m");
    }

    /// Moves the mesh ends of `nodes` onto bridge `bridge`.
    fn move_to(&self, nodes: &[usize], bridge: &str) {
        for i in nodes {
            ip(&[
                "link",
                "set",
                &format!("{}m{i}", self.prefix),
                "master",
                &self.bridge(bridge),
            ])
            .unwrap();
        }
    }

    /// The `sigil` CLI run inside node `i`'s namespace: a client on that node's side.
    pub fn cli_in(&self, i: usize) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(i), env!("CARGO_BIN_EXE_sigil")])
            .kill_on_drop(true);
        command
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for i in 0..self.n {
            let ns = self.namespace(i);
            // Processes still inside (a node the network did not stop) would keep it alive.
            for pid in ip(&["netns", "pids", &ns]).unwrap_or_default().split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
            // Its veth ends go with it, and their peers on the bridges.
            let _ = ip(&["netns", "del", &ns]);
        }
        for kind in ["m", "c", "p"] {
            let _ = ip(&["link", "del", &self.bridge(kind)]);
        }
    }
}

/// A private /24 (`10.a.b.0`) no interface of this machine uses, starting from `seed`.
fn free_subnet(seed: usize) -> Result<[u8; 2], String> {
    let used = ip(&["-o", "-4", "addr", "show"])? + &ip(&["-4", "route", "show"])?;
    for k in 0..1000 {
        let x = (seed + k * 7919) % (100 * 256);
        let subnet = [100 + (x / 256) as u8, (x % 256) as u8];
        if !used.contains(&format!("10.{}.{}.", subnet[0], subnet[1])) {
            return Ok(subnet);
        }
    }
    Err("no free 10.x.y.0/24 subnet".into())
}

/// The namespaces, or `None` after printing why the test is skipped.
fn namespaces_or_skip(n: usize, test: &str) -> Option<Namespaces> {
    match Namespaces::create(n) {
        Ok(spaces) => Some(spaces),
        Err(reason) => {
            eprintln!("{test}: skipped: network namespaces unavailable (they need root and `ip`): {reason}");
            None
        }
    }
}

/// Runs a CLI command (bounded in time); returns (success, stdout, stderr).
async fn run(mut command: tokio::process::Command, timeout: Duration) -> (bool, String, String) {
    let out = tokio::time::timeout(timeout, command.output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not finish within {timeout:?}"))
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Signs once (bounded in time), checks the signature, and that its presignature is new.
async fn sign_once(client: &Client, owned: &Owned, presignatures: &mut BTreeSet<String>) -> Vec<u32> {
    let outcome = tokio::time::timeout(Duration::from_secs(120), sign_and_check(client, owned))
        .await
        .expect("a sign took over 120 s");
    assert!(
        presignatures.insert(outcome.presignature.clone()),
        "presignature {} made two signatures",
        outcome.presignature
    );
    outcome.signers
}

/// `/health` of node `i`, from this process.
async fn health(net: &Network, i: usize) -> Option<serde_json::Value> {
    reqwest::Client::new()
        .get(format!("{}/health", net.urls[i]))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Polls until `done` holds, failing with `what` after `timeout`.
async fn until<F: std::future::Future<Output = bool>>(timeout: Duration, what: &str, mut done: impl FnMut() -> F) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < timeout, "{what} (waited {timeout:?})");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Once the allocator (node 0) sees the `minority` gone, the others keep signing without them.
async fn majority_keeps_signing(
    net: &Network,
    client: &Client,
    owned: &Owned,
    presignatures: &mut BTreeSet<String>,
    minority: &[usize],
) {
    let n = net.urls.len();
    until(
        Duration::from_secs(90),
        "the allocator never saw the minority go",
        || async { health(net, 0).await.and_then(|h| h["peersUp"].as_u64()) == Some((n - minority.len()) as u64) },
    )
    .await;
    for _ in 0..3 {
        let signers = sign_once(client, owned, presignatures).await;
        assert!(
            signers.iter().all(|s| !minority.contains(&(*s as usize))),
            "{signers:?}"
        );
    }
}

/// After a heal every node serves again: all see each other, a fresh client reaches all, each of
/// them signs in some signing set again, and no node was asked to use a presignature twice.
async fn every_node_signs_again(net: &mut Network, owned: &Owned, presignatures: &mut BTreeSet<String>) {
    let n = net.urls.len();
    for i in 0..n {
        until(
            Duration::from_secs(90),
            &format!("node {i} never saw every peer again"),
            || async { health(net, i).await.and_then(|h| h["peersUp"].as_u64()) == Some(n as u64) },
        )
        .await;
    }
    let client = net.wait_ready(READY).await;
    let mut signed_by = BTreeSet::new();
    let started = Instant::now();
    while signed_by.len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only nodes {signed_by:?} signed after the heal"
        );
        signed_by.extend(sign_once(&client, owned, presignatures).await);
    }
    for i in 0..n {
        let metrics = net.metrics(i).await;
        let conflicts = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("sigil_presignature_conflicts_total ")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        assert_eq!(conflicts, 0.0, "node {i} was asked to use a presignature twice");
    }
}

/// `n` nodes in their own namespaces; `minority` is cut off and healed again.
async fn check_partition(test: &str, n: usize, minority: &[usize]) {
    let Some(spaces) = namespaces_or_skip(n, test) else {
        return;
    };
    let mut net = Network::start_on(n, 4, spaces.hosts()).await;
    let client = net.wait_ready(READY).await;
    let t = client.threshold();
    assert!(
        n - minority.len() >= t && minority.len() < t,
        "not a minority partition"
    );
    let owned = mint(&net, &client, 1).await;
    let test_started = Instant::now();
    let mut presignatures = BTreeSet::new();
    sign_once(&client, &owned, &mut presignatures).await;

    spaces.cut_off(minority);
    // The minority: once its nodes see only each other, a client on their side is told that too
    // few nodes are ready, and signs nothing.
    let inside = minority[0];
    let network = net.network_file();
    let status = || {
        let mut command = spaces.cli_in(inside);
        command.arg("--network").arg(&network).args(["status", "--json"]);
        command
    };
    let started = Instant::now();
    let said = loop {
        let (_, out, _) = run(status(), Duration::from_secs(120)).await;
        let said: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        if said["nodes"][inside]["health"]["peersUp"].as_u64() == Some(minority.len() as u64) {
            break said;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the minority never saw the others go: {said}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(said["canSign"], false, "{said}");
    let not_enough = format!("{} of {n} nodes are ready (need {t})", minority.len());
    let error = said["error"].as_str().unwrap_or_default();
    assert!(error.contains(&not_enough), "{error}");
    let mut sign = spaces.cli_in(inside);
    sign.arg("--network")
        .arg(&network)
        .args([
            "--private-key",
            DEV_KEY,
            "sign",
            "--key-id",
            &hex::encode(owned.key_ids[0]),
        ])
        .args(["--hash", &"ab".repeat(32)]);
    let (signed, out, err) = run(sign, Duration::from_secs(120)).await;
    assert!(!signed, "the minority signed: {out}");
    assert!(err.contains(&not_enough), "{err}");

    eprintln!("{test}: a client on the minority's side was told: {error}");
    majority_keeps_signing(&net, &client, &owned, &mut presignatures, minority).await;
    spaces.heal(minority);
    every_node_signs_again(&mut net, &owned, &mut presignatures).await;
    eprintln!(
        "{test}: {} signatures, each with its own presignature, in {:.0} s",
        presignatures.len(),
        test_started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_hosts_cut_in_two_the_minority_cannot_sign_the_majority_does_and_all_serve_after_the_heal() {
    check_partition(
        "seven_hosts_cut_in_two_the_minority_cannot_sign_the_majority_does_and_all_serve_after_the_heal",
        7,
        &[5, 6],
    )
    .await;
}

/// Node `i`'s own loopback address, its connections' source in [`check_cut_links`].
fn source_of(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 20 + i as u8))
}

/// The same on loopback, without namespaces: a link in front of every node, and each node's
/// connections leaving from its own loopback address (`mesh_source_address`). The cut is two
/// ways: each side's links refuse the other side's source addresses, so the `minority` sees only
/// itself, which its nodes' own health (asked at their listen addresses, past the links) must
/// say, and the majority sees only itself.
async fn check_cut_links(test: &str, n: usize, minority: &[usize]) {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut links = Vec::new();
    let mut listens = Vec::new();
    let mut nodes = Vec::new();
    for port in sigil::devnet::free_ports(n).unwrap() {
        let listen = SocketAddr::new(loopback, port);
        let link = Link::start(SocketAddr::new(loopback, 0), listen, Duration::ZERO)
            .await
            .unwrap();
        nodes.push(Host {
            listen,
            url: Some(link.url()),
            launch: Vec::new(),
        });
        links.push(link);
        listens.push(listen);
    }
    let mut net = Network::start_on_configured(n, 4, Hosts { anvil: None, nodes }, |config| {
        let id: usize = config
            .lines()
            .find_map(|l| l.strip_prefix("id = "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        format!("mesh_source_address = \"{}\"\n{config}", source_of(id))
    })
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let started = Instant::now();
    let mut presignatures = BTreeSet::new();
    sign_once(&client, &owned, &mut presignatures).await;
    // Each side's links refuse the other side's nodes.
    let other_side = |j: usize| -> Vec<usize> {
        (0..n)
            .filter(|k| minority.contains(k) != minority.contains(&j))
            .collect()
    };
    for (j, link) in links.iter().enumerate() {
        other_side(j).into_iter().for_each(|k| link.cut_from(source_of(k)));
    }
    // Each node of the minority sees only the minority.
    for m in minority {
        let url = format!("http://{}/health", listens[*m]);
        until(
            Duration::from_secs(90),
            &format!("node {m} still sees nodes of the other side"),
            || async {
                let health: Option<serde_json::Value> = async {
                    reqwest::Client::new()
                        .get(&url)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()
                }
                .await;
                health.and_then(|h| h["peersUp"].as_u64()) == Some(minority.len() as u64)
            },
        )
        .await;
    }
    majority_keeps_signing(&net, &client, &owned, &mut presignatures, minority).await;
    for (j, link) in links.iter().enumerate() {
        other_side(j).into_iter().for_each(|k| link.heal_from(source_of(k)));
    }
    every_node_signs_again(&mut net, &owned, &mut presignatures).await;
    eprintln!(
        "{test}: {} signatures, each with its own presignature, in {:.0} s",
        presignatures.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_nodes_on_loopback_two_cut_off_both_ways_the_rest_sign_and_all_sign_again_after_the_heal() {
    check_cut_links(
        "seven_nodes_on_loopback_two_cut_off_both_ways_the_rest_sign_and_all_sign_again_after_the_heal",
        7,
        &[5, 6],
    )
    .await;
}
