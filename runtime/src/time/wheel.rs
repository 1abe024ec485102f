//! The per-core hierarchical timing wheel behind [`crate::time`].
//!
//! Time is counted in 1 ms ticks since the wheel's `origin`. The wheel has
//! [`NUM_LEVELS`] levels of 64 slots: a slot of level `l` covers `64^l`
//! ticks, so level 0 holds timers due in the current 64 ms, level 1 those
//! due in the current ~4 s, … and level 5 everything up to 2^36 ms
//! (≈ 2.2 years) ahead; later deadlines wrap around the top level and are
//! looked at again once per rotation. This is the layout tokio uses.
//!
//! Entries live in a [`Slab`] and each slot is an intrusive doubly-linked
//! list through them, so insert, remove and reset are O(1). [`Wheel::process`]
//! visits occupied slots in deadline order (a 64-bit "occupied" mask per
//! level makes finding the next one a `trailing_zeros`), fires the entries
//! that are due and moves the others of a higher-level slot down to the
//! level that now fits them ("cascading").
//!
//! Deadlines are rounded *up* to the next tick and an entry fires only once
//! `now` has reached its tick, so a timer never fires before its deadline.
//! [`Wheel::next_deadline`] reports the exact instant the earliest entry
//! becomes due, which is when the core should wake up.
//!
//! *Precise* entries ([`Wheel::insert_precise`]) are kept apart, in a
//! short list, with their exact deadline: they fire at the first
//! [`Wheel::process`] at or after it, not at a tick, and
//! [`Wheel::next_deadline`] reports that exact instant, so a parked core
//! wakes for it (every park of the runtime's reactors takes a timeout in
//! nanoseconds) and a busy core fires it on the next turn of its loop.
//! They serve protocol timers of a few hundred µs (the reliable-datagram
//! retransmission timeout); a list is cheap for the few there are.
//!
//! A [`TimerKey`] names an entry: it carries the id of its wheel (unique in
//! the process) and a generation, so a key whose entry already fired, or a
//! key from another core's wheel, is recognised and ignored instead of
//! touching an unrelated entry that reused the slab slot.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

/// Bits of a tick consumed by one level.
const LEVEL_BITS: usize = 6;
/// Slots per level.
const SLOTS: usize = 1 << LEVEL_BITS;
/// Number of levels: 6 levels of 64 slots cover 2^36 ms.
const NUM_LEVELS: usize = 6;
/// The top level, whose slots act as a ring for far deadlines.
const TOP: usize = NUM_LEVELS - 1;
/// Ticks the levels cover before the top level wraps around.
const MAX_DURATION: u64 = (1 << (LEVEL_BITS * NUM_LEVELS)) - 1;
/// Largest tick stored; keeps all slot arithmetic far from overflow
/// (2^62 ms is ~146 million years).
const MAX_TICK: u64 = 1 << 62;
/// "No entry" in the intrusive lists.
const NIL: usize = usize::MAX;
/// `Entry::level` of a precise entry (in `Wheel::precise`, not in a slot).
const PRECISE: u8 = u8::MAX;
/// Nanoseconds per tick.
const NANOS_PER_TICK: u128 = 1_000_000;

static NEXT_WHEEL_ID: AtomicU64 = AtomicU64::new(1);

/// Names one entry of one wheel; stale keys are detected, never misused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    wheel: u64,
    index: usize,
    generation: u64,
}

struct Entry {
    /// Tick at which the entry fires.
    when: u64,
    waker: Waker,
    generation: u64,
    /// Where the entry is linked.
    level: u8,
    slot: u8,
    prev: usize,
    next: usize,
}

#[derive(Clone, Copy)]
struct List {
    head: usize,
    tail: usize,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// The next slot to process: its level, index and start tick.
#[derive(Clone, Copy, Debug)]
struct Expiration {
    level: usize,
    slot: usize,
    deadline: u64,
}

/// A hierarchical timing wheel of wakers (see the module documentation).
pub(crate) struct Wheel {
    id: u64,
    origin: Instant,
    /// Ticks processed so far: every entry with `when <= elapsed` has fired
    /// (except overdue ones inserted since, which sit in `elapsed`'s slot).
    elapsed: u64,
    entries: Slab<Entry>,
    slots: [[List; SLOTS]; NUM_LEVELS],
    /// Bit `s` of `occupied[l]` is set when slot `s` of level `l` is not empty.
    occupied: [u64; NUM_LEVELS],
    next_generation: u64,
    /// Cache of the earliest `when`: `None` = unknown, `Some(None)` = empty.
    earliest: Cell<Option<Option<u64>>>,
    /// Wakers of fired entries, woken once the wheel is consistent again.
    fired: Vec<Waker>,
    /// Precise entries: exact deadline and entry index (few: linear).
    precise: Vec<(Instant, usize)>,
    /// The earliest deadline in `precise`.
    precise_earliest: Option<Instant>,
}

impl Wheel {
    /// An empty wheel whose tick 0 is `origin`.
    pub(crate) fn new(origin: Instant) -> Self {
        Self {
            id: NEXT_WHEEL_ID.fetch_add(1, Ordering::Relaxed),
            origin,
            elapsed: 0,
            entries: Slab::new(),
            slots: [[EMPTY; SLOTS]; NUM_LEVELS],
            occupied: [0; NUM_LEVELS],
            next_generation: 0,
            earliest: Cell::new(Some(None)),
            fired: Vec::new(),
            precise: Vec::new(),
            precise_earliest: None,
        }
    }

    /// Number of pending entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `key` names a pending entry of this wheel.
    #[cfg(test)]
    pub(crate) fn contains(&self, key: TimerKey) -> bool {
        self.entry_index(key).is_some()
    }

    /// Adds an entry that wakes `waker` once `deadline` has passed. A
    /// deadline already passed fires at the next [`process`](Self::process).
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let when = self.tick_for(deadline).max(self.elapsed);
        self.next_generation += 1;
        let generation = self.next_generation;
        let index = self.entries.insert(Entry {
            when,
            waker,
            generation,
            level: 0,
            slot: 0,
            prev: NIL,
            next: NIL,
        });
        self.link(index);
        if let Some(earliest) = self.earliest.get() {
            self.earliest
                .set(Some(Some(earliest.map_or(when, |e| e.min(when)))));
        }
        TimerKey {
            wheel: self.id,
            index,
            generation,
        }
    }

    /// Adds a precise entry: it wakes `waker` at the first
    /// [`process`](Self::process) at or after `deadline` itself, not at the
    /// tick after it (see the module documentation).
    pub(crate) fn insert_precise(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        self.next_generation += 1;
        let generation = self.next_generation;
        let index = self.entries.insert(Entry {
            when: 0,
            waker,
            generation,
            level: PRECISE,
            slot: 0,
            prev: NIL,
            next: NIL,
        });
        self.push_precise(deadline, index);
        TimerKey {
            wheel: self.id,
            index,
            generation,
        }
    }

    /// Puts entry `index` into the precise list, due at `deadline`.
    fn push_precise(&mut self, deadline: Instant, index: usize) {
        self.precise.push((deadline, index));
        self.precise_earliest = Some(self.precise_earliest.map_or(deadline, |e| e.min(deadline)));
    }

    /// Takes entry `index` out of the precise list.
    fn unlink_precise(&mut self, index: usize) {
        if let Some(at) = self.precise.iter().position(|&(_, i)| i == index) {
            let (deadline, _) = self.precise.swap_remove(at);
            if self.precise_earliest == Some(deadline) {
                self.recompute_precise_earliest();
            }
        }
    }

    fn recompute_precise_earliest(&mut self) {
        self.precise_earliest = self.precise.iter().map(|&(d, _)| d).min();
    }

    /// Removes the entry of `key` and returns its waker; `None` when the
    /// entry already fired, was removed, or belongs to another wheel.
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<Waker> {
        let index = self.entry_index(key)?;
        if self.entries[index].level == PRECISE {
            self.unlink_precise(index);
            return Some(self.entries.remove(index).waker);
        }
        self.unlink(index);
        let entry = self.entries.remove(index);
        self.forget_when(entry.when);
        Some(entry.waker)
    }

    /// Moves the entry of `key` to `deadline`, keeping its waker. Returns
    /// false (and does nothing) when `key` is not a pending entry here.
    pub(crate) fn reset(&mut self, key: TimerKey, deadline: Instant) -> bool {
        let Some(index) = self.entry_index(key) else {
            return false;
        };
        if self.entries[index].level == PRECISE {
            self.unlink_precise(index);
            self.push_precise(deadline, index);
            return true;
        }
        let when = self.tick_for(deadline).max(self.elapsed);
        self.unlink(index);
        let old = std::mem::replace(&mut self.entries[index].when, when);
        self.link(index);
        self.forget_when(old);
        if let Some(earliest) = self.earliest.get() {
            self.earliest
                .set(Some(Some(earliest.map_or(when, |e| e.min(when)))));
        }
        true
    }

    /// Makes the entry of `key` wake `waker` (unless it already wakes the
    /// same task). Returns false when `key` is not a pending entry here.
    pub(crate) fn update_waker(&mut self, key: TimerKey, waker: &Waker) -> bool {
        let Some(index) = self.entry_index(key) else {
            return false;
        };
        let entry = &mut self.entries[index];
        if !entry.waker.will_wake(waker) {
            entry.waker.clone_from(waker);
        }
        true
    }

    /// Fires every entry whose deadline is `<= now` (in deadline order) and
    /// returns how many fired.
    pub(crate) fn process(&mut self, now: Instant) -> usize {
        let now_tick = self.floor_tick(now);
        if self.entries.is_empty() {
            // Nothing to fire (the common turn of a core without timers):
            // only the time moves on.
            self.elapsed = self.elapsed.max(now_tick);
            return 0;
        }
        let mut fired = 0;
        if self.precise_earliest.is_some_and(|e| e <= now) {
            fired += self.process_precise(now);
        }
        while let Some(expiration) = self.next_expiration() {
            if expiration.deadline > now_tick {
                break;
            }
            fired += self.process_expiration(expiration);
        }
        self.elapsed = self.elapsed.max(now_tick);
        if fired > 0 {
            self.earliest.set(if self.entries.is_empty() {
                Some(None)
            } else {
                None
            });
            let mut wakers = std::mem::take(&mut self.fired);
            for waker in wakers.drain(..) {
                waker.wake();
            }
            self.fired = wakers;
        }
        fired
    }

    /// Fires the precise entries due at `now`; returns how many fired.
    fn process_precise(&mut self, now: Instant) -> usize {
        let mut fired = 0;
        let mut at = 0;
        while at < self.precise.len() {
            let (deadline, index) = self.precise[at];
            if deadline <= now {
                self.precise.swap_remove(at);
                self.fired.push(self.entries.remove(index).waker);
                fired += 1;
            } else {
                at += 1;
            }
        }
        self.recompute_precise_earliest();
        fired
    }

    /// The instant the earliest entry becomes due (its deadline rounded up
    /// to the tick; a precise entry's own deadline), or `None` when the
    /// wheel is empty. Never later than the moment
    /// [`process`](Self::process) would fire that entry.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let when = match self.earliest.get() {
            Some(cached) => cached,
            None => {
                let computed = self.compute_earliest();
                self.earliest.set(Some(computed));
                computed
            }
        };
        let ticked = when.and_then(|w| self.origin.checked_add(Duration::from_millis(w)));
        match (ticked, self.precise_earliest) {
            (Some(t), Some(p)) => Some(t.min(p)),
            (t, p) => t.or(p),
        }
    }

    /// `instant` rounded up to this wheel's next tick (unchanged when it is
    /// on a tick, or before the origin). Used by `time::pause`.
    pub(crate) fn ceil_to_tick(&self, instant: Instant) -> Instant {
        let tick = self.tick_for(instant);
        if instant <= self.origin || tick >= MAX_TICK {
            return instant;
        }
        self.origin
            .checked_add(Duration::from_millis(tick))
            .unwrap_or(instant)
    }

    // --- internals ---------------------------------------------------------

    /// The deadline rounded up to a whole tick after `origin`.
    fn tick_for(&self, deadline: Instant) -> u64 {
        let nanos = deadline.saturating_duration_since(self.origin).as_nanos();
        let ticks = nanos.div_ceil(NANOS_PER_TICK);
        u64::try_from(ticks).unwrap_or(MAX_TICK).min(MAX_TICK)
    }

    /// Whole ticks elapsed from `origin` to `now`.
    fn floor_tick(&self, now: Instant) -> u64 {
        // Seconds and sub-second nanoseconds separately: every loop turn
        // calls this, and a 128-bit division costs a call to a slow routine.
        const TICKS_PER_SEC: u64 = (1_000_000_000 / NANOS_PER_TICK) as u64;
        let since = now.saturating_duration_since(self.origin);
        since
            .as_secs()
            .saturating_mul(TICKS_PER_SEC)
            .saturating_add(u64::from(since.subsec_nanos()) / NANOS_PER_TICK as u64)
            .min(MAX_TICK)
    }

    fn entry_index(&self, key: TimerKey) -> Option<usize> {
        if key.wheel != self.id {
            return None;
        }
        match self.entries.get(key.index) {
            Some(entry) if entry.generation == key.generation => Some(key.index),
            _ => None,
        }
    }

    /// Invalidates the earliest-deadline cache if it may have been `when`.
    fn forget_when(&self, when: u64) {
        if self.entries.is_empty() {
            self.earliest.set(Some(None));
        } else if self
            .earliest
            .get()
            .is_some_and(|e| e.is_none_or(|e| e >= when))
        {
            self.earliest.set(None);
        }
    }

    /// Links entry `index` into the slot its `when` belongs to, relative to
    /// `elapsed`.
    fn link(&mut self, index: usize) {
        let when = self.entries[index].when;
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        let list = &mut self.slots[level][slot];
        let tail = list.tail;
        if tail == NIL {
            list.head = index;
        } else {
            self.entries[tail].next = index;
        }
        list.tail = index;
        self.occupied[level] |= 1 << slot;
        let entry = &mut self.entries[index];
        entry.level = level as u8;
        entry.slot = slot as u8;
        entry.prev = tail;
        entry.next = NIL;
    }

    /// Unlinks entry `index` from its slot's list.
    fn unlink(&mut self, index: usize) {
        let Entry {
            level,
            slot,
            prev,
            next,
            ..
        } = self.entries[index];
        let (level, slot) = (level as usize, slot as usize);
        if prev == NIL {
            self.slots[level][slot].head = next;
        } else {
            self.entries[prev].next = next;
        }
        if next == NIL {
            self.slots[level][slot].tail = prev;
        } else {
            self.entries[next].prev = prev;
        }
        if self.slots[level][slot].head == NIL {
            self.occupied[level] &= !(1 << slot);
        }
        let entry = &mut self.entries[index];
        entry.prev = NIL;
        entry.next = NIL;
    }

    /// The occupied slot to process next: lower levels always come first
    /// (an entry sits on level `l` only when it is due after the end of
    /// every slot of the levels below).
    fn next_expiration(&self) -> Option<Expiration> {
        (0..NUM_LEVELS).find_map(|level| self.level_expiration(level))
    }

    /// The next occupied slot of `level` at or after `elapsed`.
    fn level_expiration(&self, level: usize) -> Option<Expiration> {
        let occupied = self.occupied[level];
        if occupied == 0 {
            return None;
        }
        let shift = LEVEL_BITS * level;
        let slot_range = 1u64 << shift;
        let level_range = slot_range << LEVEL_BITS;
        let now = self.elapsed;
        // The slot `now` is in holds due entries on level 0, and nothing on
        // levels 1 to 4 (their entries are due after the current slot). On
        // the top level it can only hold far deadlines that wrapped around,
        // due a whole rotation later, so the search starts one slot after.
        let now_slot = ((now >> shift) as usize) % SLOTS;
        let first = if level == TOP { now_slot + 1 } else { now_slot };
        let slot = (occupied.rotate_right(first as u32).trailing_zeros() as usize + first) % SLOTS;
        let level_start = now & !(level_range - 1);
        let mut deadline = level_start + slot as u64 * slot_range;
        if level == TOP && deadline <= now {
            // A slot at or "before" the current one: next rotation.
            deadline += level_range;
        }
        debug_assert!(
            deadline >= now,
            "wheel slot in the past: level {level}, slot {slot}"
        );
        Some(Expiration {
            level,
            slot,
            deadline,
        })
    }

    /// Empties one slot whose start has come: fires what is due, moves the
    /// rest down. Returns how many fired.
    fn process_expiration(&mut self, expiration: Expiration) -> usize {
        let Expiration {
            level,
            slot,
            deadline,
        } = expiration;
        self.elapsed = self.elapsed.max(deadline);
        let list = std::mem::replace(&mut self.slots[level][slot], EMPTY);
        self.occupied[level] &= !(1 << slot);
        let mut fired = 0;
        let mut index = list.head;
        while index != NIL {
            let next = self.entries[index].next;
            if self.entries[index].when <= self.elapsed {
                let entry = self.entries.remove(index);
                self.fired.push(entry.waker);
                fired += 1;
            } else {
                self.link(index);
            }
            index = next;
        }
        fired
    }

    /// The smallest `when` of all entries, found by scanning the first
    /// occupied slot (or the whole top level, where wrapped far deadlines
    /// may precede nearer ones in slot order).
    fn compute_earliest(&self) -> Option<u64> {
        let expiration = self.next_expiration()?;
        let min_of = |list: List| {
            let mut min = u64::MAX;
            let mut index = list.head;
            while index != NIL {
                let entry = &self.entries[index];
                min = min.min(entry.when);
                index = entry.next;
            }
            min
        };
        let min = if expiration.level == TOP {
            self.slots[TOP].iter().map(|&list| min_of(list)).min()
        } else {
            Some(min_of(self.slots[expiration.level][expiration.slot]))
        };
        min.filter(|&m| m != u64::MAX)
    }
}

impl std::fmt::Debug for Wheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("id", &self.id)
            .field("elapsed_ms", &self.elapsed)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// The level an entry due at `when` belongs to when `elapsed` ticks have
/// been processed: the level of the highest bit in which they differ
/// (capped to the top level).
fn level_for(elapsed: u64, when: u64) -> usize {
    const SLOT_MASK: u64 = SLOTS as u64 - 1;
    let masked = ((elapsed ^ when) | SLOT_MASK).min(MAX_DURATION - 1);
    let significant = 63 - masked.leading_zeros() as usize;
    significant / LEVEL_BITS
}

/// The slot of `level` that tick `when` falls in.
fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (LEVEL_BITS * level)) as usize) % SLOTS
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::task::Wake;

    use super::*;

    /// A waker that records its id into a shared log when woken.
    struct Recorder {
        id: usize,
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.log.lock().unwrap().push(self.id);
        }
    }

    fn waker(id: usize, log: &Arc<Mutex<Vec<usize>>>) -> Waker {
        Waker::from(Arc::new(Recorder {
            id,
            log: log.clone(),
        }))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn setup() -> (Instant, Wheel, Arc<Mutex<Vec<usize>>>) {
        let origin = Instant::now();
        (origin, Wheel::new(origin), Arc::default())
    }

    fn take(log: &Arc<Mutex<Vec<usize>>>) -> Vec<usize> {
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[test]
    fn fires_in_deadline_order() {
        let (o, mut w, log) = setup();
        let delays = [50, 3, 700, 64, 1, 4096, 63, 65, 5000, 2, 100_000];
        for (id, &d) in delays.iter().enumerate() {
            w.insert(o + ms(d), waker(id, &log));
        }
        let mut expected: Vec<(u64, usize)> = delays.iter().copied().zip(0..).collect();
        expected.sort();
        // Advance in small irregular steps so every level cascades.
        let mut t = 0;
        while t <= 100_000 {
            w.process(o + ms(t));
            t += 7;
        }
        w.process(o + ms(100_000));
        let order: Vec<usize> = expected.iter().map(|&(_, id)| id).collect();
        assert_eq!(take(&log), order);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_precise_entry_fires_at_its_deadline_not_at_the_next_tick() {
        let (o, mut w, log) = setup();
        let ticked = w.insert(o + us(300), waker(0, &log));
        let precise = w.insert_precise(o + us(300), waker(1, &log));
        // The core sleeps until the precise deadline, not the tick.
        assert_eq!(w.next_deadline(), Some(o + us(300)));
        assert_eq!(w.process(o + us(299)), 0, "never early");
        assert_eq!(w.process(o + us(300)), 1);
        assert_eq!(take(&log), vec![1]);
        assert!(!w.contains(precise));
        assert_eq!(w.next_deadline(), Some(o + ms(1)), "the tick of the other");
        assert_eq!(w.process(o + us(999)), 0);
        assert_eq!(w.process(o + ms(1)), 1);
        assert_eq!(take(&log), vec![0]);
        assert!(!w.contains(ticked));
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn a_precise_entry_is_reset_and_removed_like_any_other() {
        let (o, mut w, log) = setup();
        let a = w.insert_precise(o + ms(5), waker(0, &log));
        let b = w.insert_precise(o + us(700), waker(1, &log));
        assert_eq!(w.next_deadline(), Some(o + us(700)));
        assert!(w.reset(a, o + us(450)));
        assert_eq!(w.next_deadline(), Some(o + us(450)));
        assert!(w.remove(b).is_some());
        assert!(w.remove(b).is_none(), "a stale key is ignored");
        assert_eq!(w.next_deadline(), Some(o + us(450)));
        assert_eq!(w.process(o + us(460)), 1);
        assert_eq!(take(&log), vec![0]);
        assert!(!w.reset(a, o + ms(9)), "fired: nothing to move");
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn same_deadline_fires_in_insertion_order() {
        let (o, mut w, log) = setup();
        for id in 0..10 {
            w.insert(o + ms(200), waker(id, &log));
        }
        assert_eq!(w.process(o + ms(200)), 10);
        assert_eq!(take(&log), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn never_fires_early() {
        let (o, mut w, log) = setup();
        // 10.5 ms rounds up to tick 11.
        w.insert(o + ms(10) + Duration::from_micros(500), waker(0, &log));
        assert_eq!(w.process(o + ms(10)), 0);
        assert_eq!(w.process(o + ms(10) + Duration::from_micros(999)), 0);
        assert_eq!(w.next_deadline(), Some(o + ms(11)));
        assert_eq!(w.process(o + ms(11)), 1);
        assert_eq!(take(&log), vec![0]);

        // A far one, checked one nanosecond before its tick.
        w.insert(o + ms(300_000), waker(1, &log));
        assert_eq!(w.process(o + ms(300_000) - Duration::from_nanos(1)), 0);
        assert_eq!(w.process(o + ms(300_000)), 1);
        assert_eq!(take(&log), vec![1]);
    }

    #[test]
    fn past_deadline_fires_at_next_process() {
        let (o, mut w, log) = setup();
        w.process(o + ms(1000));
        w.insert(o + ms(10), waker(0, &log));
        w.insert(o, waker(1, &log));
        assert!(w.next_deadline().unwrap() <= o + ms(1000));
        assert_eq!(w.process(o + ms(1000)), 2);
        assert_eq!(take(&log), vec![0, 1]);
    }

    #[test]
    fn remove_prevents_firing_and_stale_keys_are_ignored() {
        let (o, mut w, log) = setup();
        let a = w.insert(o + ms(5), waker(0, &log));
        let b = w.insert(o + ms(5), waker(1, &log));
        let c = w.insert(o + ms(5), waker(2, &log));
        assert!(w.remove(b).is_some());
        assert!(w.remove(b).is_none(), "removing twice is a no-op");
        assert_eq!(w.process(o + ms(5)), 2);
        assert_eq!(take(&log), vec![0, 2]);
        // `a` fired; its slab slot gets reused by `d`, but `a` must not
        // reach `d`.
        let d = w.insert(o + ms(50), waker(3, &log));
        assert!(!w.contains(a));
        assert!(w.remove(a).is_none());
        assert!(!w.reset(c, o + ms(6)));
        assert!(!w.update_waker(a, &waker(9, &log)));
        assert!(w.contains(d));
        // A key of another wheel is ignored too.
        let mut other = Wheel::new(o);
        let foreign = other.insert(o + ms(50), waker(8, &log));
        assert!(w.remove(foreign).is_none());
        assert_eq!(w.process(o + ms(50)), 1);
        assert_eq!(take(&log), vec![3]);
    }

    #[test]
    fn remove_from_the_middle_of_a_slot() {
        let (o, mut w, log) = setup();
        let keys: Vec<_> = (0..5)
            .map(|id| w.insert(o + ms(700), waker(id, &log)))
            .collect();
        w.remove(keys[0]);
        w.remove(keys[2]);
        w.remove(keys[4]);
        assert_eq!(w.process(o + ms(700)), 2);
        assert_eq!(take(&log), vec![1, 3]);
    }

    #[test]
    fn reset_moves_the_deadline_and_keeps_the_waker() {
        let (o, mut w, log) = setup();
        let a = w.insert(o + ms(10), waker(0, &log));
        let b = w.insert(o + ms(20), waker(1, &log));
        assert!(w.reset(a, o + ms(5000)));
        assert!(w.reset(b, o + ms(3)));
        assert_eq!(w.next_deadline(), Some(o + ms(3)));
        assert_eq!(w.process(o + ms(4999)), 1);
        assert_eq!(take(&log), vec![1]);
        assert_eq!(w.next_deadline(), Some(o + ms(5000)));
        assert_eq!(w.process(o + ms(5000)), 1);
        assert_eq!(take(&log), vec![0]);
    }

    #[test]
    fn ceil_to_tick_rounds_up_to_the_next_tick() {
        let (o, w, _) = setup();
        assert_eq!(w.ceil_to_tick(o), o);
        assert_eq!(w.ceil_to_tick(o + ms(7)), o + ms(7), "on a tick: unchanged");
        assert_eq!(
            w.ceil_to_tick(o + ms(7) + Duration::from_nanos(1)),
            o + ms(8)
        );
        assert_eq!(w.ceil_to_tick(o + Duration::from_micros(999)), o + ms(1));
    }

    #[test]
    fn update_waker_replaces_the_waker() {
        let (o, mut w, log) = setup();
        let a = w.insert(o + ms(10), waker(0, &log));
        assert!(w.update_waker(a, &waker(7, &log)));
        w.process(o + ms(10));
        assert_eq!(take(&log), vec![7]);
    }

    #[test]
    fn far_future_deadlines_cascade_down() {
        let (o, mut w, log) = setup();
        const DAY: u64 = 86_400_000;
        // 40 days is on level 5, 3 years wraps around the top level,
        // 30 years wraps many times.
        let far = [
            40 * DAY,
            3 * 365 * DAY,
            30 * 365 * DAY,
            DAY + 1,
            64 * 64 * 64 + 3,
        ];
        for (id, &d) in far.iter().enumerate() {
            w.insert(o + ms(d), waker(id, &log));
        }
        let mut sorted: Vec<(u64, usize)> = far.iter().copied().zip(0..).collect();
        sorted.sort();
        for &(d, id) in &sorted {
            assert_eq!(w.next_deadline(), Some(o + ms(d)));
            assert_eq!(w.process(o + ms(d - 1)), 0, "entry {id} fired early");
            assert_eq!(w.next_deadline(), Some(o + ms(d)));
            assert_eq!(w.process(o + ms(d)), 1);
            assert_eq!(take(&log), vec![id]);
        }
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn wrapped_entry_does_not_hide_a_nearer_one() {
        let (o, mut w, log) = setup();
        const TOP_SLOT: u64 = 1 << 30;
        // Move `elapsed` into top-level slot 56, then add a deadline one
        // rotation ahead in slot 58 and a nearer one in slot 60: slot order
        // alone would pick the far one first.
        let base = 56 * TOP_SLOT + 12_345;
        w.process(o + ms(base));
        let near = base + 4 * TOP_SLOT;
        let wrapped = base + MAX_DURATION + 1 + 2 * TOP_SLOT;
        w.insert(o + ms(wrapped), waker(0, &log));
        w.insert(o + ms(near), waker(1, &log));
        assert_eq!(w.next_deadline(), Some(o + ms(near)));
        assert_eq!(w.process(o + ms(near - 1)), 0);
        assert_eq!(w.process(o + ms(near)), 1);
        assert_eq!(take(&log), vec![1]);
        assert_eq!(w.next_deadline(), Some(o + ms(wrapped)));
        assert_eq!(w.process(o + ms(wrapped - 1)), 0);
        assert_eq!(w.process(o + ms(wrapped)), 1);
        assert_eq!(take(&log), vec![0]);
    }

    #[test]
    fn next_deadline_tracks_insert_remove_and_process() {
        let (o, mut w, log) = setup();
        assert_eq!(w.next_deadline(), None);
        let a = w.insert(o + ms(100), waker(0, &log));
        assert_eq!(w.next_deadline(), Some(o + ms(100)));
        let b = w.insert(o + ms(30) + Duration::from_micros(1), waker(1, &log));
        assert_eq!(
            w.next_deadline(),
            Some(o + ms(31)),
            "rounded up to the tick"
        );
        w.remove(b);
        assert_eq!(w.next_deadline(), Some(o + ms(100)));
        w.insert(o + ms(5000), waker(2, &log));
        w.remove(a);
        assert_eq!(w.next_deadline(), Some(o + ms(5000)));
        // Processing part of the way (cascading) keeps the answer exact.
        w.process(o + ms(4100));
        assert_eq!(w.next_deadline(), Some(o + ms(5000)));
        w.process(o + ms(5000));
        assert_eq!(w.next_deadline(), None);
    }

    /// Random operations checked against a sorted model.
    fn check_against_model(seed: u64, ops: usize) {
        let (o, mut w, log) = setup();
        let mut model: std::collections::BTreeMap<(u64, usize), TimerKey> = Default::default();
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut now = 0u64;
        for id in 0..ops {
            match next() % 10 {
                0..=4 => {
                    let range =
                        [70, 5_000, 300_000, 20_000_000, 1 << 33, 1 << 38][(next() % 6) as usize];
                    let when = now + next() % range;
                    let key = w.insert(o + ms(when), waker(id, &log));
                    model.insert((when, id), key);
                }
                5 if !model.is_empty() => {
                    let nth = (next() % model.len() as u64) as usize;
                    let (&k, &key) = model.iter().nth(nth).unwrap();
                    assert!(w.remove(key).is_some());
                    model.remove(&k);
                }
                6 if !model.is_empty() => {
                    let nth = (next() % model.len() as u64) as usize;
                    let (&k, &key) = model.iter().nth(nth).unwrap();
                    let when = now + next() % 100_000;
                    assert!(w.reset(key, o + ms(when)));
                    model.remove(&k);
                    model.insert((when, k.1), key);
                }
                _ => {
                    let step = [1, 10, 1000, 100_000, 1 << 31, 1 << 35][(next() % 6) as usize];
                    now += next() % step;
                    w.process(o + ms(now));
                    let mut expected = Vec::new();
                    while let Some(entry) = model.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        expected.push(entry.remove_entry().0.1);
                    }
                    // Entries of one tick may fire in any order.
                    let mut got = take(&log);
                    got.sort();
                    expected.sort();
                    assert_eq!(got, expected, "at tick {now}");
                }
            }
            let earliest = model.keys().next().map(|&(when, _)| o + ms(when));
            assert_eq!(w.next_deadline(), earliest);
            assert_eq!(w.len(), model.len());
        }
    }

    #[test]
    fn matches_a_simple_model() {
        for seed in 1..=8u64 {
            check_against_model(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 10_000);
        }
    }

    #[test]
    fn many_entries_insert_and_remove() {
        let (o, mut w, log) = setup();
        let keys: Vec<TimerKey> = (0..100_000u64)
            .map(|i| w.insert(o + ms(1 + (i * 7919) % 1_000_000), waker(0, &log)))
            .collect();
        assert_eq!(w.len(), 100_000);
        for key in keys.iter().step_by(2) {
            assert!(w.remove(*key).is_some());
        }
        assert_eq!(w.len(), 50_000);
        assert_eq!(w.process(o + ms(1_000_000)), 50_000);
        assert_eq!(log.lock().unwrap().len(), 50_000);
        assert_eq!(w.len(), 0);
        for key in keys.iter().skip(1).step_by(2) {
            assert!(w.remove(*key).is_none());
        }
    }
}
