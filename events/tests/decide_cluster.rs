//! Given/when/then tests of the envelope checks and the cluster decisions: member initialization,
//! coordinators, nodes and chunk placement.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use collective_events::RejectionCode::*;
use collective_events::pb::{self, NodeStatus, command_envelope::Command, event_envelope::Event};
use support::{code, envelope, given, hash};

const NODE: &str = "node-01@alice.home.collective";

fn initialize(federation: &str, member: &str) -> Command {
    Command::InitializeMember(pb::InitializeMember {
        federation_domain: federation.into(),
        member_domain: member.into(),
        root_ca_der: vec![0x30, 0x01],
        member_ca_der: vec![0x30, 0x02],
    })
}

fn add_coordinator(raft_id: u64, address: &str) -> Command {
    Command::AddCoordinator(pb::AddCoordinator {
        raft_id,
        address: address.into(),
        endpoint: "10.0.0.2:7001".into(),
    })
}

fn join(address: &str) -> pb::JoinNode {
    pb::JoinNode {
        address: address.into(),
        endpoint: "10.0.0.5:9000".into(),
        capacity_bytes: 20_000_000_000_000,
        labels: vec![pb::Label {
            key: "disk".into(),
            value: "hdd".into(),
        }],
    }
}

fn report(status: NodeStatus, free_bytes: u64) -> Command {
    Command::ReportNodeStatus(pb::ReportNodeStatus {
        address: NODE.into(),
        status: status as i32,
        free_bytes,
    })
}

fn place(node: &str) -> pb::PlaceChunk {
    pb::PlaceChunk {
        hash: hash(5).to_vec(),
        node: node.into(),
        size: 4096,
    }
}

fn remove_replica(node: &str) -> pb::RemoveReplica {
    pb::RemoveReplica {
        hash: hash(5).to_vec(),
        node: node.into(),
        reason: "repaired".into(),
    }
}

// --- The envelope ----------------------------------------------------------------------------

#[test]
fn an_unknown_schema_version_is_unsupported_schema() {
    for version in [0, 2] {
        let cmd = pb::CommandEnvelope {
            schema_version: version,
            ..envelope(initialize("a.b", "c.a.b"))
        };
        assert_eq!(code(collective_events::decide(&given(), &cmd)), UnsupportedSchema);
    }
}

#[test]
fn an_envelope_without_a_command_is_missing_command() {
    let cmd = pb::CommandEnvelope {
        command: None,
        ..envelope(initialize("a.b", "c.a.b"))
    };
    assert_eq!(code(collective_events::decide(&given(), &cmd)), MissingCommand);
}

#[test]
fn a_request_id_must_be_16_bytes() {
    for length in [0, 15, 17] {
        let cmd = pb::CommandEnvelope {
            request_id: vec![1; length],
            ..envelope(initialize("a.b", "c.a.b"))
        };
        assert_eq!(
            code(collective_events::decide(&given(), &cmd)),
            InvalidArgument,
            "{length}"
        );
    }
}

#[test]
fn every_command_but_initialize_waits_for_initialization() {
    let state = given();
    let commands = [
        add_coordinator(2, "coord-2@alice.home.collective"),
        Command::RemoveCoordinator(pb::RemoveCoordinator { raft_id: 1 }),
        Command::JoinNode(join(NODE)),
        report(NodeStatus::Up, 1),
        Command::RemoveNode(pb::RemoveNode { address: NODE.into() }),
        Command::CreateDirectory(pb::CreateDirectory {
            path: "/a".into(),
            parents: false,
        }),
        Command::CommitFileVersion(pb::CommitFileVersion {
            path: "/f".into(),
            ..Default::default()
        }),
        Command::RemoveEntry(pb::RemoveEntry {
            path: "/a".into(),
            recursive: true,
        }),
        Command::MoveEntry(pb::MoveEntry {
            from: "/a".into(),
            to: "/b".into(),
        }),
        Command::PlaceChunk(place(NODE)),
        Command::RemoveReplica(remove_replica(NODE)),
        Command::CreateDatastore(pb::CreateDatastore::default()),
        Command::IssueGrant(pb::IssueGrant::default()),
        Command::RevokeGrant(pb::RevokeGrant::default()),
        Command::IssueInvite(pb::IssueInvite::default()),
        Command::RedeemInvite(pb::RedeemInvite::default()),
        Command::RevokeInvite(pb::RevokeInvite::default()),
        Command::IssueCertificate(pb::IssueCertificate::default()),
        Command::RevokeCertificate(pb::RevokeCertificate::default()),
    ];
    for command in commands {
        let name = collective_events::decide::command_name(&command);
        assert_eq!(code(state.when(command)), FailedPrecondition, "{name}");
    }
}

// --- InitializeMember ------------------------------------------------------------------------

#[test]
fn initializing_records_the_canonical_domains_and_the_cas() {
    assert_eq!(
        given().when(initialize("Home.Collective", "Alice.home.collective")),
        Ok(vec![Event::MemberInitialized(pb::MemberInitialized {
            federation_domain: "home.collective".into(),
            member_domain: "alice.home.collective".into(),
            root_ca_der: vec![0x30, 0x01],
            member_ca_der: vec![0x30, 0x02],
        })])
    );
}

#[test]
fn initializing_twice_is_already_exists() {
    assert_eq!(
        code(
            given()
                .initialized()
                .when(initialize("home.collective", "bob.home.collective"))
        ),
        AlreadyExists
    );
}

#[test]
fn initializing_with_invalid_domains_is_invalid_argument() {
    for (federation, member) in [
        ("collective", "alice.collective"),
        ("home.collective", "alice"),
        ("home..collective", "alice.home.collective"),
        ("home.collective", "alice_x.home.collective"),
        ("*.collective", "alice.home.collective"),
        ("home.collective", "home.collective"),
        ("home.collective", "alice.other.collective"),
        ("home.collective", "alicehome.collective"),
    ] {
        assert_eq!(
            code(given().when(initialize(federation, member))),
            InvalidArgument,
            "{federation} {member}"
        );
    }
}

// --- Coordinators ----------------------------------------------------------------------------

#[test]
fn adding_a_coordinator_records_its_canonical_address() {
    let state = given().initialized();
    assert_eq!(
        state.when(add_coordinator(2, "Coord-2@alice.home.collective")),
        Ok(vec![Event::CoordinatorAdded(pb::CoordinatorAdded {
            raft_id: 2,
            address: "coord-2@alice.home.collective".into(),
            endpoint: "10.0.0.2:7001".into(),
        })])
    );
}

#[test]
fn a_duplicate_raft_id_or_address_is_already_exists() {
    let state = given().initialized();
    assert_eq!(
        code(state.when(add_coordinator(1, "coord-9@alice.home.collective"))),
        AlreadyExists
    );
    assert_eq!(
        code(state.when(add_coordinator(9, "coord-1@alice.home.collective"))),
        AlreadyExists
    );
}

#[test]
fn a_coordinator_outside_the_member_domain_or_malformed_is_invalid_argument() {
    let state = given().initialized();
    assert_eq!(
        code(state.when(add_coordinator(2, "coord-2@bob.home.collective"))),
        InvalidArgument
    );
    assert_eq!(
        code(state.when(add_coordinator(2, "*@alice.home.collective"))),
        InvalidArgument
    );
    assert_eq!(code(state.when(add_coordinator(2, "coord-2"))), InvalidArgument);
    assert_eq!(
        code(state.when(add_coordinator(0, "coord-2@alice.home.collective"))),
        InvalidArgument
    );
    let no_endpoint = pb::AddCoordinator {
        raft_id: 2,
        address: "c@alice.home.collective".into(),
        endpoint: "".into(),
    };
    assert_eq!(
        code(state.when(Command::AddCoordinator(no_endpoint))),
        InvalidArgument
    );
}

#[test]
fn the_coordinator_count_is_bounded() {
    let mut state = given().initialized();
    for raft_id in 2..=collective_events::decide::COORDINATORS_MAX as u64 {
        state = state.coordinator(raft_id, &format!("coord-{raft_id}@alice.home.collective"));
    }
    assert_eq!(
        code(state.when(add_coordinator(99, "coord-99@alice.home.collective"))),
        FailedPrecondition
    );
}

#[test]
fn removing_a_coordinator() {
    let state = given()
        .initialized()
        .coordinator(2, "coord-2@alice.home.collective");
    assert_eq!(
        state.when(Command::RemoveCoordinator(pb::RemoveCoordinator { raft_id: 2 })),
        Ok(vec![Event::CoordinatorRemoved(pb::CoordinatorRemoved {
            raft_id: 2
        })])
    );
}

#[test]
fn removing_an_unknown_coordinator_is_not_found() {
    let state = given().initialized();
    assert_eq!(
        code(state.when(Command::RemoveCoordinator(pb::RemoveCoordinator { raft_id: 7 }))),
        NotFound
    );
}

#[test]
fn removing_the_last_coordinator_is_failed_precondition() {
    let state = given().initialized();
    assert_eq!(
        code(state.when(Command::RemoveCoordinator(pb::RemoveCoordinator { raft_id: 1 }))),
        FailedPrecondition
    );
}

// --- Nodes -----------------------------------------------------------------------------------

#[test]
fn joining_a_node() {
    let state = given().initialized();
    let cmd = join("Node-01@alice.home.collective");
    assert_eq!(
        state.when(Command::JoinNode(cmd.clone())),
        Ok(vec![Event::NodeJoined(pb::NodeJoined {
            address: NODE.into(),
            endpoint: cmd.endpoint,
            capacity_bytes: cmd.capacity_bytes,
            labels: cmd.labels,
        })])
    );
}

#[test]
fn joining_twice_is_already_exists() {
    let state = given().initialized().node(NODE);
    assert_eq!(code(state.when(Command::JoinNode(join(NODE)))), AlreadyExists);
}

#[test]
fn joining_with_a_bad_address_endpoint_or_labels_is_invalid_argument() {
    let state = given().initialized();
    let label = |key: &str| pb::Label {
        key: key.into(),
        value: "v".into(),
    };
    let cases = [
        join("node-01@bob.home.collective"),
        join("/n@alice.home.collective"),
        pb::JoinNode {
            endpoint: "".into(),
            ..join(NODE)
        },
        pb::JoinNode {
            labels: vec![label("")],
            ..join(NODE)
        },
        pb::JoinNode {
            labels: vec![label("a"), label("a")],
            ..join(NODE)
        },
        pb::JoinNode {
            labels: (0..=64).map(|i| label(&i.to_string())).collect(),
            ..join(NODE)
        },
        pb::JoinNode {
            labels: vec![label(&"k".repeat(257))],
            ..join(NODE)
        },
    ];
    for cmd in cases {
        assert_eq!(
            code(state.when(Command::JoinNode(cmd.clone()))),
            InvalidArgument,
            "{cmd:?}"
        );
    }
}

#[test]
fn a_changed_status_or_free_space_is_recorded() {
    let state = given().initialized().node_with(NODE, NodeStatus::Up, 1_000);
    let changed = |status: NodeStatus, free_bytes| {
        Ok(vec![Event::NodeStatusChanged(pb::NodeStatusChanged {
            address: NODE.into(),
            status: status as i32,
            free_bytes,
        })])
    };
    assert_eq!(
        state.when(report(NodeStatus::Down, 1_000)),
        changed(NodeStatus::Down, 1_000)
    );
    assert_eq!(
        state.when(report(NodeStatus::Up, 900)),
        changed(NodeStatus::Up, 900)
    );
}

#[test]
fn an_unchanged_report_emits_nothing() {
    let state = given().initialized().node_with(NODE, NodeStatus::Draining, 1_000);
    assert_eq!(state.when(report(NodeStatus::Draining, 1_000)), Ok(vec![]));
}

#[test]
fn a_report_from_an_unknown_node_is_not_found() {
    let state = given().initialized();
    assert_eq!(code(state.when(report(NodeStatus::Up, 1))), NotFound);
}

#[test]
fn a_report_with_an_unspecified_or_unknown_status_is_invalid_argument() {
    let state = given().initialized().node(NODE);
    assert_eq!(
        code(state.when(report(NodeStatus::Unspecified, 1))),
        InvalidArgument
    );
    let unknown = pb::ReportNodeStatus {
        address: NODE.into(),
        status: 42,
        free_bytes: 1,
    };
    assert_eq!(
        code(state.when(Command::ReportNodeStatus(unknown))),
        InvalidArgument
    );
}

#[test]
fn removing_a_node_emits_node_left() {
    let state = given().initialized().node(NODE);
    assert_eq!(
        state.when(Command::RemoveNode(pb::RemoveNode { address: NODE.into() })),
        Ok(vec![Event::NodeLeft(pb::NodeLeft { address: NODE.into() })])
    );
}

#[test]
fn removing_an_unknown_node_is_not_found() {
    let state = given().initialized();
    assert_eq!(
        code(state.when(Command::RemoveNode(pb::RemoveNode { address: NODE.into() }))),
        NotFound
    );
    assert_eq!(
        code(state.when(Command::RemoveNode(pb::RemoveNode { address: "x".into() }))),
        InvalidArgument
    );
}

// --- Placement -------------------------------------------------------------------------------

#[test]
fn placing_a_chunk_on_a_known_node() {
    let state = given().initialized().node(NODE);
    assert_eq!(
        state.when(Command::PlaceChunk(place(NODE))),
        Ok(vec![Event::ChunkPlaced(pb::ChunkPlaced {
            hash: hash(5).to_vec(),
            node: NODE.into(),
            size: 4096
        })])
    );
}

#[test]
fn placing_an_existing_replica_again_emits_nothing() {
    let state = given().initialized().node(NODE).replica(hash(5), NODE);
    assert_eq!(state.when(Command::PlaceChunk(place(NODE))), Ok(vec![]));
}

#[test]
fn placing_on_an_unknown_node_is_not_found() {
    let state = given().initialized();
    assert_eq!(code(state.when(Command::PlaceChunk(place(NODE)))), NotFound);
}

#[test]
fn placing_with_a_bad_hash_size_or_node_is_invalid_argument() {
    let state = given().initialized().node(NODE);
    for cmd in [
        pb::PlaceChunk {
            hash: vec![1; 31],
            ..place(NODE)
        },
        pb::PlaceChunk {
            size: 0,
            ..place(NODE)
        },
        place("node-01"),
    ] {
        assert_eq!(
            code(state.when(Command::PlaceChunk(cmd.clone()))),
            InvalidArgument,
            "{cmd:?}"
        );
    }
}

#[test]
fn removing_a_replica_even_of_a_node_that_left() {
    let state = given().initialized().replica(hash(5), NODE);
    assert_eq!(
        state.when(Command::RemoveReplica(remove_replica(NODE))),
        Ok(vec![Event::ReplicaRemoved(pb::ReplicaRemoved {
            hash: hash(5).to_vec(),
            node: NODE.into(),
            reason: "repaired".into(),
        })])
    );
}

#[test]
fn removing_a_missing_replica_is_not_found() {
    let state = given().initialized().node(NODE).replica(hash(6), NODE);
    assert_eq!(
        code(state.when(Command::RemoveReplica(remove_replica(NODE)))),
        NotFound
    );
}

#[test]
fn removing_a_replica_with_a_bad_hash_node_or_reason_is_invalid_argument() {
    let state = given().initialized().replica(hash(5), NODE);
    for cmd in [
        pb::RemoveReplica {
            hash: vec![5; 33],
            ..remove_replica(NODE)
        },
        remove_replica("@alice.home.collective"),
        pb::RemoveReplica {
            reason: "r".repeat(1025),
            ..remove_replica(NODE)
        },
    ] {
        assert_eq!(
            code(state.when(Command::RemoveReplica(cmd.clone()))),
            InvalidArgument,
            "{cmd:?}"
        );
    }
}
