//! Serves the JSON API ([`crate::api`]) on a TCP listener until shutdown,
//! with the limits a server facing the internet needs ([`HttpLimits`]):
//!
//! - **header read timeout** (slowloris): a request line and headers must
//!   arrive whole within `header_read_timeout`, counted from when the
//!   server starts waiting for them, so an idle keep-alive connection is
//!   closed after that long too (hyper's HTTP/1 timer);
//! - **request timeout**: a request not answered within `request_timeout`
//!   (a body trickling in, a stuck database) gets `503` with a problem
//!   body. A change whose caller timed out may still commit (the store's
//!   writer owns it): the day routes are idempotent, retrying is safe;
//! - **body limit**: bodies over `max_body_bytes` get `413` (in the
//!   router: `ApiConfig::max_body_bytes`);
//! - **connection limit**: at most `max_connections` are served at once;
//!   the next ones wait, unaccepted, in the kernel's listen backlog until
//!   one closes (then, once the backlog is full, the kernel refuses them).
//!   Running out of file descriptors is logged and retried, never fatal.
//!
//! HTTP/1.1 only (what the portal and the app speak; TLS and HTTP/2 are the
//! reverse proxy's job, docs/deployment.md).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::api::{self, ApiError, AppState};

/// The limits of the HTTP server (`[http]` of the serve config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The request line and headers must arrive within this; also how
    /// long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// From the request's head to the response's head.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// The largest request body read.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_body_bytes: api::DEFAULT_BODY_LIMIT,
        }
    }
}

/// Binds `addr`; the listener is returned so the caller knows the port
/// (`127.0.0.1:0` in tests) before serving.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// [`serve_with`] the default [`HttpLimits`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, HttpLimits::default(), shutdown).await
}

/// Serves the API on `listener` until `shutdown` completes: then no new
/// connection is accepted, idle ones are closed, and requests in flight
/// are finished first.
pub async fn serve_with(
    listener: TcpListener,
    mut state: AppState,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if state.config.max_body_bytes != limits.max_body_bytes {
        let mut config = (*state.config).clone();
        config.max_body_bytes = limits.max_body_bytes;
        state.config = Arc::new(config);
    }
    let request_timeout = limits.request_timeout;
    let metrics = state.metrics.clone();
    // Outside the router's own request log and metrics (which a timeout
    // cancels), so it counts and logs what it answers itself.
    let app = api::router(state).layer(middleware::from_fn(move |request: Request, next: Next| {
        let metrics = metrics.clone();
        async move {
            match tokio::time::timeout(request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    let response = ApiError::Timeout.into_response();
                    metrics.count_request(response.status().as_u16());
                    tracing::warn!(target: "mensa::api", ?request_timeout, "request timed out");
                    response
                }
            }
        }
    }));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, ?limits, "HTTP API listening");
    }
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Dropping the receiver tells every connection to finish; each holds a
    // clone of `done_rx`, so `done_tx.closed()` waits for all of them.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A permit before accepting: over the limit, connections wait in
        // the backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE, ENFILE, ECONNABORTED...: keep serving the
                    // connections we have and try again shortly.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|r: Request<hyper::body::Incoming>| r.map(axum::body::Body::new)),
        );
        let mut stop = stop_rx.clone();
        stop.mark_unchanged();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                // The sender is dropped: shutting down.
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(e) = result {
                // Timeouts, resets, malformed requests (hyper answered 400).
                tracing::debug!(error = %e, "HTTP connection ended");
            }
            drop(permit);
            drop(done);
        });
    }
    drop(listener);
    drop(stop_rx);
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}
