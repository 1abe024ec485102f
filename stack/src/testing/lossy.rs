//! [`LossyDevice`]: a [`FrameDevice`] wrapper that impairs what its device
//! receives — loss, duplication, reordering, corruption — with a seeded
//! generator, so a test of loss recovery sees the same faults on every
//! run. This kernel has no `netem` (`tc qdisc add ... netem`: "Specified
//! qdisc kind is unknown"), and an nftables drop rule in a bridge
//! namespace only loses frames; this wrapper also reorders, duplicates and
//! corrupts, on any device (the in-memory pair, AF_XDP, DPDK).
//!
//! Impairments apply on receive: wrap both ends of a link for faults both
//! ways. Transmit, buffers and everything else go straight to the wrapped
//! device. Delay is counted in receive polls (time is not read: the stack
//! never reads the clock), as part of reordering: a held-back frame is
//! delivered after 1 to `reorder_depth` later frames, or at the latest
//! after `reorder_depth` polls without one.
//!
//! ```
//! use std::time::Instant;
//! use insane_stack::testing::PairDevice;
//! use insane_stack::testing::lossy::{Impairments, LossyDevice};
//! use insane_stack::{EthernetAddress as Mac, Interface, InterfaceConfig};
//!
//! let (a, b) = PairDevice::pair(Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]), 1500);
//! // b receives through a link that loses 10% of the frames.
//! let b = LossyDevice::new(b, Impairments { loss: 0.1, ..Impairments::none() }, 7);
//! let mut a = Interface::new(a, InterfaceConfig::new("10.0.0.1/24".parse().unwrap()));
//! let mut b = Interface::new(b, InterfaceConfig::new("10.0.0.2/24".parse().unwrap()));
//! a.add_static_neighbor("10.0.0.2".parse().unwrap(), Mac([2, 0, 0, 0, 0, 2]));
//! let ea = a.bind(5000).unwrap();
//! let eb = b.bind(6000).unwrap();
//! let now = Instant::now();
//! for i in 0..1000u32 {
//!     let mut f = a.alloc_tx().unwrap();
//!     insane_stack::TxFrame::extend_from_slice(&mut f, &i.to_be_bytes());
//!     a.send_to(ea, "10.0.0.2:6000".parse().unwrap(), f, now).unwrap();
//!     b.poll(now);
//!     while b.recv_from(eb).is_some() {}
//! }
//! let faults = b.device().stats();
//! assert_eq!(faults.received, 1000);
//! assert!((60..140).contains(&faults.dropped), "{faults:?}");
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};

use smoltcp::wire::EthernetAddress;

use crate::device::FrameDevice;

/// What a [`LossyDevice`] does to received frames; probabilities are per
/// frame, from 0.0 (never) to 1.0 (always).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairments {
    /// A frame is dropped (the device's buffer goes back to its pool).
    pub loss: f64,
    /// A frame is delivered twice (the second time as a copy).
    pub duplicate: f64,
    /// A frame is held back and delivered after 1 to `reorder_depth`
    /// later frames.
    pub reorder: f64,
    /// How far a reordered frame may fall behind (at least 1).
    pub reorder_depth: usize,
    /// One byte of the frame, past the Ethernet header, is flipped (a
    /// checksum should catch it).
    pub corrupt: f64,
}

impl Impairments {
    /// A perfect link.
    pub const fn none() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_depth: 1,
            corrupt: 0.0,
        }
    }
}

impl Default for Impairments {
    fn default() -> Self {
        Self::none()
    }
}

/// What a [`LossyDevice`] did, frame by frame: `received` counts frames
/// from the wrapped device; each of them is dropped or delivered
/// (`delivered` includes duplicates, `held` is waiting to be reordered),
/// so `received + duplicated == dropped + delivered + held`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairmentStats {
    /// Frames the wrapped device received.
    pub received: u64,
    /// Frames lost on purpose.
    pub dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Frames held back and delivered late.
    pub reordered: u64,
    /// Frames with a flipped byte.
    pub corrupted: u64,
    /// Frames handed to the stack (duplicates included).
    pub delivered: u64,
    /// Frames held back right now.
    pub held: u64,
}

/// A received frame of a [`LossyDevice`]: the wrapped device's own, or a
/// copy (a duplicate).
pub enum LossyRx<R> {
    /// The device's frame (its buffer returns to the device when dropped).
    Device(R),
    /// A duplicate, on the heap.
    Copy(Vec<u8>),
}

impl<R: Deref<Target = [u8]>> Deref for LossyRx<R> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            LossyRx::Device(f) => f,
            LossyRx::Copy(v) => v,
        }
    }
}

impl<R: DerefMut<Target = [u8]>> DerefMut for LossyRx<R> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            LossyRx::Device(f) => f,
            LossyRx::Copy(v) => v,
        }
    }
}

impl<R> fmt::Debug for LossyRx<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossyRx::Device(_) => f.write_str("LossyRx::Device"),
            LossyRx::Copy(v) => write!(f, "LossyRx::Copy({} bytes)", v.len()),
        }
    }
}

/// A held-back frame and how many later frames (or empty polls) it still
/// waits for.
struct Held<R> {
    frame: LossyRx<R>,
    wait: usize,
}

/// A device whose receive path loses, duplicates, reorders and corrupts
/// frames (see the [module docs](self)).
pub struct LossyDevice<D: FrameDevice> {
    /// Before `inner`: fields drop in order, and held frames go back to
    /// the wrapped device's pool before the device goes.
    held: VecDeque<Held<D::Rx>>,
    inner: D,
    impairments: Impairments,
    rng: Rng,
    stats: ImpairmentStats,
}

impl<D: FrameDevice> fmt::Debug for LossyDevice<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LossyDevice")
            .field("impairments", &self.impairments)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<D: FrameDevice> LossyDevice<D>
where
    D::Rx: DerefMut<Target = [u8]>,
{
    /// Wraps `inner`; `seed` makes the faults reproducible (the same seed,
    /// impairments and traffic give the same faults).
    pub fn new(inner: D, impairments: Impairments, seed: u64) -> Self {
        Self {
            inner,
            impairments,
            rng: Rng::new(seed),
            held: VecDeque::new(),
            stats: ImpairmentStats::default(),
        }
    }

    /// Changes the impairments from now on (e.g. a clean start-up, then
    /// loss).
    pub fn set_impairments(&mut self, impairments: Impairments) {
        self.impairments = impairments;
    }

    /// What was done so far.
    pub fn stats(&self) -> ImpairmentStats {
        ImpairmentStats {
            held: self.held.len() as u64,
            ..self.stats
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The wrapped device; frames held back for reordering are dropped
    /// (back to its pool) first.
    pub fn into_inner(self) -> D {
        let Self { held, inner, .. } = self;
        drop(held);
        inner
    }

    /// One frame from the wrapped device through the impairments; what is
    /// delivered goes to `out`.
    fn impair(&mut self, frame: D::Rx, out: &mut impl FnMut(LossyRx<D::Rx>)) {
        self.stats.received += 1;
        let imp = self.impairments;
        // Frames held back wait for one more frame.
        self.release(out, false);
        if self.rng.chance(imp.loss) {
            self.stats.dropped += 1;
            return;
        }
        let mut frame = LossyRx::Device(frame);
        if self.rng.chance(imp.corrupt) && frame.len() > 14 {
            let at = 14 + self.rng.below(frame.len() - 14);
            let bit = 1u8 << self.rng.below(8);
            frame[at] ^= bit;
            self.stats.corrupted += 1;
        }
        if self.rng.chance(imp.duplicate) {
            self.stats.duplicated += 1;
            self.stats.delivered += 1;
            out(LossyRx::Copy(frame.to_vec()));
        }
        if self.rng.chance(imp.reorder) {
            let wait = 1 + self.rng.below(imp.reorder_depth.max(1));
            self.stats.reordered += 1;
            self.held.push_back(Held { frame, wait });
            return;
        }
        self.stats.delivered += 1;
        out(frame);
    }

    /// Delivers the held frames whose wait is over (`all`: every one).
    fn release(&mut self, out: &mut impl FnMut(LossyRx<D::Rx>), all: bool) {
        let mut i = 0;
        while i < self.held.len() {
            let h = &mut self.held[i];
            h.wait = h.wait.saturating_sub(1);
            if all || h.wait == 0 {
                if let Some(h) = self.held.remove(i) {
                    self.stats.delivered += 1;
                    out(h.frame);
                }
            } else {
                i += 1;
            }
        }
    }
}

impl<D: FrameDevice> FrameDevice for LossyDevice<D>
where
    D::Rx: DerefMut<Target = [u8]>,
{
    type Rx = LossyRx<D::Rx>;
    type Tx = D::Tx;

    fn mac(&self) -> EthernetAddress {
        self.inner.mac()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn poll_rx(&mut self, max: usize, out: &mut impl FnMut(Self::Rx)) -> usize {
        let mut received = Vec::new();
        let n = self.inner.poll_rx(max, &mut |f| received.push(f));
        let mut delivered = 0;
        let mut sink = |f: LossyRx<D::Rx>| {
            delivered += 1;
            out(f)
        };
        for frame in received {
            self.impair(frame, &mut sink);
        }
        if n == 0 {
            // An empty poll also moves held frames on, so the last frames
            // of a burst are not held forever.
            self.release(&mut sink, false);
        }
        delivered
    }

    fn alloc_tx(&mut self) -> Option<Self::Tx> {
        self.inner.alloc_tx()
    }

    fn transmit(&mut self, frame: Self::Tx) -> Result<(), Self::Tx> {
        self.inner.transmit(frame)
    }

    fn flush(&mut self) {
        self.inner.flush();
    }

    fn rx_checksum_verified(frame: &Self::Rx) -> bool {
        // A corrupted frame must be checked in software: trust nothing.
        let _ = frame;
        false
    }

    fn offload_tx_checksums(&mut self, frame: &mut Self::Tx) -> bool {
        self.inner.offload_tx_checksums(frame)
    }

    fn rx_into_tx(
        &mut self,
        frame: Self::Rx,
        data: std::ops::Range<usize>,
    ) -> Result<Self::Tx, Self::Rx> {
        match frame {
            LossyRx::Device(f) => self.inner.rx_into_tx(f, data).map_err(LossyRx::Device),
            copy => Err(copy),
        }
    }
}

/// xorshift64*: small, fast, seeded; enough for fault injection (not for
/// anything that must be unpredictable).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Zero is xorshift's fixed point.
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p` (0.0 never consumes a chance: a perfect
    /// link stays perfect whatever the seed).
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a float in [0, 1).
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
