//! One connection's state machine: sender (queue, in-flight window, SACK
//! scoreboard, loss detection, RTT, congestion window) and receiver
//! (received bitmap, reassembly, in-order delivery, credit).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bitring::BitRing;
use crate::config::{Config, packets_for};
use crate::message::Message;
use crate::stats::{ConnStats, DropReason};
use crate::wire::{
    AckRepr, CLOSE_NORMAL, DataHeader, FLAG_ACK_REQUEST, Handshake, MAX_SACK_WORDS, Repr,
};

/// Bytes charged to the send buffer per message on top of its length, so
/// that empty messages are bounded too.
pub(crate) const MSG_OVERHEAD: usize = 64;
/// Most consecutive backoffs of the retransmission timer.
const MAX_BACKOFF: u32 = 16;
/// CLOSE packets sent before giving up on the peer's reply.
const CLOSE_TRIES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Client: INIT sent, waiting for ACCEPT.
    Connecting,
    /// Server: ACCEPT sent, waiting for the client's first packet.
    AcceptSent,
    Established,
    /// `close` called: no more sends; flushing queued data.
    Draining,
    /// CLOSE sent, waiting for the reply.
    Closing,
}

struct SentPkt {
    data: Bytes,
    msg_seq: u32,
    msg_len: u32,
    frag_index: u32,
    frag_count: u32,
    sent_at: Instant,
    retransmitted: bool,
    in_flight: bool,
    lost: bool,
}

/// A retransmission timeout whose cause is not known yet: the first ACK
/// that brings news after it tells a late ACK (spurious timeout: undo)
/// from a lost packet (recover the rest of the window).
struct RtoEpisode {
    /// The first unacknowledged packet at the timeout: the one probe
    /// retransmitted.
    probe: u64,
    /// `snd_nxt` at the timeout: packets below it were sent before.
    high: u64,
    /// When the timeout fired: packets sent since are retransmissions.
    at: Instant,
    /// The congestion state before the timeout, restored if it turns out
    /// spurious; `None` when a SACK hole already showed a loss.
    undo: Option<CongestionState>,
}

/// What a spurious timeout's undo restores.
#[derive(Clone, Copy)]
struct CongestionState {
    cwnd: u32,
    cwnd_acc: u32,
    ssthresh: u32,
    recovery_end: u64,
}

struct OutMsg {
    seq: u32,
    data: Bytes,
    next_frag: u32,
    count: u32,
}

struct Reasm {
    end: u64,
    msg_seq: u32,
    count: u32,
    remaining: u32,
    len: usize,
    parts: Parts,
}

/// A message being reassembled: copied into one buffer (its first fragment
/// came borrowed), or kept as the received fragments (it came owned: no
/// copy).
enum Parts {
    Contiguous(Vec<u8>),
    Fragments(Vec<Bytes>),
}

impl Parts {
    fn put(&mut self, index: u32, offset: usize, payload: Payload<'_>) {
        match (self, payload) {
            (Parts::Contiguous(buf), p) => {
                let p = p.as_slice();
                buf[offset..offset + p.len()].copy_from_slice(p);
            }
            (Parts::Fragments(frags), Payload::Owned(b)) => frags[index as usize] = b.clone(),
            (Parts::Fragments(frags), Payload::Borrowed(p)) => {
                frags[index as usize] = Bytes::copy_from_slice(p)
            }
        }
    }

    fn into_message(self) -> Message {
        match self {
            Parts::Contiguous(buf) => Message::copied(Bytes::from(buf)),
            Parts::Fragments(frags) => Message::from_chunks(frags),
        }
    }
}

/// A DATA packet's payload: borrowed from the caller's datagram (copied
/// when kept) or a `Bytes` of a datagram the endpoint may keep (no copy).
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(&'a Bytes),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(p) => p,
            Payload::Owned(b) => b,
        }
    }
}

/// A message ready for the application, with what the endpoint needs to
/// return its credit when the application takes it.
pub(crate) struct Delivered {
    pub end: u64,
    pub data: Message,
}

/// Endpoint-wide state a connection updates.
pub(crate) struct Shared<'a> {
    pub cfg: &'a Config,
    pub held: &'a mut usize,
    /// Fragments that messages being kept as fragments still expect, all
    /// connections (each will keep a datagram when it comes).
    pub kept_expected: &'a mut usize,
    /// Datagrams the caller can still lend beyond those: a message is
    /// kept as fragments only when all of its fragments fit.
    pub lendable: usize,
    pub deliver: &'a mut dyn FnMut(Delivered),
}

/// Maps a 32-bit wire sequence number to the 64-bit one nearest `base`.
#[inline]
pub(crate) fn unwrap_seq(base: u64, wire: u32) -> Option<u64> {
    let diff = wire.wrapping_sub(base as u32) as i32 as i64;
    base.checked_add_signed(diff)
}

pub(crate) struct Conn {
    pub id: u64,
    pub remote_id: u64,
    pub peer: SocketAddr,
    pub remote_epoch: u64,
    pub state: State,
    pub armed: Option<Instant>,
    pub in_ready: bool,
    /// `send` returned WouldBlock since the last Writable event.
    pub blocked: bool,
    pub stats: ConnStats,

    frag: usize,
    send_max_message: usize,
    peer_window: u32,
    created: Instant,

    hs_due: bool,
    hs_sent_at: Option<Instant>,
    hs_tries: u32,
    close_due: bool,
    /// `close` came during the handshake with messages queued: the
    /// connection drains them once established, then closes.
    close_requested: bool,
    close_sent_at: Option<Instant>,
    close_tries: u32,
    ping_due: bool,
    last_ping: Option<Instant>,
    last_probe: Option<Instant>,

    send_queue: VecDeque<OutMsg>,
    next_msg_seq: u32,
    pub unacked_bytes: usize,
    snd_una: u64,
    snd_nxt: u64,
    sent: VecDeque<SentPkt>,
    sacked: BitRing,
    highest_sacked: u64,
    loss_scan: u64,
    retx: VecDeque<u64>,
    in_flight: u32,
    credit_limit: u64,
    cwnd: u32,
    cwnd_acc: u32,
    ssthresh: u32,
    recovery_end: u64,
    /// The retransmission timeout awaiting the ACK that explains it.
    rto_episode: Option<RtoEpisode>,
    /// The timeout's probe may go out beyond the congestion window (which
    /// the timeout shrank below what is still in flight).
    probe_due: bool,
    srtt: Duration,
    rttvar: Duration,
    has_rtt: bool,
    backoff: u32,
    last_progress: Instant,

    rcv_next: u64,
    delivered_end: u64,
    consumed: u64,
    window: u32,
    received: BitRing,
    highest_received: u64,
    reasm: BTreeMap<u64, Reasm>,
    pub reasm_bytes: usize,
    /// Fragments still expected by this connection's messages kept as
    /// fragments (part of the endpoint's `kept_expected`).
    pub reasm_kept_expected: usize,
    next_recv_seq: u32,
    ack_pending: bool,
    last_adv_limit: u64,
    pub last_recv: Instant,
}

impl Conn {
    pub(crate) fn new(id: u64, peer: SocketAddr, client: bool, cfg: &Config, now: Instant) -> Conn {
        let window = cfg.recv_window;
        Conn {
            id,
            remote_id: 0,
            peer,
            remote_epoch: 0,
            state: if client {
                State::Connecting
            } else {
                State::AcceptSent
            },
            armed: None,
            in_ready: false,
            blocked: false,
            stats: ConnStats::default(),
            frag: cfg.max_payload(),
            send_max_message: cfg.max_message,
            peer_window: 0,
            created: now,
            hs_due: true,
            hs_sent_at: None,
            hs_tries: 0,
            close_due: false,
            close_requested: false,
            close_sent_at: None,
            close_tries: 0,
            ping_due: false,
            last_ping: None,
            last_probe: None,
            send_queue: VecDeque::new(),
            next_msg_seq: 0,
            unacked_bytes: 0,
            snd_una: 0,
            snd_nxt: 0,
            sent: VecDeque::new(),
            sacked: BitRing::new(128),
            highest_sacked: 0,
            loss_scan: 0,
            retx: VecDeque::new(),
            in_flight: 0,
            credit_limit: 0,
            cwnd: cfg.initial_cwnd,
            cwnd_acc: 0,
            ssthresh: u32::MAX,
            recovery_end: 0,
            rto_episode: None,
            probe_due: false,
            srtt: Duration::ZERO,
            rttvar: Duration::ZERO,
            has_rtt: false,
            backoff: 0,
            last_progress: now,
            rcv_next: 0,
            delivered_end: 0,
            consumed: 0,
            window,
            received: BitRing::new(window as u64 + 64 * (MAX_SACK_WORDS as u64 + 1)),
            highest_received: 0,
            reasm: BTreeMap::new(),
            reasm_bytes: 0,
            reasm_kept_expected: 0,
            next_recv_seq: 0,
            ack_pending: false,
            last_adv_limit: window as u64,
            last_recv: now,
        }
    }

    /// Takes the peer's handshake parameters. Returns false when a message
    /// already queued exceeds what the peer accepts.
    pub(crate) fn set_remote(&mut self, hs: &Handshake, cfg: &Config) -> bool {
        self.remote_id = hs.src_conn;
        self.remote_epoch = hs.epoch;
        self.frag = cfg.max_payload().min(hs.max_payload as usize);
        self.peer_window = hs.recv_window;
        self.credit_limit = hs.recv_window as u64;
        self.sacked = BitRing::new(hs.recv_window as u64 + 64 * (MAX_SACK_WORDS as u64 + 1));
        let by_window = (hs.recv_window as usize).saturating_mul(self.frag);
        self.send_max_message = cfg.max_message.min(hs.max_message as usize).min(by_window);
        self.send_queue
            .iter()
            .all(|m| m.data.len() <= self.send_max_message)
    }

    pub(crate) fn handshake(&self, cfg: &Config, epoch: u64) -> Handshake {
        Handshake {
            src_conn: self.id,
            epoch,
            max_payload: cfg.max_payload() as u16,
            recv_window: self.window,
            max_message: cfg.max_message as u32,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(
            self.state,
            State::Established | State::Draining | State::Closing
        )
    }

    /// Marks the connection established (client: ACCEPT received; server:
    /// the client confirmed). The handshake's round trip is the first RTT
    /// sample when it was not retransmitted (Karn).
    pub(crate) fn establish(&mut self, now: Instant) {
        if self.hs_tries == 1
            && let Some(t) = self.hs_sent_at
        {
            self.on_rtt_sample(now.saturating_duration_since(t));
        }
        self.state = State::Established;
        self.hs_due = false;
        self.backoff = 0;
        if self.close_requested {
            self.close();
        }
    }

    pub(crate) fn resend_handshake(&mut self) {
        self.hs_due = true;
    }

    pub(crate) fn request_ack(&mut self) {
        self.ack_pending = true;
    }

    // ----- sending -----

    pub(crate) fn max_message(&self) -> usize {
        self.send_max_message
    }

    pub(crate) fn can_accept(&self, len: usize, cfg: &Config) -> bool {
        self.unacked_bytes == 0 || self.unacked_bytes + len + MSG_OVERHEAD <= cfg.send_buffer
    }

    pub(crate) fn queue(&mut self, data: Bytes) {
        self.unacked_bytes += data.len() + MSG_OVERHEAD;
        let seq = self.next_msg_seq;
        self.next_msg_seq = seq.wrapping_add(1);
        self.send_queue.push_back(OutMsg {
            seq,
            data,
            next_frag: 0,
            count: 0,
        });
        self.stats.messages_sent += 1;
    }

    /// Starts the ordered close: no more sends; the queued and unacked
    /// messages go out and are acked, then CLOSE. During the handshake
    /// the close waits for it (the messages queued meanwhile go first).
    pub(crate) fn close(&mut self) {
        match self.state {
            State::Established => {
                self.state = State::Draining;
                self.maybe_finish_draining();
            }
            State::Connecting | State::AcceptSent => self.close_requested = true,
            State::Draining | State::Closing => {}
        }
    }

    /// Whether `send` may queue a message (not closing).
    pub(crate) fn accepts_sends(&self) -> bool {
        matches!(
            self.state,
            State::Connecting | State::AcceptSent | State::Established
        ) && !self.close_requested
    }

    /// Messages accepted by `send` that the peer has not acked entirely
    /// (queued, in flight, or partly acked): those lost if the
    /// connection ends now.
    pub(crate) fn unacked_messages(&self) -> u64 {
        // Messages are sent in order, so the oldest unacked one is the
        // first unacked packet's, else the first queued one.
        let oldest = self
            .sent
            .front()
            .map(|p| p.msg_seq)
            .or_else(|| self.send_queue.front().map(|m| m.seq))
            .unwrap_or(self.next_msg_seq);
        u64::from(self.next_msg_seq.wrapping_sub(oldest))
    }

    fn maybe_finish_draining(&mut self) {
        if self.state == State::Draining
            && self.send_queue.is_empty()
            && self.snd_una == self.snd_nxt
        {
            self.state = State::Closing;
            self.close_due = true;
        }
    }

    /// Whether the queue head waits for credit with nothing in flight.
    fn credit_blocked(&self) -> bool {
        match self.send_queue.front() {
            Some(m) if m.next_frag == 0 => {
                let count = packets_for(m.data.len(), self.frag) as u64;
                self.snd_nxt + count > self.credit_limit
            }
            Some(_) => self.snd_nxt >= self.credit_limit,
            None => false,
        }
    }

    fn rto(&self, cfg: &Config) -> Duration {
        let base = if self.has_rtt {
            (self.srtt + 4 * self.rttvar).max(cfg.rto_min)
        } else {
            cfg.rto_initial
        };
        base.saturating_mul(1 << self.backoff.min(MAX_BACKOFF))
            .min(cfg.rto_max)
    }

    fn on_rtt_sample(&mut self, r: Duration) {
        if !self.has_rtt {
            self.srtt = r;
            self.rttvar = r / 2;
            self.has_rtt = true;
        } else {
            let diff = self.srtt.abs_diff(r);
            self.rttvar = (self.rttvar * 3 + diff) / 4;
            self.srtt = (self.srtt * 7 + r) / 8;
        }
    }

    fn ack_fields(&mut self) -> (u32, u32) {
        let limit = self.consumed + self.window as u64;
        self.last_adv_limit = limit;
        (self.rcv_next as u32, limit as u32)
    }

    fn sack_needed(&self) -> bool {
        self.highest_received > self.rcv_next + 1
    }

    fn build_ack(&mut self, flags: u16) -> Repr<'static> {
        let (ack, credit) = self.ack_fields();
        let mut sack = [0u64; MAX_SACK_WORDS];
        let mut n = 0;
        if self.sack_needed() {
            let base = self.rcv_next + 1;
            let span = self.highest_received - base;
            n = (span.div_ceil(64) as usize).min(MAX_SACK_WORDS);
            for (k, w) in sack.iter_mut().enumerate().take(n) {
                *w = self.received.word_at(base + 64 * k as u64);
            }
        }
        self.ack_pending = false;
        Repr::Ack {
            flags,
            dst: self.remote_id,
            ack: AckRepr {
                ack,
                credit,
                sack_len: n as u8,
                sack,
            },
        }
    }

    /// Writes the next datagram of this connection into `out`.
    /// The next packet of this connection. With `hold_ack`, a pure ACK
    /// (one that carries no SACK) is not sent: it stays pending, to ride on
    /// the next DATA packet (see `Endpoint::poll_transmit_holding_acks`).
    pub(crate) fn transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
        cfg: &Config,
        epoch: u64,
        hold_ack: bool,
    ) -> Option<usize> {
        let len = self.next_packet(now, out, cfg, epoch, hold_ack)?;
        self.stats.packets_sent += 1;
        Some(len)
    }

    /// Whether an ACK is waiting to be sent (alone or on a DATA packet).
    pub(crate) fn ack_pending(&self) -> bool {
        self.ack_pending
    }

    /// Whether `transmit` may have another packet: `false` only when it
    /// has none (no handshake, close, ACK, ping, retransmission or queued
    /// message is due), so the endpoint need not ask it again until
    /// something touches it.
    pub(crate) fn may_transmit(&self) -> bool {
        self.hs_due
            || self.close_due
            || self.ack_pending
            || self.ping_due
            || !self.retx.is_empty()
            || !self.send_queue.is_empty()
    }

    fn next_packet(
        &mut self,
        now: Instant,
        out: &mut [u8],
        cfg: &Config,
        epoch: u64,
        hold_ack: bool,
    ) -> Option<usize> {
        match self.state {
            State::Connecting => {
                if !self.hs_due {
                    return None;
                }
                self.hs_due = false;
                self.hs_sent_at = Some(now);
                self.hs_tries += 1;
                let hs = self.handshake(cfg, epoch);
                return Repr::Init { flags: 0, hs }.emit(out);
            }
            State::AcceptSent => {
                if !self.hs_due {
                    return None;
                }
                self.hs_due = false;
                self.hs_sent_at = Some(now);
                self.hs_tries += 1;
                let hs = self.handshake(cfg, epoch);
                let r = Repr::Accept {
                    flags: 0,
                    dst: self.remote_id,
                    hs,
                    echo_epoch: self.remote_epoch,
                };
                return r.emit(out);
            }
            State::Closing if self.close_due => {
                // What we received is acked first: a CLOSE that overtook
                // that ACK would make the peer's last messages look lost
                // (unacked when its connection ends).
                if self.ack_pending {
                    self.stats.acks_sent += 1;
                    return self.build_ack(0).emit(out);
                }
                self.close_due = false;
                self.close_sent_at = Some(now);
                self.close_tries += 1;
                let r = Repr::Close {
                    flags: 0,
                    dst: self.remote_id,
                    src: self.id,
                    code: CLOSE_NORMAL,
                };
                return r.emit(out);
            }
            _ => {}
        }
        // An ACK carrying SACK goes before data: fast retransmit depends on it.
        if self.ack_pending && self.sack_needed() {
            self.stats.acks_sent += 1;
            return self.build_ack(0).emit(out);
        }
        while let Some(&dsn) = self.retx.front() {
            if dsn < self.snd_una || !self.sent[(dsn - self.snd_una) as usize].lost {
                self.retx.pop_front();
                continue;
            }
            if self.in_flight >= self.cwnd && !self.probe_due {
                break;
            }
            self.retx.pop_front();
            self.probe_due = false;
            self.stats.retransmitted += 1;
            return Some(self.emit_data(dsn, now, out));
        }
        if matches!(self.state, State::Established | State::Draining)
            && self.in_flight < self.cwnd
            && !self.credit_blocked()
            && let Some(m) = self.send_queue.front_mut()
        {
            if m.next_frag == 0 {
                m.count = packets_for(m.data.len(), self.frag);
            }
            let i = m.next_frag;
            let start = i as usize * self.frag;
            let end = (start + self.frag).min(m.data.len());
            let pkt = SentPkt {
                data: m.data.slice(start..end),
                msg_seq: m.seq,
                msg_len: m.data.len() as u32,
                frag_index: i,
                frag_count: m.count,
                sent_at: now,
                retransmitted: false,
                in_flight: false,
                lost: false,
            };
            m.next_frag += 1;
            if m.next_frag == m.count {
                self.send_queue.pop_front();
            }
            if self.snd_una == self.snd_nxt {
                self.last_progress = now;
            }
            let dsn = self.snd_nxt;
            self.sent.push_back(pkt);
            self.snd_nxt += 1;
            self.stats.data_sent += 1;
            return Some(self.emit_data(dsn, now, out));
        }
        if (self.ack_pending && !hold_ack) || self.ping_due {
            let flags = if self.ping_due { FLAG_ACK_REQUEST } else { 0 };
            if self.ping_due {
                self.stats.pings_sent += 1;
            } else {
                self.stats.acks_sent += 1;
            }
            self.ping_due = false;
            return self.build_ack(flags).emit(out);
        }
        None
    }

    fn emit_data(&mut self, dsn: u64, now: Instant, out: &mut [u8]) -> usize {
        let (ack, credit) = self.ack_fields();
        self.ack_pending = false;
        let p = &mut self.sent[(dsn - self.snd_una) as usize];
        p.sent_at = now;
        if p.lost {
            p.lost = false;
            p.retransmitted = true;
        }
        p.in_flight = true;
        self.in_flight += 1;
        let hdr = DataHeader {
            dsn: dsn as u32,
            msg_seq: p.msg_seq,
            msg_len: p.msg_len,
            frag_index: p.frag_index,
            frag_count: p.frag_count,
            ack,
            credit,
        };
        // This copy of the payload into the caller's buffer is the one copy
        // of the send path; zero copy would return `p.data` (a `Bytes`) as
        // a second gather segment instead.
        Repr::Data {
            flags: 0,
            dst: self.remote_id,
            hdr,
            payload: &p.data,
        }
        .emit(out)
        .unwrap_or(0)
    }

    // ----- receiving acks -----

    /// Processes a cumulative ack, credit and SACK words.
    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        ack32: u32,
        credit32: u32,
        sack: &[u64],
        cfg: &Config,
    ) -> Result<(), DropReason> {
        let Some(ack) = unwrap_seq(self.snd_una, ack32) else {
            return Ok(());
        };
        if ack > self.snd_nxt {
            return Err(DropReason::AckOfUnsent);
        }
        // The peer cannot have consumed more than it acks: its credit is at
        // most ack + window.
        if let Some(c) = unwrap_seq(self.snd_una, credit32)
            && c > self.credit_limit
            && c <= ack.max(self.snd_una) + self.peer_window as u64
        {
            self.credit_limit = c;
            if self.snd_una == self.snd_nxt {
                self.backoff = 0;
            }
        }
        if ack < self.snd_una {
            return Ok(());
        }
        let mut newly = 0u32;
        let mut sample: Option<Instant> = None;
        let progressed = ack > self.snd_una;
        while self.snd_una < ack {
            let Some(p) = self.sent.pop_front() else {
                break;
            };
            if self.sacked.get(self.snd_una) {
                self.sacked.clear(self.snd_una);
            } else {
                newly += 1;
                if !p.retransmitted {
                    sample = Some(p.sent_at);
                }
            }
            if p.in_flight {
                self.in_flight -= 1;
            }
            self.unacked_bytes -= p.data.len();
            if p.frag_index + 1 == p.frag_count {
                self.unacked_bytes -= MSG_OVERHEAD;
            }
            self.snd_una += 1;
        }
        // SACK: bit j of word k is packet ack + 1 + 64k + j.
        let base = ack + 1;
        for (k, &w) in sack.iter().enumerate() {
            let pos = base + 64 * k as u64;
            if pos >= self.snd_nxt {
                break;
            }
            let valid = self.snd_nxt - pos;
            let w = if valid < 64 {
                w & ((1u64 << valid) - 1)
            } else {
                w
            };
            let mut fresh = w & !self.sacked.word_at(pos);
            while fresh != 0 {
                let dsn = pos + fresh.trailing_zeros() as u64;
                fresh &= fresh - 1;
                self.sacked.set(dsn);
                let p = &mut self.sent[(dsn - self.snd_una) as usize];
                if p.in_flight {
                    self.in_flight -= 1;
                    p.in_flight = false;
                }
                p.lost = false;
                newly += 1;
                if !p.retransmitted && sample.is_none_or(|s| p.sent_at > s) {
                    sample = Some(p.sent_at);
                }
                self.highest_sacked = self.highest_sacked.max(dsn + 1);
            }
        }
        if let Some(t) = sample {
            self.on_rtt_sample(now.saturating_duration_since(t));
        }
        if newly > 0
            && let Some(episode) = self.rto_episode.take()
        {
            self.explain_rto(episode, ack);
        }
        if progressed {
            self.backoff = 0;
            self.last_progress = now;
            self.last_probe = None;
        }
        // Fast retransmit: a packet with `reorder_threshold` packets sacked
        // above it is lost. Each packet is examined once (`loss_scan`).
        let thr = cfg.reorder_threshold as u64;
        if self.highest_sacked > self.snd_una + thr {
            let upto = self.highest_sacked - thr;
            let mut d = self.loss_scan.max(self.snd_una);
            let mut loss = false;
            while d < upto {
                if !self.sacked.get(d) {
                    let p = &mut self.sent[(d - self.snd_una) as usize];
                    if p.in_flight && !p.lost {
                        p.lost = true;
                        p.in_flight = false;
                        self.in_flight -= 1;
                        self.retx.push_back(d);
                        self.stats.fast_retransmits += 1;
                        if d >= self.recovery_end {
                            loss = true;
                        }
                    }
                }
                d += 1;
            }
            self.loss_scan = self.loss_scan.max(upto);
            if loss {
                self.ssthresh = (self.cwnd / 2).max(cfg.min_cwnd);
                self.cwnd = self.ssthresh;
                self.cwnd_acc = 0;
                self.recovery_end = self.snd_nxt;
            }
        }
        // AIMD: slow start below ssthresh, +1 packet per window above;
        // no growth while recovering.
        if newly > 0 && self.snd_una >= self.recovery_end {
            if self.cwnd < self.ssthresh {
                self.cwnd = self.cwnd.saturating_add(newly);
            } else {
                self.cwnd_acc += newly;
                while self.cwnd_acc >= self.cwnd {
                    self.cwnd_acc -= self.cwnd;
                    self.cwnd += 1;
                }
            }
            self.cwnd = self
                .cwnd
                .min(self.peer_window.max(cfg.initial_cwnd))
                .min(cfg.max_cwnd);
        }
        self.maybe_finish_draining();
        Ok(())
    }

    // ----- receiving data -----

    /// Processes a DATA fragment. Delivers completed messages in order.
    pub(crate) fn on_data(
        &mut self,
        hdr: &DataHeader,
        payload: Payload<'_>,
        sh: &mut Shared<'_>,
    ) -> Result<(), DropReason> {
        let Some(dsn) = unwrap_seq(self.rcv_next, hdr.dsn) else {
            self.ack_pending = true;
            self.stats.duplicates += 1;
            return Err(DropReason::Duplicate);
        };
        if dsn < self.rcv_next || self.received.get(dsn) {
            // Our ack may have been lost: say again what we have.
            self.ack_pending = true;
            self.stats.duplicates += 1;
            return Err(DropReason::Duplicate);
        }
        let limit = self.consumed + self.window as u64;
        if dsn >= limit {
            return Err(DropReason::OutOfWindow);
        }
        let msg_len = hdr.msg_len as usize;
        if msg_len > sh.cfg.max_message {
            return Err(DropReason::Malformed);
        }
        let count = packets_for(msg_len, self.frag);
        let idx = hdr.frag_index;
        if hdr.frag_count != count || idx >= count {
            return Err(DropReason::Malformed);
        }
        let offset = idx as usize * self.frag;
        let expect = if idx + 1 == count {
            msg_len - offset
        } else {
            self.frag
        };
        if payload.as_slice().len() != expect {
            return Err(DropReason::Malformed);
        }
        let Some(d0) = dsn.checked_sub(idx as u64) else {
            return Err(DropReason::ProtocolViolation);
        };
        let end = d0 + count as u64;
        if d0 < self.delivered_end {
            return Err(DropReason::ProtocolViolation);
        }
        if end > limit {
            return Err(DropReason::OutOfWindow);
        }
        self.ack_pending = true;
        // Fast path: the next message, in one packet, in order.
        if count == 1
            && dsn == self.delivered_end
            && self.reasm.first_key_value().is_none_or(|(&k, _)| k > dsn)
        {
            if hdr.msg_seq != self.next_recv_seq {
                return Err(DropReason::ProtocolViolation);
            }
            if *sh.held + msg_len > sh.cfg.recv_budget {
                return Err(DropReason::MemoryBudget);
            }
            *sh.held += msg_len;
            self.next_recv_seq = self.next_recv_seq.wrapping_add(1);
            self.rcv_next = dsn + 1;
            self.delivered_end = dsn + 1;
            self.highest_received = self.highest_received.max(dsn + 1);
            self.stats.messages_received += 1;
            (sh.deliver)(Delivered {
                end: dsn + 1,
                data: match payload {
                    Payload::Owned(b) if sh.lendable >= 1 => Message::from(b.clone()),
                    p => Message::copied(Bytes::copy_from_slice(p.as_slice())),
                },
            });
            return self.advance(sh);
        }
        match self.reasm.get_mut(&d0) {
            Some(e) => {
                if e.msg_seq != hdr.msg_seq || e.count != count || e.len != msg_len {
                    return Err(DropReason::ProtocolViolation);
                }
            }
            None => {
                if let Some((_, p)) = self.reasm.range(..d0).next_back()
                    && p.end > d0
                {
                    return Err(DropReason::ProtocolViolation);
                }
                if let Some((&s, _)) = self.reasm.range(d0 + 1..).next()
                    && s < end
                {
                    return Err(DropReason::ProtocolViolation);
                }
                // A message that is not the next to deliver must leave room
                // for one that is (of any connection): otherwise later
                // messages could hold the whole budget while the one they
                // wait for cannot be stored: a deadlock.
                let reserve = if d0 == self.delivered_end {
                    0
                } else {
                    sh.cfg.max_message
                };
                if *sh.held + msg_len + reserve > sh.cfg.recv_budget {
                    return Err(DropReason::MemoryBudget);
                }
                *sh.held += msg_len;
                self.reasm_bytes += msg_len;
                self.reasm.insert(
                    d0,
                    Reasm {
                        end,
                        msg_seq: hdr.msg_seq,
                        count,
                        remaining: count,
                        len: msg_len,
                        // Kept as fragments (no copy) only when every
                        // fragment can be: a message is either never
                        // copied or copied once, into one buffer.
                        parts: match payload {
                            Payload::Owned(_) if count as usize <= sh.lendable => {
                                *sh.kept_expected += count as usize;
                                self.reasm_kept_expected += count as usize;
                                Parts::Fragments(vec![Bytes::new(); count as usize])
                            }
                            _ => Parts::Contiguous(vec![0; msg_len]),
                        },
                    },
                );
            }
        }
        let Some(e) = self.reasm.get_mut(&d0) else {
            return Err(DropReason::ProtocolViolation);
        };
        if matches!(e.parts, Parts::Fragments(_)) {
            *sh.kept_expected -= 1;
            self.reasm_kept_expected -= 1;
        }
        e.parts.put(idx, offset, payload);
        e.remaining -= 1;
        self.received.set(dsn);
        self.highest_received = self.highest_received.max(dsn + 1);
        self.advance(sh)
    }

    /// Moves the cumulative ack over received packets and delivers the
    /// complete messages at the front, in order.
    fn advance(&mut self, sh: &mut Shared<'_>) -> Result<(), DropReason> {
        while self.rcv_next < self.highest_received && self.received.get(self.rcv_next) {
            self.received.clear(self.rcv_next);
            self.rcv_next += 1;
        }
        while let Some(entry) = self.reasm.first_entry() {
            if *entry.key() != self.delivered_end || entry.get().remaining != 0 {
                break;
            }
            let e = entry.remove();
            self.reasm_bytes -= e.len;
            if e.msg_seq != self.next_recv_seq {
                // Keep the memory accounted until the connection is dropped.
                *sh.held -= e.len;
                return Err(DropReason::ProtocolViolation);
            }
            self.next_recv_seq = self.next_recv_seq.wrapping_add(1);
            self.delivered_end = e.end;
            self.stats.messages_received += 1;
            (sh.deliver)(Delivered {
                end: e.end,
                data: e.parts.into_message(),
            });
        }
        Ok(())
    }

    /// The application took a message ending at `end`: its credit returns.
    /// Returns whether an ACK (window update) should go out.
    pub(crate) fn on_consumed(&mut self, end: u64) -> bool {
        if end <= self.consumed {
            return false;
        }
        self.consumed = end;
        let limit = self.consumed + self.window as u64;
        let grown = limit - self.last_adv_limit.min(limit);
        let update = grown > 0
            && (grown >= (self.window as u64 / 4).max(1) || self.consumed >= self.rcv_next);
        if update {
            self.ack_pending = true;
        }
        update
    }

    // ----- timers -----

    pub(crate) fn deadline(&self, cfg: &Config) -> Option<Instant> {
        let rto = self.rto(cfg);
        let mut d = self.last_recv.max(self.created) + cfg.idle_timeout;
        match self.state {
            State::Connecting | State::AcceptSent => {
                if let Some(t) = self.hs_sent_at {
                    d = d.min(t + rto);
                }
            }
            State::Established | State::Draining => {
                if self.snd_nxt > self.snd_una {
                    d = d.min(self.last_progress + rto);
                } else if self.credit_blocked() {
                    let from = self
                        .last_probe
                        .map_or(self.last_progress, |p| p.max(self.last_progress));
                    d = d.min(from + rto);
                }
                let from = self
                    .last_ping
                    .map_or(self.last_recv, |p| p.max(self.last_recv));
                d = d.min(from + cfg.keepalive_interval);
            }
            State::Closing => {
                if let Some(t) = self.close_sent_at {
                    d = d.min(t + rto);
                }
            }
        }
        Some(d)
    }

    /// Runs the timers due at `now`. `Err(())` when the connection failed
    /// (idle timeout) or gave up closing (`Ok(true)`: close complete).
    pub(crate) fn on_timeout(&mut self, now: Instant, cfg: &Config) -> Result<bool, ()> {
        if now >= self.last_recv.max(self.created) + cfg.idle_timeout {
            return if self.state == State::Closing {
                Ok(true)
            } else {
                Err(())
            };
        }
        let rto = self.rto(cfg);
        match self.state {
            State::Connecting | State::AcceptSent => {
                if let Some(t) = self.hs_sent_at
                    && now >= t + rto
                {
                    self.hs_due = true;
                    self.hs_sent_at = Some(now);
                    self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
                }
            }
            State::Established | State::Draining => {
                if self.snd_nxt > self.snd_una {
                    if now >= self.last_progress + rto {
                        self.on_rto(now, cfg);
                    }
                } else if self.credit_blocked() {
                    let from = self
                        .last_probe
                        .map_or(self.last_progress, |p| p.max(self.last_progress));
                    if now >= from + rto {
                        self.ping_due = true;
                        self.last_probe = Some(now);
                        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
                    }
                }
                let from = self
                    .last_ping
                    .map_or(self.last_recv, |p| p.max(self.last_recv));
                if now >= from + cfg.keepalive_interval {
                    self.ping_due = true;
                    self.last_ping = Some(now);
                }
            }
            State::Closing => {
                if let Some(t) = self.close_sent_at
                    && now >= t + rto
                {
                    if self.close_tries >= CLOSE_TRIES {
                        return Ok(true);
                    }
                    self.close_due = true;
                    self.close_sent_at = Some(now);
                    self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
                }
            }
        }
        Ok(false)
    }

    /// Retransmission timeout: the first unacknowledged packet is
    /// retransmitted (one probe, beyond the window if need be), the
    /// window shrinks to `min_cwnd` and the timer backs off. Whether the
    /// rest of the window was lost is left to the first ACK that brings
    /// news ([`explain_rto`](Self::explain_rto)): on a loaded host a
    /// timeout is often only a late ACK, and resending the whole window
    /// then would double the load for nothing.
    fn on_rto(&mut self, now: Instant, cfg: &Config) {
        self.stats.rto_fires += 1;
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
        if self.rto_episode.is_none() {
            // Nothing sacked above the first unacked packet: nothing
            // showed a loss, so an ACK for the original packets can still
            // prove the timeout spurious.
            let undo = (self.highest_sacked <= self.snd_una).then_some(CongestionState {
                cwnd: self.cwnd,
                cwnd_acc: self.cwnd_acc,
                ssthresh: self.ssthresh,
                recovery_end: self.recovery_end,
            });
            self.rto_episode = Some(RtoEpisode {
                probe: self.snd_una,
                high: self.snd_nxt,
                at: now,
                undo,
            });
            self.ssthresh = (self.cwnd / 2).max(cfg.min_cwnd);
            self.cwnd = cfg.min_cwnd;
            self.cwnd_acc = 0;
            self.recovery_end = self.snd_nxt;
        }
        // The probe: the first unacknowledged packet (never sacked: it
        // would be acked), again on every timeout of the episode.
        if let Some(p) = self.sent.front_mut() {
            if !p.lost {
                if p.in_flight {
                    p.in_flight = false;
                    self.in_flight -= 1;
                }
                p.lost = true;
            }
            self.retx.push_front(self.snd_una);
            self.probe_due = true;
        }
        self.last_progress = now;
    }

    /// The first ACK with news after a timeout, cumulative ack `ack`,
    /// says what the timeout was. Spurious when the ACK covers the probe
    /// and packets after it that were sent once, before the timeout, and
    /// no SACK hole had shown a loss: the original packets arrived and
    /// only their ACKs were late (F-RTO's rule, RFC 5682, on SACK
    /// information); the congestion window of before comes back (Eifel's
    /// response, RFC 4015). Otherwise the loss is real: every packet sent
    /// before the timeout and neither acked nor sacked by now is
    /// retransmitted (go-back-N over what is left, in slow start from
    /// `min_cwnd`).
    fn explain_rto(&mut self, episode: RtoEpisode, ack: u64) {
        self.probe_due = false;
        if ack > episode.probe + 1
            && let Some(undo) = episode.undo
        {
            self.stats.spurious_rtos += 1;
            self.cwnd = self.cwnd.max(undo.cwnd);
            self.cwnd_acc = undo.cwnd_acc;
            self.ssthresh = self.ssthresh.max(undo.ssthresh);
            self.recovery_end = undo.recovery_end;
            return;
        }
        for d in self.snd_una..episode.high.min(self.snd_nxt) {
            if self.sacked.get(d) {
                continue;
            }
            let p = &mut self.sent[(d - self.snd_una) as usize];
            if p.in_flight && !p.lost && p.sent_at < episode.at {
                p.in_flight = false;
                p.lost = true;
                self.in_flight -= 1;
                self.retx.push_back(d);
            }
        }
        self.loss_scan = self.loss_scan.max(episode.high);
    }

    pub(crate) fn snapshot(&self, cfg: &Config) -> ConnStats {
        let mut s = self.stats.clone();
        s.srtt = self.srtt;
        s.rttvar = self.rttvar;
        s.rto = self.rto(cfg);
        s.cwnd = self.cwnd;
        s.ssthresh = self.ssthresh;
        s.in_flight = self.in_flight;
        s.credit = self.credit_limit.saturating_sub(self.snd_nxt);
        s.unacked_bytes = self.unacked_bytes;
        s.reassembly_bytes = self.reasm_bytes;
        s
    }
}
