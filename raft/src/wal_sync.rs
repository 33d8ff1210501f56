//! Group commit for log appends: `append` writes its batch to RocksDB unsynced (in order, and at
//! once visible to readers), then hands its durability callback to this thread, which fsyncs the
//! WAL once for every callback queued meanwhile and only then reports them done, in order.
//!
//! Why not a synced write inside `append`: openraft cannot submit the next append until
//! `append` returns, so proposals arriving during an fsync would wait for it and then pay for
//! their own. Here one fsync covers all appends written before it, and appends keep flowing
//! while it runs. Durability is unchanged: no append is acknowledged before an fsync that
//! follows its write (RocksDB's WAL is one sequential file, so syncing it syncs every earlier
//! write).

use crate::types::TypeConfig;
use collective_projections::rocksdb::DB;
use openraft::storage::IOFlushed;
use std::io;
use std::sync::Arc;
use std::sync::mpsc;

/// Callbacks waiting for the next WAL fsync, at most; `request` blocks beyond it (backpressure).
const PENDING_CALLBACKS_MAX: usize = 65_536;

/// The handle `append` uses; the thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct WalSyncer {
    queue: mpsc::SyncSender<IOFlushed<TypeConfig>>,
}

impl WalSyncer {
    pub fn start(db: Arc<DB>) -> io::Result<WalSyncer> {
        let (queue, pending) = mpsc::sync_channel::<IOFlushed<TypeConfig>>(PENDING_CALLBACKS_MAX);
        std::thread::Builder::new()
            .name("raft-wal-sync".into())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    let mut batch = vec![first];
                    batch.extend(pending.try_iter());
                    let synced = db.flush_wal(true);
                    for callback in batch {
                        let result = synced
                            .as_ref()
                            .map(|_| ())
                            .map_err(|e| io::Error::other(e.to_string()));
                        callback.io_completed(result);
                    }
                }
            })?;
        Ok(WalSyncer { queue })
    }

    /// Reports `callback` done after the next WAL fsync.
    pub fn request(&self, callback: IOFlushed<TypeConfig>) -> io::Result<()> {
        self.queue
            .send(callback)
            .map_err(|_| io::Error::other("the wal sync thread has stopped"))
    }
}
