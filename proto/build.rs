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
    // A shadow comparison is also kept in the controller's saved rollout state (JSON); older
    // states lack the newer fields, hence `default`.
    tonic_prost_build::configure()
        .type_attribute(
            "h264create.v1.ShadowComparison",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .compile_fds(fds)?;
    Ok(())
}
