//! Starting a coordinator's Raft node on its data directory and projections store.

use std::path::Path;
use std::sync::Arc;

use collective_projections::Store;
use openraft::Config;
use openraft::RaftNetworkFactory;
use openraft::network::NetSnapshot;

use crate::LogStore;
use crate::StateMachine;
use crate::error::OpenError;
use crate::snapshot::SnapshotDir;
use crate::snapshot::SnapshotFile;
use crate::types::NodeId;
use crate::types::Raft;
use crate::types::TypeConfig;

/// Starts the Raft node `id` over `store` (whose RocksDB also holds the log), with snapshot
/// files under `<data_dir>/snapshots/`. A pristine node starts as a learner; call
/// `Raft::initialize` on exactly one node of a new group.
pub async fn open_raft<N>(
    id: NodeId,
    data_dir: &Path,
    store: Store,
    config: Config,
    network: N,
) -> Result<Raft, OpenError>
where
    N: RaftNetworkFactory<TypeConfig>,
    N::Network: NetSnapshot<TypeConfig, SnapshotData = SnapshotFile>,
{
    let config = Arc::new(config.validate()?);
    let snapshots = SnapshotDir::open(data_dir).map_err(OpenError::Storage)?;
    snapshots.remove_stale_temp_files().map_err(OpenError::Storage)?;
    let log = LogStore::new(store.db().clone()).map_err(OpenError::Storage)?;
    let sm = StateMachine::new(store, snapshots);
    Ok(openraft::Raft::new(id, config, network, log, sm).await?)
}
