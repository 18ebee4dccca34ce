//! Reading an organization's whole token list from the organization admin API
//! (`docs/jira-answers.md` §8): `GET {api_url}/admin/api-access/v1/orgs/{org_id}/api-tokens`
//! with the admin key as `Bearer`, one page at a time, following `links.next` whether it holds
//! a cursor (sent back as `cursor=`) or a URL (followed only on the API's own origin: the admin
//! key goes nowhere else).
//!
//! A 429 waits for `Retry-After` (at most [`MAX_RETRY_AFTER`]) and asks for the same page
//! again; a 5xx, a timeout or a broken connection backs off (`backon`, from 1 s, doubling) and
//! asks again, [`TRIES`] times in all. A list is used only when every page was read.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use http::HeaderValue;
use serde::Deserialize;
use url::Url;

use super::{OrgToken, TokenStatus};
use crate::config::Org;
use crate::probe::{Prober, RetryAfter, State};

/// The most one page of the list may weigh.
const PAGE_CAP: usize = 8 * 1024 * 1024;

/// The deadline of one page.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often one page is asked for before the read gives up (rate limits and failures alike).
pub(crate) const TRIES: usize = 4;

/// The longest `Retry-After` waited for; a longer one ends the read (the last list stands).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// A list holds at most this many pages (a guard against a `next` that never ends).
const MAX_PAGES: usize = 10_000;

/// Why a read did not give a whole list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// 401: the admin key is wrong, revoked or expired.
    #[error("the organization admin API rejected the API key (401): check api_key, and whether it expired or was revoked at admin.atlassian.com > Settings > API keys")]
    Rejected,
    /// 403: the key lacks the scope.
    #[error("the organization admin API refused the API key (403): it needs the scope read:tokens:admin")]
    Forbidden,
    /// Still rate limited after every try, or asked to wait too long.
    #[error("rate limited by the organization admin API on page {page}: {detail}")]
    RateLimited {
        /// The page, from 1.
        page: usize,
        /// What the API said.
        detail: String,
        /// How long the API asked to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Another status, or no answer, after every try.
    #[error("the organization admin API failed on page {page}: {detail}")]
    Failed {
        /// The page, from 1.
        page: usize,
        /// What was seen.
        detail: String,
    },
    /// A page that is not the list.
    #[error("page {page} of the organization admin API is not the token list: {detail}")]
    Malformed {
        /// The page, from 1.
        page: usize,
        /// What is wrong with it.
        detail: String,
    },
    /// `links.next` names another origin, or the list does not end.
    #[error("the token list's next page was not followed: {0}")]
    Next(String),
}

impl ReadError {
    /// The admin key's state this error says, classified like a probe's 401 and 403 (a 401
    /// after the key's declared expiry is `expired`); `None` when it says nothing of the key.
    pub fn key_state(
        &self,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<State> {
        match self {
            ReadError::Rejected if expires_at.is_some_and(|at| at <= now) => Some(State::Expired),
            ReadError::Rejected => Some(State::Invalid),
            ReadError::Forbidden => Some(State::Forbidden),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Page {
    data: Vec<RawToken>,
    #[serde(default)]
    links: Links,
}

#[derive(Deserialize, Default)]
struct Links {
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawToken {
    id: String,
    #[serde(default)]
    label: String,
    status: String,
    created_at: Option<String>,
    expires_at: Option<String>,
    last_active_at: Option<String>,
    #[serde(default)]
    user: RawUser,
}

#[derive(Deserialize, Default)]
struct RawUser {
    #[serde(default)]
    email: String,
}

/// Parses one page: its tokens and the `next` link, if any.
pub(crate) fn parse_page(body: &[u8]) -> Result<(Vec<OrgToken>, Option<String>), String> {
    let page: Page = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let time =
        |text: Option<String>| text.and_then(|t| crate::config::parse_date_or_time(t.trim()));
    let mut tokens = Vec::with_capacity(page.data.len());
    for raw in page.data {
        let status = match raw.status.to_ascii_uppercase().as_str() {
            "ALLOWED" => TokenStatus::Allowed,
            "BLOCKED" => TokenStatus::Blocked,
            other => {
                // A status Atlassian added since: that token is not counted, the rest are.
                tracing::warn!(status = other, token = %raw.id, "an API token of an unknown status is left out of the organization's list");
                continue;
            }
        };
        tokens.push(OrgToken {
            id: raw.id,
            label: raw.label,
            status,
            email: raw.user.email,
            created_at: time(raw.created_at),
            expires_at: time(raw.expires_at),
            last_active_at: time(raw.last_active_at),
        });
    }
    let next = page.links.next.filter(|next| !next.trim().is_empty());
    Ok((tokens, next))
}

/// The URL of the first page.
pub(crate) fn first_page(org: &Org) -> Result<Url, String> {
    let mut url = org.api_url.clone();
    url.path_segments_mut()
        .map_err(|()| "api_url cannot be a base URL".to_owned())?
        .pop_if_empty()
        .extend([
            "admin",
            "api-access",
            "v1",
            "orgs",
            &org.org_id,
            "api-tokens",
        ]);
    Ok(url)
}

/// The page after `current`, as `next` names it.
fn next_page(first: &Url, next: &str) -> Result<Url, ReadError> {
    if next.starts_with("http://") || next.starts_with("https://") || next.starts_with('/') {
        let url = first
            .join(next)
            .map_err(|e| ReadError::Next(format!("{e}")))?;
        if url.origin() != first.origin() {
            return Err(ReadError::Next(format!(
                "it points to {}, another origin than the API's",
                url.origin().ascii_serialization()
            )));
        }
        return Ok(url);
    }
    let mut url = first.clone();
    url.query_pairs_mut().clear().append_pair("cursor", next);
    Ok(url)
}

/// Reads the whole list of `org`'s tokens.
pub(crate) async fn read(prober: &Prober, org: &Org) -> Result<Vec<OrgToken>, ReadError> {
    let first = first_page(org).map_err(|detail| ReadError::Failed { page: 1, detail })?;
    let mut authorization = HeaderValue::from_str(&format!("Bearer {}", org.api_key.expose()))
        .map_err(|_| ReadError::Failed {
            page: 1,
            detail: "the API key holds characters that cannot be sent in an HTTP header".to_owned(),
        })?;
    authorization.set_sensitive(true);
    let mut tokens = Vec::new();
    let mut url = first.clone();
    for page in 1..=MAX_PAGES {
        let body = read_page(prober, &url, &authorization, page).await?;
        let (mut found, next) =
            parse_page(&body).map_err(|detail| ReadError::Malformed { page, detail })?;
        tokens.append(&mut found);
        match next {
            Some(next) => url = next_page(&first, &next)?,
            None => return Ok(tokens),
        }
    }
    Err(ReadError::Next(format!(
        "the list goes on past {MAX_PAGES} pages"
    )))
}

/// One page, asked for again after a rate limit or a failure.
async fn read_page(
    prober: &Prober,
    url: &Url,
    authorization: &HeaderValue,
    page: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(30))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    let mut last = ReadError::Failed {
        page,
        detail: "not asked".to_owned(),
    };
    for attempt in 1..=TRIES {
        let wait = match prober.get(url, authorization, PAGE_TIMEOUT, PAGE_CAP).await {
            Ok(answer) => match answer.status.as_u16() {
                200 if answer.truncated => {
                    last = ReadError::Malformed {
                        page,
                        detail: "the page was cut short".to_owned(),
                    };
                    backoff.next()
                }
                200 => return Ok(answer.body),
                401 => return Err(ReadError::Rejected),
                403 => return Err(ReadError::Forbidden),
                429 => {
                    let retry_after = answer
                        .headers
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(RetryAfter::parse);
                    let wait = retry_after
                        .map(|r| r.delay_from(Utc::now()))
                        .or_else(|| backoff.next());
                    last = ReadError::RateLimited {
                        page,
                        detail: retry_after.map_or("429 without Retry-After".to_owned(), |r| {
                            format!("429 with Retry-After: {r}")
                        }),
                        retry_after: retry_after.map(|r| r.delay_from(Utc::now())),
                    };
                    if wait.is_some_and(|w| w > MAX_RETRY_AFTER) {
                        return Err(last);
                    }
                    wait
                }
                status @ (300..=399) => {
                    // Redirects are never followed: the admin key goes nowhere else.
                    return Err(ReadError::Failed {
                        page,
                        detail: format!("HTTP {status} (a redirect, not followed): check api_url"),
                    });
                }
                status @ (400..=499) if status != 408 => {
                    // Asking again would get the same answer.
                    return Err(ReadError::Failed {
                        page,
                        detail: format!("HTTP {status}: check api_url and org_id"),
                    });
                }
                status => {
                    last = ReadError::Failed {
                        page,
                        detail: format!("HTTP {status}"),
                    };
                    backoff.next()
                }
            },
            Err((reason, detail)) => {
                last = ReadError::Failed {
                    page,
                    detail: format!("{reason}: {detail}"),
                };
                backoff.next()
            }
        };
        if attempt < TRIES {
            tokio::time::sleep(wait.unwrap_or(Duration::from_secs(30))).await;
        }
    }
    Err(last)
}
