//! The epoch handle: a request keeps the epoch it started with while the next one is put in place.

use sigil_mesh::Identity;
use sigil_node::epoch::{Epoch, EpochHandle};

fn peers(n: u32) -> Vec<(u32, String, sigil_mesh::NodeKey)> {
    (0..n)
        .map(|id| {
            (
                id,
                format!("http://127.0.0.1:{}", 7000 + id),
                Identity::generate().unwrap().public(),
            )
        })
        .collect()
}

#[test]
fn a_request_keeps_its_epoch_while_the_next_is_put_in_place() {
    let handle = EpochHandle::new(Epoch::new(1, 2, peers(3)));
    let running = handle.current();
    let next = handle.replace(Epoch::new(2, 3, peers(4)));
    // The running request still sees epoch 1 — threshold, peers, pool — to its end.
    assert_eq!((running.number, running.threshold, running.peers.len()), (1, 2, 3));
    // New requests see epoch 2.
    let now = handle.current();
    assert_eq!((now.number, now.threshold, now.peers.len()), (2, 3, 4));
    assert!(std::sync::Arc::ptr_eq(&now, &next));
    // Different node sets never share sessions or pools: their fingerprints differ.
    assert_ne!(running.fingerprint, now.fingerprint);
    // Root keys are set once per epoch.
    assert!(running.keys().is_none() && now.keys().is_none());
}
