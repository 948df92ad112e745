//! Prometheus text metrics, kept by hand: a few counters and histograms need no dependency.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Finer buckets for the phases of one sign request, which take tenths of milliseconds.
const PHASE_BOUNDS: [f64; 10] = [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0];

struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(self.bounds) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name` with the label `label="value"`.
    fn render(&self, out: &mut String, name: &str, label: &str, value: &str) {
        for (bucket, bound) in self.buckets.iter().zip(self.bounds) {
            let _ = writeln!(out, "{name}_bucket{{{label}=\"{value}\",le=\"{bound}\"}} {bucket}");
        }
        let _ = writeln!(out, "{name}_bucket{{{label}=\"{value}\",le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{label}=\"{value}\"}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {}", self.count);
    }
}

/// The phases of a sign request on one node, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignPhase {
    /// Auth signature and chain permissions.
    Authorize,
    /// Getting this request's presignature from the allocator.
    Allocate,
    /// Marking the presignature used, durably.
    Take,
    /// Computing the signature share.
    Share,
}

impl SignPhase {
    /// Every phase, in order.
    pub const ALL: [Self; 4] = [Self::Authorize, Self::Allocate, Self::Take, Self::Share];

    /// The `phase` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Allocate => "allocate",
            Self::Take => "take",
            Self::Share => "share",
        }
    }
}

/// A counter of what a bound turned away: its name, help line and label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// `sigil_mesh_rejected_total{reason}`: mesh bodies refused before or while they were opened.
    MeshRejected,
    /// `sigil_http_refused_total{reason}`: client requests turned away by a rate or concurrency
    /// bound.
    HttpRefused,
}

impl Refusal {
    fn name(self) -> &'static str {
        match self {
            Self::MeshRejected => "sigil_mesh_rejected_total",
            Self::HttpRefused => "sigil_http_refused_total",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::MeshRejected => "Mesh bodies refused before or while their envelopes were opened, by reason.",
            Self::HttpRefused => "Client requests turned away by a rate or concurrency bound, by reason.",
        }
    }
}

/// Request counts and latencies per endpoint, and the time sign requests spend in each phase.
#[derive(Default)]
pub struct Metrics {
    refused: Mutex<BTreeMap<(Refusal, &'static str), u64>>,
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    phases: Mutex<BTreeMap<SignPhase, Histogram>>,
    /// What the bounds of actions turned away.
    pub actions: ActionCounters,
}

/// Counters of the action bounds (`[actions]`): refusals, evictions and decryption shares.
#[derive(Default)]
pub struct ActionCounters {
    /// Runs refused because no action or condition slot freed up in `slot_wait_ms`.
    pub busy: AtomicU64,
    /// Code refused by the action store, by reason.
    pub store_rejections: Mutex<BTreeMap<&'static str, u64>>,
    /// Actions evicted from the full action store.
    pub store_evicted: AtomicU64,
    /// Decryption shares checked inside actions (each received share once).
    pub share_verifications: AtomicU64,
    /// Decryption shares inside actions that did not verify (their sender is dropped).
    pub shares_rejected: AtomicU64,
    /// Runs of code that names ethers on a spare runtime with ethers loaded (`warm_ethers`).
    pub warm_runs: AtomicU64,
    /// Runs of code that names ethers that found no spare ready and loaded ethers themselves.
    pub cold_runs: AtomicU64,
}

impl ActionCounters {
    /// Counts one refusal of the action store.
    pub fn store_rejected(&self, reason: &'static str) {
        if let Ok(mut map) = self.store_rejections.lock() {
            *map.entry(reason).or_default() += 1;
        }
    }

    fn render(&self, out: &mut String) {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        metric(
            out,
            "sigil_action_busy_total",
            "counter",
            "Action and condition runs refused with BUSY: no slot freed up in slot_wait_ms.",
            count(&self.busy),
        );
        out.push_str("# HELP sigil_action_store_rejected_total Code the action store refused, by reason.\n");
        out.push_str("# TYPE sigil_action_store_rejected_total counter\n");
        if let Ok(map) = self.store_rejections.lock() {
            for (reason, n) in map.iter() {
                let _ = writeln!(out, "sigil_action_store_rejected_total{{reason=\"{reason}\"}} {n}");
            }
        }
        metric(
            out,
            "sigil_action_store_evicted_total",
            "counter",
            "Actions evicted (least recently used) to make room in the full action store.",
            count(&self.store_evicted),
        );
        out.push_str("# HELP sigil_action_ethers_runs_total Runs of code that names ethers: on a spare runtime with ethers loaded (warm) or loading it (cold).\n");
        out.push_str("# TYPE sigil_action_ethers_runs_total counter\n");
        let _ = writeln!(
            out,
            "sigil_action_ethers_runs_total{{runtime=\"warm\"}} {}",
            count(&self.warm_runs)
        );
        let _ = writeln!(
            out,
            "sigil_action_ethers_runs_total{{runtime=\"cold\"}} {}",
            count(&self.cold_runs)
        );
        metric(
            out,
            "sigil_decryption_share_verifications_total",
            "counter",
            "Decryption shares verified inside actions (each received share exactly once).",
            count(&self.share_verifications),
        );
        metric(
            out,
            "sigil_decryption_shares_rejected_total",
            "counter",
            "Decryption shares inside actions that did not verify; their senders were dropped.",
            count(&self.shares_rejected),
        );
    }
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, endpoint: &str, status: u16, seconds: f64) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((endpoint.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut map) = self.latency.lock() {
            map.entry(endpoint.to_string())
                .or_insert_with(|| Histogram::new(&BOUNDS))
                .observe(seconds);
        }
    }

    /// Counts one thing a bound turned away, with its reason.
    pub fn refused(&self, what: Refusal, reason: &'static str) {
        if let Ok(mut map) = self.refused.lock() {
            *map.entry((what, reason)).or_default() += 1;
        }
    }

    /// Records the time one sign request spent in `phase`.
    pub fn observe_phase(&self, phase: SignPhase, seconds: f64) {
        if let Ok(mut map) = self.phases.lock() {
            map.entry(phase)
                .or_insert_with(|| Histogram::new(&PHASE_BOUNDS))
                .observe(seconds);
        }
    }

    /// The request metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        if let Ok(map) = self.refused.lock() {
            let mut last = None;
            for ((what, reason), count) in map.iter() {
                if last != Some(*what) {
                    let _ = writeln!(
                        out,
                        "# HELP {} {}\n# TYPE {} counter",
                        what.name(),
                        what.help(),
                        what.name()
                    );
                    last = Some(*what);
                }
                let _ = writeln!(out, "{}{{reason=\"{reason}\"}} {count}", what.name());
            }
        }
        out.push_str("# HELP sigil_http_requests_total HTTP requests served, by endpoint and status.\n");
        out.push_str("# TYPE sigil_http_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((endpoint, status), count) in map.iter() {
                let _ = writeln!(
                    out,
                    "sigil_http_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP sigil_http_request_seconds Request latency, by endpoint.\n");
        out.push_str("# TYPE sigil_http_request_seconds histogram\n");
        if let Ok(map) = self.latency.lock() {
            for (endpoint, h) in map.iter() {
                h.render(out, "sigil_http_request_seconds", "endpoint", endpoint);
            }
        }
        out.push_str("# HELP sigil_sign_phase_seconds Time sign requests spent in each phase on this node.\n");
        out.push_str("# TYPE sigil_sign_phase_seconds histogram\n");
        if let Ok(map) = self.phases.lock() {
            for (phase, h) in map.iter() {
                h.render(out, "sigil_sign_phase_seconds", "phase", phase.label());
            }
        }
        self.actions.render(out);
    }
}

/// Appends one gauge or counter with its help line.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}
