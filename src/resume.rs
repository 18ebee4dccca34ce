//! `credwatch resume NAME`: asks the running daemon to lift a connection's pause, through
//! `POST /api/v1/connections/{name}/resume` (enabled with `--enable-lifecycle`, like
//! `/-/reload`), once a person has fixed the account.

use std::time::Duration;

/// Asks the daemon at `base` to resume `name`; prints what it said and returns the exit
/// code: 0 resumed, 1 not (not paused, unknown, owned by another replica of an HA group,
/// which is named, lifecycle disabled, daemon unreachable).
pub async fn run(base: &str, name: &str) -> u8 {
    let url = format!(
        "{}/api/v1/connections/{}/resume",
        base.trim_end_matches('/'),
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    // reqwest's rustls needs a process-wide provider; credwatch's own is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: cannot build an HTTP client: {error}");
            return 1;
        }
    };
    match client.post(&url).send().await {
        Ok(response) => {
            let code = response.status();
            let text = response.text().await.unwrap_or_default();
            if code.is_success() {
                print!("{text}");
                0
            } else if code == reqwest::StatusCode::MISDIRECTED_REQUEST {
                let owner = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["owned_by_replica"].as_u64());
                match owner {
                    Some(owner) => eprintln!(
                        "error: replica {owner} of the HA group owns the login account of {name} and sends its logins: resume it there (credwatch resume {name} --url <replica {owner}'s address>)"
                    ),
                    None => eprint!("error: {code}: {text}"),
                }
                1
            } else {
                eprint!("error: {code}: {text}");
                1
            }
        }
        Err(error) => {
            eprintln!("error: cannot reach the daemon at {base}: {error}");
            1
        }
    }
}
