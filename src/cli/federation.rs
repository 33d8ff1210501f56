//! `federation ca init | ca sign-member | ca remove-member` and `federation init`: the
//! federation's CAs on disk, and removing a member with the root key.
//!
//! The root CA's key is meant to live offline (a USB stick, a vault); these commands are the
//! only ones that touch it, and they never overwrite an existing CA: losing a root key by a
//! mistyped command would orphan every member of the federation.

use super::args::{
    FederationCaCommand, FederationCaInitArgs, FederationCommand, FederationInitArgs,
    FederationRemoveMemberArgs, FederationSignMemberArgs,
};
use super::output::format_time;
use crate::coordinator::bootstrap;
use crate::pki::FederationCa;
use anyhow::{Context, anyhow, bail};
use collective_events::address::{is_strict_subdomain, parse_domain, parse_label};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Root CA certificate file, distributed to every endpoint as the trust anchor.
pub const ROOT_CA_CERT: &str = "root-ca.crt";
/// Root CA private key file.
pub const ROOT_CA_KEY: &str = "root-ca.key";
/// Member CA certificate file.
pub const MEMBER_CA_CERT: &str = "member-ca.crt";
/// Member CA private key file.
pub const MEMBER_CA_KEY: &str = "member-ca.key";

/// Mode of CA key files: owner read/write only.
const KEY_FILE_MODE: u32 = 0o600;
/// Mode of CA certificate files: public material.
const CERT_FILE_MODE: u32 = 0o644;

/// Raft id of the first coordinator made by `federation init`.
const FIRST_COORDINATOR_ID: u64 = 1;

pub fn run(command: FederationCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        FederationCommand::Ca(FederationCaCommand::Init(args)) => ca_init(args),
        FederationCommand::Ca(FederationCaCommand::SignMember(args)) => sign_member(args),
        FederationCommand::Init(args) => init(args, &home),
        // Async (it dials the inviting member): dispatched to `cli::invite` by `cli::dispatch`.
        FederationCommand::Join(_) => anyhow::bail!("federation join is handled by cli::invite"),
        FederationCommand::Ca(FederationCaCommand::RemoveMember(_)) => {
            anyhow::bail!("federation ca remove-member is handled by cli::federation::remove_member")
        }
    }
}

fn ca_init(args: FederationCaInitArgs) -> anyhow::Result<()> {
    let domain = federation_domain(&args.domain)?;
    refuse_existing(&args.out, &[ROOT_CA_CERT, ROOT_CA_KEY], "a federation root CA")?;
    let root = FederationCa::init(&domain).context("creating the federation root CA")?;
    let bundle = root.bundle();
    write_pair(
        &args.out,
        (ROOT_CA_CERT, &bundle.cert_pem),
        (ROOT_CA_KEY, &bundle.key_pem),
    )?;
    outln!(
        "federation root CA for {domain} written to {}",
        args.out.display()
    );
    outln!("  {ROOT_CA_CERT}: give it to every member (the trust anchor); {ROOT_CA_KEY}: keep it offline");
    outln!(
        "next: collective federation ca sign-member --member NAME --ca-dir {}",
        args.out.display()
    );
    Ok(())
}

fn sign_member(args: FederationSignMemberArgs) -> anyhow::Result<()> {
    let root = load_root(&args.ca_dir)?;
    let member_domain = member_domain(&args.member, root.domain())?;
    refuse_existing(&args.out, &[MEMBER_CA_CERT, MEMBER_CA_KEY], "a member CA")?;
    let member = root
        .sign_member(&member_domain)
        .context("signing the member CA")?;
    let bundle = member.bundle();
    write_pair(
        &args.out,
        (MEMBER_CA_CERT, &bundle.cert_pem),
        (MEMBER_CA_KEY, &bundle.key_pem),
    )?;
    outln!(
        "member CA for {} (federation {}) written to {}",
        member.member_domain(),
        member.federation_domain(),
        args.out.display()
    );
    outln!(
        "  valid from {} to {} UTC",
        format_system_time(member.not_before()),
        format_system_time(member.not_after())
    );
    Ok(())
}

/// `federation ca remove-member`: signs the removal, then publishes it through the profile's
/// member (any of its coordinators; the others and other members get it by exchange).
pub async fn remove_member(args: FederationRemoveMemberArgs, home: &Path) -> anyhow::Result<()> {
    let root = load_root_bundle(&args.ca_dir)?;
    let root_identity = crate::pki::CaIdentity::from_der(&root.cert_der()?)?;
    let member_domain = member_domain(&args.member, &root_identity.federation_domain)?;
    let profile = crate::profile::Profile::load(home)?;
    if profile.root_ca_pem.trim() != root.cert_pem.trim() {
        bail!(
            "the root CA in {} is not the root of this profile's federation ({})",
            args.ca_dir.display(),
            profile.config.federation_domain
        );
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let removal = crate::pki::sign_removal(&root, &member_domain, &args.reason, now.as_millis() as u64)
        .context("signing the removal")?;
    let mut failures = Vec::new();
    for endpoint in &profile.config.coordinators {
        let published = async {
            let channel = crate::transport::connect_coordinator(
                endpoint,
                &profile.identity,
                &profile.root_ca_pem,
                &profile.config.member_domain,
            )
            .await?;
            let answer = collective_proto::api::federation_client::FederationClient::new(channel)
                .publish_removal(removal.clone())
                .await
                .map_err(|status| anyhow!("{}", status.message()))?;
            anyhow::Ok(answer.into_inner().new)
        };
        match published.await {
            Ok(new) => {
                outln!(
                    "member {member_domain} removed from federation {}{}",
                    root_identity.federation_domain,
                    if new { "" } else { " (it already was)" }
                );
                outln!(
                    "  published through {endpoint}; every member's coordinators and storage nodes refuse its \
                     certificates within seconds"
                );
                return Ok(());
            }
            Err(error) => failures.push(format!("{endpoint}: {error:#}")),
        }
    }
    bail!(
        "the removal is signed but no coordinator of {} took it: {}",
        profile.config.member_domain,
        failures.join("; ")
    )
}

/// The root CA with its key from `dir`: `root-ca.*` (`federation ca init`) or `federation-ca.*`
/// (a founding coordinator's `pki/`).
fn load_root_bundle(dir: &Path) -> anyhow::Result<crate::pki::CertBundle> {
    // A coordinator's pki/ holds root-ca.crt (its trust anchor) but keeps the key as federation-ca.
    if dir.join(ROOT_CA_KEY).exists() || !dir.join("federation-ca.crt").exists() {
        return Ok(load_root(dir)?.bundle());
    }
    crate::pki::CertBundle::read_from(dir, "federation-ca").map_err(|error| {
        anyhow!(
            "no federation root CA with its key in {} (neither {ROOT_CA_CERT} nor federation-ca.crt): {error}",
            dir.display()
        )
    })
}

fn init(args: FederationInitArgs, home: &Path) -> anyhow::Result<()> {
    let member =
        parse_label(&args.member).map_err(|e| anyhow!("invalid member name {:?}: {e}", args.member))?;
    let first = match &args.ca_dir {
        Some(ca_dir) => {
            let root = load_root(ca_dir)?;
            if let Some(domain) = &args.domain
                && federation_domain(domain)? != root.domain()
            {
                bail!(
                    "--domain {domain:?} differs from the federation domain {:?} of the root CA in {}",
                    root.domain(),
                    ca_dir.display()
                );
            }
            bootstrap::init_first_with_root(
                &args.data_dir,
                home,
                &root,
                &member,
                args.listen,
                FIRST_COORDINATOR_ID,
                bootstrap::RootKey::Leave,
            )?
        }
        None => {
            let Some(domain) = &args.domain else {
                bail!("give the federation domain with --domain, or an existing root CA with --ca-dir");
            };
            bootstrap::init_first(
                &args.data_dir,
                home,
                &federation_domain(domain)?,
                &member,
                args.listen,
                FIRST_COORDINATOR_ID,
            )?
        }
    };
    let domain = &first.config.federation_domain;
    let c = &first.config;
    outln!(
        "federation {domain}: member CA for {} signed by the root CA",
        c.member_domain
    );
    outln!(
        "prepared coordinator {} ({}) in {}, listening on {}",
        c.id,
        c.address,
        args.data_dir.display(),
        c.listen
    );
    outln!("admin profile written to {}", home.display());
    outln!(
        "next: collective coordinator run --data-dir {}",
        args.data_dir.display()
    );
    Ok(())
}

/// The canonical federation domain, or an error naming what is wrong with it.
fn federation_domain(domain: &str) -> anyhow::Result<String> {
    parse_domain(domain).map_err(|e| anyhow!("invalid federation domain {domain:?}: {e}"))
}

/// `bob` becomes `bob.<federation>`; a full domain must lie strictly below the federation.
fn member_domain(member: &str, federation: &str) -> anyhow::Result<String> {
    if member.contains('.') {
        let domain = parse_domain(member).map_err(|e| anyhow!("invalid member domain {member:?}: {e}"))?;
        if !is_strict_subdomain(&domain, federation) {
            bail!("member domain {domain:?} is not below the federation domain {federation:?}");
        }
        return Ok(domain);
    }
    let label = parse_label(member).map_err(|e| anyhow!("invalid member name {member:?}: {e}"))?;
    Ok(format!("{label}.{federation}"))
}

/// Loads the root CA from `dir`, with an error that says how to make one when it is missing.
fn load_root(dir: &Path) -> anyhow::Result<FederationCa> {
    let cert_path = dir.join(ROOT_CA_CERT);
    let key_path = dir.join(ROOT_CA_KEY);
    for path in [&cert_path, &key_path] {
        if !path.exists() {
            bail!(
                "no federation root CA in {}: {} is missing (create one with `collective federation ca init`)",
                dir.display(),
                path.display()
            );
        }
    }
    let cert = fs::read_to_string(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key = fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    FederationCa::load(&cert, &key).with_context(|| format!("loading the root CA from {}", dir.display()))
}

/// Refuses when any of `files` already exists in `dir`: a CA is never overwritten.
fn refuse_existing(dir: &Path, files: &[&str], what: &str) -> anyhow::Result<()> {
    for file in files {
        let path = dir.join(file);
        if path.exists() {
            bail!(
                "{} already holds {what} ({} exists); refusing to overwrite it",
                dir.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Writes a certificate and its key into `dir` (created if missing), each file created new so
/// a race with another writer fails instead of overwriting. On failure neither file is left.
fn write_pair(dir: &Path, cert: (&str, &str), key: (&str, &str)) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert_path = dir.join(cert.0);
    let key_path = dir.join(key.0);
    write_new(&key_path, key.1, KEY_FILE_MODE)?;
    if let Err(error) = write_new(&cert_path, cert.1, CERT_FILE_MODE) {
        let _ = fs::remove_file(&key_path);
        return Err(error);
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have narrowed the mode; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn format_system_time(time: SystemTime) -> String {
    let unix_ms = time
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    format_time(unix_ms)
}
