//! HTTPS probes: a Jira with a certificate from a private CA is trusted through `ca_file`,
//! and refused (`tls_error`) without it.

mod common;

use std::time::Duration;

use credwatch::probe::{Prober, Reason, State};
use credwatch::sim::{Pat, Simulator, Site, User};

use common::{connection, within};

const CERT: &[u8] = include_bytes!("fixtures/localhost.pem");
const KEY: &[u8] = include_bytes!("fixtures/localhost.key");

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_file_only() {
    let simulator = Simulator::start_tls(CERT, KEY)
        .await
        .expect("TLS simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_pat(Pat::new(
            1,
            "credwatch",
            "pat-tls",
            None,
        ))),
    );
    let url = simulator.url("dc");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let prober = Prober::new().expect("prober");

    let trusted = connection(&format!(
        "name = \"trusted\"\nurl = \"{url}\"\ntoken = \"pat-tls\"\nca_file = \"tests/fixtures/test-ca.pem\""
    ));
    let outcome = within(Duration::from_secs(10), prober.probe(&trusted)).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Valid, Reason::Ok),
        "{:?}",
        outcome.detail
    );

    let untrusted = connection(&format!(
        "name = \"untrusted\"\nurl = \"{url}\"\ntoken = \"pat-tls\""
    ));
    let outcome = within(Duration::from_secs(10), prober.probe(&untrusted)).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Unknown, Reason::TlsError),
        "{:?}",
        outcome.detail
    );
    assert!(outcome.hint.is_some_and(|h| h.contains("ca_file")));

    // The untrusted handshake never reached Jira; the trusted probe did, once.
    assert_eq!(simulator.requests_for("dc").len(), 1);
}
