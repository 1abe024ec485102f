//! Paused time (`insane_runtime::time::{pause, resume, advance}`), written
//! as specifications of tokio's documented behaviour.
//!
//! Under a paused clock every assertion on `Instant` is exact. Real time is
//! only bounded loosely ("the hour did not really pass"), never measured.

use std::cell::RefCell;
use std::rc::Rc;

use insane_runtime::runtime::Runtime;
use insane_runtime::task;
use insane_runtime::time::{self, Duration, Instant};

fn rt() -> Runtime {
    Runtime::builder().cores(1).build().expect("runtime starts")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Far below the virtual durations of these tests: proves they were not
/// really waited for.
const REAL_TIME_BOUND: Duration = Duration::from_secs(30);

#[test]
fn a_one_hour_sleep_completes_at_once_and_the_clock_shows_one_hour() {
    let real = std::time::Instant::now();
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3600));
    });
    assert!(real.elapsed() < REAL_TIME_BOUND);
}

#[test]
fn the_paused_clock_stands_still_until_advanced() {
    rt().block_on(async {
        time::pause();
        let frozen = Instant::now();
        std::thread::sleep(ms(2));
        task::yield_now().await;
        assert_eq!(
            Instant::now(),
            frozen,
            "real time passes, the clock does not"
        );
    });
}

#[test]
fn instant_now_moves_by_exactly_the_advanced_amount() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        time::advance(Duration::from_millis(1500)).await;
        assert_eq!(Instant::now() - start, Duration::from_millis(1500));
        time::advance(Duration::from_nanos(7)).await;
        assert_eq!(
            Instant::now() - start,
            Duration::from_millis(1500) + Duration::from_nanos(7)
        );
        time::advance(Duration::ZERO).await;
        assert_eq!(
            Instant::now() - start,
            Duration::from_millis(1500) + Duration::from_nanos(7)
        );
    });
}

#[test]
fn advance_fires_the_due_timers_in_deadline_order_and_not_the_later_ones() {
    rt().block_on(async {
        time::pause();
        let fired = Rc::new(RefCell::new(Vec::new()));
        for delay in [30, 10, 50, 20] {
            let fired = fired.clone();
            task::spawn_local(async move {
                time::sleep(ms(delay)).await;
                fired.borrow_mut().push(delay);
            });
        }
        task::yield_now().await; // the tasks register their timers
        time::advance(ms(25)).await;
        assert_eq!(*fired.borrow(), [10, 20]);
        time::advance(ms(5)).await;
        assert_eq!(
            *fired.borrow(),
            [10, 20, 30],
            "a deadline exactly reached fires"
        );
        time::advance(ms(19)).await;
        assert_eq!(
            *fired.borrow(),
            [10, 20, 30],
            "49 ms: the 50 ms timer waits"
        );
        time::advance(ms(1)).await;
        assert_eq!(*fired.borrow(), [10, 20, 30, 50]);
    });
}

#[test]
fn advance_past_several_timers_wakes_them_in_deadline_order() {
    rt().block_on(async {
        time::pause();
        let fired = Rc::new(RefCell::new(Vec::new()));
        for delay in [400, 100, 300, 200, 5_000] {
            let fired = fired.clone();
            task::spawn_local(async move {
                time::sleep(ms(delay)).await;
                fired.borrow_mut().push(delay);
            });
        }
        task::yield_now().await;
        time::advance(Duration::from_secs(1)).await;
        assert_eq!(*fired.borrow(), [100, 200, 300, 400]);
    });
}

#[test]
fn auto_advance_runs_concurrent_sleeps_to_their_exact_deadlines() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        let a = task::spawn(async move {
            time::sleep(Duration::from_secs(2)).await;
            Instant::now() - start
        });
        let b = task::spawn(async move {
            time::sleep(Duration::from_secs(1)).await;
            Instant::now() - start
        });
        assert_eq!(b.await.unwrap(), Duration::from_secs(1));
        assert_eq!(a.await.unwrap(), Duration::from_secs(2));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    });
}

#[test]
fn a_precise_sleep_ends_at_its_deadline_where_a_sleep_ends_at_the_next_tick() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        time::sleep_until_precise(start + Duration::from_micros(300)).await;
        assert_eq!(start.elapsed(), Duration::from_micros(300));
        let start = Instant::now();
        time::sleep(Duration::from_micros(300)).await;
        assert!(
            start.elapsed() > Duration::from_micros(300),
            "a plain sleep waits for the millisecond tick: {:?}",
            start.elapsed()
        );
    });
}

#[test]
fn auto_advance_waits_until_no_task_can_run() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        let busy = task::spawn(async move {
            // A task that is always ready: while it runs, time must not
            // jump, even though another task waits for a timer.
            for _ in 0..100 {
                assert_eq!(Instant::now(), start);
                task::yield_now().await;
            }
        });
        time::sleep(Duration::from_secs(10)).await;
        assert!(
            busy.is_finished(),
            "the clock jumped while a task was ready"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    });
}

#[test]
fn interval_ticks_are_exact_under_pause() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        let mut ticks = time::interval(ms(10));
        for k in 0..5u32 {
            let tick = ticks.tick().await;
            assert_eq!(tick, start + ms(10) * k);
            assert_eq!(Instant::now(), tick);
        }
    });
}

#[test]
fn interval_ticks_missed_during_an_advance_burst_out_at_once() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        let mut ticks = time::interval(ms(10));
        assert_eq!(ticks.tick().await, start);
        time::advance(ms(35)).await;
        // The default behaviour (Burst): the three missed ticks are due
        // now, each at its own scheduled instant.
        for k in 1..=3u32 {
            assert_eq!(ticks.tick().await, start + ms(10) * k);
        }
        assert_eq!(Instant::now(), start + ms(35), "no time passed for them");
        assert_eq!(ticks.tick().await, start + ms(40));
    });
}

#[test]
fn timeout_fires_at_the_virtual_deadline() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        let never = std::future::pending::<()>();
        assert!(time::timeout(Duration::from_secs(5), never).await.is_err());
        assert_eq!(start.elapsed(), Duration::from_secs(5));

        let start = Instant::now();
        let quicker = time::sleep(Duration::from_secs(1));
        assert_eq!(time::timeout(Duration::from_secs(5), quicker).await, Ok(()));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    });
}

#[test]
fn resume_goes_back_to_real_time_without_going_backwards() {
    rt().block_on(async {
        time::pause();
        time::advance(Duration::from_secs(3600)).await;
        let paused_at = Instant::now();
        time::resume();
        // Real time again: a short sleep takes real time...
        let real = std::time::Instant::now();
        time::sleep(ms(3)).await;
        assert!(real.elapsed() >= ms(3));
        // ...and the clock continued from the advanced value.
        let now = Instant::now();
        assert!(now >= paused_at + ms(3));
        assert!(now < paused_at + Duration::from_secs(3600));
    });
}

#[test]
fn time_can_be_paused_again_after_resume() {
    rt().block_on(async {
        time::pause();
        time::resume();
        time::pause();
        let start = Instant::now();
        time::sleep(Duration::from_secs(60)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    });
}

#[test]
fn a_paused_runtime_with_no_timer_parks_until_woken() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(ms(5));
            tx.send(7).unwrap();
        });
        // No timer to advance to: the core sleeps until the other thread's
        // wake-up, and the clock does not move.
        assert_eq!(rx.await, Ok(7));
        assert_eq!(Instant::now(), start);
        sender.join().unwrap();
    });
}

#[test]
fn pausing_affects_only_the_runtime_not_other_threads() {
    rt().block_on(async {
        time::pause();
        time::advance(Duration::from_secs(3600)).await;
        let inside = Instant::now();
        let outside = std::thread::spawn(Instant::now).join().unwrap();
        assert!(outside < inside, "a thread outside reads the real clock");
        assert!(std::time::Instant::now() < inside.into_std());
    });
}

#[test]
fn a_reset_sleep_fires_at_its_new_virtual_deadline() {
    rt().block_on(async {
        time::pause();
        let start = Instant::now();
        let sleep = time::sleep(Duration::from_secs(100));
        let mut sleep = std::pin::pin!(sleep);
        sleep.as_mut().reset(start + Duration::from_secs(3));
        sleep.as_mut().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert!(sleep.is_elapsed());
    });
}

#[test]
#[should_panic(expected = "time is already frozen")]
fn pausing_twice_panics() {
    rt().block_on(async {
        time::pause();
        time::pause();
    });
}

#[test]
#[should_panic(expected = "time is not frozen")]
fn resuming_unpaused_time_panics() {
    rt().block_on(async {
        time::resume();
    });
}

#[test]
#[should_panic(expected = "time is not frozen")]
fn resuming_twice_panics() {
    rt().block_on(async {
        time::pause();
        time::resume();
        time::resume();
    });
}

#[test]
#[should_panic(expected = "time is not frozen")]
fn advancing_unpaused_time_panics() {
    rt().block_on(async {
        time::advance(ms(1)).await;
    });
}

#[test]
#[should_panic(expected = "time cannot be frozen from outside the insane runtime")]
fn pausing_outside_a_runtime_panics() {
    time::pause();
}

#[test]
#[should_panic(expected = "time cannot be frozen from outside the insane runtime")]
fn resuming_outside_a_runtime_panics() {
    time::resume();
}

#[test]
#[should_panic(expected = "time cannot be frozen from outside the insane runtime")]
fn advancing_outside_a_runtime_panics() {
    let waker = std::task::Waker::noop();
    let advance = std::pin::pin!(time::advance(ms(1)));
    let _ = std::future::Future::poll(advance, &mut std::task::Context::from_waker(waker));
}

#[test]
#[should_panic(expected = "`time::pause()` requires a runtime of one core")]
fn pausing_a_runtime_of_several_cores_panics() {
    let rt = Runtime::builder().cores(2).build().expect("runtime starts");
    rt.block_on(async {
        time::pause();
    });
}
