//! insane networking (being built; see issue 4).
