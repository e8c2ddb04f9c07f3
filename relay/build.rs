//! Compiles `proto/` with protox, so building needs no system `protoc`.
//! The generated server and client modules sit behind the crate's
//! `server` and `client` features, so the agent never compiles the server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/nest/v1/common.proto",
        "proto/nest/v1/agent.proto",
        "proto/nest/v1/control.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .server_mod_attribute("nest.v1", "#[cfg(feature = \"server\")]")
        .client_mod_attribute("nest.v1", "#[cfg(feature = \"client\")]")
        // The agent RPC is named `Connect`, which would clash with the
        // generated `connect` constructor; clients are built from a Channel.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
