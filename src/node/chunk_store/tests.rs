//! The store's promises, on real files: nothing partial is ever visible, nothing corrupt is
//! ever returned, and space runs out with a clear error.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use super::*;
use std::path::Path;

fn store_in(dirs: &[(&Path, Option<u64>)]) -> ChunkStore {
    ChunkStore::open(&StoreConfig {
        data_dirs: dirs
            .iter()
            .map(|(path, max)| DataDirConfig {
                path: path.to_path_buf(),
                capacity_bytes_max: *max,
                marker: None,
            })
            .collect(),
        free_bytes_reserved: 0,
        direct_io: true,
    })
    .unwrap()
}

fn put(store: &ChunkStore, content: &[u8]) -> Result<ChunkHash, StoreError> {
    let hash = ChunkHash::of(content);
    match store.begin_put(hash, content.len() as u64)? {
        PutStart::AlreadyPresent => {}
        PutStart::Receiving(mut pending) => {
            for frame in content.chunks(1000) {
                pending.write(frame)?;
            }
            pending.commit()?;
        }
    }
    Ok(hash)
}

/// Every regular file under `dir`, relative, but the directory's marker.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p != dir.join(MARKER_FILE) {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_put_chunk_reads_back_and_lies_in_its_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let content = vec![7u8; 5000];
    let hash = put(&store, &content).unwrap();
    assert_eq!(store.read(&hash).unwrap().as_ref(), content.as_slice());
    assert!(store.contains(&hash));
    assert_eq!(store.length(&hash).unwrap(), 5000);
    let hex = hash.to_hex();
    assert_eq!(
        files(tmp.path()),
        vec![format!("chunks/{}/{}/{hex}", &hex[..2], &hex[2..4])]
    );
    let cap = &store.capacity()[0];
    assert_eq!((cap.used_bytes, cap.chunk_count), (5000, 1));
    // Again: a no-op.
    assert!(matches!(
        store.begin_put(hash, 5000).unwrap(),
        PutStart::AlreadyPresent
    ));
    assert!(store.delete(&hash).unwrap());
    assert!(!store.delete(&hash).unwrap());
    assert!(matches!(store.read(&hash), Err(StoreError::NotFound(_))));
    assert_eq!(store.capacity()[0].used_bytes, 0);
}

#[test]
fn content_that_does_not_match_its_name_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let named = ChunkHash::of(b"the real content");
    let PutStart::Receiving(mut pending) = store.begin_put(named, 16).unwrap() else {
        panic!("nothing stored yet")
    };
    pending.write(b"not the content!").unwrap();
    assert!(matches!(pending.commit(), Err(StoreError::HashMismatch { .. })));
    assert!(files(tmp.path()).is_empty(), "{:?}", files(tmp.path()));
    assert!(!store.contains(&named));
}

#[test]
fn truncated_and_overrunning_puts_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let content = b"0123456789";
    let hash = ChunkHash::of(content);
    let PutStart::Receiving(mut short) = store.begin_put(hash, 10).unwrap() else {
        panic!()
    };
    short.write(&content[..4]).unwrap();
    assert!(matches!(
        short.commit(),
        Err(StoreError::Truncated { received: 4, .. })
    ));
    let PutStart::Receiving(mut long) = store.begin_put(hash, 10).unwrap() else {
        panic!()
    };
    long.write(content).unwrap();
    assert!(matches!(
        long.write(b"x"),
        Err(StoreError::Overrun { announced: 10 })
    ));
    drop(long);
    // Abandoned midway (a dropped connection).
    let PutStart::Receiving(mut abandoned) = store.begin_put(hash, 10).unwrap() else {
        panic!()
    };
    abandoned.write(b"01").unwrap();
    drop(abandoned);
    assert!(files(tmp.path()).is_empty(), "{:?}", files(tmp.path()));
    assert!(matches!(
        store.begin_put(hash, CHUNK_BYTES_MAX + 1),
        Err(StoreError::TooLarge { .. })
    ));
}

#[test]
fn a_flipped_byte_is_never_returned_and_the_chunk_is_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let content = vec![1u8; 3000];
    let hash = put(&store, &content).unwrap();
    let path = tmp
        .path()
        .join("chunks")
        .join(&hash.to_hex()[..2])
        .join(&hash.to_hex()[2..4])
        .join(hash.to_hex());
    let mut bytes = fs::read(&path).unwrap();
    bytes[1234] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(store.read(&hash), Err(StoreError::Corrupt { .. })));
    assert!(!store.contains(&hash));
    assert!(matches!(store.read(&hash), Err(StoreError::NotFound(_))));
    let left = files(tmp.path());
    assert_eq!(left.len(), 1);
    assert!(
        left[0].starts_with(&format!("quarantine/{}.", hash.to_hex())),
        "{left:?}"
    );
    // A new put of the same chunk repairs it.
    put(&store, &content).unwrap();
    assert_eq!(store.read(&hash).unwrap().as_ref(), content.as_slice());
}

#[test]
fn a_put_over_a_corrupt_copy_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let content = vec![9u8; 100];
    let hash = put(&store, &content).unwrap();
    let path = tmp
        .path()
        .join("chunks")
        .join(&hash.to_hex()[..2])
        .join(&hash.to_hex()[2..4])
        .join(hash.to_hex());
    fs::write(&path, b"rotten").unwrap();
    let PutStart::Receiving(mut pending) = store.begin_put(hash, 100).unwrap() else {
        panic!("a corrupt copy must not count as present")
    };
    pending.write(&content).unwrap();
    pending.commit().unwrap();
    assert_eq!(store.read(&hash).unwrap().as_ref(), content.as_slice());
}

#[test]
fn a_full_directory_refuses_with_a_clear_error_and_keeps_its_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), Some(2500))]);
    let a = put(&store, &[1u8; 1000]).unwrap();
    let b = put(&store, &[2u8; 1000]).unwrap();
    let err = put(&store, &[3u8; 1000]).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Full {
                needed: 1000,
                available: 500
            }
        ),
        "{err}"
    );
    assert_eq!(store.read(&a).unwrap().as_ref(), &[1u8; 1000]);
    assert_eq!(store.read(&b).unwrap().as_ref(), &[2u8; 1000]);
    assert_eq!(files(&tmp.path().join("tmp")), Vec::<String>::new());
    // A put in progress holds its space until it ends.
    let PutStart::Receiving(pending) = store.begin_put(ChunkHash::of(&[4u8; 500]), 500).unwrap() else {
        panic!()
    };
    assert!(matches!(
        store.begin_put(ChunkHash::of(&[5u8; 1]), 1),
        Err(StoreError::Full { .. })
    ));
    drop(pending);
    put(&store, &[5u8; 1]).unwrap();
}

#[test]
fn puts_go_to_the_directory_with_the_most_room_and_reads_find_them_anywhere() {
    let small = tempfile::tempdir().unwrap();
    let large = tempfile::tempdir().unwrap();
    let store = store_in(&[(small.path(), Some(1500)), (large.path(), Some(2500))]);
    let a = put(&store, &[1u8; 1000]).unwrap(); // large: 1500 left, small: 1500
    let b = put(&store, &[2u8; 1000]).unwrap(); // either
    let c = put(&store, &[3u8; 1000]).unwrap(); // the other
    assert!(put(&store, &[4u8; 1000]).is_err());
    for (hash, byte) in [(a, 1u8), (b, 2), (c, 3)] {
        assert_eq!(store.read(&hash).unwrap().as_ref(), &[byte; 1000]);
    }
    let used: Vec<u64> = store.capacity().iter().map(|c| c.used_bytes).collect();
    assert_eq!(used, vec![1000, 2000]);
}

#[test]
fn opening_removes_leftovers_of_interrupted_puts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let hash = put(&store, b"kept").unwrap();
    drop(store);
    fs::write(tmp.path().join("tmp").join("x.tmp"), b"half").unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    assert!(files(&tmp.path().join("tmp")).is_empty());
    assert_eq!(store.read(&hash).unwrap().as_ref(), b"kept");
    assert_eq!(store.capacity()[0].chunk_count, 1);
}

#[test]
fn listing_finds_every_chunk_in_every_directory_and_skips_strays() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert_eq!(
        store_in(&[(a.path(), None)]).list().count(),
        0,
        "an empty store lists nothing"
    );
    let mut expected: Vec<ChunkHash> = {
        let only_a = store_in(&[(a.path(), None)]);
        (0..40u8).map(|i| put(&only_a, &[i; 300]).unwrap()).collect()
    };
    {
        let only_b = store_in(&[(b.path(), None)]);
        expected.extend((0..5u8).map(|i| put(&only_b, &[i; 301]).unwrap()));
    }
    let store = store_in(&[(a.path(), None), (b.path(), None)]);
    // A stray file in a shard and one at the top of chunks/ are not chunks.
    let shard = store.dirs[1].shard_dir(&expected[40]);
    fs::write(shard.join("notes.txt"), b"x").unwrap();
    fs::write(a.path().join("chunks").join("README"), b"x").unwrap();
    let mut listed: Vec<ChunkHash> = store.list().map(|h| h.unwrap()).collect();
    expected.sort_by_key(|h| h.to_hex());
    listed.sort_by_key(|h| h.to_hex());
    assert_eq!(listed, expected);
}

#[test]
fn a_deleted_chunk_is_no_longer_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let kept = put(&store, b"kept").unwrap();
    let gone = put(&store, b"gone").unwrap();
    assert!(store.delete(&gone).unwrap());
    let listed: Vec<ChunkHash> = store.list().map(|h| h.unwrap()).collect();
    assert_eq!(listed, vec![kept]);
}

#[test]
fn a_guarded_delete_spares_a_recent_chunk_and_removes_an_idle_one() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let hash = put(&store, &[3u8; 2000]).unwrap();
    let minute = Duration::from_secs(60);
    let now = SystemTime::now();
    assert_eq!(
        store.delete_if_idle(&hash, minute, now).unwrap(),
        Deletion::KeptRecent
    );
    assert!(store.contains(&hash));
    // An hour later the same copy is idle.
    let later = now + Duration::from_secs(3600);
    assert_eq!(
        store.delete_if_idle(&hash, minute, later).unwrap(),
        Deletion::Removed
    );
    assert!(!store.contains(&hash));
    assert_eq!(
        store.delete_if_idle(&hash, minute, later).unwrap(),
        Deletion::Absent
    );
}

#[test]
fn a_re_put_refreshes_the_file_time_so_a_guarded_delete_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    let content = vec![9u8; 4000];
    let hash = put(&store, &content).unwrap();
    let path = store.dirs[0].chunk_path(&hash);
    let old = SystemTime::now() - Duration::from_secs(7200);
    fs::File::open(&path).unwrap().set_modified(old).unwrap();
    let minute = Duration::from_secs(60);
    // Idle for two hours: a guarded delete now would remove it. A writer re-puts it first.
    assert!(matches!(
        store.begin_put(hash, content.len() as u64).unwrap(),
        PutStart::AlreadyPresent
    ));
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(
        modified > old + Duration::from_secs(3600),
        "the re-put refreshed the time"
    );
    assert_eq!(
        store.delete_if_idle(&hash, minute, SystemTime::now()).unwrap(),
        Deletion::KeptRecent
    );
    assert_eq!(
        store
            .delete_if_idle(&hash, Duration::ZERO, SystemTime::now())
            .unwrap(),
        Deletion::Removed,
        "min idle zero deletes unconditionally"
    );
}

/// Makes `dir` refuse the store's probe as a failed disk would: its `tmp/` is no longer a
/// directory, so creating the probe file fails (`ENOTDIR`).
fn break_probe(dir: &Path) {
    fs::remove_dir_all(dir.join("tmp")).unwrap();
    fs::write(dir.join("tmp"), b"not a directory").unwrap();
}

#[test]
fn a_directory_whose_probe_fails_stops_storing_and_serving_and_the_others_go_on() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = store_in(&[(a.path(), None), (b.path(), None)]);
    let first = put(&store, &[1u8; 3000]).unwrap();
    let (lost, kept) = if store.dirs[0].chunk_path(&first).is_file() {
        (a.path(), b.path())
    } else {
        (b.path(), a.path())
    };
    assert_eq!(probe_all(&store), 0, "working directories pass the probe");
    assert!(store.failures().is_empty());

    break_probe(lost);
    assert_eq!(probe_all(&store), 1);
    assert_eq!(probe_all(&store), 0, "a failed directory is failed once");
    let failures = store.failures();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with(&lost.display().to_string()),
        "{failures:?}"
    );
    assert!(
        !store.contains(&first),
        "a copy on a failed directory is not reported present"
    );
    assert!(matches!(store.read(&first), Err(StoreError::NotFound(_))));
    assert_eq!(store.list().count(), 0, "nor listed");
    let capacity = store.capacity();
    let failed = capacity.iter().find(|c| c.path == lost).unwrap();
    assert!(failed.failed.is_some());
    assert_eq!(
        (failed.free_bytes, failed.total_bytes, failed.chunk_count),
        (0, 0, 0)
    );

    // The same chunk again, and another: both go to the working directory.
    assert_eq!(put(&store, &[1u8; 3000]).unwrap(), first);
    let second = put(&store, &[2u8; 3000]).unwrap();
    for hash in [first, second] {
        assert!(kept.join("chunks").join(&hash.to_hex()[0..2]).is_dir());
        assert!(store.contains(&hash));
    }
    assert_eq!(store.read(&second).unwrap().as_ref(), &[2u8; 3000]);

    break_probe(kept);
    assert_eq!(probe_all(&store), 1);
    match put(&store, &[3u8; 3000]) {
        Err(StoreError::NoWorkingDir(why)) => assert!(why.contains("probe failed"), "{why}"),
        other => panic!("a store with no working directory takes no chunk: {other:?}"),
    }
}

#[test]
fn a_failed_write_gets_the_directory_probed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(&[(tmp.path(), None)]);
    break_probe(tmp.path());
    // The put's own temporary file cannot be created either; the probe that follows fails.
    assert!(matches!(put(&store, &[5u8; 100]), Err(StoreError::Io { .. })));
    assert_eq!(
        store.failures().len(),
        1,
        "the write's failure got the directory probed"
    );
}

#[test]
fn a_directory_that_cannot_be_opened_is_out_of_service_unless_it_is_the_only_one() {
    let good = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    let bad = parent.path().join("not-a-directory");
    fs::write(&bad, b"a file where a data directory should be").unwrap();
    let store = store_in(&[(bad.as_path(), None), (good.path(), None)]);
    let failures = store.failures();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("could not be opened"), "{failures:?}");
    let hash = put(&store, b"stored in the good one").unwrap();
    assert!(good.path().join("chunks").join(&hash.to_hex()[0..2]).is_dir());

    let only_bad = ChunkStore::open(&StoreConfig {
        data_dirs: vec![DataDirConfig {
            path: bad.clone(),
            capacity_bytes_max: None,
            marker: None,
        }],
        free_bytes_reserved: 0,
        direct_io: true,
    });
    assert!(
        only_bad.is_err(),
        "a node whose every directory fails to open does not start"
    );
}

fn open_with_marker(dir: &Path, marker: Option<String>) -> Result<ChunkStore, StoreError> {
    ChunkStore::open(&StoreConfig {
        data_dirs: vec![DataDirConfig {
            path: dir.to_path_buf(),
            capacity_bytes_max: None,
            marker,
        }],
        free_bytes_reserved: 0,
        direct_io: true,
    })
}

#[test]
fn a_directory_keeps_its_marker_and_one_without_it_is_refused_untouched() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("disk");
    let store = open_with_marker(&root, None).unwrap();
    let [(path, marker)] = store.markers().try_into().unwrap();
    assert_eq!(path, root);
    assert_eq!(marker.len(), 32);
    let hash = put(&store, b"on the disk").unwrap();
    drop(store);

    // Reopened with the marker on record: the same directory, its chunk still there.
    let store = open_with_marker(&root, Some(marker.clone())).unwrap();
    assert_eq!(store.read(&hash).unwrap().as_ref(), b"on the disk");
    drop(store);
    // With no record (a node from before markers, or a fresh record): the marker is adopted.
    assert_eq!(open_with_marker(&root, None).unwrap().markers()[0].1, marker);

    // The disk is gone and an empty mount point is left in its place.
    let away = parent.path().join("unmounted");
    fs::rename(&root, &away).unwrap();
    fs::create_dir(&root).unwrap();
    let refused = open_with_marker(&root, Some(marker.clone()))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("is its disk mounted"), "{refused}");
    assert!(
        files(&root).is_empty() && fs::read_dir(&root).unwrap().next().is_none(),
        "nothing created"
    );

    // Another disk in its place.
    let other = parent.path().join("other");
    open_with_marker(&other, None).unwrap();
    fs::remove_dir(&root).unwrap();
    fs::rename(&other, &root).unwrap();
    let refused = open_with_marker(&root, Some(marker.clone()))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("another disk"), "{refused}");

    // Beside a working directory, a refused one is out of service and the node still opens.
    let good = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(&StoreConfig {
        data_dirs: vec![
            DataDirConfig {
                path: root.clone(),
                capacity_bytes_max: None,
                marker: Some(marker),
            },
            DataDirConfig {
                path: good.path().to_path_buf(),
                capacity_bytes_max: None,
                marker: None,
            },
        ],
        free_bytes_reserved: 0,
        direct_io: true,
    })
    .unwrap();
    assert_eq!(store.failures().len(), 1);
    assert_eq!(
        store.markers().len(),
        1,
        "only the working directory's marker is recorded"
    );
}

/// Probes every data directory once; how many the probes took out of service.
fn probe_all(store: &ChunkStore) -> usize {
    (0..store.dir_count())
        .filter(|&index| store.check_dir(index))
        .count()
}
