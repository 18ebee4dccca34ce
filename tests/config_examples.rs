//! Every configuration shipped in `config/` loads. Kept in its own test binary with one test:
//! it sets environment variables, which must not race other tests reading them.

use std::path::{Path, PathBuf};

use credwatch::config::{AuthMethod, Config, Kind};

/// Creates every `${CREDENTIALS_DIRECTORY}/NAME` a configuration names, and sets every
/// `token_env`/`password_env` variable, so that the shipped examples load as written.
fn provide_secrets(texts: &[String], credentials: &Path) {
    for text in texts {
        for part in text.split("${CREDENTIALS_DIRECTORY}/").skip(1) {
            let name: String = part.chars().take_while(|c| *c != '"').collect();
            let path = credentials.join(&name);
            if name.ends_with(".pem") {
                std::fs::copy("tests/fixtures/test-ca.pem", &path).expect("copy CA");
            } else {
                std::fs::write(&path, format!("example-secret-for-{name}\n"))
                    .expect("write secret");
            }
        }
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("token_env") || line.starts_with("password_env") {
                let var: String = line.split('"').nth(1).expect("quoted variable").to_owned();
                // SAFETY of set_var: this binary runs this one test only.
                std::env::set_var(var, "example-secret-from-env");
            }
        }
    }
}

fn all_texts(dir: &Path, texts: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            all_texts(&path, texts);
        } else if path.extension().is_some_and(|e| e == "toml") {
            texts.push(std::fs::read_to_string(&path).expect("read"));
        }
    }
}

#[test]
fn every_shipped_configuration_loads() {
    let credentials = tempfile::tempdir().expect("tempdir");
    std::env::set_var("CREDENTIALS_DIRECTORY", credentials.path());
    let mut texts = Vec::new();
    all_texts(Path::new("config"), &mut texts);
    provide_secrets(&texts, credentials.path());

    let mut loaded = Vec::new();
    for entry in std::fs::read_dir("config").expect("config/ exists") {
        let path: PathBuf = entry.expect("entry").path();
        match Config::load(&path) {
            Ok(config) => loaded.push((path, config)),
            Err(errors) => panic!("{} does not load:\n{errors}", path.display()),
        }
    }
    assert!(
        loaded.len() >= 2,
        "config/ holds the example and a directory"
    );

    let example = &loaded
        .iter()
        .find(|(path, _)| path.ends_with("example.toml"))
        .expect("config/example.toml")
        .1;
    assert_eq!(example.connections.len(), 15);
    // Confluence, each product and kind probed where its REST API is.
    let wiki = example.connection("wiki-prod-publisher").expect("wiki");
    assert_eq!(
        wiki.myself_url().as_str(),
        "https://wiki.example.com/confluence/rest/api/user/current"
    );
    let bitbucket = example.connection("bitbucket-ci-clone").expect("bitbucket");
    assert!(bitbucket.lists_tokens());
    assert!(bitbucket
        .myself_url()
        .as_str()
        .ends_with("/rest/api/latest/profile/recent/repos?limit=1"));
    let scoped = example.connection("wiki-cloud-scoped").expect("scoped");
    assert!(scoped.through_gateway());
    assert_ne!(
        example
            .connection("wiki-prod-legacy-sync")
            .and_then(|c| c.login_account()),
        None
    );
    // The node's own address and the site share one login account.
    let node = example
        .connection("jira-legacy-reports-node1")
        .expect("node1");
    assert_eq!(
        node.login_account(),
        example
            .connection("jira-legacy-reports")
            .and_then(|c| c.login_account())
    );
    assert_eq!(
        node.login_account(),
        Some("https://jira-legacy.example.com svc-reports")
    );
    assert!(
        example.warnings.is_empty(),
        "the example uses no inline secret"
    );
    let prod = example.connection("jira-prod").expect("jira-prod");
    assert_eq!(
        (prod.settings.kind, prod.settings.auth),
        (Kind::Server, AuthMethod::Pat)
    );
    assert_eq!(prod.url.as_str(), "https://jira.example.com/jira");
    assert_eq!(
        prod.myself_url().as_str(),
        "https://jira.example.com/jira/rest/api/2/myself"
    );
    assert_eq!(prod.settings.interval.as_secs(), 300);
    assert_eq!(
        prod.settings.labels.get("env").map(String::as_str),
        Some("prod")
    );
    assert_eq!(
        prod.settings.labels.get("team").map(String::as_str),
        Some("platform")
    );
    assert_eq!(prod.secret.expose(), "example-secret-for-jira-prod");
    let cloud = example.connection("acme-cloud-sync").expect("cloud");
    assert_eq!(
        (cloud.settings.kind, cloud.settings.auth),
        (Kind::Cloud, AuthMethod::ApiToken)
    );
    assert_eq!(
        cloud.myself_url().as_str(),
        "https://acme.atlassian.net/rest/api/3/myself"
    );
    assert_eq!(cloud.secret.expose(), "example-secret-from-env");
    let scoped = example.connection("acme-cloud-automation").expect("scoped");
    assert!(scoped.settings.scoped && scoped.through_gateway());
    assert_ne!(
        scoped.site(),
        cloud.site(),
        "a tenant behind the gateway has its own gate"
    );
    let cloud_sa = example
        .connection("acme-cloud-sync-sa")
        .expect("cloud service account");
    assert_eq!(cloud_sa.settings.auth, AuthMethod::OAuthClientCredentials);
    assert_eq!(
        cloud_sa.token_endpoint.as_ref().map(|u| u.as_str()),
        Some("https://auth.atlassian.com/oauth/token")
    );
    assert!(cloud_sa.settings.client_secret_expires_at.is_some());
    let dc_sa = example
        .connection("jira-prod-etl-sa")
        .expect("DC service account");
    assert_eq!(
        dc_sa.token_endpoint.as_ref().map(|u| u.as_str()),
        Some("https://jira.example.com/rest/oauth2/latest/token")
    );
    assert_ne!(
        dc_sa.token_site(),
        cloud_sa.token_site(),
        "each token endpoint has its gate"
    );
    let legacy = example.connection("jira-legacy-reports").expect("legacy");
    assert_eq!(legacy.ca.as_ref().map(|ca| ca.certs.len()), Some(1));
    assert_eq!(legacy.settings.timeout.as_secs(), 20);

    let directory = &loaded
        .iter()
        .find(|(path, _)| path.ends_with("conf.d"))
        .expect("config/conf.d")
        .1;
    assert_eq!(directory.files.len(), 3);
    assert_eq!(directory.connections.len(), 3);
    assert!(directory
        .connections
        .iter()
        .all(|c| c.settings.interval.as_secs() == 600));
}
