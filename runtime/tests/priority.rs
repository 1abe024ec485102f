//! Executor priority (`task::Latency`), written as specifications. Every
//! test counts polls or budget units on one core, never time.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use insane_runtime::runtime::Runtime;
use insane_runtime::task::{self, Builder, Latency};

/// Units of cooperative budget a task gets per poll (tokio's 128).
const BUDGET_UNITS: u64 = 128;

fn rt(priority: bool) -> Runtime {
    Runtime::builder()
        .cores(1)
        .priority(priority)
        .build()
        .expect("runtime starts")
}

/// Spawns, on the current core, a task of class `latency` that records
/// `name` in `log` each time it is polled, `polls` times (yielding in
/// between).
fn logger(
    log: &Rc<RefCell<Vec<&'static str>>>,
    name: &'static str,
    latency: Latency,
    polls: usize,
) {
    let log = log.clone();
    Builder::new()
        .latency(latency)
        .spawn_local(async move {
            for _ in 0..polls {
                log.borrow_mut().push(name);
                task::yield_now().await;
            }
        })
        .expect("inside a runtime");
}

#[test]
fn ready_critical_tasks_run_before_normal_tasks_queued_earlier() {
    let order = rt(true).block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        logger(&log, "n1", Latency::Normal, 1);
        logger(&log, "n2", Latency::Normal, 1);
        logger(&log, "c1", Latency::Critical, 1);
        logger(&log, "c2", Latency::Critical, 1);
        while log.borrow().len() < 4 {
            task::yield_now().await;
        }
        log.take()
    });
    assert_eq!(order, ["c1", "c2", "n1", "n2"]);
}

#[test]
fn with_priority_off_every_task_runs_in_wake_order() {
    let order = rt(false).block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        logger(&log, "n1", Latency::Normal, 1);
        logger(&log, "c1", Latency::Critical, 1);
        logger(&log, "n2", Latency::Normal, 1);
        while log.borrow().len() < 3 {
            task::yield_now().await;
        }
        log.take()
    });
    assert_eq!(order, ["n1", "c1", "n2"]);
}

#[test]
fn a_critical_task_that_keeps_waking_itself_leaves_one_normal_poll_per_pass() {
    let order = rt(true).block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        logger(&log, "c", Latency::Critical, 4);
        logger(&log, "n", Latency::Normal, 3);
        while log.borrow().len() < 7 {
            task::yield_now().await;
        }
        log.take()
    });
    // One pass (the critical task once), one normal task, next pass...
    assert_eq!(order, ["c", "n", "c", "n", "c", "n", "c"]);
}

/// Normal tasks that burst cooperative work, a critical task woken in the
/// middle of it by one of them: how many budget units of normal work were
/// spent between the wake and the critical task's poll.
fn units_between_wake_and_critical_poll(priority: bool, normal_tasks: usize) -> u64 {
    rt(priority).block_on(async move {
        let units = Rc::new(Cell::new(0_u64));
        let stop = Rc::new(Cell::new(false));
        let critical_waker: Rc<RefCell<Option<Waker>>> = Rc::default();
        let woken_at = Rc::new(Cell::new(None::<u64>));
        let critical = {
            let (units, woken_at, waker_slot) =
                (units.clone(), woken_at.clone(), critical_waker.clone());
            Builder::new()
                .latency(Latency::Critical)
                .spawn_local(async move {
                    poll_fn(|cx| {
                        if woken_at.get().is_some() {
                            return Poll::Ready(units.get());
                        }
                        *waker_slot.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    })
                    .await
                })
                .expect("inside a runtime")
        };
        let mut bursts = Vec::new();
        for _ in 0..normal_tasks {
            let (units, stop, woken_at, waker_slot) = (
                units.clone(),
                stop.clone(),
                woken_at.clone(),
                critical_waker.clone(),
            );
            bursts.push(task::spawn_local(async move {
                while !stop.get() {
                    task::consume_budget().await;
                    units.set(units.get() + 1);
                    // Whichever task spends this unit wakes the critical
                    // one, in the middle of its budget, after every task
                    // had a few polls.
                    if units.get() == 10 * BUDGET_UNITS + 7 {
                        woken_at.set(Some(units.get()));
                        if let Some(w) = waker_slot.borrow_mut().take() {
                            w.wake();
                        }
                    }
                }
            }));
        }
        let polled_at = critical.await.expect("critical task completes");
        stop.set(true);
        for b in bursts {
            b.await.expect("burst task completes");
        }
        polled_at - woken_at.get().expect("woken")
    })
}

#[test]
fn a_ready_critical_task_waits_for_at_most_one_budget_of_normal_work() {
    for normal_tasks in [1, 4, 16] {
        let delay = units_between_wake_and_critical_poll(true, normal_tasks);
        assert!(
            delay <= BUDGET_UNITS,
            "{normal_tasks} bursting tasks delayed the critical task by {delay} units (> one budget)"
        );
    }
}

#[test]
fn without_priority_the_critical_task_waits_behind_every_bursting_task() {
    // The contrast that shows the test above measures something: FIFO
    // runs the three other bursting tasks' budgets first.
    let delay = units_between_wake_and_critical_poll(false, 4);
    assert!(delay > 3 * BUDGET_UNITS, "delay {delay}");
}

#[test]
fn normal_tasks_finish_while_critical_tasks_stay_ready() {
    let critical_polls_during = rt(true).block_on(async {
        let stop = Rc::new(Cell::new(false));
        let critical_polls = Rc::new(Cell::new(0_u64));
        for _ in 0..3 {
            let (stop, polls) = (stop.clone(), critical_polls.clone());
            Builder::new()
                .latency(Latency::Critical)
                .spawn_local(async move {
                    while !stop.get() {
                        polls.set(polls.get() + 1);
                        task::yield_now().await;
                    }
                })
                .expect("inside a runtime");
        }
        let polls = critical_polls.clone();
        let normal = task::spawn_local(async move {
            let first = polls.get();
            for _ in 0..100 {
                task::yield_now().await;
            }
            polls.get() - first
        });
        let during = normal.await.expect("normal task completes");
        stop.set(true);
        during
    });
    // Between two polls of the normal task: one pass, each of the three
    // always-ready critical tasks once.
    assert_eq!(critical_polls_during, 3 * 100);
}

#[test]
fn spawned_tasks_inherit_the_class_of_the_spawning_task() {
    let (inner, from_normal) = rt(true).block_on(async {
        let inner = Builder::new()
            .latency(Latency::Critical)
            .spawn(async { task::spawn(async { task::latency() }).await.unwrap() })
            .unwrap()
            .await
            .unwrap();
        let from_normal =
            task::spawn(async { task::spawn(async { task::latency() }).await.unwrap() })
                .await
                .unwrap();
        (inner, from_normal)
    });
    assert_eq!(inner, Latency::Critical);
    assert_eq!(from_normal, Latency::Normal);
}

#[test]
fn a_task_that_sets_its_class_is_queued_by_it_from_then_on() {
    let order = rt(true).block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        logger(&log, "n1", Latency::Normal, 2);
        let promoted = log.clone();
        task::spawn_local(async move {
            task::set_latency(Latency::Critical);
            promoted.borrow_mut().push("p");
            task::yield_now().await;
            promoted.borrow_mut().push("p");
        });
        logger(&log, "n2", Latency::Normal, 2);
        while log.borrow().len() < 6 {
            task::yield_now().await;
        }
        log.take()
    });
    // The promoted task's first poll comes in spawn order (it was normal
    // then); its wake-up in that poll already goes to the critical queue,
    // so its second poll comes before n2, which was queued earlier.
    assert_eq!(order, ["n1", "p", "p", "n2", "n1", "n2"]);
}

#[test]
fn a_critical_task_woken_behind_one_that_already_ran_still_runs_in_the_pass() {
    let order = rt(true).block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let waker: Rc<RefCell<Option<Waker>>> = Rc::default();
        let (l, w) = (log.clone(), waker.clone());
        // Waits until woken by `first`.
        Builder::new()
            .latency(Latency::Critical)
            .spawn_local(async move {
                let mut polled = false;
                poll_fn(|cx| {
                    if polled {
                        l.borrow_mut().push("woken");
                        return Poll::Ready(());
                    }
                    polled = true;
                    *w.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                })
                .await
            })
            .unwrap();
        task::yield_now().await; // let it register its waker
        let (l, w) = (log.clone(), waker.clone());
        Builder::new()
            .latency(Latency::Critical)
            .spawn_local(async move {
                // Wake ourselves first, then the other task: it is queued
                // behind us although we already ran in this pass.
                let mut yielded = false;
                poll_fn(|cx| {
                    if yielded {
                        l.borrow_mut().push("first again");
                        return Poll::Ready(());
                    }
                    yielded = true;
                    l.borrow_mut().push("first");
                    cx.waker().wake_by_ref();
                    if let Some(w) = w.borrow_mut().take() {
                        w.wake();
                    }
                    Poll::Pending
                })
                .await
            })
            .unwrap();
        logger(&log, "normal", Latency::Normal, 1);
        while log.borrow().len() < 4 {
            task::yield_now().await;
        }
        log.take()
    });
    assert_eq!(order, ["first", "woken", "normal", "first again"]);
}
