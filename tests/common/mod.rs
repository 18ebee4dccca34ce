//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use credwatch::config::{Config, Connection};

/// One connection from a TOML fragment (the body of a `[[connection]]`).
pub fn connection(fragment: &str) -> Connection {
    let text = format!("[[connection]]\n{fragment}\n");
    match Config::from_sources(&[(PathBuf::from("test.toml"), text)]) {
        Ok(mut config) => config.connections.remove(0),
        Err(errors) => panic!("test configuration does not load:\n{errors}"),
    }
}

/// Awaits `future`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("did not finish within {limit:?}"),
    }
}

/// A resolver for which no name exists, so that tests see a DNS failure without asking a
/// DNS server.
pub struct NoSuchHost;

impl reqwest::dns::Resolve for NoSuchHost {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let message = format!("no such host: {}", name.as_str());
        Box::pin(async move {
            Err::<reqwest::dns::Addrs, _>(Box::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                message,
            ))
                as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

/// A plain HTTP client for talking to the daemon's endpoints. credwatch builds rustls with an
/// explicit provider; a default client needs one installed process-wide.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
