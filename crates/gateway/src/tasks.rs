//! Work off the async threads. One way to do each across the gateway, inside the request's
//! span so it logs with the request's id: [`spawn_blocking`] for blocking I/O (the store),
//! [`classify`] for CPU-bound model work (the guards' classifiers, the cache's pair check).
//! Background loops are spawned with `tokio::spawn` only where their owner says in an
//! `#[expect(clippy::disallowed_methods, reason = ...)]` why the task may outlive shutdown.

/// `tokio::task::spawn_blocking` inside the caller's span: blocking work done for a request
/// (the store, the classifiers) logs with the request's id like the rest of it.
pub fn spawn_blocking<F, R>(work: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
}

/// CPU-bound model work (the input guards' classifiers, the cache's pair check), started at
/// once on a pool of one thread per core; the future is its result, `Err` if it panicked.
///
/// Not the blocking pool: that starts a thread for every task that finds none free, and under
/// load it held one thread per request in flight (131 threads at 64 connections), each with its
/// stack and allocator heap, tens of MB of resident memory for work that no more threads than
/// cores can run at once (issue 18, bench/RESULTS.md). Blocking I/O, the store's, stays on
/// [`spawn_blocking`].
pub fn classify<F, R>(work: F) -> impl std::future::Future<Output = Result<R, Panicked>> + Send
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    let job = move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| span.in_scope(work)));
        // A request that went away (a client hanging up) has nobody to hand the result to.
        let _ = tx.send(result.map_err(|_| Panicked));
    };
    match model_pool() {
        Some(pool) => pool.spawn(job),
        // No pool (its threads could not be started): the blocking pool does the work.
        None => drop(tokio::task::spawn_blocking(job)),
    }
    async move { rx.await.unwrap_or(Err(Panicked)) }
}

/// Model work that panicked (or whose pool went away): callers fail open or closed as their
/// guard says, as for any guard failure.
#[derive(Debug, thiserror::Error)]
#[error("the model work panicked")]
pub struct Panicked;

fn model_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("models-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn model_work_returns_its_result_and_a_panic_is_an_error_not_an_abort() {
        assert_eq!(classify(|| 6 * 7).await.ok(), Some(42));
        let panicked = classify(|| -> u32 { panic!("a model bug") }).await;
        assert!(panicked.is_err());
        // The pool survives a panicking task.
        assert_eq!(classify(|| "still here").await.ok(), Some("still here"));
    }

    #[tokio::test]
    async fn many_tasks_in_flight_run_on_one_thread_per_core() {
        let names: Vec<String> =
            futures::future::join_all((0..64).map(|_| {
                classify(|| std::thread::current().name().unwrap_or_default().to_owned())
            }))
            .await
            .into_iter()
            .map(|r| r.unwrap_or_default())
            .collect();
        let threads: std::collections::BTreeSet<&String> = names.iter().collect();
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        assert!(threads.len() <= cores, "{threads:?}");
        assert!(
            threads.iter().all(|n| n.starts_with("models-")),
            "{threads:?}"
        );
    }
}
