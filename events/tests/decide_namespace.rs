//! Given/when/then tests of the namespace decisions: directories, file versions, removal, moves.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use collective_events::RejectionCode::*;
use collective_events::pb::{self, ChunkRef, EntryKind, command_envelope::Command, event_envelope::Event};
use support::{NOW_MS, STORE_NODE, code, given, hash};

fn mkdir(path: &str, parents: bool) -> Command {
    Command::CreateDirectory(pb::CreateDirectory {
        path: path.into(),
        parents,
    })
}

fn created(inode: u64, parent: u64, name: &str, path: &str) -> Event {
    Event::DirectoryCreated(pb::DirectoryCreated {
        inode,
        parent,
        name: name.into(),
        path: path.into(),
    })
}

/// A commit of `sizes.len()` chunks of the given sizes, contiguous from 0.
fn commit(path: &str, sizes: &[u64]) -> pb::CommitFileVersion {
    let mut offset = 0;
    let chunks = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let chunk = ChunkRef {
                hash: hash(i as u8).to_vec(),
                offset,
                size,
            };
            offset += size;
            chunk
        })
        .collect();
    pb::CommitFileVersion {
        path: path.into(),
        size: offset,
        chunks,
        expected_version: None,
        keep_versions: 0,
        placements: vec![],
        replicas: 0,
        planned_at_unix_ms: NOW_MS - 1_000,
        inline_data: Vec::new(),
    }
}

fn committed(inode: u64, parent: u64, path: &str, version: u64, cmd: &pb::CommitFileVersion) -> Event {
    Event::FileVersionCommitted(pb::FileVersionCommitted {
        inode,
        parent,
        name: path.rsplit('/').next().unwrap().into(),
        path: path.into(),
        version,
        size: cmd.size,
        chunks: cmd.chunks.clone(),
        replicas: cmd.replicas.max(1),
        inline_data: cmd.inline_data.clone(),
    })
}

fn pruned(inode: u64, version: u64) -> Event {
    Event::FileVersionPruned(pb::FileVersionPruned { inode, version })
}

fn remove(path: &str, recursive: bool) -> Command {
    Command::RemoveEntry(pb::RemoveEntry {
        path: path.into(),
        recursive,
    })
}

fn mv(from: &str, to: &str) -> Command {
    Command::MoveEntry(pb::MoveEntry {
        from: from.into(),
        to: to.into(),
    })
}

// --- CreateDirectory -------------------------------------------------------------------------

#[test]
fn mkdir_under_root_allocates_the_next_inode() {
    let state = given().initialized().chunks_stored();
    assert_eq!(state.when(mkdir("/a", false)), Ok(vec![created(2, 1, "a", "/a")]));
}

#[test]
fn mkdir_under_an_existing_directory() {
    let state = given().initialized().chunks_stored().dir("/a");
    let a = state.inode("/a");
    assert_eq!(
        state.when(mkdir("/a/b", false)),
        Ok(vec![created(3, a, "b", "/a/b")])
    );
}

#[test]
fn mkdir_p_creates_every_missing_parent_with_consecutive_inodes() {
    let state = given().initialized().chunks_stored().dir("/a");
    let a = state.inode("/a");
    assert_eq!(
        state.when(mkdir("/a/b/c/d", true)),
        Ok(vec![
            created(3, a, "b", "/a/b"),
            created(4, 3, "c", "/a/b/c"),
            created(5, 4, "d", "/a/b/c/d")
        ])
    );
}

#[test]
fn mkdir_p_of_an_existing_directory_succeeds_with_no_events() {
    let state = given().initialized().chunks_stored().dir("/a/b");
    assert_eq!(state.when(mkdir("/a/b", true)), Ok(vec![]));
    assert_eq!(state.when(mkdir("/", true)), Ok(vec![]));
}

#[test]
fn mkdir_of_an_existing_directory_is_already_exists() {
    let state = given().initialized().chunks_stored().dir("/a");
    assert_eq!(code(state.when(mkdir("/a", false))), AlreadyExists);
    assert_eq!(code(state.when(mkdir("/", false))), AlreadyExists);
}

#[test]
fn mkdir_p_over_a_file_is_already_exists() {
    let state = given().initialized().chunks_stored().file("/a/f", 1);
    assert_eq!(code(state.when(mkdir("/a/f", true))), AlreadyExists);
}

#[test]
fn mkdir_without_parents_needs_the_parent() {
    let state = given().initialized().chunks_stored();
    let rejection = state.when(mkdir("/a/b", false)).unwrap_err();
    assert_eq!(rejection.code, NotFound);
    assert!(rejection.message.contains("'/a'"), "{rejection}");
}

#[test]
fn mkdir_through_a_file_is_not_a_directory() {
    let state = given().initialized().chunks_stored().file("/a/f", 1);
    assert_eq!(code(state.when(mkdir("/a/f/x", false))), NotADirectory);
    let rejection = state.when(mkdir("/a/f/x/y", true)).unwrap_err();
    assert_eq!(rejection.code, NotADirectory);
    assert!(rejection.message.contains("'/a/f'"), "{rejection}");
}

#[test]
fn mkdir_of_an_invalid_path_is_invalid_argument() {
    let state = given().initialized().chunks_stored();
    for path in ["", "a", "/a/", "/a//b", "/a/../b", "/a\0"] {
        assert_eq!(code(state.when(mkdir(path, true))), InvalidArgument, "{path:?}");
    }
}

#[test]
fn mkdir_with_a_corrupt_inode_counter_is_failed_precondition() {
    let state = given().initialized().chunks_stored().with_next_inode(1);
    assert_eq!(code(state.when(mkdir("/a", false))), FailedPrecondition);
}

// --- CommitFileVersion -----------------------------------------------------------------------

#[test]
fn first_commit_creates_version_1_with_a_new_inode() {
    let state = given().initialized().chunks_stored().dir("/a");
    let cmd = commit("/a/f", &[4, 4, 2]);
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![committed(3, state.inode("/a"), "/a/f", 1, &cmd)])
    );
}

#[test]
fn an_empty_file_has_no_chunks() {
    let state = given().initialized().chunks_stored();
    let cmd = commit("/empty", &[]);
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![committed(2, 1, "/empty", 1, &cmd)])
    );
}

#[test]
fn a_commit_to_an_existing_file_increments_its_version() {
    let state = given().initialized().chunks_stored().file("/f", 1);
    let cmd = commit("/f", &[10]);
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![committed(state.inode("/f"), 1, "/f", 2, &cmd)])
    );
}

#[test]
fn a_commit_beyond_the_default_three_versions_prunes_the_oldest() {
    let state = given().initialized().chunks_stored().file("/f", 3);
    let f = state.inode("/f");
    let cmd = commit("/f", &[10]);
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![committed(f, 1, "/f", 4, &cmd), pruned(f, 1)])
    );
}

#[test]
fn keep_versions_overrides_the_default_and_prunes_every_excess_version() {
    let state = given()
        .initialized()
        .chunks_stored()
        .file_keeping("/f", 5, &[2, 3, 4, 5]);
    let f = state.inode("/f");
    let cmd = pb::CommitFileVersion {
        keep_versions: 2,
        ..commit("/f", &[1])
    };
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![
            committed(f, 1, "/f", 6, &cmd),
            pruned(f, 2),
            pruned(f, 3),
            pruned(f, 4)
        ])
    );
    let keep_all = pb::CommitFileVersion {
        keep_versions: 10,
        ..commit("/f", &[1])
    };
    assert_eq!(
        state.when(Command::CommitFileVersion(keep_all.clone())),
        Ok(vec![committed(f, 1, "/f", 6, &keep_all)])
    );
}

#[test]
fn keep_versions_above_the_limit_is_invalid_argument() {
    let state = given().initialized().chunks_stored();
    let cmd = pb::CommitFileVersion {
        keep_versions: collective_events::decide::VERSIONS_KEPT_MAX + 1,
        ..commit("/f", &[1])
    };
    assert_eq!(code(state.when(Command::CommitFileVersion(cmd))), InvalidArgument);
}

#[test]
fn expected_version_matching_the_current_one_commits() {
    let state = given().initialized().chunks_stored().file("/f", 2);
    let cmd = pb::CommitFileVersion {
        expected_version: Some(2),
        ..commit("/f", &[1])
    };
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![committed(state.inode("/f"), 1, "/f", 3, &cmd)])
    );
    let new_file = pb::CommitFileVersion {
        expected_version: Some(0),
        ..commit("/g", &[1])
    };
    assert_eq!(
        state.when(Command::CommitFileVersion(new_file.clone())),
        Ok(vec![committed(3, 1, "/g", 1, &new_file)])
    );
}

#[test]
fn expected_version_differing_from_the_current_one_is_a_conflict() {
    let state = given().initialized().chunks_stored().file("/f", 2);
    let stale = pb::CommitFileVersion {
        expected_version: Some(1),
        ..commit("/f", &[1])
    };
    assert_eq!(code(state.when(Command::CommitFileVersion(stale))), Conflict);
    let create_only = pb::CommitFileVersion {
        expected_version: Some(0),
        ..commit("/f", &[1])
    };
    assert_eq!(
        code(state.when(Command::CommitFileVersion(create_only))),
        Conflict
    );
    let not_there = pb::CommitFileVersion {
        expected_version: Some(1),
        ..commit("/g", &[1])
    };
    assert_eq!(code(state.when(Command::CommitFileVersion(not_there))), Conflict);
}

#[test]
fn a_commit_onto_a_directory_is_is_a_directory() {
    let state = given().initialized().chunks_stored().dir("/a");
    assert_eq!(
        code(state.when(Command::CommitFileVersion(commit("/a", &[1])))),
        IsADirectory
    );
    assert_eq!(
        code(state.when(Command::CommitFileVersion(commit("/", &[1])))),
        IsADirectory
    );
}

#[test]
fn a_commit_needs_its_parent_directory() {
    let state = given().initialized().chunks_stored().file("/f", 1);
    assert_eq!(
        code(state.when(Command::CommitFileVersion(commit("/a/f", &[1])))),
        NotFound
    );
    assert_eq!(
        code(state.when(Command::CommitFileVersion(commit("/f/g", &[1])))),
        NotADirectory
    );
}

#[test]
fn a_commit_with_an_invalid_path_is_invalid_argument() {
    let state = given().initialized().chunks_stored();
    assert_eq!(
        code(state.when(Command::CommitFileVersion(commit("f", &[1])))),
        InvalidArgument
    );
}

#[test]
fn chunks_must_tile_the_file_exactly() {
    let state = given().initialized().chunks_stored();
    let good = commit("/f", &[4, 4]);
    let mut gap = good.clone();
    gap.chunks[1].offset = 5;
    let mut overlap = good.clone();
    overlap.chunks[1].offset = 3;
    let mut not_from_zero = good.clone();
    not_from_zero.chunks[0].offset = 1;
    let short_size = pb::CommitFileVersion {
        size: 7,
        ..good.clone()
    };
    let long_size = pb::CommitFileVersion {
        size: 9,
        ..good.clone()
    };
    let mut short_hash = good.clone();
    short_hash.chunks[0].hash.pop();
    let mut empty_chunk = good.clone();
    empty_chunk.chunks.push(ChunkRef {
        hash: hash(9).to_vec(),
        offset: 8,
        size: 0,
    });
    let mut overflow = commit("/f", &[u64::MAX]);
    overflow.chunks.push(ChunkRef {
        hash: hash(9).to_vec(),
        offset: u64::MAX,
        size: 1,
    });
    let without_chunks = pb::CommitFileVersion {
        size: 1,
        ..commit("/f", &[])
    };
    for (name, bad) in [
        ("gap", gap),
        ("overlap", overlap),
        ("not from zero", not_from_zero),
        ("size too small", short_size),
        ("size too large", long_size),
        ("31-byte hash", short_hash),
        ("empty chunk", empty_chunk),
        ("overflow", overflow),
        ("size without chunks", without_chunks),
    ] {
        assert_eq!(
            code(state.when(Command::CommitFileVersion(bad))),
            InvalidArgument,
            "{name}"
        );
    }
}

// --- RemoveEntry -----------------------------------------------------------------------------

#[test]
fn removing_a_file_emits_entry_removed() {
    let state = given().initialized().chunks_stored().file("/a/f", 2);
    assert_eq!(
        state.when(remove("/a/f", false)),
        Ok(vec![Event::EntryRemoved(pb::EntryRemoved {
            inode: state.inode("/a/f"),
            parent: state.inode("/a"),
            name: "f".into(),
            path: "/a/f".into(),
            kind: EntryKind::File as i32,
        })])
    );
}

#[test]
fn removing_an_empty_directory_needs_no_recursion() {
    let state = given().initialized().chunks_stored().dir("/a");
    assert_eq!(
        state.when(remove("/a", false)),
        Ok(vec![Event::EntryRemoved(pb::EntryRemoved {
            inode: 2,
            parent: 1,
            name: "a".into(),
            path: "/a".into(),
            kind: EntryKind::Directory as i32,
        })])
    );
}

#[test]
fn removing_a_full_directory_recursively_emits_one_event_for_the_subtree() {
    let state = given().initialized().chunks_stored().file("/a/b/f", 1);
    assert_eq!(
        state.when(remove("/a", true)),
        Ok(vec![Event::EntryRemoved(pb::EntryRemoved {
            inode: state.inode("/a"),
            parent: 1,
            name: "a".into(),
            path: "/a".into(),
            kind: EntryKind::Directory as i32,
        })])
    );
}

#[test]
fn removing_a_full_directory_without_recursion_is_directory_not_empty() {
    let state = given().initialized().chunks_stored().file("/a/f", 1);
    assert_eq!(code(state.when(remove("/a", false))), DirectoryNotEmpty);
}

#[test]
fn removing_the_root_is_invalid_argument() {
    let state = given().initialized().chunks_stored();
    assert_eq!(code(state.when(remove("/", true))), InvalidArgument);
}

#[test]
fn removing_a_missing_entry_is_not_found() {
    let state = given().initialized().chunks_stored().file("/f", 1);
    let rejection = state.when(remove("/a/b", true)).unwrap_err();
    assert_eq!(
        (rejection.code, rejection.message.contains("'/a/b'")),
        (NotFound, true),
        "{rejection}"
    );
    assert_eq!(code(state.when(remove("/f/g", true))), NotADirectory);
    assert_eq!(code(state.when(remove("/a/", true))), InvalidArgument);
}

// --- MoveEntry -------------------------------------------------------------------------------

#[test]
fn moving_a_file_into_another_directory() {
    let state = given().initialized().chunks_stored().file("/a/f", 1).dir("/b");
    assert_eq!(
        state.when(mv("/a/f", "/b/g")),
        Ok(vec![Event::EntryMoved(pb::EntryMoved {
            inode: state.inode("/a/f"),
            from_parent: state.inode("/a"),
            from_name: "f".into(),
            to_parent: state.inode("/b"),
            to_name: "g".into(),
            from_path: "/a/f".into(),
            to_path: "/b/g".into(),
        })])
    );
}

#[test]
fn renaming_a_directory_in_place() {
    let state = given().initialized().chunks_stored().file("/a/f", 1);
    assert_eq!(
        state.when(mv("/a", "/z")),
        Ok(vec![Event::EntryMoved(pb::EntryMoved {
            inode: state.inode("/a"),
            from_parent: 1,
            from_name: "a".into(),
            to_parent: 1,
            to_name: "z".into(),
            from_path: "/a".into(),
            to_path: "/z".into(),
        })])
    );
}

#[test]
fn moving_a_directory_to_a_sibling_with_a_common_prefix_is_allowed() {
    let state = given().initialized().chunks_stored().dir("/a");
    assert!(state.when(mv("/a", "/ab")).is_ok());
}

#[test]
fn moving_a_directory_into_itself_or_a_descendant_is_invalid_argument() {
    let state = given().initialized().chunks_stored().dir("/a/b/c");
    assert_eq!(code(state.when(mv("/a", "/a/x"))), InvalidArgument);
    assert_eq!(code(state.when(mv("/a", "/a/b/c/x"))), InvalidArgument);
    assert_eq!(code(state.when(mv("/a/b", "/a/b/x"))), InvalidArgument);
}

#[test]
fn moving_onto_an_existing_entry_is_already_exists() {
    let state = given()
        .initialized()
        .chunks_stored()
        .file("/a/f", 1)
        .file("/b/f", 1);
    assert_eq!(code(state.when(mv("/a/f", "/b/f"))), AlreadyExists);
    assert_eq!(code(state.when(mv("/a", "/b"))), AlreadyExists);
    assert_eq!(code(state.when(mv("/a", "/a"))), AlreadyExists);
}

#[test]
fn moving_a_missing_source_is_not_found() {
    let state = given().initialized().chunks_stored().dir("/b");
    assert_eq!(code(state.when(mv("/a", "/b/a"))), NotFound);
}

#[test]
fn moving_into_a_missing_directory_is_not_found() {
    let state = given().initialized().chunks_stored().dir("/a");
    let rejection = state.when(mv("/a", "/x/y")).unwrap_err();
    assert_eq!(
        (rejection.code, rejection.message.contains("'/x'")),
        (NotFound, true),
        "{rejection}"
    );
}

#[test]
fn moving_under_a_file_is_not_a_directory() {
    let state = given().initialized().chunks_stored().dir("/a").file("/f", 1);
    assert_eq!(code(state.when(mv("/a", "/f/a"))), NotADirectory);
}

#[test]
fn moving_the_root_or_onto_the_root_is_invalid_argument() {
    let state = given().initialized().chunks_stored().dir("/a");
    assert_eq!(code(state.when(mv("/", "/b"))), InvalidArgument);
    assert_eq!(code(state.when(mv("/a", "/"))), InvalidArgument);
    assert_eq!(code(state.when(mv("a", "/b"))), InvalidArgument);
    assert_eq!(code(state.when(mv("/a", "/b/"))), InvalidArgument);
}

// --- Placements in a commit -----------------------------------------------------------------

fn placed(byte: u8, node: &str, size: u64) -> Event {
    Event::ChunkPlaced(pb::ChunkPlaced {
        hash: hash(byte).to_vec(),
        node: node.into(),
        size,
    })
}

/// A commit of fresh chunks (bytes 100 and up, which no node holds) placed on `nodes`.
fn commit_placed(path: &str, sizes: &[u64], nodes: &[&str]) -> pb::CommitFileVersion {
    let mut cmd = commit(path, sizes);
    for (i, chunk) in cmd.chunks.iter_mut().enumerate() {
        chunk.hash = hash(100 + i as u8).to_vec();
    }
    cmd.placements = cmd
        .chunks
        .iter()
        .flat_map(|c| {
            nodes.iter().map(|n| pb::ChunkPlacement {
                hash: c.hash.clone(),
                node: (*n).into(),
            })
        })
        .collect();
    cmd.replicas = nodes.len() as u32;
    cmd
}

const NODE_2: &str = "node-2@alice.home.collective";

#[test]
fn placements_become_chunk_placed_events_in_the_same_entry_before_the_version() {
    let state = given().initialized().chunks_stored().node(NODE_2);
    let cmd = commit_placed("/f", &[4, 2], &[STORE_NODE, NODE_2]);
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![
            placed(100, STORE_NODE, 4),
            placed(100, NODE_2, 4),
            placed(101, STORE_NODE, 2),
            placed(101, NODE_2, 2),
            committed(2, 1, "/f", 1, &cmd),
        ])
    );
}

#[test]
fn a_placement_already_recorded_or_named_twice_is_placed_once() {
    let state = given()
        .initialized()
        .chunks_stored()
        .replica(hash(100), STORE_NODE);
    let mut cmd = commit_placed("/f", &[4], &[STORE_NODE, STORE_NODE]);
    cmd.placements.push(pb::ChunkPlacement {
        hash: hash(100).to_vec(),
        node: STORE_NODE.to_uppercase(),
    });
    cmd.replicas = 1;
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![committed(2, 1, "/f", 1, &cmd)])
    );
}

#[test]
fn a_chunk_with_no_replica_anywhere_is_failed_precondition() {
    let state = given().initialized().chunks_stored();
    let mut cmd = commit_placed("/f", &[4], &[]);
    cmd.replicas = 0;
    let rejection = state.when(Command::CommitFileVersion(cmd)).unwrap_err();
    assert_eq!(rejection.code, FailedPrecondition, "{rejection}");
    assert!(rejection.message.contains("no stored replica"), "{rejection}");
}

#[test]
fn placements_outside_the_chunk_map_or_on_unknown_nodes_are_refused() {
    let state = given().initialized().chunks_stored();
    let mut foreign = commit_placed("/f", &[4], &[STORE_NODE]);
    foreign.placements[0].hash = hash(200).to_vec();
    assert_eq!(
        code(state.when(Command::CommitFileVersion(foreign))),
        InvalidArgument
    );
    let unknown = commit_placed("/f", &[4], &["node-9@alice.home.collective"]);
    assert_eq!(code(state.when(Command::CommitFileVersion(unknown))), NotFound);
    let malformed = commit_placed("/f", &[4], &["not an address"]);
    assert_eq!(
        code(state.when(Command::CommitFileVersion(malformed))),
        InvalidArgument
    );
    let too_many = pb::CommitFileVersion {
        replicas: collective_events::decide::REPLICAS_MAX + 1,
        ..commit("/f", &[1])
    };
    assert_eq!(
        code(state.when(Command::CommitFileVersion(too_many))),
        InvalidArgument
    );
}

#[test]
fn a_commit_resting_on_a_stale_or_missing_plan_is_a_conflict() {
    let state = given().initialized().chunks_stored();
    let stale = pb::CommitFileVersion {
        planned_at_unix_ms: NOW_MS - collective_events::decide::PLAN_AGE_MS_MAX - 1,
        ..commit("/f", &[1])
    };
    assert_eq!(code(state.when(Command::CommitFileVersion(stale))), Conflict);
    let missing = pb::CommitFileVersion {
        planned_at_unix_ms: 0,
        ..commit("/f", &[1])
    };
    assert_eq!(code(state.when(Command::CommitFileVersion(missing))), Conflict);
    let empty_needs_no_plan = pb::CommitFileVersion {
        planned_at_unix_ms: 0,
        ..commit("/f", &[])
    };
    assert!(
        state
            .when(Command::CommitFileVersion(empty_needs_no_plan))
            .is_ok()
    );
}

// --- Inline content ------------------------------------------------------------------------

fn inline(path: &str, data: &[u8]) -> pb::CommitFileVersion {
    pb::CommitFileVersion {
        size: data.len() as u64,
        inline_data: data.to_vec(),
        planned_at_unix_ms: 0,
        ..commit(path, &[])
    }
}

#[test]
fn a_small_file_is_committed_with_its_content_inline_and_no_plan() {
    let state = given().initialized();
    let cmd = inline("/small", b"hello");
    assert_eq!(
        state.when(Command::CommitFileVersion(cmd.clone())),
        Ok(vec![committed(2, 1, "/small", 1, &cmd)])
    );
}

#[test]
fn inline_content_must_be_small_alone_and_match_the_size() {
    let state = given().initialized().chunks_stored();
    let max = collective_events::decide::INLINE_BYTES_MAX;
    assert!(
        state
            .when(Command::CommitFileVersion(inline("/f", &vec![1; max])))
            .is_ok()
    );
    let too_big = inline("/f", &vec![1; max + 1]);
    assert_eq!(
        code(state.when(Command::CommitFileVersion(too_big))),
        InvalidArgument
    );
    let wrong_size = pb::CommitFileVersion {
        size: 4,
        ..inline("/f", b"hello")
    };
    assert_eq!(
        code(state.when(Command::CommitFileVersion(wrong_size))),
        InvalidArgument
    );
    let with_chunks = pb::CommitFileVersion {
        inline_data: b"x".to_vec(),
        ..commit("/f", &[1])
    };
    assert_eq!(
        code(state.when(Command::CommitFileVersion(with_chunks))),
        InvalidArgument
    );
}

// --- Messages --------------------------------------------------------------------------------

#[test]
fn rejection_messages_name_the_path_at_fault() {
    let state = given().initialized().chunks_stored().file("/a/f", 3).dir("/d/e");
    let stale = pb::CommitFileVersion {
        expected_version: Some(1),
        ..commit("/a/f", &[1])
    };
    let cases = [
        (state.when(mkdir("/a", false)), "'/a'"),
        (state.when(mkdir("/x/y", false)), "'/x'"),
        (state.when(mkdir("/a/f/g", true)), "'/a/f'"),
        (state.when(Command::CommitFileVersion(commit("/d", &[1]))), "'/d'"),
        (state.when(Command::CommitFileVersion(stale)), "version 3"),
        (
            state.when(Command::CommitFileVersion(commit("/a/../f", &[1]))),
            "'..'",
        ),
        (state.when(remove("/d", false)), "'/d'"),
        (state.when(remove("/nope", false)), "'/nope'"),
        (state.when(mv("/d", "/d/e/x")), "'/d'"),
        (state.when(mv("/a/f", "/d/e")), "'/d/e'"),
    ];
    for (result, expected) in cases {
        let rejection = result.unwrap_err();
        assert!(
            rejection.message.contains(expected),
            "{rejection} should name {expected}"
        );
        assert!(
            !rejection.message.ends_with('.'),
            "{rejection}: no trailing period"
        );
    }
}
