//! Generates the `insane.echo.Echo` gRPC service (server and client) with
//! `tonic_build::manual`: the messages are Rust structs with
//! `#[derive(prost::Message)]` (src/echo.rs), so no `.proto` file and no
//! system `protoc` are needed.

fn main() {
    let unary_echo = tonic_build::manual::Method::builder()
        .name("unary_echo")
        .route_name("UnaryEcho")
        .input_type("crate::echo::EchoRequest")
        .output_type("crate::echo::EchoReply")
        .codec_path("tonic_prost::ProstCodec")
        .build();
    let echo = tonic_build::manual::Service::builder()
        .name("Echo")
        .package("insane.echo")
        .method(unary_echo)
        .build();
    tonic_build::manual::Builder::new()
        .build_transport(false)
        .compile(&[echo]);
    println!("cargo::rerun-if-changed=build.rs");
}
