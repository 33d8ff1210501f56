//! Every rule a node applies to a ticket, each with a ticket that breaks exactly that rule.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use std::time::Duration;

use prost::Message;

use super::*;
use crate::chunk_hash::ChunkHash;
use crate::pki::{CertBundle, Component, FederationCa, MemberCa};

const DAY: Duration = Duration::from_secs(24 * 3600);
const NODE: &str = "node-1@alice.home.collective";
const CLIENT: &str = "carol@alice.home.collective";
/// A fixed "now" inside the certificates' validity (they are issued at the real time).
fn now_ms() -> u64 {
    crate::node::unix_ms_now()
}

struct Fixture {
    root: FederationCa,
    alice: MemberCa,
    coordinator: CertBundle,
    verifier: TicketVerifier,
}

fn fixture() -> Fixture {
    let root = FederationCa::init("home.collective").unwrap();
    let alice = root.sign_member("alice.home.collective").unwrap();
    let coordinator = alice
        .issue_leaf("coord-1@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    let verifier = TicketVerifier::new(root.cert_der(), NODE).unwrap();
    Fixture {
        root,
        alice,
        coordinator,
        verifier,
    }
}

fn grant<'a>(op: TicketOp, hashes: &'a [ChunkHash], issued_at_unix_ms: u64) -> TicketGrant<'a> {
    TicketGrant {
        op,
        hashes,
        holder: CLIENT,
        node: NODE,
        issued_at_unix_ms,
        lifetime: TICKET_LIFETIME_DEFAULT,
    }
}

fn body_of(ticket: &Ticket) -> TicketBody {
    TicketBody::decode(ticket.body.as_slice()).unwrap()
}

#[test]
fn an_issued_ticket_verifies_for_its_holder_op_and_hashes() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a"), ChunkHash::of(b"b")];
    let now = now_ms();
    let ticket = issue(&f.coordinator, &grant(TicketOp::Put, &hashes, now)).unwrap();
    let ok = f
        .verifier
        .verify(&ticket, TicketOp::Put, CLIENT, &hashes[1..], now)
        .unwrap();
    assert_eq!(ok.signer, "coord-1@alice.home.collective");
    assert_eq!(ok.op, TicketOp::Put);
    assert_eq!(ok.nonce.len(), NONCE_BYTES);
    // A PUT ticket also answers "which of these do you have".
    f.verifier
        .verify(&ticket, TicketOp::Has, CLIENT, &hashes, now)
        .unwrap();
    // Two tickets for the same grant differ by their nonce.
    let again = issue(&f.coordinator, &grant(TicketOp::Put, &hashes, now)).unwrap();
    assert_ne!(body_of(&ticket).nonce, body_of(&again).nonce);
}

/// A verifier consulting a trust store of its own, and a GET ticket of `f.coordinator` for
/// `hashes` it has verified once at `now` (so it keeps the coordinator's chain).
fn store_verifier_keeping_a_chain(
    f: &Fixture,
    hashes: &[ChunkHash],
    now: u64,
) -> (crate::tls::TrustStore, TicketVerifier, Ticket) {
    let trust = crate::tls::TrustStore::new(f.root.cert_der()).unwrap();
    let verifier = TicketVerifier::with_trust_store(&trust, NODE).unwrap();
    let ticket = issue(&f.coordinator, &grant(TicketOp::Get, hashes, now)).unwrap();
    verifier
        .verify(&ticket, TicketOp::Get, CLIENT, hashes, now)
        .unwrap();
    (trust, verifier, ticket)
}

#[test]
fn a_ticket_signed_by_a_revoked_coordinator_is_refused_once_the_store_knows() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    let (trust, verifier, ticket) = store_verifier_keeping_a_chain(&f, &hashes, now);
    let serial = f.coordinator.identity().unwrap().serial;
    trust.revoke("alice.home.collective", &serial);
    let refused = verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap_err();
    assert!(matches!(refused, TicketError::ChainRefused(_)), "{refused:?}");
    assert!(
        refused.to_string().to_lowercase().contains("revoked"),
        "{refused}"
    );
}

#[test]
fn a_signer_chain_is_checked_once_and_every_ticket_by_its_own_signature() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    for _ in 0..3 {
        let ticket = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap();
        f.verifier
            .verify(&ticket, TicketOp::Get, CLIENT, &hashes, now)
            .unwrap();
    }
    assert_eq!(f.verifier.signer_chains_kept(), 1, "one chain, kept once");

    // Under the kept chain, each ticket still needs a good signature of its own.
    for ticket in [
        with_forged_signature(&f, &hashes, now),
        with_altered_body(&f, &hashes, now),
        signed_by_another_key_under_a_genuine_chain(&f, &hashes, now),
    ] {
        assert_bad_signature(&f, &ticket, &hashes, now);
    }
}

#[test]
fn a_ticket_is_verified_once_and_its_kept_copy_still_gets_every_other_check() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a"), ChunkHash::of(b"b")];
    let now = now_ms();
    let ticket = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap();
    for hash in &hashes {
        f.verifier
            .verify(&ticket, TicketOp::Get, CLIENT, std::slice::from_ref(hash), now)
            .unwrap();
    }
    assert_eq!(f.verifier.tickets_kept(), 1, "one ticket, verified once");

    // Its bytes with another signature, or its body changed under its signature, are other
    // tickets: each needs a signature of its own.
    let mut forged = ticket.clone();
    forged.signature[0] ^= 1;
    assert_bad_signature(&f, &forged, &hashes, now);
    let mut altered = ticket.clone();
    let mut body = body_of(&altered);
    body.expires_at_unix_ms += 3_600_000;
    altered.body = body.encode_to_vec();
    assert_bad_signature(&f, &altered, &hashes, now);
    assert_eq!(f.verifier.tickets_kept(), 1, "refused tickets are not kept");

    // The kept ticket still covers only its chunks, its holder, its op and its lifetime.
    let check = |op, caller, hashes: &[ChunkHash], at| f.verifier.verify(&ticket, op, caller, hashes, at);
    let err = check(TicketOp::Get, CLIENT, &[ChunkHash::of(b"c")], now).unwrap_err();
    assert!(matches!(err, TicketError::HashNotCovered(_)), "{err}");
    let err = check(TicketOp::Get, "mallory@alice.home.collective", &hashes, now).unwrap_err();
    assert!(matches!(err, TicketError::WrongHolder { .. }), "{err}");
    let err = check(TicketOp::Delete, CLIENT, &hashes, now).unwrap_err();
    assert!(matches!(err, TicketError::WrongOp { .. }), "{err}");
    let expired = body_of(&ticket).expires_at_unix_ms + CLOCK_SKEW_DEFAULT.as_millis() as u64 + 1;
    let err = check(TicketOp::Get, CLIENT, &hashes, expired).unwrap_err();
    assert!(matches!(err, TicketError::Expired { .. }), "{err}");
    check(TicketOp::Get, CLIENT, &hashes, now).unwrap();
}

#[test]
fn kept_tickets_are_bounded_and_a_full_cache_refills() {
    let f = fixture();
    let hashes: Vec<ChunkHash> = (0..collective_proto::chunk_limits::HASHES_PER_REQUEST_MAX)
        .map(|i| ChunkHash::of(&i.to_le_bytes()))
        .collect();
    let now = now_ms();
    let mut most_kept = 0;
    let mut last_body = 0;
    for _ in 0..40 {
        let ticket = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap();
        last_body = ticket.body.len();
        f.verifier
            .verify(&ticket, TicketOp::Get, CLIENT, &hashes[hashes.len() - 1..], now)
            .unwrap();
        most_kept = most_kept.max(f.verifier.tickets_kept());
    }
    let bound = verify::TICKET_BYTES_KEPT_MAX / last_body;
    assert!(
        (1..=bound).contains(&most_kept),
        "kept up to {most_kept} tickets of {last_body} bytes, bound {bound}"
    );
    assert!(f.verifier.tickets_kept() < 40, "the cache was emptied when full");
}

#[test]
fn a_kept_chain_is_refused_once_it_expires_or_its_member_is_removed() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    let (trust, verifier, _) = store_verifier_keeping_a_chain(&f, &hashes, now);

    // Two days on, the coordinator's one-day certificate has expired; the ticket has not.
    let later = now + 2 * 24 * 3_600_000;
    let ticket = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, later)).unwrap();
    let err = verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, later)
        .unwrap_err();
    assert!(
        matches!(err, TicketError::ChainRefused(ref why) if why.to_lowercase().contains("expired")),
        "{err}"
    );

    let ticket = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap();
    verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap();
    assert!(trust.remove_member("alice.home.collective"));
    let err = verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap_err();
    assert!(
        matches!(err, TicketError::ChainRefused(ref why) if why.contains("removed")),
        "{err}"
    );
}

#[test]
fn a_has_ticket_without_hashes_covers_any_chunk_but_other_ops_need_hashes() {
    let f = fixture();
    let now = now_ms();
    let any = issue(&f.coordinator, &grant(TicketOp::Has, &[], now)).unwrap();
    f.verifier
        .verify(&any, TicketOp::Has, CLIENT, &[ChunkHash::of(b"x")], now)
        .unwrap();
    let get = issue(&f.coordinator, &grant(TicketOp::Get, &[], now)).unwrap();
    let err = f
        .verifier
        .verify(&get, TicketOp::Get, CLIENT, &[ChunkHash::of(b"x")], now)
        .unwrap_err();
    assert!(matches!(err, TicketError::HashNotCovered(_)), "{err}");
}

/// A GET ticket of `f.coordinator` with one bit of its signature flipped.
fn with_forged_signature(f: &Fixture, hashes: &[ChunkHash], now: u64) -> Ticket {
    let mut ticket = issue(&f.coordinator, &grant(TicketOp::Get, hashes, now)).unwrap();
    ticket.signature[0] ^= 1;
    ticket
}

/// A GET ticket of `f.coordinator` whose body was given another hour after signing.
fn with_altered_body(f: &Fixture, hashes: &[ChunkHash], now: u64) -> Ticket {
    let mut ticket = issue(&f.coordinator, &grant(TicketOp::Get, hashes, now)).unwrap();
    let mut body = body_of(&ticket);
    body.expires_at_unix_ms += 3_600_000;
    ticket.body = body.encode_to_vec();
    ticket
}

/// A GET ticket signed by coord-2 that presents coord-1's genuine chain.
fn signed_by_another_key_under_a_genuine_chain(f: &Fixture, hashes: &[ChunkHash], now: u64) -> Ticket {
    let other = f
        .alice
        .issue_leaf("coord-2@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    let mut ticket = issue(&other, &grant(TicketOp::Get, hashes, now)).unwrap();
    ticket.signer_chain_der[0] = f.coordinator.cert_der().unwrap().to_vec();
    ticket
}

fn assert_bad_signature(f: &Fixture, ticket: &Ticket, hashes: &[ChunkHash], now: u64) {
    let err = f
        .verifier
        .verify(ticket, TicketOp::Get, CLIENT, hashes, now)
        .unwrap_err();
    assert!(matches!(err, TicketError::BadSignature), "{err}");
    assert!(err.is_unauthenticated());
}

#[test]
fn a_forged_signature_is_refused() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    assert_bad_signature(&f, &with_forged_signature(&f, &hashes, now), &hashes, now);
}

#[test]
fn an_altered_body_is_refused() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    assert_bad_signature(&f, &with_altered_body(&f, &hashes, now), &hashes, now);
}

#[test]
fn a_signature_by_another_key_under_a_genuine_chain_is_refused() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    let ticket = signed_by_another_key_under_a_genuine_chain(&f, &hashes, now);
    assert_bad_signature(&f, &ticket, &hashes, now);
}

#[test]
fn expired_and_not_yet_valid_tickets_are_refused_outside_the_skew() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    let ticket = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap();
    let expires = body_of(&ticket).expires_at_unix_ms;
    let skew = CLOCK_SKEW_DEFAULT.as_millis() as u64;
    f.verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, expires + skew)
        .unwrap();
    let err = f
        .verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, expires + skew + 1)
        .unwrap_err();
    assert!(matches!(err, TicketError::Expired { .. }), "{err}");
    assert_eq!(err.code(), "ticket_expired");
    assert!(!err.is_unauthenticated());
    f.verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, now - skew)
        .unwrap();
    let err = f
        .verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, now - skew - 1)
        .unwrap_err();
    assert!(matches!(err, TicketError::NotYetValid { .. }), "{err}");
    // A node with a tighter skew refuses earlier.
    let strict = f.verifier.clone().with_clock_skew(Duration::ZERO);
    assert!(
        strict
            .verify(&ticket, TicketOp::Get, CLIENT, &hashes, expires + 1)
            .is_err()
    );
}

#[test]
fn a_ticket_for_another_node_or_holder_is_refused() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    let mut other_node = grant(TicketOp::Get, &hashes, now);
    other_node.node = "node-2@alice.home.collective";
    let ticket = issue(&f.coordinator, &other_node).unwrap();
    let err = f
        .verifier
        .verify(&ticket, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap_err();
    assert!(matches!(err, TicketError::Misdirected { .. }), "{err}");

    let ticket = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap();
    let err = f
        .verifier
        .verify(
            &ticket,
            TicketOp::Get,
            "mallory@alice.home.collective",
            &hashes,
            now,
        )
        .unwrap_err();
    assert!(matches!(err, TicketError::WrongHolder { .. }), "{err}");
}

#[test]
fn a_ticket_for_another_op_or_other_hashes_is_refused() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    let get = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap();
    for op in [TicketOp::Put, TicketOp::Delete, TicketOp::Has] {
        let err = f.verifier.verify(&get, op, CLIENT, &hashes, now).unwrap_err();
        assert!(matches!(err, TicketError::WrongOp { .. }), "{op:?}: {err}");
    }
    let err = f
        .verifier
        .verify(
            &get,
            TicketOp::Get,
            CLIENT,
            &[hashes[0], ChunkHash::of(b"b")],
            now,
        )
        .unwrap_err();
    assert!(matches!(err, TicketError::HashNotCovered(_)), "{err}");
}

#[test]
fn only_coordinators_of_the_nodes_member_under_the_root_may_sign() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    let body = body_of(&issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap());

    // A client of the member signs a body claiming everything a coordinator would.
    let client = f.alice.issue_leaf(CLIENT, Component::Client, DAY).unwrap();
    assert!(matches!(
        issue(&client, &grant(TicketOp::Get, &hashes, now)),
        Err(TicketError::SignerNotCoordinator { .. })
    ));
    let by_client = sign_body(&client, &body).unwrap();
    let err = f
        .verifier
        .verify(&by_client, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap_err();
    assert!(
        matches!(err, TicketError::ChainRefused(ref why) if why.contains("coordinator")),
        "{err}"
    );

    // A coordinator of another member of the same federation.
    let bob = f.root.sign_member("bob.home.collective").unwrap();
    let bob_coord = bob
        .issue_leaf("coord-1@bob.home.collective", Component::Coordinator, DAY)
        .unwrap();
    let by_bob = sign_body(&bob_coord, &body).unwrap();
    let err = f
        .verifier
        .verify(&by_bob, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap_err();
    assert!(
        matches!(err, TicketError::ChainRefused(ref why) if why.contains("not of member")),
        "{err}"
    );

    // A look-alike federation with its own root and an "alice" member.
    let fake_root = FederationCa::init("home.collective").unwrap();
    let fake_alice = fake_root.sign_member("alice.home.collective").unwrap();
    let fake_coord = fake_alice
        .issue_leaf("coord-1@alice.home.collective", Component::Coordinator, DAY)
        .unwrap();
    let forged = issue(&fake_coord, &grant(TicketOp::Get, &hashes, now)).unwrap();
    let err = f
        .verifier
        .verify(&forged, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap_err();
    assert!(matches!(err, TicketError::ChainRefused(_)), "{err}");
    assert!(err.is_unauthenticated());

    // No chain, or only the leaf.
    let mut bare = issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap();
    bare.signer_chain_der.truncate(1);
    let err = f
        .verifier
        .verify(&bare, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap_err();
    assert!(matches!(err, TicketError::ChainLength { got: 1, .. }), "{err}");
}

#[test]
fn bodies_a_coordinator_would_never_issue_are_refused() {
    let f = fixture();
    let hashes = [ChunkHash::of(b"a")];
    let now = now_ms();
    let good = body_of(&issue(&f.coordinator, &grant(TicketOp::Get, &hashes, now)).unwrap());
    let check = |body: TicketBody| {
        let ticket = sign_body(&f.coordinator, &body).unwrap();
        f.verifier
            .verify(&ticket, TicketOp::Get, CLIENT, &hashes, now)
            .unwrap_err()
    };
    let mut long = good.clone();
    long.expires_at_unix_ms = long.issued_at_unix_ms + TICKET_LIFETIME_MAX.as_millis() as u64 + 1;
    assert!(matches!(check(long), TicketError::BadLifetime { .. }));
    let mut version = good.clone();
    version.version = 2;
    assert!(matches!(
        check(version),
        TicketError::UnsupportedVersion { got: 2, .. }
    ));
    let mut member = good.clone();
    member.member_domain = "bob.home.collective".into();
    assert!(matches!(check(member), TicketError::OtherMember { .. }));
    let mut garbage = sign_body(&f.coordinator, &good).unwrap();
    garbage.body = vec![0xff; 7];
    garbage = sign_body_bytes(&f.coordinator, garbage.body);
    let err = f
        .verifier
        .verify(&garbage, TicketOp::Get, CLIENT, &hashes, now)
        .unwrap_err();
    assert!(matches!(err, TicketError::Malformed(_)), "{err}");
    assert!(
        issue(
            &f.coordinator,
            &TicketGrant {
                lifetime: Duration::ZERO,
                ..grant(TicketOp::Get, &hashes, now)
            }
        )
        .is_err()
    );
}

/// Signs raw bytes as a body, to reach the decoder with something that is not a `TicketBody`.
fn sign_body_bytes(signer: &CertBundle, body: Vec<u8>) -> Ticket {
    use ring::signature::Ed25519KeyPair;
    let key_der = signer.private_key_der().unwrap();
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(key_der.secret_der()).unwrap();
    let signature = key.sign(&signed_message(&body)).as_ref().to_vec();
    let mut chain = vec![signer.cert_der().unwrap().to_vec()];
    chain.extend(signer.chain_der().unwrap().into_iter().map(|c| c.to_vec()));
    Ticket {
        body,
        signature,
        signer_chain_der: chain,
    }
}
