//! Every request credwatch makes goes through reqwest: one client per distinct set of trust
//! roots (the system's, plus a connection's `ca_file`), built once and shared by every
//! connection that trusts the same certificates, so connections to a site are kept alive
//! across probes (90 s idle, hyper's pool).
//!
//! What the clients promise, each tested:
//! - redirects are never followed (`redirect::Policy::none()`): a credential never leaves the
//!   configured origin;
//! - nothing is retried by reqwest's retry layer (`retry::never()`, zero retries a request);
//!   hyper resends a request
//!   only when its kept-alive connection closed before the request was written, so Jira never
//!   saw it: a Basic login is never sent twice;
//! - proxies come from the environment exactly as reqwest reads it ([`super::proxy_env`] warns
//!   about what it would ignore);
//! - the body is read up to the cap and the connection then dropped, not reused;
//! - failures are told apart from reqwest's error chain: a resolver error (ours, tagged),
//!   a rustls error, an answer that is not HTTP, a refused or broken connection.
//!
//! HTTP/1.1 only (reqwest's `http2` feature is off): a probe is one small GET.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use http::HeaderMap;

use super::classify::Answer;
use url::Url;

use super::{tls, Reason};
use crate::config::CaBundle;

/// How long an idle connection is kept for the next probe to the same origin.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The most idle connections kept per origin.
const MAX_IDLE_PER_ORIGIN: usize = 256;

/// Name resolution, replaceable so that tests never ask a DNS server.
pub trait Resolve: Send + Sync {
    /// The addresses of `host`, with `port` filled in.
    fn resolve(&self, host: &str, port: u16) -> Resolving;
}

/// What [`Resolve::resolve`] returns.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// A resolver's failure, tagged so that the probe reports `dns_error` for it.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {source}")]
struct DnsFailure {
    host: String,
    source: io::Error,
}

/// Hands reqwest credwatch's resolver (or the system's), tagging its failures.
struct Resolver(Option<Arc<dyn Resolve>>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let custom = self.0.clone();
        Box::pin(async move {
            let found = match custom {
                Some(resolver) => resolver.resolve(&host, 0).await,
                // getaddrinfo, on tokio's blocking pool; hyper fills in the port.
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map(Iterator::collect),
            };
            match found {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs),
                Err(source) => Err(Box::new(DnsFailure { host, source }) as Box<_>),
            }
        })
    }
}

/// A request that got no HTTP answer: the reason to report and a secret-free detail.
#[derive(Debug)]
pub(crate) struct Failure {
    /// `dns_error`, `tls_error`, `connect_error` or `unexpected_response`.
    pub reason: Reason,
    /// What went wrong, the library's own words, without a credential.
    pub detail: String,
}

/// The clients, one per trust set.
pub(crate) struct Clients {
    resolver: Arc<Resolver>,
    proxies: bool,
    /// The client of the connections without `ca_file`: no lock on their way.
    default: OnceLock<reqwest::Client>,
    /// The clients of the connections with one, by the digest of its certificates.
    with_ca: Mutex<HashMap<u64, reqwest::Client>>,
    user_agent: &'static str,
}

impl Clients {
    /// Clients that resolve with `resolver` (the system's without one) and use the proxies
    /// of the environment when `proxies` is set. Builds the default client at once, so that
    /// a TLS stack that cannot be set up is an error at start.
    pub(crate) fn new(
        resolver: Option<Arc<dyn Resolve>>,
        proxies: bool,
        user_agent: &'static str,
    ) -> Result<Clients, rustls::Error> {
        let clients = Clients {
            resolver: Arc::new(Resolver(resolver)),
            proxies,
            default: OnceLock::new(),
            with_ca: Mutex::new(HashMap::new()),
            user_agent,
        };
        let default = clients.build(None)?;
        let _ = clients.default.set(default);
        Ok(clients)
    }

    fn build(&self, ca: Option<&CaBundle>) -> Result<reqwest::Client, rustls::Error> {
        let tls = tls::client_config(ca.map(|ca| ca.certs.as_slice()))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(self.user_agent)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            // No retries, and so no copy of every request kept in case of one (the retry
            // layer clones each request while retries are allowed).
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_ORIGIN)
            .tcp_nodelay(true)
            .dns_resolver(self.resolver.clone());
        if !self.proxies {
            builder = builder.no_proxy();
        }
        // Only a TLS configuration reqwest cannot take fails here, and that one is ours.
        builder
            .build()
            .map_err(|e| rustls::Error::General(format!("cannot build the HTTP client: {e}")))
    }

    /// The client for connections that trust `ca` besides the system's roots.
    pub(crate) fn get(&self, ca: Option<&CaBundle>) -> Result<reqwest::Client, Failure> {
        let Some(ca) = ca else {
            if let Some(client) = self.default.get() {
                return Ok(client.clone());
            }
            return self.build(None).map_err(tls_setup);
        };
        let mut clients = self
            .with_ca
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&ca.digest) {
            return Ok(client.clone());
        }
        let client = self.build(Some(ca)).map_err(tls_setup)?;
        clients.insert(ca.digest, client.clone());
        Ok(client)
    }
}

fn tls_setup(error: rustls::Error) -> Failure {
    Failure {
        reason: Reason::TlsError,
        detail: format!("cannot set up TLS: {error}"),
    }
}

/// One GET of `url` with `authorization` (none: an anonymous request, such as the site's
/// `tenant_info`), the body read up to `body_cap`.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &Url,
    authorization: Option<&HeaderValue>,
    body_cap: usize,
) -> Result<Answer, Failure> {
    let mut request = client.get(url.clone());
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization.clone());
    }
    read(request, url, body_cap).await
}

/// One POST of `form` (`application/x-www-form-urlencoded`, encoded by the url crate) to `url`:
/// an OAuth token request. Its fields may hold a secret: the body is marked nowhere but here,
/// and never logged.
pub(crate) async fn post_form(
    client: &reqwest::Client,
    url: &Url,
    form: &[(&str, &str)],
    body_cap: usize,
) -> Result<Answer, Failure> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let request = client
        .post(url.clone())
        .header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )
        .body(body);
    read(request, url, body_cap).await
}

async fn read(
    request: reqwest::RequestBuilder,
    url: &Url,
    body_cap: usize,
) -> Result<Answer, Failure> {
    let mut response = request
        .send()
        .await
        .map_err(|error| classify_error(&error))?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let expected = response
        .content_length()
        .map_or(4096, |length| usize::try_from(length).unwrap_or(body_cap));
    let mut body = Vec::with_capacity(expected.min(body_cap));
    let mut truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = body_cap - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(%url, error = %chain(&error), "the body broke off");
                truncated = true;
                break;
            }
        }
    }
    // A body left unread (past the cap) takes its connection with it: hyper does not put a
    // connection back in the pool while its answer is unfinished.
    drop(response);
    Ok(Answer {
        status,
        headers,
        body,
        truncated,
    })
}

/// The error and its causes, as one line, each message once.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}

/// Tells the failure kinds apart from reqwest's error chain.
fn classify_error(error: &reqwest::Error) -> Failure {
    let detail = chain(error);
    // Refused, reset, closed before the answer's head, a proxy that refused: no answer.
    let mut reason = Reason::ConnectError;
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(cause) = next {
        if cause.downcast_ref::<DnsFailure>().is_some() {
            reason = Reason::DnsError;
            break;
        }
        if holds_rustls_error(cause) {
            reason = Reason::TlsError;
            break;
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_parse() || hyper.is_parse_status() {
                return Failure {
                    reason: Reason::UnexpectedResponse,
                    detail: format!("invalid HTTP response: {detail}"),
                };
            }
        }
        next = cause.source();
    }
    Failure { reason, detail }
}

/// Whether `error` is a rustls error, or an I/O error that carries one (hyper-rustls wraps
/// tokio-rustls's I/O error in another, so the rustls error may lie two I/O errors deep).
fn holds_rustls_error(error: &(dyn StdError + 'static)) -> bool {
    if error.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    match error
        .downcast_ref::<io::Error>()
        .and_then(io::Error::get_ref)
    {
        Some(inner) => holds_rustls_error(inner),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_that_trust_the_same_certificates_share_one_client() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let clients = Clients::new(None, false, "credwatch/test").expect("clients");
        let bundle = |path: &str| {
            let text = format!(
                "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\nca_file = \"{path}\"\n"
            );
            crate::config::Config::from_sources(&[("t.toml".into(), text)])
                .expect("loads")
                .connections
                .remove(0)
                .ca
                .expect("ca_file")
        };
        let root = env!("CARGO_MANIFEST_DIR");
        let ca = bundle(&format!("{root}/tests/fixtures/test-ca.pem"));
        // The same certificates under another name (a copy).
        let dir = tempfile::tempdir().expect("tempdir");
        let copy = dir.path().join("copy.pem");
        std::fs::copy(&ca.path, &copy).expect("copy");
        let same = bundle(copy.to_str().expect("path"));
        let other = bundle(&format!("{root}/tests/fixtures/localhost.pem"));
        for bundle in [&ca, &same, &ca, &other, &other] {
            clients
                .get(Some(bundle))
                .map_err(|f| f.detail)
                .expect("client");
        }
        clients.get(None).map_err(|f| f.detail).expect("client");
        let built = clients.with_ca.lock().expect("lock").len();
        assert_eq!(built, 2, "one client per distinct set of certificates");
    }

    #[test]
    fn the_error_chain_is_one_line_with_each_message_once() {
        let inner = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let outer = DnsFailure {
            host: "jira.example.com".to_owned(),
            source: inner,
        };
        // The cause's message is already part of the error's: it is not repeated.
        assert_eq!(chain(&outer), "cannot resolve jira.example.com: refused");
    }
}
