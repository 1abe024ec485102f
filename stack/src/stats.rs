//! Counters of the userspace stack: what came in, what went out, and why
//! each dropped frame was dropped.
//!
//! Every frame handed to [`Interface::receive`](super::Interface::receive)
//! ends in exactly one [`RxOutcome`], and each outcome increments exactly
//! one counter of [`RxStats`], so `rx.frames == rx.accounted()` always
//! holds (the property tests and the fuzz target check it).

use std::fmt;

use crate::EndpointId;

/// Why a received frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The frame ends before a header does, or before the length its IPv4
    /// header declares.
    Truncated,
    /// Inconsistent length fields: IPv4 header length below 20 or above the
    /// total length, UDP length below 8 or beyond the IPv4 payload, an ICMP
    /// message shorter than its header.
    BadLength,
    /// An IPv4 ethertype carrying a version other than 4.
    BadVersion,
    /// Wrong IPv4 header, UDP or ICMP checksum.
    BadChecksum,
    /// IPv4 options (header longer than 20 bytes): not supported.
    IpOptions,
    /// An IPv4 fragment (more-fragments flag or an offset): the stack does
    /// not reassemble.
    Fragment,
    /// An impossible sender: a multicast source MAC, a broadcast,
    /// multicast or unspecified source IPv4, or an ARP claiming our own
    /// address.
    BadSource,
    /// A frame longer than the device's MTU plus the Ethernet header.
    Oversized,
    /// Addressed elsewhere: another unicast MAC, a multicast MAC, or an IPv4
    /// destination that is not ours.
    NotForUs,
    /// An ethertype other than IPv4 and ARP (IPv6, VLAN tags, ...).
    UnsupportedEthertype,
    /// An IPv4 protocol other than UDP and ICMP.
    UnsupportedProtocol,
    /// ARP that is not Ethernet/IPv4, or an unknown ARP operation.
    ArpUnsupported,
    /// ARP whose target is another host.
    ArpNotForUs,
    /// ICMP other than an echo request (echo replies, errors, ...).
    IcmpUnsupported,
    /// UDP to a port no endpoint is bound to (or to port 0).
    NoEndpoint,
    /// UDP for an endpoint whose receive queue is full.
    EndpointQueueFull,
    /// UDP for a port another member of the queue group has, whose inbox
    /// is full (see [`group`](super::group)).
    ForwardQueueFull,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 17] = [
        DropReason::Truncated,
        DropReason::BadLength,
        DropReason::BadVersion,
        DropReason::BadChecksum,
        DropReason::IpOptions,
        DropReason::Fragment,
        DropReason::BadSource,
        DropReason::Oversized,
        DropReason::NotForUs,
        DropReason::UnsupportedEthertype,
        DropReason::UnsupportedProtocol,
        DropReason::ArpUnsupported,
        DropReason::ArpNotForUs,
        DropReason::IcmpUnsupported,
        DropReason::NoEndpoint,
        DropReason::EndpointQueueFull,
        DropReason::ForwardQueueFull,
    ];
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DropReason::Truncated => "truncated",
            DropReason::BadLength => "bad length",
            DropReason::BadVersion => "bad IP version",
            DropReason::BadChecksum => "bad checksum",
            DropReason::IpOptions => "IPv4 options unsupported",
            DropReason::Fragment => "IPv4 fragments unsupported",
            DropReason::BadSource => "bad source address",
            DropReason::Oversized => "longer than the MTU",
            DropReason::NotForUs => "not for us",
            DropReason::UnsupportedEthertype => "unsupported ethertype",
            DropReason::UnsupportedProtocol => "unsupported IP protocol",
            DropReason::ArpUnsupported => "unsupported ARP",
            DropReason::ArpNotForUs => "ARP for another host",
            DropReason::IcmpUnsupported => "unsupported ICMP",
            DropReason::NoEndpoint => "no endpoint on port",
            DropReason::EndpointQueueFull => "endpoint queue full",
            DropReason::ForwardQueueFull => "queue group member's inbox full",
        };
        f.write_str(s)
    }
}

/// What became of one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxOutcome {
    /// A UDP datagram, queued on this endpoint.
    Delivered(EndpointId),
    /// An ARP request for our address: the sender was learned and answered.
    ArpRequest,
    /// An ARP reply to us: the sender was learned (and packets waiting for
    /// it were sent).
    ArpReply,
    /// An ICMP echo request to us: answered.
    IcmpEcho,
    /// A UDP datagram for a port another member of the queue group has:
    /// handed to that member (see [`group`](super::group)).
    Forwarded(usize),
    /// Dropped, for this reason.
    Dropped(DropReason),
}

/// Received frames dropped, by reason (see [`DropReason`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RxDrops {
    pub truncated: u64,
    pub bad_length: u64,
    pub bad_version: u64,
    pub bad_checksum: u64,
    pub ip_options: u64,
    pub fragment: u64,
    pub bad_source: u64,
    pub oversized: u64,
    pub not_for_us: u64,
    pub unsupported_ethertype: u64,
    pub unsupported_protocol: u64,
    pub arp_unsupported: u64,
    pub arp_not_for_us: u64,
    pub icmp_unsupported: u64,
    pub no_endpoint: u64,
    pub endpoint_queue_full: u64,
    pub forward_queue_full: u64,
}

impl RxDrops {
    fn slot(&mut self, reason: DropReason) -> &mut u64 {
        match reason {
            DropReason::Truncated => &mut self.truncated,
            DropReason::BadLength => &mut self.bad_length,
            DropReason::BadVersion => &mut self.bad_version,
            DropReason::BadChecksum => &mut self.bad_checksum,
            DropReason::IpOptions => &mut self.ip_options,
            DropReason::Fragment => &mut self.fragment,
            DropReason::BadSource => &mut self.bad_source,
            DropReason::Oversized => &mut self.oversized,
            DropReason::NotForUs => &mut self.not_for_us,
            DropReason::UnsupportedEthertype => &mut self.unsupported_ethertype,
            DropReason::UnsupportedProtocol => &mut self.unsupported_protocol,
            DropReason::ArpUnsupported => &mut self.arp_unsupported,
            DropReason::ArpNotForUs => &mut self.arp_not_for_us,
            DropReason::IcmpUnsupported => &mut self.icmp_unsupported,
            DropReason::NoEndpoint => &mut self.no_endpoint,
            DropReason::EndpointQueueFull => &mut self.endpoint_queue_full,
            DropReason::ForwardQueueFull => &mut self.forward_queue_full,
        }
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        let mut copy = *self;
        *copy.slot(reason)
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// Receive-side counters of an [`Interface`](super::Interface).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Frames handed to the stack.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// UDP datagrams queued on an endpoint.
    pub udp_delivered: u64,
    /// UDP datagrams handed to another member of the queue group (which
    /// counts them again when it handles them).
    pub forwarded: u64,
    /// ARP requests for our address (answered).
    pub arp_requests: u64,
    /// ARP replies to us (learned).
    pub arp_replies: u64,
    /// ICMP echo requests to us (answered).
    pub icmp_echo_requests: u64,
    /// Frames dropped, by reason.
    pub drops: RxDrops,
    /// Frames whose checksums the device had verified (hardware offload),
    /// so the stack did not check them again; not an outcome (each frame
    /// is also counted in one of the fields above).
    pub checksum_offloaded: u64,
}

impl RxStats {
    /// The sum of all outcomes; always equals [`frames`](RxStats::frames).
    pub fn accounted(&self) -> u64 {
        self.udp_delivered
            + self.forwarded
            + self.arp_requests
            + self.arp_replies
            + self.icmp_echo_requests
            + self.drops.total()
    }

    #[inline]
    pub(crate) fn record(&mut self, outcome: RxOutcome) {
        match outcome {
            RxOutcome::Delivered(_) => self.udp_delivered += 1,
            RxOutcome::Forwarded(_) => self.forwarded += 1,
            RxOutcome::ArpRequest => self.arp_requests += 1,
            RxOutcome::ArpReply => self.arp_replies += 1,
            RxOutcome::IcmpEcho => self.icmp_echo_requests += 1,
            RxOutcome::Dropped(reason) => *self.drops.slot(reason) += 1,
        }
    }
}

/// Transmit-side counters of an [`Interface`](super::Interface).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Frames handed to the device.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// UDP datagrams handed to the device.
    pub udp_datagrams: u64,
    /// ARP requests sent (each resolution attempt).
    pub arp_requests: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ICMP echo replies sent.
    pub icmp_echo_replies: u64,
    /// Outgoing packets dropped because the queue of packets waiting for
    /// their next hop's ARP resolution was full.
    pub arp_queue_full: u64,
    /// Outgoing packets dropped because their next hop never answered ARP.
    pub arp_unresolved: u64,
    /// Outgoing packets dropped because the ARP cache was full of
    /// unresolved entries.
    pub arp_cache_full: u64,
    /// ARP or ICMP replies not sent because the device had no free
    /// transmit buffer.
    pub no_buffer: u64,
    /// Frames dropped because the device's transmit ring was full.
    pub device_full: u64,
    /// Received frames turned into transmit buffers by
    /// [`Interface::reuse_rx`](super::Interface::reuse_rx) (zero-copy
    /// replies).
    pub reused_rx: u64,
    /// UDP datagrams whose IPv4 and UDP checksums the device computes
    /// ([`FrameDevice::offload_tx_checksums`](super::FrameDevice::offload_tx_checksums)).
    pub checksum_offloaded: u64,
}

impl TxStats {
    /// All outgoing packets dropped by the stack or the device.
    pub fn dropped(&self) -> u64 {
        self.arp_queue_full
            + self.arp_unresolved
            + self.arp_cache_full
            + self.no_buffer
            + self.device_full
    }
}

/// ARP cache counters of an [`Interface`](super::Interface).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArpStats {
    /// Resolutions started (a packet for an unknown or expired next hop).
    pub resolutions: u64,
    /// Next hops resolved (an entry created or refreshed from a received
    /// ARP packet).
    pub learned: u64,
    /// Resolutions given up after the last retry.
    pub failed: u64,
    /// Entries that timed out.
    pub expired: u64,
    /// Resolved entries evicted to make room.
    pub evicted: u64,
    /// Packets held while resolving (later sent or dropped).
    pub queued: u64,
}

/// All counters of an [`Interface`](super::Interface).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Receive side.
    pub rx: RxStats,
    /// Transmit side.
    pub tx: TxStats,
    /// ARP cache.
    pub arp: ArpStats,
}

/// Counters of one UDP endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Well-formed datagrams for this endpoint's port, before the checksum
    /// and queue checks.
    pub received: u64,
    /// Datagrams queued for the application.
    pub delivered: u64,
    /// Datagrams the application has taken from the queue.
    pub read: u64,
    /// Datagrams for this port with a bad UDP checksum.
    pub bad_checksum: u64,
    /// Datagrams dropped because the receive queue was full.
    pub queue_full: u64,
    /// Datagrams handed to the device (directly or after ARP resolution).
    pub sent: u64,
    /// Datagrams queued while their next hop's ARP resolution ran.
    pub queued_for_arp: u64,
    /// Outgoing datagrams dropped (ARP queue full, next hop unresolved,
    /// device ring full).
    pub send_dropped: u64,
}
