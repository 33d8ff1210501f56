//! Compiles the durable schema in `../proto/collective/events.proto` with prost (no gRPC here).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The vendored protoc is handed to prost-build directly rather than through the PROTOC
    // environment variable: setting a variable is `unsafe` in edition 2024, which the workspace
    // forbids.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let proto = "../proto/collective/events.proto";
    println!("cargo:rerun-if-changed={proto}");
    prost_build::Config::new()
        .protoc_executable(protoc)
        .compile_protos(&[proto], &["../proto"])?;
    Ok(())
}
