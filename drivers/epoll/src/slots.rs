//! The table of registrations: one slot per registered fd, addressed by
//! [`Token`]s that carry a generation.
//!
//! A token is `generation << INDEX_BITS | index`. Freeing a slot bumps its
//! generation, so a token that outlived its registration (a late
//! `deregister`, a stale epoll event) never reaches the slot's next owner.

use std::os::fd::RawFd;
use std::task::Waker;

use insane_runtime::driver::{Direction, Token};

/// Bits of a token that hold the slot index (the rest hold the generation).
const INDEX_BITS: u32 = if usize::BITS >= 64 { 32 } else { 20 };
/// Slot indices are `< MAX_SLOTS`.
pub(crate) const MAX_SLOTS: usize = (1usize << INDEX_BITS) - 1;
const INDEX_MASK: usize = (1usize << INDEX_BITS) - 1;
/// Generations wrap within this mask.
const GENERATION_MASK: usize = usize::MAX >> INDEX_BITS;

/// Readiness of one direction of one fd.
#[derive(Debug, Default)]
pub(crate) struct DirState {
    /// Cached readiness: the fd may be ready; cleared on `WouldBlock`.
    pub(crate) ready: bool,
    /// The task to wake when the fd becomes ready.
    pub(crate) waker: Option<Waker>,
}

impl DirState {
    /// Marks the direction ready and wakes its waiter, if any. Returns
    /// whether a task was woken.
    pub(crate) fn set_ready(&mut self) -> bool {
        self.ready = true;
        match self.waker.take() {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        }
    }
}

/// One registered fd.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) fd: RawFd,
    pub(crate) read: DirState,
    pub(crate) write: DirState,
}

impl Entry {
    /// A new registration: both directions start ready, so the first
    /// syscall is always tried.
    fn new(fd: RawFd) -> Self {
        Self {
            fd,
            read: DirState {
                ready: true,
                waker: None,
            },
            write: DirState {
                ready: true,
                waker: None,
            },
        }
    }

    pub(crate) fn dir(&mut self, dir: Direction) -> &mut DirState {
        match dir {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }

    /// Wakes both waiters (the registration is going away or was
    /// replaced: let them retry and see the error).
    fn wake_all(&mut self) {
        for state in [&mut self.read, &mut self.write] {
            if let Some(w) = state.waker.take() {
                w.wake();
            }
        }
    }
}

#[derive(Debug)]
struct Slot {
    generation: usize,
    entry: Option<Entry>,
}

/// Registrations by token.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    slots: Vec<Slot>,
    free: Vec<usize>,
    live: usize,
}

fn split(token: Token) -> (usize, usize) {
    (token.0 & INDEX_MASK, token.0 >> INDEX_BITS)
}

fn join(index: usize, generation: usize) -> Token {
    Token((generation << INDEX_BITS) | index)
}

impl Slots {
    /// Number of live registrations.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Stores a new registration for `fd`; `None` when the table is full.
    pub(crate) fn insert(&mut self, fd: RawFd) -> Option<Token> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                if self.slots.len() >= MAX_SLOTS {
                    return None;
                }
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.entry = Some(Entry::new(fd));
        self.live += 1;
        Some(join(index, slot.generation))
    }

    /// The live registration of `token`, if it still exists.
    pub(crate) fn get_mut(&mut self, token: Token) -> Option<&mut Entry> {
        let (index, generation) = split(token);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// Removes the registration of `token` (if live), bumping the slot's
    /// generation so the token goes stale. Waiters are dropped unwoken
    /// when `wake` is false, woken otherwise.
    pub(crate) fn remove(&mut self, token: Token, wake: bool) -> Option<Entry> {
        let (index, generation) = split(token);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let mut entry = slot.entry.take()?;
        slot.generation = (slot.generation + 1) & GENERATION_MASK;
        self.free.push(index);
        self.live -= 1;
        if wake {
            entry.wake_all();
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_tokens_never_reach_a_reused_slot() {
        let mut slots = Slots::default();
        let a = slots.insert(10).unwrap();
        assert_eq!(slots.get_mut(a).unwrap().fd, 10);
        assert!(slots.remove(a, false).is_some());
        assert!(slots.get_mut(a).is_none());
        let b = slots.insert(11).unwrap();
        assert_ne!(a, b, "same slot, new generation");
        assert_eq!(split(a).0, split(b).0);
        assert!(
            slots.remove(a, false).is_none(),
            "late remove of a stale token is a no-op"
        );
        assert_eq!(slots.get_mut(b).unwrap().fd, 11);
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn garbage_tokens_are_rejected() {
        let mut slots = Slots::default();
        let _ = slots.insert(3).unwrap();
        for t in [usize::MAX, INDEX_MASK, 1 << INDEX_BITS, 12345] {
            assert!(slots.get_mut(Token(t)).is_none());
            assert!(slots.remove(Token(t), true).is_none());
        }
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn generations_wrap() {
        let mut slots = Slots::default();
        slots.slots.push(Slot {
            generation: GENERATION_MASK,
            entry: None,
        });
        slots.free.push(0);
        let t = slots.insert(1).unwrap();
        assert_eq!(split(t), (0, GENERATION_MASK));
        slots.remove(t, false).unwrap();
        let t2 = slots.insert(2).unwrap();
        assert_eq!(split(t2), (0, 0));
    }

    #[test]
    fn new_entries_start_ready() {
        let mut slots = Slots::default();
        let t = slots.insert(5).unwrap();
        let e = slots.get_mut(t).unwrap();
        assert!(e.read.ready && e.write.ready);
    }
}
