//! The storage-node daemon: `node.toml` and certificate preparation (admin side, like
//! `coordinator prepare`), and the running node — its chunk service (with its scrubber), a loop
//! that registers with the member's coordinators (`JoinNode`) and sends heartbeats with its free
//! space, and a loop that reports corrupt copies to them (`RemoveReplica`).

use super::chunk_store::{DataDirConfig, PROBE_STALL_LIMIT, StoreConfig};
use super::corruption;
use super::run::{NodeConfig, RunningNode, start_with};
use super::scrub::{SCRUB_BYTES_PER_SEC_DEFAULT, SCRUB_PASS_INTERVAL_DEFAULT, ScrubConfig};
use crate::client::{Client, ClientError, RetryPolicy};
use crate::coordinator::bootstrap::ROOT_CA_FILE;
use crate::coordinator::rotation::{self, MemberEndpoints};
use crate::pki::{CertBundle, Component, MemberCa};
use crate::profile::{Profile, ProfileConfig};
use crate::tls::{IdentityHandle, TrustStore};
use crate::transport::root_der;
use anyhow::{Context, bail};
use collective_events::pb::{self, command_envelope::Command};
use collective_proto::api;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const CONFIG_FILE: &str = "node.toml";
/// The node's certificate bundle in `<data dir>/pki`.
pub const NODE_BUNDLE: &str = "node";
/// Default period of heartbeats; a coordinator declares a node down after several are missed.
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_secs(2);
/// Beside `node.toml`: the marker of each data directory the node has used.
const MARKERS_FILE: &str = "data-dirs.json";
const MARKERS_FILE_MODE: u32 = 0o644;
/// How often each data directory is probed for a failed disk (a probe writes and syncs one
/// block).
const DATA_DIR_PROBE_EVERY: Duration = Duration::from_secs(5);
/// Bytes each file system keeps free beyond chunks (room for the OS and other users).
pub const FREE_BYTES_RESERVED_DEFAULT: u64 = 256 * 1024 * 1024;
/// How long one registration or heartbeat call may retry (leader discovery included) before
/// the loop gives up on it and tries again at the next interval.
const REPORT_DEADLINE: Duration = Duration::from_secs(5);

/// `node.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeFileConfig {
    /// `<name>@<member domain>`, as in the node's certificate.
    pub address: String,
    pub member_domain: String,
    pub federation_domain: String,
    /// Where the chunk service binds.
    pub listen: SocketAddr,
    /// How clients and other nodes reach the chunk service (`host:port`).
    pub endpoint: String,
    /// Data directories holding chunks.
    pub data_dirs: Vec<PathBuf>,
    /// Most bytes of chunks kept in each data directory; absent: the file system's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_bytes_max: Option<u64>,
    /// Coordinator endpoints, tried in order; the leader is found from there.
    pub coordinators: Vec<String>,
    #[serde(default = "heartbeat_interval_ms_default")]
    pub heartbeat_interval_ms: u64,
    /// Free-form placement labels (disk type, bandwidth, location).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Most bytes per second the background scrubber reads; 0 disables it.
    #[serde(default = "scrub_bytes_per_sec_default")]
    pub scrub_bytes_per_sec: u64,
    /// Pause between two full scrub passes.
    #[serde(default = "scrub_pass_interval_ms_default")]
    pub scrub_pass_interval_ms: u64,
    /// Write and read chunk files with direct I/O, bypassing the page cache, where the file
    /// system allows it (less CPU per byte; see docs/ARCHITECTURE.md). False: always buffered.
    #[serde(default = "direct_io_default")]
    pub direct_io: bool,
}

fn direct_io_default() -> bool {
    true
}

fn heartbeat_interval_ms_default() -> u64 {
    HEARTBEAT_INTERVAL_DEFAULT.as_millis() as u64
}

fn scrub_bytes_per_sec_default() -> u64 {
    SCRUB_BYTES_PER_SEC_DEFAULT
}

fn scrub_pass_interval_ms_default() -> u64 {
    SCRUB_PASS_INTERVAL_DEFAULT.as_millis() as u64
}

impl NodeFileConfig {
    pub fn load(data_dir: &Path) -> anyhow::Result<NodeFileConfig> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} is not a node data directory (no {CONFIG_FILE}): prepare it with \
                 `collective node prepare`",
                data_dir.display()
            ),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let mut config: NodeFileConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        // Tests (and impatient operators) shorten the interval without editing the file.
        if let Some(value) = crate::env::number::<u64>("COLLECTIVE_NODE_HEARTBEAT_MS")? {
            config.heartbeat_interval_ms = value;
        }
        if let Some(value) = crate::env::number::<u64>("COLLECTIVE_NODE_SCRUB_BYTES_PER_SEC")? {
            config.scrub_bytes_per_sec = value;
        }
        if let Some(value) = crate::env::number::<u64>("COLLECTIVE_NODE_SCRUB_INTERVAL_MS")? {
            config.scrub_pass_interval_ms = value;
        }
        match crate::env::number::<u8>("COLLECTIVE_NODE_DIRECT_IO")? {
            None => {}
            Some(0) => config.direct_io = false,
            Some(1) => config.direct_io = true,
            Some(other) => bail!("COLLECTIVE_NODE_DIRECT_IO={other}: use 1 (direct I/O) or 0 (page cache)"),
        }
        if config.coordinators.is_empty() {
            bail!("{} lists no coordinators", path.display());
        }
        if config.data_dirs.is_empty() {
            bail!("{} lists no data directories", path.display());
        }
        if config.heartbeat_interval_ms == 0 {
            bail!("{}: heartbeat_interval_ms must be positive", path.display());
        }
        Ok(config)
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let tmp = data_dir.join(format!("{CONFIG_FILE}.tmp"));
        std::fs::write(&tmp, toml::to_string_pretty(self)?)?;
        std::fs::rename(&tmp, data_dir.join(CONFIG_FILE))?;
        Ok(())
    }

    fn node_config(&self) -> NodeConfig {
        let mut config = NodeConfig::new(self.store_config());
        config.scrub = ScrubConfig {
            bytes_per_sec: self.scrub_bytes_per_sec,
            pass_interval: Duration::from_millis(self.scrub_pass_interval_ms),
        };
        config
    }

    fn store_config(&self) -> StoreConfig {
        StoreConfig {
            data_dirs: self
                .data_dirs
                .iter()
                .map(|path| DataDirConfig {
                    path: path.clone(),
                    capacity_bytes_max: self.capacity_bytes_max,
                    marker: None,
                })
                .collect(),
            free_bytes_reserved: FREE_BYTES_RESERVED_DEFAULT,
            direct_io: self.direct_io,
        }
    }
}

/// What `node prepare` is told.
#[derive(Debug, Clone)]
pub struct NodePlan {
    /// The local part of the node's address, e.g. `node-01`.
    pub name: String,
    pub listen: SocketAddr,
    /// Empty: one data directory, `<data dir>/data`.
    pub data_dirs: Vec<PathBuf>,
    pub labels: BTreeMap<String, String>,
    pub capacity_bytes_max: Option<u64>,
}

/// Prepares a node's data directory with a certificate signed by the admin profile's member CA.
pub fn prepare(data_dir: &Path, home: &Path, plan: &NodePlan) -> anyhow::Result<NodeFileConfig> {
    let profile = Profile::load(home)?;
    let member_ca = profile.member_ca()?;
    prepare_with_ca(
        data_dir,
        &member_ca,
        &profile.root_ca_pem,
        &profile.config.coordinators,
        plan,
    )
}

/// Prepares a node's data directory with a certificate signed by `member_ca`.
pub fn prepare_with_ca(
    data_dir: &Path,
    member_ca: &MemberCa,
    root_pem: &str,
    coordinators: &[String],
    plan: &NodePlan,
) -> anyhow::Result<NodeFileConfig> {
    if data_dir.join(CONFIG_FILE).exists() {
        bail!(
            "{} already holds a node; run it with `collective node run`",
            data_dir.display()
        );
    }
    if plan.name.is_empty() || plan.name.contains('@') {
        bail!(
            "node name {:?} must be a non-empty local part without '@'",
            plan.name
        );
    }
    let member_domain = member_ca.member_domain().to_string();
    let address = format!("{}@{member_domain}", plan.name);
    let data_dirs = if plan.data_dirs.is_empty() {
        vec![data_dir.join("data")]
    } else {
        plan.data_dirs
            .iter()
            .map(|p| std::path::absolute(p).with_context(|| format!("resolving {}", p.display())))
            .collect::<anyhow::Result<_>>()?
    };
    let config = NodeFileConfig {
        address: address.clone(),
        member_domain,
        federation_domain: member_ca.federation_domain().to_string(),
        listen: plan.listen,
        endpoint: plan.listen.to_string(),
        data_dirs,
        capacity_bytes_max: plan.capacity_bytes_max,
        coordinators: coordinators.to_vec(),
        heartbeat_interval_ms: heartbeat_interval_ms_default(),
        labels: plan.labels.clone(),
        scrub_bytes_per_sec: scrub_bytes_per_sec_default(),
        scrub_pass_interval_ms: scrub_pass_interval_ms_default(),
        direct_io: direct_io_default(),
    };
    let pki = data_dir.join("pki");
    std::fs::create_dir_all(&pki).with_context(|| format!("creating {}", pki.display()))?;
    let ip = plan.listen.ip().to_string();
    let leaf = member_ca
        .issue_leaf_with_sans(
            &address,
            Component::Node,
            crate::coordinator::rotation::service_leaf_validity()?,
            &[&ip],
        )
        .context("issuing the node certificate")?;
    leaf.write_to(&pki, NODE_BUNDLE)?;
    std::fs::write(pki.join(ROOT_CA_FILE), root_pem)?;
    config.save(data_dir)?;
    Ok(config)
}

/// A running node daemon: the chunk service and its registration loop.
pub struct NodeDaemon {
    pub config: NodeFileConfig,
    pub node: RunningNode,
    reporter: tokio::task::JoinHandle<()>,
    corruption_reporter: tokio::task::JoinHandle<()>,
    /// Revocation list sync, certificate renewal, the orphan sweep and the disk probe.
    background_tasks: [tokio::task::JoinHandle<()>; 4],
}

impl NodeDaemon {
    /// Waits for the chunk service to stop (after the shutdown future resolved).
    pub async fn finish(self) -> anyhow::Result<()> {
        let served = self.node.finish().await;
        self.reporter.abort();
        self.corruption_reporter.abort();
        for task in &self.background_tasks {
            task.abort();
        }
        served
    }
}

/// Starts the node in `data_dir`; it serves and reports until `shutdown` resolves.
pub async fn launch(
    data_dir: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<NodeDaemon> {
    let config = NodeFileConfig::load(data_dir)?;
    let pki = data_dir.join("pki");
    let identity = CertBundle::read_from(&pki, NODE_BUNDLE)
        .with_context(|| format!("reading the node certificate in {}", pki.display()))?;
    let root_pem = std::fs::read_to_string(pki.join(ROOT_CA_FILE))
        .with_context(|| format!("reading {}", pki.join(ROOT_CA_FILE).display()))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let server_stop = async move {
        shutdown.await;
        let _ = stop_sender.send(true);
    };
    // The node's own leaf (renewed in place) and its trust store (revocations learned from the
    // coordinators), both read by the listener at every handshake.
    let handle = IdentityHandle::new(identity.clone())?;
    handle.register_live();
    let trust = TrustStore::new(&root_der(&root_pem)?)?;
    let mut node_config = config.node_config();
    node_config.replica_stall = crate::datapath::replica_stall_from_env()?;
    let mut markers = load_markers(data_dir)?;
    for dir in &mut node_config.store.data_dirs {
        dir.marker = markers.get(&dir.path).cloned();
    }
    let node = start_with(node_config, &handle, &trust, listener, server_stop).await?;
    let opened = node.store.markers();
    if opened
        .iter()
        .any(|(path, marker)| markers.get(path) != Some(marker))
    {
        markers.extend(opened);
        save_markers(data_dir, &markers)?;
    }
    let member = MemberEndpoints {
        coordinators: config.coordinators.clone(),
        member_domain: config.member_domain.clone(),
        root_pem: root_pem.clone(),
    };
    let heartbeat_interval = Duration::from_millis(config.heartbeat_interval_ms);
    let [pki_a, pki_b] = [
        tokio::spawn(rotation::revocation_sync_loop(
            handle.clone(),
            trust,
            member.clone(),
            heartbeat_interval,
            stop.clone(),
        )),
        tokio::spawn(rotation::renew_loop(
            handle.clone(),
            pki.clone(),
            NODE_BUNDLE.to_string(),
            member,
            stop.clone(),
        )),
    ];
    let member_client = || {
        Client::with_identity(
            ProfileConfig {
                address: config.address.clone(),
                member_domain: config.member_domain.clone(),
                federation_domain: config.federation_domain.clone(),
                coordinators: config.coordinators.clone(),
            },
            identity.clone(),
            root_pem.clone(),
        )
        .with_retry(RetryPolicy {
            deadline: REPORT_DEADLINE,
            ..RetryPolicy::default()
        })
    };
    // Two clients: a slow corruption report must not delay a heartbeat (and the node be
    // declared down), nor the other way round.
    let corruption_reporter = tokio::spawn(corruption::submit_loop(
        Arc::clone(&node.corruption),
        member_client(),
        config.address.clone(),
        stop.clone(),
    ));
    let sweeper = tokio::spawn(super::orphans::sweep_loop(
        Arc::clone(&node.store),
        member_client(),
        config.address.clone(),
        super::orphans::SweepConfig::from_env()?,
        stop.clone(),
    ));
    let prober = tokio::spawn(probe_loop(Arc::clone(&node.store), stop.clone()));
    let reporter = tokio::spawn(report_loop(
        member_client(),
        handle,
        config.clone(),
        Arc::clone(&node.store),
        stop,
    ));
    Ok(NodeDaemon {
        config,
        node,
        reporter,
        corruption_reporter,
        background_tasks: [pki_a, pki_b, sweeper, prober],
    })
}

/// Runs a node until SIGINT or SIGTERM.
pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let daemon = launch(data_dir, crate::coordinator::run::shutdown_signal()).await?;
    errln!(
        "node {} serving chunks on {}",
        daemon.config.address,
        daemon.node.local_addr
    );
    daemon.finish().await
}

/// The marker of each data directory the node has used, by path (see
/// `chunk_store/data_dir.rs`); empty before the first start.
fn load_markers(data_dir: &Path) -> anyhow::Result<BTreeMap<PathBuf, String>> {
    let path = data_dir.join(MARKERS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "parsing {}: it records which disk each data directory is; restore it, or remove \
                 it to accept the directories as they are now",
                path.display()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_markers(data_dir: &Path, markers: &BTreeMap<PathBuf, String>) -> anyhow::Result<()> {
    let path = data_dir.join(MARKERS_FILE);
    crate::pki::write_atomic(&path, &serde_json::to_vec_pretty(markers)?, MARKERS_FILE_MODE)?;
    crate::pki::sync_dir(data_dir)?;
    Ok(())
}

/// What a heartbeat reports, summed over the data directories in service.
#[derive(Debug, Default, Clone)]
struct Report {
    total_bytes: u64,
    free_bytes: u64,
    chunk_count: u64,
    load_milli: u32,
    /// The data directories out of service, each as "PATH: why".
    failed_data_dirs: Vec<String>,
}

/// Sums what the data directories hold, and names the failed ones.
async fn measure(store: &Arc<super::ChunkStore>) -> anyhow::Result<Report> {
    let store = Arc::clone(store);
    let (dirs, failed_data_dirs, load_milli) =
        tokio::task::spawn_blocking(move || (store.capacity(), store.failures(), load_milli()))
            .await
            .context("the capacity task panicked")?;
    Ok(dirs.iter().fold(
        Report {
            load_milli,
            failed_data_dirs,
            ..Report::default()
        },
        |report, dir| Report {
            total_bytes: report.total_bytes.saturating_add(dir.total_bytes),
            free_bytes: report.free_bytes.saturating_add(dir.free_bytes),
            chunk_count: report.chunk_count.saturating_add(dir.chunk_count),
            ..report
        },
    ))
}

/// Probes the data directories every [`DATA_DIR_PROBE_EVERY`] (see `chunk_store/data_dir.rs`),
/// and fails any whose probe has hung for [`PROBE_STALL_LIMIT`], until `stop` turns true. Apart
/// from the heartbeat: a probe syncs a file, which a busy or failing disk may take seconds to
/// do, and a heartbeat held that long would get the node declared down.
async fn probe_loop(store: Arc<super::ChunkStore>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        for index in 0..store.dir_count() {
            let probing = Arc::clone(&store);
            // Not awaited: a probe hung on one disk holds back neither the other directories'
            // probes nor the check for hung ones below (a directory's next probe waits for it).
            drop(tokio::task::spawn_blocking(move || probing.check_dir(index)));
        }
        store.fail_stalled(PROBE_STALL_LIMIT);
        tokio::select! {
            _ = tokio::time::sleep(DATA_DIR_PROBE_EVERY) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// The machine's 1-minute load average x 1000, from `/proc/loadavg`; 0 where unknown.
fn load_milli() -> u32 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .as_deref()
        .and_then(parse_loadavg)
        .unwrap_or(0)
}

fn parse_loadavg(text: &str) -> Option<u32> {
    let one_minute: f64 = text.split_whitespace().next()?.parse().ok()?;
    (one_minute.is_finite() && one_minute >= 0.0).then(|| (one_minute * 1000.0).min(u32::MAX as f64) as u32)
}

/// Joins the member once (an earlier join is fine), then sends a heartbeat every interval
/// until `stop` turns true. Failures are logged and retried at the next interval: the node keeps
/// serving chunks whatever the coordinators' state.
async fn report_loop(
    mut client: Client,
    handle: IdentityHandle,
    config: NodeFileConfig,
    store: Arc<super::ChunkStore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(config.heartbeat_interval_ms);
    let mut joined = false;
    let mut recorded_serial: Option<Vec<u8>> = None;
    loop {
        if let Err(error) = report_once(&mut client, &config, &store, &mut joined).await {
            tracing::warn!(error = %format!("{error:#}"), "heartbeat failed");
        }
        // The node records its own certificate (each renewal is recorded by its signer; this
        // covers the one `node prepare` issued offline), so it can be revoked by serial.
        let current = handle.identity();
        if recorded_serial.as_ref() != Some(&current.serial) {
            match rotation::record_with(&mut client, &handle.bundle()).await {
                Ok(_) => recorded_serial = Some(current.serial),
                Err(error) => tracing::debug!(error = %format!("{error:#}"), "recording own certificate"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

async fn report_once(
    client: &mut Client,
    config: &NodeFileConfig,
    store: &Arc<super::ChunkStore>,
    joined: &mut bool,
) -> anyhow::Result<()> {
    let report = measure(store).await?;
    if !*joined {
        let join = Command::JoinNode(pb::JoinNode {
            address: config.address.clone(),
            endpoint: config.endpoint.clone(),
            capacity_bytes: report.total_bytes,
            labels: config
                .labels
                .iter()
                .map(|(key, value)| pb::Label {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        });
        match client.submit(join).await {
            Ok(_) => tracing::info!(node = %config.address, "joined the member"),
            Err(ClientError::Refused {
                code: tonic::Code::AlreadyExists,
                ..
            }) => {}
            Err(error) => return Err(error).context("joining the member"),
        }
        *joined = true;
    }
    let answer = client
        .heartbeat(api::HeartbeatRequest {
            address: config.address.clone(),
            free_bytes: report.free_bytes,
            load_milli: report.load_milli,
            chunk_count: report.chunk_count,
            started_at_unix_ms: process_started_unix_ms(),
            sent_at_unix_ms: super::unix_ms_now(),
            failed_data_dirs: report.failed_data_dirs,
        })
        .await
        .context("sending a heartbeat")?;
    if !answer.joined {
        // The member forgot the node (removed it): join again at the next interval.
        *joined = false;
    }
    Ok(())
}

/// Parses `key=value` labels.
pub fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => bail!("label {pair:?} is not key=value"),
        })
        .collect()
}

/// When this process first asked (its heartbeats' restart marker).
fn process_started_unix_ms() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(super::unix_ms_now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_as_key_value() {
        let labels = parse_labels(&["disk=ssd".into(), "room=attic=2".into()]).expect("valid labels");
        assert_eq!(labels["disk"], "ssd");
        assert_eq!(labels["room"], "attic=2");
        assert!(parse_labels(&["nokey".into()]).is_err());
        assert!(parse_labels(&["=v".into()]).is_err());
    }

    #[test]
    fn scrub_settings_default_when_absent_and_are_read_when_present() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = "address = \"node-01@alice.home.collective\"\n\
                    member_domain = \"alice.home.collective\"\n\
                    federation_domain = \"home.collective\"\n\
                    listen = \"127.0.0.1:7000\"\n\
                    endpoint = \"127.0.0.1:7000\"\n\
                    data_dirs = [\"/srv/chunks\"]\n\
                    coordinators = [\"127.0.0.1:7100\"]\n";
        std::fs::write(dir.path().join(CONFIG_FILE), base).expect("write");
        let config = NodeFileConfig::load(dir.path()).expect("load");
        // The test environment may set the override variables; only then may values differ.
        if std::env::var("COLLECTIVE_NODE_SCRUB_BYTES_PER_SEC").is_err() {
            assert_eq!(config.scrub_bytes_per_sec, 32 * 1024 * 1024);
        }
        if std::env::var("COLLECTIVE_NODE_SCRUB_INTERVAL_MS").is_err() {
            assert_eq!(config.scrub_pass_interval_ms, 3_600_000);
        }
        let with_scrub = format!("{base}scrub_bytes_per_sec = 0\nscrub_pass_interval_ms = 5000\n");
        std::fs::write(dir.path().join(CONFIG_FILE), with_scrub).expect("write");
        let config = NodeFileConfig::load(dir.path()).expect("load");
        if std::env::var("COLLECTIVE_NODE_SCRUB_BYTES_PER_SEC").is_err() {
            assert_eq!(
                config.node_config().scrub.bytes_per_sec,
                0,
                "0 disables scrubbing"
            );
        }
        if std::env::var("COLLECTIVE_NODE_SCRUB_INTERVAL_MS").is_err() {
            assert_eq!(
                config.node_config().scrub.pass_interval,
                Duration::from_millis(5000)
            );
        }
    }

    #[test]
    fn load_average_parses_from_proc_format() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/467 12345\n"), Some(520));
        assert_eq!(parse_loadavg("12.00 1 1"), Some(12_000));
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(parse_loadavg("-1 0 0"), None);
        assert_eq!(parse_loadavg("nan 0 0"), None);
    }
}
