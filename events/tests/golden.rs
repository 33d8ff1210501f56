//! Golden bytes: the exact protobuf encoding of fully populated envelopes.
//!
//! Every member keeps its event log forever and replays it on every restart, and Raft entries
//! carry encoded commands between binaries of different versions. If one of these tests fails,
//! the encoding changed: every stored log would be read differently. Do not update the expected
//! bytes; restore the schema (new fields get new tags, old tags are `reserved`, never reused).

#![allow(clippy::unwrap_used, reason = "tests")]

use collective_events::pb::{self, command_envelope::Command, event_envelope::Event};
use prost::Message;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex digits of a golden constant: `//` comment lines and whitespace are for readers.
fn digits(golden: &str) -> String {
    golden
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(str::split_whitespace)
        .collect()
}

fn unhex(golden: &str) -> Vec<u8> {
    let text = digits(golden);
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn assert_golden<M: Message + Default + PartialEq + std::fmt::Debug>(value: &M, expected_hex: &str) {
    let bytes = value.encode_to_vec();
    assert_eq!(hex(&bytes), digits(expected_hex), "encoding of {value:?}");
    assert_eq!(
        &M::decode(unhex(expected_hex).as_slice()).unwrap(),
        value,
        "decoding the golden bytes"
    );
}

fn chunk(byte: u8, offset: u64, size: u64) -> pb::ChunkRef {
    pb::ChunkRef {
        hash: vec![byte; 32],
        offset,
        size,
    }
}

fn grant() -> pb::GrantSpec {
    pb::GrantSpec {
        path: "/shared".into(),
        subject: "*@*.home.collective".into(),
        rights: 3,
        expires_at_unix_ms: Some(1_700_000_086_400_000),
    }
}

fn command(command: Command) -> pb::CommandEnvelope {
    pb::CommandEnvelope {
        schema_version: 1,
        actor: "alice@alice.home.collective".into(),
        request_id: (0..16).collect(),
        proposed_at_unix_ms: 1_700_000_000_000,
        command: Some(command),
    }
}

fn event(event: Event) -> pb::EventEnvelope {
    pb::EventEnvelope {
        schema_version: 1,
        actor: "alice@alice.home.collective".into(),
        request_id: (0..16).collect(),
        proposed_at_unix_ms: 1_700_000_000_000,
        log_index: 42,
        sequence: 1,
        event: Some(event),
    }
}

#[test]
fn commit_file_version_command() {
    let cmd = command(Command::CommitFileVersion(pb::CommitFileVersion {
        path: "/media/a.mkv".into(),
        size: 6,
        chunks: vec![chunk(0xaa, 0, 4), chunk(0xbb, 4, 2)],
        expected_version: Some(2),
        keep_versions: 5,
        ..Default::default()
    }));
    assert_golden(&cmd, GOLDEN_COMMIT_COMMAND);
}

/// The data-path fields added to a commit: placements, replicas wanted, and the plan's time.
#[test]
fn a_commit_with_placements_encodes_as_pinned() {
    let cmd = command(Command::CommitFileVersion(pb::CommitFileVersion {
        path: "/media/a.mkv".into(),
        size: 4,
        chunks: vec![chunk(0xaa, 0, 4)],
        placements: vec![pb::ChunkPlacement {
            hash: vec![0xaa; 32],
            node: "node-1@alice.home.collective".into(),
        }],
        replicas: 2,
        planned_at_unix_ms: 1_700_000_000_000,
        ..Default::default()
    }));
    assert_golden(&cmd, GOLDEN_PLACED_COMMIT_COMMAND);
}

#[test]
fn issue_invite_command() {
    let cmd = command(Command::IssueInvite(pb::IssueInvite {
        invite_id: vec![0x49; 16],
        code_hash: vec![0xc0; 32],
        kind: pb::InviteKind::Member as i32,
        grants: vec![grant()],
        max_uses: 1,
        expires_at_unix_ms: 1_700_000_086_400_000,
        member: "bob".into(),
    }));
    assert_golden(&cmd, GOLDEN_INVITE_COMMAND);
}

#[test]
fn file_version_committed_event() {
    let envelope = event(Event::FileVersionCommitted(pb::FileVersionCommitted {
        inode: 7,
        parent: 3,
        name: "a.mkv".into(),
        path: "/media/a.mkv".into(),
        version: 3,
        size: 6,
        chunks: vec![chunk(0xaa, 0, 4), chunk(0xbb, 4, 2)],
        ..Default::default()
    }));
    assert_golden(&envelope, GOLDEN_COMMITTED_EVENT);
}

#[test]
fn grant_issued_event() {
    let envelope = event(Event::GrantIssued(pb::GrantIssued {
        grant_id: vec![0x47; 16],
        grant: Some(grant()),
    }));
    assert_golden(&envelope, GOLDEN_GRANT_EVENT);
}

#[test]
fn node_status_changed_event() {
    let envelope = event(Event::NodeStatusChanged(pb::NodeStatusChanged {
        address: "node-01@alice.home.collective".into(),
        status: pb::NodeStatus::Draining as i32,
        free_bytes: 1 << 40,
    }));
    assert_golden(&envelope, GOLDEN_STATUS_EVENT);
}

/// A newer binary may add an event arm; an older one must read the envelope, see no event it
/// knows, and carry on, rather than fail to replay the log.
#[test]
fn an_unknown_event_arm_decodes_to_no_event() {
    let mut bytes = vec![0x08, 0x01]; // schema_version = 1
    bytes.extend([0x28, 0x2a]); // log_index = 42
    // Field 99, wire type 2 (length-delimited): key = 99 << 3 | 2 = 794 = varint 9a 06; a 2-byte
    // body that is itself a message with field 1 = 1.
    bytes.extend([0x9a, 0x06, 0x02, 0x08, 0x01]);
    bytes.extend([0x30, 0x03]); // sequence = 3, after the unknown field
    let envelope = pb::EventEnvelope::decode(bytes.as_slice()).unwrap();
    assert_eq!(envelope.event, None);
    assert_eq!(
        (envelope.schema_version, envelope.log_index, envelope.sequence),
        (1, 42, 3)
    );
}

/// The same holds for commands; `decide` then answers `MissingCommand` instead of guessing.
#[test]
fn an_unknown_command_arm_decodes_to_no_command() {
    let bytes = [0x08, 0x01, 0xfa, 0x06, 0x00]; // schema_version = 1; field 111 (empty message)
    let envelope = pb::CommandEnvelope::decode(bytes.as_slice()).unwrap();
    assert_eq!(envelope.command, None);
    assert_eq!(envelope.schema_version, 1);
}

/// A known arm with unknown fields inside keeps the fields it knows.
#[test]
fn unknown_fields_inside_a_known_arm_are_skipped() {
    let mut inner = pb::NodeLeft {
        address: "n@a.b".into(),
    }
    .encode_to_vec();
    inner.extend([0xc0, 0x3e, 0x07]); // field 1000, varint 7: unknown to this schema
    let mut bytes = vec![0x7a, inner.len() as u8]; // field 15 (node_left), length-delimited
    bytes.extend(inner);
    let envelope = pb::EventEnvelope::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        envelope.event,
        Some(Event::NodeLeft(pb::NodeLeft {
            address: "n@a.b".into()
        }))
    );
}

const GOLDEN_COMMIT_COMMAND: &str = "
    // schema_version 1, actor, request_id 00..0f, proposed_at_unix_ms
    0801 121b616c69636540616c6963652e686f6d652e636f6c6c656374697665
    1a10000102030405060708090a0b0c0d0e0f 2080d095ffbc31
    // the oneof arm and its message
    8a01620a0c2f6d656469612f612e6d6b7610061a240a20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    aaaaaaaaaaaaaa18041a260a20bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb100418
    0220022805
";
const GOLDEN_INVITE_COMMAND: &str = "
    // schema_version 1, actor, request_id 00..0f, proposed_at_unix_ms
    0801 121b616c69636540616c6963652e686f6d652e636f6c6c656374697665
    1a10000102030405060708090a0b0c0d0e0f 2080d095ffbc31
    // the oneof arm and its message
    ca01710a10494949494949494949494949494949491220c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0
    c0c0c0c0c0c0c0180222290a072f73686172656412132a402a2e686f6d652e636f6c6c65637469766518032080b892ea
    c1c4820328013080b892eac1c482033a03626f62
";
const GOLDEN_COMMITTED_EVENT: &str = "
    // schema_version 1, actor, request_id 00..0f, proposed_at_unix_ms
    0801 121b616c69636540616c6963652e686f6d652e636f6c6c656374697665
    1a10000102030405060708090a0b0c0d0e0f 2080d095ffbc31
    // log_index 42, sequence 1
    282a 3001
    // the oneof arm and its message
    8a016b080710031a05612e6d6b76220c2f6d656469612f612e6d6b76280330063a240a20aaaaaaaaaaaaaaaaaaaaaaaa
    aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa18043a260a20bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
    bbbbbbbbbbbbbbbbbbbb10041802
";
const GOLDEN_GRANT_EVENT: &str = "
    // schema_version 1, actor, request_id 00..0f, proposed_at_unix_ms
    0801 121b616c69636540616c6963652e686f6d652e636f6c6c656374697665
    1a10000102030405060708090a0b0c0d0e0f 2080d095ffbc31
    // log_index 42, sequence 1
    282a 3001
    // the oneof arm and its message
    ba013d0a104747474747474747474747474747474712290a072f73686172656412132a402a2e686f6d652e636f6c6c65
    637469766518032080b892eac1c48203
";
const GOLDEN_STATUS_EVENT: &str = "
    // schema_version 1, actor, request_id 00..0f, proposed_at_unix_ms
    0801 121b616c69636540616c6963652e686f6d652e636f6c6c656374697665
    1a10000102030405060708090a0b0c0d0e0f 2080d095ffbc31
    // log_index 42, sequence 1
    282a 3001
    // the oneof arm and its message
    72280a1d6e6f64652d303140616c6963652e686f6d652e636f6c6c656374697665100318808080808020
";

const GOLDEN_PLACED_COMMIT_COMMAND: &str = "
0801121b616c69636540616c6963652e686f6d652e636f6c6c6563746976651a
10000102030405060708090a0b0c0d0e0f2080d095ffbc318a0181010a0c2f6d
656469612f612e6d6b7610041a240a20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa180432400a20aaaaaaaaaaaaaaaaaaaa
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa121c6e6f64652d314061
6c6963652e686f6d652e636f6c6c65637469766538024080d095ffbc31
";
