//! Sigil's fuzz driver: structured random inputs for the decoders a peer or client reaches, run as
//! ordinary tests on stable Rust (`cargo fuzz` needs nightly).
//!
//! A target is a name, a few valid encodings to start from (the corpus), and a closure that feeds
//! one input to a decoder. Each case draws its input from a seeded RNG: purely random bytes, or a
//! corpus entry put through a few mutations (bit flips, truncation, inserted and deleted runs, a
//! run repeated, splices with another entry, little- and big-endian huge numbers over any offset,
//! dictionary tokens; for JSON, edits of the parsed value: a leaf swapped for another type or a
//! huge number, keys removed, unknown or duplicated keys, arrays lengthened) so the decoder gets
//! past its first check. [`Target::run_typed`] builds any [`Arbitrary`] value from the bytes
//! instead.
//!
//! A case fails when the closure panics, or when it allocates more than **64 × input length +
//! 1 MiB** — in one request or live at once — on the calling thread (see [`alloc`]: the counting
//! allocator this crate installs as the global allocator of every binary that links it). A
//! panic is reported with the target, the case's seed and the input in hex; an allocation above
//! the bound is refused and aborts the binary after printing the same seed.
//!
//! Budget, from the environment:
//! - `SIGIL_FUZZ_CASES` — cases per target (default 10 000; a slow target divides it, see
//!   [`Target::divide_cases`]). The cases are the same on every run.
//! - `SIGIL_FUZZ_SECONDS` — instead, run each target for that many seconds, from a fresh seed
//!   (`make fuzz SECONDS=…`).
//! - `SIGIL_FUZZ_SEED` — replay the one case with that seed (as printed on failure).
//!
//! Depends on nothing in Sigil, and only test code depends on it.

pub mod alloc;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

pub use arbitrary::{self, Arbitrary, Unstructured};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;

/// Bytes a case may allocate per byte of input.
pub const ALLOC_PER_INPUT_BYTE: usize = 64;
/// Bytes a case may allocate whatever its input.
pub const ALLOC_BASE: usize = 1 << 20;

/// The allocation bound of a case whose input is `len` bytes long.
pub fn alloc_bound(len: usize) -> usize {
    len.saturating_mul(ALLOC_PER_INPUT_BYTE).saturating_add(ALLOC_BASE)
}

/// One fuzz target: a name, a corpus to mutate, and a budget.
#[derive(Debug, Clone)]
pub struct Target {
    name: &'static str,
    corpus: Vec<Vec<u8>>,
    json: Vec<Value>,
    dict: Vec<Vec<u8>>,
    max_random_len: usize,
    divide_cases: u64,
}

/// Where the budget of a run comes from.
#[derive(Debug, Clone, Copy)]
enum Budget {
    Cases(u64),
    Seconds(Duration),
    Replay(u64),
}

impl Target {
    /// A target with no corpus yet (random inputs only).
    pub fn new(name: &str) -> Self {
        Self {
            // One leak per target: the allocator names the target without allocating.
            name: Box::leak(name.to_owned().into_boxed_str()),
            corpus: Vec::new(),
            json: Vec::new(),
            dict: Vec::new(),
            max_random_len: 512,
            divide_cases: 1,
        }
    }

    /// Adds valid encodings to mutate.
    pub fn corpus<I, B>(mut self, entries: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        self.corpus.extend(entries.into_iter().map(|b| b.as_ref().to_vec()));
        self
    }

    /// Adds valid JSON documents: mutated as values (then sometimes as bytes), and kept as bytes
    /// in the corpus too.
    pub fn json<I: IntoIterator<Item = Value>>(mut self, values: I) -> Self {
        for value in values {
            self.corpus.push(value.to_string().into_bytes());
            self.json.push(value);
        }
        self
    }

    /// Adds tokens the byte mutations insert or overwrite with (keywords, separators, prefixes).
    pub fn dict<I, B>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        self.dict.extend(tokens.into_iter().map(|b| b.as_ref().to_vec()));
        self
    }

    /// The longest purely random input (default 512 bytes).
    pub fn max_random_len(mut self, len: usize) -> Self {
        self.max_random_len = len;
        self
    }

    /// Runs `SIGIL_FUZZ_CASES / divisor` cases instead of `SIGIL_FUZZ_CASES`, for a target whose
    /// decoder does expensive work per case (pairings, Noise handshakes). The caller says why.
    pub fn divide_cases(mut self, divisor: u64) -> Self {
        self.divide_cases = divisor.max(1);
        self
    }

    /// Feeds inputs to `f` within the budget; panics on the first failing case.
    pub fn run(&self, f: impl Fn(&[u8])) {
        self.run_with(|| (), u64::MAX, |(), bytes| f(bytes));
    }

    /// Like [`run`](Self::run), for a decoder with state (a protocol run, an endpoint): `init`
    /// makes a fresh state before the first case and again every `every` cases, outside the
    /// allocation accounting, and `f` feeds one input to it.
    pub fn run_with<S>(&self, init: impl Fn() -> S, every: u64, f: impl Fn(&mut S, &[u8])) {
        let budget = budget(self.divide_cases);
        let base = match budget {
            Budget::Cases(_) => fnv(self.name.as_bytes()),
            Budget::Seconds(_) => fresh_seed(),
            Budget::Replay(seed) => seed,
        };
        let start = Instant::now();
        let mut case = 0u64;
        let mut state = init();
        loop {
            match budget {
                Budget::Cases(n) if case >= n => break,
                Budget::Seconds(d) if start.elapsed() >= d => break,
                Budget::Replay(_) if case >= 1 => break,
                _ => {}
            }
            let seed = match budget {
                Budget::Replay(seed) => seed,
                _ => splitmix(base ^ splitmix(case)),
            };
            if case > 0 && case % every.max(1) == 0 {
                state = init();
            }
            let input = self.input(seed);
            self.one(seed, &input, &mut |bytes| f(&mut state, bytes));
            case += 1;
        }
        eprintln!(
            "sigil-fuzz: target `{}`: {case} cases in {:.1?}",
            self.name,
            start.elapsed()
        );
    }

    /// Like [`run`](Self::run), with a typed value built from random bytes by [`Arbitrary`].
    pub fn run_typed<T: for<'a> Arbitrary<'a>>(&self, f: impl Fn(T)) {
        self.run(|bytes| {
            let mut u = Unstructured::new(bytes);
            if let Ok(value) = T::arbitrary(&mut u) {
                f(value);
            }
        });
    }

    /// Runs one given input (a regression case) under the same checks as a fuzzed one.
    pub fn check_input(&self, input: &[u8], f: impl Fn(&[u8])) {
        self.one(0, input, &mut |bytes| f(bytes));
    }

    fn one(&self, seed: u64, input: &[u8], f: &mut dyn FnMut(&[u8])) {
        let bound = alloc_bound(input.len());
        alloc::begin(self.name, seed, bound);
        let outcome = catch_unwind(AssertUnwindSafe(|| f(input)));
        let usage = alloc::end();
        let shown = hex(input.get(..input.len().min(4096)).unwrap_or_default());
        if outcome.is_err() {
            fail(format!(
                "sigil-fuzz: target `{}` panicked on a {}-byte input; replay with SIGIL_FUZZ_SEED={seed:#x}\ninput: {shown}",
                self.name,
                input.len()
            ));
        }
        // The allocator refuses (and aborts) beyond the bound; a peak at the bound is still a
        // failure worth a readable message.
        if usage.peak > bound || usage.largest > bound {
            fail(format!(
                "sigil-fuzz: target `{}` allocated {usage:?} on a {}-byte input (bound {bound}); replay with SIGIL_FUZZ_SEED={seed:#x}\ninput: {shown}",
                self.name,
                input.len()
            ));
        }
    }

    /// The input of the case with `seed`.
    fn input(&self, seed: u64) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let choice = below(&mut rng, 10);
        if self.corpus.is_empty() || choice == 0 {
            let len = random_len(&mut rng, self.max_random_len);
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            return bytes;
        }
        let mut bytes = if !self.json.is_empty() && choice <= 4 {
            let mut value = pick(&mut rng, &self.json).clone();
            for _ in 0..=below(&mut rng, 3) {
                mutate_json(&mut rng, &mut value, 0);
            }
            let mut text = value.to_string().into_bytes();
            if below(&mut rng, 4) == 0 {
                duplicate_first_key(&mut rng, &mut text);
            }
            if below(&mut rng, 3) != 0 {
                return text;
            }
            text
        } else {
            pick(&mut rng, &self.corpus).clone()
        };
        for _ in 0..=below(&mut rng, 4) {
            self.mutate_bytes(&mut rng, &mut bytes);
        }
        bytes
    }

    fn mutate_bytes(&self, rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
        let at = |rng: &mut ChaCha8Rng, bytes: &Vec<u8>| below(rng, bytes.len() as u64 + 1) as usize;
        match below(rng, 11) {
            0 => {
                let i = at(rng, bytes);
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << below(rng, 8);
                }
            }
            1 => {
                let i = at(rng, bytes);
                if let Some(b) = bytes.get_mut(i) {
                    *b = *pick(rng, &[0u8, 0xff, 0x7f, 0x80, 0x01, b'0', b'"', b'{', b'-']);
                }
            }
            2 => {
                let len = at(rng, bytes);
                bytes.truncate(len);
            }
            3 => {
                let i = at(rng, bytes);
                let n = random_len(rng, 32);
                let mut run = vec![0u8; n];
                rng.fill_bytes(&mut run);
                bytes.splice(i..i, run);
            }
            4 => {
                let i = at(rng, bytes);
                let j = (i + random_len(rng, 64)).min(bytes.len());
                bytes.drain(i..j);
            }
            5 => {
                // A run repeated in place: duplicated fields and lengths that no longer match.
                let i = at(rng, bytes);
                let j = (i + random_len(rng, 64)).min(bytes.len());
                let run = bytes.get(i..j).unwrap_or_default().to_vec();
                let times = 1 + below(rng, 4) as usize;
                for _ in 0..times {
                    bytes.splice(j..j, run.iter().copied());
                }
            }
            6 => {
                if !self.corpus.is_empty() {
                    let other = pick(rng, &self.corpus).clone();
                    let i = at(rng, bytes);
                    let j = below(rng, other.len() as u64 + 1) as usize;
                    bytes.truncate(i);
                    bytes.extend_from_slice(other.get(j..).unwrap_or_default());
                }
            }
            7 | 8 => {
                // A length or count field edited to a huge or boundary value, either byte order.
                let huge: u64 = *pick(
                    rng,
                    &[
                        u64::MAX,
                        u32::MAX as u64,
                        1 << 32,
                        0x8000_0000,
                        0xffff,
                        0,
                        1,
                        0x7fff_ffff_ffff_ffff,
                    ],
                );
                let width = *pick(rng, &[1usize, 2, 4, 8]);
                let le = below(rng, 2) == 0;
                let word = if le { huge.to_le_bytes() } else { huge.to_be_bytes() };
                let word: &[u8] = if le {
                    word.get(..width).unwrap_or_default()
                } else {
                    word.get(8 - width..).unwrap_or_default()
                };
                let i = at(rng, bytes);
                let j = (i + width).min(bytes.len());
                bytes.splice(i..j, word.iter().copied());
            }
            9 => {
                if !self.dict.is_empty() {
                    let token = pick(rng, &self.dict).clone();
                    let i = at(rng, bytes);
                    if below(rng, 2) == 0 {
                        bytes.splice(i..i, token);
                    } else {
                        let j = (i + token.len()).min(bytes.len());
                        bytes.splice(i..j, token);
                    }
                }
            }
            _ => {
                let numbers: &[&[u8]] = &[
                    b"18446744073709551616",
                    b"-1",
                    b"1e999",
                    b"0x",
                    b"99999999999999999999999999999999999999999999999999999999999999999999999999999999",
                    b"\xff\xfe",
                    b"\\u0000",
                ];
                let token = *pick(rng, numbers);
                let i = at(rng, bytes);
                bytes.splice(i..i, token.iter().copied());
            }
        }
    }
}

/// Shorthand for `Target::new(name).run(f)`: random inputs only.
pub fn check(name: &str, f: impl Fn(&[u8])) {
    Target::new(name).run(f);
}

/// Edits a JSON value in place: one node, chosen by walking down at random.
fn mutate_json(rng: &mut ChaCha8Rng, value: &mut Value, depth: usize) {
    let descend = depth < 8 && below(rng, 3) != 0;
    match value {
        Value::Object(map) if descend && !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = pick(rng, &keys).clone();
            match below(rng, 6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let extra = format!("{key}{}", below(rng, 10));
                    map.insert(extra, random_scalar(rng));
                }
                _ => {
                    if let Some(child) = map.get_mut(&key) {
                        mutate_json(rng, child, depth + 1);
                    }
                }
            }
            return;
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let i = below(rng, items.len() as u64) as usize;
            match below(rng, 5) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    // Many copies: long arrays of a valid element.
                    let copy = items.get(i).cloned().unwrap_or(Value::Null);
                    let n = random_len(rng, 200);
                    items.extend(std::iter::repeat_n(copy, n));
                }
                _ => {
                    if let Some(child) = items.get_mut(i) {
                        mutate_json(rng, child, depth + 1);
                    }
                }
            }
            return;
        }
        _ => {}
    }
    *value = match (value.take(), below(rng, 6)) {
        (Value::String(s), 0) => Value::String(s.repeat(random_len(rng, 64) + 1)),
        (Value::String(s), 1) => {
            let cut = below(rng, s.len() as u64 + 1) as usize;
            Value::String(s.get(..cut).unwrap_or_default().to_owned())
        }
        (Value::String(s), 2) => Value::String(format!("{s}{}", random_text(rng))),
        (Value::Number(_), 0) => Value::from(u64::MAX),
        (v, 3) => Value::Array(vec![v]),
        (_, _) => random_scalar(rng),
    };
}

fn random_scalar(rng: &mut ChaCha8Rng) -> Value {
    match below(rng, 10) {
        0 => Value::Null,
        1 => Value::Bool(below(rng, 2) == 0),
        2 => Value::from(u64::MAX),
        3 => Value::from(i64::MIN),
        4 => Value::from(-1),
        5 => Value::from(1.5),
        6 => Value::Object(Default::default()),
        7 => Value::Array(Vec::new()),
        8 => Value::String(String::new()),
        _ => Value::String(random_text(rng)),
    }
}

fn random_text(rng: &mut ChaCha8Rng) -> String {
    let pieces = [
        "0x", "00", "ff", "Qm", "bafy", "\u{0}", "é", "\u{202e}", "-", ":", "1", "9", "a", "Z", " ", "\n", "<", ">",
        "=", "\"",
    ];
    (0..random_len(rng, 24)).map(|_| *pick(rng, &pieces)).collect()
}

/// Writes the first key of a top-level object twice (`{"k":v,"k":v,…}`): serde refuses or
/// keeps one, but never both, and a decoder must not do otherwise.
fn duplicate_first_key(rng: &mut ChaCha8Rng, text: &mut Vec<u8>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(text) else {
        return;
    };
    let Some((key, value)) = map.iter().next() else {
        return;
    };
    let other = if below(rng, 2) == 0 {
        value.clone()
    } else {
        random_scalar(rng)
    };
    let pair = format!("{}:{},", Value::String(key.clone()), other);
    if text.first() == Some(&b'{') {
        text.splice(1..1, pair.into_bytes());
    }
}

fn budget(divide_cases: u64) -> Budget {
    if let Some(seed) = env("SIGIL_FUZZ_SEED").and_then(|s| parse_u64(&s)) {
        return Budget::Replay(seed);
    }
    if let Some(secs) = env("SIGIL_FUZZ_SECONDS").and_then(|s| s.parse::<f64>().ok()) {
        if secs.is_finite() && secs > 0.0 {
            return Budget::Seconds(Duration::from_secs_f64(secs));
        }
    }
    let cases = env("SIGIL_FUZZ_CASES").and_then(|s| parse_u64(&s)).unwrap_or(10_000);
    Budget::Cases((cases / divide_cases).max(1))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.trim().is_empty())
}

fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim().replace('_', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn fresh_seed() -> u64 {
    let mut bytes = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[track_caller]
fn fail(message: String) -> ! {
    #[allow(clippy::panic)] // Failing the test is the point.
    {
        panic!("{message}")
    }
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        rng.next_u64() % n
    }
}

/// A length up to `max`, mostly short: half of them below 16.
fn random_len(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let cap = if below(rng, 2) == 0 { max.min(16) } else { max };
    below(rng, cap as u64 + 1) as usize
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    let i = below(rng, items.len() as u64) as usize;
    #[allow(clippy::indexing_slicing)] // Every caller passes a non-empty slice.
    &items[i]
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_panicking_decoder_fails_with_its_seed() {
        let result = catch_unwind(|| {
            Target::new("panics").corpus([b"abc"]).run(|b| {
                if b.len() > 3 {
                    panic!("too long");
                }
            })
        });
        let message = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("SIGIL_FUZZ_SEED=0x"), "{message}");
    }

    #[test]
    fn an_allocation_within_the_bound_passes_and_is_counted() {
        Target::new("within").check_input(&[0; 100], |b| {
            let v = vec![1u8; b.len() * ALLOC_PER_INPUT_BYTE];
            assert_eq!(v.len(), 6400);
        });
    }

    /// Run only as a child of the test below: asks for 4 GiB while a case runs.
    #[test]
    fn child_declaring_four_gib() {
        if std::env::var_os("SIGIL_FUZZ_CHILD").is_none() {
            return;
        }
        Target::new("four-gib").check_input(&[0xff; 8], |b| {
            let declared = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
            let v: Vec<u8> = Vec::with_capacity(declared);
            std::hint::black_box(v);
        });
    }

    #[test]
    fn an_allocation_above_the_bound_is_refused_and_names_the_target() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::child_declaring_four_gib",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SIGIL_FUZZ_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("target `four-gib` asked for 4294967295 bytes") && stderr.contains("SIGIL_FUZZ_SEED=0x0"),
            "{stderr}"
        );
    }

    #[test]
    fn inputs_are_the_same_for_the_same_seed_and_mutate_the_corpus() {
        let target = Target::new("same")
            .corpus([b"{\"a\":1}".to_vec()])
            .json([serde_json::json!({"a": [1, "x"]})]);
        assert_eq!(target.input(7), target.input(7));
        let changed = (0..100).filter(|s| target.input(*s) != b"{\"a\":1}").count();
        assert!(changed > 50, "{changed}");
    }
}
