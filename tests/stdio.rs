//! `insane::io::{stdin, stdout, stderr}`: the tests run this test binary
//! as a child process (with `INSANE_STDIO_CHILD` set and a test-name
//! filter) whose standard streams are pipes of the parent, so the bytes
//! that go through them can be checked. Every wait is bounded.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use insane::io::{AsyncReadExt, AsyncWriteExt};

const CHILD: &str = "INSANE_STDIO_CHILD";
const LIMIT: Duration = Duration::from_secs(60);
/// Written by a child before its payload: everything before it is the test
/// harness's own output.
const MARKER: &[u8] = b"\n--insane-stdio-begin--\n";

/// What a child run gave back.
struct Output {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs the child test `name` with `CHILD=mode`, feeding it `input` (or a
/// closed stdin when `None`), and collects its output; killed after LIMIT.
fn run_child(name: &str, mode: &str, input: Option<Vec<u8>>) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([
            name,
            "--exact",
            "--quiet",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, mode)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let writer = child.stdin.take().map(|mut pipe| {
        let input = input.unwrap_or_default();
        std::thread::spawn(move || {
            // The child may exit early on a failure; the parent's
            // assertions then report it.
            let _ = pipe.write_all(&input);
        })
    });
    let mut out = child.stdout.take().expect("stdout pipe");
    let mut err = child.stderr.take().expect("stderr pipe");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {name} ({mode}) did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(writer) = writer {
        writer.join().expect("stdin writer");
    }
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// The bytes after MARKER (the harness prints its header before it).
fn payload(bytes: &[u8]) -> &[u8] {
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .unwrap_or_else(|| {
            panic!(
                "no marker in the child's output: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(400)])
            )
        });
    &bytes[at + MARKER.len()..]
}

fn child_mode() -> Option<String> {
    std::env::var(CHILD).ok()
}

/// Child: copies stdin to stdout with `io::copy`, then exits before the
/// harness prints its result.
#[insane::test]
async fn child_copy() {
    if child_mode().as_deref() != Some("copy") {
        return;
    }
    let mut out = insane::io::stdout();
    out.write_all(MARKER).await.unwrap();
    let n = insane::time::timeout(LIMIT, insane::io::copy(&mut insane::io::stdin(), &mut out))
        .await
        .expect("copy timed out")
        .expect("copy failed");
    out.flush().await.unwrap();
    eprintln!("copied {n}");
    std::process::exit(0);
}

/// Child: reads stdin with a small buffer (several reads out of one
/// blocking read) and writes what it read to stdout.
#[insane::test]
async fn child_small_reads() {
    if child_mode().as_deref() != Some("small") {
        return;
    }
    let mut input = insane::io::stdin();
    let mut out = insane::io::stdout();
    out.write_all(MARKER).await.unwrap();
    let mut buf = [0u8; 7];
    loop {
        let n = input.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).await.unwrap();
    }
    out.shutdown().await.unwrap();
    std::process::exit(0);
}

/// Child: writes a message to stderr.
#[insane::test]
async fn child_stderr() {
    if child_mode().as_deref() != Some("stderr") {
        return;
    }
    let mut err = insane::io::stderr();
    err.write_all(MARKER).await.unwrap();
    err.write_all(b"a message on stderr\n").await.unwrap();
    err.flush().await.unwrap();
    std::process::exit(0);
}

/// Child: stdin is at end of input; a read gives 0 bytes, twice.
#[insane::test]
async fn child_eof() {
    if child_mode().as_deref() != Some("eof") {
        return;
    }
    let mut input = insane::io::stdin();
    let mut buf = [0u8; 64];
    let first = input.read(&mut buf).await;
    let second = input.read(&mut buf).await;
    let ok = matches!(first, Ok(0)) && matches!(second, Ok(0));
    std::process::exit(if ok { 0 } else { 3 });
}

/// A deterministic, non-repeating-looking 1 MiB.
fn one_mib() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..1 << 20)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

#[test]
fn one_mib_copied_from_stdin_to_stdout_is_unchanged() {
    if child_mode().is_some() {
        return;
    }
    let data = one_mib();
    let out = run_child("child_copy", "copy", Some(data.clone()));
    assert!(
        out.status.success(),
        "child failed: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let got = payload(&out.stdout);
    assert_eq!(got.len(), data.len());
    assert!(got == data.as_slice(), "the copied bytes differ");
    assert!(String::from_utf8_lossy(&out.stderr).contains("copied 1048576"));
}

#[test]
fn reads_smaller_than_a_blocking_read_lose_nothing() {
    if child_mode().is_some() {
        return;
    }
    let data: Vec<u8> = one_mib().into_iter().take(100_003).collect();
    let out = run_child("child_small_reads", "small", Some(data.clone()));
    assert!(out.status.success(), "child failed: {:?}", out.status);
    assert!(payload(&out.stdout) == data.as_slice(), "the bytes differ");
}

#[test]
fn stderr_carries_a_message() {
    if child_mode().is_some() {
        return;
    }
    let out = run_child("child_stderr", "stderr", None);
    assert!(out.status.success(), "child failed: {:?}", out.status);
    assert_eq!(payload(&out.stderr), b"a message on stderr\n");
}

#[test]
fn a_read_at_end_of_input_returns_zero() {
    if child_mode().is_some() {
        return;
    }
    let out = run_child("child_eof", "eof", None);
    assert!(
        out.status.success(),
        "read at EOF did not return 0: {:?}",
        out.status
    );
}

#[test]
fn outside_a_runtime_an_operation_is_an_error_not_a_panic() {
    let mut out = insane::io::stdout();
    let err = futures::executor::block_on(out.write(b"x")).unwrap_err();
    assert!(err.to_string().contains("insane runtime"), "{err}");
    // Nothing was started: a flush has nothing to wait for.
    futures::executor::block_on(out.flush()).unwrap();
    let mut input = insane::io::stdin();
    let mut buf = [0u8; 4];
    assert!(futures::executor::block_on(input.read(&mut buf)).is_err());
}

#[insane::test]
async fn empty_writes_and_flushes_complete_at_once() {
    let mut out = insane::io::stdout();
    assert_eq!(out.write(b"").await.unwrap(), 0);
    out.flush().await.unwrap();
    let mut err = insane::io::stderr();
    assert_eq!(err.write(b"").await.unwrap(), 0);
    err.shutdown().await.unwrap();
}

#[test]
fn handles_name_fds_0_1_2() {
    assert_eq!(insane::io::stdin().as_raw_fd(), 0);
    assert_eq!(insane::io::stdout().as_raw_fd(), 1);
    assert_eq!(insane::io::stderr().as_raw_fd(), 2);
    assert_eq!(insane::io::stderr().as_fd().as_raw_fd(), 2);
    fn send<T: Send + std::fmt::Debug>(_: &T) {}
    send(&insane::io::stdin());
    send(&insane::io::stdout());
    send(&insane::io::stderr());
}
