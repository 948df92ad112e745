//! Per-principal request rates: a token bucket per wallet or PKP on sign, execute, decrypt and
//! session grants, so one caller cannot exhaust a node's presignatures or action slots however
//! many addresses it sends from. Sans-IO (the caller passes the time); bounded in entries.
//! Uses nothing else of the crate.

use std::collections::HashMap;
use std::time::Instant;

/// Buckets by principal ([`super::Principal::rate_key`]).
#[derive(Debug)]
pub struct PrincipalLimits {
    rate: f64,
    burst: f64,
    capacity: usize,
    buckets: HashMap<[u8; 32], (f64, Instant)>,
}

impl PrincipalLimits {
    /// `rate` requests a second, `burst` at once, at most `capacity` principals remembered (the
    /// one idle longest is forgotten first, which only ever refills its bucket).
    pub fn new(rate: u32, burst: u32, capacity: usize) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            capacity: capacity.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Principals remembered now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Spends one request of `key`: `Err(seconds)` until the next one is allowed.
    pub fn spend(&mut self, key: [u8; 32], now: Instant) -> Result<(), f64> {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            if let Some(oldest) = self.buckets.iter().min_by_key(|(_, (_, last))| *last).map(|(k, _)| *k) {
                self.buckets.remove(&oldest);
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let (tokens, last) = self.buckets.entry(key).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens < 1.0 {
            return Err((1.0 - *tokens) / rate);
        }
        *tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_principal_gets_its_burst_then_its_rate_and_others_are_untouched() {
        let mut limits = PrincipalLimits::new(2, 3, 16);
        let t0 = Instant::now();
        let a = [1u8; 32];
        for _ in 0..3 {
            limits.spend(a, t0).unwrap();
        }
        let wait = limits.spend(a, t0).unwrap_err();
        assert!((wait - 0.5).abs() < 1e-9, "{wait}");
        // another principal is not slowed by the first
        limits.spend([2u8; 32], t0).unwrap();
        // half a second later one more for `a`
        limits.spend(a, t0 + Duration::from_millis(500)).unwrap();
        assert!(limits.spend(a, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_idlest() {
        let mut limits = PrincipalLimits::new(1, 1, 4);
        let t0 = Instant::now();
        for i in 0..100u8 {
            limits.spend([i; 32], t0 + Duration::from_millis(u64::from(i))).unwrap();
            assert!(limits.tracked() <= 4);
        }
        // the most recent stays limited
        assert!(limits.spend([99; 32], t0 + Duration::from_millis(99)).is_err());
    }
}
