//! HTTPS probes: a Jira with a certificate from a private CA is trusted through `ca_file`,
//! and refused (`tls_error`) without it.

mod common;

use std::time::Duration;

use credwatch::config::Connection;
use credwatch::probe::{Prober, Reason, State};
use credwatch::sim::{Pat, Simulator, Site, User};

use common::{connection, within};

const CERT: &[u8] = include_bytes!("fixtures/localhost.pem");
const KEY: &[u8] = include_bytes!("fixtures/localhost.key");

/// The simulator over TLS, with a certificate from the test CA, serving site "dc" whose
/// user holds the PAT "pat-tls".
async fn tls_simulator() -> Simulator {
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
    simulator
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_file_only() {
    let simulator = tls_simulator().await;
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

/// A reload reads `ca_file` again: new contents under the same path must be what the next
/// probe trusts, and connections made under the old roots must not be reused.
#[tokio::test]
async fn a_ca_file_whose_contents_change_is_trusted_as_it_reads_now() {
    let simulator = tls_simulator().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    let load = |pem: &str| {
        std::fs::copy(pem, &ca).expect("copy CA");
        connection(&format!(
            "name = \"c\"\nurl = \"{}\"\ntoken = \"pat-tls\"\nca_file = \"{}\"",
            simulator.url("dc"),
            ca.display()
        ))
    };
    let prober = Prober::new().expect("prober");
    let probe = |connection: Connection| {
        let prober = prober.clone();
        async move {
            let outcome = within(Duration::from_secs(10), prober.probe(&connection)).await;
            (outcome.state, outcome.reason)
        }
    };

    // Trusted, and the connection is kept alive...
    let trusted = load("tests/fixtures/test-ca.pem");
    assert_eq!(probe(trusted.clone()).await, (State::Valid, Reason::Ok));
    assert_eq!(probe(trusted).await, (State::Valid, Reason::Ok));
    // ...then the file holds another CA: the kept connection is not used.
    let other = load("tests/fixtures/faults/fault-ca.pem");
    assert_eq!(probe(other).await, (State::Unknown, Reason::TlsError));
    // And back: trusted again, under the same path.
    let again = load("tests/fixtures/test-ca.pem");
    assert_eq!(probe(again).await, (State::Valid, Reason::Ok));
    assert_eq!(simulator.requests_for("dc").len(), 3);
}
