//! A unary OTLP call carries exactly one message. tonic reads the first message of a unary
//! request and silently discards any further ones, so a client sending two would believe both
//! were stored. [`OneMessage`] watches the gRPC length-prefixed framing of the request body as it
//! streams through and fails the body when a second message starts: tonic answers the call with
//! that error, before the handler runs, so nothing of the call is stored.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Length of a gRPC message prefix: one compression flag byte and a big-endian u32 length.
const PREFIX: usize = 5;

/// Wraps a gRPC request body; see the module docs.
pub(crate) struct OneMessage<B> {
    inner: B,
    /// Bytes of the current message still to pass before the next prefix.
    remaining: u64,
    prefix: [u8; PREFIX],
    prefix_len: usize,
    messages: u32,
}

impl<B> OneMessage<B> {
    pub(crate) fn new(inner: B) -> OneMessage<B> {
        OneMessage { inner, remaining: 0, prefix: [0; PREFIX], prefix_len: 0, messages: 0 }
    }

    /// Walks the framing over `data`; `false` once a second message begins.
    fn scan(&mut self, data: &[u8]) -> bool {
        let mut i = 0;
        while i < data.len() {
            if self.remaining > 0 {
                let take = self.remaining.min((data.len() - i) as u64);
                self.remaining -= take;
                i += take as usize;
                continue;
            }
            if self.prefix_len == 0 {
                self.messages += 1;
                if self.messages > 1 {
                    return false;
                }
            }
            self.prefix[self.prefix_len] = data[i];
            self.prefix_len += 1;
            i += 1;
            if self.prefix_len == PREFIX {
                let len = [self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]];
                self.remaining = u64::from(u32::from_be_bytes(len));
                self.prefix_len = 0;
            }
        }
        true
    }
}

impl<B> Body for OneMessage<B>
where
    B: Body<Data = Bytes, Error = tonic::Status> + Unpin,
{
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let data = data.clone();
                if !self.scan(&data) {
                    return Poll::Ready(Some(Err(tonic::Status::invalid_argument(
                        "a unary OTLP export carries exactly one message; this call carried more (nothing of it was stored)",
                    ))));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// For `tower::util::MapRequestLayer` in front of the gRPC services.
pub(crate) fn one_message(
    req: http::Request<tonic::body::Body>,
) -> http::Request<tonic::body::Body> {
    req.map(|body| tonic::body::Body::new(OneMessage::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len as usize));
        out
    }

    #[test]
    fn one_message_in_any_chunking_passes_and_a_second_is_caught() {
        let one = frame(300);
        for chunk in [1, 2, 5, 7, 64, one.len()] {
            let mut scan = OneMessage::new(());
            assert!(one.chunks(chunk).all(|c| scan.scan(c)), "chunks of {chunk}");
        }
        let two = [frame(300), frame(0)].concat();
        for chunk in [1, 3, 305, two.len()] {
            let mut scan = OneMessage::new(());
            assert!(!two.chunks(chunk).all(|c| scan.scan(c)), "chunks of {chunk}");
        }
        // An empty message is still one message.
        let mut scan = OneMessage::new(());
        assert!(scan.scan(&frame(0)));
        assert!(!scan.scan(&frame(0)));
    }
}
