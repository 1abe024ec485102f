//! UMEM memory and the four AF_XDP rings.
//!
//! Each ring is a power-of-two array of descriptors shared with the kernel
//! plus a producer and a consumer index (free-running `u32`s) and a flags
//! word, at the offsets `getsockopt(XDP_MMAP_OFFSETS)` reports. One side
//! produces, the other consumes:
//!
//! | ring       | we       | kernel   | entries     |
//! |------------|----------|----------|-------------|
//! | fill       | produce  | consume  | UMEM addr   |
//! | completion | consume  | produce  | UMEM addr   |
//! | RX         | consume  | produce  | `xdp_desc`  |
//! | TX         | produce  | consume  | `xdp_desc`  |
//!
//! Memory ordering: a producer writes descriptors, then publishes the new
//! producer index with a Release store; a consumer reads the producer
//! index with an Acquire load before reading descriptors, and hands slots
//! back by storing the consumer index with Release (so its reads of the
//! descriptors happen before the producer may overwrite them). The
//! producer reads the consumer index with Acquire before reusing slots.

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering, fence};

/// 2 MiB, the huge page size used for UMEM when available.
const HUGE_PAGE: usize = 2 << 20;

/// An anonymous memory mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of zeroed anonymous memory for a UMEM: huge pages
    /// first when `huge` (length rounded up to 2 MiB), else regular pages.
    /// Returns the mapping and, when huge pages were wanted but not used,
    /// why.
    pub(crate) fn anonymous(len: usize, huge: bool) -> io::Result<(Self, Option<String>)> {
        let mut why_not = None;
        if huge {
            let huge_len = len.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            match Self::map(
                huge_len,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | libc::MAP_POPULATE,
                -1,
                0,
            ) {
                Ok(m) => return Ok((m, None)),
                Err(e) => {
                    why_not = Some(format!(
                        "no huge pages for the UMEM ({e}; see /proc/sys/vm/nr_hugepages), using regular pages"
                    ))
                }
            }
        }
        let m = Self::map(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
        .map_err(|e| io::Error::new(e.kind(), format!("cannot allocate a {len}-byte UMEM: {e}")))?;
        Ok((m, why_not))
    }

    /// Maps a ring of an AF_XDP socket.
    fn ring(fd: RawFd, len: usize, pgoff: libc::off_t) -> io::Result<Self> {
        Self::map(len, libc::MAP_SHARED | libc::MAP_POPULATE, fd, pgoff)
    }

    fn map(len: usize, flags: libc::c_int, fd: RawFd, off: libc::off_t) -> io::Result<Self> {
        // SAFETY: a fresh mapping chosen by the kernel (null hint) cannot
        // alias existing Rust objects; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: NonNull::new(ptr.cast()).expect("mmap returned null"),
            len,
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own this mapping; nothing borrows it any more (frames
        // and rings that point into it hold the owner alive).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One mapped ring with our cached copies of the indices.
#[derive(Debug)]
pub(crate) struct Ring<T> {
    /// Keeps the ring mapped (the pointers below point into it).
    #[cfg_attr(not(test), allow(dead_code))]
    map: Mapping,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    /// Producer rings: our next producer index (published or not).
    /// Consumer rings: the last producer index we loaded.
    cached_prod: u32,
    /// Producer rings: the last consumer index we loaded.
    /// Consumer rings: our consumer index (released or not).
    cached_cons: u32,
    _marker: PhantomData<T>,
}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries at page offset `pgoff` of socket
    /// `fd`, laid out as `off` says.
    pub(crate) fn map(
        fd: RawFd,
        size: u32,
        off: &libc::xdp_ring_offset,
        pgoff: libc::off_t,
    ) -> io::Result<Self> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        let map = Mapping::ring(fd, len, pgoff)?;
        let at = |o: u64| {
            // SAFETY: the kernel's offsets lie inside the mapping it made
            // for this ring (`desc` + entries is the length we mapped).
            NonNull::new(unsafe { map.as_ptr().add(o as usize) }).expect("non-null")
        };
        let ring = Self {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            descs: at(off.desc).cast(),
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
            _marker: PhantomData,
            map,
        };
        // Start from the kernel's view (0 for a new socket).
        let mut ring = ring;
        ring.cached_prod = ring.producer().load(Ordering::Acquire);
        ring.cached_cons = ring.consumer().load(Ordering::Acquire);
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping, 4-byte aligned per the
        // kernel's layout; the kernel accesses it atomically too.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// Whether the kernel asks for a wake-up (`XDP_RING_NEED_WAKEUP`).
    pub(crate) fn needs_wakeup(&self) -> bool {
        // Order our preceding producer/consumer store before this load, so
        // we cannot miss a flag the kernel set after seeing an empty ring.
        fence(Ordering::SeqCst);
        // SAFETY: as for `producer`.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: `index & mask` < size, inside the descriptor array.
        unsafe { self.descs.as_ptr().add((index & self.mask) as usize) }
    }

    // ---- producer side (fill, TX) ----

    /// Free slots, reloading the consumer index when fewer than `want`
    /// seem free.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Writes `value` into the next slot without publishing it; `false`
    /// when the ring is full.
    pub(crate) fn push(&mut self, value: T) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        // SAFETY: the slot is free (the kernel consumed it: Acquire load
        // above), so the kernel does not read it until we publish.
        unsafe { self.slot(self.cached_prod).write(value) };
        self.cached_prod = self.cached_prod.wrapping_add(1);
        true
    }

    /// Publishes every pushed slot to the kernel.
    pub(crate) fn publish(&mut self) {
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Entries published or pushed but not yet consumed by the kernel
    /// (reloads the consumer index).
    pub(crate) fn pending(&mut self) -> u32 {
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    // ---- consumer side (completion, RX) ----

    /// Entries ready to consume (reloads the producer index when none are
    /// cached).
    pub(crate) fn available(&mut self) -> u32 {
        let cached = self.cached_prod.wrapping_sub(self.cached_cons);
        if cached > 0 {
            return cached;
        }
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Reloads and returns the kernel's producer index (consumer rings).
    pub(crate) fn refresh_producer(&mut self) -> u32 {
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_prod
    }

    /// Takes the next ready entry (call only when `available() > 0`) and
    /// advances our consumer index without releasing the slot.
    pub(crate) fn take(&mut self) -> T {
        debug_assert!(self.cached_prod != self.cached_cons);
        // SAFETY: the kernel published this slot (Acquire load of the
        // producer index in `available`) and does not overwrite it before
        // we release it.
        let value = unsafe { self.slot(self.cached_cons).read() };
        self.cached_cons = self.cached_cons.wrapping_add(1);
        value
    }

    /// Hands every taken slot back to the kernel.
    pub(crate) fn release(&mut self) {
        self.consumer().store(self.cached_cons, Ordering::Release);
    }

    #[cfg(test)]
    fn mapping_len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake "kernel" over an anonymous mapping laid out like a ring.
    fn fake_ring(size: u32) -> Ring<u64> {
        let off = libc::xdp_ring_offset {
            producer: 0,
            consumer: 64,
            flags: 128,
            desc: 192,
        };
        let len = off.desc as usize + size as usize * 8;
        let (map, _) = Mapping::anonymous(len, false).unwrap();
        // SAFETY: every offset is below `len`, inside the mapping.
        let at = |o: u64| NonNull::new(unsafe { map.as_ptr().add(o as usize) }).unwrap();
        Ring {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            descs: at(off.desc).cast(),
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
            _marker: PhantomData,
            map,
        }
    }

    #[test]
    fn producer_respects_the_consumer_and_wraps() {
        let mut r = fake_ring(4);
        assert!(r.mapping_len() >= 192 + 32);
        for i in 0..4 {
            assert!(r.push(i));
        }
        assert!(!r.push(99), "ring of 4 is full");
        r.publish();
        assert_eq!(r.producer().load(Ordering::Relaxed), 4);
        assert_eq!(r.pending(), 4);
        // The "kernel" consumes two.
        r.consumer().store(2, Ordering::Release);
        assert_eq!(r.free(1), 2);
        assert!(r.push(4) && r.push(5));
        r.publish();
        // Slots 0 and 1 were reused for 4 and 5.
        // SAFETY: the descriptor array holds 4 initialised u64 entries.
        let descs = unsafe { std::slice::from_raw_parts(r.descs.as_ptr(), 4) };
        assert_eq!(descs, &[4, 5, 2, 3]);
    }

    #[test]
    fn consumer_sees_only_published_entries_and_wraps_u32() {
        let mut r = fake_ring(8);
        // Start near u32::MAX to exercise wrap-around of the indices.
        let start = u32::MAX - 2;
        r.producer().store(start, Ordering::Relaxed);
        r.consumer().store(start, Ordering::Relaxed);
        r.cached_prod = start;
        r.cached_cons = start;
        assert_eq!(r.available(), 0);
        for i in 0..5u32 {
            // SAFETY: `slot` points inside the descriptor array.
            unsafe { r.slot(start.wrapping_add(i)).write(100 + i as u64) };
        }
        r.producer().store(start.wrapping_add(5), Ordering::Release);
        assert_eq!(r.available(), 5);
        let got: Vec<u64> = (0..5).map(|_| r.take()).collect();
        assert_eq!(got, [100, 101, 102, 103, 104]);
        assert_eq!(r.available(), 0);
        r.release();
        assert_eq!(r.consumer().load(Ordering::Relaxed), start.wrapping_add(5));
    }

    #[test]
    fn need_wakeup_flag_is_read() {
        let r = fake_ring(4);
        assert!(!r.needs_wakeup());
        // SAFETY: `flags` points into the live mapping.
        unsafe { r.flags.as_ref() }.store(libc::XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(r.needs_wakeup());
    }
}
