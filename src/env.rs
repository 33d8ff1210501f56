//! Settings read from the environment: durations in milliseconds (tests shorten timers this way),
//! with one clear error for a value that is not a number.

use std::time::Duration;

/// `name` as a number of milliseconds, or `default` when it is not set.
pub fn millis(name: &str, default: Duration) -> anyhow::Result<Duration> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map(Duration::from_millis)
            .map_err(|e| anyhow::anyhow!("{name}={value:?} is not a number of milliseconds: {e}")),
        Err(_) => Ok(default),
    }
}
