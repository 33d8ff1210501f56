//! `invite generate | list | revoke | redeem` and `federation join`: onboarding by invite code.

use super::args::{
    FederationJoinArgs, InviteCommand, InviteGenerateArgs, InviteListArgs, InviteRedeemArgs, InviteRevokeArgs,
};
use crate::bootstrap::client::{RedeemError, redeem};
use crate::bootstrap::code::{InviteCodeBody, code_hash, fingerprint};
use crate::bootstrap::server::hex;
use crate::bootstrap::sign;
use crate::client::{self, Client};
use crate::coordinator::config::PeerMember;
use crate::coordinator::grants::{parse_rights, rights_text};
use crate::pki::{CertBundle, MemberCa};
use crate::profile::{Profile, ProfileConfig};
use anyhow::{Context, bail};
use collective_events::pb::{self, command_envelope::Command};
use collective_proto::bootstrap::{
    InviteInfo, ListInvitesRequest, WhoAmIRequest, WhoAmIResponse, access_client::AccessClient,
};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tonic::transport::Channel;

/// Shortest invite id prefix `invite revoke` accepts, in hex digits.
const ID_PREFIX_CHARS_MIN: usize = 8;

pub async fn run(command: InviteCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        InviteCommand::Generate(args) => generate(args, &home).await,
        InviteCommand::List(args) => list(args, &home).await,
        InviteCommand::Revoke(args) => revoke(args, &home).await,
        InviteCommand::Redeem(args) => redeem_user(args, &home).await,
    }
}

async fn generate(args: InviteGenerateArgs, home: &Path) -> anyhow::Result<()> {
    let grants = args
        .grants
        .iter()
        .map(|g| parse_grant(g))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let validity_ms = parse_duration_ms(&args.validity)?;
    let profile = Profile::load(home)?;
    let mut access = access_client(&profile).await?;
    let endpoints = if args.bootstrap.is_empty() {
        who_am_i(&mut access).await?.bootstrap_endpoints
    } else {
        args.bootstrap.clone()
    };
    if endpoints.is_empty() {
        bail!(
            "the coordinator serves no bootstrap endpoint: set bootstrap_listen in its coordinator.toml \
             (or COLLECTIVE_BOOTSTRAP_LISTEN), or name one with --bootstrap HOST:PORT"
        );
    }
    let root = crate::transport::root_der(&profile.root_ca_pem)?;
    let body = InviteCodeBody::generate(
        endpoints.clone(),
        fingerprint(&root),
        &profile.config.member_domain,
        args.member.is_some(),
    );
    let mut client = Client::new(profile.clone());
    for grant in &grants {
        ensure_datastore(&mut client, &profile.config.address, &grant.path).await?;
    }
    let invite_id: [u8; 16] = rand::random();
    let expires_at_unix_ms = crate::coordinator::now_unix_ms().saturating_add(validity_ms);
    client
        .submit(Command::IssueInvite(pb::IssueInvite {
            invite_id: invite_id.to_vec(),
            code_hash: body.code_hash().to_vec(),
            kind: if args.member.is_some() {
                pb::InviteKind::Member
            } else {
                pb::InviteKind::User
            } as i32,
            grants: grants.clone(),
            max_uses: args.max_uses,
            expires_at_unix_ms,
            member: args.member.clone().unwrap_or_default(),
        }))
        .await
        .context("issuing the invite")?;
    let code = body.encode_code();
    if args.json {
        let json = serde_json::json!({
            "code": code,
            "invite_id": hex(&invite_id),
            "kind": if args.member.is_some() { "member" } else { "user" },
            "member": args.member,
            "grants": grants.iter().map(grant_text).collect::<Vec<_>>(),
            "max_uses": args.max_uses,
            "expires_at_unix_ms": expires_at_unix_ms,
            "bootstrap_endpoints": endpoints,
        });
        outln!("{json}");
        return Ok(());
    }
    outln!("{code}");
    errln!(
        "invite {} ({}): {} use(s), valid for {}, grants {}",
        hex(&invite_id),
        match &args.member {
            Some(member) => format!("member invite for {member}"),
            None => "user invite".to_string(),
        },
        args.max_uses,
        args.validity,
        if grants.is_empty() {
            "none".to_string()
        } else {
            grants.iter().map(grant_text).collect::<Vec<_>>().join(", ")
        }
    );
    errln!(
        "redeem on the new machine with: collective {} {code}",
        if args.member.is_some() {
            "federation join --member NAME --invite"
        } else {
            "invite redeem"
        }
    );
    Ok(())
}

/// Grants are on datastores; a datastore missing at a granted path is created (owned by the
/// admin) so that `invite generate --grant /shared:...` works on a fresh member.
async fn ensure_datastore(client: &mut Client, owner: &str, path: &str) -> anyhow::Result<()> {
    let created = client
        .submit(Command::CreateDatastore(pb::CreateDatastore {
            path: path.to_string(),
            owner: owner.to_string(),
            strategy: pb::PlacementStrategy::Hybrid as i32,
            replicas: 1,
        }))
        .await;
    match created {
        Ok(_) => {
            errln!("created datastore {path} (owner {owner})");
            Ok(())
        }
        Err(error) if error.rejection() == Some("already_exists") => Ok(()),
        Err(error) => Err(anyhow::Error::new(error).context(format!("creating the datastore {path}"))),
    }
}

async fn list(args: InviteListArgs, home: &Path) -> anyhow::Result<()> {
    let profile = Profile::load(home)?;
    let invites = list_invites(&profile).await?;
    let now = crate::coordinator::now_unix_ms();
    if args.json {
        let rows: Vec<_> = invites
            .iter()
            .map(|i| {
                serde_json::json!({
                    "invite_id": hex(&i.invite_id), "kind": kind_text(i.kind), "member": i.member,
                    "grants": i.grants.iter().map(grant_text).collect::<Vec<_>>(),
                    "uses": i.uses, "max_uses": i.max_uses, "expires_at_unix_ms": i.expires_at_unix_ms,
                    "state": state(i, now), "issued_by": i.issued_by, "issued_at_unix_ms": i.issued_at_unix_ms,
                })
            })
            .collect();
        outln!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if invites.is_empty() {
        outln!("no invites (make one with `collective invite generate --grant PATH:RIGHTS`)");
        return Ok(());
    }
    outln!(
        "{:<32}  {:<6}  {:<9}  {:<9}  {:<20}  grants",
        "id",
        "kind",
        "state",
        "uses",
        "expires (unix ms)"
    );
    for i in &invites {
        outln!(
            "{:<32}  {:<6}  {:<9}  {:<9}  {:<20}  {}",
            hex(&i.invite_id),
            kind_text(i.kind),
            state(i, now),
            format!("{}/{}", i.uses, i.max_uses),
            i.expires_at_unix_ms,
            i.grants.iter().map(grant_text).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

async fn revoke(args: InviteRevokeArgs, home: &Path) -> anyhow::Result<()> {
    let profile = Profile::load(home)?;
    let invites = list_invites(&profile).await?;
    let wanted = args.code_or_id.trim();
    let invite = if wanted
        .to_ascii_lowercase()
        .starts_with(crate::bootstrap::CODE_PREFIX)
    {
        let body = InviteCodeBody::decode_code(wanted)?;
        let hash = code_hash(&body.secret);
        invites
            .iter()
            .find(|i| i.code_hash == hash)
            .context("no invite of this member has this code")?
    } else {
        let prefix = wanted.to_ascii_lowercase();
        if prefix.len() < ID_PREFIX_CHARS_MIN || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!(
                "{wanted:?} is neither an invite code (coll1-...) nor an invite id (at least {ID_PREFIX_CHARS_MIN} hex digits)"
            );
        }
        let matching: Vec<&InviteInfo> = invites
            .iter()
            .filter(|i| hex(&i.invite_id).starts_with(&prefix))
            .collect();
        match matching.as_slice() {
            [one] => *one,
            [] => bail!("no invite has an id starting with {prefix}"),
            _ => bail!(
                "{} invites have ids starting with {prefix}; give more digits",
                matching.len()
            ),
        }
    };
    let mut client = Client::new(profile);
    client
        .submit(Command::RevokeInvite(pb::RevokeInvite {
            invite_id: invite.invite_id.clone(),
        }))
        .await
        .context("revoking the invite")?;
    outln!("revoked invite {}", hex(&invite.invite_id));
    Ok(())
}

async fn redeem_user(args: InviteRedeemArgs, home: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    refuse_existing_profile(home)?;
    let body = InviteCodeBody::decode_code(&args.code)?;
    if body.member_invite {
        bail!(
            "this is a member invite; redeem it with `collective federation join --invite CODE --member NAME`"
        );
    }
    let name = match args.name {
        Some(name) => name,
        None => super::identity::global_local_part(home)?.unwrap_or_default(),
    };
    let (key, csr) = sign::new_csr()?;
    let response = redeem(&body, csr, &name, None).await.map_err(redeem_error)?;
    let bundle = CertBundle {
        cert_pem: response.certificate_pem.clone(),
        key_pem: key.serialize_pem(),
        chain: response.chain_pem.clone(),
    };
    check_root(&body, &response.root_ca_pem)?;
    crate::transport::verify_own_identity(&bundle, &response.root_ca_pem)?;
    let config = ProfileConfig {
        address: response.address.clone(),
        member_domain: response.member_domain.clone(),
        federation_domain: response.federation_domain.clone(),
        coordinators: response.coordinators.clone(),
    };
    Profile::write(home, &config, &bundle, &response.root_ca_pem, None)?;
    outln!(
        "you are {} in member {}",
        response.address,
        response.member_domain
    );
    if response.grants.is_empty() {
        outln!("  grants: none yet (ask the member's admin)");
    }
    for grant in &response.grants {
        outln!("  may {} under {}", rights_text(grant.rights), grant.path);
    }
    outln!("  profile written to {}", home.display());
    outln!("  certificate serial {}", hex(&response.certificate_serial));
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "invite redeemed"
    );
    Ok(())
}

pub async fn federation_join(args: FederationJoinArgs, home: PathBuf) -> anyhow::Result<()> {
    refuse_existing_profile(&home)?;
    if args.data_dir.join("coordinator.toml").exists() {
        bail!("{} already holds a coordinator", args.data_dir.display());
    }
    let body = InviteCodeBody::decode_code(&args.invite)?;
    if !body.member_invite {
        bail!("this is a user invite; redeem it with `collective invite redeem CODE`");
    }
    let (key, csr) = sign::new_csr()?;
    let response = redeem(&body, csr, &args.member, None)
        .await
        .map_err(redeem_error)?;
    check_root(&body, &response.root_ca_pem)?;
    let member_ca = MemberCa::load(&response.certificate_pem, &key.serialize_pem())
        .context("the member CA the inviting member signed does not match this key")?;
    let mut config = crate::coordinator::bootstrap::init_first_with_member_ca(
        &args.data_dir,
        &home,
        &member_ca,
        &response.root_ca_pem,
        args.listen,
        1,
    )?;
    // The inviting member is the first the new one exchanges revocations with; the others are
    // learned from it (`coordinator::federation`).
    config.federation_peers = vec![PeerMember {
        member_domain: response.member_domain.clone(),
        coordinators: response.coordinators.clone(),
    }];
    config.save(&args.data_dir)?;
    outln!(
        "joined federation {} as member {} (member CA signed through {})",
        response.federation_domain,
        response.address,
        response.member_domain
    );
    outln!("  first coordinator prepared in {}", args.data_dir.display());
    outln!("  admin profile in {}", home.display());
    outln!(
        "start it with: collective coordinator run --data-dir {}",
        args.data_dir.display()
    );
    tracing::info!(member = %config.member_domain, "member joined");
    Ok(())
}

/// The server already proved a chain to the pinned root; the root it sends for the profile must
/// be that same certificate.
fn check_root(body: &InviteCodeBody, root_pem: &str) -> anyhow::Result<()> {
    let root = crate::transport::root_der(root_pem)?;
    if fingerprint(&root).as_slice() != body.root_fingerprint.as_slice() {
        bail!("the server sent a root certificate other than the one the invite names; refusing it");
    }
    Ok(())
}

fn refuse_existing_profile(home: &Path) -> anyhow::Result<()> {
    if home.join("profile.toml").exists() {
        bail!(
            "{} already holds a profile; redeem into a new one (set COLLECTIVE_HOME or --home)",
            home.display()
        );
    }
    Ok(())
}

fn redeem_error(error: RedeemError) -> anyhow::Error {
    match error.code() {
        Some(tonic::Code::ResourceExhausted) => {
            anyhow::anyhow!(
                "rate limited by the inviting member: {}",
                match &error {
                    RedeemError::Refused(status) => status.message().to_string(),
                    other => other.to_string(),
                }
            )
        }
        _ => anyhow::Error::new(error).context("redeeming the invite"),
    }
}

async fn access_client(profile: &Profile) -> anyhow::Result<AccessClient<Channel>> {
    let mut last = None;
    for endpoint in &profile.config.coordinators {
        match crate::transport::connect_coordinator(
            endpoint,
            &profile.identity,
            &profile.root_ca_pem,
            &profile.config.member_domain,
        )
        .await
        {
            Ok(channel) => return Ok(AccessClient::new(channel)),
            Err(error) => last = Some(error.context(format!("connecting to {endpoint}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("the profile lists no coordinators")))
}

pub async fn who_am_i_for(profile: &Profile) -> anyhow::Result<WhoAmIResponse> {
    let mut access = access_client(profile).await?;
    who_am_i(&mut access).await
}

async fn who_am_i(access: &mut AccessClient<Channel>) -> anyhow::Result<WhoAmIResponse> {
    Ok(access
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(client::ClientError::from)?
        .into_inner())
}

async fn list_invites(profile: &Profile) -> anyhow::Result<Vec<InviteInfo>> {
    let mut access = access_client(profile).await?;
    Ok(access
        .list_invites(ListInvitesRequest {})
        .await
        .map_err(client::ClientError::from)?
        .into_inner()
        .invites)
}

/// `/shared:read+write` as a grant for whoever redeems.
fn parse_grant(text: &str) -> anyhow::Result<pb::GrantSpec> {
    let (path, rights) = text
        .rsplit_once(':')
        .with_context(|| format!("grant {text:?} is not PATH:RIGHTS, e.g. \"/shared:read+write\""))?;
    collective_events::path::validate(path).map_err(|e| anyhow::anyhow!("grant path {path:?}: {e}"))?;
    let rights = parse_rights(rights).map_err(|e| anyhow::anyhow!("grant {text:?}: {e}"))?;
    Ok(pb::GrantSpec {
        path: path.to_string(),
        subject: String::new(),
        rights,
        expires_at_unix_ms: None,
    })
}

pub fn grant_text(grant: &pb::GrantSpec) -> String {
    format!("{}:{}", grant.path, rights_text(grant.rights))
}

/// `90s`, `30m`, `24h`, `7d`, `1500ms` in milliseconds.
fn parse_duration_ms(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .with_context(|| format!("validity {text:?} is not a number with a unit (90s, 30m, 24h, 7d)"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("validity {text:?} has unit {unit:?}; use ms, s, m, h or d"),
    };
    if number <= 0 {
        bail!("validity {text:?} must be positive");
    }
    number
        .checked_mul(unit_ms)
        .with_context(|| format!("validity {text:?} is too long"))
}

fn kind_text(kind: i32) -> &'static str {
    match pb::InviteKind::try_from(kind) {
        Ok(pb::InviteKind::Member) => "member",
        _ => "user",
    }
}

fn state(invite: &InviteInfo, now_unix_ms: i64) -> &'static str {
    if invite.revoked {
        "revoked"
    } else if now_unix_ms >= invite.expires_at_unix_ms {
        "expired"
    } else if invite.uses >= invite.max_uses {
        "used up"
    } else {
        "active"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration_ms("24h").unwrap(), 86_400_000);
        assert_eq!(parse_duration_ms("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(parse_duration_ms("1500ms").unwrap(), 1500);
        assert!(parse_duration_ms("24").is_err());
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("h").is_err());
    }

    #[test]
    fn grants_parse_as_path_and_rights() {
        let grant = parse_grant("/shared:read+write").unwrap();
        assert_eq!((grant.path.as_str(), grant.rights), ("/shared", 3));
        assert!(parse_grant("/shared").is_err());
        assert!(parse_grant("shared:read").is_err());
        assert!(parse_grant("/shared:fly").is_err());
    }
}
