//! Bad invites, each refused with a clear error and no state change: expired, used past its
//! limit, revoked, unknown, truncated or mistyped codes; a code naming another federation's root
//! (nothing trusted on first use); malformed and oversized certificate requests; reserved names.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use collective::bootstrap::InviteCodeBody;
use collective::bootstrap::client::{RedeemError, redeem_at};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{cli_as as cli, ok_as as ok, up};

/// A redemption into a fresh home that must fail with `expected` in its message and leave no
/// profile behind, and no new event in the member's log.
fn refused_redeem(admin: &Path, dir: &Path, code: &str, expected: &str) {
    let before = event_count(admin);
    let home = dir.join(format!("joiner-{}", rand::random::<u32>()));
    let out = cli(&home, &["invite", "redeem", code]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "redeeming should fail with {expected:?}");
    assert!(stderr.contains(expected), "expected {expected:?} in: {stderr}");
    assert!(
        !home.join("profile.toml").exists(),
        "a refused redemption wrote a profile"
    );
    assert_eq!(
        event_count(admin),
        before,
        "a refused redemption changed the log: {stderr}"
    );
}

/// Events about invites, grants and certificates in the member's log. (Not every event: the
/// embedded node reports its status in the background.)
fn event_count(admin: &Path) -> u64 {
    let export = ok(admin, &["audit", "export"]);
    let kinds = [
        "\"inviteRedeemed\"",
        "\"grantIssued\"",
        "\"certificateIssued\"",
        "\"inviteRevoked\"",
    ];
    export
        .lines()
        .filter(|line| kinds.iter().any(|kind| line.contains(kind)))
        .count() as u64
}

fn generate(admin: &Path, extra: &[&str]) -> String {
    let mut args = vec!["invite", "generate", "--grant", "/shared:read"];
    args.extend_from_slice(extra);
    ok(admin, &args).trim().to_string()
}

#[test]
fn bad_codes_are_refused_clearly_and_change_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = dir.path().join("admin");
    let _up = up(dir.path(), &admin, &[])?;

    // Expired.
    let expiring = generate(&admin, &["--validity", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    refused_redeem(&admin, dir.path(), &expiring, "expired");

    // Used past its limit: the first use works, the second is refused.
    let once = generate(&admin, &["--max-uses", "1"]);
    ok(&dir.path().join("first"), &["invite", "redeem", &once]);
    refused_redeem(&admin, dir.path(), &once, "used 1 of 1 times");

    // Revoked, by its code; revoking again is refused too.
    let revoked = generate(&admin, &[]);
    ok(&admin, &["invite", "revoke", &revoked]);
    refused_redeem(&admin, dir.path(), &revoked, "revoked");
    let again = cli(&admin, &["invite", "revoke", &revoked]);
    assert!(!again.status.success());

    // Unknown: well formed, right server, a secret nobody issued.
    let real = InviteCodeBody::decode_code(&generate(&admin, &[]))?;
    let unknown = InviteCodeBody {
        secret: rand::random::<[u8; 20]>().to_vec(),
        ..real.clone()
    }
    .encode_code();
    refused_redeem(&admin, dir.path(), &unknown, "no invite has this code");

    // Truncated, mistyped, or not a code at all: refused before anything is sent.
    let code = generate(&admin, &[]);
    refused_redeem(
        &admin,
        dir.path(),
        &code[..code.len() - 7],
        "truncated or mistyped",
    );
    let mut typo: Vec<char> = code.chars().collect();
    let at = typo.len() / 2;
    typo[at] = if typo[at] == 'q' { 'r' } else { 'q' };
    refused_redeem(
        &admin,
        dir.path(),
        &typo.into_iter().collect::<String>(),
        "truncated or mistyped",
    );
    refused_redeem(
        &admin,
        dir.path(),
        "XXXX-XXXX-XXXX-XXXX",
        "starts with \"coll1-\"",
    );

    // A code naming another root: the server is not trusted, nothing is sent.
    let foreign = InviteCodeBody {
        root_fingerprint: vec![0x42; 32],
        ..InviteCodeBody::decode_code(&code)?
    }
    .encode_code();
    refused_redeem(&admin, dir.path(), &foreign, "fingerprint mismatch");

    // The name of the admin is reserved.
    let home = dir.path().join("would-be-admin");
    let out = cli(&home, &["invite", "redeem", &code, "--name", "admin"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
    assert!(!home.join("profile.toml").exists());

    // Every refused invite is still there, unused (except the one used once).
    let list: serde_json::Value = serde_json::from_str(&ok(&admin, &["invite", "list", "--json"]))?;
    let used: u64 = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uses"].as_u64().unwrap())
        .sum();
    assert_eq!(used, 1, "{list}");
    Ok(())
}

#[test]
fn malformed_and_oversized_certificate_requests_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = dir.path().join("admin");
    let _up = up(dir.path(), &admin, &[])?;
    let body = InviteCodeBody::decode_code(&generate(&admin, &[]))?;
    let endpoint = body.endpoints[0].clone();
    let runtime = tokio::runtime::Runtime::new()?;
    let before = event_count(&admin);
    let (garbage, oversized) = runtime.block_on(async {
        let garbage = redeem_at(&endpoint, &body, b"not a csr".to_vec(), "eve", None).await;
        let oversized = redeem_at(&endpoint, &body, vec![0x30; 8 * 1024], "eve", None).await;
        (garbage, oversized)
    });
    for result in [garbage, oversized] {
        match result {
            Err(RedeemError::Refused(status)) => {
                assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
                assert!(status.message().contains("certificate request"), "{status:?}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(event_count(&admin), before);
    // The invite is still usable after the bad requests.
    let home = dir.path().join("user");
    ok(
        &home,
        &["invite", "redeem", &body.encode_code(), "--name", "carol"],
    );
    Ok(())
}

#[test]
fn a_member_invite_signs_a_member_ca_for_the_named_member_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = dir.path().join("admin");
    let _up = up(dir.path(), &admin, &[])?;
    let code = ok(
        &admin,
        &["invite", "generate", "--member", "bob", "--validity", "1h"],
    );
    let code = code.trim();
    let bob_home = dir.path().join("bob-home");
    let bob_data = dir.path().join("bob-data");
    let listen = format!("127.0.0.1:{}", support::free_port());
    let join = |member: &str, invite: &str| {
        cli(
            &bob_home,
            &[
                "federation",
                "join",
                "--invite",
                invite,
                "--member",
                member,
                "--data-dir",
                support::path(&bob_data),
                "--listen",
                &listen,
            ],
        )
    };
    // Another name than the invite's: refused, nothing written.
    let wrong = join("carol", code);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("is for member \"bob\""));
    assert!(!bob_data.join("coordinator.toml").exists());
    // A user invite is not a member invite.
    let user_code = generate(&admin, &[]);
    let wrong_kind = join("bob", &user_code);
    assert!(String::from_utf8_lossy(&wrong_kind.stderr).contains("user invite"));
    // The named member: a member CA signed by the root, a first coordinator and admin profile.
    let joined = join("bob", code);
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    let pki = bob_data.join("pki");
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(pki.join("root-ca.crt"))
        .arg("-untrusted")
        .arg(pki.join("member-ca.crt"))
        .arg(pki.join("coordinator.crt"))
        .output()?;
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("OK"),
        "{verify:?}"
    );
    let profile = std::fs::read_to_string(bob_home.join("profile.toml"))?;
    assert!(profile.contains("admin@bob.home.collective"), "{profile}");
    // The redemption is in alice's log, and the invite is used up.
    let list: serde_json::Value = serde_json::from_str(&ok(&admin, &["invite", "list", "--json"]))?;
    let member = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "member")
        .unwrap();
    assert_eq!(member["uses"], 1);
    assert!(ok(&admin, &["audit", "export"]).contains("admin@bob.home.collective"));
    Ok(())
}
