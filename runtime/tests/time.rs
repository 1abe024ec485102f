//! Timer semantics (`insane_runtime::time`), written as specifications.
//!
//! Lower bounds ("never early") are asserted exactly; upper bounds only
//! loosely, since CI machines can be slow.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use insane_runtime::runtime::Runtime;
use insane_runtime::task;
use insane_runtime::time::error::Elapsed;
use insane_runtime::time::{self, Duration, Instant, MissedTickBehavior};

mod support;
use support::{DropCounter, DropGuard};

fn rt(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .build()
        .expect("runtime starts")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A future that never completes and counts its drop.
struct Never(#[allow(dead_code)] DropGuard);

impl Future for Never {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Polls `fut` once; true if it completed.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx).is_ready())).await
}

#[test]
fn sleeps_complete_in_deadline_order_and_never_early() {
    rt(1).block_on(async {
        let start = Instant::now();
        let log = Rc::new(RefCell::new(Vec::new()));
        let delays = [40, 10, 70, 0, 25, 55, 1, 2];
        let handles: Vec<_> = delays
            .iter()
            .map(|&d| {
                let log = log.clone();
                let deadline = start + ms(d);
                task::spawn_local(async move {
                    time::sleep_until(deadline).await;
                    let now = Instant::now();
                    assert!(now >= deadline, "woke {:?} early", deadline - now);
                    log.borrow_mut().push(d);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let mut sorted = delays.to_vec();
        sorted.sort();
        assert_eq!(*log.borrow(), sorted);
    });
}

#[test]
fn sleep_waits_at_least_its_duration() {
    rt(1).block_on(async {
        for d in [ms(1), ms(3), Duration::from_micros(2500), ms(20)] {
            let start = Instant::now();
            time::sleep(d).await;
            assert!(start.elapsed() >= d);
        }
        let start = Instant::now();
        time::sleep(ms(100)).await;
        assert!(
            start.elapsed() < ms(100) + ms(900),
            "a 100 ms sleep took {:?}",
            start.elapsed()
        );
    });
}

#[test]
fn zero_and_past_sleeps_complete_at_first_poll() {
    rt(1).block_on(async {
        let mut zero = Box::pin(time::sleep(Duration::ZERO));
        assert!(zero.is_elapsed());
        assert!(poll_once(&mut zero).await);
        let mut past = Box::pin(time::sleep_until(Instant::now() - ms(10)));
        assert!(poll_once(&mut past).await);
    });
}

#[test]
fn huge_durations_do_not_overflow() {
    rt(1).block_on(async {
        let mut forever = Box::pin(time::sleep(Duration::MAX));
        assert!(!forever.is_elapsed());
        assert!(!poll_once(&mut forever).await);
        assert!(forever.deadline() > Instant::now() + Duration::from_secs(86_400 * 365 * 10));
        drop(forever);
        let r = time::timeout(Duration::MAX, async { 5 }).await;
        assert_eq!(r, Ok(5));
        // The core still sleeps and wakes normally with a far timer pending.
        let _far = Box::pin(time::sleep(Duration::from_secs(86_400 * 365 * 5)));
        let start = Instant::now();
        time::sleep(ms(5)).await;
        assert!(start.elapsed() >= ms(5));
    });
}

#[test]
fn sleep_reset_moves_the_deadline() {
    rt(1).block_on(async {
        // Later: registered, then pushed back.
        let start = Instant::now();
        let mut sleep = Box::pin(time::sleep(ms(5)));
        assert!(!poll_once(&mut sleep).await);
        let later = start + ms(40);
        sleep.as_mut().reset(later);
        assert_eq!(sleep.deadline(), later);
        (&mut sleep).await;
        assert!(Instant::now() >= later);

        // Sooner: a long sleep brought forward completes.
        let mut sleep = Box::pin(time::sleep(Duration::from_secs(30)));
        assert!(!poll_once(&mut sleep).await);
        let sooner = Instant::now() + ms(10);
        sleep.as_mut().reset(sooner);
        (&mut sleep).await;
        assert!(Instant::now() >= sooner);
        assert!(sleep.is_elapsed());

        // After completion it can be re-armed.
        let again = Instant::now() + ms(10);
        sleep.as_mut().reset(again);
        assert!(!sleep.is_elapsed());
        sleep.await;
        assert!(Instant::now() >= again);
    });
}

#[test]
fn reset_wakes_the_waiting_task_at_the_new_deadline() {
    // The task waiting on the Sleep is not the one calling reset; being
    // woken must not depend on another poll of the Sleep.
    rt(1).block_on(async {
        let mut sleep = Box::pin(time::sleep(Duration::from_secs(30)));
        // Registers the main task's waker.
        assert!(!poll_once(&mut sleep).await);
        let sooner = Instant::now() + ms(10);
        sleep.as_mut().reset(sooner);
        // Wait without polling the sleep again: only its timer entry, now
        // moved to `sooner`, can wake this task (otherwise this takes 30 s
        // and fails).
        let mut waited = false;
        std::future::poll_fn(|_| {
            if waited {
                Poll::Ready(())
            } else {
                waited = true;
                Poll::Pending
            }
        })
        .await;
        assert!(Instant::now() >= sooner);
        assert!(
            sooner.elapsed() < Duration::from_secs(20),
            "woken by the old deadline?"
        );
        drop(sleep);
    });
}

#[test]
fn dropping_a_sleep_cancels_it() {
    rt(1).block_on(async {
        for _ in 0..100 {
            let mut sleep = Box::pin(time::sleep(ms(5)));
            assert!(!poll_once(&mut sleep).await);
            drop(sleep);
        }
        // The cancelled entries do not disturb later timers.
        let start = Instant::now();
        time::sleep(ms(10)).await;
        assert!(start.elapsed() >= ms(10));
    });
}

#[test]
fn timeout_elapses_and_drops_the_inner_future() {
    let drops = DropCounter::default();
    rt(1).block_on(async {
        let start = Instant::now();
        let r = time::timeout(ms(20), Never(drops.guard())).await;
        assert!(matches!(r, Err(Elapsed { .. })));
        assert!(start.elapsed() >= ms(20));
        assert_eq!(
            drops.count(),
            1,
            "the inner future is dropped with the Timeout"
        );

        // Dropping a pending Timeout drops the inner future too.
        let mut t = Box::pin(time::timeout(Duration::from_secs(30), Never(drops.guard())));
        assert!(!poll_once(&mut t).await);
        assert_eq!(drops.count(), 1);
        drop(t);
        assert_eq!(drops.count(), 2);
    });
}

#[test]
fn timeout_returns_ok_when_the_inner_future_completes_first() {
    rt(1).block_on(async {
        let r = time::timeout(ms(500), async {
            time::sleep(ms(10)).await;
            "done"
        })
        .await;
        assert_eq!(r, Ok("done"));
        // The inner future is polled first: ready beats a zero timeout.
        assert_eq!(time::timeout(Duration::ZERO, async { 1 }).await, Ok(1));
        // An already-passed deadline with a pending future elapses.
        let past = Instant::now() - ms(1);
        assert!(
            time::timeout_at(past, std::future::pending::<()>())
                .await
                .is_err()
        );
        // Accessors.
        let mut t = time::timeout(ms(10), std::future::ready(3));
        let inner: &mut std::future::Ready<i32> = t.get_mut();
        assert_eq!(inner.await, 3);
        let t = time::timeout(ms(10), std::future::ready(4));
        let _inner: &std::future::Ready<i32> = t.get_ref();
        assert_eq!(t.into_inner().into_inner(), 4);
    });
}

#[test]
fn timeout_at_respects_its_deadline() {
    rt(1).block_on(async {
        let deadline = Instant::now() + ms(15);
        let r = time::timeout_at(deadline, time::sleep(Duration::from_secs(30))).await;
        assert!(r.is_err());
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn elapsed_is_an_error_and_converts_to_io() {
    let e: Elapsed = rt(1)
        .block_on(time::timeout(ms(1), std::future::pending::<()>()))
        .unwrap_err();
    assert_eq!(e.to_string(), "deadline has elapsed");
    let dyn_err: &dyn std::error::Error = &e;
    assert!(dyn_err.source().is_none());
    let io: std::io::Error = e.into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn interval_first_tick_is_immediate_then_spaced_by_period() {
    rt(1).block_on(async {
        let period = ms(15);
        let start = Instant::now();
        let mut iv = time::interval(period);
        assert_eq!(iv.period(), period);
        assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
        let first = iv.tick().await;
        assert!(first >= start && first <= Instant::now());
        let mut previous = first;
        for k in 1..=4u32 {
            let t = iv.tick().await;
            assert_eq!(t, first + period * k, "ticks are scheduled every period");
            assert!(Instant::now() >= t, "tick {k} completed early");
            assert!(t - previous >= period);
            previous = t;
        }
    });
}

#[test]
#[should_panic(expected = "`period` must be non-zero.")]
fn interval_with_zero_period_panics() {
    let _ = time::interval(Duration::ZERO);
}

#[test]
fn interval_at_starts_at_the_given_instant() {
    rt(1).block_on(async {
        let start = Instant::now() + ms(20);
        let mut iv = time::interval_at(start, ms(10));
        assert_eq!(iv.tick().await, start);
        assert!(Instant::now() >= start);
        assert_eq!(iv.tick().await, start + ms(10));
        assert!(Instant::now() >= start + ms(10));
    });
}

/// Ticks once, stalls the core for `stall` with a blocking sleep, and
/// returns (first tick, end of the stall, the interval).
async fn stalled_interval(
    behavior: MissedTickBehavior,
    period: Duration,
    stall: Duration,
) -> (Instant, Instant, time::Interval) {
    let mut iv = time::interval(period);
    iv.set_missed_tick_behavior(behavior);
    assert_eq!(iv.missed_tick_behavior(), behavior);
    let first = iv.tick().await;
    std::thread::sleep(stall);
    (first, Instant::now(), iv)
}

#[test]
fn interval_burst_catches_up_on_missed_ticks() {
    rt(1).block_on(async {
        let p = ms(20);
        let (first, _, mut iv) = stalled_interval(MissedTickBehavior::Burst, p, ms(75)).await;
        // The ticks due at 20, 40 and 60 ms all come, with their schedule.
        for k in 1..=5u32 {
            let t = iv.tick().await;
            assert_eq!(t, first + p * k);
            assert!(Instant::now() >= t);
        }
    });
}

#[test]
fn interval_delay_restarts_the_schedule_after_a_missed_tick() {
    rt(1).block_on(async {
        let p = ms(20);
        let (first, stall_end, mut iv) =
            stalled_interval(MissedTickBehavior::Delay, p, ms(75)).await;
        // One late tick for the missed ones, returned at once...
        assert_eq!(iv.tick().await, first + p);
        // ...then a full period after it was taken.
        let third = iv.tick().await;
        assert!(
            third >= stall_end + p,
            "{:?} < {:?}",
            third - first,
            stall_end + p - first
        );
        assert!(Instant::now() >= third);
        let fourth = iv.tick().await;
        assert!(fourth >= third + p);
    });
}

#[test]
fn interval_skip_skips_missed_ticks_and_keeps_the_grid() {
    rt(1).block_on(async {
        let p = ms(20);
        let (first, stall_end, mut iv) =
            stalled_interval(MissedTickBehavior::Skip, p, ms(75)).await;
        assert_eq!(iv.tick().await, first + p);
        let third = iv.tick().await;
        let offset = third - first;
        assert_eq!(
            offset.as_nanos() % p.as_nanos(),
            0,
            "stays on the original grid: {offset:?}"
        );
        assert!(third > stall_end, "missed ticks are skipped");
        assert!(Instant::now() >= third);
        let fourth = iv.tick().await;
        assert!(fourth >= third + p);
        assert_eq!((fourth - first).as_nanos() % p.as_nanos(), 0);
    });
}

#[test]
fn interval_resets() {
    rt(1).block_on(async {
        let p = ms(20);
        let mut iv = time::interval(p);
        iv.tick().await;

        let before = Instant::now();
        iv.reset();
        let t = iv.tick().await;
        assert!(t >= before + p);

        iv.reset_immediately();
        let before = Instant::now();
        let t = iv.tick().await;
        assert!(t <= before);

        let before = Instant::now();
        iv.reset_after(ms(5));
        let t = iv.tick().await;
        assert!(t >= before + ms(5));
        assert!(Instant::now() >= t);

        let at = Instant::now() + ms(8);
        iv.reset_at(at);
        assert_eq!(iv.tick().await, at);
        assert_eq!(iv.tick().await, at + p);
    });
}

#[test]
fn interval_tick_is_cancel_safe() {
    rt(1).block_on(async {
        let p = ms(10);
        let mut iv = time::interval(p);
        let first = iv.tick().await;
        // Start a tick and abandon it.
        let r = time::timeout(ms(1), iv.tick()).await;
        assert!(r.is_err());
        assert_eq!(iv.tick().await, first + p, "no tick was lost");
    });
}

#[test]
fn ten_thousand_concurrent_sleeps_all_complete() {
    let done = Arc::new(AtomicUsize::new(0));
    rt(1).block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                let done = done.clone();
                task::spawn(async move {
                    let d = ms(1 + (i * 7) % 50);
                    time::sleep(d).await;
                    assert!(start.elapsed() >= d);
                    done.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(done.load(Ordering::Relaxed), 10_000);
}

#[test]
fn sleeps_work_on_other_cores() {
    rt(2).block_on(async {
        let handles: Vec<_> = (0..50u64)
            .map(|i| {
                task::spawn_on(1, async move {
                    let deadline = Instant::now() + ms(i % 20);
                    time::sleep_until(deadline).await;
                    assert!(Instant::now() >= deadline);
                    let r = time::timeout(ms(5), std::future::pending::<()>()).await;
                    assert!(r.is_err());
                    let mut iv = time::interval(ms(3));
                    iv.tick().await;
                    iv.tick().await;
                    insane_runtime::runtime::Runtime::current_core()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.await.unwrap(), Some(1));
        }
        // Both cores sleep concurrently.
        let deadline = Instant::now() + ms(20);
        let remote = task::spawn_on(1, async move {
            time::sleep_until(deadline).await;
            Instant::now()
        });
        time::sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
        assert!(remote.await.unwrap() >= deadline);
    });
}

#[test]
fn a_sleep_polled_on_one_core_completes_on_another() {
    rt(2).block_on(async {
        let mut sleep = Box::pin(time::sleep(ms(30)));
        // Registered in core 0's wheel...
        assert!(!poll_once(&mut sleep).await);
        let deadline = sleep.deadline();
        // ...then moved to core 1, where it registers anew.
        let done = task::spawn_on(1, async move {
            sleep.await;
            Instant::now()
        });
        assert!(done.await.unwrap() >= deadline);

        // Dropped on another core: the old entry stays on core 0 and fires
        // harmlessly.
        let mut sleep = Box::pin(time::sleep(ms(5)));
        assert!(!poll_once(&mut sleep).await);
        task::spawn_on(1, async move { drop(sleep) }).await.unwrap();
        let start = Instant::now();
        time::sleep(ms(15)).await;
        assert!(start.elapsed() >= ms(15));
    });
}

#[test]
fn sleeping_tasks_are_dropped_at_shutdown() {
    let drops = DropCounter::default();
    let runtime = rt(2);
    runtime.block_on(async {
        let g0 = drops.guard();
        task::spawn(async move {
            let _g = g0;
            time::sleep(Duration::from_secs(60)).await;
        });
        let g1 = drops.guard();
        task::spawn_on(1, async move {
            let _g = g1;
            time::sleep(Duration::from_secs(60)).await;
        });
        time::sleep(ms(10)).await;
    });
    let start = std::time::Instant::now();
    drop(runtime);
    assert_eq!(drops.count(), 2);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "shutdown waited for the timers"
    );
}

#[test]
fn sleep_aborted_task_is_fine() {
    rt(1).block_on(async {
        let h = task::spawn(async { time::sleep(Duration::from_secs(60)).await });
        time::sleep(ms(2)).await;
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
        let start = Instant::now();
        time::sleep(ms(5)).await;
        assert!(start.elapsed() >= ms(5));
    });
}

#[test]
fn futures_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    assert_send_sync(&time::sleep(ms(1)));
    assert_send_sync(&time::timeout(ms(1), async {}));
    assert_send_sync(&time::interval(ms(1)));
}

#[test]
fn instant_arithmetic_matches_tokio() {
    let a = Instant::now();
    let b = a + ms(10);
    assert_eq!(b - a, ms(10));
    assert_eq!(a - b, Duration::ZERO);
    assert_eq!(b.duration_since(a), ms(10));
    assert_eq!(a.duration_since(b), Duration::ZERO);
    assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    assert_eq!(a.checked_duration_since(b), None);
    assert_eq!(b.checked_duration_since(a), Some(ms(10)));
    assert_eq!(b.checked_sub(ms(10)), Some(a));
    assert_eq!(a.checked_add(ms(10)), Some(b));
    assert_eq!(a.checked_add(Duration::MAX), None);
    assert_eq!(b - ms(10), a);
    let mut c = a;
    c += ms(3);
    c -= ms(1);
    assert_eq!(c, a + ms(2));
    assert!(a < b);
    assert_eq!(Instant::from_std(a.into_std()), a);
    let std: std::time::Instant = a.into();
    assert_eq!(Instant::from(std), a);
    assert!(a.elapsed() <= Instant::now() - a);
    assert_eq!(format!("{a:?}"), format!("{:?}", a.into_std()));
    let mut set = std::collections::HashSet::new();
    set.insert(a);
    assert!(set.contains(&a));
}
