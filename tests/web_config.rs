//! `credwatch run --web.config.file` as users run it: TLS with the project's test CA, client
//! certificates, basic auth (right, wrong, missing; `/healthz` open, `/readyz` covered), the
//! configured response headers, a reload of the web configuration by SIGHUP (good, then
//! broken: the old settings stay) and by the file watch, a broken file at start (exit 2, naming
//! the key), and canaries: neither the passwords offered nor the hashes show in trace-level
//! logs.
//!
//! The exporter-toolkit's behaviour (what it accepts and refuses, client certificates, headers,
//! `rate_limit`) is in `web_config/toolkit.rs`; bcrypt's work and the workers under load in
//! `web_config/bcrypt_work.rs`; the harness in `web_config/run.rs`.

#[path = "web_config/bcrypt_work.rs"]
mod bcrypt_work;
mod common;
#[path = "web_config/run.rs"]
mod run;
#[path = "web_config/toolkit.rs"]
mod toolkit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use credwatch::sim::Simulator;

use run::{basic, hash, status, tls_client, Run, TLS};

#[tokio::test]
async fn tls_serves_https_with_the_test_ca_and_no_plain_http() {
    let simulator = Simulator::start().await.expect("simulator");
    let web = format!("{TLS}http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Content-Type-Options: nosniff\n");
    let client = tls_client(None);
    let run = Run::start(&simulator, &web, "https", &client).await;
    let response = client
        .get(run.url("https", "/metrics"))
        .send()
        .await
        .expect("HTTPS");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("credwatch_build_info"));
    // Plain HTTP on the same port gets no answer.
    let plain = common::http_client();
    let answer = status(&plain, &run.url("http", "/metrics"), None).await;
    assert!(answer.is_err(), "plain HTTP was served: {answer:?}");
    // A client that does not trust the test CA cannot connect.
    let stranger = reqwest::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .build()
        .expect("client");
    assert!(status(&stranger, &run.url("https", "/healthz"), None)
        .await
        .is_err());
    run.stop().await;
}

#[tokio::test]
async fn a_required_client_certificate_guards_every_endpoint_healthz_included() {
    let simulator = Simulator::start().await.expect("simulator");
    let web = format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: FIXTURES/web/client-ca.pem\n");
    let client = tls_client(Some(("web/client.pem", "web/client.key")));
    let run = Run::start(&simulator, &web, "https", &client).await;
    for path in ["/healthz", "/metrics", "/api/v1/connections"] {
        assert_eq!(
            status(&client, &run.url("https", path), None).await,
            Ok(200),
            "{path}"
        );
    }
    common::eventually(Duration::from_secs(10), "ready", || async {
        status(&client, &run.url("https", "/readyz"), None).await == Ok(200)
    })
    .await;
    let anonymous = tls_client(None);
    let stranger = tls_client(Some(("web/stranger.pem", "web/stranger.key")));
    for (who, client) in [("no certificate", &anonymous), ("a stranger's", &stranger)] {
        let answer = status(client, &run.url("https", "/healthz"), None).await;
        assert!(answer.is_err(), "{who} got {answer:?}");
    }
    run.stop().await;
}

#[tokio::test]
async fn basic_auth_covers_every_endpoint_but_healthz() {
    let simulator = Simulator::start().await.expect("simulator");
    let web = format!(
        "basic_auth_users:\n  prometheus: '{}'\n  viewer: '{}'\n",
        hash("scrape-pw"),
        hash("view-pw")
    );
    let client = common::http_client();
    let run = Run::start(&simulator, &web, "http", &client).await;
    let url = |path| run.url("http", path);
    assert_eq!(status(&client, &url("/healthz"), None).await, Ok(200));
    let right = basic("prometheus", "scrape-pw");
    common::eventually(Duration::from_secs(10), "ready", || async {
        status(&client, &url("/readyz"), Some(&right)).await == Ok(200)
    })
    .await;
    for path in [
        "/readyz",
        "/metrics",
        "/",
        "/api/v1/connections",
        "/api/v1/orgs",
    ] {
        assert_eq!(
            status(&client, &url(path), None).await,
            Ok(401),
            "{path} without credentials"
        );
        let wrong = basic("prometheus", "view-pw");
        assert_eq!(
            status(&client, &url(path), Some(&wrong)).await,
            Ok(401),
            "{path} wrong"
        );
        let unknown = basic("nobody", "scrape-pw");
        assert_eq!(
            status(&client, &url(path), Some(&unknown)).await,
            Ok(401),
            "{path} unknown"
        );
        assert_eq!(
            status(&client, &url(path), Some(&right)).await,
            Ok(200),
            "{path} right"
        );
    }
    let response = client.get(url("/metrics")).send().await.expect("GET");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"credwatch\", charset=\"UTF-8\""
    );
    // The lifecycle endpoints are covered too (disabled here: 401 before 403).
    let response = client.post(url("/-/reload")).send().await.expect("POST");
    assert_eq!(response.status().as_u16(), 401);
    // A declared body over the cap is refused before anything reads it.
    let response = client
        .post(url("/-/reload"))
        .header("Authorization", basic("viewer", "view-pw"))
        .body(vec![b'x'; 70 * 1024])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 413);
    run.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_web_configuration_and_a_broken_one_keeps_the_old() {
    let simulator = Simulator::start().await.expect("simulator");
    let client = common::http_client();
    let run = Run::start(
        &simulator,
        &format!("basic_auth_users:\n  alice: '{}'\n", hash("alice-pw")),
        "http",
        &client,
    )
    .await;
    let url = run.url("http", "/metrics");
    let alice = basic("alice", "alice-pw");
    let bob = basic("bob", "bob-pw");
    assert_eq!(status(&client, &url, Some(&alice)).await, Ok(200));
    assert_eq!(status(&client, &url, Some(&bob)).await, Ok(401));

    run.rewrite(&format!("basic_auth_users:\n  bob: '{}'\n", hash("bob-pw")));
    run.signal("HUP");
    common::eventually(Duration::from_secs(10), "bob is let in", || async {
        status(&client, &url, Some(&bob)).await == Ok(200)
    })
    .await;
    assert_eq!(status(&client, &url, Some(&alice)).await, Ok(401));

    run.rewrite("tls_server_config:\n  cert_file: FIXTURES/localhost.pem\n  key_file: FIXTURES/localhost.key\n  min_version: TLS10\n");
    run.signal("HUP");
    let reload_failed = || async {
        let metrics = client
            .get(&url)
            .header("Authorization", &bob)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        common::sample(&metrics, "credwatch_config_last_reload_successful") == Some(0.0)
    };
    common::eventually(Duration::from_secs(10), "the reload fails", reload_failed).await;
    // Still plain HTTP, still bob.
    assert_eq!(status(&client, &url, Some(&bob)).await, Ok(200));
    assert_eq!(status(&client, &url, None).await, Ok(401));
    let stderr = run.stop().await;
    assert!(
        stderr.contains("tls_server_config.min_version"),
        "the failed reload names the key:\n{stderr}"
    );
}

#[tokio::test]
async fn a_broken_web_configuration_at_start_exits_2_naming_the_key() {
    let simulator = Simulator::start().await.expect("simulator");
    for (web, key) in [
        ("tls_server_config:\n  cert_file: FIXTURES/localhost.pem\n  key_file: FIXTURES/localhost.key\n  client_auth_type: RequireAnyClientCert\n", "tls_server_config.client_auth_type"),
        ("basic_auth_users:\n  prometheus: not-a-hash\n", "basic_auth_users.prometheus"),
        ("http_server_config:\n  headers:\n    Server: x\n", "http_server_config.headers.Server"),
        ("web_server_config: {}\n", "web_server_config"),
    ] {
        let mut run = Run::spawn(&simulator, web, &[]);
        let mut child = run.child.take().expect("running");
        let code = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
            .await
            .expect("join")
            .code();
        let stderr = run.stderr();
        assert_eq!(code, Some(2), "{web}:\n{stderr}");
        assert!(stderr.contains(key), "{key} is named:\n{stderr}");
        assert!(!stderr.contains("not-a-hash"), "the hash is not quoted:\n{stderr}");
    }
}

const RIGHT: &str = "cwcanary-web-right-3c81f0";
const WRONG: &str = "cwcanary-web-wrong-9d2a47";

#[tokio::test]
async fn the_web_configurations_passwords_never_show_in_trace_logs() {
    let simulator = Simulator::start().await.expect("simulator");
    let right_hash = hash(RIGHT);
    let web = format!("basic_auth_users:\n  prometheus: '{right_hash}'\n");
    let run = Run::spawn(&simulator, &web, &[("RUST_LOG", "trace")]);
    let client = common::http_client();
    let url = run.url("http", "/metrics");
    let deadline = Instant::now() + Duration::from_secs(15);
    while client
        .get(run.url("http", "/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "credwatch did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut pages = String::new();
    for auth in [
        basic("prometheus", RIGHT),
        basic("prometheus", WRONG),
        basic(WRONG, RIGHT),
    ] {
        let response = client
            .get(&url)
            .header("Authorization", &auth)
            .send()
            .await
            .expect("GET");
        pages.push_str(&response.text().await.expect("body"));
    }
    // Probes (which log at trace level) run meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A broken reload, whose error is about the users' hashes.
    run.rewrite(&format!(
        "basic_auth_users:\n  prometheus: '{right_hash}x'\n"
    ));
    run.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stderr = run.stop().await;
    assert!(stderr.contains("TRACE"), "trace logging was on");
    let everything = format!("{stderr}{pages}");
    for form in [
        RIGHT.to_string(),
        WRONG.to_string(),
        basic("prometheus", RIGHT),
        basic("prometheus", WRONG),
        right_hash.clone(),
        right_hash[7..].to_string(),
        "cwcanary".to_string(),
    ] {
        assert!(
            !everything.contains(&form),
            "credwatch showed {form}:\n{everything}"
        );
    }
}

#[tokio::test]
async fn a_changed_web_configuration_file_is_picked_up_without_a_signal() {
    let simulator = Simulator::start().await.expect("simulator");
    let client = common::http_client();
    let run = Run::start(
        &simulator,
        &format!("basic_auth_users:\n  alice: '{}'\n", hash("alice-pw")),
        "http",
        &client,
    )
    .await;
    let url = run.url("http", "/metrics");
    let bob = basic("bob", "bob-pw");
    assert_eq!(status(&client, &url, Some(&bob)).await, Ok(401));
    // The configuration's files are looked at every 5 s; the web configuration is one of them.
    run.rewrite(&format!("basic_auth_users:\n  bob: '{}'\n", hash("bob-pw")));
    common::eventually(Duration::from_secs(15), "bob is let in", || async {
        status(&client, &url, Some(&bob)).await == Ok(200)
    })
    .await;
    let stderr = run.stop().await;
    assert_eq!(
        stderr.matches("web configuration loaded").count(),
        2,
        "at start and on the reload: {stderr}"
    );
}
