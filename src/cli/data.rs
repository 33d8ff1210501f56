//! `write`, `read` and `debug chunks`: the data path from the command line, with a progress bar
//! on a terminal and nothing extra in scripts.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use collective_events::pb::NodeStatus;
use collective_proto::api;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::StdoutClosed;
use super::args::{DebugChunksArgs, DebugCommand, ReadFileArgs, WriteArgs};
use super::output::format_size;
use crate::client::{self, Client, Consistency};
use crate::datapath::{
    self, DataError, NodePool, Progress, ReadOptions, ReadSink, WriteOptions, WriterThread,
};
use crate::transport::root_der;

/// A transfer draws its bar only after this long, so quick ones print nothing at all.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// The pool of node connections for a profile's identity.
pub fn node_pool(client: &Client) -> anyhow::Result<NodePool> {
    let profile = client.profile();
    let stall = datapath::replica_stall_from_env()?;
    Ok(NodePool::new(profile.identity.clone(), root_der(&profile.root_ca_pem)?).with_stall(stall))
}

pub async fn write(args: WriteArgs, home: PathBuf) -> anyhow::Result<()> {
    let bar = Bar::new(args.quiet);
    // The input is opened and checked first, so a wrong path fails before anything is contacted.
    let input: Box<dyn std::io::Read + Send> = match stdio_path(args.file.as_deref()) {
        None => Box::new(std::io::stdin()),
        Some(file) => {
            let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let meta = input
                .metadata()
                .with_context(|| format!("reading {}", file.display()))?;
            anyhow::ensure!(
                !meta.is_dir(),
                "{} is a directory: write takes one file (or - for standard input)",
                file.display()
            );
            bar.progress().set_total(meta.len());
            Box::new(input)
        }
    };
    let mut client = client::connect(&home)?;
    let pool = node_pool(&client)?;
    let options = WriteOptions {
        chunk_bytes: args.chunk_bytes,
        replicas: args.replicas,
        keep_versions: args.keep_versions,
        expected_version: args.if_version,
        chunks_in_flight: args.parallel,
    };
    let summary =
        datapath::write_file(&mut client, &pool, &args.path, input, &options, bar.progress()).await?;
    bar.finish();
    if args.json {
        outln!("{}", serde_json::to_string(&summary)?);
    } else if std::io::stderr().is_terminal() && !args.quiet {
        errln!(
            "wrote {} ({}) as version {} in {:.1} s: {} chunks, {} copies uploaded, {} already stored, {} replicas",
            summary.path,
            format_size(summary.size),
            summary.version,
            summary.elapsed_ms as f64 / 1000.0,
            summary.chunks,
            summary.uploaded,
            summary.deduplicated,
            summary.replicas
        );
    }
    Ok(())
}

pub async fn read(args: ReadFileArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    let pool = node_pool(&client)?;
    let options = ReadOptions {
        offset: args.offset,
        length: args.length,
        version: args.at_version,
        read_ahead: args.read_ahead,
        consistency: Consistency::from_stale_ms(args.read.stale_ms),
    };
    let bar = Bar::new(args.quiet);
    let summary = match Output::of(args.file.as_deref())? {
        Output::Stdout => {
            let mut out =
                WriterThread::spawn(std::io::stdout(), |_| Ok(())).context("starting the output")?;
            datapath::read_file(&mut client, &pool, &args.path, &mut out, &options, bar.progress())
                .await
                .map_err(|error| match &error {
                    DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe => {
                        anyhow::Error::new(StdoutClosed)
                    }
                    _ => error.into(),
                })?
        }
        Output::InPlace(file) => {
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let mut out = WriterThread::spawn(opened, |_| Ok(())).context("starting the output")?;
            datapath::read_file(&mut client, &pool, &args.path, &mut out, &options, bar.progress()).await?
        }
        Output::Replace { file, permissions } => {
            // Into a temporary file renamed at the end: a failed read leaves no half-written file.
            let partial = partial_path(&file);
            let created =
                std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
            if let Some(permissions) = permissions {
                created
                    .set_permissions(permissions)
                    .with_context(|| format!("setting the permissions of {}", partial.display()))?;
            }
            let mut out =
                WriterThread::spawn(created, |file| file.sync_all()).context("starting the output")?;
            let result =
                datapath::read_file(&mut client, &pool, &args.path, &mut out, &options, bar.progress()).await;
            let summary = match result {
                Ok(summary) => summary,
                Err(error) => {
                    let _ = out.finish().await;
                    let _ = std::fs::remove_file(&partial);
                    return Err(error.into());
                }
            };
            std::fs::rename(&partial, &file)
                .with_context(|| format!("renaming {} to {}", partial.display(), file.display()))?;
            summary
        }
    };
    bar.finish();
    if args.json {
        errln!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

pub async fn debug(command: DebugCommand, home: PathBuf) -> anyhow::Result<()> {
    match command {
        DebugCommand::Chunks(args) => debug_chunks(args, home).await,
    }
}

async fn debug_chunks(args: DebugChunksArgs, home: PathBuf) -> anyhow::Result<()> {
    let mut client = client::connect(&home)?;
    let read = Consistency::from_stale_ms(args.read.stale_ms);
    let mut version = args.at_version;
    let mut chunks: Vec<api::ChunkLocation> = Vec::new();
    let mut first: Option<api::PlanReadResponse> = None;
    loop {
        let page = client
            .plan_read(
                api::PlanReadRequest {
                    path: args.file.clone(),
                    read: None,
                    version,
                    tickets: false,
                    first_chunk: u32::try_from(chunks.len())?,
                    chunk_limit: 0,
                },
                read,
            )
            .await?;
        version = Some(page.version);
        let done = page.chunks.is_empty() || chunks.len() + page.chunks.len() >= page.chunk_total as usize;
        chunks.extend(page.chunks.iter().cloned());
        if first.is_none() {
            first = Some(page);
        }
        if done {
            break;
        }
    }
    let first = first.context("no answer")?;
    if args.json {
        let rows: Vec<_> = chunks
            .iter()
            .map(|c| {
                let chunk = c.chunk.clone().unwrap_or_default();
                serde_json::json!({
                    "hash": hex(&chunk.hash),
                    "offset": chunk.offset,
                    "size": chunk.size,
                    "replicas": c.replicas.iter().map(|r| serde_json::json!({
                        "node": r.node,
                        "status": status_name(r.status),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "path": args.file,
                "version": first.version,
                "size": first.size,
                "replicas_wanted": first.replicas_wanted,
                "chunks": rows,
            })
        );
        return Ok(());
    }
    outln!(
        "{} version {}: {} in {} chunks, {} replicas wanted",
        args.file,
        first.version,
        format_size(first.size),
        chunks.len(),
        first.replicas_wanted
    );
    for (index, location) in chunks.iter().enumerate() {
        let chunk = location.chunk.clone().unwrap_or_default();
        let replicas: Vec<String> = location
            .replicas
            .iter()
            .map(|r| format!("{} ({})", r.node, status_name(r.status)))
            .collect();
        outln!(
            "{index:>5}  {}  @{:<12} {:>10}  {}",
            hex(&chunk.hash),
            chunk.offset,
            format_size(chunk.size),
            if replicas.is_empty() {
                "NO REPLICA".to_string()
            } else {
                replicas.join(", ")
            }
        );
    }
    Ok(())
}

fn status_name(status: i32) -> &'static str {
    match NodeStatus::try_from(status) {
        Ok(NodeStatus::Up) => "up",
        Ok(NodeStatus::Down) => "down",
        Ok(NodeStatus::Draining) => "draining",
        _ => "unknown",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `None` for standard input or output (`-` or no file given).
fn stdio_path(file: Option<&Path>) -> Option<&Path> {
    file.filter(|f| f.as_os_str() != "-")
}

/// Where `read` puts a file's bytes.
#[derive(Debug)]
enum Output {
    /// Standard output (no FILE, or `-`).
    Stdout,
    /// A regular file, new or replaced whole: written beside it and renamed over it at the end,
    /// so a failed read leaves the old content whole. Named through a symbolic link, the file
    /// the link points to is replaced and the link kept. A replaced file keeps its permission
    /// bits.
    Replace {
        file: PathBuf,
        permissions: Option<std::fs::Permissions>,
    },
    /// Anything else that exists, such as `/dev/null` or a FIFO: written where it is. Renaming
    /// a regular file over it would put a file where the device or pipe was.
    InPlace(PathBuf),
}

impl Output {
    fn of(file: Option<&Path>) -> anyhow::Result<Output> {
        let Some(file) = stdio_path(file) else {
            return Ok(Output::Stdout);
        };
        match std::fs::metadata(file) {
            Ok(meta) if meta.is_dir() => {
                anyhow::bail!("{} is a directory: name the file to write", file.display())
            }
            Ok(meta) if meta.is_file() => {
                let is_link = std::fs::symlink_metadata(file).is_ok_and(|link| link.file_type().is_symlink());
                let file = if is_link {
                    std::fs::canonicalize(file).with_context(|| format!("resolving {}", file.display()))?
                } else {
                    file.to_path_buf()
                };
                // Its read, write and execute bits: not set-user-ID or set-group-ID, which a
                // file that comes from the network must not gain.
                let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
                Ok(Output::Replace {
                    file,
                    permissions: Some(std::os::unix::fs::PermissionsExt::from_mode(mode)),
                })
            }
            Ok(_) => Ok(Output::InPlace(file.to_path_buf())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Output::Replace {
                file: file.to_path_buf(),
                permissions: None,
            }),
            Err(error) => Err(error).with_context(|| format!("checking {}", file.display())),
        }
    }
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".collective-partial");
    file.with_file_name(name)
}

/// A progress bar on stderr when it is a terminal, shown once a transfer has lasted
/// [`PROGRESS_AFTER`]; hidden otherwise.
struct Bar {
    bar: Option<ProgressBar>,
}

struct BarProgress(ProgressBar);

impl Progress for BarProgress {
    fn set_total(&self, bytes: u64) {
        self.0.set_length(bytes);
        self.0.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }

    fn advance(&self, bytes: u64) {
        if self.0.is_hidden() && self.0.elapsed() >= PROGRESS_AFTER {
            self.0.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.0.inc(bytes);
    }
}

impl Bar {
    fn new(quiet: bool) -> Bar {
        if quiet || !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{bytes} {binary_bytes_per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Bar { bar: Some(bar) }
    }

    fn progress(&self) -> Arc<dyn Progress> {
        match &self.bar {
            Some(bar) => Arc::new(BarProgress(bar.clone())),
            None => Arc::new(datapath::NoProgress),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
