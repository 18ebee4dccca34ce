//! A connection's loop on tokio's paused clock, with a fake cycle that answers as each test
//! says and records when it was asked: hours of virtual time in milliseconds, no network.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use http::HeaderValue;
use tokio::time::Instant;

use super::probe_loop::Cycler;
use super::Scheduler;
use crate::config::{Config, Connection, CredentialError};
use crate::probe::{
    Cycle, Facts, LastMyself, Outcome, Prober, RateLimit, Reason, RetryAfter, State, TokenRequest,
};
use crate::state::Board;
use crate::store::{Loaded, Store};

/// Answers every cycle with `answer(n)` (n counts from 0) and records when it was asked.
struct Fake {
    answer: fn(usize) -> (State, Reason, Option<u64>),
    asked: Mutex<Vec<Instant>>,
}

impl Cycler for Fake {
    fn cycle<'a>(
        &'a self,
        _connection: &'a Connection,
        _authorization: &'a Result<HeaderValue, CredentialError>,
        _facts: Facts,
        _memory: &'a mut LastMyself,
        _list_due: bool,
    ) -> Pin<Box<dyn Future<Output = Cycle> + Send + 'a>> {
        let n = {
            let mut asked = self.asked.lock().expect("lock");
            asked.push(Instant::now());
            asked.len() - 1
        };
        let (state, reason, retry_after) = (self.answer)(n);
        let outcome = Outcome {
            state,
            reason,
            http_status: None,
            latency: Duration::ZERO,
            identity: None,
            rate_limit: RateLimit::default(),
            retry_after: retry_after.map(RetryAfter::Seconds),
            hint: None,
            detail: None,
            finished_at: Utc::now(),
            token_request: TokenRequest::None,
        };
        Box::pin(async move {
            Cycle {
                outcome,
                list: None,
                gateway: None,
            }
        })
    }
}

/// Runs the one connection of `toml` for `hours` of virtual time; returns when each cycle
/// was asked for, from the start.
async fn run(
    toml: &str,
    answer: fn(usize) -> (State, Reason, Option<u64>),
    hours: u64,
) -> Vec<Duration> {
    let config = Config::from_sources(&[("t.toml".into(), toml.to_owned())]).expect("loads");
    let fake = Arc::new(Fake {
        answer,
        asked: Mutex::default(),
    });
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let logins = Arc::new(Store::open_memory().expect("memory"));
    let mut scheduler = Scheduler::new(
        Prober::new().expect("prober"),
        Board::new(),
        config.globals,
        shutdown,
        None,
        logins,
        Loaded::default(),
    );
    Arc::get_mut(&mut scheduler.shared)
        .expect("not shared yet")
        .cycler = fake.clone();
    let started = Instant::now();
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(hours * 3600)).await;
    scheduler.stop_all(Duration::from_secs(1)).await;
    let asked = fake.asked.lock().expect("lock").clone();
    asked.into_iter().map(|at| at - started).collect()
}

const PAT: &str = "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\ninterval = \"5m\"\n";

#[tokio::test(start_paused = true)]
async fn a_valid_credential_is_probed_once_an_interval_and_never_early() {
    let asked = run(PAT, |_| (State::Valid, Reason::Ok, None), 1).await;
    // The first within the first interval, then one every 5 minutes.
    assert!(asked[0] < Duration::from_secs(300), "{asked:?}");
    assert!((12..=13).contains(&asked.len()), "{asked:?}");
    for pair in asked.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_secs(300),
            "probed {gap:?} after the last"
        );
        assert!(
            gap < Duration::from_secs(301),
            "probed {gap:?} after the last"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn two_names_of_one_account_get_two_failed_logins_in_a_day_and_no_third() {
    // Two connections that log in as one user to one Jira: one budget, as Jira counts one.
    let basic = |name: &str| {
        format!("[[connection]]\nname = \"{name}\"\nurl = \"https://jira.example.com\"\nauth = \"basic\"\nusername = \"svc\"\npassword = \"wrong\"\ninterval = \"1m\"\nauth_failure_interval = \"1m\"\n\n")
    };
    let toml = basic("a") + &basic("b");
    let asked = run(&toml, |_| (State::Invalid, Reason::Unauthorized, None), 24).await;
    assert_eq!(asked.len(), 2, "{asked:?}");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_holds_the_site_until_retry_after() {
    let asked = run(
        PAT,
        |n| match n {
            0 => (State::Unknown, Reason::RateLimited, Some(3600)),
            _ => (State::Valid, Reason::Ok, None),
        },
        2,
    )
    .await;
    assert!(asked.len() >= 2, "{asked:?}");
    let gap = asked[1] - asked[0];
    assert!(
        gap >= Duration::from_secs(3600),
        "probed {gap:?} after a Retry-After of an hour"
    );
}

#[tokio::test(start_paused = true)]
async fn no_verdict_backs_off_doubling_to_its_cap() {
    let backoff = "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\ninterval = \"1m\"\nbackoff_initial = \"1m\"\nbackoff_max = \"16m\"\n";
    let asked = run(backoff, |_| (State::Unknown, Reason::ServerError, None), 2).await;
    let gaps: Vec<u64> = asked.windows(2).map(|p| (p[1] - p[0]).as_secs()).collect();
    // Doubling (with jitter in [0.7, 1.3]) up to the cap, never under the interval.
    assert!(gaps.iter().all(|g| *g >= 60), "{gaps:?}");
    assert!(
        gaps.iter().any(|g| *g >= 16 * 60 * 7 / 10),
        "reaches the cap: {gaps:?}"
    );
    assert!(gaps.iter().all(|g| *g <= 16 * 60 * 13 / 10 + 1), "{gaps:?}");
}
