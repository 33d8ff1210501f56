//! Bad input gets a clear error and changes nothing: malformed paths and addresses, oversized
//! names and messages, operations on missing or wrong-type entries, a client certificate from an
//! unknown CA, a plaintext connection, and a client claiming to act for someone else. The event
//! log is compared before and after.

mod support;

use collective::client::{Client, ClientError};
use collective::pki::{Component, FederationCa};
use collective::profile::{Profile, ProfileConfig};
use collective_events::pb::{self, command_envelope::Command};
use std::time::Duration;
use support::Cluster;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the CLI and requires a failure whose message contains `expected`.
fn refused(cluster: &Cluster, args: &[&str], expected: &str) {
    let output = cluster.cli(args);
    assert!(
        !output.status.success(),
        "`collective {}` should fail",
        args.join(" ")
    );
    let message = stderr(&output);
    assert!(
        message.starts_with("error: "),
        "errors start with `error: `, got {message:?}"
    );
    assert!(
        message.contains(expected),
        "`collective {}`: expected {expected:?} in {message:?}",
        args.join(" ")
    );
}

/// The event log without `CertificateIssued` events: a coordinator records its own certificate
/// asynchronously after it starts, which may land between two exports; nothing this test sends
/// can produce one.
fn events_but_own_certificates(cluster: &Cluster) -> anyhow::Result<String> {
    let export = cluster.cli_ok(&["audit", "export"])?;
    Ok(export
        .lines()
        .filter(|line| !line.contains("\"certificateIssued\""))
        .map(|line| format!("{line}\n"))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_clearly_and_changes_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::single()?;
    cluster.cli_ok(&["mkdir", "-p", "/media/movies", "/empty"])?;
    let mut client = Client::new(cluster.profile()?);
    // An empty file: a version with chunks needs stored replicas (the data-path tests cover it).
    client
        .submit(Command::CommitFileVersion(pb::CommitFileVersion {
            path: "/media/movie.mkv".into(),
            ..Default::default()
        }))
        .await?;
    let before = events_but_own_certificates(&cluster)?;

    // Malformed paths.
    refused(&cluster, &["mkdir", "relative/path"], "invalid argument");
    refused(&cluster, &["mkdir", "/media/../etc"], "invalid argument");
    refused(&cluster, &["mkdir", "/media//double"], "invalid argument");
    refused(&cluster, &["mkdir", "/media/trailing/"], "invalid argument");
    refused(&cluster, &["stat", "no-slash"], "invalid argument");
    let long_name = format!("/media/{}", "n".repeat(256));
    refused(&cluster, &["mkdir", &long_name], "invalid argument");
    let long_path = format!("/{}", ["p"; 2100].join("/"));
    refused(&cluster, &["mkdir", "-p", &long_path], "invalid argument");

    // Missing and wrong-type entries.
    refused(&cluster, &["stat", "/nowhere"], "not found");
    refused(&cluster, &["ls", "/nowhere"], "not found");
    refused(&cluster, &["mkdir", "/nowhere/child"], "not found");
    refused(&cluster, &["rm", "/nowhere"], "not found");
    refused(&cluster, &["mv", "/nowhere", "/elsewhere"], "not found");
    refused(&cluster, &["mkdir", "/media/movie.mkv/sub"], "refused");
    refused(&cluster, &["ls", "/media/movie.mkv"], "is a file");
    refused(&cluster, &["mkdir", "/media"], "already exists");
    refused(&cluster, &["rm", "/media"], "refused");
    refused(&cluster, &["mv", "/media", "/media/movies/inside"], "cannot move");
    refused(&cluster, &["mv", "/empty", "/media"], "already exists");
    refused(&cluster, &["rm", "/"], "invalid argument");

    // Malformed addresses in commands.
    for address in [
        "alice",
        "@alice.home.collective",
        "node-01@",
        "node@nodot",
        "a@b..c",
        "x@@alice.home.collective",
    ] {
        let result = client
            .submit(Command::JoinNode(pb::JoinNode {
                address: address.into(),
                endpoint: "127.0.0.1:1".into(),
                capacity_bytes: 1,
                labels: vec![],
            }))
            .await;
        match result {
            Err(ClientError::Refused { code, message, .. }) => {
                assert_eq!(code, tonic::Code::InvalidArgument, "{address}: {message}");
                assert!(
                    message.contains(address) || !message.is_empty(),
                    "{address}: the message names the problem"
                );
            }
            other => panic!("node address {address:?} should be refused, got {other:?}"),
        }
    }
    // A malformed request id and a missing command.
    let bad_id = client
        .submit_with_id(
            vec![1, 2, 3],
            Command::CreateDirectory(pb::CreateDirectory {
                path: "/x".into(),
                parents: false,
            }),
        )
        .await;
    assert!(
        matches!(
            bad_id,
            Err(ClientError::Refused {
                code: tonic::Code::InvalidArgument,
                ..
            })
        ),
        "{bad_id:?}"
    );

    // An oversized message: the coordinator refuses it by size, before decoding.
    let huge = format!("/{}", "h".repeat(collective_proto::MESSAGE_BYTES_MAX + 1024));
    let oversized = client
        .submit(Command::CreateDirectory(pb::CreateDirectory {
            path: huge,
            parents: false,
        }))
        .await;
    match oversized {
        Err(ClientError::Refused { code, .. }) => {
            assert!(
                matches!(
                    code,
                    tonic::Code::ResourceExhausted | tonic::Code::OutOfRange | tonic::Code::Internal
                ),
                "{code:?}"
            );
        }
        other => panic!("an oversized message should be refused, got {other:?}"),
    }

    // A client certificate from a CA outside the federation.
    let foreign = FederationCa::init("elsewhere.collective")?;
    let foreign_member = foreign.sign_member("mallory.elsewhere.collective")?;
    let mallory = foreign_member.issue_leaf(
        "mallory@mallory.elsewhere.collective",
        Component::Client,
        Duration::from_secs(3600),
    )?;
    let real = cluster.profile()?;
    let foreign_home = cluster.dir.path().join("foreign-home");
    let config = ProfileConfig {
        address: "mallory@mallory.elsewhere.collective".into(),
        ..real.config.clone()
    };
    Profile::write(&foreign_home, &config, &mallory, &real.root_ca_pem, None)?;
    let output = cluster.cli_with_home(&foreign_home, &["mkdir", "/mallory"]);
    assert!(
        !output.status.success(),
        "a foreign certificate must not be accepted"
    );
    let message = stderr(&output);
    assert!(message.contains("not valid in the federation"), "{message}");
    // The same certificate presented to the coordinator directly (no client-side check): the
    // coordinator's TLS layer refuses it and the request fails.
    let expect = collective::tls::ServerExpectation::named(
        &collective::transport::coordinators_dns_name(&real.config.member_domain),
        collective::tls::Policy::components(&[Component::Coordinator]),
    );
    let root = collective::transport::root_der(&real.root_ca_pem)?;
    let channel = collective::tls::connect(&cluster.coordinator(1).endpoint, &mallory, &root, expect).await;
    if let Ok(channel) = channel {
        let mut meta = collective_proto::api::meta_client::MetaClient::new(channel);
        let request = collective_proto::api::SubmitRequest {
            command: Some(pb::CommandEnvelope {
                schema_version: 1,
                request_id: vec![9; 16],
                command: Some(Command::CreateDirectory(pb::CreateDirectory {
                    path: "/mallory".into(),
                    parents: false,
                })),
                ..Default::default()
            }),
        };
        assert!(
            meta.submit(request).await.is_err(),
            "the coordinator refuses a foreign client certificate"
        );
    }

    // A plaintext HTTP/2 connection.
    let endpoint = format!("http://{}", cluster.coordinator(1).endpoint);
    let plain = tonic::transport::Endpoint::from_shared(endpoint)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut meta = collective_proto::api::meta_client::MetaClient::new(channel);
        let status = meta.status(collective_proto::api::StatusRequest::default()).await;
        assert!(status.is_err(), "a plaintext request must fail");
    }

    // A client claiming to act for someone: only a coordinator passing a request on to its
    // leader may name whom it acts for.
    let admin = cluster.profile()?;
    let channel = collective::transport::connect_coordinator(
        &cluster.coordinator(1).endpoint,
        &admin.identity,
        &admin.root_ca_pem,
        &admin.config.member_domain,
    )
    .await?;
    let leaf = admin.identity.presented_chain_der()?[0].to_vec();
    let mut request = tonic::Request::new(collective_proto::api::SubmitRequest {
        command: Some(pb::CommandEnvelope {
            schema_version: 1,
            request_id: vec![10; 16],
            command: Some(Command::CreateDirectory(pb::CreateDirectory {
                path: "/claimed".into(),
                parents: false,
            })),
            ..Default::default()
        }),
    });
    request.metadata_mut().insert_bin(
        collective::transport::ON_BEHALF_OF_KEY,
        tonic::metadata::MetadataValue::from_bytes(&leaf),
    );
    let status = collective_proto::api::meta_client::MetaClient::new(channel)
        .submit(request)
        .await
        .expect_err("a client may not act for anyone");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("only a coordinator passes requests on"),
        "{status:?}"
    );

    // Nothing changed, and the member still serves.
    let after = events_but_own_certificates(&cluster)?;
    assert_eq!(before, after, "refused input left no event");
    cluster.cli_ok(&["mkdir", "/still-serving"])?;
    Ok(())
}
