//! The halves of a split stream, written once for [`TcpStream`] and
//! [`UnixStream`]: [`borrowed_halves!`] defines `ReadHalf` and `WriteHalf`
//! (`tcp/split.rs`, `unix/split.rs`), [`owned_halves!`] defines
//! `OwnedReadHalf`, `OwnedWriteHalf` and `ReuniteError`
//! (`tcp/split_owned.rs`, `unix/split_owned.rs`).
//!
//! Each macro defines its items in the module that invokes it, which must
//! import the stream type and its address type; the docs name that stream
//! (`stream:`) and that module (`module:`, in the examples). TCP's read
//! halves also forward `poll_peek` and `peek` (`peek: yes`).
//!
//! [`TcpStream`]: crate::TcpStream
//! [`UnixStream`]: crate::UnixStream

/// `ReadHalf<'a>` and `WriteHalf<'a>` borrowing a `$stream`, and
/// `pub(crate) fn split(&mut $stream) -> (ReadHalf<'_>, WriteHalf<'_>)`.
macro_rules! borrowed_halves {
    (
        stream: $stream:ident,
        module: $module:literal,
        addr: $addr:ty,
        peek: $peek:ident $(,)?
    ) => {
        #[doc = concat!(
            " The read half of a [`", stringify!($stream), "`] borrowed by [`",
            stringify!($stream), "::split`]; reads"
        )]
        /// through `AsyncRead`.
        #[derive(Debug)]
        pub struct ReadHalf<'a>(&'a $stream);

        #[doc = concat!(
            " The write half of a [`", stringify!($stream), "`] borrowed by [`",
            stringify!($stream), "::split`];"
        )]
        /// writes through `AsyncWrite`. Its `shutdown()` shuts down the write
        /// direction of the stream.
        #[derive(Debug)]
        pub struct WriteHalf<'a>(&'a $stream);

        pub(crate) fn split(stream: &mut $stream) -> (ReadHalf<'_>, WriteHalf<'_>) {
            (ReadHalf(&*stream), WriteHalf(&*stream))
        }

        impl ReadHalf<'_> {
            $crate::stream_halves::read_methods!(
                @owned_buffers $stream, $module, "ReadHalf<'_>", 0
            );
            $crate::stream_halves::read_methods!(@peek $peek $stream, 0);
            $crate::stream_halves::read_methods!(@readiness $stream, $addr, 0);
        }

        impl WriteHalf<'_> {
            $crate::stream_halves::write_methods!(
                @owned_buffers $stream, $module, "WriteHalf<'_>", 0
            );
            $crate::stream_halves::write_methods!(@readiness $stream, $addr, 0);

            fn shutdown_priv(&mut self) -> std::io::Result<()> {
                self.0.shutdown_std(std::net::Shutdown::Write)
            }
        }

        $crate::io::impl_stream_read!(ReadHalf<'_>, |this| this.0.io);
        $crate::io::impl_stream_write!(WriteHalf<'_>, |this| this.0.io);

        impl AsRef<$stream> for ReadHalf<'_> {
            fn as_ref(&self) -> &$stream {
                self.0
            }
        }

        impl AsRef<$stream> for WriteHalf<'_> {
            fn as_ref(&self) -> &$stream {
                self.0
            }
        }
    };
}

/// `OwnedReadHalf` and `OwnedWriteHalf` sharing a `$stream` through an
/// `Arc`, `ReuniteError`, and
/// `pub(crate) fn split_owned($stream) -> (OwnedReadHalf, OwnedWriteHalf)`.
macro_rules! owned_halves {
    (
        stream: $stream:ident,
        module: $module:literal,
        addr: $addr:ty,
        peek: $peek:ident $(,)?
    ) => {
        #[doc = concat!(" The owned read half of a [`", stringify!($stream), "`], from")]
        #[doc = concat!(" [`", stringify!($stream), "::into_split`]; reads through `AsyncRead`.")]
        #[derive(Debug)]
        pub struct OwnedReadHalf {
            inner: std::sync::Arc<$stream>,
        }

        #[doc = concat!(" The owned write half of a [`", stringify!($stream), "`], from")]
        #[doc = concat!(" [`", stringify!($stream), "::into_split`]; writes through `AsyncWrite`.")]
        ///
        /// Dropping it (or calling `shutdown()`) shuts down the write direction of
        /// the stream; [`forget`](OwnedWriteHalf::forget) drops it without that.
        #[derive(Debug)]
        pub struct OwnedWriteHalf {
            inner: std::sync::Arc<$stream>,
            shutdown_on_drop: bool,
        }

        pub(crate) fn split_owned(stream: $stream) -> (OwnedReadHalf, OwnedWriteHalf) {
            let arc = std::sync::Arc::new(stream);
            let read = OwnedReadHalf { inner: arc.clone() };
            let write = OwnedWriteHalf {
                inner: arc,
                shutdown_on_drop: true,
            };
            (read, write)
        }

        fn reunite(
            read: OwnedReadHalf,
            write: OwnedWriteHalf,
        ) -> Result<$stream, ReuniteError> {
            if std::sync::Arc::ptr_eq(&read.inner, &write.inner) {
                write.forget();
                match std::sync::Arc::try_unwrap(read.inner) {
                    Ok(stream) => Ok(stream),
                    // Only the two halves ever hold the Arc, and the write half was
                    // just dropped.
                    Err(_) => unreachable!(
                        "{}: try_unwrap failed in reunite",
                        stringify!($stream)
                    ),
                }
            } else {
                Err(ReuniteError(read, write))
            }
        }

        /// The error of [`OwnedReadHalf::reunite`] for halves of two different
        /// streams; it gives both halves back.
        #[derive(Debug)]
        pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

        impl std::fmt::Display for ReuniteError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "tried to reunite halves that are not from the same socket"
                )
            }
        }

        impl std::error::Error for ReuniteError {}

        impl OwnedReadHalf {
            $crate::stream_halves::read_methods!(
                @owned_buffers $stream, $module, "OwnedReadHalf", inner
            );

            /// Puts the two halves back together into the original stream;
            /// succeeds only when both come from the same
            #[doc = concat!(" [`into_split`](", stringify!($stream), "::into_split).")]
            ///
            /// ```no_run
            #[doc = concat!(" # fn f(a: insane_net::", stringify!($stream), ") {")]
            /// let (rd, wr) = a.into_split();
            /// let stream = rd.reunite(wr).expect("same stream");
            /// # drop(stream);
            /// # }
            /// ```
            pub fn reunite(self, other: OwnedWriteHalf) -> Result<$stream, ReuniteError> {
                reunite(self, other)
            }

            $crate::stream_halves::read_methods!(@peek $peek $stream, inner);
            $crate::stream_halves::read_methods!(@readiness $stream, $addr, inner);
        }

        impl OwnedWriteHalf {
            $crate::stream_halves::write_methods!(
                @owned_buffers $stream, $module, "OwnedWriteHalf", inner
            );

            /// Puts the two halves back together; see [`OwnedReadHalf::reunite`].
            pub fn reunite(self, other: OwnedReadHalf) -> Result<$stream, ReuniteError> {
                reunite(other, self)
            }

            /// Drops the write half without shutting down the write direction; the
            /// stream closes when the read half is dropped too.
            pub fn forget(mut self) {
                self.shutdown_on_drop = false;
                drop(self);
            }

            $crate::stream_halves::write_methods!(@readiness $stream, $addr, inner);

            fn shutdown_priv(&mut self) -> std::io::Result<()> {
                let res = self.inner.shutdown_std(std::net::Shutdown::Write);
                if res.is_ok() {
                    self.shutdown_on_drop = false;
                }
                res
            }
        }

        impl Drop for OwnedWriteHalf {
            fn drop(&mut self) {
                if self.shutdown_on_drop {
                    let _ = self.inner.shutdown_std(std::net::Shutdown::Write);
                }
            }
        }

        $crate::io::impl_stream_read!(OwnedReadHalf, |this| this.inner.io);
        $crate::io::impl_stream_write!(OwnedWriteHalf, |this| this.inner.io);

        impl AsRef<$stream> for OwnedReadHalf {
            fn as_ref(&self) -> &$stream {
                &self.inner
            }
        }

        impl AsRef<$stream> for OwnedWriteHalf {
            fn as_ref(&self) -> &$stream {
                &self.inner
            }
        }
    };
}

/// The methods a read half forwards to its stream (`self.$field`), in
/// groups so that each half keeps its methods' order:
/// - `@owned_buffers`: `read_owned`, `recv_stream`, `recv_stream_with`,
///   with examples on `insane_net::$module::$half`;
/// - `@peek yes` / `@peek no`: `poll_peek` and `peek`, or nothing;
/// - `@readiness`: `ready`, `readable`, the `try_read*` methods and the
///   addresses.
macro_rules! read_methods {
    (@owned_buffers $stream:ident, $module:literal, $half:literal, $field:tt) => {
        #[doc = concat!(" See [`", stringify!($stream), "::read_owned`].")]
        ///
        /// ```no_run
        #[doc = concat!(" # async fn f(rd: insane_net::", $module, "::", $half, ") -> std::io::Result<()> {")]
        /// let (res, buf) = rd.read_owned(Vec::with_capacity(1024)).await;
        /// println!("{} bytes: {:?}", res?, buf);
        /// # Ok(())
        /// # }
        /// ```
        pub async fn read_owned<B: $crate::IoBufMut>(
            &self,
            buf: B,
        ) -> $crate::BufResult<usize, B> {
            self.$field.read_owned(buf).await
        }

        #[doc = concat!(" See [`", stringify!($stream), "::recv_stream`].")]
        ///
        /// ```no_run
        #[doc = concat!(" # async fn f(rd: insane_net::", $module, "::", $half, ") -> std::io::Result<()> {")]
        /// let mut rx = rd.recv_stream()?;
        /// while let Some(buf) = rx.next().await {
        ///     println!("{} bytes", buf?.len());
        /// }
        /// # Ok(())
        /// # }
        /// ```
        ///
        /// # Errors
        #[doc = concat!(" As [`", stringify!($stream), "::recv_stream`].")]
        pub fn recv_stream(&self) -> std::io::Result<$crate::RecvStream<'_>> {
            self.$field.recv_stream()
        }

        #[doc = concat!(" See [`", stringify!($stream), "::recv_stream_with`].")]
        ///
        /// ```no_run
        #[doc = concat!(" # async fn f(rd: insane_net::", $module, "::", $half, ") -> std::io::Result<()> {")]
        /// let pool = insane_net::RecvPool::new(16, 4096)?;
        /// let mut rx = rd.recv_stream_with(&pool)?;
        /// # drop(rx.next().await);
        /// # Ok(())
        /// # }
        /// ```
        ///
        /// # Errors
        #[doc = concat!(" As [`", stringify!($stream), "::recv_stream`].")]
        pub fn recv_stream_with(
            &self,
            pool: &$crate::RecvPool,
        ) -> std::io::Result<$crate::RecvStream<'_>> {
            self.$field.recv_stream_with(pool)
        }
    };

    (@peek yes $stream:ident, $field:tt) => {
        #[doc = concat!(" See [`", stringify!($stream), "::poll_peek`].")]
        pub fn poll_peek(
            &mut self,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.$field.poll_peek(cx, buf)
        }

        #[doc = concat!(" See [`", stringify!($stream), "::peek`].")]
        pub async fn peek(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.$field.peek(buf).await
        }
    };

    (@peek no $stream:ident, $field:tt) => {};

    (@readiness $stream:ident, $addr:ty, $field:tt) => {
        #[doc = concat!(" See [`", stringify!($stream), "::ready`].")]
        pub async fn ready(
            &self,
            interest: tokio::io::Interest,
        ) -> std::io::Result<tokio::io::Ready> {
            self.$field.ready(interest).await
        }

        #[doc = concat!(" See [`", stringify!($stream), "::readable`].")]
        pub async fn readable(&self) -> std::io::Result<()> {
            self.$field.readable().await
        }

        #[doc = concat!(" See [`", stringify!($stream), "::try_read`].")]
        pub fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.$field.try_read(buf)
        }

        #[doc = concat!(" See [`", stringify!($stream), "::try_read_vectored`].")]
        pub fn try_read_vectored(
            &self,
            bufs: &mut [std::io::IoSliceMut<'_>],
        ) -> std::io::Result<usize> {
            self.$field.try_read_vectored(bufs)
        }

        #[doc = concat!(" See [`", stringify!($stream), "::try_read_buf`].")]
        pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> std::io::Result<usize> {
            self.$field.try_read_buf(buf)
        }

        #[doc = concat!(" See [`", stringify!($stream), "::peer_addr`].")]
        pub fn peer_addr(&self) -> std::io::Result<$addr> {
            self.$field.peer_addr()
        }

        #[doc = concat!(" See [`", stringify!($stream), "::local_addr`].")]
        pub fn local_addr(&self) -> std::io::Result<$addr> {
            self.$field.local_addr()
        }
    };
}

/// The methods a write half forwards to its stream (`self.$field`):
/// - `@owned_buffers`: `write_owned`, `write_all_owned`, with examples on
///   `insane_net::$module::$half`;
/// - `@readiness`: `ready`, `writable`, the `try_write*` methods and the
///   addresses.
macro_rules! write_methods {
    (@owned_buffers $stream:ident, $module:literal, $half:literal, $field:tt) => {
        #[doc = concat!(" See [`", stringify!($stream), "::write_owned`].")]
        ///
        /// ```no_run
        #[doc = concat!(" # async fn f(wr: insane_net::", $module, "::", $half, ") -> std::io::Result<()> {")]
        /// let (res, _buf) = wr.write_owned(b"ping".to_vec()).await;
        /// println!("wrote {} bytes", res?);
        /// # Ok(())
        /// # }
        /// ```
        pub async fn write_owned<B: $crate::IoBuf>(
            &self,
            buf: B,
        ) -> $crate::BufResult<usize, B> {
            self.$field.write_owned(buf).await
        }

        #[doc = concat!(" See [`", stringify!($stream), "::write_all_owned`].")]
        ///
        /// ```no_run
        #[doc = concat!(" # async fn f(wr: insane_net::", $module, "::", $half, ") -> std::io::Result<()> {")]
        /// let (res, _buf) = wr.write_all_owned(vec![0u8; 64 * 1024]).await;
        /// res?;
        /// # Ok(())
        /// # }
        /// ```
        pub async fn write_all_owned<B: $crate::IoBuf>(
            &self,
            buf: B,
        ) -> $crate::BufResult<(), B> {
            self.$field.write_all_owned(buf).await
        }
    };

    (@readiness $stream:ident, $addr:ty, $field:tt) => {
        #[doc = concat!(" See [`", stringify!($stream), "::ready`].")]
        pub async fn ready(
            &self,
            interest: tokio::io::Interest,
        ) -> std::io::Result<tokio::io::Ready> {
            self.$field.ready(interest).await
        }

        #[doc = concat!(" See [`", stringify!($stream), "::writable`].")]
        pub async fn writable(&self) -> std::io::Result<()> {
            self.$field.writable().await
        }

        #[doc = concat!(" See [`", stringify!($stream), "::try_write`].")]
        pub fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
            self.$field.try_write(buf)
        }

        #[doc = concat!(" See [`", stringify!($stream), "::try_write_vectored`].")]
        pub fn try_write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            self.$field.try_write_vectored(bufs)
        }

        #[doc = concat!(" See [`", stringify!($stream), "::peer_addr`].")]
        pub fn peer_addr(&self) -> std::io::Result<$addr> {
            self.$field.peer_addr()
        }

        #[doc = concat!(" See [`", stringify!($stream), "::local_addr`].")]
        pub fn local_addr(&self) -> std::io::Result<$addr> {
            self.$field.local_addr()
        }
    };
}

pub(crate) use {borrowed_halves, owned_halves, read_methods, write_methods};
