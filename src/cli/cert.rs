//! `cert revoke`: records a revocation in the member's log; listeners refuse the certificate
//! from then on (see `coordinator::revocation`).

use super::args::{CertCommand, CertRevokeArgs};
use crate::client::Client;
use crate::coordinator::revocation::hex;
use crate::pki::PeerIdentity;
use anyhow::{Context, bail};
use collective_events::pb::{self, command_envelope::Command};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use std::path::{Path, PathBuf};

pub async fn run(command: CertCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        CertCommand::Revoke(args) => revoke(args, &home).await,
    }
}

async fn revoke(args: CertRevokeArgs, home: &Path) -> anyhow::Result<()> {
    let (serial, subject) = parse_target(&args.target)?;
    let mut client = Client::from_home(home)?;
    let response = client
        .submit(Command::RevokeCertificate(pb::RevokeCertificate {
            serial: serial.clone(),
            reason: args.reason,
        }))
        .await
        .with_context(|| format!("revoking certificate {}", hex(&serial)))?;
    match subject {
        Some(subject) => outln!(
            "revoked certificate {} of {subject} (log index {})",
            hex(&serial),
            response.log_index
        ),
        None => outln!(
            "revoked certificate {} (log index {})",
            hex(&serial),
            response.log_index
        ),
    }
    Ok(())
}

/// A certificate file's serial and subject, or a hex serial.
fn parse_target(target: &str) -> anyhow::Result<(Vec<u8>, Option<String>)> {
    let path = Path::new(target);
    if path.is_file() {
        let der = CertificateDer::from_pem_file(path)
            .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        let identity = PeerIdentity::from_der(&der)
            .with_context(|| format!("{} is not a leaf certificate of a federation", path.display()))?;
        return Ok((identity.serial, Some(identity.address.to_string())));
    }
    Ok((parse_serial(target)?, None))
}

/// Parses a hex serial, with or without `:` separators.
fn parse_serial(text: &str) -> anyhow::Result<Vec<u8>> {
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit())
    {
        bail!("{text:?} is neither a certificate file nor a serial in hex (an even number of hex digits)");
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).context("hex digit"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_parse_with_or_without_colons() {
        assert_eq!(parse_serial("0a:ff:10").expect("valid"), vec![0x0a, 0xff, 0x10]);
        assert_eq!(parse_serial("0AFF10").expect("valid"), vec![0x0a, 0xff, 0x10]);
        assert!(parse_serial("abc").is_err());
        assert!(parse_serial("zz").is_err());
        assert!(parse_serial("").is_err());
    }
}
