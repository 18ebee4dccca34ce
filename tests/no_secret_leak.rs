//! Canary secrets for every auth type and every secret source go through `check` (table and
//! JSON) and `validate`, with trace-level logs in both formats, through successes, rejections,
//! network failures and configuration errors: neither a canary nor the Basic base64 form that
//! carries it may appear anywhere in stdout or stderr. The demo's secrets and the service
//! accounts' (OAuth, scoped tokens): `no_secret_leak_service_accounts.rs`.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::canary::{daemon_outputs, run, write_secret};
use credwatch::sim::{ApiToken, Front, Pat, Simulator, Site, User};

const PAT_FILE: &str = "cwcanary-pat-file-7f3a91";
const PAT_ENV: &str = "cwcanary-pat-env-c2d4e8";
const PAT_INLINE: &str = "cwcanary-pat-inline-0b7e55";
const API_TOKEN: &str = "cwcanary-api-token-9a1f20";
const BASIC_GOOD: &str = "cwcanary-basic-good-4d6c13";
const BASIC_BAD: &str = "cwcanary-basic-bad-e85b07";
const CLOUD_PASSWORD: &str = "cwcanary-cloud-password-31aa6f";
const URL_PASSWORD: &str = "cwcanary-url-password-77c0de";
const SYNTAX: &str = "cwcanary-syntax-5e2b19";
const ADMIN_KEY_FILE: &str = "cwcanary-admin-key-file-61d0c4";
const ADMIN_KEY_ENV: &str = "cwcanary-admin-key-env-2e9b77";
const ADMIN_KEY_INLINE: &str = "cwcanary-admin-key-inline-a4f3e1";

/// Every form in which a secret could leak.
fn forbidden_forms() -> Vec<String> {
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    let mut forms: Vec<String> = [
        PAT_FILE,
        PAT_ENV,
        PAT_INLINE,
        API_TOKEN,
        BASIC_GOOD,
        BASIC_BAD,
        CLOUD_PASSWORD,
        URL_PASSWORD,
        SYNTAX,
        ADMIN_KEY_FILE,
        ADMIN_KEY_ENV,
        ADMIN_KEY_INLINE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    forms.push(b64(format!("bot@acme.example:{API_TOKEN}")));
    forms.push(b64(format!("svc-legacy:{BASIC_GOOD}")));
    forms.push(b64(format!("svc-legacy:{BASIC_BAD}")));
    forms.push(b64(format!("analyst@acme.example:{CLOUD_PASSWORD}")));
    for key in [ADMIN_KEY_FILE, ADMIN_KEY_ENV, ADMIN_KEY_INLINE] {
        forms.push(format!("Bearer {key}"));
    }
    // Any stretch of the canaries' common prefix would betray a partial leak too.
    forms.push("cwcanary".to_owned());
    forms
}

fn assert_clean(what: &str, output: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for form in forbidden_forms() {
        assert!(
            !stdout.contains(&form),
            "{what}: stdout shows {form}:\n{stdout}"
        );
        assert!(
            !stderr.contains(&form),
            "{what}: stderr shows {form}:\n{stderr}"
        );
    }
}

/// A Data Center site that accepts the file PAT canary and the good Basic canary.
fn canary_site() -> Site {
    Site::server()
        .with_user(User::new("svc-ci").with_pat(Pat::new(1, "credwatch", PAT_FILE, Some(30))))
        .with_user(User::new("svc-legacy").with_password(BASIC_GOOD))
}

#[tokio::test]
async fn no_output_or_log_shows_a_secret() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", canary_site());
    simulator.add_site("dc-hang", Site::server().with_front(Front::Hang));
    // Confluence: the same canaries, through its own answers (a rejected PAT is a 200).
    simulator.add_site(
        "wiki",
        Site {
            product: credwatch::sim::Product::Confluence,
            ..canary_site()
        },
    );
    // Bitbucket: the same canaries, its token as Bearer and a wrong password.
    simulator.add_site(
        "bb",
        Site {
            product: credwatch::sim::Product::Bitbucket,
            captcha_after: 5,
            ..canary_site()
        },
    );
    simulator.add_site(
        "wiki-cloud",
        Site::confluence_cloud().with_user(
            User::new("bot")
                .with_email("bot@acme.example")
                .with_api_token(ApiToken::new(API_TOKEN)),
        ),
    );
    simulator.add_site(
        "cloud",
        Site::cloud()
            .with_user(
                User::new("bot")
                    .with_email("bot@acme.example")
                    .with_api_token(ApiToken::new(API_TOKEN)),
            )
            .with_user(
                User::new("analyst")
                    .with_email("analyst@acme.example")
                    .with_password(CLOUD_PASSWORD),
            ),
    );
    simulator.add_org_api(
        "admin",
        credwatch::sim::admin::OrgApi::new("org-1", ADMIN_KEY_FILE).with_token(
            credwatch::sim::admin::OrgApiToken::new("bot@acme.example", "ci", 30),
        ),
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);

    let dir = tempfile::tempdir().expect("tempdir");
    write_secret(dir.path(), "admin-key", ADMIN_KEY_FILE);
    write_secret(dir.path(), "pat", PAT_FILE);
    write_secret(dir.path(), "api", API_TOKEN);
    write_secret(dir.path(), "basic-good", BASIC_GOOD);
    write_secret(dir.path(), "cloud-password", CLOUD_PASSWORD);
    let dc = simulator.url("dc");
    let cloud = simulator.url("cloud");
    let hang = simulator.url("dc-hang");
    let wiki = simulator.url("wiki");
    let bb = simulator.url("bb");
    let wiki_cloud = simulator.url("wiki-cloud");
    let tls = format!("https://{}/dc", simulator.addr());
    let admin = simulator.url("admin");
    let config = format!(
        r#"
[[atlassian_org]]
name = "acme"
org_id = "org-1"
api_key_file = "admin-key"
api_url = "{admin}"

[[atlassian_org]]
name = "wrong-env-key"
org_id = "org-1"
api_key_env = "CANARY_ADMIN_KEY"
api_url = "{admin}"

[[atlassian_org]]
name = "wrong-inline-key"
org_id = "org-1"
api_key = "{ADMIN_KEY_INLINE}"
api_url = "{admin}"

[[connection]]
name = "pat-file"
url = "{dc}"
token_file = "pat"

[[connection]]
name = "pat-env-rejected"
url = "{dc}"
token_env = "CANARY_PAT"

[[connection]]
name = "pat-inline-rejected"
url = "{dc}"
token = "{PAT_INLINE}"

[[connection]]
name = "api-token"
url = "{cloud}"
kind = "cloud"
username = "bot@acme.example"
token_file = "api"
org = "acme"

[[connection]]
name = "cloud-password"
url = "{cloud}"
kind = "cloud"
username = "analyst@acme.example"
token_file = "cloud-password"

[[connection]]
name = "basic-good"
url = "{dc}"
auth = "basic"
username = "svc-legacy"
password_file = "basic-good"

[[connection]]
name = "basic-bad"
url = "{dc}"
auth = "basic"
username = "svc-legacy"
password_env = "CANARY_BASIC"

[[connection]]
name = "refused"
url = "http://127.0.0.1:{closed_port}/jira"
token_file = "pat"

[[connection]]
name = "tls-failure"
url = "{tls}"
token_file = "pat"

[[connection]]
name = "hanging"
url = "{hang}"
token_file = "pat"
timeout = "500ms"

[[connection]]
name = "wiki-pat-file"
product = "confluence"
url = "{wiki}"
token_file = "pat"

[[connection]]
name = "wiki-pat-env-anonymous"
product = "confluence"
url = "{wiki}"
token_env = "CANARY_PAT"

[[connection]]
name = "wiki-basic-bad"
product = "confluence"
url = "{wiki}"
auth = "basic"
username = "svc-legacy"
password_env = "CANARY_BASIC"

[[connection]]
name = "bb-token-file"
product = "bitbucket"
url = "{bb}"
token_file = "pat"

[[connection]]
name = "bb-token-env-rejected"
product = "bitbucket"
url = "{bb}"
token_env = "CANARY_PAT"

[[connection]]
name = "bb-basic-bad"
product = "bitbucket"
url = "{bb}"
auth = "basic"
username = "svc-legacy"
password_env = "CANARY_BASIC"

[[connection]]
name = "wiki-cloud"
product = "confluence"
url = "{wiki_cloud}/wiki"
kind = "cloud"
username = "bot@acme.example"
token_file = "api"
"#
    );
    let path = dir.path().join("credwatch.toml");
    std::fs::write(&path, config).expect("config");
    let path = path.to_str().expect("utf-8").to_owned();
    let env = || {
        vec![
            ("CANARY_PAT", PAT_ENV.to_owned()),
            ("CANARY_BASIC", BASIC_BAD.to_owned()),
            ("CANARY_ADMIN_KEY", ADMIN_KEY_ENV.to_owned()),
            ("RUST_LOG", "trace".to_owned()),
        ]
    };

    for (what, args) in [
        ("check table", vec!["check", "--config", &path]),
        (
            "check json",
            vec!["check", "--config", &path, "--output", "json"],
        ),
        (
            "check json logs",
            vec!["--log-format", "json", "check", "--config", &path],
        ),
        (
            "check orgs json",
            vec!["check", "--config", &path, "--orgs", "--output", "json"],
        ),
        ("check orgs", vec!["check", "--config", &path, "--orgs"]),
        ("validate", vec!["validate", "--config", &path]),
        (
            "validate json logs",
            vec!["--log-format", "json", "validate", "--config", &path],
        ),
    ] {
        let output = run(args.iter().map(|s| s.to_string()).collect(), env()).await;
        assert!(!output.stderr.is_empty(), "{what}: trace logging is on");
        assert!(
            output.status.code() == Some(0) || output.status.code() == Some(1),
            "{what}: {output:?}"
        );
        assert_clean(what, &output);
    }
    assert!(
        simulator.requests_for("dc").len() >= 6,
        "the probes did reach Jira with the secrets"
    );
    assert!(
        simulator
            .requests_for("admin")
            .iter()
            .any(|r| r.authorization.as_deref() == Some(&format!("Bearer {ADMIN_KEY_FILE}"))),
        "the admin key did reach the organization admin API"
    );

    // Configuration errors on connections that hold secrets, and a TOML syntax error on the
    // line of an inline secret.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        format!(
            "[[connection]]\nname = \"a\"\nurl = \"https://bot:{URL_PASSWORD}@jira.example.com\"\ntoken = \"{PAT_INLINE}\"\n\n[[connection]]\nname = \"b\"\nurl = \"https://jira.example.com\"\ntoken = \"{PAT_INLINE}\"\ntimeout = \"10m\"\n"
        ),
    )
    .expect("write");
    let syntax = dir.path().join("syntax.toml");
    std::fs::write(
        &syntax,
        format!("[[connection]]\nname = \"a\"\ntoken = \"{SYNTAX}\nurl = \"https://jira.example.com\"\n"),
    )
    .expect("write");
    for file in [&broken, &syntax] {
        let file = file.to_str().expect("utf-8").to_owned();
        for command in ["check", "validate"] {
            let output = run(vec![command.into(), "--config".into(), file.clone()], env()).await;
            assert_eq!(
                output.status.code(),
                Some(2),
                "{command} {file}: {output:?}"
            );
            assert!(String::from_utf8_lossy(&output.stderr).contains("error: "));
            assert_clean(&format!("{command} {file}"), &output);
        }
    }
}

#[tokio::test]
async fn the_daemon_shows_no_secret_through_faults_a_reload_and_trace_logs() {
    use credwatch::sim::fault::{Fault, FaultServer};
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", canary_site());
    simulator.add_site(
        "cloud",
        Site::cloud().with_user(
            User::new("bot")
                .with_email("bot@acme.example")
                .with_api_token(ApiToken::new(API_TOKEN)),
        ),
    );
    let mut faults = Vec::new();
    let mut fault_toml = String::new();
    for (i, fault) in [
        Fault::Silent,
        Fault::NotHttp,
        Fault::ResetMidResponse,
        Fault::InvalidUtf8,
        Fault::TlsAlert,
    ]
    .into_iter()
    .enumerate()
    {
        let server = FaultServer::start(fault).await.expect("fault server");
        let scheme = if fault == Fault::TlsAlert {
            "https"
        } else {
            "http"
        };
        fault_toml.push_str(&format!(
            "[[connection]]\nname = \"fault-{i}\"\nurl = \"{}\"\nauth = \"basic\"\nusername = \"svc-legacy\"\npassword_env = \"CANARY_BASIC\"\n\n",
            server.url(scheme)
        ));
        faults.push(server);
    }
    simulator.add_org_api(
        "admin",
        credwatch::sim::admin::OrgApi::new("org-1", ADMIN_KEY_FILE).with_token(
            credwatch::sim::admin::OrgApiToken::new("bot@acme.example", "ci", 30),
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_secret(dir.path(), "pat", PAT_FILE);
    write_secret(dir.path(), "api", API_TOKEN);
    write_secret(dir.path(), "admin-key", ADMIN_KEY_FILE);
    let orgs = format!(
        "[[atlassian_org]]\nname = \"acme\"\norg_id = \"org-1\"\napi_key_file = \"admin-key\"\napi_url = \"{0}\"\n\n[[atlassian_org]]\nname = \"wrong\"\norg_id = \"org-1\"\napi_key = \"{ADMIN_KEY_INLINE}\"\napi_url = \"{0}\"\n\n",
        simulator.url("admin")
    );
    let config = |extra: &str| {
        format!(
            "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n{orgs}[[connection]]\nname = \"pat\"\nurl = \"{}\"\ntoken_file = \"pat\"\n\n[[connection]]\nname = \"inline\"\nurl = \"{}\"\ntoken = \"{PAT_INLINE}\"\n\n[[connection]]\nname = \"cloud\"\nurl = \"{}\"\nkind = \"cloud\"\nusername = \"bot@acme.example\"\ntoken_file = \"api\"\norg = \"acme\"\n\n[[connection]]\nname = \"basic\"\nurl = \"{}\"\nauth = \"basic\"\nusername = \"svc-legacy\"\npassword_env = \"CANARY_BASIC_GOOD\"\n\n{fault_toml}{extra}",
            simulator.url("dc"),
            simulator.url("dc"),
            simulator.url("cloud"),
            simulator.url("dc"),
        )
    };
    let path = dir.path().join("credwatch.toml");
    std::fs::write(&path, config("")).expect("write");
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let reload_path = path.clone();
    let reloaded = config(&format!(
        "[[connection]]\nname = \"added\"\nurl = \"{}\"\ntoken_env = \"CANARY_PAT\"\n",
        simulator.url("dc")
    ));
    let client = common::http_client();
    let reload_base = base.clone();
    let work = async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        std::fs::write(&reload_path, reloaded).expect("write");
        let response = client
            .post(format!("{reload_base}/-/reload"))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 200);
        // A broken reload reports errors about connections that hold secrets.
        std::fs::write(&reload_path, format!("[[connection]]\nname = \"x\"\nurl = \"https://u:{URL_PASSWORD}@jira.example.com\"\ntoken = \"{PAT_INLINE}\"\n")).expect("write");
        let response = client
            .post(format!("{reload_base}/-/reload"))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 500);
        let body = response.text().await.expect("body");
        assert!(
            !body.contains(URL_PASSWORD) && !body.contains(PAT_INLINE),
            "{body}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let everything = daemon_outputs(
        vec![
            "--log-format".into(),
            "json".into(),
            "run".into(),
            "--config".into(),
            path.to_str().expect("path").into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--enable-lifecycle".into(),
        ],
        vec![
            ("RUST_LOG", "trace".into()),
            ("CANARY_BASIC", BASIC_BAD.into()),
            ("CANARY_BASIC_GOOD", BASIC_GOOD.into()),
            ("CANARY_PAT", PAT_ENV.into()),
        ],
        base,
        work,
    )
    .await;
    assert!(
        everything.contains("\"level\":\"TRACE\""),
        "trace logging was on"
    );
    assert!(
        faults.iter().all(|f| f.connections() >= 1),
        "every fault was probed"
    );
    for form in forbidden_forms() {
        assert!(!everything.contains(&form), "the daemon showed {form}");
    }
}
