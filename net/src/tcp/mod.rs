//! TCP: [`TcpListener`], [`TcpStream`], [`TcpSocket`] and the halves of a
//! split stream (tokio's `tokio::net::tcp`).

mod listener;
mod socket;
mod split;
mod split_owned;
mod stream;

pub use listener::TcpListener;
pub use socket::TcpSocket;
pub use split::{ReadHalf, WriteHalf};
pub use split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::TcpStream;
