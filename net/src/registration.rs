//! [`Registration`]: a socket's link to the I/O driver of each core that
//! waits on it.
//!
//! A socket is `Send + Sync` like tokio's, so an `Arc<UdpSocket>` may be
//! used by tasks on several cores at once. Each core that waits on the fd
//! registers it with its own driver, lazily, at the first wait. On drop,
//! the entry of the current core is removed at once and those of other
//! cores by a small task spawned on them (a driver is only touched by its
//! own core).

use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::task::{Context, Poll};

use insane_runtime::driver::{self, Direction, Token};
use insane_runtime::runtime::CoreHandle;

/// Per-core driver registrations of one fd.
#[derive(Debug)]
pub(crate) struct Registration {
    fd: RawFd,
    entries: Mutex<Vec<(CoreHandle, Token)>>,
}

impl Registration {
    /// Tracks `fd` (which must stay open until this is dropped).
    pub(crate) fn new(fd: RawFd) -> Self {
        Self {
            fd,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The token of this fd in the current core's driver, registering it
    /// there on first use.
    fn token(&self) -> io::Result<Token> {
        let core = CoreHandle::current().ok_or_else(|| {
            io::Error::other("insane sockets must be used from inside an insane runtime")
        })?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, token)) = entries.iter().find(|(c, _)| c.uid() == core.uid()) {
            return Ok(*token);
        }
        let token = driver::with_current(|d| d.register(self.fd))??;
        entries.push((core, token));
        Ok(token)
    }

    /// Waits (as a poll function) until the fd may be ready for `dir`.
    pub(crate) fn poll_ready(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let token = match self.token() {
            Ok(t) => t,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match driver::with_current(|d| d.poll_ready(token, dir, cx)) {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Records that the fd returned `WouldBlock` for `dir`.
    pub(crate) fn clear_ready(&self, dir: Direction) {
        if let Ok(token) = self.token() {
            let _ = driver::with_current(|d| d.clear_ready(token, dir));
        }
    }

    /// Runs the non-blocking syscall `op` until it stops returning
    /// `WouldBlock`, waiting for readiness in between (tokio's
    /// `async_io`).
    pub(crate) async fn async_io<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            std::future::poll_fn(|cx| self.poll_ready(dir, cx)).await?;
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_ready(dir),
                other => return other,
            }
        }
    }

    /// The poll-function form of [`async_io`](Self::async_io), for
    /// `AsyncRead`/`AsyncWrite` implementations.
    pub(crate) fn poll_io<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match self.poll_ready(dir, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_ready(dir),
                other => return Poll::Ready(other),
            }
        }
    }
}

impl Registration {
    /// Deregisters the fd from every core's driver, then drops `owner` (the
    /// fd's owner, so this closes the fd) once no driver tracks it any more.
    ///
    /// The entry of the current core is removed at once. Entries of other
    /// cores are removed by small tasks on those cores, which keep `owner`
    /// alive until they ran: closing the fd first would let its number be
    /// reused by a new socket while another core's driver still tracks it
    /// (an epoll `EPOLL_CTL_DEL` by fd would then remove the new socket's
    /// registration, and an io_uring poll still in flight keeps the old file
    /// open anyway).
    pub(crate) fn release<T: Send + Sync + 'static>(&mut self, owner: T) {
        let entries = std::mem::take(self.entries.get_mut().unwrap_or_else(|p| p.into_inner()));
        let owner = std::sync::Arc::new(owner);
        for (core, token) in entries {
            if core.is_current() {
                let _ = driver::with_current(|d| d.deregister(token));
            } else {
                let owner = owner.clone();
                drop(core.spawn(async move {
                    let _ = driver::with_current(|d| d.deregister(token));
                    drop(owner);
                }));
            }
        }
        drop(owner);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let entries = std::mem::take(self.entries.get_mut().unwrap_or_else(|p| p.into_inner()));
        for (core, token) in entries {
            if core.is_current() {
                let _ = driver::with_current(|d| d.deregister(token));
            } else {
                drop(core.spawn(async move {
                    let _ = driver::with_current(|d| d.deregister(token));
                }));
            }
        }
    }
}
