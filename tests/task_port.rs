//! A tokio service's task code ported by changing `tokio::` to `insane::`:
//! these bodies are written as they are against tokio's task API and must
//! compile and behave the same through the facade.

use std::time::Duration;

use insane::task::{self, AbortHandle, Id, JoinSet};

insane::task_local! {
    static REQUEST_ID: u64;
}

#[insane::test(cores = 2)]
async fn join_set_collect_extend_and_ids_as_in_tokio() {
    let mut set: JoinSet<u64> = (0..4u64).map(|i| async move { i }).collect();
    set.extend((4..8u64).map(|i| async move { i }));
    let aborted: AbortHandle = set.spawn(async {
        insane::time::sleep(Duration::from_secs(3600)).await;
        99
    });
    aborted.abort();
    let mut sum = 0;
    let mut ids: Vec<Id> = Vec::new();
    while let Some(res) = set.join_next_with_id().await {
        match res {
            Ok((id, v)) => {
                sum += v;
                ids.push(id);
            }
            Err(e) => assert_eq!(e.id(), aborted.id()),
        }
    }
    assert_eq!(sum, 28);
    assert_eq!(ids.len(), 8);
}

#[insane::test]
async fn spawn_blocking_task_local_and_coop_as_in_tokio() {
    let out = REQUEST_ID
        .scope(42, async {
            let blocking = task::spawn_blocking(|| 6 * 7).await.unwrap();
            task::consume_budget().await;
            (REQUEST_ID.get(), blocking)
        })
        .await;
    assert_eq!(out, (42, 42));
    let res = insane::time::timeout(Duration::from_millis(10), async {
        loop {
            task::consume_budget().await;
        }
    })
    .await;
    assert!(res.is_err());
    assert_eq!(task::block_in_place(|| 1), 1);
    let _ = task::unconstrained(async { task::try_id() }).await;
}
