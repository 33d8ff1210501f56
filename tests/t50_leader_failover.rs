//! Three coordinators as separate processes: a client streams 2,000 mkdir commands while the
//! leader is killed with SIGKILL twice. Afterwards every acknowledged directory exists exactly
//! once (one `DirectoryCreated` event, one entry), and none that was refused exists. The time
//! from each kill to the next acknowledged write is measured and printed.

mod support;

use collective::client::{Client, ClientError};
use collective_events::pb::{self, command_envelope::Command, event_envelope::Event};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Cluster;

const DIRECTORIES: usize = 2000;
const WRITERS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acknowledged,
    Refused,
    Unknown,
}

#[derive(Default)]
struct History {
    outcomes: BTreeMap<String, Outcome>,
    /// Completion time of every acknowledged write, to measure failover.
    acks: Vec<Instant>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_two_leader_kills() -> anyhow::Result<()> {
    let mut cluster = Cluster::with_voters(3)?;
    cluster.cli_ok(&["mkdir", "/stream"])?;
    let profile = cluster.profile()?;
    let history = Arc::new(Mutex::new(History::default()));

    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let history = history.clone();
        let mut client = Client::new(profile.clone());
        writers.spawn(async move {
            for n in (writer..DIRECTORIES).step_by(WRITERS) {
                let path = format!("/stream/d{n:04}");
                let result = client
                    .submit(Command::CreateDirectory(pb::CreateDirectory {
                        path: path.clone(),
                        parents: false,
                    }))
                    .await;
                let outcome = match &result {
                    Ok(_) => Outcome::Acknowledged,
                    Err(ClientError::Refused { .. }) => Outcome::Refused,
                    Err(_) => Outcome::Unknown,
                };
                let mut history = history.lock().expect("history lock");
                history.outcomes.insert(path, outcome);
                if outcome == Outcome::Acknowledged {
                    history.acks.push(Instant::now());
                }
            }
        });
    }

    let mut failovers = Vec::new();
    for threshold in [DIRECTORIES / 5, DIRECTORIES * 3 / 5] {
        wait_until(
            || history.lock().expect("lock").acks.len() >= threshold,
            Duration::from_secs(120),
        )
        .await?;
        let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
        let killed_at = Instant::now();
        cluster.kill(leader);
        wait_until(
            || {
                history
                    .lock()
                    .expect("lock")
                    .acks
                    .iter()
                    .any(|at| *at > killed_at)
            },
            Duration::from_secs(60),
        )
        .await
        .inspect_err(|_| cluster.dump_logs())?;
        let first_ack = *history
            .lock()
            .expect("lock")
            .acks
            .iter()
            .filter(|at| **at > killed_at)
            .min()
            .expect("an ack");
        let failover = first_ack.duration_since(killed_at);
        eprintln!("killed leader {leader}: next write acknowledged after {failover:?}");
        failovers.push(failover);
        cluster.start(leader)?;
    }
    while let Some(joined) = writers.join_next().await {
        joined?;
    }

    let outcomes = history.lock().expect("lock").outcomes.clone();
    let count = |o: Outcome| outcomes.values().filter(|v| **v == o).count();
    eprintln!(
        "outcomes: {} acknowledged, {} refused, {} unknown; failovers {:?}",
        count(Outcome::Acknowledged),
        count(Outcome::Refused),
        count(Outcome::Unknown),
        failovers
    );
    assert_eq!(outcomes.len(), DIRECTORIES, "every write has an outcome");
    assert!(
        count(Outcome::Acknowledged) >= DIRECTORIES * 9 / 10,
        "most writes are acknowledged"
    );

    // What exists: the listing and the event log, read linearizably.
    let listing = cluster.cli_ok(&["ls", "--json", "/stream"])?;
    let listing: serde_json::Value = serde_json::from_str(&listing)?;
    let listed: BTreeSet<String> = listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_string())
        .collect();
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    let mut client = Client::new(profile.clone());
    client
        .export_events(0, |events| {
            for event in events {
                if let Some(Event::DirectoryCreated(created_event)) = event.event {
                    *created.entry(created_event.path).or_default() += 1;
                }
            }
            Ok(())
        })
        .await?;
    for (path, outcome) in outcomes.iter() {
        match outcome {
            Outcome::Acknowledged => {
                assert!(listed.contains(path), "acknowledged {path} is missing");
                assert_eq!(
                    created.get(path),
                    Some(&1),
                    "acknowledged {path} was created exactly once"
                );
            }
            Outcome::Refused => {
                assert!(!listed.contains(path), "refused {path} exists");
                assert_eq!(created.get(path), None, "refused {path} has an event");
            }
            Outcome::Unknown => assert!(created.get(path).copied().unwrap_or(0) <= 1),
        }
    }
    assert!(
        created.values().all(|n| *n == 1),
        "no directory was created twice"
    );
    for failover in &failovers {
        assert!(
            *failover < Duration::from_secs(15),
            "a new leader served within 15 s (took {failover:?})"
        );
    }
    Ok(())
}

async fn wait_until(mut condition: impl FnMut() -> bool, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            anyhow::bail!("condition not reached within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
