//! The command line: argument definitions, dispatch, and the exit-code contract (0 on success,
//! 1 on a refused or failed operation, 2 on bad usage, 141 when standard output was closed by
//! its reader, as SIGPIPE would end the command), with errors printed as `error: ...`.

/// `println!` for what a command prints: when the reader of standard output goes away, as in
/// `collective ls -l / | head`, the command ends quietly with the status SIGPIPE would give it
/// (as `ls` would end), and any other failure to write is an error message, never a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))
    };
}

pub mod args;
mod audit;
mod bench;
mod cert;
mod coordinator;
mod data;
mod federation;
mod identity;
mod invite;
mod namespace;
mod node;
mod output;
mod status;
mod up;

pub use args::{Cli, Command};

use clap::Parser;
use std::process::ExitCode;

/// Parses the arguments, runs the command on a multi-threaded runtime and maps the result to an
/// exit code. Errors are printed once, here, where they are handled.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            errln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<StdoutClosed>() => ExitCode::from(StdoutClosed::EXIT_CODE),
        Err(error) => {
            errln!("error: {}", crate::error::render(&error));
            ExitCode::FAILURE
        }
    }
}

/// The reader of standard output went away, as in `collective read /film.mkv - | head -c 100`:
/// the command stops quietly, with the status a shell shows for a process that SIGPIPE ended
/// (as `cat` would be), and not with an error about a broken pipe.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed by its reader")]
pub(crate) struct StdoutClosed;

impl StdoutClosed {
    const EXIT_CODE: u8 = 128 + 13;
}

/// Writes one line of a command's output (see `outln!`). Exiting here, rather than returning an
/// error up through every caller, is what SIGPIPE does to any other program in a pipeline, and
/// is as safe: every write the command made was acknowledged or not before it printed.
pub(crate) fn print_line(line: std::fmt::Arguments<'_>) {
    match crate::telemetry::write_line(&mut std::io::stdout().lock(), line) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(i32::from(StdoutClosed::EXIT_CODE))
        }
        Err(error) => {
            errln!("error: cannot write to standard output: {error}");
            std::process::exit(1)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let home = cli.home.clone();
    match cli.command {
        Command::Up(args) => up::run(args, home).await,
        Command::Federation(args::FederationCommand::Join(args)) => invite::federation_join(args, home).await,
        Command::Federation(args::FederationCommand::Ca(args::FederationCaCommand::RemoveMember(args))) => {
            federation::remove_member(args, &home).await
        }
        Command::Federation(args) => federation::run(args, home),
        Command::Coordinator(args) => coordinator::run(args, home).await,
        Command::Node(args) => node::run(args, home).await,
        Command::Cert(args) => cert::run(args, home).await,
        Command::Status(args) => status::run(args, home).await,
        Command::Mkdir(args) => namespace::mkdir(args, home).await,
        Command::Ls(args) => namespace::ls(args, home).await,
        Command::Stat(args) => namespace::stat(args, home).await,
        Command::Rm(args) => namespace::rm(args, home).await,
        Command::Mv(args) => namespace::mv(args, home).await,
        Command::Write(args) => data::write(args, home).await,
        Command::Read(args) => data::read(args, home).await,
        Command::Debug(args) => data::debug(args, home).await,
        Command::Audit(args) => audit::run(args, home).await,
        Command::Bench(args) => bench::run(args, home).await,
        Command::Invite(args) => invite::run(args, home).await,
        Command::Identity(args) => identity::run(args, home).await,
    }
}
