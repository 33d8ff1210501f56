//! Rotation with real processes and leaves that live six seconds: the coordinator (which holds
//! the member CA key and signs its own renewal), a second coordinator and a storage node (which
//! renew through `RenewCertificate`) renew at two thirds of the lifetime, save and record each
//! renewal, and put it in force without a restart; a client keeps writing and reading across
//! several rotations, through new connections and through one kept open.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use collective::client::{Client, Consistency};
use collective::coordinator::rotation::SERVICE_CERT_VALIDITY_ENV;
use collective::pki::CertBundle;
use support::{Cluster, FEDERATION, MEMBER, binary, path};

/// Lifetime of coordinator and node leaves in this test; renewal comes at two thirds (4 s).
const VALIDITY_SECS: &str = "6";
/// How long the client keeps working while leaves rotate.
const ROTATION_WINDOW: Duration = Duration::from_secs(20);
/// Renewals each leaf must have gone through in that window.
const ROTATIONS_MIN: usize = 3;

/// A member of two coordinators and a node whose certificates (not the admin's) live six seconds.
fn short_lived_cluster() -> Cluster {
    let env = vec![
        (SERVICE_CERT_VALIDITY_ENV.into(), VALIDITY_SECS.into()),
        ("COLLECTIVE_NODE_HEARTBEAT_MS".into(), "300".into()),
    ];
    let mut cluster = Cluster::with_voters_env(2, env).unwrap();
    cluster.prepare_node("node-01", &[]).unwrap();
    cluster.start_node("node-01").unwrap();
    cluster
        .wait_node_status("node-01", "UP", Duration::from_secs(30))
        .unwrap();
    cluster
}

fn serial(dir: &Path, name: &str) -> Option<Vec<u8>> {
    let bundle = CertBundle::read_from(&dir.join("pki"), name).ok()?;
    Some(bundle.identity().ok()?.serial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_keeps_working_across_rotations_of_coordinator_and_node_leaves() {
    let cluster = short_lived_cluster();
    let content = cluster.dir.path().join("content.bin");
    let mut kept_open = Client::from_home(&cluster.home).unwrap();
    let mut seen: [BTreeSet<Vec<u8>>; 3] = Default::default();
    let started = Instant::now();
    let mut round = 0u32;
    while started.elapsed() < ROTATION_WINDOW {
        round += 1;
        // New processes: new handshakes against whatever leaves are in force now.
        std::fs::write(&content, format!("round {round}").repeat(1000)).unwrap();
        let file = format!("/round-{round}.txt");
        let written = cluster.cli(&["write", &file, path(&content)]);
        let back = cluster.dir.path().join("back.txt");
        let read = cluster.cli(&["read", &file, path(&back)]);
        if !written.status.success() || !read.status.success() {
            cluster.dump_logs();
            panic!(
                "round {round} at {:?}: write {} / read {}",
                started.elapsed(),
                String::from_utf8_lossy(&written.stderr),
                String::from_utf8_lossy(&read.stderr)
            );
        }
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&content).unwrap());
        // One connection kept open the whole time.
        kept_open
            .stat(&file, Consistency::Linearizable)
            .await
            .unwrap_or_else(|e| panic!("the open client failed in round {round}: {e}"));
        for (set, (dir, name)) in seen.iter_mut().zip([
            (&cluster.coordinators[0].data_dir, "coordinator"),
            (&cluster.coordinators[1].data_dir, "coordinator"),
            (&cluster.nodes[0].data_dir, "node"),
        ]) {
            if let Some(serial) = serial(dir, name) {
                set.insert(serial);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let counts: Vec<usize> = seen.iter().map(BTreeSet::len).collect();
    eprintln!("{round} rounds; distinct leaves seen (coord-1, coord-2, node-01): {counts:?}");
    for (who, count) in ["coord-1", "coord-2", "node-01"].iter().zip(&counts) {
        if *count < ROTATIONS_MIN + 1 {
            cluster.dump_logs();
            panic!(
                "{who} went through {} renewals, expected at least {ROTATIONS_MIN}",
                count - 1
            );
        }
    }
    // Every renewal was recorded in the member's log (revocable by serial).
    let export = cluster.cli_ok(&["audit", "export"]).unwrap();
    let recorded = export.matches("\"certificateIssued\"").count();
    let renewed: usize = counts.iter().sum();
    assert!(
        recorded >= renewed,
        "{recorded} certificates recorded, {renewed} seen"
    );
    // And nothing was restarted.
    assert!(cluster.coordinators.iter().all(|c| c.child.is_some()));
}

/// A user's profile certificate renews itself: after two thirds of its 6-second lifetime the
/// next command renews it (a new serial in the profile), and the profile keeps working after the
/// original certificate has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_profile_certificate_renews_itself_on_use() {
    use collective::pki::Component;
    use collective::profile::Profile;
    use collective_events::pb::command_envelope::Command as PbCommand;

    let cluster = Cluster::single().unwrap();
    let admin = cluster.profile().unwrap();
    let address = format!("admin@{MEMBER}.{FEDERATION}");
    // A second admin profile (the same address, a short-lived certificate of its own).
    let short = admin
        .member_ca()
        .unwrap()
        .issue_leaf(&address, Component::Client, Duration::from_secs(6))
        .unwrap();
    let home = cluster.dir.path().join("short-lived");
    Profile::write(&home, &admin.config, &short, &admin.root_ca_pem, None).unwrap();
    let mut client = Client::from_home(&home).unwrap();
    client
        .submit(PbCommand::IssueCertificate(
            collective::coordinator::revocation::issue_command_for(&short).unwrap(),
        ))
        .await
        .unwrap();
    let serial = |home: &Path| {
        CertBundle::read_from(home, "client")
            .unwrap()
            .identity()
            .unwrap()
            .serial_hex()
    };
    let original = serial(&home);
    std::thread::sleep(Duration::from_millis(4_500));
    let ls = |home: &Path| {
        std::process::Command::new(binary())
            .args(["ls", "/"])
            .env("COLLECTIVE_HOME", home)
            .output()
            .unwrap()
    };
    let out = ls(&home);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let renewed = serial(&home);
    assert_ne!(original, renewed, "the profile holds a renewed certificate");
    // Past the original's expiry, the profile still works.
    std::thread::sleep(Duration::from_millis(2_500));
    let out = ls(&home);
    assert!(
        out.status.success(),
        "after the original expired: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
