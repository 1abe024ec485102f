//! Endpoint configuration.

use core::fmt;
use std::time::Duration;

use crate::wire::{DATA_HEADER_LEN, MIN_PAYLOAD};

/// Largest receive window (packets) an endpoint announces or accepts.
pub const MAX_WINDOW: u32 = 1 << 22;
/// Largest number of connections an endpoint can hold (the connection id's
/// low 20 bits index its table).
pub const MAX_CONNECTIONS: usize = 1 << 20;
/// Packets after the cumulative ack that an ACK's SACK words describe.
pub const SACK_PACKETS: u32 = 64 * crate::wire::MAX_SACK_WORDS as u32;

/// An endpoint's configuration. [`Config::default`] is sized for a
/// datacenter path (tens of µs RTT, 1500-byte MTU).
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest datagram (UDP payload) this endpoint sends or accepts.
    /// Default 1472 (a 1500-byte IPv4 MTU minus IPv4 and UDP headers).
    /// A DATA packet carries `max_datagram - 40` bytes of message.
    pub max_datagram: usize,
    /// Largest message `send` accepts and the peer may send us.
    /// Default 16 MiB.
    pub max_message: usize,
    /// Receive window per connection, in packets: the credit the peer gets,
    /// and so the most packets of a connection this endpoint holds (its
    /// memory bound is `recv_window × (max_datagram − 40)` bytes). Must
    /// hold one message of `max_message` bytes. Default: that plus 256.
    pub recv_window: u32,
    /// Bytes of received messages the whole endpoint holds (reassembling
    /// or waiting for [`crate::Endpoint::poll_event`]); beyond it received
    /// fragments are dropped (counted) and retransmitted later. Default
    /// 64 MiB.
    pub recv_budget: usize,
    /// Bytes a connection accepts from `send` and holds until acked;
    /// beyond it `send` returns `WouldBlock`. One message is always
    /// accepted when nothing is queued. Default 4 MiB.
    pub send_buffer: usize,
    /// Most connections (incoming and outgoing). Default 1024.
    pub max_connections: usize,
    /// Whether incoming connections are accepted. Default true.
    pub accept_incoming: bool,
    /// Floor of the retransmission timeout. Default 300 µs: above the
    /// RTT and scheduling jitter of a datacenter path between busy-polling
    /// endpoints (RTT 5–50 µs), 3000× below TCP's 1 s.
    pub rto_min: Duration,
    /// Retransmission timeout before any RTT sample (handshake). Default
    /// 1 ms.
    pub rto_initial: Duration,
    /// Ceiling of the backed-off retransmission timeout. Default 100 ms.
    pub rto_max: Duration,
    /// A connection that hears nothing from its peer for this long fails
    /// (`TimedOut`). Also the handshake's deadline. Default 1 s.
    pub idle_timeout: Duration,
    /// A connection that heard nothing for this long asks for an ACK
    /// (keepalive). Default 200 ms.
    pub keepalive_interval: Duration,
    /// Congestion window at start and after idle, in packets. Default 32.
    pub initial_cwnd: u32,
    /// Congestion window after a retransmission timeout. Default 2.
    pub min_cwnd: u32,
    /// Largest congestion window, in packets: at most what the SACK
    /// words describe (512), so that every packet in flight can be
    /// reported and a loss detected without the timer. Packets beyond
    /// what the path delivers only wait in queues (the device's rings,
    /// the peer's), which inflates the measured RTT and so the
    /// retransmission timeout. Default 512.
    pub max_cwnd: u32,
    /// Packets sacked above an unacked packet that declare it lost (fast
    /// retransmit). Default 3.
    pub reorder_threshold: u32,
}

impl Default for Config {
    fn default() -> Config {
        let max_datagram = 1472;
        let max_message = 16 << 20;
        Config {
            max_datagram,
            max_message,
            recv_window: packets_for(max_message, max_datagram - DATA_HEADER_LEN) + 256,
            recv_budget: 64 << 20,
            send_buffer: 4 << 20,
            max_connections: 1024,
            accept_incoming: true,
            rto_min: Duration::from_micros(300),
            rto_initial: Duration::from_millis(1),
            rto_max: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(1),
            keepalive_interval: Duration::from_millis(200),
            initial_cwnd: 32,
            min_cwnd: 2,
            max_cwnd: SACK_PACKETS,
            reorder_threshold: 3,
        }
    }
}

/// Fragments a message of `len` bytes takes at `frag` bytes per fragment
/// (an empty message takes one).
pub(crate) fn packets_for(len: usize, frag: usize) -> u32 {
    (len.div_ceil(frag.max(1)).max(1)).min(u32::MAX as usize) as u32
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid insane-reliable configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Bytes of message a DATA packet carries at this configuration.
    pub fn max_payload(&self) -> usize {
        self.max_datagram
            .saturating_sub(DATA_HEADER_LEN)
            .min(u16::MAX as usize)
    }

    /// Checks that the values fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if self.max_payload() < MIN_PAYLOAD as usize {
            return err(format!(
                "max_datagram {} leaves less than {MIN_PAYLOAD} bytes of payload",
                self.max_datagram
            ));
        }
        if self.max_message > u32::MAX as usize {
            return err(format!(
                "max_message {} exceeds 4 GiB - 1",
                self.max_message
            ));
        }
        if self.recv_window == 0 || self.recv_window > MAX_WINDOW {
            return err(format!(
                "recv_window {} not in 1..={MAX_WINDOW}",
                self.recv_window
            ));
        }
        let need = packets_for(self.max_message, self.max_payload());
        if self.recv_window < need {
            return err(format!(
                "recv_window {} packets cannot hold a max_message of {} bytes ({need} packets)",
                self.recv_window, self.max_message
            ));
        }
        if self.recv_budget < self.max_message {
            return err(format!(
                "recv_budget {} is below max_message {}",
                self.recv_budget, self.max_message
            ));
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS {
            return err(format!(
                "max_connections {} not in 1..={MAX_CONNECTIONS}",
                self.max_connections
            ));
        }
        if self.rto_min.is_zero()
            || self.rto_initial < self.rto_min
            || self.rto_max < self.rto_initial
        {
            return err("need 0 < rto_min <= rto_initial <= rto_max".into());
        }
        if self.keepalive_interval.is_zero() || self.keepalive_interval >= self.idle_timeout {
            return err("need 0 < keepalive_interval < idle_timeout".into());
        }
        if self.min_cwnd == 0
            || self.initial_cwnd < self.min_cwnd
            || self.max_cwnd < self.initial_cwnd
            || self.max_cwnd > SACK_PACKETS
            || self.reorder_threshold == 0
        {
            return err(format!(
                "need 0 < min_cwnd <= initial_cwnd <= max_cwnd <= {SACK_PACKETS} and reorder_threshold > 0"
            ));
        }
        Ok(())
    }
}
