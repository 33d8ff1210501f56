//! Compiles the durable schema in `../proto/collective/events.proto` with prost (no gRPC here),
//! and generates serde impls following the canonical protobuf JSON mapping (pbjson) for the
//! audit export.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The vendored protoc is handed to prost-build directly rather than through the PROTOC
    // environment variable: setting a variable is `unsafe` in edition 2024, which the workspace
    // forbids.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let proto = "../proto/collective/events.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("events_descriptor.bin");
    prost_build::Config::new()
        .protoc_executable(protoc)
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&[proto], &["../proto"])?;
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .build(&[".collective.events.v1"])?;
    Ok(())
}
