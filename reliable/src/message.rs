//! [`Message`]: a received message as the chunks it arrived in.
//!
//! A message received through [`Endpoint::handle_datagram_owned`] keeps
//! every fragment in the datagram it came in (a `Bytes` over the
//! transport's receive buffer: a device frame on kernel bypass), so
//! reassembly copies nothing; the message is then a list of chunks, read
//! without a copy through [`Message::chunks`] or [`bytes::Buf`]. Its
//! contiguous view (`Deref<Target = [u8]>`) is made on first use, with one
//! copy, and kept ([`Message::is_contiguous`] says whether that would
//! copy). A message received with [`Endpoint::handle_datagram`] (borrowed
//! datagrams) is reassembled into one buffer as it arrives and is a
//! single chunk.
//!
//! [`Endpoint::handle_datagram_owned`]: crate::Endpoint::handle_datagram_owned
//! [`Endpoint::handle_datagram`]: crate::Endpoint::handle_datagram

use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use bytes::{Buf, Bytes};

/// A received message: its fragments' payloads in order (see the
/// [module docs](self)).
///
/// ```
/// use bytes::{Buf, Bytes};
/// use insane_reliable::Message;
///
/// let mut m = Message::from_chunks(vec![Bytes::from_static(b"hel"), Bytes::from_static(b"lo")]);
/// assert_eq!(m.len(), 5);
/// assert_eq!(m.chunks().count(), 2);
/// assert!(!m.is_contiguous());
/// assert_eq!(&m[..], b"hello"); // one copy, made once
/// m.advance(1);
/// assert_eq!(m.chunk(), b"el");
/// ```
#[derive(Default)]
pub struct Message {
    /// Non-empty chunks, in order.
    chunks: VecDeque<Bytes>,
    len: usize,
    /// The contiguous copy of a message of several chunks, made on first
    /// use of `Deref`.
    flat: OnceLock<Bytes>,
    /// The endpoint copied the payload out of the datagrams.
    copied: bool,
}

impl Message {
    /// A message of the given chunks (empty ones are skipped).
    pub fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Message {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let len = chunks.iter().map(Bytes::len).sum();
        Message {
            chunks,
            len,
            flat: OnceLock::new(),
            copied: false,
        }
    }

    /// A message whose payload the endpoint copied out of the datagrams.
    pub(crate) fn copied(data: Bytes) -> Message {
        Message {
            copied: true,
            ..Message::from(data)
        }
    }

    /// Whether the endpoint copied the payload out of the datagrams it
    /// came in (borrowed datagrams, or too few to lend): the message's one
    /// copy was made already, so its contiguous view is free.
    pub fn was_copied(&self) -> bool {
        self.copied
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its chunks, in order, without copying.
    pub fn chunks(&self) -> impl ExactSizeIterator<Item = &Bytes> {
        self.chunks.iter()
    }

    /// Whether the contiguous view is free: the message is one chunk (or
    /// none), or its copy was made already.
    pub fn is_contiguous(&self) -> bool {
        self.chunks.len() <= 1 || self.flat.get().is_some()
    }

    /// The message as one `Bytes`: no copy when it is one chunk or its
    /// contiguous view was made already, else one copy.
    pub fn into_bytes(mut self) -> Bytes {
        if let Some(flat) = self.flat.take() {
            return flat;
        }
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop_front().unwrap_or_default(),
            _ => Bytes::from(self.flatten()),
        }
    }

    fn flatten(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in &self.chunks {
            v.extend_from_slice(c);
        }
        v
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Message {
        Message::from_chunks([b])
    }
}

impl From<Message> for Bytes {
    fn from(m: Message) -> Bytes {
        m.into_bytes()
    }
}

impl Deref for Message {
    type Target = [u8];

    /// The message's bytes in one slice: one copy the first time for a
    /// message of several chunks (see [`Message::is_contiguous`]).
    fn deref(&self) -> &[u8] {
        match self.chunks.len() {
            0 => &[],
            1 => &self.chunks[0],
            _ => self.flat.get_or_init(|| Bytes::from(self.flatten())),
        }
    }
}

impl AsRef<[u8]> for Message {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Buf for Message {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| c)
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(
            cnt <= self.len,
            "advance past the end of a message of {} bytes",
            self.len
        );
        self.len -= cnt;
        if let Some(mut flat) = self.flat.take() {
            flat.advance(cnt);
            self.flat = OnceLock::from(flat);
        }
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                break;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
    }
}

impl Clone for Message {
    fn clone(&self) -> Message {
        Message {
            chunks: self.chunks.clone(),
            len: self.len,
            flat: self.flat.clone(),
            copied: self.copied,
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.len == other.len
            && self
                .chunks()
                .flat_map(|c| c.iter())
                .eq(other.chunks().flat_map(|c| c.iter()))
    }
}

impl Eq for Message {}

impl PartialEq<[u8]> for Message {
    fn eq(&self, other: &[u8]) -> bool {
        self.len == other.len() && self.chunks().flat_map(|c| c.iter()).eq(other.iter())
    }
}

impl PartialEq<&str> for Message {
    fn eq(&self, other: &&str) -> bool {
        *self == *other.as_bytes()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_chunks() -> Message {
        Message::from_chunks([
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"def"),
        ])
    }

    #[test]
    fn chunks_read_without_a_copy_and_skip_empty_ones() {
        let m = two_chunks();
        let parts: Vec<&[u8]> = m.chunks().map(|c| &c[..]).collect();
        assert_eq!(parts, [&b"abc"[..], &b"def"[..]]);
        assert!(!m.is_contiguous());
    }

    #[test]
    fn the_contiguous_view_is_made_once() {
        let m = two_chunks();
        assert!(!m.is_contiguous());
        let first = m.as_ptr();
        assert_eq!(&m[..], b"abcdef");
        assert!(m.is_contiguous());
        assert_eq!(m.as_ptr(), first, "the same copy is reused");
    }

    #[test]
    fn one_chunk_is_its_own_contiguous_view() {
        let b = Bytes::from_static(b"xyz");
        let m = Message::from(b.clone());
        assert!(m.is_contiguous());
        assert_eq!(m.as_ptr(), b.as_ptr());
        assert_eq!(m.into_bytes().as_ptr(), b.as_ptr());
    }

    #[test]
    fn buf_reads_across_chunks() {
        let mut m = two_chunks();
        let mut out = [0u8; 6];
        m.copy_to_slice(&mut out);
        assert_eq!(&out, b"abcdef");
        assert_eq!(m.remaining(), 0);

        let mut m = two_chunks();
        let _ = &m[..]; // the cache follows the reads
        m.advance(4);
        assert_eq!(&m[..], b"ef");
        assert_eq!(m.chunk(), b"ef");
    }

    #[test]
    fn equality_compares_bytes_not_chunking() {
        assert_eq!(two_chunks(), Message::from(Bytes::from_static(b"abcdef")));
        assert_eq!(two_chunks(), b"abcdef"[..]);
        assert!(two_chunks() == "abcdef");
        assert_ne!(two_chunks(), Message::from(Bytes::from_static(b"abcdeg")));
    }
}
