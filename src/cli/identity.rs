//! `identity init | show`: the global id a person goes by across the federation, and who the
//! current profile is and what it may do.
//!
//! The global id (`NAME@DOMAIN`, e.g. `bob@garage.collective`) is the person's own choice,
//! recorded in `$COLLECTIVE_HOME/identity.toml`. It is not a credential: what authenticates is
//! the client certificate a member signs (`NAME@<member>`), and `invite redeem` asks for NAME by
//! default so the two line up. Grants name certificate addresses, never global ids.

use super::args::{IdentityCommand, IdentityInitArgs, IdentityShowArgs};
use crate::coordinator::grants::rights_text;
use crate::profile::Profile;
use anyhow::{Context, bail};
use collective_events::FederatedAddress;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const IDENTITY_FILE: &str = "identity.toml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct IdentityFile {
    global_id: String,
}

pub async fn run(command: IdentityCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        IdentityCommand::Init(args) => init(args, &home),
        IdentityCommand::Show(args) => show(args, &home).await,
    }
}

fn init(args: IdentityInitArgs, home: &Path) -> anyhow::Result<()> {
    let address = FederatedAddress::parse(&args.global_id)
        .map_err(|e| anyhow::anyhow!("global id {:?}: {e}", args.global_id))?;
    if !address.is_principal() {
        bail!(
            "global id {:?} must be one person, NAME@DOMAIN (no wildcards or paths)",
            args.global_id
        );
    }
    let global_id = address.to_string();
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let path = home.join(IDENTITY_FILE);
    let tmp = home.join(format!("{IDENTITY_FILE}.tmp"));
    std::fs::write(
        &tmp,
        toml::to_string_pretty(&IdentityFile {
            global_id: global_id.clone(),
        })?,
    )?;
    std::fs::rename(&tmp, &path)?;
    outln!("global id: {global_id} (recorded in {})", path.display());
    match Profile::load(home) {
        Ok(profile) => outln!("certificate address: {}", profile.config.address),
        Err(_) => outln!(
            "no profile yet: `collective invite redeem CODE` will ask the member for the name {:?}",
            address.name().unwrap_or_default()
        ),
    }
    Ok(())
}

/// The global id recorded in `home`, if any.
pub fn global_id(home: &Path) -> anyhow::Result<Option<String>> {
    let path = home.join(IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let file: IdentityFile =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            Ok(Some(file.global_id))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// The NAME of the recorded global id: the default name asked for at redemption.
pub fn global_local_part(home: &Path) -> anyhow::Result<Option<String>> {
    Ok(global_id(home)?.and_then(|id| id.split_once('@').map(|(name, _)| name.to_string())))
}

async fn show(args: IdentityShowArgs, home: &Path) -> anyhow::Result<()> {
    let global = global_id(home)?;
    let profile = Profile::load(home)?;
    let who = super::invite::who_am_i_for(&profile).await?;
    if args.json {
        let json = serde_json::json!({
            "global_id": global,
            "address": who.address,
            "member": who.member_domain,
            "component": who.component,
            "role": who.role,
            "grants": grants_json(&who),
        });
        outln!("{json}");
        return Ok(());
    }
    outln!(
        "global id:  {}",
        global
            .as_deref()
            .unwrap_or("not set (`collective identity init --global-id NAME@DOMAIN`)")
    );
    print_access(&who);
    Ok(())
}

pub fn grants_json(who: &collective_proto::bootstrap::WhoAmIResponse) -> Vec<serde_json::Value> {
    who.grants
        .iter()
        .filter_map(|g| g.grant.as_ref())
        .map(|g| {
            serde_json::json!({
                "path": g.path, "subject": g.subject, "rights": rights_text(g.rights),
                "expires_at_unix_ms": g.expires_at_unix_ms,
            })
        })
        .collect()
}

/// `you are ... (role)` and the grants, as `status` and `identity show` print them.
pub fn print_access(who: &collective_proto::bootstrap::WhoAmIResponse) {
    outln!(
        "you are:    {} ({}, {} certificate)",
        who.address,
        who.role,
        who.component
    );
    match who.role.as_str() {
        "admin" => outln!(
            "you may:    everything in member {} (its admin)",
            who.member_domain
        ),
        "coordinator" | "node" => outln!("you may:    what a {} of the member does", who.role),
        _ if who.grants.is_empty() => outln!("you may:    nothing yet (no grants; ask the member's admin)"),
        _ => {
            for (n, grant) in who.grants.iter().filter_map(|g| g.grant.as_ref()).enumerate() {
                let label = if n == 0 { "you may:" } else { "" };
                let until = grant
                    .expires_at_unix_ms
                    .map(|t| format!(" until {t} (unix ms)"))
                    .unwrap_or_default();
                outln!(
                    "{label:<11} {} under {} (grant to {}){until}",
                    rights_text(grant.rights),
                    grant.path,
                    grant.subject
                );
            }
        }
    }
}
