//! `audit export`: the member's event log as JSON lines, in log order.

use super::args::{AuditCommand, AuditExportArgs};
use crate::audit::event_json;
use crate::client;
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

pub async fn run(command: AuditCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        AuditCommand::Export(args) => export(args, home).await,
    }
}

async fn export(args: AuditExportArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let count = client
        .export_events(args.from, |events| {
            for event in &events {
                serde_json::to_writer(&mut out, &event_json(event))?;
                out.write_all(b"\n")?;
            }
            Ok(())
        })
        .await?;
    out.flush()?;
    if args.output.is_some() {
        errln!("exported {count} events");
    }
    Ok(())
}
