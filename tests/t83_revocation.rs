//! Revocation with real processes: `cert revoke` of a user's client certificate makes the
//! coordinator and the storage node refuse it within seconds, without a restart, on new and on
//! already open connections, while the admin keeps working; only the admin may revoke, a
//! process may only record its own certificate, and an unknown serial is a clear error.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use collective::client::{Client, ClientError, Consistency};
use collective::coordinator::revocation::issue_command_for;
use collective::pki::{CertBundle, Component};
use collective::profile::{Profile, ProfileConfig};
use collective::tls::{self, ServerExpectation};
use collective::transport::root_der;
use collective_events::pb::{self, command_envelope::Command};
use collective_proto::api;
use collective_proto::chunk::GetRequest;
use collective_proto::chunk::chunks_client::ChunksClient;
use support::{Cluster, FEDERATION, MEMBER, path};

/// How long a revocation may take to reach every listener.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(10);

fn member_domain() -> String {
    format!("{MEMBER}.{FEDERATION}")
}

/// A second client profile, `carol@<member>`, signed by the admin's member CA and recorded
/// (by carol herself: a process may record the certificate it presents).
async fn user_profile(cluster: &Cluster, home: &Path) -> CertBundle {
    let admin = cluster.profile().unwrap();
    let member_ca = admin.member_ca().unwrap();
    let address = format!("carol@{}", member_domain());
    let bundle = member_ca
        .issue_leaf(&address, Component::Client, Duration::from_secs(3600))
        .unwrap();
    let config = ProfileConfig {
        address,
        member_domain: member_domain(),
        federation_domain: FEDERATION.to_string(),
        coordinators: admin.config.coordinators.clone(),
    };
    Profile::write(home, &config, &bundle, &admin.root_ca_pem, None).unwrap();
    let mut carol = Client::from_home(home).unwrap();
    carol
        .submit(Command::IssueCertificate(issue_command_for(&bundle).unwrap()))
        .await
        .unwrap();
    // Carol may read the /shared datastore.
    let mut admin_client = Client::new(admin.clone());
    admin_client
        .submit(Command::CreateDatastore(pb::CreateDatastore {
            path: "/shared".into(),
            owner: format!("admin@{}", member_domain()),
            strategy: pb::PlacementStrategy::Hybrid as i32,
            replicas: 1,
        }))
        .await
        .unwrap();
    admin_client
        .submit(Command::IssueGrant(pb::IssueGrant {
            grant_id: vec![0xc0; 16],
            grant: Some(pb::GrantSpec {
                path: "/shared".into(),
                subject: format!("carol@{}", member_domain()),
                rights: collective_events::decide::RIGHT_READ,
                expires_at_unix_ms: None,
            }),
        }))
        .await
        .unwrap();
    bundle
}

/// One GET of `hash` from the node through `channel`, returning the error text if refused.
async fn node_get(
    channel: tonic::transport::Channel,
    access: &api::NodeAccess,
    hash: &[u8],
) -> Result<(), String> {
    let mut chunks = ChunksClient::new(channel);
    let mut stream = chunks
        .get(GetRequest {
            ticket: access.ticket.clone(),
            hash: hash.to_vec(),
            offset_bytes: 0,
            length_bytes: None,
        })
        .await
        .map_err(|status| format!("{}: {}", status.code(), status.message()))?
        .into_inner();
    match stream.message().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("empty stream".into()),
        Err(status) => Err(format!("{}: {}", status.code(), status.message())),
    }
}

async fn connect_node(
    endpoint: &str,
    address: &str,
    bundle: &CertBundle,
    root_pem: &str,
) -> Result<tonic::transport::Channel, String> {
    let expect = ServerExpectation::address(address, Component::Node).unwrap();
    tls::connect(endpoint, bundle, &root_der(root_pem).unwrap(), expect)
        .await
        .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_client_is_refused_by_coordinator_and_node_within_seconds() {
    let mut cluster =
        Cluster::single_with_env(vec![("COLLECTIVE_NODE_HEARTBEAT_MS".into(), "300".into())]).unwrap();
    cluster.prepare_node("node-01", &[]).unwrap();
    cluster.start_node("node-01").unwrap();
    cluster
        .wait_node_status("node-01", "UP", Duration::from_secs(30))
        .unwrap();

    // The admin stores a file; carol reads it, before any revocation.
    let content = cluster.dir.path().join("content.bin");
    std::fs::write(&content, vec![7u8; 100_000]).unwrap();
    cluster.cli_ok(&["mkdir", "/shared"]).unwrap();
    cluster
        .cli_ok(&["write", "/shared/file.bin", path(&content)])
        .unwrap();
    let carol_home = cluster.dir.path().join("carol");
    let carol_bundle = user_profile(&cluster, &carol_home).await;
    let carol_out = cluster.dir.path().join("carol-read.bin");
    let read = cluster.cli_with_home(&carol_home, &["read", "/shared/file.bin", path(&carol_out)]);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));

    // Carol's library client and an open node connection, both used before the revocation.
    let mut carol = Client::from_home(&carol_home).unwrap();
    let plan = carol
        .plan_read(
            api::PlanReadRequest {
                path: "/shared/file.bin".into(),
                tickets: true,
                ..Default::default()
            },
            Consistency::Linearizable,
        )
        .await
        .unwrap();
    let access = plan.nodes.first().cloned().expect("a GET ticket for the node");
    let hash = plan.chunks[0].chunk.as_ref().unwrap().hash.clone();
    let root_pem = cluster.profile().unwrap().root_ca_pem;
    let open_channel = connect_node(&access.endpoint, &access.address, &carol_bundle, &root_pem)
        .await
        .unwrap();
    node_get(open_channel.clone(), &access, &hash).await.unwrap();

    // Only the admin may revoke; an unknown serial is refused with its serial in the error.
    let carol_cert = carol_home.join("client.crt");
    let by_carol = cluster.cli_with_home(&carol_home, &["cert", "revoke", path(&carol_cert)]);
    let stderr = String::from_utf8_lossy(&by_carol.stderr);
    assert!(!by_carol.status.success());
    assert!(stderr.contains("only the member's admin"), "{stderr}");
    let unknown = cluster.cli(&["cert", "revoke", "0102030405"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(
        stderr.contains("no certificate with serial 0102030405"),
        "{stderr}"
    );
    // A client may record only its own certificate.
    let forged = cluster
        .profile()
        .unwrap()
        .member_ca()
        .unwrap()
        .issue_leaf(
            &format!("mallory@{}", member_domain()),
            Component::Client,
            Duration::from_secs(60),
        )
        .unwrap();
    let refused = carol
        .submit(Command::IssueCertificate(issue_command_for(&forged).unwrap()))
        .await;
    assert!(
        matches!(
            &refused,
            Err(ClientError::Refused {
                code: tonic::Code::PermissionDenied,
                ..
            })
        ),
        "{refused:?}"
    );

    // Revoke carol, measuring until each listener refuses her.
    let revoked_at = Instant::now();
    let out = cluster
        .cli_ok(&["cert", "revoke", path(&carol_cert), "--reason", "laptop stolen"])
        .unwrap();
    assert!(out.contains("revoked certificate"), "{out}");
    let coordinator_latency = loop {
        let ls = cluster.cli_with_home(&carol_home, &["ls", "/shared"]);
        if !ls.status.success() {
            let stderr = String::from_utf8_lossy(&ls.stderr).to_lowercase();
            assert!(stderr.contains("revoked"), "refused without saying why: {stderr}");
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < REVOCATION_DEADLINE,
            "the coordinator still serves carol"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let node_latency = loop {
        let fresh = match connect_node(&access.endpoint, &access.address, &carol_bundle, &root_pem).await {
            Ok(channel) => node_get(channel, &access, &hash).await,
            Err(error) => Err(error),
        };
        if let Err(error) = fresh {
            assert!(
                error.to_lowercase().contains("revoked"),
                "refused without saying why: {error}"
            );
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < REVOCATION_DEADLINE,
            "the node still serves carol"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("revocation latency: coordinator {coordinator_latency:?}, node {node_latency:?}");

    // Connections opened before the revocation are refused at their next request.
    let on_open = node_get(open_channel, &access, &hash).await;
    let error = on_open.expect_err("the open node connection still serves carol");
    assert!(error.contains("has been revoked"), "{error}");
    let on_client = carol
        .stat("/shared/file.bin", Consistency::Linearizable)
        .await
        .expect_err("the open coordinator connection still serves carol");
    assert!(on_client.to_string().contains("revoked"), "{on_client}");

    // Everyone else keeps working, through the same processes, never restarted.
    let admin_out = cluster.dir.path().join("admin-read.bin");
    cluster
        .cli_ok(&["read", "/shared/file.bin", path(&admin_out)])
        .unwrap();
    assert_eq!(
        std::fs::read(&admin_out).unwrap(),
        std::fs::read(&content).unwrap()
    );
    assert!(cluster.coordinators[0].child.is_some() && cluster.nodes[0].child.is_some());

    // A second revocation of the same certificate is refused as such.
    let again = cluster.cli(&["cert", "revoke", path(&carol_cert)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
}
