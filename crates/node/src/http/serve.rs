//! The node's HTTP server loop: each connection the [`GuardedListener`] admits is served by
//! hyper's HTTP/1 with bounds `axum::serve` leaves at hyper's defaults — a connection buffers at
//! most [`MAX_BUF_BYTES`] of a request it has not parsed (hyper's default is about 400 KiB, so a
//! stranger's unfinished request heads held 200 MiB per address), and a request head must arrive
//! within [`HEAD_TIMEOUT`]. Stops accepting on `shutdown` and lets open requests finish.

use std::future::Future;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use super::guard::{GuardedListener, PeerAddr};

/// Most bytes a connection buffers of a request before it is parsed: request heads are far
/// smaller; bodies stream through it.
pub const MAX_BUF_BYTES: usize = 64 << 10;

/// How long a client may take to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open requests may take to finish after `shutdown`.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes; every request carries its connection's
/// [`ConnectInfo<PeerAddr>`].
pub async fn serve(mut listener: GuardedListener, app: Router, shutdown: impl Future<Output = ()>) {
    use axum::serve::Listener;
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = tower::ServiceExt::map_request(
            app,
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(PeerAddr(addr)));
                request
            },
        );
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .max_buf_size(MAX_BUF_BYTES)
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("open requests did not finish within {DRAIN:?} of the shutdown");
    }
}
