//! What reqwest makes of the proxy variables, said out loud: reqwest (through hyper-util's
//! matcher) reads `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`, each in upper case
//! first and then lower case, ignores all of them when `REQUEST_METHOD` is set (a CGI guard),
//! and skips a value it cannot parse or whose scheme it does not know. credwatch is built
//! without reqwest's SOCKS support, so a `socks*://` proxy cannot be used either. Each of
//! these would be silent; [`warnings`] names them, and the daemon and `check` log them at
//! WARN when they start.

/// The proxy variables, in the order reqwest reads them.
const VARIABLES: [(&str, &str); 4] = [
    ("ALL_PROXY", "all_proxy"),
    ("HTTPS_PROXY", "https_proxy"),
    ("HTTP_PROXY", "http_proxy"),
    ("NO_PROXY", "no_proxy"),
];

/// What is wrong with the proxy variables that `lookup` reads (the environment, in use).
pub(crate) fn warnings(lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut warnings = Vec::new();
    let set: Vec<(&str, &str, String)> = VARIABLES
        .iter()
        .filter_map(|(upper, lower)| {
            let value = lookup(upper).or_else(|| lookup(lower))?;
            let name = if lookup(upper).is_some() { upper } else { lower };
            if let (Some(u), Some(l)) = (lookup(upper), lookup(lower)) {
                if u != l {
                    warnings.push(format!(
                        "{upper} and {lower} are both set and differ: {upper} is used, {lower} is ignored"
                    ));
                }
            }
            Some((*name, *upper, value))
        })
        .collect();
    if lookup("REQUEST_METHOD").is_some() && set.iter().any(|(_, upper, _)| *upper != "NO_PROXY") {
        warnings.push(
            "REQUEST_METHOD is set, so every proxy variable is ignored (reqwest's guard against CGI's HTTP_PROXY)"
                .to_owned(),
        );
        return warnings;
    }
    for (name, upper, value) in &set {
        if *upper == "NO_PROXY" || value.is_empty() {
            continue;
        }
        let uri = match value.parse::<http::Uri>() {
            Ok(uri) if uri.authority().is_some() => uri,
            _ => {
                warnings.push(format!(
                    "{name} is not a proxy URL reqwest can read, so it is ignored and requests go direct"
                ));
                continue;
            }
        };
        match uri.scheme_str() {
            None | Some("http") | Some("https") => {}
            Some(scheme) if scheme.starts_with("socks") => warnings.push(format!(
                "{name} names a {scheme}:// proxy, which credwatch cannot use (it is built without SOCKS): requests that it applies to will fail with connect_error"
            )),
            Some(scheme) => warnings.push(format!(
                "{name} names a {scheme}:// proxy, a scheme reqwest does not know, so it is ignored and requests go direct"
            )),
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn warn(vars: &[(&str, &str)]) -> Vec<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        warnings(|name| vars.get(name).cloned())
    }

    #[test]
    fn what_reqwest_would_ignore_or_cannot_use_is_named() {
        assert!(warn(&[]).is_empty());
        assert!(warn(&[
            ("https_proxy", "http://user:secret@proxy:3128"),
            ("NO_PROXY", "localhost")
        ])
        .is_empty());
        let shadowed = warn(&[("HTTPS_PROXY", "http://a:1"), ("https_proxy", "http://b:2")]);
        assert_eq!(shadowed.len(), 1);
        assert!(
            shadowed[0].contains("https_proxy is ignored"),
            "{shadowed:?}"
        );
        let socks = warn(&[("all_proxy", "socks5://proxy:1080")]);
        assert!(
            socks[0].contains("all_proxy names a socks5:// proxy"),
            "{socks:?}"
        );
        let unknown = warn(&[("http_proxy", "ftp://proxy:21")]);
        assert!(unknown[0].contains("ftp://"), "{unknown:?}");
        let garbage = warn(&[("HTTP_PROXY", "not a url")]);
        assert!(
            garbage[0].contains("HTTP_PROXY is not a proxy URL"),
            "{garbage:?}"
        );
        let cgi = warn(&[("REQUEST_METHOD", "GET"), ("https_proxy", "http://p:1")]);
        assert!(cgi[0].contains("REQUEST_METHOD"), "{cgi:?}");
        // No warning names a password.
        let all = warn(&[("ALL_PROXY", "socks5://u:hunter2@p:1")]);
        assert!(!all.concat().contains("hunter2"));
    }
}
