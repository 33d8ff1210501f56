//! Every command, flag and its help text, as clap derive types.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Collective: federated storage for homelabs. A member's coordinators keep its metadata in a
/// replicated, append-only event log; this command runs them and talks to them.
#[derive(Debug, Parser)]
#[command(name = "collective", version, propagate_version = true)]
pub struct Cli {
    /// Client profile directory (credentials and coordinator endpoints).
    #[arg(long, global = true, env = "COLLECTIVE_HOME", default_value_os_t = crate::profile::default_home())]
    pub home: PathBuf,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole single-machine member in one process (the embedded default).
    ///
    /// On first start it creates a federation root CA, a member CA and every certificate it
    /// needs under the data directory, and writes an admin profile to $COLLECTIVE_HOME so every
    /// other command works right away. Restart it at any time: nothing acknowledged is lost.
    Up(UpArgs),
    /// Create the federation's certificate authorities and set up its first member.
    #[command(subcommand)]
    Federation(FederationCommand),
    /// Run and manage the coordinators of a member (its Raft group).
    #[command(subcommand)]
    Coordinator(CoordinatorCommand),
    /// Prepare and run storage nodes (the daemons that store chunks).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Manage the member's certificates: revoke a leaf (admin only).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Show the member, its coordinators, the leader, term, commit index and health.
    Status(StatusArgs),
    /// Create a directory.
    Mkdir(MkdirArgs),
    /// List a directory.
    Ls(LsArgs),
    /// Show one entry.
    Stat(StatArgs),
    /// Remove a file or a directory.
    Rm(RmArgs),
    /// Move or rename an entry.
    Mv(MvArgs),
    /// Write a file: store FILE (or standard input) as the next version of PATH.
    ///
    /// The content is cut into chunks, uploaded in parallel to the nodes the member places them
    /// on (2 replicas by default, 1 on a single-node member), and committed in one step: the new
    /// version appears whole or not at all. Content the member already stores is not uploaded
    /// again. A progress bar is drawn on a terminal.
    Write(WriteArgs),
    /// Read a file: write PATH's content (or a range of it) to FILE or standard output.
    ///
    /// Every chunk is verified against its hash; a replica that fails or serves wrong bytes is
    /// skipped for the next one.
    Read(ReadFileArgs),
    /// Inspect internals.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Export the member's event log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Built-in load generators.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Invite users (and members): generate, list and revoke codes; redeem one on a new machine.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Your identity: record the global id you go by, and show who you are and what you may do.
    #[command(subcommand)]
    Identity(IdentityCommand),
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an invite and print its code (admin only). The code carries a secret of 160
    /// random bits, the member's bootstrap endpoint and the federation root's fingerprint.
    Generate(InviteGenerateArgs),
    /// List the member's invites: uses, expiry, state (admin only).
    List(InviteListArgs),
    /// Revoke an invite by its code or its id (admin only); later redemptions are refused.
    Revoke(InviteRevokeArgs),
    /// Redeem a user invite on a new machine: creates a key, obtains a client certificate from
    /// the inviting member, and writes a profile to $COLLECTIVE_HOME (which must not hold one).
    Redeem(InviteRedeemArgs),
}

#[derive(Debug, Args)]
pub struct InviteGenerateArgs {
    /// PATH:RIGHTS granted to whoever redeems, e.g. "/shared:read+write" (repeatable; rights
    /// are read, write, delete, share, joined by +). A missing datastore at PATH is created.
    #[arg(long = "grant", value_name = "PATH:RIGHTS")]
    pub grants: Vec<String>,
    /// How many times the code may be redeemed.
    #[arg(long, default_value_t = 1)]
    pub max_uses: u32,
    /// How long the code is valid: e.g. 90s, 30m, 24h, 7d.
    #[arg(long, default_value = "24h")]
    pub validity: String,
    /// Make a member invite for this member name instead of a user invite (redeemed with
    /// `federation join`; the redeeming coordinator must hold the federation root key).
    #[arg(long, value_name = "NAME")]
    pub member: Option<String>,
    /// Bootstrap endpoint to put in the code (repeatable; default: the coordinator's own).
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InviteListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InviteRevokeArgs {
    /// The invite code (coll1-...) or the invite id shown by `invite list` (or a unique prefix
    /// of at least 8 hex digits).
    pub code_or_id: String,
}

#[derive(Debug, Args)]
pub struct InviteRedeemArgs {
    /// The invite code (coll1-...).
    pub code: String,
    /// Your name in the member (NAME@<member>); default: the local part of your global id
    /// (`identity init`), else a random one.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Record the global id you go by (NAME@DOMAIN) in $COLLECTIVE_HOME; `invite redeem` then
    /// asks for NAME in the inviting member.
    Init(IdentityInitArgs),
    /// Show who you are (global id, certificate address, role) and what you may do (grants).
    Show(IdentityShowArgs),
}

#[derive(Debug, Args)]
pub struct IdentityInitArgs {
    #[arg(long)]
    pub global_id: String,
}

#[derive(Debug, Args)]
pub struct IdentityShowArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FederationJoinArgs {
    /// A member invite code (coll1-...) from a member of the federation.
    #[arg(long)]
    pub invite: String,
    /// Name of the new member; its domain is NAME.<federation domain>.
    #[arg(long)]
    pub member: String,
    /// The new member's first coordinator's data directory.
    #[arg(long, default_value = "collective-data")]
    pub data_dir: PathBuf,
    /// Address of the new member's first coordinator (mutual TLS).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the member keeps its data, keys and certificates.
    #[arg(long, default_value = "collective-data")]
    pub data_dir: PathBuf,
    /// Address of the coordinator's gRPC listener (mutual TLS).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Federation domain, used on first start only.
    #[arg(long, default_value = "home.collective")]
    pub federation: String,
    /// Member name (the member domain is NAME.FEDERATION), used on first start only.
    #[arg(long, default_value = "alice")]
    pub member: String,
    /// Address of the embedded storage node's chunk listener (default: the coordinator's port
    /// plus one), used on first start only.
    #[arg(long)]
    pub node_listen: Option<SocketAddr>,
    /// Address of the bootstrap (invite redemption) listener, server-authenticated TLS
    /// (default: the coordinator's port plus two).
    #[arg(long)]
    pub bootstrap_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// The federation's certificate authorities (root and member CAs).
    #[command(subcommand)]
    Ca(FederationCaCommand),
    /// Set up the first member of a new federation in one step: root CA, member CA, the first
    /// coordinator's data directory and an admin profile (as `coordinator init`).
    Init(FederationInitArgs),
    /// Join a federation as a new member with a member invite: creates the member CA's key,
    /// has the CA signed through the inviting member, then sets up the new member's first
    /// coordinator and admin profile (start it with `coordinator run`).
    Join(FederationJoinArgs),
}

#[derive(Debug, Subcommand)]
pub enum FederationCaCommand {
    /// Create the federation root CA (Ed25519, five years): root-ca.crt and root-ca.key (0600).
    /// Keep the key offline; it is needed only to sign member CAs.
    Init(FederationCaInitArgs),
    /// Sign a member CA (an intermediate name-constrained to MEMBER.<federation domain>):
    /// member-ca.crt and member-ca.key (0600).
    SignMember(FederationSignMemberArgs),
    /// Remove a member from the federation: signs the removal with the root key and hands it to
    /// a coordinator of your profile's member, from which it reaches every member's coordinators
    /// and storage nodes within seconds. They refuse every certificate of the removed member
    /// from then on (its own processes are not stopped). There is no undo.
    RemoveMember(FederationRemoveMemberArgs),
}

#[derive(Debug, Args)]
pub struct FederationCaInitArgs {
    /// Federation domain, e.g. home.collective (at least two labels).
    #[arg(long)]
    pub domain: String,
    /// Directory to write the root CA into (created if missing; must not hold a CA yet).
    #[arg(long, default_value = "federation-ca")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct FederationSignMemberArgs {
    /// Member name (e.g. bob), or its full domain below the federation domain.
    #[arg(long)]
    pub member: String,
    /// Directory holding root-ca.crt and root-ca.key.
    #[arg(long, default_value = "federation-ca")]
    pub ca_dir: PathBuf,
    /// Directory to write the member CA into (created if missing; must not hold one yet).
    #[arg(long, default_value = "member-ca")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct FederationRemoveMemberArgs {
    /// Member name (e.g. bob), or its full domain below the federation domain.
    #[arg(long)]
    pub member: String,
    /// Why; kept with the removal and logged wherever it is enforced.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Directory holding the root CA: root-ca.crt and root-ca.key (`federation ca init`), or the
    /// pki/ directory of the coordinator that made the federation (federation-ca.crt and
    /// federation-ca.key, made by `up` and `federation init`).
    #[arg(long, default_value = "federation-ca")]
    pub ca_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct FederationInitArgs {
    /// Federation domain, e.g. home.collective (a new root CA is made for it, unless --ca-dir).
    #[arg(long, required_unless_present = "ca_dir")]
    pub domain: Option<String>,
    /// Use the root CA in this directory (from `federation ca init`) instead of making one;
    /// its key is not copied into the data directory.
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
    /// Name of the first member; its domain is NAME.DOMAIN.
    #[arg(long)]
    pub member: String,
    /// The first coordinator's data directory.
    #[arg(long, default_value = "collective-data")]
    pub data_dir: PathBuf,
    /// Address of the first coordinator's gRPC listener (mutual TLS).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Revoke a certificate of this member, given by serial (hex) or certificate file. Every
    /// coordinator refuses it within a second of applying the revocation, storage nodes within
    /// one heartbeat interval, without restarting; it can never be used again.
    Revoke(CertRevokeArgs),
}

#[derive(Debug, Args)]
pub struct CertRevokeArgs {
    /// The certificate: its serial in hex (colons allowed), or a PEM certificate file.
    #[arg(value_name = "SERIAL-OR-CERT-FILE")]
    pub target: String,
    /// Why it is revoked (kept in the member's log).
    #[arg(long, default_value = "")]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Prepare a storage node's data directory: its certificate (signed by the member CA held
    /// in the admin profile) and node.toml. Then start it with `node run`.
    Prepare(NodePrepareArgs),
    /// Run a storage node from its data directory: serve chunks, register with the member's
    /// coordinators and send heartbeats (a daemon; stop it with SIGTERM or Ctrl-C).
    Run(NodeRunArgs),
}

#[derive(Debug, Args)]
pub struct NodePrepareArgs {
    /// Where the node keeps its configuration and certificates.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The node's name; its address is NAME@<member domain>.
    #[arg(long)]
    pub name: String,
    /// Address of the chunk service's listener (mutual TLS).
    #[arg(long)]
    pub listen: SocketAddr,
    /// A directory to keep chunks in (repeat for several disks; default DATA_DIR/data).
    #[arg(long = "data", value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// A placement label, key=value (repeatable), e.g. disk=ssd or location=attic.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Most bytes of chunks to keep in each data directory (default: the file system's size).
    #[arg(long, value_name = "BYTES")]
    pub capacity: Option<u64>,
}

#[derive(Debug, Args)]
pub struct NodeRunArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum CoordinatorCommand {
    /// Prepare the first coordinator of a new member: create the federation root CA, the member
    /// CA, this coordinator's certificate and an admin profile (to start from an existing root
    /// CA, use `collective federation init --ca-dir`).
    Init(CoordinatorInitArgs),
    /// Prepare another coordinator's data directory (certificate and config), signed by the
    /// member CA held in the admin profile. Then start it with `coordinator run` and add it.
    Prepare(CoordinatorPrepareArgs),
    /// Run a coordinator from its data directory (a daemon; stop it with SIGTERM or Ctrl-C).
    Run(CoordinatorRunArgs),
    /// Add a running, prepared coordinator to the group: as a learner, then as a voter once it
    /// has caught up (unless --learner).
    Add(CoordinatorAddArgs),
    /// Remove a coordinator from the group (use it to shrink, or to drop a dead one).
    Remove(CoordinatorRemoveArgs),
    /// Replace a dead coordinator: add the new one (learner, then voter), then remove the old.
    Replace(CoordinatorReplaceArgs),
}

#[derive(Debug, Args)]
pub struct CoordinatorInitArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Member name; the member domain is NAME.FEDERATION.
    #[arg(long)]
    pub member: String,
    #[arg(long, default_value = "home.collective")]
    pub federation: String,
    #[arg(long)]
    pub listen: SocketAddr,
    /// Raft id of this coordinator. Never reuse an id, even after removing a coordinator.
    #[arg(long, default_value_t = 1)]
    pub id: u64,
}

#[derive(Debug, Args)]
pub struct CoordinatorPrepareArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    /// A Raft id never used before in this member.
    #[arg(long)]
    pub id: u64,
    #[arg(long)]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct CoordinatorRunArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CoordinatorAddArgs {
    #[arg(long)]
    pub id: u64,
    /// host:port of the new coordinator's listener.
    #[arg(long)]
    pub endpoint: String,
    /// Keep it a learner (it replicates but does not vote).
    #[arg(long)]
    pub learner: bool,
}

#[derive(Debug, Args)]
pub struct CoordinatorRemoveArgs {
    #[arg(long)]
    pub id: u64,
}

#[derive(Debug, Args)]
pub struct CoordinatorReplaceArgs {
    /// Raft id of the coordinator being replaced.
    #[arg(long)]
    pub old: u64,
    /// Raft id of the replacement (new, never used before).
    #[arg(long)]
    pub id: u64,
    #[arg(long)]
    pub endpoint: String,
}

/// How a read may be served.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ReadArgs {
    /// Accept a follower's answer up to MS milliseconds stale instead of a linearizable read.
    #[arg(long, value_name = "MS")]
    pub stale_ms: Option<u32>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct MkdirArgs {
    /// Absolute paths, e.g. /media/movies.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Create missing parents; an existing directory is not an error.
    #[arg(short, long)]
    pub parents: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[arg(default_value = "/")]
    pub path: String,
    /// Long listing: kind, size, version, modification time.
    #[arg(short, long)]
    pub long: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct StatArgs {
    pub path: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Destination in the member's namespace, e.g. /media/film.mkv (its directory must exist).
    pub path: String,
    /// Local file to store; `-` or absent: standard input.
    pub file: Option<PathBuf>,
    /// Replicas per chunk (default: 2, or 1 when the member has one node).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    pub replicas: u32,
    /// Chunk size in bytes (default 4 MiB; at most 64 MiB).
    #[arg(long, default_value_t = crate::datapath::CHUNK_BYTES_DEFAULT)]
    pub chunk_bytes: usize,
    /// Versions of the file to keep (default: the member's, 3).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    pub keep_versions: u32,
    /// Only write if the file is at this version now (0: only if it does not exist yet).
    #[arg(long)]
    pub if_version: Option<u64>,
    /// Chunks uploaded at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar, even on a terminal.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReadFileArgs {
    /// The file in the member's namespace.
    pub path: String,
    /// Local file to write; `-` or absent: standard output. A regular file is written beside
    /// it and renamed into place once the read has succeeded (through a symbolic link, the file
    /// it points to); a device or FIFO, such as /dev/null, is written where it is.
    pub file: Option<PathBuf>,
    /// First byte to read.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Bytes to read from the offset (default: to the end).
    #[arg(long)]
    pub length: Option<u64>,
    /// Read a kept older version instead of the current one.
    #[arg(long, value_name = "N")]
    pub at_version: Option<u64>,
    /// Chunk fetches kept running at once; as many fetched chunks again may wait to be written
    /// out in order (memory: twice this many chunks at most).
    #[arg(long, default_value_t = crate::datapath::READ_AHEAD_DEFAULT)]
    pub read_ahead: usize,
    /// Print a summary as JSON on stderr when done.
    #[arg(long)]
    pub json: bool,
    /// No progress bar, even on a terminal.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Each chunk of a file: its hash, offset, size, and the nodes holding its replicas.
    Chunks(DebugChunksArgs),
}

#[derive(Debug, Args)]
pub struct DebugChunksArgs {
    /// The file in the member's namespace.
    #[arg(long)]
    pub file: String,
    /// A kept older version instead of the current one.
    #[arg(long, value_name = "N")]
    pub at_version: Option<u64>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Remove directories and everything below them.
    #[arg(short, long)]
    pub recursive: bool,
}

#[derive(Debug, Args)]
pub struct MvArgs {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the event log as JSON lines, one event per line, in log order.
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// First Raft log index to include.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Metadata load: N concurrent clients issuing commits (mkdir) or linearizable reads (stat)
    /// against the running member; prints throughput and p50/p99/p999 latency.
    Meta(BenchMetaArgs),
    /// Data path: large files written and read by N parallel streams, then small files
    /// created, stat'ed and read; prints throughput and latency percentiles.
    Io(BenchIoArgs),
    /// CPU cost on one core of the work every byte of the data path needs (blake3, and
    /// AES-128-GCM sealing and opening as TLS does); needs no running member.
    Cpu(BenchCpuArgs),
}

#[derive(Debug, Args)]
pub struct BenchCpuArgs {
    /// Bytes pushed through each measurement.
    #[arg(long, default_value_t = 1 << 30)]
    pub bytes: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchIoArgs {
    /// Total bytes of the large-file phase, across all streams.
    #[arg(long, default_value_t = 1 << 30)]
    pub bytes: u64,
    /// Parallel streams (and small-file workers).
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Small files to create, stat and read.
    #[arg(long, default_value_t = 1000)]
    pub small_files: usize,
    /// Size of each small file, in bytes.
    #[arg(long, default_value_t = 4096)]
    pub small_bytes: usize,
    /// Chunk size in bytes.
    #[arg(long, default_value_t = crate::datapath::CHUNK_BYTES_DEFAULT)]
    pub chunk_bytes: usize,
    /// Replicas per chunk (default: the member's).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    pub replicas: u32,
    /// Keep the benchmark's files instead of removing them.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchWorkload {
    /// Each operation commits one new directory (one Raft entry, fsynced on a quorum).
    Mkdir,
    /// Each operation is a linearizable stat of an existing directory.
    Read,
}

#[derive(Debug, Args)]
pub struct BenchMetaArgs {
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Total operations across all clients.
    #[arg(long, default_value_t = 10_000)]
    pub ops: usize,
    #[arg(long, value_enum, default_value_t = BenchWorkload::Mkdir)]
    pub workload: BenchWorkload,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks the whole command tree only when asked (or at run time, per subcommand):
    /// a duplicate flag in any subcommand fails here instead of in a user's hands.
    #[test]
    fn the_command_tree_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
