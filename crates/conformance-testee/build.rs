//! Generates the conformance protocol structs from the committed descriptor set
//! `conformance/conformance.binpb` (written by `conformance/generate_protocol.py` with
//! grpc_tools), so no `protoc` runs at build time.

use std::path::PathBuf;

use prost::Message;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let fds_path = manifest.join("../../conformance/conformance.binpb");
    println!("cargo:rerun-if-changed={}", fds_path.display());
    let bytes = std::fs::read(&fds_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", fds_path.display()));
    let fds = prost_types::FileDescriptorSet::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("{} is not a FileDescriptorSet: {e}", fds_path.display()));
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("prost-build failed: {e}"));
}
