//! Running an action: each run on its own thread (QuickJS blocks it) holding a slot, with the
//! node as its host; and actions run as access-control conditions, read-only, on condition slots.
//! An action that uses ethers runs on a spare runtime ([`super::warm`]) when one is ready.
//! Uses `node`, `actions::host`, `actions::code`, `actions::warm`, `error`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sigil_actions::RunRequest;
use sigil_primitives::Cid;

use super::code::load_code;
use super::host::{ActionHost, HostInner};
use super::warm::{panicked, Job, Spares};
use crate::error::Error;
use crate::node::Node;

/// Stack of the thread an action runs on (QuickJS itself is bounded to 1 MiB).
pub(crate) const ACTION_THREAD_STACK: usize = 8 << 20;

/// Runs action `cid` as an access-control condition: its code, then `method(...params)`; the
/// result is returned as text (a string as is, anything else as JSON). The run is read-only
/// ([`super::host::Mode::Condition`]) and takes a condition slot, never an action slot, so an action that
/// decrypts cannot wait on a slot its own condition needs.
pub(crate) async fn run_condition(
    node: &Arc<Node>,
    cid: &Cid,
    method: &str,
    params: &[String],
    context: &sigil_conditions::Context,
) -> Result<Result<String, String>, sigil_conditions::EnvError> {
    let env_error = |e: Error| sigil_conditions::EnvError::new(e.code(), e.message());
    let code = load_code(node, cid).await.map_err(env_error)?;
    let params_json = serde_json::to_string(params).unwrap_or_else(|_| "[]".into());
    // `method` is checked to be an identifier when the conditions are parsed.
    let code = format!(
        "{code}\n;(async () => {{ const __sigilResult = await {method}(...{params_json}); Lit.Actions.setResponse({{ response: typeof __sigilResult === \"string\" ? __sigilResult : JSON.stringify(__sigilResult) }}); }})();\n"
    );
    let user = context.user;
    let seed: [u8; 16] = {
        let mut h = Sha256::new();
        h.update(b"sigil-condition-run/v1");
        h.update(cid.as_bytes());
        h.update(method.as_bytes());
        h.update(params_json.as_bytes());
        h.update(user.map(|a| a.to_vec()).unwrap_or_default());
        let digest: [u8; 32] = h.finalize().into();
        let mut id = [0u8; 16];
        id.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
        id
    };
    let slot = take_slot(node, &node.condition_slots, "action conditions")
        .await
        .map_err(env_error)?;
    let run = RunRequest {
        code,
        cid: cid.to_string(),
        js_params: serde_json::Map::new(),
        auth_sig_address: user.map(|a| a.to_checksum(None)),
        auth_method_contexts: Vec::new(),
        auth_extra: serde_json::Map::new(),
        now_ms: now_ms(),
    };
    let inner = Arc::new(HostInner::condition(node, seed));
    let outcome = run_on_thread(node, run, inner, slot).await.map_err(env_error)?;
    Ok(match outcome.result {
        Ok(_) => Ok(outcome.response.unwrap_or_else(|| "undefined".into())),
        Err(e) => Err(format!("{}: {e}", e.code())),
    })
}

/// Takes one of `slots`, waiting at most `[actions] slot_wait_ms`: a full pool is an answer
/// (`BUSY`, with a time to retry after), not a queue, so a flood of slow actions cannot hold
/// requests open behind it. `what` names the pool in the refusal.
pub(crate) async fn take_slot(
    node: &Node,
    slots: &Arc<tokio::sync::Semaphore>,
    what: &str,
) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
    let wait = Duration::from_millis(node.settings.config.actions.slot_wait_ms);
    match tokio::time::timeout(wait, Arc::clone(slots).acquire_owned()).await {
        Ok(Ok(slot)) => Ok(slot),
        Ok(Err(_)) => Err(Error::internal("node shutting down")),
        Err(_) => {
            node.metrics
                .actions
                .busy
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(Error::busy(
                format!(
                    "node {} runs as many {what} as it may (max_concurrent = {}) and none finished within {} ms; retry shortly",
                    node.me,
                    node.settings.config.actions.max_concurrent,
                    wait.as_millis()
                ),
                wait.as_secs().max(1),
            ))
        }
    }
}

/// Runs `run` on its own thread (QuickJS blocks it) with `inner` as its host, holding `slot`
/// until the thread ends: a client that hangs up does not free it early.
pub(crate) async fn run_on_thread(
    node: &Node,
    run: RunRequest,
    inner: Arc<HostInner>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<sigil_actions::Outcome, Error> {
    let name = format!("action-{}", hex::encode(inner.request.get(..4).unwrap_or_default()));
    let host = Arc::new(ActionHost(inner));
    let config = sigil_actions::Config {
        limits: node.settings.config.actions.limits.clone(),
        ethers_bundle: node.settings.config.actions.ethers_bundle.clone(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let host: Arc<dyn sigil_actions::Host> = host;
    let wants_ethers = Spares::wants(&run.code) && config.ethers_bundle.is_some();
    let (run, host, slot, tx) = if wants_ethers {
        match node.spares.offer(Job {
            run,
            host,
            slot,
            done: tx,
        }) {
            None => {
                node.metrics.actions.warm_runs.fetch_add(1, Ordering::Relaxed);
                return rx
                    .await
                    .map_err(|_| Error::internal("the action thread stopped without an answer"));
            }
            Some(job) => {
                node.metrics.actions.cold_runs.fetch_add(1, Ordering::Relaxed);
                (job.run, job.host, job.slot, job.done)
            }
        }
    } else {
        (run, host, slot, tx)
    };
    std::thread::Builder::new()
        .name(name)
        .stack_size(ACTION_THREAD_STACK)
        .spawn(move || {
            let _slot = slot;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // As on a spare: ethers evaluated before the run, so the run is the same. If that
                // cannot be done here, the run fails rather than load ethers after its params.
                match wants_ethers.then(|| sigil_actions::Warm::new(&config)) {
                    Some(Ok(warm)) => sigil_actions::run_warm(&config, run, host, warm),
                    Some(Err(error)) => sigil_actions::Outcome {
                        response: None,
                        root_response: None,
                        logs: Vec::new(),
                        result: Err(error),
                    },
                    None => sigil_actions::run(&config, run, host),
                }
            }))
            .unwrap_or_else(|_| panicked());
            let _ = tx.send(outcome);
        })
        .map_err(|e| Error::internal(format!("cannot start the action thread: {e}")))?;
    rx.await
        .map_err(|_| Error::internal("the action thread stopped without an answer"))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
