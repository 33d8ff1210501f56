//! The client profile: who the caller is and where the member's coordinators listen.
//!
//! A profile is a directory (`$COLLECTIVE_HOME`, default `~/.collective`) holding
//! `profile.toml`, the client certificate chain and key, and the federation root certificate.
//! An admin profile, written by `up` or `coordinator init`, also holds the member CA so that the
//! admin can prepare new coordinators.

use crate::pki::{CertBundle, MemberCa};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const PROFILE_FILE: &str = "profile.toml";
const CLIENT_BUNDLE: &str = "client";
const ROOT_CA_FILE: &str = "root-ca.crt";
const MEMBER_CA_BUNDLE: &str = "member-ca";

/// The default profile directory: `~/.collective`.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".collective")
}

/// `profile.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProfileConfig {
    /// The caller's federated address, e.g. `admin@alice.home.collective`.
    pub address: String,
    pub member_domain: String,
    pub federation_domain: String,
    /// Coordinator endpoints (`host:port`), tried in order; the leader is found from there.
    pub coordinators: Vec<String>,
}

/// A loaded profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub dir: PathBuf,
    pub config: ProfileConfig,
    pub identity: CertBundle,
    pub root_ca_pem: String,
}

impl Profile {
    pub fn load(dir: &Path) -> anyhow::Result<Profile> {
        let path = dir.join(PROFILE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "no client profile at {}: run `collective up` (or `collective invite redeem`), \
                 or point --home / COLLECTIVE_HOME at a profile",
                dir.display()
            ),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let config: ProfileConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if config.coordinators.is_empty() {
            bail!("profile {} lists no coordinators", path.display());
        }
        let identity = CertBundle::read_from(dir, CLIENT_BUNDLE)
            .with_context(|| format!("reading the client certificate in {}", dir.display()))?;
        let root_ca_pem = std::fs::read_to_string(dir.join(ROOT_CA_FILE))
            .with_context(|| format!("reading {}", dir.join(ROOT_CA_FILE).display()))?;
        Ok(Profile {
            dir: dir.to_path_buf(),
            config,
            identity,
            root_ca_pem,
        })
    }

    /// Writes a profile atomically enough for its purpose: files first, `profile.toml` last, so
    /// a profile that has a `profile.toml` is complete.
    /// Replaces the profile's client certificate and key (a renewal), each file atomically.
    pub fn save_identity(&self, identity: &CertBundle) -> anyhow::Result<()> {
        identity
            .write_to(&self.dir, CLIENT_BUNDLE)
            .with_context(|| format!("saving the renewed certificate in {}", self.dir.display()))
    }

    pub fn write(
        dir: &Path,
        config: &ProfileConfig,
        identity: &CertBundle,
        root_ca_pem: &str,
        member_ca: Option<&CertBundle>,
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        identity.write_to(dir, CLIENT_BUNDLE)?;
        std::fs::write(dir.join(ROOT_CA_FILE), root_ca_pem)?;
        if let Some(member_ca) = member_ca {
            member_ca.write_to(dir, MEMBER_CA_BUNDLE)?;
        }
        Self::update_config(dir, config)
    }

    /// Rewrites `profile.toml` only (e.g. to remember a new coordinator endpoint).
    pub fn update_config(dir: &Path, config: &ProfileConfig) -> anyhow::Result<()> {
        let tmp = dir.join(format!("{PROFILE_FILE}.tmp"));
        std::fs::write(&tmp, toml::to_string_pretty(config)?)?;
        std::fs::rename(&tmp, dir.join(PROFILE_FILE))?;
        Ok(())
    }

    /// The member CA of an admin profile, to sign certificates for new coordinators.
    pub fn member_ca(&self) -> anyhow::Result<MemberCa> {
        let bundle = CertBundle::read_from(&self.dir, MEMBER_CA_BUNDLE).with_context(|| {
            format!(
                "profile {} is not an admin profile (it holds no member CA)",
                self.dir.display()
            )
        })?;
        MemberCa::load(&bundle.cert_pem, &bundle.key_pem).context("loading the member CA")
    }
}
