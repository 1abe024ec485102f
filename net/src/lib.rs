//! insane-net: tokio-compatible sockets over the core's kernel I/O driver
//! (io_uring or epoll), and later owned-buffer I/O and QoS streams.

mod registration;
