//! Access decisions: datastores and the grants on them.

use super::{Context, Rejection, checks};
use crate::address::LocalPart;
use crate::pb::{self, event_envelope::Event};
use crate::view::View;

/// Most replicas a datastore may ask for.
pub const REPLICAS_MAX: u32 = 16;

/// Grant rights, a bit set.
pub const RIGHT_READ: u32 = 1;
pub const RIGHT_WRITE: u32 = 2;
pub const RIGHT_DELETE: u32 = 4;
pub const RIGHT_SHARE: u32 = 8;
/// Every right there is; other bits are reserved for future rights and refused until then.
pub const RIGHTS_ALL: u32 = RIGHT_READ | RIGHT_WRITE | RIGHT_DELETE | RIGHT_SHARE;

/// Whether a grant's subject must be set, or may be left empty to mean "whoever redeems the
/// invite carrying it".
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Required,
    RedeemerIfEmpty,
}

pub fn create_datastore<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::CreateDatastore,
) -> Result<Vec<Event>, Rejection> {
    let path = checks::path(&cmd.path, "datastore path")?;
    let owner = checks::principal(&cmd.owner, &format!("owner of datastore '{path}'"))?.to_string();
    let strategy = checks::known_enum(
        cmd.strategy,
        pb::PlacementStrategy::Unspecified,
        &format!("placement strategy of datastore '{path}'"),
    )?;
    if !(1..=REPLICAS_MAX).contains(&cmd.replicas) {
        return Err(Rejection::invalid(format!(
            "datastore '{path}' asks for {} replicas; allowed are 1 to {REPLICAS_MAX}",
            cmd.replicas
        )));
    }
    if ctx.view.datastore(path.as_str()).is_some() {
        return Err(Rejection::already_exists(format!(
            "datastore '{path}' already exists"
        )));
    }
    Ok(vec![Event::DatastoreCreated(pb::DatastoreCreated {
        path: path.to_string(),
        owner,
        strategy: strategy as i32,
        replicas: cmd.replicas,
    })])
}

pub fn issue_grant<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::IssueGrant,
) -> Result<Vec<Event>, Rejection> {
    checks::exact_len(&cmd.grant_id, checks::ID_BYTES, "grant id")?;
    let Some(spec) = &cmd.grant else {
        return Err(Rejection::invalid(format!(
            "grant {} has no grant spec",
            checks::hex(&cmd.grant_id)
        )));
    };
    let grant = grant_spec(ctx, spec, Subject::Required)?;
    if ctx.view.grant(&cmd.grant_id).is_some() {
        return Err(Rejection::already_exists(format!(
            "grant {} already exists",
            checks::hex(&cmd.grant_id)
        )));
    }
    Ok(vec![Event::GrantIssued(pb::GrantIssued {
        grant_id: cmd.grant_id.clone(),
        grant: Some(grant),
    })])
}

/// A revoked grant leaves the projection, so revoking it again is `NotFound`.
pub fn revoke_grant<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::RevokeGrant,
) -> Result<Vec<Event>, Rejection> {
    checks::exact_len(&cmd.grant_id, checks::ID_BYTES, "grant id")?;
    if ctx.view.grant(&cmd.grant_id).is_none() {
        return Err(Rejection::not_found(format!(
            "no grant {}",
            checks::hex(&cmd.grant_id)
        )));
    }
    Ok(vec![Event::GrantRevoked(pb::GrantRevoked {
        grant_id: cmd.grant_id.clone(),
    })])
}

/// Validates a grant spec against the datastores and returns it in canonical form.
pub fn grant_spec<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    spec: &pb::GrantSpec,
    subject_rule: Subject,
) -> Result<pb::GrantSpec, Rejection> {
    let path = checks::path(&spec.path, "grant path")?;
    let subject = if spec.subject.is_empty() && subject_rule == Subject::RedeemerIfEmpty {
        String::new()
    } else {
        let subject = checks::address(&spec.subject, &format!("subject of grant on '{path}'"))?;
        if matches!(subject.local(), LocalPart::Resource(_)) {
            return Err(Rejection::invalid(format!(
                "subject of grant on '{path}' is the resource {subject}; a subject is a principal or a wildcard"
            )));
        }
        subject.to_string()
    };
    if spec.rights == 0 {
        return Err(Rejection::invalid(format!("grant on '{path}' gives no rights")));
    }
    if spec.rights & !RIGHTS_ALL != 0 {
        return Err(Rejection::invalid(format!(
            "grant on '{path}' has unknown rights bits {:#x} (known: read=1, write=2, delete=4, share=8)",
            spec.rights & !RIGHTS_ALL
        )));
    }
    if let Some(expires) = spec.expires_at_unix_ms
        && expires <= ctx.now_unix_ms
    {
        return Err(Rejection::invalid(format!(
            "grant on '{path}' expires at {expires} ms, not after the proposal time {} ms",
            ctx.now_unix_ms
        )));
    }
    if ctx.view.datastore(path.as_str()).is_none() {
        return Err(Rejection::not_found(format!(
            "no datastore at '{path}' to grant on"
        )));
    }
    Ok(pb::GrantSpec {
        path: path.to_string(),
        subject,
        rights: spec.rights,
        expires_at_unix_ms: spec.expires_at_unix_ms,
    })
}
