//! What one client process learned about its member's coordinators, left for the next one: the
//! coordinator that led, and the ones a dial got no answer from, with when. Every CLI command is
//! a process of its own; without this each would dial a coordinator that is down (a machine off,
//! a partition) first, and wait the whole dial limit for it, again and again.
//!
//! Kept in the profile directory as `coordinators.json`, replaced atomically (a temporary file
//! renamed over it). Hints only order the dials: a stale one costs one redirect or one dial, a
//! missing or unreadable file is ignored, and every connection is still checked by mutual TLS.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const HINTS_FILE: &str = "coordinators.json";

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hints {
    /// The endpoint that last answered as the leader.
    #[serde(default)]
    pub leader: Option<String>,
    /// Endpoints whose last dial got no answer in time, and when (Unix ms).
    #[serde(default)]
    pub unreachable: BTreeMap<String, i64>,
}

impl Hints {
    /// The hints in `dir`; none if there are none or they cannot be read.
    pub fn load(dir: &Path) -> Hints {
        let path = dir.join(HINTS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::debug!(path = %path.display(), %error, "ignoring unreadable coordinator hints");
                Hints::default()
            }),
            Err(_) => Hints::default(),
        }
    }

    /// Writes the hints to `dir`; a failure is only logged (the next process dials as if there
    /// were none).
    pub fn save(&self, dir: &Path) {
        let result = (|| -> std::io::Result<()> {
            let tmp = dir.join(format!("{HINTS_FILE}.{}.tmp", std::process::id()));
            std::fs::write(
                &tmp,
                serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
            )?;
            std::fs::rename(&tmp, dir.join(HINTS_FILE))
        })();
        if let Err(error) = result {
            tracing::debug!(dir = %dir.display(), %error, "could not save coordinator hints");
        }
    }

    /// How long ago each endpoint was found unreachable, as of `now_unix_ms`, keeping those less
    /// than `within` ago (a time in the future counts as now).
    pub fn unreachable_within(&self, now_unix_ms: i64, within: Duration) -> Vec<(String, Duration)> {
        self.unreachable
            .iter()
            .filter_map(|(endpoint, at)| {
                let ago = Duration::from_millis(u64::try_from(now_unix_ms.saturating_sub(*at)).unwrap_or(0));
                (ago < within).then(|| (endpoint.clone(), ago))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_survive_a_round_trip_and_garbage_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Hints::load(dir.path()), Hints::default(), "no file: no hints");
        let hints = Hints {
            leader: Some("10.0.0.2:7100".into()),
            unreachable: BTreeMap::from([("10.0.0.1:7100".into(), 1_000)]),
        };
        hints.save(dir.path());
        assert_eq!(Hints::load(dir.path()), hints);
        std::fs::write(dir.path().join(HINTS_FILE), b"{ not json").expect("write");
        assert_eq!(Hints::load(dir.path()), Hints::default());
    }

    #[test]
    fn only_recent_unreachable_marks_count() {
        let hints = Hints {
            leader: None,
            unreachable: BTreeMap::from([
                ("old:1".into(), 1_000),
                ("recent:1".into(), 50_000),
                ("future:1".into(), 90_000),
            ]),
        };
        let mut recent = hints.unreachable_within(60_000, Duration::from_secs(30));
        recent.sort();
        assert_eq!(
            recent,
            vec![
                ("future:1".to_string(), Duration::ZERO),
                ("recent:1".to_string(), Duration::from_secs(10)),
            ]
        );
    }
}
