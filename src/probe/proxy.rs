//! Proxies from the environment, read as reqwest reads them (and mostly as curl does):
//! `https_proxy` for `https://` URLs, `http_proxy` for `http://` URLs, `all_proxy` for both,
//! each in lower or upper case (lower case first), and `no_proxy` for the hosts that bypass
//! them. A proxy URL without a port means port 80, as in reqwest (curl assumes 1080).
//!
//! Only `http://` proxies are supported: `https://` URLs go through a `CONNECT` tunnel, so
//! the TLS session (and the credential) is end to end; `http://` URLs are sent to the proxy
//! in absolute form. Credentials in the proxy URL become `Proxy-Authorization: Basic`.

use std::net::IpAddr;

use base64::Engine as _;
use http::HeaderValue;
use url::{Host, Url};

/// One proxy.
#[derive(Debug, Clone)]
pub struct Proxy {
    host: Host<String>,
    port: u16,
    authorization: Option<HeaderValue>,
    shown: String,
}

impl Proxy {
    /// Reads a proxy URL (`http://[user:password@]host[:port]`; the scheme may be left out).
    /// The error names `variable`, never the value, which may hold a password.
    pub fn parse(variable: &str, value: &str) -> Result<Proxy, String> {
        let value = value.trim();
        let url = if value.contains("://") {
            Url::parse(value)
        } else {
            Url::parse(&format!("http://{value}"))
        }
        .map_err(|e| format!("{variable} is not a proxy URL: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "{variable} names a {}:// proxy; credwatch supports http:// proxies only",
                url.scheme()
            ));
        }
        let host = url
            .host()
            .map(|host| host.to_owned())
            .ok_or_else(|| format!("{variable} names no proxy host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authorization = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |part: &str| {
                percent_encoding::percent_decode_str(part)
                    .decode_utf8()
                    .map(|text| text.into_owned())
                    .map_err(|_| format!("{variable}: the proxy credentials are not UTF-8"))
            };
            let user = decode(url.username())?;
            let password = decode(url.password().unwrap_or_default())?;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
                .map_err(|_| format!("{variable}: the proxy credentials cannot be sent"))?;
            value.set_sensitive(true);
            Some(value)
        };
        let shown = format!("{host}:{port}");
        Ok(Proxy {
            host,
            port,
            authorization,
            shown,
        })
    }

    /// The proxy's host.
    pub fn host(&self) -> Host<&str> {
        match &self.host {
            Host::Domain(domain) => Host::Domain(domain.as_str()),
            Host::Ipv4(ip) => Host::Ipv4(*ip),
            Host::Ipv6(ip) => Host::Ipv6(*ip),
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `Proxy-Authorization`, when the proxy URL holds credentials.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// `host:port`, for messages (without credentials).
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// The proxies to use, by URL scheme, and the hosts that bypass them.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    bypass: Vec<Bypass>,
}

/// One `no_proxy` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bypass {
    /// `*`: every host.
    All,
    /// An address, or a network in CIDR notation.
    Network(IpAddr, u8),
    /// A domain and its subdomains (`example.com`, `.example.com` and `*.example.com` alike).
    Domain(String),
}

impl Proxies {
    /// Direct connections only.
    pub fn none() -> Proxies {
        Proxies::default()
    }

    /// The proxies the process environment names.
    pub fn from_env() -> Result<Proxies, String> {
        Proxies::from_lookup(|name| std::env::var(name).ok())
    }

    /// The proxies that `lookup` (an environment) names.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Proxies, String> {
        let read = |name: &str| -> Option<(String, String)> {
            [name.to_owned(), name.to_ascii_uppercase()]
                .into_iter()
                .find_map(|variable| {
                    lookup(&variable)
                        .filter(|value| !value.trim().is_empty())
                        .map(|value| (variable, value))
                })
        };
        let parse = |found: Option<(String, String)>| {
            found
                .map(|(variable, value)| Proxy::parse(&variable, &value))
                .transpose()
        };
        let all = read("all_proxy");
        Ok(Proxies {
            http: parse(read("http_proxy").or_else(|| all.clone()))?,
            https: parse(read("https_proxy").or(all))?,
            bypass: read("no_proxy")
                .map(|(_, value)| value.split(',').filter_map(Bypass::parse).collect())
                .unwrap_or_default(),
        })
    }

    /// Whether no proxy is configured at all.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy for `url`, if any.
    pub fn for_url(&self, url: &Url) -> Option<&Proxy> {
        if self.is_empty() {
            return None;
        }
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        let host = url.host()?;
        if self.bypass.iter().any(|entry| entry.matches(&host)) {
            return None;
        }
        Some(proxy)
    }
}

impl Bypass {
    fn parse(entry: &str) -> Option<Bypass> {
        let entry = entry.trim();
        if entry.is_empty() {
            return None;
        }
        if entry == "*" {
            return Some(Bypass::All);
        }
        if let Some((address, prefix)) = entry.split_once('/') {
            let address: IpAddr = address.trim_matches(['[', ']']).parse().ok()?;
            let limit = if address.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix.parse().ok().filter(|&p| p <= limit)?;
            return Some(Bypass::Network(address, prefix));
        }
        let unbracketed = entry.trim_start_matches('[').trim_end_matches(']');
        if let Ok(address) = unbracketed.parse::<IpAddr>() {
            let full = if address.is_ipv4() { 32 } else { 128 };
            return Some(Bypass::Network(address, full));
        }
        // `host:port` and `[v6]:port`: the port is not told apart.
        if let Some((host, port)) = entry.rsplit_once(':') {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                return Bypass::parse(host);
            }
        }
        let domain = entry
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        (!domain.is_empty()).then_some(Bypass::Domain(domain))
    }

    fn matches(&self, host: &Host<&str>) -> bool {
        match (self, host) {
            (Bypass::All, _) => true,
            (Bypass::Domain(domain), Host::Domain(host)) => {
                let host = host.trim_end_matches('.');
                host.eq_ignore_ascii_case(domain)
                    || (host.len() > domain.len()
                        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
                        && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain))
            }
            (Bypass::Network(network, prefix), Host::Ipv4(ip)) => {
                in_network(IpAddr::V4(*ip), *network, *prefix)
            }
            (Bypass::Network(network, prefix), Host::Ipv6(ip)) => {
                in_network(IpAddr::V6(*ip), *network, *prefix)
            }
            _ => false,
        }
    }
}

fn in_network(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn proxies(vars: &[(&str, &str)]) -> Result<Proxies, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Proxies::from_lookup(|name| vars.get(name).cloned())
    }

    fn via(proxies: &Proxies, url: &str) -> Option<String> {
        let url = Url::parse(url).expect("url");
        proxies.for_url(&url).map(|proxy| proxy.shown().to_owned())
    }

    #[test]
    fn each_scheme_has_its_variable_and_all_proxy_fills_in() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://tls-proxy:3128"),
            ("all_proxy", "fallback"),
        ])
        .expect("proxies");
        assert_eq!(
            via(&p, "https://jira.example"),
            Some("tls-proxy:3128".into())
        );
        assert_eq!(via(&p, "http://jira.example"), Some("fallback:80".into()));
        assert!(proxies(&[]).expect("none").is_empty());
        // Lower case wins; empty values count as unset.
        let p = proxies(&[
            ("https_proxy", "lower:1"),
            ("HTTPS_PROXY", "upper:2"),
            ("http_proxy", " "),
        ])
        .expect("proxies");
        assert_eq!(via(&p, "https://a.example"), Some("lower:1".into()));
        assert_eq!(via(&p, "http://a.example"), None);
    }

    #[test]
    fn no_proxy_matches_domains_subdomains_addresses_and_networks() {
        let p = proxies(&[
            ("https_proxy", "proxy:3128"),
            (
                "NO_PROXY",
                "internal.example, .corp.example,*.lab.example, \
                 10.0.0.0/8, 192.168.1.7, [::1], jira.local:8443",
            ),
        ])
        .expect("proxies");
        for bypassed in [
            "https://internal.example",
            "https://jira.internal.example",
            "https://corp.example",
            "https://a.b.corp.example",
            "https://x.lab.example",
            "https://10.20.30.40",
            "https://192.168.1.7:8443",
            "https://[::1]:9000",
            "https://jira.local",
        ] {
            assert_eq!(via(&p, bypassed), None, "{bypassed}");
        }
        for proxied in [
            "https://notinternal.example",
            "https://internal.example.com",
            "https://11.0.0.1",
            "https://192.168.1.8",
            "https://[::2]",
        ] {
            assert_eq!(via(&p, proxied), Some("proxy:3128".into()), "{proxied}");
        }
        let everything =
            proxies(&[("https_proxy", "proxy:3128"), ("no_proxy", "*")]).expect("proxies");
        assert_eq!(via(&everything, "https://jira.example"), None);
    }

    #[test]
    fn credentials_become_proxy_authorization_and_never_reach_a_message() {
        let p = Proxy::parse("HTTPS_PROXY", "http://svc%40corp:s%3Acret@proxy.corp:8080")
            .expect("proxy");
        assert_eq!(p.shown(), "proxy.corp:8080");
        let value = p.authorization().expect("authorization");
        assert!(value.is_sensitive());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&value.as_bytes()["Basic ".len()..])
            .expect("base64");
        assert_eq!(decoded, b"svc@corp:s:cret");
        assert!(!format!("{p:?}").contains("s:cret") && !format!("{p:?}").contains("s%3Acret"));

        let error =
            Proxy::parse("ALL_PROXY", "socks5://user:hunter2@proxy:1080").expect_err("socks");
        assert!(
            error.contains("ALL_PROXY") && error.contains("socks5"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        let error = Proxy::parse("HTTPS_PROXY", "http://user:hunter2@").expect_err("no host");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
