//! Per-source rate limiting of invite attempts: a token bucket per source IP address.
//!
//! Every attempt costs a token; a source whose bucket is empty is refused until it refills, and
//! each wrong code also costs its sender a fixed delay. So one source can try a few codes in a
//! burst and then only `refill_per_minute` a minute, while an attempt from another source is
//! unaffected. The table of sources is bounded: when full, sources whose buckets are full again
//! (they have nothing to remember) are forgotten first, and if none is, the new source shares
//! the bucket of the unspecified address (an attacker with that many addresses is slowed as one).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts one source may make in a burst.
pub const ATTEMPTS_BURST_DEFAULT: u32 = 10;
/// Tokens added per minute to a source's bucket.
pub const ATTEMPTS_REFILL_PER_MINUTE_DEFAULT: u32 = 10;
/// Sources remembered at once.
pub const SOURCES_TRACKED_MAX: usize = 10_000;
/// How long the answer to a wrong code is held back: it slows a guesser on one connection.
pub const WRONG_CODE_DELAY: Duration = Duration::from_millis(250);

/// The limiter's settings; `from_env` reads `COLLECTIVE_BOOTSTRAP_ATTEMPTS_BURST` and
/// `COLLECTIVE_BOOTSTRAP_ATTEMPTS_PER_MINUTE` (tests use small values).
#[derive(Debug, Clone, Copy)]
pub struct LimiterConfig {
    pub burst: u32,
    pub refill_per_minute: u32,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            burst: ATTEMPTS_BURST_DEFAULT,
            refill_per_minute: ATTEMPTS_REFILL_PER_MINUTE_DEFAULT,
        }
    }
}

impl LimiterConfig {
    pub fn from_env() -> anyhow::Result<LimiterConfig> {
        let mut config = LimiterConfig::default();
        if let Some(burst) = crate::env::number::<u32>("COLLECTIVE_BOOTSTRAP_ATTEMPTS_BURST")? {
            config.burst = burst.max(1);
        }
        if let Some(rate) = crate::env::number::<u32>("COLLECTIVE_BOOTSTRAP_ATTEMPTS_PER_MINUTE")? {
            config.refill_per_minute = rate.max(1);
        }
        Ok(config)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The per-source buckets.
#[derive(Debug)]
pub struct Limiter {
    config: LimiterConfig,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// A refused attempt: how long until the source may try again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Limiter {
    pub fn new(config: LimiterConfig) -> Limiter {
        Limiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for an attempt from `source` at `now`, or says how long to wait.
    pub fn attempt(&self, source: IpAddr, now: Instant) -> Result<(), Throttled> {
        let burst = f64::from(self.config.burst);
        let per_second = f64::from(self.config.refill_per_minute) / 60.0;
        // A poisoned lock means another attempt panicked mid-update of plain numbers; the map
        // is still usable.
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let key = if buckets.contains_key(&source) || make_room(&mut buckets, now, burst, per_second) {
            source
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(Throttled {
                retry_after: Duration::from_secs_f64(missing / per_second),
            })
        }
    }
}

/// Makes room for one more source if the table is full; false if nothing could be forgotten.
fn make_room(buckets: &mut HashMap<IpAddr, Bucket>, now: Instant, burst: f64, per_second: f64) -> bool {
    if buckets.len() < SOURCES_TRACKED_MAX {
        return true;
    }
    buckets.retain(|_, b| {
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens + elapsed * per_second < burst
    });
    buckets.len() < SOURCES_TRACKED_MAX
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn a_burst_is_allowed_then_the_source_waits_for_refill() {
        let limiter = Limiter::new(LimiterConfig {
            burst: 3,
            refill_per_minute: 60,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.attempt(ip(2), start).is_ok());
        }
        let throttled = limiter.attempt(ip(2), start).unwrap_err();
        assert!(throttled.retry_after > Duration::from_millis(900));
        assert!(throttled.retry_after <= Duration::from_secs(1));
        assert!(limiter.attempt(ip(2), start + Duration::from_secs(1)).is_ok());
        assert!(limiter.attempt(ip(2), start + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn another_source_is_not_affected() {
        let limiter = Limiter::new(LimiterConfig {
            burst: 1,
            refill_per_minute: 1,
        });
        let now = Instant::now();
        assert!(limiter.attempt(ip(2), now).is_ok());
        assert!(limiter.attempt(ip(2), now).is_err());
        assert!(limiter.attempt(ip(1), now).is_ok());
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let limiter = Limiter::new(LimiterConfig {
            burst: 2,
            refill_per_minute: 60,
        });
        let now = Instant::now();
        assert!(limiter.attempt(ip(3), now).is_ok());
        let later = now + Duration::from_secs(3600);
        assert!(limiter.attempt(ip(3), later).is_ok());
        assert!(limiter.attempt(ip(3), later).is_ok());
        assert!(limiter.attempt(ip(3), later).is_err());
    }
}
