//! insane's AF_XDP driver, with `libc` only (no libbpf, no C build).
//!
//! An [`XdpSocket`] owns a UMEM (huge pages when available, frames of 2048
//! or 4096 bytes), the fill, completion, RX and TX rings (mapped at the
//! offsets `XDP_MMAP_OFFSETS` reports, indices accessed with
//! Acquire/Release ordering), and shares an [`XdpProgram`]: a small XDP
//! program assembled here as BPF instructions, loaded with
//! `bpf(BPF_PROG_LOAD)` and attached through a BPF link, so it disappears
//! when the link descriptor closes. The program redirects to the socket of
//! the receiving queue (XSKMAP) only UDP datagrams whose destination port
//! is in its port map ([`XdpSocket::bind_port`]) and passes everything
//! else (ARP, TCP, other ports, fragments) to the kernel.
//!
//! Opening tries native XDP then generic (SKB) mode, and a zero-copy bind
//! then copy mode; [`XdpSocket::mode`] reports what was used and why
//! better options failed. [`probe`] does the same for the driver-selection
//! policy without keeping the socket.
//!
//! Frames move without copies: [`XdpRxFrame`] dereferences to a received
//! frame in UMEM and returns to the fill ring when dropped; [`XdpTxFrame`] is
//! a free UMEM frame with headroom, filled by appending the payload and
//! [`prepend`](XdpTxFrame::prepend)ing headers, then [`XdpSocket::send`]. An
//! RX frame can become a TX frame in place ([`XdpRxFrame::into_tx`]).
//!
//! The socket is a [`Reactor`](insane_runtime::reactor::Reactor) that does
//! not park: AF_XDP flows are busy-polled (optionally with the kernel's
//! `SO_PREFER_BUSY_POLL`, see [`BusyPoll`]).
//!
//! Facts from this project's machines: veth supports native and generic
//! XDP but only copy mode (zero-copy bind: EOPNOTSUPP); copy mode needs a
//! `sendto` for every TX batch; rebinding a queue within ~1 s of closing
//! its socket gives EBUSY (retried for [`SocketConfig::bind_retry`]).

#![warn(missing_docs)]

mod asm;
mod frame;
mod program;
mod ring;
mod socket;
mod sys;

pub use frame::{NoRoom, XdpRxFrame, XdpTxFrame};
pub use program::{AttachMode, MAX_ADDRESSES, MAX_PORTS, ModeRequest, XdpProgram};
pub use socket::{BusyPoll, Recv, SocketConfig, SocketMode, XdpSocket, XdpStats, ZeroCopy, probe};

/// The old name of [`XdpRxFrame`] (it clashed with the userspace stack's
/// `RxFrame` trait).
#[deprecated(since = "0.1.0", note = "renamed to XdpRxFrame")]
pub type RxFrame = XdpRxFrame;
/// The old name of [`XdpTxFrame`] (it clashed with the userspace stack's
/// `TxFrame` trait).
#[deprecated(since = "0.1.0", note = "renamed to XdpTxFrame")]
pub type TxFrame = XdpTxFrame;
/// The old name of [`SocketConfig`] (it clashed with insane-net's `[xdp]`
/// section, `config::XdpConfig`).
#[deprecated(since = "0.1.0", note = "renamed to SocketConfig")]
pub type XdpConfig = SocketConfig;
/// The old name of [`SocketMode`] (it clashed with insane-net's
/// `config::XdpMode`).
#[deprecated(since = "0.1.0", note = "renamed to SocketMode")]
pub type XdpMode = SocketMode;
