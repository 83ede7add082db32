//! Spawned work tied to the future that waits for it.
//!
//! Reads prefetch chunks and shards in spawned tasks so decoding runs on
//! another core. If the reader stops early (drops its stream), that work is
//! useless, so it is aborted rather than left to finish in the background.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::StorageError;

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` as a task and waits for it; dropping the returned future aborts the task.
pub(crate) async fn run_spawned<T, F>(work: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, StorageError>> + Send + 'static,
{
    let mut task = AbortOnDrop(tokio::spawn(work));
    (&mut task.0).await?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn dropping_the_waiter_aborts_the_task() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let waiter = run_spawned(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        let _ = tokio::time::timeout(Duration::from_millis(5), waiter).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!finished.load(Ordering::SeqCst));
        assert_eq!(run_spawned(async { Ok(7) }).await.ok(), Some(7));
    }
}
