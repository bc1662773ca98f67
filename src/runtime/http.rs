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
//!   Running out of file descriptors is logged and retried, never fatal;
//! - **the client's address** for the login limits ([`client_addr`]): the
//!   TCP peer, or, when the peer is one of `trusted_proxies`, the
//!   right-most `X-Forwarded-For` address that is not a trusted proxy;
//!   handed to the API as an [`api::ClientAddr`] request extension.
//!
//! HTTP/1.1 only (what the portal and the app speak; TLS and HTTP/2 are the
//! reverse proxy's job, docs/deployment.md).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::api::{self, ApiError, AppState, ClientAddr, LoginLimits};
use crate::net::IpNet;

/// The limits of the HTTP server (`[http]` of the serve config file).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Reverse proxies whose `X-Forwarded-For` is believed (none: the TCP
    /// peer is the client).
    pub trusted_proxies: Vec<IpNet>,
    /// The limits on login attempts.
    pub login: LoginLimits,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_body_bytes: api::DEFAULT_BODY_LIMIT,
            trusted_proxies: Vec::new(),
            login: LoginLimits::default(),
        }
    }
}

/// The client of a request that came from `peer`: `peer` itself unless it
/// is a trusted proxy; then, reading `X-Forwarded-For` (every such header,
/// in order) from the right, the first address that is not a trusted
/// proxy. Each proxy appends the address it got the request from, so that
/// one was written by the last proxy we trust and the ones left of it by
/// whoever the client is: never believed. An entry that is not an address
/// stops the walk at the last trusted hop; a list of trusted proxies only
/// gives its left-most.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match parse_forwarded(entry) {
            Some(ip) if is_trusted(ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })
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
    let state = state.with_login_limits(limits.login);
    let trusted: Arc<[IpNet]> = limits.trusted_proxies.clone().into();
    let (header_read_timeout, max_connections) =
        (limits.header_read_timeout, limits.max_connections);
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
    let connections = Arc::new(Semaphore::new(max_connections.max(1)));
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
        let (stream, peer) = tokio::select! {
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
        let trusted = trusted.clone();
        let service = TowerToHyperService::new(app.clone().map_request(
            move |r: Request<hyper::body::Incoming>| {
                let mut r = r.map(axum::body::Body::new);
                let client = client_addr(peer.ip(), r.headers(), &trusted);
                r.extensions_mut().insert(ClientAddr(client));
                r
            },
        ));
        let mut stop = stop_rx.clone();
        stop.mark_unchanged();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let trusted: Vec<IpNet> = ["10.0.0.0/8", "::1"]
            .iter()
            .map(|n| IpNet::parse(n).unwrap())
            .collect();
        let spoofed = forwarded(&["203.0.113.9"]);
        // No trusted proxies, or a peer not among them: the header is ignored.
        assert_eq!(client_addr(ip("192.0.2.1"), &spoofed, &[]), ip("192.0.2.1"));
        assert_eq!(
            client_addr(ip("192.0.2.1"), &spoofed, &trusted),
            ip("192.0.2.1")
        );
        // Through our proxy: what it appended, not what the client wrote.
        let through = forwarded(&["203.0.113.9, 198.51.100.4"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &through, &trusted),
            ip("198.51.100.4")
        );
        // Two proxies of ours, headers split over lines, ports.
        let chain = forwarded(&["203.0.113.9", "198.51.100.4:4711, 10.1.2.3"]);
        assert_eq!(client_addr(ip("::1"), &chain, &trusted), ip("198.51.100.4"));
        let v6 = forwarded(&["[2001:db8::7]:443"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &v6, &trusted),
            ip("2001:db8::7")
        );
        // Garbage stops at the last trusted hop; only trusted hops give
        // the left-most; no header gives the proxy itself.
        let garbage = forwarded(&["198.51.100.4, unknown, 10.9.9.9"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &garbage, &trusted),
            ip("10.9.9.9")
        );
        let ours = forwarded(&["10.3.3.3, 10.4.4.4"]);
        assert_eq!(client_addr(ip("10.0.0.2"), &ours, &trusted), ip("10.3.3.3"));
        assert_eq!(
            client_addr(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
    }
}
