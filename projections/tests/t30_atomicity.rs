//! All or nothing: an uncommitted transaction leaves no trace, a snapshot round trip rebuilds
//! identical tables, and a damaged snapshot stream is refused without touching the old state.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on any error")]

mod common;

use collective_projections::{CF_RAFT_META, SnapshotError, Store, StoreError};
use common::{all_rows, commit, envelope, initialize, issue_grant, join_node, mkdir, open_store, place, run};

fn populate(store: &Store, first: u64) {
    let cmds = [
        envelope(first, initialize()),
        envelope(first + 1, mkdir("/media", false)),
        envelope(first + 2, join_node(1)),
        envelope(first + 3, commit("/media/a.mkv", 10, 3, 0)),
        envelope(first + 4, place(10, 1)),
        envelope(first + 5, issue_grant(1, "/media")),
    ];
    run(store, first, &cmds);
}

#[test]
fn dropped_txn_leaves_no_trace() {
    let (_dir, store) = open_store();
    populate(&store, 1);
    let before = all_rows(&store);
    {
        let mut txn = store.begin();
        let o = txn.execute(10, &envelope(10, mkdir("/gone", false))).unwrap();
        assert!(!o.events().is_empty());
        txn.put_meta(b"last_applied", vec![10]);
        // Dropped here without commit.
    }
    assert_eq!(all_rows(&store), before);
    assert_eq!(store.resolve("/gone").unwrap(), None);
}

#[test]
fn export_import_round_trip_is_identical() {
    let (_a_dir, a) = open_store();
    populate(&a, 1);
    let mut stream = Vec::new();
    let summary = a.export_state(&mut stream).unwrap();
    assert_eq!(summary.bytes, stream.len() as u64);
    assert!(summary.records > 10);

    // The target has different state of its own, which must vanish entirely.
    let (_b_dir, b) = open_store();
    run(
        &b,
        1,
        &[envelope(100, initialize()), envelope(101, mkdir("/other", false))],
    );
    let raft_meta = b.db().cf_handle(CF_RAFT_META).unwrap();
    b.db().put_cf(raft_meta, b"vote", b"kept").unwrap();

    b.import_state(&mut stream.as_slice()).unwrap();
    assert_eq!(all_rows(&b), all_rows(&a));
    assert_eq!(b.resolve("/other").unwrap(), None);
    assert!(b.resolve("/media/a.mkv").unwrap().is_some());
    // Raft's own tables are not part of the state and are left alone.
    let raft_meta = b.db().cf_handle(CF_RAFT_META).unwrap();
    assert_eq!(b.db().get_cf(raft_meta, b"vote").unwrap(), Some(b"kept".to_vec()));

    // And the imported state is a working state: a second export is byte-identical.
    let mut again = Vec::new();
    b.export_state(&mut again).unwrap();
    assert_eq!(again, stream);
}

#[test]
fn damaged_stream_is_refused_and_old_state_kept() {
    let (_a_dir, a) = open_store();
    populate(&a, 1);
    let mut stream = Vec::new();
    a.export_state(&mut stream).unwrap();

    let (_b_dir, b) = open_store();
    run(
        &b,
        1,
        &[envelope(100, initialize()), envelope(101, mkdir("/mine", false))],
    );
    let before = all_rows(&b);

    let mut damaged: Vec<(String, Vec<u8>)> = Vec::new();
    for position in [
        0,
        9,
        13,
        40,
        stream.len() / 2,
        stream.len() - 40,
        stream.len() - 1,
    ] {
        let mut s = stream.clone();
        s[position] ^= 0x01;
        damaged.push((format!("flip at {position}"), s));
    }
    for len in [0, 5, 12, stream.len() / 3, stream.len() - 33, stream.len() - 1] {
        damaged.push((format!("truncated to {len}"), stream[..len].to_vec()));
    }
    let mut longer = stream.clone();
    longer.push(0);
    damaged.push(("trailing byte".to_string(), longer));

    for (what, s) in damaged {
        let err = b.import_state(&mut s.as_slice()).expect_err(&what);
        assert!(matches!(err, StoreError::Snapshot(_)), "{what}: {err}");
        assert_eq!(all_rows(&b), before, "{what}: old state must be intact");
    }

    let mut truncated = stream.clone();
    truncated.truncate(stream.len() - 1);
    let err = b.import_state(&mut truncated.as_slice()).unwrap_err();
    assert!(
        matches!(err, StoreError::Snapshot(SnapshotError::Truncated)),
        "{err}"
    );
    let mut flipped = stream.clone();
    let mid = stream.len() - 40;
    flipped[mid] ^= 0x80;
    let err = b.import_state(&mut flipped.as_slice()).unwrap_err();
    assert!(err.to_string().contains("refused"), "clear error text: {err}");
}

#[test]
fn a_frozen_state_exports_one_instant_while_applies_go_on() {
    let (_dir, store) = open_store();
    populate(&store, 1);
    let mut before = Vec::new();
    store.export_state(&mut before).unwrap();
    let applied = store.begin().get_meta(b"last_applied").unwrap();
    let frozen = store.freeze();
    // Applies after the freeze: a new directory and a new last_applied, in one commit.
    let mut txn = store.begin();
    txn.execute(20, &envelope(20, mkdir("/later", false))).unwrap();
    txn.put_meta(b"last_applied", vec![20]);
    txn.commit().unwrap();
    assert!(store.resolve("/later").unwrap().is_some());
    // The frozen state shows neither: its export is the state before, byte for byte.
    assert_eq!(frozen.get_meta(b"last_applied").unwrap(), applied);
    assert_eq!(store.begin().get_meta(b"last_applied").unwrap(), Some(vec![20]));
    let mut during = Vec::new();
    frozen.export(&mut during).unwrap();
    assert_eq!(during, before);
}
