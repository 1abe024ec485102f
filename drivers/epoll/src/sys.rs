//! Thin, checked wrappers over the epoll system calls.
//!
//! Every error names the call and its arguments ("epoll_ctl(ADD, fd 7)
//! failed: Bad file descriptor") and keeps the OS error's kind, so callers
//! can both match on it and show it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// An epoll instance (closed on drop).
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

/// The `op` argument of `epoll_ctl`, named for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CtlOp {
    Add,
    Mod,
    Del,
}

impl CtlOp {
    fn raw(self) -> libc::c_int {
        match self {
            CtlOp::Add => libc::EPOLL_CTL_ADD,
            CtlOp::Mod => libc::EPOLL_CTL_MOD,
            CtlOp::Del => libc::EPOLL_CTL_DEL,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CtlOp::Add => "ADD",
            CtlOp::Mod => "MOD",
            CtlOp::Del => "DEL",
        }
    }
}

/// Wraps the last OS error with a description of what failed.
fn os_error(what: impl std::fmt::Display) -> io::Error {
    annotate(io::Error::last_os_error(), what)
}

/// `err` with `what` in front of its message, keeping its kind.
pub(crate) fn annotate(err: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(err.kind(), format!("{what} failed: {err}"))
}

/// A zeroed event array element.
pub(crate) const EMPTY_EVENT: libc::epoll_event = libc::epoll_event { events: 0, u64: 0 };

/// `struct __kernel_timespec`: what `epoll_pwait2` takes on every
/// architecture (64-bit seconds even where `time_t` is 32 bits).
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// Whether this kernel has `epoll_pwait2`, learned once per process.
static PWAIT2: AtomicU8 = AtomicU8::new(PWAIT2_UNKNOWN);
const PWAIT2_UNKNOWN: u8 = 0;
const PWAIT2_YES: u8 = 1;
const PWAIT2_NO: u8 = 2;

/// Whether `epoll_pwait2` is known to be missing (ENOSYS, or EPERM from a
/// seccomp filter that does not know it).
pub(crate) fn pwait2_unavailable() -> bool {
    PWAIT2.load(Ordering::Relaxed) == PWAIT2_NO
}

/// Rounds `timeout` up to whole milliseconds for `epoll_wait` (so it never
/// returns before the timeout), `-1` for "forever"; saturates at
/// `i32::MAX` ms (about 24.8 days).
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let nanos = d.as_nanos();
            let ms = nanos.div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked
        // before it is used as a descriptor.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(os_error("epoll_create1(EPOLL_CLOEXEC)"));
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else
        // owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// The epoll descriptor.
    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `epoll_ctl(op, fd, {events, data})`.
    pub(crate) fn ctl(&self, op: CtlOp, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: data };
        // SAFETY: `event` is a live local for the whole call (the kernel
        // copies it; DEL ignores it but old kernels want a valid pointer).
        let rc = unsafe { libc::epoll_ctl(self.raw(), op.raw(), fd, &mut event) };
        if rc < 0 {
            return Err(os_error(format_args!("epoll_ctl({}, fd {fd})", op.name())));
        }
        Ok(())
    }

    /// Waits for events. `timeout` `Some(ZERO)` only polls; `None` waits
    /// forever. With `precise` set, uses `epoll_pwait2` (nanosecond
    /// timeout) unless the kernel lacks it, else `epoll_wait` with the
    /// timeout rounded up to whole milliseconds. Returns the number of
    /// events written to the front of `events`; `EINTR` gives `Ok(0)`.
    pub(crate) fn wait(
        &self,
        events: &mut [libc::epoll_event],
        timeout: Option<Duration>,
        precise: bool,
    ) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        if max == 0 {
            return Ok(0);
        }
        let needs_precision = timeout.is_some_and(|d| d.subsec_nanos() % 1_000_000 != 0);
        if precise && needs_precision && !pwait2_unavailable() {
            match self.pwait2(events, max, timeout) {
                Ok(n) => return Ok(n),
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOSYS)
                        || e.raw_os_error() == Some(libc::EPERM) =>
                {
                    if PWAIT2.swap(PWAIT2_NO, Ordering::Relaxed) != PWAIT2_NO {
                        tracing::debug!(
                            error = %e,
                            "epoll_pwait2 unavailable; falling back to epoll_wait with millisecond timeouts"
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
                Err(e) => {
                    return Err(annotate(
                        e,
                        format_args!("epoll_pwait2(epfd {})", self.raw()),
                    ));
                }
            }
        }
        let ms = timeout_ms(timeout);
        // SAFETY: `events` is a live, writable buffer of at least `max`
        // elements for the whole call.
        let rc = unsafe { libc::epoll_wait(self.raw(), events.as_mut_ptr(), max, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(annotate(
                err,
                format_args!("epoll_wait(epfd {}, timeout {ms} ms)", self.raw()),
            ));
        }
        Ok(rc as usize)
    }

    /// `epoll_pwait2` through `syscall(2)` (glibc only wraps it since
    /// 2.35). Returns the raw OS error so the caller can spot ENOSYS.
    fn pwait2(
        &self,
        events: &mut [libc::epoll_event],
        max: libc::c_int,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let ts = timeout.map(|d| KernelTimespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const KernelTimespec);
        // SAFETY: `events` is a live, writable buffer of at least `max`
        // elements and `ts` a live `__kernel_timespec` (or null: wait
        // forever) for the whole call; a null sigmask leaves the signal
        // mask alone (the size argument is then ignored).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                self.raw(),
                events.as_mut_ptr(),
                max,
                ts_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        PWAIT2.store(PWAIT2_YES, Ordering::Relaxed);
        Ok(rc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounds_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1_500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(5_000_001))), 6);
        assert_eq!(timeout_ms(Some(Duration::MAX)), libc::c_int::MAX);
    }

    #[test]
    fn ctl_errors_name_the_call() {
        let ep = Epoll::new().unwrap();
        let err = ep.ctl(CtlOp::Add, -1, libc::EPOLLIN as u32, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "epoll_ctl(ADD, fd -1) failed: Bad file descriptor (os error 9)"
        );
    }

    #[test]
    fn empty_buffer_and_zero_timeout_return_at_once() {
        let ep = Epoll::new().unwrap();
        assert_eq!(ep.wait(&mut [], None, true).unwrap(), 0);
        let mut events = [EMPTY_EVENT; 4];
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO), true).unwrap(), 0);
    }
}
