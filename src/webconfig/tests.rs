//! The web configuration's checks: what loads, and the key each mistake is reported under.

use std::path::{Path, PathBuf};

use super::WebConfig;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn parse(text: &str) -> Result<WebConfig, (String, String)> {
    WebConfig::parse(text, &fixtures())
}

fn key_of(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("{text:?} loaded"),
        Err((key, _)) => key,
    }
}

const TLS: &str = "tls_server_config:\n  cert_file: localhost.pem\n  key_file: localhost.key\n";

#[test]
fn an_empty_file_serves_plain_http_without_authentication() {
    let config = parse("").expect("loads");
    assert!(config.tls.is_none() && config.users.is_none() && config.headers.is_empty());
}

#[test]
fn every_supported_key_loads_with_paths_relative_to_the_file() {
    let hash = bcrypt::hash("pw", 4).expect("a hash");
    let text = format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: web/client-ca.pem\n  \
         min_version: TLS12\n  max_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305]\n  \
         prefer_server_cipher_suites: true\n  curve_preferences: [X25519, CurveP256]\n\
         http_server_config:\n  http2: false\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Frame-Options: deny\n\
         basic_auth_users:\n  prometheus: '{hash}'\n"
    );
    let config = parse(&text).expect("loads");
    assert!(config.tls.is_some());
    assert!(config.client_certificates_required);
    assert!(config.users.is_some());
    assert_eq!(config.headers.len(), 2);
}

#[test]
fn each_mistake_names_its_key() {
    let cases = [
        ("tls_server_confg: {}\n", ""),
        (
            &format!("{TLS}  min_version: TLS10\n"),
            "tls_server_config.min_version",
        ),
        (
            &format!("{TLS}  min_version: TLS13\n  max_version: TLS12\n"),
            "tls_server_config.min_version",
        ),
        (
            &format!("{TLS}  client_auth_type: RequireAnyClientCert\n  client_ca_file: web/client-ca.pem\n"),
            "tls_server_config.client_auth_type",
        ),
        (
            &format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n"),
            "tls_server_config.client_ca_file",
        ),
        (
            &format!("{TLS}  client_ca_file: web/client-ca.pem\n"),
            "tls_server_config.client_ca_file",
        ),
        (
            &format!("{TLS}  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"),
            "tls_server_config.cipher_suites",
        ),
        (
            &format!("{TLS}  curve_preferences: [CurveP521]\n"),
            "tls_server_config.curve_preferences",
        ),
        (
            &format!("{TLS}  client_auth_type: x\n"),
            "tls_server_config.client_auth_type",
        ),
        (
            &format!("{TLS}  client_auth_type: RequireClientCert\n"),
            "tls_server_config.client_auth_type",
        ),
        (
            "tls_server_config:\n  cert: ''\n  key_file: localhost.key\n",
            "tls_server_config.cert",
        ),
        (
            "tls_server_config:\n  cert_file: ''\n  key_file: localhost.key\n",
            "tls_server_config.cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: localhost.pem\n  key: ''\n",
            "tls_server_config.key",
        ),
        (
            "tls_server_config:\n  cert_file: ''\n  key_file: ''\n  client_auth_type: x\n",
            "tls_server_config.cert_file",
        ),
        (
            &format!("{TLS}  client_ca_file: web/missing.pem\n"),
            "tls_server_config.client_ca_file",
        ),
        (
            &format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca: |\n    not pem\n"),
            "tls_server_config.client_ca",
        ),
        (
            &format!("{TLS}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"),
            "tls_server_config.cipher_suites",
        ),
        (
            &format!("{TLS}  min_version: TLS111\n"),
            "tls_server_config.min_version",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: foo\n",
            "http_server_config.headers.X-Frame-Options",
        ),
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
            "http_server_config.headers.X-Content-Type-Options",
        ),
        ("rate_limit:\n  interval: 1d\n", "rate_limit.interval"),
        (
            "tls_server_config:\n  key_file: localhost.key\n",
            "tls_server_config.cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: localhost.key\n",
            "tls_server_config.cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: localhost.pem\n  key_file: web/client.key\n",
            "tls_server_config.key_file",
        ),
        (
            "http_server_config:\n  headers:\n    Server: credwatch\n",
            "http_server_config.headers.Server",
        ),
        ("basic_auth_users:\n  prometheus: hunter2\n", "basic_auth_users.prometheus"),
    ];
    for (text, key) in cases {
        assert_eq!(key_of(text), key, "for {text:?}");
    }
}

#[test]
fn an_unknown_key_is_named_in_the_message() {
    let (_, message) = parse("tls_server_confg: {}\n").expect_err("refused");
    assert!(message.contains("tls_server_confg"), "{message}");
}

#[test]
fn load_names_the_file_and_a_missing_file_is_an_error() {
    let error = WebConfig::load(Path::new("/nonexistent/web.yml")).expect_err("no file");
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/web.yml: cannot read"),
        "{error}"
    );
}

#[test]
fn a_value_the_parser_cannot_use_is_not_quoted_back() {
    let hash = "$2y$10$abcdefghijklmnopqrstuuKQ5N8sPn0oQe8sXz1WrG3hY7uVb2lCe";
    for text in [
        // No space after the colon: one string where a map belongs.
        format!("basic_auth_users: prometheus:{hash}\n"),
        // A hash pasted where a boolean belongs.
        format!("http_server_config:\n  http2: \"{hash}\"\n"),
        format!("basic_auth_users:\n  prometheus: [\"{hash}\"]\n"),
    ] {
        let (_, message) = parse(&text).expect_err("refused");
        assert!(
            !message.contains(hash) && !message.contains("$2y$"),
            "{message}"
        );
        assert!(!message.is_empty());
    }
    // serde's own wording quotes the value it could not use; the key names stay.
    assert_eq!(
        super::unquoted(&format!(
            "invalid type: string \"{hash}\", expected a map at `basic_auth_users`"
        )),
        "invalid type: string \"…\", expected a map at `basic_auth_users`"
    );
}

#[test]
fn empty_values_say_they_are_empty_under_their_own_key() {
    for (text, key) in [
        (
            "tls_server_config:\n  cert: ''\n  key_file: localhost.key\n",
            "tls_server_config.cert: is empty",
        ),
        (
            "tls_server_config:\n  cert_file: ''\n  key_file: localhost.key\n",
            "tls_server_config.cert_file: is empty",
        ),
        (
            "tls_server_config:\n  cert_file: localhost.pem\n  key_file: ''\n",
            "tls_server_config.key_file: is empty",
        ),
    ] {
        let (got, message) = parse(text).expect_err("refused");
        let said = format!("{got}: {message}");
        assert!(said.starts_with(key), "{text}: {said}");
        assert!(!message.contains("directory"), "{message}");
    }
}

fn warnings(text: &str) -> Vec<String> {
    parse(text).expect("loads").warnings
}

#[test]
fn what_the_toolkit_accepts_loads_and_what_deserves_a_word_gets_one() {
    // TLS 1.3 suite names are accepted (and change nothing).
    let text = format!("{TLS}  cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n");
    assert!(warnings(&text).is_empty());
    // client_allowed_sans narrows a verifying mode.
    let text = format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: web/sans-ca.pem\n  client_allowed_sans: [scraper.example]\n");
    assert!(warnings(&text).is_empty());
    for (text, word) in [
        (format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n"), "system's"),
        (format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: web/selfsigned-client.pem\n"), "CaUsedAsEndEntity"),
        (format!("{TLS}  client_allowed_sans: [a]\n"), "no effect"),
        ("http_server_config:\n  http2: true\n".to_string(), "HTTP/1.1"),
        ("tls_server_config:\n  min_version: TLS13\n".to_string(), "plain HTTP"),
        ("rate_limit:\n  interval: 1s\n  burst: 0\n".to_string(), "refuses every request"),
        ("basic_auth_users: {}\n".to_string(), "basic auth is off"),
        (format!("basic_auth_users:\n  'a:b': '{}'\n", bcrypt::hash("pw", 4).expect("hash")), "never log in"),
    ] {
        let said = warnings(&text);
        assert!(said.iter().any(|w| w.contains(word)), "{text}: {said:?}");
    }
    // The self-signed client CA's warning names the file.
    let said = warnings(&format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: web/selfsigned-client.pem\n"));
    assert!(
        said.iter().any(|w| w.contains("web/selfsigned-client.pem")),
        "{said:?}"
    );
    // A proper client CA gets none.
    let said = warnings(&format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: web/client-ca.pem\n"));
    assert!(said.is_empty(), "{said:?}");
    // A rate limit of zero interval is none.
    let config = parse("rate_limit:\n  interval: 0\n  burst: 0\n").expect("loads");
    assert!(config.rate_limit.is_none() && config.warnings.is_empty());
}
