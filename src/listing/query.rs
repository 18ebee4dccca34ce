//! The query string of `GET /api/v1/connections` and of the status page, read strictly: an
//! unknown parameter, a repeated one, a state that does not exist, a limit out of range or a
//! cursor or token this API never handed out is a [`BadQuery`] (a 400 that says which), never
//! silently ignored. An empty value (what a GET form sends for "all") filters nothing.

use std::fmt;

use crate::config::Product;
use crate::probe::State;
use crate::state::Token;

use super::{Item, Subject};

/// The page size when a paged request names none.
pub(crate) const DEFAULT_LIMIT: usize = 100;

/// The largest page.
pub(crate) const MAX_LIMIT: usize = 1000;

const _: () = assert!(DEFAULT_LIMIT <= MAX_LIMIT);

/// The parameters the API reads (the page also reads `refresh`).
const KNOWN: &[&str] = &[
    "state",
    "product",
    "label",
    "q",
    "limit",
    "cursor",
    "changed_since",
];

/// A query string that cannot be answered, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadQuery(String);

impl BadQuery {
    /// A refusal that says `why`.
    pub(crate) fn new(why: &str) -> BadQuery {
        BadQuery(why.to_owned())
    }
}

/// Which connections a request wants.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// `?state=`: only this state.
    pub state: Option<State>,
    /// `?product=`: only connections to this product.
    pub product: Option<Product>,
    /// `?label=k:v` (repeatable): only connections with every one of these labels.
    pub labels: Vec<(String, String)>,
    /// `?q=`: only connections whose name, product, account, reason, state or labels contain this,
    /// ignoring case (kept as given; compared lowercased).
    pub text: String,
}

impl Filter {
    /// Whether `item` passes every filter but the state.
    pub(crate) fn matches_except_state(&self, item: &Item<'_>) -> bool {
        let connection = item.connection();
        let labels = &connection.settings.labels;
        if self
            .product
            .is_some_and(|product| product != connection.settings.product)
        {
            return false;
        }
        if !self
            .labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
        {
            return false;
        }
        let text = self.text.trim().to_lowercase();
        if text.is_empty() {
            return true;
        }
        let contains = |field: &str| field.to_lowercase().contains(&text);
        contains(&connection.name)
            || contains(connection.settings.product.as_str())
            || item.account().is_some_and(contains)
            || contains(item.reason())
            || contains(item.state.as_str())
            || labels
                .iter()
                .any(|(key, value)| contains(&format!("{key}={value}")))
            || matches!(item.subject, Subject::Foreign(_)) && contains("owned by replica")
    }

    /// The filter as query parameters (for the page's links), empty ones left out.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(state) = self.state {
            pairs.push(("state", state.as_str().to_owned()));
        }
        if let Some(product) = self.product {
            pairs.push(("product", product.as_str().to_owned()));
        }
        for (key, value) in &self.labels {
            pairs.push(("label", format!("{key}:{value}")));
        }
        if !self.text.is_empty() {
            pairs.push(("q", self.text.clone()));
        }
        pairs
    }
}

/// Where a page starts: after the connection of this rank and name. Written `RANK.NAME`; to
/// clients, an opaque value to pass back as `?cursor=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The rank ([`super::severity`]) of the last connection of the page before.
    pub rank: u8,
    /// Its name.
    pub name: String,
}

impl Cursor {
    /// The cursor after the connection at `key`.
    pub(crate) fn after((rank, name): (u8, &str)) -> Cursor {
        Cursor {
            rank,
            name: name.to_owned(),
        }
    }

    fn parse(text: &str) -> Result<Cursor, BadQuery> {
        let bad = || {
            BadQuery(format!(
                "cursor: {text:?} is not a cursor this API hands out (take `next` from an answer)"
            ))
        };
        let (rank, name) = text.split_once('.').ok_or_else(bad)?;
        let rank: u8 = rank.parse().map_err(|_| bad())?;
        if rank > 6 || name.is_empty() {
            return Err(bad());
        }
        Ok(Cursor {
            rank,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.rank, self.name)
    }
}

/// What shape of answer a request wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    /// No parameter at all: every connection, as the plain array of old.
    All,
    /// A page: `limit` connections after `cursor`.
    Page {
        /// The page size, when the request named one.
        limit: Option<usize>,
        /// Where it starts.
        cursor: Option<Cursor>,
    },
    /// What changed since a token.
    Changes {
        /// The client's token.
        since: Token,
    },
}

/// A request, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// Which connections.
    pub filter: Filter,
    /// What shape of answer.
    pub form: Form,
    /// The page's `?refresh=N` seconds (only the page reads it).
    pub refresh: Option<u32>,
}

impl Request {
    /// Reads a query string. `page` allows the page's own `refresh` parameter.
    pub(crate) fn parse(query: &str, page: bool) -> Result<Request, BadQuery> {
        let mut filter = Filter::default();
        let mut seen: Vec<String> = Vec::new();
        let (mut limit, mut cursor, mut since, mut refresh) = (None, None, None, None);
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            // The page also reads its refresh period, and `team` as its links of old wrote it.
            let known = KNOWN.contains(&&*key) || (page && (key == "refresh" || key == "team"));
            if !known {
                let mut names = KNOWN.to_vec();
                if page {
                    names.extend(["refresh", "team"]);
                }
                return Err(BadQuery(format!(
                    "unknown query parameter {key:?}: the known ones are {}",
                    names.join(", ")
                )));
            }
            if key != "label" {
                if seen.iter().any(|k| *k == key) {
                    return Err(BadQuery(format!("{key} is given twice")));
                }
                seen.push(key.to_string());
            }
            let value = value.trim();
            if value.is_empty() && key != "q" {
                continue;
            }
            match &*key {
                "state" => filter.state = Some(one_of("state", value, &State::ALL, State::as_str)?),
                "product" => {
                    filter.product =
                        Some(one_of("product", value, &Product::ALL, Product::as_str)?);
                }
                "label" => filter.labels.push(label(value)?),
                "team" => filter.labels.push(("team".to_owned(), value.to_owned())),
                "q" => filter.text = value.to_owned(),
                "limit" => limit = Some(number("limit", value, 1, MAX_LIMIT)?),
                "cursor" => cursor = Some(Cursor::parse(value)?),
                "changed_since" => {
                    since = Some(
                        value
                            .parse::<Token>()
                            .map_err(|e| BadQuery(e.to_string()))?,
                    );
                }
                _ => refresh = Some(number("refresh", value, 1, 3600)?),
            }
        }
        let form = match (since, limit, &cursor) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(BadQuery(
                    "changed_since answers every change at once: it takes no limit or cursor"
                        .to_owned(),
                ))
            }
            (Some(since), None, None) => Form::Changes { since },
            (None, limit, _) if !seen.is_empty() || !filter.labels.is_empty() => {
                Form::Page { limit, cursor }
            }
            _ => Form::All,
        };
        Ok(Request {
            filter,
            form,
            refresh,
        })
    }
}

/// The one of `all` whose name (`as_str`) is `value`; a 400 that lists them otherwise.
fn one_of<T: Copy>(
    key: &str,
    value: &str,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<T, BadQuery> {
    all.iter()
        .copied()
        .find(|v| as_str(*v) == value)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| as_str(*v)).collect();
            BadQuery(format!(
                "{key}: {value:?} is not a {key}; the {key}s are {}",
                names.join(", ")
            ))
        })
}

fn label(value: &str) -> Result<(String, String), BadQuery> {
    match value.split_once(':') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(BadQuery(format!(
            "label: {value:?} is not KEY:VALUE (for example label=team:platform)"
        ))),
    }
}

fn number<T>(name: &str, value: &str, least: T, most: T) -> Result<T, BadQuery>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match value.parse::<T>() {
        Ok(n) if n >= least && n <= most => Ok(n),
        _ => Err(BadQuery(format!(
            "{name}: {value:?} is not a whole number from {least} to {most}"
        ))),
    }
}
