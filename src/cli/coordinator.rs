//! `coordinator init | prepare | run | add | remove | replace`.

use super::args::{
    CoordinatorAddArgs, CoordinatorCommand, CoordinatorInitArgs, CoordinatorPrepareArgs,
    CoordinatorReplaceArgs,
};
use crate::client;
use crate::coordinator::{self, bootstrap};
use collective_proto::api;
use std::path::{Path, PathBuf};

pub async fn run(command: CoordinatorCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        CoordinatorCommand::Init(args) => init(args, &home),
        CoordinatorCommand::Prepare(args) => prepare(args, &home),
        CoordinatorCommand::Run(args) => coordinator::run(&args.data_dir).await,
        CoordinatorCommand::Add(args) => add(args, &home).await,
        CoordinatorCommand::Remove(args) => remove(args.id, &home).await,
        CoordinatorCommand::Replace(args) => replace(args, &home).await,
    }
}

fn init(args: CoordinatorInitArgs, home: &Path) -> anyhow::Result<()> {
    let first = bootstrap::init_first(
        &args.data_dir,
        home,
        &args.federation,
        &args.member,
        args.listen,
        args.id,
    )?;
    let c = &first.config;
    outln!(
        "prepared coordinator {} ({}) of member {}",
        c.id,
        c.address,
        c.member_domain
    );
    outln!("admin profile written to {}", home.display());
    outln!(
        "next: collective coordinator run --data-dir {}",
        args.data_dir.display()
    );
    Ok(())
}

fn prepare(args: CoordinatorPrepareArgs, home: &Path) -> anyhow::Result<()> {
    let config = bootstrap::prepare(&args.data_dir, home, args.id, args.listen)?;
    outln!("prepared coordinator {} ({})", config.id, config.address);
    outln!(
        "next: collective coordinator run --data-dir {}",
        args.data_dir.display()
    );
    outln!(
        "then: collective coordinator add --id {} --endpoint {}",
        config.id,
        config.endpoint
    );
    Ok(())
}

async fn add(args: CoordinatorAddArgs, home: &Path) -> anyhow::Result<()> {
    let mut client = client::connect(home)?;
    let request = api::AddCoordinatorRequest {
        raft_id: args.id,
        address: String::new(),
        endpoint: args.endpoint.clone(),
        voter: !args.learner,
    };
    let membership = client.add_coordinator(request).await?;
    remember_endpoint(home, &args.endpoint)?;
    outln!(
        "coordinator {} added; voters {:?}, learners {:?}",
        args.id,
        membership.voters,
        membership.learners
    );
    Ok(())
}

async fn remove(id: u64, home: &Path) -> anyhow::Result<()> {
    let mut client = client::connect(home)?;
    let membership = client.remove_coordinator(id).await?;
    outln!(
        "coordinator {id} removed; voters {:?}, learners {:?}",
        membership.voters,
        membership.learners
    );
    Ok(())
}

async fn replace(args: CoordinatorReplaceArgs, home: &Path) -> anyhow::Result<()> {
    add(
        CoordinatorAddArgs {
            id: args.id,
            endpoint: args.endpoint,
            learner: false,
        },
        home,
    )
    .await?;
    remove(args.old, home).await
}

/// Adds a coordinator's endpoint to the profile so clients can fail over to it.
fn remember_endpoint(home: &Path, endpoint: &str) -> anyhow::Result<()> {
    let profile = crate::profile::Profile::load(home)?;
    if profile.config.coordinators.iter().any(|e| e == endpoint) {
        return Ok(());
    }
    let mut config = profile.config.clone();
    config.coordinators.push(endpoint.to_string());
    crate::profile::Profile::update_config(home, &config)
}
