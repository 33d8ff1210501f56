//! Namespace decisions: directories, file versions, removal and moves.
//!
//! Entries are inodes keyed by `(parent, name)`. New inodes come from `View::next_inode`, and a
//! command creating several entries takes consecutive numbers from it in path order, so replaying
//! the log allocates exactly the same ids.

use super::resolve::{self, Walk};
use super::{Context, Rejection, RejectionCode, checks};
use crate::path::NamespacePath;
use crate::pb::{self, EntryKind, event_envelope::Event};
use crate::view::{ROOT_INODE, View};

/// Versions of a file kept when a commit says `keep_versions = 0`.
pub const VERSIONS_KEPT_DEFAULT: u32 = 3;
/// Most versions of one file a commit may ask to keep.
pub const VERSIONS_KEPT_MAX: u32 = 1024;
/// Most chunks in one file version: one commit is one Raft entry, which must stay bounded.
/// At 4 MiB chunks this still allows a 4 TiB file.
pub const CHUNKS_PER_VERSION_MAX: usize = 1 << 20;

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
    let mut events = vec![Event::FileVersionCommitted(pb::FileVersionCommitted {
        inode,
        parent,
        name: name.to_owned(),
        path: path.to_string(),
        version,
        size: cmd.size,
        chunks: cmd.chunks.clone(),
    })];
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
    if covered != cmd.size {
        return Err(Rejection::invalid(format!(
            "chunks of '{path}' cover {covered} bytes but the version's size is {}",
            cmd.size
        )));
    }
    Ok(())
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
