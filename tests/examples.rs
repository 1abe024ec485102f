//! The server examples run as users run them: each is started as a child
//! process with `--bind 127.0.0.1:0 --cores 2`, on the io_uring driver and
//! on the epoll driver (`INSANE_DRIVER` in its environment), and served
//! real traffic on 127.0.0.1 by std sockets and a real HTTP client (ureq).
//!
//! The example binaries are the ones `cargo test` builds next to the test
//! binaries (`target/<profile>/examples/`); when one is missing or older
//! than its source (e.g. after `cargo test --test examples` alone), it is
//! built into a separate target directory first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

/// How long an example may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(20);
/// How long one request or echo may take before the test fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Each check runs once per kernel driver, as its own test
/// (`hyper_server::uring`, `hyper_server::epoll`, ...).
macro_rules! on_each_driver {
    ($($example:ident),* $(,)?) => {$(
        mod $example {
            #[test]
            fn uring() {
                super::$example("uring");
            }

            #[test]
            fn epoll() {
                super::$example("epoll");
            }
        }
    )*};
}

on_each_driver!(hyper_server, echo_tcp, echo_udp);

/// A real HTTP client gets `/` twice (keep-alive through ureq's pool), and
/// two requests go over one raw connection, each answered in full.
fn hyper_server(driver: &str) {
    let Some(server) = Server::start("hyper_server", driver) else {
        return;
    };
    let agent = ureq::AgentBuilder::new().timeout(IO_TIMEOUT).build();
    let url = format!("http://{}/", server.addr);
    for _ in 0..2 {
        let response = agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| server.fail(&format!("GET {url}: {e}")));
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        let body = response.into_string().expect("the body is text");
        assert_eq!(body, "Hello, World!");
    }

    // Keep-alive: a second request on the same connection is answered too.
    let mut conn = connect(&server);
    for path in ["/", "/again"] {
        write!(conn, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).unwrap();
        let (head, body) = read_http_response(&mut conn);
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n"),
            "response head: {head:?}"
        );
        assert_eq!(body, b"Hello, World!");
    }
}

/// Four connections (spread by SO_REUSEPORT over both cores) each get
/// 1000 messages of varying length echoed back byte for byte.
fn echo_tcp(driver: &str) {
    let Some(server) = Server::start("echo_tcp", driver) else {
        return;
    };
    for c in 0..4 {
        let mut conn = connect(&server);
        let mut back = Vec::new();
        for i in 0..1000 {
            let message = format!("message {i} on connection {c}: {}\n", "x".repeat(i % 97));
            conn.write_all(message.as_bytes()).unwrap();
            back.resize(message.len(), 0);
            conn.read_exact(&mut back)
                .unwrap_or_else(|e| server.fail(&format!("echo {i} on connection {c}: {e}")));
            assert_eq!(back, message.as_bytes(), "echo {i} on connection {c}");
        }
        // Half-close: the server sees end-of-file and closes its side.
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "bytes after the last echo: {rest:?}");
    }
}

/// Four client sockets (spread over both cores) each get 200 datagrams
/// echoed back by the server's address; a lost datagram is sent again at
/// most 3 times.
fn echo_udp(driver: &str) {
    let Some(server) = Server::start("echo_udp", driver) else {
        return;
    };
    for c in 0..4 {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..200 {
            let message = format!("datagram {i} from socket {c}: {}", "y".repeat(i % 500));
            let mut echoed = false;
            'tries: for attempt in 0..4 {
                if attempt > 0 {
                    println!("datagram {i} from socket {c}: no echo within 1 s, sending it again");
                }
                socket.send_to(message.as_bytes(), server.addr).unwrap();
                // Skip late echoes of earlier tries until this one comes back.
                loop {
                    match socket.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            assert_eq!(from, server.addr, "echo from another address");
                            if &buf[..n] == message.as_bytes() {
                                echoed = true;
                                break 'tries;
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            break;
                        }
                        Err(e) => server.fail(&format!("recv_from: {e}")),
                    }
                }
            }
            if !echoed {
                server.fail(&format!("datagram {i} from socket {c} was never echoed"));
            }
        }
    }
}

/// A running example, killed when dropped (also when the test fails).
struct Server {
    child: Child,
    name: &'static str,
    driver: String,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `name` on `driver` and waits for its `listening on` line;
    /// `None` when the io_uring driver is requested on a host whose kernel
    /// disables io_uring (the test is then skipped, saying so).
    fn start(name: &'static str, driver: &str) -> Option<Server> {
        let mut child = Command::new(example_binary(name))
            .args(["--bind", "127.0.0.1:0", "--cores", "2"])
            .env("INSANE_DRIVER", driver)
            .env_remove("INSANE_CORES")
            .env_remove("INSANE_RUNTIME_CORES")
            .env_remove("INSANE_RUNTIME_DRIVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));

        // stderr is collected for failure messages; stdout's lines are
        // handed over as they come, so the wait for the first is bounded.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let (lines_tx, lines) = mpsc::channel();
        let out_pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let mut server = Server {
            child,
            name,
            driver: driver.to_owned(),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stderr,
        };
        let line = match lines.recv_timeout(STARTUP) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                server.fail(&format!("no `listening on` line within {STARTUP:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // It exited (or closed stdout) before serving.
                let status = server.wait_exit();
                if driver == "uring" && io_uring_disabled_by_kernel() {
                    println!(
                        "skipped: io_uring is disabled on this host (kernel.io_uring_disabled)"
                    );
                    return None;
                }
                server.fail(&format!("exited before serving ({status})"));
            }
        };
        let expected_tail = format!("(2 cores, driver {driver})");
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.strip_suffix(&expected_tail))
            .and_then(|addr| addr.trim().parse::<SocketAddr>().ok())
            .unwrap_or_else(|| {
                server.fail(&format!(
                    "unexpected first line {line:?}; expected `listening on ADDR {expected_tail}`"
                ))
            });
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
        assert_ne!(addr.port(), 0, "the line gives the port the kernel picked");
        server.addr = addr;
        Some(server)
    }

    /// Waits (bounded) for the child to exit, and describes how it did.
    fn wait_exit(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the stderr thread drain what the child wrote last.
                std::thread::sleep(Duration::from_millis(50));
                return status.to_string();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        "still running".into()
    }

    /// Fails the test, with what the example wrote on stderr.
    fn fail(&self, what: &str) -> ! {
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        panic!(
            "example {} on the {} driver: {what}\n--- its stderr ---\n{stderr}",
            self.name, self.driver
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A std TCP connection to the server, with timeouts so nothing hangs.
fn connect(server: &Server) -> TcpStream {
    let conn = TcpStream::connect_timeout(&server.addr, IO_TIMEOUT)
        .unwrap_or_else(|e| server.fail(&format!("connect: {e}")));
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    conn.set_nodelay(true).unwrap();
    conn
}

/// Reads one HTTP/1.1 response with a `content-length` body: its head (up
/// to the blank line) and its body.
fn read_http_response(conn: &mut TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte)
            .expect("a complete response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("the head is text");
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .expect("a content-length header");
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).expect("the whole body");
    (head, body)
}

/// Whether the kernel refuses io_uring to this process
/// (`kernel.io_uring_disabled` 2, or 1 for a process that is not root).
fn io_uring_disabled_by_kernel() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    match read("/proc/sys/kernel/io_uring_disabled").trim() {
        "2" => true,
        "1" => {
            let euid = read("/proc/self/status").lines().find_map(|l| {
                l.strip_prefix("Uid:")?
                    .split_whitespace()
                    .nth(1)
                    .map(str::to_owned)
            });
            euid.as_deref() != Some("0")
        }
        _ => false,
    }
}

/// The path of example `name`'s binary, built for this test's profile.
fn example_binary(name: &str) -> PathBuf {
    // This test runs as target/<profile>/deps/examples-<hash>; cargo puts
    // the examples it builds for `cargo test` in target/<profile>/examples.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let sibling = profile_dir.join("examples").join(name);
    if is_fresh(&sibling, name) {
        return sibling;
    }
    fallback_build(profile_dir).join("examples").join(name)
}

/// Whether `binary` exists and is newer than the example's sources.
fn is_fresh(binary: &Path, name: &str) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(binary) else {
        return false;
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    [
        examples.join(format!("{name}.rs")),
        examples.join("common").join("mod.rs"),
    ]
    .iter()
    .all(|source| modified(source).is_none_or(|m: SystemTime| m <= built))
}

/// Builds every example once per test run into a target directory of its
/// own (the one `cargo test` holds is locked while tests run), and returns
/// that directory's profile folder.
fn fallback_build(profile_dir: &Path) -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = built.as_ref() {
        return dir.clone();
    }
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let target_dir = profile_dir
        .parent()
        .expect("target/<profile>")
        .join("examples-test-build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--examples", "-p", "insane", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    if profile != "debug" {
        build.args(["--profile", profile]);
    }
    eprintln!("building the examples into {} ...", target_dir.display());
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building the examples failed: {status}");
    let dir = target_dir.join(profile);
    *built = Some(dir.clone());
    dir
}

/// `qos_pingpong --local` binds two endpoints of the requested QoS in one
/// process, plays a bounded ping-pong on 127.0.0.1 and reports what the
/// policy chose and the RTT percentiles, with nothing lost.
fn qos_pingpong(driver: &str) {
    for args in [
        &["--qos", "critical"][..],
        &["--qos", "normal"],
        &["--qos", "low", "--reliable"],
    ] {
        let output = Command::new(example_binary("qos_pingpong"))
            .args(["--local", "--count", "500"])
            .args(args)
            .env("INSANE_DRIVER", driver)
            .output()
            .expect("qos_pingpong runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "qos_pingpong {args:?} failed:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains(&format!("-> {driver}")) || stdout.contains("-> io_uring"),
            "{stdout}"
        );
        assert!(stdout.contains("500 round trips"), "{stdout}");
        assert!(stdout.contains(" 0 lost"), "{stdout}");
        assert!(stdout.contains("p50"), "{stdout}");
    }
}

on_each_driver!(qos_pingpong);

/// `pubsub` fans one sink out to 4 sources spread over the cores; every
/// source gets every message.
fn pubsub(driver: &str) {
    let output = Command::new(example_binary("pubsub"))
        .args(["--messages", "2000", "--sources", "4"])
        .env("INSANE_DRIVER", driver)
        .output()
        .expect("pubsub runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pubsub failed:\n{stdout}\n{stderr}"
    );
    let sources: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("source "))
        .collect();
    assert_eq!(sources.len(), 4, "{stdout}");
    for line in sources {
        assert!(line.contains(": 2000 messages"), "{line}");
        assert!(line.ends_with(" 0 dropped"), "{line}");
    }
}

on_each_driver!(pubsub);
