//! Compiles the `.proto` files with `protox` (a pure-Rust protobuf compiler), so no system
//! `protoc` is needed, and generates the prost messages and tonic services.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/h264create/v1/control.proto",
        "proto/h264create/v1/fleet.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
