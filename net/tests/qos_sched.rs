//! The per-core transmit scheduler as a specification (issue 5, points 6
//! and 8): critical before bulk, weights respected, backpressure,
//! removal, statistics.

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::task::noop_waker;
use insane_net::qos::sched::{
    Bound, Class, FlowHandle, QueueStats, Scheduler, SendError, TrySendError,
};
use insane_net::qos::{Latency, Qos};

/// Items: (flow tag, sequence number, size in bytes).
type Item = (u32, u64, usize);

fn item_len(i: &Item) -> usize {
    i.2
}

fn sched(quantum: u32) -> Scheduler<Item> {
    Scheduler::builder()
        .quantum(quantum)
        .build_with_len(item_len)
}

fn bulk(weight: u32) -> Class {
    Class::Bulk { weight }
}

fn check_stats(s: &QueueStats) {
    assert_eq!(s.enqueued, s.dequeued + s.queued + s.removed, "{s:?}");
    assert_eq!(
        s.enqueued_bytes,
        s.dequeued_bytes + s.queued_bytes + s.removed_bytes,
        "{s:?}"
    );
}

#[test]
fn critical_goes_before_bulk_queued_earlier() {
    let s = sched(1500);
    let b1 = s.register(bulk(1), Bound::default());
    let b2 = s.register(bulk(5), Bound::default());
    let c1 = s.register(Class::Critical, Bound::default());
    let c2 = s.register(Class::Critical, Bound::default());
    for n in 0..10 {
        b1.try_send((0, n, 100)).unwrap();
        b2.try_send((1, n, 100)).unwrap();
    }
    for n in 0..3 {
        c1.try_send((2, n, 1000)).unwrap();
    }
    c2.try_send((3, 0, 10)).unwrap();
    // Critical flows first, round-robin by item in the order they became
    // backlogged: c1, c2, c1, c1.
    let first: Vec<_> = (0..4).map(|_| s.dequeue().unwrap().1).collect();
    assert_eq!(
        first,
        vec![(2, 0, 1000), (3, 0, 10), (2, 1, 1000), (2, 2, 1000)]
    );
    // A critical item arriving while bulk is being sent still jumps ahead.
    assert_eq!(s.dequeue().unwrap().1.0, 0);
    c2.try_send((3, 1, 10)).unwrap();
    assert_eq!(s.dequeue().unwrap().1, (3, 1, 10));
    // The rest: bulk only, FIFO within each flow.
    let mut next = [1u64, 0];
    while let Some((id, (tag, n, _))) = s.dequeue() {
        assert!(id == b1.id() || id == b2.id());
        assert_eq!(n, next[tag as usize], "FIFO within flow {tag}");
        next[tag as usize] += 1;
    }
    assert_eq!(next, [10, 10]);
}

#[test]
fn scheduling_order_is_deterministic() {
    let run = || {
        let s = sched(300);
        let flows: Vec<_> = [Class::Critical, bulk(1), bulk(2), bulk(3)]
            .into_iter()
            .map(|c| s.register(c, Bound::items(10_000)))
            .collect();
        let mut order = Vec::new();
        for n in 0..1000u64 {
            let f = (n * 7 % 4) as usize;
            flows[f]
                .try_send((f as u32, n, 50 + (n as usize * 13) % 400))
                .unwrap();
            if n % 3 == 0 {
                order.extend(s.dequeue().map(|(_, i)| i));
            }
        }
        order.extend(std::iter::from_fn(|| s.dequeue()).map(|(_, i)| i));
        order
    };
    let a = run();
    assert_eq!(a.len(), 1000);
    assert_eq!(a, run());
}

#[test]
fn qos_maps_to_class() {
    let critical = Qos::builder().latency(Latency::Critical).build();
    assert_eq!(Class::for_qos(&critical, 7), Class::Critical);
    assert_eq!(
        Class::for_qos(&Qos::default(), 7),
        Class::Bulk { weight: 7 }
    );
}

/// Keeps both flows backlogged over `sends` sends in total and returns
/// each flow's share of the dequeued bytes.
fn shares(weights: [u32; 2], sizes: [usize; 2], sends: u64) -> [f64; 2] {
    let s = sched(1500);
    let flows: Vec<FlowHandle<Item>> = weights
        .iter()
        .map(|&w| s.register(bulk(w), Bound::items(8)))
        .collect();
    let mut bytes = [0u64; 2];
    let mut sent = 0;
    let mut seq = [0u64; 2];
    // Fill both, then after each dequeue refill whichever flow has room:
    // both stay backlogged throughout.
    loop {
        for f in 0..2 {
            while sent < sends {
                match flows[f].try_send((f as u32, seq[f], sizes[f])) {
                    Ok(()) => {
                        seq[f] += 1;
                        sent += 1;
                    }
                    Err(TrySendError::Full(_)) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        if sent >= sends {
            break;
        }
        let (id, (tag, n, len)) = s.dequeue().unwrap();
        assert_eq!(id, flows[tag as usize].id());
        let _ = n;
        bytes[tag as usize] += len as u64;
    }
    let total = (bytes[0] + bytes[1]) as f64;
    for f in &flows {
        check_stats(&f.stats().unwrap());
    }
    [bytes[0] as f64 / total, bytes[1] as f64 / total]
}

#[test]
fn weights_respected_equal_sizes() {
    let [a, b] = shares([1, 3], [1000, 1000], 10_000);
    assert!((a - 0.25).abs() < 0.01, "weight 1 got {a}");
    assert!((b - 0.75).abs() < 0.01, "weight 3 got {b}");
}

#[test]
fn weights_respected_by_bytes_with_unequal_sizes() {
    // 100 B items on the weight-3 flow, 1000 B on the weight-1 flow:
    // byte shares still follow the weights, not the item counts.
    let [a, b] = shares([1, 3], [1000, 100], 10_000);
    assert!((a - 0.25).abs() < 0.01, "weight 1 (1000 B items) got {a}");
    assert!((b - 0.75).abs() < 0.01, "weight 3 (100 B items) got {b}");
    // And the other way round.
    let [a, b] = shares([1, 3], [100, 1000], 10_000);
    assert!((a - 0.25).abs() < 0.01, "weight 1 (100 B items) got {a}");
    assert!((b - 0.75).abs() < 0.01, "weight 3 (1000 B items) got {b}");
}

#[test]
fn bulk_flows_do_not_starve_each_other() {
    // A heavy flow with a huge weight and big items cannot shut out a
    // weight-1 flow of tiny items: the light flow gets a turn every round.
    let s = sched(1500);
    let heavy = s.register(bulk(100), Bound::items(usize::MAX));
    let light = s.register(bulk(1), Bound::items(usize::MAX));
    for n in 0..100_000 {
        heavy.try_send((0, n, 9000)).unwrap();
    }
    light.try_send((1, 0, 10)).unwrap();
    let mut before = 0;
    loop {
        let (id, _) = s.dequeue().unwrap();
        if id == light.id() {
            break;
        }
        before += 1;
    }
    // One round of the heavy flow: 100 × 1500 / 9000 = 16 items.
    assert!(before <= 17, "light flow waited {before} items");
}

#[test]
fn critical_starves_bulk_unless_budgeted() {
    // Strict priority: while the critical flow is backlogged, bulk waits.
    let s = sched(1500);
    let c = s.register(Class::Critical, Bound::items(usize::MAX));
    let b = s.register(bulk(1), Bound::items(usize::MAX));
    b.try_send((1, 0, 100)).unwrap();
    for n in 0..1000 {
        c.try_send((0, n, 100)).unwrap();
    }
    for _ in 0..1000 {
        assert_eq!(s.dequeue().unwrap().0, c.id());
    }
    assert_eq!(s.dequeue().unwrap().0, b.id());

    // With a budget of 3: three critical items, then one bulk item.
    let s: Scheduler<Item> = Scheduler::builder()
        .critical_budget(3)
        .build_with_len(item_len);
    let c = s.register(Class::Critical, Bound::items(usize::MAX));
    let b = s.register(bulk(1), Bound::items(usize::MAX));
    for n in 0..10 {
        c.try_send((0, n, 100)).unwrap();
        b.try_send((1, n, 100)).unwrap();
    }
    let tags: String = std::iter::from_fn(|| s.dequeue())
        .map(|(_, (t, _, _))| if t == 0 { 'c' } else { 'b' })
        .collect();
    assert_eq!(tags, "cccbcccbcccbcbbbbbbb");
}

#[test]
fn full_flow_gives_item_back_and_counts() {
    let s = sched(1500);
    let f = s.register(bulk(1), Bound::new(3, 250));
    f.try_send((0, 0, 100)).unwrap();
    f.try_send((0, 1, 100)).unwrap();
    // 300 bytes would exceed the byte bound.
    match f.try_send((0, 2, 100)) {
        Err(TrySendError::Full(item)) => assert_eq!(item, (0, 2, 100)),
        other => panic!("{other:?}"),
    }
    f.try_send((0, 2, 50)).unwrap();
    // Now 3 items: the item bound.
    let err = f.try_send((0, 3, 1)).unwrap_err();
    assert!(err.is_full());
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::WouldBlock
    );
    let st = f.stats().unwrap();
    assert_eq!((st.enqueued, st.full, st.queued_bytes), (3, 2, 250));
    assert_eq!(s.stats().bulk.full, 2);
    // An item larger than the byte bound still goes into an empty queue.
    let g = s.register(bulk(1), Bound::bytes(10));
    g.try_send((1, 0, 10_000)).unwrap();
    assert!(g.try_send((1, 1, 1)).unwrap_err().is_full());
}

#[test]
fn send_waits_for_a_dequeue() {
    let s = sched(1500);
    let f = s.register(bulk(1), Bound::items(1));
    f.try_send((0, 0, 10)).unwrap();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut send = pin!(f.send((0, 1, 10)));
    assert!(send.as_mut().poll(&mut cx).is_pending());
    assert!(send.as_mut().poll(&mut cx).is_pending());
    assert_eq!(s.dequeue().unwrap().1, (0, 0, 10));
    assert_eq!(send.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(s.dequeue().unwrap().1, (0, 1, 10));
}

#[test]
fn send_is_woken_by_dequeue_on_the_runtime() {
    let rt = insane_runtime::runtime::Runtime::builder()
        .cores(1)
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Rc::new(sched(1500));
        let f = s.register(bulk(1), Bound::items(4));
        let producer = {
            let f = f.clone();
            insane_runtime::task::spawn_local(async move {
                for n in 0..1000 {
                    f.send((0, n, 100)).await.unwrap();
                }
            })
        };
        // The transmit path: wait for items, drain in batches.
        let mut got = Vec::new();
        let mut batch = Vec::new();
        while got.len() < 1000 {
            s.ready().await;
            batch.clear();
            s.dequeue_batch(3, &mut batch);
            got.extend(batch.iter().map(|(_, (_, n, _))| *n));
            insane_runtime::task::yield_now().await;
        }
        producer.await.unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        let st = f.stats().unwrap();
        assert_eq!((st.enqueued, st.dequeued, st.queued), (1000, 1000, 0));
        assert!(st.full > 0, "the bound of 4 must have pushed back");
    });
}

#[test]
fn removal_returns_pending_items_and_closes_senders() {
    let s = sched(1500);
    let a = s.register(Class::Critical, Bound::items(2));
    let b = s.register(bulk(1), Bound::items(2));
    for n in 0..2 {
        a.try_send((0, n, 10)).unwrap();
        b.try_send((1, n, 20)).unwrap();
    }
    assert_eq!(s.dequeue().unwrap().1, (0, 0, 10));

    // A sender waiting on the full bulk flow.
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut waiting = pin!(b.send((1, 2, 20)));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());

    let removed = s.remove(b.id()).unwrap();
    assert_eq!(removed.items, vec![(1, 0, 20), (1, 1, 20)]);
    assert_eq!(removed.stats.removed, 2);
    assert_eq!(removed.stats.removed_bytes, 40);
    check_stats(&removed.stats);
    // The waiting sender gets its item back instead of hanging.
    assert_eq!(
        waiting.as_mut().poll(&mut cx),
        Poll::Ready(Err(SendError((1, 2, 20))))
    );
    assert!(b.is_closed());
    assert!(b.stats().is_none());
    assert!(matches!(
        b.try_send((1, 3, 20)),
        Err(TrySendError::Closed((1, 3, 20)))
    ));
    assert!(s.remove(b.id()).is_none(), "removal is idempotent");
    assert_eq!(s.flows(), 1);

    // The other flow is unaffected.
    assert_eq!(s.dequeue().unwrap().1, (0, 1, 10));
    assert_eq!(s.dequeue(), None);

    let st = s.stats();
    check_stats(&st.critical);
    check_stats(&st.bulk);
    assert_eq!((st.bulk.enqueued, st.bulk.removed), (2, 2));
    assert_eq!((st.critical.enqueued, st.critical.dequeued), (2, 2));
}

#[test]
fn dropping_the_scheduler_closes_flows() {
    let s = sched(1500);
    let f = s.register(bulk(1), Bound::items(1));
    f.try_send((0, 0, 1)).unwrap();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut waiting = pin!(f.send((0, 1, 1)));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    drop(s);
    assert!(matches!(
        waiting.as_mut().poll(&mut cx),
        Poll::Ready(Err(SendError(_)))
    ));
    assert!(f.is_closed());
    assert!(matches!(
        f.try_send((0, 2, 1)),
        Err(TrySendError::Closed(_))
    ));
}

#[test]
fn stats_add_up_under_mixed_traffic() {
    let s = sched(700);
    let flows: Vec<_> = (0..6)
        .map(|i| {
            let class = if i % 3 == 0 { Class::Critical } else { bulk(i) };
            s.register(class, Bound::new(16, 20_000))
        })
        .collect();
    let mut removed: Option<QueueStats> = None;
    let mut full = 0u64;
    let mut x = 12345u64;
    for n in 0..20_000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let f = (x >> 33) as usize % flows.len();
        if f == 4 && removed.is_some() {
            continue;
        }
        match flows[f].try_send((f as u32, n, 1 + (x >> 40) as usize % 3000)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => full += 1,
            Err(TrySendError::Closed(_)) => unreachable!(),
        }
        if x % 3 == 0 {
            s.dequeue();
        }
        if n == 10_000 {
            removed = Some(s.remove(flows[4].id()).unwrap().stats);
        }
    }
    let removed = removed.unwrap();
    assert!(removed.removed > 0);
    let check_classes = |s: &Scheduler<Item>| {
        let st = s.stats();
        check_stats(&st.critical);
        check_stats(&st.bulk);
        // Class counters = live flows + the removed flow.
        let mut sums = [removed, QueueStats::default()];
        sums[0].full = 0;
        for (i, f) in flows.iter().enumerate() {
            let Some(fs) = f.stats() else { continue };
            check_stats(&fs);
            let sum = &mut sums[usize::from(i % 3 == 0)];
            sum.enqueued += fs.enqueued;
            sum.enqueued_bytes += fs.enqueued_bytes;
            sum.dequeued += fs.dequeued;
            sum.dequeued_bytes += fs.dequeued_bytes;
            sum.queued += fs.queued;
            sum.queued_bytes += fs.queued_bytes;
            sum.removed += fs.removed;
            sum.removed_bytes += fs.removed_bytes;
            sum.full += fs.full;
        }
        sums[0].full += removed.full;
        assert_eq!(sums[0], st.bulk);
        assert_eq!(sums[1], st.critical);
        assert_eq!(s.len() as u64, st.critical.queued + st.bulk.queued);
        st
    };
    let st = check_classes(&s);
    assert_eq!(st.critical.full + st.bulk.full, full);
    while s.dequeue().is_some() {}
    let st = check_classes(&s);
    assert_eq!(st.critical.queued + st.bulk.queued, 0);
    assert!(s.is_empty());
}
