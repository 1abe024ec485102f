//! Latency isolation through QoS endpoints (issue 19), on both kernel
//! drivers over loopback: a task serving a critical endpoint becomes a
//! critical task, a bulk receiver of a flood yields after one budget of
//! messages, the core's transmit task starts a bounded slice of bulk
//! messages per poll, and the deadline class (admission at bind, misses
//! counted).

mod common;

use std::cell::Cell;
use std::future::Future;
use std::net::UdpSocket as StdUdpSocket;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::on_each_driver;
use insane_net::qos::{Endpoint, Latency, Qos};
use insane_runtime::runtime::Runtime;
use insane_runtime::task;
use insane_runtime::time::timeout;

const LOCAL: &str = "127.0.0.1:0";

/// Units of cooperative budget a task gets per poll.
const BUDGET_UNITS: u64 = 128;

fn critical() -> Qos {
    Qos::builder().critical().best_effort().poll().build()
}

fn bulk() -> Qos {
    Qos::builder().best_effort().low().build()
}

#[test]
fn a_task_that_uses_a_critical_endpoint_becomes_critical() {
    on_each_driver(1, |_| async {
        let crit = Rc::new(Endpoint::bind(LOCAL, critical()).await.unwrap());
        let normal = Rc::new(Endpoint::bind(LOCAL, bulk()).await.unwrap());
        let to = normal.local_addr().unwrap();
        let (c, n) = (crit.clone(), normal.clone());
        let classes = task::spawn_local(async move {
            let before = task::latency();
            let buf = n.buffer().await;
            n.send_to(buf, to).await.unwrap();
            let after_normal = task::latency();
            let buf = c.buffer().await;
            c.send_to(buf, to).await.unwrap();
            (before, after_normal, task::latency())
        })
        .await
        .unwrap();
        assert_eq!(
            classes,
            (Latency::Normal, Latency::Normal, Latency::Critical)
        );
    });
}

/// Counts the polls of a future and the largest number of messages
/// (`received`) taken in one of them.
struct PollCounter<F> {
    inner: Pin<Box<F>>,
    received: Rc<Cell<u64>>,
    most_in_one_poll: Rc<Cell<u64>>,
}

impl<F: Future> Future for PollCounter<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = self.received.get();
        let out = self.inner.as_mut().poll(cx);
        let taken = self.received.get() - before;
        self.most_in_one_poll
            .set(self.most_in_one_poll.get().max(taken));
        out
    }
}

#[test]
fn a_bulk_receiver_of_a_flood_yields_after_one_budget_of_messages() {
    on_each_driver(1, |_| async {
        const FLOOD: u64 = 3_000;
        let ep = Rc::new(Endpoint::bind(LOCAL, bulk()).await.unwrap());
        let to = ep.local_addr().unwrap();
        // A flood from another thread, faster than one receiver can take
        // it, so messages are always waiting.
        let flood = std::thread::spawn(move || {
            let sock = StdUdpSocket::bind(LOCAL).unwrap();
            for i in 0..FLOOD {
                let _ = sock.send_to(&i.to_le_bytes(), to);
            }
        });
        let received = Rc::new(Cell::new(0_u64));
        let most = Rc::new(Cell::new(0_u64));
        let receiver = {
            let (ep, count) = (ep.clone(), received.clone());
            PollCounter {
                inner: Box::pin(async move {
                    // UDP may drop some of the flood: stop when it pauses.
                    while let Ok(Ok(_)) = timeout(Duration::from_millis(200), ep.recv()).await {
                        count.set(count.get() + 1);
                    }
                }),
                received: received.clone(),
                most_in_one_poll: most.clone(),
            }
        };
        task::spawn_local(receiver).await.unwrap();
        flood.join().unwrap();
        assert!(received.get() > 0, "nothing of the flood arrived");
        assert!(
            most.get() <= BUDGET_UNITS,
            "{} messages in one poll (> one budget)",
            most.get()
        );
    });
}

/// A bulk sender whose sends all complete at once (nothing else queued on
/// its core: the send fast path) still yields after one budget of
/// messages, so the core's other tasks and timers run.
#[test]
fn a_sender_that_never_waits_yields_after_one_budget_of_messages() {
    on_each_driver(1, |_| async {
        // Never read: the kernel drops what overflows its buffer.
        let sink = StdUdpSocket::bind(LOCAL).unwrap();
        let to = sink.local_addr().unwrap();
        let ep = Endpoint::bind(LOCAL, bulk()).await.unwrap();
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        let other = task::spawn_local(async move { flag.set(true) });
        let mut sent = 0_u64;
        while !ran.get() && sent < 10 * BUDGET_UNITS {
            let mut buf = ep.buffer().await;
            buf.extend_from_slice(&[7; 64]).unwrap();
            ep.send_to(buf, to).await.unwrap();
            sent += 1;
        }
        assert!(ran.get(), "the other task never ran");
        assert!(sent <= BUDGET_UNITS + 1, "yielded only after {sent} sends");
        other.await.unwrap();
    });
}

/// Bulk messages the core's transmit task starts per poll with priority
/// on (`TX_BULK_SLICE` in `qos/endpoint.rs`).
const TX_BULK_SLICE: u64 = 4;

/// Bulk messages queued by `most_bulk_sends_between_critical_polls`.
const QUEUED: u64 = 40;

/// Queues `QUEUED` bulk messages to a loopback socket, then lets a
/// critical task count, at each of its polls, the datagrams that arrived
/// since its previous poll (kernel UDP on loopback delivers within the
/// `sendto`): the most bulk sends the core made between two polls of a
/// ready critical task.
async fn most_bulk_sends_between_critical_polls() -> u64 {
    let rx = StdUdpSocket::bind(LOCAL).unwrap();
    rx.set_nonblocking(true).unwrap();
    let to = rx.local_addr().unwrap();
    let ep = Endpoint::bind(LOCAL, bulk()).await.unwrap();
    for i in 0..QUEUED {
        let mut buf = ep.buffer().await;
        buf.extend_from_slice(&i.to_le_bytes()).unwrap();
        // Queued on the core's transmit scheduler, not sent yet.
        ep.try_send_to(buf, to).unwrap();
    }
    task::Builder::new()
        .latency(Latency::Critical)
        .spawn_local(async move {
            let (mut arrived, mut most) = (0, 0);
            let mut scratch = [0_u8; 64];
            for _ in 0..10 * QUEUED {
                let mut now = 0;
                while rx.recv(&mut scratch).is_ok() {
                    now += 1;
                }
                arrived += now;
                most = most.max(now);
                if arrived == QUEUED {
                    return most;
                }
                task::yield_now().await;
            }
            panic!("only {arrived} of {QUEUED} bulk messages arrived");
        })
        .unwrap()
        .await
        .unwrap()
}

#[test]
fn a_ready_critical_task_waits_for_at_most_one_slice_of_bulk_sends() {
    on_each_driver(1, |_| async {
        let most = most_bulk_sends_between_critical_polls().await;
        assert!(most >= 1, "no bulk message left between two polls");
        assert!(
            most <= TX_BULK_SLICE,
            "{most} bulk sends between two polls of a ready critical task"
        );
    });
}

#[test]
fn without_priority_the_transmit_task_sends_every_queued_bulk_message_in_one_poll() {
    let rt = Runtime::builder()
        .cores(1)
        .priority(false)
        .on_core_start(std::sync::Arc::new(|_| {
            insane_epoll::install_on_current_core()
        }))
        .build()
        .unwrap();
    let most = rt.block_on(most_bulk_sends_between_critical_polls());
    assert_eq!(most, QUEUED);
}

#[test]
fn a_deadline_below_the_paths_round_trip_floor_is_refused_at_bind() {
    on_each_driver(1, |_| async {
        let qos = Qos::builder()
            .deadline(Duration::from_nanos(100))
            .best_effort()
            .poll()
            .build();
        let err = Endpoint::bind(LOCAL, qos).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("round-trip floor"), "{err}");
    });
}

#[test]
fn an_admitted_deadline_is_explained() {
    on_each_driver(1, |_| async {
        let qos = Qos::builder()
            .deadline(Duration::from_millis(1))
            .best_effort()
            .poll()
            .build();
        let ep = Endpoint::bind(LOCAL, qos).await.unwrap();
        assert!(
            ep.explain().contains("deadline 1ms (path round-trip floor"),
            "{}",
            ep.explain()
        );
        assert_eq!(ep.missed_deadlines(), 0);
    });
}

#[test]
fn messages_sent_after_their_deadline_are_counted_not_dropped() {
    on_each_driver(1, |_| async {
        const LATE: u64 = 20;
        let qos = Qos::builder()
            .deadline(Duration::from_micros(50))
            .best_effort()
            .poll()
            .build();
        let ep = Endpoint::bind(LOCAL, qos).await.unwrap();
        let sink = Endpoint::bind(LOCAL, bulk()).await.unwrap();
        let to = sink.local_addr().unwrap();
        for i in 0..LATE {
            let mut buf = ep.buffer().await;
            buf.extend_from_slice(&i.to_le_bytes()).unwrap();
            ep.try_send_to(buf, to).unwrap();
        }
        // The core is held past every queued message's deadline before
        // its transmit task can run.
        std::thread::sleep(Duration::from_millis(5));
        let buf = ep.buffer().await;
        ep.send_to(buf, to).await.unwrap();
        assert!(
            ep.missed_deadlines() >= LATE,
            "{} missed",
            ep.missed_deadlines()
        );
        // Late, but delivered.
        for _ in 0..LATE {
            timeout(Duration::from_secs(5), sink.recv())
                .await
                .expect("a late message still arrives")
                .unwrap();
        }
    });
}
