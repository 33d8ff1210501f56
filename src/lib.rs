//! Collective: federated storage for homelabs. This crate is the `collective` binary's library:
//! the command line, the client, the coordinator process and its gRPC services, the storage
//! node and its tickets, and the PKI and mutual-TLS layer every listener uses.

/// `eprintln!` that cannot panic: a line stderr cannot take is dropped (see
/// [`crate::telemetry::stderr_line`]). Defined before the modules, so that all of them see it.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::telemetry::stderr_line(format_args!($($arg)*))
    };
}

pub mod audit;
pub mod bench_cpu;
pub mod bench_io;
pub mod bench_meta;
pub mod bootstrap;
pub(crate) mod buffers;
pub mod chunk_hash;
pub mod cli;
pub mod client;
pub mod coordinator;
pub mod datapath;
pub mod env;
pub mod error;
pub mod node;
pub mod pki;
pub mod profile;
pub(crate) mod slots;
pub mod telemetry;
pub mod ticket;
pub mod tls;
pub mod transport;
pub mod wire;
