//! Values exchanged between the nodes running the same action request, by (request id, topic)
//! and sender: a value sent over the mesh waits here until the local run asks for it. Bounded in
//! slots and time, per sender in values and bytes, and per sender and request in bytes, so one
//! peer's values (or one run's) cannot crowd out the others'; a run's values are forgotten when
//! it ends here. Values for a request that does not run here (yet) are *early*: they have a
//! smaller share of their own per sender and are kept [`EARLY_TTL`], so runs sent to one node
//! only, whose values every other node receives, cannot take the share the runs here need. One request runs at most once at a time on a node ([`Mailbox::begin`]): a second
//! run would read the first's values, and clear them when it ended first. Uses nothing else of
//! the crate.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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

/// How long values for a request that never starts here are kept: a run starts on every node
/// within moments of the others (the client sends it to all at once).
const EARLY_TTL: Duration = Duration::from_secs(30);

/// Most early values (for requests not running here) one sender has in the mailbox at once.
const EARLY_VALUES_PER_SENDER: usize = 512;

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
    /// Per sender: values and bytes held for requests running here.
    senders: HashMap<u32, (usize, usize)>,
    /// Per sender: values and bytes held for requests not running here.
    early: HashMap<u32, (usize, usize)>,
    /// Per sender and request not running here: the topics it put early values in, oldest
    /// first (some may be gone since; they are skipped, and a sender's queues are compacted
    /// when they grow past four shares).
    early_order: HashMap<u32, HashMap<[u8; 16], VecDeque<String>>>,
    /// Per sender and request: bytes held.
    runs: HashMap<(u32, [u8; 16]), usize>,
    /// The requests running here (each holds an action slot, so at most `max_concurrent`).
    running: HashSet<[u8; 16]>,
}

impl Held {
    /// What `from` holds in the share a value for `request` counts against.
    fn share(&mut self, request: &[u8; 16]) -> &mut HashMap<u32, (usize, usize)> {
        if self.running.contains(request) {
            &mut self.senders
        } else {
            &mut self.early
        }
    }

    /// Gives back what the values of one slot cost their senders.
    fn release(&mut self, request: [u8; 16], topic: &str, values: &BTreeMap<u32, String>) {
        for (from, value) in values {
            let cost = value.len() + topic.len() + VALUE_OVERHEAD;
            let share = self.share(&request);
            if let Some((count, bytes)) = share.get_mut(from) {
                *count = count.saturating_sub(1);
                *bytes = bytes.saturating_sub(cost);
                if *count == 0 {
                    share.remove(from);
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

    /// Forgets one of `from`'s early values, the oldest of the request (not running here) for
    /// which it holds the most bytes: a flood for one request gives way before a run's few
    /// values do. False if it has none. O(requests the sender has early values for, at most its
    /// 512 values) per value evicted.
    fn evict_oldest_early(&mut self, from: u32) -> bool {
        loop {
            let Some(queues) = self.early_order.get_mut(&from) else {
                return false;
            };
            let runs = &self.runs;
            let Some(victim) = queues
                .keys()
                .max_by_key(|r| runs.get(&(from, **r)).copied().unwrap_or(0))
                .copied()
            else {
                return false;
            };
            let topic = queues.get_mut(&victim).and_then(VecDeque::pop_front);
            if queues.get(&victim).is_none_or(VecDeque::is_empty) {
                queues.remove(&victim);
            }
            if queues.is_empty() {
                self.early_order.remove(&from);
            }
            let Some(topic) = topic else { continue };
            if self.running.contains(&victim) {
                continue;
            }
            let key = (victim, topic);
            let Some((_, values)) = self.slots.get_mut(&key) else {
                continue;
            };
            let Some(value) = values.remove(&from) else { continue };
            if values.is_empty() {
                self.slots.remove(&key);
            }
            self.release(key.0, &key.1, &BTreeMap::from([(from, value)]));
            return true;
        }
    }

    /// Notes that `from` put an early value in slot `key`.
    fn queue_early(&mut self, from: u32, key: ([u8; 16], String)) {
        let Self {
            slots,
            running,
            early_order,
            ..
        } = self;
        let queues = early_order.entry(from).or_default();
        queues.entry(key.0).or_default().push_back(key.1);
        if queues.values().map(VecDeque::len).sum::<usize>() > 4 * EARLY_VALUES_PER_SENDER {
            queues.retain(|r, topics| {
                topics.retain(|t| {
                    !running.contains(r)
                        && slots
                            .get(&(*r, t.clone()))
                            .is_some_and(|(_, values)| values.contains_key(&from))
                });
                !topics.is_empty()
            });
        }
    }

    /// `request` starts here: the early values it has move to their senders' running shares.
    fn promote(&mut self, request: [u8; 16]) {
        for queues in self.early_order.values_mut() {
            queues.remove(&request);
        }
        self.early_order.retain(|_, queues| !queues.is_empty());
        let Self {
            slots, senders, early, ..
        } = self;
        for ((r, topic), (_, values)) in slots.iter() {
            if *r != request {
                continue;
            }
            for (from, value) in values {
                let cost = value.len() + topic.len() + VALUE_OVERHEAD;
                if let Some((count, bytes)) = early.get_mut(from) {
                    *count = count.saturating_sub(1);
                    *bytes = bytes.saturating_sub(cost);
                    if *count == 0 {
                        early.remove(from);
                    }
                }
                let (count, bytes) = senders.entry(*from).or_insert((0, 0));
                *count += 1;
                *bytes += cost;
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
            let running = held.running.contains(&request);
            let cost = value.len() + topic.len() + VALUE_OVERHEAD;
            let duplicate = held
                .slots
                .get(&(request, topic.to_string()))
                .is_some_and(|(_, values)| values.contains_key(&from));
            let run = held.runs.get(&(from, request)).copied().unwrap_or(0);
            let most_early_bytes = self.bytes_per_sender / 4;
            let admissible = cost <= most_early_bytes && run + cost <= BYTES_PER_SENDER_AND_REQUEST;
            if !running && !duplicate && admissible {
                // An early share that is full makes room by its sender's oldest early value: a
                // flood of values for runs that never start here is pushed out by the values of
                // a run about to start, rather than keeping them out for its whole time.
                while held
                    .early
                    .get(&from)
                    .is_some_and(|(count, bytes)| *count >= EARLY_VALUES_PER_SENDER || bytes + cost > most_early_bytes)
                {
                    if !held.evict_oldest_early(from) {
                        break;
                    }
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            if running && !duplicate {
                // A full mailbox makes room for a running request's value by early values, from
                // the sender holding the most: values for runs that never start here cannot keep
                // out the values of the runs that do.
                let key = (request, topic.to_string());
                for _ in 0..64 {
                    if held.slots.len() < MAILBOX_SLOTS || held.slots.contains_key(&key) {
                        break;
                    }
                    let most = held
                        .early
                        .iter()
                        .max_by_key(|(_, (count, _))| *count)
                        .map(|(from, _)| *from);
                    if !most.is_some_and(|most| held.evict_oldest_early(most)) {
                        break;
                    }
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            let Held {
                slots,
                senders,
                early,
                runs,
                ..
            } = &mut *held;
            let key = (request, topic.to_string());
            if slots.get(&key).is_some_and(|(_, values)| values.contains_key(&from)) {
                return;
            }
            let (share, most_values, most_bytes) = if running {
                (senders, VALUES_PER_SENDER, self.bytes_per_sender)
            } else {
                (early, EARLY_VALUES_PER_SENDER, self.bytes_per_sender / 4)
            };
            let (count, bytes) = share.get(&from).copied().unwrap_or((0, 0));
            let run = runs.get(&(from, request)).copied().unwrap_or(0);
            let full = (slots.len() >= MAILBOX_SLOTS && !slots.contains_key(&key))
                || count >= most_values
                || bytes + cost > most_bytes
                || run + cost > BYTES_PER_SENDER_AND_REQUEST;
            if full {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    from,
                    early = !running,
                    "action mailbox full for this sender; dropping a value"
                );
                return;
            }
            share.insert(from, (count + 1, bytes + cost));
            runs.insert((from, request), run + cost);
            slots
                .entry(key.clone())
                .or_insert_with(|| (Instant::now(), BTreeMap::new()))
                .1
                .insert(from, value);
            if !running {
                held.queue_early(from, key);
            }
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

    /// Forgets old values: early ones (for requests not running here) after [`EARLY_TTL`].
    pub fn sweep(&self) {
        self.remove(|running, _, at| at.elapsed() >= if running { MAILBOX_TTL } else { EARLY_TTL });
    }

    /// Marks `request` as running here, unless it already runs: then false, and the caller
    /// refuses the second run. Every `true` is followed by [`Mailbox::finish`].
    pub fn begin(&self, request: [u8; 16]) -> bool {
        self.held.lock().is_ok_and(|mut held| {
            let fresh = held.running.insert(request);
            if fresh {
                held.promote(request);
            }
            fresh
        })
    }

    /// Forgets the values of `request`: its run on this node is over, and it may run again.
    /// (Values that still arrive for it are kept until the sweep, within their senders' shares.)
    pub fn finish(&self, request: [u8; 16]) {
        // One critical section: a value put between forgetting the values and the running mark
        // would be counted as running and given back as early.
        if let Ok(mut held) = self.held.lock() {
            Self::remove_held(&mut held, |_, r, _| *r == request);
            held.running.remove(&request);
        }
    }

    /// Forgets the slots `gone(running here, request, opened at)` picks.
    fn remove(&self, gone: impl Fn(bool, &[u8; 16], &Instant) -> bool) {
        if let Ok(mut held) = self.held.lock() {
            Self::remove_held(&mut held, gone);
        }
    }

    fn remove_held(held: &mut Held, gone: impl Fn(bool, &[u8; 16], &Instant) -> bool) {
        let running = &held.running;
        let keys: Vec<([u8; 16], String)> = held
            .slots
            .iter()
            .filter(|((request, _), (at, _))| gone(running.contains(request), request, at))
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            if let Some((_, values)) = held.slots.remove(&key) {
                held.release(key.0, &key.1, &values);
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
        // A peer sends one-mebibyte values for requests running here: four fit, the rest drop.
        for i in 0..40u8 {
            mailbox.begin([i; 16]);
            mailbox.put([i; 16], "once/x", 3, "v".repeat(1 << 20));
        }
        assert_eq!(mailbox.dropped(), 37);
        // Small values: its count is bounded too.
        let mut small = 0;
        for i in 0..(VALUES_PER_SENDER as u32 + 100) {
            let mut request = [0u8; 16];
            request[..4].copy_from_slice(&i.to_be_bytes());
            request[15] = 1;
            mailbox.begin(request);
            mailbox.put(request, "t", 3, "x".into());
            small += 1;
        }
        assert!(small > VALUES_PER_SENDER);
        assert!(mailbox.held.lock().unwrap().senders[&3].0 <= VALUES_PER_SENDER);
        // Another node's value still goes in, and a second value per sender and slot is ignored.
        mailbox.begin([7; 16]);
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
        mailbox.begin([1; 16]);
        mailbox.begin([2; 16]);
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

    /// The adversary: runs sent to one node only, whose values every other node receives for
    /// requests it never runs, three of a thousand values each.
    #[test]
    fn values_for_requests_never_run_here_do_not_take_the_share_runs_here_need() {
        let mailbox = Mailbox::new(32 << 20);
        for r in 0..3u8 {
            for i in 0..1000 {
                mailbox.put([r; 16], &format!("collect/x/f{i}"), 0, "x".into());
            }
        }
        assert!(mailbox.held.lock().unwrap().early[&0].0 <= EARLY_VALUES_PER_SENDER);
        assert_eq!(mailbox.dropped(), 3000 - EARLY_VALUES_PER_SENDER as u64);
        // The same sender's value for a run about to start here pushes the oldest flood value out.
        mailbox.put([7; 16], "once/x/tx", 0, "about to start".into());
        assert_eq!(mailbox.snapshot([7; 16], "once/x/tx").len(), 1);
        assert!(
            mailbox.snapshot([0; 16], "collect/x/f0").is_empty(),
            "the oldest went first"
        );
        assert_eq!(mailbox.snapshot([2; 16], "collect/x/f999").len(), 1, "the newest stay");
        assert!(mailbox.held.lock().unwrap().early[&0].0 <= EARLY_VALUES_PER_SENDER);
        // A run here still gets the same sender's values.
        mailbox.begin([9; 16]);
        mailbox.put([9; 16], "once/x/tx", 0, "sent".into());
        assert_eq!(mailbox.snapshot([9; 16], "once/x/tx").len(), 1);
        // An honest value that arrives before its run starts here (from another sender, whose
        // early share is its own) is kept, and counts as the run's once it starts.
        mailbox.put([8; 16], "once/x/tx", 1, "early".into());
        assert!(mailbox.begin([8; 16]));
        assert_eq!(mailbox.snapshot([8; 16], "once/x/tx").len(), 1);
        {
            let held = mailbox.held.lock().unwrap();
            assert!(!held.early.contains_key(&1));
            assert_eq!(held.senders[&1].0, 1);
        }
        // Early values are forgotten after EARLY_TTL, the running ones are not.
        if let Ok(mut held) = mailbox.held.lock() {
            for (at, _) in held.slots.values_mut() {
                *at = at.checked_sub(EARLY_TTL).unwrap_or(*at);
            }
        }
        mailbox.sweep();
        let held = mailbox.held.lock().unwrap();
        assert!(!held.early.contains_key(&0), "the flood's values are gone");
        assert_eq!(held.slots.len(), 2, "the two running requests' values stay");
        assert_eq!(held.senders[&0].0, 1);
    }

    /// The adversary: a flood of early values for one request, sent to push out the one early
    /// value of a run that is about to start here; then duplicates, and values after the run.
    #[test]
    fn a_runs_early_value_outlasts_a_flood_for_another_request_and_every_count_returns_to_zero() {
        let mailbox = Mailbox::new(32 << 20);
        mailbox.put([5; 16], "once/x/tx", 0, "honest".into());
        for i in 0..600 {
            mailbox.put([6; 16], &format!("collect/x/f{i}"), 0, "x".into());
        }
        assert!(mailbox.begin([5; 16]));
        assert_eq!(
            mailbox.snapshot([5; 16], "once/x/tx").len(),
            1,
            "the flood gave way first"
        );
        // Duplicates of a value held evict nothing.
        let dropped = mailbox.dropped();
        for _ in 0..1000 {
            mailbox.put([6; 16], "collect/x/f599", 0, "x".into());
        }
        assert_eq!(mailbox.dropped(), dropped);
        // A value too large for any early share evicts nothing either.
        mailbox.put([6; 16], "big", 0, "v".repeat(9 << 20));
        assert_eq!(mailbox.held.lock().unwrap().early[&0].0, EARLY_VALUES_PER_SENDER - 1);
        // The run ends; a value still arriving for it, then the sweep once the early ones are old.
        mailbox.finish([5; 16]);
        mailbox.put([5; 16], "late", 1, "v".into());
        if let Ok(mut held) = mailbox.held.lock() {
            for (at, _) in held.slots.values_mut() {
                *at = at.checked_sub(EARLY_TTL).unwrap_or(*at);
            }
        }
        mailbox.sweep();
        let held = mailbox.held.lock().unwrap();
        assert!(held.slots.is_empty(), "{:?}", held.slots.len());
        assert!(held.senders.is_empty(), "{:?}", held.senders);
        assert!(held.early.is_empty(), "{:?}", held.early);
        assert!(held.runs.is_empty(), "{:?}", held.runs);
    }

    /// The adversary: many senders' early values together filling every slot of the mailbox
    /// (runs sent to one node only, on a large network), to keep out a running request's values.
    #[test]
    fn a_mailbox_full_of_early_values_makes_room_for_a_running_requests_value() {
        let mailbox = Mailbox::new(32 << 20);
        let senders = (MAILBOX_SLOTS / EARLY_VALUES_PER_SENDER) as u32 + 1;
        for from in 0..senders {
            for i in 0..EARLY_VALUES_PER_SENDER {
                mailbox.put([from as u8; 16], &format!("f{i}"), from, "x".into());
            }
        }
        assert_eq!(mailbox.held.lock().unwrap().slots.len(), MAILBOX_SLOTS);
        assert!(mailbox.begin([200; 16]));
        mailbox.put([200; 16], "once/x/tx", 0, "sent".into());
        assert_eq!(mailbox.snapshot([200; 16], "once/x/tx").len(), 1);
        assert!(mailbox.held.lock().unwrap().slots.len() <= MAILBOX_SLOTS);
    }
}
