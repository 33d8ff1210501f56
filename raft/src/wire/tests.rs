//! Round trips of every wire encoding, and refusals of malformed bytes.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use collective_events::pb;
use openraft::EntryPayload;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::StreamAppendError;
use openraft::raft::TransferLeaderError;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::vote::RaftLeaderId;
use prost::Message;

use super::*;
use crate::types::Command;
use crate::types::CoordinatorNode;

fn log_id(term: u64, node: u64, index: u64) -> types::LogId {
    types::LogId::new(types::LeaderId::new(term, node), index)
}

fn vote(term: u64, node: u64, committed: bool) -> types::Vote {
    types::Vote {
        leader_id: types::LeaderId::new(term, node),
        committed,
    }
}

fn node(n: u64) -> CoordinatorNode {
    CoordinatorNode::new(
        format!("coord-{n}@alice.home.collective"),
        format!("127.0.0.1:700{n}"),
    )
}

fn joint_membership() -> types::Membership {
    let configs = vec![BTreeSet::from([1, 2]), BTreeSet::from([1, 2, 3])];
    let nodes: BTreeMap<u64, CoordinatorNode> = (1..=4).map(|i| (i, node(i))).collect();
    types::Membership::new(configs, nodes).expect("valid membership")
}

fn command() -> Command {
    Command(pb::CommandEnvelope {
        schema_version: 1,
        actor: "alice@alice.home.collective".into(),
        request_id: vec![7; 16],
        proposed_at_unix_ms: 1_700_000_000_000,
        command: Some(pb::command_envelope::Command::CreateDirectory(
            pb::CreateDirectory {
                path: "/photos".into(),
                parents: true,
            },
        )),
    })
}

fn entries() -> Vec<types::Entry> {
    vec![
        types::Entry {
            log_id: log_id(0, 0, 0),
            payload: EntryPayload::Blank,
        },
        types::Entry {
            log_id: log_id(3, 2, 41),
            payload: EntryPayload::Normal(command()),
        },
        types::Entry {
            log_id: log_id(3, 2, 42),
            payload: EntryPayload::Membership(joint_membership()),
        },
    ]
}

#[test]
fn entries_round_trip() {
    for e in entries() {
        let back = decode_entry(&encode_entry(&e)).expect("decodes");
        assert_eq!(back, e);
    }
}

#[test]
fn vote_and_log_id_round_trip() {
    for v in [
        vote(0, 0, false),
        vote(9, 3, true),
        vote(u64::MAX, u64::MAX, true),
    ] {
        assert_eq!(decode_vote(&encode_vote(&v)).expect("decodes"), v);
    }
    for l in [
        log_id(0, 0, 0),
        log_id(5, 1, 77),
        log_id(u64::MAX, 2, u64::MAX - 1),
    ] {
        assert_eq!(decode_log_id(&encode_log_id(&l)).expect("decodes"), l);
    }
}

#[test]
fn stored_membership_and_snapshot_meta_round_trip() {
    let empty = types::StoredMembership::default();
    assert_eq!(
        decode_stored_membership(&encode_stored_membership(&empty)).expect("empty"),
        empty
    );
    let full = types::StoredMembership::new(Some(log_id(2, 1, 10)), joint_membership());
    assert_eq!(
        decode_stored_membership(&encode_stored_membership(&full)).expect("full"),
        full
    );

    for meta in [
        types::SnapshotMeta {
            last_log_id: None,
            last_membership: empty,
        },
        types::SnapshotMeta {
            last_log_id: Some(log_id(2, 1, 12)),
            last_membership: full,
        },
    ] {
        assert_eq!(
            decode_snapshot_meta(&encode_snapshot_meta(&meta)).expect("meta"),
            meta
        );
    }
}

/// `AppendEntriesRequest` has no `PartialEq`; compare field by field.
fn assert_same_append(
    a: &AppendEntriesRequest<types::TypeConfig>,
    b: &AppendEntriesRequest<types::TypeConfig>,
) {
    assert_eq!(a.vote, b.vote);
    assert_eq!(a.prev_log_id, b.prev_log_id);
    assert_eq!(a.entries, b.entries);
    assert_eq!(a.leader_commit, b.leader_commit);
}

#[test]
fn append_entries_round_trip() {
    let req = AppendEntriesRequest::<types::TypeConfig> {
        vote: vote(3, 2, true),
        prev_log_id: Some(log_id(3, 2, 40)),
        entries: entries(),
        leader_commit: Some(log_id(3, 2, 39)),
    };
    assert_same_append(
        &decode_append_entries_request(&encode_append_entries_request(&req)).expect("req"),
        &req,
    );
    let heartbeat = AppendEntriesRequest::<types::TypeConfig> {
        vote: vote(1, 1, true),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    let back = decode_append_entries_request(&encode_append_entries_request(&heartbeat));
    assert_same_append(&back.expect("heartbeat"), &heartbeat);

    for resp in [
        AppendEntriesResponse::Success,
        AppendEntriesResponse::PartialSuccess(None),
        AppendEntriesResponse::PartialSuccess(Some(log_id(1, 1, 3))),
        AppendEntriesResponse::Conflict,
        AppendEntriesResponse::HigherVote(vote(4, 3, false)),
    ] {
        let back = decode_append_entries_response(&encode_append_entries_response(&resp));
        assert_eq!(back.expect("resp"), resp);
    }
}

#[test]
fn stream_append_results_round_trip() {
    for r in [
        Ok(None),
        Ok(Some(log_id(2, 1, 8))),
        Err(StreamAppendError::Conflict(log_id(2, 1, 9))),
        Err(StreamAppendError::HigherVote(vote(5, 3, true))),
    ] {
        assert_eq!(
            decode_stream_append_result(&encode_stream_append_result(&r)).expect("r"),
            r
        );
    }
}

#[test]
fn vote_messages_round_trip() {
    let mut req = VoteRequest::<types::TypeConfig>::new(vote(7, 2, false), Some(log_id(6, 1, 99)));
    req.leadership_transfer = true;
    assert_eq!(decode_vote_request(&encode_vote_request(&req)).expect("req"), req);
    let req = VoteRequest::<types::TypeConfig>::new(vote(1, 1, false), None);
    assert_eq!(decode_vote_request(&encode_vote_request(&req)).expect("req"), req);

    for resp in [
        VoteResponse::<types::TypeConfig>::new(vote(7, 2, true), Some(log_id(6, 1, 99)), true),
        VoteResponse::<types::TypeConfig>::new(vote(8, 3, false), None, false),
    ] {
        assert_eq!(
            decode_vote_response(&encode_vote_response(&resp)).expect("resp"),
            resp
        );
    }
}

#[test]
fn snapshot_and_transfer_messages_round_trip() {
    let meta = types::SnapshotMeta {
        last_log_id: Some(log_id(2, 1, 12)),
        last_membership: types::StoredMembership::new(Some(log_id(1, 1, 1)), joint_membership()),
    };
    let v = vote(2, 1, true);
    let (v2, meta2) = decode_snapshot_request_meta(&encode_snapshot_request_meta(&v, &meta)).expect("meta");
    assert_eq!((v2, meta2), (v, meta));
    let resp = SnapshotResponse::<types::TypeConfig>::new(vote(3, 1, true));
    assert_eq!(
        decode_snapshot_response(&encode_snapshot_response(&resp)).expect("resp"),
        resp
    );

    let req = TransferLeaderRequest::<types::TypeConfig>::new(vote(4, 1, true), 3, Some(log_id(4, 1, 20)));
    let back = decode_transfer_leader_request(&encode_transfer_leader_request(&req)).expect("req");
    assert_eq!(back, req);
    for resp in [
        Ok(()),
        Err(TransferLeaderError::VoteChanged {
            expected: vote(4, 1, true),
            actual: vote(5, 2, false),
        }),
        Err(TransferLeaderError::LogNotFlushed {
            expected: Some(log_id(4, 1, 20)),
            actual: None,
        }),
    ] {
        let back = decode_transfer_leader_response(&encode_transfer_leader_response(&resp));
        assert_eq!(back.expect("resp"), resp);
    }
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    let garbage = [0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(decode_entry(&garbage).is_err());
    assert!(decode_vote(&garbage).is_err());
    assert!(decode_append_entries_request(&garbage).is_err());
    assert!(decode_snapshot_request_meta(&garbage).is_err());

    // Well-formed protobuf that misses what Raft needs.
    assert!(matches!(
        decode_entry(&[]),
        Err(WireError::Missing("entry.log_id"))
    ));
    assert!(matches!(decode_vote_request(&[]), Err(WireError::Missing(_))));
    assert!(matches!(
        decode_append_entries_response(&[]),
        Err(WireError::Missing(_))
    ));

    // A command entry whose bytes are not a CommandEnvelope.
    let bad = Entry {
        log_id: Some(LogId {
            term: 1,
            node_id: 1,
            index: 1,
        }),
        payload: Some(entry::Payload::Command(garbage.to_vec())),
    };
    assert!(matches!(
        decode_entry(&bad.encode_to_vec()),
        Err(WireError::Command(_))
    ));

    // A voter without a node is not a membership.
    let orphan = Membership {
        configs: vec![VoterSet { ids: vec![9] }],
        nodes: BTreeMap::new(),
    };
    let bad = Entry {
        log_id: Some(LogId {
            term: 1,
            node_id: 1,
            index: 2,
        }),
        payload: Some(entry::Payload::Membership(orphan)),
    };
    assert!(matches!(
        decode_entry(&bad.encode_to_vec()),
        Err(WireError::Membership(_))
    ));
}

/// Pins the log entry encoding: these bytes are on disk and must read back forever.
#[test]
fn golden_blank_entry_bytes() {
    let e = types::Entry {
        log_id: log_id(1, 2, 3),
        payload: EntryPayload::Blank,
    };
    assert_eq!(
        encode_entry(&e),
        vec![0x0a, 0x06, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x12, 0x00]
    );
}
