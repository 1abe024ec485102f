//! [`OwnedReadHalf`] and [`OwnedWriteHalf`]: the two directions of a
//! [`TcpStream`] split by [`TcpStream::into_split`] (tokio's
//! `tcp::OwnedReadHalf` and `tcp::OwnedWriteHalf`), and [`ReuniteError`].
//!
//! The halves share the stream through an `Arc`, so each may move into its
//! own task, even on another core. Dropping the write half shuts down the
//! write direction (the peer reads end of stream), like tokio.

use std::net::SocketAddr;

use crate::tcp::TcpStream;

crate::stream_halves::owned_halves! {
    stream: TcpStream,
    module: "tcp",
    addr: SocketAddr,
    peek: yes,
}
