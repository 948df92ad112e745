//! Running actions: [`Client::execute`] sends one request to every node, takes the answer that
//! `t` nodes gave identically, and combines the signature shares of each `sigName` into a
//! signature verified against its PKP key. [`Client::store_action`] stores code on every node.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::StreamExt;
use sigil_primitives::{Cid, ExecuteRequest, ExecuteResponse, StoreRequest, StoredAction};
use sigil_tss::derive::{checksum_address, eth_address};
use sigil_tss::ecdsa::{combine, SignatureShare};
use sigil_tss::PartyId;

use crate::{decode_point, request_id, Client, ClientError, Combiner, Made, NodeFailure, SchnorrOutcome, SignOutcome};

/// The action to run.
#[derive(Clone, Debug)]
pub enum ActionCode {
    /// Code sent inline.
    Code(String),
    /// Code the nodes already hold (or fetch from their IPFS gateway), by IPFS CIDv0.
    Cid(String),
}

/// What an action run gave.
#[derive(Clone, Debug)]
pub struct ExecuteOutcome {
    /// The response the agreeing nodes returned (`Lit.Actions.setResponse`).
    pub response: Option<String>,
    /// The console lines of the first agreeing node.
    pub logs: Vec<String>,
    /// The combined ECDSA signatures by `sigName`, each verified against its PKP key.
    pub signatures: BTreeMap<String, SignOutcome>,
    /// The combined BIP-340 Schnorr signatures (`Lit.Actions.sign` with `SchnorrK256Taproot`)
    /// by `sigName`, each verified against its PKP's taproot output key.
    pub schnorr_signatures: BTreeMap<String, SchnorrOutcome>,
    /// The keys the action claimed (`Lit.Actions.claimKey`) by `keyId`, each with the network's
    /// attestation checked against the attester key: mint one with [`Client::claim_action_key`].
    pub claims: BTreeMap<String, ActionKeyClaim>,
    /// The nodes whose answers were taken.
    pub agreeing: Vec<u32>,
    /// Nodes that failed, answered differently or sent bad shares.
    pub failures: Vec<NodeFailure>,
}

/// A key an action claimed: the PKP derived from the claiming action's CID and its `keyId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionKeyClaim {
    /// The claiming action's CID.
    pub cid: String,
    /// Lit's `derivedKeyId`: `keccak256(utf8(cid ‖ "_" ‖ keyId))`.
    pub derived_key_id: [u8; 32],
    /// The PKP's key id (`PKPHelper.actionClaimKeyIdFor(cid, derivedKeyId)`).
    pub key_id: [u8; 32],
    /// The PKP's public key, derived here from the root key and `key_id`.
    pub public_key: [u8; 65],
    /// Its Ethereum address.
    pub eth_address: String,
    /// The network's attestation (r ‖ s ‖ v) that PKPNFT checks; `None` when the nodes made
    /// none (the claim's mint was not requested on chain, or this attempt's presignature was used
    /// by an earlier run: `claimKey({ keyId, attempt })` takes attempts 0 to 2).
    pub attestation: Option<[u8; 65]>,
}

/// The part of an answer that must be identical at `t` nodes. After `decryptToSingleNode` only
/// one node holds the response, so the others agree on which node that is instead.
fn agreement_key(answer: &ExecuteResponse) -> String {
    // Everything an entry says about what was signed, and how, must agree: a node reporting
    // another scheme or key id for a signature answers something else.
    type Signed<'a> = (&'a String, &'a String, &'a str, &'a Option<String>);
    let signatures: BTreeMap<&String, Signed<'_>> = answer
        .signatures
        .iter()
        .map(|(name, s)| (name, (&s.to_sign, &s.public_key, s.signing_scheme.name(), &s.key_id)))
        .collect();
    match answer.single_node {
        Some(node) => serde_json::json!([{ "singleNode": node }, signatures, answer.claims]).to_string(),
        None => serde_json::json!([answer.response, signatures, answer.claims]).to_string(),
    }
}

impl Client {
    /// Stores action code on every node; returns its CID. Fails if fewer than `t` nodes stored it.
    pub async fn store_action(&self, code: &str) -> Result<(String, Vec<NodeFailure>), ClientError> {
        let cid = Cid::of_file(code.as_bytes())
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .to_string();
        let body = StoreRequest { code: code.to_string() };
        let mut pending = self.to_every_node("/web/actions", &body, |http, url, body| async move {
            crate::post::<StoredAction>(&http, &url, &body).await
        });
        let mut stored = 0;
        let mut failures = self.unreachable.clone();
        while let Some((node, answer)) = pending.next().await {
            match answer {
                Ok(a) if a.cid == cid => stored += 1,
                Ok(a) => failures.push(NodeFailure {
                    node: Some(node.id),
                    url: node.url,
                    reason: format!("stored the code under {}, expected {cid}", a.cid),
                }),
                Err(reason) => failures.push(NodeFailure {
                    node: Some(node.id),
                    url: node.url,
                    reason,
                }),
            }
        }
        if stored < self.threshold {
            return Err(ClientError::Invalid(format!(
                "action {cid} stored on {stored} nodes, {} needed: {}",
                self.threshold,
                crate::list(&failures)
            )));
        }
        Ok((cid, failures))
    }

    /// Runs an action on every node with `js_params` (a JSON object) and, if given, the caller's
    /// auth signature (`Lit.Auth.authSigAddress`), on the nodes of the latest epoch this client
    /// moved to. Not tried again on `EPOCH_CHANGED` (an action may have side effects): call
    /// [`Client::follow_epoch`] and run it again.
    pub async fn execute(
        &self,
        code: ActionCode,
        js_params: serde_json::Value,
        auth: Option<&dyn crate::Credential>,
    ) -> Result<ExecuteOutcome, ClientError> {
        self.current().execute_in_epoch(code, js_params, auth).await
    }

    async fn execute_in_epoch(
        &self,
        code: ActionCode,
        js_params: serde_json::Value,
        auth: Option<&dyn crate::Credential>,
    ) -> Result<ExecuteOutcome, ClientError> {
        if !js_params.is_object() && !js_params.is_null() {
            return Err(ClientError::Invalid("jsParams must be a JSON object".into()));
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let (code, ipfs_id) = match code {
            ActionCode::Code(code) => (Some(code), None),
            ActionCode::Cid(cid) => (None, Some(cid)),
        };
        let (auth_sig, session_sigs) = auth.map(|a| a.fields()).transpose()?.unwrap_or_default();
        let body = ExecuteRequest {
            code,
            ipfs_id,
            js_params: Some(js_params),
            auth_sig,
            session_sigs,
            request_id: hex::encode(request_id()),
            timestamp: Some(timestamp),
        };
        let mut pending = self.to_every_node("/web/execute", &body, |http, url, body| async move {
            crate::post_coded::<ExecuteResponse>(&http, &url, &body).await
        });
        let mut failures = self.unreachable.clone();
        let mut groups: BTreeMap<String, Vec<ExecuteResponse>> = BTreeMap::new();
        let mut errors: BTreeMap<(String, String), (Vec<u32>, Vec<String>)> = BTreeMap::new();
        while let Some((node, answer)) = pending.next().await {
            let answer = match answer {
                Ok(answer) if answer.node_id == node.id => answer,
                Ok(_) => {
                    failures.push(NodeFailure {
                        node: Some(node.id),
                        url: node.url,
                        reason: "answered for another node".into(),
                    });
                    continue;
                }
                Err(e) => {
                    if let Some(fields) = e.fields {
                        let entry = errors.entry((fields.code, fields.message)).or_default();
                        entry.0.push(node.id);
                        if entry.1.is_empty() {
                            entry.1 = fields.logs;
                        }
                    }
                    failures.push(NodeFailure {
                        node: Some(node.id),
                        url: node.url,
                        reason: e.text,
                    });
                    continue;
                }
            };
            let key = agreement_key(&answer);
            let group = groups.entry(key.clone()).or_default();
            group.push(answer);
            if group.len() < self.threshold {
                continue;
            }
            if let Some(outcome) = self.combine_group(group, &mut failures, false) {
                let mut outcome = outcome;
                for (other, answers) in &groups {
                    if *other != key {
                        for a in answers {
                            outcome.failures.push(NodeFailure {
                                node: Some(a.node_id),
                                url: String::new(),
                                reason: "returned a different response or signed something else".into(),
                            });
                        }
                    }
                }
                return Ok(outcome);
            }
        }
        // Every answer is in: a group of `t` still short of a claim's attestation takes it
        // without one.
        for group in groups.values().filter(|g| g.len() >= self.threshold) {
            if let Some(outcome) = self.combine_group(group, &mut failures.clone(), true) {
                return Ok(outcome);
            }
        }
        Err(self.execute_error(groups, errors, failures))
    }

    /// Combines the shares of a group of identical answers; `None` while some signature lacks
    /// `t` shares that fit.
    fn combine_group(
        &self,
        group: &[ExecuteResponse],
        failures: &mut Vec<NodeFailure>,
        last: bool,
    ) -> Option<ExecuteOutcome> {
        let first = group.first()?;
        // After decryptToSingleNode the response is the decrypting node's: wait for its answer.
        let response = match first.single_node {
            Some(node) => group.iter().find(|a| a.node_id == node)?.response.clone(),
            None => first.response.clone(),
        };
        let mut signatures = BTreeMap::new();
        let mut schnorr_signatures = BTreeMap::new();
        let mut bad_nodes: Vec<(u32, String)> = Vec::new();
        // Claims' attestations are combined by `claims_of`.
        for (name, entry) in first.signatures.iter().filter(|(name, _)| !name.starts_with("claim/")) {
            if !entry.signing_scheme.is_ecdsa() {
                match self.combine_schnorr(group, name, entry) {
                    Ok(outcome) => {
                        schnorr_signatures.insert(name.clone(), outcome);
                        continue;
                    }
                    Err(culprits) => {
                        bad_nodes.extend(culprits.into_iter().map(|c| (c, name.clone())));
                        self.name_bad_shares(&bad_nodes, failures);
                        return None;
                    }
                }
            }
            let point = decode_point(&entry.public_key)?;
            let hash: [u8; 32] = hex::decode(&entry.to_sign).ok()?.try_into().ok()?;
            let shares: Vec<SignatureShare> = group
                .iter()
                .filter_map(|a| {
                    let share = a.signatures.get(name)?.share.as_ref()?;
                    let bytes = hex::decode(&share.share).ok()?;
                    SignatureShare::from_bytes(PartyId(a.node_id), &bytes).ok()
                })
                .collect();
            if shares.len() < self.threshold {
                return None;
            }
            let signature = match combine(&point, &hash, self.threshold, &shares) {
                Ok(signature) => signature,
                Err(e) => {
                    // Exactly the signing set's t shares combine; a wrong one is named, and this
                    // signature cannot be made from this run.
                    bad_nodes.extend(e.culprits().iter().map(|p| (p.0, name.clone())));
                    self.name_bad_shares(&bad_nodes, failures);
                    return None;
                }
            };
            let public_key: [u8; 65] = sigil_tss::derive::uncompressed(&point);
            signatures.insert(
                name.clone(),
                SignOutcome {
                    signature,
                    public_key,
                    address: checksum_address(&eth_address(&point)),
                    presignature: group
                        .iter()
                        .find_map(|a| a.signatures.get(name)?.share.as_ref().map(|s| s.presignature.clone()))
                        .unwrap_or_default(),
                    signers: shares.iter().map(|s| s.party.0).collect(),
                    failures: Vec::new(),
                },
            );
        }
        let claims = match self.claims_of(group, last) {
            Ok(Some(claims)) => claims,
            Ok(None) => return None,
            Err(reason) => {
                failures.extend(group.iter().map(|a| NodeFailure {
                    node: Some(a.node_id),
                    url: String::new(),
                    reason: reason.clone(),
                }));
                return None;
            }
        };
        let failures = std::mem::take(failures);
        Some(ExecuteOutcome {
            response,
            logs: first.logs.clone(),
            signatures,
            schnorr_signatures,
            claims,
            agreeing: group.iter().map(|a| a.node_id).collect(),
            failures,
        })
    }

    /// The claims of a group of agreeing answers, each checked here: its derivedKeyId from its
    /// CID and keyId, its public key from the root key, its `claim/{keyId}` entry naming the
    /// attester key and the digest PKPNFT checks, and its attestation combined from the group's
    /// shares. A claim no node attested (its mint was not requested, or its attempt was used)
    /// has none; one with some shares but fewer than `t` waits for more answers (`Ok(None)`)
    /// unless this is the `last` look. An error names what does not hold.
    fn claims_of(
        &self,
        group: &[ExecuteResponse],
        last: bool,
    ) -> Result<Option<BTreeMap<String, ActionKeyClaim>>, String> {
        let Some(answer) = group.first() else {
            return Ok(Some(BTreeMap::new()));
        };
        let attester = sigil_tss::derive::derive_public_key(
            &self.ecdsa_root,
            &sigil_tss::derive::KeyId(sigil_chain::attester_key_id()),
        );
        let mut claims = BTreeMap::new();
        for (name, claim) in &answer.claims {
            let bad = |what: &str| format!("claim {name:?} of action {}: {what}", claim.cid);
            let derived = sigil_chain::action_claim_derived_key_id(&claim.cid, name);
            if hex::encode(derived) != claim.derived_key_id {
                return Err(bad("its derivedKeyId is not keccak256(cid_keyId)"));
            }
            let key_id: [u8; 32] = hex::decode(&claim.key_id)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| bad("its key id is not 32 bytes of hex"))?;
            let point = self.pkp_public_key(crate::KeyRef::KeyId(key_id));
            let public_key = sigil_tss::derive::uncompressed(&point);
            let (Some(chain_id), Some(pkp_nft)) = (self.chain_id, self.pkp_nft) else {
                return Err(bad("this client knows no chain to check the attestation against"));
            };
            let digest = sigil_chain::attestation_digest(chain_id, pkp_nft, &key_id, &public_key);
            let sig_name = format!("claim/{name}");
            let entry = answer
                .signatures
                .get(&sig_name)
                .ok_or_else(|| bad("no attestation entry came with it"))?;
            if entry.public_key != hex::encode(sigil_tss::derive::uncompressed(&attester))
                || entry.to_sign != hex::encode(digest)
            {
                return Err(bad("its attestation entry is not the attester's over this key's mint"));
            }
            let shares: Vec<SignatureShare> = group
                .iter()
                .filter_map(|a| {
                    let share = a.signatures.get(&sig_name)?.share.as_ref()?;
                    let bytes = hex::decode(&share.share).ok()?;
                    SignatureShare::from_bytes(PartyId(a.node_id), &bytes).ok()
                })
                .collect();
            let attestation = if shares.is_empty() {
                None
            } else {
                match combine(&attester, &digest, self.threshold, &shares) {
                    Ok(signature) => Some(signature.to_rsv()),
                    Err(_) if last => None,
                    Err(_) => return Ok(None),
                }
            };
            claims.insert(
                name.clone(),
                ActionKeyClaim {
                    cid: claim.cid.clone(),
                    derived_key_id: derived,
                    key_id,
                    public_key,
                    eth_address: checksum_address(&eth_address(&point)),
                    attestation,
                },
            );
        }
        Ok(Some(claims))
    }

    /// Adds a failure for each `(node, sigName)` whose share does not match its commitments.
    /// Combines the Schnorr shares the agreeing answers carry for `name`: those of the signing
    /// set whose members report the same commitments. `Err` with the nodes whose shares are wrong
    /// (empty while the set's shares have not all arrived, or without trusted public shares).
    fn combine_schnorr(
        &self,
        group: &[ExecuteResponse],
        name: &str,
        entry: &sigil_primitives::ActionShare,
    ) -> Result<SchnorrOutcome, Vec<u32>> {
        let package = self.ecdsa_package.as_ref().ok_or_else(Vec::new)?;
        let key_id: [u8; 32] = entry
            .key_id
            .as_deref()
            .and_then(|k| hex::decode(k).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(Vec::new)?;
        // The key id must be that of the PKP the answers agree on.
        let derived = sigil_tss::derive::derive_public_key(&self.ecdsa_root, &sigil_tss::derive::KeyId(key_id));
        if hex::encode(sigil_tss::derive::uncompressed(&derived)) != entry.public_key {
            return Err(Vec::new());
        }
        let hash: [u8; 32] = hex::decode(&entry.to_sign)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(Vec::new)?;
        let output_key = sigil_tss::schnorr::output_key(&self.ecdsa_root, &sigil_tss::derive::KeyId(key_id))
            .map_err(|_| Vec::new())?;
        let combiner = Combiner::Schnorr {
            key_id: sigil_tss::derive::KeyId(key_id),
            output_key,
            package,
        };
        // Shares by the (set, material, commitments) their senders report; only a member of the
        // set may answer for it.
        type Group = (Vec<u32>, String, BTreeMap<u32, String>);
        let mut sets: BTreeMap<Group, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
        for answer in group {
            let Some(share) = answer.signatures.get(name).and_then(|e| e.share.as_ref()) else {
                continue;
            };
            let Ok(bytes) = hex::decode(&share.share) else { continue };
            if !share.participants.contains(&answer.node_id)
                || share.commitments.keys().copied().collect::<Vec<u32>>() != share.participants
            {
                continue;
            }
            let key = (
                share.participants.clone(),
                share.presignature.clone(),
                share.commitments.clone(),
            );
            sets.entry(key).or_default().insert(answer.node_id, bytes);
        }
        let ((signers, presignature, commitments), shares) = sets
            .into_iter()
            .find(|((members, _, _), shares)| members.iter().all(|m| shares.contains_key(m)))
            .ok_or_else(Vec::new)?;
        match combiner.combine(&hash, self.threshold, &shares, &commitments) {
            Ok(Made::Schnorr(signature)) => Ok(SchnorrOutcome {
                signature,
                output_key,
                presignature,
                signers,
                failures: Vec::new(),
            }),
            Ok(Made::Ecdsa(_)) => Err(Vec::new()),
            Err((culprits, _)) => Err(culprits),
        }
    }

    fn name_bad_shares(&self, bad: &[(u32, String)], failures: &mut Vec<NodeFailure>) {
        for (node, name) in bad {
            let reason = format!(
                "sent a signature share for {name:?} that does not fit its presignature commitments (wrong share)"
            );
            if failures.iter().any(|f| f.node == Some(*node) && f.reason == reason) {
                continue;
            }
            failures.push(NodeFailure {
                node: Some(*node),
                url: self
                    .nodes
                    .iter()
                    .find(|n| n.id == *node)
                    .map(|n| n.url.clone())
                    .unwrap_or_default(),
                reason,
            });
        }
    }

    fn execute_error(
        &self,
        groups: BTreeMap<String, Vec<ExecuteResponse>>,
        errors: BTreeMap<(String, String), (Vec<u32>, Vec<String>)>,
        failures: Vec<NodeFailure>,
    ) -> ClientError {
        let disagreed = errors.keys().any(|(code, _)| code == "NODES_DISAGREED") || groups.len() > 1;
        if disagreed {
            let message = errors
                .iter()
                .find(|((code, _), _)| code == "NODES_DISAGREED")
                .map(|((_, m), _)| m.clone())
                .unwrap_or_else(|| "the nodes returned different responses or signed different messages".into());
            return ClientError::Action {
                code: "NODES_DISAGREED".into(),
                message: format!(
                    "nodes disagreed, so no {} of them returned the same answer: {message}",
                    self.threshold
                ),
                logs: Vec::new(),
                failures,
            };
        }
        // The most common refusal speaks for the network.
        if let Some(((code, message), (_, logs))) = errors.into_iter().max_by_key(|(_, (nodes, _))| nodes.len()) {
            return ClientError::Action {
                code,
                message,
                logs,
                failures,
            };
        }
        let answered = groups.values().map(Vec::len).sum::<usize>();
        ClientError::Action {
            code: "NOT_ENOUGH_NODES".into(),
            message: format!(
                "{answered} nodes answered, {} needed for a response and its signatures",
                self.threshold
            ),
            logs: Vec::new(),
            failures,
        }
    }
}
