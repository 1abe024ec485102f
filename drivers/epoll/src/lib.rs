//! The epoll driver (being built; see issue 4).
