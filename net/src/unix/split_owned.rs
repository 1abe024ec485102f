//! [`OwnedReadHalf`] and [`OwnedWriteHalf`]: the two directions of a
//! [`UnixStream`] split by [`UnixStream::into_split`] (tokio's
//! `unix::OwnedReadHalf` and `unix::OwnedWriteHalf`), and [`ReuniteError`].
//!
//! The halves share the stream through an `Arc`, so each may move into its
//! own task, even on another core. Dropping the write half shuts down the
//! write direction (the peer reads end of stream), like tokio.

use crate::unix::{SocketAddr, UnixStream};

crate::stream_halves::owned_halves! {
    stream: UnixStream,
    module: "unix",
    addr: SocketAddr,
    peek: no,
}
