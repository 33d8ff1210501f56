//! `node prepare` and `node run`: a storage node's data directory and daemon.

use super::args::NodeCommand;
use crate::node::daemon::{self, NodePlan};
use std::path::PathBuf;

pub async fn run(command: NodeCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        NodeCommand::Prepare(args) => {
            let plan = NodePlan {
                name: args.name,
                listen: args.listen,
                data_dirs: args.data,
                labels: daemon::parse_labels(&args.labels)?,
                capacity_bytes_max: args.capacity,
            };
            let config = daemon::prepare(&args.data_dir, &home, &plan)?;
            outln!(
                "prepared node {} in {} (chunks on {}); start it with `collective node run --data-dir {}`",
                config.address,
                args.data_dir.display(),
                config
                    .data_dirs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                args.data_dir.display()
            );
            Ok(())
        }
        NodeCommand::Run(args) => daemon::run(&args.data_dir).await,
    }
}
