//! Network namespaces for partition tests, so that links between real processes can be cut.
//!
//! The test's own thread moves into a fresh namespace, which holds a bridge at
//! [`Network::CLIENT`]: the CLI runs there (and the test's own probes). Each coordinator gets a
//! namespace of its own ([`Network::coordinator_address`]: 10.88.0.101 for id 1), and so does
//! each node (10.88.0.11 and up), each joined to the bridge by a veth pair. Cutting a link drops
//! every packet between one namespace and one address, both ways, with nftables inside that
//! namespace; nothing outside the test's namespaces is touched. The named namespaces are
//! deleted on drop (after the cluster's processes are killed), the test's own when the test
//! process ends.

use anyhow::{Context, bail};
use std::process::Command;

/// The namespaces of one test, and the links cut between them.
pub struct Network {
    /// Prefix of the named namespaces: unique to this test process.
    tag: String,
    namespaces: Vec<String>,
    nodes: usize,
}

impl Network {
    /// Where the CLI (and the test) connect from.
    pub const CLIENT: &str = "10.88.0.2";

    /// Where coordinator `id` listens.
    pub fn coordinator_address(id: u64) -> String {
        format!("10.88.0.{}", 100 + id)
    }

    /// Moves the calling thread (and every process it spawns from now on) into a new network
    /// namespace with a bridge. Needs root.
    pub fn new() -> anyhow::Result<Network> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .context("a network namespace for the test (run the tests as root)")?;
        ip(&["link", "set", "lo", "up"])?;
        ip(&["link", "add", "br0", "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", Network::CLIENT), "dev", "br0"])?;
        ip(&["link", "set", "br0", "up"])?;
        Ok(Network {
            tag: format!("ct{}", std::process::id()),
            namespaces: Vec::new(),
            nodes: 0,
        })
    }

    /// The namespace of coordinator `id`, made on first use; its address is
    /// [`Network::coordinator_address`].
    pub fn coordinator(&mut self, id: u64) -> anyhow::Result<String> {
        let namespace = self.coordinator_namespace(id);
        if !self.namespaces.contains(&namespace) {
            self.add(&format!("coord{id}"), &Network::coordinator_address(id))?;
        }
        Ok(namespace)
    }

    /// The name of coordinator `id`'s namespace (made by [`Network::coordinator`]).
    pub fn coordinator_namespace(&self, id: u64) -> String {
        self.name(&format!("coord{id}"))
    }

    /// A namespace and an address for the next node.
    pub fn add_node(&mut self) -> anyhow::Result<(String, String)> {
        self.nodes += 1;
        let address = format!("10.88.0.{}", 10 + self.nodes);
        let namespace = self.add(&format!("node{}", self.nodes), &address)?;
        Ok((namespace, address))
    }

    fn name(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    /// A namespace joined to the bridge, with `address`.
    fn add(&mut self, role: &str, address: &str) -> anyhow::Result<String> {
        let namespace = self.name(role);
        let veth = format!("v{}", self.namespaces.len());
        ip(&["netns", "add", &namespace])?;
        self.namespaces.push(namespace.clone());
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &namespace,
        ])?;
        ip(&["link", "set", &veth, "master", "br0", "up"])?;
        ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
        Ok(namespace)
    }

    /// Drops every packet between `namespace` and `peer` (an address), both ways, from now until
    /// [`Network::heal`]: established connections go silent, new ones never get an answer.
    pub fn cut(&self, namespace: &str, peer: &str) -> anyhow::Result<()> {
        let rules = format!(
            "table inet {table} {{
                chain input {{ type filter hook input priority 0; policy accept; ip saddr {peer} drop; }}
                chain output {{ type filter hook output priority 0; policy accept; ip daddr {peer} drop; }}
            }}",
            table = table(peer)
        );
        run(
            Command::new("ip")
                .args(["netns", "exec", namespace, "nft", "-f", "-"])
                .stdin(std::process::Stdio::piped()),
            Some(&rules),
        )
    }

    /// Limits what `namespace` sends to `rate` (tc's notation, e.g. "24mbit") with a token
    /// bucket on its link: a node behind a slow link. Lasts as long as the namespace.
    pub fn shape(&self, namespace: &str, rate: &str) -> anyhow::Result<()> {
        run(
            Command::new("ip").args([
                "netns", "exec", namespace, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate,
                "burst", "32kb", "latency", "2s",
            ]),
            None,
        )
    }

    /// Undoes [`Network::cut`].
    pub fn heal(&self, namespace: &str, peer: &str) -> anyhow::Result<()> {
        run(
            Command::new("ip").args([
                "netns",
                "exec",
                namespace,
                "nft",
                "delete",
                "table",
                "inet",
                &table(peer),
            ]),
            None,
        )
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            let _ = ip(&["netns", "delete", namespace]);
        }
    }
}

/// The nftables table holding the cut to `peer`.
fn table(peer: &str) -> String {
    format!("cut_{}", peer.replace('.', "_"))
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args), None)
}

fn run(command: &mut Command, input: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {command:?} (scripts/setup.sh installs iproute2 and nftables)"))?;
    if let Some(input) = input {
        child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
