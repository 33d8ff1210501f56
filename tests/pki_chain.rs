//! The certificate hierarchy: chains verify with the real openssl, validity nests, extensions
//! round-trip, serials are random, bundles survive the disk, and loaded CAs can sign again.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use collective::pki::{
    CaIdentity, CertBundle, Component, FederationCa, MemberCa, PeerIdentity, PkiError, SERIAL_LEN_BYTES,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn openssl_verify(dir: &Path, root: &str, member: &str, leaf: &str, purpose: &str) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "verify",
            "-purpose",
            purpose,
            "-CAfile",
            root,
            "-untrusted",
            member,
            leaf,
        ])
        .output()
        .expect("openssl runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_pem(dir: &Path, file: &str, pem: &str) {
    std::fs::write(dir.join(file), pem).unwrap();
}

#[test]
fn t10_openssl_verifies_root_member_leaf_chain() {
    let dir = tempfile::tempdir().unwrap();
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    let leaf = alice
        .issue_leaf_with_sans(
            "coord-1@alice.home.collective",
            Component::Coordinator,
            30 * DAY,
            &["127.0.0.1"],
        )
        .unwrap();
    write_pem(dir.path(), "root-ca.crt", root.cert_pem());
    write_pem(dir.path(), "member-ca.crt", alice.cert_pem());
    write_pem(dir.path(), "leaf.crt", &leaf.cert_pem);
    for purpose in ["sslserver", "sslclient"] {
        let out = openssl_verify(dir.path(), "root-ca.crt", "member-ca.crt", "leaf.crt", purpose);
        assert_eq!(out.trim(), "leaf.crt: OK", "purpose {purpose}");
    }
    // The leaf's chain is exactly the member CA.
    assert_eq!(leaf.chain, vec![alice.cert_pem().to_owned()]);
}

#[test]
fn t10_openssl_rejects_a_leaf_from_another_federation() {
    let dir = tempfile::tempdir().unwrap();
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    // Same names, different keys: only the keys make a federation.
    let rogue_root = FederationCa::init("home.collective").unwrap();
    let rogue_alice = rogue_root.sign_member("alice.home.collective").unwrap();
    let rogue_leaf = rogue_alice
        .issue_leaf("x@alice.home.collective", Component::Node, DAY)
        .unwrap();
    write_pem(dir.path(), "root-ca.crt", root.cert_pem());
    write_pem(dir.path(), "member-ca.crt", alice.cert_pem());
    write_pem(dir.path(), "leaf.crt", &rogue_leaf.cert_pem);
    let out = openssl_verify(
        dir.path(),
        "root-ca.crt",
        "member-ca.crt",
        "leaf.crt",
        "sslclient",
    );
    assert!(
        !out.contains("leaf.crt: OK"),
        "openssl accepted a foreign leaf: {out}"
    );
}

#[test]
fn t10_validity_nests_root_member_leaf() {
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    let root_id = CaIdentity::from_der(root.cert_der()).unwrap();
    let alice_id = CaIdentity::from_der(alice.cert_der()).unwrap();
    assert!(root_id.not_before <= alice_id.not_before);
    assert!(alice_id.not_after <= root_id.not_after);
    let five_years = Duration::from_secs(5 * 365 * 24 * 3600);
    let root_life = root_id.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        root_life > five_years - DAY && root_life <= five_years,
        "{root_life:?}"
    );

    // A leaf asking for more than its CA has left is cut short to end with the CA.
    let leaf = alice
        .issue_leaf("n@alice.home.collective", Component::Node, 100 * 365 * DAY)
        .unwrap();
    let leaf_id = leaf.identity().unwrap();
    assert!(alice_id.not_before <= leaf_id.not_before);
    assert_eq!(leaf_id.not_after, alice_id.not_after);

    // A short one keeps its own length.
    let short = alice
        .issue_leaf("n@alice.home.collective", Component::Node, DAY)
        .unwrap();
    let short_id = short.identity().unwrap();
    assert!(short_id.not_after < alice_id.not_after);
    let left = short_id.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(left > DAY - Duration::from_secs(60) && left <= DAY, "{left:?}");

    // A member CA asked to outlive the root is cut short too.
    let long = root
        .sign_member_for("bob.home.collective", 50 * 365 * DAY)
        .unwrap();
    assert_eq!(
        CaIdentity::from_der(long.cert_der()).unwrap().not_after,
        root_id.not_after
    );
}

#[test]
fn t10_extensions_round_trip_through_peer_identity() {
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    let leaf = alice
        .issue_leaf("Coord_1@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    let id = PeerIdentity::from_der(&leaf.cert_der().unwrap()).unwrap();
    assert_eq!(id.federation_domain, "home.collective");
    assert_eq!(id.member_domain, "alice.home.collective");
    assert_eq!(id.component, Component::Coordinator);
    // The certificate carries the canonical (lowercase) form of the requested address.
    assert_eq!(id.address.to_string(), "coord_1@alice.home.collective");
    assert_eq!(id.dns_names, vec!["coord-1.alice.home.collective".to_owned()]);
    assert_eq!(id.serial.len(), SERIAL_LEN_BYTES);

    let ca = CaIdentity::from_der(alice.cert_der()).unwrap();
    assert_eq!(ca.federation_domain, "home.collective");
    assert_eq!(ca.member_domain.as_deref(), Some("alice.home.collective"));
    let root_id = CaIdentity::from_der(root.cert_der()).unwrap();
    assert_eq!(root_id.member_domain, None);

    // A CA certificate is not a peer identity.
    assert!(PeerIdentity::from_der(alice.cert_der()).is_err());
}

#[test]
fn t10_serials_are_random_distinct_and_positive() {
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    let mut serials = HashSet::new();
    serials.insert(CaIdentity::from_der(root.cert_der()).unwrap().serial);
    serials.insert(CaIdentity::from_der(alice.cert_der()).unwrap().serial);
    for _ in 0..32 {
        // Same address, component and CA every time: only randomness tells them apart.
        let leaf = alice
            .issue_leaf("n@alice.home.collective", Component::Node, DAY)
            .unwrap();
        let serial = leaf.identity().unwrap().serial;
        assert_eq!(serial.len(), SERIAL_LEN_BYTES);
        assert_eq!(serial[0] & 0x80, 0, "serial must be a positive integer");
        assert!(serials.insert(serial), "serial repeated");
    }
}

#[test]
fn t10_names_outside_the_hierarchy_are_refused() {
    let root = FederationCa::init("home.collective").unwrap();
    assert!(matches!(
        root.sign_member("alice.other.collective"),
        Err(PkiError::MemberOutsideFederation { .. })
    ));
    assert!(matches!(
        root.sign_member("home.collective"),
        Err(PkiError::MemberOutsideFederation { .. })
    ));
    assert!(matches!(
        root.sign_member("malicehome.collective"),
        Err(PkiError::MemberOutsideFederation { .. })
    ));
    let alice = root.sign_member("alice.home.collective").unwrap();
    assert!(matches!(
        alice.issue_leaf("n@bob.home.collective", Component::Node, DAY),
        Err(PkiError::AddressOutsideMember { .. })
    ));
    assert!(matches!(
        alice.issue_leaf_with_sans("n@alice.home.collective", Component::Node, DAY, &["localhost"]),
        Err(PkiError::SanOutsideMember { .. })
    ));
    let ok = alice
        .issue_leaf_with_sans(
            "n@alice.home.collective",
            Component::Node,
            DAY,
            &["api.alice.home.collective", "::1"],
        )
        .unwrap();
    assert_eq!(
        ok.identity().unwrap().dns_names,
        vec![
            "n.alice.home.collective".to_owned(),
            "api.alice.home.collective".to_owned()
        ]
    );
    assert!(matches!(
        alice.issue_leaf("!!!@alice.home.collective", Component::Node, DAY),
        Err(PkiError::InvalidAddress { .. })
    ));
}

#[test]
fn t10_bundles_round_trip_through_a_directory_with_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    let leaf = alice
        .issue_leaf("c@alice.home.collective", Component::Client, DAY)
        .unwrap();
    leaf.write_to(dir.path(), "client").unwrap();
    alice.bundle().write_to(dir.path(), "member-ca").unwrap();
    root.bundle().write_to(dir.path(), "root-ca").unwrap();

    let mode = std::fs::metadata(dir.path().join("client.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(dir.path().join("client.crt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    let back = CertBundle::read_from(dir.path(), "client").unwrap();
    assert_eq!(back, leaf);
    let ca_back = CertBundle::read_from(dir.path(), "member-ca").unwrap();
    assert!(ca_back.chain.is_empty());

    // Overwriting keeps the mode and the content is the new one.
    let leaf2 = alice
        .issue_leaf("c@alice.home.collective", Component::Client, DAY)
        .unwrap();
    leaf2.write_to(dir.path(), "client").unwrap();
    assert_eq!(CertBundle::read_from(dir.path(), "client").unwrap(), leaf2);

    assert!(leaf.write_to(dir.path(), "../escape").is_err());
    assert!(CertBundle::read_from(dir.path(), "missing").is_err());
}

#[test]
fn t10_loaded_cas_sign_leaves_that_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    root.bundle().write_to(dir.path(), "root-ca").unwrap();
    alice.bundle().write_to(dir.path(), "member-ca").unwrap();

    let root_bundle = CertBundle::read_from(dir.path(), "root-ca").unwrap();
    let root2 = FederationCa::load(&root_bundle.cert_pem, &root_bundle.key_pem).unwrap();
    assert_eq!(root2.domain(), "home.collective");
    let bob = root2.sign_member("bob.home.collective").unwrap();

    let alice_bundle = CertBundle::read_from(dir.path(), "member-ca").unwrap();
    let alice2 = MemberCa::load(&alice_bundle.cert_pem, &alice_bundle.key_pem).unwrap();
    assert_eq!(alice2.member_domain(), "alice.home.collective");
    assert_eq!(alice2.federation_domain(), "home.collective");
    let leaf = alice2
        .issue_leaf("node-1@alice.home.collective", Component::Node, DAY)
        .unwrap();
    let bob_leaf = bob
        .issue_leaf("laptop@bob.home.collective", Component::Client, DAY)
        .unwrap();

    write_pem(dir.path(), "leaf.crt", &leaf.cert_pem);
    write_pem(dir.path(), "bob-ca.crt", bob.cert_pem());
    write_pem(dir.path(), "bob-leaf.crt", &bob_leaf.cert_pem);
    let out = openssl_verify(
        dir.path(),
        "root-ca.crt",
        "member-ca.crt",
        "leaf.crt",
        "sslclient",
    );
    assert_eq!(out.trim(), "leaf.crt: OK");
    let out = openssl_verify(
        dir.path(),
        "root-ca.crt",
        "bob-ca.crt",
        "bob-leaf.crt",
        "sslclient",
    );
    assert_eq!(out.trim(), "bob-leaf.crt: OK");

    // A key that is not the certificate's is refused.
    assert!(matches!(
        MemberCa::load(&alice_bundle.cert_pem, &root_bundle.key_pem),
        Err(PkiError::KeyMismatch)
    ));
    // A member CA is not a root, and a leaf is not a CA.
    assert!(FederationCa::load(&alice_bundle.cert_pem, &alice_bundle.key_pem).is_err());
    assert!(MemberCa::load(&leaf.cert_pem, &leaf.key_pem).is_err());
}
