//! Compiles the durable schema in `../proto/collective/events.proto` with prost (no gRPC here),
//! and generates serde impls following the canonical protobuf JSON mapping (pbjson) for the
//! audit export.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let proto = "../proto/collective/events.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out_dir.join("events_descriptor.bin");
    prost_build::Config::new()
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&[proto], &["../proto"])?;
    let descriptor_bytes = std::fs::read(&descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .build(&[".collective.events.v1"])?;
    Ok(())
}
