//! The Raft state machine: committed entries run through the projections store, one transaction
//! per `apply` call; snapshots are files holding the store's exported state.
//!
//! The Raft bookkeeping (`last_applied`, the last membership) lives in the store's `sm_meta`
//! table, written in the same transaction as the effects of the entries, and travels inside the
//! exported state. So a snapshot and the state it describes can never disagree, and installing
//! one is a single atomic `import_state`.

use std::io;
use std::sync::Arc;

use collective_projections::META_LAST_APPLIED;
use collective_projections::META_MEMBERSHIP;
use collective_projections::Outcome;
use collective_projections::Store;
use futures::Stream;
use futures::TryStreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;

use crate::snapshot::SnapshotDir;
use crate::snapshot::SnapshotFile;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::Response;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;
use crate::wire;

/// The state machine of a coordinator. Cheap to clone (the clone is the snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    store: Store,
    snapshots: SnapshotDir,
    /// Held by `apply` and by `install_snapshot`, which replaces the whole state: an install
    /// never interleaves with an apply. Building a snapshot needs no gate (it reads one frozen
    /// instant, see `build_snapshot`).
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl StateMachine {
    /// A state machine over `store`, with snapshot files in `snapshots`.
    pub fn new(store: Store, snapshots: SnapshotDir) -> Self {
        Self {
            store,
            snapshots,
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The projections store this state machine writes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, io::Error>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, io::Error> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(io::Error::other)?
    }
}

/// Most entries applied inline on openraft's task; larger batches go to a blocking thread.
const APPLY_INLINE_ENTRIES_MAX: usize = 64;

/// Applies `work` in one projections transaction that also records `last` as applied.
fn apply_batch(store: &Store, work: Vec<Entry>, last: LogId) -> Result<Vec<Option<Outcome>>, io::Error> {
    let mut txn = store.begin();
    let mut outcomes = Vec::with_capacity(work.len());
    for entry in work {
        let index = entry.log_id.index;
        let outcome = match entry.payload {
            EntryPayload::Blank => None,
            EntryPayload::Normal(cmd) => Some(txn.execute(index, &cmd.0).map_err(store_err)?),
            EntryPayload::Membership(m) => {
                let stored = StoredMembership::new(Some(entry.log_id), m);
                txn.put_meta(META_MEMBERSHIP, wire::encode_stored_membership(&stored));
                None
            }
        };
        outcomes.push(outcome);
    }
    txn.put_meta(META_LAST_APPLIED, wire::encode_log_id(&last));
    txn.commit().map_err(store_err)?;
    Ok(outcomes)
}

fn store_err(e: collective_projections::StoreError) -> io::Error {
    io::Error::other(e)
}

fn corrupt(what: &str, e: wire::WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt {what}: {e}"))
}

/// Reads `(last_applied, membership)` from the store's `sm_meta`. Blocking.
fn read_applied(store: &Store) -> Result<(Option<LogId>, StoredMembership), io::Error> {
    decode_applied(|key| store.begin().get_meta(key))
}

/// `last_applied` and the membership, from a meta-table reader.
fn decode_applied(
    get_meta: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, collective_projections::StoreError>,
) -> Result<(Option<LogId>, StoredMembership), io::Error> {
    let last = match get_meta(META_LAST_APPLIED).map_err(store_err)? {
        None => None,
        Some(b) => Some(wire::decode_log_id(&b).map_err(|e| corrupt("last_applied", e))?),
    };
    let membership = match get_meta(META_MEMBERSHIP).map_err(store_err)? {
        None => StoredMembership::default(),
        Some(b) => wire::decode_stored_membership(&b).map_err(|e| corrupt("membership", e))?,
    };
    Ok((last, membership))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.blocking(read_applied).await
    }

    async fn apply<S>(&mut self, entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let gate = self.gate.clone();
        let _applying = gate.lock().await;
        // Drain first: the transaction is synchronous RocksDB work.
        let batch: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        let Some(last) = batch.last().map(|(e, _)| e.log_id) else {
            return Ok(());
        };
        let mut responders = Vec::with_capacity(batch.len());
        let mut work = Vec::with_capacity(batch.len());
        for (entry, responder) in batch {
            responders.push((entry.log_id.index, responder));
            work.push(entry);
        }
        // A small batch inline rather than on a blocking thread: an apply is memtable reads and
        // one unsynced write batch (the log entries it comes from are fsynced already), tens of
        // microseconds per entry, which costs less than the two thread hops and wake-ups of
        // `blocking` at every commit. A large batch (catching up after a restart or a partition)
        // would hold a runtime worker too long, so it goes to a blocking thread, as do building
        // and installing snapshots.
        let outcomes = if work.len() <= APPLY_INLINE_ENTRIES_MAX {
            apply_batch(&self.store, work, last)?
        } else {
            self.blocking(move |store| apply_batch(store, work, last)).await?
        };
        // Answer only after the commit: a client never hears of an effect that is not stored.
        for ((log_index, responder), outcome) in responders.into_iter().zip(outcomes) {
            if let Some(r) = responder {
                r.send(Response { log_index, outcome });
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, file: SnapshotFile) -> Result<(), io::Error> {
        let gate = self.gate.clone();
        let _applying = gate.lock().await;
        let expected = meta.clone();
        let snapshots = self.snapshots.clone();
        self.blocking(move |store| {
            let checked = (|| {
                let (found, mut state) = file.verify()?;
                if found != expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("snapshot file holds meta {found:?}, expected {expected:?}"),
                    ));
                }
                // Atomic: the whole state, `sm_meta` (last_applied, membership) included, or
                // nothing. A refused stream leaves the old state untouched.
                store.import_state(&mut state).map_err(store_err)?;
                // Paired with the build side: the imported bookkeeping is the snapshot's meta.
                let (applied, membership) = read_applied(store)?;
                if applied != expected.last_log_id || membership != expected.last_membership {
                    return Err(io::Error::other("imported state disagrees with snapshot meta"));
                }
                Ok(())
            })();
            if let Err(e) = checked {
                // Best effort: the bad file is temporary and also removed at the next start.
                let _ = std::fs::remove_file(file.path());
                return Err(e);
            }
            snapshots.place(file.path(), &expected)?;
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let snapshots = self.snapshots.clone();
        let latest = tokio::task::spawn_blocking(move || snapshots.latest())
            .await
            .map_err(io::Error::other)??;
        Ok(latest.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let snapshots = self.snapshots.clone();
        // No pause of applies: the meta and the tables are read from one frozen instant (a
        // RocksDB snapshot), and an apply commits in one batch, so they always agree.
        self.blocking(move |store| {
            let frozen = store.freeze();
            let (last_log_id, last_membership) = decode_applied(|key| frozen.get_meta(key))?;
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
            };
            let file = snapshots.write(&meta, |mut w| {
                frozen.export(&mut w).map(|_| ()).map_err(store_err)
            })?;
            tracing::info!(snapshot = %file.path().display(), bytes = file.len_bytes(), "snapshot built");
            Ok(Snapshot { meta, snapshot: file })
        })
        .await
    }
}
