//! `collective federation ca init | ca sign-member` and `federation init` through the real
//! binary: the files they write form a chain the real openssl verifies, keys are 0600, and bad
//! input (malformed domain or member, missing CA, existing CA) exits 1 and writes nothing.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod support;

use collective::pki::{Component, MemberCa};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const LEAF_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Runs the binary in `dir` with its profile in `dir/home`.
fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(support::binary())
        .current_dir(dir)
        .arg("--home")
        .arg(dir.join("home"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn cli_ok(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir, args);
    assert!(
        out.status.success(),
        "`collective {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Requires exit code 1 and an `error: ` message containing `expected`.
fn refused(dir: &Path, args: &[&str], expected: &str) {
    let out = cli(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "`collective {}` should exit 1: {stderr}",
        args.join(" ")
    );
    assert!(stderr.starts_with("error: "), "got {stderr:?}");
    assert!(
        stderr.contains(expected),
        "`collective {}`: expected {expected:?} in {stderr:?}",
        args.join(" ")
    );
}

/// Runs exactly `openssl verify -CAfile root-ca.crt -untrusted member-ca.crt <leaf>` in `dir`.
fn openssl_verify(dir: &Path, leaf: &str) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "verify",
            "-CAfile",
            "root-ca.crt",
            "-untrusted",
            "member-ca.crt",
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

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn t80_ca_init_sign_member_and_a_leaf_verify_with_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let work = dir.join("work");

    let out = cli_ok(
        dir,
        &[
            "federation",
            "ca",
            "init",
            "--domain",
            "Home.Collective",
            "--out",
            "work",
        ],
    );
    assert!(out.contains("home.collective"), "{out}");
    assert_eq!(file_names(&work), vec!["root-ca.crt", "root-ca.key"]);
    assert_eq!(mode(&work.join("root-ca.key")), 0o600);

    let out = cli_ok(
        dir,
        &[
            "federation",
            "ca",
            "sign-member",
            "--member",
            "bob",
            "--ca-dir",
            "work",
            "--out",
            "work",
        ],
    );
    assert!(out.contains("bob.home.collective"), "{out}");
    assert!(out.contains("valid from"), "{out}");
    assert_eq!(
        file_names(&work),
        vec!["member-ca.crt", "member-ca.key", "root-ca.crt", "root-ca.key"]
    );
    assert_eq!(mode(&work.join("member-ca.key")), 0o600);

    // A leaf issued by the member CA as loaded from the written files.
    let member = MemberCa::load(
        &std::fs::read_to_string(work.join("member-ca.crt")).unwrap(),
        &std::fs::read_to_string(work.join("member-ca.key")).unwrap(),
    )
    .unwrap();
    assert_eq!(member.member_domain(), "bob.home.collective");
    assert_eq!(member.federation_domain(), "home.collective");
    let leaf = member
        .issue_leaf(
            "coord-1@bob.home.collective",
            Component::Coordinator,
            LEAF_VALIDITY,
        )
        .unwrap();
    std::fs::write(work.join("leaf.crt"), &leaf.cert_pem).unwrap();
    assert_eq!(openssl_verify(&work, "leaf.crt").trim(), "leaf.crt: OK");

    // A full member domain below the federation is accepted as is.
    let out = cli_ok(
        dir,
        &[
            "federation",
            "ca",
            "sign-member",
            "--member",
            "carol.home.collective",
            "--ca-dir",
            "work",
            "--out",
            "carol",
        ],
    );
    assert!(out.contains("carol.home.collective"), "{out}");
    assert_eq!(
        file_names(&dir.join("carol")),
        vec!["member-ca.crt", "member-ca.key"]
    );
}

#[test]
fn t80_federation_init_sets_up_a_first_member_whose_leaf_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let listen = format!("127.0.0.1:{}", support::free_port());
    let init = [
        "federation",
        "init",
        "--domain",
        "fed.example",
        "--member",
        "alice",
        "--data-dir",
        "coord",
        "--listen",
        &listen,
    ];
    let out = cli_ok(dir, &init);
    assert!(out.contains("alice.fed.example"), "{out}");
    assert!(
        out.contains("collective coordinator run --data-dir coord"),
        "{out}"
    );
    let pki = dir.join("coord").join("pki");
    assert_eq!(
        openssl_verify(&pki, "coordinator.crt").trim(),
        "coordinator.crt: OK"
    );
    assert!(dir.join("home").exists(), "an admin profile is written");
    // A second run over the same data directory is refused.
    refused(dir, &init, "already holds a coordinator");
}

#[test]
fn t80_bad_input_is_refused_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // A federation domain without a dot.
    refused(
        dir,
        &[
            "federation",
            "ca",
            "init",
            "--domain",
            "collective",
            "--out",
            "nodot",
        ],
        "has no dot",
    );
    assert!(!dir.join("nodot").exists());
    refused(
        dir,
        &[
            "federation",
            "init",
            "--domain",
            "collective",
            "--member",
            "alice",
            "--data-dir",
            "d1",
        ],
        "invalid federation domain",
    );
    assert!(!dir.join("d1").exists());

    // Signing without a CA.
    refused(
        dir,
        &[
            "federation",
            "ca",
            "sign-member",
            "--member",
            "bob",
            "--ca-dir",
            "none",
            "--out",
            "bob",
        ],
        "no federation root CA",
    );
    assert!(!dir.join("bob").exists());

    cli_ok(
        dir,
        &[
            "federation",
            "ca",
            "init",
            "--domain",
            "home.collective",
            "--out",
            "ca",
        ],
    );
    let root_before = std::fs::read(dir.join("ca/root-ca.crt")).unwrap();
    let key_before = std::fs::read(dir.join("ca/root-ca.key")).unwrap();

    // A member name with invalid characters, and a member domain outside the federation.
    refused(
        dir,
        &[
            "federation",
            "ca",
            "sign-member",
            "--member",
            "b_ob",
            "--ca-dir",
            "ca",
            "--out",
            "bob",
        ],
        "invalid member name",
    );
    refused(
        dir,
        &[
            "federation",
            "init",
            "--domain",
            "home.collective",
            "--member",
            "b!",
            "--data-dir",
            "d2",
        ],
        "invalid member name",
    );
    assert!(!dir.join("d2").exists());
    refused(
        dir,
        &[
            "federation",
            "ca",
            "sign-member",
            "--member",
            "bob.other.org",
            "--ca-dir",
            "ca",
            "--out",
            "bob",
        ],
        "not below the federation domain",
    );
    assert!(!dir.join("bob").exists());

    // Over an existing CA: refused, and the old one is intact.
    refused(
        dir,
        &[
            "federation",
            "ca",
            "init",
            "--domain",
            "home.collective",
            "--out",
            "ca",
        ],
        "refusing to overwrite",
    );
    assert_eq!(std::fs::read(dir.join("ca/root-ca.crt")).unwrap(), root_before);
    assert_eq!(std::fs::read(dir.join("ca/root-ca.key")).unwrap(), key_before);
    assert_eq!(file_names(&dir.join("ca")), vec!["root-ca.crt", "root-ca.key"]);

    cli_ok(
        dir,
        &[
            "federation",
            "ca",
            "sign-member",
            "--member",
            "bob",
            "--ca-dir",
            "ca",
            "--out",
            "bob",
        ],
    );
    let member_before = std::fs::read(dir.join("bob/member-ca.crt")).unwrap();
    refused(
        dir,
        &[
            "federation",
            "ca",
            "sign-member",
            "--member",
            "bob",
            "--ca-dir",
            "ca",
            "--out",
            "bob",
        ],
        "refusing to overwrite",
    );
    assert_eq!(
        std::fs::read(dir.join("bob/member-ca.crt")).unwrap(),
        member_before
    );

    // A root CA file that is not a root (a member CA in its place) is refused by the loader.
    std::fs::create_dir(dir.join("fake")).unwrap();
    std::fs::copy(dir.join("bob/member-ca.crt"), dir.join("fake/root-ca.crt")).unwrap();
    std::fs::copy(dir.join("bob/member-ca.key"), dir.join("fake/root-ca.key")).unwrap();
    refused(
        dir,
        &[
            "federation",
            "ca",
            "sign-member",
            "--member",
            "eve",
            "--ca-dir",
            "fake",
            "--out",
            "eve",
        ],
        "loading the root CA",
    );
    assert!(!dir.join("eve").exists());
}

/// Kills the child process when the test ends, whatever the outcome.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn t80_federation_init_from_an_existing_root_serves_and_leaves_the_root_key_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    cli_ok(
        dir,
        &[
            "federation",
            "ca",
            "init",
            "--domain",
            "fed.example",
            "--out",
            "ca",
        ],
    );
    let listen = format!("127.0.0.1:{}", support::free_port());

    // Refusals first: a --domain that contradicts the root, and a missing CA directory.
    refused(
        dir,
        &[
            "federation",
            "init",
            "--ca-dir",
            "ca",
            "--domain",
            "other.example",
            "--member",
            "alice",
            "--data-dir",
            "coord",
            "--listen",
            &listen,
        ],
        "differs from the federation domain",
    );
    refused(
        dir,
        &[
            "federation",
            "init",
            "--ca-dir",
            "none",
            "--member",
            "alice",
            "--data-dir",
            "coord",
            "--listen",
            &listen,
        ],
        "no federation root CA",
    );
    assert!(!dir.join("coord").exists());

    let out = cli_ok(
        dir,
        &[
            "federation",
            "init",
            "--ca-dir",
            "ca",
            "--member",
            "alice",
            "--data-dir",
            "coord",
            "--listen",
            &listen,
        ],
    );
    assert!(out.contains("alice.fed.example"), "{out}");
    let pki = dir.join("coord").join("pki");
    assert!(
        !pki.join("federation-ca.key").exists(),
        "the root key stays in ca/"
    );
    assert_eq!(
        std::fs::read(pki.join("root-ca.crt")).unwrap(),
        std::fs::read(dir.join("ca/root-ca.crt")).unwrap()
    );
    assert_eq!(
        openssl_verify(&pki, "coordinator.crt").trim(),
        "coordinator.crt: OK"
    );

    // The member it made works: the coordinator serves the admin profile over mutual TLS.
    let child = Command::new(support::binary())
        .current_dir(dir)
        .args(["coordinator", "run", "--data-dir", "coord"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child);
    support::wait_for_port(&listen, Duration::from_secs(20)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = cli(dir, &["mkdir", "/hello"]);
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mkdir never succeeded: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cli_ok(dir, &["ls", "/"]).contains("hello"));
}
