//! Benchmarks of sealing and opening envelopes: on a session both ends already hold (the common
//! case), and with a new session each time (what every envelope cost before sessions were reused).
//!
//! `cargo bench -p sigil-mesh` — or `make bench`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sigil_mesh::{Endpoint, Identity, SessionPolicy};

fn pair(policy: SessionPolicy) -> (Endpoint, Endpoint) {
    let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let pinned = [(0, a.public()), (1, b.public())];
    (Endpoint::new(0, a, pinned, policy), Endpoint::new(1, b, pinned, policy))
}

fn envelopes(c: &mut Criterion) {
    let body = vec![7u8; 1024];
    let reused = pair(SessionPolicy::default());
    c.bench_function("mesh/seal_open_1KiB_session_reused", |b| {
        b.iter(|| {
            let envelope = reused.0.seal(1, black_box(&body)).unwrap();
            black_box(reused.1.open(&envelope).unwrap())
        })
    });
    let fresh = pair(SessionPolicy {
        max_messages: 1,
        max_age: Duration::from_secs(3600),
    });
    c.bench_function("mesh/seal_open_1KiB_new_session", |b| {
        b.iter(|| {
            let envelope = fresh.0.seal(1, black_box(&body)).unwrap();
            black_box(fresh.1.open(&envelope).unwrap())
        })
    });
}

criterion_group!(benches, envelopes);
criterion_main!(benches);
