//! Mutual TLS over loopback with real certificates and a real tonic server (grpc health):
//! who gets in, who is refused and why, and that the server keeps serving throughout.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use collective::pki::{CertBundle, Component, FederationCa, MemberCa, PeerIdentity, RevokedSerial};
use collective::tls::{
    self, FederationClientVerifier, FederationServerVerifier, HandshakeRefused, IncomingOptions, Policy,
    ServerConfigHandle, ServerExpectation,
};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const DAY: Duration = Duration::from_secs(24 * 3600);
/// How long a test waits for a refusal to be reported before failing.
const REFUSAL_WAIT: Duration = Duration::from_secs(15);

struct Federation {
    root: FederationCa,
    alice: MemberCa,
    bob: MemberCa,
}

impl Federation {
    fn new() -> Federation {
        let root = FederationCa::init("home.collective").unwrap();
        let alice = root.sign_member("alice.home.collective").unwrap();
        let bob = root.sign_member("bob.home.collective").unwrap();
        Federation { root, alice, bob }
    }

    fn root_der(&self) -> CertificateDer<'static> {
        self.root.cert_der().clone()
    }
}

struct TestServer {
    addr: SocketAddr,
    refusals: mpsc::Receiver<HandshakeRefused>,
    callers: Arc<Mutex<Vec<PeerIdentity>>>,
    config: ServerConfigHandle,
    expect: ServerExpectation,
}

impl TestServer {
    /// Waits for a refused handshake whose reason contains `needle` and returns that reason.
    ///
    /// A failed channel may redial, so one refused client can cause several refusals; earlier
    /// ones for other reasons are skipped, but the wait fails if `needle` never shows up.
    async fn expect_refusal(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + REFUSAL_WAIT;
        let mut seen = Vec::new();
        loop {
            let next = tokio::time::timeout_at(deadline, self.refusals.recv()).await;
            let Ok(Some(refused)) = next else {
                panic!("no refusal containing {needle:?} within {REFUSAL_WAIT:?}; saw {seen:?}");
            };
            if refused.reason.contains(needle) {
                return refused.reason;
            }
            seen.push(refused.reason);
        }
    }
}

/// Starts a health server for coordinator `coord-1@alice` under `policy`.
async fn start_server(fed: &Federation, policy: Policy, options: IncomingOptions) -> TestServer {
    let identity = fed
        .alice
        .issue_leaf("coord-1@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    let config = ServerConfigHandle::new(tls::server_config(&identity, &fed.root_der(), policy).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, refusals) = mpsc::channel(64);
    let incoming = tls::tls_incoming_with(
        listener,
        config.clone(),
        IncomingOptions {
            refusals: Some(tx),
            ..options
        },
    );
    let callers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&callers);
    // The interceptor is where a handler would learn who calls: the verified leaf's identity.
    let interceptor = move |req: tonic::Request<()>| {
        let who = tls::peer_identity(&req)?;
        seen.lock().unwrap().push(who);
        Ok(req)
    };
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .add_service(InterceptedService::new(health, interceptor))
            .serve_with_incoming(incoming),
    );
    let expect = ServerExpectation::address("coord-1@alice.home.collective", Component::Coordinator).unwrap();
    TestServer {
        addr,
        refusals,
        callers,
        config,
        expect,
    }
}

async fn health_check(channel: Channel) -> Result<i32, tonic::Status> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(reply.into_inner().status)
}

/// Connects with `identity` and runs one health check; `Err` carries the whole error chain.
async fn call_as(
    server: &TestServer,
    identity: &CertBundle,
    root: &CertificateDer<'_>,
) -> Result<i32, String> {
    let endpoint = server.addr.to_string();
    let channel = tls::connect(&endpoint, identity, root, server.expect.clone())
        .await
        .map_err(|e| error_chain(&e))?;
    health_check(channel).await.map_err(|e| error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

const SERVING: i32 = 1;

async fn assert_good_client_served(server: &TestServer, fed: &Federation) {
    let good = fed
        .alice
        .issue_leaf("laptop@alice.home.collective", Component::Client, DAY)
        .unwrap();
    assert_eq!(call_as(server, &good, &fed.root_der()).await, Ok(SERVING));
    let last = server
        .callers
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a caller was seen");
    assert_eq!(last.address.to_string(), "laptop@alice.home.collective");
    assert_eq!(last.component, Component::Client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_good_client_is_served_and_identified() {
    let fed = Federation::new();
    let server = start_server(&fed, Policy::any_component(), IncomingOptions::default()).await;
    let node = fed
        .bob
        .issue_leaf("node-01@bob.home.collective", Component::Node, DAY)
        .unwrap();
    assert_eq!(call_as(&server, &node, &fed.root_der()).await, Ok(SERVING));
    let seen = server.callers.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].address.to_string(), "node-01@bob.home.collective");
    assert_eq!(seen[0].member_domain, "bob.home.collective");
    assert_eq!(seen[0].component, Component::Node);
    assert_eq!(seen[0], node.identity().unwrap());
    // The lazy channel works the same.
    let lazy = tls::connect_lazy(
        &server.addr.to_string(),
        &node,
        &fed.root_der(),
        server.expect.clone(),
        tls::CONNECT_TIMEOUT,
    )
    .unwrap();
    assert_eq!(health_check(lazy).await.unwrap(), SERVING);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_client_from_another_federation_is_refused() {
    let fed = Federation::new();
    let mut server = start_server(&fed, Policy::any_component(), IncomingOptions::default()).await;
    // Same domain names, different root key.
    let other = Federation::new();
    let rogue = other
        .alice
        .issue_leaf("coord-9@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    // The rogue trusts our root so that it gets as far as presenting its certificate.
    let result = call_as(&server, &rogue, &fed.root_der()).await;
    assert!(result.is_err(), "{result:?}");
    // webpki builds a path through our root (same subject name), whose signature fails.
    server.expect_refusal("BadSignature").await;

    // A federation with other names altogether: no path to any trust anchor.
    let stranger_root = FederationCa::init("elsewhere.collective").unwrap();
    let stranger_ca = stranger_root.sign_member("eve.elsewhere.collective").unwrap();
    let stranger = stranger_ca
        .issue_leaf("eve@eve.elsewhere.collective", Component::Client, DAY)
        .unwrap();
    let result = call_as(&server, &stranger, &fed.root_der()).await;
    assert!(result.is_err(), "{result:?}");
    server.expect_refusal("UnknownIssuer").await;
    assert_good_client_served(&server, &fed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_plaintext_http2_is_refused() {
    let fed = Federation::new();
    let mut server = start_server(&fed, Policy::any_component(), IncomingOptions::default()).await;
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr)).unwrap();
    let result = match plain.connect().await {
        Ok(channel) => health_check(channel).await.map_err(|e| error_chain(&e)),
        Err(e) => Err(error_chain(&e)),
    };
    assert!(result.is_err(), "{result:?}");
    server.expect_refusal("corrupt message").await;
    assert!(server.callers.lock().unwrap().is_empty());
    assert_good_client_served(&server, &fed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_client_without_certificate_is_refused() {
    let fed = Federation::new();
    let mut server = start_server(&fed, Policy::any_component(), IncomingOptions::default()).await;
    let verifier = FederationServerVerifier::builder(&fed.root_der(), server.expect.clone())
        .build()
        .unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(server.expect.server_name.clone()).unwrap();
    let result = match tls::connect_with_config(&server.addr.to_string(), Arc::new(config), name).await {
        Ok(channel) => health_check(channel).await.map_err(|e| error_chain(&e)),
        Err(e) => Err(error_chain(&e)),
    };
    assert!(result.is_err(), "{result:?}");
    server.expect_refusal("peer sent no certificates").await;
    assert_good_client_served(&server, &fed).await;
}

/// A leaf signed by `ca` with hand-picked extensions and SAN: what a malicious member CA could
/// issue, since rcgen (and X.509) let a CA write anything into its leaves.
fn forged_leaf(ca: &MemberCa, ca_key_pem: &str, san: &str, exts: [(&str, u64); 4]) -> CertBundle {
    let issuer = Issuer::from_ca_cert_pem(ca.cert_pem(), KeyPair::from_pem(ca_key_pem).unwrap()).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = CertificateParams::new(vec![san.to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "forged");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = exts
        .iter()
        .map(|(value, arc)| {
            let mut der = vec![0x0c, value.len() as u8];
            der.extend_from_slice(value.as_bytes());
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, *arc], der)
        })
        .collect();
    let cert = params.signed_by(&key, &issuer).unwrap();
    CertBundle {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        chain: vec![ca.cert_pem().to_owned()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_alice_leaf_claiming_a_bob_address_is_refused() {
    let fed = Federation::new();
    let mut server = start_server(&fed, Policy::any_component(), IncomingOptions::default()).await;
    let alice_key = fed.alice.bundle().key_pem;

    // DNS SAN inside alice (so name constraints pass), address extensions claiming bob.
    let claims_bob = forged_leaf(
        &fed.alice,
        &alice_key,
        "node-66.alice.home.collective",
        [
            ("home.collective", 1),
            ("bob.home.collective", 2),
            ("node", 3),
            ("node-66@bob.home.collective", 4),
        ],
    );
    assert!(call_as(&server, &claims_bob, &fed.root_der()).await.is_err());
    server
        .expect_refusal(
            "node-66@bob.home.collective is not in issuing ca member domain alice.home.collective",
        )
        .await;

    // DNS SAN in bob's domain: webpki's name constraint already refuses it.
    let san_in_bob = forged_leaf(
        &fed.alice,
        &alice_key,
        "node-66.bob.home.collective",
        [
            ("home.collective", 1),
            ("bob.home.collective", 2),
            ("node", 3),
            ("node-66@bob.home.collective", 4),
        ],
    );
    assert!(call_as(&server, &san_in_bob, &fed.root_der()).await.is_err());
    server.expect_refusal("NameConstraintViolation").await;

    // Consistent extensions but no address extension at all.
    let no_address = forged_leaf(
        &fed.alice,
        &alice_key,
        "node-67.alice.home.collective",
        [
            ("home.collective", 1),
            ("alice.home.collective", 2),
            ("node", 3),
            ("node-67@alice.home.collective", 5),
        ],
    );
    assert!(call_as(&server, &no_address, &fed.root_der()).await.is_err());
    server.expect_refusal("lacks extension 1.3.6.1.4.1.99999.4").await;

    assert_good_client_served(&server, &fed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_raft_policy_refuses_clients_and_other_members_coordinators() {
    let fed = Federation::new();
    let mut server = start_server(
        &fed,
        Policy::raft("alice.home.collective"),
        IncomingOptions::default(),
    )
    .await;

    let client = fed
        .alice
        .issue_leaf("laptop@alice.home.collective", Component::Client, DAY)
        .unwrap();
    assert!(call_as(&server, &client, &fed.root_der()).await.is_err());
    server
        .expect_refusal("laptop@alice.home.collective is a client, endpoint admits only: coordinator")
        .await;

    let bob_coord = fed
        .bob
        .issue_leaf("coord-1@bob.home.collective", Component::Coordinator, DAY)
        .unwrap();
    assert!(call_as(&server, &bob_coord, &fed.root_der()).await.is_err());
    server
        .expect_refusal("coord-1@bob.home.collective is not of member alice.home.collective")
        .await;

    let peer = fed
        .alice
        .issue_leaf("coord-2@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    assert_eq!(call_as(&server, &peer, &fed.root_der()).await, Ok(SERVING));
    let seen = server.callers.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "refused peers never reached the handler");
    assert_eq!(seen[0].address.to_string(), "coord-2@alice.home.collective");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_client_refuses_a_server_that_is_not_what_it_expects() {
    let fed = Federation::new();
    let server = start_server(&fed, Policy::any_component(), IncomingOptions::default()).await;
    let client = fed
        .alice
        .issue_leaf("laptop@alice.home.collective", Component::Client, DAY)
        .unwrap();
    let endpoint = server.addr.to_string();

    // Right name, wrong component: the server is a coordinator, the client wants a node.
    let want_node = ServerExpectation::named(
        "coord-1.alice.home.collective",
        Policy::components(&[Component::Node]),
    );
    let err = match tls::connect(&endpoint, &client, &fed.root_der(), want_node).await {
        Ok(channel) => error_chain(&health_check(channel).await.unwrap_err()),
        Err(e) => error_chain(&e),
    };
    assert!(
        err.contains("is a coordinator, endpoint admits only: node"),
        "{err}"
    );

    // Another coordinator's name: webpki's name check fails.
    let want_other =
        ServerExpectation::address("coord-2@alice.home.collective", Component::Coordinator).unwrap();
    let err = match tls::connect(&endpoint, &client, &fed.root_der(), want_other).await {
        Ok(channel) => error_chain(&health_check(channel).await.unwrap_err()),
        Err(e) => error_chain(&e),
    };
    assert!(
        err.contains("not valid for name \"coord-2.alice.home.collective\""),
        "{err}"
    );

    // A server of another member than expected.
    let want_bob = ServerExpectation::named(
        "coord-1.alice.home.collective",
        Policy::components(&[Component::Coordinator]).same_member("bob.home.collective"),
    );
    let err = match tls::connect(&endpoint, &client, &fed.root_der(), want_bob).await {
        Ok(channel) => error_chain(&health_check(channel).await.unwrap_err()),
        Err(e) => error_chain(&e),
    };
    assert!(err.contains("is not of member bob.home.collective"), "{err}");

    assert_good_client_served(&server, &fed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_swapped_config_with_crl_refuses_a_revoked_leaf() {
    let fed = Federation::new();
    let mut server = start_server(&fed, Policy::any_component(), IncomingOptions::default()).await;
    let doomed = fed
        .alice
        .issue_leaf("old-laptop@alice.home.collective", Component::Client, DAY)
        .unwrap();
    assert_eq!(call_as(&server, &doomed, &fed.root_der()).await, Ok(SERVING));

    let crl = fed
        .alice
        .issue_crl(
            &[RevokedSerial {
                serial: doomed.identity().unwrap().serial,
                revoked_at: SystemTime::now(),
            }],
            1,
            DAY,
        )
        .unwrap();
    let verifier = FederationClientVerifier::builder(&fed.root_der(), Policy::any_component())
        .with_crls(vec![crl])
        .allow_unknown_revocation_status()
        .build()
        .unwrap();
    let identity = fed
        .alice
        .issue_leaf("coord-1@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    server
        .config
        .replace(tls::server_config_with_verifier(&identity, verifier).unwrap());

    assert!(call_as(&server, &doomed, &fed.root_der()).await.is_err());
    server.expect_refusal("Revoked").await;
    // bob has published no CRL: accepted, because unknown status is allowed.
    let bob = fed
        .bob
        .issue_leaf("laptop@bob.home.collective", Component::Client, DAY)
        .unwrap();
    assert_eq!(call_as(&server, &bob, &fed.root_der()).await, Ok(SERVING));
    assert_good_client_served(&server, &fed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_silent_connection_does_not_block_others_and_times_out() {
    let fed = Federation::new();
    let options = IncomingOptions {
        handshake_timeout: Duration::from_secs(3),
        ..IncomingOptions::default()
    };
    let mut server = start_server(&fed, Policy::any_component(), options).await;
    // Opens TCP and says nothing.
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let started = std::time::Instant::now();
    assert_good_client_served(&server, &fed).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "good client waited for the silent one"
    );
    server
        .expect_refusal("handshake not completed within 3000 ms")
        .await;
    assert_good_client_served(&server, &fed).await;
}
