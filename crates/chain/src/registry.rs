//! What a node reads from the chain: the node set, PKP owners and permissions.
//!
//! Reads go through a short cache. Before each decision the registry looks at the chain head;
//! when new blocks exist it fetches the logs of PKPNFT and PKPPermissions over them and drops
//! every cached entry for a token those events name (a transfer, a burn, a permission change).
//! So a decision is never older than the head block the node just saw, and an idle chain costs
//! one `eth_getBlockByNumber` per decision.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use tokio::sync::Mutex;

use crate::bindings::{NodeSet, PKPPermissions, PKPNFT};
use crate::vouch::RootKeys;
use crate::{ChainError, Contracts};

/// Entries older than this are read again even without an event (a backstop, not the mechanism).
const MAX_AGE: Duration = Duration::from_secs(60);
/// More new blocks than this at once and the cache is simply cleared instead of reading logs.
const MAX_LOG_RANGE: u64 = 2_000;
/// Remembered block lookups (for nonce freshness).
const MAX_BLOCKS: usize = 4_096;
/// Auth method type of an Ethereum wallet address (Lit's `AuthMethodType.EthWallet`).
pub const AUTH_METHOD_ETH_WALLET: u64 = 1;
/// Scope bit: sign anything.
pub const SCOPE_SIGN_ANYTHING: u64 = 1;
/// Scope bit: sign personal messages (EIP-191) only.
pub const SCOPE_PERSONAL_MESSAGE: u64 = 2;

/// The node set as NodeSet holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSetView {
    /// Epoch (incremented by every change of the node list).
    pub epoch: u64,
    /// Shares needed.
    pub threshold: u32,
    /// The mint attester (zero until the root keys are recorded).
    pub attester: Address,
    /// The nodes, in NodeSet's order.
    pub nodes: Vec<ListedNode>,
    /// The epoch of the latest root-key record (0: none yet).
    pub keys_epoch: u64,
    /// The latest root-key record (empty when `keys_epoch` is 0).
    pub keys: RootKeys,
}

/// A node as NodeSet lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedNode {
    /// Node id.
    pub id: u32,
    /// Its X25519 mesh identity key.
    pub identity_key: [u8; 32],
    /// The address of its signing key (handshakes, root-key records).
    pub signer: Address,
    /// Its base URL.
    pub url: String,
}

impl From<NodeSet::Node> for ListedNode {
    fn from(node: NodeSet::Node) -> Self {
        Self {
            id: node.id,
            identity_key: node.identityKey.0,
            signer: node.signer,
            url: node.url,
        }
    }
}

/// The chain head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Block timestamp (unix seconds).
    pub timestamp: u64,
}

/// Why an address may use a PKP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// It owns the token.
    Owner,
    /// It is a permitted address.
    PermittedAddress,
    /// It is a permitted Ethereum-wallet auth method with these scopes.
    AuthMethod {
        /// The scope bitmap.
        scopes: u64,
    },
}

/// What the chain says about one token and one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The token was never minted.
    Unminted,
    /// The address may use the key.
    Granted(Grant),
    /// The address may not; `burned` tells whether the token has no owner any more.
    Refused {
        /// The token was burned (no owner; only its permitted actions can use it).
        burned: bool,
    },
}

/// Entries of each permission cache unless [`Registry::with_cache_capacity`] says otherwise.
pub const DEFAULT_CACHE_CAPACITY: usize = 65_536;

struct Cache {
    /// Entries each of `standing` and `actions` may hold.
    capacity: usize,
    /// The head at the last sync: number and hash.
    block: Option<(u64, B256)>,
    /// Bumped by every invalidation: a read that started before one is not cached.
    generation: u64,
    standing: HashMap<(U256, Address), (Standing, Instant)>,
    actions: HashMap<(U256, Vec<u8>), (bool, Instant)>,
    blocks: HashMap<B256, (u64, u64)>,
    key_ids: HashMap<U256, [u8; 32]>,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CACHE_CAPACITY,
            block: None,
            generation: 0,
            standing: HashMap::new(),
            actions: HashMap::new(),
            blocks: HashMap::new(),
            key_ids: HashMap::new(),
        }
    }
}

/// Inserts into a cache of at most `capacity` entries stamped with the time they were read: when
/// full, expired entries go first, then arbitrary ones, down to seven eighths of `capacity`.
fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, (V, Instant)>, capacity: usize, key: K, value: V) {
    if map.len() >= capacity && !map.contains_key(&key) {
        map.retain(|_, (_, at)| at.elapsed() < MAX_AGE);
        let keep = capacity.saturating_sub(capacity / 8 + 1);
        let excess = map.len().saturating_sub(keep);
        if excess > 0 {
            let mut seen = 0;
            map.retain(|_, _| {
                seen += 1;
                seen > excess
            });
        }
    }
    map.insert(key, (value, Instant::now()));
}

impl Cache {
    fn forget(&mut self, token: U256) {
        self.generation += 1;
        self.standing.retain(|(t, _), _| *t != token);
        self.actions.retain(|(t, _), _| *t != token);
    }

    fn clear(&mut self) {
        self.generation += 1;
        self.blocks.clear();
        self.key_ids.clear();
        self.standing.clear();
        self.actions.clear();
    }
}

/// A node's read-only view of the contracts.
pub struct Registry {
    url: String,
    provider: DynProvider,
    chain_id: u64,
    contracts: Contracts,
    cache: Mutex<Cache>,
}

fn rpc(url: &str) -> impl Fn(alloy::transports::TransportError) -> ChainError + '_ {
    move |e| ChainError::Rpc {
        url: url.to_string(),
        reason: e.to_string(),
    }
}

fn call_error(contract: &'static str, call: &'static str) -> impl Fn(alloy::contract::Error) -> ChainError {
    move |e| ChainError::Contract {
        contract,
        call,
        reason: e.to_string(),
    }
}

/// A read-only provider for `url`.
pub fn read_provider(url: &str) -> Result<DynProvider, ChainError> {
    let parsed = url.parse().map_err(|e| ChainError::Rpc {
        url: url.to_string(),
        reason: format!("not a URL: {e}"),
    })?;
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_http(parsed)
        .erased())
}

impl Registry {
    /// Connects to `rpc_url` and finds the PKP contracts through the NodeSet at `node_set`.
    pub async fn connect(rpc_url: &str, node_set: Address) -> Result<Self, ChainError> {
        let provider = read_provider(rpc_url)?;
        let chain_id = provider.get_chain_id().await.map_err(rpc(rpc_url))?;
        let set = NodeSet::new(node_set, &provider);
        let pkp_nft = set.pkpNft().call().await.map_err(call_error("NodeSet", "pkpNft"))?;
        let pkp_permissions = set
            .pkpPermissions()
            .call()
            .await
            .map_err(call_error("NodeSet", "pkpPermissions"))?;
        let pkp_helper = set
            .pkpHelper()
            .call()
            .await
            .map_err(call_error("NodeSet", "pkpHelper"))?;
        if pkp_nft.is_zero() || pkp_permissions.is_zero() {
            return Err(ChainError::Contract {
                contract: "NodeSet",
                call: "pkpNft",
                reason: format!("NodeSet {node_set} names no PKP contracts yet (setContracts was not called)"),
            });
        }
        Ok(Self {
            url: rpc_url.to_string(),
            provider,
            chain_id,
            contracts: Contracts {
                node_set,
                pkp_nft,
                pkp_permissions,
                pkp_helper,
            },
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The same registry with each permission cache (owners and permitted addresses; permitted
    /// actions) bounded to `capacity` entries (at least 8).
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache.get_mut().capacity = capacity.max(8);
        self
    }

    /// Entries in the permission caches now (owners and permitted addresses, permitted actions).
    pub async fn cached(&self) -> (usize, usize) {
        let cache = self.cache.lock().await;
        (cache.standing.len(), cache.actions.len())
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The contracts.
    pub fn contracts(&self) -> &Contracts {
        &self.contracts
    }

    /// The provider (read-only).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Reads the node set.
    pub async fn node_set(&self) -> Result<NodeSetView, ChainError> {
        read_node_set(&self.provider, self.contracts.node_set).await
    }

    /// The head block.
    pub async fn head(&self) -> Result<Head, ChainError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(rpc(&self.url))?
            .ok_or_else(|| ChainError::Rpc {
                url: self.url.clone(),
                reason: "no latest block".into(),
            })?;
        Ok(Head {
            number: block.header.number,
            hash: block.header.hash,
            timestamp: block.header.timestamp,
        })
    }

    /// Brings the cache up to the head: drops entries for every token named by an event since
    /// the last look. Returns the head.
    pub async fn sync(&self) -> Result<Head, ChainError> {
        let head = self.head().await?;
        let mut cache = self.cache.lock().await;
        match cache.block {
            // The same head: nothing new. A different block at the same or a lower height is a
            // reorganisation: forget everything.
            Some((seen, hash)) if head.number == seen && head.hash == hash => {}
            Some((seen, _)) if head.number < seen => cache.clear(),
            Some((seen, _)) if head.number == seen => cache.clear(),
            Some((seen, _)) if head.number - seen <= MAX_LOG_RANGE => {
                let filter = Filter::new()
                    .address(vec![self.contracts.pkp_nft, self.contracts.pkp_permissions])
                    .from_block(seen + 1)
                    .to_block(head.number);
                match self.provider.get_logs(&filter).await {
                    Ok(logs) => {
                        for log in logs {
                            if let Some(token) = event_token(log.topics()) {
                                cache.forget(token);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading contract events failed; clearing the permission cache");
                        cache.clear();
                    }
                }
            }
            _ => cache.clear(),
        }
        cache.block = Some((head.number, head.hash));
        Ok(head)
    }

    /// How `address` stands with PKP `token`, as of the last [`Registry::sync`]: call it first
    /// (the node does so once per request).
    pub async fn standing(&self, token: U256, address: Address) -> Result<Standing, ChainError> {
        let generation = {
            let cache = self.cache.lock().await;
            if let Some((standing, at)) = cache.standing.get(&(token, address)) {
                if at.elapsed() < MAX_AGE {
                    return Ok(*standing);
                }
            }
            cache.generation
        };
        let standing = self.read_standing(token, address).await?;
        let mut cache = self.cache.lock().await;
        // An invalidation while we read may have been about this token: answer, but do not keep.
        if cache.generation == generation {
            let capacity = cache.capacity;
            insert_bounded(&mut cache.standing, capacity, (token, address), standing);
        }
        Ok(standing)
    }

    /// The token's owner (`None` when it has none) and whether it was burned; `isBurned` is
    /// asked only when there is no owner.
    async fn ownership(&self, token: U256) -> Result<(Option<Address>, bool), ChainError> {
        let nft = PKPNFT::new(self.contracts.pkp_nft, &self.provider);
        let owner = nft
            .ownerOrZero(token)
            .call()
            .await
            .map_err(call_error("PKPNFT", "ownerOrZero"))?;
        if !owner.is_zero() {
            return Ok((Some(owner), false));
        }
        let burned = nft
            .isBurned(token)
            .call()
            .await
            .map_err(call_error("PKPNFT", "isBurned"))?;
        Ok((None, burned))
    }

    async fn read_standing(&self, token: U256, address: Address) -> Result<Standing, ChainError> {
        let burned = match self.ownership(token).await? {
            (Some(owner), _) if owner == address => return Ok(Standing::Granted(Grant::Owner)),
            (Some(_), _) => false,
            (None, false) => return Ok(Standing::Unminted),
            (None, true) => true,
        };
        let permissions = PKPPermissions::new(self.contracts.pkp_permissions, &self.provider);
        let permitted = permissions
            .isPermittedAddress(token, address)
            .call()
            .await
            .map_err(call_error("PKPPermissions", "isPermittedAddress"))?;
        if permitted {
            return Ok(Standing::Granted(Grant::PermittedAddress));
        }
        let scopes = permissions
            .getAuthMethodScopes(
                token,
                U256::from(AUTH_METHOD_ETH_WALLET),
                Bytes::copy_from_slice(address.as_slice()),
            )
            .call()
            .await
            .map_err(call_error("PKPPermissions", "getAuthMethodScopes"))?;
        let scopes = u64::try_from(scopes).unwrap_or(0);
        if scopes != 0 {
            return Ok(Standing::Granted(Grant::AuthMethod { scopes }));
        }
        Ok(Standing::Refused { burned })
    }

    /// Whether the mint of `key_id` was requested (and paid for) on chain: `PKPNFT.mintRequester`.
    /// Read from the chain, uncached.
    pub async fn mint_requested(&self, key_id: [u8; 32]) -> Result<bool, ChainError> {
        let requester = PKPNFT::new(self.contracts.pkp_nft, &self.provider)
            .mintRequester(key_id.into())
            .call()
            .await
            .map_err(call_error("PKPNFT", "mintRequester"))?;
        Ok(!requester.is_zero())
    }

    /// Whether PKP `token` was minted and burned since. Read from the chain, uncached.
    pub async fn burned(&self, token: U256) -> Result<bool, ChainError> {
        Ok(self.ownership(token).await?.1)
    }

    /// Whether PKP `token` was ever minted (owned now, or burned). Read from the chain, uncached.
    pub async fn minted(&self, token: U256) -> Result<bool, ChainError> {
        let (owner, burned) = self.ownership(token).await?;
        Ok(owner.is_some() || burned)
    }

    /// Whether the action with IPFS CID `cid` (its bytes) may use PKP `token`, as of the last
    /// [`Registry::sync`].
    pub async fn is_permitted_action(&self, token: U256, cid: &[u8]) -> Result<bool, ChainError> {
        let key = (token, cid.to_vec());
        let generation = {
            let cache = self.cache.lock().await;
            if let Some((permitted, at)) = cache.actions.get(&key) {
                if at.elapsed() < MAX_AGE {
                    return Ok(*permitted);
                }
            }
            cache.generation
        };
        let permitted = PKPPermissions::new(self.contracts.pkp_permissions, &self.provider)
            .isPermittedAction(token, Bytes::copy_from_slice(cid))
            .call()
            .await
            .map_err(call_error("PKPPermissions", "isPermittedAction"))?;
        let mut cache = self.cache.lock().await;
        if cache.generation == generation {
            let capacity = cache.capacity;
            insert_bounded(&mut cache.actions, capacity, key, permitted);
        }
        Ok(permitted)
    }

    /// The key id PKP `token` was minted under, `None` if it was never minted. A key id never
    /// changes, so answers are kept.
    pub async fn key_id(&self, token: U256) -> Result<Option<[u8; 32]>, ChainError> {
        if let Some(id) = self.cache.lock().await.key_ids.get(&token) {
            return Ok(Some(*id));
        }
        let id = PKPNFT::new(self.contracts.pkp_nft, &self.provider)
            .getKeyId(token)
            .call()
            .await
            .map_err(call_error("PKPNFT", "getKeyId"))?;
        if id.is_zero() {
            return Ok(None);
        }
        let mut cache = self.cache.lock().await;
        if cache.key_ids.len() >= MAX_BLOCKS {
            cache.key_ids.clear();
        }
        cache.key_ids.insert(token, id.0);
        Ok(Some(id.0))
    }

    /// The CIDs (multihash bytes) of the actions permitted for PKP `token`, read from the chain.
    pub async fn permitted_actions(&self, token: U256) -> Result<Vec<Vec<u8>>, ChainError> {
        let list = PKPPermissions::new(self.contracts.pkp_permissions, &self.provider)
            .getPermittedActions(token)
            .call()
            .await
            .map_err(call_error("PKPPermissions", "getPermittedActions"))?;
        Ok(list.into_iter().map(|b| b.to_vec()).collect())
    }

    /// The addresses permitted for PKP `token`, read from the chain.
    pub async fn permitted_addresses(&self, token: U256) -> Result<Vec<Address>, ChainError> {
        PKPPermissions::new(self.contracts.pkp_permissions, &self.provider)
            .getPermittedAddresses(token)
            .call()
            .await
            .map_err(call_error("PKPPermissions", "getPermittedAddresses"))
    }

    /// The auth methods permitted for PKP `token` as (type, id, scopes), read from the chain.
    pub async fn permitted_auth_methods(&self, token: U256) -> Result<Vec<(U256, Vec<u8>, U256)>, ChainError> {
        let list = PKPPermissions::new(self.contracts.pkp_permissions, &self.provider)
            .getPermittedAuthMethods(token)
            .call()
            .await
            .map_err(call_error("PKPPermissions", "getPermittedAuthMethods"))?;
        Ok(list
            .into_iter()
            .map(|m| (m.authMethodType, m.id.to_vec(), m.scopes))
            .collect())
    }

    /// Whether `address` is a permitted address of PKP `token`, read from the chain.
    pub async fn is_permitted_address(&self, token: U256, address: Address) -> Result<bool, ChainError> {
        PKPPermissions::new(self.contracts.pkp_permissions, &self.provider)
            .isPermittedAddress(token, address)
            .call()
            .await
            .map_err(call_error("PKPPermissions", "isPermittedAddress"))
    }

    /// Whether the auth method (`kind`, `id`) is permitted for PKP `token`, read from the chain.
    pub async fn is_permitted_auth_method(&self, token: U256, kind: U256, id: &[u8]) -> Result<bool, ChainError> {
        PKPPermissions::new(self.contracts.pkp_permissions, &self.provider)
            .isPermittedAuthMethod(token, kind, Bytes::copy_from_slice(id))
            .call()
            .await
            .map_err(call_error("PKPPermissions", "isPermittedAuthMethod"))
    }

    /// Scopes of the auth method (`kind`, `id`) on PKP `token` (0: not permitted), read from the
    /// chain, uncached: the check a session for that auth method repeats on every request.
    pub async fn auth_method_scopes(&self, token: U256, kind: u64, id: &[u8]) -> Result<u64, ChainError> {
        let scopes = PKPPermissions::new(self.contracts.pkp_permissions, &self.provider)
            .getAuthMethodScopes(token, U256::from(kind), Bytes::copy_from_slice(id))
            .call()
            .await
            .map_err(call_error("PKPPermissions", "getAuthMethodScopes"))?;
        Ok(u64::try_from(scopes).unwrap_or(0))
    }

    /// The public key registered with auth method (`kind`, `id`) of PKP `token` (a WebAuthn
    /// credential's COSE key; empty when none was registered), read from the chain.
    pub async fn auth_method_pubkey(&self, token: U256, kind: u64, id: &[u8]) -> Result<Vec<u8>, ChainError> {
        let key = PKPPermissions::new(self.contracts.pkp_permissions, &self.provider)
            .getUserPubkey(token, U256::from(kind), Bytes::copy_from_slice(id))
            .call()
            .await
            .map_err(call_error("PKPPermissions", "getUserPubkey"))?;
        Ok(key.to_vec())
    }

    /// The RPC URL this registry reads.
    pub fn rpc_url(&self) -> &str {
        &self.url
    }

    /// Number and timestamp of the block with this hash, `None` if the chain has no such block.
    pub async fn block(&self, hash: B256) -> Result<Option<(u64, u64)>, ChainError> {
        if let Some(found) = self.cache.lock().await.blocks.get(&hash) {
            return Ok(Some(*found));
        }
        let block = self.provider.get_block_by_hash(hash).await.map_err(rpc(&self.url))?;
        let Some(block) = block else {
            return Ok(None);
        };
        let found = (block.header.number, block.header.timestamp);
        let mut cache = self.cache.lock().await;
        if cache.blocks.len() >= MAX_BLOCKS {
            cache.blocks.clear();
        }
        cache.blocks.insert(hash, found);
        Ok(Some(found))
    }
}

/// The token an event of PKPNFT or PKPPermissions is about: the first indexed topic for
/// Sigil's own events, the third for ERC-721 `Transfer`.
fn event_token(topics: &[B256]) -> Option<U256> {
    let first = topics.first()?;
    let index = if *first == PKPNFT::Transfer::SIGNATURE_HASH {
        3
    } else {
        1
    };
    topics.get(index).map(|t| U256::from_be_bytes(t.0))
}

/// The epoch NodeSet's admin proposed and the nodes are to reshare into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Its number: the current epoch's plus one.
    pub epoch: u64,
    /// Its threshold.
    pub threshold: u32,
    /// Its nodes, in the order proposed.
    pub nodes: Vec<ListedNode>,
    /// The proposal's id, which its confirmations sign (never the same for two proposals).
    pub id: u64,
}

/// The proposed next epoch at `node_set`, if any.
pub async fn read_proposal(provider: &DynProvider, node_set: Address) -> Result<Option<Proposal>, ChainError> {
    read_proposal_at(provider, node_set, BlockId::latest()).await
}

async fn read_proposal_at(
    provider: &DynProvider,
    node_set: Address,
    at: BlockId,
) -> Result<Option<Proposal>, ChainError> {
    let answer = NodeSet::new(node_set, provider)
        .proposal()
        .block(at)
        .call()
        .await
        .map_err(|e| crate::deploy::refused("proposal", &e))?;
    if answer.threshold_ == 0 {
        return Ok(None);
    }
    Ok(Some(Proposal {
        epoch: answer.epoch_,
        threshold: answer.threshold_,
        nodes: answer.nodes_.into_iter().map(ListedNode::from).collect(),
        id: answer.proposalId,
    }))
}

/// NodeSet's current epoch number at `node_set`.
pub async fn read_epoch(provider: &DynProvider, node_set: Address) -> Result<u64, ChainError> {
    read_epoch_at(provider, node_set, BlockId::latest()).await
}

async fn read_epoch_at(provider: &DynProvider, node_set: Address, at: BlockId) -> Result<u64, ChainError> {
    NodeSet::new(node_set, provider)
        .epoch()
        .block(at)
        .call()
        .await
        .map_err(call_error("NodeSet", "epoch"))
}

/// NodeSet's current node list at `node_set`.
pub async fn read_nodes(provider: &DynProvider, node_set: Address) -> Result<Vec<ListedNode>, ChainError> {
    read_nodes_at(provider, node_set, BlockId::latest()).await
}

async fn read_nodes_at(provider: &DynProvider, node_set: Address, at: BlockId) -> Result<Vec<ListedNode>, ChainError> {
    let nodes = NodeSet::new(node_set, provider)
        .getNodes()
        .block(at)
        .call()
        .await
        .map_err(call_error("NodeSet", "getNodes"))?;
    Ok(nodes.into_iter().map(ListedNode::from).collect())
}

/// The latest block: reads pinned to it see one state of NodeSet, never half of one
/// transaction's effects (a torn read of the epoch before and the key record after).
async fn pin(provider: &DynProvider) -> Result<BlockId, ChainError> {
    let number = provider.get_block_number().await.map_err(|e| ChainError::Rpc {
        url: "eth_blockNumber".into(),
        reason: e.to_string(),
    })?;
    Ok(BlockId::number(number))
}

/// NodeSet's epoch, node list and proposal, read at one block. The proposal is an error of its
/// own (a NodeSet without proposals still answers the rest).
pub async fn read_view(
    provider: &DynProvider,
    node_set: Address,
) -> Result<(u64, Vec<ListedNode>, Result<Option<Proposal>, ChainError>), ChainError> {
    let at = pin(provider).await?;
    let epoch = read_epoch_at(provider, node_set, at).await?;
    let nodes = read_nodes_at(provider, node_set, at).await?;
    Ok((epoch, nodes, read_proposal_at(provider, node_set, at).await))
}

/// Reads the node set at `node_set`, every field at one block.
pub async fn read_node_set(provider: &DynProvider, node_set: Address) -> Result<NodeSetView, ChainError> {
    let at = pin(provider).await?;
    let set = NodeSet::new(node_set, provider);
    let epoch = read_epoch_at(provider, node_set, at).await?;
    let threshold = set
        .threshold()
        .block(at)
        .call()
        .await
        .map_err(call_error("NodeSet", "threshold"))?;
    let attester = set
        .attester()
        .block(at)
        .call()
        .await
        .map_err(call_error("NodeSet", "attester"))?;
    let nodes = read_nodes_at(provider, node_set, at).await?;
    let keys_epoch = set
        .keysEpoch()
        .block(at)
        .call()
        .await
        .map_err(call_error("NodeSet", "keysEpoch"))?;
    let keys = set
        .rootKeys()
        .block(at)
        .call()
        .await
        .map_err(call_error("NodeSet", "rootKeys"))?;
    Ok(NodeSetView {
        epoch,
        threshold,
        attester,
        nodes,
        keys_epoch,
        keys: RootKeys {
            ecdsa: keys.ecdsaKey.to_vec(),
            bls: keys.blsKey.to_vec(),
            bls_shares: keys.blsShares.0,
            attester: keys.attester,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_filled_by_many_distinct_keys_stays_within_its_capacity() {
        let mut map: HashMap<u64, (bool, Instant)> = HashMap::new();
        for key in 0..10_000u64 {
            insert_bounded(&mut map, 64, key, true);
            assert!(map.len() <= 64, "{} entries after key {key}", map.len());
        }
        // The newest entry is always kept; an entry already present is updated in place.
        assert!(map.contains_key(&9_999));
        let before = map.len();
        insert_bounded(&mut map, 64, 9_999, false);
        assert_eq!(map.len(), before);
        assert_eq!(map.get(&9_999).map(|(v, _)| *v), Some(false));
    }
}
