//! [`ReadHalf`] and [`WriteHalf`]: the two directions of a borrowed
//! [`UnixStream`], from [`UnixStream::split`] (tokio's `unix::ReadHalf` and
//! `unix::WriteHalf`).
//!
//! Both halves borrow the stream, so they cost nothing and are meant for
//! concurrent reading and writing on one task; for halves that move into
//! different tasks use [`UnixStream::into_split`].

use crate::unix::{SocketAddr, UnixStream};

crate::stream_halves::borrowed_halves! {
    stream: UnixStream,
    module: "unix",
    addr: SocketAddr,
    peek: no,
}
