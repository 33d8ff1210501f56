//! Waiting for the server's verdict on our certificate before handing a connection to gRPC.
//!
//! Under TLS 1.3 a client finishes its handshake before the server has checked the client's
//! certificate; a refusal (revoked, removed CA, wrong component) then arrives as an alert on the
//! first read, which hyper reports only as "connection closed". Every server of the federation
//! speaks HTTP/2 and sends its SETTINGS frame first, so the connector reads once right after the
//! handshake: an alert surfaces there with its reason, and the bytes read are replayed to hyper.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Bytes read ahead while waiting for the verdict; a SETTINGS frame is far smaller.
const FIRST_READ_BYTES_MAX: usize = 16 * 1024;

/// A stream whose first bytes were read ahead and are served again before the rest.
#[derive(Debug)]
pub(crate) struct Rewound<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

/// Reads the server's first bytes from `stream`, failing with the server's alert (or "closed")
/// if it refused us.
pub(crate) async fn await_verdict<S: AsyncRead + Unpin>(mut stream: S) -> std::io::Result<Rewound<S>> {
    let mut prefix = vec![0u8; FIRST_READ_BYTES_MAX];
    let n = stream.read(&mut prefix).await?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the server closed the connection right after the handshake",
        ));
    }
    prefix.truncate(n);
    Ok(Rewound {
        prefix,
        offset: 0,
        inner: stream,
    })
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.offset < self.prefix.len() {
            let rest = &self.prefix[self.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.offset += n;
            if self.offset == self.prefix.len() {
                self.prefix = Vec::new();
                self.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
