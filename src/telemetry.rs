//! Logging to stderr with `tracing`: warnings by default, `-v`/`-vv` or RUST_LOG for more.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,openraft=warn",
        _ => "debug,openraft=info,h2=info,hyper=info,tower=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second init (tests calling the CLI in-process) is harmless: keep the first subscriber.
    // A line that cannot be written (stderr a pipe whose reader died) is dropped: by default
    // the subscriber would say so with `eprintln!`, which panics on that same stderr, in
    // whatever task was logging.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}

/// Writes one line to stderr (a daemon saying where it listens, a command's summary or error),
/// and drops it if stderr cannot take it: `eprintln!` would panic, and neither a daemon nor a
/// command that did its work should fail because nobody reads what it says.
pub fn stderr_line(line: std::fmt::Arguments<'_>) {
    let _ = write_line(&mut std::io::stderr().lock(), line);
}

/// `line` and a newline, to `out` (stdout's and stderr's lines, which differ in what a failure
/// does).
pub(crate) fn write_line(
    out: &mut impl std::io::Write,
    line: std::fmt::Arguments<'_>,
) -> std::io::Result<()> {
    out.write_fmt(line)?;
    out.write_all(b"\n")
}
