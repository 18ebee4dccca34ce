//! The daemon's HTTP server: hyper's HTTP/1.1 connections on the listener, with the limits that
//! keep idle clients from taking credwatch down.
//!
//! - A request head must arrive whole within `head_timeout` (hyper's header read timeout).
//! - A connection that waits (kept alive between requests, or never sending anything) is
//!   closed after `idle_timeout`.
//! - At most `max_connections` are open; at the limit, the connection that has waited longest
//!   (idle, or still sending its head) is closed to make room, so that a scrape always gets
//!   through. The limit never exceeds half the process's open-file limit, so that the probes
//!   always have sockets; and when `accept` finds no file descriptor left, the longest waiting
//!   connection is closed too.
//!
//! A connection serving a request (its response body included) is never closed to make room.
//!
//! The web configuration ([`crate::webconfig`]) is read per connection for TLS (a connection
//! keeps the TLS settings it was accepted with; the handshake must finish within
//! `head_timeout`) and per request for basic auth and the response headers, so that a reload
//! applies to the next request. Request bodies are capped at [`MAX_BODY`] bytes. Its
//! `rate_limit` is checked first (429), then the body's declared size (413), then basic auth
//! (401), which is told the client's address (see [`crate::webconfig::workers`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use http::{header, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::webconfig::{Current, WebConfig};

/// The largest request body read, in bytes: no endpoint takes more than a few bytes.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// The server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a request head may take to arrive whole.
    pub head_timeout: Duration,
    /// How long a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: 512,
        }
    }
}

/// One open connection, as the server tracks it.
struct Tracked {
    /// Requests being served (response bodies included).
    busy: AtomicUsize,
    /// Milliseconds since the server started at which it last began to wait.
    waiting_since: AtomicU64,
    /// Closes it.
    close: Notify,
}

struct Connections {
    started: Instant,
    open: Mutex<HashMap<u64, Arc<Tracked>>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Tracked>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Closes the connection that has waited longest; whether there was one.
    fn evict_longest_waiting(&self) -> bool {
        let open = self.lock();
        let victim = open
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.waiting_since.load(Ordering::Acquire));
        match victim {
            Some(victim) => {
                victim.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Closes every connection that has waited longer than `limit`.
    fn reap(&self, limit: Duration) {
        let now = self.now_ms();
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        for connection in self.lock().values() {
            let since = connection.waiting_since.load(Ordering::Acquire);
            if connection.busy.load(Ordering::Acquire) == 0 && now.saturating_sub(since) > limit {
                connection.close.notify_one();
            }
        }
    }
}

/// Marks its connection busy while it lives: from the request to the end of its response body.
struct Busy {
    connection: Arc<Tracked>,
    connections: Arc<Connections>,
}

impl Busy {
    fn enter(connection: &Arc<Tracked>, connections: &Arc<Connections>) -> Busy {
        connection.busy.fetch_add(1, Ordering::AcqRel);
        Busy {
            connection: connection.clone(),
            connections: connections.clone(),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.connection
            .waiting_since
            .store(self.connections.now_ms(), Ordering::Release);
        self.connection.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection busy until it is sent or dropped.
struct BusyBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl Body for BusyBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves HTTP/1.1 on `io` until the client leaves or the server closes the connection.
async fn drive<I>(io: I, service: Service, limits: Limits, tracked: &Tracked)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| service.clone().call(request));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = tracked.close.notified() => {}
    }
}

/// Serves one accepted connection, over TLS when `tls` is set (the handshake must finish
/// within the head timeout).
async fn connection(
    stream: tokio::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: Service,
    limits: Limits,
    tracked: &Tracked,
) {
    let Some(tls) = tls else {
        return drive(stream, service, limits, tracked).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let handshake = tokio::time::timeout(limits.head_timeout, acceptor.accept(stream));
    tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => drive(stream, service, limits, tracked).await,
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake timed out"),
        },
        () = tracked.close.notified() => {}
    }
}

/// One connection's requests: the web configuration's checks around the router.
#[derive(Clone)]
struct Service {
    app: Router,
    web: Arc<Current>,
    tracked: Arc<Tracked>,
    connections: Arc<Connections>,
    /// The client's address (an IPv4-mapped IPv6 address as IPv4).
    client: IpAddr,
}

impl Service {
    async fn call(
        mut self,
        request: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<BusyBody>, std::convert::Infallible> {
        let busy = Busy::enter(&self.tracked, &self.connections);
        let config = self.web.get();
        let response = match refused(&config, &request, self.client).await {
            Some(refusal) => refusal,
            None => {
                let request = request.map(|body| {
                    axum::body::Body::new(http_body_util::Limited::new(body, MAX_BODY))
                });
                match tower_service::Service::call(&mut self.app, request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        };
        let mut response = response.map(|inner| BusyBody { inner, _busy: busy });
        for (name, value) in &config.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        Ok(response)
    }
}

/// The answer to a request the web configuration refuses, if it does: over the rate limit
/// (429), a body over the cap (413), or missing or wrong credentials (401). `/healthz` is
/// neither counted by the rate limit nor authenticated.
async fn refused<B>(
    config: &WebConfig,
    request: &hyper::Request<B>,
    client: IpAddr,
) -> Option<axum::response::Response> {
    // Liveness reveals nothing and must stay reachable to the kubelet and systemd.
    let liveness = request.uri().path() == "/healthz";
    if let Some(limit) = &config.rate_limit {
        if !liveness && !limit.allow() {
            return Some(plain(StatusCode::TOO_MANY_REQUESTS, "too many requests\n"));
        }
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Some(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        ));
    }
    let users = config.users.as_ref()?;
    if liveness {
        return None;
    }
    if users
        .allow(request.headers().get(header::AUTHORIZATION), client)
        .await
    {
        return None;
    }
    let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"credwatch\", charset=\"UTF-8\""),
    );
    Some(response)
}

fn plain(status: StatusCode, text: &'static str) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The open-file limit of this process, when Linux tells.
fn open_file_limit() -> Option<usize> {
    let limits = procfs::process::Process::myself().ok()?.limits().ok()?;
    match limits.max_open_files.soft_limit {
        procfs::process::LimitValue::Value(n) => usize::try_from(n).ok(),
        procfs::process::LimitValue::Unlimited => None,
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; connections in
/// flight are then asked to finish and close.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    web: Arc<Current>,
    shutdown: impl Future<Output = ()>,
) {
    let max = match open_file_limit() {
        Some(files) => limits.max_connections.min((files / 2).max(1)),
        None => limits.max_connections,
    };
    if max < limits.max_connections {
        tracing::info!(
            max_connections = max,
            "the open-file limit bounds the HTTP connections to half of it"
        );
    }
    let connections = Arc::new(Connections {
        started: Instant::now(),
        open: Mutex::new(HashMap::new()),
    });
    let reaper = {
        let connections = connections.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                connections.reap(limits.idle_timeout);
            }
        })
    };
    let mut next_id: u64 = 0;
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok((stream, peer)) => (stream, peer.ip().to_canonical()),
            Err(error) => {
                // Out of file descriptors: make room by closing the longest waiting
                // connection, and let the kernel release it.
                let freed = connections.evict_longest_waiting();
                tracing::debug!(%error, freed, "accept failed");
                tokio::time::sleep(Duration::from_millis(if freed { 5 } else { 50 })).await;
                continue;
            }
        };
        if connections.lock().len() >= max && !connections.evict_longest_waiting() {
            // Every connection is serving a request: this one waits its turn by being refused.
            drop(stream);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let tracked = Arc::new(Tracked {
            busy: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(connections.now_ms()),
            close: Notify::new(),
        });
        connections.lock().insert(id, tracked.clone());
        let app = app.clone();
        let shared = connections.clone();
        let web = web.clone();
        tasks.spawn(async move {
            let service = Service {
                app,
                web: web.clone(),
                tracked: tracked.clone(),
                connections: shared.clone(),
                client,
            };
            let tls = web.get().tls.clone();
            connection(stream, tls, service, limits, &tracked).await;
            shared.lock().remove(&id);
        });
        // Reap finished tasks so that the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    reaper.abort();
    for connection in connections.lock().values() {
        if connection.busy.load(Ordering::Acquire) == 0 {
            connection.close.notify_one();
        }
    }
    while tasks.join_next().await.is_some() {}
}
