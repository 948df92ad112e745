//! The first DKG of a network's root keys (both curves), and how it converges.
//!
//! * **Complaints** are `sigil-tss`'s: a dealer whose share fails is accused and reveals it, or is
//!   disqualified; each outcome is logged here, naming the dealer.
//! * **Tentative shares.** The moment a run confirms its transcript, this node's shares of it are
//!   stored ([`TENTATIVE_RECORDS`]) before the confirmation leaves ([`Checkpoint`]). A run the
//!   others finish while this node does not (a confirmation withheld from it, or a different one
//!   sent to it) is then not lost: once NodeSet records root keys whose record this node's
//!   tentative shares reproduce, they are its root key shares ([`adopt`]), at once or after a
//!   restart. Any honest finisher waited for this node's own confirmation, so a record made from
//!   that run is one of exactly these shares.
//! * **Agreed attempts.** A failed run is retried at the next multiple of [`RETRY_PERIOD`], as
//!   attempt `unix time / period`: nodes whose runs failed together run the same retry without a
//!   word, and a node alone in its attempt hears nothing, gives up after [`SILENCE`] and catches
//!   the next one.
//!
//! Uses the node's state, store, mesh sessions and registry; knows no HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sigil_tss::{Bls12381G1, Curve, KeyShare, PartyId, Protocol, Secp256k1, SessionId, Step, TssError, Vss};

use crate::epoch::{load_tentative_root_keys, save_root_keys, Epoch, PublicKeys, RootKeys, TENTATIVE_RECORDS};
use crate::mesh::session::SessionError;
use crate::node::{Fault, Node};
use crate::store::Store;

/// A run's deadline.
const DKG_DEADLINE: Duration = Duration::from_secs(60);

/// A run gives up this early when some node has sent nothing at all (it runs another attempt).
const SILENCE: Duration = Duration::from_secs(10);

/// Retries start at multiples of this many seconds of unix time.
pub const RETRY_PERIOD: u64 = 15;

/// A VSS run that stores its tentative share under `record` before its confirmation is sent,
/// and logs the complaints it settled.
pub struct Checkpoint<C: Curve> {
    inner: Vss<C>,
    store: Arc<Store>,
    record: &'static str,
    node: u32,
    stored: bool,
}

impl<C: Curve> Checkpoint<C> {
    /// Wraps `inner`, this node's (`node`) run.
    pub fn new(inner: Vss<C>, store: Arc<Store>, record: &'static str, node: u32) -> Self {
        Self {
            inner,
            store,
            record,
            node,
            stored: false,
        }
    }

    fn report(&self) {
        let disqualified = self.inner.disqualified();
        for (complainer, dealer) in self.inner.complaints() {
            let (complainer, dealer) = (complainer.0, dealer.0);
            if disqualified.contains(&PartyId(dealer)) {
                tracing::error!(
                    curve = C::NAME,
                    dealer,
                    complainer,
                    "DKG: dealer {dealer} is disqualified: the share it revealed on node {complainer}'s complaint does not match its commitments; the key is made without its dealing"
                );
            } else if complainer == self.node {
                tracing::warn!(
                    curve = C::NAME,
                    dealer,
                    "DKG: node {} complained that dealer {dealer}'s share fails its commitments; dealer {dealer} revealed one that matches them, which this node uses",
                    self.node
                );
            } else {
                tracing::warn!(
                    curve = C::NAME,
                    dealer,
                    complainer,
                    "DKG: node {complainer} complained about dealer {dealer}'s share; the share dealer {dealer} revealed matches its commitments"
                );
            }
        }
    }
}

impl<C: Curve> Protocol for Checkpoint<C> {
    type Output = Option<KeyShare<C>>;

    fn me(&self) -> PartyId {
        self.inner.me()
    }

    fn session(&self) -> SessionId {
        self.inner.session()
    }

    fn handle(&mut self, from: PartyId, bytes: &[u8]) -> Result<(), TssError> {
        self.inner.handle(from, bytes)
    }

    fn poke(&mut self) -> Result<Step<Self::Output>, TssError> {
        let step = self.inner.poke()?;
        if !self.stored {
            if let Some(share) = self.inner.tentative() {
                // Before the confirmation leaves: a run the others finish must not be lost here.
                self.store
                    .put_key_share(self.record, share)
                    .map_err(|e| TssError::Protocol {
                        suspect: None,
                        reason: format!("cannot store the tentative share: {e}"),
                    })?;
                self.stored = true;
                self.report();
            }
        }
        Ok(step)
    }

    fn awaiting(&self) -> Vec<PartyId> {
        self.inner.awaiting()
    }
}

/// Runs one curve's checkpointed VSS among `parties`, with this node's test fault if it has one.
async fn run<C: Curve>(
    node: &Arc<Node>,
    run: Checkpoint<C>,
    parties: &[PartyId],
) -> Result<Option<KeyShare<C>>, SessionError>
where
    Vss<C>: Send,
{
    let victim = parties.iter().copied().filter(|p| p.0 != node.me).max();
    let sessions = &node.sessions;
    let participants = parties.to_vec();
    match victim {
        Some(victim) if node.has_fault(Fault::WithholdDkgConfirmation) => {
            let faulty = crate::faults::SkewConfirmation::new(run, parties, victim, crate::faults::Skew::Withhold);
            sessions
                .run_within(&node.net, faulty, participants, DKG_DEADLINE, SILENCE)
                .await
        }
        Some(victim) if node.has_fault(Fault::EquivocateDkgConfirmation) => {
            let faulty = crate::faults::SkewConfirmation::new(run, parties, victim, crate::faults::Skew::Equivocate);
            sessions
                .run_within(&node.net, faulty, participants, DKG_DEADLINE, SILENCE)
                .await
        }
        Some(victim) if node.has_fault(Fault::BadDkgDealer) => {
            let faulty = crate::faults::CorruptShares::one(run, victim);
            sessions
                .run_within(&node.net, faulty, participants, DKG_DEADLINE, SILENCE)
                .await
        }
        _ => {
            sessions
                .run_within(&node.net, run, participants, DKG_DEADLINE, SILENCE)
                .await
        }
    }
}

/// Resolves once NodeSet records root keys, checked every 2 s after the first 10 s of a run (a
/// DKG takes well under a second; a node a second late must not give up its own run). Never
/// without a chain.
async fn recorded_elsewhere(node: &Arc<Node>) {
    let Some(registry) = node.options.registry.clone() else {
        return std::future::pending().await;
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    loop {
        if registry.node_set().await.is_ok_and(|view| view.keys_epoch != 0) {
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The tentative shares of a run this node confirmed, when NodeSet's record of `epoch`'s root
/// keys is theirs: stored as the root key shares (in one transaction) and returned. None when
/// there are none, NodeSet records nothing for `epoch` or another record, or it cannot be read.
pub async fn adopt(node: &Arc<Node>, epoch: &Epoch) -> Option<RootKeys> {
    let registry = node.options.registry.as_ref()?;
    let view = registry.node_set().await.ok()?;
    if view.keys_epoch != epoch.number || view.keys.is_empty() {
        return None;
    }
    let store = Arc::clone(&node.store);
    let number = epoch.number;
    let (epoch_ids, epoch_threshold): (Vec<u32>, usize) =
        (epoch.peers.iter().map(|(id, _, _)| *id).collect(), epoch.threshold);
    let adopted = tokio::task::spawn_blocking(move || {
        let Some(keys) = load_tentative_root_keys(&store)? else {
            return Ok(None);
        };
        let parties: Vec<PartyId> = epoch_ids.iter().copied().map(PartyId).collect();
        let fits = |threshold: usize, holders: Vec<PartyId>| threshold == epoch_threshold && holders == parties;
        if PublicKeys::of(&keys).record() != view.keys
            || !fits(keys.ecdsa.threshold(), keys.ecdsa.public().parties())
            || !fits(keys.bls.threshold(), keys.bls.public().parties())
        {
            tracing::warn!(
                "this node's tentative DKG shares are not those of NodeSet's root-key record (another run's): they are erased"
            );
            store.rewrite_keys(crate::store::KeysWrite::<Secp256k1, Bls12381G1> {
                put_secrets: &[],
                forget_secrets: &[],
                shares: None,
                keep: None,
                remove: &[TENTATIVE_RECORDS.0, TENTATIVE_RECORDS.1],
                purge_one_time: false,
            })?;
            return Ok(None);
        }
        save_root_keys(&store, number, &keys).map(|()| Some(keys))
    })
    .await;
    match adopted {
        Ok(Ok(Some(keys))) => {
            tracing::info!(
                epoch = number,
                "the DKG run this node confirmed was finished by the others and NodeSet records its keys: this node's tentative shares of it are its root key shares"
            );
            Some(keys)
        }
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read or store the tentative DKG shares");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read or store the tentative DKG shares");
            None
        }
    }
}

/// The attempt a retry after a failure now runs: the next multiple of [`RETRY_PERIOD`].
fn next_attempt() -> (u32, Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let slot = now.as_secs() / RETRY_PERIOD + 1;
    let wait = Duration::from_secs(slot * RETRY_PERIOD).saturating_sub(now);
    (u32::try_from(slot).unwrap_or(u32::MAX), wait)
}

/// Runs the first DKG of `epoch`'s nodes until it gives this node its root key shares (stored),
/// or until NodeSet records keys made without it and its tentative shares are not theirs (None:
/// a reshare gives it shares). Attempt 0 starts once every node is reachable.
pub async fn first_dkg(node: &Arc<Node>, epoch: &Epoch) -> Option<RootKeys> {
    let parties: Vec<PartyId> = epoch.peers.iter().map(|(id, _, _)| PartyId(*id)).collect();
    let n = parties.len();
    let mut last_report = Instant::now();
    let mut attempt = 0u32;
    loop {
        loop {
            let up = node.live().len();
            if up == n {
                break;
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                tracing::info!(reachable = up, nodes = n, "waiting for every node before the first DKG");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(
            nodes = n,
            threshold = epoch.threshold,
            attempt,
            "running DKG for the root keys"
        );
        let started = Instant::now();
        let session = |curve: &str| {
            let mut h = Sha256::new();
            h.update(b"sigil-root-dkg/v1");
            h.update(curve.as_bytes());
            h.update(epoch.fingerprint);
            h.update(epoch.number.to_be_bytes());
            h.update(attempt.to_be_bytes());
            SessionId(h.finalize().into())
        };
        let ecdsa = Vss::<Secp256k1>::dkg(session("secp256k1"), PartyId(node.me), &parties, epoch.threshold);
        let bls = Vss::<Bls12381G1>::dkg(session("bls12-381"), PartyId(node.me), &parties, epoch.threshold);
        let (ecdsa, bls) = match (ecdsa, bls) {
            (Ok(e), Ok(b)) => (
                Checkpoint::new(e, Arc::clone(&node.store), TENTATIVE_RECORDS.0, node.me),
                Checkpoint::new(b, Arc::clone(&node.store), TENTATIVE_RECORDS.1, node.me),
            ),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot start DKG");
                return None;
            }
        };
        // A run that the others finished without this node ends when NodeSet records their
        // keys, not at every retry's deadline forever.
        let runs = async { tokio::join!(run(node, ecdsa, &parties), run(node, bls, &parties)) };
        let (ecdsa, bls) = tokio::select! {
            both = runs => both,
            () = recorded_elsewhere(node) => {
                if let Some(keys) = adopt(node, epoch).await {
                    return Some(keys);
                }
                tracing::error!(
                    attempt,
                    "NodeSet records root keys the other nodes made without this one (a confirmation never reached it); it takes no part in the DKG again and gets its shares from a reshare: propose the same nodes again (sigil admin epoch propose)"
                );
                return None;
            }
        };
        match (ecdsa, bls) {
            (Ok(Some(ecdsa)), Ok(Some(bls))) => {
                let store = Arc::clone(&node.store);
                let number = epoch.number;
                let saved = tokio::task::spawn_blocking(move || {
                    let keys = RootKeys { ecdsa, bls };
                    save_root_keys(&store, number, &keys).map(|()| keys)
                })
                .await;
                match saved {
                    Ok(Ok(keys)) => {
                        tracing::info!(
                            ms = started.elapsed().as_millis() as u64,
                            ecdsa_root = %hex::encode(sigil_tss::derive::uncompressed(keys.ecdsa.public_key())),
                            "root keys made and stored"
                        );
                        return Some(keys);
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot store root key shares"),
                    Err(e) => tracing::error!(error = %e, "cannot store root key shares"),
                }
                return None;
            }
            (Ok(_), Ok(_)) => {
                tracing::error!("DKG finished without a share for this node");
                return None;
            }
            (Err(e), _) | (_, Err(e)) => {
                // Whom a stalled run still waited for is in the error's text, not among the
                // blamed: a third party can steer that wait onto an honest node.
                let blamed = match &e {
                    SessionError::Protocol(tss) => tss.suspect().map(|p| p.0).into_iter().collect(),
                    SessionError::Timeout { silent, .. } => silent.clone(),
                    SessionError::Thread(_) => Vec::new(),
                };
                let (next, wait) = next_attempt();
                tracing::warn!(
                    error = %e,
                    attempt,
                    blamed = ?blamed,
                    next_attempt = next,
                    "DKG failed (blamed: nodes {blamed:?}); retrying in {} s",
                    wait.as_secs()
                );
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = recorded_elsewhere(node) => {}
                }
                if let Some(keys) = adopt(node, epoch).await {
                    return Some(keys);
                }
                attempt = next;
            }
        }
    }
}
