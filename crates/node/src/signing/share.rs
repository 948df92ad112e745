//! One signature share: ask the allocator for the request's presignature, check the allocation
//! (from the pool's owner, exactly `t` holders, this node among them, the holder set stored with
//! the presignature), take it durably and once, and sign. Uses `node`, `signing::pool`, `store`,
//! `mesh`, `error`; never `http`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sigil_primitives::{SignResponse, SigningScheme};
use sigil_tss::derive::{uncompressed, KeyId};
use sigil_tss::k256::ProjectivePoint;
use sigil_tss::schnorr::{output_key, Material};
use sigil_tss::PartyId;

use super::pool::{allocate, pool_id_in, scheme_of, AllocateCall, AllocateError};
use super::scheme::{Ecdsa, Scheme, SchnorrTaproot};
pub(crate) use super::stock::request_id;
use crate::epoch::Epoch;
use crate::error::{hex_bytes, Error, Kind};
use crate::mesh::net::NetError;
use crate::mesh::wire::{Allocation, Call, Reply};
use crate::metrics::SignPhase;
use crate::node::{unix_now, Fault, Node};
use crate::store::{OneTime, PresignatureId, StoreError};

const ALLOCATOR_CALL: Duration = Duration::from_secs(40);

impl From<AllocateError> for Error {
    fn from(e: AllocateError) -> Self {
        let status = match &e {
            AllocateError::PoolEmpty(_) | AllocateError::Busy(_) | AllocateError::Unconfirmed { .. } => {
                Kind::Unavailable
            }
            AllocateError::Conflict(_) => Kind::Conflict,
            AllocateError::Stale { .. } => Kind::Upstream,
            AllocateError::Store(_) => Kind::Internal,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

/// Takes this request's one-time material of `scheme` (marking it used) and returns this node's
/// share of the signature of `hash` under the key derived by `key_id`.
///
/// The share is released only if the allocation comes from the allocator that was asked, names a
/// signing set of exactly `t` nodes, this node among them, and that set is exactly the holder set
/// of the stored presignature; the take is durable and bound to this request, so an allocator that
/// binds the presignature to a second request gets nothing more from this node (DESIGN §4).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn threshold_share(
    node: &Arc<Node>,
    epoch: &Epoch,
    root: &ProjectivePoint,
    scheme: SigningScheme,
    key_id: KeyId,
    hash: [u8; 32],
    request_id: [u8; 16],
    exclude: &[u32],
) -> Result<SignResponse, Error> {
    let public_key = node.pkp_public_key(root, &key_id);
    let public_bytes = match scheme {
        SigningScheme::EcdsaK256Sha256 => uncompressed(&public_key).to_vec(),
        SigningScheme::SchnorrK256Taproot => output_key(root, &key_id)
            .map_err(|e| Error::internal(e.to_string()))?
            .to_vec(),
    };
    // The allocator's digest binds one key, one message and, beyond ECDSA, one scheme.
    let digest = {
        let mut h = Sha256::new();
        if !scheme.is_ecdsa() {
            h.update(scheme.name());
        }
        h.update(key_id.0);
        h.update(hash);
        hex::encode(h.finalize())
    };
    if !node.witnessed() {
        return Err(Error::new(
            Kind::Unavailable,
            "NOT_READY",
            format!(
                "node {} is checking with its peers that its data is not older than what it already used",
                node.me
            ),
        ));
    }
    let request_hex = hex::encode(request_id);
    if node.has_fault(Fault::SquatRequests) {
        let junk = hex::encode(Sha256::digest(format!("squat {digest}")));
        tracing::warn!(request = %request_hex, "TEST FAULT: asked for this request's presignature with another digest");
        // The allocator holds an ask nobody joins until its wait ends: not worth waiting for.
        let (squatter, request, exclude) = (Arc::clone(node), request_hex.clone(), exclude.to_vec());
        tokio::spawn(async move {
            let epoch = squatter.epoch();
            let _ = allocation(&squatter, &epoch, &request, &junk, &exclude, scheme).await;
        });
        return Err(Error::new(
            Kind::Upstream,
            "ALLOCATOR_ERROR",
            format!("node {} misbehaves on purpose (test fault squat-requests)", node.me),
        ));
    }
    let started = Instant::now();
    let (allocator, allocation) = allocation(node, epoch, &request_hex, &digest, exclude, scheme).await?;
    node.metrics
        .observe_phase(SignPhase::Allocate, started.elapsed().as_secs_f64());
    let refuse = |message: String| Error::new(Kind::Upstream, "ALLOCATOR_ERROR", message);
    if allocation.pool != allocator {
        return Err(refuse(format!(
            "node {allocator} answered with a presignature of node {}'s pool",
            allocation.pool
        )));
    }
    if allocation.participants.len() != epoch.threshold {
        return Err(refuse(format!(
            "node {allocator} allocated a presignature of {} holders; a signing set is exactly t = {}",
            allocation.participants.len(),
            epoch.threshold
        )));
    }
    if scheme_of(allocation.seq) != scheme {
        return Err(refuse(format!(
            "node {allocator} allocated slot {} (material for {}) to a {} request",
            allocation.seq,
            scheme_of(allocation.seq).name(),
            scheme.name()
        )));
    }
    if !allocation.participants.contains(&node.me) {
        return Err(Error::new(
            Kind::Conflict,
            "NOT_A_SIGNER",
            format!(
                "node {} is not in the signing set {:?} of the presignature allocated to this request",
                node.me, allocation.participants
            ),
        ));
    }
    let entropy = hex_bytes::<32>("entropy", &allocation.entropy).map_err(|e| Error::internal(e.message()))?;
    let id = PresignatureId {
        pool: pool_id_in(epoch, allocation.pool),
        seq: allocation.seq,
    };
    let binding: [u8; 32] = {
        let mut h = Sha256::new();
        h.update(b"sigil-take/v1");
        h.update(request_id);
        h.update(digest.as_bytes());
        h.finalize().into()
    };
    node.taker.reserve_from(id.pool);
    let started = Instant::now();
    let taken = node.taker.take(id, binding).await;
    node.metrics
        .observe_phase(SignPhase::Take, started.elapsed().as_secs_f64());
    let taken = match taken {
        Ok(Some(p)) if id.is_schnorr() == matches!(p, OneTime::Schnorr(_)) => p,
        Ok(Some(_)) => return Err(Error::internal(format!("slot {id} holds material of another scheme"))),
        Ok(None) => {
            return Err(Error::new(
                Kind::Conflict,
                "PRESIGNATURE_MISSING",
                format!("node {} does not hold presignature {id}", node.me),
            ))
        }
        Err(StoreError::AlreadyUsed(what)) => {
            return Err(Error::new(
                Kind::Conflict,
                "PRESIGNATURE_USED",
                format!(
                    "presignature {what} was already used by node {} for this request; it is never used twice",
                    node.me
                ),
            ))
        }
        Err(StoreError::UsedForAnother(what)) => {
            epoch.pool.record_conflict();
            tracing::warn!(
                allocator,
                presignature = %what,
                request = %request_hex,
                "the allocator bound a presignature this node already used to another request; no share released"
            );
            return Err(Error::new(Kind::Conflict,
                "PRESIGNATURE_USED",
                format!(
                    "presignature {what} was already used by node {} for another request: allocator {allocator} bound it twice; no share released",
                    node.me
                ),
            ));
        }
        Err(StoreError::Discarded(what)) => {
            crate::signing::pool::report_discarded(node, &[id]);
            return Err(Error::new(Kind::Conflict,
                "PRESIGNATURE_DISCARDED",
                format!(
                    "node {} took presignature {what} ahead of its request before it restarted, so it never uses it; retry",
                    node.me
                ),
            ));
        }
        Err(e) => return Err(Error::internal(e.to_string())),
    };
    let mut commitments = std::collections::BTreeMap::new();
    let share = match taken {
        OneTime::Presignature(presignature) => release::<Ecdsa>(
            node,
            epoch,
            presignature,
            &allocation,
            allocator,
            id,
            &public_key,
            &key_id,
            &hash,
            &entropy,
        )?,
        OneTime::Schnorr(bytes) => {
            let keys = epoch.keys().ok_or_else(Error::not_ready)?;
            let material = Material::from_bytes(&bytes, PartyId(node.me))
                .map_err(|e| Error::internal(format!("Schnorr material {id}: {e}")))?;
            commitments = material
                .commitments()
                .iter()
                .map(|(p, c)| (p.0, hex::encode(c.to_bytes())))
                .collect();
            release::<SchnorrTaproot>(
                node,
                epoch,
                (material, keys.ecdsa.clone()),
                &allocation,
                allocator,
                id,
                &(),
                &key_id,
                &hash,
                &entropy,
            )?
        }
    };
    Ok(SignResponse {
        node_id: node.me,
        share: hex::encode(share),
        public_key: hex::encode(public_bytes),
        presignature: format!("{}:{}", allocation.pool, allocation.seq),
        participants: allocation.participants,
        threshold: epoch.threshold,
        signing_scheme: scheme,
        commitments,
    })
}

/// The last checks and the share, for any scheme: the material taken for `allocation` must have
/// been made by exactly the signing set the allocator named (else it is discarded and nothing is
/// released); then this node's share, encoded.
#[allow(clippy::too_many_arguments)]
fn release<S: Scheme>(
    node: &Node,
    epoch: &Epoch,
    material: S::Material,
    allocation: &Allocation,
    allocator: u32,
    id: PresignatureId,
    public_key: &S::PublicKey,
    key_id: &KeyId,
    hash: &[u8; 32],
    entropy: &[u8; 32],
) -> Result<Vec<u8>, Error> {
    let holders = S::holders(&material);
    if holders != allocation.participants {
        epoch.pool.record_conflict();
        tracing::warn!(allocator, presignature = %id, ?holders, named = ?allocation.participants, scheme = S::NAME, "an allocation named another holder set; one-time material discarded, no share released");
        return Err(Error::new(
            Kind::Upstream,
            "ALLOCATOR_ERROR",
            format!(
                "node {allocator} named the signing set {:?}, but presignature {id} is held by {holders:?}; it is discarded",
                allocation.participants
            ),
        ));
    }
    let started = Instant::now();
    let mut share = S::sign(material, public_key, key_id, hash, entropy).map_err(Error::internal)?;
    node.metrics
        .observe_phase(SignPhase::Share, started.elapsed().as_secs_f64());
    if node.has_fault(Fault::CorruptSignatureShares) {
        S::corrupt(&mut share);
    }
    Ok(S::encode(&share))
}

/// Asks the allocator — the lowest node that answers — for this request's presignature; returns
/// the allocator's id with its answer.
async fn allocation(
    node: &Arc<Node>,
    epoch: &Epoch,
    request: &str,
    digest: &str,
    exclude: &[u32],
    scheme: SigningScheme,
) -> Result<(u32, Allocation), Error> {
    let at = unix_now();
    let call = serde_json::to_vec(&Call::Allocate {
        request: request.to_string(),
        digest: digest.to_string(),
        exclude: exclude.to_vec(),
        at,
        scheme,
    })
    .map_err(|e| Error::internal(e.to_string()))?;
    let mut unreachable = Vec::new();
    for (id, _, _) in &epoch.peers {
        if *id == node.me {
            let call = AllocateCall {
                from: node.me,
                request,
                digest,
                exclude,
                at,
                scheme,
            };
            return Ok((node.me, allocate(node, call).await?));
        }
        match node.net.call(*id, &call, ALLOCATOR_CALL).await {
            Ok(bytes) => {
                return match serde_json::from_slice::<Reply>(&bytes) {
                    // A reply is not bound to its call: one for another request is refused here.
                    Ok(Reply::Allocated(a)) if a.digest == digest => Ok((*id, a)),
                    Ok(Reply::Allocated(_)) => Err(Error::new(
                        Kind::Upstream,
                        "ALLOCATOR_ERROR",
                        format!("node {id} answered with the allocation of another request"),
                    )),
                    Ok(Reply::Error { code, message }) => Err(allocator_error(&code, message)),
                    _ => Err(Error::new(
                        Kind::Upstream,
                        "ALLOCATOR_ERROR",
                        format!("node {id} answered the allocation with something else"),
                    )),
                };
            }
            Err(e @ (NetError::Unreachable { .. } | NetError::Refused { .. })) => unreachable.push(e.to_string()),
            Err(e) => unreachable.push(e.to_string()),
        }
    }
    Err(Error::new(
        Kind::Unavailable,
        "NO_ALLOCATOR",
        format!("no allocator reachable: {}", unreachable.join("; ")),
    ))
}

/// The error a remote allocator's refusal becomes here: its code where a client acts on it, else
/// `ALLOCATOR_ERROR`.
fn allocator_error(code: &str, message: String) -> Error {
    let (kind, code) = match code {
        "POOL_EMPTY" => (Kind::Unavailable, "POOL_EMPTY"),
        "NOT_READY" => (Kind::Unavailable, "NOT_READY"),
        "BUSY" => (Kind::Unavailable, "BUSY"),
        "UNCONFIRMED" => (Kind::Unavailable, "UNCONFIRMED"),
        "REQUEST_CONFLICT" => (Kind::Conflict, "REQUEST_CONFLICT"),
        "BAD_REQUEST" => (Kind::Invalid, "BAD_REQUEST"),
        _ => (Kind::Upstream, "ALLOCATOR_ERROR"),
    };
    Error::new(kind, code, message)
}
