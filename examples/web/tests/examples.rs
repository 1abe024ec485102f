//! The `axum` and `tonic` examples run as users run them: started as child
//! processes (`--cores 2`, port 0) on each driver (`INSANE_DRIVER`), the
//! axum server answered over HTTP/1.1 by a std socket, the tonic example in
//! its default mode (serve, call itself, print the RTT).
//!
//! The binaries are the ones `cargo test` builds next to the test binaries
//! (`target/<profile>/examples/`; a plain `cargo test` builds every
//! example before running tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// The example binary `name` built next to this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test -p insane-web-examples` (which builds the examples) \
         rather than one test target alone",
        bin.display()
    );
    bin
}

/// A child process killed when dropped (a failed assertion included).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(name: &str, driver: &str, args: &[&str]) -> Killed {
    let child = Command::new(example(name))
        .args(args)
        .env("INSANE_DRIVER", driver)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    Killed(child)
}

fn axum_answers_get_over_http1(driver: &str) {
    let mut server = start("axum", driver, &["--bind", "127.0.0.1:0", "--cores", "2"]);
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no `listening on ADDR` line: {line:?}"));
    assert!(line.contains(&format!("driver {driver}")), "{line}");

    let mut socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket
        .write_all(b"GET /json HTTP/1.1\r\nHost: insane\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.ends_with(r#"{"message":"Hello, World!"}"#),
        "{answer}"
    );
}

fn tonic_serves_and_calls_itself(driver: &str) {
    let mut both = start("tonic", driver, &["--cores", "2"]);
    let mut stdout = both.0.stdout.take().unwrap();
    // Read on a thread so that a hung example fails the test (dropping
    // `both` kills it) instead of blocking it forever.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the tonic example finished its calls within 60 s");
    let status = both.0.wait().unwrap();
    assert!(status.success(), "tonic exited with {status}: {out}");
    assert!(out.contains(&format!("driver {driver}")), "{out}");
    assert!(out.contains("1000 unary calls to 127.0.0.1:"), "{out}");
    assert!(out.contains("RTT p50"), "{out}");
}

#[test]
fn axum_on_uring() {
    axum_answers_get_over_http1("uring");
}

#[test]
fn axum_on_epoll() {
    axum_answers_get_over_http1("epoll");
}

#[test]
fn tonic_on_uring() {
    tonic_serves_and_calls_itself("uring");
}

#[test]
fn tonic_on_epoll() {
    tonic_serves_and_calls_itself("epoll");
}
