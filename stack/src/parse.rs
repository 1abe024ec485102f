//! Receive-side parsing: from the bytes of one Ethernet frame to what the
//! interface must do with it, or the [`DropReason`] that says why not.
//!
//! A pure function over `&[u8]`, so it can be tested and fuzzed on its own.
//! Valid unicast UDP datagrams to us take a fast path at fixed offsets
//! (`fast_udp`), which declines everything else. Otherwise every header
//! is read through smoltcp's checked views
//! (`EthernetFrame::new_checked`, `Ipv4Packet::new_checked`,
//! `UdpPacket::new_checked`, `ArpPacket::new_checked`,
//! `Icmpv4Packet::new_checked`) and `Repr::parse`; IPv4 and UDP checksums
//! through the stack's one-pass sum (`super::checksum`), ICMP's through
//! smoltcp's `verify_checksum`. The only unchecked view is used to
//! *classify* an IPv4 header that failed its length check, after checking
//! that the 20 fixed bytes it reads are there. No input panics.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, ETHERNET_HEADER_LEN, EthernetAddress, EthernetFrame,
    EthernetProtocol, EthernetRepr, IPV4_HEADER_LEN, Icmpv4Packet, Icmpv4Repr, IpProtocol,
    Ipv4Packet, Ipv4Repr, UDP_HEADER_LEN, UdpPacket, UdpRepr,
};

use crate::checksum;
use crate::stats::DropReason;

/// What the parser needs to know about the receiving interface.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
    /// The subnet's broadcast address, if the prefix has one.
    pub broadcast: Option<Ipv4Addr>,
    pub mtu: usize,
    pub verify_checksums: bool,
}

/// A frame the interface has something to do with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// An Ethernet/IPv4 ARP request or reply (any target: the interface
    /// decides whether it is for us).
    Arp {
        operation: ArpOperation,
        source_mac: EthernetAddress,
        source_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
    },
    /// A UDP datagram to our address or a broadcast address. `checksum_ok` is false when the UDP
    /// checksum is wrong: the interface still learns the port, to charge the
    /// drop to its endpoint.
    Udp {
        peer: SocketAddrV4,
        /// Our address (or the broadcast address it was sent to) and port.
        local: SocketAddrV4,
        payload: Range<usize>,
        checksum_ok: bool,
    },
    /// An ICMP echo request to our address; `data` is where its data lies in
    /// the frame.
    IcmpEcho {
        source_mac: EthernetAddress,
        source_ip: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: Range<usize>,
    },
}

/// Offset of the IPv4 header (or ARP packet) in a frame.
const L3: usize = ETHERNET_HEADER_LEN;
/// Offset of the UDP or ICMP header in a frame (IPv4 options are refused).
const L4: usize = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;

/// Parses one received frame: the fast path, then the checked parser.
/// `Interface::receive` does the same with [`fast_udp_to_us`] (which
/// hands the datagram over without building a [`Parsed`]) and
/// [`parse_frame_checked`]; this whole-frame form is for the tests.
#[cfg(test)]
pub(crate) fn parse_frame(frame: &[u8], local: &Local) -> Result<Parsed, DropReason> {
    match fast_udp(frame, local) {
        Some(parsed) => Ok(parsed),
        None => parse_frame_checked(frame, local),
    }
}

/// Reads a big-endian u16 at `at` (the caller has checked the length).
#[cfg(test)]
fn be16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

/// [`fast_udp_to_us`]'s result as a whole [`Parsed`], to compare with
/// [`parse_frame_checked`] (the tests).
#[cfg(test)]
fn fast_udp(frame: &[u8], local: &Local) -> Option<Parsed> {
    let udp = fast_udp_to_us(frame, local, local.verify_checksums)?;
    let addr = |ip: usize, port: usize| {
        SocketAddrV4::new(
            Ipv4Addr::new(frame[ip], frame[ip + 1], frame[ip + 2], frame[ip + 3]),
            be16(frame, port),
        )
    };
    Some(Parsed::Udp {
        peer: addr(L3 + 12, L4),
        local: addr(L3 + 16, L4 + 2),
        payload: udp.payload,
        checksum_ok: udp.checksum_ok,
    })
}

/// What the receive path needs of a datagram the fast path accepted: the
/// rest (addresses) stays in the frame, read by
/// [`RxDatagram`](super::RxDatagram) when asked.
pub(crate) struct FastUdp {
    pub dst_port: u16,
    pub payload: Range<usize>,
    pub checksum_ok: bool,
}

/// The fast path for the frame the data path is made of: a unicast
/// Ethernet/IPv4/UDP datagram to our MAC and address, no IPv4 options, not
/// a fragment, lengths consistent. It reads the fixed offsets directly
/// instead of going through smoltcp's layered checked views and `Repr`s,
/// and decides nothing itself: any frame it does not recognise *entirely*
/// (broadcast, ARP, ICMP, anything malformed, a bad IPv4 checksum) gets
/// `None` and goes through [`parse_frame_checked`], which finds the
/// [`DropReason`]. For every frame it accepts it returns exactly what
/// `parse_frame_checked` returns (as `fast_udp`) (the unit tests compare both on valid and
/// mutated frames).
///
/// It returns only what delivery needs, small enough to stay in
/// registers: building a whole [`Parsed`] here put socket addresses on
/// the stack and read them back, a store-forwarding stall per datagram.
#[inline(always)]
pub(crate) fn fast_udp_to_us(frame: &[u8], local: &Local, verify: bool) -> Option<FastUdp> {
    const IP: usize = L3;
    const UDP: usize = L4;
    // The 42 header bytes as one fixed-size array: a single length check,
    // then every field at a constant offset without further checks.
    let h: &[u8; UDP + UDP_HEADER_LEN] = frame.first_chunk()?;
    let field16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let field32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    if frame.len() > local.mtu + ETHERNET_HEADER_LEN {
        return None;
    }
    // Ethernet: to our MAC (broadcast takes the slow path), from a unicast
    // source (the group bit clear), IPv4.
    let dst_mac = [h[0], h[1], h[2], h[3], h[4], h[5]];
    if dst_mac != local.mac.0 || h[6] & 1 != 0 || field16(12) != 0x0800 {
        return None;
    }
    // IPv4: version 4, no options, UDP, no MF flag and offset 0, total
    // length covering the UDP header and inside the frame.
    if h[IP] != 0x45 || h[IP + 9] != 17 || field16(IP + 6) & 0x3fff != 0 {
        return None;
    }
    let total_len = usize::from(field16(IP + 2));
    if total_len < IPV4_HEADER_LEN + UDP_HEADER_LEN || IP + total_len > frame.len() {
        return None;
    }
    if verify && !checksum::is_valid(checksum::add(0, &h[IP..UDP])) {
        return None;
    }
    // Addresses as numbers: broadcast, multicast (224/4), unspecified,
    // ours or our subnet's broadcast are not a unicast sender.
    let src = field32(IP + 12);
    let dst = field32(IP + 16);
    let ours = u32::from(local.ip);
    if dst != ours
        || src == u32::MAX
        || src >> 28 == 0xe
        || src == 0
        || src == ours
        || local.broadcast.is_some_and(|b| u32::from(b) == src)
    {
        return None;
    }
    // UDP: length field inside the IPv4 payload, destination port set.
    let udp_len = usize::from(field16(UDP + 4));
    if udp_len < UDP_HEADER_LEN || udp_len > total_len - IPV4_HEADER_LEN {
        return None;
    }
    let dst_port = field16(UDP + 2);
    if dst_port == 0 {
        return None;
    }
    let checksum_ok = !verify || field16(UDP + 6) == 0 || {
        let acc = checksum::udp_pseudo_header(src.to_be_bytes(), dst.to_be_bytes(), udp_len as u16);
        // Inside the frame: `udp_len <= total_len - 20` and
        // `14 + total_len <= frame.len()` were checked above.
        frame
            .get(UDP..UDP + udp_len)
            .is_some_and(|segment| checksum::is_valid(checksum::add(acc, segment)))
    };
    Some(FastUdp {
        dst_port,
        payload: UDP + UDP_HEADER_LEN..UDP + udp_len,
        checksum_ok,
    })
}

/// Parses one received frame through smoltcp's checked views: every
/// frame the fast path does not take, and the reference it is tested
/// against.
pub(crate) fn parse_frame_checked(frame: &[u8], local: &Local) -> Result<Parsed, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Truncated)?;
    let eth = EthernetRepr::parse(&eth).map_err(|_| DropReason::Truncated)?;
    if eth.dst_addr != local.mac && !eth.dst_addr.is_broadcast() {
        return Err(DropReason::NotForUs);
    }
    if !eth.src_addr.is_unicast() {
        return Err(DropReason::BadSource);
    }
    if frame.len() > local.mtu + ETHERNET_HEADER_LEN {
        return Err(DropReason::Oversized);
    }
    let payload = frame.get(L3..).unwrap_or_default();
    match eth.ethertype {
        EthernetProtocol::Ipv4 => parse_ipv4(payload, eth.src_addr, local),
        EthernetProtocol::Arp => parse_arp(payload),
        _ => Err(DropReason::UnsupportedEthertype),
    }
}

fn parse_arp(bytes: &[u8]) -> Result<Parsed, DropReason> {
    let packet = ArpPacket::new_checked(bytes).map_err(|_| DropReason::Truncated)?;
    match ArpRepr::parse(&packet) {
        Ok(ArpRepr::EthernetIpv4 {
            operation: operation @ (ArpOperation::Request | ArpOperation::Reply),
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) => Ok(Parsed::Arp {
            operation,
            source_mac: source_hardware_addr,
            source_ip: source_protocol_addr,
            target_ip: target_protocol_addr,
        }),
        // Another hardware or protocol type, or an unknown operation.
        _ => Err(DropReason::ArpUnsupported),
    }
}

/// Why an IPv4 header failed smoltcp's length check.
fn classify_ipv4_len(bytes: &[u8]) -> DropReason {
    if bytes.len() < IPV4_HEADER_LEN {
        return DropReason::Truncated;
    }
    // The 20 fixed header bytes are present: the accessors below read only
    // those.
    let packet = Ipv4Packet::new_unchecked(bytes);
    if packet.version() != 4 {
        return DropReason::BadVersion;
    }
    let header_len = usize::from(packet.header_len());
    let total_len = usize::from(packet.total_len());
    if header_len < IPV4_HEADER_LEN || header_len > total_len {
        DropReason::BadLength
    } else if bytes.len() < total_len {
        DropReason::Truncated
    } else {
        DropReason::BadLength
    }
}

fn parse_ipv4(
    bytes: &[u8],
    source_mac: EthernetAddress,
    local: &Local,
) -> Result<Parsed, DropReason> {
    let packet = Ipv4Packet::new_checked(bytes).map_err(|_| classify_ipv4_len(bytes))?;
    if packet.version() != 4 {
        return Err(DropReason::BadVersion);
    }
    if local.verify_checksums && !ipv4_checksum_ok(&packet) {
        return Err(DropReason::BadChecksum);
    }
    if usize::from(packet.header_len()) != IPV4_HEADER_LEN {
        return Err(DropReason::IpOptions);
    }
    if packet.more_frags() || packet.frag_offset() != 0 {
        return Err(DropReason::Fragment);
    }
    // Checksum and fragments were checked above.
    let ip = Ipv4Repr::parse(&packet, &ChecksumCapabilities::ignored())
        .map_err(|_| DropReason::BadLength)?;
    let src = ip.src_addr;
    if src.is_broadcast()
        || src.is_multicast()
        || src.is_unspecified()
        || src == local.ip
        || Some(src) == local.broadcast
    {
        return Err(DropReason::BadSource);
    }
    let broadcast = ip.dst_addr.is_broadcast() || Some(ip.dst_addr) == local.broadcast;
    if ip.dst_addr != local.ip && !broadcast {
        return Err(DropReason::NotForUs);
    }
    let l4 = packet.payload();
    match ip.next_header {
        IpProtocol::Udp => parse_udp(l4, &ip, local),
        // No echo replies to broadcasts (smurf amplification).
        IpProtocol::Icmp if broadcast => Err(DropReason::NotForUs),
        IpProtocol::Icmp => parse_icmp(l4, &ip, source_mac, local),
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

fn parse_udp(bytes: &[u8], ip: &Ipv4Repr, local: &Local) -> Result<Parsed, DropReason> {
    // The IPv4 length is consistent, so a UDP header that does not fit in
    // it is a length error, not a truncation.
    let packet = UdpPacket::new_checked(bytes).map_err(|_| DropReason::BadLength)?;
    let (src, dst) = (ip.src_addr.into(), ip.dst_addr.into());
    let checksum_ok = !local.verify_checksums || udp_checksum_ok(&packet, ip);
    // Fails only on destination port 0, which no endpoint can bind.
    let udp = UdpRepr::parse(&packet, &src, &dst, &ChecksumCapabilities::ignored())
        .map_err(|_| DropReason::NoEndpoint)?;
    let start = L4 + UDP_HEADER_LEN;
    let end = L4 + usize::from(packet.len());
    Ok(Parsed::Udp {
        peer: SocketAddrV4::new(ip.src_addr, udp.src_port),
        local: SocketAddrV4::new(ip.dst_addr, udp.dst_port),
        payload: start..end,
        checksum_ok,
    })
}

/// smoltcp's `Ipv4Packet::verify_checksum` with the fast sum: the header
/// (options included) sums to all ones.
fn ipv4_checksum_ok(packet: &Ipv4Packet<&[u8]>) -> bool {
    let header = packet
        .as_ref()
        .get(..usize::from(packet.header_len()))
        .unwrap_or_default();
    checksum::is_valid(checksum::add(0, header))
}

/// smoltcp's `UdpPacket::verify_checksum` with the fast sum: zero means
/// "no checksum" (RFC 768), otherwise pseudo-header, header and payload
/// (`packet.len()` bytes, checked by `new_checked`) sum to all ones.
fn udp_checksum_ok(packet: &UdpPacket<&[u8]>, ip: &Ipv4Repr) -> bool {
    if packet.checksum() == 0 {
        return true;
    }
    let len = packet.len();
    let Some(datagram) = packet.as_ref().get(..usize::from(len)) else {
        return false;
    };
    let acc = checksum::udp_pseudo_header(ip.src_addr.octets(), ip.dst_addr.octets(), len);
    checksum::is_valid(checksum::add(acc, datagram))
}

fn parse_icmp(
    bytes: &[u8],
    ip: &Ipv4Repr,
    source_mac: EthernetAddress,
    local: &Local,
) -> Result<Parsed, DropReason> {
    let packet = Icmpv4Packet::new_checked(bytes).map_err(|_| DropReason::BadLength)?;
    if local.verify_checksums && !packet.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    match Icmpv4Repr::parse(&packet, &ChecksumCapabilities::ignored()) {
        Ok(Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        }) => {
            let end = L4 + bytes.len();
            Ok(Parsed::IcmpEcho {
                source_mac,
                source_ip: ip.src_addr,
                ident,
                seq_no,
                data: end - data.len()..end,
            })
        }
        _ => Err(DropReason::IcmpUnsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Local = Local {
        mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
        ip: Ipv4Addr::new(10, 0, 0, 1),
        broadcast: Some(Ipv4Addr::new(10, 0, 0, 255)),
        mtu: 1500,
        verify_checksums: true,
    };

    fn eth(ethertype: [u8; 2], body: &[u8]) -> Vec<u8> {
        let mut f = LOCAL.mac.0.to_vec();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&ethertype);
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn short_and_empty() {
        assert_eq!(parse_frame(&[], &LOCAL), Err(DropReason::Truncated));
        assert_eq!(
            parse_frame(&eth([8, 0], &[]), &LOCAL),
            Err(DropReason::Truncated)
        );
        assert_eq!(
            parse_frame(&eth([8, 6], &[]), &LOCAL),
            Err(DropReason::Truncated)
        );
    }

    #[test]
    fn arp_with_huge_address_lengths_is_truncated() {
        // hlen = plen = 255: the declared addresses run far past the end.
        let body = [0, 1, 8, 0, 255, 255, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            parse_frame(&eth([8, 6], &body), &LOCAL),
            Err(DropReason::Truncated)
        );
    }

    /// A valid UDP datagram to LOCAL, as the stack's peers send them.
    fn udp_to_local(payload: &[u8]) -> Vec<u8> {
        crate::testing::frames::udp_frame(
            EthernetAddress([2, 0, 0, 0, 0, 2]),
            LOCAL.mac,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4000),
            SocketAddrV4::new(LOCAL.ip, 5000),
            payload,
        )
    }

    /// The fast path takes valid datagrams, and whatever it takes it
    /// parses as the checked path does: every single-byte mutation of a
    /// valid frame (each byte set to several values, with and without
    /// checksum verification), and truncations and extensions.
    #[test]
    fn fast_path_agrees_with_checked_path() {
        let mut taken = 0;
        for verify in [true, false] {
            let local = Local {
                verify_checksums: verify,
                ..LOCAL
            };
            for len in [0usize, 1, 17, 64] {
                let frame = udp_to_local(&vec![0xa5; len]);
                assert!(fast_udp(&frame, &local).is_some());
                let mut variants = Vec::new();
                for at in 0..frame.len() {
                    for v in [0u8, 1, 2, 0x40, 0x45, 0x7f, 0x80, 0xfe, 0xff] {
                        let mut f = frame.clone();
                        f[at] = v;
                        variants.push(f.clone());
                        crate::testing::frames::refresh_checksums(&mut f);
                        variants.push(f);
                    }
                }
                for cut in 0..frame.len() {
                    variants.push(frame[..cut].to_vec());
                }
                let mut longer = frame.clone();
                longer.extend_from_slice(&[0; 9]);
                variants.push(longer);
                for f in variants {
                    if let Some(fast) = fast_udp(&f, &local) {
                        taken += 1;
                        assert_eq!(Ok(fast), parse_frame_checked(&f, &local), "{f:02x?}");
                    }
                }
            }
        }
        assert!(taken > 1000, "{taken}");
    }

    #[test]
    fn ipv4_length_classification() {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(classify_ipv4_len(&h), DropReason::Truncated);
        h[0] = 0x43;
        assert_eq!(classify_ipv4_len(&h), DropReason::BadLength);
        h[0] = 0x4f;
        assert_eq!(classify_ipv4_len(&h), DropReason::BadLength);
        h[0] = 0x65;
        assert_eq!(classify_ipv4_len(&h), DropReason::BadVersion);
        assert_eq!(classify_ipv4_len(&h[..19]), DropReason::Truncated);
    }
}
