//! A Jira simulator: many sites on one loopback port, each under its own context path
//! (`http://127.0.0.1:PORT/<site>`), answering like real Jira (`docs/jira-answers.md`) with the
//! real status, headers and body, and recording every request it receives.
//!
//! A crate of its own in credwatch's workspace, linked into the `credwatch` binary for
//! `credwatch demo` and `credwatch simulate`, and used by the tests and the benchmarks. It
//! knows nothing of credwatch: it is Jira, as `docs/jira-answers.md` describes it.
//!
//! A site is a [`Site`] with [`User`]s and their credentials; what a request gets is decided by
//! the same rules a real site applies (Seraph's failed-login counter, PAT expiry, Cloud's
//! API-token rules), so tests set up a situation rather than a canned answer. The modules:
//! [`model`] (sites, users, tokens and the rules), [`answer`] (the exact status, headers and
//! bodies), [`fleet`] (the demo fleet and the scale fleets of the benchmarks, with the
//! credwatch configuration for them), [`fault`] (a TCP server that misbehaves below HTTP),
//! [`tls`] (a site over HTTPS with a test CA), [`gateway`] and [`oauth`] (Atlassian's API gateway
//! and token endpoints); `route` sends each request where Jira would answer it.

pub mod admin;
pub mod answer;
pub mod bitbucket;
mod confluence;
pub mod fault;
pub mod fleet;
pub mod gateway;
pub mod model;
pub mod oauth;
mod route;
mod scale;
pub mod tls;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use model::{ApiToken, Bucket, Front, Pat, Rejection, Site, User};

/// Which Atlassian product a site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Product {
    /// Jira: `myself`.
    #[default]
    Jira,
    /// Confluence: `rest/api/user/current` (under `/wiki` on Cloud).
    Confluence,
    /// Bitbucket Data Center: `rest/api/latest/profile/recent/repos` and `X-AUSERNAME`.
    Bitbucket,
}

/// Whether a site is Data Center or Cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Jira Server or Data Center: `/rest/api/2`, PATs, Seraph's headers.
    Server,
    /// Jira Cloud: `/rest/api/3`, API tokens, no PATs.
    Cloud,
}

/// The key under which [`Simulator::max_in_flight`] counts requests to every site together.
pub const ALL_SITES: &str = "*";

/// How many requests the simulator remembers (the oldest are dropped first).
pub const RECORD_LIMIT: usize = 10_000;

/// One request as the simulator received it, secrets included: tests check what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The site it addressed, if any.
    pub site: Option<String>,
    /// The method.
    pub method: String,
    /// The full path, context path included.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// When it arrived on tokio's clock, which a test may pause and advance: the gaps between
    /// requests in virtual time.
    pub instant: tokio::time::Instant,
}

impl RecordedRequest {
    /// The authorization scheme (`Bearer`, `Basic`), if any.
    pub fn scheme(&self) -> Option<&str> {
        self.authorization.as_deref()?.split(' ').next()
    }
}

#[derive(Default)]
struct World {
    /// "http" or "https", for the links Jira puts in its answers.
    scheme: &'static str,
    sites: HashMap<String, Site>,
    /// Organization admin APIs, by path prefix.
    org_apis: HashMap<String, admin::OrgApi>,
    requests: VecDeque<RecordedRequest>,
    counts: HashMap<String, u64>,
    /// Requests being answered now, and the most ever at once, by site.
    in_flight: HashMap<String, (u32, u32)>,
    /// Identity probes and token-list requests answered, over all sites.
    myself_total: u64,
    tokens_total: u64,
    /// Whether every answer closes its connection (no keep-alive: a TLS handshake per probe).
    close_connections: bool,
    /// The OAuth access tokens issued, by token.
    issued: HashMap<String, oauth::Issued>,
    /// What stands in front of the Cloud token endpoint.
    auth_front: AuthFront,
    /// Requests to a Bitbucket site outside `/rest` and `/scm`, which a token must never be
    /// sent to (docs/jira-answers.md §15): a simulator that holds one fails when dropped.
    outside_rest_or_scm: Vec<String>,
}

/// A throttle (or outage) in front of the Cloud token endpoint: the next `remaining` token
/// requests get `status` (429 with `Retry-After`, or a 5xx).
#[derive(Default)]
struct AuthFront {
    remaining: u32,
    status: u16,
    retry_after: Option<String>,
}

impl AuthFront {
    fn take_turn(&mut self, now: DateTime<Utc>) -> Option<Action> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(Action::Respond(answer::throttled(
            Kind::Cloud,
            self.status,
            self.retry_after.as_deref(),
            now,
        )))
    }
}

/// A running simulator. Dropping it stops it.
pub struct Simulator {
    world: Arc<Mutex<World>>,
    addr: SocketAddr,
    scheme: &'static str,
    task: JoinHandle<()>,
}

impl Simulator {
    /// Starts a simulator on 127.0.0.1 with a port the system picks.
    pub async fn start() -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Simulator::serve(listener)
    }

    /// Serves plain HTTP on an already-bound listener.
    pub fn serve(listener: TcpListener) -> std::io::Result<Simulator> {
        let addr = listener.local_addr()?;
        Ok(Self::serve_on(listener, addr, "http"))
    }

    /// Starts a simulator that speaks HTTPS on 127.0.0.1, with a port the system picks, using
    /// a PEM certificate chain and private key.
    pub async fn start_tls(cert_pem: &[u8], key_pem: &[u8]) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::serve_tls(listener, cert_pem, key_pem)
    }

    /// Serves HTTPS on an already-bound listener.
    pub fn serve_tls(
        listener: TcpListener,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> std::io::Result<Simulator> {
        let config = tls::server_config(cert_pem, key_pem)?;
        let listener = tls::TlsListener::new(listener, config)?;
        let addr = axum::serve::Listener::local_addr(&listener)?;
        Ok(Self::serve_on(listener, addr, "https"))
    }

    fn serve_on<L>(listener: L, addr: SocketAddr, scheme: &'static str) -> Simulator
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let world = Arc::new(Mutex::new(World {
            scheme,
            ..World::default()
        }));
        let app = Router::new().fallback(handle).with_state(world.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the Jira simulator stopped");
            }
        });
        Simulator {
            world,
            addr,
            scheme,
            task,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of a site (its context path included).
    pub fn url(&self, site: &str) -> String {
        format!("{}://{}/{site}", self.scheme, self.addr)
    }

    /// Serves an organization admin API under `/{prefix}` (its base URL is
    /// [`Simulator::url`] of the prefix: the `api_url` to configure).
    pub fn add_org_api(&self, prefix: &str, api: admin::OrgApi) {
        lock(&self.world).org_apis.insert(prefix.to_owned(), api);
    }

    /// Changes an organization admin API in place (a token blocked, a key revoked...).
    pub fn update_org_api<T>(
        &self,
        prefix: &str,
        change: impl FnOnce(&mut admin::OrgApi) -> T,
    ) -> Option<T> {
        lock(&self.world).org_apis.get_mut(prefix).map(change)
    }

    /// Makes the next `times` requests to the Cloud token endpoint answer `status` (429 with
    /// `retry_after` as its `Retry-After`, or a 5xx).
    pub fn throttle_token_endpoint(&self, times: u32, status: u16, retry_after: Option<&str>) {
        lock(&self.world).auth_front = AuthFront {
            remaining: times,
            status,
            retry_after: retry_after.map(str::to_owned),
        };
    }

    /// Revokes every OAuth access token issued so far (as a site restart or an admin would):
    /// a client with a kept token gets a 401 and must ask for a new one.
    pub fn revoke_access_tokens(&self) {
        for token in lock(&self.world).issued.values_mut() {
            token.expires_at = DateTime::<Utc>::MIN_UTC;
        }
    }

    /// The OAuth access tokens issued so far.
    pub fn issued_tokens(&self) -> usize {
        lock(&self.world).issued.len()
    }

    /// Adds or replaces a site.
    pub fn add_site(&self, name: &str, site: Site) {
        lock(&self.world).sites.insert(name.to_owned(), site);
    }

    /// Changes a site in place (for instance to lock an account or let an outage end).
    pub fn update_site<T>(&self, name: &str, change: impl FnOnce(&mut Site) -> T) -> Option<T> {
        lock(&self.world).sites.get_mut(name).map(change)
    }

    /// A copy of a site as it is now (failed-login counters, PAT use times...).
    pub fn site(&self, name: &str) -> Option<Site> {
        lock(&self.world).sites.get(name).cloned()
    }

    /// The requests received, oldest first (at most [`RECORD_LIMIT`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.world).requests.iter().cloned().collect()
    }

    /// The requests one site received.
    pub fn requests_for(&self, site: &str) -> Vec<RecordedRequest> {
        lock(&self.world)
            .requests
            .iter()
            .filter(|r| r.site.as_deref() == Some(site))
            .cloned()
            .collect()
    }

    /// Makes every answer close its connection (`Connection: close`), so that each probe pays
    /// for a new connection (and, over TLS, a new handshake).
    pub fn set_close_connections(&self, close: bool) {
        lock(&self.world).close_connections = close;
    }

    /// The requests to Bitbucket sites outside `/rest` and `/scm` so far (the simulator
    /// panics when dropped while it holds any).
    pub fn outside_rest_or_scm(&self) -> Vec<String> {
        lock(&self.world).outside_rest_or_scm.clone()
    }

    /// The most requests a site was ever answering at the same time.
    pub fn max_in_flight(&self, site: &str) -> u32 {
        lock(&self.world)
            .in_flight
            .get(site)
            .map_or(0, |(_, max)| *max)
    }

    /// How many requests a site has received in all (not bounded by [`RECORD_LIMIT`]).
    pub fn request_count(&self, site: &str) -> u64 {
        lock(&self.world).counts.get(site).copied().unwrap_or(0)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Aborting, not a graceful shutdown: a hanging site never finishes its answer.
        self.task.abort();
        let outside = std::mem::take(&mut lock(&self.world).outside_rest_or_scm);
        if !outside.is_empty() && !std::thread::panicking() {
            panic!(
                "a Bitbucket path outside /rest and /scm was requested (a token there is a failed login or a redirect): {outside:?}"
            );
        }
    }
}

/// The world lock is only held for bookkeeping, never across an await; a panic while it is
/// held leaves it usable.
fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What to do once the lock is released.
enum Action {
    Respond(Response),
    Later(Duration, Response),
    Hang,
}

/// Counts a request as in flight for its site until dropped (also when the client leaves
/// and the handler is cancelled).
struct InFlight {
    world: Arc<Mutex<World>>,
    site: String,
}

impl InFlight {
    fn enter(world: &Arc<Mutex<World>>, site: &str) -> InFlight {
        let mut guard = lock(world);
        for key in [site, ALL_SITES] {
            let (now, max) = guard.in_flight.entry(key.to_owned()).or_default();
            *now += 1;
            *max = (*max).max(*now);
        }
        InFlight {
            world: world.clone(),
            site: site.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut world = lock(&self.world);
        for key in [self.site.as_str(), ALL_SITES] {
            if let Some((now, _)) = world.in_flight.get_mut(key) {
                *now = now.saturating_sub(1);
            }
        }
    }
}

async fn handle(State(world): State<Arc<Mutex<World>>>, request: Request<Body>) -> Response {
    let (request, body) = request.into_parts();
    // Token requests are a few hundred bytes; nothing else has a body.
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let site = request
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let _in_flight = InFlight::enter(&world, &site);
    let action = {
        let mut world = lock(&world);
        route::decide(&mut world, &request, &body)
    };
    match action {
        Action::Respond(response) => response,
        Action::Later(delay, response) => {
            tokio::time::sleep(delay).await;
            response
        }
        Action::Hang => {
            // Longer than any probe's deadline; the task is dropped when the client leaves
            // or the simulator stops.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            answer::not_found()
        }
    }
}
