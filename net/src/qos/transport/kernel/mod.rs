//! The kernel-socket technology: QoS endpoints on kernel UDP
//! ([`udp::UdpTransport`], best effort) and TCP ([`tcp::TcpTransport`],
//! reliable), driven by the core's io_uring or epoll driver; busy-polled
//! (`SO_BUSY_POLL`, a spinning core) for `latency = critical, resources =
//! poll`. Always present: every QoS has a kernel fallback.
//!
//! The probe checks both drivers ([`insane_uring::probe`],
//! [`insane_epoll::probe`]); an endpoint can only use the one its core
//! runs (the endpoint restricts the capabilities to it).

pub mod tcp;
pub mod udp;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;

use super::technology::{BindFuture, BoundTransport, Technology};
use insane_runtime::driver::{self, DriverKind};

use super::{Transport, TransportConfig};
use crate::config::Config;
use crate::qos::policy::{Availability, Capabilities, TransportKind};

/// Kernel sockets in the technology table (`technology.rs`).
pub(crate) struct Kernel;

impl Technology for Kernel {
    fn name(&self) -> &'static str {
        "kernel sockets"
    }

    fn kinds(&self) -> &'static [TransportKind] {
        &[
            TransportKind::UringUdpBusyPoll,
            TransportKind::EpollUdpBusyPoll,
            TransportKind::UringUdp,
            TransportKind::EpollUdp,
            TransportKind::UringTcp,
            TransportKind::EpollTcp,
        ]
    }

    fn probe(&self, _host: &Config, caps: &mut Capabilities) {
        caps.uring = Availability::from_probe(insane_uring::probe(), |f| {
            format!("io_uring on Linux {}", f.kernel_release)
        });
        caps.epoll = Availability::from_probe(insane_epoll::probe(), |_| "epoll".into());
    }

    fn restrict_to_current_core(&self, caps: &mut Capabilities) {
        match driver::current() {
            Some((DriverKind::Uring, _)) => {
                caps.epoll = Availability::Unavailable("this core runs the io_uring driver".into());
            }
            Some((DriverKind::Epoll, _)) => {
                caps.uring = Availability::Unavailable("this core runs the epoll driver".into());
            }
            None => {}
        }
    }

    fn bind<'a>(
        &'a self,
        kind: TransportKind,
        addr: SocketAddr,
        config: &'a TransportConfig,
        _host: &'a Config,
    ) -> BindFuture<'a> {
        Box::pin(async move {
            if kind.is_reliable() {
                let t = tcp::TcpTransport::bind(addr, kind, config).await?;
                return Ok(BoundTransport {
                    transport: Arc::new(t),
                    detail: String::new(),
                });
            }
            let t = udp::UdpTransport::bind(addr, kind, config)?;
            let detail = if t.busy_polls() {
                format!(
                    "busy-poll: SO_BUSY_POLL={}us, the core using the endpoint spins while it lives",
                    config.busy_poll_us
                )
            } else {
                String::new()
            };
            Ok(BoundTransport {
                transport: Arc::new(t),
                detail,
            })
        })
    }
}

/// Sets `SO_BUSY_POLL` (microseconds) on a socket.
fn set_busy_poll(fd: BorrowedFd<'_>, usecs: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(usecs).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is an open socket; the option value points to a live
    // `c_int` whose size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
