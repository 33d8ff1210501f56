//! A retried request with the same id is applied once: the retry is answered with the original
//! outcome (same log index, same events), and the event log holds one copy. A refused request
//! stays refused under its id.

mod support;

use collective::client::Client;
use collective_events::pb::{self, command_envelope::Command};
use support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_id_is_applied_once() -> anyhow::Result<()> {
    let cluster = Cluster::single()?;
    let mut client = Client::new(cluster.profile()?);
    let id = collective::client::new_request_id();
    let mkdir = || {
        Command::CreateDirectory(pb::CreateDirectory {
            path: "/once".into(),
            parents: false,
        })
    };

    let first = client.submit_with_id(id.clone(), mkdir()).await?;
    let retry = client.submit_with_id(id.clone(), mkdir()).await?;
    assert_eq!(
        first.log_index, retry.log_index,
        "the retry answers the original entry"
    );
    assert_eq!(first.events, retry.events, "with the original events");
    let fresh = client.submit(mkdir()).await;
    assert!(
        fresh.is_err(),
        "a new request for the same directory is refused: it exists"
    );

    let export = cluster.cli_ok(&["audit", "export"])?;
    assert_eq!(
        export.matches("\"path\":\"/once\"").count(),
        1,
        "one DirectoryCreated for /once"
    );

    // A refused request is remembered too: even once its cause is gone, a retry under the same id
    // answers the original refusal.
    let refused_id = collective::client::new_request_id();
    let orphan = || {
        Command::CreateDirectory(pb::CreateDirectory {
            path: "/later/child".into(),
            parents: false,
        })
    };
    assert!(client.submit_with_id(refused_id.clone(), orphan()).await.is_err());
    cluster.cli_ok(&["mkdir", "/later"])?;
    assert!(
        client.submit_with_id(refused_id, orphan()).await.is_err(),
        "the retry keeps the original answer"
    );
    assert!(cluster.cli(&["stat", "/later/child"]).status.code() == Some(1));
    Ok(())
}
