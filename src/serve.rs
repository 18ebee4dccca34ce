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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;

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
        let stream = match accepted {
            Ok((stream, _)) => stream,
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
        tasks.spawn(async move {
            let service = {
                let tracked = tracked.clone();
                let shared = shared.clone();
                hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                    let busy = Busy::enter(&tracked, &shared);
                    let mut app = app.clone();
                    async move {
                        let response = tower_service::Service::call(
                            &mut app,
                            request.map(axum::body::Body::new),
                        )
                        .await?;
                        Ok::<_, std::convert::Infallible>(
                            response.map(|inner| BusyBody { inner, _busy: busy }),
                        )
                    }
                })
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.head_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = tracked.close.notified() => {}
            }
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
