//! The `collective` binary: a thin shell over the library's command line.

/// jemalloc rather than glibc's malloc: see the dependency's note in Cargo.toml, and the A/B in
/// docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    collective::cli::main()
}
