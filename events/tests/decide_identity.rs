//! Given/when/then tests of the identity decisions: invites and certificates.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use collective_events::RejectionCode::*;
use collective_events::pb::{self, command_envelope::Command, event_envelope::Event};
use support::{NOW_MS, code, given, hash};

const INVITE_ID: [u8; 16] = [0x49; 16];
const SERIAL: [u8; 8] = [0x53; 8];

fn spec(subject: &str, rights: u32) -> pb::GrantSpec {
    pb::GrantSpec {
        path: "/shared".into(),
        subject: subject.into(),
        rights,
        expires_at_unix_ms: None,
    }
}

fn invite(kind: pb::InviteKind) -> pb::IssueInvite {
    pb::IssueInvite {
        invite_id: INVITE_ID.to_vec(),
        code_hash: hash(0xc0).to_vec(),
        kind: kind as i32,
        grants: vec![spec("", 3)],
        max_uses: 2,
        expires_at_unix_ms: NOW_MS + 86_400_000,
        member: String::new(),
    }
}

/// The `InviteIssued` an `IssueInvite` leads to, as the state of a redemption test.
fn issued(cmd: pb::IssueInvite) -> pb::InviteIssued {
    pb::InviteIssued {
        invite_id: cmd.invite_id,
        code_hash: cmd.code_hash,
        kind: cmd.kind,
        grants: cmd.grants,
        max_uses: cmd.max_uses,
        expires_at_unix_ms: cmd.expires_at_unix_ms,
        member: cmd.member,
    }
}

fn redeem(redeemer: &str) -> Command {
    Command::RedeemInvite(pb::RedeemInvite {
        code_hash: hash(0xc0).to_vec(),
        redeemer: redeemer.into(),
        certificate_serial: SERIAL.to_vec(),
    })
}

/// The events of a redemption of the standard invite: the use, then its one grant (read+write on
/// /shared) issued to the redeemer under an id derived from the invite id, the use and the index.
fn redeemed(redeemer: &str, uses: u32) -> Result<Vec<Event>, collective_events::Rejection> {
    Ok(vec![
        Event::InviteRedeemed(pb::InviteRedeemed {
            invite_id: INVITE_ID.to_vec(),
            redeemer: redeemer.into(),
            certificate_serial: SERIAL.to_vec(),
            uses,
        }),
        Event::GrantIssued(pb::GrantIssued {
            grant_id: redeemed_grant_id(uses, 0),
            grant: Some(spec(redeemer, 3)),
        }),
    ])
}

fn redeemed_grant_id(uses: u32, index: u32) -> Vec<u8> {
    let mut id = INVITE_ID[..8].to_vec();
    id.extend_from_slice(&uses.to_be_bytes());
    id.extend_from_slice(&index.to_be_bytes());
    id
}

fn certificate() -> pb::IssueCertificate {
    pb::IssueCertificate {
        serial: SERIAL.to_vec(),
        subject: "laptop@alice.home.collective".into(),
        component: pb::ComponentType::Client as i32,
        not_after_unix_ms: NOW_MS + 1,
        fingerprint: vec![0xf1; 32],
    }
}

fn certificate_issued() -> pb::CertificateIssued {
    let c = certificate();
    pb::CertificateIssued {
        serial: c.serial,
        subject: c.subject,
        component: c.component,
        not_after_unix_ms: c.not_after_unix_ms,
        fingerprint: c.fingerprint,
    }
}

fn revoke_certificate() -> Command {
    Command::RevokeCertificate(pb::RevokeCertificate {
        serial: SERIAL.to_vec(),
        reason: "laptop stolen".into(),
    })
}

// --- Invites ---------------------------------------------------------------------------------

#[test]
fn issuing_a_user_invite() {
    let state = given().initialized().datastore("/shared");
    let cmd = invite(pb::InviteKind::User);
    assert_eq!(
        state.when(Command::IssueInvite(cmd.clone())),
        Ok(vec![Event::InviteIssued(issued(cmd))])
    );
}

#[test]
fn issuing_a_member_invite_for_a_named_member() {
    let state = given().initialized().datastore("/shared");
    let cmd = pb::IssueInvite {
        member: "Bob".into(),
        grants: vec![],
        ..invite(pb::InviteKind::Member)
    };
    assert_eq!(
        state.when(Command::IssueInvite(cmd.clone())),
        Ok(vec![Event::InviteIssued(pb::InviteIssued {
            member: "bob".into(),
            ..issued(cmd)
        })])
    );
}

#[test]
fn an_invite_id_or_code_used_before_is_already_exists() {
    let state =
        given()
            .initialized()
            .datastore("/shared")
            .invite(issued(invite(pb::InviteKind::User)), 0, false);
    let same_id = pb::IssueInvite {
        code_hash: hash(0xc1).to_vec(),
        ..invite(pb::InviteKind::User)
    };
    let same_code = pb::IssueInvite {
        invite_id: vec![1; 16],
        ..invite(pb::InviteKind::User)
    };
    assert_eq!(code(state.when(Command::IssueInvite(same_id))), AlreadyExists);
    assert_eq!(code(state.when(Command::IssueInvite(same_code))), AlreadyExists);
}

#[test]
fn an_invite_with_bad_fields_is_invalid_argument() {
    let state = given().initialized().datastore("/shared");
    let user = || invite(pb::InviteKind::User);
    let cases = [
        pb::IssueInvite {
            invite_id: vec![1; 15],
            ..user()
        },
        pb::IssueInvite {
            code_hash: vec![1; 16],
            ..user()
        },
        pb::IssueInvite {
            kind: pb::InviteKind::Unspecified as i32,
            ..user()
        },
        pb::IssueInvite {
            max_uses: 0,
            ..user()
        },
        pb::IssueInvite {
            max_uses: 1001,
            ..user()
        },
        pb::IssueInvite {
            expires_at_unix_ms: NOW_MS,
            ..user()
        },
        pb::IssueInvite {
            grants: vec![spec("", 0)],
            ..user()
        },
        pb::IssueInvite {
            grants: vec![spec("bob", 1)],
            ..user()
        },
        pb::IssueInvite {
            grants: vec![spec("", 1); 65],
            ..user()
        },
        pb::IssueInvite {
            member: "bob".into(),
            ..user()
        },
        pb::IssueInvite {
            member: "bob.x".into(),
            ..invite(pb::InviteKind::Member)
        },
    ];
    for cmd in cases {
        assert_eq!(
            code(state.when(Command::IssueInvite(cmd.clone()))),
            InvalidArgument,
            "{cmd:?}"
        );
    }
}

#[test]
fn an_invite_granting_on_a_missing_datastore_is_not_found() {
    let state = given().initialized();
    assert_eq!(
        code(state.when(Command::IssueInvite(invite(pb::InviteKind::User)))),
        NotFound
    );
}

#[test]
fn redeeming_a_user_invite_counts_the_use() {
    let state = given()
        .initialized()
        .invite(issued(invite(pb::InviteKind::User)), 1, false);
    assert_eq!(
        state.when(redeem("Bob@alice.home.collective")),
        redeemed("bob@alice.home.collective", 2)
    );
}

#[test]
fn redeeming_a_member_invite_from_another_member() {
    let open = issued(invite(pb::InviteKind::Member));
    let state = given().initialized().invite(open, 0, false);
    assert_eq!(
        state.when(redeem("coord@bob.home.collective")),
        redeemed("coord@bob.home.collective", 1)
    );
    let named = pb::InviteIssued {
        member: "bob".into(),
        ..issued(invite(pb::InviteKind::Member))
    };
    let state = given().initialized().invite(named, 0, false);
    assert_eq!(
        state.when(redeem("coord@bob.home.collective")),
        redeemed("coord@bob.home.collective", 1)
    );
    assert_eq!(
        code(state.when(redeem("coord@carol.home.collective"))),
        InvalidArgument
    );
}

#[test]
fn redeeming_keeps_a_grant_with_its_own_subject_and_issues_every_grant() {
    let cmd = pb::IssueInvite {
        grants: vec![spec("", 1), spec("*@*.home.collective", 1)],
        ..invite(pb::InviteKind::User)
    };
    let state = given().initialized().invite(issued(cmd), 0, false);
    let events = state.when(redeem("bob@alice.home.collective")).unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[1],
        Event::GrantIssued(pb::GrantIssued {
            grant_id: redeemed_grant_id(1, 0),
            grant: Some(spec("bob@alice.home.collective", 1)),
        })
    );
    assert_eq!(
        events[2],
        Event::GrantIssued(pb::GrantIssued {
            grant_id: redeemed_grant_id(1, 1),
            grant: Some(spec("*@*.home.collective", 1)),
        })
    );
}

#[test]
fn redeeming_when_the_derived_grant_id_exists_is_already_exists() {
    let state = given()
        .initialized()
        .invite(issued(invite(pb::InviteKind::User)), 0, false)
        .grant(
            redeemed_grant_id(1, 0).try_into().unwrap(),
            spec("x@alice.home.collective", 1),
        );
    assert_eq!(
        code(state.when(redeem("bob@alice.home.collective"))),
        AlreadyExists
    );
}

#[test]
fn redeeming_an_unknown_code_is_not_found() {
    let state = given().initialized();
    assert_eq!(code(state.when(redeem("bob@alice.home.collective"))), NotFound);
}

#[test]
fn redeeming_a_revoked_invite_is_revoked() {
    let state = given()
        .initialized()
        .invite(issued(invite(pb::InviteKind::User)), 0, true);
    assert_eq!(code(state.when(redeem("bob@alice.home.collective"))), Revoked);
}

#[test]
fn redeeming_at_or_after_expiry_is_expired() {
    let at_now = pb::IssueInvite {
        expires_at_unix_ms: NOW_MS,
        ..invite(pb::InviteKind::User)
    };
    let state = given().initialized().invite(issued(at_now), 0, false);
    assert_eq!(code(state.when(redeem("bob@alice.home.collective"))), Expired);
}

#[test]
fn redeeming_a_used_up_invite_is_exhausted() {
    let state = given()
        .initialized()
        .invite(issued(invite(pb::InviteKind::User)), 2, false);
    assert_eq!(code(state.when(redeem("bob@alice.home.collective"))), Exhausted);
}

#[test]
fn redeeming_with_a_bad_redeemer_code_or_serial_is_invalid_argument() {
    let state = given()
        .initialized()
        .invite(issued(invite(pb::InviteKind::User)), 0, false);
    assert_eq!(code(state.when(redeem("bob"))), InvalidArgument);
    assert_eq!(
        code(state.when(redeem("*@alice.home.collective"))),
        InvalidArgument
    );
    assert_eq!(
        code(state.when(redeem("bob@bob.home.collective"))),
        InvalidArgument,
        "user from elsewhere"
    );
    let short_code = pb::RedeemInvite {
        code_hash: vec![1; 8],
        redeemer: "b@alice.home.collective".into(),
        ..Default::default()
    };
    assert_eq!(
        code(state.when(Command::RedeemInvite(short_code))),
        InvalidArgument
    );
    let long_serial = pb::RedeemInvite {
        code_hash: hash(0xc0).to_vec(),
        redeemer: "b@alice.home.collective".into(),
        certificate_serial: vec![1; 21],
    };
    assert_eq!(
        code(state.when(Command::RedeemInvite(long_serial))),
        InvalidArgument
    );
    let member = given()
        .initialized()
        .invite(issued(invite(pb::InviteKind::Member)), 0, false);
    assert_eq!(
        code(member.when(redeem("coord@alice.home.collective"))),
        InvalidArgument,
        "own domain"
    );
    assert_eq!(
        code(member.when(redeem("coord@bob.other.collective"))),
        InvalidArgument,
        "other federation"
    );
}

#[test]
fn revoking_an_invite() {
    let state = given()
        .initialized()
        .invite(issued(invite(pb::InviteKind::User)), 1, false);
    assert_eq!(
        state.when(Command::RevokeInvite(pb::RevokeInvite {
            invite_id: INVITE_ID.to_vec()
        })),
        Ok(vec![Event::InviteRevoked(pb::InviteRevoked {
            invite_id: INVITE_ID.to_vec()
        })])
    );
}

#[test]
fn revoking_an_unknown_invite_is_not_found() {
    let state = given().initialized();
    assert_eq!(
        code(state.when(Command::RevokeInvite(pb::RevokeInvite {
            invite_id: INVITE_ID.to_vec()
        }))),
        NotFound
    );
    assert_eq!(
        code(state.when(Command::RevokeInvite(pb::RevokeInvite { invite_id: vec![1] }))),
        InvalidArgument
    );
}

#[test]
fn revoking_an_invite_twice_is_revoked() {
    let state = given()
        .initialized()
        .invite(issued(invite(pb::InviteKind::User)), 0, true);
    assert_eq!(
        code(state.when(Command::RevokeInvite(pb::RevokeInvite {
            invite_id: INVITE_ID.to_vec()
        }))),
        Revoked
    );
}

// --- Certificates ----------------------------------------------------------------------------

#[test]
fn issuing_a_certificate() {
    let state = given().initialized();
    assert_eq!(
        state.when(Command::IssueCertificate(certificate())),
        Ok(vec![Event::CertificateIssued(certificate_issued())])
    );
}

#[test]
fn issuing_a_serial_twice_is_already_exists() {
    let state = given().initialized().certificate(certificate_issued(), false);
    assert_eq!(
        code(state.when(Command::IssueCertificate(certificate()))),
        AlreadyExists
    );
}

#[test]
fn a_certificate_with_bad_fields_is_invalid_argument() {
    let state = given().initialized();
    let cases = [
        pb::IssueCertificate {
            serial: vec![],
            ..certificate()
        },
        pb::IssueCertificate {
            serial: vec![1; 21],
            ..certificate()
        },
        pb::IssueCertificate {
            subject: "laptop".into(),
            ..certificate()
        },
        pb::IssueCertificate {
            subject: "*@alice.home.collective".into(),
            ..certificate()
        },
        pb::IssueCertificate {
            component: pb::ComponentType::Unspecified as i32,
            ..certificate()
        },
        pb::IssueCertificate {
            not_after_unix_ms: NOW_MS,
            ..certificate()
        },
        pb::IssueCertificate {
            fingerprint: vec![1; 20],
            ..certificate()
        },
    ];
    for cmd in cases {
        assert_eq!(
            code(state.when(Command::IssueCertificate(cmd.clone()))),
            InvalidArgument,
            "{cmd:?}"
        );
    }
}

#[test]
fn revoking_a_certificate() {
    let state = given().initialized().certificate(certificate_issued(), false);
    assert_eq!(
        state.when(revoke_certificate()),
        Ok(vec![Event::CertificateRevoked(pb::CertificateRevoked {
            serial: SERIAL.to_vec(),
            reason: "laptop stolen".into(),
        })])
    );
}

#[test]
fn revoking_an_unknown_certificate_is_not_found() {
    let state = given().initialized();
    assert_eq!(code(state.when(revoke_certificate())), NotFound);
    let no_serial = pb::RevokeCertificate {
        serial: vec![],
        reason: String::new(),
    };
    assert_eq!(
        code(state.when(Command::RevokeCertificate(no_serial))),
        InvalidArgument
    );
}

#[test]
fn revoking_a_certificate_twice_is_revoked() {
    let state = given().initialized().certificate(certificate_issued(), true);
    assert_eq!(code(state.when(revoke_certificate())), Revoked);
}
