use sigil_mesh::{open, seal, Identity, MeshError, NodeKey, MAX_BODY};

struct Net {
    nodes: Vec<Identity>,
}

impl Net {
    fn new(n: usize) -> Self {
        Self {
            nodes: (0..n).map(|_| Identity::generate().unwrap()).collect(),
        }
    }

    fn pinned(&self) -> impl Fn(u32) -> Option<NodeKey> + '_ {
        |i| self.nodes.get(i as usize).map(Identity::public)
    }

    fn seal(&self, from: u32, to: u32, body: &[u8]) -> Vec<u8> {
        seal(
            &self.nodes[from as usize],
            from,
            to,
            &self.nodes[to as usize].public(),
            body,
        )
        .unwrap()
    }

    fn open(&self, me: u32, envelope: &[u8]) -> Result<(u32, Vec<u8>), MeshError> {
        open(&self.nodes[me as usize], me, self.pinned(), envelope).map(|o| (o.from, o.body))
    }
}

#[test]
fn bodies_of_every_size_round_trip() {
    let net = Net::new(2);
    for len in [0usize, 1, 64_999, 65_000, 65_001, 200_000] {
        let body: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let envelope = net.seal(0, 1, &body);
        assert_eq!(net.open(1, &envelope).unwrap(), (0, body), "length {len}");
    }
}

#[test]
fn a_node_cannot_speak_for_another() {
    let net = Net::new(3);
    // Node 2 writes "from 0" with its own key: node 1 checks against node 0's pinned key.
    let forged = seal(&net.nodes[2], 0, 1, &net.nodes[1].public(), b"sign this").unwrap();
    assert_eq!(net.open(1, &forged), Err(MeshError::Unauthenticated { claimed: 0 }));
    // Relabelling a genuine envelope from node 0 as coming from node 2 fails too.
    let mut relabelled = net.seal(0, 1, b"hello");
    relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(net.open(1, &relabelled), Err(MeshError::Unauthenticated { claimed: 2 }));
}

#[test]
fn only_the_addressee_can_open() {
    let net = Net::new(3);
    let envelope = net.seal(0, 1, b"for node 1");
    assert_eq!(net.open(2, &envelope), Err(MeshError::NotForMe { to: 1 }));
    // Readdressed to node 2, it does not decrypt with node 2's key.
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
    let stranger = Identity::generate().unwrap();
    let envelope = seal(&stranger, 9, 1, &net.nodes[1].public(), b"hi").unwrap();
    assert_eq!(net.open(1, &envelope), Err(MeshError::UnknownPeer { claimed: 9 }));
    let to_self = net.seal(1, 1, b"me");
    assert_eq!(net.open(1, &to_self), Err(MeshError::UnknownPeer { claimed: 1 }));
}

#[test]
fn every_damaged_byte_and_every_truncation_is_refused() {
    let net = Net::new(2);
    let envelope = net.seal(0, 1, b"a short protocol message");
    for at in 0..envelope.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = envelope.clone();
            bad[at] ^= bit;
            assert!(net.open(1, &bad).is_err(), "flip {bit:#x} at {at} went unnoticed");
        }
    }
    for cut in 0..envelope.len() {
        assert!(net.open(1, &envelope[..cut]).is_err(), "truncation to {cut}");
    }
    // Dropping the last chunk of a multi-chunk body is caught by the authenticated length.
    let long = net.seal(0, 1, &vec![1u8; 100_000]);
    assert!(matches!(
        net.open(1, &long[..long.len() - 35_016]),
        Err(MeshError::Malformed { .. })
    ));
    let mut longer = envelope.clone();
    longer.extend_from_slice(&[0u8; 16]);
    assert!(net.open(1, &longer).is_err());
}

#[test]
fn oversized_bodies_are_refused_on_both_ends() {
    let net = Net::new(2);
    let big = vec![0u8; MAX_BODY + 1];
    assert_eq!(
        seal(&net.nodes[0], 0, 1, &net.nodes[1].public(), &big),
        Err(MeshError::TooLarge { len: MAX_BODY + 1 })
    );
    let mut header = net.seal(0, 1, b"x");
    header[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(net.open(1, &header), Err(MeshError::TooLarge { .. })));
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
}
