//! Canaries for the demo fleet's secrets and for service accounts: OAuth client secrets
//! (accepted and rejected), the access tokens they buy, and scoped API tokens (through the
//! gateway try) go through `check` and the daemon with trace-level logs; none may show in what
//! credwatch prints or serves.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::canary::{daemon_outputs, run, write_secret};
use credwatch::sim::{ApiToken, Simulator, Site, User};

#[tokio::test]
async fn the_demo_shows_none_of_its_secrets() {
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let everything = daemon_outputs(
        vec![
            "demo".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--interval".into(),
            "1s".into(),
        ],
        vec![("RUST_LOG", "trace".into())],
        base,
        tokio::time::sleep(Duration::from_secs(3)),
    )
    .await;
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    for member in credwatch::sim::fleet::members() {
        assert!(
            !everything.contains(member.secret),
            "the demo showed {}'s secret",
            member.name
        );
        if let Some(user) = member.username {
            let basic = b64(format!("{user}:{}", member.secret));
            assert!(
                !everything.contains(&basic),
                "the demo showed {}'s Basic credentials",
                member.name
            );
        }
    }
    assert!(
        !everything.contains(credwatch::sim::fleet::ORG_API_KEY),
        "the demo showed its organization's admin API key"
    );
    // The simulator's access tokens all start so: none may show, at trace level either.
    assert!(
        !everything.contains("simaccess-"),
        "the demo showed an access token"
    );
    assert!(
        everything.contains("credwatch_org_tokens{org=\"acme\""),
        "the demo's organization was read"
    );
}

const CLIENT_SECRET: &str = "cwcanary-client-secret-8b1e2a";
const CLIENT_SECRET_BAD: &str = "cwcanary-client-secret-bad-5f03c9";
const SCOPED_TOKEN: &str = "cwcanary-scoped-token-c47d18";

#[tokio::test]
async fn oauth_secrets_access_tokens_and_scoped_tokens_never_show() {
    use credwatch::sim::oauth::OAuthClient;
    let simulator = Simulator::start().await.expect("simulator");
    let account = "sa@serviceaccount.atlassian.com";
    simulator.add_site(
        "cloud",
        Site::cloud()
            .with_user(
                User::new("sa")
                    .with_email(account)
                    .with_api_token(ApiToken::scoped(SCOPED_TOKEN)),
            )
            .with_oauth_client(OAuthClient::new("canary-client", CLIENT_SECRET, account)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_secret(dir.path(), "client-secret", CLIENT_SECRET);
    let (gateway, auth) = (simulator.url("gateway"), simulator.url("auth"));
    let cloud = simulator.url("cloud");
    let oauth = |name: &str, secret_key: &str| {
        format!("[[connection]]\nname = \"{name}\"\nurl = \"{cloud}\"\nkind = \"cloud\"\nauth = \"oauth_client_credentials\"\nclient_id = \"canary-client\"\n{secret_key}\ngateway_url = \"{gateway}\"\ntoken_url = \"{auth}/oauth/token\"\n\n")
    };
    let config = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n{}{}[[connection]]\nname = \"scoped-on-site\"\nurl = \"{cloud}\"\nkind = \"cloud\"\nusername = \"{account}\"\ntoken_env = \"CANARY_SCOPED\"\ngateway_url = \"{gateway}\"\n",
        oauth("oauth-good", "client_secret_file = \"client-secret\""),
        oauth("oauth-bad", "client_secret_env = \"CANARY_CLIENT_BAD\""),
    );
    let path = dir.path().join("credwatch.toml");
    std::fs::write(&path, config).expect("write");
    let env = vec![
        ("RUST_LOG", "trace".to_string()),
        ("CANARY_CLIENT_BAD", CLIENT_SECRET_BAD.to_string()),
        ("CANARY_SCOPED", SCOPED_TOKEN.to_string()),
    ];
    let check = run(
        vec![
            "check".into(),
            "--config".into(),
            path.to_str().expect("path").into(),
            "--output".into(),
            "json".into(),
        ],
        env.clone(),
    )
    .await;
    let port = common::free_port();
    let daemon = daemon_outputs(
        vec![
            "--log-format".into(),
            "json".into(),
            "run".into(),
            "--config".into(),
            path.to_str().expect("path").into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        env,
        format!("http://127.0.0.1:{port}"),
        tokio::time::sleep(Duration::from_secs(3)),
    )
    .await;
    let check_out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        check_out.contains("client_rejected") && check_out.contains("scoped_token_site_url"),
        "{check_out}"
    );
    assert!(
        daemon.contains("client_rejected"),
        "the rejected client was probed"
    );
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    for (what, everything) in [("check", &check_out), ("the daemon", &daemon)] {
        for form in [
            CLIENT_SECRET.to_string(),
            CLIENT_SECRET_BAD.to_string(),
            SCOPED_TOKEN.to_string(),
            b64(format!("{account}:{SCOPED_TOKEN}")),
            b64(format!("canary-client:{CLIENT_SECRET}")),
            "simaccess-".to_string(),
            "cwcanary".to_string(),
        ] {
            assert!(!everything.contains(&form), "{what} showed {form}");
        }
    }
    assert!(
        simulator.issued_tokens() >= 2,
        "access tokens were issued and used"
    );
}
