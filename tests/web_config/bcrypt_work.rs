//! bcrypt's work, counted rather than timed, through the binary: each verification is logged at
//! DEBUG (`basic auth verification started` with its cost, its client's address, whether the
//! address was a suspect, how many verifications it waited behind and the workers busy; then
//! `finished`). The tests count those lines.
//!
//! The load test's user has a cost-18 hash, as the (a verification takes 17-35 s on the
//! 2-core machine): the test never waits for one to end. Its attackers first send a random name
//! (the cost-10 decoy), so that each address is a suspect within a second or two; from then on
//! at most one worker (of two) runs their guesses, and the fresh client finds the other free.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credwatch::sim::Simulator;

use crate::common;
use crate::run::{basic, events, hash, status, Run};

/// bcrypt, cost 18, of a password nobody kept (made once: 35 s).
const COST_18: &str = "$2b$18$p2Pdh7PunyP1J/9C6xNm8ujnQo7SNSkALkCdZj2.ka9JCUmLE1SkS";

const DEBUG: (&str, &str) = ("RUST_LOG", "info,credwatch::webconfig=debug");

const STARTED: &str = "basic auth verification started";
const FINISHED: &str = "basic auth verification finished";

fn costs(stderr: &str) -> Vec<u32> {
    events(stderr, STARTED)
        .iter()
        .map(|e| e["cost"].parse().expect("a cost"))
        .collect()
}

fn random_name() -> String {
    format!("guess-{:016x}", fastrand::u64(..))
}

/// The workers credwatch runs: one per core, two at least.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

#[tokio::test]
async fn an_unknown_name_costs_the_decoys_work_whatever_the_configured_costs() {
    let simulator = Simulator::start().await.expect("simulator");
    let client = common::http_client();
    for web in [
        format!("basic_auth_users:\n  prometheus: '{}'\n", hash("scrape-pw")),
        format!(
            "basic_auth_users:\n  prometheus: '{}'\n  bob: '{COST_18}'\n",
            hash("scrape-pw")
        ),
    ] {
        let run = Run::start_with(&simulator, &web, "http", &client, &[DEBUG]).await;
        let url = run.url("http", "/metrics");
        for _ in 0..4 {
            let guess = basic(&random_name(), "guess");
            assert_eq!(status(&client, &url, Some(&guess)).await, Ok(401));
        }
        assert_eq!(status(&client, &url, Some("Basic !!!")).await, Ok(401));
        assert_eq!(status(&client, &url, None).await, Ok(401));
        let wrong = basic("prometheus", "guess");
        assert_eq!(status(&client, &url, Some(&wrong)).await, Ok(401));
        let right = basic("prometheus", "scrape-pw");
        for _ in 0..3 {
            assert_eq!(status(&client, &url, Some(&right)).await, Ok(200));
        }
        let stderr = run.stop().await;
        assert_eq!(
            costs(&stderr),
            [10, 10, 10, 10, 4, 4],
            "four unknown names: the decoy's cost 10 each, never 18; nothing for a malformed or \
             missing header; the wrong and the first right password: the user's cost 4; the \
             right one remembered after"
        );
    }
}

/// One attacker: from `address`, `loops` request loops of at most `requests` each, a random
/// name first, then random names and wrong passwords for bob; `failed` once any got its 401.
async fn attack(
    url: String,
    address: IpAddr,
    loops: usize,
    requests: usize,
    failed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .local_address(address)
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..loops {
        let (client, url, failed, stop) =
            (client.clone(), url.clone(), failed.clone(), stop.clone());
        tasks.spawn(async move {
            for n in 0..requests {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let auth = if n == 0 || fastrand::bool() {
                    basic(&random_name(), "guess")
                } else {
                    basic("bob", &format!("guess-{}", fastrand::u32(..)))
                };
                match status(&client, &url, Some(&auth)).await {
                    Ok(code) => {
                        assert_eq!(code, 401);
                        failed.store(true, Ordering::Relaxed);
                    }
                    // The server is gone: the test is over.
                    Err(_) => return,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[tokio::test]
async fn twenty_guessing_clients_leave_a_fresh_client_a_worker() {
    let simulator = Simulator::start().await.expect("simulator");
    let web = format!(
        "basic_auth_users:\n  bob: '{COST_18}'\n  prometheus: '{}'\n",
        bcrypt::hash("scrape-pw", 10).expect("hash")
    );
    let client = common::http_client();
    let run = Run::start_with(&simulator, &web, "http", &client, &[DEBUG]).await;
    let url = run.url("http", "/metrics");
    let stop = Arc::new(AtomicBool::new(false));
    let failed: Vec<Arc<AtomicBool>> = (0..20).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let attackers: Vec<_> = (0..20u8)
        .map(|i| {
            let address = IpAddr::from([127, 0, 0, 2 + i]);
            tokio::spawn(attack(
                url.clone(),
                address,
                2,
                6,
                failed[usize::from(i)].clone(),
                stop.clone(),
            ))
        })
        .collect();
    common::eventually(
        Duration::from_secs(60),
        "every attacker failed once and bob's cost-18 hash is being tried",
        || async {
            failed.iter().all(|f| f.load(Ordering::Relaxed)) && costs(&run.stderr()).contains(&18)
        },
    )
    .await;

    let fresh = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 1]))
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let began = Instant::now();
    let answer = status(&fresh, &url, Some(&basic("prometheus", "scrape-pw"))).await;
    let latency = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    let stderr = run.stderr();
    drop(run);
    for attacker in attackers {
        let _ = tokio::time::timeout(Duration::from_secs(10), attacker).await;
    }
    assert_eq!(answer, Ok(200), "{stderr}");

    let started = events(&stderr, STARTED);
    let own = started
        .iter()
        .position(|e| e["client"] == "127.0.0.1")
        .expect("the fresh client's verification");
    let waited: usize = started[own]["waited_behind"].parse().expect("a count");
    let before = &started[..own];
    let dear = before.iter().filter(|e| e["cost"] == "18").count();
    eprintln!(
        "load: {} verifications before the fresh client's ({dear} of cost 18); it waited behind \
         {waited} (workers: {}); its /metrics took {latency:?}",
        before.len(),
        workers()
    );
    assert!(waited <= workers(), "waited behind {waited} verifications");
    assert!(dear >= 1, "a cost-18 verification was running or done");
    check_the_rules(&stderr);
}

/// From the log: no address ever had two verifications in flight, and a suspect never took the
/// last free worker.
fn check_the_rules(stderr: &str) {
    let mut in_flight: HashMap<String, String> = HashMap::new();
    let mut suspects = 0;
    for line in stderr.lines() {
        let is_start = line.contains(STARTED);
        if !is_start && !line.contains(FINISHED) {
            continue;
        }
        let fields = &events(line, if is_start { STARTED } else { FINISHED })[0];
        let client = fields["client"].clone();
        if is_start {
            if let Some(seq) = in_flight.insert(client.clone(), fields["seq"].clone()) {
                panic!("{client} started a verification while {seq} ran");
            }
            if fields["suspect"] == "true" {
                suspects += 1;
                let busy: usize = fields["busy"].parse().expect("busy");
                assert!(
                    busy < workers(),
                    "a suspect took the last free worker: {line}"
                );
            }
        } else {
            assert_eq!(
                in_flight.remove(&client),
                Some(fields["seq"].clone()),
                "{line}"
            );
        }
    }
    assert!(suspects > 0, "the attackers were suspects");
}
