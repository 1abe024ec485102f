//! Errors of the time API.

use std::fmt;
use std::io;

/// The error [`Timeout`](super::Timeout) returns when its deadline passed
/// before the inner future completed.
///
/// ```
/// use insane_runtime::time::error::Elapsed;
/// use insane_runtime::time::{self, Duration};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     let err: Elapsed = time::timeout(Duration::from_millis(1), std::future::pending::<()>())
///         .await
///         .unwrap_err();
///     assert_eq!(err.to_string(), "deadline has elapsed");
///     let io: std::io::Error = err.into();
///     assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl Elapsed {
    pub(crate) fn new() -> Self {
        Elapsed(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, fmt: &mut fmt::Formatter<'_>) -> fmt::Result {
        "deadline has elapsed".fmt(fmt)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(err: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, err)
    }
}
