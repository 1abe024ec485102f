//! An axum `Router` (`GET /`, `GET /json`, `POST /echo`; see
//! `insane_web_examples::app`) served on insane's sockets on every core:
//! one `SO_REUSEPORT` listener per core (`TcpListener::bind_on_every_core`),
//! each connection served by hyper-util's auto builder (HTTP/1.1, or
//! HTTP/2 with prior knowledge) with `insane::rt`'s executor and timer,
//! the Router adapted with `TowerToHyperService`. No tokio runtime:
//! `axum::serve` is tokio's, so it is not used.
//!
//! ```text
//! cargo run --release -p insane-web-examples --example axum -- --bind 127.0.0.1:3000 --cores 2
//! curl http://127.0.0.1:3000/ http://127.0.0.1:3000/json
//! curl --http2-prior-knowledge -d hi http://127.0.0.1:3000/echo
//! ```
//!
//! It prints `listening on ADDR (N cores, driver D)` once every core
//! serves, then runs until killed. `--bind` with port 0 picks a free port;
//! `--cores` defaults to every CPU the process may use;
//! `INSANE_DRIVER=epoll` chooses the epoll driver.

#[path = "../../common/mod.rs"]
mod common;

use std::process::ExitCode;

use insane_web_examples::{app, serve};

fn main() -> ExitCode {
    common::exit_code("axum", run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse("axum", "127.0.0.1:3000");
    let rt = args.runtime()?;
    let (cores, driver) = (rt.num_cores(), rt.driver());
    rt.block_on(async move {
        let addr = serve::serve_on_every_core(args.bind, app::router()).await?;
        common::announce(addr, cores, driver);
        std::future::pending().await
    })
}
