//! Prometheus text metrics, kept by hand: a few counters and histograms need no dependency.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BOUNDS.len()],
    sum: f64,
    count: u64,
}

/// Request counts and latencies per endpoint.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, endpoint: &str, status: u16, seconds: f64) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((endpoint.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut map) = self.latency.lock() {
            let h = map.entry(endpoint.to_string()).or_default();
            for (bucket, bound) in h.buckets.iter_mut().zip(BOUNDS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// The request metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
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
                for (bucket, bound) in h.buckets.iter().zip(BOUNDS) {
                    let _ = writeln!(
                        out,
                        "sigil_http_request_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {bucket}"
                    );
                }
                let _ = writeln!(
                    out,
                    "sigil_http_request_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "sigil_http_request_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "sigil_http_request_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                    h.count
                );
            }
        }
    }
}

/// Appends one gauge or counter with its help line.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}
