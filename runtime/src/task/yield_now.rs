//! [`yield_now`]: let the other tasks of this core run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the other tasks of this core: the current task goes to the
/// back of the run queue, so a busy loop that yields cannot starve them.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// for _ in 0..3 {
///     insane_runtime::task::yield_now().await;
/// }
/// # });
/// ```
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
