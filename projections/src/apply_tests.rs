//! Given/when/then tests of `apply` on in-memory tables: each event kind lands where the
//! queries and `decide` expect it, and subtree removal leaves nothing behind.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on any error")]

use collective_events::{ROOT_INODE, View, pb, pb::event_envelope::Event};

use crate::keys::{dirent_key, u64_key, version_key};
use crate::records::{ChunkRecord, EntryRecord, InviteRecord, NodeRecord, get_record};
use crate::tables::{META_EVENT_COUNT, Table, TableRead};
use crate::{MemTables, TablesView, apply};

fn envelope(index: u64, event: Event) -> pb::EventEnvelope {
    pb::EventEnvelope {
        schema_version: 1,
        actor: "admin@alice.home.collective".into(),
        request_id: index.to_be_bytes().to_vec(),
        proposed_at_unix_ms: 1_000 + i64::try_from(index).unwrap(),
        log_index: index,
        sequence: 0,
        event: Some(event),
    }
}

fn given(events: Vec<Event>) -> MemTables {
    let mut t = MemTables::new();
    for (i, e) in events.into_iter().enumerate() {
        apply(&mut t, &envelope(i as u64 + 1, e)).unwrap();
    }
    t
}

fn init() -> Event {
    Event::MemberInitialized(pb::MemberInitialized {
        member_domain: "alice.home.collective".into(),
        ..Default::default()
    })
}

fn dir(inode: u64, parent: u64, name: &str) -> Event {
    Event::DirectoryCreated(pb::DirectoryCreated {
        inode,
        parent,
        name: name.into(),
        path: String::new(),
    })
}

fn file(inode: u64, parent: u64, name: &str, version: u64) -> Event {
    Event::FileVersionCommitted(pb::FileVersionCommitted {
        inode,
        parent,
        name: name.into(),
        path: String::new(),
        version,
        size: version * 10,
        chunks: vec![pb::ChunkRef {
            hash: vec![version as u8; 32],
            offset: 0,
            size: version * 10,
        }],
        replicas: 2,
        inline_data: Vec::new(),
    })
}

fn entry(t: &MemTables, inode: u64) -> Option<EntryRecord> {
    get_record(t, Table::Entries, &u64_key(inode)).unwrap()
}

#[test]
fn member_initialized_creates_the_root_and_the_inode_counter() {
    let t = given(vec![init()]);
    let view = TablesView::new(&t);
    assert_eq!(view.member().unwrap().member_domain, "alice.home.collective");
    assert_eq!(view.next_inode(), ROOT_INODE + 1);
    let root = view.entry(ROOT_INODE).unwrap();
    assert_eq!(root.kind, pb::EntryKind::Directory);
    assert!(!view.has_children(ROOT_INODE));
    view.finish().unwrap();
}

#[test]
fn directories_and_file_versions_are_inodes() {
    let t = given(vec![
        init(),
        dir(2, 1, "media"),
        file(3, 2, "a.mkv", 1),
        file(3, 2, "a.mkv", 2),
    ]);
    let view = TablesView::new(&t);
    assert_eq!(view.next_inode(), 4);
    assert_eq!(view.lookup(1, "media").unwrap().inode, 2);
    let a = view.lookup(2, "a.mkv").unwrap();
    assert_eq!((a.inode, a.version, a.kind), (3, 2, pb::EntryKind::File));
    assert_eq!(view.versions(3), vec![1, 2]);
    assert!(view.has_children(2));
    view.finish().unwrap();
    let record = entry(&t, 3).unwrap();
    assert_eq!(record.size, 20);
    assert_eq!(record.created_at_unix_ms, 1_003, "created by the first version");
    assert_eq!(record.modified_at_unix_ms, 1_004);
}

#[test]
fn pruning_removes_only_the_named_version() {
    let mut t = given(vec![init(), file(2, 1, "f", 1), file(2, 1, "f", 2)]);
    let prune = Event::FileVersionPruned(pb::FileVersionPruned { inode: 2, version: 1 });
    apply(&mut t, &envelope(9, prune)).unwrap();
    assert_eq!(TablesView::new(&t).versions(2), vec![2]);
    assert_eq!(entry(&t, 2).unwrap().version, 2);
}

fn chunk(t: &MemTables, byte: u8) -> Option<ChunkRecord> {
    get_record(t, Table::Chunks, &[byte; 32]).unwrap()
}

#[test]
fn versions_reference_their_chunks_until_pruned_or_removed() {
    // Versions 1 and 2 of /f name chunks [1;32] and [2;32]; /g's version 1 names [1;32] too.
    let mut t = given(vec![
        init(),
        file(2, 1, "f", 1),
        file(2, 1, "f", 2),
        file(3, 1, "g", 1),
    ]);
    assert_eq!(chunk(&t, 1).unwrap().refs, 2);
    assert_eq!(chunk(&t, 1).unwrap().replicas_wanted, 2);
    let prune = Event::FileVersionPruned(pb::FileVersionPruned { inode: 2, version: 1 });
    apply(&mut t, &envelope(9, prune)).unwrap();
    let one = chunk(&t, 1).unwrap();
    assert_eq!((one.refs, one.unreferenced_at_unix_ms), (1, 0));
    let removed = Event::EntryRemoved(pb::EntryRemoved {
        inode: 3,
        parent: 1,
        name: "g".into(),
        ..Default::default()
    });
    apply(&mut t, &envelope(10, removed)).unwrap();
    let one = chunk(&t, 1).unwrap();
    assert_eq!((one.refs, one.unreferenced_at_unix_ms), (0, 1_010));
    assert_eq!(
        chunk(&t, 2).unwrap().refs,
        1,
        "the current version of /f still names it"
    );
}

#[test]
fn the_last_replica_of_an_unreferenced_chunk_takes_its_record_along() {
    let placed = |node: &str| {
        Event::ChunkPlaced(pb::ChunkPlaced {
            hash: vec![7; 32],
            node: node.into(),
            size: 5,
        })
    };
    let removed = |node: &str| {
        Event::ReplicaRemoved(pb::ReplicaRemoved {
            hash: vec![7; 32],
            node: node.into(),
            reason: "garbage".into(),
        })
    };
    let mut t = given(vec![
        init(),
        placed("n1@alice.home.collective"),
        placed("n2@alice.home.collective"),
    ]);
    let orphan = chunk(&t, 7).unwrap();
    assert_eq!((orphan.refs, orphan.unreferenced_at_unix_ms), (0, 1_002));
    apply(&mut t, &envelope(5, removed("n1@alice.home.collective"))).unwrap();
    assert!(chunk(&t, 7).is_some(), "one replica is left");
    apply(&mut t, &envelope(6, removed("n2@alice.home.collective"))).unwrap();
    assert!(chunk(&t, 7).is_none());
}

#[test]
fn a_move_rekeys_the_directory_entry_and_keeps_the_inode() {
    let mut t = given(vec![init(), dir(2, 1, "a"), dir(3, 1, "b"), file(4, 2, "x", 1)]);
    let moved = Event::EntryMoved(pb::EntryMoved {
        inode: 4,
        from_parent: 2,
        from_name: "x".into(),
        to_parent: 3,
        to_name: "y".into(),
        ..Default::default()
    });
    apply(&mut t, &envelope(9, moved)).unwrap();
    assert_eq!(t.get(Table::Dirents, &dirent_key(2, "x")).unwrap(), None);
    assert_eq!(
        t.get(Table::Dirents, &dirent_key(3, "y")).unwrap(),
        Some(u64_key(4))
    );
    let e = entry(&t, 4).unwrap();
    assert_eq!((e.parent, e.name.as_str()), (3, "y"));
}

#[test]
fn removing_a_directory_removes_its_whole_subtree() {
    let mut t = given(vec![
        init(),
        dir(2, 1, "keep"),
        file(3, 2, "k", 1),
        dir(4, 1, "gone"),
        dir(5, 4, "sub"),
        file(6, 5, "deep", 1),
        file(6, 5, "deep", 2),
        file(7, 4, "top", 1),
    ]);
    let before_keep = entry(&t, 3).unwrap();
    let removed = Event::EntryRemoved(pb::EntryRemoved {
        inode: 4,
        parent: 1,
        name: "gone".into(),
        path: "/gone".into(),
        kind: pb::EntryKind::Directory as i32,
    });
    apply(&mut t, &envelope(20, removed)).unwrap();
    for inode in [4, 5, 6, 7] {
        assert_eq!(entry(&t, inode), None, "inode {inode}");
        assert!(
            t.scan_prefix(Table::Dirents, &u64_key(inode), None, 10)
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(t.get(Table::Versions, &version_key(6, 1)).unwrap(), None);
    assert_eq!(t.get(Table::Versions, &version_key(6, 2)).unwrap(), None);
    assert_eq!(t.get(Table::Dirents, &dirent_key(1, "gone")).unwrap(), None);
    assert_eq!(entry(&t, 3), Some(before_keep));
    assert_eq!(t.rows(Table::Dirents).len(), 2, "only keep and keep/k remain");
    // The counter never goes back: removed inodes are not reused.
    assert_eq!(TablesView::new(&t).next_inode(), 8);
}

#[test]
fn placement_is_indexed_both_ways() {
    let hash = vec![7u8; 32];
    let placed = |node: &str| {
        Event::ChunkPlaced(pb::ChunkPlaced {
            hash: hash.clone(),
            node: node.into(),
            size: 5,
        })
    };
    let mut t = given(vec![placed("n1"), placed("n2")]);
    let view = TablesView::new(&t);
    assert!(view.replica_exists(&hash, "n1") && view.replica_exists(&hash, "n2"));
    assert!(!view.replica_exists(&hash, "n3"));
    assert_eq!(t.rows(Table::NodeChunks).len(), 2);
    let removed = Event::ReplicaRemoved(pb::ReplicaRemoved {
        hash: hash.clone(),
        node: "n1".into(),
        reason: "scrub".into(),
    });
    apply(&mut t, &envelope(9, removed)).unwrap();
    let view = TablesView::new(&t);
    assert!(!view.replica_exists(&hash, "n1") && view.replica_exists(&hash, "n2"));
    assert_eq!(t.rows(Table::NodeChunks).len(), 1);
    assert_eq!(t.rows(Table::Placement).len(), 1);
}

#[test]
fn node_status_and_invite_uses_are_recorded() {
    let joined = Event::NodeJoined(pb::NodeJoined {
        address: "n1".into(),
        capacity_bytes: 100,
        ..Default::default()
    });
    let down = Event::NodeStatusChanged(pb::NodeStatusChanged {
        address: "n1".into(),
        status: pb::NodeStatus::Down as i32,
        free_bytes: 40,
    });
    let issued = Event::InviteIssued(pb::InviteIssued {
        invite_id: b"inv".to_vec(),
        code_hash: b"code".to_vec(),
        max_uses: 2,
        ..Default::default()
    });
    let redeemed = Event::InviteRedeemed(pb::InviteRedeemed {
        invite_id: b"inv".to_vec(),
        uses: 1,
        ..Default::default()
    });
    let t = given(vec![joined, down, issued, redeemed]);
    let view = TablesView::new(&t);
    let node = view.node("n1").unwrap();
    assert_eq!((node.status, node.free_bytes), (pb::NodeStatus::Down, 40));
    let invite = view.invite_by_code_hash(b"code").unwrap();
    assert_eq!((invite.uses, invite.revoked), (1, false));
    let node: NodeRecord = get_record(&t, Table::Nodes, b"n1").unwrap().unwrap();
    assert_eq!(node.joined_at_unix_ms, 1_001);
    let invite: InviteRecord = get_record(&t, Table::Invites, b"inv").unwrap().unwrap();
    assert_eq!(invite.issued_by, "admin@alice.home.collective");
    assert_eq!(t.get(Table::SmMeta, META_EVENT_COUNT).unwrap(), Some(u64_key(4)));
}
