//! `up`: a whole single-machine member in one process, on the embedded defaults.

use super::args::UpArgs;
use crate::coordinator::{self, Layout, bootstrap};
use crate::node::daemon::{self, NodePlan};
use crate::pki::{CertBundle, MemberCa};
use crate::profile::Profile;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The name of the storage node `up` runs in its process.
const UP_NODE_NAME: &str = "node-01";

pub async fn run(args: UpArgs, home: PathBuf) -> anyhow::Result<()> {
    let coordinator_dir = args.data_dir.join("coordinator");
    let first_start = !coordinator_dir.join("coordinator.toml").exists();
    if first_start {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
        let first = bootstrap::init_first(
            &coordinator_dir,
            &home,
            &args.federation,
            &args.member,
            args.listen,
            1,
        )?;
        outln!(
            "created member {} of federation {}",
            first.config.member_domain,
            first.config.federation_domain
        );
        outln!(
            "  federation root CA and member CA in {}",
            Layout::new(&coordinator_dir).pki().display()
        );
    } else {
        ensure_admin_profile(&coordinator_dir, &home)?;
    }
    set_bootstrap_listen(&coordinator_dir, args.bootstrap_listen)?;
    let running = coordinator::start(&coordinator_dir, coordinator::run::shutdown_signal()).await?;
    let config = running.coordinator.config.clone();
    let node_dir = args.data_dir.join("node");
    if !node_dir.join("node.toml").exists() {
        prepare_node(&coordinator_dir, &node_dir, &config, args.node_listen)?;
    }
    let node = daemon::launch(&node_dir, coordinator::run::shutdown_signal()).await?;
    outln!(
        "collective is up ({})",
        if first_start {
            "first start"
        } else {
            "restarted from disk"
        }
    );
    outln!(
        "  coordinator {} listening on {} (mutual TLS)",
        config.address,
        config.listen
    );
    outln!(
        "  storage node {} serving chunks on {} (mutual TLS)",
        node.config.address,
        node.node.local_addr
    );
    if let Some(bootstrap) = &running.bootstrap {
        outln!(
            "  bootstrap endpoint on {} (invite redemption only, server-authenticated TLS)",
            bootstrap.local_addr
        );
    }
    outln!("  data in {}", args.data_dir.display());
    outln!(
        "  admin profile in {} (set COLLECTIVE_HOME to use another)",
        home.display()
    );
    outln!("try:");
    outln!("  collective status");
    outln!("  collective mkdir -p /media/movies && collective ls -l /media");
    outln!("  collective audit export");
    outln!("  collective invite generate --grant \"/shared:read+write\" --max-uses 1 --validity 24h");
    outln!("stop with Ctrl-C; start again with the same command: nothing acknowledged is lost");
    let (coordinator, node) = tokio::join!(running.finish(), node.finish());
    coordinator?;
    node
}

/// `up` always serves invites: on the given address, else on the coordinator's port plus two
/// (the node has plus one). Kept in coordinator.toml so a restart uses the same port.
fn set_bootstrap_listen(coordinator_dir: &Path, given: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut config = coordinator::CoordinatorConfig::load(coordinator_dir)?;
    let wanted = match (given, config.bootstrap_listen) {
        (Some(given), _) => given,
        (None, Some(_)) => return Ok(()),
        (None, None) => {
            let port =
                config.listen.port().checked_add(2).with_context(|| {
                    format!("no port two after {}; give --bootstrap-listen", config.listen)
                })?;
            SocketAddr::new(config.listen.ip(), port)
        }
    };
    if config.bootstrap_listen != Some(wanted) {
        config.bootstrap_listen = Some(wanted);
        config.save(coordinator_dir)?;
    }
    Ok(())
}

/// The embedded node's data directory, signed by the member CA kept with the coordinator.
fn prepare_node(
    coordinator_dir: &Path,
    node_dir: &Path,
    config: &coordinator::CoordinatorConfig,
    node_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let listen = match node_listen {
        Some(listen) => listen,
        None => {
            let port = config
                .listen
                .port()
                .checked_add(1)
                .with_context(|| format!("no port after {}; give --node-listen", config.listen))?;
            SocketAddr::new(config.listen.ip(), port)
        }
    };
    let pki = Layout::new(coordinator_dir).pki();
    let member_ca = CertBundle::read_from(&pki, "member-ca")?;
    let member_ca = MemberCa::load(&member_ca.cert_pem, &member_ca.key_pem)?;
    let root_pem = std::fs::read_to_string(pki.join(bootstrap::ROOT_CA_FILE))?;
    let plan = NodePlan {
        name: UP_NODE_NAME.to_string(),
        listen,
        data_dirs: Vec::new(),
        labels: Default::default(),
        capacity_bytes_max: None,
    };
    daemon::prepare_with_ca(
        node_dir,
        &member_ca,
        &root_pem,
        std::slice::from_ref(&config.endpoint),
        &plan,
    )?;
    Ok(())
}

/// On a restart, (re)writes the admin profile if it is missing or belongs to another member.
fn ensure_admin_profile(coordinator_dir: &Path, home: &Path) -> anyhow::Result<()> {
    let config = coordinator::CoordinatorConfig::load(coordinator_dir)?;
    if let Ok(profile) = Profile::load(home)
        && profile.config.member_domain == config.member_domain
    {
        return Ok(());
    }
    let pki = Layout::new(coordinator_dir).pki();
    let member_ca = CertBundle::read_from(&pki, "member-ca")?;
    let member_ca = MemberCa::load(&member_ca.cert_pem, &member_ca.key_pem)?;
    let root_pem = std::fs::read_to_string(pki.join(bootstrap::ROOT_CA_FILE))?;
    let admin = bootstrap::write_admin_profile(
        home,
        &member_ca,
        &root_pem,
        std::slice::from_ref(&config.endpoint),
    )?;
    // The coordinator records it at start, so it can be revoked by serial.
    bootstrap::remember_issued(&pki, bootstrap::ADMIN_LOCAL, &admin)?;
    outln!("wrote the admin profile to {}", home.display());
    Ok(())
}
