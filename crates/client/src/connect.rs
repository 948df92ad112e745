//! Connecting to a network the chain vouches for.
//!
//! A network is named by its chain and its NodeSet contract ([`Network`]). The client reads from
//! NodeSet the nodes (id, mesh key, signing address, URL), the threshold and the root-key record
//! that `threshold` nodes signed, then handshakes with every node under a fresh challenge. A node
//! is used only if its handshake is signed by the key NodeSet lists for it, answers this
//! challenge, and reports exactly the recorded keys; any other node is named in
//! [`Client::unreachable`] and left out, and the client connects when `threshold` nodes pass.
//! So a man in the middle cannot substitute a key or replay an old answer, and one disagreeing
//! node cannot block anyone.
//!
//! [`key_confirmations`] collects the nodes' signatures over their root keys, for
//! `NodeSet.recordKeys` (`sigil admin record-keys`).

use std::collections::BTreeMap;

use rand_core::{OsRng, RngCore};
use sigil_chain::alloy::primitives::Address;
use sigil_chain::alloy::providers::Provider;
use sigil_chain::registry::{read_node_set, read_proposal, read_provider, ListedNode, NodeSetView, Proposal};
use sigil_chain::vouch::{
    bls_shares_digest, confirmation_digest, handshake_digest, root_keys_digest, signer_of, HandshakeClaim, RootKeys,
};
use sigil_primitives::{EpochConfirmation, Handshake, HandshakeRequest};

use crate::{bls_package, decode_point, post, Client, ClientError, NodeFailure, NodeHandle};
use sigil_tss::k256::ProjectivePoint;
use sigil_tss::{PartyId, PublicKeyPackage, Secp256k1};

/// Where a network is: the chain holding its NodeSet, and NodeSet's address (`network.json`'s
/// `rpcUrl` and `contracts.NodeSet`). Everything else is read from NodeSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// JSON-RPC URL of the chain.
    pub rpc_url: String,
    /// The NodeSet contract.
    pub node_set: Address,
}

/// What the chain says about the network, read once per connect.
struct OnChain {
    chain_id: u64,
    view: NodeSetView,
    pkp_nft: Address,
}

async fn read_chain(network: &Network) -> Result<OnChain, ClientError> {
    let chain = |e: String| ClientError::Chain(format!("{}: {e}", network.rpc_url));
    let provider = read_provider(&network.rpc_url).map_err(|e| chain(e.to_string()))?;
    let chain_id = provider.get_chain_id().await.map_err(|e| chain(e.to_string()))?;
    let view = read_node_set(&provider, network.node_set)
        .await
        .map_err(|e| chain(e.to_string()))?;
    let pkp_nft = sigil_chain::bindings::NodeSet::new(network.node_set, &provider)
        .pkpNft()
        .call()
        .await
        .map_err(|e| chain(format!("NodeSet.pkpNft: {e}")))?;
    Ok(OnChain {
        chain_id,
        view,
        pkp_nft,
    })
}

/// The claim a handshake makes, rebuilt from its fields (None if a field does not decode).
fn claim_of(h: &Handshake, chain_id: u64, node_set: Address) -> Result<HandshakeClaim, String> {
    let hex_field = |name: &str, text: &Option<String>| -> Result<Vec<u8>, String> {
        match text {
            None => Ok(Vec::new()),
            Some(text) => hex::decode(text).map_err(|_| format!("{name} is not hex")),
        }
    };
    let mut shares = Vec::with_capacity(h.bls_public_shares.len());
    for (id, share) in &h.bls_public_shares {
        let bytes = hex::decode(share)
            .ok()
            .and_then(|b| <[u8; 48]>::try_from(b).ok())
            .ok_or_else(|| format!("BLS public share {id} is not 48 bytes of hex"))?;
        shares.push((*id, bytes));
    }
    let identity_key = hex::decode(&h.identity_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or("identity key is not 32 bytes of hex")?;
    let attester = match &h.attester {
        None => Address::ZERO,
        Some(text) => text.parse().map_err(|_| "attester is not an address".to_string())?,
    };
    let keys = if h.ready {
        RootKeys {
            ecdsa: hex_field("ECDSA key", &h.ecdsa_public_key)?,
            bls: hex_field("BLS key", &h.bls_public_key)?,
            bls_shares: bls_shares_digest(shares.iter().map(|(id, s)| (*id, s))),
            attester,
        }
    } else {
        RootKeys::default()
    };
    Ok(HandshakeClaim {
        chain_id,
        node_set,
        epoch: h.epoch,
        node_id: h.node_id,
        identity_key,
        threshold: u32::try_from(h.threshold).unwrap_or(u32::MAX),
        keys,
    })
}

/// Checks a handshake from `listed` answering `challenge`: signed by the listed signer, about the
/// listed node, in NodeSet's epoch and threshold. Returns the keys it reports.
fn check_signed(
    h: &Handshake,
    listed: &ListedNode,
    chain: &OnChain,
    node_set: Address,
    challenge: &[u8; 32],
) -> Result<HandshakeClaim, String> {
    let claim = claim_of(h, chain.chain_id, node_set)?;
    let signature = h
        .signature
        .as_deref()
        .and_then(|s| hex::decode(s).ok())
        .ok_or("the handshake is not signed (a node without a chain, or an old version)")?;
    match signer_of(&handshake_digest(&claim, challenge), &signature) {
        Some(signer) if signer == listed.signer => {}
        other => {
            return Err(format!(
                "the handshake is not signed by the key NodeSet lists for node {} ({}), but by {}: \
                 a man in the middle, a replayed answer, or a node with another key",
                listed.id,
                listed.signer,
                other.map_or("nobody".to_string(), |a| a.to_string())
            ))
        }
    }
    if h.node_id != listed.id || claim.identity_key != listed.identity_key {
        return Err(format!(
            "answers as node {} with identity {}; NodeSet lists node {} with {}",
            h.node_id,
            h.identity_key,
            listed.id,
            hex::encode(listed.identity_key)
        ));
    }
    if h.epoch != chain.view.epoch || claim.threshold != chain.view.threshold {
        return Err(format!(
            "serves epoch {} with threshold {}; NodeSet is at epoch {} with threshold {} (restart the node)",
            h.epoch, h.threshold, chain.view.epoch, chain.view.threshold
        ));
    }
    Ok(claim)
}

/// Handshakes with each `(listed node, url)` under `challenge`.
async fn handshakes(
    http: &reqwest::Client,
    targets: &[(ListedNode, String)],
    challenge: &[u8; 32],
) -> Vec<Result<Handshake, String>> {
    let body = HandshakeRequest {
        challenge: Some(hex::encode(challenge)),
    };
    let calls = targets.iter().map(|(_, url)| {
        let body = &body;
        async move { post::<Handshake>(http, &format!("{url}/web/handshake"), body).await }
    });
    futures::future::join_all(calls).await
}

fn fresh_challenge() -> [u8; 32] {
    let mut challenge = [0u8; 32];
    OsRng.fill_bytes(&mut challenge);
    challenge
}

/// The nodes to reach: every node NodeSet lists at its URL, or only those in `urls` at theirs.
fn targets(view: &NodeSetView, urls: Option<&BTreeMap<u32, String>>) -> Result<Vec<(ListedNode, String)>, ClientError> {
    let mut out = Vec::new();
    match urls {
        None => out.extend(view.nodes.iter().map(|n| (n.clone(), n.url.clone()))),
        Some(urls) => {
            for (id, url) in urls {
                let listed = view
                    .nodes
                    .iter()
                    .find(|n| n.id == *id)
                    .ok_or_else(|| ClientError::Invalid(format!("NodeSet lists no node {id}")))?;
                out.push((listed.clone(), url.clone()));
            }
        }
    }
    for (_, url) in &mut out {
        *url = url.trim_end_matches('/').to_string();
    }
    if out.is_empty() {
        return Err(ClientError::NoNodes);
    }
    Ok(out)
}

/// How a client connected: what it connects to again when the epoch changes.
#[derive(Debug)]
pub(crate) struct Origin {
    pub(crate) network: Network,
    pub(crate) urls: Option<BTreeMap<u32, String>>,
}

impl Client {
    /// Connects to the network NodeSet describes: reads the nodes, the threshold and the root-key
    /// record from the chain, then handshakes with every node and keeps those whose signed
    /// answers match the chain. Fails when the keys are not recorded yet
    /// ([`ClientError::KeysNotRecorded`]) or fewer than `threshold` nodes pass.
    pub async fn connect(network: &Network) -> Result<Self, ClientError> {
        Self::connect_inner(network, None).await
    }

    /// Like [`Client::connect`], but reaches only the nodes in `urls` (by node id), at those URLs
    /// (a tunnel, a proxy, a subset of the network). The chain still decides which answers are
    /// right.
    pub async fn connect_via(network: &Network, urls: &BTreeMap<u32, String>) -> Result<Self, ClientError> {
        Self::connect_inner(network, Some(urls)).await
    }

    pub(crate) async fn connect_inner(
        network: &Network,
        urls: Option<&BTreeMap<u32, String>>,
    ) -> Result<Self, ClientError> {
        let chain = read_chain(network).await?;
        // Every request names the epoch this client connected in: a node of a later epoch
        // answers `EPOCH_CHANGED` ([`ClientError::epoch_changed`]) rather than shares this
        // client would check against the old epoch's node set.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(EPOCH_HEADER, reqwest::header::HeaderValue::from(chain.view.epoch));
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            // Nodes close connections idle for a minute (`[limits] idle_timeout_secs`); let go first.
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        if chain.view.keys.is_empty() || chain.view.keys_epoch != chain.view.epoch {
            return Err(ClientError::KeysNotRecorded {
                node_set: network.node_set.to_string(),
                epoch: chain.view.epoch,
            });
        }
        let targets = targets(&chain.view, urls)?;
        let challenge = fresh_challenge();
        let answers = handshakes(&http, &targets, &challenge).await;
        let mut failures = Vec::new();
        let mut good = Vec::new();
        for ((listed, url), answer) in targets.iter().zip(answers) {
            let fail = |reason: String| NodeFailure {
                node: Some(listed.id),
                url: url.clone(),
                reason,
            };
            let h = match answer {
                Ok(h) => h,
                Err(reason) => {
                    failures.push(fail(reason));
                    continue;
                }
            };
            match check_signed(&h, listed, &chain, network.node_set, &challenge) {
                Err(reason) => failures.push(fail(reason)),
                Ok(_) if !h.ready => failures.push(fail("root keys not ready yet".into())),
                Ok(_) if !same_ids(&h, &chain.view) => failures.push(fail(format!(
                    "reports BLS public shares for nodes {:?}, not for NodeSet's",
                    h.bls_public_shares.keys().collect::<Vec<_>>()
                ))),
                Ok(claim) if claim.keys != chain.view.keys => failures.push(fail(format!(
                    "reports root keys other than NodeSet's record (ECDSA {:?}, attester {:?}; NodeSet has {} and {})",
                    h.ecdsa_public_key,
                    h.attester,
                    hex::encode(&chain.view.keys.ecdsa),
                    chain.view.keys.attester
                ))),
                Ok(_) => match bls_package(
                    h.bls_public_key.as_deref(),
                    &h.bls_public_shares,
                    chain.view.threshold as usize,
                ) {
                    Ok(package) => good.push((url.clone(), h, package)),
                    Err(e) => failures.push(fail(e.to_string())),
                },
            }
        }
        let threshold = chain.view.threshold as usize;
        if good.len() < threshold {
            return Err(ClientError::NotReady {
                ready: good.len(),
                total: targets.len(),
                need: threshold,
                failures,
            });
        }
        let record = &chain.view.keys;
        let ecdsa_root = decode_point(&hex::encode(&record.ecdsa))
            .ok_or_else(|| ClientError::Invalid("NodeSet records an undecodable ECDSA root key".into()))?;
        let bls_root = hex::encode(&record.bls);
        // Every node kept reported shares whose digest is the record's, and they decode: any one's
        // package is the network's.
        let bls_package = good.first().and_then(|(_, _, package)| package.clone());
        let ecdsa_package = ecdsa_package(good.iter().map(|(_, h, _)| h), &ecdsa_root, threshold);
        Ok(Self {
            origin: Some(std::sync::Arc::new(Origin {
                network: network.clone(),
                urls: urls.cloned(),
            })),
            successor: Default::default(),
            http,
            bls_package,
            ecdsa_package,
            nodes: good
                .into_iter()
                .map(|(url, h, _)| NodeHandle { id: h.node_id, url })
                .collect(),
            unreachable: failures,
            threshold,
            epoch: chain.view.epoch,
            ecdsa_root,
            derived: Default::default(),
            bls_root,
            chain_id: Some(chain.chain_id),
            pkp_nft: Some(chain.pkp_nft),
        })
    }
}

/// The ECDSA root's public shares that at least `threshold` of `handshakes` report identically
/// (so at least one honest node vouches for them) and that fit `root`; `None` if no map does.
fn ecdsa_package<'a>(
    handshakes: impl Iterator<Item = &'a Handshake>,
    root: &ProjectivePoint,
    threshold: usize,
) -> Option<PublicKeyPackage<Secp256k1>> {
    let mut counts: BTreeMap<&BTreeMap<u32, String>, usize> = BTreeMap::new();
    for h in handshakes.filter(|h| !h.ecdsa_public_shares.is_empty()) {
        *counts.entry(&h.ecdsa_public_shares).or_default() += 1;
    }
    let (shares, _) = counts.into_iter().find(|(_, count)| *count >= threshold)?;
    let mut points = BTreeMap::new();
    for (id, text) in shares {
        points.insert(PartyId(*id), decode_point(text)?);
    }
    PublicKeyPackage::new(threshold, *root, points).ok()
}

pub use sigil_primitives::EPOCH_HEADER;

/// Whether a handshake's BLS public shares are for exactly the nodes NodeSet lists.
fn same_ids(h: &Handshake, view: &NodeSetView) -> bool {
    h.bls_public_shares.len() == view.nodes.len() && view.nodes.iter().all(|n| h.bls_public_shares.contains_key(&n.id))
}

/// The root-key record most nodes sign, with their signatures, for `NodeSet.recordKeys`.
#[derive(Clone, Debug)]
pub struct KeyConfirmations {
    /// The record.
    pub keys: RootKeys,
    /// NodeSet's current epoch, which the signatures are for.
    pub epoch: u64,
    /// Signatures needed.
    pub threshold: usize,
    /// The nodes that signed it, and their signatures (each checked against NodeSet's signer).
    pub signatures: Vec<(u32, [u8; 65])>,
    /// Nodes that gave no usable signature, or signed another record, and why.
    pub failures: Vec<NodeFailure>,
    /// The record already in NodeSet for this epoch, if any.
    pub recorded: Option<RootKeys>,
}

/// Asks every node NodeSet lists for its signature over its root keys, checks each against the
/// signer NodeSet lists, and returns the record most nodes signed.
pub async fn key_confirmations(network: &Network) -> Result<KeyConfirmations, ClientError> {
    let http = reqwest::Client::new();
    let chain = read_chain(network).await?;
    let targets = targets(&chain.view, None)?;
    let challenge = fresh_challenge();
    let answers = handshakes(&http, &targets, &challenge).await;
    let mut failures = Vec::new();
    let mut signed: Vec<(NodeFailure, RootKeys, [u8; 65])> = Vec::new();
    for ((listed, url), answer) in targets.iter().zip(answers) {
        let fail = |reason: String| NodeFailure {
            node: Some(listed.id),
            url: url.clone(),
            reason,
        };
        let checked = answer.and_then(|h| {
            let claim = check_signed(&h, listed, &chain, network.node_set, &challenge)?;
            if !h.ready {
                return Err("root keys not ready yet".into());
            }
            let signature = h
                .keys_signature
                .as_deref()
                .and_then(|s| hex::decode(s).ok())
                .and_then(|b| <[u8; 65]>::try_from(b).ok())
                .ok_or("no signature over the root keys")?;
            let digest = root_keys_digest(chain.chain_id, network.node_set, chain.view.epoch, &claim.keys);
            if signer_of(&digest, &signature) != Some(listed.signer) {
                return Err("its root-key signature is not by its NodeSet signer".to_string());
            }
            Ok((claim.keys, signature))
        });
        match checked {
            Ok((keys, signature)) => signed.push((fail(String::new()), keys, signature)),
            Err(reason) => failures.push(fail(reason)),
        }
    }
    // The record most nodes signed; a node that signed another is named.
    let count = |keys: &RootKeys| signed.iter().filter(|(_, k, _)| k == keys).count();
    let Some(keys) = signed.iter().map(|(_, k, _)| k).max_by_key(|k| count(k)).cloned() else {
        return Err(ClientError::NotReady {
            ready: 0,
            total: targets.len(),
            need: chain.view.threshold as usize,
            failures,
        });
    };
    let mut signatures = Vec::new();
    for (mut node, theirs, signature) in signed {
        if theirs == keys {
            signatures.push((node.node.unwrap_or_default(), signature));
        } else {
            node.reason = format!(
                "signs other root keys (ECDSA {}) than most nodes ({})",
                hex::encode(&theirs.ecdsa),
                hex::encode(&keys.ecdsa)
            );
            failures.push(node);
        }
    }
    let recorded =
        (chain.view.keys_epoch == chain.view.epoch && !chain.view.keys.is_empty()).then(|| chain.view.keys.clone());
    Ok(KeyConfirmations {
        keys,
        epoch: chain.view.epoch,
        threshold: chain.view.threshold as usize,
        signatures,
        failures,
        recorded,
    })
}

/// The record of a proposed epoch most of its nodes sign, with their signatures, for
/// `NodeSet.confirmEpoch` (`sigil admin epoch confirm`).
#[derive(Clone, Debug)]
pub struct EpochConfirmations {
    /// The proposal.
    pub proposal: Proposal,
    /// The record: the same root public keys, the new epoch's BLS public shares.
    pub keys: RootKeys,
    /// The proposed nodes that signed it, and their signatures (each checked against the signer
    /// the proposal lists).
    pub signatures: Vec<(u32, [u8; 65])>,
    /// Proposed nodes that gave no usable confirmation, or confirmed another record, and why.
    pub failures: Vec<NodeFailure>,
}

/// Asks every node of the proposed epoch for its confirmation that it holds the reshared root
/// keys (`GET /web/epoch/confirmation`), checks each signature against the signer the proposal
/// lists, and returns the record most nodes signed. `None` when no epoch is proposed.
pub async fn epoch_confirmations(network: &Network) -> Result<Option<EpochConfirmations>, ClientError> {
    let chain = |e: String| ClientError::Chain(format!("{}: {e}", network.rpc_url));
    let provider = read_provider(&network.rpc_url).map_err(|e| chain(e.to_string()))?;
    let chain_id = provider.get_chain_id().await.map_err(|e| chain(e.to_string()))?;
    let Some(proposal) = read_proposal(&provider, network.node_set)
        .await
        .map_err(|e| chain(e.to_string()))?
    else {
        return Ok(None);
    };
    let http = reqwest::Client::new();
    let asks = proposal.nodes.iter().map(|listed| {
        let http = &http;
        async move {
            let url = format!("{}/web/epoch/confirmation", listed.url);
            let answer = async {
                let response = http
                    .get(&url)
                    .timeout(crate::REQUEST_TIMEOUT)
                    .send()
                    .await
                    .map_err(|e| format!("unreachable: {e}"))?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| format!("reading the answer: {e}"))?;
                if !status.is_success() {
                    return Err(format!("{}: {}", status.as_u16(), String::from_utf8_lossy(&bytes)));
                }
                serde_json::from_slice::<Vec<EpochConfirmation>>(&bytes).map_err(|e| format!("unexpected answer: {e}"))
            };
            answer.await
        }
    });
    let answers = futures::future::join_all(asks).await;
    let mut failures = Vec::new();
    let mut signed: Vec<(u32, RootKeys, [u8; 65])> = Vec::new();
    for (listed, answer) in proposal.nodes.iter().zip(answers) {
        // A node may hold several records (runs that finished at some nodes only); each valid one
        // counts for its record.
        let checked: Result<Vec<_>, String> = answer.and_then(|all| {
            let mut good = Vec::new();
            let mut last = "no confirmation".to_string();
            for c in all.iter().take(8) {
                match check_confirmation(c, listed, &proposal, chain_id, network.node_set) {
                    Ok(confirmed) => good.push(confirmed),
                    Err(reason) => last = reason,
                }
            }
            if good.is_empty() {
                Err(last)
            } else {
                Ok(good)
            }
        });
        match checked {
            Ok(good) => signed.extend(good.into_iter().map(|(keys, signature)| (listed.id, keys, signature))),
            Err(reason) => failures.push(NodeFailure {
                node: Some(listed.id),
                url: listed.url.clone(),
                reason,
            }),
        }
    }
    let count = |keys: &RootKeys| signed.iter().filter(|(_, k, _)| k == keys).count();
    let Some(keys) = signed.iter().map(|(_, k, _)| k).max_by_key(|k| count(k)).cloned() else {
        return Ok(Some(EpochConfirmations {
            keys: RootKeys::default(),
            proposal,
            signatures: Vec::new(),
            failures,
        }));
    };
    let mut signatures: Vec<(u32, [u8; 65])> = Vec::new();
    for (id, theirs, signature) in &signed {
        if *theirs == keys {
            signatures.push((*id, *signature));
        }
    }
    for listed in &proposal.nodes {
        let confirmed_any = signed.iter().any(|(id, _, _)| *id == listed.id);
        if confirmed_any && !signatures.iter().any(|(id, _)| *id == listed.id) {
            failures.push(NodeFailure {
                node: Some(listed.id),
                url: listed.url.clone(),
                reason: "confirms other new shares than most proposed nodes".into(),
            });
        }
    }
    Ok(Some(EpochConfirmations {
        proposal,
        keys,
        signatures,
        failures,
    }))
}

/// Checks one node's confirmation: for this proposal, naming exactly the proposed nodes' shares,
/// signed by the signer the proposal lists for it.
fn check_confirmation(
    c: &EpochConfirmation,
    listed: &ListedNode,
    proposal: &Proposal,
    chain_id: u64,
    node_set: Address,
) -> Result<(RootKeys, [u8; 65]), String> {
    if c.node_id != listed.id {
        return Err(format!("answers as node {}", c.node_id));
    }
    if c.epoch != proposal.epoch || c.proposal_id != proposal.id {
        return Err(format!(
            "confirms proposal {} of epoch {}, not proposal {} of epoch {}",
            c.proposal_id, c.epoch, proposal.id, proposal.epoch
        ));
    }
    if c.bls_public_shares.len() != proposal.nodes.len()
        || !proposal.nodes.iter().all(|n| c.bls_public_shares.contains_key(&n.id))
    {
        return Err("its BLS public shares are not those of the proposed nodes".into());
    }
    let mut shares = Vec::with_capacity(c.bls_public_shares.len());
    for (id, share) in &c.bls_public_shares {
        let bytes = hex::decode(share)
            .ok()
            .and_then(|b| <[u8; 48]>::try_from(b).ok())
            .ok_or_else(|| format!("BLS public share {id} is not 48 bytes of hex"))?;
        shares.push((*id, bytes));
    }
    let keys = RootKeys {
        ecdsa: hex::decode(&c.ecdsa_public_key).map_err(|_| "ECDSA key is not hex")?,
        bls: hex::decode(&c.bls_public_key).map_err(|_| "BLS key is not hex")?,
        bls_shares: bls_shares_digest(shares.iter().map(|(id, s)| (*id, s))),
        attester: c.attester.parse().map_err(|_| "attester is not an address")?,
    };
    let signature = c
        .signature
        .as_deref()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 65]>::try_from(b).ok())
        .ok_or("no signature")?;
    let digest = confirmation_digest(chain_id, node_set, proposal.epoch, proposal.id, &keys);
    if signer_of(&digest, &signature) != Some(listed.signer) {
        return Err("its confirmation is not signed by the signer the proposal lists".into());
    }
    Ok((keys, signature))
}

impl Network {
    /// The seeds' chain of trust for one signature, read from this network's chain: the PKP is
    /// this network's, was minted, granted and burned in one transaction, permits only the
    /// claim's action, and the code (if given) is that action. See [`sigil_chain::verify`].
    pub async fn verify_signature(
        &self,
        claim: &sigil_chain::verify::Claim<'_>,
    ) -> Result<sigil_chain::verify::Report, crate::ClientError> {
        let registry = sigil_chain::registry::Registry::connect(&self.rpc_url, self.node_set)
            .await
            .map_err(|e| crate::ClientError::Chain(e.to_string()))?;
        Ok(sigil_chain::verify::verify(&registry, claim).await)
    }
}
