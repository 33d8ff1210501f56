//! `mkdir`, `ls`, `stat`, `rm` and `mv`: namespace operations over the metadata API.

use super::args::{LsArgs, MkdirArgs, MvArgs, RmArgs, StatArgs};
use super::output::{entry_json, format_size, format_time, kind_name, replica_health};
use crate::client::{self, Consistency};
use collective_events::pb::{self, command_envelope::Command};
use std::path::PathBuf;

/// Entries fetched per `List` page.
const LIST_PAGE_ENTRIES: u32 = 1000;

pub async fn mkdir(args: MkdirArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    let mut created = Vec::new();
    for path in &args.paths {
        let command = Command::CreateDirectory(pb::CreateDirectory {
            path: path.clone(),
            parents: args.parents,
        });
        let response = client.submit(command).await?;
        created.push(serde_json::json!({ "path": path, "log_index": response.log_index, "events": response.events.len() }));
    }
    if args.json {
        outln!("{}", serde_json::Value::Array(created));
    }
    Ok(())
}

pub async fn ls(args: LsArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    let read = Consistency::from_stale_ms(args.read.stale_ms);
    let mut entries = Vec::new();
    let mut after = String::new();
    let directory = loop {
        let page = client.list(&args.path, &after, LIST_PAGE_ENTRIES, read).await?;
        entries.extend(page.entries);
        match (page.truncated, entries.last()) {
            (true, Some(last)) => after = last.name.clone(),
            _ => break page.directory,
        }
    };
    if args.json {
        let json: Vec<_> = entries.iter().map(entry_json).collect();
        outln!(
            "{}",
            serde_json::json!({ "path": args.path, "directory": directory.as_ref().map(entry_json), "entries": json })
        );
        return Ok(());
    }
    for entry in &entries {
        let suffix = if kind_name(entry.kind) == "dir" { "/" } else { "" };
        if args.long {
            outln!(
                "{:<4} {:>10} {:>5} v{:<4} {}  {}{suffix}",
                kind_name(entry.kind),
                format_size(entry.size),
                replica_health(entry),
                entry.version,
                format_time(entry.modified_at_unix_ms),
                entry.name
            );
        } else {
            outln!("{}{suffix}", entry.name);
        }
    }
    Ok(())
}

pub async fn stat(args: StatArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    let response = client
        .stat(&args.path, Consistency::from_stale_ms(args.read.stale_ms))
        .await?;
    let entry = response.entry.unwrap_or_default();
    if args.json {
        outln!("{}", entry_json(&entry));
        return Ok(());
    }
    outln!("path:      {}", entry.path);
    outln!("kind:      {}", kind_name(entry.kind));
    outln!("inode:     {}", entry.inode);
    if kind_name(entry.kind) != "dir" {
        outln!("size:      {} ({} bytes)", format_size(entry.size), entry.size);
        outln!("version:   {}", entry.version);
        outln!("chunks:    {}", entry.chunk_count);
        outln!(
            "replicas:  {} (healthy replicas of the worst chunk / wanted)",
            replica_health(&entry)
        );
    }
    outln!("modified:  {}", format_time(entry.modified_at_unix_ms));
    Ok(())
}

pub async fn rm(args: RmArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    for path in &args.paths {
        client
            .submit(Command::RemoveEntry(pb::RemoveEntry {
                path: path.clone(),
                recursive: args.recursive,
            }))
            .await?;
    }
    Ok(())
}

pub async fn mv(args: MvArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    client
        .submit(Command::MoveEntry(pb::MoveEntry {
            from: args.from,
            to: args.to,
        }))
        .await?;
    Ok(())
}
