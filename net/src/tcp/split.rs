//! [`ReadHalf`] and [`WriteHalf`]: the two directions of a borrowed
//! [`TcpStream`], from [`TcpStream::split`] (tokio's `tcp::ReadHalf` and
//! `tcp::WriteHalf`).
//!
//! Both halves borrow the stream, so they cost nothing and are meant for
//! concurrent reading and writing on one task; for halves that move into
//! different tasks use [`TcpStream::into_split`].

use std::net::SocketAddr;

use crate::tcp::TcpStream;

crate::stream_halves::borrowed_halves! {
    stream: TcpStream,
    module: "tcp",
    addr: SocketAddr,
    peek: yes,
}
