//! [`ReliableTransport`]: the `insane-reliable` protocol over a
//! best-effort datagram [`Transport`], and the task that drives it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use insane_reliable::{CloseReason, ConnId, Event, SendError};
use insane_runtime::task::{coop, spawn};
use insane_runtime::time::{Sleep, sleep_until_precise};
use rustc_hash::FxHashMap;

use crate::qos::policy::TransportKind;
use crate::qos::rxbuf::{RxBuf, count_copy};
use crate::qos::transport::{
    Op, Transport, TransportConfig, begin_send, lock, not_connected, oversize,
};
use crate::qos::txbuf::{Pool, TxBuf};

/// The protocol's datagrams are at most this long (a 1500-byte MTU minus
/// IPv4 and UDP headers), whatever the inner transport could carry: a
/// kernel UDP socket would accept 64 KiB datagrams, which IP fragments on
/// a real link.
const MAX_DATAGRAM: usize = 1472;
/// Datagrams received per turn of the driver before it moves on to
/// timers, events and transmits.
const RX_BURST: usize = 64;
/// Turns of the driver per poll before it yields to the core's other tasks.
const TURNS: usize = 16;
/// Turns after the one that handed messages to the application during
/// which ACKs still wait for an answer to ride on. The answer reaches the
/// transport in the application's own turn when the core's transmit
/// scheduler is empty (the send fast path), else one pass of the run
/// queue later, through the core's transmit task: one more pass covers
/// both; then held ACKs go alone.
const HOLD_PASSES: u8 = 1;
/// Send buffers start with this much storage.
const TX_INITIAL: usize = 4096;
/// Pooled send buffers that grew past this are freed on return.
const TX_RETAIN: usize = 1 << 20;
/// Messages up to this long are copied out of their send buffer, which
/// the pool keeps for the next message; longer ones are taken over.
const SMALL_COPY: usize = 512;
/// Failed connections remembered for the next send to their peer, at most.
const FAILED_MAX: usize = 4096;
/// Receive buffers of the inner transport that the protocol never keeps
/// in messages being reassembled: what the driver needs to go on
/// receiving (ACKs among them) while the application holds messages.
const LEND_RESERVE: usize = 2 * RX_BURST;
/// Receive buffers a device-backed inner transport (the userspace stack)
/// lends at least, so that a 1 MiB message (733 datagrams) is kept in its
/// frames without a copy.
pub(crate) const LENT_FRAMES: usize = 1024;

/// Reliable, ordered messages over any best-effort datagram transport:
/// kernel UDP ([`UdpTransport`](super::super::UdpTransport)) or the
/// userspace stack ([`StackUdpTransport`](super::super::stack::StackUdpTransport)
/// over AF_XDP, DPDK or a test device). See the [module docs](super).
pub struct ReliableTransport {
    shared: Arc<Shared>,
}

struct Shared {
    kind: TransportKind,
    inner: Arc<dyn Transport>,
    local: SocketAddr,
    /// The core of the driver task (and of the inner transport).
    home: insane_runtime::runtime::CoreHandle,
    max_message: usize,
    max_datagram: usize,
    /// Whether received datagrams are kept in messages (zero-copy
    /// reassembly; over device frames) rather than copied out.
    keep_datagrams: bool,
    /// Send buffers lent to the application (heap).
    tx: Pool,
    /// Received messages held by the application or queued: one entry
    /// each. Its storage is the message itself, freed on return.
    rx: Pool,
    /// How long an ordered close may take before what is left is given
    /// up ([`TransportConfig::linger`], else the peer timeout).
    linger: Duration,
    /// Messages accepted by `send` and lost with their connection.
    abandoned: AbandonedMessages,
    state: Mutex<State>,
}

struct State {
    ep: insane_reliable::Endpoint,
    /// The connection that carries sends to each peer.
    conns: HashMap<SocketAddr, ConnId>,
    /// Every live connection's peer (ids are ours, random: Fx hashing
    /// is safe here, unlike for peer addresses).
    peers: FxHashMap<ConnId, SocketAddr>,
    /// Why the connection to a peer failed, for the next send to it.
    failed: HashMap<SocketAddr, io::Error>,
    inbox: VecDeque<io::Result<RxBuf>>,
    recv_waiters: Vec<Waker>,
    send_waiters: Vec<Waker>,
    default_peer: Option<SocketAddr>,
    /// The driver task, woken when the application gave it work.
    driver: Option<Waker>,
    /// The application gave the driver work (a transmit that could not
    /// finish, a timer to bring forward, ACKs held for an answer, a
    /// receive it stopped waiting for) since the driver's last turn.
    kick: bool,
    /// The receive of datagrams from the inner transport, shared by
    /// whoever pumps it (an application receiver or the driver).
    recv_op: Op<io::Result<RxBuf>>,
    /// An application receiver on the home core waits in `poll_recv` and
    /// pumps the inner transport itself (its waker is the inner's): the
    /// driver leaves the inner's receive to it, except on a timer.
    inline_rx: bool,
    /// The deadline the driver's timer is armed for. Armed lazily: only
    /// when the protocol's next deadline is earlier (a timer that fires
    /// early is re-armed then), so a message does not re-arm it.
    armed: Option<Instant>,
    /// A buffer of the inner transport that the last transmit did not
    /// need, kept for the next one (no lend and return per empty turn).
    spare: Option<TxBuf>,
    /// The inner send of a datagram that had to wait.
    send_op: Op<io::Result<()>>,
    /// `send_op` holds a datagram in flight: no other transmit until it
    /// completes (datagrams leave in order).
    sending: bool,
    /// The last transmit stopped before the endpoint had nothing left
    /// (no buffer, or a send in flight).
    tx_more: bool,
    /// Messages were handed to the application: ACKs that would go
    /// alone are held for its answer to carry (sent by the driver's next
    /// turn, after the application's, if no answer carried them).
    delivered: bool,
    /// ACKs were held back; the driver's next turn sends what is left.
    acks_held: bool,
    /// The ordered close of every connection in progress
    /// (`poll_shutdown`, or the transport was dropped).
    closing: Option<Closing>,
}

/// An ordered close of the connections open when it began: each sends
/// what it holds, waits for the acks, then exchanges CLOSE
/// (`insane_reliable::Endpoint::close`). What is still open at the
/// deadline is given up (aborted) and counted.
struct Closing {
    /// The connections still closing, with their peers.
    conns: FxHashMap<ConnId, SocketAddr>,
    /// When what is still open is given up.
    deadline: Instant,
    /// The time the close was given (for messages).
    bound: Duration,
    /// Each connection that ended with messages unacknowledged: its
    /// peer, how many, and why.
    lost: Vec<(SocketAddr, u64, String)>,
    /// `shutdown` callers waiting for the close to end.
    waiters: Vec<Waker>,
    /// The transport was dropped: nobody receives any more, and the
    /// driver ends with the close (and releases the inner transport).
    dropped: bool,
}

/// A counter of the messages a [`ReliableTransport`] accepted (`send`
/// returned `Ok`) and then lost because their connection ended before
/// the peer acknowledged them: the peer failed, restarted or closed, or
/// the transport's ordered close gave up (the peer did not answer within
/// [`TransportConfig::linger`]), or the runtime shut down under it. It
/// outlives the transport, so that what a dropped transport's lingering
/// close gave up can still be read.
///
/// ```no_run
/// # fn f(t: &insane_net::qos::transport::ReliableTransport) {
/// let abandoned = t.abandoned_messages();
/// // ... later, even after the transport was dropped:
/// println!("{} messages lost", abandoned.count());
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct AbandonedMessages(Arc<AtomicU64>);

impl AbandonedMessages {
    /// Messages lost so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

impl State {
    /// Drains `poll_transmit` into `inner`'s send buffers and sends them,
    /// until the endpoint has nothing more, a buffer is missing or a send
    /// must wait. With `hold_acks`, ACKs that would go alone wait for the
    /// application's answer to ride on (`poll_transmit_holding_acks`).
    /// Whether a datagram went out.
    fn transmit(
        &mut self,
        cx: &mut Context<'_>,
        inner: &dyn Transport,
        max_datagram: usize,
        now: Instant,
        hold_acks: bool,
    ) -> bool {
        let mut sent = false;
        self.tx_more = false;
        while !self.sending && self.ep.wants_transmit() {
            let mut buf = match self.spare.take().or_else(|| inner.try_buffer()) {
                Some(b) => b,
                None => match inner.poll_buffer(cx) {
                    Poll::Ready(b) => b,
                    Poll::Pending => {
                        self.tx_more = true;
                        break;
                    }
                },
            };
            if buf.resize(max_datagram, 0).is_err() {
                tracing::warn!(
                    "reliable datagrams: the inner transport lent a buffer under {max_datagram} bytes"
                );
                break;
            }
            // The one copy of the send path: the fragment into the
            // datagram buffer. Zero copy would hand the message's `Bytes`
            // to the inner transport as a second gather segment.
            let next = if hold_acks {
                self.ep.poll_transmit_holding_acks(now, &mut buf)
            } else {
                self.ep.poll_transmit(now, &mut buf)
            };
            let Some(t) = next else {
                self.spare = Some(buf);
                break;
            };
            buf.truncate(t.len);
            sent = true;
            let mut b = Some(buf);
            match inner.poll_send(cx, &mut b, Some(t.to), &mut self.send_op) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    // The protocol retransmits what was lost.
                    tracing::debug!("reliable datagrams: send to {}: {e}", t.to);
                }
                Poll::Pending => {
                    self.sending = true;
                    self.tx_more = true;
                }
            }
        }
        sent
    }

    /// Starts (or extends to connections opened since) the ordered close
    /// of every connection, due to end within `bound`.
    fn begin_close(&mut self, now: Instant, bound: Duration) -> &mut Closing {
        let closing = self.closing.get_or_insert_with(|| Closing {
            conns: FxHashMap::default(),
            deadline: now + bound,
            bound,
            lost: Vec::new(),
            waiters: Vec::new(),
            dropped: false,
        });
        for (&conn, &peer) in &self.peers {
            if closing.conns.insert(conn, peer).is_none() {
                self.ep.close(conn, now);
            }
        }
        self.kick = true;
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
        closing
    }

    /// When the close in progress gives up the connections it still
    /// waits for (`None` when it waits for none: a close that is over
    /// but not yet collected by `poll_shutdown` arms no timer).
    fn close_deadline(&self) -> Option<Instant> {
        self.closing
            .as_ref()
            .filter(|c| !c.conns.is_empty())
            .map(|c| c.deadline)
    }

    /// The close's deadline passed: every connection still closing is
    /// given up (its unacked messages are lost, counted as its `Closed`
    /// event is taken) and the close is over.
    fn give_up_closing(&mut self) {
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        for (conn, peer) in closing.conns.drain() {
            // A connection whose `Closed` event is still queued is gone
            // from the protocol already: its event reports it.
            if let Some(n) = self.ep.unacked_messages(conn) {
                if n > 0 {
                    closing.lost.push((
                        peer,
                        n,
                        format!("not acknowledged within {:?}", closing.bound),
                    ));
                }
                self.ep.abort(conn);
            }
        }
        wake_all(&mut closing.waiters);
    }

    fn kick_driver(&mut self) {
        self.kick = true;
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    /// After the application queued or answered on the home core: the
    /// driver is needed only for a transmit that could not finish, or
    /// for a protocol deadline earlier than its timer.
    fn kick_driver_if_needed(&mut self) {
        if self.sending || self.tx_more || self.timer_may_move() {
            self.kick_driver();
        }
    }

    /// Whether the protocol's next deadline may come before the driver's
    /// timer (cheap: from the protocol's earliest armed timer, a lower
    /// bound of its next deadline).
    fn timer_may_move(&self) -> bool {
        match (self.ep.timer_hint(), self.armed) {
            (Some(t), Some(armed)) => t < armed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

fn wake_all(waiters: &mut Vec<Waker>) {
    for w in waiters.drain(..) {
        w.wake();
    }
}

fn register(waiters: &mut Vec<Waker>, cx: &Context<'_>) {
    if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
        waiters.push(cx.waker().clone());
    }
}

/// A seed from the OS's randomness (std's hash keys), the clock and the
/// process: a restarted endpoint gets a new epoch and new connection ids.
fn entropy_seed(local: SocketAddr) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write(local.to_string().as_bytes());
    h.finish()
}

/// The error of a connection that ended for `reason` (which names the
/// peer).
fn closed_error(reason: &CloseReason) -> io::Error {
    let kind = match reason {
        CloseReason::TimedOut { .. } => io::ErrorKind::TimedOut,
        CloseReason::Refused { .. } => io::ErrorKind::ConnectionRefused,
        CloseReason::ProtocolViolation { .. } => io::ErrorKind::InvalidData,
        CloseReason::PeerLimits { .. } => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::ConnectionReset,
    };
    io::Error::new(
        kind,
        format!("reliable connection failed: {reason}; messages it had not delivered are lost"),
    )
}

impl ReliableTransport {
    /// Runs the protocol over `inner` (a best-effort datagram transport,
    /// bound already), reporting itself as `kind`, and starts the task
    /// that drives it on the current core (the one that bound `inner`).
    /// The endpoint accepts connections from any peer at once.
    ///
    /// # Errors
    /// `inner` is reliable already, carries datagrams too small for the
    /// protocol, or `config` asks for messages over 4 GiB; outside a
    /// runtime.
    pub fn new(
        inner: Arc<dyn Transport>,
        kind: TransportKind,
        config: &TransportConfig,
    ) -> io::Result<Self> {
        if inner.kind().is_reliable() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "reliable datagrams run over a best-effort transport, not {}",
                    inner.kind()
                ),
            ));
        }
        let local = inner.local_addr()?;
        let max_datagram = inner.max_payload().min(MAX_DATAGRAM);
        let mut pc = insane_reliable::Config {
            max_datagram,
            max_message: config.max_message,
            ..Default::default()
        };
        // The receive window (what a peer may send before we hand
        // messages to the application) holds one largest message and a
        // little more: it is what a receiver that stops receiving holds.
        let frag = pc.max_payload().max(1);
        let packets = config.max_message.div_ceil(frag).max(1);
        pc.recv_window = u32::try_from(packets + 256)
            .unwrap_or(u32::MAX)
            .min(insane_reliable::config::MAX_WINDOW);
        pc.recv_budget = pc.recv_budget.max(config.max_message);
        if config.peer_timeout < std::time::Duration::from_millis(10) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "peer_timeout of {:?} is under the 10 ms a reliable connection needs",
                    config.peer_timeout
                ),
            ));
        }
        pc.idle_timeout = config.peer_timeout;
        pc.keepalive_interval = pc.keepalive_interval.min(config.peer_timeout / 5);
        let home = insane_runtime::runtime::CoreHandle::current().ok_or_else(|| {
            io::Error::other(
                "a reliable-datagram endpoint must be bound on a core of an insane runtime",
            )
        })?;
        let ep = insane_reliable::Endpoint::new(pc, entropy_seed(local))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let shared = Arc::new(Shared {
            kind,
            inner,
            local,
            home,
            max_message: config.max_message,
            max_datagram,
            keep_datagrams: !matches!(kind, TransportKind::UdpReliable),
            tx: Pool::new(config.tx_buffers, TX_INITIAL, TX_RETAIN),
            rx: Pool::new(config.rx_buffers, 0, 0),
            linger: config.linger.unwrap_or(config.peer_timeout),
            abandoned: AbandonedMessages::default(),
            state: Mutex::new(State {
                ep,
                conns: HashMap::new(),
                peers: FxHashMap::default(),
                failed: HashMap::new(),
                inbox: VecDeque::new(),
                recv_waiters: Vec::new(),
                send_waiters: Vec::new(),
                default_peer: None,
                driver: None,
                kick: false,
                recv_op: Op::new(),
                inline_rx: false,
                armed: None,
                spare: None,
                send_op: Op::new(),
                sending: false,
                tx_more: true,
                delivered: false,
                acks_held: false,
                closing: None,
            }),
        });
        // Detached: the driver ends by itself once the transport is
        // dropped and its connections are closed (see `Drop`).
        drop(spawn(Driver::new(shared.clone())));
        Ok(Self { shared })
    }

    /// The best-effort transport carrying the datagrams.
    pub fn inner(&self) -> &dyn Transport {
        &*self.shared.inner
    }

    /// The counter of messages this transport accepted and then lost with
    /// their connection (see [`AbandonedMessages`]); it stays readable
    /// after the transport is dropped.
    pub fn abandoned_messages(&self) -> AbandonedMessages {
        self.shared.abandoned.clone()
    }

    /// Open connections (any state, closing ones included).
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.state).ep.connection_count()
    }

    /// The protocol's endpoint counters (datagrams, drops by reason,
    /// connections accepted, timed out, ...).
    pub fn protocol_stats(&self) -> insane_reliable::EndpointStats {
        lock(&self.shared.state).ep.stats().clone()
    }

    /// The protocol's counters (datagrams, retransmissions, drops by
    /// reason, connections) and the messages abandoned.
    pub fn stats(&self) -> String {
        let st = lock(&self.shared.state);
        let mut out = format!(
            "{:?}, abandoned_messages: {}",
            st.ep.stats(),
            self.shared.abandoned.count()
        );
        // The first connections' own counters (RTT, window, losses).
        for (&conn, peer) in st.peers.iter().take(4) {
            if let Some(c) = st.ep.conn_stats(conn) {
                out.push_str(&format!("; connection to {peer}: {c:?}"));
            }
        }
        out
    }
}

impl Drop for ReliableTransport {
    /// Closes every connection in order, in the background: the driver
    /// task lingers (detached, on its core) until each connection's
    /// messages are acknowledged and CLOSE was exchanged, or until the
    /// linger bound passes (what is left is then given up, counted and
    /// reported with `tracing::warn!`), then ends and releases the inner
    /// transport (its port or socket). With a zero bound that happens at
    /// the driver's next turn, without a word to the peers (they notice
    /// by their idle timeout).
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut guard = lock(&shared.state);
        let st = &mut *guard;
        // Nobody receives any more: queued messages go back to the pool,
        // later ones are discarded; no new connection is accepted.
        st.inbox.clear();
        st.inline_rx = false;
        st.ep.set_accept_incoming(false);
        st.begin_close(Instant::now(), shared.linger).dropped = true;
        tracing::debug!(
            "reliable datagrams on {}: dropped, closing {} connection(s) within {:?}",
            shared.local,
            st.peers.len(),
            shared.linger
        );
    }
}

impl fmt::Debug for ReliableTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.shared.state);
        f.debug_struct("ReliableTransport")
            .field("kind", &self.shared.kind)
            .field("local_addr", &self.shared.local)
            .field("connections", &st.ep.connection_count())
            .field("stats", st.ep.stats())
            .field("inner", &self.shared.inner)
            .finish()
    }
}

impl Shared {
    /// Queues `msg` for `peer`, opening a connection when there is none.
    /// `Pending` while the connection's send buffer is full (woken when
    /// it has room, or fails).
    fn poll_queue(
        &self,
        cx: &mut Context<'_>,
        peer: SocketAddr,
        msg: &Bytes,
    ) -> Poll<io::Result<()>> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        if !st.failed.is_empty()
            && let Some(e) = st.failed.remove(&peer)
        {
            return Poll::Ready(Err(e));
        }
        let conn = match st.conns.get(&peer) {
            Some(&c) => c,
            None => {
                let c = st.ep.connect(peer, Instant::now()).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("cannot open a reliable connection to {peer}: {e}"),
                    )
                })?;
                st.conns.insert(peer, c);
                st.peers.insert(c, peer);
                c
            }
        };
        match st.ep.send(conn, msg.clone()) {
            Ok(()) => {
                // On the driver's core, transmit at once, saving the hop to
                // the driver task (its next turn polls a send that had to
                // wait, and re-arms the timers). Elsewhere the inner
                // transport's operations stay on its core.
                if !st.sending && self.home.is_current() {
                    st.transmit(cx, &*self.inner, self.max_datagram, Instant::now(), false);
                    st.kick_driver_if_needed();
                } else {
                    st.kick_driver();
                }
                Poll::Ready(Ok(()))
            }
            Err(SendError::WouldBlock) => {
                register(&mut st.send_waiters, cx);
                // The driver transmits what fills the buffer.
                st.kick_driver();
                Poll::Pending
            }
            Err(SendError::TooLarge { len, max }) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message of {len} bytes exceeds the maximum of {max} bytes of the connection to {peer}"
                ),
            ))),
            Err(SendError::Closed) => {
                // Closing; its `Closed` event is still queued. The next
                // send opens a new connection.
                st.conns.remove(&peer);
                st.peers.remove(&conn);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("the reliable connection to {peer} is closed"),
                )))
            }
        }
    }
}

impl Transport for ReliableTransport {
    fn kind(&self) -> TransportKind {
        self.shared.kind
    }

    fn max_payload(&self) -> usize {
        self.shared.max_message
    }

    fn headroom(&self) -> usize {
        0
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.local)
    }

    fn busy_polls(&self) -> bool {
        self.shared.inner.busy_polls()
    }

    fn try_buffer(&self) -> Option<TxBuf> {
        self.shared.tx.try_lend(0, self.shared.max_message)
    }

    fn poll_buffer(&self, cx: &mut Context<'_>) -> Poll<TxBuf> {
        self.shared.tx.poll_lend(cx, 0, self.shared.max_message)
    }

    fn tx_available(&self) -> usize {
        self.shared.tx.available()
    }

    fn rx_available(&self) -> usize {
        self.shared.rx.available()
    }

    /// `poll_send` and `poll_recv` spend the budget (they are used
    /// without an endpoint too: a send loop must yield to the driver task).
    fn spends_coop_budget(&self) -> bool {
        true
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        buf: &mut Option<TxBuf>,
        peer: Option<SocketAddr>,
        op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        // Queuing a message is ready at once until the send buffer is
        // full (4 MiB: tens of thousands of small messages), so a send
        // loop would keep the core from this endpoint's own driver task
        // (and the peer's, on the same core) long enough for the idle
        // timeout to fire: spend the task's cooperative budget (as tokio's
        // sockets do) so the loop yields every 128 messages.
        let coop = std::task::ready!(coop::poll_proceed(cx));
        let shared = &self.shared;
        let tx = match begin_send(cx, buf, op, shared.max_message, |len| {
            oversize(len, shared.max_message, "maximum reliable message")
        }) {
            Ok(tx) => tx,
            Err(poll) => return poll,
        };
        let Some(peer) = peer.or(lock(&shared.state).default_peer) else {
            return Poll::Ready(Err(not_connected("this reliable")));
        };
        // The protocol keeps the message until acked; its pool entry is
        // free again at once (the protocol's send buffer bounds what is
        // held).
        let (data, headroom, pool) = tx.into_parts();
        let msg = match pool {
            // A small message is copied into an exact-size `Bytes` (one
            // small allocation) and the buffer, with its capacity, goes
            // back to the pool for the next message: cheaper than
            // wrapping the whole buffer in a shared `Bytes` (an allocation
            // for the wrapper) and allocating the next buffer anew.
            Some(pool) if data.len() - headroom <= SMALL_COPY => {
                let msg = Bytes::copy_from_slice(&data[headroom..]);
                pool.give_back(data);
                msg
            }
            // A large one becomes the `Bytes` itself: no copy.
            pool => {
                if let Some(pool) = pool {
                    pool.give_back(Vec::new());
                }
                Bytes::from(data).slice(headroom..)
            }
        };
        match shared.poll_queue(cx, peer, &msg) {
            Poll::Pending => {
                let shared = shared.clone();
                op.start(
                    cx,
                    Box::pin(async move { poll_fn(|cx| shared.poll_queue(cx, peer, &msg)).await }),
                )
            }
            ready => {
                coop.made_progress();
                ready
            }
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        _op: &mut Op<io::Result<RxBuf>>,
    ) -> Poll<io::Result<RxBuf>> {
        // A receive loop over a full inbox yields every 128 messages too.
        let coop = std::task::ready!(coop::poll_proceed(cx));
        let shared = &self.shared;
        let mut guard = lock(&shared.state);
        let st = &mut *guard;
        let home = shared.home.is_current();
        if st.inbox.is_empty() && home {
            // This receiver is polling: waking it for what it takes now
            // would only poll it once more for nothing.
            if st.recv_waiters.len() == 1 && st.recv_waiters[0].will_wake(cx.waker()) {
                st.recv_waiters.clear();
            }
            shared.receive_inline(st, cx);
        }
        match st.inbox.pop_front() {
            Some(msg) => {
                st.inline_rx = false;
                coop.made_progress();
                Poll::Ready(msg)
            }
            None => {
                // At home this receiver's waker is now the inner
                // transport's: datagrams wake it, not the driver. (One on
                // another core waits for whoever receives at home.)
                if home {
                    st.inline_rx = true;
                }
                register(&mut st.recv_waiters, cx);
                Poll::Pending
            }
        }
    }

    /// Closes every open connection in order and is ready once each has
    /// delivered and had acknowledged every message it accepted and
    /// exchanged CLOSE; an error naming each peer that did not
    /// acknowledge everything within the linger bound
    /// ([`TransportConfig::linger`], else the peer timeout), and how many
    /// messages are lost. Connections opened later are not part of it.
    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = &self.shared;
        let mut guard = lock(&shared.state);
        let st = &mut *guard;
        let closing = match st.closing {
            Some(ref mut c) => c,
            None => st.begin_close(Instant::now(), shared.linger),
        };
        if !closing.conns.is_empty() {
            register(&mut closing.waiters, cx);
            return Poll::Pending;
        }
        let lost = std::mem::take(&mut closing.lost);
        st.closing = None;
        if lost.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let what: Vec<String> = lost
            .iter()
            .map(|(peer, n, why)| format!("{n} message(s) to {peer} ({why})"))
            .collect();
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "reliable datagrams on {}: shutdown: {} lost",
                shared.local,
                what.join(", ")
            ),
        )))
    }

    fn cancel_recv(&self) {
        let mut st = lock(&self.shared.state);
        if st.inline_rx {
            // Nobody pumps the inner transport any more: the driver does.
            st.inline_rx = false;
            st.kick_driver();
        }
    }

    fn diagnostics(&self) -> Option<String> {
        let proto = self.stats();
        Some(match self.shared.inner.diagnostics() {
            Some(inner) => format!("reliable datagrams: {proto}; inner: {inner}"),
            None => format!("reliable datagrams: {proto}"),
        })
    }

    fn poll_connect(
        &self,
        _cx: &mut Context<'_>,
        peer: SocketAddr,
        _op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        let mut guard = lock(&self.shared.state);
        let st = &mut *guard;
        st.failed.remove(&peer);
        if !st.conns.contains_key(&peer) {
            // The handshake goes out with the driver's next transmit;
            // messages sent meanwhile wait for it.
            match st.ep.connect(peer, Instant::now()) {
                Ok(c) => {
                    st.conns.insert(peer, c);
                    st.peers.insert(c, peer);
                    st.kick_driver();
                }
                Err(e) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("cannot open a reliable connection to {peer}: {e}"),
                    )));
                }
            }
        }
        st.default_peer = Some(peer);
        Poll::Ready(Ok(()))
    }
}

// ---- receiving ----------------------------------------------------------------

/// What one receive burst got from the inner transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Received {
    /// No datagram (the caller's waker is registered).
    Nothing,
    /// Some datagrams, then none (the caller's waker is registered).
    Drained,
    /// A whole burst: more may wait, and no waker is registered.
    Burst,
    /// Stopped at a datagram that completed a message: more may wait,
    /// and no waker is registered.
    Message,
}

impl Shared {
    /// Feeds up to [`RX_BURST`] datagrams of the inner transport to the
    /// protocol, and says what came. When all `RX_BURST` came, more may
    /// be waiting and no waker is registered with the inner transport:
    /// the caller must poll again (`cx` is woken when more arrive
    /// otherwise).
    ///
    /// With `until_message`, it stops after the datagram that completes a
    /// message the receive pool has room for ([`Received::Message`], no
    /// waker registered either): the caller delivers it first, and polls
    /// again when it comes back for the next.
    fn receive(
        &self,
        st: &mut State,
        cx: &mut Context<'_>,
        now: Instant,
        until_message: bool,
    ) -> Received {
        let mut progress = Received::Nothing;
        for _ in 0..RX_BURST {
            match self.inner.poll_recv(cx, &mut st.recv_op) {
                Poll::Ready(Ok(d)) => {
                    let from = d.peer();
                    let events = st.ep.pending_events();
                    if self.keep_datagrams {
                        // No copy: DATA payloads stay in the datagram (a
                        // device frame) until their message is delivered
                        // as those frames, while frames can be spared.
                        let lendable = self.inner.rx_available().saturating_sub(LEND_RESERVE);
                        let d = Bytes::from_owner(d);
                        st.ep.handle_datagram_owned(now, from, &d, lendable);
                    } else {
                        // Heap datagrams of a kernel socket: copied into
                        // the message (a kept 1.4 KiB datagram would pin
                        // a buffer sized for 64 KiB).
                        st.ep.handle_datagram(now, from, &d);
                    }
                    progress = Received::Burst;
                    if until_message && st.ep.pending_events() > events && self.rx.available() > 0 {
                        return Received::Message;
                    }
                }
                Poll::Ready(Err(e)) => {
                    // E.g. an ICMP error reported on the socket: the
                    // protocol's timers decide what a silent peer means.
                    tracing::debug!("reliable datagrams: receive: {e}");
                    return Received::Burst;
                }
                Poll::Pending => {
                    if progress == Received::Burst {
                        return Received::Drained;
                    }
                    return Received::Nothing;
                }
            }
        }
        progress
    }

    /// The application's receive on the home core, inline: the inner
    /// transport's datagrams go into the protocol and its messages into
    /// the inbox in the receiver's own poll, with no hop through the
    /// driver task. ACKs that would go alone are held for the
    /// application's answer to carry; the driver, woken for its next
    /// turn (after the application's), sends those no answer carried.
    fn receive_inline(&self, st: &mut State, cx: &mut Context<'_>) {
        let now = Instant::now();
        let received = self.receive(st, cx, now, true);
        let got = received != Received::Nothing;
        if st.ep.pending_events() > 0 {
            self.drain_events(st, cx);
        }
        let delivered = st.delivered;
        if received == Received::Burst || (received == Received::Message && !delivered) {
            // More may wait, with no waker registered: poll again soon. (A
            // delivered message brings the receiver back, or the driver.)
            cx.waker().wake_by_ref();
        }
        if std::mem::take(&mut st.delivered) {
            st.transmit(cx, &*self.inner, self.max_datagram, now, true);
            st.acks_held |= st.ep.has_pending_acks();
            // Also the receiver's way back: if it does not wait here
            // again, the driver takes the inner transport's receive over.
            st.kick_driver();
        } else if got {
            // Acks, window updates, SACK holes to repair: nothing to hold.
            st.transmit(cx, &*self.inner, self.max_datagram, now, false);
            st.kick_driver_if_needed();
        }
    }

    /// Hands the endpoint's events to the application while the receive
    /// pool has room: a message stays in the endpoint (its credit not
    /// returned, so the peer's sends stop) until the application frees a
    /// receive buffer. Whether any event was taken.
    fn drain_events(&self, st: &mut State, cx: &mut Context<'_>) -> bool {
        let rx = &self.rx;
        let mut taken = false;
        let mut wake_recv = false;
        let mut wake_send = false;
        while st.ep.pending_events() > 0 {
            // One receive entry per event, in case it is a message.
            let Poll::Ready(slot) = rx.poll_take(cx) else {
                break;
            };
            let Some(ev) = st.ep.poll_event() else {
                rx.give_back(slot);
                break;
            };
            taken = true;
            match ev {
                Event::Message { conn, data } => {
                    let peer = st
                        .peers
                        .get(&conn)
                        .copied()
                        .or_else(|| st.ep.peer(conn))
                        .unwrap_or(self.local);
                    drop(slot);
                    // The protocol's copy out of the datagrams, if it made
                    // one (kernel sockets' datagrams; too few frames to
                    // lend), is the receive path's one copy.
                    if data.was_copied() {
                        count_copy(data.len());
                    }
                    // No further copy: the message as the protocol
                    // delivered it (one buffer, or the frames it came in).
                    st.inbox
                        .push_back(Ok(RxBuf::from_message(data, peer, rx.clone())));
                    wake_recv = true;
                    st.delivered = true;
                    continue;
                }
                Event::Accepted { conn, peer } => {
                    st.peers.insert(conn, peer);
                    st.conns.entry(peer).or_insert(conn);
                    // A failure of an earlier connection to this peer (e.g.
                    // it restarted and connects anew) is still reported to
                    // the next send.
                }
                Event::Connected { .. } => {}
                Event::Writable { .. } => wake_send = true,
                Event::Closed {
                    conn,
                    reason,
                    unacked_messages,
                } => {
                    wake_send = true;
                    let (peer, current) = self.on_closed(st, conn, &reason, unacked_messages);
                    // The application hears of every loss but its own
                    // abort (its `shutdown` reports that).
                    let failed = match reason {
                        CloseReason::Local | CloseReason::Aborted { .. } => false,
                        CloseReason::PeerClosed { .. } => unacked_messages > 0,
                        _ => true,
                    };
                    if failed {
                        if let (true, Some(p)) = (current, peer) {
                            if st.failed.len() >= FAILED_MAX {
                                st.failed.clear();
                            }
                            st.failed.insert(p, closed_error(&reason));
                        }
                        st.inbox.push_back(Err(closed_error(&reason)));
                        wake_recv = true;
                    }
                }
            }
            rx.give_back(slot);
        }
        if wake_recv {
            wake_all(&mut st.recv_waiters);
        }
        if wake_send {
            wake_all(&mut st.send_waiters);
        }
        taken
    }
}

impl Shared {
    /// What every ended connection needs, whoever takes its `Closed`
    /// event: it leaves the maps, its lost messages are counted (and
    /// reported with `tracing::warn!` while closing: no application may
    /// be there to hear of it), and an ordered close waiting for it moves
    /// on. Its peer, and whether it was the one carrying sends to it.
    fn on_closed(
        &self,
        st: &mut State,
        conn: ConnId,
        reason: &CloseReason,
        unacked: u64,
    ) -> (Option<SocketAddr>, bool) {
        let peer = st.peers.remove(&conn);
        let current = peer.is_some_and(|p| st.conns.get(&p) == Some(&conn));
        if let (true, Some(p)) = (current, peer) {
            st.conns.remove(&p);
        }
        if unacked > 0 {
            self.abandoned.add(unacked);
        }
        if let Some(closing) = st.closing.as_mut() {
            if unacked > 0 {
                tracing::warn!(
                    "reliable datagrams on {}: {unacked} message(s) accepted for {} are lost \
                     ({reason}) while closing",
                    self.local,
                    peer.map_or_else(|| "a peer".to_owned(), |p| p.to_string()),
                );
            }
            if let Some(p) = closing.conns.remove(&conn) {
                if unacked > 0 {
                    closing.lost.push((p, unacked, reason.to_string()));
                }
                if closing.conns.is_empty() {
                    wake_all(&mut closing.waiters);
                }
            }
        }
        (peer, current)
    }

    /// Takes every event of a dropped transport: nobody receives any
    /// more, so messages are discarded (their peer had them acknowledged:
    /// like bytes unread when a TCP socket closes, they are counted in
    /// the log), and ended connections are accounted for.
    fn discard_events(&self, st: &mut State) {
        let mut discarded = 0u64;
        while let Some(ev) = st.ep.poll_event() {
            match ev {
                Event::Message { .. } => discarded += 1,
                Event::Closed {
                    conn,
                    reason,
                    unacked_messages,
                } => {
                    self.on_closed(st, conn, &reason, unacked_messages);
                }
                Event::Accepted { conn, peer } => {
                    // Accepted before the close refused new peers: it is
                    // closed too.
                    st.peers.insert(conn, peer);
                    if let Some(closing) = st.closing.as_mut()
                        && closing.conns.insert(conn, peer).is_none()
                    {
                        st.ep.close(conn, Instant::now());
                    }
                }
                Event::Connected { .. } | Event::Writable { .. } => {}
            }
        }
        if discarded > 0 {
            tracing::warn!(
                "reliable datagrams on {}: {discarded} message(s) received after the transport \
                 was dropped are discarded",
                self.local
            );
        }
    }
}

// ---- the driver --------------------------------------------------------------

/// The task that runs the protocol's timers, finishes transmits the
/// application could not, sends the ACKs no answer carried, and moves
/// datagrams and events while no application receiver does it inline
/// (one waiting on another core, or none waiting).
struct Driver {
    shared: Arc<Shared>,
    sleep: Pin<Box<Sleep>>,
    /// The timer fired: this turn receives even while an application
    /// receiver pumps inline (whose receive future may have been
    /// dropped without a word, as a plain `Transport` user may do).
    timer_fired: bool,
    /// The last turn held ACKs for the application's answer: let the
    /// application run before the next turn.
    yield_now: bool,
    /// Further turns that still hold ACKs back (see `HOLD_PASSES`).
    hold_passes: u8,
    /// The transport was dropped and its close is over: the driver ends.
    finished: bool,
}

impl Driver {
    fn new(shared: Arc<Shared>) -> Self {
        let far = insane_runtime::time::Instant::now() + std::time::Duration::from_secs(86_400);
        Self {
            shared,
            sleep: Box::pin(sleep_until_precise(far)),
            timer_fired: false,
            yield_now: false,
            hold_passes: 0,
            finished: false,
        }
    }

    /// One turn: receive, timers, events, transmit. Whether anything
    /// happened.
    fn turn(&mut self, cx: &mut Context<'_>) -> bool {
        let shared = self.shared.clone();
        let inner = &*shared.inner;
        let mut progress = false;
        let now = Instant::now();
        let mut guard = lock(&shared.state);
        let st = &mut *guard;
        if st.sending
            && let Poll::Ready(res) = st.send_op.poll(cx)
        {
            st.sending = false;
            progress = true;
            if let Err(e) = res {
                // The protocol retransmits what was lost.
                tracing::debug!("reliable datagrams: a datagram was not sent: {e}");
            }
        }
        if !st.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.driver = Some(cx.waker().clone());
        }
        if st.close_deadline().is_some_and(|d| now >= d) {
            st.give_up_closing();
            progress = true;
        }
        let timeout_due = st.ep.timer_hint().is_some_and(|t| t <= now)
            && st.ep.poll_timeout().is_some_and(|t| t <= now);
        if std::mem::take(&mut self.timer_fired) || timeout_due {
            // A receiver whose future was dropped without a word (as a
            // plain `Transport` user may do) would leave the datagrams
            // waiting: the driver takes the receive over until a waiting
            // receiver claims it again. And a due timeout is handled only
            // after the datagrams already waiting are read: after a stall
            // of this thread, the peer's ACKs and keepalives are there,
            // and handling the timeout first would retransmit for nothing
            // or give up a live peer.
            st.inline_rx = false;
        }
        if !st.inline_rx {
            // A full burst is progress: the next turn receives again.
            progress |= shared.receive(st, cx, now, false) != Received::Nothing;
        }
        if timeout_due && st.ep.poll_timeout().is_some_and(|t| t <= now) {
            st.ep.handle_timeout(now);
            progress = true;
        }
        let dropped = st.closing.as_ref().is_some_and(|c| c.dropped);
        if dropped {
            // Nobody receives: events are accounted for, messages dropped.
            if st.ep.pending_events() > 0 {
                shared.discard_events(st);
                progress = true;
            }
        } else if st.ep.pending_events() > 0 {
            progress |= shared.drain_events(st, cx);
        }
        // Transmit only when something happened: a turn of a busy-polling
        // driver that found nothing costs one receive attempt, not a
        // buffer and a transmit attempt too.
        // Messages just went to the application, which may answer at
        // once: its answer carries the ACKs (two datagrams per round trip,
        // not four). The driver yields so that the application, then the
        // core's transmit task that sends the answer, run before ACKs that
        // are still held go alone.
        let delivered = std::mem::take(&mut st.delivered);
        let hold = delivered || (st.acks_held && self.hold_passes > 0);
        if delivered {
            self.hold_passes = HOLD_PASSES;
        } else if hold {
            self.hold_passes -= 1;
        }
        if progress || st.kick || st.tx_more || st.acks_held {
            st.kick = false;
            st.acks_held = false;
            progress |= st.transmit(cx, inner, shared.max_datagram, now, hold);
            if hold && st.ep.has_pending_acks() {
                st.acks_held = true;
                self.yield_now = true;
            }
        }
        // The timer is armed only for an earlier deadline: one that moved
        // later (an ack came) lets the armed timer fire early, and the
        // turn it wakes re-arms it. A message does not re-arm it.
        let mut reset = false;
        let close_deadline = st.close_deadline();
        if (st.timer_may_move() || close_deadline.is_some())
            && let Some(t) = earliest(st.ep.poll_timeout(), close_deadline)
            && st.armed.is_none_or(|armed| t < armed)
        {
            self.sleep.as_mut().reset(t.into());
            st.armed = Some(t);
            reset = true;
        }
        // The timer is polled to register it (after a reset) or to see it
        // fire (it wakes the driver at or after its deadline), not at
        // every turn.
        let poll_sleep = st.armed.is_some_and(|t| reset || t <= now);
        // A dropped transport's close is over once every connection
        // ended and its last datagrams (CLOSE replies, ACKs) left.
        if dropped
            && let Some(closing) = &st.closing
            && closing.conns.is_empty()
            && ((!st.sending && !st.ep.wants_transmit()) || now >= closing.deadline)
        {
            self.finished = true;
            return true;
        }
        drop(guard);
        if poll_sleep && self.sleep.as_mut().poll(cx).is_ready() {
            lock(&shared.state).armed = None;
            self.timer_fired = true;
            progress = true;
        }
        progress
    }
}

impl Drop for Driver {
    /// The driver ends with its close, or is cancelled when its runtime
    /// shuts down (a lingering close included: the runtime's shutdown
    /// never waits for it). Whatever is still open then is lost: counted
    /// and reported.
    fn drop(&mut self) {
        let shared = &*self.shared;
        let mut guard = lock(&shared.state);
        let st = &mut *guard;
        let open: Vec<ConnId> = st.peers.keys().copied().collect();
        if open.is_empty() && st.ep.pending_events() == 0 {
            return;
        }
        if !self.finished {
            tracing::debug!(
                "reliable datagrams on {}: the driver stops with {} connection(s) open \
                 (runtime shutting down)",
                shared.local,
                open.len()
            );
        }
        // Accounted as a close: lost messages are counted and reported.
        let now = Instant::now();
        st.begin_close(now, Duration::ZERO).dropped = true;
        for conn in open {
            st.ep.abort(conn);
        }
        shared.discard_events(st);
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        for _ in 0..TURNS {
            let progress = this.turn(cx);
            if this.finished {
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
            if std::mem::take(&mut this.yield_now) {
                break;
            }
        }
        // Still busy: let the core's other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
