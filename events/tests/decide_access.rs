//! Given/when/then tests of the access decisions: datastores and the grants on them.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use collective_events::RejectionCode::*;
use collective_events::pb::{self, command_envelope::Command, event_envelope::Event};
use support::{NOW_MS, code, given};

const GRANT_ID: [u8; 16] = [0x47; 16];

fn datastore(path: &str) -> pb::CreateDatastore {
    pb::CreateDatastore {
        path: path.into(),
        owner: "alice@alice.home.collective".into(),
        strategy: pb::PlacementStrategy::Backup as i32,
        replicas: 3,
    }
}

fn spec(subject: &str, rights: u32) -> pb::GrantSpec {
    pb::GrantSpec {
        path: "/shared".into(),
        subject: subject.into(),
        rights,
        expires_at_unix_ms: None,
    }
}

fn issue_grant(spec: pb::GrantSpec) -> Command {
    Command::IssueGrant(pb::IssueGrant {
        grant_id: GRANT_ID.to_vec(),
        grant: Some(spec),
    })
}

// --- Datastores ------------------------------------------------------------------------------

#[test]
fn creating_a_datastore_records_the_canonical_owner() {
    let state = given().initialized();
    let cmd = pb::CreateDatastore {
        owner: "Alice@Alice.home.collective".into(),
        ..datastore("/media/movies")
    };
    assert_eq!(
        state.when(Command::CreateDatastore(cmd)),
        Ok(vec![Event::DatastoreCreated(pb::DatastoreCreated {
            path: "/media/movies".into(),
            owner: "alice@alice.home.collective".into(),
            strategy: pb::PlacementStrategy::Backup as i32,
            replicas: 3,
        })])
    );
}

#[test]
fn creating_a_datastore_twice_is_already_exists() {
    let state = given().initialized().datastore("/shared");
    assert_eq!(
        code(state.when(Command::CreateDatastore(datastore("/shared")))),
        AlreadyExists
    );
}

#[test]
fn a_datastore_with_bad_fields_is_invalid_argument() {
    let state = given().initialized();
    let cases = [
        datastore("shared"),
        datastore("/shared/"),
        pb::CreateDatastore {
            owner: "alice".into(),
            ..datastore("/s")
        },
        pb::CreateDatastore {
            owner: "*@alice.home.collective".into(),
            ..datastore("/s")
        },
        pb::CreateDatastore {
            strategy: pb::PlacementStrategy::Unspecified as i32,
            ..datastore("/s")
        },
        pb::CreateDatastore {
            strategy: 17,
            ..datastore("/s")
        },
        pb::CreateDatastore {
            replicas: 0,
            ..datastore("/s")
        },
        pb::CreateDatastore {
            replicas: 17,
            ..datastore("/s")
        },
    ];
    for cmd in cases {
        assert_eq!(
            code(state.when(Command::CreateDatastore(cmd.clone()))),
            InvalidArgument,
            "{cmd:?}"
        );
    }
    let sixteen = pb::CreateDatastore {
        replicas: 16,
        ..datastore("/s")
    };
    assert!(state.when(Command::CreateDatastore(sixteen)).is_ok());
}

// --- Grants ----------------------------------------------------------------------------------

#[test]
fn issuing_a_grant_to_a_wildcard_with_an_expiry() {
    let state = given().initialized().datastore("/shared");
    let grant = pb::GrantSpec {
        expires_at_unix_ms: Some(NOW_MS + 1),
        ..spec("*@*.Home.Collective", 1 | 2 | 4 | 8)
    };
    assert_eq!(
        state.when(issue_grant(grant.clone())),
        Ok(vec![Event::GrantIssued(pb::GrantIssued {
            grant_id: GRANT_ID.to_vec(),
            grant: Some(pb::GrantSpec {
                subject: "*@*.home.collective".into(),
                ..grant
            }),
        })])
    );
}

#[test]
fn issuing_a_grant_id_twice_is_already_exists() {
    let state = given()
        .initialized()
        .datastore("/shared")
        .grant(GRANT_ID, spec("bob@alice.home.collective", 1));
    assert_eq!(
        code(state.when(issue_grant(spec("carol@alice.home.collective", 1)))),
        AlreadyExists
    );
}

#[test]
fn a_grant_on_a_path_without_a_datastore_is_not_found() {
    let state = given().initialized().datastore("/other");
    assert_eq!(
        code(state.when(issue_grant(spec("bob@alice.home.collective", 1)))),
        NotFound
    );
}

#[test]
fn a_grant_with_bad_fields_is_invalid_argument() {
    let state = given().initialized().datastore("/shared");
    let bob = "bob@alice.home.collective";
    let cases = [
        issue_grant(spec(bob, 0)),
        issue_grant(spec(bob, 16)),
        issue_grant(spec(bob, 1 | 32)),
        issue_grant(spec("", 1)),
        issue_grant(spec("bob", 1)),
        issue_grant(spec("bob@*.home.collective", 1)),
        issue_grant(spec("/shared@alice.home.collective", 1)),
        issue_grant(pb::GrantSpec {
            path: "shared".into(),
            ..spec(bob, 1)
        }),
        issue_grant(pb::GrantSpec {
            expires_at_unix_ms: Some(NOW_MS),
            ..spec(bob, 1)
        }),
        Command::IssueGrant(pb::IssueGrant {
            grant_id: vec![1; 8],
            grant: Some(spec(bob, 1)),
        }),
        Command::IssueGrant(pb::IssueGrant {
            grant_id: GRANT_ID.to_vec(),
            grant: None,
        }),
    ];
    for cmd in cases {
        assert_eq!(code(state.when(cmd.clone())), InvalidArgument, "{cmd:?}");
    }
}

#[test]
fn revoking_a_grant() {
    let state = given()
        .initialized()
        .datastore("/shared")
        .grant(GRANT_ID, spec("bob@alice.home.collective", 1));
    assert_eq!(
        state.when(Command::RevokeGrant(pb::RevokeGrant {
            grant_id: GRANT_ID.to_vec()
        })),
        Ok(vec![Event::GrantRevoked(pb::GrantRevoked {
            grant_id: GRANT_ID.to_vec()
        })])
    );
}

#[test]
fn revoking_an_unknown_grant_is_not_found() {
    let state = given().initialized();
    assert_eq!(
        code(state.when(Command::RevokeGrant(pb::RevokeGrant {
            grant_id: GRANT_ID.to_vec()
        }))),
        NotFound
    );
    assert_eq!(
        code(state.when(Command::RevokeGrant(pb::RevokeGrant { grant_id: vec![] }))),
        InvalidArgument
    );
}
