//! The two signing services clients call: a PKP's signature of a hash or personal message
//! (`/web/pkp/sign`), and the network's mint attestation (`/web/pkp/mint-attestation`). Each
//! checks the request, authorizes the caller, and returns this node's share ([`super::share`]).
//! Uses `auth`, `node`, `signing`, `error`; never `http`.

use std::sync::Arc;
use std::time::Instant;

use sigil_chain::alloy::primitives::eip191_hash_message;
use sigil_chain::{attestation_digest, attester_key_id, mint_key_id};
use sigil_primitives::{AttestRequest, ClaimRequest, SignRequest, SignResponse, ATTESTATION_ATTEMPTS};
use sigil_tss::derive::{derive_public_key, token_id, uncompressed, KeyId};

use super::share::{request_id, threshold_share};
use crate::auth::credentials::{authenticate, Credentials};
use crate::auth::{check_rate, permission::authorize};
use crate::epoch::Epoch;
use crate::error::{hex_bytes, Error, Kind};
use crate::metrics::SignPhase;
use crate::node::Node;

/// Largest personal message `/web/pkp/sign` hashes for the caller.
pub const MAX_PERSONAL_MESSAGE: usize = 16 * 1024;

fn to_sign(value: &serde_json::Value) -> Result<[u8; 32], Error> {
    match value {
        serde_json::Value::String(text) => hex_bytes::<32>("toSign", text),
        serde_json::Value::Array(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            let bytes = bytes.ok_or_else(|| Error::bad_request("toSign: array items must be bytes (0-255)"))?;
            let len = bytes.len();
            bytes
                .try_into()
                .map_err(|_| Error::bad_request(format!("toSign: {len} bytes, expected a 32-byte hash")))
        }
        _ => Err(Error::bad_request(
            "toSign: expected a hex string or an array of 32 bytes",
        )),
    }
}

/// `exclude` may name at most n − t distinct nodes of this network.
fn check_exclude(epoch: &Epoch, exclude: &[u32]) -> Result<(), Error> {
    let n = epoch.peers.len();
    let mut ids = exclude.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != exclude.len() || ids.iter().any(|id| !epoch.contains(*id)) {
        let known: Vec<u32> = epoch.ids().collect();
        return Err(Error::bad_request(format!(
            "exclude: distinct ids of this network's nodes {known:?}"
        )));
    }
    if ids.len() > n - epoch.threshold {
        return Err(Error::bad_request(format!(
            "exclude: at most n − t = {} nodes can be left out",
            n - epoch.threshold
        )));
    }
    Ok(())
}

async fn resolve_key(node: &Node, request: &SignRequest) -> Result<KeyId, Error> {
    let unknown = |what: &str| {
        Error::new(
            Kind::NotFound,
            "UNKNOWN_KEY",
            format!("no PKP with this {what} is known to node {}; name it by keyId", node.me),
        )
    };
    match (&request.key_id, &request.public_key, &request.token_id) {
        (Some(id), None, None) => Ok(KeyId(hex_bytes::<32>("keyId", id)?)),
        (None, Some(pk), None) => {
            let pk = hex_bytes::<65>("publicKey", pk)?;
            node.lookup_key(&pk).ok_or_else(|| unknown("public key"))
        }
        (None, None, Some(token)) => {
            let token = hex_bytes::<32>("tokenId", token)?;
            if let Some(id) = node.lookup_key(&token) {
                return Ok(id);
            }
            // Not seen here (or forgotten): the chain knows every minted token's key id.
            let registry = node.registry()?;
            let token = sigil_chain::alloy::primitives::U256::from_be_bytes(token);
            if !registry.minted(token).await.map_err(Error::chain)? {
                return Err(unknown("token id"));
            }
            match registry.key_id(token).await.map_err(Error::chain)? {
                Some(id) => Ok(KeyId(id)),
                None => Err(unknown("token id")),
            }
        }
        (None, None, None) => Err(Error::bad_request("name the key: keyId, publicKey or tokenId")),
        _ => Err(Error::bad_request("give exactly one of keyId, publicKey, tokenId")),
    }
}

/// This node's share of a PKP's signature of `toSign` or of the personal message `message`, for
/// a caller the PKP permits.
pub async fn sign(node: &Arc<Node>, request: SignRequest) -> Result<SignResponse, Error> {
    let epoch = node.epoch();
    let (hash, personal) = match (&request.to_sign, &request.message) {
        (Some(value), None) => (to_sign(value)?, false),
        (None, Some(text)) => {
            let message = hex::decode(text.strip_prefix("0x").unwrap_or(text))
                .map_err(|e| Error::bad_request(format!("message: not hex ({e})")))?;
            if message.len() > MAX_PERSONAL_MESSAGE {
                return Err(Error::bad_request(format!(
                    "message: {} bytes, at most {MAX_PERSONAL_MESSAGE}",
                    message.len()
                )));
            }
            if !request.signing_scheme.is_ecdsa() {
                return Err(Error::bad_request(format!(
                    "message: an EIP-191 personal message is signed with EcdsaK256Sha256; give {} a 32-byte toSign",
                    request.signing_scheme.name()
                )));
            }
            (eip191_hash_message(&message).0, true)
        }
        (None, None) => return Err(Error::bad_request("give toSign (a 32-byte hash) or message (hex)")),
        (Some(_), Some(_)) => return Err(Error::bad_request("give either toSign or message, not both")),
    };
    let request_id = sign_request_id(&hex_bytes::<16>("requestId", &request.request_id)?);
    check_exclude(&epoch, &request.exclude)?;
    let key_id = resolve_key(node, &request).await?;
    if key_id.0 == attester_key_id() {
        return Err(Error::new(
            Kind::Forbidden,
            "RESERVED_KEY",
            "this key id belongs to the network's mint attester and signs only mint attestations",
        ));
    }
    let keys = epoch.keys().ok_or_else(Error::not_ready)?;
    let root = *keys.ecdsa.public_key();
    let public_key = node.pkp_public_key(&root, &key_id);
    let public_bytes = uncompressed(&public_key);
    let started = Instant::now();
    let credentials = Credentials::new(request.auth_sig.as_ref(), request.session_sigs.as_ref());
    let need = sigil_chain::session::Need::pkp(sigil_chain::token_id(&public_bytes));
    let principal = authenticate(node, credentials, Some(&need)).await?;
    check_rate(node, &principal)?;
    authorize(node, &principal, &public_bytes, personal).await?;
    node.metrics
        .observe_phase(SignPhase::Authorize, started.elapsed().as_secs_f64());
    node.remember_key(key_id, &public_bytes, &token_id(&public_key));
    threshold_share(
        node,
        &epoch,
        &root,
        request.signing_scheme,
        key_id,
        hash,
        request_id,
        &request.exclude,
    )
    .await
}

/// The allocator's request id of a `/web/pkp/sign` request whose caller chose `raw`: tagged,
/// like the ids of attestations and of signatures inside actions (each hashed under its own tag),
/// so no caller can pick an id another kind of request will use — an attestation's id is public
/// (its key id and attempt), and taking it first would bind it to the caller's digest.
fn sign_request_id(raw: &[u8; 16]) -> [u8; 16] {
    request_id(b"sigil-pkp-sign-request/v1", &[raw])
}

/// A share of the network's attestation that the PKP under `keyId` exists: the attester key
/// signs `attestation_digest(chainId, PKPNFT, keyId, pubkey)`, which PKPNFT checks on mint.
/// The mint must have been requested on chain first (`PKPNFT.requestMint`, which costs gas and
/// the mint fee): a wallet without funds cannot make the nodes spend presignatures.
pub async fn attest(node: &Arc<Node>, request: AttestRequest) -> Result<SignResponse, Error> {
    let epoch = node.epoch();
    let salt = hex_bytes::<32>("salt", &request.salt)?;
    check_attempt(request.attempt)?;
    check_exclude(&epoch, &request.exclude)?;
    let registry = node.registry()?;
    let keys = epoch.keys().ok_or_else(Error::not_ready)?;
    let credentials = Credentials::new(request.auth_sig.as_ref(), request.session_sigs.as_ref());
    let principal = authenticate(node, credentials, None).await?;
    check_rate(node, &principal)?;
    let minter = principal.address();
    let key_id = KeyId(mint_key_id(
        minter,
        &salt,
        request.via_helper.then_some(registry.contracts().pkp_helper),
    ));
    attest_key(
        node,
        &epoch,
        &keys,
        key_id,
        request.attempt,
        &request.exclude,
        &format!("salt 0x{}", hex::encode(salt)),
    )
    .await
}

/// A claim (PKPHelper `claimKey`): the attestation share for the PKP derived from an auth
/// method the caller proves here, whose key id is `claim_key_id(PKPHelper, type, id)`.
pub async fn claim(node: &Arc<Node>, request: ClaimRequest) -> Result<SignResponse, Error> {
    let epoch = node.epoch();
    check_attempt(request.attempt)?;
    check_exclude(&epoch, &request.exclude)?;
    let registry = node.registry()?;
    let keys = epoch.keys().ok_or_else(Error::not_ready)?;
    let method = crate::auth::methods::resolve(
        node,
        &request.auth_method,
        None,
        crate::auth::methods::Purpose::Identify,
    )
    .await?;
    let key_id = KeyId(sigil_chain::claim_key_id(
        registry.contracts().pkp_helper,
        method.kind,
        &method.id,
    ));
    let what = format!("auth method type {} id 0x{}", method.kind, hex::encode(&method.id));
    crate::auth::check_rate_of(node, key_id.0, &what)?;
    attest_key(node, &epoch, &keys, key_id, request.attempt, &request.exclude, &what).await
}

/// An attestation request may try at most [`ATTESTATION_ATTEMPTS`] signing sets.
fn check_attempt(attempt: u8) -> Result<(), Error> {
    if attempt >= ATTESTATION_ATTEMPTS {
        return Err(Error::bad_request(format!(
            "attempt: {attempt}, at most {}",
            ATTESTATION_ATTEMPTS - 1
        )));
    }
    Ok(())
}

/// The attestation share for `key_id` once its mint was requested and it is not minted yet;
/// `what` names the mint in errors.
async fn attest_key(
    node: &Arc<Node>,
    epoch: &Arc<crate::epoch::Epoch>,
    keys: &crate::epoch::RootKeys,
    key_id: KeyId,
    attempt: u8,
    exclude: &[u32],
    what: &str,
) -> Result<SignResponse, Error> {
    let registry = node.registry()?;
    let root = *keys.ecdsa.public_key();
    let pubkey = uncompressed(&derive_public_key(&root, &key_id));
    let token = sigil_chain::token_id(&pubkey);
    if registry.minted(token).await.map_err(Error::chain)? {
        return Err(Error::new(
            Kind::Conflict,
            "ALREADY_MINTED",
            format!("PKP {token:#x} ({what}) is already minted"),
        ));
    }
    if !registry.mint_requested(key_id.0).await.map_err(Error::chain)? {
        return Err(Error::new(Kind::Forbidden,
            "MINT_NOT_REQUESTED",
            format!(
                "no mint request for key id 0x{} on chain {}: call PKPNFT.requestMint(keyId) first (it costs gas and the mint fee)",
                hex::encode(key_id.0),
                registry.chain_id()
            ),
        ));
    }
    let request = request_id(b"sigil-attestation-request/v1", &[&key_id.0, &[attempt]]);
    let digest = attestation_digest(registry.chain_id(), registry.contracts().pkp_nft, &key_id.0, &pubkey);
    threshold_share(
        node,
        epoch,
        &root,
        sigil_primitives::SigningScheme::EcdsaK256Sha256,
        KeyId(attester_key_id()),
        digest,
        request,
        exclude,
    )
    .await
}
