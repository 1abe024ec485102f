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

/// A timer error (tokio's `time::error::Error`): the timer's runtime shut
/// down, the timer wheel is full, or the duration is too long. No insane
/// timer fails today — sleeps and timeouts complete or are dropped — and
/// tokio returns this from no stable API either; it exists so code that
/// names the type ports unchanged.
///
/// ```
/// use insane_runtime::time::error::Error;
/// let e = Error::shutdown();
/// assert!(e.is_shutdown() && !e.is_at_capacity() && !e.is_invalid());
/// assert_eq!(e.to_string(), "the timer is shutdown, must be called from the context of an insane runtime");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(ErrorKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Shutdown,
    AtCapacity,
    Invalid,
}

impl Error {
    /// The timer's runtime has shut down.
    pub fn shutdown() -> Error {
        Error(ErrorKind::Shutdown)
    }

    /// Whether the timer's runtime had shut down.
    pub fn is_shutdown(&self) -> bool {
        self.0 == ErrorKind::Shutdown
    }

    /// The timer wheel is at capacity.
    pub fn at_capacity() -> Error {
        Error(ErrorKind::AtCapacity)
    }

    /// Whether the timer wheel was at capacity.
    pub fn is_at_capacity(&self) -> bool {
        self.0 == ErrorKind::AtCapacity
    }

    /// The timer was set with an invalid duration.
    pub fn invalid() -> Error {
        Error(ErrorKind::Invalid)
    }

    /// Whether the timer's duration was invalid.
    pub fn is_invalid(&self) -> bool {
        self.0 == ErrorKind::Invalid
    }
}

impl fmt::Display for Error {
    fn fmt(&self, fmt: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt.write_str(match self.0 {
            ErrorKind::Shutdown => {
                "the timer is shutdown, must be called from the context of an insane runtime"
            }
            ErrorKind::AtCapacity => "timer is at capacity and cannot create a new entry",
            ErrorKind::Invalid => "timer duration exceeds maximum duration",
        })
    }
}

impl std::error::Error for Error {}
