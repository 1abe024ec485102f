//! [`Child`]: a spawned process, waited for through a pidfd.
//!
//! At spawn the parent opens a pidfd for the child (`pidfd_open(2)`,
//! Linux 5.3). A pidfd becomes readable when its process exits, so waiting
//! is an ordinary readiness wait on the core's driver (io_uring `POLL_ADD`
//! or epoll, through [`AsyncFd`]) followed by a non-blocking `waitpid` that
//! reaps the child: no `SIGCHLD` handler, no reaper thread, and a wait on
//! one child never reaps another. Without pidfds (older kernels, seccomp)
//! a wait polls `waitpid(WNOHANG)` on a timer instead (1 ms, doubling up to
//! 50 ms).
//!
//! **Orphans.** A `Child` dropped before its process was reaped (killed
//! first with [`kill_on_drop`](super::Command::kill_on_drop)) is handed to
//! a task on the current runtime that waits for its pidfd and reaps it. A
//! child dropped outside a runtime, or whose reaping task was cancelled
//! with its runtime, joins a process-wide list that is reaped
//! (`waitpid(WNOHANG)` on each) at every `Command::spawn` and every wait of
//! another child; one still running when the process exits is left to
//! init, as with tokio.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{ExitStatus, Output};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, Interest};

use super::pipes::{ChildStderr, ChildStdin, ChildStdout};
use crate::AsyncFd;

/// Longest pause between two `waitpid` polls when pidfds are missing.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(50);

/// Children dropped while running that no task is reaping.
static ORPHANS: Mutex<Vec<std::process::Child>> = Mutex::new(Vec::new());

/// Reaps the orphans that exited.
pub(super) fn reap_orphans() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(PoisonError::into_inner);
    orphans.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
}

fn adopt_orphan(child: std::process::Child) {
    ORPHANS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(child);
}

/// A pidfd for `pid`, or `None` when the kernel gives none.
fn pidfd_open(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        tracing::debug!(
            error = %io::Error::last_os_error(),
            "pidfd_open failed; child waits poll waitpid on a timer"
        );
        return None;
    }
    // SAFETY: the kernel returned a new descriptor (close-on-exec) that
    // nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    // SAFETY: the `OwnedFd` owns the pidfd, which stays open while it
    // lives, and is never replaced.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
}

/// A running child, as spawned.
struct Running {
    std: std::process::Child,
    /// Readable once the child exited; `None` without pidfd support.
    pidfd: Option<AsyncFd<OwnedFd>>,
    kill_on_drop: bool,
}

impl Running {
    /// Waits until the child exited and reaps it.
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.std.try_wait()? {
                return Ok(status);
            }
            match &self.pidfd {
                Some(pidfd) => {
                    // Readable means exited; the next `try_wait` reaps.
                    let mut ready = pidfd.readable().await?;
                    ready.clear_ready();
                }
                None => {
                    insane_runtime::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_POLL_PAUSE);
                }
            }
        }
    }
}

/// Reaps a dropped child on its runtime, or adopts it into [`ORPHANS`]
/// if the task ends (its runtime shuts down) before the child did.
struct Orphan(Option<Running>);

impl Drop for Orphan {
    fn drop(&mut self) {
        if let Some(running) = self.0.take() {
            adopt_orphan(running.std);
        }
    }
}

enum State {
    Running(Running),
    Exited(ExitStatus),
}

/// A spawned child process (tokio's `process::Child`).
///
/// The `stdin`, `stdout` and `stderr` fields hold the parent's ends of the
/// streams that were [`Stdio::piped`](std::process::Stdio::piped); take
/// them to use them (e.g. `child.stdin.take()`).
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1)
/// #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
/// #         .or_else(|_| insane_epoll::install_on_current_core())))
/// #     .build().unwrap().block_on(async {
/// use std::process::Stdio;
/// use insane_net::process::Command;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let mut child = Command::new("cat")
///     .stdin(Stdio::piped())
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let mut stdin = child.stdin.take().unwrap();
/// stdin.write_all(b"echo").await?;
/// drop(stdin); // cat sees the end of its input
/// let mut out = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut out).await?;
/// assert_eq!(out, "echo");
/// assert!(child.wait().await?.success());
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
pub struct Child {
    state: State,
    /// The child's standard input, if piped.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, if piped.
    pub stderr: Option<ChildStderr>,
}

impl Child {
    /// Wraps a spawned std child: opens its pidfd and makes its pipes
    /// non-blocking.
    pub(super) fn new(mut std: std::process::Child, kill_on_drop: bool) -> io::Result<Child> {
        let stdin = std.stdin.take().map(ChildStdin::from_std).transpose();
        let stdout = std.stdout.take().map(ChildStdout::from_std).transpose();
        let stderr = std.stderr.take().map(ChildStderr::from_std).transpose();
        let pidfd = pidfd_open(std.id());
        let mut child = Child {
            state: State::Running(Running {
                std,
                pidfd,
                kill_on_drop,
            }),
            stdin: None,
            stdout: None,
            stderr: None,
        };
        // On error `child` is dropped: killed if asked, else reaped as an
        // orphan.
        child.stdin = stdin?;
        child.stdout = stdout?;
        child.stderr = stderr?;
        Ok(child)
    }

    /// The OS process id, until the child has been reaped (then `None`).
    pub fn id(&self) -> Option<u32> {
        match &self.state {
            State::Running(running) => Some(running.std.id()),
            State::Exited(_) => None,
        }
    }

    /// Sends `SIGKILL` and returns without waiting (tokio's `start_kill`);
    /// `Ok` if the child was already reaped.
    ///
    /// # Errors
    /// Those of kill(2).
    pub fn start_kill(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Running(running) => running.std.kill(),
            State::Exited(_) => Ok(()),
        }
    }

    /// Sends `SIGKILL` and waits for the child to exit (tokio's `kill`).
    ///
    /// # Errors
    /// As [`start_kill`](Self::start_kill) and [`wait`](Self::wait).
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Waits for the child to exit and reaps it (tokio's `wait`); the
    /// status is kept, so later calls return it again. Closes `stdin`
    /// first, so a child reading its input does not wait for the parent
    /// forever. Cancel-safe.
    ///
    /// # Errors
    /// Outside an insane runtime; waitpid's errors.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        reap_orphans();
        let status = match &mut self.state {
            State::Exited(status) => return Ok(*status),
            State::Running(running) => running.wait().await?,
        };
        self.state = State::Exited(status);
        Ok(status)
    }

    /// The exit status if the child has exited (reaping it), else `None`,
    /// without waiting (tokio's `try_wait`).
    ///
    /// # Errors
    /// waitpid's.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        reap_orphans();
        let status = match &mut self.state {
            State::Exited(status) => return Ok(Some(*status)),
            State::Running(running) => running.std.try_wait()?,
        };
        if let Some(status) = status {
            self.state = State::Exited(status);
        }
        Ok(status)
    }

    /// Waits for the child to exit while reading all of its piped stdout
    /// and stderr (tokio's `wait_with_output`); streams that were not
    /// piped give empty output.
    ///
    /// # Errors
    /// As [`wait`](Self::wait), or a read from a pipe failed.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        async fn read_all<R: tokio::io::AsyncRead + Unpin>(
            pipe: &mut Option<R>,
        ) -> io::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                pipe.read_to_end(&mut bytes).await?;
            }
            Ok(bytes)
        }
        let mut out = self.stdout.take();
        let mut err = self.stderr.take();
        let (status, stdout, stderr) =
            tokio::try_join!(self.wait(), read_all(&mut out), read_all(&mut err))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let State::Running(running) = &mut self.state else {
            return;
        };
        if running.kill_on_drop {
            let _ = running.std.kill();
        }
        if !matches!(running.std.try_wait(), Ok(None)) {
            return; // reaped now (or not ours to reap any more)
        }
        let placeholder = State::Exited(ExitStatus::default());
        let State::Running(running) = std::mem::replace(&mut self.state, placeholder) else {
            return;
        };
        let mut orphan = Orphan(Some(running));
        let runtime = insane_runtime::runtime::Handle::try_current().ok();
        match runtime {
            Some(rt) if orphan.0.as_ref().is_some_and(|r| r.pidfd.is_some()) => {
                drop(rt.spawn(async move {
                    let reaped = match &mut orphan.0 {
                        Some(running) => running.wait().await.is_ok(),
                        None => true,
                    };
                    if reaped {
                        // Nothing left for the guard's drop to adopt.
                        drop(orphan.0.take());
                    }
                }));
            }
            // No runtime to wait on (or no pidfd): the list, reaped at the
            // next spawn or wait.
            _ => drop(orphan),
        }
    }
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.id())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}
