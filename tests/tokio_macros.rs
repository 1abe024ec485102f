//! tokio's runtime-agnostic macros, re-exported by insane, on insane
//! futures: code that used `tokio::select!` ports by changing the path.

use std::time::Duration;

use insane::sync::mpsc;
use insane::time::{Instant, sleep};

#[insane::test]
async fn select_takes_the_branch_that_is_ready_first() {
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    insane::spawn(async move {
        sleep(Duration::from_millis(5)).await;
        tx.send(7).await.unwrap();
    });
    let start = Instant::now();
    let got = insane::select! {
        v = rx.recv() => v,
        _ = sleep(Duration::from_secs(10)) => None,
    };
    assert_eq!(got, Some(7));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[insane::test]
async fn select_with_a_pinned_timer_and_else() {
    let timer = sleep(Duration::from_millis(1));
    insane::pin!(timer);
    let mut ticks = 0;
    loop {
        insane::select! {
            _ = &mut timer => break,
            _ = insane::task::yield_now() => ticks += 1,
        }
    }
    assert!(ticks > 0);
    let none: Option<u32> = None;
    let v = insane::select! {
        Some(x) = async { none } => x,
        else => 9,
    };
    assert_eq!(v, 9);
}

#[insane::test]
async fn join_and_try_join_run_futures_concurrently() {
    // `a` can only finish once `b` has run: run one after the other, they
    // would never finish (the timeout says so instead of hanging).
    let (tx, rx) = insane::sync::oneshot::channel::<u8>();
    let both = async {
        insane::join!(async { rx.await.unwrap() + 1 }, async {
            tx.send(1).unwrap();
            2
        })
    };
    let (a, b) = insane::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("join! ran its futures one after the other");
    assert_eq!((a, b), (2, 2));
    let r: Result<(u8, u8), &str> =
        insane::try_join!(async { Ok::<u8, &str>(1) }, async { Err::<u8, &str>("no") });
    assert_eq!(r, Err("no"));
}
