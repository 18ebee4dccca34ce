//! The exporter-toolkit's web configuration as node_exporter's users write it, through the
//! binary, with this repository's own fixtures: what the toolkit accepts starts credwatch with
//! the toolkit's meaning, what it refuses exits 2 naming the key (the refusals credwatch adds
//! are in docs/security.md).

use std::time::Duration;

use credwatch::sim::Simulator;

use crate::common;
use crate::run::{basic, events, hash, status, tls_client, tls_client_speaking, Run, TLS};

/// `TLS` with client certificates verified as `auth` says, and `extra` lines.
fn client_auth(auth: &str, extra: &str) -> String {
    format!("{TLS}  client_auth_type: {auth}\n{extra}")
}

#[tokio::test]
async fn what_the_toolkit_refuses_exits_2_naming_the_key() {
    let simulator = Simulator::start().await.expect("simulator");
    for (web, said) in [
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
            "http_server_config.headers.X-Content-Type-Options: invalid value",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: foo\n",
            "http_server_config.headers.X-Frame-Options: invalid value",
        ),
        (
            "http_server_config:\n  headers:\n    Content-Type: foo\n",
            "http_server_config.headers.Content-Type",
        ),
        (
            "tls_server_config:\n  cert: ''\n  key_file: FIXTURES/localhost.key\n",
            "tls_server_config.cert: is empty",
        ),
        (
            "tls_server_config:\n  cert_file: FIXTURES/localhost.pem\n  key: ''\n",
            "tls_server_config.key: is empty",
        ),
        (
            "tls_server_config:\n  cert_file: ''\n  key_file: FIXTURES/localhost.key\n",
            "tls_server_config.cert_file: is empty",
        ),
        (
            "tls_server_config:\n  cert_file: FIXTURES/localhost.pem\n  key_file: ''\n",
            "tls_server_config.key_file: is empty",
        ),
        (
            &client_auth("RequireAndVerifyClientCert", ""),
            "tls_server_config.client_ca_file",
        ),
        (
            &client_auth("NoClientCert", "  client_ca_file: /dev/null\n"),
            "tls_server_config.client_ca_file",
        ),
        (
            &format!("{TLS}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n"),
            "tls_server_config.cipher_suites: unknown cipher",
        ),
        (
            &format!("{TLS}  curve_preferences: [CurveP257]\n"),
            "tls_server_config.curve_preferences: unknown curve",
        ),
        ("rate_limit:\n  interval: 1d\n", "rate_limit.interval"),
        // credwatch's own refusals, each with its reason (docs/security.md).
        (
            &format!("{TLS}  min_version: TLS11\n"),
            "tls_server_config.min_version: TLS11 is not supported",
        ),
        (
            &format!("{TLS}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"),
            "rustls has no CBC",
        ),
        (
            &format!("{TLS}  curve_preferences: [CurveP521, X25519]\n"),
            "rustls has no P-521",
        ),
        (
            &client_auth("RequestClientCert", ""),
            "accepts certificates it does not verify",
        ),
    ] {
        let (code, stderr) = Run::spawn(&simulator, web, &[]).exit().await;
        assert_eq!(code, Some(2), "{web}:\n{stderr}");
        assert!(stderr.contains(said), "{said} is said:\n{stderr}");
        assert!(!stderr.contains("directory"), "{stderr}");
    }
}

#[tokio::test]
async fn the_toolkits_headers_are_sent_as_written() {
    let simulator = Simulator::start().await.expect("simulator");
    let web = "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n    X-Content-Type-Options: nosniff\n    \
               X-XSS-Protection: '1'\n    Content-Security-Policy: \"default-src 'self'\"\n  http2: true\n";
    let client = common::http_client();
    let run = Run::start(&simulator, web, "http", &client).await;
    let response = client
        .get(run.url("http", "/metrics"))
        .send()
        .await
        .expect("GET");
    for (name, value) in [
        ("x-frame-options", "sameorigin"),
        ("x-content-type-options", "nosniff"),
        ("x-xss-protection", "1"),
        ("content-security-policy", "default-src 'self'"),
    ] {
        assert_eq!(response.headers()[name], value);
    }
    let stderr = run.stop().await;
    assert!(
        stderr.contains("WARN") && stderr.contains("HTTP/1.1 only"),
        "http2: true loads, with a word:\n{stderr}"
    );
}

#[tokio::test]
async fn tls_13_suite_names_are_accepted_and_tls_13_stays_on() {
    let simulator = Simulator::start().await.expect("simulator");
    let web = format!(
        "{TLS}  cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"
    );
    let client = tls_client(None);
    let run = Run::start(&simulator, &web, "https", &client).await;
    let tls13 = tls_client_speaking(&rustls::version::TLS13, &[]);
    assert_eq!(
        status(&tls13, &run.url("https", "/healthz"), None).await,
        Ok(200)
    );
    let chosen = tls_client_speaking(
        &rustls::version::TLS12,
        &[
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
    );
    assert_eq!(
        status(&chosen, &run.url("https", "/healthz"), None).await,
        Ok(200)
    );
    let other = tls_client_speaking(
        &rustls::version::TLS12,
        &[
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
    );
    assert!(
        status(&other, &run.url("https", "/healthz"), None)
            .await
            .is_err(),
        "a TLS 1.2 suite not chosen"
    );
    run.stop().await;
}

#[tokio::test]
async fn verify_client_cert_if_given_without_a_ca_verifies_against_the_system_roots() {
    let simulator = Simulator::start().await.expect("simulator");
    // rustls-native-certs reads SSL_CERT_FILE: the SANs CA stands for the system's roots.
    let roots = crate::run::fixture("web/sans-ca.pem");
    let env = [("SSL_CERT_FILE", roots.to_str().expect("path"))];
    let web = client_auth("VerifyClientCertIfGiven", "");
    let anonymous = tls_client(None);
    let run = Run::start_with(&simulator, &web, "https", &anonymous, &env).await;
    let url = run.url("https", "/metrics");
    assert_eq!(
        status(&anonymous, &url, None).await,
        Ok(200),
        "no certificate: fine"
    );
    let signed = tls_client(Some(("web/sans-client.pem", "web/sans-client.key")));
    assert_eq!(
        status(&signed, &url, None).await,
        Ok(200),
        "one the roots signed"
    );
    let other = tls_client(Some(("web/client.pem", "web/client.key")));
    assert!(
        status(&other, &url, None).await.is_err(),
        "one they did not"
    );
    let stderr = run.stop().await;
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("system's"))
        .unwrap_or_else(|| panic!("a start-up warning:\n{stderr}"));
    assert!(warning.contains("VerifyClientCertIfGiven"), "{warning}");
}

#[tokio::test]
async fn client_allowed_sans_choose_among_verified_certificates() {
    let simulator = Simulator::start().await.expect("simulator");
    let roots = crate::run::fixture("web/sans-ca.pem");
    let env = [("SSL_CERT_FILE", roots.to_str().expect("path"))];
    let scraper = tls_client(Some(("web/sans-client.pem", "web/sans-client.key")));
    let anonymous = tls_client(None);
    // Each of the certificate's SANs as Go writes it; then one it does not have.
    for (sans, ca, admitted) in [
        (
            "[scraper.example]",
            "  client_ca_file: FIXTURES/web/sans-ca.pem\n",
            true,
        ),
        (
            "[other, scraper@example.com]",
            "  client_ca_file: FIXTURES/web/sans-ca.pem\n",
            true,
        ),
        (
            "['127.0.0.1']",
            "  client_ca_file: FIXTURES/web/sans-ca.pem\n",
            true,
        ),
        ("['spiffe://credwatch/scraper']", "", true),
        (
            "[prometheus, scraper]",
            "  client_ca_file: FIXTURES/web/sans-ca.pem\n",
            false,
        ),
    ] {
        let web = client_auth(
            "RequireAndVerifyClientCert",
            &format!("{ca}  client_allowed_sans: {sans}\n"),
        );
        let run = Run::spawn(&simulator, &web, &env);
        let url = run.url("https", "/metrics");
        common::eventually(Duration::from_secs(15), "listening", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", run.port))
                .await
                .is_ok()
        })
        .await;
        let got = status(&scraper, &url, None).await;
        assert_eq!(got.is_ok(), admitted, "{web}: {got:?}\n{}", run.stderr());
        assert!(
            status(&anonymous, &url, None).await.is_err(),
            "a certificate is required"
        );
        run.stop().await;
    }
}

#[tokio::test]
async fn a_self_signed_client_ca_made_for_clients_gets_a_warning_naming_it() {
    let simulator = Simulator::start().await.expect("simulator");
    let web = client_auth(
        "RequireAndVerifyClientCert",
        "  client_ca_file: FIXTURES/web/selfsigned-client.pem\n",
    );
    let client = tls_client(Some(("web/client.pem", "web/client.key")));
    let run = Run::spawn(&simulator, &web, &[]);
    common::eventually(Duration::from_secs(15), "listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", run.port))
            .await
            .is_ok()
    })
    .await;
    // As the warning says: presenting the CA itself cannot work in rustls.
    let itself = tls_client(Some((
        "web/selfsigned-client.pem",
        "web/selfsigned-client.key",
    )));
    assert!(status(&itself, &run.url("https", "/healthz"), None)
        .await
        .is_err());
    assert!(status(&client, &run.url("https", "/healthz"), None)
        .await
        .is_err());
    let stderr = run.stop().await;
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("CA:TRUE"))
        .unwrap_or_else(|| panic!("a start-up warning:\n{stderr}"));
    assert!(warning.contains("web/selfsigned-client.pem"), "{warning}");
}

#[tokio::test]
async fn rate_limit_answers_429_before_authentication_and_spares_healthz() {
    let simulator = Simulator::start().await.expect("simulator");
    let client = common::http_client();
    let web = format!(
        "rate_limit:\n  interval: 1h\n  burst: 3\nbasic_auth_users:\n  prometheus: '{}'\n",
        hash("scrape-pw")
    );
    let run = Run::start_with(
        &simulator,
        &web,
        "http",
        &client,
        &[("RUST_LOG", "info,credwatch::webconfig=debug")],
    )
    .await;
    let url = run.url("http", "/metrics");
    let right = basic("prometheus", "scrape-pw");
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(status(&client, &url, Some(&right)).await.expect("answer"));
    }
    assert_eq!(
        answers,
        [200, 200, 200, 429, 429],
        "a burst of 3, then nothing for an hour"
    );
    let wrong = basic("nobody", "guess");
    assert_eq!(status(&client, &url, Some(&wrong)).await, Ok(429));
    for _ in 0..5 {
        assert_eq!(
            status(&client, &run.url("http", "/healthz"), None).await,
            Ok(200)
        );
    }
    let stderr = run.stop().await;
    let verified = events(&stderr, "basic auth verification started");
    assert_eq!(
        verified.len(),
        1,
        "one verification: the first success (then remembered); none for the refused"
    );

    // A limit that refuses everything loads, with a word.
    let refusing = "rate_limit:\n  interval: 1s\n  burst: 0\n";
    let run = Run::start(&simulator, refusing, "http", &client).await;
    assert_eq!(
        status(&client, &run.url("http", "/metrics"), None).await,
        Ok(429)
    );
    assert_eq!(
        status(&client, &run.url("http", "/healthz"), None).await,
        Ok(200)
    );
    let stderr = run.stop().await;
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("refuses every request")),
        "{stderr}"
    );
    // And a zero interval is no limit at all.
    let run = Run::start(
        &simulator,
        "rate_limit:\n  interval: 0\n  burst: 0\n",
        "http",
        &client,
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            status(&client, &run.url("http", "/metrics"), None).await,
            Ok(200)
        );
    }
    run.stop().await;
}
