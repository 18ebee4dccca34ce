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
        // Ids are 12-digit strings ("075905477751"), read as the number they write (unique
        // all the same); any other id by a digest of its text, so that no two tokens share 0.
        let id = match &self.id {
            serde_json::Value::String(text) => text.parse().unwrap_or_else(|_| digest(text)),
            serde_json::Value::Number(n) => n.as_u64().unwrap_or_else(|| digest(&n.to_string())),
            other => digest(&other.to_string()),
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

/// FNV-1a of an id that is not a number: the same text, the same id.
fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A list that did not end within [`MAX_PAGES`], or whose page said no later start.
fn incomplete(connection: &Connection, started: Instant) -> Outcome {
    Outcome::without_answer(
        connection.settings.credential_type(),
        Reason::UnexpectedResponse,
        format!(
            "Bitbucket's token list did not end within {MAX_PAGES} pages of {PAGE}: the expiry is not read from a part of it"
        ),
        started,
    )
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
            None => match self.owner_slug(connection, owner, started).await {
                Got::Read(slug) => slug,
                Got::Unavailable(code) => return TokenListOutcome::Unavailable(code),
                Got::Failed(outcome) => return TokenListOutcome::Failed(outcome),
            },
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
            if page.is_last_page {
                return TokenListOutcome::Listed(entries);
            }
            match page.next_page_start {
                Some(next) if next > start => start = next,
                // A page that is not the last and says no later start: the list is not whole,
                // and a part of it could name the wrong token as the only one.
                _ => return TokenListOutcome::Failed(Box::new(incomplete(connection, started))),
            }
        }
        TokenListOutcome::Failed(Box::new(incomplete(connection, started)))
    }

    /// The slug of the user the probe named: guessed from the username and confirmed by the
    /// users API (as written, then in lower case), which answers with the slug it keeps.
    async fn owner_slug(
        &self,
        connection: &Connection,
        owner: Option<&Identity>,
        started: Instant,
    ) -> Got<String> {
        let base = connection.url.as_str().trim_end_matches('/');
        let Some(username) = owner.and_then(|o| o.name.as_deref()) else {
            return Got::Unavailable(404);
        };
        let guess = slug_guess(username);
        let mut tries = vec![guess.clone()];
        if guess.to_lowercase() != guess {
            tries.push(guess.to_lowercase());
        }
        for slug in tries.iter().filter(|s| *s != "." && *s != "..") {
            let url = format!("{base}/rest/api/1.0/users/{}", segment(slug));
            match self.read::<User>(connection, &url, started).await {
                Got::Read(user) => return Got::Read(user.slug),
                Got::Unavailable(404) => continue,
                Got::Unavailable(code) => return Got::Unavailable(code),
                Got::Failed(outcome) => return Got::Failed(outcome),
            }
        }
        Got::Unavailable(404)
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
        let not_permitted = super::bitbucket::exceptions_of(&answer)
            .iter()
            .any(|e| e == super::bitbucket::AUTHORISATION);
        match (code, verdict.reason) {
            // Not permitted (whether or not the answer names the caller: the probe just said
            // who it is), or no such user: the list is not this credential's to read.
            (404, _) | (401 | 403, Reason::Forbidden) => Got::Unavailable(code),
            (401 | 403, _) if not_permitted => Got::Unavailable(code),
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
