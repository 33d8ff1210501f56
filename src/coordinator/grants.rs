//! Grants in force: what a caller of the `Meta` service may do with the member's namespace.
//!
//! Roles, from the caller's verified certificate:
//! - **admin**: the member's admin client, `admin@<member>` (the profile `up` and `coordinator
//!   init` write; user invites refuse that name): everything.
//! - **coordinator**, **node**: as before grants existed (coordinators everything; nodes only
//!   their own reports, checked in `meta_service`).
//! - **user**: any other client of the member: only what its grants allow. READ for stat, list
//!   and reading a file; WRITE for mkdir, writing and committing; DELETE for rm; mv needs DELETE
//!   at the source and WRITE at the destination. Commands that shape the member (datastores,
//!   grants, invites, certificates, coordinators, nodes, replicas) and the audit export are the
//!   admin's.
//!
//! A grant covers its path and everything below it, for a subject that is the caller's address
//! or a wildcard matching it, until it expires. The check runs before a command is proposed,
//! against this coordinator's projections: a grant revoked a moment before may still admit one
//! command in flight (revocation is not a barrier; documented in docs/security.md).

use crate::transport::Caller;
use collective_events::decide::{RIGHT_DELETE, RIGHT_READ, RIGHT_SHARE, RIGHT_WRITE};
use collective_events::pb::{self, ComponentType, command_envelope::Command};
use collective_events::{FederatedAddress, NamespacePath};
use tonic::Status;

/// The local part of the member's admin client.
pub const ADMIN_LOCAL: &str = super::bootstrap::ADMIN_LOCAL;

/// Who a caller is, for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Coordinator,
    Node,
    User,
}

impl Role {
    pub fn of(caller: &Caller) -> Role {
        match caller.component {
            ComponentType::Coordinator => Role::Coordinator,
            ComponentType::Node => Role::Node,
            _ if is_admin_address(&caller.address, &caller.member_domain) => Role::Admin,
            _ => Role::User,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Coordinator => "coordinator",
            Role::Node => "node",
            Role::User => "user",
        }
    }
}

fn is_admin_address(address: &str, member_domain: &str) -> bool {
    address.eq_ignore_ascii_case(&format!("{ADMIN_LOCAL}@{member_domain}"))
}

/// What a command needs: rights at paths, or the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    Rights(Vec<(String, u32)>),
    Admin,
}

/// The rights a client command needs.
pub fn command_needs(command: Option<&Command>) -> Needs {
    match command {
        Some(Command::CreateDirectory(c)) => Needs::Rights(vec![(c.path.clone(), RIGHT_WRITE)]),
        Some(Command::CommitFileVersion(c)) => Needs::Rights(vec![(c.path.clone(), RIGHT_WRITE)]),
        Some(Command::RemoveEntry(c)) => Needs::Rights(vec![(c.path.clone(), RIGHT_DELETE)]),
        Some(Command::MoveEntry(c)) => {
            Needs::Rights(vec![(c.from.clone(), RIGHT_DELETE), (c.to.clone(), RIGHT_WRITE)])
        }
        _ => Needs::Admin,
    }
}

/// The rights `grants` give `subject` at `path` at time `now_unix_ms` (a bit set).
pub fn rights_at(grants: &[pb::GrantSpec], subject: &str, path: &str, now_unix_ms: i64) -> u32 {
    let (Ok(subject), Ok(path)) = (FederatedAddress::parse(subject), NamespacePath::parse(path)) else {
        return 0;
    };
    grants
        .iter()
        .filter(|g| g.expires_at_unix_ms.is_none_or(|end| now_unix_ms < end))
        .filter(|g| FederatedAddress::parse(&g.subject).is_ok_and(|s| s.matches(&subject)))
        .filter(|g| NamespacePath::parse(&g.path).is_ok_and(|p| path.starts_with(&p)))
        .fold(0, |rights, g| rights | g.rights)
}

/// The grants held by `subject` (matching it, unexpired).
pub fn held_by(
    grants: &[(Vec<u8>, pb::GrantSpec)],
    subject: &str,
    now_unix_ms: i64,
) -> Vec<(Vec<u8>, pb::GrantSpec)> {
    let Ok(subject) = FederatedAddress::parse(subject) else {
        return Vec::new();
    };
    grants
        .iter()
        .filter(|(_, g)| g.expires_at_unix_ms.is_none_or(|end| now_unix_ms < end))
        .filter(|(_, g)| FederatedAddress::parse(&g.subject).is_ok_and(|s| s.matches(&subject)))
        .cloned()
        .collect()
}

/// Refuses `caller` unless its grants give `right` at `path`; admins and coordinators pass.
pub fn check_rights(
    caller: &Caller,
    grants: &[pb::GrantSpec],
    needs: &[(String, u32)],
    now_unix_ms: i64,
) -> Result<(), Status> {
    if matches!(Role::of(caller), Role::Admin | Role::Coordinator) {
        return Ok(());
    }
    for (path, right) in needs {
        let held = rights_at(grants, &caller.address, path, now_unix_ms);
        if held & right != *right {
            return Err(Status::permission_denied(format!(
                "{} may not {} {path}: it holds no {} grant there",
                caller.address,
                verb(*right),
                right_name(*right)
            )));
        }
    }
    Ok(())
}

/// Refuses anyone but the member's admin (and its coordinators, which act for the member).
pub fn require_admin(caller: &Caller, what: &str) -> Result<(), Status> {
    match Role::of(caller) {
        Role::Admin | Role::Coordinator => Ok(()),
        _ => Err(Status::permission_denied(format!(
            "{} may not {what}: only the member's admin ({ADMIN_LOCAL}@{}) may",
            caller.address, caller.member_domain
        ))),
    }
}

/// Every grant in the projections, with its id.
pub fn load(store: &collective_projections::Store) -> Result<Vec<(Vec<u8>, pb::GrantSpec)>, Status> {
    Ok(store
        .grants()
        .map_err(super::errors::storage)?
        .into_iter()
        .filter_map(|r| r.issued)
        .filter_map(|g| g.grant.map(|spec| (g.grant_id, spec)))
        .collect())
}

/// The authorization of a command submitted by a client: its grants, or the admin.
/// Nodes and coordinators are left to the rules they had before grants.
pub fn authorize_command(
    coordinator: &super::Coordinator,
    caller: &Caller,
    command: Option<&Command>,
) -> Result<(), Status> {
    if Role::of(caller) != Role::User {
        return Ok(());
    }
    match command_needs(command) {
        Needs::Admin => {
            let name = command.map_or("an empty command", collective_events::decide::command_name);
            require_admin(caller, &format!("submit {name}"))
        }
        Needs::Rights(needs) => authorize_rights(coordinator, caller, &needs),
    }
}

/// Refuses a user without `right` at `path` (a read or a plan); others pass.
pub fn authorize_path(
    coordinator: &super::Coordinator,
    caller: &Caller,
    path: &str,
    right: u32,
) -> Result<(), Status> {
    if Role::of(caller) != Role::User {
        return Ok(());
    }
    authorize_rights(coordinator, caller, &[(path.to_string(), right)])
}

fn authorize_rights(
    coordinator: &super::Coordinator,
    caller: &Caller,
    needs: &[(String, u32)],
) -> Result<(), Status> {
    let grants: Vec<pb::GrantSpec> = load(&coordinator.store)?.into_iter().map(|(_, g)| g).collect();
    check_rights(caller, &grants, needs, super::meta_service::now_unix_ms())
}

/// Refuses a user (an invited client) what only the admin may do; other roles keep their rules.
pub fn refuse_users(caller: &Caller, what: &str) -> Result<(), Status> {
    match Role::of(caller) {
        Role::User => require_admin(caller, what),
        _ => Ok(()),
    }
}

/// `read+write`, for messages and listings.
pub fn rights_text(rights: u32) -> String {
    let names: Vec<&str> = [RIGHT_READ, RIGHT_WRITE, RIGHT_DELETE, RIGHT_SHARE]
        .into_iter()
        .filter(|r| rights & r != 0)
        .map(right_name)
        .collect();
    names.join("+")
}

fn right_name(right: u32) -> &'static str {
    match right {
        RIGHT_READ => "read",
        RIGHT_WRITE => "write",
        RIGHT_DELETE => "delete",
        RIGHT_SHARE => "share",
        _ => "unknown",
    }
}

fn verb(right: u32) -> &'static str {
    match right {
        RIGHT_READ => "read",
        RIGHT_WRITE => "write",
        RIGHT_DELETE => "delete",
        _ => "share",
    }
}

/// Rights named like `read+write` (also `r`, `rw`, `all`) as a bit set.
pub fn parse_rights(text: &str) -> Result<u32, String> {
    let mut rights = 0;
    for part in text.split(['+', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        rights |= match part.to_ascii_lowercase().as_str() {
            "read" | "r" => RIGHT_READ,
            "write" | "w" => RIGHT_WRITE,
            "delete" | "d" => RIGHT_DELETE,
            "share" | "s" => RIGHT_SHARE,
            "rw" => RIGHT_READ | RIGHT_WRITE,
            "all" => RIGHT_READ | RIGHT_WRITE | RIGHT_DELETE | RIGHT_SHARE,
            other => {
                return Err(format!(
                    "unknown right {other:?} (known: read, write, delete, share, all)"
                ));
            }
        };
    }
    if rights == 0 {
        return Err(format!("{text:?} names no rights"));
    }
    Ok(rights)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const MEMBER: &str = "alice.home.collective";

    fn caller(address: &str, component: ComponentType) -> Caller {
        Caller {
            address: address.into(),
            member_domain: MEMBER.into(),
            component,
        }
    }

    fn user() -> Caller {
        caller("bob@alice.home.collective", ComponentType::Client)
    }

    fn grant(path: &str, subject: &str, rights: u32, expires: Option<i64>) -> pb::GrantSpec {
        pb::GrantSpec {
            path: path.into(),
            subject: subject.into(),
            rights,
            expires_at_unix_ms: expires,
        }
    }

    #[test]
    fn roles_come_from_component_and_admin_address() {
        assert_eq!(
            Role::of(&caller("admin@alice.home.collective", ComponentType::Client)),
            Role::Admin
        );
        assert_eq!(
            Role::of(&caller("ADMIN@alice.home.collective", ComponentType::Client)),
            Role::Admin
        );
        assert_eq!(Role::of(&user()), Role::User);
        assert_eq!(
            Role::of(&caller("admin@alice.home.collective", ComponentType::Node)),
            Role::Node
        );
        assert_eq!(
            Role::of(&caller(
                "coord-1@alice.home.collective",
                ComponentType::Coordinator
            )),
            Role::Coordinator
        );
    }

    #[test]
    fn a_grant_covers_its_path_and_below_only() {
        let grants = [grant(
            "/shared",
            "bob@alice.home.collective",
            RIGHT_READ | RIGHT_WRITE,
            None,
        )];
        let bob = "bob@alice.home.collective";
        assert_eq!(rights_at(&grants, bob, "/shared", 0), 3);
        assert_eq!(rights_at(&grants, bob, "/shared/a/b", 0), 3);
        assert_eq!(rights_at(&grants, bob, "/sharedx", 0), 0);
        assert_eq!(rights_at(&grants, bob, "/", 0), 0);
        assert_eq!(rights_at(&grants, "carol@alice.home.collective", "/shared", 0), 0);
    }

    #[test]
    fn wildcards_match_and_expired_grants_do_not_count() {
        let grants = [
            grant("/media", "*@alice.home.collective", RIGHT_READ, None),
            grant("/media", "*@*.home.collective", RIGHT_WRITE, Some(100)),
        ];
        let bob = "bob@alice.home.collective";
        assert_eq!(
            rights_at(&grants, bob, "/media/film", 99),
            RIGHT_READ | RIGHT_WRITE
        );
        assert_eq!(rights_at(&grants, bob, "/media/film", 100), RIGHT_READ);
        assert_eq!(
            rights_at(&grants, "x@bob.home.collective", "/media", 0),
            RIGHT_WRITE
        );
    }

    #[test]
    fn commands_need_the_right_rights() {
        let mv = Command::MoveEntry(pb::MoveEntry {
            from: "/a".into(),
            to: "/b".into(),
        });
        assert_eq!(
            command_needs(Some(&mv)),
            Needs::Rights(vec![("/a".into(), RIGHT_DELETE), ("/b".into(), RIGHT_WRITE)])
        );
        let grant = Command::IssueGrant(pb::IssueGrant::default());
        assert_eq!(command_needs(Some(&grant)), Needs::Admin);
        assert_eq!(command_needs(None), Needs::Admin);
    }

    #[test]
    fn a_refusal_names_the_path_and_the_missing_right() {
        let grants = [grant("/shared", "bob@alice.home.collective", RIGHT_READ, None)];
        let needs = [("/shared/x".to_string(), RIGHT_WRITE)];
        let refused = check_rights(&user(), &grants, &needs, 0).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(refused.message().contains("/shared/x"), "{}", refused.message());
        assert!(refused.message().contains("write"), "{}", refused.message());
        let admin = caller("admin@alice.home.collective", ComponentType::Client);
        assert!(check_rights(&admin, &[], &needs, 0).is_ok());
        assert!(check_rights(&user(), &grants, &[("/shared".into(), RIGHT_READ)], 0).is_ok());
    }

    #[test]
    fn mv_needs_delete_at_the_source_and_write_at_the_destination() {
        let grants = [
            grant("/in", "bob@alice.home.collective", RIGHT_DELETE, None),
            grant("/out", "bob@alice.home.collective", RIGHT_WRITE, None),
        ];
        let Needs::Rights(ok) = command_needs(Some(&Command::MoveEntry(pb::MoveEntry {
            from: "/in/a".into(),
            to: "/out/a".into(),
        }))) else {
            panic!("mv needs rights")
        };
        assert!(check_rights(&user(), &grants, &ok, 0).is_ok());
        let Needs::Rights(back) = command_needs(Some(&Command::MoveEntry(pb::MoveEntry {
            from: "/out/a".into(),
            to: "/in/a".into(),
        }))) else {
            panic!("mv needs rights")
        };
        assert!(check_rights(&user(), &grants, &back, 0).is_err());
    }

    #[test]
    fn only_admins_and_coordinators_pass_require_admin() {
        assert!(require_admin(&user(), "export the event log").is_err());
        assert!(require_admin(&caller("n@alice.home.collective", ComponentType::Node), "x").is_err());
        assert!(require_admin(&caller("admin@alice.home.collective", ComponentType::Client), "x").is_ok());
    }

    #[test]
    fn rights_parse_and_print() {
        assert_eq!(parse_rights("read+write").unwrap(), 3);
        assert_eq!(parse_rights("rw").unwrap(), 3);
        assert_eq!(parse_rights("all").unwrap(), 15);
        assert!(parse_rights("fly").is_err());
        assert!(parse_rights("").is_err());
        assert_eq!(rights_text(5), "read+delete");
    }
}
