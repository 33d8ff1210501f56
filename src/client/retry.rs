//! Retry timing for client RPCs: exponential backoff with jitter under an overall deadline.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up (with an "unknown outcome" error) after this long.
    pub deadline: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // An election takes well under a second; 30 s covers a leader crash and restart.
        RetryPolicy {
            deadline: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `attempt` (1-based), with up to 50% jitter so clients that failed
    /// together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let base = self
            .backoff_initial
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_max);
        let jitter = rand::random::<f64>() * 0.5;
        base.mul_f64(1.0 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        assert!(policy.backoff(1) >= policy.backoff_initial);
        assert!(policy.backoff(1) < policy.backoff_initial * 2);
        assert!(policy.backoff(30) <= policy.backoff_max.mul_f64(1.5));
        assert!(policy.backoff(30) >= policy.backoff_max);
    }
}
