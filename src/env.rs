//! Settings read from the environment (tests shorten timers and lifetimes this way), with one
//! clear error for a value that is not a number.

use std::str::FromStr;
use std::time::Duration;

/// `name` as a number, or `None` when it is not set.
pub fn number<T>(name: &str) -> anyhow::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{name}={value:?} is not a whole number: {e}")),
        Err(_) => Ok(None),
    }
}

/// `name` as a number of milliseconds, or `default` when it is not set.
pub fn millis(name: &str, default: Duration) -> anyhow::Result<Duration> {
    Ok(number(name)?.map_or(default, Duration::from_millis))
}
