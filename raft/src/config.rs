//! The Raft timing and snapshot configuration of a metadata group.

use openraft::Config;
use openraft::SnapshotPolicy;

/// Leader heartbeat period, in milliseconds: well under the election timeout so that one lost
/// heartbeat does not start an election.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// Election timeout range, in milliseconds: 3 to 6 heartbeats, randomized in between so that
/// candidates rarely collide. Coordinators sit on one LAN; fsync latency dominates.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 300;
/// Upper end of the election timeout range, in milliseconds.
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 600;
/// Entries applied since the last snapshot that trigger a new one. A snapshot writes, hashes
/// and fsyncs the whole state, event log included, so its cost grows with the member's history;
/// at 5,000 it took 10-15% of the coordinators' CPU under a sustained commit load (A/B in
/// docs/benchmarks.md). 100,000 is etcd's default `--snapshot-count`. Restarts do not replay
/// more for it: applied state is stored, only entries after it are applied again.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 100_000;
/// Entries kept in the log behind the newest snapshot, so that a follower slightly behind (or
/// one being sent a snapshot while writes continue) catches up from the log rather than needing
/// yet another snapshot. openraft issue #1706: the leader keeps purging while a slow snapshot
/// transfer is in flight; this margin must cover the writes made during one transfer.
pub const LOGS_KEPT_BEHIND_SNAPSHOT: u64 = 5_000;

/// The configuration every coordinator runs with, validated.
pub fn default_config() -> Result<Config, openraft::ConfigError> {
    Config {
        cluster_name: "collective-metadata".to_string(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: LOGS_KEPT_BEHIND_SNAPSHOT,
        ..Config::default()
    }
    .validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_keeps_our_timings() {
        let c = default_config().expect("valid");
        assert_eq!(c.heartbeat_interval, HEARTBEAT_INTERVAL_MS);
        assert!(c.election_timeout_min > 2 * c.heartbeat_interval);
        assert!(c.election_timeout_max > c.election_timeout_min);
        assert_eq!(c.max_in_snapshot_log_to_keep, LOGS_KEPT_BEHIND_SNAPSHOT);
    }
}
