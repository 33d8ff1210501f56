//! openraft's storage conformance suite against the real RocksDB log store and state machine.

use collective_projections::Store;
use collective_raft::{LogStore, SnapshotDir, StateMachine, TypeConfig};
use openraft::StorageError;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::type_config::TypeConfigExt;
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let fail =
            |e: &dyn std::fmt::Display| StorageError::write(TypeConfig::err_from_string(e.to_string()));
        let dir = tempfile::tempdir().map_err(|e| fail(&e))?;
        let store = Store::open(dir.path().join("db")).map_err(|e| fail(&e))?;
        let log = LogStore::new(store.db().clone()).map_err(|e| fail(&e))?;
        let snapshots = SnapshotDir::open(dir.path()).map_err(|e| fail(&e))?;
        Ok((dir, log, StateMachine::new(store, snapshots)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_store_passes_openraft_conformance_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await
}
