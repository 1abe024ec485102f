//! The Internet checksum (RFC 1071), fast: the stack computes it on every
//! datagram it sends and verifies it on every datagram it receives when no
//! offload has done so, so it is on the per-packet path.
//!
//! smoltcp's `checksum::data` adds one big-endian 16-bit word at a time
//! with a bounds check per word; here the data is summed eight bytes at a
//! time as native-endian 32-bit halves into 64-bit accumulators (no
//! carries are lost before 2^32 additions), 32 bytes per step into four
//! independent sums, which the compiler vectorises. (An add-with-carry
//! chain over 64-bit words runs fewer instructions but was slower on the
//! 64-100 byte datagrams of `insane-bench dpdk-rtt`: each word waits for
//! the previous carry.)
//! RFC 1071 section 2(B): the one's complement sum is independent of byte
//! order, so the native-endian sum, folded to 16 bits, is the big-endian
//! sum with its bytes swapped; [`fold`] swaps them back.
//!
//! A partial sum is a `u64` accumulator: sums of pieces that start at even
//! offsets of the checksummed whole can simply be added (a pseudo-header,
//! a header, a payload).

/// Adds `data` to the accumulator `acc`. `data` must start at an even
/// offset of what is checksummed (a trailing odd byte is padded with a
/// zero, as RFC 1071 says for the end of the data).
#[inline(always)]
pub(crate) fn add(mut acc: u64, data: &[u8]) -> u64 {
    // 32 bytes at a time into four independent sums of 32-bit words.
    let mut sums = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (sum, pair) in sums.iter_mut().zip(block.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(pair);
            let w = u64::from_ne_bytes(w);
            *sum += (w & 0xffff_ffff) + (w >> 32);
        }
    }
    acc += sums.iter().sum::<u64>();
    let mut chunks = blocks.remainder().chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_ne_bytes(w);
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // The last 1 to 7 bytes, zero-padded, in fixed-size pieces (a
        // variable-length copy here was a call to memcpy).
        let mut w = [0u8; 8];
        let mut at = 0;
        if let (Some(four), Some(to)) = (rest.get(..4), w.get_mut(..4)) {
            to.copy_from_slice(four);
            at = 4;
        }
        if let (Some(two), Some(to)) = (rest.get(at..at + 2), w.get_mut(at..at + 2)) {
            to.copy_from_slice(two);
            at += 2;
        }
        if let (Some(&one), Some(to)) = (rest.get(at), w.get_mut(at)) {
            *to = one;
        }
        let w = u64::from_ne_bytes(w);
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    acc
}

/// Adds a big-endian 16-bit word (a header field given as a number) to
/// the accumulator.
#[inline]
pub(crate) fn add_u16(acc: u64, word: u16) -> u64 {
    acc + u64::from(u16::from_ne_bytes(word.to_be_bytes()))
}

/// Adds four bytes given by value (an IPv4 address) to the accumulator,
/// without going through memory.
#[inline]
pub(crate) fn add_u32(acc: u64, bytes: [u8; 4]) -> u64 {
    let w = u32::from_ne_bytes(bytes);
    acc + u64::from(w & 0xffff) + u64::from(w >> 16)
}

/// Folds the accumulator to the 16-bit one's complement sum, in network
/// byte order as a number (what smoltcp's `checksum::data` returns).
#[inline]
pub(crate) fn fold(acc: u64) -> u16 {
    // Four fixed end-around-carry steps, no loop: 64 -> 33 -> 32 bits,
    // then 32 -> 17 -> 16.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    // `acc < 2^16` now: the native-endian sum; swap to network order.
    u16::from_be_bytes((acc as u16).to_ne_bytes())
}

/// The checksum field value for data whose sum (with the field zeroed) is
/// `acc`: the complement of the folded sum.
#[inline]
pub(crate) fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// Whether data including its checksum field sums to all ones (a correct
/// checksum).
///
/// Under `cfg(fuzzing)` always true, as smoltcp's `verify_checksum` is,
/// so that the fuzz target (`stack/fuzz`) reaches past the checksums; bad
/// checksums are covered by the tests.
#[inline]
#[allow(unexpected_cfgs)]
pub(crate) fn is_valid(acc: u64) -> bool {
    cfg!(fuzzing) || fold(acc) == 0xffff
}

/// The IPv4 pseudo-header sum of a UDP datagram (RFC 768): addresses,
/// protocol 17, UDP length.
#[inline]
pub(crate) fn udp_pseudo_header(src: [u8; 4], dst: [u8; 4], udp_len: u16) -> u64 {
    add_u16(add_u16(add_u32(add_u32(0, src), dst), 17), udp_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 as written: big-endian 16-bit words, a trailing odd byte
    /// as the high byte of a word (smoltcp's `checksum::data`, which is
    /// not public).
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            acc += hi | pair.get(1).copied().map_or(0, u32::from);
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn matches_rfc1071_on_every_length_and_offset() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 131 + 7) as u8).collect();
        for start in [0usize, 2, 4, 6] {
            for len in 0..bytes.len() - start {
                let d = &bytes[start..start + len];
                assert_eq!(fold(add(0, d)), reference(d), "len {len}");
            }
        }
    }

    #[test]
    fn all_ones_and_zero() {
        assert_eq!(fold(add(0, &[])), 0);
        assert_eq!(fold(add(0, &[0xff; 64])), 0xffff);
        let d = [0xffu8; 1500];
        assert_eq!(fold(add(0, &d)), reference(&d));
    }

    #[test]
    fn pieces_add_up() {
        let d: Vec<u8> = (0..100u8).collect();
        let whole = fold(add(0, &d));
        let split = fold(add(add(0, &d[..42]), &d[42..]));
        assert_eq!(whole, split);
        assert_eq!(fold(add_u16(0, 0x1234)), 0x1234);
        assert_eq!(fold(add_u32(0, [1, 2, 3, 4])), reference(&[1, 2, 3, 4]));
        let pseudo = [10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 72];
        assert_eq!(
            fold(udp_pseudo_header([10, 0, 0, 1], [10, 0, 0, 2], 72)),
            reference(&pseudo)
        );
    }
}
