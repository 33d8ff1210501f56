//! Walking a namespace path through the `View`, one `(parent, name)` lookup per component.

use super::{Rejection, RejectionCode};
use crate::path::NamespacePath;
use crate::pb::EntryKind;
use crate::view::{EntryView, ROOT_INODE, View};

/// Where a walk ended.
pub enum Walk {
    /// The whole path exists.
    Found { entry: EntryView },
    /// Component `missing` (0-based) does not exist; `parent` is the directory it was looked up
    /// in, and `ancestors` run from the root down to and including `parent`.
    Missing {
        parent: EntryView,
        missing: usize,
        ancestors: Vec<u64>,
    },
}

/// The root as an entry: it exists from the start and need not be stored in the projection.
pub fn root_entry() -> EntryView {
    EntryView {
        inode: ROOT_INODE,
        parent: ROOT_INODE,
        name: String::new(),
        kind: EntryKind::Directory,
        version: 0,
    }
}

/// Walks `path` from the root. A file met before the last component is `NotADirectory`.
pub fn walk<V: View + ?Sized>(view: &V, path: &NamespacePath) -> Result<Walk, Rejection> {
    let names: Vec<&str> = path.components().collect();
    let mut current = root_entry();
    let mut ancestors = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        if current.kind != EntryKind::Directory {
            return Err(Rejection::new(
                RejectionCode::NotADirectory,
                format!(
                    "'{}' is a file, not a directory (in path '{path}')",
                    prefix(&names, index)
                ),
            ));
        }
        ancestors.push(current.inode);
        match view.lookup(current.inode, name) {
            Some(entry) => current = entry,
            None => {
                return Ok(Walk::Missing {
                    parent: current,
                    missing: index,
                    ancestors,
                });
            }
        }
    }
    Ok(Walk::Found { entry: current })
}

/// The path made of the first `count` names.
pub fn prefix(names: &[&str], count: usize) -> String {
    format!("/{}", names[..count].join("/"))
}
