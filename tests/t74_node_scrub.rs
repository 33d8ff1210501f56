//! The scrubber and the guarded delete. A byte flipped in a stored chunk is found by the
//! background scrub within seconds, the copy quarantined and — with a real coordinator — its
//! replica removed from the member's records with a reason naming the scrub, even when the
//! coordinator was down at the moment of discovery; good chunks are never reported. A copy whose
//! inode the file system can no longer read is reported too, by a read or by the scrub. A disk
//! that fails whole takes its data directory out of service; one that is merely full does not. A
//! chunk re-put just now survives a guarded delete that an idle one does not.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod node_support;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use collective::chunk_hash::ChunkHash;
use collective::client::Client;
use collective::node::FoundBy;
use collective::ticket::TicketOp;
use collective_events::pb::{self, command_envelope::Command, event_envelope::Event};
use collective_proto::chunk::DeleteRequest;
use collective_proto::chunk::chunks_client::ChunksClient;
use node_support::*;
use tonic::transport::Channel;

/// Scrub rate and pause in these tests: a few small chunks are re-read several times a second.
const SCRUB_BYTES_PER_SEC: u64 = 64 * 1024 * 1024;
const SCRUB_INTERVAL_MS: u64 = 200;
/// Time the scrubber gets to find a flipped byte, with slack for a loaded machine.
const FIND_WITHIN: Duration = Duration::from_secs(15);

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

/// Polls `check` every 50 ms until it holds or `within` passes.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrubber_quarantines_a_flipped_byte_and_queues_only_that_chunk() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_as(&fed, NODE, &[dir.path()], None, |config| {
        config.scrub.bytes_per_sec = SCRUB_BYTES_PER_SEC;
        config.scrub.pass_interval = Duration::from_millis(SCRUB_INTERVAL_MS);
    })
    .await;
    let mut chunks = client(&fed, &node).await;
    let good = random_bytes(200_000);
    let bad = random_bytes(150_000);
    put(&fed, &mut chunks, &good).await.unwrap();
    put(&fed, &mut chunks, &bad).await.unwrap();
    let (good_hash, bad_hash) = (ChunkHash::of(&good), ChunkHash::of(&bad));
    // Let a pass or two run over the good chunks: nothing is reported.
    tokio::time::sleep(Duration::from_millis(3 * SCRUB_INTERVAL_MS)).await;
    assert_eq!(node.running.corruption.pending(), Vec::new());

    let bad_path = chunk_file(dir.path(), &bad_hash);
    flip_byte(&bad_path, 77_777);
    // The report is queued just after the copy is moved to quarantine: wait for both.
    let reports = &node.running.corruption;
    let found = tokio::task::block_in_place(|| {
        eventually(FIND_WITHIN, || {
            !bad_path.exists() && !reports.pending().is_empty()
        })
    });
    assert!(
        found,
        "the scrubber did not quarantine and report the corrupt copy within {FIND_WITHIN:?}"
    );
    let quarantined = files_under(&dir.path().join("quarantine"));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(quarantined[0].starts_with(&bad_hash.to_hex()), "{quarantined:?}");
    assert_eq!(
        node.running.corruption.pending(),
        vec![(bad_hash, FoundBy::Scrub)]
    );
    assert!(
        chunk_file(dir.path(), &good_hash).exists(),
        "the good chunk stays"
    );
    let ticket = fed.ticket(TicketOp::Get, &[good_hash]);
    assert_eq!(get(&mut chunks, ticket, good_hash, 0, None).await.unwrap(), good);
}

#[tokio::test]
async fn a_chunk_re_put_just_now_survives_a_guarded_delete_and_an_idle_one_does_not() {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&fed, &[dir.path()], None).await;
    let mut chunks = client(&fed, &node).await;
    let reput = random_bytes(40_000);
    let idle = random_bytes(30_000);
    put(&fed, &mut chunks, &reput).await.unwrap();
    put(&fed, &mut chunks, &idle).await.unwrap();
    let (reput_hash, idle_hash) = (ChunkHash::of(&reput), ChunkHash::of(&idle));
    // Both were written two hours ago, as far as their files tell.
    let long_ago = SystemTime::now() - Duration::from_secs(7200);
    for hash in [reput_hash, idle_hash] {
        let file = std::fs::File::open(chunk_file(dir.path(), &hash)).unwrap();
        file.set_modified(long_ago).unwrap();
    }
    // A writer deduplicates against one of them: its put finds the copy already present.
    assert!(put(&fed, &mut chunks, &reput).await.unwrap().already_present);

    let delete = |hashes: &[ChunkHash], min_idle_ms: u64| DeleteRequest {
        ticket: Some(fed.ticket(TicketOp::Delete, hashes)),
        hashes: hashes.iter().map(|h| h.as_bytes().to_vec()).collect(),
        min_idle_ms,
    };
    let answer = chunks
        .delete(delete(&[reput_hash, idle_hash], 60_000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.removed, vec![false, true]);
    assert_eq!(answer.kept_recent, vec![true, false]);
    assert!(
        chunk_file(dir.path(), &reput_hash).exists(),
        "the re-put copy is kept"
    );
    assert!(
        !chunk_file(dir.path(), &idle_hash).exists(),
        "the idle copy is gone"
    );

    let answer = chunks
        .delete(delete(&[reput_hash, idle_hash], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.removed,
        vec![true, false],
        "min_idle_ms 0 deletes unconditionally"
    );
    assert_eq!(answer.kept_recent, vec![false, false]);
    assert!(!chunk_file(dir.path(), &reput_hash).exists());
}

/// The `ReplicaRemoved` events in the member's log, as (hash, node, reason).
/// On a node whose data directory is an ext4 file system of its own, one chunk's inode is
/// damaged under the running node. `found_by` says who must find it: a client's read (the scrub
/// is off) or the scrub. The copy must be reported for repair, never served, and no longer
/// claimed by `Has`; the good chunk beside it is untouched.
async fn an_unreadable_copy_is_reported(found_by: FoundBy) {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let disk = support::disk::Ext4Disk::new(dir.path(), "disk", 256 * 1024 * 1024).unwrap();
    let node = start_node_as(&fed, NODE, &[disk.mount_point()], None, |config| {
        config.scrub.bytes_per_sec = match found_by {
            FoundBy::Read => 0,
            FoundBy::Scrub => SCRUB_BYTES_PER_SEC,
        };
        config.scrub.pass_interval = Duration::from_millis(SCRUB_INTERVAL_MS);
    })
    .await;
    let mut chunks = client(&fed, &node).await;
    let (good, victim) = (random_bytes(300_000), random_bytes(250_000));
    put(&fed, &mut chunks, &good).await.unwrap();
    put(&fed, &mut chunks, &victim).await.unwrap();
    let (good_hash, victim_hash) = (ChunkHash::of(&good), ChunkHash::of(&victim));
    let victim_path = chunk_file(disk.mount_point(), &victim_hash);
    tokio::task::block_in_place(|| disk.damage_inode(&victim_path)).unwrap();

    let reports = &node.running.corruption;
    if found_by == FoundBy::Read {
        let ticket = fed.ticket(TicketOp::Get, &[victim_hash]);
        let refused = get(&mut chunks, ticket, victim_hash, 0, None).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::DataLoss, "{refused:?}");
        assert!(
            refused.message().contains("could not read"),
            "the error says why: {}",
            refused.message()
        );
    }
    let found = tokio::task::block_in_place(|| eventually(FIND_WITHIN, || !reports.pending().is_empty()));
    assert!(
        found,
        "the unreadable copy was not reported within {FIND_WITHIN:?}"
    );
    assert_eq!(reports.pending(), vec![(victim_hash, found_by)]);
    assert_eq!(
        present(&fed, &mut chunks, &[good_hash, victim_hash]).await,
        [true, false],
        "Has no longer claims the unreadable copy"
    );
    let ticket = fed.ticket(TicketOp::Get, &[good_hash]);
    assert_eq!(get(&mut chunks, ticket, good_hash, 0, None).await.unwrap(), good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_reports_a_copy_the_file_system_cannot_read() {
    an_unreadable_copy_is_reported(FoundBy::Read).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrubber_reports_a_copy_the_file_system_cannot_read() {
    an_unreadable_copy_is_reported(FoundBy::Scrub).await;
}

/// A node whose only data directory is a fresh ext4 file system on a loop device, scrubber off,
/// holding one stored chunk. Fields drop in order: the node stops before its disk is unmounted.
struct NodeOnDisk {
    fed: Federation,
    node: TestNode,
    disk: support::disk::Ext4Disk,
    chunks: ChunksClient<Channel>,
    stored: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn node_on_its_own_disk(bytes: u64) -> NodeOnDisk {
    let fed = Federation::new();
    let dir = tempfile::tempdir().unwrap();
    let disk = support::disk::Ext4Disk::new(dir.path(), "disk", bytes).unwrap();
    let node = start_node_as(&fed, NODE, &[disk.mount_point()], None, |config| {
        config.scrub.bytes_per_sec = 0;
    })
    .await;
    let mut chunks = client(&fed, &node).await;
    let stored = random_bytes(200_000);
    put(&fed, &mut chunks, &stored).await.unwrap();
    NodeOnDisk {
        fed,
        node,
        disk,
        chunks,
        stored,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fails_whole_takes_its_directory_out_of_service() {
    let mut t = node_on_its_own_disk(256 * 1024 * 1024).await;
    let (fed, node, disk, chunks, stored) = (&t.fed, &t.node, &t.disk, &mut t.chunks, &t.stored);
    let stored_hash = ChunkHash::of(stored);
    let store = &node.running.store;
    assert!(store.failures().is_empty());

    tokio::task::block_in_place(|| disk.fail()).unwrap();
    // The first put after the failure meets it; its error gets the directory probed.
    let first = put(fed, chunks, &random_bytes(100_000)).await.unwrap_err();
    assert_eq!(first.code(), tonic::Code::Internal, "{first:?}");
    let failures = store.failures();
    assert_eq!(
        failures.len(),
        1,
        "the failed write took the directory out: {failures:?}"
    );
    assert!(failures[0].contains("probe failed"), "{failures:?}");

    let refused = put(fed, chunks, &random_bytes(100_000)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("another node"),
        "the refusal says where to go: {}",
        refused.message()
    );
    assert_eq!(
        present(fed, chunks, &[stored_hash]).await,
        [false],
        "a chunk on the failed disk is not claimed"
    );
    let ticket = fed.ticket(TicketOp::Get, &[stored_hash]);
    let missing = get(chunks, ticket, stored_hash, 0, None).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    let capacity = store.capacity();
    assert!(
        capacity[0].failed.is_some() && capacity[0].free_bytes == 0,
        "{capacity:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_stops_answering_takes_its_directory_out_of_service() {
    let mut t = node_on_its_own_disk(64 * 1024 * 1024).await;
    let (fed, node, disk, chunks) = (&t.fed, &t.node, &t.disk, &mut t.chunks);
    let store = std::sync::Arc::clone(&node.running.store);
    let frozen = tokio::task::block_in_place(|| disk.freeze()).unwrap();
    let on_a_thread = |store: &std::sync::Arc<collective::node::ChunkStore>| {
        let store = std::sync::Arc::clone(store);
        std::thread::spawn(move || store.check_dir(0))
    };
    let hung = on_a_thread(&store);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!hung.is_finished(), "the probe waits on the frozen file system");
    // While it hangs, no second probe of the directory is started: this one returns at once.
    let second = on_a_thread(&store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        second.is_finished(),
        "a second probe waits on the first instead of the disk"
    );
    assert!(!second.join().unwrap());
    assert_eq!(
        store.fail_stalled(Duration::from_secs(60)),
        0,
        "not hung for that long yet"
    );
    assert!(store.failures().is_empty());

    assert_eq!(store.fail_stalled(Duration::from_millis(500)), 1);
    let failures = store.failures();
    assert!(
        failures.len() == 1 && failures[0].contains("does not answer"),
        "{failures:?}"
    );
    // Nothing more waits on the disk: a put is refused at once, naming another node.
    let refused = tokio::time::timeout(Duration::from_secs(5), put(fed, chunks, &random_bytes(100_000)))
        .await
        .expect("a put to a node whose only disk hangs is refused, not held")
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");

    drop(frozen);
    let finished = tokio::task::block_in_place(|| hung.join()).unwrap();
    assert!(
        !finished,
        "the directory was already out of service when its probe returned"
    );
    assert_eq!(store.failures().len(), 1, "and it stays out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_system_keeps_its_directory_in_service() {
    let mut t = node_on_its_own_disk(64 * 1024 * 1024).await;
    let (fed, node, disk, chunks, stored) = (&t.fed, &t.node, &t.disk, &mut t.chunks, &t.stored);
    // Another user of the file system fills it to the last block.
    tokio::task::block_in_place(|| {
        use std::io::Write;
        let mut filler = std::fs::File::create(disk.mount_point().join("filler")).unwrap();
        let block = vec![0xa5u8; 1 << 20];
        loop {
            match filler.write_all(&block).and_then(|()| filler.sync_all()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // The last partial block too.
        while filler
            .write_all(&[0u8; 512])
            .and_then(|()| filler.sync_all())
            .is_ok()
        {}
    });
    let store = &node.running.store;
    assert!(!store.check_dir(0), "a full disk is not a failed one");
    let refused = put(fed, chunks, &random_bytes(100_000)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(store.failures().is_empty(), "{:?}", store.failures());
    let hash = ChunkHash::of(stored);
    let ticket = fed.ticket(TicketOp::Get, &[hash]);
    assert_eq!(get(chunks, ticket, hash, 0, None).await.unwrap(), *stored);
}

async fn replicas_removed(admin: &mut Client) -> Vec<(Vec<u8>, String, String)> {
    let mut found = Vec::new();
    admin
        .export_events(0, |batch| {
            for envelope in batch {
                if let Some(Event::ReplicaRemoved(removed)) = envelope.event {
                    found.push((removed.hash, removed.node, removed.reason));
                }
            }
            Ok(())
        })
        .await
        .unwrap();
    found
}

/// The node's log lines about corrupt copies (the tail `dump_logs` shows is all scrub passes).
fn print_report_lines(cluster: &support::Cluster) {
    let log = std::fs::read_to_string(&cluster.node("node-01").log).unwrap_or_default();
    for line in log.lines().filter(|line| line.contains("corrupt")) {
        eprintln!("{line}");
    }
}

/// Writes `content` as a chunk file in a node's data directory, as a put would have.
fn store_file(data_dir: &Path, content: &[u8]) -> (ChunkHash, PathBuf) {
    let hash = ChunkHash::of(content);
    let path = chunk_file(data_dir, &hash);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    (hash, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrubbed_corrupt_copy_is_removed_from_the_members_records_even_across_an_outage() {
    let env = vec![
        ("COLLECTIVE_NODE_HEARTBEAT_MS".to_string(), "200".to_string()),
        (
            "COLLECTIVE_NODE_SCRUB_BYTES_PER_SEC".into(),
            SCRUB_BYTES_PER_SEC.to_string(),
        ),
        (
            "COLLECTIVE_NODE_SCRUB_INTERVAL_MS".into(),
            SCRUB_INTERVAL_MS.to_string(),
        ),
    ];
    let mut cluster = tokio::task::block_in_place(|| support::Cluster::single_with_env(env)).unwrap();
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        cluster.prepare_node("node-01", &[])?;
        cluster.start_node("node-01")?;
        cluster.wait_node_status("node-01", "UP", Duration::from_secs(30))?;
        Ok(())
    })
    .unwrap();
    let node = format!("node-01@{}.{}", support::MEMBER, support::FEDERATION);
    let data_dir = cluster.node("node-01").data_dir.join("data");
    let (good, _) = store_file(&data_dir, &random_bytes(100_000));
    let (first, first_path) = store_file(&data_dir, &random_bytes(120_000));
    let (second, second_path) = store_file(&data_dir, &random_bytes(80_000));
    let mut admin = Client::new(cluster.profile().unwrap());
    for (hash, size) in [(good, 100_000), (first, 120_000), (second, 80_000)] {
        admin
            .submit(Command::PlaceChunk(pb::PlaceChunk {
                hash: hash.as_bytes().to_vec(),
                node: node.clone(),
                size,
            }))
            .await
            .unwrap();
    }

    flip_byte(&first_path, 1_000);
    let deadline = Instant::now() + FIND_WITHIN;
    let removed = loop {
        let removed = replicas_removed(&mut admin).await;
        if !removed.is_empty() || Instant::now() > deadline {
            break removed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if removed.is_empty() {
        cluster.dump_logs();
        print_report_lines(&cluster);
    }
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].0, first.as_bytes().to_vec());
    assert_eq!(removed[0].1, node);
    assert!(removed[0].2.contains("scrub"), "{removed:?}");
    // More passes go by over the good chunks: no more removals.
    tokio::time::sleep(Duration::from_millis(5 * SCRUB_INTERVAL_MS)).await;
    assert_eq!(replicas_removed(&mut admin).await.len(), 1);

    // The coordinator goes down; the scrubber finds the second rotten copy meanwhile.
    cluster.kill(1);
    flip_byte(&second_path, 2_000);
    let found = tokio::task::block_in_place(|| eventually(FIND_WITHIN, || !second_path.exists()));
    assert!(
        found,
        "the scrubber did not quarantine the copy while the member was down"
    );
    // Down longer than one submission retries on its own (5 s): the report must wait in the
    // node's queue and be sent again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        cluster.start(1)?;
        cluster.wait_for_leader(Duration::from_secs(30))?;
        Ok(())
    })
    .unwrap();
    // The report waited in the node's queue and is delivered once the member is back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let removed = loop {
        let removed = replicas_removed(&mut admin).await;
        if removed.len() >= 2 || Instant::now() > deadline {
            break removed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if removed.len() < 2 {
        cluster.dump_logs();
        print_report_lines(&cluster);
    }
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(removed[1].0, second.as_bytes().to_vec());
    assert!(removed[1].2.contains("scrub"), "{removed:?}");
    assert!(
        removed
            .iter()
            .all(|(hash, _, _)| *hash != good.as_bytes().to_vec()),
        "the good chunk is never reported: {removed:?}"
    );
    assert!(chunk_file(&data_dir, &good).exists());
    let log = std::fs::read_to_string(&cluster.node("node-01").log).unwrap();
    assert!(
        log.contains("corrupt replica report not delivered; will retry"),
        "the report was retried from the queue"
    );
}
