//! Child processes with tokio's `process` API: [`Command`], [`Child`],
//! [`ChildStdin`], [`ChildStdout`], [`ChildStderr`].
//!
//! A child's piped streams are non-blocking pipes waited on by the core's
//! driver (io_uring `POLL_ADD` or epoll), like insane's sockets; waiting
//! for the child is a readiness wait on its pidfd (see [`Child`]): no
//! `SIGCHLD` handler and no reaper thread. `spawn` itself runs on the
//! calling core (fork/exec, as tokio does).
//!
//! ```
//! # insane_runtime::runtime::Runtime::builder().cores(1)
//! #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
//! #         .or_else(|_| insane_epoll::install_on_current_core())))
//! #     .build().unwrap().block_on(async {
//! use insane_net::process::Command;
//!
//! let output = Command::new("sh").arg("-c").arg("echo hi; exit 3").output().await?;
//! assert_eq!(output.stdout, b"hi\n");
//! assert_eq!(output.status.code(), Some(3));
//! # std::io::Result::Ok(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//!
//! - this file: [`Command`];
//! - `child.rs`: [`Child`], waiting through pidfds, orphans;
//! - `pipes.rs`: [`ChildStdin`], [`ChildStdout`], [`ChildStderr`].

mod child;
mod pipes;

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;

pub use child::Child;
pub use pipes::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

/// A process to spawn (tokio's `process::Command`): std's `Command` plus
/// [`kill_on_drop`](Command::kill_on_drop), spawning a [`Child`] whose
/// pipes and wait are asynchronous.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1)
/// #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
/// #         .or_else(|_| insane_epoll::install_on_current_core())))
/// #     .build().unwrap().block_on(async {
/// use insane_net::process::Command;
///
/// let status = Command::new("true").status().await?;
/// assert!(status.success());
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
}

impl Command {
    /// A command running `program` (looked up in `PATH` if it has no
    /// slash), inheriting the environment, working directory and standard
    /// streams.
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// The std command inside.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// The std command inside, to change.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// The std command (the `kill_on_drop` setting is dropped).
    pub fn into_std(self) -> std::process::Command {
        self.std
    }

    /// Adds an argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable of the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables of the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes a variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's standard input: `Stdio::piped()` gives
    /// [`Child::stdin`].
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdin(cfg);
        self
    }

    /// The child's standard output: `Stdio::piped()` gives
    /// [`Child::stdout`].
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdout(cfg);
        self
    }

    /// The child's standard error: `Stdio::piped()` gives
    /// [`Child::stderr`].
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stderr(cfg);
        self
    }

    /// Whether dropping the [`Child`] before it was reaped sends it
    /// `SIGKILL` (default: no; the child then runs on and is reaped when it
    /// exits, see [`Child`]).
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.kill_on_drop = kill_on_drop;
        self
    }

    /// The [`kill_on_drop`](Self::kill_on_drop) setting.
    pub fn get_kill_on_drop(&self) -> bool {
        self.kill_on_drop
    }

    /// The child's user id (`setuid`).
    pub fn uid(&mut self, id: u32) -> &mut Command {
        self.std.uid(id);
        self
    }

    /// The child's group id (`setgid`).
    pub fn gid(&mut self, id: u32) -> &mut Command {
        self.std.gid(id);
        self
    }

    /// The child's `argv[0]`.
    pub fn arg0<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.std.arg0(arg);
        self
    }

    /// The child's process group (`setpgid`; 0: a new group led by the
    /// child).
    pub fn process_group(&mut self, pgroup: i32) -> &mut Command {
        self.std.process_group(pgroup);
        self
    }

    /// Runs `f` in the child after fork, before exec (std's `pre_exec`).
    ///
    /// # Safety
    /// As std's: `f` runs in a forked copy of a multi-threaded process and
    /// may only do async-signal-safe things.
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        // SAFETY: forwarded to the caller's contract.
        unsafe { self.std.pre_exec(f) };
        self
    }

    /// Starts the process.
    ///
    /// # Errors
    /// `NotFound` for a program that does not exist, `PermissionDenied`,
    /// and the other errors of fork/exec; or a pipe could not be made
    /// non-blocking.
    pub fn spawn(&mut self) -> io::Result<Child> {
        child::reap_orphans();
        let std = self.std.spawn()?;
        Child::new(std, self.kill_on_drop)
    }

    /// Spawns the process (now) with stdin, stdout and stderr inherited
    /// unless set, and waits for its exit status (tokio's `status`).
    pub fn status(&mut self) -> impl Future<Output = io::Result<ExitStatus>> + use<> {
        let child = self.spawn();
        async move {
            let mut child = child?;
            // Close the parent's ends, so the child never waits on them.
            child.stdin.take();
            child.stdout.take();
            child.stderr.take();
            child.wait().await
        }
    }

    /// Spawns the process (now) with stdout and stderr piped, and collects
    /// its output and exit status (tokio's `output`). Stdin is inherited
    /// unless set.
    pub fn output(&mut self) -> impl Future<Output = io::Result<Output>> + use<> {
        self.std.stdout(Stdio::piped());
        self.std.stderr(Stdio::piped());
        let child = self.spawn();
        async move { child?.wait_with_output().await }
    }
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
        }
    }
}
