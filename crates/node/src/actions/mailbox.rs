//! Values exchanged between the nodes running the same action request, by (request id, topic)
//! and sender: a value sent over the mesh waits here until the local run asks for it. Bounded in
//! slots and time. Uses nothing else of the crate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long mailbox values are kept.
const MAILBOX_TTL: Duration = Duration::from_secs(300);

/// Most (request, topic) slots the mailbox holds.
const MAILBOX_SLOTS: usize = 10_000;

/// When a slot was opened, and the value of each sender.
type Slot = (Instant, BTreeMap<u32, String>);

/// Values from the nodes running the same request, by (request id, topic) and sender.
#[derive(Default)]
pub struct Mailbox {
    slots: Mutex<HashMap<([u8; 16], String), Slot>>,
    changed: Notify,
}

impl Mailbox {
    /// Records `from`'s value (the first one per sender counts).
    pub fn put(&self, request: [u8; 16], topic: &str, from: u32, value: String) {
        if let Ok(mut slots) = self.slots.lock() {
            if slots.len() >= MAILBOX_SLOTS && !slots.contains_key(&(request, topic.to_string())) {
                tracing::warn!("action mailbox full; dropping a value");
                return;
            }
            slots
                .entry((request, topic.to_string()))
                .or_insert_with(|| (Instant::now(), BTreeMap::new()))
                .1
                .entry(from)
                .or_insert(value);
        }
        self.changed.notify_waiters();
    }

    fn snapshot(&self, request: [u8; 16], topic: &str) -> BTreeMap<u32, String> {
        self.slots
            .lock()
            .ok()
            .and_then(|s| s.get(&(request, topic.to_string())).map(|(_, v)| v.clone()))
            .unwrap_or_default()
    }

    /// Waits until `done` holds for the values of (request, topic), or `wait` passes; returns
    /// the values either way.
    pub async fn wait(
        &self,
        request: [u8; 16],
        topic: &str,
        wait: Duration,
        mut done: impl FnMut(&BTreeMap<u32, String>) -> bool,
    ) -> BTreeMap<u32, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let values = self.snapshot(request, topic);
            if done(&values) {
                return values;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.snapshot(request, topic);
            }
        }
    }

    /// Forgets old values.
    pub fn sweep(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|_, (at, _)| at.elapsed() < MAILBOX_TTL);
        }
    }
}
