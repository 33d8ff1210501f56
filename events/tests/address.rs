//! Federated address parsing, canonical form, locality and wildcard matching (seed plan task 1).

#![allow(clippy::unwrap_used, reason = "tests")]

use collective_events::address::{AddressError, DomainPart, FederatedAddress, LocalPart};
use proptest::prelude::*;

/// Whether an error is the one a table row expects.
type Expect = fn(&AddressError) -> bool;

fn parse(text: &str) -> FederatedAddress {
    FederatedAddress::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn valid_addresses_parse_to_their_canonical_form() {
    // (input, canonical form, what it is)
    let cases = [
        (
            "node-01@alice.collective.local",
            "node-01@alice.collective.local",
            "node",
        ),
        (
            "coord@bob.collective.local",
            "coord@bob.collective.local",
            "coordinator",
        ),
        (
            "/files/data.txt@carol.collective.local",
            "/files/data.txt@carol.collective.local",
            "resource",
        ),
        ("alice@home.collective", "alice@home.collective", "user"),
        (
            "bob@garage.collective",
            "bob@garage.collective",
            "user of another federation",
        ),
        (
            "*@*.collective",
            "*@*.collective",
            "anyone anywhere below collective",
        ),
        (
            "*@alice.home.collective",
            "*@alice.home.collective",
            "anyone in one member",
        ),
        (
            "*@*.home.collective",
            "*@*.home.collective",
            "anyone in the federation's members",
        ),
        ("Alice@Home.Collective", "alice@home.collective", "case folded"),
        (
            "/Media/Movies@ALICE.home.collective",
            "/Media/Movies@alice.home.collective",
            "path keeps case",
        ),
        (
            "/@alice.home.collective",
            "/@alice.home.collective",
            "the root as a resource",
        ),
        (
            "/a@b/c.txt@alice.home.collective",
            "/a@b/c.txt@alice.home.collective",
            "path containing @",
        ),
        (
            "/movies/Film (2020).mkv@a.b",
            "/movies/Film (2020).mkv@a.b",
            "spaces in a path",
        ),
        (
            "a.b_c-d@x-1.y2",
            "a.b_c-d@x-1.y2",
            "every allowed local character",
        ),
        (
            "0@xn--bcher-kva.example",
            "0@xn--bcher-kva.example",
            "punycode label",
        ),
    ];
    for (input, canonical, what) in cases {
        let address = parse(input);
        assert_eq!(address.to_string(), canonical, "{what}");
        assert_eq!(parse(canonical), address, "{what}: round trip");
        assert_eq!(
            input.parse::<FederatedAddress>().unwrap(),
            address,
            "{what}: FromStr"
        );
    }
}

#[test]
fn parts_are_exposed() {
    let node = parse("node-01@alice.collective.local");
    assert_eq!(node.local(), &LocalPart::Name("node-01".into()));
    assert_eq!(node.domain(), &DomainPart::Exact("alice.collective.local".into()));
    assert_eq!(
        (
            node.name(),
            node.resource(),
            node.is_principal(),
            node.is_wildcard()
        ),
        (Some("node-01"), None, true, false)
    );
    let file = parse("/files/data.txt@carol.collective.local");
    assert_eq!(file.resource().map(|p| p.as_str()), Some("/files/data.txt"));
    assert_eq!(file.exact_domain(), Some("carol.collective.local"));
    assert!(!file.is_principal());
    let anyone = parse("*@*.collective");
    assert_eq!(anyone.local(), &LocalPart::Any);
    assert_eq!(anyone.domain(), &DomainPart::AnyBelow("collective".into()));
    assert_eq!(anyone.exact_domain(), None);
    assert!(anyone.is_wildcard());
}

#[test]
fn invalid_addresses_are_rejected_with_the_reason() {
    let long_label = format!("a@{}.b", "l".repeat(64));
    let long_domain = format!("a@{}b", "abcdefghi.".repeat(26));
    let long_local = format!("{}@a.b", "l".repeat(65));
    let long_path = format!("/{}@a.b", "n".repeat(256));
    let huge = "a".repeat(collective_events::address::ADDRESS_BYTES_MAX + 1);
    let cases: &[(&str, Expect)] = &[
        ("", |e| matches!(e, AddressError::Empty)),
        (huge.as_str(), |e| matches!(e, AddressError::TooLong { .. })),
        ("alice", |e| matches!(e, AddressError::MissingAt { .. })),
        ("/files/data.txt", |e| matches!(e, AddressError::MissingAt { .. })),
        ("@domain", |e| matches!(e, AddressError::EmptyLocal { .. })),
        ("@alice.home.collective", |e| {
            matches!(e, AddressError::EmptyLocal { .. })
        }),
        ("user@", |e| matches!(e, AddressError::EmptyDomain { .. })),
        ("/files@", |e| matches!(e, AddressError::EmptyDomain { .. })),
        ("a@b@c.d", |e| matches!(e, AddressError::TooManyAt { .. })),
        ("alice@localhost", |e| {
            matches!(e, AddressError::DomainWithoutDot { .. })
        }),
        ("a@b..c", |e| matches!(e, AddressError::EmptyLabel { .. })),
        ("a@.b.c", |e| matches!(e, AddressError::EmptyLabel { .. })),
        ("a@b.c.", |e| matches!(e, AddressError::EmptyLabel { .. })),
        (long_label.as_str(), |e| {
            matches!(e, AddressError::LabelTooLong { bytes: 64, .. })
        }),
        (long_domain.as_str(), |e| {
            matches!(e, AddressError::DomainTooLong { .. })
        }),
        ("a@b_c.d", |e| {
            matches!(e, AddressError::LabelInvalidCharacter { character: '_', .. })
        }),
        ("a@bé.d", |e| {
            matches!(e, AddressError::LabelInvalidCharacter { character: 'é', .. })
        }),
        ("a@-b.c", |e| matches!(e, AddressError::LabelHyphenEdge { .. })),
        ("a@b-.c", |e| matches!(e, AddressError::LabelHyphenEdge { .. })),
        (long_local.as_str(), |e| {
            matches!(e, AddressError::LocalTooLong { bytes: 65, .. })
        }),
        ("a b@c.d", |e| {
            matches!(e, AddressError::LocalInvalidCharacter { character: ' ', .. })
        }),
        ("a+b@c.d", |e| {
            matches!(e, AddressError::LocalInvalidCharacter { character: '+', .. })
        }),
        ("ålice@c.d", |e| {
            matches!(e, AddressError::LocalInvalidCharacter { .. })
        }),
        (".alice@c.d", |e| matches!(e, AddressError::LocalBadEdge { .. })),
        ("alice-@c.d", |e| matches!(e, AddressError::LocalBadEdge { .. })),
        ("a*@c.d", |e| matches!(e, AddressError::MisplacedWildcard { .. })),
        ("**@c.d", |e| matches!(e, AddressError::MisplacedWildcard { .. })),
        ("*@*", |e| matches!(e, AddressError::MisplacedWildcard { .. })),
        ("*@c.*", |e| matches!(e, AddressError::MisplacedWildcard { .. })),
        ("*@a.*.d", |e| matches!(e, AddressError::MisplacedWildcard { .. })),
        ("*@*.*.d", |e| matches!(e, AddressError::MisplacedWildcard { .. })),
        ("*@*c.d", |e| matches!(e, AddressError::MisplacedWildcard { .. })),
        ("alice@*.collective", |e| {
            matches!(e, AddressError::NameWithWildcardDomain { .. })
        }),
        ("/files@*.collective", |e| {
            matches!(e, AddressError::ResourceWithWildcardDomain { .. })
        }),
        ("/files/@a.b", |e| {
            matches!(e, AddressError::InvalidResource { .. })
        }),
        ("/a/../b@a.b", |e| {
            matches!(e, AddressError::InvalidResource { .. })
        }),
        ("/a//b@a.b", |e| matches!(e, AddressError::InvalidResource { .. })),
        ("/a\0@a.b", |e| matches!(e, AddressError::InvalidResource { .. })),
        (long_path.as_str(), |e| {
            matches!(e, AddressError::InvalidResource { .. })
        }),
    ];
    for &(input, expected) in cases {
        let err = FederatedAddress::parse(input).expect_err(input);
        assert!(expected(&err), "{input:?} gave {err:?}");
        let message = err.to_string();
        assert!(!message.is_empty() && !message.ends_with('.'), "{message}");
    }
}

#[test]
fn error_messages_name_what_is_wrong() {
    let message = |s: &str| FederatedAddress::parse(s).unwrap_err().to_string();
    assert!(message("alice").contains("no '@'"), "{}", message("alice"));
    assert!(message("a@b..c").contains("empty label"));
    assert!(message("a@b_c.d").contains("'_'"));
    assert!(message("/a/../b@a.b").contains("'..'"));
}

#[test]
fn is_local_compares_domains_case_insensitively() {
    let node = parse("node-01@alice.collective.local");
    assert!(node.is_local("alice.collective.local"));
    assert!(node.is_local("ALICE.Collective.Local"));
    assert!(!node.is_local("bob.collective.local"));
    assert!(!node.is_local("collective.local"));
    assert!(parse("/files/x@alice.collective.local").is_local("alice.collective.local"));
    assert!(parse("*@alice.collective.local").is_local("alice.collective.local"));
    assert!(!parse("*@*.collective.local").is_local("alice.collective.local"));
}

#[test]
fn wildcards_match_the_principals_they_cover() {
    let cases = [
        ("*@*.collective", "alice@home.collective", true),
        ("*@*.collective", "node-01@alice.home.collective", true),
        ("*@*.collective", "alice@collective.other", false),
        ("*@*.home.collective", "bob@home.collective", false),
        ("*@*.home.collective", "bob@alice.home.collective", true),
        ("*@*.home.collective", "bob@myhome.collective", false),
        ("*@alice.home.collective", "bob@alice.home.collective", true),
        ("*@alice.home.collective", "bob@x.alice.home.collective", false),
        ("*@alice.home.collective", "/files@alice.home.collective", false),
        ("bob@alice.home.collective", "bob@alice.home.collective", true),
        ("bob@alice.home.collective", "carol@alice.home.collective", false),
        ("bob@alice.home.collective", "*@alice.home.collective", false),
        ("/f@a.b", "/f@a.b", true),
        ("*@*.collective", "*@alice.collective", true),
        ("*@*.collective", "*@*.home.collective", true),
        ("*@*.home.collective", "*@*.collective", false),
        ("*@alice.collective", "*@*.collective", false),
    ];
    for (pattern, candidate, expected) in cases {
        assert_eq!(
            parse(pattern).matches(&parse(candidate)),
            expected,
            "{pattern} matches {candidate}"
        );
    }
}

#[test]
fn addresses_sort_by_domain_first() {
    let mut addresses = [parse("z@a.b"), parse("a@c.d"), parse("b@a.b")];
    addresses.sort();
    let sorted: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    assert_eq!(sorted, ["b@a.b", "z@a.b", "a@c.d"]);
}

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?"
}

fn domain() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 2..5).prop_map(|labels| labels.join("."))
}

fn address() -> impl Strategy<Value = String> {
    let name = "[a-zA-Z0-9]([a-zA-Z0-9._-]{0,20}[a-zA-Z0-9])?";
    let path = prop::collection::vec("[^/\\p{Cc}]{1,12}", 0..4)
        .prop_filter("no dot names", |names| {
            names.iter().all(|n| n != "." && n != "..")
        })
        .prop_map(|names| format!("/{}", names.join("/")));
    prop_oneof![
        (name, domain()).prop_map(|(n, d)| format!("{n}@{d}")),
        (path, domain()).prop_map(|(p, d)| format!("{p}@{d}")),
        domain().prop_map(|d| format!("*@{d}")),
        prop::collection::vec(label(), 1..4).prop_map(|l| format!("*@*.{}", l.join("."))),
    ]
}

proptest! {
    #[test]
    fn generated_addresses_round_trip(text in address()) {
        let parsed = FederatedAddress::parse(&text).unwrap();
        let canonical = parsed.to_string();
        // Canonical means: domain folded to lowercase, names folded, resource paths untouched.
        let (local, domain) = text.rsplit_once('@').unwrap();
        let local = if local.starts_with('/') { local.to_owned() } else { local.to_ascii_lowercase() };
        prop_assert_eq!(&canonical, &format!("{local}@{}", domain.to_ascii_lowercase()));
        prop_assert_eq!(FederatedAddress::parse(&canonical).unwrap(), parsed);
    }

    #[test]
    fn any_parsed_string_round_trips(text in "\\PC{0,30}|[a-z*/.@-]{0,16}") {
        if let Ok(parsed) = FederatedAddress::parse(&text) {
            prop_assert_eq!(FederatedAddress::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }
}
