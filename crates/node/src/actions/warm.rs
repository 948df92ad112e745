//! Runtimes kept ready for actions that use ethers: evaluating ethers' bundle costs a run about
//! 0.4 s of CPU, most of an ethers action's time. A spare is a thread holding a
//! [`sigil_actions::Warm`] runtime (ethers evaluated, nothing else) and waiting for one run; after
//! it, the thread makes a new runtime and waits again. A runtime serves one run only, so nothing
//! passes between runs.
//!
//! Spares are started when the node's first run that uses ethers asks for one (`[actions]
//! warm_ethers` of them, about 20 MiB each), so a node that never runs ethers pays nothing. A run
//! that finds none ready makes the same kind of runtime on its own thread first, so a run is the
//! same warm or not (ethers captures some globals when it loads; an action's jsParams must not be
//! among them on one node and not on another). Making a spare takes no action slot: at most
//! `warm_ethers` threads do it at once, and after a failure none for a minute.
//! Uses nothing of the crate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sigil_actions::{ActionError, Host, Outcome, RunRequest};

/// One run handed to a spare: what to run, its host, and where the outcome goes. The slot is held
/// until the run ends.
pub(crate) struct Job {
    pub run: RunRequest,
    pub host: Arc<dyn Host>,
    pub slot: tokio::sync::OwnedSemaphorePermit,
    pub done: tokio::sync::oneshot::Sender<Outcome>,
}

/// The node's spare runtimes.
pub struct Spares {
    config: sigil_actions::Config,
    /// Spares kept (0: none).
    target: usize,
    stack: usize,
    /// Spares ready for a run, each a thread waiting on its channel.
    ready: Mutex<Vec<mpsc::SyncSender<Job>>>,
    /// Spare threads alive (ready, running, or making their runtime).
    threads: AtomicUsize,
    /// Set when a runtime could not be made: no spares are started again before then.
    paused_until: Mutex<Option<Instant>>,
}

/// How long the node stops making spares after one could not be made.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(60);

impl Spares {
    /// Spares for runs with `config`, `target` of them, on threads with `stack` bytes of stack.
    /// Without an ethers bundle there are none.
    pub fn new(config: sigil_actions::Config, target: usize, stack: usize) -> Arc<Self> {
        let target = if config.ethers_bundle.is_some() { target } else { 0 };
        Arc::new(Self {
            config,
            target,
            stack,
            ready: Mutex::new(Vec::new()),
            threads: AtomicUsize::new(0),
            paused_until: Mutex::new(None),
        })
    }

    /// Whether `code` may use ethers: it names it. A run that does without naming it (it builds
    /// the name) still works, loading ethers itself.
    pub fn wants(code: &str) -> bool {
        code.contains("ethers")
    }

    /// Hands `job` to a ready spare (`None`), or gives it back if none is ready (and starts the
    /// spares the node keeps, so that later runs find one).
    pub(crate) fn offer(self: &Arc<Self>, mut job: Job) -> Option<Job> {
        if self.target == 0 {
            return Some(job);
        }
        self.fill();
        loop {
            let spare = self.ready.lock().ok().and_then(|mut ready| ready.pop());
            let Some(spare) = spare else { return Some(job) };
            match spare.try_send(job) {
                Ok(()) => return None,
                // The spare's thread has ended; try the next.
                Err(mpsc::TrySendError::Disconnected(j) | mpsc::TrySendError::Full(j)) => job = j,
            }
        }
    }

    /// Spares ready for a run now.
    pub fn ready(&self) -> usize {
        self.ready.lock().map_or(0, |ready| ready.len())
    }

    /// Starts spare threads until `target` are alive (unless paused after a failure).
    fn fill(self: &Arc<Self>) {
        let paused = self
            .paused_until
            .lock()
            .map_or(true, |until| until.is_some_and(|t| Instant::now() < t));
        if paused {
            return;
        }
        while self
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.target).then_some(n + 1)
            })
            .is_ok()
        {
            let pool = Arc::downgrade(self);
            let config = self.config.clone();
            let started = std::thread::Builder::new()
                .name("action-spare".into())
                .stack_size(self.stack)
                .spawn(move || spare(&pool, &config));
            if let Err(e) = started {
                self.threads.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(error = %e, "cannot start a spare action thread");
                return;
            }
        }
    }
}

/// A spare's life: make a runtime, wait for a run, run it; again, until the node is gone or a
/// runtime cannot be made.
fn spare(pool: &Weak<Spares>, config: &sigil_actions::Config) {
    loop {
        let made = std::panic::catch_unwind(|| sigil_actions::Warm::new(config));
        let warm = match made {
            Ok(Ok(warm)) => warm,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the runtime panicked".into(),
                };
                tracing::warn!(
                    %error,
                    pause_s = PAUSE_AFTER_FAILURE.as_secs(),
                    "cannot prepare a spare action runtime; actions load ethers themselves"
                );
                if let Some(pool) = pool.upgrade() {
                    if let Ok(mut until) = pool.paused_until.lock() {
                        *until = Some(Instant::now() + PAUSE_AFTER_FAILURE);
                    }
                    pool.threads.fetch_sub(1, Ordering::AcqRel);
                }
                return;
            }
        };
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let Some(pool) = pool.upgrade() else { return };
            let Ok(mut ready) = pool.ready.lock() else { return };
            ready.push(tx);
        }
        // Ends when the node drops its spares (and with them this channel's sender).
        let Ok(job) = rx.recv() else { return };
        let Job { run, host, slot, done } = job;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sigil_actions::run_warm(config, run, host, warm)
        }))
        .unwrap_or_else(|_| panicked());
        drop(slot);
        let _ = done.send(outcome);
    }
}

/// The outcome of a run whose runtime panicked.
pub(crate) fn panicked() -> Outcome {
    Outcome {
        response: None,
        root_response: None,
        logs: Vec::new(),
        result: Err(ActionError::Engine("the action runtime panicked".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHost;

    impl Host for NoHost {
        fn start(&self, _: sigil_actions::HostOp, _: &str, _: sigil_actions::Completion) {}
    }

    fn job() -> Job {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        Job {
            run: RunRequest {
                code: "ethers".into(),
                cid: String::new(),
                js_params: serde_json::Map::new(),
                auth_sig_address: None,
                auth_method_contexts: Vec::new(),
                auth_extra: serde_json::Map::new(),
                now_ms: 0,
            },
            host: Arc::new(NoHost),
            slot: slots.try_acquire_owned().expect("a free slot"),
            done: tokio::sync::oneshot::channel().0,
        }
    }

    /// A bundle that cannot be loaded: the spares fail once, the pool pauses, and runs are
    /// handed back (to load ethers themselves) without a thread started per run.
    #[test]
    fn a_bundle_that_cannot_load_pauses_the_spares_instead_of_retrying_per_run() {
        let config = sigil_actions::Config {
            limits: sigil_actions::Limits::default(),
            ethers_bundle: Some("/nonexistent/ethers.umd.min.js".into()),
        };
        let spares = Spares::new(config, 2, 4 << 20);
        assert!(spares.offer(job()).is_some(), "no spare is ready yet");
        let started = Instant::now();
        while spares.threads.load(Ordering::Acquire) > 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "the spares never gave up");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(spares.paused_until.lock().unwrap().is_some());
        for _ in 0..10 {
            assert!(spares.offer(job()).is_some());
            assert_eq!(
                spares.threads.load(Ordering::Acquire),
                0,
                "a spare was started while paused"
            );
        }
        assert_eq!(spares.ready(), 0);
    }

    /// Without a bundle there are no spares at all.
    #[test]
    fn without_a_bundle_runs_are_handed_back() {
        let spares = Spares::new(sigil_actions::Config::default(), 2, 4 << 20);
        assert!(spares.offer(job()).is_some());
        assert_eq!(spares.threads.load(Ordering::Acquire), 0);
    }
}
