//! A Bitbucket personal HTTP access token's expiry: its owner's token list,
//! `GET rest/access-tokens/1.0/users/{slug}` (`docs/jira-answers.md` §15), read page by page
//! after a valid probe, as [`super::TokenListOutcome`] like Jira's PAT list.
//!
//! The owner is the user the probe's `X-AUSERNAME` named; the list is addressed by the user's
//! slug, which is not always the username: `token_owner_slug` when configured, else the
//! username with the characters a path reserves replaced, confirmed (and corrected) through
//! `GET rest/api/1.0/users/{slug}`. A user Bitbucket does not know is a project or repository
//! token's system-generated one; a list the token may not read is unavailable: both leave the
//! expiry unknown, with a note that says so.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use url::Url;

use super::identity::Identity;
use super::{Outcome, PatEntry, Prober, Reason, State, TokenListOutcome, Verdict};
use crate::config::Connection;

/// The most pages read: 20 of 100 tokens.
const MAX_PAGES: usize = 20;

/// Tokens asked for per page.
const PAGE: usize = 100;

/// The characters Bitbucket replaces in a username to make its slug.
const RESERVED: &str = ":/?#@!$&'()*+,;=%\\[]";

/// The slug Bitbucket would give `username` (before the users API confirms it).
pub(crate) fn slug_guess(username: &str) -> String {
    username
        .chars()
        .map(|c| if RESERVED.contains(c) { '_' } else { c })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    values: Vec<Token>,
    #[serde(default)]
    is_last_page: bool,
    next_page_start: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Token {
    id: serde_json::Value,
    name: String,
    created_date: Option<i64>,
    expiry_days: Option<i64>,
    expiry_date: Option<i64>,
    last_authenticated: Option<i64>,
}

#[derive(Deserialize)]
struct User {
    slug: String,
}

fn millis(ms: Option<i64>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms?)
}

impl Token {
    fn entry(self) -> PatEntry {
        let created_at = millis(self.created_date);
        let expiring_at = millis(self.expiry_date).or_else(|| {
            let days = self.expiry_days.filter(|d| *d > 0)?;
            Some(created_at? + Duration::days(days))
        });
        // Ids are 12-digit strings ("075905477751"); a number is taken as it comes.
        let id = match &self.id {
            serde_json::Value::String(text) => text.parse().unwrap_or_default(),
            other => other.as_u64().unwrap_or_default(),
        };
        PatEntry {
            id,
            name: self.name,
            created_at,
            last_accessed_at: millis(self.last_authenticated),
            expiring_at,
        }
    }
}

/// What one GET of the list (or of the user) gave.
enum Got<T> {
    Read(T),
    Unavailable(u16),
    Failed(Box<Outcome>),
}

impl Prober {
    /// The owner's personal tokens, when the probe named an owner.
    pub(super) async fn list_bitbucket_tokens(
        &self,
        connection: &Connection,
        owner: Option<&Identity>,
    ) -> TokenListOutcome {
        let started = Instant::now();
        let base = connection.url.as_str().trim_end_matches('/');
        let slug = match &connection.settings.token_owner_slug {
            Some(slug) => slug.clone(),
            None => {
                let Some(username) = owner.and_then(|o| o.name.as_deref()) else {
                    return TokenListOutcome::Unavailable(404);
                };
                let url = format!(
                    "{base}/rest/api/1.0/users/{}",
                    segment(&slug_guess(username))
                );
                match self.read::<User>(connection, &url, started).await {
                    Got::Read(user) => user.slug,
                    Got::Unavailable(code) => return TokenListOutcome::Unavailable(code),
                    Got::Failed(outcome) => return TokenListOutcome::Failed(outcome),
                }
            }
        };
        let mut entries = Vec::new();
        let mut start = 0;
        for _ in 0..MAX_PAGES {
            let url = format!(
                "{base}/rest/access-tokens/1.0/users/{}?start={start}&limit={PAGE}",
                segment(&slug)
            );
            let page = match self.read::<Page>(connection, &url, started).await {
                Got::Read(page) => page,
                Got::Unavailable(code) => return TokenListOutcome::Unavailable(code),
                Got::Failed(outcome) => return TokenListOutcome::Failed(outcome),
            };
            entries.extend(page.values.into_iter().map(Token::entry));
            match page.next_page_start {
                Some(next) if !page.is_last_page && next > start => start = next,
                _ => break,
            }
        }
        TokenListOutcome::Listed(entries)
    }

    /// One GET of a JSON object: read, unavailable to this credential (401, 403, 404 with
    /// Bitbucket's `errors` body), or failed as a probe fails.
    async fn read<T: for<'de> Deserialize<'de>>(
        &self,
        connection: &Connection,
        url: &str,
        started: Instant,
    ) -> Got<T> {
        let url = match Url::parse(url) {
            Ok(url) => url,
            Err(e) => {
                return Got::Failed(Box::new(super::unsendable(
                    connection,
                    e.to_string(),
                    started,
                )))
            }
        };
        let answer = match self
            .exchange(connection, &connection.authorization(), &url, started)
            .await
        {
            Ok(answer) => answer,
            Err(outcome) => return Got::Failed(Box::new(outcome)),
        };
        let now = Utc::now();
        let code = answer.status.as_u16();
        if code == 200 {
            if let Ok(read) = serde_json::from_slice(&answer.body) {
                return Got::Read(read);
            }
            let verdict = Verdict::new(
                State::Unknown,
                Reason::UnexpectedResponse,
                "Bitbucket's token list is not its paged JSON",
            );
            return Got::Failed(Box::new(Outcome::of_answer(
                &answer,
                connection.settings.credential_type(),
                verdict,
                started,
                now,
            )));
        }
        let verdict = super::bitbucket::classify(&answer, &super::any_answer(connection, now));
        match (code, verdict.reason) {
            // Not permitted, or no such user: the list is not this credential's to read.
            (404, _) | (401 | 403, Reason::Forbidden) => Got::Unavailable(code),
            _ => Got::Failed(Box::new(Outcome::of_answer(
                &answer,
                connection.settings.credential_type(),
                verdict,
                started,
                now,
            ))),
        }
    }
}

/// What a path segment escapes: everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_reads_ids_as_strings_and_expiry_as_created_plus_days() {
        let body = br#"{"size":2,"limit":100,"isLastPage":true,"start":0,"values":[
            {"id":"075905477751","createdDate":1610525968583,"name":"ci","permissions":["REPO_READ"],"expiryDays":90,"lastAuthenticated":1610612368583},
            {"id":"075905477752","createdDate":1610525968583,"name":"forever","permissions":["REPO_READ"]}
        ]}"#;
        let page: Page = serde_json::from_slice(body).expect("a page");
        let entries: Vec<PatEntry> = page.values.into_iter().map(Token::entry).collect();
        assert_eq!(entries[0].id, 75_905_477_751);
        let created = DateTime::from_timestamp_millis(1_610_525_968_583).expect("time");
        assert_eq!(entries[0].expiring_at, Some(created + Duration::days(90)));
        assert_eq!(
            entries[0].last_accessed_at,
            DateTime::from_timestamp_millis(1_610_612_368_583)
        );
        assert_eq!(entries[1].expiring_at, None, "no expiryDays: never expires");
    }

    #[test]
    fn slugs_replace_what_a_path_reserves() {
        assert_eq!(slug_guess("jdoe"), "jdoe");
        assert_eq!(slug_guess("john.doe@example.com"), "john.doe_example.com");
        assert_eq!(slug_guess("a[b]c"), "a_b_c");
    }
}
