//! [`StreamIo`]: a stream socket's [`PollIo`] plus, on io_uring cores,
//! completion-based reads behind tokio's `AsyncRead`.
//!
//! On epoll (and until the first read on io_uring finds nothing to read)
//! a read is tokio's: readiness, then `recv(2)`. On io_uring, the first
//! `poll_read` that gets `WouldBlock` arms a multishot `RECV` into the
//! core's provided-buffer ring ([`BufRing::for_current_core`]): from then
//! on the kernel receives the stream's bytes into ring buffers as they
//! arrive, and a read copies them out of the buffer already filled — no
//! syscall per read, no readiness round
//! ([`RecvStream::poll_copy`](bufring::RecvStream::poll_copy)). The partly
//! read buffer stays with the receive until its last byte is read, then
//! goes back to the ring. A socket whose first read finds data (request/response traffic
//! that reads at once) never arms it.
//!
//! What stays as in tokio:
//! - `peek` returns buffered bytes without consuming them; `try_read*`
//!   return buffered bytes first and `WouldBlock` only when nothing is
//!   buffered; `readable()`/`ready()` report readable while bytes, an end
//!   of stream or an error are buffered, and otherwise wait for the ring.
//! - Backpressure: the ring is shared by the core's streams. When it runs
//!   out of buffers, the multishot receive ends (`ENOBUFS`) and, once its
//!   buffered bytes are read, this stream reads with readiness and
//!   `recv(2)` (the bytes wait in the socket, nothing is lost) until a
//!   buffer is free again and the next read re-arms. So a stream that
//!   holds buffers never makes another stream wait for it.
//! - A stream that moves to another core hands over: the core that armed
//!   the receive stops it and copies what it had received into the
//!   stream (`moved`), which the new core reads first, then goes on with
//!   its own reads.
//! - Dropping the stream (or [`StreamIo::into_inner`]) cancels the
//!   receive; bytes received but not read are dropped with it
//!   (`into_std` documents it).
//!
//! `AsyncWrite` is unchanged: one `send(2)` per write (see
//! docs/ARCHITECTURE.md for why writes are not queued as SQEs).

use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};

use insane_runtime::driver::Direction;
use insane_runtime::runtime::CoreHandle;
use insane_runtime::task::coop;
use insane_uring::bufring::{self, BufRing};
use tokio::io::{Interest, ReadBuf, Ready};

use crate::io::PollIo;
use crate::owned::ops::FdGuard;

/// A stream socket: [`PollIo`] (through `Deref`) with completion-based
/// reads on io_uring (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct StreamIo<S: AsFd + Send + Sync + 'static> {
    /// Declared first: the receive is cancelled before the registration
    /// is released (its fd guard keeps the socket open until the kernel
    /// confirms anyway).
    reader: Reader,
    io: PollIo<S>,
}

impl<S: AsFd + Send + Sync + 'static> Deref for StreamIo<S> {
    type Target = PollIo<S>;

    fn deref(&self) -> &PollIo<S> {
        &self.io
    }
}

#[derive(Debug, Default)]
struct Reader {
    /// `state` may hold bytes, a receive or a hand-over: reads must look
    /// at it. Cleared when it is empty again (read without the lock).
    active: AtomicBool,
    /// This stream's core cannot arm receives (epoll, or a kernel without
    /// multishot receive): do not try again.
    refused: AtomicBool,
    state: Arc<Mutex<ReadState>>,
}

#[derive(Debug, Default)]
struct ReadState {
    /// The multishot receive, bound to the core that armed it.
    ring: Option<HomeBound<RingRx>>,
    /// Bytes handed over by another core's receive, read first.
    moved: bytes::BytesMut,
    /// An error handed over with `moved`, reported after it.
    moved_err: Option<io::Error>,
    /// A hand-over runs on the receive's core: readers wait, and are
    /// woken when it is done.
    handover: Option<Vec<Waker>>,
}

impl ReadState {
    fn is_idle(&self) -> bool {
        self.ring.is_none()
            && self.moved.is_empty()
            && self.moved_err.is_none()
            && self.handover.is_none()
    }
}

/// The stream's multishot receive: the ring buffers it filled and the
/// partly read one are in the [`RecvStream`] (`poll_copy`).
type RingRx = bufring::RecvStream<FdGuard>;

/// A read (or peek) from the ring into `put` (see
/// [`RecvStream::poll_copy`](bufring::RecvStream::poll_copy)): `Ok(0)` at
/// end of stream. `None`: the ring ran dry and the receive stopped, so
/// the next bytes wait in the socket (read them with `recv(2)`).
fn copy_from_ring(
    rx: &mut RingRx,
    cx: Option<&mut Context<'_>>,
    peek: bool,
    put: &mut dyn FnMut(&[u8]) -> usize,
) -> Option<Poll<io::Result<usize>>> {
    match rx.poll_copy(cx, peek, put) {
        Poll::Ready(Some(res)) => Some(Poll::Ready(res)),
        Poll::Ready(None) => Some(Poll::Ready(Ok(0))),
        Poll::Pending if rx.is_starved() => None,
        Poll::Pending => Some(Poll::Pending),
    }
}

/// Moves everything the receive `rx` holds into `done` (for a hand-over):
/// stops the receive and collects what it still delivers. Ready once the
/// receive has ended.
fn poll_drain(rx: &mut RingRx, cx: &mut Context<'_>, done: &mut HandoverDone) -> Poll<()> {
    rx.stop();
    loop {
        let mut append = |b: &[u8]| {
            done.moved.extend_from_slice(b);
            b.len()
        };
        match rx.poll_copy(Some(cx), false, &mut append) {
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(e))) => {
                done.err.get_or_insert(e);
            }
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Where a read copies to: a `ReadBuf`, a slice, vectored slices or a
/// `BufMut`. Each also knows its own `recv(2)`, for reads by readiness.
pub(crate) trait Sink {
    /// Bytes that still fit.
    fn room(&self) -> usize;
    /// Copies as much of `src` as fits; returns how much.
    fn put(&mut self, src: &[u8]) -> usize;
    /// One non-blocking receive from the socket into the free space.
    fn recv_from(&mut self, io: &dyn RecvSyscalls, peek: bool) -> io::Result<usize>;
}

/// The receive syscalls of a [`PollIo`], object-safe for [`Sink`].
pub(crate) trait RecvSyscalls {
    fn recv_buf(&self, buf: &mut ReadBuf<'_>, peek: bool) -> io::Result<usize>;
    fn recv_slice(&self, buf: &mut [u8], peek: bool) -> io::Result<usize>;
    fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize>;
    fn recv_bufmut(&self, buf: &mut dyn bytes::BufMut) -> io::Result<usize>;
}

impl<S> RecvSyscalls for PollIo<S>
where
    S: AsFd + Send + Sync + 'static,
    for<'a> &'a S: Read,
{
    fn recv_buf(&self, buf: &mut ReadBuf<'_>, peek: bool) -> io::Result<usize> {
        PollIo::recv_buf(self, buf, peek)
    }

    fn recv_slice(&self, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        PollIo::recv_slice(self, buf, peek)
    }

    fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        PollIo::read_vectored(self, bufs)
    }

    fn recv_bufmut(&self, mut buf: &mut dyn bytes::BufMut) -> io::Result<usize> {
        PollIo::recv_bufmut(self, &mut buf)
    }
}

impl Sink for ReadBuf<'_> {
    fn room(&self) -> usize {
        self.remaining()
    }

    fn put(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.remaining());
        self.put_slice(&src[..n]);
        n
    }

    fn recv_from(&mut self, io: &dyn RecvSyscalls, peek: bool) -> io::Result<usize> {
        io.recv_buf(self, peek)
    }
}

/// A slice being filled from its start.
struct SliceSink<'a> {
    buf: &'a mut [u8],
    filled: usize,
}

impl Sink for SliceSink<'_> {
    fn room(&self) -> usize {
        self.buf.len() - self.filled
    }

    fn put(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.room());
        self.buf[self.filled..self.filled + n].copy_from_slice(&src[..n]);
        self.filled += n;
        n
    }

    fn recv_from(&mut self, io: &dyn RecvSyscalls, peek: bool) -> io::Result<usize> {
        let n = io.recv_slice(&mut self.buf[self.filled..], peek)?;
        self.filled += n;
        Ok(n)
    }
}

/// Vectored slices being filled in order.
struct VectoredSink<'a, 'b> {
    bufs: &'a mut [IoSliceMut<'b>],
    /// The slice being filled, and how much of it is.
    index: usize,
    offset: usize,
}

impl Sink for VectoredSink<'_, '_> {
    fn room(&self) -> usize {
        let rest: usize = self.bufs.iter().skip(self.index).map(|b| b.len()).sum();
        rest - self.offset
    }

    fn put(&mut self, mut src: &[u8]) -> usize {
        let mut n = 0;
        while !src.is_empty() && self.index < self.bufs.len() {
            let dst = &mut self.bufs[self.index][self.offset..];
            let k = src.len().min(dst.len());
            dst[..k].copy_from_slice(&src[..k]);
            src = &src[k..];
            n += k;
            self.offset += k;
            if self.offset == self.bufs[self.index].len() {
                self.index += 1;
                self.offset = 0;
            }
        }
        n
    }

    fn recv_from(&mut self, io: &dyn RecvSyscalls, _peek: bool) -> io::Result<usize> {
        // Only used by fresh sinks (nothing copied yet): `readv` fills
        // them from the start.
        io.read_vectored(self.bufs)
    }
}

/// A `BufMut` being appended to.
struct BufMutSink<'a, B: bytes::BufMut>(&'a mut B);

impl<B: bytes::BufMut> Sink for BufMutSink<'_, B> {
    fn room(&self) -> usize {
        self.0.remaining_mut()
    }

    fn put(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.0.remaining_mut());
        self.0.put_slice(&src[..n]);
        n
    }

    fn recv_from(&mut self, io: &dyn RecvSyscalls, _peek: bool) -> io::Result<usize> {
        io.recv_bufmut(self.0)
    }
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl<S> StreamIo<S>
where
    S: AsFd + Send + Sync + 'static,
    for<'a> &'a S: Read,
{
    /// Wraps `io`, which must already be in non-blocking mode.
    pub(crate) fn new(io: S) -> Self {
        StreamIo {
            reader: Reader::default(),
            io: PollIo::new(io),
        }
    }

    /// Stops the receive (bytes received but not read are dropped) and
    /// returns the socket, as [`PollIo::into_inner`].
    pub(crate) fn into_inner(self) -> io::Result<S>
    where
        S: From<OwnedFd>,
    {
        let StreamIo { reader, io } = self;
        drop(reader);
        io.into_inner()
    }

    fn lock(&self) -> MutexGuard<'_, ReadState> {
        self.reader.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The one read path: into `sink`, waiting with `cx` (or, without
    /// one, `WouldBlock` when nothing is there). `Ok(0)`: end of stream
    /// (or a full sink).
    fn poll_read_sink(
        &self,
        cx: Option<&mut Context<'_>>,
        sink: &mut dyn Sink,
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        if sink.room() == 0 {
            return Poll::Ready(Ok(0));
        }
        match cx {
            Some(cx) => {
                let coop = ready!(coop::poll_proceed(cx));
                let res = self.read_sink(Some(cx), sink, peek);
                if res.is_ready() {
                    coop.made_progress();
                }
                res
            }
            None => match self.read_sink(None, sink, peek) {
                Poll::Ready(res) => Poll::Ready(res),
                Poll::Pending => Poll::Ready(Err(would_block())),
            },
        }
    }

    fn read_sink(
        &self,
        mut cx: Option<&mut Context<'_>>,
        sink: &mut dyn Sink,
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        if self.reader.active.load(Ordering::Acquire) {
            let mut st = self.lock();
            if let Some(res) = self.read_held(&mut st, cx.as_deref_mut(), sink, peek, false) {
                return res;
            }
        }
        // Nothing received here: read the socket itself.
        let arm = !peek && cx.is_some() && !self.reader.refused.load(Ordering::Relaxed);
        if arm {
            match sink.recv_from(&self.io, false) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
            let mut st = self.lock();
            if st.is_idle() {
                match arm_receive(&self.io) {
                    Ok(rx) => {
                        st.ring = Some(HomeBound::new(rx));
                        self.reader.active.store(true, Ordering::Release);
                    }
                    Err(_) => self.reader.refused.store(true, Ordering::Relaxed),
                }
            }
            if let Some(res) = self.read_held(&mut st, cx.as_deref_mut(), sink, peek, false) {
                return res;
            }
            // No receive here (refused): wait for readiness without
            // repeating the `recv(2)` that just found nothing.
            self.io.clear_ready(Direction::Read);
        }
        self.read_by_readiness(cx, sink, peek)
    }

    /// Readiness, then `recv(2)` (tokio's read).
    ///
    /// Unlike mio, a short read does not clear the read readiness: the
    /// driver keeps one flag per direction, not a sticky "read closed"
    /// state, so a FIN (or RST) whose event was consumed before the read
    /// would be forgotten and the next read would wait forever.
    fn read_by_readiness(
        &self,
        cx: Option<&mut Context<'_>>,
        sink: &mut dyn Sink,
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        match cx {
            Some(cx) => self
                .io
                .poll_io(Direction::Read, cx, || sink.recv_from(&self.io, peek)),
            None => Poll::Ready(
                self.io
                    .try_dir(Direction::Read, || sink.recv_from(&self.io, peek)),
            ),
        }
    }

    /// Reads what the stream holds (handed-over bytes, the ring). `None`:
    /// nothing is held and no receive is armed here, read the socket.
    ///
    /// `probe` (with a sink without room): only asks whether a read would
    /// not block (`poll_ready`): nothing is consumed, not even an error.
    fn read_held(
        &self,
        st: &mut ReadState,
        mut cx: Option<&mut Context<'_>>,
        sink: &mut dyn Sink,
        peek: bool,
        probe: bool,
    ) -> Option<Poll<io::Result<usize>>> {
        if probe && (!st.moved.is_empty() || st.moved_err.is_some()) {
            return Some(Poll::Ready(Ok(0)));
        }
        if !st.moved.is_empty() {
            let n = sink.put(&st.moved);
            if !peek {
                let _ = st.moved.split_to(n);
                self.settle(st);
            }
            return Some(Poll::Ready(Ok(n)));
        }
        if let Some(e) = st.moved_err.take() {
            self.settle(st);
            return Some(Poll::Ready(Err(e)));
        }
        if let Some(waiters) = &mut st.handover {
            if let Some(cx) = cx {
                waiters.push(cx.waker().clone());
            }
            return Some(Poll::Pending);
        }
        let ring = st.ring.as_mut()?;
        let Some(rx) = ring.get_mut() else {
            self.hand_over(st, cx);
            return Some(Poll::Pending);
        };
        let res = match cx.as_deref_mut() {
            Some(cx) if probe => match rx.poll_ready(cx) {
                Poll::Ready(()) => Some(Poll::Ready(Ok(0))),
                Poll::Pending if rx.is_starved() => None,
                Poll::Pending => Some(Poll::Pending),
            },
            cx => copy_from_ring(rx, cx, peek, &mut |b| sink.put(b)),
        };
        // `None`: the ring ran dry, the next bytes wait in the socket.
        Some(res.unwrap_or_else(|| self.read_by_readiness(cx, sink, peek)))
    }

    /// Clears `active` once nothing is held any more.
    fn settle(&self, st: &ReadState) {
        if st.is_idle() {
            self.reader.active.store(false, Ordering::Release);
        }
    }

    /// The receive was armed on another core: ask that core to stop it and
    /// hand its bytes over; `cx` is woken when they are here.
    fn hand_over(&self, st: &mut ReadState, cx: Option<&mut Context<'_>>) {
        let Some(ring) = st.ring.take() else { return };
        st.handover = Some(cx.map(|cx| cx.waker().clone()).into_iter().collect());
        let done = HandoverDone {
            state: self.reader.state.clone(),
            moved: bytes::BytesMut::new(),
            err: None,
        };
        let Some(home) = ring.home.clone() else {
            // Built without a core: nothing to ask; the guard wakes the
            // readers when dropped here.
            drop(ring);
            drop(done);
            return;
        };
        let mut ring = ring;
        let mut done = done;
        drop(home.spawn(poll_fn(move |cx| match ring.get_mut() {
            Some(rx) => poll_drain(rx, cx, &mut done),
            None => Poll::Ready(()),
        })));
    }

    /// `AsyncRead::poll_read` of a stream.
    ///
    /// The common case on io_uring, a receive armed on this core and
    /// nothing handed over, copies from the ring here, without the layers
    /// of the general path ([`poll_read_sink`](Self::poll_read_sink)).
    pub(crate) fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0 && self.reader.active.load(Ordering::Acquire) {
            let coop = ready!(coop::poll_proceed(cx));
            let mut st = self.lock();
            if st.moved.is_empty() && st.moved_err.is_none() && st.handover.is_none() {
                if let Some(rx) = st.ring.as_mut().and_then(|r| r.get_mut()) {
                    let mut put = |b: &[u8]| {
                        let n = b.len().min(buf.remaining());
                        buf.put_slice(&b[..n]);
                        n
                    };
                    if let Some(res) = copy_from_ring(rx, Some(cx), false, &mut put) {
                        if res.is_ready() {
                            coop.made_progress();
                        }
                        return res.map_ok(|_| ());
                    }
                }
            }
            // The general path spends the unit again.
            drop(st);
            drop(coop);
        }
        self.poll_read_sink(Some(cx), buf, false).map_ok(|_| ())
    }

    /// `futures_io::AsyncRead::poll_read` of a stream.
    pub(crate) fn poll_read_slice(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_sink(Some(cx), &mut SliceSink { buf, filled: 0 }, false)
    }

    /// `futures_io::AsyncRead::poll_read_vectored` of a stream.
    pub(crate) fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut sink = VectoredSink {
            bufs,
            index: 0,
            offset: 0,
        };
        self.poll_read_sink(Some(cx), &mut sink, false)
    }

    /// tokio's `poll_peek`: buffered bytes first, else a `MSG_PEEK`.
    pub(crate) fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.poll_read_sink(Some(cx), buf, true)
    }

    /// tokio's `peek`.
    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read_sink(Some(cx), &mut SliceSink { buf, filled: 0 }, true)).await
    }

    /// tokio's `try_read`.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.poll_read_sink(None, &mut SliceSink { buf, filled: 0 }, false) {
            Poll::Ready(res) => res,
            Poll::Pending => Err(would_block()),
        }
    }

    /// tokio's `try_read_vectored`.
    pub(crate) fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut sink = VectoredSink {
            bufs,
            index: 0,
            offset: 0,
        };
        match self.poll_read_sink(None, &mut sink, false) {
            Poll::Ready(res) => res,
            Poll::Pending => Err(would_block()),
        }
    }

    /// tokio's `try_read_buf`.
    pub(crate) fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        match self.poll_read_sink(None, &mut BufMutSink(buf), false) {
            Poll::Ready(res) => res,
            Poll::Pending => Err(would_block()),
        }
    }

    /// `AsyncWrite::poll_write` of a stream: `send(2)` at once, and a
    /// readiness wait only after `WouldBlock`. A stream's send buffer is
    /// nearly always free, so asking the driver first (a lock and two
    /// driver borrows per write, and on a fresh socket a whole loop turn
    /// for the first write-readiness report) costs more than the rare
    /// `EAGAIN`.
    pub(crate) fn poll_write_stream(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, || self.io.send_slice(buf))
    }

    /// `AsyncWrite::poll_write_vectored` of a stream, as
    /// [`poll_write_stream`](Self::poll_write_stream).
    pub(crate) fn poll_write_vectored_stream(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, || self.io.send_vectored(bufs))
    }

    /// Runs the non-blocking `send` at once; after `WouldBlock`, waits for
    /// write readiness between tries.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let coop = ready!(coop::poll_proceed(cx));
        match send() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.io.clear_ready(Direction::Write);
                self.io.poll_io(Direction::Write, cx, send)
            }
            res => {
                coop.made_progress();
                Poll::Ready(res)
            }
        }
    }

    /// Waits until a read would not block: bytes, an end of stream or an
    /// error are buffered, or (without a receive armed) the driver
    /// reports the socket readable. Other directions go to
    /// [`PollIo::poll_ready`].
    pub(crate) fn poll_ready(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if dir == Direction::Read && self.reader.active.load(Ordering::Acquire) {
            let mut st = self.lock();
            let mut empty = ReadBuf::new(&mut []);
            // A probe: `read_held` looks whether anything is received and
            // copies nothing.
            if let Some(res) = self.read_held(&mut st, Some(cx), &mut empty, true, true) {
                return res.map_ok(|_| ());
            }
        }
        self.io.poll_ready(dir, cx)
    }

    /// tokio's `readable`.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(Direction::Read, cx)).await
    }

    /// tokio's `ready`.
    pub(crate) async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        poll_fn(|cx| self.poll_ready_interest(interest, cx)).await
    }

    /// Poll form of [`ready`](Self::ready): the read side from what is
    /// buffered when a receive is armed, the rest as
    /// [`PollIo::poll_ready_interest`].
    pub(crate) fn poll_ready_interest(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Ready>> {
        if !interest.is_readable() || !self.reader.active.load(Ordering::Acquire) {
            return self.io.poll_ready_interest(interest, cx);
        }
        let mut ready = Ready::EMPTY;
        match self.poll_ready(Direction::Read, cx) {
            Poll::Ready(Ok(())) => {
                ready |= Ready::READABLE;
                if self.read_closed() {
                    ready |= Ready::READ_CLOSED;
                }
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        if interest.is_writable() {
            match self.io.poll_ready_interest(Interest::WRITABLE, cx) {
                Poll::Ready(Ok(w)) => ready |= w,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if ready.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Ok(ready))
        }
    }

    /// Whether the receive saw the end of the stream and every byte before
    /// it was read.
    fn read_closed(&self) -> bool {
        let mut st = self.lock();
        st.ring
            .as_mut()
            .and_then(|r| r.get_mut())
            .is_some_and(|rx| rx.is_done())
    }
}

/// Arms a multishot receive of `io` into the core's default ring.
fn arm_receive<S: AsFd + Send + Sync + 'static>(io: &PollIo<S>) -> io::Result<RingRx> {
    BufRing::for_current_core()?.recv_stream(FdGuard::new(io.guard()))
}

/// Puts a hand-over's result into the stream and wakes its readers, also
/// when the hand-over task is dropped without running (its core stopped).
struct HandoverDone {
    state: Arc<Mutex<ReadState>>,
    moved: bytes::BytesMut,
    err: Option<io::Error>,
}

impl Drop for HandoverDone {
    fn drop(&mut self) {
        let waiters = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.moved = std::mem::take(&mut self.moved);
            st.moved_err = self.err.take();
            st.handover.take().unwrap_or_default()
        };
        for w in waiters {
            w.wake();
        }
    }
}

/// A `!Send` value that belongs to the core that made it: usable only
/// there ([`get_mut`](Self::get_mut)), and dropped there — a drop on
/// another thread sends it home in a task, or leaks it if that core has
/// stopped (never touching it off its thread).
struct HomeBound<T: 'static> {
    value: ManuallyDrop<T>,
    /// The home core's uid (`None`: made outside a runtime).
    uid: Option<u64>,
    home: Option<CoreHandle>,
}

// SAFETY: the value is only used (`get_mut`) and dropped on its home
// core's thread, which `CoreHandle::current_uid` identifies (one thread
// per core); other threads only move the `HomeBound`, never touching the
// value.
unsafe impl<T: 'static> Send for HomeBound<T> {}
// SAFETY: `&HomeBound` gives no access to the value.
unsafe impl<T: 'static> Sync for HomeBound<T> {}

impl<T: 'static> HomeBound<T> {
    fn new(value: T) -> Self {
        let home = CoreHandle::current();
        HomeBound {
            value: ManuallyDrop::new(value),
            uid: home.as_ref().map(CoreHandle::uid),
            home,
        }
    }

    fn at_home(&self) -> bool {
        self.uid.is_some() && CoreHandle::current_uid() == self.uid
    }

    /// The value, on its home core only.
    fn get_mut(&mut self) -> Option<&mut T> {
        if self.at_home() {
            Some(&mut self.value)
        } else {
            None
        }
    }
}

impl<T: 'static> Drop for HomeBound<T> {
    fn drop(&mut self) {
        if self.at_home() {
            // SAFETY: taken once, here, on the home thread; never used again.
            drop(unsafe { ManuallyDrop::take(&mut self.value) });
            return;
        }
        let Some(home) = self.home.take().filter(|h| !h.is_shut_down()) else {
            // No home to drop it on: leak it rather than touch it here.
            return;
        };
        // SAFETY: the value is read out once and `self.value` is never
        // used again (this is `drop`); it moves home unopened.
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        let parcel = HomeBound {
            value: ManuallyDrop::new(value),
            uid: self.uid,
            // If the task is dropped unrun (the core stopped meanwhile),
            // the parcel leaks instead of travelling again.
            home: None,
        };
        drop(home.spawn(async move { drop(parcel) }));
    }
}

impl<T: 'static> std::fmt::Debug for HomeBound<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeBound").field("uid", &self.uid).finish()
    }
}
