//! Probes through an HTTP proxy, as `https_proxy`, `http_proxy` and `no_proxy` name it:
//! `https://` through a `CONNECT` tunnel (TLS end to end), `http://` in absolute form, the
//! proxy's credentials sent to the proxy alone and never shown.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use credwatch::config::Connection;
use credwatch::probe::{Prober, Proxies, Reason, State};
use credwatch::sim::{Pat, Simulator, Site, User};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use common::{connection, within};

const CERT: &[u8] = include_bytes!("fixtures/localhost.pem");
const KEY: &[u8] = include_bytes!("fixtures/localhost.key");
const PROXY_PASSWORD: &str = "proxy-pa55@word";

/// What the proxy saw of one request: its request line and `Proxy-Authorization`.
type Seen = (String, Option<String>);

/// A minimal HTTP proxy: `CONNECT` tunnels, absolute-form requests forwarded in origin form.
/// With `refuse`, it answers every request `407`.
struct TestProxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestProxy {
    async fn start(refuse: bool) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, log.clone(), refuse));
            }
        });
        TestProxy { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

async fn serve(mut client: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, refuse: bool) {
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let authorization = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("Proxy-Authorization: "))
        .map(str::to_owned);
    seen.lock()
        .expect("lock")
        .push((request_line.clone(), authorization));
    if refuse {
        let _ = client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_ok()
        {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        return;
    }
    // Absolute form: forward to the origin in origin form, without the proxy's header.
    let Some(rest) = target.strip_prefix("http://") else {
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut upstream) = TcpStream::connect(authority).await else {
        return;
    };
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines.filter(|line| !line.is_empty() && !line.starts_with("Proxy-Authorization")) {
        forwarded.push_str(line);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(forwarded.as_bytes()).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

fn proxies(port: u16, no_proxy: &str) -> Proxies {
    let url = format!(
        "http://svc-proxy:{}@127.0.0.1:{port}",
        PROXY_PASSWORD.replace('@', "%40")
    );
    let no_proxy = no_proxy.to_owned();
    Proxies::from_lookup(move |name| match name {
        "https_proxy" | "http_proxy" => Some(url.clone()),
        "no_proxy" => Some(no_proxy.clone()),
        _ => None,
    })
    .expect("proxies")
}

fn site() -> Site {
    Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "credwatch", "pat-proxy", None)))
}

async fn tls_simulator() -> Simulator {
    let tls = Simulator::start_tls(CERT, KEY)
        .await
        .expect("TLS simulator");
    tls.add_site("dc", site());
    tls
}

/// A connection to `tls`'s site "dc", trusting the test CA.
fn https_connection(tls: &Simulator) -> Connection {
    connection(&format!(
        "name = \"https\"\nurl = \"{}\"\ntoken = \"pat-proxy\"\nca_file = \"tests/fixtures/test-ca.pem\"",
        tls.url("dc")
    ))
}

#[tokio::test]
async fn probes_go_through_the_proxy_unless_no_proxy_names_the_host() {
    let plain = Simulator::start().await.expect("simulator");
    plain.add_site("dc", site());
    let tls = tls_simulator().await;
    let proxy = TestProxy::start(false).await;
    let through = Prober::with_proxies(proxies(proxy.port, "")).expect("prober");

    let https = https_connection(&tls);
    let http = connection(&format!(
        "name = \"http\"\nurl = \"{}\"\ntoken = \"pat-proxy\"\nallow_insecure_http = true",
        plain.url("dc")
    ));
    for connection in [&https, &http] {
        let outcome = within(Duration::from_secs(10), through.probe(connection)).await;
        assert_eq!(
            (outcome.state, outcome.reason),
            (State::Valid, Reason::Ok),
            "{}: {:?}",
            connection.name,
            outcome.detail
        );
    }
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("svc-proxy:{PROXY_PASSWORD}"))
    );
    let tls_port = tls.addr().port();
    let plain_port = plain.addr().port();
    assert_eq!(
        proxy.seen(),
        vec![
            (
                format!("CONNECT 127.0.0.1:{tls_port} HTTP/1.1"),
                Some(expected_auth.clone())
            ),
            (
                format!("GET http://127.0.0.1:{plain_port}/dc/rest/api/2/myself HTTP/1.1"),
                Some(expected_auth)
            ),
        ]
    );
    // Each Jira saw one probe, with the credential and without the proxy's.
    for simulator in [&plain, &tls] {
        let requests = simulator.requests_for("dc");
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].authorization.as_deref(),
            Some("Bearer pat-proxy")
        );
    }

    // `no_proxy` sends both straight to Jira.
    let bypassing =
        Prober::with_proxies(proxies(proxy.port, "localhost, 127.0.0.0/8")).expect("prober");
    for connection in [&https, &http] {
        let outcome = within(Duration::from_secs(10), bypassing.probe(connection)).await;
        assert_eq!((outcome.state, outcome.reason), (State::Valid, Reason::Ok));
    }
    assert_eq!(proxy.seen().len(), 2, "the proxy saw nothing more");
    assert_eq!(
        plain.requests_for("dc").len() + tls.requests_for("dc").len(),
        4
    );
}

#[tokio::test]
async fn a_refusing_proxy_is_a_connect_error_that_names_it_and_not_its_password() {
    let tls = tls_simulator().await;
    let proxy = TestProxy::start(true).await;
    let prober = Prober::with_proxies(proxies(proxy.port, "")).expect("prober");
    let https = https_connection(&tls);
    let outcome = within(Duration::from_secs(10), prober.probe(&https)).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Unknown, Reason::ConnectError)
    );
    let detail = outcome.detail.unwrap_or_default();
    assert!(
        detail.contains(&format!("127.0.0.1:{}", proxy.port)),
        "{detail}"
    );
    assert!(detail.contains("407"), "{detail}");
    assert!(!detail.contains("pa55"), "{detail}");
    assert!(tls.requests_for("dc").is_empty(), "Jira was never reached");
}
