//! Placeholder wheel.
use std::task::Waker;
use std::time::Instant;

pub(crate) struct Wheel {
    entries: std::collections::BTreeMap<(Instant, u64), Waker>,
    next: u64,
}

impl Wheel {
    pub(crate) fn new(_origin: Instant) -> Self {
        Self { entries: Default::default(), next: 0 }
    }
    pub(crate) fn process(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(e) = self.entries.first_entry() {
            if e.key().0 > now { break; }
            e.remove().wake();
            n += 1;
        }
        n
    }
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.keys().next().map(|k| k.0)
    }
    #[allow(dead_code)]
    pub(crate) fn insert(&mut self, at: Instant, w: Waker) -> u64 { self.next += 1; self.entries.insert((at, self.next), w); self.next }
}
