//! The wire format: checked typed views over datagram bytes and their
//! high-level representations.
//!
//! The format is specified in `docs/reliable-datagrams.md`; this module is
//! its executable form. Every packet starts with a 12-byte common header:
//!
//! ```text
//!  0       1       2               4                               12
//! +-------+-------+---------------+-------------------------------+
//! |version| kind  |     flags     |  destination connection id    |
//! +-------+-------+---------------+-------------------------------+
//! ```
//!
//! followed by a fixed, kind-specific part (and, for [`Kind::Ack`], up to
//! [`MAX_SACK_WORDS`] SACK words; for [`Kind::Data`], the payload). All
//! integers are big-endian.
//!
//! [`Packet::new_checked`] validates the version, the kind and every
//! length before any accessor runs, so accessors on a checked packet never
//! index out of bounds; [`Repr::parse`] then validates field values.
//! Neither panics on any input.

use core::fmt;

/// The protocol version this crate speaks. A datagram whose first byte is
/// another value is dropped (and counted) without further parsing.
pub const VERSION: u8 = 1;

/// Length of the common header shared by every packet kind.
pub const HEADER_LEN: usize = 12;
/// Length of an INIT or ACCEPT packet (INIT is padded to ACCEPT's size so
/// that answering it never amplifies traffic).
pub const HANDSHAKE_LEN: usize = 48;
/// Length of a DATA packet's header; the payload follows.
pub const DATA_HEADER_LEN: usize = 40;
/// Length of an ACK packet without SACK words.
pub const ACK_MIN_LEN: usize = 24;
/// Length of a CLOSE packet.
pub const CLOSE_LEN: usize = 24;
/// Most SACK words an ACK carries (each covers 64 packets after the
/// cumulative ack: 512 packets in all).
pub const MAX_SACK_WORDS: usize = 8;
/// Largest ACK packet.
pub const ACK_MAX_LEN: usize = ACK_MIN_LEN + 8 * MAX_SACK_WORDS;
/// Smallest fragment payload size a peer may announce.
pub const MIN_PAYLOAD: u16 = 64;

/// Flag: the receiver of this packet must answer with an ACK at once
/// (keepalives and credit probes).
pub const FLAG_ACK_REQUEST: u16 = 0x0001;
/// Flag on CLOSE: this CLOSE answers a CLOSE (the close is complete).
pub const FLAG_CLOSE_REPLY: u16 = 0x0002;

/// CLOSE code: an orderly close requested by the application.
pub const CLOSE_NORMAL: u32 = 0;
/// CLOSE code: the server refuses the connection (not accepting, or full).
pub const CLOSE_REFUSED: u32 = 1;
/// CLOSE code: the peer violated the protocol.
pub const CLOSE_PROTOCOL: u32 = 2;

/// Why bytes are not a valid packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the common header or than its kind's fixed part.
    Truncated,
    /// The version byte is not [`VERSION`].
    Version(u8),
    /// The kind byte is not a known [`Kind`].
    UnknownKind(u8),
    /// A length or field value is out of its allowed range.
    Malformed,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "truncated packet"),
            WireError::Version(v) => write!(f, "unknown protocol version {v}"),
            WireError::UnknownKind(k) => write!(f, "unknown packet kind {k}"),
            WireError::Malformed => write!(f, "malformed packet"),
        }
    }
}

impl std::error::Error for WireError {}

/// Packet kinds (byte 1 of the common header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client → server: opens a connection.
    Init = 1,
    /// Server → client: accepts an INIT.
    Accept = 2,
    /// A fragment of a message, with a piggybacked cumulative ack and credit.
    Data = 3,
    /// Cumulative ack, credit and SACK bitmap; with [`FLAG_ACK_REQUEST`] a
    /// keepalive or credit probe.
    Ack = 4,
    /// Closes a connection (or refuses one).
    Close = 5,
}

impl Kind {
    /// The kind for a wire byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Init,
            2 => Kind::Accept,
            3 => Kind::Data,
            4 => Kind::Ack,
            5 => Kind::Close,
            _ => return None,
        })
    }

    /// Length of this kind's fixed part (common header included).
    pub fn min_len(self) -> usize {
        match self {
            Kind::Init | Kind::Accept => HANDSHAKE_LEN,
            Kind::Data => DATA_HEADER_LEN,
            Kind::Ack => ACK_MIN_LEN,
            Kind::Close => CLOSE_LEN,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const KIND: usize = 1;
    pub const FLAGS: Range<usize> = 2..4;
    pub const DST: Range<usize> = 4..12;
    // INIT / ACCEPT
    pub const SRC: Range<usize> = 12..20;
    pub const EPOCH: Range<usize> = 20..28;
    pub const MAX_PAYLOAD: Range<usize> = 28..30;
    pub const RECV_WINDOW: Range<usize> = 32..36;
    pub const MAX_MESSAGE: Range<usize> = 36..40;
    pub const ECHO_EPOCH: Range<usize> = 40..48;
    // DATA
    pub const DSN: Range<usize> = 12..16;
    pub const MSG_SEQ: Range<usize> = 16..20;
    pub const MSG_LEN: Range<usize> = 20..24;
    pub const FRAG_INDEX: Range<usize> = 24..28;
    pub const FRAG_COUNT: Range<usize> = 28..32;
    pub const DATA_ACK: Range<usize> = 32..36;
    pub const DATA_CREDIT: Range<usize> = 36..40;
    // ACK
    pub const ACK: Range<usize> = 12..16;
    pub const CREDIT: Range<usize> = 16..20;
    pub const SACK_WORDS: usize = 20;
    // CLOSE
    pub const CLOSE_SRC: Range<usize> = 12..20;
    pub const CLOSE_CODE: Range<usize> = 20..24;
}

fn rd16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[r]);
    u16::from_be_bytes(a)
}
fn rd32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}
fn rd64(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_be_bytes(a)
}

/// A read/write view of a packet in a buffer.
///
/// Build it with [`Packet::new_checked`] for received bytes: the accessors
/// of a checked packet never panic. [`Packet::new_unchecked`] is for
/// buffers this crate is about to fill (emit).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking anything. Accessors may panic on a
    /// short buffer; use only to emit into a buffer of the right size.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps received bytes, checking the version, the kind and that the
    /// buffer holds the kind's fixed part (and, for ACK, its SACK words).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let p = Packet { buffer };
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Packet::new_checked`].
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VERSION] != VERSION {
            return Err(WireError::Version(b[field::VERSION]));
        }
        let kind = Kind::from_u8(b[field::KIND]).ok_or(WireError::UnknownKind(b[field::KIND]))?;
        if b.len() < kind.min_len() {
            return Err(WireError::Truncated);
        }
        match kind {
            Kind::Ack => {
                let words = b[field::SACK_WORDS] as usize;
                if words > MAX_SACK_WORDS {
                    return Err(WireError::Malformed);
                }
                if b.len() != ACK_MIN_LEN + 8 * words {
                    return Err(WireError::Malformed);
                }
            }
            Kind::Init | Kind::Accept | Kind::Close => {
                if b.len() != kind.min_len() {
                    return Err(WireError::Malformed);
                }
            }
            Kind::Data => {}
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Byte 0: the protocol version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    /// Byte 1: the packet kind (a checked packet's is always known).
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.buffer.as_ref()[field::KIND])
    }
    /// Bytes 2..4: flags.
    pub fn flags(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::FLAGS)
    }
    /// Bytes 4..12: the destination connection id (0 in INIT).
    pub fn dst_conn(&self) -> u64 {
        rd64(self.buffer.as_ref(), field::DST)
    }
    /// INIT/ACCEPT: the sender's connection id.
    pub fn src_conn(&self) -> u64 {
        rd64(self.buffer.as_ref(), field::SRC)
    }
    /// INIT/ACCEPT: the sender endpoint's epoch (random per incarnation).
    pub fn epoch(&self) -> u64 {
        rd64(self.buffer.as_ref(), field::EPOCH)
    }
    /// INIT/ACCEPT: the largest DATA payload the sender accepts.
    pub fn max_payload(&self) -> u16 {
        rd16(self.buffer.as_ref(), field::MAX_PAYLOAD)
    }
    /// INIT/ACCEPT: the sender's receive window, in packets (initial credit).
    pub fn recv_window(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::RECV_WINDOW)
    }
    /// INIT/ACCEPT: the largest message the sender accepts, in bytes.
    pub fn max_message(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::MAX_MESSAGE)
    }
    /// ACCEPT: the client's epoch, echoed (INIT: zero padding).
    pub fn echo_epoch(&self) -> u64 {
        rd64(self.buffer.as_ref(), field::ECHO_EPOCH)
    }
    /// DATA: the packet (data) sequence number, low 32 bits.
    pub fn dsn(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::DSN)
    }
    /// DATA: the message sequence number.
    pub fn msg_seq(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::MSG_SEQ)
    }
    /// DATA: the whole message's length in bytes.
    pub fn msg_len(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::MSG_LEN)
    }
    /// DATA: this fragment's index in its message.
    pub fn frag_index(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::FRAG_INDEX)
    }
    /// DATA: the message's number of fragments.
    pub fn frag_count(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::FRAG_COUNT)
    }
    /// DATA/ACK: cumulative ack: the next packet sequence number expected.
    pub fn ack(&self) -> u32 {
        let r = if self.kind() == Some(Kind::Data) {
            field::DATA_ACK
        } else {
            field::ACK
        };
        rd32(self.buffer.as_ref(), r)
    }
    /// DATA/ACK: credit: the sequence number the peer may send up to
    /// (exclusive).
    pub fn credit(&self) -> u32 {
        let r = if self.kind() == Some(Kind::Data) {
            field::DATA_CREDIT
        } else {
            field::CREDIT
        };
        rd32(self.buffer.as_ref(), r)
    }
    /// ACK: number of SACK words.
    pub fn sack_words(&self) -> usize {
        self.buffer.as_ref()[field::SACK_WORDS] as usize
    }
    /// ACK: SACK word `i`: bit `j` set means packet `ack + 1 + 64·i + j`
    /// was received.
    pub fn sack_word(&self, i: usize) -> u64 {
        let at = ACK_MIN_LEN + 8 * i;
        rd64(self.buffer.as_ref(), at..at + 8)
    }
    /// CLOSE: the sender's connection id (lets a peer that lost state
    /// answer a repeated CLOSE).
    pub fn close_src(&self) -> u64 {
        rd64(self.buffer.as_ref(), field::CLOSE_SRC)
    }
    /// CLOSE: the reason code.
    pub fn close_code(&self) -> u32 {
        rd32(self.buffer.as_ref(), field::CLOSE_CODE)
    }
    /// DATA: the payload (empty for other kinds).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        if self.kind() == Some(Kind::Data) {
            &b[DATA_HEADER_LEN..]
        } else {
            &[]
        }
    }
}

fn wr(b: &mut [u8], r: core::ops::Range<usize>, v: &[u8]) {
    b[r].copy_from_slice(v);
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn b(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Writes the common header.
    pub fn set_header(&mut self, kind: Kind, flags: u16, dst: u64) {
        let b = self.b();
        b[field::VERSION] = VERSION;
        b[field::KIND] = kind as u8;
        wr(b, field::FLAGS, &flags.to_be_bytes());
        wr(b, field::DST, &dst.to_be_bytes());
    }
    /// Sets an INIT/ACCEPT's fields (bytes 12..48).
    pub fn set_handshake(&mut self, h: &Handshake, echo_epoch: u64) {
        let b = self.b();
        wr(b, field::SRC, &h.src_conn.to_be_bytes());
        wr(b, field::EPOCH, &h.epoch.to_be_bytes());
        wr(b, field::MAX_PAYLOAD, &h.max_payload.to_be_bytes());
        wr(b, 30..32, &[0, 0]);
        wr(b, field::RECV_WINDOW, &h.recv_window.to_be_bytes());
        wr(b, field::MAX_MESSAGE, &h.max_message.to_be_bytes());
        wr(b, field::ECHO_EPOCH, &echo_epoch.to_be_bytes());
    }
    /// Sets a DATA packet's header fields (bytes 12..40).
    pub fn set_data(&mut self, d: &DataHeader) {
        let b = self.b();
        wr(b, field::DSN, &d.dsn.to_be_bytes());
        wr(b, field::MSG_SEQ, &d.msg_seq.to_be_bytes());
        wr(b, field::MSG_LEN, &d.msg_len.to_be_bytes());
        wr(b, field::FRAG_INDEX, &d.frag_index.to_be_bytes());
        wr(b, field::FRAG_COUNT, &d.frag_count.to_be_bytes());
        wr(b, field::DATA_ACK, &d.ack.to_be_bytes());
        wr(b, field::DATA_CREDIT, &d.credit.to_be_bytes());
    }
    /// Sets an ACK's fields and SACK words (bytes 12..24+8n).
    pub fn set_ack(&mut self, a: &AckRepr) {
        let b = self.b();
        wr(b, field::ACK, &a.ack.to_be_bytes());
        wr(b, field::CREDIT, &a.credit.to_be_bytes());
        let n = a.sack_len.min(MAX_SACK_WORDS as u8);
        b[field::SACK_WORDS] = n;
        b[21..24].copy_from_slice(&[0, 0, 0]);
        for i in 0..n as usize {
            let at = ACK_MIN_LEN + 8 * i;
            wr(b, at..at + 8, &a.sack[i].to_be_bytes());
        }
    }
    /// Sets a CLOSE's fields.
    pub fn set_close(&mut self, src: u64, code: u32) {
        let b = self.b();
        wr(b, field::CLOSE_SRC, &src.to_be_bytes());
        wr(b, field::CLOSE_CODE, &code.to_be_bytes());
    }
    /// DATA: the mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.b()[DATA_HEADER_LEN..]
    }
}

/// INIT and ACCEPT contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The sender's connection id (random, never 0).
    pub src_conn: u64,
    /// The sender endpoint's epoch.
    pub epoch: u64,
    /// The largest DATA payload the sender accepts (≥ [`MIN_PAYLOAD`]).
    pub max_payload: u16,
    /// The sender's receive window in packets (≥ 1).
    pub recv_window: u32,
    /// The largest message the sender accepts.
    pub max_message: u32,
}

/// DATA header fields (the payload travels separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// Packet sequence number (low 32 bits).
    pub dsn: u32,
    /// Message sequence number.
    pub msg_seq: u32,
    /// Message length.
    pub msg_len: u32,
    /// Fragment index, `< frag_count`.
    pub frag_index: u32,
    /// Fragment count, `≥ 1`.
    pub frag_count: u32,
    /// Piggybacked cumulative ack.
    pub ack: u32,
    /// Piggybacked credit.
    pub credit: u32,
}

/// ACK contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRepr {
    /// Cumulative ack: every packet before it was received.
    pub ack: u32,
    /// Credit: the peer may send packets with sequence numbers below it.
    pub credit: u32,
    /// Number of valid words in `sack`.
    pub sack_len: u8,
    /// SACK words: bit `j` of word `i` is packet `ack + 1 + 64·i + j`.
    pub sack: [u64; MAX_SACK_WORDS],
}

/// A parsed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repr<'a> {
    /// INIT (`dst` is 0).
    Init {
        /// Flags.
        flags: u16,
        /// The handshake fields.
        hs: Handshake,
    },
    /// ACCEPT.
    Accept {
        /// Flags.
        flags: u16,
        /// The client's connection id.
        dst: u64,
        /// The handshake fields.
        hs: Handshake,
        /// The client's epoch, echoed.
        echo_epoch: u64,
    },
    /// DATA.
    Data {
        /// Flags.
        flags: u16,
        /// Destination connection id.
        dst: u64,
        /// Header fields.
        hdr: DataHeader,
        /// The fragment's bytes.
        payload: &'a [u8],
    },
    /// ACK.
    Ack {
        /// Flags.
        flags: u16,
        /// Destination connection id.
        dst: u64,
        /// Ack fields.
        ack: AckRepr,
    },
    /// CLOSE.
    Close {
        /// Flags.
        flags: u16,
        /// Destination connection id.
        dst: u64,
        /// The sender's connection id.
        src: u64,
        /// Reason code.
        code: u32,
    },
}

impl<'a> Repr<'a> {
    /// Parses a checked packet, validating field values: connection ids
    /// nonzero where required, handshake parameters in range, fragment
    /// index below count, count ≥ 1, a message length no larger than the
    /// fragments can carry.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a Packet<&'a T>) -> Result<Repr<'a>, WireError> {
        p.check()?;
        let flags = p.flags();
        let dst = p.dst_conn();
        let kind = p.kind().ok_or(WireError::Malformed)?;
        let hs = || Handshake {
            src_conn: p.src_conn(),
            epoch: p.epoch(),
            max_payload: p.max_payload(),
            recv_window: p.recv_window(),
            max_message: p.max_message(),
        };
        let check_hs = |h: &Handshake| {
            if h.src_conn == 0 || h.max_payload < MIN_PAYLOAD || h.recv_window == 0 {
                Err(WireError::Malformed)
            } else {
                Ok(())
            }
        };
        Ok(match kind {
            Kind::Init => {
                let h = hs();
                check_hs(&h)?;
                if dst != 0 || p.echo_epoch() != 0 {
                    return Err(WireError::Malformed);
                }
                Repr::Init { flags, hs: h }
            }
            Kind::Accept => {
                let h = hs();
                check_hs(&h)?;
                if dst == 0 {
                    return Err(WireError::Malformed);
                }
                Repr::Accept {
                    flags,
                    dst,
                    hs: h,
                    echo_epoch: p.echo_epoch(),
                }
            }
            Kind::Data => {
                let hdr = DataHeader {
                    dsn: p.dsn(),
                    msg_seq: p.msg_seq(),
                    msg_len: p.msg_len(),
                    frag_index: p.frag_index(),
                    frag_count: p.frag_count(),
                    ack: p.ack(),
                    credit: p.credit(),
                };
                if dst == 0 || hdr.frag_count == 0 || hdr.frag_index >= hdr.frag_count {
                    return Err(WireError::Malformed);
                }
                let payload = p.payload();
                if payload.len() > hdr.msg_len as usize {
                    return Err(WireError::Malformed);
                }
                Repr::Data {
                    flags,
                    dst,
                    hdr,
                    payload,
                }
            }
            Kind::Ack => {
                if dst == 0 {
                    return Err(WireError::Malformed);
                }
                let n = p.sack_words();
                let mut sack = [0u64; MAX_SACK_WORDS];
                for (i, w) in sack.iter_mut().enumerate().take(n) {
                    *w = p.sack_word(i);
                }
                Repr::Ack {
                    flags,
                    dst,
                    ack: AckRepr {
                        ack: p.ack(),
                        credit: p.credit(),
                        sack_len: n as u8,
                        sack,
                    },
                }
            }
            Kind::Close => {
                if dst == 0 {
                    return Err(WireError::Malformed);
                }
                Repr::Close {
                    flags,
                    dst,
                    src: p.close_src(),
                    code: p.close_code(),
                }
            }
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::Init { .. } | Repr::Accept { .. } => HANDSHAKE_LEN,
            Repr::Data { payload, .. } => DATA_HEADER_LEN + payload.len(),
            Repr::Ack { ack, .. } => {
                ACK_MIN_LEN + 8 * (ack.sack_len.min(MAX_SACK_WORDS as u8) as usize)
            }
            Repr::Close { .. } => CLOSE_LEN,
        }
    }

    /// Writes the packet at the start of `buf`, returning its length, or
    /// `None` when `buf` is shorter than [`Repr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let mut p = Packet::new_unchecked(buf.get_mut(..len)?);
        match self {
            Repr::Init { flags, hs } => {
                p.set_header(Kind::Init, *flags, 0);
                p.set_handshake(hs, 0);
            }
            Repr::Accept {
                flags,
                dst,
                hs,
                echo_epoch,
            } => {
                p.set_header(Kind::Accept, *flags, *dst);
                p.set_handshake(hs, *echo_epoch);
            }
            Repr::Data {
                flags,
                dst,
                hdr,
                payload,
            } => {
                p.set_header(Kind::Data, *flags, *dst);
                p.set_data(hdr);
                p.payload_mut().copy_from_slice(payload);
            }
            Repr::Ack { flags, dst, ack } => {
                p.set_header(Kind::Ack, *flags, *dst);
                p.set_ack(ack);
            }
            Repr::Close {
                flags,
                dst,
                src,
                code,
            } => {
                p.set_header(Kind::Close, *flags, *dst);
                p.set_close(*src, *code);
            }
        }
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(r: Repr<'_>) {
        let mut buf = [0u8; 256];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(n, r.buffer_len());
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn every_kind_roundtrips() {
        let hs = Handshake {
            src_conn: 7,
            epoch: 9,
            max_payload: 1432,
            recv_window: 100,
            max_message: 1 << 24,
        };
        roundtrip(Repr::Init { flags: 0, hs });
        roundtrip(Repr::Accept {
            flags: 0,
            dst: 5,
            hs,
            echo_epoch: 11,
        });
        let hdr = DataHeader {
            dsn: 1,
            msg_seq: 2,
            msg_len: 5,
            frag_index: 0,
            frag_count: 1,
            ack: 3,
            credit: 4,
        };
        roundtrip(Repr::Data {
            flags: 0,
            dst: 5,
            hdr,
            payload: b"hello",
        });
        let mut sack = [0u64; MAX_SACK_WORDS];
        sack[0] = 0b101;
        sack[1] = u64::MAX;
        roundtrip(Repr::Ack {
            flags: FLAG_ACK_REQUEST,
            dst: 5,
            ack: AckRepr {
                ack: 1,
                credit: 2,
                sack_len: 2,
                sack,
            },
        });
        roundtrip(Repr::Close {
            flags: FLAG_CLOSE_REPLY,
            dst: 5,
            src: 6,
            code: CLOSE_REFUSED,
        });
    }

    #[test]
    fn truncations_and_versions_are_errors() {
        let hs = Handshake {
            src_conn: 7,
            epoch: 9,
            max_payload: 1432,
            recv_window: 100,
            max_message: 1 << 24,
        };
        let mut buf = [0u8; 64];
        let n = Repr::Init { flags: 0, hs }.emit(&mut buf).unwrap();
        for cut in 0..n {
            assert!(Packet::new_checked(&buf[..cut]).is_err(), "cut {cut}");
        }
        buf[0] = 2;
        assert_eq!(
            Packet::new_checked(&buf[..n]).unwrap_err(),
            WireError::Version(2)
        );
        buf[0] = VERSION;
        buf[1] = 99;
        assert_eq!(
            Packet::new_checked(&buf[..n]).unwrap_err(),
            WireError::UnknownKind(99)
        );
    }
}
