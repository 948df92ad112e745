use std::time::Duration;

use sigil_mesh::{Endpoint, Identity, MeshError, NodeKey, SessionPolicy, MAX_BODY, OVERHEAD, PREFIX_LEN};

/// Where the session handshake sits in an envelope (after version, from, to, counter).
const SESSION: std::ops::Range<usize> = 17..65;

struct Net {
    secrets: Vec<[u8; 32]>,
    nodes: Vec<Endpoint>,
}

impl Net {
    fn new(n: usize) -> Self {
        Self::with_policy(n, SessionPolicy::default())
    }

    fn with_policy(n: usize, policy: SessionPolicy) -> Self {
        let secrets: Vec<[u8; 32]> = (0..n).map(|_| *Identity::generate().unwrap().secret_bytes()).collect();
        let mut net = Self {
            secrets,
            nodes: Vec::new(),
        };
        net.nodes = (0..n as u32).map(|i| net.endpoint(i, policy)).collect();
        net
    }

    fn pinned(&self) -> Vec<(u32, NodeKey)> {
        (0..self.secrets.len() as u32)
            .map(|i| (i, Identity::from_secret(self.secrets[i as usize]).public()))
            .collect()
    }

    /// A fresh endpoint for node `i`, as after a restart: no sessions remembered.
    fn endpoint(&self, i: u32, policy: SessionPolicy) -> Endpoint {
        Endpoint::new(
            i,
            Identity::from_secret(self.secrets[i as usize]),
            self.pinned(),
            policy,
        )
    }

    fn seal(&self, from: u32, to: u32, body: &[u8]) -> Vec<u8> {
        self.nodes[from as usize].seal(to, body).unwrap()
    }

    fn open(&self, me: u32, envelope: &[u8]) -> Result<(u32, Vec<u8>), MeshError> {
        self.nodes[me as usize].open(envelope).map(|o| (o.from, o.body))
    }
}

#[test]
fn bodies_of_every_size_round_trip() {
    let net = Net::new(2);
    for len in [0usize, 1, 1024, 200_000] {
        let body: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let envelope = net.seal(0, 1, &body);
        assert_eq!(envelope.len(), OVERHEAD + len);
        assert_eq!(net.open(1, &envelope).unwrap(), (0, body.clone()), "length {len}");
        let back = net.seal(1, 0, &body);
        assert_eq!(net.open(0, &back).unwrap(), (1, body), "length {len}, reply");
    }
}

#[test]
fn a_session_is_reused_then_replaced() {
    let policy = SessionPolicy {
        max_messages: 3,
        max_age: Duration::from_secs(3600),
    };
    let net = Net::with_policy(2, policy);
    let envelopes: Vec<Vec<u8>> = (0..7u8).map(|i| net.seal(0, 1, &[i])).collect();
    let sessions: Vec<&[u8]> = envelopes.iter().map(|e| &e[SESSION]).collect();
    assert!(
        sessions[0] == sessions[1] && sessions[1] == sessions[2],
        "three envelopes per session"
    );
    assert!(sessions[2] != sessions[3] && sessions[3] == sessions[5] && sessions[5] != sessions[6]);
    // Every envelope opens, in any order, on a recipient that remembers the sessions and on one
    // that just restarted.
    for (i, envelope) in envelopes.iter().enumerate().rev() {
        assert_eq!(net.open(1, envelope).unwrap(), (0, vec![i as u8]));
        let restarted = net.endpoint(1, policy);
        assert_eq!(restarted.open(envelope).unwrap().body, vec![i as u8]);
    }
    // A restarted sender starts a new session that its peer opens.
    let restarted = net.endpoint(0, policy);
    let envelope = restarted.seal(1, b"back").unwrap();
    assert!(!sessions.contains(&&envelope[SESSION]));
    assert_eq!(net.open(1, &envelope).unwrap(), (0, b"back".to_vec()));

    let aged = Net::with_policy(
        2,
        SessionPolicy {
            max_messages: 1000,
            max_age: Duration::ZERO,
        },
    );
    let (a, b) = (aged.seal(0, 1, b"a"), aged.seal(0, 1, b"b"));
    assert_ne!(a[SESSION], b[SESSION], "an expired session is replaced");
}

/// Where the counter sits in an envelope.
const COUNTER: std::ops::Range<usize> = 9..17;

#[test]
fn each_envelope_of_a_session_has_its_own_nonce_even_under_concurrency() {
    let net = Net::new(2);
    // 4 threads × 50 envelopes of the same body on one session.
    let envelopes: Vec<Vec<u8>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..50).map(|_| net.seal(0, 1, b"same body")).collect::<Vec<_>>()))
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    let session = &envelopes[0][SESSION];
    assert!(envelopes.iter().all(|e| &e[SESSION] == session), "one session");
    let mut counters: Vec<u64> = envelopes
        .iter()
        .map(|e| u64::from_be_bytes(e[COUNTER].try_into().unwrap()))
        .collect();
    counters.sort_unstable();
    assert_eq!(counters, (0..200).collect::<Vec<u64>>(), "every counter used once");
    // The same body under distinct nonces: 200 distinct ciphertexts (a repeated nonce would repeat one).
    let ciphertexts: std::collections::BTreeSet<&[u8]> = envelopes.iter().map(|e| &e[SESSION.end..]).collect();
    assert_eq!(ciphertexts.len(), 200);
    for envelope in &envelopes {
        assert_eq!(net.open(1, envelope).unwrap(), (0, b"same body".to_vec()));
    }
    // A body moved under another envelope's counter does not open.
    let mut moved = envelopes[1].clone();
    moved[COUNTER].copy_from_slice(&envelopes[0][COUNTER]);
    assert!(net.open(1, &moved).is_err());
}

#[test]
fn a_remembered_session_opens_only_for_its_own_sender() {
    let net = Net::new(3);
    // Node 1 knows a session of node 0; the same session bytes under node 2's name, with node
    // 2's header, do not open (the cache is per sender and the header is authenticated).
    let genuine = net.seal(0, 1, b"from node 0");
    net.open(1, &genuine).unwrap();
    let theirs = net.seal(2, 1, b"from node 2");
    let mut spliced = theirs[..SESSION.start].to_vec();
    spliced.extend_from_slice(&genuine[SESSION]);
    spliced.extend_from_slice(&genuine[SESSION.end..]);
    assert_eq!(net.open(1, &spliced), Err(MeshError::Unauthenticated { claimed: 2 }));
    assert_eq!(net.open(1, &theirs).unwrap(), (2, b"from node 2".to_vec()));
}

#[test]
fn a_node_cannot_speak_for_another() {
    let net = Net::new(3);
    // Node 2 claims to be node 0, with its own key.
    let impostor = Endpoint::new(
        0,
        Identity::from_secret(net.secrets[2]),
        net.pinned(),
        SessionPolicy::default(),
    );
    let forged = impostor.seal(1, b"sign this").unwrap();
    assert_eq!(net.open(1, &forged), Err(MeshError::Unauthenticated { claimed: 0 }));
    // A genuine envelope (its session now known to node 1) relabelled as coming from node 2.
    let mut relabelled = net.seal(0, 1, b"hello");
    net.open(1, &relabelled).unwrap();
    relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(net.open(1, &relabelled), Err(MeshError::Unauthenticated { claimed: 2 }));
    // Node 0's known session, carrying a body made up by someone else.
    let mut swapped = net.seal(0, 1, b"pay alice");
    let tail = swapped.len() - b"pay alice".len() - 16;
    swapped[tail..tail + 9].copy_from_slice(b"pay mallo");
    assert_eq!(net.open(1, &swapped), Err(MeshError::Unauthenticated { claimed: 0 }));
}

#[test]
fn only_the_addressee_can_open() {
    let net = Net::new(3);
    let envelope = net.seal(0, 1, b"for node 1");
    assert_eq!(net.open(2, &envelope), Err(MeshError::NotForMe { to: 1 }));
    let mut readdressed = envelope.clone();
    readdressed[5..9].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(
        net.open(2, &readdressed),
        Err(MeshError::Unauthenticated { claimed: 0 })
    );
}

#[test]
fn strangers_and_self_addressed_envelopes_are_refused() {
    let net = Net::new(2);
    let stranger = Endpoint::new(9, Identity::generate().unwrap(), net.pinned(), SessionPolicy::default());
    let envelope = stranger.seal(1, b"hi").unwrap();
    assert_eq!(net.open(1, &envelope), Err(MeshError::UnknownPeer { claimed: 9 }));
    assert_eq!(net.nodes[1].seal(1, b"me"), Err(MeshError::UnknownPeer { claimed: 1 }));
    let mut to_self = net.seal(0, 1, b"me");
    to_self[1..5].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(net.open(1, &to_self), Err(MeshError::UnknownPeer { claimed: 1 }));
}

#[test]
fn every_damaged_byte_and_every_truncation_is_refused() {
    let net = Net::new(2);
    let first = net.seal(0, 1, b"opens the session");
    let envelope = net.seal(0, 1, b"a short protocol message");
    // Once against a recipient that knows the session, once against one that does not.
    for warm in [true, false] {
        let recipient = net.endpoint(1, SessionPolicy::default());
        if warm {
            recipient.open(&first).unwrap();
        }
        for at in 0..envelope.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = envelope.clone();
                bad[at] ^= bit;
                assert!(
                    recipient.open(&bad).is_err(),
                    "flip {bit:#x} at {at} went unnoticed (warm {warm})"
                );
            }
        }
        for cut in 0..envelope.len() {
            assert!(recipient.open(&envelope[..cut]).is_err(), "truncation to {cut}");
        }
        let mut longer = envelope.clone();
        longer.extend_from_slice(&[0u8; 16]);
        assert!(recipient.open(&longer).is_err());
        assert_eq!(recipient.open(&envelope).unwrap().body, b"a short protocol message");
    }
}

#[test]
fn a_prefix_tells_a_peer_from_a_stranger_before_the_body_is_read() {
    let net = Net::new(3);
    let envelope = net.seal(0, 1, b"a protocol message");
    // Checked cold (the session derived), then warm (remembered).
    for _ in 0..2 {
        assert_eq!(
            net.nodes[1].check_prefix(&envelope[..PREFIX_LEN], Some(envelope.len())),
            Ok(0)
        );
    }
    assert_eq!(net.open(1, &envelope).unwrap().1, b"a protocol message");
    // A stranger's prefix, a pinned node impersonated, a wrong addressee, a short prefix or length,
    // an oversized length, and every flipped bit of the session: refused with 65 bytes read.
    let stranger = Endpoint::new(9, Identity::generate().unwrap(), net.pinned(), SessionPolicy::default());
    let theirs = stranger.seal(1, b"hi").unwrap();
    assert_eq!(
        net.nodes[1].check_prefix(&theirs[..PREFIX_LEN], Some(theirs.len())),
        Err(MeshError::UnknownPeer { claimed: 9 })
    );
    let impostor = Endpoint::new(
        2,
        Identity::from_secret(net.secrets[0]),
        net.pinned(),
        SessionPolicy::default(),
    );
    let forged = impostor.seal(1, b"hi").unwrap();
    assert_eq!(
        net.nodes[1].check_prefix(&forged[..PREFIX_LEN], Some(forged.len())),
        Err(MeshError::Unauthenticated { claimed: 2 })
    );
    assert_eq!(
        net.nodes[2].check_prefix(&envelope[..PREFIX_LEN], Some(envelope.len())),
        Err(MeshError::NotForMe { to: 1 })
    );
    assert!(net.nodes[1]
        .check_prefix(&envelope[..PREFIX_LEN - 1], Some(envelope.len()))
        .is_err());
    assert!(net.nodes[1]
        .check_prefix(&envelope[..PREFIX_LEN], Some(OVERHEAD - 1))
        .is_err());
    assert!(matches!(
        net.nodes[1].check_prefix(&envelope[..PREFIX_LEN], Some(OVERHEAD + MAX_BODY + 1)),
        Err(MeshError::TooLarge { .. })
    ));
    let fresh = net.seal(2, 1, b"new session");
    for at in SESSION {
        let mut bad = fresh[..PREFIX_LEN].to_vec();
        bad[at] ^= 0x01;
        assert!(
            net.nodes[1].check_prefix(&bad, Some(fresh.len())).is_err(),
            "flip at {at}"
        );
    }
    // A genuine prefix with a body someone else made passes the prefix, not the envelope.
    let mut swapped = envelope.clone();
    let end = swapped.len() - 1;
    swapped[end] ^= 0x01;
    assert_eq!(
        net.nodes[1].check_prefix(&swapped[..PREFIX_LEN], Some(swapped.len())),
        Ok(0)
    );
    assert_eq!(net.open(1, &swapped), Err(MeshError::Unauthenticated { claimed: 0 }));
}

#[test]
fn oversized_bodies_are_refused_on_both_ends() {
    let net = Net::new(2);
    let big = vec![0u8; MAX_BODY + 1];
    assert_eq!(
        net.nodes[0].seal(1, &big),
        Err(MeshError::TooLarge { len: MAX_BODY + 1 })
    );
    let mut envelope = net.seal(0, 1, b"x");
    envelope.resize(OVERHEAD + MAX_BODY + 1, 0);
    assert!(matches!(net.open(1, &envelope), Err(MeshError::TooLarge { .. })));
}

#[test]
fn identities_restore_from_their_secret_and_stay_redacted() {
    let id = Identity::generate().unwrap();
    let restored = Identity::from_secret(*id.secret_bytes());
    assert_eq!(restored.public(), id.public());
    assert_eq!(NodeKey::from_hex(&id.public().to_string()), Some(id.public()));
    let printed = format!("{id:?}");
    assert!(
        printed.contains("<redacted>") && !printed.contains(&hex::encode(id.secret_bytes())),
        "{printed}"
    );
    let endpoint = Endpoint::new(0, id, [], SessionPolicy::default());
    let printed = format!("{endpoint:?}");
    assert!(!printed.contains(&hex::encode(restored.secret_bytes())), "{printed}");
}
