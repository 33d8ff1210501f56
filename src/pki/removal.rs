//! Member removals: a statement, signed with the federation root key, that a member is out of
//! the federation. Listeners then refuse every certificate issued under its member domain.
//!
//! A removal is self-authenticating (only the root key signs one, every process holds the root
//! certificate), so it may travel through anyone: the CLI hands it to one coordinator, which
//! passes it to the coordinators of its own and other members and to its storage nodes.

use collective_proto::api::MemberRemoval;
use prost::Message;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls::pki_types::CertificateDer;

use super::{CaIdentity, CertBundle, PkiError, validate_domain};

/// Prefix of the signed bytes, so a removal signature can never be mistaken for another
/// signature made with the root key (certificates, in DER, never start with it).
const REMOVAL_CONTEXT: &[u8] = b"collective member removal v1\0";

/// Longest reason kept with a removal, in bytes.
pub const REMOVAL_REASON_BYTES_MAX: usize = 512;

/// Signs the removal of `member_domain` with the federation root `root` (certificate and key).
pub fn sign_removal(
    root: &CertBundle,
    member_domain: &str,
    reason: &str,
    removed_at_unix_ms: u64,
) -> Result<MemberRemoval, PkiError> {
    let root_cert = root.cert_der()?;
    let identity = CaIdentity::from_der(&root_cert)?;
    if identity.member_domain.is_some() {
        return Err(PkiError::Malformed(
            "a member CA cannot remove members; the federation root signs removals".into(),
        ));
    }
    let member_domain = validate_domain(member_domain)?;
    if !is_member_domain(&member_domain, &identity.federation_domain) {
        return Err(PkiError::Malformed(format!(
            "{member_domain} is not a member domain of federation {}",
            identity.federation_domain
        )));
    }
    if reason.len() > REMOVAL_REASON_BYTES_MAX {
        return Err(PkiError::Malformed(format!(
            "the reason is {} bytes, more than {REMOVAL_REASON_BYTES_MAX}",
            reason.len()
        )));
    }
    let key_der = root.private_key_der()?;
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(key_der.secret_der())
        .map_err(|_| PkiError::Malformed("the root key is not an Ed25519 key".into()))?;
    if key.public_key().as_ref() != root_public_key(&root_cert)?.as_slice() {
        return Err(PkiError::Malformed(
            "the root key does not belong to the root certificate".into(),
        ));
    }
    let mut removal = MemberRemoval {
        federation_domain: identity.federation_domain,
        member_domain,
        removed_at_unix_ms,
        reason: reason.to_string(),
        signature: Vec::new(),
    };
    removal.signature = key.sign(&signed_bytes(&removal)).as_ref().to_vec();
    Ok(removal)
}

/// Checks that `removal` was signed by the federation root `root_der` and names a member of
/// its federation.
pub fn verify_removal(root_der: &CertificateDer<'_>, removal: &MemberRemoval) -> Result<(), PkiError> {
    let root = CaIdentity::from_der(root_der)?;
    if removal.federation_domain != root.federation_domain {
        return Err(PkiError::Malformed(format!(
            "the removal of {} is for federation {}, not {}",
            removal.member_domain, removal.federation_domain, root.federation_domain
        )));
    }
    if removal.reason.len() > REMOVAL_REASON_BYTES_MAX {
        return Err(PkiError::Malformed("the removal's reason is too long".into()));
    }
    if !is_member_domain(&removal.member_domain, &root.federation_domain) {
        return Err(PkiError::Malformed(format!(
            "{:?} is not a member domain of federation {}",
            removal.member_domain, root.federation_domain
        )));
    }
    UnparsedPublicKey::new(&ED25519, root_public_key(root_der)?)
        .verify(&signed_bytes(removal), &removal.signature)
        .map_err(|_| {
            PkiError::Malformed(format!(
                "the removal of {} is not signed by the federation root",
                removal.member_domain
            ))
        })
}

/// `domain` is `<label>.<federation>`: one label below the federation domain.
fn is_member_domain(domain: &str, federation: &str) -> bool {
    domain
        .strip_suffix(federation)
        .and_then(|head| head.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

fn signed_bytes(removal: &MemberRemoval) -> Vec<u8> {
    let unsigned = MemberRemoval {
        signature: Vec::new(),
        ..removal.clone()
    };
    let mut bytes = REMOVAL_CONTEXT.to_vec();
    bytes.extend(unsigned.encode_to_vec());
    bytes
}

fn root_public_key(root_der: &CertificateDer<'_>) -> Result<Vec<u8>, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(root_der).map_err(PkiError::malformed)?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::FederationCa;

    fn root() -> FederationCa {
        FederationCa::init("home.collective").expect("root")
    }

    #[test]
    fn a_removal_signed_by_the_root_verifies() {
        let root = root();
        let removal = sign_removal(&root.bundle(), "bob.home.collective", "left", 1).expect("signed");
        verify_removal(root.cert_der(), &removal).expect("verifies");
    }

    #[test]
    fn altered_or_foreign_removals_are_refused() {
        let root = root();
        let removal = sign_removal(&root.bundle(), "bob.home.collective", "", 1).expect("signed");
        let mut altered = removal.clone();
        altered.member_domain = "carol.home.collective".into();
        let error = verify_removal(root.cert_der(), &altered).expect_err("altered");
        assert!(
            error.to_string().contains("not signed by the federation root"),
            "{error}"
        );

        let other = FederationCa::init("home.collective").expect("another root, same domain");
        let error = verify_removal(other.cert_der(), &removal).expect_err("other root");
        assert!(error.to_string().contains("not signed"), "{error}");

        let elsewhere = FederationCa::init("work.collective").expect("other federation");
        let error = verify_removal(elsewhere.cert_der(), &removal).expect_err("other federation");
        assert!(
            error.to_string().contains("for federation home.collective"),
            "{error}"
        );
    }

    #[test]
    fn only_member_domains_of_the_federation_can_be_removed() {
        let root = root();
        for domain in [
            "home.collective",
            "bob.work.collective",
            "x.bob.home.collective",
            "not a domain",
        ] {
            assert!(sign_removal(&root.bundle(), domain, "", 1).is_err(), "{domain}");
        }
        let member = root.sign_member("bob.home.collective").expect("member ca");
        let error = sign_removal(&member.bundle(), "carol.home.collective", "", 1).expect_err("member ca");
        assert!(error.to_string().contains("federation root signs"), "{error}");
    }
}
