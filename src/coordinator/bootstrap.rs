//! Preparing coordinator data directories: the first coordinator of a new member (which creates
//! the federation root and member CAs, or is given them) and each further one (whose certificate
//! the admin signs with the member CA from the admin profile).

use super::config::{CoordinatorConfig, Layout, coordinator_address};
use crate::pki::{CertBundle, Component, FederationCa, MemberCa};
use crate::profile::{Profile, ProfileConfig};
use crate::transport::coordinators_dns_name;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Leaf certificates live a year unless `rotation::SERVICE_CERT_VALIDITY_ENV` shortens the
/// coordinators' and nodes'; those renew themselves at two thirds of it (`rotation`).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Under `pki/`: certificates this member CA issued outside the log (the admin's, at init),
/// recorded with `IssueCertificate` by the founding coordinator, then deleted.
pub const ISSUED_DIR: &str = "issued";
pub const COORDINATOR_BUNDLE: &str = "coordinator";
pub const ROOT_CA_FILE: &str = "root-ca.crt";
/// The admin's local part in the member domain.
pub const ADMIN_LOCAL: &str = "admin";

/// Material of a new member's first coordinator.
pub struct FirstCoordinator {
    pub config: CoordinatorConfig,
    pub federation: CertBundle,
    pub member_ca: CertBundle,
}

/// Creates the CAs (federation root under `<data_dir>/pki/federation-ca.*`, member CA under
/// `member-ca.*`), the coordinator's certificate and config, and the admin profile in `home`.
pub fn init_first(
    data_dir: &Path,
    home: &Path,
    federation_domain: &str,
    member: &str,
    listen: SocketAddr,
    id: u64,
) -> anyhow::Result<FirstCoordinator> {
    check_fresh(data_dir, id)?;
    let federation = FederationCa::init(federation_domain).context("creating the federation root CA")?;
    init_first_with_root(data_dir, home, &federation, member, listen, id, RootKey::Keep)
}

/// Whether the first coordinator's data directory keeps a copy of the root CA's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKey {
    /// Write `pki/federation-ca.key` (the root was made here and exists nowhere else).
    Keep,
    /// Write only the root certificate: the key stays where the root was loaded from.
    Leave,
}

/// Like [`init_first`] with an existing federation root, which signs the new member CA.
pub fn init_first_with_root(
    data_dir: &Path,
    home: &Path,
    federation: &FederationCa,
    member: &str,
    listen: SocketAddr,
    id: u64,
    root_key: RootKey,
) -> anyhow::Result<FirstCoordinator> {
    check_fresh(data_dir, id)?;
    let layout = Layout::new(data_dir);
    let federation_domain = federation.domain();
    let member_domain = format!("{member}.{federation_domain}");
    let member_ca = federation
        .sign_member(&member_domain)
        .context("creating the member CA")?;
    let pki = layout.pki();
    std::fs::create_dir_all(&pki)?;
    if root_key == RootKey::Keep {
        federation.bundle().write_to(&pki, "federation-ca")?;
    }
    let config = init_first_with_member_ca(data_dir, home, &member_ca, federation.cert_pem(), listen, id)?;
    Ok(FirstCoordinator {
        config,
        federation: federation.bundle(),
        member_ca: member_ca.bundle(),
    })
}

/// The first coordinator of a member whose CA exists already (signed by the root elsewhere,
/// e.g. obtained with a member invite by `federation join`): its data directory, certificate
/// and config, and the admin profile in `home`.
pub fn init_first_with_member_ca(
    data_dir: &Path,
    home: &Path,
    member_ca: &MemberCa,
    root_pem: &str,
    listen: SocketAddr,
    id: u64,
) -> anyhow::Result<CoordinatorConfig> {
    check_fresh(data_dir, id)?;
    let layout = Layout::new(data_dir);
    let federation_domain = member_ca.federation_domain().to_string();
    let member_domain = member_ca.member_domain().to_string();
    let pki = layout.pki();
    std::fs::create_dir_all(&pki)?;
    member_ca.bundle().write_to(&pki, "member-ca")?;
    let config = CoordinatorConfig {
        id,
        address: coordinator_address(id, &member_domain),
        member_domain: member_domain.clone(),
        federation_domain,
        listen,
        endpoint: listen.to_string(),
        bootstrap: true,
        bootstrap_listen: None,
        federation_peers: Vec::new(),
    };
    write_coordinator(&layout, &config, member_ca, root_pem)?;
    let admin = write_admin_profile(home, member_ca, root_pem, std::slice::from_ref(&config.endpoint))?;
    remember_issued(&pki, ADMIN_LOCAL, &admin)?;
    Ok(config)
}

/// Refuses a data directory that already holds a coordinator, and the reserved Raft id 0.
fn check_fresh(data_dir: &Path, id: u64) -> anyhow::Result<()> {
    if Layout::new(data_dir).root.join("coordinator.toml").exists() {
        bail!(
            "{} already holds a coordinator; run it with `collective coordinator run`",
            data_dir.display()
        );
    }
    if id == 0 {
        bail!("raft id 0 is reserved; use 1 for the first coordinator");
    }
    Ok(())
}

/// Prepares another coordinator's data directory with a certificate signed by the admin's
/// member CA. The coordinator joins the group when an admin runs `coordinator add`.
pub fn prepare(
    data_dir: &Path,
    home: &Path,
    id: u64,
    listen: SocketAddr,
) -> anyhow::Result<CoordinatorConfig> {
    let layout = Layout::new(data_dir);
    if layout.root.join("coordinator.toml").exists() {
        bail!("{} already holds a coordinator", data_dir.display());
    }
    if id == 0 {
        bail!("raft id 0 is reserved");
    }
    let profile = Profile::load(home)?;
    let member_ca = profile.member_ca()?;
    let member_domain = member_ca.member_domain().to_string();
    let config = CoordinatorConfig {
        id,
        address: coordinator_address(id, &member_domain),
        member_domain,
        federation_domain: member_ca.federation_domain().to_string(),
        listen,
        endpoint: listen.to_string(),
        bootstrap: false,
        bootstrap_listen: None,
        federation_peers: Vec::new(),
    };
    write_coordinator(&layout, &config, &member_ca, &profile.root_ca_pem)?;
    Ok(config)
}

fn write_coordinator(
    layout: &Layout,
    config: &CoordinatorConfig,
    member_ca: &MemberCa,
    root_pem: &str,
) -> anyhow::Result<()> {
    let pki = layout.pki();
    std::fs::create_dir_all(&pki)?;
    let ip = config.listen.ip().to_string();
    let shared_name = coordinators_dns_name(&config.member_domain);
    let leaf = member_ca
        .issue_leaf_with_sans(
            &config.address,
            Component::Coordinator,
            super::rotation::service_leaf_validity()?,
            &[&ip, &shared_name],
        )
        .context("issuing the coordinator certificate")?;
    leaf.write_to(&pki, COORDINATOR_BUNDLE)?;
    std::fs::write(pki.join(ROOT_CA_FILE), root_pem)?;
    config.save(&layout.root)
}

/// Keeps a copy of a certificate issued outside the log in `<pki>/issued/<name>.crt`, for the
/// founding coordinator to record (so it can be revoked by serial).
pub fn remember_issued(pki: &Path, name: &str, bundle: &CertBundle) -> anyhow::Result<()> {
    let dir = pki.join(ISSUED_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.crt"));
    std::fs::write(&path, &bundle.cert_pem).with_context(|| format!("writing {}", path.display()))
}

/// Writes (or rewrites) the admin profile: a client certificate `admin@<member>` and the member
/// CA, so the admin can prepare coordinators. Returns the admin's certificate.
pub fn write_admin_profile(
    home: &Path,
    member_ca: &MemberCa,
    root_pem: &str,
    coordinators: &[String],
) -> anyhow::Result<CertBundle> {
    let member_domain = member_ca.member_domain().to_string();
    let address = format!("{ADMIN_LOCAL}@{member_domain}");
    let client = member_ca
        .issue_leaf(&address, Component::Client, LEAF_VALIDITY)
        .context("issuing the admin client certificate")?;
    let config = ProfileConfig {
        address,
        member_domain,
        federation_domain: member_ca.federation_domain().to_string(),
        coordinators: coordinators.to_vec(),
    };
    Profile::write(home, &config, &client, root_pem, Some(&member_ca.bundle()))?;
    Ok(client)
}
