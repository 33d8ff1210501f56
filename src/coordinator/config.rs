//! A coordinator's configuration (`coordinator.toml` in its data directory) and the layout of
//! that directory.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const CONFIG_FILE: &str = "coordinator.toml";

/// `coordinator.toml`. Environment variables `COLLECTIVE_COORDINATOR_LISTEN` and
/// `COLLECTIVE_COORDINATOR_ENDPOINT` override `listen` and `endpoint` (for systemd units).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Raft id; never reused within a member.
    pub id: u64,
    /// `coord-<id>@<member domain>`, as in this coordinator's certificate.
    pub address: String,
    pub member_domain: String,
    pub federation_domain: String,
    /// Where the gRPC listener binds.
    pub listen: SocketAddr,
    /// How the other coordinators and clients reach this one (`host:port`).
    pub endpoint: String,
    /// Whether this coordinator founds the group on its first start (only the first one does).
    pub bootstrap: bool,
    /// Where the bootstrap (invite redemption) listener binds: server-authenticated TLS, one
    /// RPC. Absent: no bootstrap listener. `up` sets it to its port plus two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_listen: Option<SocketAddr>,
    /// Coordinators of other members to exchange revocations with (see `coordinator::federation`);
    /// `federation join` records the inviting member's. Others are learned while running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federation_peers: Vec<PeerMember>,
}

/// Another member of the federation and where its coordinators listen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerMember {
    pub member_domain: String,
    pub coordinators: Vec<String>,
}

impl CoordinatorConfig {
    pub fn load(data_dir: &Path) -> anyhow::Result<CoordinatorConfig> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} is not a coordinator data directory (no {CONFIG_FILE}): prepare it with \
                 `collective coordinator init` or `collective coordinator prepare`",
                data_dir.display()
            ),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let mut config: CoordinatorConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if let Ok(listen) = std::env::var("COLLECTIVE_COORDINATOR_LISTEN") {
            config.listen = listen
                .parse()
                .context("COLLECTIVE_COORDINATOR_LISTEN is not host:port")?;
        }
        if let Ok(endpoint) = std::env::var("COLLECTIVE_COORDINATOR_ENDPOINT") {
            config.endpoint = endpoint;
        }
        if let Ok(listen) = std::env::var("COLLECTIVE_BOOTSTRAP_LISTEN") {
            config.bootstrap_listen = Some(
                listen
                    .parse()
                    .context("COLLECTIVE_BOOTSTRAP_LISTEN is not host:port")?,
            );
        }
        Ok(config)
    }

    /// How joiners reach the bootstrap listener: its port on the host of `endpoint` when it
    /// binds every address, else its own address.
    pub fn bootstrap_endpoint(&self) -> Option<String> {
        let listen = self.bootstrap_listen?;
        if !listen.ip().is_unspecified() {
            return Some(listen.to_string());
        }
        let host = self
            .endpoint
            .rsplit_once(':')
            .map_or(self.endpoint.as_str(), |(host, _)| host);
        Some(format!("{host}:{}", listen.port()))
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let tmp = data_dir.join(format!("{CONFIG_FILE}.tmp"));
        std::fs::write(&tmp, toml::to_string_pretty(self)?)?;
        std::fs::rename(&tmp, data_dir.join(CONFIG_FILE))?;
        Ok(())
    }
}

/// Paths inside a coordinator's data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }
    /// RocksDB: Raft log, event log and projections.
    pub fn db(&self) -> PathBuf {
        self.root.join("db")
    }
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    /// Certificates: `coordinator.crt`/`.key` (chain), `root-ca.crt`.
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
}

/// The federated address of coordinator `id` of `member_domain`.
pub fn coordinator_address(id: u64, member_domain: &str) -> String {
    format!("coord-{id}@{member_domain}")
}
