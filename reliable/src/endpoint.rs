//! The endpoint: every connection of one local UDP port, demultiplexed by
//! destination connection id.

use core::fmt;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::config::{Config, ConfigError, MAX_WINDOW};
use crate::conn::{Conn, Delivered, Payload, Shared, State};
use crate::message::Message;
use crate::stats::{ConnStats, DropReason, EndpointStats};
use crate::wire::{
    CLOSE_NORMAL, CLOSE_PROTOCOL, CLOSE_REFUSED, FLAG_ACK_REQUEST, FLAG_CLOSE_REPLY, Handshake,
    Packet, Repr, WireError,
};

/// Bits of a connection id that index the endpoint's table; the other 44
/// bits are random.
const INDEX_BITS: u32 = 20;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Control replies (CLOSE for unknown connections, refusals) queued at most.
const CTRL_QUEUE: usize = 64;

/// A connection handle, valid on the endpoint that returned it. It is the
/// connection's local id (the destination id of every packet the peer
/// sends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// The id as carried on the wire.
    pub fn to_u64(self) -> u64 {
        self.0
    }
    fn index(self) -> usize {
        (self.0 & INDEX_MASK) as usize
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A datagram for the caller to send: `len` bytes at the start of the
/// buffer given to [`Endpoint::poll_transmit`], to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub to: SocketAddr,
    /// Bytes written.
    pub len: usize,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// [`Endpoint::close`] completed (everything sent was acked).
    Local,
    /// The peer closed the connection.
    PeerClosed {
        /// The peer.
        peer: SocketAddr,
    },
    /// The peer refused the connection (not accepting, or full).
    Refused {
        /// The peer.
        peer: SocketAddr,
    },
    /// Nothing heard from the peer for the idle timeout (dead peer or
    /// handshake unanswered).
    TimedOut {
        /// The peer.
        peer: SocketAddr,
    },
    /// The peer's endpoint restarted (a new handshake from its address
    /// carried another epoch): this connection's state on its side is gone.
    PeerRestarted {
        /// The peer.
        peer: SocketAddr,
    },
    /// The peer broke the protocol (or reported that we did).
    ProtocolViolation {
        /// The peer.
        peer: SocketAddr,
    },
    /// A message queued before the handshake exceeds what the peer accepts.
    PeerLimits {
        /// The peer.
        peer: SocketAddr,
    },
    /// [`Endpoint::abort`]: given up locally, without telling the peer
    /// (e.g. an ordered close that the peer did not complete in time).
    Aborted {
        /// The peer.
        peer: SocketAddr,
    },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local => write!(f, "closed locally"),
            CloseReason::PeerClosed { peer } => write!(f, "closed by peer {peer}"),
            CloseReason::Refused { peer } => write!(f, "connection refused by {peer}"),
            CloseReason::TimedOut { peer } => write!(
                f,
                "peer {peer} timed out (no packet within the idle timeout)"
            ),
            CloseReason::PeerRestarted { peer } => write!(f, "peer {peer} restarted"),
            CloseReason::ProtocolViolation { peer } => {
                write!(f, "protocol violation with peer {peer}")
            }
            CloseReason::PeerLimits { peer } => {
                write!(f, "a queued message exceeds what peer {peer} accepts")
            }
            CloseReason::Aborted { peer } => {
                write!(f, "connection to {peer} aborted locally")
            }
        }
    }
}

/// What happened on the endpoint, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection opened by [`Endpoint::connect`] completed its handshake.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The peer.
        peer: SocketAddr,
    },
    /// A peer opened a connection to us.
    Accepted {
        /// The connection.
        conn: ConnId,
        /// The peer.
        peer: SocketAddr,
    },
    /// A whole message, in order. Taking it returns its credit to the peer.
    Message {
        /// The connection.
        conn: ConnId,
        /// The message: one chunk, or the received datagrams' payloads
        /// when they came through
        /// [`handle_datagram_owned`](Endpoint::handle_datagram_owned).
        data: Message,
    },
    /// `send` returned `WouldBlock` on this connection earlier and now has
    /// room again (half its send buffer).
    Writable {
        /// The connection.
        conn: ConnId,
    },
    /// The connection ended; its handle is now invalid. Messages accepted by
    /// `send` and not acked are lost only when `reason` is not `Local`:
    /// `unacked_messages` says how many.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
        /// Messages accepted by `send` on this connection that the peer
        /// had not acknowledged: lost (always 0 for `Local`).
        unacked_messages: u64,
    },
}

/// Why `send` refused a message. The message was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The connection's send buffer is full (the peer is slow to receive or
    /// its credit is exhausted): retry after [`Event::Writable`] or later.
    WouldBlock,
    /// The message is larger than this connection carries.
    TooLarge {
        /// The message's length.
        len: usize,
        /// The largest message this connection carries.
        max: usize,
    },
    /// The connection is closed, closing, or unknown.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::WouldBlock => write!(
                f,
                "send buffer full (peer not receiving fast enough); retry later"
            ),
            SendError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the maximum of {max}")
            }
            SendError::Closed => write!(f, "connection closed"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why `connect` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The endpoint holds `max_connections` connections.
    TooManyConnections,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "too many connections")
    }
}

impl std::error::Error for ConnectError {}

fn slot_ref(conns: &[Option<Conn>], id: u64) -> Option<&Conn> {
    conns
        .get((id & INDEX_MASK) as usize)?
        .as_ref()
        .filter(|c| c.id == id)
}

fn slot(conns: &mut [Option<Conn>], id: u64) -> Option<&mut Conn> {
    conns
        .get_mut((id & INDEX_MASK) as usize)?
        .as_mut()
        .filter(|c| c.id == id)
}

enum Ev {
    Public(Event),
    Msg {
        conn: ConnId,
        end: u64,
        data: Message,
    },
}

#[derive(Clone, Copy)]
struct Ctrl {
    to: SocketAddr,
    dst: u64,
    src: u64,
    flags: u16,
    code: u32,
}

/// All connections of one local UDP port. Sans-IO: the caller moves
/// datagrams and passes the time. See the crate documentation.
pub struct Endpoint {
    cfg: Config,
    rng: fastrand::Rng,
    epoch: u64,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    n_conns: usize,
    by_remote: HashMap<(u64, u64), u64>,
    peer_epochs: HashMap<SocketAddr, u64>,
    events: VecDeque<Ev>,
    held: usize,
    /// Fragments that messages kept as fragments still expect.
    kept_expected: usize,
    ready: VecDeque<u64>,
    /// Scratch of `next_transmit`: connections holding an ACK back.
    holding_ack: Vec<u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    ctrl: VecDeque<Ctrl>,
    stats: EndpointStats,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("epoch", &self.epoch)
            .field("connections", &self.n_conns)
            .finish()
    }
}

impl Endpoint {
    /// A new endpoint. `rng_seed` seeds connection ids and the epoch: give
    /// it real entropy (e.g. from the OS) in production, so that a
    /// restarted process gets a new epoch and unguessable ids.
    pub fn new(config: Config, rng_seed: u64) -> Result<Endpoint, ConfigError> {
        config.validate()?;
        let mut rng = fastrand::Rng::with_seed(rng_seed);
        let epoch = rng.u64(1..);
        Ok(Endpoint {
            cfg: config,
            rng,
            epoch,
            conns: Vec::new(),
            free: Vec::new(),
            n_conns: 0,
            by_remote: HashMap::new(),
            peer_epochs: HashMap::new(),
            events: VecDeque::new(),
            held: 0,
            kept_expected: 0,
            ready: VecDeque::new(),
            holding_ack: Vec::new(),
            timers: BinaryHeap::new(),
            ctrl: VecDeque::new(),
            stats: EndpointStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// This endpoint's epoch (random per incarnation).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Endpoint-wide counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// One connection's counters and estimates.
    pub fn conn_stats(&self, conn: ConnId) -> Option<ConnStats> {
        self.conn(conn).map(|c| c.snapshot(&self.cfg))
    }

    /// The peer address of a connection.
    pub fn peer(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conn(conn).map(|c| c.peer)
    }

    /// Number of connections (any state).
    pub fn connection_count(&self) -> usize {
        self.n_conns
    }

    /// Bytes of received messages held (reassembling, or queued as
    /// events). Never above `Config::recv_budget`.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Events not yet taken by `poll_event`.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Bytes accepted by `send` on `conn` and not yet acked.
    pub fn unacked_bytes(&self, conn: ConnId) -> Option<usize> {
        self.conn(conn).map(|c| c.unacked_bytes)
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns
            .get(id.index())?
            .as_ref()
            .filter(|c| c.id == id.0)
    }

    fn conn_mut(&mut self, id: u64) -> Option<&mut Conn> {
        slot(&mut self.conns, id)
    }

    fn alloc(&mut self, peer: SocketAddr, client: bool, now: Instant) -> Option<u64> {
        if self.n_conns >= self.cfg.max_connections {
            return None;
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        let id = (self.rng.u64(1..1 << (64 - INDEX_BITS)) << INDEX_BITS) | idx as u64;
        self.conns[idx] = Some(Conn::new(id, peer, client, &self.cfg, now));
        self.n_conns += 1;
        Some(id)
    }

    /// Opens a connection to `peer`. The handshake (INIT) goes out at the
    /// next `poll_transmit`; [`Event::Connected`] follows when it completes.
    /// Messages may be sent at once: they wait for the handshake.
    pub fn connect(&mut self, peer: SocketAddr, now: Instant) -> Result<ConnId, ConnectError> {
        let id = self
            .alloc(peer, true, now)
            .ok_or(ConnectError::TooManyConnections)?;
        self.stats.connects += 1;
        self.touch(id);
        Ok(ConnId(id))
    }

    /// Queues a message on `conn`. The endpoint keeps it until the peer
    /// acked it (a `Bytes` clone per packet, no copy) or the connection
    /// fails; it never drops an accepted message otherwise.
    pub fn send(&mut self, conn: ConnId, msg: Bytes) -> Result<(), SendError> {
        let cfg = &self.cfg;
        let c = self
            .conns
            .get_mut(conn.index())
            .and_then(|c| c.as_mut())
            .filter(|c| c.id == conn.0);
        let Some(c) = c else {
            return Err(SendError::Closed);
        };
        if !c.accepts_sends() {
            return Err(SendError::Closed);
        }
        let max = c.max_message();
        if msg.len() > max {
            return Err(SendError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        if !c.can_accept(msg.len(), cfg) {
            c.blocked = true;
            c.stats.would_block += 1;
            return Err(SendError::WouldBlock);
        }
        c.queue(msg);
        self.touch(conn.0);
        Ok(())
    }

    /// Closes `conn` in order: messages already accepted are delivered and
    /// acked first, then CLOSE is exchanged and [`Event::Closed`] with
    /// [`CloseReason::Local`] follows. `send` refuses new messages from
    /// now on. A connection still in its handshake closes at once when it
    /// has no message queued; with messages queued it completes the
    /// handshake, delivers them, then closes.
    pub fn close(&mut self, conn: ConnId, _now: Instant) {
        let Some(c) = self.conn_mut(conn.0) else {
            return;
        };
        match c.state {
            State::Connecting | State::AcceptSent if c.unacked_messages() == 0 => {
                let (remote, peer) = (c.remote_id, c.peer);
                if remote != 0 {
                    self.push_ctrl(Ctrl {
                        to: peer,
                        dst: remote,
                        src: conn.0,
                        flags: 0,
                        code: CLOSE_NORMAL,
                    });
                }
                self.remove(conn.0, CloseReason::Local);
            }
            _ => {
                c.close();
                self.touch(conn.0);
            }
        }
    }

    /// Ends `conn` now, without telling the peer (it notices by its idle
    /// timeout): the messages it has not acked are dropped, and
    /// [`Event::Closed`] with [`CloseReason::Aborted`] says how many.
    /// For an ordered close ([`close`](Self::close)) that the peer does
    /// not complete in time.
    pub fn abort(&mut self, conn: ConnId) {
        if let Some(peer) = self.peer(conn) {
            self.remove(conn.0, CloseReason::Aborted { peer });
        }
    }

    /// Messages accepted by `send` on `conn` that the peer has not
    /// acknowledged yet (queued, in flight or partly acked).
    pub fn unacked_messages(&self, conn: ConnId) -> Option<u64> {
        self.conn(conn).map(|c| c.unacked_messages())
    }

    /// Whether INITs from new peers are accepted ([`Config::accept_incoming`]
    /// at first); refused ones are answered with CLOSE (refused). An
    /// endpoint being closed stops accepting.
    pub fn set_accept_incoming(&mut self, accept: bool) {
        self.cfg.accept_incoming = accept;
    }

    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        match self.events.pop_front()? {
            Ev::Public(e) => Some(e),
            Ev::Msg { conn, end, data } => {
                self.held -= data.len();
                if let Some(c) = self.conn_mut(conn.0)
                    && c.on_consumed(end)
                {
                    self.touch(conn.0);
                }
                Some(Event::Message { conn, data })
            }
        }
    }

    /// Handles one received datagram (`bytes`: its UDP payload) from `from`.
    /// Never panics; whatever is dropped is counted in
    /// [`EndpointStats::drops`].
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.rx_datagrams += 1;
        if let Err(r) = self.handle_inner(now, from, bytes, None, 0) {
            self.stats.drops.add(r);
        }
    }

    /// As [`handle_datagram`](Self::handle_datagram), for a datagram the
    /// endpoint may keep: a DATA payload is kept as a slice of `datagram`
    /// (no copy) until its message is delivered, and the message is
    /// delivered as those slices ([`Message::chunks`]).
    ///
    /// Keeping a datagram keeps whatever owns its memory (a device
    /// frame), so the caller says how many more it can lend: `lendable`,
    /// the datagrams it could still hand over now. A message is kept as
    /// fragments only when all its fragments fit in `lendable` minus the
    /// fragments that messages kept earlier still expect; otherwise it is
    /// copied into one buffer as it arrives (as `handle_datagram` does).
    /// Either way a message costs at most one copy.
    pub fn handle_datagram_owned(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &Bytes,
        lendable: usize,
    ) {
        self.stats.rx_datagrams += 1;
        let lendable = lendable.saturating_sub(self.kept_expected);
        if let Err(r) = self.handle_inner(now, from, datagram, Some(datagram), lendable) {
            self.stats.drops.add(r);
        }
    }

    /// `owned`, when given, is `bytes` as a `Bytes` that DATA payloads may
    /// be sliced from.
    fn handle_inner(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        owned: Option<&Bytes>,
        lendable: usize,
    ) -> Result<(), DropReason> {
        if bytes.len() > self.cfg.max_datagram {
            return Err(DropReason::Malformed);
        }
        let p = Packet::new_checked(bytes).map_err(|e| match e {
            WireError::Truncated => DropReason::Truncated,
            WireError::Version(_) => DropReason::UnknownVersion,
            WireError::UnknownKind(_) => DropReason::UnknownKind,
            WireError::Malformed => DropReason::Malformed,
        })?;
        let repr = Repr::parse(&p).map_err(|_| DropReason::Malformed)?;
        match repr {
            Repr::Init { hs, .. } => self.on_init(now, from, hs),
            Repr::Accept {
                dst,
                hs,
                echo_epoch,
                ..
            } => self.on_accept(now, dst, hs, echo_epoch),
            Repr::Close {
                flags,
                dst,
                src,
                code,
            } => self.on_close(now, from, flags, dst, src, code),
            Repr::Data {
                dst,
                hdr,
                payload,
                flags,
            } => {
                self.confirm(now, dst)?;
                let c = slot(&mut self.conns, dst).ok_or(DropReason::UnknownConnection)?;
                if flags & FLAG_ACK_REQUEST != 0 {
                    c.request_ack();
                }
                let r1 = c.on_ack(now, hdr.ack, hdr.credit, &[], &self.cfg);
                let events = &mut self.events;
                let conn = ConnId(dst);
                let mut deliver = |d: Delivered| {
                    events.push_back(Ev::Msg {
                        conn,
                        end: d.end,
                        data: d.data,
                    })
                };
                let mut sh = Shared {
                    cfg: &self.cfg,
                    held: &mut self.held,
                    kept_expected: &mut self.kept_expected,
                    lendable,
                    deliver: &mut deliver,
                };
                let kept;
                let payload = match owned {
                    Some(d) => {
                        kept = d.slice_ref(payload);
                        Payload::Owned(&kept)
                    }
                    None => Payload::Borrowed(payload),
                };
                let r2 = c.on_data(&hdr, payload, &mut sh);
                self.after_packet(dst, r1.and(r2))
            }
            Repr::Ack { dst, ack, flags } => {
                self.confirm(now, dst)?;
                let c = slot(&mut self.conns, dst).ok_or(DropReason::UnknownConnection)?;
                if flags & FLAG_ACK_REQUEST != 0 {
                    c.request_ack();
                }
                let r = c.on_ack(
                    now,
                    ack.ack,
                    ack.credit,
                    &ack.sack[..ack.sack_len as usize],
                    &self.cfg,
                );
                self.after_packet(dst, r)
            }
        }
    }

    /// After a DATA or ACK: writable events, protocol violations, timers.
    fn after_packet(&mut self, id: u64, r: Result<(), DropReason>) -> Result<(), DropReason> {
        if r == Err(DropReason::ProtocolViolation) {
            self.violation(id);
            return r;
        }
        let half = self.cfg.send_buffer / 2;
        if let Some(c) = self.conn_mut(id)
            && c.blocked
            && c.unacked_bytes <= half
        {
            c.blocked = false;
            self.events
                .push_back(Ev::Public(Event::Writable { conn: ConnId(id) }));
        }
        self.touch(id);
        r
    }

    fn violation(&mut self, id: u64) {
        if let Some(c) = self.conn_mut(id) {
            let ctrl = Ctrl {
                to: c.peer,
                dst: c.remote_id,
                src: id,
                flags: 0,
                code: CLOSE_PROTOCOL,
            };
            let peer = c.peer;
            self.push_ctrl(ctrl);
            self.remove(id, CloseReason::ProtocolViolation { peer });
        }
    }

    /// Looks up the connection a packet is for; a server connection's first
    /// packet from the client completes the handshake.
    fn confirm(&mut self, now: Instant, dst: u64) -> Result<(), DropReason> {
        let c = self.conn_mut(dst).ok_or(DropReason::UnknownConnection)?;
        match c.state {
            State::Connecting => return Err(DropReason::UnexpectedState),
            State::AcceptSent => {
                c.establish(now);
                let (peer, epoch) = (c.peer, c.remote_epoch);
                self.stats.accepts += 1;
                self.events.push_back(Ev::Public(Event::Accepted {
                    conn: ConnId(dst),
                    peer,
                }));
                self.note_epoch(peer, epoch);
            }
            _ => {}
        }
        let c = self.conn_mut(dst).ok_or(DropReason::UnknownConnection)?;
        c.last_recv = now;
        c.stats.packets_received += 1;
        Ok(())
    }

    /// Records the epoch of the endpoint at `peer`; connections to an older
    /// incarnation fail with `PeerRestarted`.
    fn note_epoch(&mut self, peer: SocketAddr, epoch: u64) {
        match self.peer_epochs.insert(peer, epoch) {
            Some(old) if old != epoch => {}
            _ => return,
        }
        let stale: Vec<u64> = self
            .conns
            .iter()
            .flatten()
            .filter(|c| c.peer == peer && c.remote_epoch != epoch && c.is_open())
            .map(|c| c.id)
            .collect();
        for id in stale {
            self.stats.peer_restarts += 1;
            self.remove(id, CloseReason::PeerRestarted { peer });
        }
    }

    fn on_init(&mut self, now: Instant, from: SocketAddr, hs: Handshake) -> Result<(), DropReason> {
        if hs.recv_window > MAX_WINDOW {
            return Err(DropReason::Malformed);
        }
        if let Some(&id) = self.by_remote.get(&(hs.epoch, hs.src_conn)) {
            // A retransmitted INIT: answer again while not yet confirmed.
            let c = self.conn_mut(id).ok_or(DropReason::UnknownConnection)?;
            if c.state != State::AcceptSent {
                return Err(DropReason::Duplicate);
            }
            c.resend_handshake();
            c.last_recv = now;
            self.touch(id);
            return Err(DropReason::Duplicate);
        }
        let refuse = Ctrl {
            to: from,
            dst: hs.src_conn,
            src: 0,
            flags: 0,
            code: CLOSE_REFUSED,
        };
        if !self.cfg.accept_incoming {
            self.push_ctrl(refuse);
            return Err(DropReason::NotAccepting);
        }
        let Some(id) = self.alloc(from, false, now) else {
            self.push_ctrl(refuse);
            return Err(DropReason::TooManyConnections);
        };
        let c = slot(&mut self.conns, id).ok_or(DropReason::UnknownConnection)?;
        c.set_remote(&hs, &self.cfg);
        self.by_remote.insert((hs.epoch, hs.src_conn), id);
        self.touch(id);
        Ok(())
    }

    fn on_accept(
        &mut self,
        now: Instant,
        dst: u64,
        hs: Handshake,
        echo: u64,
    ) -> Result<(), DropReason> {
        if hs.recv_window > MAX_WINDOW {
            return Err(DropReason::Malformed);
        }
        let epoch = self.epoch;
        let cfg = &self.cfg;
        let c = slot(&mut self.conns, dst).ok_or(DropReason::UnknownConnection)?;
        match c.state {
            State::Connecting => {
                if echo != epoch {
                    return Err(DropReason::UnexpectedState);
                }
                c.last_recv = now;
                c.stats.packets_received += 1;
                let fits = c.set_remote(&hs, cfg);
                c.establish(now);
                c.request_ack();
                let peer = c.peer;
                if !fits {
                    self.remove(dst, CloseReason::PeerLimits { peer });
                    return Ok(());
                }
                self.events.push_back(Ev::Public(Event::Connected {
                    conn: ConnId(dst),
                    peer,
                }));
                self.note_epoch(peer, hs.epoch);
                self.touch(dst);
                Ok(())
            }
            _ if c.remote_id == hs.src_conn && c.remote_epoch == hs.epoch => {
                // Our confirmation was lost: confirm again.
                c.last_recv = now;
                c.request_ack();
                self.touch(dst);
                Err(DropReason::Duplicate)
            }
            _ => Err(DropReason::UnexpectedState),
        }
    }

    fn on_close(
        &mut self,
        now: Instant,
        from: SocketAddr,
        flags: u16,
        dst: u64,
        src: u64,
        code: u32,
    ) -> Result<(), DropReason> {
        let reply = flags & FLAG_CLOSE_REPLY != 0;
        let Some(c) = self.conn_mut(dst) else {
            // We forgot the connection (our close completed): answer so the
            // peer stops retrying.
            if !reply && src != 0 {
                self.push_ctrl(Ctrl {
                    to: from,
                    dst: src,
                    src: dst,
                    flags: FLAG_CLOSE_REPLY,
                    code: CLOSE_NORMAL,
                });
            }
            return Err(DropReason::UnknownConnection);
        };
        if c.state == State::Connecting && code != CLOSE_REFUSED {
            return Err(DropReason::UnexpectedState);
        }
        if c.state != State::Connecting && src != c.remote_id {
            return Err(DropReason::UnexpectedState);
        }
        c.last_recv = now;
        let peer = c.peer;
        let state = c.state;
        if !reply {
            let remote = if src != 0 { src } else { c.remote_id };
            if remote != 0 && state != State::Connecting {
                self.push_ctrl(Ctrl {
                    to: peer,
                    dst: remote,
                    src: dst,
                    flags: FLAG_CLOSE_REPLY,
                    code: CLOSE_NORMAL,
                });
            }
        }
        let reason = match (state, code) {
            (State::Closing, _) => CloseReason::Local,
            (_, CLOSE_REFUSED) => CloseReason::Refused { peer },
            (_, CLOSE_PROTOCOL) => CloseReason::ProtocolViolation { peer },
            _ => CloseReason::PeerClosed { peer },
        };
        self.remove(dst, reason);
        Ok(())
    }

    fn push_ctrl(&mut self, c: Ctrl) {
        if self.ctrl.len() >= CTRL_QUEUE {
            self.stats.drops.add(DropReason::ControlQueueFull);
        } else {
            self.ctrl.push_back(c);
        }
    }

    fn remove(&mut self, id: u64, reason: CloseReason) {
        let idx = (id & INDEX_MASK) as usize;
        let Some(c) = self
            .conns
            .get_mut(idx)
            .and_then(|c| c.take_if(|c| c.id == id))
        else {
            return;
        };
        let unacked_messages = c.unacked_messages();
        self.held -= c.reasm_bytes;
        self.kept_expected -= c.reasm_kept_expected;
        self.by_remote.remove(&(c.remote_epoch, c.remote_id));
        self.free.push(idx);
        self.n_conns -= 1;
        if c.state == State::AcceptSent {
            // Never announced (the client did not confirm: a stale or
            // spoofed INIT, or a client that went away): no event.
            self.stats.half_open_expired += 1;
            return;
        }
        if let CloseReason::TimedOut { .. } = reason {
            self.stats.timeouts += 1;
        }
        self.events.push_back(Ev::Public(Event::Closed {
            conn: ConnId(id),
            reason,
            unacked_messages,
        }));
    }

    /// After a change on a connection: schedule it for transmission and
    /// re-arm its timer if its deadline moved earlier.
    fn touch(&mut self, id: u64) {
        self.schedule(id);
        self.arm(id);
    }

    fn schedule(&mut self, id: u64) {
        let Some(c) = slot(&mut self.conns, id) else {
            return;
        };
        if !c.in_ready {
            c.in_ready = true;
            self.ready.push_back(id);
        }
    }

    fn arm(&mut self, id: u64) {
        let cfg = &self.cfg;
        let Some(c) = slot(&mut self.conns, id) else {
            return;
        };
        if let Some(d) = c.deadline(cfg)
            && c.armed.is_none_or(|a| d < a)
        {
            c.armed = Some(d);
            self.timers.push(Reverse((d, id)));
        }
    }

    /// Writes the next datagram to send into `out` (at least
    /// `Config::max_datagram` bytes: a device frame's payload area or a
    /// socket buffer). Call until it returns `None` after every batch of
    /// `handle_datagram`, `send`, `poll_event` and `handle_timeout`: acks
    /// are coalesced per batch.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        self.next_transmit(now, out, false)
    }

    /// Like [`poll_transmit`](Self::poll_transmit), but holds back ACKs
    /// that would go alone (without SACK, which fast retransmit needs):
    /// they stay pending and ride on the next DATA packet to that peer, or
    /// go with the next call of `poll_transmit`. A driver calls this right
    /// after handing received messages to an application that may answer
    /// at once (a request/response exchange): the answer then carries the
    /// ACK, and a round trip takes two datagrams instead of four. It must
    /// call `poll_transmit` soon after (once the application had its turn)
    /// so that held ACKs do not wait for a timer.
    pub fn poll_transmit_holding_acks(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        self.next_transmit(now, out, true)
    }

    /// Whether an ACK is pending on some connection (held back by
    /// [`poll_transmit_holding_acks`](Self::poll_transmit_holding_acks), or
    /// not transmitted yet).
    pub fn has_pending_acks(&self) -> bool {
        self.ready
            .iter()
            .any(|&id| slot_ref(&self.conns, id).is_some_and(|c| c.ack_pending()))
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) may have a
    /// datagram to write: when `false` it has none, and a caller can skip
    /// lending it a buffer.
    pub fn wants_transmit(&self) -> bool {
        !self.ctrl.is_empty() || !self.ready.is_empty()
    }

    fn next_transmit(&mut self, now: Instant, out: &mut [u8], hold_acks: bool) -> Option<Transmit> {
        if out.len() < self.cfg.max_datagram {
            self.stats.tx_buffer_too_small += 1;
            return None;
        }
        if let Some(c) = self.ctrl.pop_front() {
            let r = Repr::Close {
                flags: c.flags,
                dst: c.dst,
                src: c.src,
                code: c.code,
            };
            let len = r.emit(out)?;
            self.stats.tx_datagrams += 1;
            return Some(Transmit { to: c.to, len });
        }
        // Connections holding an ACK back stay queued, after this call.
        while let Some(id) = self.ready.pop_front() {
            let (cfg, epoch) = (&self.cfg, self.epoch);
            let Some(c) = slot(&mut self.conns, id) else {
                continue;
            };
            c.in_ready = false;
            let sent = c.transmit(now, out, cfg, epoch, hold_acks);
            let to = c.peer;
            let held = sent.is_none() && hold_acks && c.ack_pending();
            let more = c.may_transmit();
            self.arm(id);
            // A connection with nothing to send leaves the queue; whatever
            // gives it something again (ack, timer, send) schedules it.
            if let Some(len) = sent {
                if more {
                    self.schedule(id);
                }
                self.requeue_held();
                self.stats.tx_datagrams += 1;
                return Some(Transmit { to, len });
            }
            if held {
                // Kept aside (not pushed back yet, or this loop would
                // meet it again).
                self.holding_ack.push(id);
            }
        }
        self.requeue_held();
        None
    }

    /// Puts the connections that held an ACK back into the ready queue.
    fn requeue_held(&mut self) {
        let mut held = std::mem::take(&mut self.holding_ack);
        for &id in &held {
            self.schedule(id);
        }
        held.clear();
        self.holding_ack = held;
    }

    /// The earliest time `handle_timeout` has work, if any connection has a
    /// timer.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        loop {
            let &Reverse((t, id)) = self.timers.peek()?;
            let cfg = &self.cfg;
            let Some(c) = slot(&mut self.conns, id) else {
                self.timers.pop();
                continue;
            };
            if c.armed != Some(t) {
                self.timers.pop();
                continue;
            }
            let d = c.deadline(cfg);
            if d == Some(t) || d.is_some_and(|d| d < t) {
                return d;
            }
            self.timers.pop();
            c.armed = d;
            if let Some(d) = d {
                self.timers.push(Reverse((d, id)));
            }
        }
    }

    /// A time no later than [`poll_timeout`](Self::poll_timeout)'s, read
    /// without recomputing any connection's deadline (the earliest armed
    /// timer: a deadline that moved later since stays armed earlier).
    /// For a driver deciding cheaply whether its own timer, armed for
    /// `t`, must move: only when this is before `t`.
    pub fn timer_hint(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Runs the timers due at `now`: retransmissions, keepalives, credit
    /// probes, handshake retries, idle timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Every timer moves past `now` when it runs; the bound only guards
        // against a bug turning this loop into a spin.
        let mut budget = self.timers.len() * 2 + 16;
        while let Some(t) = self.poll_timeout() {
            if t > now || budget == 0 {
                break;
            }
            budget -= 1;
            let Some(Reverse((_, id))) = self.timers.pop() else {
                break;
            };
            let cfg = &self.cfg;
            let Some(c) = slot(&mut self.conns, id) else {
                continue;
            };
            c.armed = None;
            match c.on_timeout(now, cfg) {
                Err(()) => {
                    let peer = c.peer;
                    self.remove(id, CloseReason::TimedOut { peer });
                }
                Ok(true) => self.remove(id, CloseReason::Local),
                Ok(false) => {
                    debug_assert!(
                        c.deadline(cfg).is_none_or(|d| d > now),
                        "timer did not move"
                    );
                    self.touch(id);
                }
            }
        }
    }
}
