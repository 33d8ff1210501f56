//! A retried request (same request_id) is applied once: the retry gets the stored outcome.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on any error")]

mod common;

use collective_projections::Table;
use common::{envelope, initialize, mkdir, open_store, run};

#[test]
fn same_request_twice_yields_one_set_of_events() {
    let (_dir, store) = open_store();
    run(&store, 1, &[envelope(1, initialize())]);
    let cmd = envelope(2, mkdir("/photos", false));

    let first = run(&store, 2, std::slice::from_ref(&cmd)).remove(0);
    assert!(
        !first.events().is_empty(),
        "first execution produced events: {first:?}"
    );
    let events_after_first = store.rows(Table::Events).unwrap();
    let count_after_first = store.event_count().unwrap();

    let retry = run(&store, 3, std::slice::from_ref(&cmd)).remove(0);
    assert_eq!(retry, first, "a retry returns the stored outcome unchanged");
    assert_eq!(retry.log_index, 2, "the outcome names the original entry");
    assert_eq!(store.rows(Table::Events).unwrap(), events_after_first);
    assert_eq!(store.event_count().unwrap(), count_after_first);
    assert!(
        store.events(3, 10).unwrap().is_empty(),
        "entry 3 produced no events"
    );
}

#[test]
fn retry_in_the_same_txn_is_deduplicated() {
    let (_dir, store) = open_store();
    run(&store, 1, &[envelope(1, initialize())]);
    let cmd = envelope(2, mkdir("/docs", false));
    let outcomes = run(&store, 2, &[cmd.clone(), cmd]);
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(store.events(2, 100).unwrap().len(), outcomes[0].events().len());
}

#[test]
fn a_rejection_is_remembered_too() {
    let (_dir, store) = open_store();
    run(&store, 1, &[envelope(1, initialize())]);
    // Refused: the parent does not exist yet.
    let child = envelope(2, mkdir("/x/y", false));
    let refused = run(&store, 2, std::slice::from_ref(&child)).remove(0);
    let rejection = refused.rejection().expect("refused");
    assert!(
        rejection.is(collective_events::RejectionCode::NotFound),
        "{rejection:?}"
    );

    run(&store, 3, &[envelope(3, mkdir("/x", false))]);
    // The retry is answered from the dedupe record, not decided again (it would now succeed).
    let retry = run(&store, 4, std::slice::from_ref(&child)).remove(0);
    assert_eq!(retry, refused);
    assert_eq!(store.resolve("/x/y").unwrap(), None);
}
