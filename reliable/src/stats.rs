//! Statistics: per endpoint and per connection.

use std::time::Duration;

/// Why the endpoint dropped a received datagram (or part of one). Every
/// drop is counted under exactly one reason in [`EndpointStats::drops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Shorter than its header, or lengths inconsistent.
    Truncated,
    /// Unknown protocol version.
    UnknownVersion,
    /// Unknown packet kind.
    UnknownKind,
    /// A field out of range (zero ids, fragment index ≥ count, bad
    /// handshake parameters, fragment sizes not matching the connection's).
    Malformed,
    /// No connection has the destination connection id.
    UnknownConnection,
    /// A packet the connection's state does not expect (e.g. DATA before
    /// the handshake, an ACCEPT for another epoch).
    UnexpectedState,
    /// A data packet already received (or below the cumulative ack).
    Duplicate,
    /// A data packet beyond the receive window (credit) granted.
    OutOfWindow,
    /// An ack of packets never sent.
    AckOfUnsent,
    /// The endpoint's receive budget is full.
    MemoryBudget,
    /// An INIT while the endpoint holds `max_connections`.
    TooManyConnections,
    /// An INIT while the endpoint does not accept connections.
    NotAccepting,
    /// Inconsistent with what the peer sent before (fragments of one
    /// message disagreeing, overlapping messages, messages out of order).
    ProtocolViolation,
    /// A control reply that did not fit the endpoint's control queue.
    ControlQueueFull,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 14;
    /// All reasons, in counter order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Truncated,
        DropReason::UnknownVersion,
        DropReason::UnknownKind,
        DropReason::Malformed,
        DropReason::UnknownConnection,
        DropReason::UnexpectedState,
        DropReason::Duplicate,
        DropReason::OutOfWindow,
        DropReason::AckOfUnsent,
        DropReason::MemoryBudget,
        DropReason::TooManyConnections,
        DropReason::NotAccepting,
        DropReason::ProtocolViolation,
        DropReason::ControlQueueFull,
    ];
}

/// Counters of drops, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl DropCounts {
    /// Drops for one reason.
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }
    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    pub(crate) fn add(&mut self, r: DropReason) {
        self.0[r as usize] += 1;
    }
    /// Nonzero counters, for printing.
    pub fn nonzero(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// Endpoint-wide counters.
#[derive(Debug, Clone, Default)]
pub struct EndpointStats {
    /// Datagrams given to `handle_datagram`.
    pub rx_datagrams: u64,
    /// Datagrams produced by `poll_transmit`.
    pub tx_datagrams: u64,
    /// Received datagrams (or data fragments) dropped, by reason.
    pub drops: DropCounts,
    /// Connections opened by `connect`.
    pub connects: u64,
    /// Connections accepted (handshake confirmed by the client).
    pub accepts: u64,
    /// Server connections dropped before the client confirmed them (stale
    /// or spoofed INITs, vanished clients); never announced as events.
    pub half_open_expired: u64,
    /// Connections failed because the peer restarted.
    pub peer_restarts: u64,
    /// Connections failed by idle timeout.
    pub timeouts: u64,
    /// `poll_transmit` calls whose buffer was shorter than `max_datagram`.
    pub tx_buffer_too_small: u64,
}

/// One connection's counters and estimates.
#[derive(Debug, Clone, Default)]
pub struct ConnStats {
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Datagrams received (valid, for this connection).
    pub packets_received: u64,
    /// DATA packets sent for the first time.
    pub data_sent: u64,
    /// DATA packets sent again (all causes).
    pub retransmitted: u64,
    /// Packets declared lost from SACK holes (fast retransmit).
    pub fast_retransmits: u64,
    /// Retransmission timeouts fired.
    pub rto_fires: u64,
    /// Retransmission timeouts found spurious afterwards (the ACKs of the
    /// original packets came after it; the window was restored).
    pub spurious_rtos: u64,
    /// Received DATA packets already held (dropped).
    pub duplicates: u64,
    /// Standalone ACK packets sent.
    pub acks_sent: u64,
    /// Keepalives and credit probes sent.
    pub pings_sent: u64,
    /// Messages accepted by `send`.
    pub messages_sent: u64,
    /// Messages delivered (queued as events).
    pub messages_received: u64,
    /// Times `send` returned `WouldBlock`.
    pub would_block: u64,
    /// Smoothed RTT (zero before the first sample).
    pub srtt: Duration,
    /// RTT variation.
    pub rttvar: Duration,
    /// Current retransmission timeout (backoff included).
    pub rto: Duration,
    /// Congestion window, packets.
    pub cwnd: u32,
    /// Slow-start threshold, packets.
    pub ssthresh: u32,
    /// Packets in flight.
    pub in_flight: u32,
    /// Peer's credit left, packets.
    pub credit: u64,
    /// Bytes accepted by `send` and not yet acked.
    pub unacked_bytes: usize,
    /// Bytes held in reassembly for this connection.
    pub reassembly_bytes: usize,
}
