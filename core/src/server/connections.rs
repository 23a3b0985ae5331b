//! Connection hygiene on all three ports: a cap on concurrent connections per port, a first-bytes
//! (header) timeout and an idle timeout, and the process's file-descriptor limit raised to its
//! hard limit at start.
//!
//! Before, idle and half-sent connections were never closed: about 20,000 of them filled the
//! descriptor limit and every port stopped answering. Now a connection that sends nothing within
//! `header_timeout_seconds` of being accepted, or stays silent (no byte read or written) for
//! `idle_timeout_seconds` while the server waits to read, is closed; past `max_per_port`
//! concurrent connections a new one is answered `503` with the reason (HTTP ports) or closed at
//! once (gRPC, which clients see as UNAVAILABLE and retry), and a warning is logged.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::ConnectionsConfig;

/// What a listener enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_per_port: usize,
}

impl ConnectionLimits {
    pub(crate) fn of(config: &ConnectionsConfig) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs_f64(config.header_timeout_seconds.max(0.001)),
            idle_timeout: Duration::from_secs_f64(config.idle_timeout_seconds.max(0.001)),
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

impl axum::serve::Listener for GuardedListener {
    type Io = Guarded;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (Guarded, SocketAddr)> + Send {
        self.next()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that times out when silent, holding its slot of the port's cap until dropped.
pub(crate) struct Guarded {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(inner: TcpStream, slot: OwnedSemaphorePermit, limits: ConnectionLimits) -> Guarded {
        Guarded {
            inner,
            _slot: slot,
            idle_timeout: limits.idle_timeout,
            // Until the first bytes arrive, the (shorter) header timeout applies.
            deadline: Box::pin(tokio::time::sleep(limits.header_timeout)),
        }
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
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection silent past [connections] header/idle timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
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
