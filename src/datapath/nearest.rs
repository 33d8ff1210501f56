//! Which replica a chunk is fetched from: the nearest, in time. A read plan lists a chunk's
//! replicas healthy first, rotated by the chunk's index so equal replicas share the reads; this
//! puts first the one expected to deliver soonest: `(fetches under way + 1) × its time per MiB`,
//! a moving average of what this client saw. A node behind a slow link or a busy disk so gets
//! fewer chunks, in proportion, and equal nodes still alternate (ties keep the plan's order).
//!
//! A node not heard from lately (no estimate, or one older than [`ESTIMATE_FRESH_FOR`]) gets
//! one fetch at a time until it answers: a fetch whose every candidate is such a node, busy,
//! waits for the next answer instead of piling onto them (at most [`PROBE_WAIT_MAX`]). So a slow
//! node costs a read one chunk's wait, not half of its chunks. Nodes that failed during this
//! read come last, as before.
//!
//! **A fetch that runs long is raced** ([`Nearest::hedge_due`]): once it has taken
//! [`HEDGE_FACTOR`] times what a fetch from another replica takes these days (at least
//! [`HEDGE_AFTER_MIN`]; [`HEDGE_AFTER_UNMEASURED`] when no other replica was measured), the same
//! chunk is asked of the next replica too, once, and the first good answer wins. So a probe of a
//! slow node, or a node that froze, costs a read a fraction of a second instead of the probe's
//! whole transfer or the stall limit. The loser is cancelled, and its node's estimate becomes
//! at least as slow as its pace so far; a node that had sent nothing counts at least as slow as
//! the whole chunk in that time and twice as slow as before ([`Fetching::raced_out`]), so reads
//! keep off it until it is probed again.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a node's estimate stands without a new answer; older, the node is probed again.
pub const ESTIMATE_FRESH_FOR: Duration = Duration::from_secs(30);
/// Longest a fetch waits for a probed node's answer before it goes anyway.
pub const PROBE_WAIT_MAX: Duration = Duration::from_secs(1);
/// A fetch running this many times longer than another replica's usual fetch is raced.
pub const HEDGE_FACTOR: f64 = 4.0;
/// No fetch is raced sooner than this: a cold read's fetch that waits for the disk behind others
/// takes a few hundred milliseconds at worst here, and racing it would only add load.
pub const HEDGE_AFTER_MIN: Duration = Duration::from_millis(500);
/// When no other replica has a fresh estimate, a fetch is raced after this long.
pub const HEDGE_AFTER_UNMEASURED: Duration = Duration::from_secs(2);
/// A raced-out node that had sent less than this counts as not sending at all.
const SENDING_BYTES_MIN: u64 = 64 * 1024;
/// Weight of the newest answer in a node's moving average.
const WEIGHT_NEWEST: f64 = 0.25;
const MIB: f64 = 1024.0 * 1024.0;

/// What this client saw of each node, shared by all its reads.
#[derive(Debug, Default)]
pub struct Nearest {
    seen: Mutex<HashMap<String, Seen>>,
    answered: Notify,
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    under_way: usize,
    /// Seconds per MiB, and when last updated.
    estimate: Option<(f64, Instant)>,
}

impl Seen {
    fn fresh_estimate(&self, now: Instant) -> Option<f64> {
        self.estimate
            .filter(|(_, at)| now.saturating_duration_since(*at) < ESTIMATE_FRESH_FOR)
            .map(|(secs_per_mib, _)| secs_per_mib)
    }
}

/// What [`rank`] decided.
#[derive(Debug, PartialEq)]
enum Ranked {
    /// Indexes into the candidates, best first; every candidate appears once.
    Go(Vec<usize>),
    /// Every usable candidate is a node being probed: wait for an answer.
    Wait,
}

/// Orders `candidates`, given in the plan's order: per replica, what this client saw of its
/// node (if anything), and whether the node failed during this read.
fn rank(candidates: &[(Option<Seen>, bool)], now: Instant) -> Ranked {
    let best_known = candidates
        .iter()
        .filter_map(|(seen, _)| seen.and_then(|s| s.fresh_estimate(now)))
        .min_by(f64::total_cmp);
    // (group, score, plan position): group 0 usable, 1 being probed, 2 failed this read.
    let mut keyed: Vec<(u8, f64, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(at, (seen, failed))| {
            let seen = seen.unwrap_or_default();
            let estimate = seen.fresh_estimate(now);
            let group = match (failed, estimate, seen.under_way) {
                (true, _, _) => 2,
                (false, None, 1..) => 1,
                _ => 0,
            };
            // A node not yet measured counts as good as the best one: it is tried, once.
            let per_mib = estimate.or(best_known).unwrap_or(0.0);
            (group, (seen.under_way + 1) as f64 * per_mib, at)
        })
        .collect();
    let usable = keyed.iter().filter(|(group, _, _)| *group < 2).count();
    let probing = keyed.iter().filter(|(group, _, _)| *group == 1).count();
    if usable >= 2 && probing == usable {
        return Ranked::Wait;
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    Ranked::Go(keyed.into_iter().map(|(_, _, at)| at).collect())
}

impl Nearest {
    /// `nodes` (a chunk's replicas in the plan's order) reordered nearest first; `failed` are the
    /// nodes that failed during this read, put last. May wait for a probed node's answer.
    pub async fn order(&self, nodes: &[String], failed: &HashSet<String>) -> Vec<usize> {
        let deadline = Instant::now() + PROBE_WAIT_MAX;
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            // Registered before the look, so an answer between the look and the wait is not missed.
            answered.as_mut().enable();
            let candidates: Vec<(Option<Seen>, bool)> = {
                let seen = self.lock();
                nodes
                    .iter()
                    .map(|node| (seen.get(node).copied(), failed.contains(node)))
                    .collect()
            };
            let now = Instant::now();
            match rank(&candidates, now) {
                Ranked::Go(order) => return order,
                Ranked::Wait if now >= deadline => {
                    let mut order: Vec<usize> = (0..nodes.len()).collect();
                    order.sort_by_key(|&at| failed.contains(&nodes[at]));
                    return order;
                }
                Ranked::Wait => {
                    let _ = tokio::time::timeout_at(deadline.into(), answered).await;
                }
            }
        }
    }

    /// Whether a fetch of `bytes` from `nodes[running]` that started at `started` should be
    /// raced by another replica of the chunk (one not in `failed`); see the module docs.
    pub fn hedge_due(
        &self,
        nodes: &[String],
        running: usize,
        failed: &HashSet<String>,
        bytes: u64,
        started: Instant,
    ) -> bool {
        let now = Instant::now();
        let seen = self.lock();
        let others: Vec<Option<f64>> = nodes
            .iter()
            .enumerate()
            .filter(|(at, node)| *at != running && !failed.contains(*node))
            .map(|(_, node)| seen.get(node).and_then(|s| s.fresh_estimate(now)))
            .collect();
        drop(seen);
        hedge_after(&others, bytes).is_some_and(|after| now.saturating_duration_since(started) >= after)
    }

    /// Counts a fetch from `node` as under way until the returned guard is dropped; tell the
    /// guard how it ended with [`Fetching::answered`] or [`Fetching::raced_out`].
    pub fn fetching<'a>(&'a self, node: &str) -> Fetching<'a> {
        self.lock().entry(node.to_owned()).or_default().under_way += 1;
        Fetching {
            nearest: self,
            node: node.to_owned(),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A fetch under way; see [`Nearest::fetching`].
pub struct Fetching<'a> {
    nearest: &'a Nearest,
    node: String,
    started: Instant,
}

impl Fetching<'_> {
    /// The node delivered `bytes`: its estimate takes the time this fetch took.
    pub fn answered(self, bytes: u64) {
        let now = Instant::now();
        let per_mib = per_mib(now.duration_since(self.started), bytes);
        let mut seen = self.nearest.lock();
        let entry = seen.entry(self.node.clone()).or_default();
        let average = match entry.fresh_estimate(now) {
            Some(old) => WEIGHT_NEWEST * per_mib + (1.0 - WEIGHT_NEWEST) * old,
            None => per_mib,
        };
        entry.estimate = Some((average, now));
    }

    /// Another replica answered first, when this node had sent `received` of the chunk's
    /// `bytes`. A node that was sending becomes at least as slow as its pace; one that had sent
    /// (almost) nothing, at least as slow as if the whole chunk had taken that long, and twice
    /// as slow as before: a node that froze is asked less and less until its estimate is old.
    pub fn raced_out(self, received: u64, bytes: u64) {
        let now = Instant::now();
        let took = now.duration_since(self.started);
        let mut seen = self.nearest.lock();
        let entry = seen.entry(self.node.clone()).or_default();
        let old = entry.fresh_estimate(now);
        let slowest = if received >= SENDING_BYTES_MIN {
            let pace = per_mib(took, received);
            old.map_or(pace, |old| old.max(pace))
        } else {
            let bound = per_mib(took, bytes);
            old.map_or(bound, |old| (2.0 * old).max(bound))
        };
        entry.estimate = Some((slowest, now));
    }
}

/// Seconds per MiB for `bytes` in `took`.
fn per_mib(took: Duration, bytes: u64) -> f64 {
    took.as_secs_f64() / mib(bytes)
}

/// `bytes` in MiB, counting at least a sixteenth of one: a tiny chunk's time is mostly the
/// round trip, not a measure of speed.
fn mib(bytes: u64) -> f64 {
    (bytes as f64 / MIB).max(1.0 / 16.0)
}

/// How long a fetch of `bytes` may run before it is raced, given the fresh estimates (seconds
/// per MiB) of the other usable replicas; `None` when there is no other replica.
fn hedge_after(others: &[Option<f64>], bytes: u64) -> Option<Duration> {
    if others.is_empty() {
        return None;
    }
    let fastest = others.iter().flatten().copied().min_by(f64::total_cmp);
    Some(match fastest {
        Some(secs_per_mib) => {
            let usual = Duration::from_secs_f64(secs_per_mib * mib(bytes));
            usual.mul_f64(HEDGE_FACTOR).max(HEDGE_AFTER_MIN)
        }
        None => HEDGE_AFTER_UNMEASURED,
    })
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        if let Some(seen) = self.nearest.lock().get_mut(&self.node) {
            seen.under_way = seen.under_way.saturating_sub(1);
        }
        self.nearest.answered.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(under_way: usize, secs_per_mib: Option<f64>, at: Instant) -> Option<Seen> {
        Some(Seen {
            under_way,
            estimate: secs_per_mib.map(|e| (e, at)),
        })
    }

    #[test]
    fn equal_nodes_keep_the_plans_order_and_a_busier_one_goes_after() {
        let now = Instant::now();
        let equal = [
            (seen(2, Some(0.01), now), false),
            (seen(2, Some(0.01), now), false),
        ];
        assert_eq!(rank(&equal, now), Ranked::Go(vec![0, 1]));
        let busier_first = [
            (seen(3, Some(0.01), now), false),
            (seen(2, Some(0.01), now), false),
        ];
        assert_eq!(rank(&busier_first, now), Ranked::Go(vec![1, 0]));
    }

    #[test]
    fn a_slow_node_gets_a_chunk_only_when_the_fast_one_is_far_busier() {
        let now = Instant::now();
        // 40 ms per MiB against 1 ms: the fast node is preferred until 40 times as busy.
        let fast_busy = [
            (seen(0, Some(0.040), now), false),
            (seen(30, Some(0.001), now), false),
        ];
        assert_eq!(rank(&fast_busy, now), Ranked::Go(vec![1, 0]));
        let fast_swamped = [
            (seen(0, Some(0.040), now), false),
            (seen(45, Some(0.001), now), false),
        ];
        assert_eq!(rank(&fast_swamped, now), Ranked::Go(vec![0, 1]));
    }

    #[test]
    fn an_unmeasured_node_is_tried_once_and_then_waited_for() {
        let now = Instant::now();
        let fresh_start = [(None, false), (None, false)];
        assert_eq!(rank(&fresh_start, now), Ranked::Go(vec![0, 1]));
        // The first is being probed: the second, idle, goes first.
        let one_probed = [(seen(1, None, now), false), (None, false)];
        assert_eq!(rank(&one_probed, now), Ranked::Go(vec![1, 0]));
        // Both probed: wait for an answer rather than pile on.
        let both_probed = [(seen(1, None, now), false), (seen(1, None, now), false)];
        assert_eq!(rank(&both_probed, now), Ranked::Wait);
        // A measured node, however busy, beats waiting on a probed one.
        let measured = [(seen(1, None, now), false), (seen(9, Some(0.01), now), false)];
        assert_eq!(rank(&measured, now), Ranked::Go(vec![1, 0]));
        // A lone replica is fetched from whatever its state.
        assert_eq!(rank(&[(seen(3, None, now), false)], now), Ranked::Go(vec![0]));
    }

    #[test]
    fn an_old_estimate_is_probed_again_and_failed_nodes_come_last() {
        let now = Instant::now();
        let long_ago = now - ESTIMATE_FRESH_FOR - Duration::from_secs(1);
        // A stale slow estimate no longer keeps the node away: it counts as unmeasured.
        let stale = [
            (seen(0, Some(0.001), now), false),
            (seen(0, Some(5.0), long_ago), false),
        ];
        assert_eq!(rank(&stale, now), Ranked::Go(vec![0, 1]));
        let stale_idle_first = [
            (seen(1, Some(0.001), now), false),
            (seen(0, Some(5.0), long_ago), false),
        ];
        assert_eq!(rank(&stale_idle_first, now), Ranked::Go(vec![1, 0]));
        let failed = [
            (seen(0, Some(0.001), now), true),
            (seen(5, Some(0.01), now), false),
        ];
        assert_eq!(rank(&failed, now), Ranked::Go(vec![1, 0]));
        // Only failed nodes left: they are tried, in the plan's order, without waiting.
        let all_failed = [(seen(1, None, now), true), (seen(1, None, now), true)];
        assert_eq!(rank(&all_failed, now), Ranked::Go(vec![0, 1]));
    }

    #[test]
    fn a_fetch_is_raced_after_several_times_another_replicas_usual_fetch() {
        let chunk = 4 * 1024 * 1024;
        // Another replica fetches a MiB in 50 ms: a 4 MiB chunk usually takes 200 ms there.
        let after = hedge_after(&[Some(0.050)], chunk).expect("another replica");
        assert!(
            (after.as_secs_f64() - 0.200 * HEDGE_FACTOR).abs() < 1e-6,
            "{after:?}"
        );
        // The fastest replica counts: 20 ms a chunk, times the factor, is under the floor.
        assert_eq!(
            hedge_after(&[Some(0.050), Some(0.005), None], chunk),
            Some(HEDGE_AFTER_MIN)
        );
        // Fast replicas never make it sooner than the floor.
        assert_eq!(hedge_after(&[Some(0.0001)], chunk), Some(HEDGE_AFTER_MIN));
        assert_eq!(hedge_after(&[None], chunk), Some(HEDGE_AFTER_UNMEASURED));
        assert_eq!(hedge_after(&[], chunk), None, "a lone replica is never raced");
    }

    #[test]
    fn a_raced_out_node_counts_as_slow_as_its_pace_and_no_faster_than_before() {
        let nearest = Nearest::default();
        let now = Instant::now();
        nearest.lock().insert(
            "slow".into(),
            Seen {
                under_way: 0,
                estimate: Some((0.001, now)),
            },
        );
        let mut fetching = nearest.fetching("slow");
        fetching.started = now - Duration::from_millis(400);
        // Half a MiB of a 4 MiB chunk in 400 ms: 0.8 s per MiB, far slower than before.
        fetching.raced_out(512 * 1024, 4 * 1024 * 1024);
        let estimate = || {
            nearest.lock()["slow"]
                .fresh_estimate(Instant::now())
                .expect("an estimate")
        };
        let sending = estimate();
        assert!((0.79..0.9).contains(&sending), "{sending}");
        assert_eq!(nearest.lock()["slow"].under_way, 0);

        // Nothing sent in 400 ms: the whole chunk in that time (0.1 s per MiB) is below what is
        // known, so the estimate doubles, and again the next time.
        for doubled in [2.0, 4.0] {
            let mut fetching = nearest.fetching("slow");
            fetching.started = Instant::now() - Duration::from_millis(400);
            fetching.raced_out(0, 4 * 1024 * 1024);
            let silent = estimate();
            assert!(
                ((doubled - 0.01)..(doubled + 0.1)).contains(&(silent / sending)),
                "{silent}"
            );
        }
    }

    #[tokio::test]
    async fn a_fetch_waits_for_a_probe_to_answer_and_then_goes_to_the_nearest() {
        let nearest = std::sync::Arc::new(Nearest::default());
        let nodes = vec!["slow".to_string(), "fast".to_string()];
        let none = HashSet::new();
        let slow = nearest.fetching("slow");
        let fast = nearest.fetching("fast");
        let waiting = {
            let (nearest, nodes) = (std::sync::Arc::clone(&nearest), nodes.clone());
            tokio::spawn(async move { nearest.order(&nodes, &HashSet::new()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "both nodes are being probed: the fetch waits"
        );
        fast.answered(4 * 1024 * 1024);
        assert_eq!(
            waiting.await.expect("the waiting fetch ran"),
            vec![1, 0],
            "the node that answered goes first"
        );
        // The slow node's probe ended without an answer: idle and unmeasured, it is tried again.
        drop(slow);
        assert_eq!(nearest.order(&nodes, &none).await, vec![0, 1]);
    }
}
