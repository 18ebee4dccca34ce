//! credwatch's HTTP/1.1 client: one `GET` at a time per connection, kept alive per origin.
//!
//! A probe is a single small `GET`. Running it through a general client (reqwest over
//! hyper-util's pool) cost a connection task, a channel between that task and the probe, a
//! URL re-parse and a pool checkout per probe: about 35 µs of CPU, five times what `wrk`
//! spends per request (see BENCHMARKS.md). Here the probe's own task writes the request and
//! reads the answer; `httparse` reads the head, and the body's framing (RFC 9112 §6) is
//! decoded here. Idle connections wait in a per-origin pool and are checked for a close
//! before reuse.
//!
//! Failures are reported in credwatch's terms ([`FailureKind`]), with a detail that names
//! the host or proxy but never a credential.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::StatusCode;
use rustc_hash::FxHashMap;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use super::headers::Headers;
pub use super::proxy::{Proxies, Proxy};
use crate::config::CaBundle;

/// How long an idle connection is kept for the next probe to the same origin.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The most idle connections kept per origin.
const MAX_IDLE_PER_ORIGIN: usize = 256;

/// How often connections idle past [`IDLE_TIMEOUT`] are closed, across all origins.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The largest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// The most response headers accepted (hyper's default, too).
const MAX_HEADERS: usize = 100;

/// The longest chunk-size line or trailer section accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Name resolution, replaceable so that tests and the simulator never ask a DNS server.
pub trait Resolve: Send + Sync {
    /// The addresses of `host`, with `port` filled in.
    fn resolve(&self, host: &str, port: u16) -> Resolving;
}

/// What [`Resolve::resolve`] returns.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// The system's resolver (`getaddrinfo`, on tokio's blocking pool).
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let host = host.to_owned();
        Box::pin(async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(Iterator::collect)
        })
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The host name did not resolve.
    Dns,
    /// No connection, or it broke before an answer arrived (includes a proxy refusing).
    Connect,
    /// The TLS handshake or the TLS layer failed.
    Tls,
    /// Bytes arrived that are not an HTTP/1.x answer.
    Protocol,
    /// The operating system reported a timeout.
    Timeout,
}

/// A request that got no HTTP answer.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// A short description, without secrets.
    pub detail: String,
    /// Nothing at all came back: no byte of an answer. On a reused connection this is a
    /// close that crossed the request, and the server did not act on the request.
    unanswered: bool,
}

impl Failure {
    fn new(kind: FailureKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
            unanswered: false,
        }
    }

    /// An I/O error, classified by what it carries.
    fn io(context: &str, error: &io::Error) -> Failure {
        let kind = if error
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            FailureKind::Tls
        } else if error.kind() == io::ErrorKind::TimedOut {
            FailureKind::Timeout
        } else {
            FailureKind::Connect
        };
        Failure::new(kind, format!("{context}: {error}"))
    }
}

/// An HTTP answer, the body read up to the caller's cap.
#[derive(Debug)]
pub struct Response {
    /// The final status (informational `1xx` answers are skipped).
    pub status: StatusCode,
    /// The headers.
    pub headers: Headers,
    /// The body, up to the cap.
    pub body: Vec<u8>,
    /// The body was cut at the cap, or broke off before its end.
    pub truncated: bool,
}

/// One `GET`.
pub struct Request<'a> {
    /// The absolute URL.
    pub url: &'a Url,
    /// The pool's name for the URL's origin (`scheme://host:port`).
    pub origin: &'a str,
    /// The `Authorization` header value.
    pub authorization: &'a HeaderValue,
    /// Extra trust roots for HTTPS.
    pub ca: Option<&'a CaBundle>,
    /// Whether a request whose reused connection closed before any answer may be sent once
    /// more on a new connection. Callers say no for passwords, which Jira counts towards a
    /// CAPTCHA lock: the request might, in theory, have been acted on.
    pub retry_unanswered: bool,
    /// The most of the body to read.
    pub body_cap: usize,
}

/// The client: trust configurations, proxies and the idle pool. Shared by all probes.
pub struct Transport {
    resolver: Arc<dyn Resolve>,
    proxies: Proxies,
    user_agent: &'static str,
    /// The TLS connector for the system roots only.
    common: TlsConnector,
    /// The TLS connectors for each `ca_file` and its contents.
    tls: Mutex<Connectors>,
    pool: Mutex<Pool>,
}

struct Connectors {
    /// By `ca_file` path, for its current contents: a reload that changes the file's
    /// certificates gets a new connector and, through its id, a pool of its own.
    by_ca: HashMap<PathBuf, CaConnector>,
    last_id: u64,
}

struct CaConnector {
    certs: Arc<Vec<CertificateDer<'static>>>,
    connector: TlsConnector,
    id: u64,
}

#[derive(Default)]
struct Pool {
    /// By origin (from the configuration: a fast hash is fine).
    idle: FxHashMap<String, VecDeque<Idle>>,
    swept: Option<Instant>,
}

struct Idle {
    stream: Stream,
    since: Instant,
}

impl Transport {
    /// A client with the given resolver (the system's when `None`) and proxies. The common TLS
    /// configuration is built here, so that a broken TLS stack fails at start-up.
    pub fn new(
        resolver: Option<Arc<dyn Resolve>>,
        proxies: Proxies,
        user_agent: &'static str,
    ) -> Result<Transport, rustls::Error> {
        let common = TlsConnector::from(Arc::new(super::tls::client_config(None)?));
        Ok(Transport {
            resolver: resolver.unwrap_or_else(|| Arc::new(SystemResolver)),
            proxies,
            user_agent,
            common,
            tls: Mutex::new(Connectors {
                by_ca: HashMap::new(),
                last_id: 0,
            }),
            pool: Mutex::new(Pool::default()),
        })
    }

    /// Sends `request` and reads its answer. No deadline is applied here: the caller wraps
    /// the whole exchange in one.
    pub async fn get(&self, request: &Request<'_>) -> Result<Response, Failure> {
        let https = request.url.scheme() == "https";
        let proxy = self.proxies.for_url(request.url);
        let trust =
            if https {
                Some(self.trust(request.ca).map_err(|e| {
                    Failure::new(FailureKind::Tls, format!("cannot set up TLS: {e}"))
                })?)
            } else {
                None
            };
        // The origin, and the trust roots when they are not the common ones.
        let key = match &trust {
            Some((_, id)) if *id != 0 => Cow::Owned(format!("{} ca#{id}", request.origin)),
            _ => Cow::Borrowed(request.origin),
        };
        let head = self.head(request, proxy.filter(|_| !https));
        let mut reuse = true;
        loop {
            let pooled = if reuse { self.checkout(&key) } else { None };
            let reused = pooled.is_some();
            let mut stream = match pooled {
                Some(stream) => {
                    tracing::trace!(origin = request.origin, "reusing an idle connection");
                    stream
                }
                None => {
                    let connector = trust.as_ref().map(|(connector, _)| connector);
                    let stream = self.connect(request, proxy, connector).await?;
                    tracing::trace!(
                        origin = request.origin,
                        proxy = proxy.map(Proxy::shown),
                        tls = matches!(stream, Stream::Tls(_)),
                        "connected"
                    );
                    stream
                }
            };
            match exchange(&mut stream, &head, request.body_cap).await {
                Ok((response, reusable)) => {
                    tracing::trace!(
                        origin = request.origin,
                        status = response.status.as_u16(),
                        body = response.body.len(),
                        truncated = response.truncated,
                        reusable,
                        "answer read"
                    );
                    if reusable {
                        self.checkin(&key, stream);
                    }
                    return Ok(response);
                }
                Err(failure) if reused && failure.unanswered && request.retry_unanswered => {
                    tracing::debug!(
                        origin = request.origin,
                        detail = %failure.detail,
                        "a kept-alive connection closed as the request went out; resending it"
                    );
                    reuse = false;
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    /// The request head: request line and headers, ready to write.
    fn head(&self, request: &Request<'_>, http_proxy: Option<&Proxy>) -> Vec<u8> {
        let url = request.url;
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(b"GET ");
        if http_proxy.is_some() {
            // Absolute form, as a proxy needs (RFC 9112 §3.2.2).
            head.extend_from_slice(url[..url::Position::AfterQuery].as_bytes());
        } else {
            head.extend_from_slice(
                url[url::Position::BeforePath..url::Position::AfterQuery].as_bytes(),
            );
        }
        head.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        head.extend_from_slice(url[url::Position::BeforeHost..url::Position::AfterPort].as_bytes());
        head.extend_from_slice(b"\r\nAccept: application/json\r\nUser-Agent: ");
        head.extend_from_slice(self.user_agent.as_bytes());
        head.extend_from_slice(b"\r\nAuthorization: ");
        head.extend_from_slice(request.authorization.as_bytes());
        if let Some(authorization) = http_proxy.and_then(Proxy::authorization) {
            head.extend_from_slice(b"\r\nProxy-Authorization: ");
            head.extend_from_slice(authorization.as_bytes());
        }
        head.extend_from_slice(b"\r\n\r\n");
        head
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        // Held only to move connections in and out; a panic cannot leave it inconsistent.
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used live idle connection to this origin, if any.
    fn checkout(&self, key: &str) -> Option<Stream> {
        loop {
            let idle = self.lock_pool().idle.get_mut(key)?.pop_back()?;
            // Checked outside the lock: a close here costs a system call.
            let mut stream = idle.stream;
            if idle.since.elapsed() < IDLE_TIMEOUT && stream.is_open() {
                return Some(stream);
            }
        }
    }

    fn checkin(&self, key: &str, stream: Stream) {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut pool = self.lock_pool();
            if pool
                .swept
                .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY)
            {
                pool.swept = Some(now);
                pool.idle.retain(|_, queue| {
                    while queue
                        .front()
                        .is_some_and(|idle| now.duration_since(idle.since) >= IDLE_TIMEOUT)
                    {
                        expired.extend(queue.pop_front());
                    }
                    !queue.is_empty()
                });
            }
            let queue = match pool.idle.get_mut(key) {
                Some(queue) => queue,
                None => pool.idle.entry(key.to_owned()).or_default(),
            };
            if queue.len() >= MAX_IDLE_PER_ORIGIN {
                expired.extend(queue.pop_front());
            }
            queue.push_back(Idle { stream, since: now });
        }
        // Closed outside the lock.
        drop(expired);
    }

    /// A new connection to the request's origin: through its proxy if the environment names
    /// one, with TLS for `https`.
    async fn connect(
        &self,
        request: &Request<'_>,
        proxy: Option<&Proxy>,
        tls: Option<&TlsConnector>,
    ) -> Result<Stream, Failure> {
        let url = request.url;
        let host = url
            .host()
            .ok_or_else(|| Failure::new(FailureKind::Connect, "the URL has no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let tcp = match proxy {
            Some(proxy) => {
                tcp_connect(&*self.resolver, proxy.host(), proxy.port())
                    .await
                    .map_err(|mut failure| {
                        failure.detail = format!("proxy {}: {}", proxy.shown(), failure.detail);
                        // The proxy's name, not Jira's, failed to resolve: a connection problem
                        // as far as the URL's DNS is concerned.
                        if failure.kind == FailureKind::Dns {
                            failure.kind = FailureKind::Connect;
                        }
                        failure
                    })?
            }
            None => tcp_connect(&*self.resolver, host.clone(), port).await?,
        };
        let Some(connector) = tls else {
            return Ok(Stream::Plain(tcp));
        };
        let mut tcp = tcp;
        if let Some(proxy) = proxy {
            tunnel(
                &mut tcp,
                proxy,
                &url[url::Position::BeforeHost..url::Position::AfterPort],
                port,
            )
            .await?;
        }
        let name = match host {
            Host::Domain(domain) => ServerName::try_from(domain.to_owned()).map_err(|e| {
                Failure::new(
                    FailureKind::Tls,
                    format!("{domain} is not a TLS server name: {e}"),
                )
            })?,
            Host::Ipv4(ip) => ServerName::IpAddress(IpAddr::V4(ip).into()),
            Host::Ipv6(ip) => ServerName::IpAddress(IpAddr::V6(ip).into()),
        };
        let shown = url.host_str().unwrap_or_default();
        match connector.connect(name, tcp).await {
            Ok(tls) => Ok(Stream::Tls(Box::new(tls))),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Err(Failure::new(
                FailureKind::Connect,
                format!("{shown} closed the connection during the TLS handshake"),
            )),
            Err(error) => Err(Failure::io(&format!("TLS handshake with {shown}"), &error)),
        }
    }

    /// The connector for the common roots (id 0) or for `ca` as its file reads now.
    fn trust(&self, ca: Option<&CaBundle>) -> Result<(TlsConnector, u64), rustls::Error> {
        let Some(ca) = ca else {
            return Ok((self.common.clone(), 0));
        };
        let mut connectors = self
            .tls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = connectors.by_ca.get(&ca.path) {
            if Arc::ptr_eq(&known.certs, &ca.certs) || known.certs == ca.certs {
                return Ok((known.connector.clone(), known.id));
            }
        }
        let connector = TlsConnector::from(Arc::new(super::tls::client_config(Some(
            ca.certs.as_slice(),
        ))?));
        connectors.last_id += 1;
        let id = connectors.last_id;
        connectors.by_ca.insert(
            ca.path.clone(),
            CaConnector {
                certs: ca.certs.clone(),
                connector: connector.clone(),
                id,
            },
        );
        Ok((connector, id))
    }
}

/// How long a connection attempt has to itself before the next address is tried (as in
/// hyper-util's "happy eyeballs"): a black-holed first address, typically a broken IPv6 route,
/// must not use up the whole probe deadline.
const CONNECT_FALLBACK: Duration = Duration::from_millis(300);

/// Resolves and connects, trying each address in turn; all but the last get
/// [`CONNECT_FALLBACK`].
async fn tcp_connect(
    resolver: &dyn Resolve,
    host: Host<&str>,
    port: u16,
) -> Result<TcpStream, Failure> {
    let addresses = match host {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Host::Domain(domain) => match resolver.resolve(domain, port).await {
            Ok(found) if !found.is_empty() => found,
            Ok(_) => {
                return Err(Failure::new(
                    FailureKind::Dns,
                    format!("{domain} has no address"),
                ));
            }
            Err(error) => {
                return Err(Failure::new(
                    FailureKind::Dns,
                    format!("cannot resolve {domain}: {error}"),
                ));
            }
        },
    };
    let mut last = None;
    let count = addresses.len();
    for (index, address) in addresses.into_iter().enumerate() {
        let attempt = if index + 1 < count {
            match tokio::time::timeout(CONNECT_FALLBACK, TcpStream::connect(address)).await {
                Ok(attempt) => attempt,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {} ms", CONNECT_FALLBACK.as_millis()),
                )),
            }
        } else {
            TcpStream::connect(address).await
        };
        match attempt {
            Ok(tcp) => {
                // A probe is one small write; waiting for Nagle's timer would only add latency.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(error) => last = Some(Failure::io(&format!("cannot connect to {address}"), &error)),
        }
    }
    Err(last.unwrap_or_else(|| Failure::new(FailureKind::Connect, "no address to connect to")))
}

/// Asks an HTTP proxy for a tunnel to `authority` (RFC 9110 §9.3.6).
async fn tunnel(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    authority: &str,
    port: u16,
) -> Result<(), Failure> {
    // `authority` omits a default port; CONNECT needs it.
    let target = if authority.ends_with(&format!(":{port}")) {
        authority.to_owned()
    } else {
        format!("{authority}:{port}")
    };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(authorization) = proxy.authorization() {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(authorization.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let context = format!("proxy {}", proxy.shown());
    tcp.write_all(&head)
        .await
        .map_err(|e| Failure::io(&context, &e))?;
    let mut buf = Vec::with_capacity(1024);
    let head = loop {
        if read_more(tcp, &mut buf)
            .await
            .map_err(|e| Failure::io(&context, &e))?
            == 0
        {
            return Err(Failure::new(
                FailureKind::Connect,
                format!("{context} closed the connection instead of answering CONNECT"),
            ));
        }
        if let Some(head) = parse_head(&buf).map_err(|mut failure| {
            failure.detail = format!("{context}: {}", failure.detail);
            failure
        })? {
            break head;
        }
    };
    if !head.status.is_success() {
        return Err(Failure::new(
            FailureKind::Connect,
            format!("{context} refused the tunnel to {target}: {}", head.status),
        ));
    }
    if buf.len() > head.length {
        return Err(Failure::new(
            FailureKind::Protocol,
            format!("{context} sent bytes after accepting the tunnel"),
        ));
    }
    Ok(())
}

/// Reads into the spare capacity of `buf`, growing it when needed.
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8 * 1024);
    }
    stream.read_buf(buf).await
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    headers: Headers,
    /// The head's length in bytes.
    length: usize,
    /// The minor version: `HTTP/1.x`.
    version: u8,
}

/// Parses a response head from the start of `buf`; `None` while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Uninitialised: httparse writes the fields it finds, and nothing reads the others.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!(
                    "invalid HTTP response: the head is longer than {} KiB",
                    MAX_HEAD / 1024
                ),
            ));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("invalid HTTP response: {error}"),
            ));
        }
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| {
            Failure::new(
                FailureKind::Protocol,
                "invalid HTTP response: status code out of range",
            )
        })?;
    // httparse has checked every name (a token) and value (no control characters).
    let bytes = response
        .headers
        .iter()
        .map(|header| header.name.len() + header.value.len())
        .sum();
    let mut headers = Headers::with_capacity(response.headers.len(), bytes);
    for header in response.headers.iter() {
        headers.append(header.name, header.value);
    }
    Ok(Some(Head {
        status,
        headers,
        length,
        version: response.version.unwrap_or(1),
    }))
}

/// How the body's end is known (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (`1xx`, `204`, `304`).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Read until the server closes.
    Close,
}

fn framing(status: StatusCode, headers: &Headers) -> Result<Framing, Failure> {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if headers.contains("transfer-encoding") {
        let chunked_last = headers
            .get_all("transfer-encoding")
            .flat_map(|value| value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|coding| !coding.is_empty())
            .is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked_last {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    let mut length = None;
    for value in headers.get_all("content-length") {
        for part in value.split(|&b| b == b',') {
            let parsed = std::str::from_utf8(part.trim_ascii())
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|text| text.parse::<u64>().ok());
            match (parsed, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        "invalid HTTP response: invalid Content-Length",
                    ));
                }
            }
        }
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// Whether the connection may carry another request after this answer.
fn keeps_alive(version: u8, headers: &Headers) -> bool {
    let has = |token: &[u8]| {
        headers
            .get_all("connection")
            .flat_map(|value| value.split(|&b| b == b','))
            .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
    };
    if version >= 1 {
        !has(b"close")
    } else {
        // HTTP/1.0 closes unless told otherwise; credwatch does not ask it not to.
        false
    }
}

/// Writes the request and reads the answer; also says whether the connection can be reused.
async fn exchange(
    stream: &mut Stream,
    request: &[u8],
    cap: usize,
) -> Result<(Response, bool), Failure> {
    let unanswered = |error: io::Error| {
        let mut failure = Failure::io("the connection closed before an answer", &error);
        failure.unanswered = true;
        failure
    };
    stream.write_all(request).await.map_err(unanswered)?;
    stream.flush().await.map_err(unanswered)?;

    let mut buf = Vec::with_capacity(4 * 1024);
    let mut answered = false;
    loop {
        // Informational answers (103 Early Hints, a stray 100) precede the final one.
        while let Some(head) = parse_head(&buf)? {
            buf.drain(..head.length);
            if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
                continue;
            }
            return finish(stream, head, buf, cap).await;
        }
        let read = match read_more(stream, &mut buf).await {
            Ok(read) => read,
            Err(error) if !answered => return Err(unanswered(error)),
            Err(error) => return Err(Failure::io("the answer's head broke off", &error)),
        };
        if read == 0 {
            let mut failure = Failure::new(
                FailureKind::Connect,
                if answered {
                    "the server closed the connection in the middle of the answer's head"
                } else {
                    "the server closed the connection without answering"
                },
            );
            failure.unanswered = !answered;
            return Err(failure);
        }
        answered = true;
    }
}

/// Reads the body that follows `head` (`rest` holds what already arrived of it).
async fn finish(
    stream: &mut Stream,
    head: Head,
    rest: Vec<u8>,
    cap: usize,
) -> Result<(Response, bool), Failure> {
    let Head {
        status,
        headers,
        version,
        ..
    } = head;
    let framing = if status == StatusCode::SWITCHING_PROTOCOLS {
        Framing::Empty
    } else {
        framing(status, &headers)?
    };
    let keep_alive = keeps_alive(version, &headers)
        && status != StatusCode::SWITCHING_PROTOCOLS
        && !(framing == Framing::Chunked && headers.contains("content-length"));
    let (body, body_end) = match framing {
        Framing::Empty => (Vec::new(), BodyEnd::Complete(rest.is_empty())),
        Framing::Length(length) => read_length(stream, rest, length, cap).await,
        Framing::Chunked => read_chunked(stream, rest, cap).await,
        Framing::Close => read_to_close(stream, rest, cap).await,
    };
    let (truncated, reusable) = match body_end {
        BodyEnd::Complete(clean) => (false, keep_alive && clean && framing != Framing::Close),
        BodyEnd::Truncated => (true, false),
    };
    Ok((
        Response {
            status,
            headers,
            body,
            truncated,
        },
        reusable,
    ))
}

/// How reading a body ended.
enum BodyEnd {
    /// The whole body; `true` when nothing followed it, so the connection is clean.
    Complete(bool),
    /// Cut at the cap, broken off, or badly framed.
    Truncated,
}

async fn read_length(
    stream: &mut Stream,
    mut body: Vec<u8>,
    length: u64,
    cap: usize,
) -> (Vec<u8>, BodyEnd) {
    let want = usize::try_from(length).unwrap_or(usize::MAX).min(cap);
    let mut clean = true;
    if body.len() as u64 > length {
        clean = false;
    }
    while body.len() < want {
        // One byte more than the body: bytes after it show up here (and the connection is not
        // reused) rather than staying behind in a TLS session's buffer.
        body.reserve((want + 1 - body.len()).min(64 * 1024));
        match stream.read_buf(&mut body).await {
            Ok(0) | Err(_) => return (body, BodyEnd::Truncated),
            Ok(_) => {}
        }
    }
    if body.len() as u64 > length {
        clean = false;
    }
    body.truncate(want);
    if length > want as u64 {
        return (body, BodyEnd::Truncated);
    }
    (body, BodyEnd::Complete(clean))
}

async fn read_to_close(stream: &mut Stream, mut body: Vec<u8>, cap: usize) -> (Vec<u8>, BodyEnd) {
    loop {
        if body.len() > cap {
            body.truncate(cap);
            return (body, BodyEnd::Truncated);
        }
        body.reserve((cap + 1 - body.len()).min(64 * 1024));
        match stream.read_buf(&mut body).await {
            Ok(0) => return (body, BodyEnd::Complete(true)),
            Ok(_) => {}
            Err(_) => return (body, BodyEnd::Truncated),
        }
    }
}

async fn read_chunked(stream: &mut Stream, mut raw: Vec<u8>, cap: usize) -> (Vec<u8>, BodyEnd) {
    let mut decoder = Chunked::default();
    let mut body = Vec::new();
    loop {
        match decoder.decode(&mut raw, &mut body, cap) {
            Decoded::Done { clean } => return (body, BodyEnd::Complete(clean)),
            Decoded::Invalid | Decoded::Capped => return (body, BodyEnd::Truncated),
            Decoded::NeedMore => match read_more(stream, &mut raw).await {
                Ok(0) | Err(_) => return (body, BodyEnd::Truncated),
                Ok(_) => {}
            },
        }
    }
}

/// A chunked-body decoder (RFC 9112 §7.1) over a buffer that grows as bytes arrive.
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting `size[;ext]\r\n`.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(u64),
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
}

#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    /// The last chunk and the trailers have been read; `clean` when nothing followed.
    Done { clean: bool },
    /// More bytes are needed.
    NeedMore,
    /// The body reached the cap.
    Capped,
    /// Not chunked encoding.
    Invalid,
}

impl Chunked {
    /// Decodes what `raw` holds into `body`, removing the bytes it used from `raw`.
    fn decode(&mut self, raw: &mut Vec<u8>, body: &mut Vec<u8>, cap: usize) -> Decoded {
        let mut at = 0;
        let result = loop {
            let rest = &raw[at..];
            match self.state {
                ChunkState::Size => {
                    let Some(end) = find_crlf(rest) else {
                        break if rest.len() > MAX_CHUNK_LINE {
                            Decoded::Invalid
                        } else {
                            Decoded::NeedMore
                        };
                    };
                    let line = &rest[..end];
                    let digits = line
                        .split(|&b| b == b';')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .filter(|text| !text.is_empty() && text.len() <= 16)
                        .and_then(|text| u64::from_str_radix(text, 16).ok());
                    let Some(size) = size else {
                        break Decoded::Invalid;
                    };
                    at += end + 2;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        break Decoded::NeedMore;
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    let room = cap - body.len();
                    if take > room {
                        body.extend_from_slice(&rest[..room]);
                        break Decoded::Capped;
                    }
                    body.extend_from_slice(&rest[..take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        break Decoded::NeedMore;
                    }
                    if &rest[..2] != b"\r\n" {
                        break Decoded::Invalid;
                    }
                    at += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(end) = find_crlf(rest) else {
                        break if rest.len() > MAX_CHUNK_LINE {
                            Decoded::Invalid
                        } else {
                            Decoded::NeedMore
                        };
                    };
                    at += end + 2;
                    if end == 0 {
                        break Decoded::Done {
                            clean: at == raw.len(),
                        };
                    }
                }
            }
        };
        raw.drain(..at);
        result
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|pair| pair == b"\r\n")
}

/// A connection: plain TCP or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether an idle connection is still open and clean: nothing has arrived on it since its
    /// last answer, not even a close, and (over TLS) nothing is left decrypted but unread.
    /// Costs a system call only when the socket is readable.
    fn is_open(&mut self) -> bool {
        let tcp = match self {
            Stream::Plain(tcp) => &*tcp,
            Stream::Tls(tls) => {
                let (tcp, session) = tls.get_mut();
                match session.process_new_packets() {
                    Ok(state)
                        if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
                    _ => return false,
                }
                &*tcp
            }
        };
        let mut byte = [0u8; 1];
        matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// What a scripted server does with each request on a connection.
    #[derive(Clone, Copy)]
    enum Step {
        /// Writes these bytes as the answer.
        Answer(&'static [u8]),
        /// Reads the request, then closes without a byte of answer.
        Hangup,
    }

    /// A server that plays one conversation per accepted connection, in order; after its
    /// last step a connection closes. Returns its URL and the count of connections.
    async fn scripted(conversations: Vec<Vec<Step>>) -> (Url, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address: SocketAddr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            for conversation in conversations {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    for step in conversation {
                        if !read_request(&mut socket).await {
                            return;
                        }
                        match step {
                            Step::Answer(bytes) => {
                                if socket.write_all(bytes).await.is_err() {
                                    return;
                                }
                            }
                            Step::Hangup => return,
                        }
                    }
                });
            }
        });
        let url = Url::parse(&format!("http://{address}/jira/rest/api/2/myself")).expect("url");
        (url, accepted)
    }

    /// Reads one request head; `false` at end of stream.
    async fn read_request(socket: &mut TcpStream) -> bool {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") {
            match socket.read(&mut byte).await {
                Ok(1) => seen.push(byte[0]),
                _ => return false,
            }
        }
        true
    }

    fn transport() -> Transport {
        Transport::new(None, Proxies::none(), "credwatch-test").expect("transport")
    }

    async fn get(transport: &Transport, url: &Url, retry: bool) -> Result<Response, Failure> {
        get_capped(transport, url, retry, 1024).await
    }

    async fn get_capped(
        transport: &Transport,
        url: &Url,
        retry: bool,
        cap: usize,
    ) -> Result<Response, Failure> {
        let origin = format!(
            "http://{}",
            &url[url::Position::BeforeHost..url::Position::AfterPort]
        );
        let authorization = HeaderValue::from_static("Bearer t");
        let request = Request {
            url,
            origin: &origin,
            authorization: &authorization,
            ca: None,
            retry_unanswered: retry,
            body_cap: cap,
        };
        tokio::time::timeout(Duration::from_secs(5), transport.get(&request))
            .await
            .expect("an answer or a failure within 5 s")
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[tokio::test]
    async fn answers_of_every_framing_are_read_and_one_connection_carries_them() {
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            4;ext=1\r\n{\"na\r\n6\r\nme\":1}\r\n0\r\nX-Trailer: yes\r\n\r\n";
        let early: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
            HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\
            X-Seraph-LoginReason: AUTHENTICATED_FAILED\r\n\r\n";
        let empty: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
        let (url, accepted) = scripted(vec![vec![
            Step::Answer(OK),
            Step::Answer(chunked),
            Step::Answer(early),
            Step::Answer(empty),
            Step::Answer(OK),
        ]])
        .await;
        let transport = transport();
        let first = get(&transport, &url, false).await.expect("first");
        assert_eq!(
            (first.status.as_u16(), first.body.as_slice()),
            (200, &b"ok"[..])
        );
        let second = get(&transport, &url, false).await.expect("chunked");
        assert_eq!(second.body, b"{\"name\":1}");
        assert!(!second.truncated);
        let third = get(&transport, &url, false).await.expect("after 103");
        assert_eq!(third.status.as_u16(), 401);
        assert_eq!(
            third.headers.get("x-seraph-loginreason"),
            Some(&b"AUTHENTICATED_FAILED"[..])
        );
        assert_eq!(
            get(&transport, &url, false)
                .await
                .expect("204")
                .status
                .as_u16(),
            204
        );
        assert_eq!(
            get(&transport, &url, false).await.expect("fifth").body,
            b"ok"
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one kept-alive connection"
        );
    }

    #[tokio::test]
    async fn answers_that_end_their_connection_are_not_reused() {
        let close: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        let old: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (url, accepted) = scripted(vec![
            vec![Step::Answer(close), Step::Answer(OK)],
            vec![Step::Answer(old), Step::Answer(OK)],
            vec![Step::Answer(OK)],
        ])
        .await;
        let transport = transport();
        for _ in 0..3 {
            assert_eq!(
                get(&transport, &url, false).await.expect("answer").body,
                b"ok"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn bytes_after_a_body_keep_its_connection_out_of_the_pool() {
        let (url, accepted) = scripted(vec![
            vec![
                Step::Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK"),
                Step::Answer(OK),
            ],
            vec![Step::Answer(OK)],
        ])
        .await;
        let transport = transport();
        assert_eq!(
            get(&transport, &url, false).await.expect("first").body,
            b"ok"
        );
        assert_eq!(
            get(&transport, &url, false).await.expect("second").body,
            b"ok"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_without_length_runs_to_the_close() {
        let (url, accepted) = scripted(vec![
            vec![Step::Answer(b"HTTP/1.1 200 OK\r\n\r\nall of it")],
            vec![Step::Answer(OK)],
        ])
        .await;
        let transport = transport();
        let response = get(&transport, &url, false).await.expect("answer");
        assert_eq!(
            (response.body.as_slice(), response.truncated),
            (&b"all of it"[..], false)
        );
        assert_eq!(
            get(&transport, &url, false).await.expect("next").body,
            b"ok"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_past_the_cap_is_cut_and_its_connection_dropped() {
        let big: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n\
            01234567890123456789012345678901234567890123456789\
            01234567890123456789012345678901234567890123456789";
        let (url, accepted) = scripted(vec![
            vec![Step::Answer(big), Step::Answer(OK)],
            vec![Step::Answer(OK)],
        ])
        .await;
        let transport = transport();
        let response = get_capped(&transport, &url, false, 10)
            .await
            .expect("answer");
        assert_eq!(
            (response.body.as_slice(), response.truncated),
            (&b"0123456789"[..], true)
        );
        assert_eq!(
            get(&transport, &url, false).await.expect("next").body,
            b"ok"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn malformed_answers_are_protocol_failures() {
        for answer in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
        ] {
            let (url, _) = scripted(vec![vec![Step::Answer(answer)]]).await;
            let failure = get(&transport(), &url, false).await.expect_err("malformed");
            assert_eq!(failure.kind, FailureKind::Protocol, "{}", failure.detail);
            assert!(
                failure.detail.contains("invalid HTTP"),
                "{}",
                failure.detail
            );
        }
        // A chunked body that is not chunked encoding is a body that broke off.
        let (url, _) = scripted(vec![vec![Step::Answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        )]])
        .await;
        assert!(
            get(&transport(), &url, false)
                .await
                .expect("answer")
                .truncated
        );
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_without_a_failure() {
        let (url, accepted) = scripted(vec![vec![Step::Answer(OK)], vec![Step::Answer(OK)]]).await;
        let transport = transport();
        assert_eq!(
            get(&transport, &url, false).await.expect("first").body,
            b"ok"
        );
        // Let the server's close arrive; with no resend allowed, the pool must notice it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            get(&transport, &url, false).await.expect("second").body,
            b"ok"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unanswered_request_on_a_reused_connection_is_resent_only_when_allowed() {
        let conversations = || vec![vec![Step::Answer(OK), Step::Hangup], vec![Step::Answer(OK)]];
        let (url, accepted) = scripted(conversations()).await;
        let transport = transport();
        get(&transport, &url, true).await.expect("first");
        assert_eq!(
            get(&transport, &url, true).await.expect("resent").body,
            b"ok"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // A password is never sent twice: the close is reported.
        let (url, accepted) = scripted(conversations()).await;
        let transport = self::transport();
        get(&transport, &url, false).await.expect("first");
        let failure = get(&transport, &url, false).await.expect_err("not resent");
        assert_eq!(failure.kind, FailureKind::Connect, "{}", failure.detail);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // On a new connection, nothing is resent either.
        let (url, accepted) = scripted(vec![vec![Step::Hangup], vec![Step::Answer(OK)]]).await;
        let failure = get(&self::transport(), &url, true)
            .await
            .expect_err("fresh hangup");
        assert_eq!(failure.kind, FailureKind::Connect, "{}", failure.detail);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn chunked_decoding_gives_the_same_body_however_the_bytes_arrive() {
        let wire = b"3\r\nabc\r\n10;name=value\r\n0123456789abcdef\r\n0\r\nTrailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (mut decoder, mut raw, mut body) = (Chunked::default(), Vec::new(), Vec::new());
            let mut result = Decoded::NeedMore;
            for piece in wire.chunks(step) {
                assert_eq!(result, Decoded::NeedMore, "step {step}");
                raw.extend_from_slice(piece);
                result = decoder.decode(&mut raw, &mut body, 1024);
            }
            assert_eq!(result, Decoded::Done { clean: true }, "step {step}");
            assert_eq!(body, b"abc0123456789abcdef", "step {step}");
        }
        let decode = |wire: &[u8], cap| {
            let (mut raw, mut body) = (wire.to_vec(), Vec::new());
            let result = Chunked::default().decode(&mut raw, &mut body, cap);
            (result, body)
        };
        assert_eq!(decode(b"3\r\nabcX\r\n", 1024).0, Decoded::Invalid);
        assert_eq!(decode(b"g\r\n", 1024).0, Decoded::Invalid);
        assert_eq!(decode(b"fffffffffffffffff\r\n", 1024).0, Decoded::Invalid);
        assert_eq!(
            decode(b"a\r\n0123456789\r\n", 4),
            (Decoded::Capped, b"0123".to_vec())
        );
        assert_eq!(
            decode(b"0\r\n\r\nextra", 4).0,
            Decoded::Done { clean: false }
        );
    }
}
