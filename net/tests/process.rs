//! `insane_net::process` (tokio's `process`) on both kernel drivers: each
//! test is a specification of tokio's behaviour that insane keeps.

mod common;

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::on_each_driver;
use insane_net::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound of any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`LIMIT`].
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match insane_runtime::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} took longer than {LIMIT:?}"),
    }
}

/// Whether process `pid` still exists, as a zombie too.
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits (bounded) until process `pid` is gone: exited and reaped.
async fn until_reaped(pid: u32, driver: &str) {
    let start = Instant::now();
    while exists(pid) {
        assert!(
            start.elapsed() < LIMIT,
            "{driver}: process {pid} was never reaped"
        );
        insane_runtime::time::sleep(Duration::from_millis(2)).await;
    }
}

#[test]
fn output_collects_stdout_stderr_and_the_exit_code() {
    on_each_driver(1, |driver| async move {
        let out = bounded(
            "output",
            Command::new("sh")
                .args(["-c", "echo out; echo err >&2; exit 7"])
                .output(),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, b"out\n", "{driver}");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(7));
        assert!(!out.status.success());
    });
}

#[test]
fn status_reports_exit_codes_and_signals() {
    on_each_driver(1, |driver| async move {
        let ok = Command::new("sh").args(["-c", "exit 0"]).status();
        assert!(bounded("status", ok).await.unwrap().success(), "{driver}");
        let code = Command::new("sh").args(["-c", "exit 42"]).status();
        assert_eq!(bounded("status", code).await.unwrap().code(), Some(42));
        let killed = Command::new("sh").args(["-c", "kill -TERM $$"]).status();
        let status = bounded("status", killed).await.unwrap();
        assert_eq!(status.code(), None);
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    });
}

#[test]
fn stdin_piped_to_cat_comes_back_on_stdout() {
    on_each_driver(1, |driver| async move {
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // More than a pipe holds: writing and reading must overlap.
        let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
        let mut stdin = cat.stdin.take().unwrap();
        let sent = data.clone();
        let writer = insane_runtime::task::spawn(async move {
            stdin.write_all(&sent).await.unwrap();
            // Dropping stdin closes the pipe: cat ends.
        });
        let mut back = Vec::new();
        let mut stdout = cat.stdout.take().unwrap();
        bounded("read cat's output", stdout.read_to_end(&mut back))
            .await
            .unwrap();
        writer.await.unwrap();
        assert!(back == data, "{driver}: cat returns every byte in order");
        assert!(bounded("wait", cat.wait()).await.unwrap().success());
    });
}

#[test]
fn wait_with_output_reads_both_streams_while_waiting() {
    on_each_driver(1, |driver| async move {
        // 200 KB on each stream: more than the pipes hold, so the child
        // blocks unless both are read while waiting.
        let script = "head -c 200000 /dev/zero; head -c 200000 /dev/zero >&2";
        let child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(child.id().is_some());
        let out = bounded("wait_with_output", child.wait_with_output())
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), 200_000, "{driver}");
        assert_eq!(out.stderr.len(), 200_000);
        assert!(out.status.success());
    });
}

#[test]
fn try_wait_is_none_while_running_and_the_status_once_exited() {
    on_each_driver(1, |driver| async move {
        let mut child = Command::new("sh")
            .args(["-c", "read line; exit 5"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(child.try_wait().unwrap().is_none(), "{driver}");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"go\n").await.unwrap();
        let status = bounded("wait", child.wait()).await.unwrap();
        assert_eq!(status.code(), Some(5));
        assert_eq!(child.try_wait().unwrap(), Some(status));
        assert_eq!(child.wait().await.unwrap(), status, "the status is kept");
        assert_eq!(child.id(), None, "{driver}: reaped");
    });
}

#[test]
fn wait_closes_stdin_so_a_reading_child_ends() {
    on_each_driver(1, |driver| async move {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let status = bounded("wait on cat", child.wait()).await.unwrap();
        assert!(status.success(), "{driver}");
    });
}

#[test]
fn kill_ends_a_running_child() {
    on_each_driver(1, |driver| async move {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        bounded("kill", child.kill()).await.unwrap();
        let status = child.try_wait().unwrap().expect("killed and reaped");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{driver}");
        child.start_kill().unwrap();

        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.start_kill().unwrap();
        let status = bounded("wait after start_kill", child.wait())
            .await
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn kill_on_drop_kills_and_the_child_is_reaped() {
    on_each_driver(1, |driver| async move {
        let child = Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        drop(child);
        until_reaped(pid, driver).await;
    });
}

#[test]
fn a_dropped_child_runs_on_and_is_reaped_when_it_exits() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("done");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("sleep 0.05; echo > {}", marker.display()))
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        drop(child);
        until_reaped(pid, driver).await;
        assert!(marker.exists(), "{driver}: not killed by the drop");
    });
}

#[test]
fn a_missing_program_is_not_found() {
    on_each_driver(1, |driver| async move {
        let err = Command::new("/nonexistent/insane-test-program")
            .output()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{driver}");
        let err = Command::new("insane-no-such-program-on-path")
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    });
}

#[test]
fn environment_directory_and_pipes_between_children() {
    on_each_driver(1, |driver| async move {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("sh")
            .args(["-c", "echo \"$GREETING\"; pwd; echo \"${HOME:-unset}\""])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GREETING", "hello")
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        let expected = format!("hello\n{}\nunset\n", canonical.display());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected, "{driver}");

        // One child's stdout as another's stdin (tokio's TryInto<Stdio>).
        let mut first = Command::new("echo")
            .arg("piped along")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe: Stdio = first.stdout.take().unwrap().try_into().unwrap();
        let second = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(pipe)
            .output()
            .await
            .unwrap();
        assert_eq!(second.stdout, b"PIPED ALONG\n");
        assert!(first.wait().await.unwrap().success());
    });
}

#[test]
fn children_can_be_awaited_on_another_core() {
    on_each_driver(2, |driver| async move {
        let mut child = Command::new("sh").args(["-c", "exit 9"]).spawn().unwrap();
        let status = insane_runtime::task::spawn_on(1, async move { child.wait().await })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(9), "{driver}");
    });
}
