//! Runtimes kept ready for actions that use ethers: evaluating ethers' bundle costs a run about
//! 0.4 s of CPU, most of an ethers action's time. A spare is a thread holding a
//! [`sigil_actions::Warm`] runtime (ethers evaluated, nothing else) and waiting for one run; after
//! it, the thread makes a new runtime and waits again. A runtime serves one run only, so nothing
//! passes between runs.
//!
//! Spares are started when the node's first run that uses ethers asks for one (`[actions]
//! warm_ethers` of them, about 20 MiB each), so a node that never runs ethers pays nothing.
//! Uses nothing of the crate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};

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
}

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

    /// Starts spare threads until `target` are alive.
    fn fill(self: &Arc<Self>) {
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
        let warm = match sigil_actions::Warm::new(config) {
            Ok(warm) => warm,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare a spare action runtime; actions load ethers themselves");
                if let Some(pool) = pool.upgrade() {
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
