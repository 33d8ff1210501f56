//! Generates the gRPC services in `collective/api.proto` and `collective/raft.proto`. The event
//! schema they import is compiled once, by the events crate, and referenced from here.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts are single-threaded; tonic-prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    for proto in ["collective/api.proto", "collective/raft.proto", "collective/events.proto"] {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .extern_path(".collective.events.v1", "::collective_events::pb")
        .compile_protos(&["collective/api.proto", "collective/raft.proto"], &["."])?;
    Ok(())
}
