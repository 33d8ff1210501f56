//! Generates the gRPC services in `collective/api.proto`, `collective/raft.proto` and
//! `collective/chunk.proto`, and the tickets of `collective/ticket.proto`. The event schema they
//! import is compiled once, by the events crate, and referenced from here.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in [
        "collective/api.proto",
        "collective/raft.proto",
        "collective/events.proto",
        "collective/chunk.proto",
        "collective/ticket.proto",
        "collective/bootstrap.proto",
    ] {
        println!("cargo:rerun-if-changed={proto}");
    }
    // Tickets get their own pass: the services below refer to them through an extern path
    // (generated code nests by package, `super::super::ticket::v1`, our modules are flat), and
    // an extern path is never generated in the same pass.
    tonic_prost_build::configure().compile_with_config(
        prost_config()?,
        &["collective/ticket.proto"],
        &["."],
    )?;
    let mut config = prost_config()?;
    // Chunk data as `Bytes`: a node slices one verified buffer into frames without copying.
    config.bytes([
        ".collective.chunk.v1.PutRequest.data",
        ".collective.chunk.v1.GetResponse.data",
    ]);
    tonic_prost_build::configure()
        .extern_path(".collective.events.v1", "::collective_events::pb")
        .extern_path(".collective.ticket.v1", "crate::ticket")
        .compile_with_config(
            config,
            &[
                "collective/api.proto",
                "collective/raft.proto",
                "collective/chunk.proto",
                "collective/bootstrap.proto",
            ],
            &["."],
        )?;
    Ok(())
}

/// The vendored protoc goes to prost-build directly: setting PROTOC would need `unsafe`
/// (edition 2024), which the workspace forbids.
fn prost_config() -> Result<prost_build::Config, Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    Ok(config)
}
