//! Faults below Jira's answers: servers that misbehave at the TCP, HTTP framing or TLS level,
//! which a real site, network or middlebox can produce and an axum handler cannot.
//!
//! Each [`FaultServer`] listens on 127.0.0.1 (port 0) and treats every connection the same
//! way. It counts the connections it accepted and the bytes it wrote, so tests can show that
//! a probe stopped reading (a huge body) or never got an answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How a fault server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accepts the connection and never reads or writes a byte.
    Silent,
    /// Sends a 200 header, then the body one byte every 250 ms.
    Trickle,
    /// Sends a 200 header and part of the body, then resets the connection.
    ResetMidResponse,
    /// Answers with bytes that are not HTTP (an SSH banner).
    NotHttp,
    /// Sends a 200 with a body of 500 MiB, as fast as the client reads.
    HugeBody,
    /// Sends a 200 whose header value and body are not valid UTF-8.
    InvalidUtf8,
    /// Answers the TLS ClientHello with a fatal handshake_failure alert.
    TlsAlert,
}

/// The size of the body [`Fault::HugeBody`] announces.
pub const HUGE_BODY: u64 = 500 * 1024 * 1024;

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    bytes_written: AtomicU64,
}

/// A running fault server. Dropping it stops it.
pub struct FaultServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl FaultServer {
    /// Starts a fault server on 127.0.0.1 with a port the system picks.
    pub async fn start(fault: Fault) -> std::io::Result<FaultServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let counters = shared.clone();
                tokio::spawn(async move {
                    // Any I/O error just ends this connection.
                    let _ = misbehave(fault, stream, &counters).await;
                });
            }
        });
        Ok(FaultServer {
            addr,
            counters,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A base URL with a context path, as a connection would name it.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/jira", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    /// Bytes written to clients so far.
    pub fn bytes_written(&self) -> u64 {
        self.counters.bytes_written.load(Ordering::Relaxed)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads until the end of the request head (or 64 KiB, or the peer stops).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    Ok(())
}

async fn write(stream: &mut TcpStream, counters: &Counters, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    counters
        .bytes_written
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(())
}

async fn misbehave(
    fault: Fault,
    mut stream: TcpStream,
    counters: &Counters,
) -> std::io::Result<()> {
    match fault {
        Fault::Silent => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Fault::Trickle => {
            read_head(&mut stream).await?;
            write(
                &mut stream,
                counters,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n",
            )
            .await?;
            for _ in 0..4096 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                write(&mut stream, counters, b" ").await?;
            }
        }
        Fault::ResetMidResponse => {
            read_head(&mut stream).await?;
            write(
                &mut stream,
                counters,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{\"self\":\"https://jira.example.com/rest/api/2/user?username=svc\",\"name\":\"svc\",\"displ",
            )
            .await?;
            stream.flush().await?;
            // SO_LINGER 0: closing sends a RST instead of a FIN. tokio deprecates set_linger
            // because a non-zero linger blocks the thread on drop; a zero one never does.
            #[allow(deprecated)]
            stream.set_linger(Some(Duration::ZERO))?;
            drop(stream);
        }
        Fault::NotHttp => {
            read_head(&mut stream).await?;
            write(
                &mut stream,
                counters,
                b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n\x00\x00\x05\xdc\x07\x14garbage",
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Fault::HugeBody => {
            read_head(&mut stream).await?;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {HUGE_BODY}\r\n\r\n"
            );
            write(&mut stream, counters, head.as_bytes()).await?;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < HUGE_BODY {
                write(&mut stream, counters, &chunk).await?;
                sent += chunk.len() as u64;
            }
        }
        Fault::InvalidUtf8 => {
            read_head(&mut stream).await?;
            let body: &[u8] = b"{\"name\":\"\xff\xfe\xfd\",\"displayName\":\"\xc3\x28\"}";
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-AUSERNAME: ",
                body.len()
            )
            .into_bytes();
            answer.extend_from_slice(b"\xff\xfe\r\n\r\n");
            answer.extend_from_slice(body);
            write(&mut stream, counters, &answer).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Fault::TlsAlert => {
            let mut hello = [0u8; 1024];
            let _ = stream.read(&mut hello).await?;
            // TLS record: alert (21), TLS 1.2, length 2, fatal (2), handshake_failure (40).
            write(
                &mut stream,
                counters,
                &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
