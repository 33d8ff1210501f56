//! Certificate decisions: the member's record of the certificates its CA issued and revoked,
//! from which the revocation list is served.

use super::{Context, Rejection, RejectionCode, checks};
use crate::pb::{self, event_envelope::Event};
use crate::view::View;

pub fn issue_certificate<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::IssueCertificate,
) -> Result<Vec<Event>, Rejection> {
    serial(&cmd.serial)?;
    let subject = checks::principal(&cmd.subject, "certificate subject")?.to_string();
    let component = checks::known_enum(
        cmd.component,
        pb::ComponentType::Unspecified,
        &format!("component of certificate for {subject}"),
    )?;
    if cmd.not_after_unix_ms <= ctx.now_unix_ms {
        return Err(Rejection::invalid(format!(
            "certificate for {subject} ends at {} ms, not after the proposal time {} ms",
            cmd.not_after_unix_ms, ctx.now_unix_ms
        )));
    }
    checks::exact_len(
        &cmd.fingerprint,
        checks::FINGERPRINT_BYTES,
        "certificate fingerprint",
    )?;
    if ctx.view.certificate(&cmd.serial).is_some() {
        return Err(Rejection::already_exists(format!(
            "a certificate with serial {} already exists",
            checks::hex(&cmd.serial)
        )));
    }
    Ok(vec![Event::CertificateIssued(pb::CertificateIssued {
        serial: cmd.serial.clone(),
        subject,
        component: component as i32,
        not_after_unix_ms: cmd.not_after_unix_ms,
        fingerprint: cmd.fingerprint.clone(),
    })])
}

pub fn revoke_certificate<V: View + ?Sized>(
    ctx: &Context<'_, V>,
    cmd: &pb::RevokeCertificate,
) -> Result<Vec<Event>, Rejection> {
    serial(&cmd.serial)?;
    checks::text_max(&cmd.reason, checks::REASON_BYTES_MAX, "revocation reason")?;
    let Some(certificate) = ctx.view.certificate(&cmd.serial) else {
        return Err(Rejection::not_found(format!(
            "no certificate with serial {}",
            checks::hex(&cmd.serial)
        )));
    };
    if certificate.revoked {
        return Err(Rejection::new(
            RejectionCode::Revoked,
            format!("certificate {} is already revoked", checks::hex(&cmd.serial)),
        ));
    }
    Ok(vec![Event::CertificateRevoked(pb::CertificateRevoked {
        serial: cmd.serial.clone(),
        reason: cmd.reason.clone(),
    })])
}

fn serial(serial: &[u8]) -> Result<(), Rejection> {
    if serial.is_empty() || serial.len() > checks::SERIAL_BYTES_MAX {
        return Err(Rejection::invalid(format!(
            "certificate serial must be 1 to {} bytes, got {}",
            checks::SERIAL_BYTES_MAX,
            serial.len()
        )));
    }
    Ok(())
}
