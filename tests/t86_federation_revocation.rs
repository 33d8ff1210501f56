//! Revocation and member removal across members, with real processes: alice (`collective up`,
//! a coordinator and a storage node) invites bob and carol, who each start a coordinator.
//!
//! - A certificate alice revokes is refused by bob's and carol's coordinators within seconds.
//! - A certificate bob revokes is refused by carol's coordinator (carol was never told where bob
//!   is: she learns it from alice) and by alice's storage node.
//! - `federation ca remove-member --member carol`, signed with the root key alice's founding
//!   coordinator keeps, makes alice's coordinator and node and bob's coordinator refuse carol's
//!   certificates, while carol's own member keeps working; a restarted coordinator still refuses.
//! - A removal not signed by the federation's root is refused with a clear error, and only
//!   coordinators may exchange lists.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use collective::pki::{CertBundle, Component, FederationCa, sign_removal};
use collective::profile::Profile;
use collective::tls::{self, ServerExpectation};
use collective::transport::{connect_coordinator, root_der};
use collective_proto::api::{self, federation_client::FederationClient, meta_client::MetaClient};
use collective_proto::chunk::{HasRequest, chunks_client::ChunksClient};
use support::{FEDERATION, Up, binary, cli_as, ok_as, path, up, wait_for_port};

/// How long a revocation or removal may take to reach another member's listeners.
const DEADLINE: Duration = Duration::from_secs(10);

fn domain(member: &str) -> String {
    format!("{member}.{FEDERATION}")
}

/// A member that joined alice's federation, with its first coordinator running.
struct Joined {
    home: PathBuf,
    data: PathBuf,
    endpoint: String,
    process: Option<Up>,
}

impl Joined {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .unwrap();
        let child = Command::new(binary())
            .args(["coordinator", "run", "--data-dir", path(&self.data)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.process = Some(Up(child));
        wait_for_port(&self.endpoint, Duration::from_secs(20)).unwrap();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cli_as(&self.home, &["status"]).status.success() {
            assert!(Instant::now() < deadline, "{} never became ready", self.endpoint);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn join(alice: &Path, dir: &Path, member: &str) -> Joined {
    let code = ok_as(
        alice,
        &["invite", "generate", "--member", member, "--validity", "1h"],
    );
    let mut joined = Joined {
        home: dir.join(format!("{member}-home")),
        data: dir.join(format!("{member}-data")),
        endpoint: format!("127.0.0.1:{}", support::free_port()),
        process: None,
    };
    ok_as(
        &joined.home,
        &[
            "federation",
            "join",
            "--invite",
            code.trim(),
            "--member",
            member,
            "--data-dir",
            path(&joined.data),
            "--listen",
            &joined.endpoint,
        ],
    );
    joined.start();
    joined.wait_ready();
    joined
}

fn identity(home: &Path) -> Profile {
    Profile::load(home).unwrap()
}

fn serial_hex(bundle: &CertBundle) -> String {
    bundle.identity().unwrap().serial_hex()
}

/// `federation ca remove-member --member carol` with the root CA in `ca_dir`, as `home`.
fn remove_carol(home: &Path, ca_dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "federation",
        "ca",
        "remove-member",
        "--member",
        "carol",
        "--ca-dir",
        path(ca_dir),
    ];
    args.extend_from_slice(extra);
    cli_as(home, &args)
}

/// `Status` at a coordinator of `member` as `who`: the refusal's text, or "answered".
async fn coordinator_says(endpoint: &str, member: &str, who: &Profile) -> String {
    let channel = match connect_coordinator(endpoint, &who.identity, &who.root_ca_pem, &domain(member)).await
    {
        Ok(channel) => channel,
        Err(error) => return format!("dial: {error:#}"),
    };
    match MetaClient::new(channel)
        .status(api::StatusRequest::default())
        .await
    {
        Ok(_) => "answered".into(),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    }
}

/// `Has` at the storage node `address` as `who`: the refusal's text, or "answered".
async fn node_says(endpoint: &str, address: &str, who: &Profile) -> String {
    let expect = ServerExpectation::address(address, Component::Node).unwrap();
    let root = root_der(&who.root_ca_pem).unwrap();
    let channel = match tls::connect(endpoint, &who.identity, &root, expect).await {
        Ok(channel) => channel,
        Err(error) => return format!("dial: {error}"),
    };
    match ChunksClient::new(channel).has(HasRequest::default()).await {
        Ok(_) => "answered".into(),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    }
}

/// Polls `probe` until its answer contains `wanted`; how long that took.
async fn until_refused<F, Fut>(what: &str, wanted: &str, started: Instant, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    loop {
        let answer = probe().await;
        if answer.contains(wanted) {
            let took = started.elapsed();
            println!("{what}: refused after {took:?} ({answer})");
            return took;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: still not refused after {DEADLINE:?}; last answer: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_and_removals_reach_every_member_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let alice_home = dir.path().join("alice-home");
    let _alice = up(dir.path(), &alice_home, &[]).unwrap();
    let alice_status: serde_json::Value =
        serde_json::from_str(&ok_as(&alice_home, &["status", "--json"])).unwrap();
    let alice_endpoint = alice_status["coordinators"][0]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let node = &alice_status["nodes"][0];
    let (node_endpoint, node_address) = (
        node["endpoint"].as_str().unwrap().to_string(),
        node["address"].as_str().unwrap().to_string(),
    );
    let mut bob = join(&alice_home, dir.path(), "bob");
    let carol = join(&alice_home, dir.path(), "carol");
    // Carol's configuration names only alice, the member that invited her.
    let carol_config = std::fs::read_to_string(carol.data.join("coordinator.toml")).unwrap();
    assert!(carol_config.contains(&alice_endpoint) && !carol_config.contains(&bob.endpoint));

    // A user of alice, by invite.
    let code = ok_as(&alice_home, &["invite", "generate", "--grant", "/shared:read"]);
    let user_home = dir.path().join("user-home");
    ok_as(&user_home, &["invite", "redeem", code.trim(), "--name", "dora"]);
    let user = identity(&user_home);

    // Before any revocation, other members' coordinators answer the user's `Status` (open to
    // every certificate of the federation).
    for (endpoint, member) in [(&bob.endpoint, "bob"), (&carol.endpoint, "carol")] {
        assert_eq!(coordinator_says(endpoint, member, &user).await, "answered");
    }

    // 1. Alice revokes her user: bob's and carol's coordinators refuse it within seconds.
    ok_as(&alice_home, &["cert", "revoke", &serial_hex(&user.identity)]);
    let revoked_at = Instant::now();
    for (endpoint, member) in [(&bob.endpoint, "bob"), (&carol.endpoint, "carol")] {
        until_refused(
            &format!("alice's revoked user at {member}"),
            "revoked",
            revoked_at,
            || coordinator_says(endpoint, member, &user),
        )
        .await;
    }

    // 2. Bob revokes his admin's certificate: carol, who learns bob's endpoints from alice, and
    // alice's storage node (through alice's coordinators) refuse it.
    let bob_admin = identity(&bob.home);
    let before = node_says(&node_endpoint, &node_address, &bob_admin).await;
    assert!(!before.contains("revoked"), "{before}");
    ok_as(&bob.home, &["cert", "revoke", &serial_hex(&bob_admin.identity)]);
    let revoked_at = Instant::now();
    until_refused("bob's revoked admin at carol", "revoked", revoked_at, || {
        coordinator_says(&carol.endpoint, "carol", &bob_admin)
    })
    .await;
    until_refused(
        "bob's revoked admin at alice's node",
        "revoked",
        revoked_at,
        || node_says(&node_endpoint, &node_address, &bob_admin),
    )
    .await;

    // 3. Bad input. A removal signed by another root (same federation name) is refused, and so
    // is the CLI given a root that is not the profile's.
    let impostor = FederationCa::init(FEDERATION).unwrap();
    let forged = sign_removal(&impostor.bundle(), &domain("carol"), "forged", 1).unwrap();
    let alice_admin = identity(&alice_home);
    let channel = connect_coordinator(
        &alice_endpoint,
        &alice_admin.identity,
        &alice_admin.root_ca_pem,
        &domain("alice"),
    )
    .await
    .unwrap();
    let refused = FederationClient::new(channel.clone())
        .publish_removal(forged)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("not signed by the federation root"),
        "{}",
        refused.message()
    );
    let exchange = FederationClient::new(channel)
        .exchange(api::FederationExchange::default())
        .await
        .unwrap_err();
    assert!(
        exchange.message().contains("only coordinators exchange"),
        "{}",
        exchange.message()
    );
    let impostor_dir = dir.path().join("impostor-ca");
    std::fs::create_dir_all(&impostor_dir).unwrap();
    impostor.bundle().write_to(&impostor_dir, "root-ca").unwrap();
    let wrong_root = remove_carol(&alice_home, &impostor_dir, &[]);
    assert!(!wrong_root.status.success());
    assert!(
        String::from_utf8_lossy(&wrong_root.stderr).contains("is not the root of this profile's federation"),
        "{}",
        String::from_utf8_lossy(&wrong_root.stderr)
    );
    let carol_admin = identity(&carol.home);
    assert_eq!(
        coordinator_says(&alice_endpoint, "alice", &carol_admin).await,
        "answered"
    );

    // 4. Alice's founding coordinator keeps the root key: remove carol from the federation.
    let root_dir = dir.path().join("data").join("coordinator").join("pki");
    let removed = remove_carol(&alice_home, &root_dir, &["--reason", "left the federation"]);
    assert!(removed.status.success(), "{removed:?}");
    let removed = String::from_utf8_lossy(&removed.stdout);
    assert!(
        removed.contains("member carol.home.collective removed"),
        "{removed}"
    );
    let removed_at = Instant::now();
    until_refused("carol at alice", "removed", removed_at, || {
        coordinator_says(&alice_endpoint, "alice", &carol_admin)
    })
    .await;
    until_refused("carol at bob", "removed", removed_at, || {
        coordinator_says(&bob.endpoint, "bob", &carol_admin)
    })
    .await;
    until_refused("carol at alice's node", "removed", removed_at, || {
        node_says(&node_endpoint, &node_address, &carol_admin)
    })
    .await;
    // Carol's member is not stopped: her own coordinator still serves her admin.
    assert!(cli_as(&carol.home, &["status"]).status.success());
    // Alice's status shows the members she exchanges with, and carol removed.
    let status: serde_json::Value = serde_json::from_str(&ok_as(&alice_home, &["status", "--json"])).unwrap();
    let members = status["members"].as_array().unwrap();
    let member = |name: &str| {
        members
            .iter()
            .find(|m| m["member"] == domain(name).as_str())
            .unwrap_or_else(|| panic!("{name} missing from {members:?}"))
            .clone()
    };
    assert!(member("bob")["last_exchange_unix_ms"].is_i64(), "{members:?}");
    assert_eq!(member("bob")["revoked"], 1, "bob revoked his admin: {members:?}");
    assert_eq!(member("carol")["removed"], true, "{members:?}");
    let human = ok_as(&alice_home, &["status"]);
    assert!(human.contains("REMOVED from the federation"), "{human}");

    // 5. A restarted coordinator refuses carol from its first request: the removal is kept.
    // (Bob's admin is revoked, so only the port tells that bob's coordinator is back.)
    drop(bob.process.take());
    bob.start();
    let answer = coordinator_says(&bob.endpoint, "bob", &carol_admin).await;
    assert!(answer.contains("removed"), "{answer}");
    let again = remove_carol(&alice_home, &root_dir, &[]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already was"),
        "{again:?}"
    );
}
