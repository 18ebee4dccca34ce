//! The promises of the HTTP client (reqwest), against a raw TCP server that counts
//! connections and requests: probes of a site share one kept-alive connection; a body cut at
//! the cap takes its connection with it; a server that closes a kept-alive connection after
//! reading the request gets no second copy of it (a Basic login is never sent twice, a token
//! neither), and the probe reports `connect_error`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credwatch::probe::{Prober, Reason, State, BODY_CAP};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

const MYSELF: &str = r#"{"name":"svc","key":"JIRAUSER10000","displayName":"svc","active":true}"#;

/// What the server does with the n-th request (from 0) it reads on a connection.
#[derive(Clone, Copy)]
enum Script {
    /// Answers every request with `myself`, keeping the connection alive.
    KeepAlive,
    /// Answers the first request of each connection, then reads the next one and closes
    /// without a byte of answer.
    CloseAfterFirst,
    /// Answers with a body of twice the cap, once per connection.
    Huge,
}

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    requests: Mutex<Vec<String>>,
}

async fn serve(script: Script) -> (u16, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(connection(stream, script, shared.clone()));
        }
    });
    (port, counts)
}

async fn connection(mut stream: TcpStream, script: Script, counts: Arc<Counts>) {
    let mut served = 0;
    while let Some(head) = common::read_head(&mut stream).await {
        let authorization = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("authorization")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        counts.requests.lock().expect("lock").push(authorization);
        match script {
            Script::CloseAfterFirst if served > 0 => return,
            Script::Huge => {
                let body = vec![b' '; BODY_CAP * 2];
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            }
            _ => {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{MYSELF}",
                    MYSELF.len()
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
        served += 1;
    }
}

fn prober() -> Prober {
    // IP addresses only: no resolver is asked, and no proxy applies.
    Prober::with_resolver(Arc::new(common::NoSuchHost)).expect("prober")
}

#[tokio::test]
async fn probes_of_a_site_share_one_kept_alive_connection() {
    let (port, counts) = serve(Script::KeepAlive).await;
    let connection = common::connection(&format!(
        "name = \"c\"\nurl = \"http://127.0.0.1:{port}\"\ntoken = \"t\""
    ));
    let prober = prober();
    for _ in 0..3 {
        let outcome = common::within(Duration::from_secs(5), prober.probe(&connection)).await;
        assert_eq!((outcome.state, outcome.reason), (State::Valid, Reason::Ok));
    }
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
    assert_eq!(counts.requests.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn a_body_cut_at_the_cap_takes_its_connection_with_it() {
    let (port, counts) = serve(Script::Huge).await;
    let connection = common::connection(&format!(
        "name = \"c\"\nurl = \"http://127.0.0.1:{port}\"\ntoken = \"t\"\ntimeout = \"9s\""
    ));
    let prober = prober();
    for _ in 0..2 {
        let outcome = common::within(Duration::from_secs(10), prober.probe(&connection)).await;
        assert_eq!(outcome.reason, Reason::UnexpectedResponse, "{outcome:?}");
    }
    assert_eq!(
        counts.connections.load(Ordering::SeqCst),
        2,
        "the connection with an unread body was not reused"
    );
}

#[tokio::test]
async fn a_request_the_server_read_and_never_answered_is_not_sent_again() {
    for (auth, fragment) in [
        (
            "Basic",
            "auth = \"basic\"\nusername = \"svc\"\npassword = \"pw\"",
        ),
        ("Bearer", "token = \"t\""),
    ] {
        let (port, counts) = serve(Script::CloseAfterFirst).await;
        let connection = common::connection(&format!(
            "name = \"c\"\nurl = \"http://127.0.0.1:{port}\"\n{fragment}"
        ));
        let prober = prober();
        let first = common::within(Duration::from_secs(5), prober.probe(&connection)).await;
        assert_eq!(first.reason, Reason::Ok, "{auth}: {first:?}");
        // The kept-alive connection is reused; the server reads the request and closes.
        let second = common::within(Duration::from_secs(5), prober.probe(&connection)).await;
        assert_eq!(
            (second.state, second.reason),
            (State::Unknown, Reason::ConnectError),
            "{auth}: {second:?}"
        );
        let requests = counts.requests.lock().expect("lock").clone();
        assert_eq!(
            requests.len(),
            2,
            "{auth}: the unanswered request was not sent again: {requests:?}"
        );
        assert!(requests.iter().all(|r| r.starts_with(auth)));
        assert_eq!(counts.connections.load(Ordering::SeqCst), 1, "{auth}");
    }
}
