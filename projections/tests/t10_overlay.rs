//! Within one transaction a later command sees the writes of an earlier one, before commit.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on any error")]

mod common;

use common::{envelope, initialize, mkdir, open_store, run};

#[test]
fn mkdir_then_child_in_one_txn() {
    let (_dir, store) = open_store();
    run(&store, 1, &[envelope(1, initialize())]);

    let mut txn = store.begin();
    let a = txn.execute(2, &envelope(2, mkdir("/a", false))).unwrap();
    assert!(a.rejection().is_none(), "mkdir /a: {a:?}");
    let b = txn.execute(3, &envelope(3, mkdir("/a/b", false))).unwrap();
    assert!(b.rejection().is_none(), "mkdir /a/b must see /a: {b:?}");
    // Nothing is visible outside the transaction before commit.
    assert_eq!(store.resolve("/a").unwrap(), None);
    txn.commit().unwrap();

    let a = store.resolve("/a").unwrap().expect("/a exists");
    let b = store.resolve("/a/b").unwrap().expect("/a/b exists");
    assert_eq!(b.parent, a.inode);
    assert_ne!(a.inode, b.inode);
    let listed = store.list_dir(a.inode, None, 10).unwrap();
    assert_eq!(listed, vec![b]);
}
