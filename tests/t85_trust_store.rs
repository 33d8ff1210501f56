//! The seed's task-3 cases for the multi-CA trust store: a federation root plus three member
//! CAs, each member's leaves validated through its own CA, cross-member validation through the
//! root, expired and unknown-CA certificates refused, and CA removal taking effect at once —
//! in the store itself and on a live mutual-TLS listener, without rebuilding its configuration.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use std::time::{Duration, SystemTime};

use collective::pki::{CertBundle, Component, FederationCa, MemberCa};
use collective::tls::{self, Policy, ServerConfigHandle, ServerExpectation, TlsError, TrustStore};
use rustls::pki_types::UnixTime;
use tokio::net::TcpListener;

const FEDERATION: &str = "collective.local";
const MEMBERS: [&str; 3] = ["alice", "bob", "carol"];

struct Federation {
    root: FederationCa,
    members: Vec<MemberCa>,
}

fn federation() -> Federation {
    let root = FederationCa::init(FEDERATION).unwrap();
    let members = MEMBERS
        .iter()
        .map(|m| root.sign_member(&format!("{m}.{FEDERATION}")).unwrap())
        .collect();
    Federation { root, members }
}

fn leaf(ca: &MemberCa, local: &str, component: Component) -> CertBundle {
    ca.issue_leaf(
        &format!("{local}@{}", ca.member_domain()),
        component,
        Duration::from_secs(3600),
    )
    .unwrap()
}

fn store_with_all(fed: &Federation) -> TrustStore {
    let store = TrustStore::new(fed.root.cert_der()).unwrap();
    for ca in &fed.members {
        store.add_member_ca(ca.cert_der()).unwrap();
    }
    store
}

fn now() -> UnixTime {
    UnixTime::now()
}

#[test]
fn loads_the_root_and_three_member_cas() {
    let fed = federation();
    let store = store_with_all(&fed);
    let mut members: Vec<String> = store
        .member_cas()
        .into_iter()
        .filter_map(|ca| ca.member_domain)
        .collect();
    members.sort();
    assert_eq!(
        members,
        vec![
            "alice.collective.local",
            "bob.collective.local",
            "carol.collective.local"
        ]
    );
    assert_eq!(store.federation_domain(), FEDERATION);
    // A member CA is not a root, and a root is not a member CA.
    assert!(TrustStore::new(fed.members[0].cert_der()).is_err());
    assert!(store.add_member_ca(fed.root.cert_der()).is_err());
}

#[test]
fn each_members_leaf_validates_through_its_own_ca_and_the_root() {
    let fed = federation();
    let store = store_with_all(&fed);
    store.require_known_member_cas(true);
    for (ca, member) in fed.members.iter().zip(MEMBERS) {
        let bundle = leaf(ca, "node-01", Component::Node);
        let peer = store
            .validate(&bundle.presented_chain_der().unwrap(), now())
            .unwrap();
        assert_eq!(peer.member_domain, format!("{member}.{FEDERATION}"));
        assert_eq!(peer.component, Component::Node);
    }
}

#[test]
fn cross_member_certificates_validate_through_the_root() {
    // Alice's endpoint knows only alice's CA by name; bob's leaf still chains to the shared
    // root through the intermediate bob presents, as a cross-member call does.
    let fed = federation();
    let alice_only = TrustStore::new(fed.root.cert_der()).unwrap();
    alice_only.add_member_ca(fed.members[0].cert_der()).unwrap();
    let bob = leaf(&fed.members[1], "laptop", Component::Client);
    let peer = alice_only
        .validate(&bob.presented_chain_der().unwrap(), now())
        .unwrap();
    assert_eq!(peer.address.to_string(), "laptop@bob.collective.local");
}

#[test]
fn expired_certificates_are_refused() {
    let fed = federation();
    let store = store_with_all(&fed);
    let bundle = leaf(&fed.members[0], "node-01", Component::Node);
    let chain = bundle.presented_chain_der().unwrap();
    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    let later = UnixTime::since_unix_epoch(later.duration_since(SystemTime::UNIX_EPOCH).unwrap());
    let error = store.validate(&chain, later).unwrap_err();
    assert!(error.to_string().to_lowercase().contains("expired"), "{error}");
    // Still fine now.
    store.validate(&chain, now()).unwrap();
}

#[test]
fn certificates_from_unknown_cas_are_refused() {
    let fed = federation();
    let store = store_with_all(&fed);
    // A CA outside the federation: another root with the same member name.
    let rogue_root = FederationCa::init(FEDERATION).unwrap();
    let rogue_alice = rogue_root.sign_member(&format!("alice.{FEDERATION}")).unwrap();
    let rogue = leaf(&rogue_alice, "node-01", Component::Node);
    let error = store
        .validate(&rogue.presented_chain_der().unwrap(), now())
        .unwrap_err();
    // webpki finds no valid path: the rogue CA's name matches, its signature does not.
    assert!(matches!(error, TlsError::Refused(_)), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("BadSignature") || text.contains("UnknownIssuer"),
        "{text}"
    );
    // A genuine member CA the store was told to know nothing of, in a closed federation.
    let dave = fed.root.sign_member(&format!("dave.{FEDERATION}")).unwrap();
    let dave_leaf = leaf(&dave, "node-01", Component::Node);
    store
        .validate(&dave_leaf.presented_chain_der().unwrap(), now())
        .unwrap();
    store.require_known_member_cas(true);
    let error = store
        .validate(&dave_leaf.presented_chain_der().unwrap(), now())
        .unwrap_err();
    assert!(error.to_string().contains("is not in the trust store"), "{error}");
}

#[test]
fn removing_a_member_ca_refuses_its_leaves_and_only_those() {
    let fed = federation();
    let store = store_with_all(&fed);
    let alice = leaf(&fed.members[0], "node-01", Component::Node);
    let bob = leaf(&fed.members[1], "node-01", Component::Node);
    store
        .validate(&bob.presented_chain_der().unwrap(), now())
        .unwrap();
    assert_eq!(store.remove_member_ca(&format!("bob.{FEDERATION}"), None), 1);
    let error = store
        .validate(&bob.presented_chain_der().unwrap(), now())
        .unwrap_err();
    assert!(error.to_string().contains("has been removed"), "{error}");
    store
        .validate(&alice.presented_chain_der().unwrap(), now())
        .unwrap();
    // Re-admitting the CA (a rotation back, or a mistake undone) takes effect as well.
    store.add_member_ca(fed.members[1].cert_der()).unwrap();
    store
        .validate(&bob.presented_chain_der().unwrap(), now())
        .unwrap();
}

#[test]
fn revoked_serials_are_refused_per_member() {
    let fed = federation();
    let store = store_with_all(&fed);
    let alice = leaf(&fed.members[0], "laptop", Component::Client);
    let alice2 = leaf(&fed.members[0], "phone", Component::Client);
    let serial = alice.identity().unwrap().serial;
    store.revoke(&format!("alice.{FEDERATION}"), &serial);
    let error = store
        .validate(&alice.presented_chain_der().unwrap(), now())
        .unwrap_err();
    assert!(error.to_string().contains("Revoked"), "{error}");
    store
        .validate(&alice2.presented_chain_der().unwrap(), now())
        .unwrap();
    // The same serial under another member's CA is another certificate.
    assert!(store.revoked(&format!("bob.{FEDERATION}")).is_empty());
    // Replacing the list (as the log sync does) lifts nothing that was not lifted in the log.
    assert!(!store.set_revoked(&format!("alice.{FEDERATION}"), [serial.clone()].into()));
    assert!(store.set_revoked(&format!("alice.{FEDERATION}"), Default::default()));
    store
        .validate(&alice.presented_chain_der().unwrap(), now())
        .unwrap();
}

/// A removal on a running listener: the next handshake of bob's client is refused, with no
/// new configuration swapped in.
#[tokio::test]
async fn ca_removal_takes_effect_on_a_running_listener() {
    let fed = federation();
    let store = store_with_all(&fed);
    let server_identity =
        tls::IdentityHandle::new(leaf(&fed.members[0], "coord-1", Component::Coordinator)).unwrap();
    let verifier = tls::FederationClientVerifier::builder(fed.root.cert_der(), Policy::any_component())
        .with_trust_store(store.clone())
        .build()
        .unwrap();
    let config =
        ServerConfigHandle::new(tls::server_config_with_identity(&server_identity, verifier).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let (refusals_tx, mut refusals) = tokio::sync::mpsc::channel(8);
    let incoming = tls::tls_incoming_with(
        listener,
        config,
        tls::IncomingOptions {
            refusals: Some(refusals_tx),
            ..Default::default()
        },
    );
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(tonic_health::server::health_reporter().1)
            .serve_with_incoming(incoming),
    );
    let expect =
        ServerExpectation::address(&format!("coord-1@alice.{FEDERATION}"), Component::Coordinator).unwrap();
    let bob = leaf(&fed.members[1], "laptop", Component::Client);
    let check = |bundle: CertBundle| {
        let (endpoint, expect, root) = (endpoint.clone(), expect.clone(), fed.root.cert_der().clone());
        async move {
            let channel = tls::connect(&endpoint, &bundle, &root, expect).await?;
            tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map_err(|s| anyhow::anyhow!("{s}"))?;
            anyhow::Ok(())
        }
    };
    check(bob.clone()).await.unwrap();
    store.remove_member_ca(&format!("bob.{FEDERATION}"), None);
    assert!(check(bob.clone()).await.is_err(), "bob's ca was removed");
    let refused = tokio::time::timeout(Duration::from_secs(5), refusals.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(refused.reason.contains("has been removed"), "{}", refused.reason);
    // Alice's clients are unaffected.
    check(leaf(&fed.members[0], "laptop", Component::Client))
        .await
        .unwrap();
    server.abort();
}
