//! Owned-buffer I/O: completion-based, zero-copy socket operations that
//! take a buffer by value and give it back with the result.
//!
//! # Owned buffers vs borrowed (tokio-style) I/O
//!
//! insane's sockets have two faces:
//!
//! - **Borrowed buffers** — tokio's `AsyncRead`/`AsyncWrite`,
//!   `recv_from(&mut [u8])` and friends. The socket waits until the kernel
//!   reports it ready, then runs the non-blocking syscall on your slice.
//!   Every ecosystem crate (hyper, tonic, codecs) speaks this.
//! - **Owned buffers** — `read_owned(buf)`, `write_all_owned(buf)`,
//!   `send_to_owned(buf, addr)`, `recv_from_owned(buf)`, ... The buffer
//!   moves into the operation and comes back in a [`BufResult`]
//!   `(io::Result<T>, B)`, success or not. On a core running io_uring the
//!   operation is one io_uring request: the kernel performs the whole
//!   receive or send when it can and posts a completion, with no
//!   readiness round trip and no syscall per operation (submissions are
//!   batched by the driver). `write_all_owned` on TCP and `send_owned` on
//!   UDP use `SEND_ZC` for at least the driver's `send_zc_threshold`
//!   (16 KiB by default) when the peer is not on loopback (loopback
//!   copies the pages anyway, so there a plain send is cheaper): the NIC
//!   reads your buffer in place, and the buffer comes back once the kernel is done with it —
//!   for TCP, once the peer acknowledged the data, so the peer must be
//!   reading (write and read concurrently when both sides send a lot).
//!   [`recv_stream`](crate::TcpStream::recv_stream) goes further: one
//!   multishot receive fills buffers of a per-core pool the kernel owns
//!   ([`RecvPool`], an io_uring provided-buffer ring), and you get each
//!   message as a [`PooledBuf`] that returns to the pool when dropped.
//!
//! The same methods work on a core running the epoll driver (io_uring
//! missing or disabled): there they wait for readiness and run the
//! non-blocking syscall on the buffer, and `recv_stream` fills buffers of
//! a heap pool with the same limits. Code written against owned buffers
//! therefore runs everywhere; it is fastest on io_uring.
//!
//! **When to use which.** Use the borrowed API for protocol code and the
//! ecosystem, and when a read must be cancellable without loss (e.g. in a
//! `select!` loop). Use owned buffers on hot paths that move whole
//! buffers: proxies, echo and storage servers, bulk transfer, and large
//! sends that benefit from zero copy.
//!
//! # Buffers
//!
//! [`IoBuf`] (a buffer the kernel may read: sends) and [`IoBufMut`] (a
//! buffer the kernel may write: receives) are implemented for `Vec<u8>`,
//! `Box<[u8]>`, `bytes::BytesMut`, `bytes::Bytes` (send only),
//! `&'static [u8]` / `&'static str` (send only), [`PooledBuf`] (send
//! only), and [`Slice`], a window of any of them (`buf.slice(a..b)`).
//! These traits come from `insane-buf`, which the io_uring driver also
//! uses: there is one buffer concept in insane.
//!
//! - Sends transmit the *initialised* bytes (`Vec::len`, `BytesMut::len`,
//!   the whole `Box<[u8]>`).
//! - Receives append into the *spare capacity* (`len..capacity`) and grow
//!   the length by the bytes received: `Vec::with_capacity(n)` and
//!   `BytesMut::with_capacity(n)` are the natural receive buffers (call
//!   `clear()` before reusing one). A buffer without spare capacity but
//!   not empty — a `Box<[u8]>`, a `vec![0; n]`, a full `Vec` — is filled
//!   from its start instead, like `std::io::Read::read` into a slice (its
//!   length never shrinks: the data is in `buf[..n]`). So `Ok(0)` always
//!   means end of stream (or a zero-capacity buffer), never "no room".
//!
//! # Cancellation
//!
//! Dropping an owned-buffer future cancels its io_uring request; the
//! buffer stays alive inside the driver until the kernel lets go of it,
//! then it is dropped (never leaked, never freed early). A receive that
//! completed just before the cancellation took effect may have consumed
//! data that is then dropped with the buffer: `read_owned` is *not*
//! cancel-safe. [`RecvStream::next`] is (messages stay queued in the
//! stream), and so are the borrowed-buffer methods.
//!
//! # Threads
//!
//! Owned-buffer futures are `Send` when their buffer is, so tasks using
//! them can be `spawn`ed like any other. Once first polled they belong to
//! that core's driver (insane tasks never change core; polling one on
//! another thread panics). [`RecvPool`], [`RecvStream`] and [`PooledBuf`]
//! are `!Send`: pooled buffers belong to their core's pool; use
//! `spawn_local`, or copy the bytes out to move them.
//!
//! ```no_run
//! use insane_net::TcpListener;
//!
//! # async fn f() -> std::io::Result<()> {
//! let listener = TcpListener::bind("127.0.0.1:7000").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     insane_runtime::spawn(async move {
//!         let mut buf = Vec::with_capacity(4096);
//!         loop {
//!             let (res, b) = stream.read_owned(buf).await;
//!             match res {
//!                 Ok(0) | Err(_) => return,
//!                 Ok(_) => {}
//!             }
//!             // Sends exactly the bytes just received, then reuses the buffer.
//!             let (res, mut b) = stream.write_all_owned(b).await;
//!             if res.is_err() {
//!                 return;
//!             }
//!             b.clear();
//!             buf = b;
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! The same code on whichever driver the core runs (here io_uring if the
//! kernel allows it, else epoll):
//!
//! ```
//! use insane_net::{TcpListener, TcpStream};
//! # use std::sync::Arc;
//! # let rt = insane_runtime::runtime::Runtime::builder()
//! #     .cores(1)
//! #     .on_core_start(Arc::new(|_| {
//! #         insane_uring::install_on_current_core(&Default::default())
//! #             .or_else(|_| insane_epoll::install_on_current_core())
//! #     }))
//! #     .build()?;
//!
//! # rt.block_on(async {
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let client = TcpStream::connect(listener.local_addr()?).await?;
//! let (server, _) = listener.accept().await?;
//!
//! let (res, _) = client.write_all_owned(b"ping".to_vec()).await;
//! res?;
//! let (res, buf) = server.read_owned(Vec::with_capacity(16)).await;
//! assert_eq!(res?, 4);
//! assert_eq!(&buf, b"ping");
//! # std::io::Result::Ok(())
//! # })?;
//! # std::io::Result::Ok(())
//! ```

//!
//! # Layout
//!
//! - the traits ([`IoBuf`], [`IoBufMut`], [`Slice`], [`BufResult`]), from
//!   `insane-buf`;
//! - `pool`: [`RecvPool`], [`PooledBuf`], [`RecvStream`];
//! - `ops`: the owned-buffer operations every socket type shares (on its
//!   `PollIo`), completion-based on io_uring, readiness-based on epoll.

pub(crate) mod ops;
mod pool;

pub use insane_buf::{BufResult, IoBuf, IoBufMut, Slice};
pub use pool::{PooledBuf, RecvPool, RecvStream};
