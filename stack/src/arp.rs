//! The ARP cache of an [`Interface`](super::Interface): IPv4 next hop →
//! MAC address, with entry timeouts, resolution with bounded retries and a
//! bounded queue of outgoing packets per unresolved next hop.
//!
//! This module only keeps state and time; the interface builds and sends
//! the ARP packets (through smoltcp's `ArpRepr`) when the cache asks it to.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use smoltcp::wire::EthernetAddress;

/// ARP tuning, part of [`InterfaceConfig`](super::InterfaceConfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpConfig {
    /// How long a learned entry is used before it must be resolved again.
    pub entry_ttl: Duration,
    /// Time between two ARP requests for the same next hop.
    pub retry_interval: Duration,
    /// ARP requests sent for one resolution before giving up (and dropping
    /// the packets waiting for it).
    pub max_requests: u32,
    /// Outgoing packets held per unresolved next hop; more are dropped and
    /// counted ([`TxStats::arp_queue_full`](super::TxStats::arp_queue_full)).
    pub pending_per_host: usize,
    /// Entries in the cache, resolved and unresolved.
    pub max_entries: usize,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            entry_ttl: Duration::from_secs(60),
            retry_interval: Duration::from_secs(1),
            max_requests: 3,
            pending_per_host: 16,
            max_entries: 512,
        }
    }
}

enum Entry<P> {
    Resolved {
        mac: EthernetAddress,
        /// `None`: a static entry, never expires, never overwritten.
        expires: Option<Instant>,
    },
    Pending {
        queue: VecDeque<P>,
        /// Requests sent (attempted) so far.
        requests: u32,
        next_request: Instant,
    },
}

/// The result of [`ArpCache::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    Resolved(EthernetAddress),
    /// Resolution under way, or nothing known (or expired).
    Unresolved,
}

/// The result of [`ArpCache::enqueue`].
pub(crate) enum Enqueue<P> {
    /// A new resolution: the packet is held and the caller must send the
    /// first ARP request now.
    Started,
    /// Held behind a resolution already under way.
    Queued,
    /// The per-host queue is full: the packet is given back.
    QueueFull(P),
    /// The cache is full of unresolved entries: the packet is given back.
    CacheFull(P),
}

/// Counters the cache updates; merged into [`ArpStats`](super::ArpStats).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CacheEvents {
    pub resolutions: u64,
    pub learned: u64,
    pub failed: u64,
    pub expired: u64,
    pub evicted: u64,
}

pub(crate) struct ArpCache<P> {
    config: ArpConfig,
    entries: HashMap<Ipv4Addr, Entry<P>>,
    /// Number of `Entry::Pending` in `entries`.
    pending: usize,
    /// No pending entry needs attention before this instant.
    next_deadline: Option<Instant>,
    /// Next sweep of expired resolved entries.
    next_sweep: Option<Instant>,
    /// The last resolved lookup (address, MAC, expiry): a datagram flow
    /// sends to the same next hop again and again, and this answers it
    /// without hashing the address (`entries` uses the DoS-resistant
    /// SipHash, since its keys come from the network). Every change to
    /// `entries` clears it, so it never outlives its entry; expiry is
    /// checked on each hit as on the map.
    last: Cell<Option<(Ipv4Addr, EthernetAddress, Option<Instant>)>>,
    /// Counts the changes to `entries` (see [`epoch`](Self::epoch)).
    epoch: u64,
    pub events: CacheEvents,
}

impl<P> ArpCache<P> {
    pub fn new(config: ArpConfig) -> Self {
        ArpCache {
            config,
            entries: HashMap::new(),
            pending: 0,
            next_deadline: None,
            next_sweep: None,
            last: Cell::new(None),
            epoch: 0,
            events: CacheEvents::default(),
        }
    }

    #[inline]
    pub fn lookup(&self, ip: Ipv4Addr, now: Instant) -> Lookup {
        match self.resolved(ip, now) {
            Some((mac, _)) => Lookup::Resolved(mac),
            None => Lookup::Unresolved,
        }
    }

    /// The MAC address of `ip` and when its entry expires (`None`: a
    /// static entry), if resolved and not expired at `now`.
    #[inline]
    pub fn resolved(
        &self,
        ip: Ipv4Addr,
        now: Instant,
    ) -> Option<(EthernetAddress, Option<Instant>)> {
        if let Some((last_ip, mac, expires)) = self.last.get() {
            if last_ip == ip && expires.is_none_or(|e| now < e) {
                return Some((mac, expires));
            }
        }
        match self.entries.get(&ip) {
            Some(&Entry::Resolved { mac, expires }) if expires.is_none_or(|e| now < e) => {
                self.last.set(Some((ip, mac, expires)));
                Some((mac, expires))
            }
            _ => None,
        }
    }

    /// A number that changes whenever an entry is added, changed or
    /// removed: what was looked up while it stays the same is still what
    /// the cache says (until the entry's own expiry). Endpoints keep the
    /// headers of their last datagram (with its next hop's MAC) under it.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Records a change to `entries`.
    fn changed(&mut self) {
        self.last.set(None);
        self.epoch += 1;
    }

    /// Adds a permanent entry (replacing whatever was there; packets
    /// waiting for this address are returned so they can be sent).
    pub fn insert_static(&mut self, ip: Ipv4Addr, mac: EthernetAddress) -> VecDeque<P> {
        self.changed();
        let old = self
            .entries
            .insert(ip, Entry::Resolved { mac, expires: None });
        self.take_queue(old)
    }

    /// Holds `packet` until `ip` is resolved. The caller has checked that
    /// `lookup` gave `Unresolved`.
    pub fn enqueue(&mut self, ip: Ipv4Addr, packet: P, now: Instant) -> Enqueue<P> {
        self.changed();
        let limit = self.config.pending_per_host;
        if let Some(Entry::Pending { queue, .. }) = self.entries.get_mut(&ip) {
            if queue.len() >= limit {
                return Enqueue::QueueFull(packet);
            }
            queue.push_back(packet);
            return Enqueue::Queued;
        }
        if limit == 0 {
            return Enqueue::QueueFull(packet);
        }
        // Missing or expired: (re)start a resolution.
        let exists = self.entries.contains_key(&ip);
        if !exists && !self.make_room(now) {
            return Enqueue::CacheFull(packet);
        }
        let mut queue = VecDeque::with_capacity(limit.min(4));
        queue.push_back(packet);
        self.entries.insert(
            ip,
            Entry::Pending {
                queue,
                requests: 1,
                next_request: now + self.config.retry_interval,
            },
        );
        self.pending += 1;
        self.events.resolutions += 1;
        self.lower_deadline(now + self.config.retry_interval);
        Enqueue::Started
    }

    /// Records `ip` → `mac` learned from an ARP packet at `now`. An
    /// existing entry is refreshed (RFC 826 "merge"); a new one is created
    /// only when `create` (the packet was addressed to us). Returns the
    /// packets that were waiting for this address, to be sent now.
    pub fn learn(
        &mut self,
        ip: Ipv4Addr,
        mac: EthernetAddress,
        now: Instant,
        create: bool,
    ) -> VecDeque<P> {
        let expires = Some(now + self.config.entry_ttl);
        self.changed();
        if let Some(entry) = self.entries.get_mut(&ip) {
            if matches!(entry, Entry::Resolved { expires: None, .. }) {
                return VecDeque::new();
            }
            let old = std::mem::replace(entry, Entry::Resolved { mac, expires });
            self.events.learned += 1;
            return self.take_queue(Some(old));
        }
        if create && self.make_room(now) {
            self.entries.insert(ip, Entry::Resolved { mac, expires });
            self.events.learned += 1;
        }
        VecDeque::new()
    }

    /// Runs the timers: sends due ARP requests (`send_request(ip)`), gives
    /// up resolutions that had all their requests (each waiting packet goes
    /// to `drop_packet`), sweeps expired entries.
    pub fn poll(
        &mut self,
        now: Instant,
        send_request: &mut impl FnMut(Ipv4Addr),
        drop_packet: &mut impl FnMut(P),
    ) {
        if self.next_sweep.is_none_or(|t| now >= t) {
            self.sweep(now);
            self.next_sweep = Some(now + self.config.entry_ttl.min(Duration::from_secs(1)));
        }
        if self.pending == 0 || self.next_deadline.is_some_and(|t| now < t) {
            return;
        }
        let interval = self.config.retry_interval;
        let max = self.config.max_requests;
        let mut next: Option<Instant> = None;
        let mut failed = 0;
        self.entries.retain(|&ip, entry| match entry {
            Entry::Pending {
                queue,
                requests,
                next_request,
            } => {
                if now < *next_request {
                    next = Some(next.map_or(*next_request, |n| n.min(*next_request)));
                    return true;
                }
                if *requests >= max {
                    for packet in queue.drain(..) {
                        drop_packet(packet);
                    }
                    failed += 1;
                    return false;
                }
                send_request(ip);
                *requests += 1;
                *next_request = now + interval;
                next = Some(next.map_or(*next_request, |n| n.min(*next_request)));
                true
            }
            Entry::Resolved { .. } => true,
        });
        self.pending -= failed;
        self.events.failed += failed as u64;
        self.next_deadline = next;
    }

    /// Whether [`poll`](Self::poll) has nothing to do at `now` (no sweep
    /// due, no resolution waiting for a retry or give-up): the stack
    /// checks this on every poll and skips the call.
    #[inline]
    pub fn is_quiet(&self, now: Instant) -> bool {
        self.next_sweep.is_some_and(|t| now < t)
            && (self.pending == 0 || self.next_deadline.is_some_and(|t| now < t))
    }

    fn lower_deadline(&mut self, t: Instant) {
        self.next_deadline = Some(self.next_deadline.map_or(t, |d| d.min(t)));
    }

    fn take_queue(&mut self, old: Option<Entry<P>>) -> VecDeque<P> {
        match old {
            Some(Entry::Pending { queue, .. }) => {
                self.pending -= 1;
                queue
            }
            _ => VecDeque::new(),
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.changed();
        let before = self.entries.len();
        self.entries.retain(|_, e| match e {
            Entry::Resolved {
                expires: Some(t), ..
            } => now < *t,
            _ => true,
        });
        self.events.expired += (before - self.entries.len()) as u64;
    }

    /// Makes room for one more entry; false if every entry is static or
    /// unresolved.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.entries.len() < self.config.max_entries {
            return true;
        }
        self.sweep(now);
        if self.entries.len() < self.config.max_entries {
            return true;
        }
        let oldest = self
            .entries
            .iter()
            .filter_map(|(ip, e)| match e {
                Entry::Resolved {
                    expires: Some(t), ..
                } => Some((*t, *ip)),
                _ => None,
            })
            .min();
        match oldest {
            Some((_, ip)) => {
                self.changed();
                self.entries.remove(&ip);
                self.events.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// Number of entries (resolved and unresolved).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn cache(config: ArpConfig) -> ArpCache<u32> {
        ArpCache::new(config)
    }

    #[test]
    fn resolve_flushes_queue_in_order() {
        let t0 = Instant::now();
        let mut c = cache(ArpConfig::default());
        assert_eq!(c.lookup(IP, t0), Lookup::Unresolved);
        assert!(matches!(c.enqueue(IP, 1, t0), Enqueue::Started));
        assert!(matches!(c.enqueue(IP, 2, t0), Enqueue::Queued));
        let q = c.learn(IP, MAC, t0, false);
        assert_eq!(q.into_iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(c.lookup(IP, t0), Lookup::Resolved(MAC));
        assert_eq!(c.pending, 0);
    }

    #[test]
    fn queue_bound() {
        let t0 = Instant::now();
        let mut c = cache(ArpConfig {
            pending_per_host: 2,
            ..ArpConfig::default()
        });
        assert!(matches!(c.enqueue(IP, 1, t0), Enqueue::Started));
        assert!(matches!(c.enqueue(IP, 2, t0), Enqueue::Queued));
        assert!(matches!(c.enqueue(IP, 3, t0), Enqueue::QueueFull(3)));
    }

    #[test]
    fn retries_then_fails() {
        let t0 = Instant::now();
        let cfg = ArpConfig::default();
        let mut c = cache(cfg);
        assert!(matches!(c.enqueue(IP, 7, t0), Enqueue::Started));
        let mut requests = 0;
        let mut dropped = Vec::new();
        for i in 0..10 {
            c.poll(
                t0 + cfg.retry_interval * i,
                &mut |_| requests += 1,
                &mut |p| dropped.push(p),
            );
        }
        // One request at enqueue, max_requests - 1 retries, then failure.
        assert_eq!(requests, cfg.max_requests - 1);
        assert_eq!(dropped, [7]);
        assert_eq!(c.events.failed, 1);
        assert_eq!(c.len(), 0);
        assert_eq!(c.pending, 0);
    }

    #[test]
    fn entries_expire_and_static_do_not() {
        let t0 = Instant::now();
        let cfg = ArpConfig::default();
        let mut c = cache(cfg);
        let other = Ipv4Addr::new(10, 0, 0, 3);
        c.learn(IP, MAC, t0, true);
        c.insert_static(other, MAC);
        let later = t0 + cfg.entry_ttl;
        assert_eq!(c.lookup(IP, later), Lookup::Unresolved);
        assert_eq!(c.lookup(other, later), Lookup::Resolved(MAC));
        c.poll(later, &mut |_| {}, &mut |_| {});
        assert_eq!(c.len(), 1);
        assert_eq!(c.events.expired, 1);
        // A static entry is not overwritten by ARP.
        c.learn(other, EthernetAddress([2, 0, 0, 0, 0, 9]), later, true);
        assert_eq!(c.lookup(other, later), Lookup::Resolved(MAC));
    }

    #[test]
    fn full_cache_evicts_oldest_resolved() {
        let t0 = Instant::now();
        let mut c = cache(ArpConfig {
            max_entries: 2,
            ..ArpConfig::default()
        });
        let a = Ipv4Addr::new(10, 0, 0, 10);
        let b = Ipv4Addr::new(10, 0, 0, 11);
        c.learn(a, MAC, t0, true);
        c.learn(b, MAC, t0 + Duration::from_secs(1), true);
        assert!(matches!(c.enqueue(IP, 1, t0), Enqueue::Started));
        assert_eq!(c.lookup(a, t0), Lookup::Unresolved);
        assert_eq!(c.lookup(b, t0), Lookup::Resolved(MAC));
        assert_eq!(c.events.evicted, 1);
        // Now one pending and one resolved; another pending evicts b, a
        // third cannot be created.
        assert!(matches!(c.enqueue(a, 2, t0), Enqueue::Started));
        assert!(matches!(
            c.enqueue(Ipv4Addr::new(10, 0, 0, 12), 3, t0),
            Enqueue::CacheFull(3)
        ));
    }
}
