//! The daemon's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, `/api/v1/connections` and
//! each connection's `/history`, `/api/v1/orgs`, and `POST /-/reload` and
//! `POST /api/v1/connections/{name}/resume` when the lifecycle API is enabled.
//!
//! [`app`] builds the router from a cloneable [`AppState`], so tests can drive it without a
//! socket; the daemon serves it with a graceful shutdown.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::LoadError;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::scheduler::{ResumeError, Summary};
use crate::state::Board;
use crate::webconfig::WebConfigError;

/// Why a reload was not applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    /// The configuration as it now stands does not load: the running one stays.
    #[error(transparent)]
    Config(#[from] LoadError),
    /// The web configuration file as it now stands does not load: the running one stays, and
    /// so does the configuration.
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    /// The daemon is stopping and takes no more requests.
    #[error("credwatch is shutting down")]
    ShuttingDown,
}

/// A request to the daemon's main loop.
#[derive(Debug)]
pub(crate) enum Control {
    /// Reload the configuration; answered with what changed or the errors.
    Reload {
        /// Where the result goes.
        respond: oneshot::Sender<Result<Summary, ReloadError>>,
    },
    /// Lift a connection's pause.
    Resume {
        /// The connection.
        name: String,
        /// Where the result goes.
        respond: oneshot::Sender<Result<Vec<String>, ResumeError>>,
    },
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The shared status.
    pub status: Board,
    /// The metrics renderer.
    pub metrics: Arc<Metrics>,
    /// Where reload and resume requests go; `None` when the lifecycle API is disabled.
    pub reload: Option<mpsc::Sender<Control>>,
}

/// The router. Without `ui` (`--web.disable-ui`), only `/metrics`, `/healthz`, `/readyz` and
/// the lifecycle endpoints are served: the page and the API answer 404. Every answer is
/// gzipped when the client accepts it.
pub(crate) fn app(state: AppState, ui: bool) -> Router {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/connections/{name}/resume", post(resume))
        .route("/-/reload", post(reload));
    let router = if ui {
        router
            .route("/", get(index))
            .route("/api/v1/connections", get(connections))
            .route("/api/v1/connections/{name}", get(connection))
            .route("/api/v1/connections/{name}/history", get(history))
            .route("/api/v1/orgs", get(orgs))
    } else {
        router
    };
    // gzip for whoever asks (Prometheus does on every scrape): the layer compresses the
    // body as it streams, so the exposition is still rendered a chunk at a time.
    router
        .with_state(state)
        .layer(tower_http::compression::CompressionLayer::new())
}

async fn index(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    match crate::page::render(&state.status, Utc::now(), uri.query().unwrap_or_default()) {
        Ok(page) => Html(page).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let body = axum::body::Body::new(state.metrics.exposition(&state.status));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    pending: Vec<String>,
}

async fn readyz(State(state): State<AppState>) -> Response {
    let pending = state.status.pending(Utc::now());
    let code = if pending.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let ready = pending.is_empty();
    (code, Json(Readiness { ready, pending })).into_response()
}

async fn connections(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    crate::api::connections(&state.status, uri.query().unwrap_or_default(), Utc::now())
}

async fn connection(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    crate::api::connection(&state.status, &name, Utc::now())
}

async fn orgs(State(state): State<AppState>) -> Response {
    let now = Utc::now();
    let orgs = state.status.orgs();
    let views: Vec<_> = orgs
        .iter()
        .filter(|org| org.exported)
        .map(|org| org.view(now))
        .collect();
    Json(views).into_response()
}

#[derive(Serialize)]
struct History<'a> {
    connection: &'a str,
    transitions: Vec<crate::state::Transition>,
}

async fn history(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match state.status.history(&name) {
        Some(transitions) => Json(History {
            connection: &name,
            transitions,
        })
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no connection named {name:?}\n"),
        )
            .into_response(),
    }
}

const LIFECYCLE_DISABLED: &str =
    "the lifecycle API is not enabled: start credwatch with --enable-lifecycle\n";

async fn resume(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let Some(sender) = state.reload else {
        return (StatusCode::FORBIDDEN, LIFECYCLE_DISABLED).into_response();
    };
    // Another replica sends this account's logins: only it can lift its pause.
    let owner = state
        .status
        .read(|inner| inner.group.owner_elsewhere(&name));
    if let Some(owner) = owner {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            Json(serde_json::json!({ "owned_by_replica": owner })),
        )
            .into_response();
    }
    let (respond, answer) = oneshot::channel();
    let request = Control::Resume {
        name: name.clone(),
        respond,
    };
    if sender.send(request).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "credwatch is shutting down\n",
        )
            .into_response();
    }
    match answer.await {
        Ok(Ok(resumed)) => (StatusCode::OK, resumed_message(&name, &resumed)).into_response(),
        Ok(Err(error @ ResumeError::Unknown(_))) => {
            (StatusCode::NOT_FOUND, format!("{error}\n")).into_response()
        }
        Ok(Err(error @ ResumeError::NotPaused(_))) => {
            (StatusCode::CONFLICT, format!("{error}\n")).into_response()
        }
        Ok(Err(error @ ResumeError::ShuttingDown)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response()
        }
        Ok(Err(error)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "credwatch is shutting down\n",
        )
            .into_response(),
    }
}

/// What a resume says: which connections it resumed (every connection of the login account).
fn resumed_message(name: &str, resumed: &[String]) -> String {
    let others: Vec<&str> = resumed
        .iter()
        .map(String::as_str)
        .filter(|n| *n != name)
        .collect();
    if others.is_empty() {
        format!("resumed {name}: its login budget starts afresh and it is probed now\n")
    } else {
        format!(
            "resumed {name} and the connections that share its login account ({}): the account's login budget starts afresh and they are probed now\n",
            others.join(", ")
        )
    }
}

async fn reload(State(state): State<AppState>) -> Response {
    let Some(sender) = state.reload else {
        return (StatusCode::FORBIDDEN, LIFECYCLE_DISABLED).into_response();
    };
    let (respond, answer) = oneshot::channel();
    if sender.send(Control::Reload { respond }).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "credwatch is shutting down\n",
        )
            .into_response();
    }
    match answer.await {
        Ok(Ok(summary)) => (
            StatusCode::OK,
            format!(
                "reloaded: {} added, {} changed, {} removed, {} unchanged\n",
                summary.added.len(),
                summary.changed.len(),
                summary.removed.len(),
                summary.unchanged
            ),
        )
            .into_response(),
        Ok(Err(ReloadError::ShuttingDown)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "credwatch is shutting down\n",
        )
            .into_response(),
        Ok(Err(errors)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed; the running configuration stays:\n{errors}\n"),
        )
            .into_response(),
    }
}
