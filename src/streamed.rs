//! A JSON answer written a chunk at a time: the serialiser runs on a blocking thread and
//! hands chunks of about [`CHUNK`] bytes to the response body through a bounded channel, so
//! that an answer as large as the whole fleet (the API's plain array: 5.5 MB at 5,000
//! connections) is never whole in memory, and the writer waits while the client (and the
//! compression layer in front of it) catches up. A client that leaves stops the writer at
//! its next chunk.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

/// About how many bytes each chunk holds.
const CHUNK: usize = 64 * 1024;

/// Chunks written and not yet sent, at most.
const IN_FLIGHT: usize = 4;

/// A `200 application/json` whose body `write` produces into its argument.
pub(crate) fn json<F>(write: F) -> Response
where
    F: FnOnce(&mut Chunks) -> serde_json::Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = Chunks {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let written = write(&mut out).map_err(io::Error::from);
        if let Err(error) = written.and_then(|()| out.send()) {
            // The status is sent: the body ends short, which a JSON reader sees.
            tracing::debug!(%error, "a streamed JSON answer ended early");
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::new(Receiver(rx)),
    )
        .into_response()
}

/// Where a streamed answer is written: a buffer sent on as a chunk once it is full.
pub(crate) struct Chunks {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Chunks {
    /// Sends what is buffered, waiting while the channel is full.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl io::Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The body: the chunks as they come.
struct Receiver(mpsc::Receiver<Bytes>);

impl http_body::Body for Receiver {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}
