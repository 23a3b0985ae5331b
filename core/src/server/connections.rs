//! Connection hygiene on all three ports: a cap on concurrent connections per port, a first-bytes
//! (header) timeout, an idle timeout and a deadline for the request head, HTTP/2 keep-alive pings,
//! and the process's file-descriptor limit raised to its hard limit at start.
//!
//! Before, idle and half-sent connections were never closed: about 20,000 of them filled the
//! descriptor limit and every port stopped answering. Now a connection that sends nothing within
//! `header_timeout_seconds` of being accepted, or stays silent (no byte read or written) for
//! `idle_timeout_seconds` while the server waits to read, is closed; past `max_per_port`
//! concurrent connections a new one is answered `503` with the reason (HTTP ports) or closed at
//! once (gRPC, which clients see as UNAVAILABLE and retry), and a warning is logged.
//!
//! Neither timeout stops a slow-loris client, which sends its request head a byte a second and so
//! is never silent: it held its connection and its slot forever. The head deadline
//! (`request_head_timeout_seconds`) closes it. On HTTP/1 it is hyper's `header_read_timeout`,
//! which needs the hyper connection builder, so the two HTTP ports are served by [`serve_http`]
//! rather than `axum::serve` (which sets no timer). HTTP/2 (the gRPC port, and h2c on the HTTP
//! ports) has no such setting in hyper or tonic, so [`Guarded`] itself follows the client's first
//! bytes: the connection preface and the frames up to the end of the first request's header
//! block must arrive within the deadline of the accept.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::ConnectionsConfig;

/// How long an HTTP/2 keep-alive ping may go unanswered before the connection is closed (tonic's
/// default).
pub(crate) const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a listener enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_head_timeout: Duration,
    /// `None`: no pings.
    pub http2_keepalive: Option<Duration>,
    pub max_per_port: usize,
}

/// A configured number of seconds as a duration of at least a millisecond. Capped at a year:
/// `Duration::from_secs_f64` panics on infinity, and adding `Duration::MAX` to an instant
/// overflows.
fn seconds(value: f64) -> Duration {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    Duration::try_from_secs_f64(value.max(0.001)).map_or(YEAR, |d| d.min(YEAR))
}

impl ConnectionLimits {
    pub(crate) fn of(config: &ConnectionsConfig) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: seconds(config.header_timeout_seconds),
            idle_timeout: seconds(config.idle_timeout_seconds),
            request_head_timeout: seconds(config.request_head_timeout_seconds),
            // NaN turns the pings off too.
            http2_keepalive: (config.http2_keepalive_seconds > 0.0)
                .then(|| seconds(config.http2_keepalive_seconds)),
            max_per_port: config.max_per_port.max(1),
        }
    }
}

/// How a port refuses a connection over the cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Refusal {
    /// Answer `503 Service Unavailable` with the reason, then close.
    Http,
    /// Close at once (no HTTP/2 preface is possible before the client's).
    Close,
}

/// A listener handing out [`Guarded`] connections, at most `max_per_port` at a time.
pub(crate) struct GuardedListener {
    inner: TcpListener,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    refusal: Refusal,
    what: &'static str,
}

impl GuardedListener {
    pub(crate) fn new(
        inner: TcpListener,
        limits: ConnectionLimits,
        refusal: Refusal,
        what: &'static str,
    ) -> GuardedListener {
        let slots = Arc::new(Semaphore::new(limits.max_per_port));
        GuardedListener { inner, limits, slots, refusal, what }
    }

    /// The next connection within the cap; refuses (and keeps accepting) past it.
    pub(crate) async fn next(&mut self) -> (Guarded, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(port = self.what, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => return (Guarded::new(stream, permit, self.limits), addr),
                Err(_) => self.refuse(stream),
            }
        }
    }

    fn refuse(&self, mut stream: TcpStream) {
        let cap = self.limits.max_per_port;
        tracing::warn!(port = self.what, cap, "connection refused: too many open connections");
        if self.refusal == Refusal::Close {
            return;
        }
        tokio::spawn(async move {
            let body = format!("too many open connections on this port (the cap is {cap}, [connections] max_per_port); retry later\n");
            let response = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            // Read the request first: an answer before it confuses HTTP clients.
            let mut head = [0u8; 4096];
            let read = tokio::io::AsyncReadExt::read(&mut stream, &mut head);
            let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
            let write = stream.write_all(response.as_bytes());
            let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// The HTTP/2 connection preface a client starts with (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/2 frame types and the flag that end a header block (RFC 9113 §6.2, §6.10).
const H2_HEADERS: u8 = 0x1;
const H2_CONTINUATION: u8 = 0x9;
const H2_END_HEADERS: u8 = 0x4;

/// How far an HTTP/2 client has got with its connection preface and first request head, from the
/// bytes it sent. Only frame boundaries are followed; hyper's h2 parses and checks the frames.
#[derive(Debug, Clone, Copy, PartialEq)]
enum HeadWatch {
    /// This many bytes of the preface have arrived.
    Preface(usize),
    /// This many bytes of a frame's 9-byte header have arrived.
    FrameHeader([u8; 9], usize),
    /// This many payload bytes of the current frame are still to come; whether the frame ends the
    /// first request's header block.
    Payload(usize, bool),
    /// The first request head is complete, or the client does not speak HTTP/2 (HTTP/1 heads are
    /// timed by hyper).
    Done,
}

impl HeadWatch {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && *self != HeadWatch::Done {
            match self {
                HeadWatch::Done => {}
                HeadWatch::Preface(matched) => {
                    let want = H2_PREFACE.get(*matched..).unwrap_or_default();
                    let n = want.len().min(bytes.len());
                    if bytes.get(..n) != want.get(..n) {
                        *self = HeadWatch::Done;
                        return;
                    }
                    *matched += n;
                    bytes = bytes.get(n..).unwrap_or_default();
                    if *matched == H2_PREFACE.len() {
                        *self = HeadWatch::FrameHeader([0; 9], 0);
                    }
                }
                HeadWatch::FrameHeader(header, got) => {
                    let n = (header.len() - *got).min(bytes.len());
                    if let (Some(to), Some(from)) = (header.get_mut(*got..*got + n), bytes.get(..n))
                    {
                        to.copy_from_slice(from);
                    }
                    *got += n;
                    bytes = bytes.get(n..).unwrap_or_default();
                    if *got == header.len() {
                        let [l0, l1, l2, kind, flags, ..] = *header;
                        let length = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                        let ends_head = matches!(kind, H2_HEADERS | H2_CONTINUATION)
                            && flags & H2_END_HEADERS != 0;
                        *self = HeadWatch::Payload(length, ends_head);
                    }
                }
                HeadWatch::Payload(remaining, _) => {
                    let n = (*remaining).min(bytes.len());
                    *remaining -= n;
                    bytes = bytes.get(n..).unwrap_or_default();
                }
            }
            // A frame ends here (a payload of 0 bytes, like an empty SETTINGS, ends at once).
            if let HeadWatch::Payload(0, ends_head) = *self {
                *self = if ends_head { HeadWatch::Done } else { HeadWatch::FrameHeader([0; 9], 0) };
            }
        }
    }
}

/// A connection that times out when silent or when its HTTP/2 head is late, holding its slot of
/// the port's cap until dropped.
pub(crate) struct Guarded {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    head: HeadWatch,
    head_deadline: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(inner: TcpStream, slot: OwnedSemaphorePermit, limits: ConnectionLimits) -> Guarded {
        Guarded {
            inner,
            _slot: slot,
            idle_timeout: limits.idle_timeout,
            // Until the first bytes arrive, the (shorter) header timeout applies.
            deadline: Box::pin(tokio::time::sleep(limits.header_timeout)),
            head: HeadWatch::Preface(0),
            head_deadline: Box::pin(tokio::time::sleep(limits.request_head_timeout)),
        }
    }

    fn head_late(&self) -> bool {
        self.head != HeadWatch::Done && self.head_deadline.is_elapsed()
    }

    fn progressed(&mut self) {
        let next = Instant::now() + self.idle_timeout;
        self.deadline.as_mut().reset(next);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let late_head = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP/2 request head not complete within [connections] request_head_timeout_seconds",
            )
        };
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.progressed();
                    if self.head != HeadWatch::Done {
                        let read = buf.filled().get(before..).unwrap_or_default();
                        self.head.feed(read);
                    }
                }
                // Checked here too: a client that never pauses never reaches `Pending`.
                if self.head_late() {
                    return Poll::Ready(Err(late_head()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if self.head != HeadWatch::Done && self.head_deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(late_head()));
                }
                match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection silent past [connections] header/idle timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.progressed();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = <TcpStream as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The gRPC listener as the stream of connections tonic serves.
pub(crate) fn incoming(
    mut listener: GuardedListener,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Guarded>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.next().await;
            if tx.send(Ok(conn)).await.is_err() {
                break; // the server stopped
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Serves `app` on an HTTP port (HTTP/1.1 and h2c) until `stop` resolves, then lets each open
/// connection finish its request and waits for all to close, as `axum::serve` with graceful
/// shutdown does; in addition, HTTP/1 request heads are timed (`header_read_timeout`) and
/// HTTP/2 connections pinged.
pub(crate) async fn serve_http(
    mut listener: GuardedListener,
    app: axum::Router,
    stop: impl Future<Output = ()>,
) {
    let limits = listener.limits;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.request_head_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT)
        // As axum::serve: CONNECT over HTTP/2, for WebSockets.
        .enable_connect_protocol();
    // `true` once stopping; every connection holds a clone of `connection_token` until closed.
    let (stopping, _) = watch::channel(false);
    let (open_connections, connection_token) = watch::channel(());
    let mut stop = std::pin::pin!(stop);
    loop {
        let conn = tokio::select! {
            (conn, _) = listener.next() => conn,
            () = &mut stop => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let mut stopping = stopping.subscribe();
        let held = connection_token.clone();
        tokio::spawn(async move {
            let served = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
            let mut served = std::pin::pin!(served);
            let mut draining = false;
            loop {
                tokio::select! {
                    result = served.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stopping.wait_for(|s| *s), if !draining => {
                        draining = true;
                        served.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(held);
        });
    }
    drop(listener);
    stopping.send_replace(true);
    drop(connection_token);
    open_connections.closed().await;
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (soft before, soft now).
#[cfg(unix)]
pub(crate) fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed by pointer, which lives on
    // this stack frame for the whole call; no other memory is touched.
    #[allow(unsafe_code)]
    let (before, now) = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        (before, limit.rlim_cur)
    };
    Ok((before, now))
}

#[cfg(not(unix))]
pub(crate) fn raise_fd_limit() -> io::Result<(u64, u64)> {
    Ok((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(chunks: &[&[u8]]) -> HeadWatch {
        let mut head = HeadWatch::Preface(0);
        for chunk in chunks {
            head.feed(chunk);
        }
        head
    }

    const SETTINGS_EMPTY: &[u8] = &[0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    const HEADERS_3_END: &[u8] = &[0, 0, 3, H2_HEADERS, H2_END_HEADERS, 0, 0, 0, 1, 7, 7, 7];

    #[test]
    fn an_http1_request_is_not_watched() {
        assert_eq!(watched(&[b"GET / HTTP/1.1\r\n"]), HeadWatch::Done);
        // `POST` shares its first byte with the preface.
        assert_eq!(watched(&[b"P", b"OST"]), HeadWatch::Done);
    }

    #[test]
    fn the_head_ends_with_the_first_header_block_in_any_chunking() {
        let whole = [H2_PREFACE.as_slice(), SETTINGS_EMPTY, HEADERS_3_END].concat();
        assert_eq!(watched(&[&whole]), HeadWatch::Done);
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(watched(&bytes), HeadWatch::Done);
        // One byte short: the payload's last byte is still to come.
        assert_eq!(watched(&[&whole[..whole.len() - 1]]), HeadWatch::Payload(1, true));
    }

    #[test]
    fn a_header_block_continued_ends_at_its_last_continuation() {
        let headers_no_end = [0, 0, 1, H2_HEADERS, 0, 0, 0, 0, 1, 7];
        let continuation_end = [0, 0, 1, H2_CONTINUATION, H2_END_HEADERS, 0, 0, 0, 1, 7];
        let started = [H2_PREFACE.as_slice(), SETTINGS_EMPTY, &headers_no_end].concat();
        assert_eq!(watched(&[&started]), HeadWatch::FrameHeader([0; 9], 0));
        assert_eq!(watched(&[&started, &continuation_end]), HeadWatch::Done);
    }

    #[test]
    fn infinite_or_negative_seconds_do_not_panic() {
        assert_eq!(seconds(f64::INFINITY), Duration::from_secs(365 * 24 * 3600));
        assert_eq!(seconds(-1.0), Duration::from_millis(1));
        assert_eq!(seconds(f64::NAN), Duration::from_millis(1));
    }
}
