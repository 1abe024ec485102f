//! Owned buffers the kernel may read or write while an operation is in
//! flight: [`IoBuf`] (source of a send/write), [`IoBufMut`] (target of a
//! receive/read) and [`Slice`] (a window into either).
//!
//! Completion-based I/O hands the buffer to the kernel: the operation owns
//! it until the completion arrives and gives it back in a [`BufResult`]. A
//! buffer whose future was dropped stays alive inside the driver until the
//! kernel is done with it, so the traits require `'static` and a pointer
//! that does not move when the buffer value moves (heap storage).
//!
//! Implemented for `Vec<u8>`, `Box<[u8]>`, `bytes::Bytes`/`BytesMut`,
//! `&'static [u8]` and `&'static str`.
//!
//! This crate is the traits' neutral home: the io_uring driver
//! (`insane-uring`) hands these buffers to the kernel, the epoll fallback
//! and the QoS layer's buffers implement or accept them, and none of those
//! has to name another's crate for it. `insane_net::owned` re-exports
//! them next to the socket methods that take them.

use std::io;
use std::ops::{Bound, RangeBounds};

/// The result of an owned-buffer operation: the outcome and the buffer,
/// returned in every case (tokio-uring's shape).
pub type BufResult<T, B> = (io::Result<T>, B);

/// A buffer the kernel may read from while an operation is in flight.
///
/// # Safety
/// Implementors guarantee that `stable_ptr()` points to at least
/// `bytes_total()` bytes, of which the first `bytes_init()` are
/// initialised, and that this memory stays valid and at the same address
/// while the value is alive, even when the value itself is moved (the
/// storage is on the heap or `'static`). Neither value may change unless
/// the buffer is accessed through `&mut self`.
pub unsafe trait IoBuf: 'static {
    /// Start of the buffer's memory; stable across moves of `self`.
    fn stable_ptr(&self) -> *const u8;

    /// Number of initialised bytes (what a send/write transmits).
    fn bytes_init(&self) -> usize;

    /// Total capacity in bytes (what a receive/read may fill).
    fn bytes_total(&self) -> usize;

    /// A window `range` of this buffer (indices into the whole capacity).
    /// Out-of-range bounds are clamped to the capacity instead of
    /// panicking; [`Slice::into_inner`] gives the buffer back.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let total = self.bytes_total();
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => total,
        }
        .min(total);
        let begin = match range.start_bound() {
            Bound::Included(&b) => b,
            Bound::Excluded(&b) => b.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .min(end);
        Slice {
            buf: self,
            begin,
            end,
        }
    }
}

/// A buffer the kernel may write into while an operation is in flight.
///
/// # Safety
/// As for [`IoBuf`]; additionally `stable_mut_ptr()` returns the same
/// address as `stable_ptr()` and is valid for writes of `bytes_total()`
/// bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer's memory, for writing; stable across moves.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the first `pos` bytes are now initialised (after the
    /// kernel wrote them). Never shrinks the initialised part.
    ///
    /// # Safety
    /// The first `pos` bytes (`pos <= bytes_total()`) must be initialised.
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's heap storage does not move when the Vec moves; capacity
// and length describe it exactly (a zero-capacity Vec has a dangling
// pointer and a total of 0, which the kernel never dereferences).
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: same storage as above, written through `as_mut_ptr`.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if pos > self.len() && pos <= self.capacity() {
            // SAFETY: the caller guarantees bytes `..pos` are initialised and
            // `pos` is within the capacity (checked above).
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: a boxed slice is heap storage of fixed length, all initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as above; every byte is always initialised, so `set_init` has
// nothing to record.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// SAFETY: 'static data never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `&'static [u8]`.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: `Bytes` is a view of reference-counted heap (or static) memory
// that does not move when the handle moves and is immutable.
unsafe impl IoBuf for bytes::Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: `BytesMut` owns heap storage of `capacity()` bytes starting at
// `as_ptr()`, which does not move when the handle moves.
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as above, written through `as_mut_ptr`.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if pos > self.len() && pos <= self.capacity() {
            // SAFETY: the caller guarantees bytes `..pos` are initialised and
            // `pos` is within the capacity (checked above).
            unsafe { self.set_len(pos) };
        }
    }
}

/// A window `[begin, end)` of an owned buffer, itself an owned buffer: send
/// the unsent rest of a buffer, or receive into its tail.
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B> Slice<B> {
    /// Start of the window in the whole buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// End (exclusive) of the window in the whole buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The whole buffer.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }

    /// Gives the whole buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

// SAFETY: the window lies inside the inner buffer (`begin <= end <=
// bytes_total` is enforced by `IoBuf::slice`), whose storage is stable.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.stable_ptr().wrapping_add(self.begin)
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as above, for writes into the window.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: bytes `begin..begin + pos` are initialised (caller), and
        // the ones before `begin` were initialised already or are covered
        // by the inner buffer's own bookkeeping (it never shrinks).
        unsafe {
            self.buf
                .set_init(self.begin + pos.min(self.end - self.begin))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_and_slices() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"hello");
        assert_eq!(v.bytes_init(), 5);
        assert!(v.bytes_total() >= 16);
        let s = v.slice(2..);
        assert_eq!(s.bytes_init(), 3);
        assert_eq!(s.begin(), 2);
        let v = s.into_inner();
        let s = v.slice(1..=100_000);
        assert_eq!(s.end(), s.get_ref().capacity());
        let mut v = s.into_inner();
        // SAFETY: set_init only extends len up to initialised bytes: write them first.
        unsafe {
            std::ptr::write_bytes(v.stable_mut_ptr(), b'x', 8);
            v.set_init(8);
        }
        assert_eq!(&v[..], b"xxxxxxxx");
    }

    #[test]
    fn slice_bounds_are_clamped() {
        let b: Box<[u8]> = vec![1u8; 4].into_boxed_slice();
        let s = b.slice(10..20);
        assert_eq!(s.bytes_total(), 0);
        assert_eq!(s.bytes_init(), 0);
    }
}
