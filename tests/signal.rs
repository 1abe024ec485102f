//! `insane::signal`: listeners see the signals raised after they exist,
//! every listener of a signal is told, deliveries between two `recv`s
//! coalesce, and signals that cannot be handled are refused by name.
//! (Its own test binary: it installs process-wide handlers.)

use std::time::Duration;

use insane::signal::unix::{SignalKind, signal};
use insane::time::timeout;

fn raise(kind: SignalKind) {
    // SAFETY: kill(2) on our own pid with a signal whose handler is
    // installed (the listener was created first).
    let rc = unsafe { libc::kill(libc::getpid(), kind.as_raw_value()) };
    assert_eq!(rc, 0);
}

const LIMIT: Duration = Duration::from_secs(10);

#[insane::test]
async fn a_listener_receives_a_signal_raised_after_it_exists() {
    let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
    raise(SignalKind::user_defined1());
    timeout(LIMIT, usr1.recv())
        .await
        .expect("SIGUSR1 not received")
        .unwrap();
}

#[insane::test(cores = 2)]
async fn every_listener_of_a_signal_is_told_on_any_core() {
    let mut here = signal(SignalKind::user_defined2()).unwrap();
    let mut there = signal(SignalKind::user_defined2()).unwrap();
    let other_core =
        insane::task::spawn_on(1, async move { timeout(LIMIT, there.recv()).await.is_ok() });
    // Let the other core start waiting (not needed for correctness: a
    // delivery before its wait is still counted).
    insane::time::sleep(Duration::from_millis(10)).await;
    raise(SignalKind::user_defined2());
    timeout(LIMIT, here.recv())
        .await
        .expect("SIGUSR2 not received here")
        .unwrap();
    assert!(other_core.await.unwrap(), "SIGUSR2 not received on core 1");
}

#[insane::test]
async fn deliveries_between_two_recvs_count_as_one() {
    let mut hup = signal(SignalKind::hangup()).unwrap();
    raise(SignalKind::hangup());
    raise(SignalKind::hangup());
    raise(SignalKind::hangup());
    timeout(LIMIT, hup.recv()).await.unwrap().unwrap();
    // Any further ones had arrived by the time the first was seen, or are
    // on their way: whichever, after at most one more recv none is left.
    let _ = timeout(Duration::from_millis(200), hup.recv()).await;
    assert!(
        timeout(Duration::from_millis(200), hup.recv())
            .await
            .is_err(),
        "more deliveries than signals raised"
    );
}

#[insane::test]
async fn ctrl_c_completes_on_sigint() {
    // A listener first, so that the handler is in place before the raise
    // (ctrl_c installs it when first polled).
    let _guard = signal(SignalKind::interrupt()).unwrap();
    let waiter = insane::spawn(insane::signal::ctrl_c());
    insane::time::sleep(Duration::from_millis(10)).await;
    raise(SignalKind::interrupt());
    timeout(LIMIT, waiter)
        .await
        .expect("ctrl_c did not complete")
        .unwrap()
        .unwrap();
}

#[test]
fn signals_that_cannot_be_handled_are_refused_by_name() {
    let err = signal(SignalKind::from_raw(libc::SIGKILL)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("SIGKILL"), "{err}");
    let err = signal(SignalKind::from_raw(libc::SIGSEGV)).unwrap_err();
    assert!(err.to_string().contains("SIGSEGV"), "{err}");
    let err = signal(SignalKind::from_raw(0)).unwrap_err();
    assert!(err.to_string().contains("not a signal number"), "{err}");
    let err = signal(SignalKind::from_raw(99)).unwrap_err();
    assert!(err.to_string().contains("not a signal number"), "{err}");
}
