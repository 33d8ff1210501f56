//! Invite decisions: issuing, redeeming and revoking invite codes for users and members.
//!
//! Only the blake3 hash of a code is ever logged; redemption looks the invite up by that hash.

use super::access::{self, Subject};
use super::{Context, Rejection, RejectionCode, checks};
use crate::address::{is_strict_subdomain, parse_label};
use crate::pb::{self, InviteKind, event_envelope::Event};
use crate::view::View;

/// Most uses one invite may allow.
pub const INVITE_USES_MAX: u32 = 1000;
/// Most grants one invite may carry.
pub const GRANTS_PER_INVITE_MAX: usize = 64;

pub fn issue_invite<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::IssueInvite,
) -> Result<Vec<Event>, Rejection> {
    checks::exact_len(&cmd.invite_id, checks::ID_BYTES, "invite id")?;
    checks::exact_len(&cmd.code_hash, checks::HASH_BYTES, "invite code hash")?;
    let id = checks::hex(&cmd.invite_id);
    let kind = checks::known_enum(cmd.kind, InviteKind::Unspecified, &format!("kind of invite {id}"))?;
    if !(1..=INVITE_USES_MAX).contains(&cmd.max_uses) {
        return Err(Rejection::invalid(format!(
            "invite {id} allows {} uses; allowed are 1 to {INVITE_USES_MAX}",
            cmd.max_uses
        )));
    }
    if cmd.expires_at_unix_ms <= ctx.now_unix_ms {
        return Err(Rejection::invalid(format!(
            "invite {id} expires at {} ms, not after the proposal time {} ms",
            cmd.expires_at_unix_ms, ctx.now_unix_ms
        )));
    }
    if cmd.grants.len() > GRANTS_PER_INVITE_MAX {
        return Err(Rejection::invalid(format!(
            "invite {id} carries {} grants, more than the limit of {GRANTS_PER_INVITE_MAX}",
            cmd.grants.len()
        )));
    }
    let grants = cmd
        .grants
        .iter()
        .map(|spec| access::grant_spec(ctx, spec, Subject::RedeemerIfEmpty))
        .collect::<Result<Vec<_>, _>>()?;
    let member = match (kind, cmd.member.as_str()) {
        (_, "") => String::new(),
        (InviteKind::Member, name) => {
            parse_label(name).map_err(|e| Rejection::invalid(format!("member name of invite {id}: {e}")))?
        }
        (_, name) => {
            return Err(Rejection::invalid(format!(
                "invite {id} is a user invite but names member {name:?}; only member invites name one"
            )));
        }
    };
    if ctx.view.invite(&cmd.invite_id).is_some() {
        return Err(Rejection::already_exists(format!("invite {id} already exists")));
    }
    if ctx.view.invite_by_code_hash(&cmd.code_hash).is_some() {
        return Err(Rejection::already_exists(format!(
            "another invite already has the code of invite {id}"
        )));
    }
    Ok(vec![Event::InviteIssued(pb::InviteIssued {
        invite_id: cmd.invite_id.clone(),
        code_hash: cmd.code_hash.clone(),
        kind: kind as i32,
        grants,
        max_uses: cmd.max_uses,
        expires_at_unix_ms: cmd.expires_at_unix_ms,
        member,
    })])
}

/// Checks run in the order a person would want to hear them: unknown, revoked, expired, used up.
/// A user invite makes a principal of this member, so the redeemer must be in the member's domain;
/// a member invite admits another member of the federation, named by the invite if it names one.
pub fn redeem_invite<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::RedeemInvite,
) -> Result<Vec<Event>, Rejection> {
    checks::exact_len(&cmd.code_hash, checks::HASH_BYTES, "invite code hash")?;
    if cmd.certificate_serial.len() > checks::SERIAL_BYTES_MAX {
        return Err(Rejection::invalid(format!(
            "certificate serial is {} bytes, more than the limit of {}",
            cmd.certificate_serial.len(),
            checks::SERIAL_BYTES_MAX
        )));
    }
    let Some(invite) = ctx.view.invite_by_code_hash(&cmd.code_hash) else {
        return Err(Rejection::not_found("no invite has this code"));
    };
    let issued = &invite.issued;
    let id = checks::hex(&issued.invite_id);
    if invite.revoked {
        return Err(Rejection::new(
            RejectionCode::Revoked,
            format!("invite {id} has been revoked"),
        ));
    }
    if ctx.now_unix_ms >= issued.expires_at_unix_ms {
        return Err(Rejection::new(
            RejectionCode::Expired,
            format!("invite {id} expired at {} ms", issued.expires_at_unix_ms),
        ));
    }
    if invite.uses >= issued.max_uses {
        return Err(Rejection::new(
            RejectionCode::Exhausted,
            format!(
                "invite {id} has been used {} of {} times",
                invite.uses, issued.max_uses
            ),
        ));
    }
    let redeemer = checks::principal(&cmd.redeemer, &format!("redeemer of invite {id}"))?;
    let domain = redeemer.exact_domain().unwrap_or_default();
    let member = ctx.member();
    match issued.kind() {
        InviteKind::Member => {
            if !is_strict_subdomain(domain, &member.federation_domain) || domain == member.member_domain {
                return Err(Rejection::invalid(format!(
                    "redeemer {redeemer} of member invite {id} must be in another member of {}",
                    member.federation_domain
                )));
            }
            let expected = format!("{}.{}", issued.member, member.federation_domain);
            if !issued.member.is_empty() && domain != expected {
                return Err(Rejection::invalid(format!(
                    "member invite {id} is for {expected}, not for redeemer {redeemer}"
                )));
            }
        }
        _ => {
            if !redeemer.is_local(&member.member_domain) {
                return Err(Rejection::invalid(format!(
                    "redeemer {redeemer} of user invite {id} must be in this member's domain {}",
                    member.member_domain
                )));
            }
        }
    }
    let uses = invite.uses + 1;
    let mut events = vec![Event::InviteRedeemed(pb::InviteRedeemed {
        invite_id: issued.invite_id.clone(),
        redeemer: redeemer.to_string(),
        certificate_serial: cmd.certificate_serial.clone(),
        uses,
    })];
    // The invite's grants come into force in the same entry as the redemption, so a redeemer
    // never holds a certificate without the rights it was promised, nor the rights without a
    // recorded redemption. A grant left without a subject is for whoever redeems.
    for (index, spec) in issued.grants.iter().enumerate() {
        let grant_id = redeemed_grant_id(&issued.invite_id, uses, index);
        if ctx.view.grant(&grant_id).is_some() {
            return Err(Rejection::already_exists(format!(
                "grant {} of invite {id} already exists",
                checks::hex(&grant_id)
            )));
        }
        let subject = if spec.subject.is_empty() {
            redeemer.to_string()
        } else {
            spec.subject.clone()
        };
        events.push(Event::GrantIssued(pb::GrantIssued {
            grant_id,
            grant: Some(pb::GrantSpec {
                subject,
                ..spec.clone()
            }),
        }));
    }
    Ok(events)
}

/// The id of the grant number `index` that redemption number `uses` of an invite issues:
/// derived, not drawn, because `decide` may not use randomness. The first 8 bytes of the
/// (random) invite id keep ids of different invites apart; use and index fill the rest.
fn redeemed_grant_id(invite_id: &[u8], uses: u32, index: usize) -> Vec<u8> {
    let mut id = Vec::with_capacity(checks::ID_BYTES);
    id.extend(invite_id.iter().take(8));
    id.resize(8, 0);
    id.extend_from_slice(&uses.to_be_bytes());
    id.extend_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
    id
}

pub fn revoke_invite<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::RevokeInvite,
) -> Result<Vec<Event>, Rejection> {
    checks::exact_len(&cmd.invite_id, checks::ID_BYTES, "invite id")?;
    let id = checks::hex(&cmd.invite_id);
    let Some(invite) = ctx.view.invite(&cmd.invite_id) else {
        return Err(Rejection::not_found(format!("no invite {id}")));
    };
    if invite.revoked {
        return Err(Rejection::new(
            RejectionCode::Revoked,
            format!("invite {id} is already revoked"),
        ));
    }
    Ok(vec![Event::InviteRevoked(pb::InviteRevoked {
        invite_id: cmd.invite_id.clone(),
    })])
}
