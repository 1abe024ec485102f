//! A ring of bits addressed by absolute 64-bit sequence numbers.

/// Bits for a sliding range of sequence numbers, stored modulo a power of
/// two. The user guarantees that the live range is shorter than the
/// capacity and clears bits as the range slides.
#[derive(Debug, Clone)]
pub(crate) struct BitRing {
    words: Vec<u64>,
    mask: u64,
}

impl BitRing {
    /// A ring holding at least `bits` bits (rounded to a power of two ≥ 128).
    pub(crate) fn new(bits: u64) -> BitRing {
        let cap = bits.max(128).next_power_of_two();
        BitRing {
            words: vec![0; (cap / 64) as usize],
            mask: cap - 1,
        }
    }

    #[inline]
    fn at(&self, pos: u64) -> (usize, u32) {
        let p = pos & self.mask;
        ((p / 64) as usize, (p % 64) as u32)
    }

    #[inline]
    pub(crate) fn get(&self, pos: u64) -> bool {
        let (w, b) = self.at(pos);
        self.words[w] >> b & 1 == 1
    }

    #[inline]
    pub(crate) fn set(&mut self, pos: u64) {
        let (w, b) = self.at(pos);
        self.words[w] |= 1 << b;
    }

    #[inline]
    pub(crate) fn clear(&mut self, pos: u64) {
        let (w, b) = self.at(pos);
        self.words[w] &= !(1 << b);
    }

    /// The 64 bits for `pos..pos + 64` (bit `i` is `pos + i`).
    #[inline]
    pub(crate) fn word_at(&self, pos: u64) -> u64 {
        let (w, b) = self.at(pos);
        let lo = self.words[w] >> b;
        if b == 0 {
            lo
        } else {
            let next = (w + 1) % self.words.len();
            lo | self.words[next] << (64 - b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BitRing;

    #[test]
    fn unaligned_words_wrap_around() {
        let mut r = BitRing::new(128);
        for p in [120u64, 127, 128, 130, 183] {
            r.set(p);
        }
        let w = r.word_at(120);
        assert_eq!(w, 1 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 63);
        r.clear(128);
        assert!(!r.get(128));
        assert!(r.get(130));
    }
}
