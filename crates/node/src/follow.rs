//! Following NodeSet while the node runs: every few seconds it reads the current epoch on chain,
//! whether this node (its id with its signer) is among its nodes, and the proposed next epoch,
//! keeps that in [`Node::chain_view`], and logs each change once. A node that NodeSet has moved
//! to an epoch without it stops serving clients ([`Node::left`]); `/health` shows the view.
//! Four chain calls a round: the block number, then the epoch, the node list and the proposal
//! at that block.
//! Uses `node` and `sigil_chain` only.

use std::sync::Arc;
use std::time::Duration;

use sigil_chain::registry::{read_view, ListedNode, Proposal};

use crate::node::{ChainView, Node};

/// How often NodeSet is read.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// How long one round of reads may take before it counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads NodeSet every [`FOLLOW_EVERY`] until the node stops; does nothing without a chain.
pub async fn follow(node: Arc<Node>) {
    let Some(registry) = node.options.registry.clone() else {
        return;
    };
    let node_set = registry.contracts().node_set;
    let mut failing = false;
    let mut proposal_failing = false;
    loop {
        let last = node.chain_view();
        // The epoch and the list every round (a lagging RPC backend or a reorg heals by the
        // next one); the proposal apart, so that a NodeSet without proposals still is followed.
        // All three at one block: never the epoch before a confirmation and the proposal after.
        let read = read_view(registry.provider(), node_set);
        match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(Ok((epoch, listed, proposal))) => {
                failing = false;
                let proposal = match proposal {
                    Ok(proposal) => {
                        proposal_failing = false;
                        proposal
                    }
                    Err(e) => {
                        if !proposal_failing {
                            tracing::warn!(error = %e, "cannot read NodeSet's proposal; none is shown");
                        }
                        proposal_failing = true;
                        None
                    }
                };
                let view = Arc::new(ChainView {
                    epoch,
                    member: is_me(&node, &listed),
                    nodes: listed.iter().map(|n| n.id).collect(),
                    proposal,
                });
                if let Ok(mut held) = node.chain_view.lock() {
                    *held = Some(Arc::clone(&view));
                }
                report(&node, last.as_deref(), &view);
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read NodeSet; the last view stands");
                }
                failing = true;
            }
            Err(_) => {
                if !failing {
                    tracing::warn!(
                        seconds = READ_TIMEOUT.as_secs(),
                        "NodeSet did not answer in time; the last view stands"
                    );
                }
                failing = true;
            }
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

fn is_me(node: &Node, nodes: &[ListedNode]) -> bool {
    let signer = node.signer.address();
    nodes.iter().any(|n| n.id == node.me && n.signer == signer)
}

/// Logs what changed between `before` and `now`, once per change.
fn report(node: &Node, before: Option<&ChainView>, now: &ChainView) {
    if before.map(|b| (&b.proposal, b.epoch)) != Some((&now.proposal, now.epoch)) {
        if let Some(proposed) = &now.proposal {
            let part = if proposed.nodes.iter().any(|n| n.id == node.me) {
                if now.member {
                    "stays"
                } else {
                    "joins"
                }
            } else {
                "leaves"
            };
            tracing::info!(
                epoch = proposed.epoch,
                threshold = proposed.threshold,
                nodes = ?ids(proposed),
                "epoch proposed in NodeSet; this node {part}"
            );
        } else if before.is_some_and(|b| b.proposal.is_some() && b.epoch == now.epoch) {
            tracing::info!(epoch = now.epoch + 1, "the proposed epoch was withdrawn");
        }
    }
    let running = node.epoch().number;
    if now.epoch > running && before.is_none_or(|b| b.epoch != now.epoch) {
        if now.member {
            tracing::info!(
                chain_epoch = now.epoch,
                epoch = running,
                "NodeSet started a later epoch; this node switches to it"
            );
        } else {
            tracing::error!(
                chain_epoch = now.epoch,
                nodes = ?now.nodes,
                "this node is not among the nodes of NodeSet's current epoch; it no longer serves clients"
            );
        }
    }
}

fn ids(proposed: &Proposal) -> Vec<u32> {
    proposed.nodes.iter().map(|n| n.id).collect()
}
