//! Timers (placeholder until the timer wheel lands).
pub(crate) mod wheel;
