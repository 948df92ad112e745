//! Values exchanged between the nodes running the same action request, by (request id, topic)
//! and sender: a value sent over the mesh waits here until the local run asks for it. Bounded in
//! slots and time, per sender in values and bytes, and per sender and request in bytes, so one
//! peer's values (or one run's) cannot crowd out the others'; a run's values are forgotten when
//! it ends here. One request runs at most once at a time on a node ([`Mailbox::begin`]): a second
//! run would read the first's values, and clear them when it ended first. Uses nothing else of
//! the crate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long mailbox values are kept.
const MAILBOX_TTL: Duration = Duration::from_secs(300);

/// Most (request, topic) slots the mailbox holds.
const MAILBOX_SLOTS: usize = 10_000;

/// Most values one sender has in the mailbox at once.
const VALUES_PER_SENDER: usize = MAILBOX_SLOTS / 4;

/// What a value costs its sender beyond its bytes (slot and map overhead).
const VALUE_OVERHEAD: usize = 128;

/// Most bytes of values one sender has in the mailbox for one request: one run cannot fill its
/// sender's share of every node's mailbox for the others' runs.
const BYTES_PER_SENDER_AND_REQUEST: usize = 2 << 20;

/// When a slot was opened, and the value of each sender.
type Slot = (Instant, BTreeMap<u32, String>);

#[derive(Default)]
struct Held {
    slots: HashMap<([u8; 16], String), Slot>,
    /// Per sender: values and bytes held.
    senders: HashMap<u32, (usize, usize)>,
    /// Per sender and request: bytes held.
    runs: HashMap<(u32, [u8; 16]), usize>,
    /// The requests running here (each holds an action slot, so at most `max_concurrent`).
    running: HashSet<[u8; 16]>,
}

impl Held {
    /// Gives back what the values of one slot cost their senders.
    fn release(&mut self, request: [u8; 16], topic: &str, values: &BTreeMap<u32, String>) {
        for (from, value) in values {
            let cost = value.len() + topic.len() + VALUE_OVERHEAD;
            if let Some((count, bytes)) = self.senders.get_mut(from) {
                *count = count.saturating_sub(1);
                *bytes = bytes.saturating_sub(cost);
                if *count == 0 {
                    self.senders.remove(from);
                }
            }
            if let Some(bytes) = self.runs.get_mut(&(*from, request)) {
                *bytes = bytes.saturating_sub(cost);
                if *bytes == 0 {
                    self.runs.remove(&(*from, request));
                }
            }
        }
    }
}

/// Values from the nodes running the same request, by (request id, topic) and sender.
pub struct Mailbox {
    held: Mutex<Held>,
    changed: Notify,
    bytes_per_sender: usize,
    dropped: AtomicU64,
}

impl Mailbox {
    /// A mailbox where each sender holds at most `bytes_per_sender` bytes of values.
    pub fn new(bytes_per_sender: usize) -> Self {
        Self {
            held: Mutex::new(Held::default()),
            changed: Notify::new(),
            bytes_per_sender,
            dropped: AtomicU64::new(0),
        }
    }

    /// Values dropped because the mailbox or their sender's share of it was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records `from`'s value (the first one per sender counts), unless the mailbox is full or
    /// `from` already holds its share of values or bytes.
    pub fn put(&self, request: [u8; 16], topic: &str, from: u32, value: String) {
        if let Ok(mut held) = self.held.lock() {
            let Held {
                slots, senders, runs, ..
            } = &mut *held;
            let key = (request, topic.to_string());
            if slots.get(&key).is_some_and(|(_, values)| values.contains_key(&from)) {
                return;
            }
            let cost = value.len() + topic.len() + VALUE_OVERHEAD;
            let (count, bytes) = senders.get(&from).copied().unwrap_or((0, 0));
            let run = runs.get(&(from, request)).copied().unwrap_or(0);
            let full = (slots.len() >= MAILBOX_SLOTS && !slots.contains_key(&key))
                || count >= VALUES_PER_SENDER
                || bytes + cost > self.bytes_per_sender
                || run + cost > BYTES_PER_SENDER_AND_REQUEST;
            if full {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(from, "action mailbox full for this sender; dropping a value");
                return;
            }
            senders.insert(from, (count + 1, bytes + cost));
            runs.insert((from, request), run + cost);
            slots
                .entry(key)
                .or_insert_with(|| (Instant::now(), BTreeMap::new()))
                .1
                .insert(from, value);
        }
        self.changed.notify_waiters();
    }

    fn snapshot(&self, request: [u8; 16], topic: &str) -> BTreeMap<u32, String> {
        self.held
            .lock()
            .ok()
            .and_then(|h| h.slots.get(&(request, topic.to_string())).map(|(_, v)| v.clone()))
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
        self.remove(|_, at| at.elapsed() >= MAILBOX_TTL);
    }

    /// Marks `request` as running here, unless it already runs: then false, and the caller
    /// refuses the second run. Every `true` is followed by [`Mailbox::finish`].
    pub fn begin(&self, request: [u8; 16]) -> bool {
        self.held.lock().is_ok_and(|mut held| held.running.insert(request))
    }

    /// Forgets the values of `request`: its run on this node is over, and it may run again.
    /// (Values that still arrive for it are kept until the sweep, within their senders' shares.)
    pub fn finish(&self, request: [u8; 16]) {
        self.remove(|r, _| *r == request);
        if let Ok(mut held) = self.held.lock() {
            held.running.remove(&request);
        }
    }

    fn remove(&self, gone: impl Fn(&[u8; 16], &Instant) -> bool) {
        if let Ok(mut held) = self.held.lock() {
            let keys: Vec<([u8; 16], String)> = held
                .slots
                .iter()
                .filter(|((request, _), (at, _))| gone(request, at))
                .map(|(key, _)| key.clone())
                .collect();
            for key in keys {
                if let Some((_, values)) = held.slots.remove(&key) {
                    held.release(key.0, &key.1, &values);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sender_holds_only_its_share_and_the_others_still_get_theirs_in() {
        let mailbox = Mailbox::new(4 << 20);
        // A peer sends one-mebibyte values for requests nobody runs: four fit, the rest drop.
        for i in 0..40u8 {
            mailbox.put([i; 16], "once/x", 3, "v".repeat(1 << 20));
        }
        assert_eq!(mailbox.dropped(), 37);
        // Small values: its count is bounded too.
        let mut small = 0;
        for i in 0..(VALUES_PER_SENDER as u32 + 100) {
            let mut request = [0u8; 16];
            request[..4].copy_from_slice(&i.to_be_bytes());
            request[15] = 1;
            mailbox.put(request, "t", 3, "x".into());
            small += 1;
        }
        assert!(small > VALUES_PER_SENDER);
        assert!(mailbox.held.lock().unwrap().senders[&3].0 <= VALUES_PER_SENDER);
        // Another node's value still goes in, and a second value per sender and slot is ignored.
        mailbox.put([7; 16], "t", 0, "honest".into());
        mailbox.put([7; 16], "t", 0, "again".into());
        assert_eq!(
            mailbox.snapshot([7; 16], "t").get(&0).map(String::as_str),
            Some("honest")
        );
    }

    #[test]
    fn a_request_runs_once_at_a_time_and_again_after_it_finished() {
        let mailbox = Mailbox::new(4 << 20);
        assert!(mailbox.begin([1; 16]));
        assert!(!mailbox.begin([1; 16]), "a second run of a running request is refused");
        assert!(mailbox.begin([2; 16]), "another request runs beside it");
        mailbox.put([1; 16], "t", 0, "first run's".into());
        mailbox.finish([1; 16]);
        assert!(mailbox.snapshot([1; 16], "t").is_empty());
        assert!(
            mailbox.begin([1; 16]),
            "after the first run ended, the request may run again"
        );
    }

    #[test]
    fn one_run_holds_at_most_its_share_of_a_sender_and_gives_it_back_when_it_finishes() {
        let mailbox = Mailbox::new(16 << 20);
        // One run's values from one sender (the leader's runOnce results): 2 MiB, not its 16.
        for i in 0..300u32 {
            mailbox.put([1; 16], &format!("once/{i}"), 0, "v".repeat(60_000));
        }
        let held = |m: &Mailbox| m.held.lock().unwrap().senders.get(&0).map_or(0, |s| s.1);
        assert!(held(&mailbox) <= BYTES_PER_SENDER_AND_REQUEST);
        // Another run's value from the same sender still goes in.
        mailbox.put([2; 16], "once/x", 0, "honest".into());
        assert_eq!(mailbox.snapshot([2; 16], "once/x").len(), 1);
        // The first run ends here: its values are forgotten and their bytes given back.
        mailbox.finish([1; 16]);
        assert_eq!(held(&mailbox), "honest".len() + "once/x".len() + VALUE_OVERHEAD);
        assert!(!mailbox.held.lock().unwrap().runs.contains_key(&(0, [1; 16])));
        mailbox.put([1; 16], "once/0", 0, "again".into());
        assert_eq!(mailbox.snapshot([1; 16], "once/0").len(), 1);
    }
}
