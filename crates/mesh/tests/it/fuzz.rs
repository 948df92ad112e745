//! Fuzzed envelope opening and session routing (driver: `sigil-fuzz`; budget and replay in its
//! docs).
//!
//! | target | decoder | corpus |
//! |---|---|---|
//! | `envelope_open` | `Endpoint::open` of node 1, which pins nodes 0, 1 and 2 | envelopes genuinely sealed to node 1 by nodes 0 and 2 (empty to 2 KiB bodies, two sessions), one sealed to node 0 |
//! | `router_route` | `Router` fed typed operations (route, open, close, expire) on random keys, senders and body sizes | — (typed, from random bytes) |
//!
//! Each case must return without panicking and allocate at most 64 × input + 1 MiB. An envelope
//! that opens must be one of the genuine ones byte for byte (nothing else authenticates), and a
//! router never hands back more early messages or bytes per session than its limits.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sigil_fuzz::{arbitrary, Arbitrary, Target, Unstructured};
use sigil_mesh::{Endpoint, Identity, NodeKey, Routed, Router, RouterConfig, SessionKey, SessionPolicy};

fn endpoints() -> Vec<Endpoint> {
    let secrets: Vec<[u8; 32]> = (0..3u8).map(|i| [i + 1; 32]).collect();
    let pinned: Vec<(u32, NodeKey)> = (0..3u32)
        .map(|i| (i, Identity::from_secret(secrets[i as usize]).public()))
        .collect();
    let policy = SessionPolicy {
        max_messages: 3,
        max_age: Duration::from_secs(3600),
    };
    (0..3u32)
        .map(|i| Endpoint::new(i, Identity::from_secret(secrets[i as usize]), pinned.clone(), policy))
        .collect()
}

#[test]
fn fuzz_envelope_open() {
    let nodes = endpoints();
    let mut genuine = Vec::new();
    for len in [0usize, 1, 33, 200, 2048, 5, 7] {
        let body: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        genuine.push(nodes[0].seal(1, &body).unwrap());
        genuine.push(nodes[2].seal(1, &body).unwrap());
    }
    let to_other = nodes[1].seal(0, b"not for node 1").unwrap();
    let accepted: HashSet<Vec<u8>> = genuine.iter().cloned().collect();
    let recipient = &nodes[1];
    Target::new("envelope_open")
        .corpus(&genuine)
        .corpus([&to_other])
        .max_random_len(256)
        .run(|bytes| {
            if let Ok(opened) = recipient.open(bytes) {
                assert!(accepted.contains(bytes), "a forged envelope opened: {opened:?}");
                assert!(opened.from == 0 || opened.from == 2);
            }
        });
}

/// One thing done to a router.
#[derive(Debug)]
enum Op {
    Route { key: u8, from: u32, len: u16 },
    Open { key: u8, deadline_secs: u8 },
    Close { key: u8 },
    Expire { after_secs: u8 },
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=5u8)? {
            0..=2 => Op::Route {
                key: u.arbitrary()?,
                from: u.arbitrary()?,
                len: u.arbitrary()?,
            },
            3 => Op::Open {
                key: u.arbitrary()?,
                deadline_secs: u.arbitrary()?,
            },
            4 => Op::Close { key: u.arbitrary()? },
            _ => Op::Expire {
                after_secs: u.arbitrary()?,
            },
        })
    }
}

fn key(k: u8) -> SessionKey {
    // A small key space so sessions collide, fill up and are reused.
    SessionKey([k % 16; 32])
}

#[test]
fn fuzz_router_route() {
    let config = RouterConfig {
        max_early_messages: 4,
        max_early_bytes: 1024,
        max_early_bytes_per_peer: 2048,
        max_early_sessions: 8,
        max_early_sessions_per_peer: 4,
        retention: Duration::from_secs(30),
    };
    Target::new("router_route")
        .max_random_len(2048)
        .run_typed(|ops: Vec<Op>| {
            let start = Instant::now();
            let mut now = start;
            let mut router = Router::new(config.clone());
            for op in ops {
                match op {
                    Op::Route { key: k, from, len } => {
                        let body = vec![0u8; usize::from(len) % 1500];
                        let open = router.is_open(&key(k));
                        match router.route(now, key(k), from, body) {
                            Routed::Deliver(f, _) => assert!(open && f == from),
                            _ => assert!(!open),
                        }
                        assert!(router.early_bytes_of(from) <= config.max_early_bytes_per_peer);
                    }
                    Op::Open { key: k, deadline_secs } => {
                        let early = router.open(key(k), now + Duration::from_secs(deadline_secs.into()));
                        assert!(early.len() <= config.max_early_messages);
                        assert!(early.iter().map(|(_, b)| b.len()).sum::<usize>() <= config.max_early_bytes);
                    }
                    Op::Close { key: k } => router.close(now, key(k)),
                    Op::Expire { after_secs } => {
                        now += Duration::from_secs(after_secs.into());
                        for k in router.expire(now) {
                            assert!(!router.is_open(&k));
                        }
                    }
                }
            }
        });
}
