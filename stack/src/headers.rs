//! The 42 bytes of Ethernet, IPv4 and UDP headers the stack writes in
//! front of every datagram it sends, and the copy an endpoint keeps of the
//! last ones it sent, so that the next datagram to the same peer (a reply
//! stream, a request/response flow) copies them instead of building them:
//! only the two lengths and the two checksums differ from one datagram to
//! the next.

use std::net::SocketAddrV4;
use std::time::Instant;

use smoltcp::wire::{EthernetAddress, IPV4_HEADER_LEN, UDP_HEADER_LEN};

use crate::UDP_HEADROOM;
use crate::checksum;
use crate::device::TxFrame;

/// Offsets of the per-datagram fields in the 42 header bytes.
const IP_TOTAL_LEN: usize = 16;
const IP_CHECKSUM: usize = 24;
const UDP_LEN: usize = 38;
const UDP_CHECKSUM: usize = 40;

/// The headers of datagrams from one address and port to another, with
/// the lengths and checksums left to [`write`](UdpHeaders::write).
///
/// The bytes are those smoltcp's `EthernetRepr`/`Ipv4Repr`/`UdpRepr`
/// `emit` writes (version 4, IHL 5, DSCP/ECN 0, ident 0, DF set, no
/// fragment offset; the tests compare them).
#[derive(Clone)]
pub(crate) struct UdpHeaders {
    /// Lengths and checksums zero.
    bytes: [u8; UDP_HEADROOM],
    /// Checksum sum of the IPv4 header's fixed fields (all but the total
    /// length and the checksum).
    ip_fixed: u64,
    /// Sum of the pseudo-header without its length: the addresses and the
    /// protocol (what a checksum-offloading device wants, with the length).
    pseudo: u64,
    /// Sum of the two ports.
    ports: u64,
}

impl UdpHeaders {
    pub fn new(
        src: SocketAddrV4,
        dst: SocketAddrV4,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        hop_limit: u8,
    ) -> Self {
        let (src_ip, dst_ip) = (src.ip().octets(), dst.ip().octets());
        let (src_port, dst_port) = (src.port(), dst.port());
        let addrs = checksum::add_u32(checksum::add_u32(0, src_ip), dst_ip);
        let mut bytes = [0u8; UDP_HEADROOM];
        // Ethernet.
        bytes[0..6].copy_from_slice(&dst_mac.0);
        bytes[6..12].copy_from_slice(&src_mac.0);
        bytes[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        // IPv4, without options: total length, ident 0 and checksum later.
        let ip = &mut bytes[14..34];
        ip[0] = 0x45;
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
        ip[8] = hop_limit;
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&src_ip);
        ip[16..20].copy_from_slice(&dst_ip);
        // UDP: length and checksum later.
        bytes[34..36].copy_from_slice(&src_port.to_be_bytes());
        bytes[36..38].copy_from_slice(&dst_port.to_be_bytes());
        UdpHeaders {
            bytes,
            ip_fixed: [0x4500, 0x4000, u16::from(hop_limit) << 8 | 17]
                .into_iter()
                .fold(addrs, checksum::add_u16),
            pseudo: checksum::add_u16(addrs, 17),
            ports: checksum::add_u16(checksum::add_u16(0, src_port), dst_port),
        }
    }

    /// Writes the headers in front of the payload, in the headroom of
    /// `frame`, whose data is the payload, with complete IPv4 and UDP
    /// checksums. `None`, changing nothing, if the headroom is too small
    /// or the datagram too long for IPv4.
    ///
    /// Sending costs one 42-byte copy, four 2-byte fields and the payload
    /// sum. Both checksums are computed from the field values, not read
    /// back from the bytes just written (reading 8 bytes over fresh 2-byte
    /// stores defeats store-to-load forwarding).
    ///
    /// With `offloaded` (the device computes the checksums, see
    /// [`FrameDevice::offload_tx_checksums`](super::FrameDevice::offload_tx_checksums))
    /// the IPv4 checksum is 0 and the UDP checksum field holds the folded
    /// pseudo-header sum, not complemented; the payload is not read.
    #[inline(always)]
    pub fn write<T: TxFrame>(&self, frame: &mut T, offloaded: bool) -> Option<()> {
        let udp_len = u16::try_from(UDP_HEADER_LEN + frame.data().len()).ok()?;
        let ip_len = udp_len.checked_add(IPV4_HEADER_LEN as u16)?;
        let buf = frame.prepend(UDP_HEADROOM)?;
        let (headers, payload) = buf.split_at_mut_checked(UDP_HEADROOM)?;
        let headers: &mut [u8; UDP_HEADROOM] = headers.try_into().ok()?;
        let (ip_sum, udp_sum) = if offloaded {
            (0, checksum::fold(checksum::add_u16(self.pseudo, udp_len)))
        } else {
            let ip_sum = checksum::finish(checksum::add_u16(self.ip_fixed, ip_len));
            // Pseudo-header length and UDP header length: the same value.
            let acc = checksum::add_u16(
                checksum::add_u16(self.pseudo + self.ports, udp_len),
                udp_len,
            );
            let udp_sum = match checksum::finish(checksum::add(acc, payload)) {
                // RFC 768: a computed zero is sent as all ones (zero means
                // "no checksum").
                0 => 0xffff,
                sum => sum,
            };
            (ip_sum, udp_sum)
        };
        *headers = self.bytes;
        headers[IP_TOTAL_LEN..IP_TOTAL_LEN + 2].copy_from_slice(&ip_len.to_be_bytes());
        headers[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&ip_sum.to_be_bytes());
        headers[UDP_LEN..UDP_LEN + 2].copy_from_slice(&udp_len.to_be_bytes());
        headers[UDP_CHECKSUM..UDP_CHECKSUM + 2].copy_from_slice(&udp_sum.to_be_bytes());
        Some(())
    }
}

/// The headers an endpoint last sent with, and what they depended on: the
/// peer, and the ARP entry of the next hop (the cache's change count when
/// they were built, and the entry's expiry). Everything else in them comes
/// from the interface's configuration, which does not change.
pub(crate) struct CachedHeaders {
    peer: SocketAddrV4,
    arp_epoch: u64,
    /// `None`: a static ARP entry.
    expires: Option<Instant>,
    headers: UdpHeaders,
}

impl CachedHeaders {
    pub fn new(
        peer: SocketAddrV4,
        arp_epoch: u64,
        expires: Option<Instant>,
        headers: UdpHeaders,
    ) -> Self {
        CachedHeaders {
            peer,
            arp_epoch,
            expires,
            headers,
        }
    }

    /// The headers, if they are still right for a datagram to `peer` at
    /// `now` with the ARP cache at `arp_epoch`.
    #[inline]
    pub fn for_peer(
        &self,
        peer: SocketAddrV4,
        arp_epoch: u64,
        now: Instant,
    ) -> Option<&UdpHeaders> {
        (self.peer == peer && self.arp_epoch == arp_epoch && self.expires.is_none_or(|e| now < e))
            .then_some(&self.headers)
    }
}
