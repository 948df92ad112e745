//! Values exchanged between the nodes running the same action request, by (request id, topic)
//! and sender: a value sent over the mesh waits here until the local run asks for it. Bounded in
//! slots and time, per sender in values and bytes, and per sender and request in bytes, so one
//! peer's values (or one run's) cannot crowd out the others'; a run's values are forgotten when
//! it ends here. Values for a request that does not run here (yet) are *early*: they have a
//! smaller share of their own per sender and are kept [`EARLY_TTL`], so runs sent to one node
//! only, whose values every other node receives, cannot take the share the runs here need.
//! One request runs at most once at a time on a node ([`Mailbox::begin`]): a second run would
//! read the first's values, and clear them when it ended first. Uses nothing else of the crate.

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

/// Longest topic of an early value (a topic is `once/…`, `collect/…` with the name the action
/// chose); an early value with a longer one is dropped.
const EARLY_TOPIC_BYTES: usize = 256;

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
    /// Per sender: the slots it put early values in, oldest first. Entries whose value is gone
    /// or whose request runs since are skipped when evicting, dropped on every sweep, and
    /// compacted away when a queue passes four shares; topics are at most [`EARLY_TOPIC_BYTES`].
    early_order: HashMap<u32, VecDeque<([u8; 16], String)>>,
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

    /// Whether `from`'s early value for `key` is still held, early.
    fn holds_early(&self, from: u32, key: &([u8; 16], String)) -> bool {
        !self.running.contains(&key.0)
            && self
                .slots
                .get(key)
                .is_some_and(|(_, values)| values.contains_key(&from))
    }

    /// Forgets `from`'s oldest early value; false if it has none. Amortized O(1): each queued
    /// entry is looked at once.
    fn evict_oldest_early(&mut self, from: u32) -> bool {
        while let Some(key) = self.early_order.get_mut(&from).and_then(VecDeque::pop_front) {
            if !self.holds_early(from, &key) {
                continue;
            }
            let Some((_, values)) = self.slots.get_mut(&key) else {
                continue;
            };
            let Some(value) = values.remove(&from) else { continue };
            if values.is_empty() {
                self.slots.remove(&key);
            }
            self.release(key.0, &key.1, &BTreeMap::from([(from, value)]));
            if !self.early.contains_key(&from) {
                self.early_order.remove(&from);
            }
            return true;
        }
        self.early_order.remove(&from);
        false
    }

    /// Forgets one early value of the sender holding the most; false if there are none.
    /// O(senders).
    fn evict_early_of_most(&mut self) -> bool {
        let most = self
            .early
            .iter()
            .max_by_key(|(_, (count, _))| *count)
            .map(|(from, _)| *from);
        most.is_some_and(|most| self.evict_oldest_early(most))
    }

    /// Notes that `from` put an early value in slot `key`.
    fn queue_early(&mut self, from: u32, key: ([u8; 16], String)) {
        self.early_order.entry(from).or_default().push_back(key);
        if self
            .early_order
            .get(&from)
            .is_some_and(|q| q.len() > 4 * EARLY_VALUES_PER_SENDER)
        {
            self.compact_order(from);
        }
    }

    /// Drops `from`'s queue entries whose value is gone or no longer early, and repeats (a
    /// request that started and ended here and whose value came again is queued twice).
    /// O(its entries).
    fn compact_order(&mut self, from: u32) {
        if let Some(mut queue) = self.early_order.remove(&from) {
            let mut seen = HashSet::new();
            queue.retain(|key| self.holds_early(from, key) && seen.insert(key.clone()));
            if !queue.is_empty() {
                self.early_order.insert(from, queue);
            }
        }
    }

    /// Drops the queues of senders with no early values left.
    fn prune_order(&mut self) {
        let early = &self.early;
        self.early_order.retain(|from, _| early.contains_key(from));
    }

    /// `request` starts here: the early values it has move to their senders' running shares.
    fn promote(&mut self, request: [u8; 16]) {
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
        self.prune_order();
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
    /// `from` already holds its share of values or bytes. An early value (for a request not
    /// running here) pushes out its sender's oldest early value when its sender's early share
    /// is full; a value that finds every slot taken pushes out an early value of the sender
    /// holding the most. Nothing is pushed out for a value that would be refused anyway.
    pub fn put(&self, request: [u8; 16], topic: &str, from: u32, value: String) {
        let stored = self
            .held
            .lock()
            .is_ok_and(|mut held| self.put_held(&mut held, request, topic, from, value));
        if stored {
            self.changed.notify_waiters();
        }
    }

    fn put_held(&self, held: &mut Held, request: [u8; 16], topic: &str, from: u32, value: String) -> bool {
        let key = (request, topic.to_string());
        if held
            .slots
            .get(&key)
            .is_some_and(|(_, values)| values.contains_key(&from))
        {
            return false;
        }
        let running = held.running.contains(&request);
        let cost = value.len() + topic.len() + VALUE_OVERHEAD;
        let run = held.runs.get(&(from, request)).copied().unwrap_or(0);
        let (most_values, most_bytes) = if running {
            (VALUES_PER_SENDER, self.bytes_per_sender)
        } else {
            (EARLY_VALUES_PER_SENDER, self.bytes_per_sender / 4)
        };
        let share_of = |held: &Held| {
            let share = if running { &held.senders } else { &held.early };
            share.get(&from).copied().unwrap_or((0, 0))
        };
        let share_full = |(count, bytes): (usize, usize)| count >= most_values || bytes + cost > most_bytes;
        let admissible = cost <= most_bytes
            && run + cost <= BYTES_PER_SENDER_AND_REQUEST
            && (running || topic.len() <= EARLY_TOPIC_BYTES)
            && (!running || !share_full(share_of(held)));
        if admissible && !running {
            while share_full(share_of(held)) && held.evict_oldest_early(from) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if admissible {
            for _ in 0..64 {
                if held.slots.len() < MAILBOX_SLOTS || held.slots.contains_key(&key) || !held.evict_early_of_most() {
                    break;
                }
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (count, bytes) = share_of(held);
        if !admissible
            || share_full((count, bytes))
            || (held.slots.len() >= MAILBOX_SLOTS && !held.slots.contains_key(&key))
        {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
            // One line per thousand: a flooding peer cannot write a log line per message.
            if dropped % 1000 == 0 {
                tracing::warn!(
                    from,
                    early = !running,
                    dropped = dropped + 1,
                    "action mailbox full for this sender; dropping values (sigil_action_mailbox_dropped_total)"
                );
            }
            return false;
        }
        let share = if running { &mut held.senders } else { &mut held.early };
        share.insert(from, (count + 1, bytes + cost));
        // Read again: the evictions above may have taken some of this request's own values.
        let run = held.runs.get(&(from, request)).copied().unwrap_or(0);
        held.runs.insert((from, request), run + cost);
        held.slots
            .entry(key.clone())
            .or_insert_with(|| (Instant::now(), BTreeMap::new()))
            .1
            .insert(from, value);
        if !running {
            held.queue_early(from, key);
        }
        true
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

    /// Forgets old values: early ones (for requests not running here) after [`EARLY_TTL`]; and
    /// the queue entries of early values gone.
    pub fn sweep(&self) {
        if let Ok(mut held) = self.held.lock() {
            Self::remove_held(&mut held, |running, _, at| {
                at.elapsed() >= if running { MAILBOX_TTL } else { EARLY_TTL }
            });
            let senders: Vec<u32> = held.early_order.keys().copied().collect();
            for from in senders {
                held.compact_order(from);
            }
        }
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

    /// The adversary: floods of early values (many requests of one value, one request of many),
    /// duplicates, oversized values and long topics, then values after a run ended; a run's
    /// value that arrives after the flood still gets in, nothing the flood could not take is
    /// pushed out, and every count returns to zero.
    #[test]
    fn early_floods_push_out_only_older_early_values_and_every_count_returns_to_zero() {
        let mailbox = Mailbox::new(32 << 20);
        for i in 0..600u32 {
            let mut r = [9u8; 16];
            r[..4].copy_from_slice(&i.to_be_bytes());
            mailbox.put(r, "c", 0, "x".into());
        }
        for i in 0..600 {
            mailbox.put([6; 16], &format!("collect/x/f{i}"), 0, "x".into());
        }
        mailbox.put([5; 16], "once/x/tx", 0, "s".repeat(200));
        assert!(mailbox.begin([5; 16]));
        assert_eq!(
            mailbox.snapshot([5; 16], "once/x/tx").len(),
            1,
            "the newest early value stays"
        );
        let early = |m: &Mailbox| m.held.lock().unwrap().early.get(&0).map_or(0, |e| e.0);
        let before = early(&mailbox);
        assert_eq!(before, EARLY_VALUES_PER_SENDER - 1);
        // Duplicates, a value too large for any early share, a long topic, a value over the
        // per-request bytes: nothing is pushed out for them.
        for _ in 0..1000 {
            mailbox.put([6; 16], "collect/x/f599", 0, "x".into());
        }
        mailbox.put([6; 16], "big", 0, "v".repeat(9 << 20));
        mailbox.put([6; 16], &"t".repeat(EARLY_TOPIC_BYTES + 1), 0, "x".into());
        assert_eq!(early(&mailbox), before);
        assert_eq!(mailbox.snapshot([6; 16], "collect/x/f599").len(), 1);
        // The queue of early values stays within four shares however many come and go.
        for i in 0..5000u32 {
            let mut r = [8u8; 16];
            r[..4].copy_from_slice(&i.to_be_bytes());
            mailbox.put(r, "c", 0, "x".into());
        }
        assert!(mailbox.held.lock().unwrap().early_order[&0].len() <= 4 * EARLY_VALUES_PER_SENDER + 1);
        // The run ends; a value still arriving for it; then the sweep once the early ones are old.
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
        assert!(held.early_order.is_empty(), "{:?}", held.early_order.len());
    }

    /// The adversary: every slot taken by other senders' early values, so that a sender below
    /// its share (the runOnce leader, flooded nowhere) could put nothing.
    #[test]
    fn a_full_mailbox_makes_room_for_a_sender_below_its_share_and_not_for_a_refused_value() {
        let mailbox = Mailbox::new(32 << 20);
        for from in 1..=20u32 {
            for i in 0..500 {
                mailbox.put([from as u8; 16], &format!("f{i}"), from, "x".into());
            }
        }
        assert_eq!(mailbox.held.lock().unwrap().slots.len(), MAILBOX_SLOTS);
        mailbox.put([200; 16], "once/x/tx", 0, "sent".into());
        assert!(mailbox.begin([200; 16]));
        assert_eq!(mailbox.snapshot([200; 16], "once/x/tx").len(), 1);
        // A value refused anyway (over 2 MiB for one request) pushes nothing out.
        let early: usize = mailbox.held.lock().unwrap().early.values().map(|e| e.0).sum();
        mailbox.put([200; 16], "huge", 99, "v".repeat(3 << 20));
        let after: usize = mailbox.held.lock().unwrap().early.values().map(|e| e.0).sum();
        assert_eq!(after, early);
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

    /// What the counts must be: recomputed from the slots, each value in the share of whether
    /// its request runs here.
    fn check_counts(mailbox: &Mailbox) {
        let held = mailbox.held.lock().unwrap();
        let mut senders: HashMap<u32, (usize, usize)> = HashMap::new();
        let mut early: HashMap<u32, (usize, usize)> = HashMap::new();
        let mut runs: HashMap<(u32, [u8; 16]), usize> = HashMap::new();
        for ((request, topic), (_, values)) in &held.slots {
            for (from, value) in values {
                let cost = value.len() + topic.len() + VALUE_OVERHEAD;
                let share = if held.running.contains(request) {
                    &mut senders
                } else {
                    &mut early
                };
                let entry = share.entry(*from).or_insert((0, 0));
                entry.0 += 1;
                entry.1 += cost;
                *runs.entry((*from, *request)).or_insert(0) += cost;
            }
        }
        assert_eq!(held.senders, senders);
        assert_eq!(held.early, early);
        assert_eq!(held.runs, runs);
        assert!(held.slots.len() <= MAILBOX_SLOTS);
        for (from, (count, _)) in &held.early {
            assert!(*count <= EARLY_VALUES_PER_SENDER, "sender {from}");
        }
        for (from, queue) in &held.early_order {
            assert!(queue.len() <= 4 * EARLY_VALUES_PER_SENDER + 1, "sender {from}");
        }
    }

    /// Random puts, starts, ends and sweeps: the counts always equal what the slots hold.
    #[test]
    fn counts_always_match_the_slots_under_random_operations() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Small shares first (bytes bind), then large ones with many senders and keys (counts,
        // the slot cap and the make-room evictions bind).
        for (bytes, senders, requests, topics, steps, ends, sweeps) in [
            (64 << 10, 4, 12, 40, 20_000, 10, 97),
            (64 << 20, 24, 100, 1000, 100_000, 400, 40_009),
        ] {
            let mailbox = Mailbox::new(bytes);
            let mut most_slots = 0;
            for step in 0..steps {
                let request = [(rng.next_u32() % requests) as u8; 16];
                match rng.next_u32() % ends {
                    0 => {
                        mailbox.begin(request);
                    }
                    1 => mailbox.finish(request),
                    2 if step % sweeps == 0 => {
                        if let Ok(mut held) = mailbox.held.lock() {
                            for (at, _) in held.slots.values_mut() {
                                *at = at.checked_sub(EARLY_TTL).unwrap_or(*at);
                            }
                        }
                        mailbox.sweep();
                    }
                    _ => {
                        let topic = format!("t{}", rng.next_u32() % topics);
                        let from = rng.next_u32() % senders;
                        let len = [1usize, 1, 100, 4000, 20_000, 3 << 20][(rng.next_u32() % 6) as usize];
                        mailbox.put(request, &topic, from, "v".repeat(len));
                    }
                }
                if step % 500 == 0 {
                    check_counts(&mailbox);
                }
                most_slots = most_slots.max(mailbox.held.lock().unwrap().slots.len());
            }
            check_counts(&mailbox);
            if senders > 4 {
                assert_eq!(most_slots, MAILBOX_SLOTS, "the slot cap was reached");
            }
        }
    }

    /// The adversary: a client re-running one request on a node again and again (it picks the
    /// request id), so that the same early value is queued once per run.
    #[test]
    fn a_request_run_again_and_again_does_not_grow_the_early_queue() {
        let mailbox = Mailbox::new(32 << 20);
        mailbox.put([9; 16], "keep", 0, "x".into());
        for _ in 0..3000 {
            mailbox.put([1; 16], "t", 0, "x".into());
            mailbox.begin([1; 16]);
            mailbox.finish([1; 16]);
        }
        mailbox.put([1; 16], "t", 0, "x".into());
        assert!(mailbox.held.lock().unwrap().early_order[&0].len() <= 4 * EARLY_VALUES_PER_SENDER + 1);
        mailbox.sweep();
        assert_eq!(mailbox.held.lock().unwrap().early_order[&0].len(), 2);
        check_counts(&mailbox);
    }
}
