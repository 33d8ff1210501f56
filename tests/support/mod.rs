//! Test harness: real coordinator and storage-node processes on loopback (or, for partition
//! tests, in network namespaces: `net`), driven through the real binary and the client library,
//! with SIGKILL and restart for fault injection. Every process is killed when the
//! harness is dropped, and its files live in a temporary directory.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod disk;
pub mod net;

use anyhow::{Context, bail};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MEMBER: &str = "alice";
pub const FEDERATION: &str = "home.collective";

/// The `collective` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_collective")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A port `p` such that `p` to `p + count - 1` are all free now, for `collective up`, which binds
/// its coordinator, node and bootstrap listeners at `p`, `p + 1` and `p + 2`. Chosen below the
/// kernel's ephemeral range (32768 and up), where outgoing connections of concurrent tests could
/// otherwise take `p + 1` or `p + 2` between this check and the bind.
pub fn free_port_run(count: u16) -> u16 {
    use rand::Rng;
    let mut rng = rand::rng();
    loop {
        let first: u16 = rng.random_range(10_000..32_000);
        let all_free = (first..first + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return first;
        }
    }
}

pub struct Coordinator {
    pub id: u64,
    pub data_dir: PathBuf,
    pub endpoint: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

/// A member's coordinators as separate processes.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub coordinators: Vec<Coordinator>,
    /// Extra environment for every coordinator and node process (e.g. snapshot thresholds).
    pub env: Vec<(String, String)>,
    pub nodes: Vec<Node>,
    /// The namespaces of a partition test ([`Cluster::in_network`]); none: all on 127.0.0.1.
    pub network: Option<net::Network>,
}

/// A storage node process (`collective node run`).
pub struct Node {
    pub name: String,
    pub data_dir: PathBuf,
    pub endpoint: String,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// The network namespace it runs in, in a partition test.
    pub namespace: Option<String>,
}

/// `binary()`, run in `namespace` when there is one.
fn command_in(namespace: Option<&str>) -> Command {
    match namespace {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace, binary()]);
            command
        }
        None => Command::new(binary()),
    }
}

impl Cluster {
    /// A member with one coordinator, initialized and serving.
    pub fn single() -> anyhow::Result<Cluster> {
        Self::single_with_env(Vec::new())
    }

    pub fn single_with_env(env: Vec<(String, String)>) -> anyhow::Result<Cluster> {
        Self::create(env, None)
    }

    /// A member with one coordinator, whose coordinators, nodes and CLI each run in network
    /// namespaces of their own ([`net::Network`]), so that links between them can be cut.
    /// Moves the calling thread into the CLI's namespace; needs root.
    pub fn in_network(env: Vec<(String, String)>) -> anyhow::Result<Cluster> {
        Self::create(env, Some(net::Network::new()?))
    }

    fn create(env: Vec<(String, String)>, network: Option<net::Network>) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let home = dir.path().join("home");
        let mut cluster = Cluster {
            dir,
            home,
            coordinators: Vec::new(),
            env,
            nodes: Vec::new(),
            network,
        };
        let data_dir = cluster.dir.path().join("coord-1");
        let endpoint = cluster.coordinator_endpoint(1)?;
        cluster.cli_ok(&[
            "coordinator",
            "init",
            "--data-dir",
            path(&data_dir),
            "--member",
            MEMBER,
            "--federation",
            FEDERATION,
            "--listen",
            &endpoint,
            "--id",
            "1",
        ])?;
        cluster.coordinators.push(Coordinator {
            id: 1,
            data_dir,
            endpoint,
            child: None,
            log: PathBuf::new(),
        });
        cluster.start(1)?;
        cluster.wait_for_leader(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// A member with `n` voting coordinators.
    pub fn with_voters(n: u64) -> anyhow::Result<Cluster> {
        Self::with_voters_env(n, Vec::new())
    }

    pub fn with_voters_env(n: u64, env: Vec<(String, String)>) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster::single_with_env(env)?;
        for id in 2..=n {
            cluster.add_coordinator(id, true)?;
        }
        Ok(cluster)
    }

    /// Prepares, starts and adds coordinator `id`.
    pub fn add_coordinator(&mut self, id: u64, voter: bool) -> anyhow::Result<()> {
        let data_dir = self.dir.path().join(format!("coord-{id}"));
        let endpoint = self.coordinator_endpoint(id)?;
        self.cli_ok(&[
            "coordinator",
            "prepare",
            "--data-dir",
            path(&data_dir),
            "--id",
            &id.to_string(),
            "--listen",
            &endpoint,
        ])?;
        self.coordinators.push(Coordinator {
            id,
            data_dir,
            endpoint: endpoint.clone(),
            child: None,
            log: PathBuf::new(),
        });
        self.start(id)?;
        let mut args = vec![
            "coordinator".to_string(),
            "add".into(),
            "--id".into(),
            id.to_string(),
            "--endpoint".into(),
            endpoint,
        ];
        if !voter {
            args.push("--learner".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli_ok(&args)?;
        Ok(())
    }

    /// Where coordinator `id` is to listen (in a namespace of its own in a partition test).
    fn coordinator_endpoint(&mut self, id: u64) -> anyhow::Result<String> {
        let host = match self.network.as_mut() {
            Some(network) => {
                network.coordinator(id)?;
                net::Network::coordinator_address(id)
            }
            None => "127.0.0.1".to_owned(),
        };
        Ok(format!("{host}:{}", free_port()))
    }

    /// The cluster's namespaces; only for a cluster made with [`Cluster::in_network`].
    pub fn network(&self) -> &net::Network {
        self.network
            .as_ref()
            .expect("a cluster made with Cluster::in_network")
    }

    pub fn coordinator(&self, id: u64) -> &Coordinator {
        self.coordinators
            .iter()
            .find(|c| c.id == id)
            .expect("known coordinator id")
    }

    fn coordinator_mut(&mut self, id: u64) -> &mut Coordinator {
        self.coordinators
            .iter_mut()
            .find(|c| c.id == id)
            .expect("known coordinator id")
    }

    /// Starts (or restarts) coordinator `id` from its data directory and waits for its port.
    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        self.start_with(id, &[])
    }

    /// [`Cluster::start`] with `extra` set in the coordinator's environment only (e.g. to run
    /// it under libfaketime).
    pub fn start_with(&mut self, id: u64, extra: &[(String, String)]) -> anyhow::Result<()> {
        let mut env = self.env.clone();
        env.extend(extra.iter().cloned());
        let base = self.dir.path().to_path_buf();
        let namespace = match self.network.as_mut() {
            Some(network) => Some(network.coordinator(id)?),
            None => None,
        };
        let coordinator = self.coordinator_mut(id);
        let log = base.join(format!("coord-{id}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = command_in(namespace.as_deref())
            .args(["coordinator", "run", "--data-dir", path(&coordinator.data_dir)])
            .envs(env)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("spawning a coordinator")?;
        coordinator.child = Some(child);
        coordinator.log = log;
        let endpoint = coordinator.endpoint.clone();
        wait_for_port(&endpoint, Duration::from_secs(20))
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.coordinator_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn kill_all(&mut self) {
        let ids: Vec<u64> = self.coordinators.iter().map(|c| c.id).collect();
        for id in ids {
            self.kill(id);
        }
    }

    /// Prepares storage node `name` (`name@<member>`) with the admin profile; `extra` are more
    /// `node prepare` arguments (labels, capacity).
    pub fn prepare_node(&mut self, name: &str, extra: &[&str]) -> anyhow::Result<()> {
        let (namespace, host) = match self.network.as_mut() {
            Some(network) => {
                let (namespace, address) = network.add_node()?;
                (Some(namespace), address)
            }
            None => (None, "127.0.0.1".to_owned()),
        };
        let endpoint = format!("{host}:{}", free_port());
        let data_dir = self.dir.path().join(name);
        let mut args = vec![
            "node",
            "prepare",
            "--data-dir",
            path(&data_dir),
            "--name",
            name,
            "--listen",
            &endpoint,
        ];
        args.extend_from_slice(extra);
        self.cli_ok(&args)?;
        self.nodes.push(Node {
            name: name.to_string(),
            data_dir,
            endpoint,
            child: None,
            log: PathBuf::new(),
            namespace,
        });
        Ok(())
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .expect("known node name")
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("known node name")
    }

    /// Starts (or restarts) node `name` and waits for its chunk listener.
    pub fn start_node(&mut self, name: &str) -> anyhow::Result<()> {
        self.start_node_with(name, &[])
    }

    /// [`Cluster::start_node`] with `extra` set in the node's environment only (e.g. to run it
    /// under libfaketime).
    pub fn start_node_with(&mut self, name: &str, extra: &[(String, String)]) -> anyhow::Result<()> {
        let mut env = self.env.clone();
        env.extend(extra.iter().cloned());
        let log = self.dir.path().join(format!("{name}.log"));
        let node = self.node_mut(name);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = command_in(node.namespace.as_deref())
            .args(["node", "run", "--data-dir", path(&node.data_dir)])
            .envs(env)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("spawning a node")?;
        node.child = Some(child);
        node.log = log;
        let endpoint = node.endpoint.clone();
        wait_for_port(&endpoint, Duration::from_secs(20))
    }

    /// SIGKILL a node.
    pub fn kill_node(&mut self, name: &str) {
        if let Some(mut child) = self.node_mut(name).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Bytes node `name` has sent on the connections open to its chunk listener (TCP's
    /// `bytes_sent`, as `ss` reads it from the kernel). Counts what it served to the clients
    /// connected now; a connection that closed no longer counts.
    pub fn node_bytes_sent(&self, name: &str) -> anyhow::Result<u64> {
        let node = self.node(name);
        let port = node
            .endpoint
            .rsplit_once(':')
            .context("the node's endpoint has a port")?
            .1;
        let filter = format!("sport = :{port}");
        let mut command = match &node.namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace, "ss"]);
                command
            }
            None => Command::new("ss"),
        };
        let output = command
            .args(["-tinH", "state", "established", &filter])
            .output()
            .context("running ss")?;
        anyhow::ensure!(
            output.status.success(),
            "ss: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut sent = 0;
        for field in String::from_utf8_lossy(&output.stdout).split_whitespace() {
            if let Some(bytes) = field.strip_prefix("bytes_sent:") {
                sent += bytes.parse::<u64>().context("bytes_sent is a number")?;
            }
        }
        Ok(sent)
    }

    /// SIGSTOP (`pause = true`) or SIGCONT a node: paused, it keeps its connections open and
    /// answers nothing.
    pub fn pause_node(&mut self, name: &str, pause: bool) -> anyhow::Result<()> {
        let child = self
            .node_mut(name)
            .child
            .as_ref()
            .context("the node is not running")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        let signal = if pause {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        nix::sys::signal::kill(pid, signal)?;
        Ok(())
    }

    /// SIGTERM a node and wait up to `timeout` for it to exit; returns its exit status.
    pub fn terminate_node(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self
            .node_mut(name)
            .child
            .take()
            .context("the node is not running")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {name} did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's entry in `status --json`, if the member knows it.
    pub fn node_json(&self, name: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let address = format!("{name}@{MEMBER}.{FEDERATION}");
        let status = self.status_json()?;
        Ok(status["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["address"] == address.as_str()))
            .cloned())
    }

    /// Waits until `status --json` shows node `name` with `status` ("UP", "DOWN"); returns how
    /// long that took.
    pub fn wait_node_status(&self, name: &str, status: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Ok(Some(node)) = self.node_json(name)
                && node["status"] == status
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                self.dump_logs();
                bail!(
                    "node {name} not {status} within {timeout:?} (last seen: {:?})",
                    self.node_json(name).ok().flatten()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the CLI against this cluster's admin profile.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_home(&self.home, args)
    }

    /// Runs the CLI with `home` as its profile and the cluster's environment (so `init` and
    /// `prepare` see settings such as certificate lifetimes).
    pub fn cli_with_home(&self, home: &Path, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("COLLECTIVE_HOME", home)
            .stdin(Stdio::null())
            .output()
            .expect("run the collective binary")
    }

    pub fn cli_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.cli(args);
        if !output.status.success() {
            bail!(
                "`collective {}` failed ({}): {}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub fn status_json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.cli_ok(&["status", "--json"])?)?)
    }

    /// Waits until some coordinator reports a leader, and returns its raft id.
    pub fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = self.status_json()
                && let Some(leader) = status["leader"].as_u64()
            {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                bail!(
                    "no leader within {timeout:?}; logs in {}",
                    self.dir.path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A profile directory like the admin's but listing only coordinator `id`, to read from one
    /// coordinator in particular.
    pub fn home_for(&self, id: u64) -> anyhow::Result<PathBuf> {
        let dir = self.dir.path().join(format!("home-only-{id}"));
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&self.home)? {
            let entry = entry?;
            std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
        }
        let profile = std::fs::read_to_string(dir.join("profile.toml"))?;
        let mut value: toml::Value = toml::from_str(&profile)?;
        value["coordinators"] =
            toml::Value::Array(vec![toml::Value::String(self.coordinator(id).endpoint.clone())]);
        std::fs::write(dir.join("profile.toml"), toml::to_string(&value)?)?;
        Ok(dir)
    }

    pub fn profile(&self) -> anyhow::Result<collective::profile::Profile> {
        collective::profile::Profile::load(&self.home)
    }

    /// Prints every coordinator's log; call it when a test is about to fail.
    pub fn dump_logs(&self) {
        for n in &self.nodes {
            if let Ok(text) = std::fs::read_to_string(&n.log) {
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                eprintln!("----- node {} (last lines) -----", n.name);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        for c in &self.coordinators {
            if let Ok(text) = std::fs::read_to_string(&c.log) {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("----- coordinator {} (last lines) -----", c.id);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        for name in names {
            self.kill_node(&name);
        }
        self.kill_all();
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

pub fn wait_for_port(endpoint: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(endpoint).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {endpoint} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Kills the `up` process when the test ends, whether it passed or not.
pub struct Up(pub Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `collective up` in `dir` with the admin profile in `home`, ready (a leader and an UP node)
/// when this returns; the process is killed when the value is dropped.
pub fn up(dir: &Path, home: &Path, env: &[(&str, &str)]) -> anyhow::Result<Up> {
    let port = free_port_run(3);
    let log = std::fs::File::create(dir.join("up.log"))?;
    let child = Command::new(binary())
        .args([
            "up",
            "--data-dir",
            path(&dir.join("data")),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("COLLECTIVE_HOME", home)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let child = Up(child);
    wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(20))?;
    wait_for_port(&format!("127.0.0.1:{}", port + 2), Duration::from_secs(20))?;
    wait_ready(home)?;
    Ok(child)
}

/// The CLI with `home` as its profile.
pub fn cli_as(home: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("COLLECTIVE_HOME", home)
        .output()
        .expect("run collective")
}

/// [`cli_as`] that must succeed; its standard output.
pub fn ok_as(home: &Path, args: &[&str]) -> String {
    let out = cli_as(home, args);
    assert!(
        out.status.success(),
        "collective {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_ready(home: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = cli_as(home, &["status", "--json"]);
        if status.status.success() {
            let json: serde_json::Value = serde_json::from_slice(&status.stdout)?;
            let node_up = json["nodes"]
                .as_array()
                .is_some_and(|nodes| nodes.iter().any(|n| n["status"] == "UP"));
            if json["leader"].is_u64() && node_up {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "up did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}
