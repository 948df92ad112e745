//! `node.toml`: what one node needs to start.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sigil_mesh::NodeKey;
use sigil_tss::{threshold_for, MAX_PARTIES, MIN_PARTIES};

use crate::auth::oidc::{IssuerConfig, OauthLimits, OidcConfig, UserinfoConfig};
use crate::store::StorageKey;

/// The environment variable that may hold the storage key instead of the config file.
pub const STORAGE_KEY_ENV: &str = "SIGIL_STORAGE_KEY";

/// A node's configuration file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id: its index in `peers`, 0-based.
    pub id: u32,
    /// Address of the one HTTP listener, for clients and peers.
    pub listen: SocketAddr,
    /// Directory holding the node's data file (`sigil.redb`); relative paths are relative to the
    /// config file.
    pub data_dir: PathBuf,
    /// 64 hex characters sealing the data file; if absent, read from `SIGIL_STORAGE_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<String>,
    /// Shares needed to sign (default ⌈2n/3⌉; at least ⌈2n/3⌉ and 2, at most n).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<usize>,
    /// The local address this node's connections to its peers leave from (default: the one the
    /// system picks), e.g. the address the peers' firewalls allow on a host with several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_source_address: Option<std::net::IpAddr>,
    /// Presignatures this node keeps in stock while it allocates (it is the lowest live node).
    #[serde(default = "default_stock")]
    pub presign_stock: usize,
    /// Refilling starts when the stock falls below this (default: `presign_stock`, i.e. refill at
    /// once); it then runs until the stock is full again. The Schnorr nonce stock follows the
    /// same rule (below this, or below `schnorr_stock` if that is smaller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presign_refill_below: Option<usize>,
    /// Presignatures generated at once.
    #[serde(default = "default_parallel")]
    pub presign_parallel: usize,
    /// Schnorr nonce material (FROST preprocessing) this node keeps in stock while it allocates.
    #[serde(default = "default_stock")]
    pub schnorr_stock: usize,
    /// The chain holding the node set and the PKP registry. Without it the node still takes part
    /// in DKG and presigning, but refuses every sign request: it cannot check permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainConfig>,
    /// Every node of the network, this one included — only without `chain`: with a chain the
    /// node set comes from the NodeSet contract.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerConfig>,
    /// How actions run.
    #[serde(default)]
    pub actions: ActionsConfig,
    /// Bounds on what peers and clients can make this node hold.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// How callers authenticate: auth methods and per-principal rates.
    #[serde(default)]
    pub auth: AuthConfig,
}

/// `[auth]`: auth methods this node verifies, and how often one caller (a wallet or a PKP, over
/// every session and address it uses) may sign, execute, decrypt or get a session.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Requests a second one principal may make (sustained).
    #[serde(default = "default_principal_rate")]
    pub rate_per_principal: u32,
    /// Requests one principal may make at once.
    #[serde(default = "default_principal_burst")]
    pub burst_per_principal: u32,
    /// Principals whose rate is remembered (the idlest is forgotten first).
    #[serde(default = "default_tracked_principals")]
    pub tracked_principals: usize,
    /// The WebAuthn relying-party id passkeys (auth method 3) are registered for: a domain such
    /// as `example.com` (`localhost` in development). Unset: passkeys are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauthn_rp_id: Option<String>,
    /// Origins (`https://app.example.com`, compared exactly) whose pages may make passkey
    /// assertions; each one's host is the relying-party id or a subdomain of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webauthn_origins: Vec<String>,
    /// Whether a passkey must also have verified the user (the UV flag: PIN or biometrics), not
    /// only seen them (UP). Off by default: security keys without a PIN only show presence.
    #[serde(default)]
    pub webauthn_require_uv: bool,
    /// OpenID Connect issuers whose ID tokens are auth methods (`[[auth.oidc]]`: issuer,
    /// jwks_url, audiences, auth_method_type = 6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc: Vec<IssuerConfig>,
    /// OAuth providers whose access tokens are auth methods, checked at their userinfo endpoint
    /// (`[[auth.userinfo]]`: url, auth_method_type, app_id, user_id_pointer, app_id_pointer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub userinfo: Vec<UserinfoConfig>,
    /// Bounds of the JWKS and userinfo fetches and caches (`[auth.oauth]`).
    #[serde(default)]
    pub oauth: OauthLimits,
}

impl AuthConfig {
    /// The issuers, userinfo endpoints and bounds the node's [`crate::auth::oidc::Oidc`]
    /// verifier checks tokens against.
    pub fn oidc_config(&self) -> OidcConfig {
        OidcConfig {
            oidc: self.oidc.clone(),
            userinfo: self.userinfo.clone(),
            limits: self.oauth.clone(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            rate_per_principal: default_principal_rate(),
            burst_per_principal: default_principal_burst(),
            tracked_principals: default_tracked_principals(),
            oidc: Vec::new(),
            userinfo: Vec::new(),
            oauth: OauthLimits::default(),
            webauthn_rp_id: None,
            webauthn_origins: Vec::new(),
            webauthn_require_uv: false,
        }
    }
}

impl AuthConfig {
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(format!("auth.{why}")));
        let Some(rp_id) = &self.webauthn_rp_id else {
            if self.webauthn_origins.is_empty() {
                return Ok(());
            }
            return invalid("webauthn_origins is set without webauthn_rp_id".into());
        };
        let is_domain = !rp_id.is_empty()
            && rp_id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !is_domain {
            return invalid(format!(
                "webauthn_rp_id {rp_id:?} must be a lowercase domain, without scheme or port"
            ));
        }
        if self.webauthn_origins.is_empty() {
            return invalid("webauthn_origins must list at least one origin when webauthn_rp_id is set".into());
        }
        for origin in &self.webauthn_origins {
            let Some(rest) = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
            else {
                return invalid(format!(
                    "webauthn_origins: {origin:?} must start with https:// or http://"
                ));
            };
            let host = rest.rsplit_once(':').map_or(rest, |(host, _)| host);
            if rest.contains('/') || !(host == rp_id || host.ends_with(&format!(".{rp_id}"))) {
                return invalid(format!(
                    "webauthn_origins: {origin:?} must be scheme://host[:port] with host {rp_id} or a subdomain of it"
                ));
            }
        }
        Ok(())
    }
}

fn default_principal_rate() -> u32 {
    50
}

fn default_principal_burst() -> u32 {
    200
}

fn default_tracked_principals() -> usize {
    65_536
}

/// `[limits]`: bounds on what peers and clients can make a node hold. Each one has a metric
/// that counts what it turned away (`sigil_mesh_dropped_total`, `sigil_early_dropped_total`,
/// `sigil_http_refused_total`) or shows how full it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Messages queued to one peer; when full, its oldest is dropped.
    pub peer_queue_messages: usize,
    /// Bytes queued to one peer; when full, its oldest messages are dropped.
    pub peer_queue_bytes: usize,
    /// Bytes of protocol messages kept for one peer's sessions that are not open yet.
    pub early_bytes_per_peer: usize,
    /// Bytes of mesh envelopes whose header passed its check but whose authentication tag is not
    /// verified yet, across the bodies being read (one replayed genuine header passes the check,
    /// so this bounds what a stranger holding one can make the node keep); bodies from the node
    /// list's addresses have a budget of this size of their own, in which each address has a share
    /// (this / addresses, at least 8 MiB). Past it, `/mesh` answers 503 `BUSY`.
    pub mesh_unverified_bytes: usize,
    /// Allocations one node may have open at this node, as allocator, that `t` nodes have not
    /// asked for yet (their calls wait up to 10 s); a newer one pushes its oldest out, whose
    /// waiting calls get `UNCONFIRMED` at once.
    pub open_asks_per_node: usize,
    /// Bytes of action values (`runOnce`, `broadcastAndCollect`) one peer may have waiting in this
    /// node's mailbox (values past it are dropped; one request's values from one peer are held to
    /// 2 MiB, and a run's values are forgotten when it ends here). Values for requests not running
    /// here have a quarter of this of their own, and at most 512 values, kept 30 s.
    pub mailbox_bytes_per_peer: usize,
    /// Allocations one node's asks may open without waiting for `t` nodes to ask (a token bucket:
    /// a token comes back when `t` nodes have asked). An allocation nobody else asks for signs
    /// nothing, so this bounds what a member asking for requests nobody made can spend.
    pub solo_allocations: u32,
    /// Solo tokens refilled per minute.
    pub solo_allocations_per_min: u32,
    /// TCP connections one IP address may hold open (further ones are closed at once).
    pub connections_per_ip: usize,
    /// TCP connections all addresses outside the node list may hold open together (further
    /// ones are closed at once): keep it below the process's open-file limit, less what the
    /// node's peers and its own outgoing connections and files need.
    pub max_connections: usize,
    /// More TCP connections an address of the node list may hold, for the mesh only: connections
    /// from there that carry public API requests stay within `connections_per_ip`, so a client
    /// behind a node's address (one NAT) cannot take them.
    pub peer_connections: usize,
    /// Seconds a connection may go without a byte read or written before it is closed: a request
    /// stalled in its headers or body, or an idle keep-alive connection. Longer than the longest
    /// request (an action's wall time, a sign waiting for the pool).
    pub idle_timeout_secs: u64,
    /// `/web` requests one IP address may have in flight (further ones: 503 `BUSY`).
    pub requests_per_ip: usize,
    /// `/web` requests per second one IP address may make on average (further ones: 429
    /// `RATE_LIMITED`, with `Retry-After`).
    pub rate_per_ip: u32,
    /// Requests one IP address may make in a burst above `rate_per_ip`.
    pub burst_per_ip: u32,
    /// IP addresses whose rate and concurrency are tracked at once (the idlest are forgotten).
    pub tracked_ips: usize,
    /// PKPs whose public key and token id the node remembers.
    pub known_keys: usize,
    /// Entries of each chain registry cache (owners and permitted addresses, permitted actions).
    pub registry_cache: usize,
    /// Reverse proxies in front of this node: for a connection from one of them, the client's
    /// address is the last `X-Forwarded-For` entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            peer_queue_messages: 4096,
            peer_queue_bytes: 64 << 20,
            early_bytes_per_peer: 16 << 20,
            mesh_unverified_bytes: 64 << 20,
            open_asks_per_node: 128,
            mailbox_bytes_per_peer: 32 << 20,
            solo_allocations: 64,
            solo_allocations_per_min: 60,
            connections_per_ip: 512,
            max_connections: 8192,
            peer_connections: 64,
            idle_timeout_secs: 60,
            requests_per_ip: 256,
            rate_per_ip: 1000,
            burst_per_ip: 2000,
            tracked_ips: 4096,
            known_keys: 65_536,
            registry_cache: 65_536,
            trusted_proxies: Vec::new(),
        }
    }
}

impl LimitsConfig {
    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("peer_queue_messages", self.peer_queue_messages),
            ("peer_queue_bytes", self.peer_queue_bytes),
            ("early_bytes_per_peer", self.early_bytes_per_peer),
            ("mesh_unverified_bytes", self.mesh_unverified_bytes),
            ("open_asks_per_node", self.open_asks_per_node),
            ("mailbox_bytes_per_peer", self.mailbox_bytes_per_peer),
            ("solo_allocations", self.solo_allocations as usize),
            ("connections_per_ip", self.connections_per_ip),
            ("max_connections", self.max_connections),
            ("peer_connections", self.peer_connections),
            ("idle_timeout_secs", self.idle_timeout_secs as usize),
            ("requests_per_ip", self.requests_per_ip),
            ("rate_per_ip", self.rate_per_ip as usize),
            ("burst_per_ip", self.burst_per_ip as usize),
            ("tracked_ips", self.tracked_ips),
            ("known_keys", self.known_keys),
            ("registry_cache", self.registry_cache),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((key, _)) => Err(ConfigError::Invalid(format!("limits.{key} must be at least 1"))),
            None => Ok(()),
        }
    }
}

/// `[actions]`: limits of each run and where code and libraries come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// Per-run limits (`[actions.limits]`: wall_time in ms, memory_bytes, code_bytes,
    /// response_bytes, signatures, fetches, call_depth, log_bytes).
    pub limits: sigil_actions::Limits,
    /// Actions running at once (and, separately, actions run as access-control conditions);
    /// further requests wait up to `slot_wait_ms`.
    pub max_concurrent: usize,
    /// How long a request waits for a free action (or condition) slot, in ms, before it is
    /// refused with 503 `BUSY` and a `Retry-After` header (default 2000).
    pub slot_wait_ms: u64,
    /// Most bytes of code the action store (`POST /web/actions`, `actions.redb`) holds (default
    /// 64 MiB). Each action is also bounded by `limits.code_bytes`.
    pub store_max_bytes: u64,
    /// Most actions the action store holds (default 4096).
    pub store_max_actions: usize,
    /// What storing does when the store is full: `"evict"` (default) removes the least recently
    /// used actions (by last run, else store time) to make room; `"refuse"` answers 507
    /// `ACTION_STORE_FULL`.
    pub store_when_full: StoreWhenFull,
    /// ethers v5's UMD bundle (`ethers.umd.min.js`). Relative paths are relative to the config.
    pub ethers_bundle: Option<PathBuf>,
    /// Runtimes with ethers already evaluated that the node keeps ready for actions whose code
    /// names `ethers` (default 2; 0 turns them off). They are made once the node's first such
    /// action has run, about 20 MiB each, and each is used by one run and then replaced.
    pub warm_ethers: usize,
    /// An IPFS HTTP gateway (`{gateway}/ipfs/{cid}`) for code not in the node's action store.
    pub ipfs_gateway: Option<String>,
    /// RPC URLs by chain name, for conditions and the actions' `Lit.Actions.getRpcUrl`; the
    /// node's own chain is always available by its chain id.
    pub rpc_urls: std::collections::BTreeMap<String, String>,
    /// What `getRpcUrl` hands to actions for a chain whose URL in `rpc_urls` (or `[chain]
    /// rpc_url`) carries a credential: an action's code and logs are public, so a URL with a user,
    /// a password or a query string is never handed out. Put an API key in a path only here.
    pub public_rpc_urls: std::collections::BTreeMap<String, String>,
    /// Where actions may connect (`[actions.egress]`).
    pub egress: crate::actions::egress::EgressConfig,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            limits: sigil_actions::Limits::default(),
            max_concurrent: 8,
            slot_wait_ms: 2000,
            store_max_bytes: 64 << 20,
            store_max_actions: 4096,
            store_when_full: StoreWhenFull::Evict,
            ethers_bundle: None,
            warm_ethers: 2,
            ipfs_gateway: None,
            rpc_urls: std::collections::BTreeMap::new(),
            public_rpc_urls: std::collections::BTreeMap::new(),
            egress: crate::actions::egress::EgressConfig::default(),
        }
    }
}

/// `[actions] store_when_full`: what a full action store does with new code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreWhenFull {
    /// Removes the least recently used actions: code is addressed by its hash, so whoever needs
    /// an evicted action can store it again.
    #[default]
    Evict,
    /// Refuses the new code (507 `ACTION_STORE_FULL`) until the operator makes room.
    Refuse,
}

/// Where the node reads the chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC endpoint, e.g. `http://127.0.0.1:8545`.
    pub rpc_url: String,
    /// Address of the NodeSet contract (it names the PKP contracts).
    pub node_set: String,
    /// The SIWE domain this network's auth signatures must name.
    #[serde(default = "default_auth_domain")]
    pub auth_domain: String,
    /// Oldest accepted SIWE nonce (a block hash), in seconds behind the head block.
    #[serde(default = "default_nonce_max_age")]
    pub nonce_max_age_secs: u64,
}

fn default_auth_domain() -> String {
    "localhost".into()
}

fn default_nonce_max_age() -> u64 {
    600
}

fn default_stock() -> usize {
    32
}

fn default_parallel() -> usize {
    2
}

/// One node of the network as its peers know it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Node id.
    pub id: u32,
    /// Base URL, e.g. `http://127.0.0.1:7470`.
    pub url: String,
    /// Identity public key, 64 hex characters.
    pub key: String,
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("id", &self.id)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("storage_key", &self.storage_key.as_ref().map(|_| "<redacted>"))
            .field("threshold", &self.threshold)
            .field("chain", &self.chain)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a node configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// The values do not make a network.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The threshold is outside `min ..= nodes`, where `min` is ⌈2n/3⌉ and at least 2 (the bound
    /// NodeSet's `setNodes` enforces too).
    #[error(
        "invalid configuration: threshold {threshold} with {nodes} nodes; it must be at least {min} \
         (⌈2n/3⌉ and at least 2) and at most {nodes}"
    )]
    Threshold {
        /// The threshold configured (or read from NodeSet).
        threshold: usize,
        /// Nodes in the network.
        nodes: usize,
        /// The smallest threshold allowed for `nodes`.
        min: usize,
    },
}

/// The smallest threshold a network of `n` nodes may use: ⌈2n/3⌉ ([`threshold_for`]), and never
/// below 2. NodeSet's `setNodes` refuses the same thresholds.
pub fn min_threshold(n: usize) -> usize {
    threshold_for(n).max(2)
}

/// A checked configuration: peers parsed, threshold fixed, paths resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The raw file.
    pub config: NodeConfig,
    /// Peers by id with their pinned keys, this node included.
    pub peers: Vec<(u32, String, NodeKey)>,
    /// Shares needed.
    pub threshold: usize,
    /// Resolved data directory.
    pub data_dir: PathBuf,
    /// Node set epoch (from NodeSet with a chain, else 1).
    pub epoch: u64,
    /// The signing address NodeSet lists for this node (with a chain); a node whose signing key
    /// is another refuses to start.
    pub signer: Option<String>,
    /// For a node that joins the proposed epoch: the ids of the current epoch's nodes (`peers`
    /// then lists the proposed nodes too). `None` for a node of the current epoch.
    pub members: Option<Vec<u32>>,
}

impl NodeConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.check(base)
    }

    /// Checks the values; relative paths are resolved against `base`. With a chain, `peers`
    /// must be empty here and [`Settings::adopt_peers`] fills them from NodeSet.
    pub fn check(mut self, base: &Path) -> Result<Settings, ConfigError> {
        self.resolve_paths(base);
        if self.actions.max_concurrent == 0 {
            return Err(ConfigError::Invalid("actions.max_concurrent must be at least 1".into()));
        }
        if self.actions.store_max_actions == 0 || self.actions.store_max_bytes == 0 {
            return Err(ConfigError::Invalid(
                "actions.store_max_actions and actions.store_max_bytes must be at least 1".into(),
            ));
        }
        self.limits.check()?;
        self.auth.oidc_config().check().map_err(ConfigError::Invalid)?;
        self.auth.check()?;
        if self.chain.is_some() {
            if !self.peers.is_empty() {
                return Err(ConfigError::Invalid(
                    "give either [chain] (peers come from NodeSet) or a peers list, not both".into(),
                ));
            }
            let data_dir = self.resolved_data_dir(base);
            return Ok(Settings {
                config: self,
                peers: Vec::new(),
                threshold: 0,
                data_dir,
                epoch: 1,
                signer: None,
                members: None,
            });
        }
        let mut settings = Settings {
            data_dir: self.resolved_data_dir(base),
            peers: Vec::new(),
            threshold: 0,
            epoch: 1,
            signer: None,
            members: None,
            config: self,
        };
        let peers = settings.config.peers.clone();
        let threshold = settings.config.threshold;
        settings.adopt_peers(&peers, threshold)?;
        Ok(settings)
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = &self.actions.ethers_bundle {
            if path.is_relative() {
                self.actions.ethers_bundle = Some(base.join(path));
            }
        }
        if let Some(path) = &self.actions.egress.extra_ca_file {
            if path.is_relative() {
                self.actions.egress.extra_ca_file = Some(base.join(path));
            }
        }
    }

    fn resolved_data_dir(&self, base: &Path) -> PathBuf {
        if self.data_dir.is_absolute() {
            self.data_dir.clone()
        } else {
            base.join(&self.data_dir)
        }
    }
}

impl Settings {
    /// Takes the node list (from the config or from NodeSet) and the threshold, checking both.
    pub fn adopt_peers(&mut self, list: &[PeerConfig], threshold: Option<usize>) -> Result<(), ConfigError> {
        let n = list.len();
        if !(MIN_PARTIES..=MAX_PARTIES).contains(&n) {
            return Err(ConfigError::Invalid(format!(
                "{n} peers listed; a network has {MIN_PARTIES} to {MAX_PARTIES} nodes (this one included)"
            )));
        }
        // A node's id is its own, kept across epochs (DESIGN §9), not its place in the list: any
        // distinct ids will do, and the peers are kept sorted by id.
        let mut peers = Vec::with_capacity(n);
        for peer in list {
            let key = NodeKey::from_hex(&peer.key)
                .ok_or_else(|| ConfigError::Invalid(format!("peer {}: key must be 64 hex characters", peer.id)))?;
            if !peer.url.starts_with("http://") && !peer.url.starts_with("https://") {
                return Err(ConfigError::Invalid(format!(
                    "peer {}: url {:?} must start with http:// or https://",
                    peer.id, peer.url
                )));
            }
            peers.push((peer.id, peer.url.trim_end_matches('/').to_string(), key));
        }
        peers.sort_unstable_by_key(|(id, _, _)| *id);
        if let Some((twice, _)) = peers.iter().zip(peers.iter().skip(1)).find(|(a, b)| a.0 == b.0) {
            return Err(ConfigError::Invalid(format!("peer id {} is listed twice", twice.0)));
        }
        if !peers.iter().any(|(id, _, _)| *id == self.config.id) {
            let ids: Vec<u32> = peers.iter().map(|(id, _, _)| *id).collect();
            return Err(ConfigError::Invalid(format!(
                "id {} is not among the peers' ids {ids:?}",
                self.config.id
            )));
        }
        let threshold = threshold.unwrap_or_else(|| threshold_for(n));
        let min = min_threshold(n);
        if threshold < min || threshold > n {
            return Err(ConfigError::Threshold {
                threshold,
                nodes: n,
                min,
            });
        }
        if self.config.presign_parallel == 0 {
            return Err(ConfigError::Invalid("presign_parallel must be at least 1".into()));
        }
        self.peers = peers;
        self.threshold = threshold;
        Ok(())
    }

    /// The storage key from the file or, failing that, from `SIGIL_STORAGE_KEY`.
    pub fn storage_key(&self) -> Result<StorageKey, ConfigError> {
        let text = match &self.config.storage_key {
            Some(text) => text.clone(),
            None => std::env::var(STORAGE_KEY_ENV).map_err(|_| {
                ConfigError::Invalid(format!(
                    "no storage key: set storage_key in the config or {STORAGE_KEY_ENV} in the environment"
                ))
            })?,
        };
        StorageKey::from_hex(text.trim()).map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerConfig> {
        (0..n)
            .map(|i| PeerConfig {
                id: i as u32,
                url: format!("http://127.0.0.1:{}", 7000 + i),
                key: hex::encode([i as u8 + 1; 32]),
            })
            .collect()
    }

    fn config(n: usize, threshold: Option<usize>) -> NodeConfig {
        NodeConfig {
            id: 0,
            listen: "127.0.0.1:7000".parse().unwrap(),
            data_dir: PathBuf::from("data"),
            storage_key: None,
            threshold,
            mesh_source_address: None,
            presign_stock: default_stock(),
            presign_refill_below: None,
            presign_parallel: default_parallel(),
            schnorr_stock: default_stock(),
            chain: None,
            peers: peers(n),
            actions: ActionsConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
        }
    }

    fn threshold_of(n: usize, threshold: Option<usize>) -> Result<usize, ConfigError> {
        config(n, threshold).check(Path::new("/")).map(|s| s.threshold)
    }

    fn passkeys(rp_id: Option<&str>, origins: &[&str]) -> Result<Settings, ConfigError> {
        let mut config = config(4, None);
        config.auth.webauthn_rp_id = rp_id.map(str::to_owned);
        config.auth.webauthn_origins = origins.iter().map(|o| o.to_string()).collect();
        config.check(Path::new("/"))
    }

    #[test]
    fn passkey_origins_must_belong_to_the_relying_party() {
        assert!(passkeys(None, &[]).is_ok());
        assert!(passkeys(Some("localhost"), &["http://localhost:5173", "http://localhost"]).is_ok());
        assert!(passkeys(
            Some("example.com"),
            &["https://example.com", "https://app.example.com:8443"]
        )
        .is_ok());
        for (rp_id, origins) in [
            (None, &["https://example.com"][..]),
            (Some("example.com"), &[][..]),
            (Some(""), &["https://example.com"][..]),
            (Some("Example.com"), &["https://example.com"][..]),
            (Some("https://example.com"), &["https://example.com"][..]),
            (Some("example.com"), &["https://evil.com"][..]),
            (Some("example.com"), &["https://notexample.com"][..]),
            (Some("example.com"), &["https://example.com/"][..]),
            (Some("example.com"), &["example.com"][..]),
            (Some("example.com"), &["https://example.com.evil.com"][..]),
        ] {
            assert!(
                matches!(passkeys(rp_id, origins), Err(ConfigError::Invalid(ref m)) if m.starts_with("auth.webauthn_")),
                "{rp_id:?} {origins:?}"
            );
        }
    }

    #[test]
    fn the_default_threshold_is_two_thirds() {
        for (n, t) in [(3, 2), (4, 3), (5, 4), (7, 5), (31, 21)] {
            assert_eq!(threshold_of(n, None).unwrap(), t, "{n} nodes");
            assert_eq!(min_threshold(n), t, "{n} nodes");
        }
    }

    #[test]
    fn a_threshold_below_two_thirds_is_refused_naming_the_numbers() {
        for (n, t, min) in [(3, 1, 2), (4, 2, 3), (5, 3, 4), (7, 4, 5), (7, 1, 5), (31, 20, 21)] {
            match threshold_of(n, Some(t)) {
                Err(ConfigError::Threshold {
                    threshold,
                    nodes,
                    min: got,
                }) => {
                    assert_eq!((threshold, nodes, got), (t, n, min));
                }
                other => panic!("{n} nodes, threshold {t}: {other:?}"),
            }
        }
        let message = threshold_of(4, Some(2)).unwrap_err().to_string();
        assert!(message.contains("threshold 2 with 4 nodes"), "{message}");
        assert!(message.contains("at least 3"), "{message}");
    }

    #[test]
    fn a_threshold_of_zero_or_one_or_above_the_count_is_refused() {
        for (n, t) in [(3, 0), (3, 1), (5, 0), (5, 1), (3, 4), (5, 6)] {
            assert!(
                matches!(threshold_of(n, Some(t)), Err(ConfigError::Threshold { .. })),
                "{n} nodes, threshold {t}"
            );
        }
    }

    #[test]
    fn every_threshold_from_two_thirds_to_the_count_is_accepted() {
        for n in MIN_PARTIES..=MAX_PARTIES {
            for t in 0..=n + 1 {
                let ok = t >= 2 && t <= n && 3 * t >= 2 * n;
                assert_eq!(threshold_of(n, Some(t)).is_ok(), ok, "{n} nodes, threshold {t}");
            }
        }
    }

    #[test]
    fn adopt_peers_checks_a_threshold_read_from_the_chain() {
        let mut chained = config(0, None);
        chained.chain = Some(ChainConfig {
            rpc_url: "http://127.0.0.1:8545".into(),
            node_set: "0x0000000000000000000000000000000000000001".into(),
            auth_domain: default_auth_domain(),
            nonce_max_age_secs: default_nonce_max_age(),
        });
        let mut settings = chained.check(Path::new("/")).unwrap();
        assert!(matches!(
            settings.adopt_peers(&peers(5), Some(3)),
            Err(ConfigError::Threshold {
                threshold: 3,
                nodes: 5,
                min: 4
            })
        ));
        settings.adopt_peers(&peers(5), Some(4)).unwrap();
        assert_eq!(settings.threshold, 4);
    }

    #[test]
    fn peer_ids_are_the_nodes_own_in_any_order_but_distinct_and_this_nodes_among_them() {
        let with_ids = |ids: &[u32], me: u32| {
            let mut config = config(ids.len(), None);
            config.id = me;
            for (peer, id) in config.peers.iter_mut().zip(ids) {
                peer.id = *id;
            }
            config.check(Path::new("/"))
        };
        let settings = with_ids(&[77, 3, 40, 8, 21], 40).unwrap();
        let ids: Vec<u32> = settings.peers.iter().map(|(id, _, _)| *id).collect();
        assert_eq!(ids, [3, 8, 21, 40, 77], "kept sorted by id");
        assert_eq!(settings.threshold, 4);
        // The key listed with id 40 stays with id 40 once sorted.
        assert_eq!(settings.peers[3].2, NodeKey::from_hex(&hex::encode([3u8; 32])).unwrap());

        let twice = with_ids(&[5, 9, 5, 2], 9).err().unwrap().to_string();
        assert!(twice.contains("peer id 5 is listed twice"), "{twice}");
        let stranger = with_ids(&[5, 9, 12, 2], 0).err().unwrap().to_string();
        assert!(
            stranger.contains("id 0 is not among the peers' ids [2, 5, 9, 12]"),
            "{stranger}"
        );
    }

    #[test]
    fn auth_oidc_issuers_and_userinfo_endpoints_parse_and_are_checked() {
        let auth: AuthConfig = toml::from_str(
            r#"
            [[oidc]]
            issuer = "https://accounts.google.com"
            jwks_url = "https://www.googleapis.com/oauth2/v3/certs"
            audiences = ["1234.apps.googleusercontent.com"]

            [[userinfo]]
            url = "https://discord.com/api/oauth2/@me"
            auth_method_type = 4
            app_id = "1052874239658692668"

            [oauth]
            fetch_timeout_ms = 2000
            "#,
        )
        .unwrap();
        assert_eq!(auth.oidc[0].auth_method_type, crate::auth::oidc::GOOGLE_JWT_TYPE);
        assert_eq!(auth.userinfo[0].user_id_pointer, "/user/id");
        assert_eq!(auth.oauth.fetch_timeout_ms, 2000);
        assert_eq!(auth.oauth.jwks_refetch_secs, 30);
        let mut node = config(4, None);
        node.auth = auth;
        node.clone().check(Path::new("/")).unwrap();
        // A plain-http issuer off loopback would let anyone on the path swap its keys.
        node.auth.oidc[0].jwks_url = "http://www.googleapis.com/oauth2/v3/certs".into();
        assert!(matches!(node.check(Path::new("/")), Err(ConfigError::Invalid(m)) if m.contains("jwks_url")));
        assert!(toml::from_str::<AuthConfig>("[oauth]\nfetch_timeout = 1").is_err());
    }
}
