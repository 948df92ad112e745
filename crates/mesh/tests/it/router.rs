use std::time::{Duration, Instant};

use sigil_mesh::{Routed, Router, RouterConfig, SessionKey, EARLY_MESSAGE_OVERHEAD};

fn key(n: u8) -> SessionKey {
    SessionKey([n; 32])
}

#[test]
fn early_messages_wait_for_their_session_in_order() {
    let mut router = Router::default();
    let now = Instant::now();
    assert_eq!(router.route(now, key(1), 2, b"first".to_vec()), Routed::Buffered);
    assert_eq!(router.route(now, key(1), 3, b"second".to_vec()), Routed::Buffered);
    let early = router.open(key(1), now + Duration::from_secs(5));
    assert_eq!(early, vec![(2, b"first".to_vec()), (3, b"second".to_vec())]);
    assert_eq!(
        router.route(now, key(1), 2, b"third".to_vec()),
        Routed::Deliver(2, b"third".to_vec())
    );
}

#[test]
fn closed_sessions_drop_late_messages_until_forgotten() {
    let mut router = Router::new(RouterConfig {
        retention: Duration::from_secs(10),
        ..RouterConfig::default()
    });
    let now = Instant::now();
    router.open(key(1), now + Duration::from_secs(5));
    router.close(now, key(1));
    assert_eq!(router.route(now, key(1), 2, vec![1]), Routed::DroppedClosed);
    router.expire(now + Duration::from_secs(11));
    assert_eq!(
        router.route(now + Duration::from_secs(11), key(1), 2, vec![1]),
        Routed::Buffered
    );
}

#[test]
fn sessions_past_their_deadline_expire() {
    let mut router = Router::default();
    let now = Instant::now();
    router.open(key(1), now + Duration::from_secs(1));
    router.open(key(2), now + Duration::from_secs(60));
    assert!(router.expire(now).is_empty());
    assert_eq!(router.expire(now + Duration::from_secs(2)), vec![key(1)]);
    assert!(!router.is_open(&key(1)));
    assert!(router.is_open(&key(2)));
    assert_eq!(router.route(now, key(1), 0, vec![]), Routed::DroppedClosed);
}

#[test]
fn early_buffering_is_bounded() {
    let config = RouterConfig {
        max_early_messages: 2,
        // Two messages of 4 bytes and their overhead; not a 4 and a 7.
        max_early_bytes: 2 * EARLY_MESSAGE_OVERHEAD + 10,
        max_early_bytes_per_peer: 1000,
        max_early_sessions: 2,
        max_early_sessions_per_peer: 100,
        retention: Duration::from_secs(5),
    };
    let mut router = Router::new(config);
    let now = Instant::now();
    assert_eq!(router.route(now, key(1), 0, vec![0; 4]), Routed::Buffered);
    assert_eq!(
        router.route(now, key(1), 0, vec![0; 7]),
        Routed::DroppedFull,
        "byte limit"
    );
    assert_eq!(router.route(now, key(1), 0, vec![0; 4]), Routed::Buffered);
    assert_eq!(
        router.route(now, key(1), 0, vec![0; 1]),
        Routed::DroppedFull,
        "message limit"
    );
    assert_eq!(router.route(now, key(2), 0, vec![0]), Routed::Buffered);
    assert_eq!(
        router.route(now, key(3), 0, vec![0]),
        Routed::DroppedFull,
        "session limit"
    );
    // Stale early messages are forgotten, which frees room.
    router.expire(now + Duration::from_secs(6));
    assert_eq!(
        router.route(now + Duration::from_secs(6), key(3), 0, vec![0]),
        Routed::Buffered
    );
    assert!(router.open(key(1), now + Duration::from_secs(10)).is_empty());
}

#[test]
fn one_peer_flooding_sessions_that_never_open_fills_only_its_own_share() {
    let config = RouterConfig {
        max_early_messages: 100,
        max_early_bytes: 1_000,
        max_early_bytes_per_peer: 5 * (500 + EARLY_MESSAGE_OVERHEAD),
        max_early_sessions: 1_000,
        max_early_sessions_per_peer: 1_000,
        retention: Duration::from_secs(5),
    };
    let mut router = Router::new(config);
    let now = Instant::now();
    // Peer 7 sends 500 bytes for each of 100 sessions: only five messages' worth is kept.
    let kept = (0..100u8)
        .filter(|i| router.route(now, key(*i), 7, vec![0; 500]) == Routed::Buffered)
        .count();
    assert_eq!(kept, 5);
    assert_eq!(router.early_bytes_of(7), 5 * (500 + EARLY_MESSAGE_OVERHEAD));
    // Another peer is not crowded out.
    assert_eq!(router.route(now, key(200), 1, vec![0; 900]), Routed::Buffered);
    // Opening, closing and expiry give the bytes back.
    assert_eq!(router.open(key(0), now + Duration::from_secs(1)).len(), 1);
    router.close(now, key(1));
    assert_eq!(router.early_bytes_of(7), 3 * (500 + EARLY_MESSAGE_OVERHEAD));
    router.expire(now + Duration::from_secs(6));
    assert_eq!(router.early_bytes_of(7), 0);
    assert_eq!(router.early_bytes_of(1), 0);
    assert_eq!(
        router.route(now + Duration::from_secs(6), key(150), 7, vec![0; 500]),
        Routed::Buffered
    );
}

#[test]
fn one_peer_cannot_take_every_early_session_from_the_others() {
    // A peer sends one byte each for sessions that will never open, well under its early bytes:
    // an honest peer's early message for a session about to open must still be kept.
    let config = RouterConfig::default();
    let mut router = Router::new(config.clone());
    let now = Instant::now();
    for i in 0..config.max_early_sessions as u32 {
        let mut id = [0xee; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        router.route(now, SessionKey(id), 6, vec![0]);
    }
    assert!(router.early_bytes_of(6) <= config.max_early_sessions_per_peer * (1 + EARLY_MESSAGE_OVERHEAD));
    assert_eq!(
        router.route(now, key(1), 2, b"honest round 1".to_vec()),
        Routed::Buffered,
        "peer 6 holds {} early bytes and every early session",
        router.early_bytes_of(6)
    );
}
