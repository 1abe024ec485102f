//! The uring driver (being built; see issue 4).
