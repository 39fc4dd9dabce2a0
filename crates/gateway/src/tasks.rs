//! Work off the async threads. One way to do it across the gateway: [`spawn_blocking`] for
//! blocking work (the store, the classifiers), so it logs inside the request's span.
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
