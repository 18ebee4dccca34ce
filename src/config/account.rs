//! The login account: what Jira counts failed logins against, and so what credwatch keeps one
//! login budget for.
//!
//! Jira Data Center keeps the failed-login count as attributes of the user
//! (`login.currentFailedCount`, docs/jira-answers.md §13): every connection, every `check` and
//! every process that sends the username to that Jira adds to one count. So the budget is
//! keyed by the *login site* (the scheme, the host in lower case, the port when it is not the
//! scheme's default, and the context path without a trailing slash) and the username in lower
//! case, as Jira compares it. `login_site` replaces the site part for one Jira reached under
//! two URLs. It is kept apart from the *politeness site* ([`super::Connection::site`]: scheme,
//! host and port), which bounds the requests in flight and gates a rate limit.
//!
//! Only `auth = "basic"` has a login account: a Bearer PAT or a Cloud API token is not counted
//! by Seraph's CAPTCHA lock.

use std::collections::HashMap;

use url::Url;

use super::{AuthMethod, Connection};

/// The login site of a URL: `scheme://host[:port]/context`, the host in lower case, the port
/// only when it is not the scheme's default, no trailing slash, no query or fragment.
pub fn login_site(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = match (url.port_or_known_default(), default_port(url.scheme())) {
        (Some(port), Some(default)) if port == default => String::new(),
        (Some(port), _) => format!(":{port}"),
        (None, _) => String::new(),
    };
    let path = url.path().trim_end_matches('/');
    format!("{}://{host}{port}{path}", url.scheme().to_ascii_lowercase())
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The login account of a site and a username: `"{login site} {username in lower case}"`,
/// e.g. `"https://jira.example.com/jira svc-bot"` (a URL holds no space, so the two parts
/// never run together).
pub fn login_account(site: &str, username: &str) -> String {
    format!("{site} {}", username.to_lowercase())
}

/// The login account of a connection, for `auth = "basic"`: `login_site` when it is set, else
/// the site of `url`, and the username.
pub(super) fn of(
    auth: AuthMethod,
    url: &Url,
    login_site_url: Option<&Url>,
    username: Option<&str>,
) -> Option<String> {
    if auth != AuthMethod::Basic {
        return None;
    }
    let site = login_site(login_site_url.unwrap_or(url));
    Some(login_account(&site, username?))
}

/// The names of the connections of each login account among `connections`, sorted: who
/// shares a login budget with whom.
pub fn accounts<'a>(
    connections: impl IntoIterator<Item = &'a Connection>,
) -> HashMap<&'a str, Vec<&'a str>> {
    let mut accounts: HashMap<&'a str, Vec<&'a str>> = HashMap::new();
    for connection in connections {
        if let Some(account) = connection.login_account() {
            accounts
                .entry(account)
                .or_default()
                .push(connection.name.as_str());
        }
    }
    for names in accounts.values_mut() {
        names.sort_unstable();
    }
    accounts
}

/// The other connections of `connection`'s login account, from [`accounts`] (`None` for a
/// connection without a login account).
pub fn shares_login_with<'a>(
    connection: &Connection,
    accounts: &HashMap<&str, Vec<&'a str>>,
) -> Option<Vec<&'a str>> {
    let names = accounts.get(connection.login_account()?)?;
    Some(
        names
            .iter()
            .copied()
            .filter(|name| *name != connection.name)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(text: &str) -> String {
        login_site(&Url::parse(text).expect("url"))
    }

    #[test]
    fn the_site_is_scheme_host_port_and_context_path_normalised() {
        assert_eq!(site("https://jira.example.com"), "https://jira.example.com");
        assert_eq!(
            site("https://jira.example.com/"),
            "https://jira.example.com"
        );
        // Host and scheme in any case, the default port written or not.
        assert_eq!(
            site("HTTPS://Jira.Example.COM:443/"),
            "https://jira.example.com"
        );
        assert_eq!(
            site("http://jira.example.com:80"),
            "http://jira.example.com"
        );
        // Another port is another Jira (or another node's own address).
        assert_eq!(
            site("https://jira.example.com:8443"),
            "https://jira.example.com:8443"
        );
        assert_eq!(
            site("http://127.0.0.1:8080/jira/"),
            "http://127.0.0.1:8080/jira"
        );
        // The context path tells two Jiras on one host apart; its case is kept (paths are
        // case-sensitive), its trailing slashes are not.
        assert_eq!(
            site("https://example.com/jira//"),
            "https://example.com/jira"
        );
        assert_ne!(
            site("https://example.com/jira"),
            site("https://example.com/Jira")
        );
        assert_ne!(
            site("https://example.com/jira"),
            site("https://example.com/wiki")
        );
        // A query or fragment is not part of it.
        assert_eq!(
            site("https://example.com/jira?x=1#y"),
            "https://example.com/jira"
        );
        // http and https are different sites.
        assert_ne!(site("http://example.com"), site("https://example.com"));
    }

    #[test]
    fn the_username_is_compared_in_lower_case() {
        let a = login_account(&site("https://jira.example.com/jira/"), "SVC-Shared");
        let b = login_account(&site("https://JIRA.example.com:443/jira"), "svc-shared");
        assert_eq!(a, b);
        assert_eq!(a, "https://jira.example.com/jira svc-shared");
        assert_ne!(
            a,
            login_account(&site("https://jira.example.com/jira"), "svc-other")
        );
    }

    #[test]
    fn only_basic_has_a_login_account_and_login_site_replaces_the_site() {
        let url = Url::parse("https://node1.internal:8080/jira").expect("url");
        let alias = Url::parse("https://jira.example.com/jira/").expect("url");
        assert_eq!(
            of(AuthMethod::Basic, &url, Some(&alias), Some("Bot")).as_deref(),
            Some("https://jira.example.com/jira bot")
        );
        assert_eq!(
            of(AuthMethod::Basic, &url, None, Some("bot")).as_deref(),
            Some("https://node1.internal:8080/jira bot")
        );
        for auth in [
            AuthMethod::Pat,
            AuthMethod::ApiToken,
            AuthMethod::OAuthClientCredentials,
        ] {
            assert_eq!(of(auth, &url, None, Some("bot")), None, "{auth}");
        }
    }
}
