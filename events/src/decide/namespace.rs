//! Namespace decisions: directories, file versions, removal and moves.
//!
//! Entries are inodes keyed by `(parent, name)`. New inodes come from `View::next_inode`, and a
//! command creating several entries takes consecutive numbers from it in path order, so replaying
//! the log allocates exactly the same ids.

use super::resolve::{self, Walk};
use std::collections::{HashMap, HashSet};

use super::access::REPLICAS_MAX;
use super::{Context, Rejection, RejectionCode, checks};
use crate::path::NamespacePath;
use crate::pb::{self, EntryKind, event_envelope::Event};
use crate::view::{ROOT_INODE, View};

/// Versions of a file kept when a commit says `keep_versions = 0`.
pub const VERSIONS_KEPT_DEFAULT: u32 = 3;
/// Most versions of one file a commit may ask to keep.
pub const VERSIONS_KEPT_MAX: u32 = 1024;
/// Most chunks in one file version: one commit is one Raft entry, which must stay bounded.
/// At 4 MiB chunks that is a 256 GiB file, whose commit (chunk map plus two placements per
/// chunk) stays under 12 MiB, inside the 16 MiB gRPC message limit.
pub const CHUNKS_PER_VERSION_MAX: usize = 65_536;
/// Largest file kept inline in the log instead of in chunks, in bytes: one page. A small file then
/// costs one Raft entry to write and one RPC to read, and is replicated by the coordinators; the
/// log grows by at most this much per small file written.
pub const INLINE_BYTES_MAX: usize = 4096;
/// Oldest upload plan a commit may rest on, in milliseconds of proposer time. Garbage
/// collection waits longer than this before removing an unreferenced chunk, so a chunk a writer
/// planned against cannot vanish before its commit.
pub const PLAN_AGE_MS_MAX: i64 = 60 * 60 * 1000;

pub fn create_directory<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::CreateDirectory,
) -> Result<Vec<Event>, Rejection> {
    let path = checks::path(&cmd.path, "directory path")?;
    let names: Vec<&str> = path.components().collect();
    match resolve::walk(ctx.view, &path)? {
        Walk::Found { entry, .. } if cmd.parents && entry.kind == EntryKind::Directory => Ok(Vec::new()),
        Walk::Found { .. } => Err(Rejection::already_exists(format!("'{path}' already exists"))),
        Walk::Missing { missing, .. } if !cmd.parents && missing + 1 < names.len() => {
            Err(Rejection::not_found(format!(
                "parent directory '{}' of '{path}' does not exist (create it first, or ask for parents)",
                resolve::prefix(&names, missing + 1)
            )))
        }
        Walk::Missing { parent, missing, .. } => {
            let first = first_new_inode(ctx.view)?;
            let mut parent_inode = parent.inode;
            let mut events = Vec::with_capacity(names.len() - missing);
            // Each new directory takes the next inode and is the parent of the one after it.
            for (inode, index) in (first..).zip(missing..names.len()) {
                events.push(Event::DirectoryCreated(pb::DirectoryCreated {
                    inode,
                    parent: parent_inode,
                    name: names[index].to_owned(),
                    path: resolve::prefix(&names, index + 1),
                }));
                parent_inode = inode;
            }
            Ok(events)
        }
    }
}

pub fn commit_file_version<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::CommitFileVersion,
) -> Result<Vec<Event>, Rejection> {
    let path = checks::path(&cmd.path, "file path")?;
    let Some((_, name)) = path.split_parent() else {
        return Err(Rejection::new(
            RejectionCode::IsADirectory,
            "'/' is the root directory, not a file",
        ));
    };
    let names: Vec<&str> = path.components().collect();
    let (inode, parent, current) = match resolve::walk(ctx.view, &path)? {
        Walk::Found { entry, .. } if entry.kind == EntryKind::Directory => {
            return Err(Rejection::new(
                RejectionCode::IsADirectory,
                format!("'{path}' is a directory"),
            ));
        }
        Walk::Found { entry, .. } => (entry.inode, entry.parent, entry.version),
        Walk::Missing { missing, .. } if missing + 1 < names.len() => {
            return Err(Rejection::not_found(format!(
                "parent directory '{}' of '{path}' does not exist",
                resolve::prefix(&names, missing + 1)
            )));
        }
        Walk::Missing { parent, .. } => (first_new_inode(ctx.view)?, parent.inode, 0),
    };
    if let Some(expected) = cmd.expected_version
        && expected != current
    {
        return Err(Rejection::new(
            RejectionCode::Conflict,
            format!("'{path}' is at version {current}, the commit expected version {expected}"),
        ));
    }
    check_chunks(&path, cmd)?;
    check_inline(&path, cmd)?;
    let replicas = match cmd.replicas {
        0 => 1,
        n if n > REPLICAS_MAX => {
            return Err(Rejection::invalid(format!(
                "'{path}' asks for {n} replicas; allowed are 1 to {REPLICAS_MAX}"
            )));
        }
        n => n,
    };
    let placed = check_placements(ctx, &path, cmd)?;
    let keep = match cmd.keep_versions {
        0 => VERSIONS_KEPT_DEFAULT,
        keep if keep > VERSIONS_KEPT_MAX => {
            return Err(Rejection::invalid(format!(
                "keep_versions {keep} for '{path}' is more than the limit of {VERSIONS_KEPT_MAX}"
            )));
        }
        keep => keep,
    };
    let version = current + 1;
    let mut events = placed;
    events.push(Event::FileVersionCommitted(pb::FileVersionCommitted {
        inode,
        parent,
        name: name.to_owned(),
        path: path.to_string(),
        version,
        size: cmd.size,
        chunks: cmd.chunks.clone(),
        replicas,
        inline_data: cmd.inline_data.clone(),
    }));
    let mut kept = if current == 0 {
        Vec::new()
    } else {
        ctx.view.versions(inode)
    };
    kept.push(version);
    let excess = kept.len().saturating_sub(keep as usize);
    events.extend(
        kept[..excess]
            .iter()
            .map(|&version| Event::FileVersionPruned(pb::FileVersionPruned { inode, version })),
    );
    Ok(events)
}

pub fn remove_entry<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::RemoveEntry,
) -> Result<Vec<Event>, Rejection> {
    let path = checks::path(&cmd.path, "path to remove")?;
    if path.is_root() {
        return Err(Rejection::invalid("the root directory '/' cannot be removed"));
    }
    let Walk::Found { entry, .. } = resolve::walk(ctx.view, &path)? else {
        return Err(Rejection::not_found(format!("'{path}' does not exist")));
    };
    let kind = entry.kind;
    if kind == EntryKind::Directory && !cmd.recursive && ctx.view.has_children(entry.inode) {
        return Err(Rejection::new(
            RejectionCode::DirectoryNotEmpty,
            format!("directory '{path}' is not empty (remove it recursively to delete its contents)"),
        ));
    }
    Ok(vec![Event::EntryRemoved(pb::EntryRemoved {
        inode: entry.inode,
        parent: entry.parent,
        name: entry.name,
        path: path.to_string(),
        kind: kind as i32,
    })])
}

pub fn move_entry<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::MoveEntry,
) -> Result<Vec<Event>, Rejection> {
    let from = checks::path(&cmd.from, "move source")?;
    let to = checks::path(&cmd.to, "move destination")?;
    if from.is_root() {
        return Err(Rejection::invalid("the root directory '/' cannot be moved"));
    }
    let Some((_, to_name)) = to.split_parent() else {
        return Err(Rejection::invalid(format!(
            "cannot move '{from}' onto the root directory '/'"
        )));
    };
    let Walk::Found { entry, .. } = resolve::walk(ctx.view, &from)? else {
        return Err(Rejection::not_found(format!(
            "move source '{from}' does not exist"
        )));
    };
    let names: Vec<&str> = to.components().collect();
    let (to_parent, ancestors) = match resolve::walk(ctx.view, &to)? {
        Walk::Found { .. } => {
            return Err(Rejection::already_exists(format!(
                "move destination '{to}' already exists (moves never overwrite)"
            )));
        }
        Walk::Missing { missing, .. } if missing + 1 < names.len() => {
            return Err(Rejection::not_found(format!(
                "destination directory '{}' of '{to}' does not exist",
                resolve::prefix(&names, missing + 1)
            )));
        }
        Walk::Missing {
            parent, ancestors, ..
        } => (parent.inode, ancestors),
    };
    // The walk to the destination passed through every directory above it, so the source lies on
    // that chain exactly when the destination is inside the source: a cycle we must refuse.
    if ancestors.contains(&entry.inode) {
        return Err(Rejection::invalid(format!(
            "cannot move '{from}' into itself ('{to}')"
        )));
    }
    Ok(vec![Event::EntryMoved(pb::EntryMoved {
        inode: entry.inode,
        from_parent: entry.parent,
        from_name: entry.name,
        to_parent,
        to_name: to_name.to_owned(),
        from_path: from.to_string(),
        to_path: to.to_string(),
    })])
}

/// Chunks must tile the file exactly: contiguous from offset 0, non-empty, summing to `size`.
fn check_chunks(path: &NamespacePath, cmd: &pb::CommitFileVersion) -> Result<(), Rejection> {
    if cmd.chunks.len() > CHUNKS_PER_VERSION_MAX {
        return Err(Rejection::invalid(format!(
            "'{path}' has {} chunks, more than the limit of {CHUNKS_PER_VERSION_MAX}",
            cmd.chunks.len()
        )));
    }
    let mut covered: u64 = 0;
    for (index, chunk) in cmd.chunks.iter().enumerate() {
        checks::exact_len(
            &chunk.hash,
            checks::HASH_BYTES,
            &format!("hash of chunk {index} of '{path}'"),
        )?;
        if chunk.offset != covered {
            return Err(Rejection::invalid(format!(
                "chunk {index} of '{path}' starts at byte {}, expected {covered} (chunks must be contiguous from 0)",
                chunk.offset
            )));
        }
        if chunk.size == 0 {
            return Err(Rejection::invalid(format!("chunk {index} of '{path}' is empty")));
        }
        covered = covered
            .checked_add(chunk.size)
            .ok_or_else(|| Rejection::invalid(format!("chunk sizes of '{path}' overflow 64 bits")))?;
    }
    // Inline content stands for the chunks; `check_inline` holds it to the size.
    if covered != cmd.size && cmd.inline_data.is_empty() {
        return Err(Rejection::invalid(format!(
            "chunks of '{path}' cover {covered} bytes but the version's size is {}",
            cmd.size
        )));
    }
    Ok(())
}

/// A small file kept inline has no chunks, and its size is its content's.
fn check_inline(path: &NamespacePath, cmd: &pb::CommitFileVersion) -> Result<(), Rejection> {
    if cmd.inline_data.is_empty() {
        return Ok(());
    }
    if cmd.inline_data.len() > INLINE_BYTES_MAX {
        return Err(Rejection::invalid(format!(
            "'{path}' carries {} bytes inline, more than the limit of {INLINE_BYTES_MAX}; store it in chunks",
            cmd.inline_data.len()
        )));
    }
    if !cmd.chunks.is_empty() || !cmd.placements.is_empty() {
        return Err(Rejection::invalid(format!(
            "'{path}' has both inline content and chunks"
        )));
    }
    if cmd.size != cmd.inline_data.len() as u64 {
        return Err(Rejection::invalid(format!(
            "'{path}' has {} bytes inline but its size is {}",
            cmd.inline_data.len(),
            cmd.size
        )));
    }
    Ok(())
}

/// The replicas a commit names become `ChunkPlaced` events of the same entry; afterwards every
/// chunk of the version must have at least one recorded replica, so a version can never point
/// at bytes nobody stored (or that garbage collection removed while the writer deduplicated).
fn check_placements<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    path: &NamespacePath,
    cmd: &pb::CommitFileVersion,
) -> Result<Vec<Event>, Rejection> {
    if !cmd.chunks.is_empty() {
        let age = ctx.now_unix_ms.saturating_sub(cmd.planned_at_unix_ms);
        if cmd.planned_at_unix_ms <= 0 || age > PLAN_AGE_MS_MAX {
            return Err(Rejection::new(
                RejectionCode::Conflict,
                format!(
                    "the upload plan of '{path}' is {} old (or missing), more than {PLAN_AGE_MS_MAX} ms; write the file again",
                    if cmd.planned_at_unix_ms <= 0 {
                        "infinitely".to_owned()
                    } else {
                        format!("{age} ms")
                    }
                ),
            ));
        }
    }
    let limit = cmd.chunks.len().saturating_mul(REPLICAS_MAX as usize);
    if cmd.placements.len() > limit {
        return Err(Rejection::invalid(format!(
            "'{path}' names {} placements, more than {REPLICAS_MAX} per chunk",
            cmd.placements.len()
        )));
    }
    let sizes: HashMap<&[u8], u64> = cmd.chunks.iter().map(|c| (c.hash.as_slice(), c.size)).collect();
    let mut placed: HashSet<(&[u8], String)> = HashSet::new();
    let mut events = Vec::new();
    for placement in &cmd.placements {
        let Some(&size) = sizes.get(placement.hash.as_slice()) else {
            return Err(Rejection::invalid(format!(
                "'{path}' places chunk {}, which is not one of its chunks",
                checks::hex(&placement.hash)
            )));
        };
        let node = checks::principal(&placement.node, "node address")?.to_string();
        if ctx.view.node(&node).is_none() {
            return Err(Rejection::not_found(format!("node {node} has not joined")));
        }
        if ctx.view.replica_exists(&placement.hash, &node) || !placed.insert((&placement.hash, node.clone()))
        {
            continue;
        }
        events.push(Event::ChunkPlaced(pb::ChunkPlaced {
            hash: placement.hash.clone(),
            node,
            size,
        }));
    }
    for (index, chunk) in cmd.chunks.iter().enumerate() {
        let newly = placed.iter().any(|(hash, _)| *hash == chunk.hash.as_slice());
        if !newly && !ctx.view.has_replica(&chunk.hash) {
            return Err(Rejection::failed_precondition(format!(
                "chunk {index} ({}) of '{path}' has no stored replica; write the file again",
                checks::hex(&chunk.hash)
            )));
        }
    }
    Ok(events)
}

/// The first free inode. Anything at or below the root's would collide with it: the projection
/// is corrupt, and allocating anyway would silently alias entries.
fn first_new_inode<V: View + ?Sized>(view: &V) -> Result<u64, Rejection> {
    let next = view.next_inode();
    if next <= ROOT_INODE {
        return Err(Rejection::failed_precondition(format!(
            "inode counter is at {next}, not above the root inode {ROOT_INODE}; the namespace projection is inconsistent"
        )));
    }
    Ok(next)
}
