//! Replaying the stored event log through `apply` into fresh in-memory tables rebuilds every
//! projection byte for byte: the projections are a pure function of the log.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on any error")]

mod common;

use std::collections::BTreeSet;

use collective_events::pb::{self, event_envelope::Event};
use collective_projections::{META_LAST_APPLIED, META_MEMBERSHIP, MemTables, Table, apply};
use common::*;

/// Deterministic generator (splitmix64), so a failing seed reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const DIRS: &[&str] = &[
    "/media",
    "/media/movies",
    "/media/tv",
    "/backup",
    "/backup/photos",
    "/tmp",
];
const NAMES: &[&str] = &["a.mkv", "b.jpg", "c.txt", "d", "e.iso"];

fn random_path(rng: &mut Rng) -> String {
    format!("{}/{}", rng.pick(DIRS), rng.pick(NAMES))
}

/// A few hundred mixed commands; many succeed, some are refused, both are fine.
fn commands(seed: u64, count: u64) -> Vec<pb::CommandEnvelope> {
    use pb::command_envelope::Command;
    let mut rng = Rng(seed);
    let mut setup: Vec<Command> = vec![initialize(), add_coordinator(1), add_coordinator(2)];
    setup.extend((1..=5).map(join_node));
    setup.extend(["/media", "/backup"].map(datastore));
    setup.extend(DIRS.iter().map(|d| mkdir(d, true)));
    let mut cmds: Vec<Command> = setup;
    while (cmds.len() as u64) < count {
        let chunk = rng.below(40);
        let node = 1 + rng.below(5);
        let n = rng.below(12);
        let command = match rng.below(20) {
            0..=4 => commit(&random_path(&mut rng), chunk, 1 + rng.below(3), 2),
            5 => mkdir(&format!("{}/{}", rng.pick(DIRS), rng.pick(NAMES)), false),
            6 => mv(&random_path(&mut rng), &random_path(&mut rng)),
            7 => remove(&random_path(&mut rng), false),
            8 => match rng.below(3) {
                0 => remove(rng.pick(&["/tmp", "/media/tv"]), true),
                _ => mkdir(rng.pick(DIRS), true),
            },
            9 | 10 => place(chunk, node),
            11 => remove_replica(chunk, node),
            12 => node_status(
                node,
                [pb::NodeStatus::Up, pb::NodeStatus::Down, pb::NodeStatus::Draining][rng.below(3) as usize],
                rng.below(1 << 40),
            ),
            13 => issue_grant(n, rng.pick(&["/media", "/backup"])),
            14 => revoke_grant(n),
            15 => issue_invite(n, "/media"),
            16 => redeem_invite(n, rng.below(1000)),
            17 => match rng.below(2) {
                0 => revoke_invite(n),
                _ => issue_certificate(n),
            },
            18 => match rng.below(3) {
                0 => revoke_certificate(n),
                1 => add_coordinator(1 + rng.below(4)),
                _ => remove_coordinator(1 + rng.below(4)),
            },
            _ => match rng.below(2) {
                0 => join_node(6 + rng.below(2)),
                _ => Command::RemoveNode(pb::RemoveNode {
                    address: node_name(6 + rng.below(2)),
                }),
            },
        };
        cmds.push(command);
    }
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| envelope(i as u64 + 1, c))
        .collect()
}

fn cmd_kind(cmd: &pb::CommandEnvelope) -> &'static str {
    collective_events::decide::command_name(cmd.command.as_ref().expect("command set"))
}

fn kind(event: &Event) -> &'static str {
    collective_events::decide::event_name(event)
}

/// Entries per transaction: several, so later commands read earlier ones through the overlay.
const ENTRIES_PER_TXN: usize = 7;
/// Events read per page from the log during replay.
const REPLAY_PAGE_EVENTS: usize = 50;

#[test]
fn replaying_the_log_rebuilds_identical_projections() {
    for seed in [1u64, 2, 3] {
        let (_dir, store) = open_store();
        let cmds = commands(seed, 600);
        let mut index = 1u64;
        let mut rejected = std::collections::BTreeMap::<String, usize>::new();
        for batch in cmds.chunks(ENTRIES_PER_TXN) {
            let mut txn = store.begin();
            for cmd in batch {
                let outcome = txn.execute(index, cmd).expect("execute");
                if let Some(r) = outcome.rejection() {
                    *rejected
                        .entry(format!("{}: {}", cmd_kind(cmd), r.code))
                        .or_default() += 1;
                }
                index += 1;
            }
            txn.put_meta(META_LAST_APPLIED, (index - 1).to_be_bytes().to_vec());
            txn.commit().expect("commit");
        }

        // Replay the log, in log order, page by page.
        let mut mem = MemTables::new();
        let mut kinds = BTreeSet::new();
        let mut after: Option<(u64, u32)> = None;
        let mut replayed = 0u64;
        loop {
            let page = match after {
                None => store.events(0, REPLAY_PAGE_EVENTS).unwrap(),
                Some(key) => store.events_after(key, REPLAY_PAGE_EVENTS).unwrap(),
            };
            for envelope in &page {
                let key = (envelope.log_index, envelope.sequence);
                assert!(after.is_none_or(|a| key > a), "events come in log order");
                after = Some(key);
                kinds.insert(kind(envelope.event.as_ref().expect("event set")));
                apply(&mut mem, envelope).expect("apply");
                replayed += 1;
            }
            if page.len() < REPLAY_PAGE_EVENTS {
                break;
            }
        }

        assert_eq!(store.event_count().unwrap(), replayed);
        let rejected_total: usize = rejected.values().sum();
        assert!(
            replayed > 300,
            "seed {seed}: only {replayed} events; rejected {rejected:#?}"
        );
        assert!(
            rejected_total * 10 < cmds.len() * 6,
            "seed {seed}: rejected {rejected:#?}"
        );
        for expected in [
            "MemberInitialized",
            "CoordinatorAdded",
            "NodeJoined",
            "NodeStatusChanged",
            "DirectoryCreated",
            "FileVersionCommitted",
            "EntryRemoved",
            "EntryMoved",
            "ChunkPlaced",
            "ReplicaRemoved",
            "DatastoreCreated",
            "GrantIssued",
            "GrantRevoked",
            "InviteIssued",
            "InviteRedeemed",
            "InviteRevoked",
            "CertificateIssued",
            "CertificateRevoked",
            "FileVersionPruned",
            "NodeLeft",
            "CoordinatorRemoved",
        ] {
            assert!(
                kinds.contains(expected),
                "seed {seed}: no {expected} in {kinds:?}"
            );
        }

        for table in Table::ALL.into_iter().filter(|t| t.is_projection()) {
            let mut live = store.rows(table).unwrap();
            if table == Table::SmMeta {
                // Raft's own bookkeeping is not a projection of the log.
                live.retain(|(k, _)| k != META_LAST_APPLIED && k != META_MEMBERSHIP);
            }
            let rebuilt = mem.rows(table);
            assert!(
                live == rebuilt,
                "seed {seed}: table {} differs: live {} rows, replayed {} rows",
                table.name(),
                live.len(),
                rebuilt.len()
            );
        }
        assert!(!store.rows(Table::Entries).unwrap().is_empty());
    }
}
