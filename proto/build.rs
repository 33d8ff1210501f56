//! Generates the gRPC services in `collective/api.proto` and `collective/raft.proto`. The event
//! schema they import is compiled once, by the events crate, and referenced from here.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The vendored protoc goes to prost-build directly: setting PROTOC would need `unsafe`
    // (edition 2024), which the workspace forbids.
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    for proto in [
        "collective/api.proto",
        "collective/raft.proto",
        "collective/events.proto",
    ] {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .extern_path(".collective.events.v1", "::collective_events::pb")
        .compile_with_config(config, &["collective/api.proto", "collective/raft.proto"], &["."])?;
    Ok(())
}
