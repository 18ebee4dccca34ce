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
//! credwatch configuration for them), [`fault`] (a TCP server that misbehaves below HTTP) and
//! [`tls`] (a site over HTTPS with a test CA).

pub mod admin;
pub mod answer;
pub mod fault;
pub mod fleet;
pub mod gateway;
pub mod model;
pub mod oauth;
mod scale;
pub mod tls;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use model::{ApiToken, Bucket, Front, Pat, Rejection, Site, User};

/// Which Jira product a site is.
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
        decide(&mut world, &request, &body)
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

fn decide(world: &mut World, request: &axum::http::request::Parts, body: &[u8]) -> Action {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = request.uri.path().to_owned();
    if path == "/_sim/stats" {
        // Counters for benchmarks, which must not parse a huge /metrics to count probes.
        let body = serde_json::json!({
            "myself": world.myself_total,
            "tokens": world.tokens_total,
        });
        return Action::Respond(answer::reply(
            200,
            "application/json",
            &[],
            body.to_string(),
        ));
    }
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let site_name = segments.next().unwrap_or_default().to_owned();
    let rest = segments.next().unwrap_or_default().to_owned();
    let now = Utc::now();
    let known = world.sites.contains_key(&site_name)
        || world.org_apis.contains_key(&site_name)
        || site_name == gateway::GATEWAY
        || site_name == gateway::AUTH;
    world.requests.push_back(RecordedRequest {
        site: known.then(|| site_name.clone()),
        method: request.method.to_string(),
        path: path.clone(),
        query: request.uri.query().map(str::to_owned),
        authorization: header("authorization"),
        accept: header("accept"),
        user_agent: header("user-agent"),
        at: now,
        instant: tokio::time::Instant::now(),
    });
    if world.requests.len() > RECORD_LIMIT {
        world.requests.pop_front();
    }
    *world.counts.entry(site_name.clone()).or_default() += 1;

    let host = header("host").unwrap_or_default();
    let authorization = header("authorization");
    let method = request.method.as_str();
    if site_name == gateway::GATEWAY {
        let base = format!("{}://{host}/{site_name}", world.scheme);
        return gateway::gateway(world, &rest, authorization.as_deref(), &base, now);
    }
    if site_name == gateway::AUTH {
        return match (method, rest.as_str()) {
            ("POST", "oauth/token") => gateway::cloud_token(world, body, now),
            _ => Action::Respond(answer::not_found()),
        };
    }
    if let Some(api) = world.org_apis.get_mut(&site_name) {
        let base = format!("{}://{host}/{site_name}", world.scheme);
        let authorization = header("authorization");
        return Action::Respond(admin::answer(
            api,
            &rest,
            request.uri.query(),
            authorization.as_deref(),
            &base,
        ));
    }
    let Some(site) = world.sites.get_mut(&site_name) else {
        return Action::Respond(answer::not_found());
    };
    let site_url = format!("{}://{host}/{site_name}", world.scheme);
    if let Some(action) = front(site, now) {
        return action;
    }
    let delay = match site.front {
        Front::Slow(delay) => Some(delay),
        _ => None,
    };
    let kind = site.kind;
    match (method, rest.as_str(), kind) {
        ("GET", "_edge/tenant_info", Kind::Cloud) => {
            return Action::Respond(gateway::tenant_info(&site.cloud_id));
        }
        ("POST", "rest/oauth2/latest/token", Kind::Server) => {
            let response = gateway::server_token(world, &site_name, body, now);
            // A slow site is slow at its token endpoint too.
            return match delay {
                Some(delay) => Action::Later(delay, response),
                None => Action::Respond(response),
            };
        }
        _ => {}
    }
    // A Data Center service account's access token.
    let access = match oauth::bearer(&world.issued, authorization.as_deref(), now) {
        Some(token) if token.site == site_name => Some(token.account.clone()),
        _ => None,
    };
    if rest.ends_with("/myself") {
        world.myself_total += 1;
    } else if rest.ends_with("/tokens") {
        world.tokens_total += 1;
    }
    let close = world.close_connections;
    let Some(site) = world.sites.get_mut(&site_name) else {
        return Action::Respond(answer::not_found());
    };
    let mut response = match (request.method.as_str(), rest.as_str()) {
        ("GET", "rest/api/2/myself") if access.is_some() => {
            let account = access.unwrap_or_default();
            match site
                .users
                .iter()
                .find(|u| u.username.eq_ignore_ascii_case(&account))
            {
                Some(user) => answer::myself(site, &site_url, &user.clone(), Vec::new()),
                None => answer::rejection(site, &site_url, Rejection::BadPat),
            }
        }
        ("GET", "status") => answer::node_status(site.node_state),
        ("GET", "rest/api/2/serverInfo") | ("GET", "rest/api/3/serverInfo") => {
            answer::server_info(site, &site_url)
        }
        ("GET", "rest/api/2/myself") => myself(site, &site_url, authorization.as_deref(), now),
        ("GET", "rest/api/3/myself") if site.kind == Kind::Cloud => {
            myself(site, &site_url, authorization.as_deref(), now)
        }
        ("GET", "rest/pat/latest/tokens") if site.pat_api && site.kind == Kind::Server => {
            pat_list(site, &site_url, authorization.as_deref(), now)
        }
        _ => answer::not_found(),
    };
    if close {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    match delay {
        Some(delay) => Action::Later(delay, response),
        None => Action::Respond(response),
    }
}

/// What stands in front of Jira answers first, if it answers at all.
fn front(site: &mut Site, now: DateTime<Utc>) -> Option<Action> {
    let kind = site.kind;
    match &mut site.front {
        Front::Healthy | Front::Slow(_) => None,
        Front::Hang => Some(Action::Hang),
        Front::Status(code, body) => Some(Action::Respond(answer::reply(
            *code,
            "text/html;charset=UTF-8",
            &[],
            body.clone(),
        ))),
        Front::Redirect(location) => Some(Action::Respond(answer::reply(
            302,
            "text/html;charset=UTF-8",
            &[("Location", location.clone())],
            String::new(),
        ))),
        Front::LoginPage => Some(Action::Respond(answer::reply(
            200,
            "text/html;charset=UTF-8",
            &[],
            answer::login_page(),
        ))),
        Front::Throttle {
            remaining,
            status,
            retry_after,
        } => {
            if *remaining == 0 {
                site.front = Front::Healthy;
                return None;
            }
            *remaining -= 1;
            let response = answer::throttled(kind, *status, retry_after.as_deref(), now);
            if *remaining == 0 {
                site.front = Front::Healthy;
            }
            Some(Action::Respond(response))
        }
    }
}

/// The outcome of authentication plus the user's rate-limit bucket.
enum Admission {
    /// The user's index, and the rate-limit headers every authenticated answer carries.
    Admitted(usize, answer::Headers),
    /// The answer that refuses the request.
    Refused(Response),
}

fn admit(
    site: &mut Site,
    site_url: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Admission {
    let index = match model::authenticate(site, authorization, now) {
        Ok(index) => index,
        Err(rejection) => return Admission::Refused(answer::rejection(site, site_url, rejection)),
    };
    let Some(bucket) = site.bucket else {
        return Admission::Admitted(index, Vec::new());
    };
    match model::take_token(&mut site.users[index], bucket, Instant::now()) {
        Ok(remaining) => Admission::Admitted(index, answer::bucket_headers(bucket, remaining, 0)),
        Err(wait) => Admission::Refused(answer::bucket_empty(bucket, wait)),
    }
}

fn myself(
    site: &mut Site,
    site_url: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Response {
    match admit(site, site_url, authorization, now) {
        Admission::Refused(response) => response,
        Admission::Admitted(index, headers) if site.users[index].forbidden => {
            answer::forbidden(headers)
        }
        Admission::Admitted(index, headers) => {
            answer::myself(site, site_url, &site.users[index], headers)
        }
    }
}

fn pat_list(
    site: &mut Site,
    site_url: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Response {
    match admit(site, site_url, authorization, now) {
        Admission::Refused(response) => response,
        Admission::Admitted(index, headers) => answer::pat_list(&site.users[index], headers),
    }
}
