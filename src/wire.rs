//! gRPC's wire format, written and read here for the two chunk calls that carry bulk bytes (`Put`
//! and `Get`), so that chunk bytes are not copied between the socket and the store.
//!
//! tonic encodes every message into a buffer of its own before HTTP/2 sends it, and decodes each
//! out of another buffer it gathers the received frames into: two copies of every MiB, which
//! `perf` put at 9% of a node's samples while it served reads and 7 to 9% of a client's. Here a
//! message that carries chunk bytes is sent as two body frames, its head (the 5-byte gRPC prefix
//! and the fields before the bytes) and the bytes themselves, a slice of the buffer they already
//! are in; and a received message is kept as slices of the HTTP/2 frames it arrived in ([`Rope`]).
//!
//! On the wire this is the same gRPC: tonic's generated client talks to these routes (the node
//! tests do), and these calls talk to any gRPC server of the same service.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{DecodeContext, WireType};
use tonic::Status;

use crate::slots::{OrderedSlots, SlotPermit};

/// The prefix of every gRPC message: a compression flag and the length (big-endian u32).
const PREFIX_BYTES: usize = 5;
const GRPC_CONTENT_TYPE: &str = "application/grpc";

/// Bytes held as consecutive slices of the frames they arrived in, read as one buffer.
#[derive(Debug, Default, Clone)]
pub struct Rope {
    parts: VecDeque<Bytes>,
    len: usize,
}

impl Rope {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.parts.push_back(bytes);
        }
    }

    /// The first `n` bytes (at most `len`), taken off the front without copying.
    pub fn split_to(&mut self, n: usize) -> Rope {
        let mut front = Rope::default();
        let mut want = n.min(self.len);
        while want > 0 {
            let Some(part) = self.parts.front_mut() else { break };
            let piece = if part.len() <= want {
                self.parts.pop_front().unwrap_or_default()
            } else {
                part.split_to(want)
            };
            want -= piece.len();
            self.len -= piece.len();
            front.push(piece);
        }
        front
    }

    /// The slices, in order.
    pub fn into_parts(self) -> impl Iterator<Item = Bytes> {
        self.parts.into_iter()
    }

    /// The first `N` bytes, copied, if there are that many.
    fn peek<const N: usize>(&self) -> Option<[u8; N]> {
        if self.len < N {
            return None;
        }
        let mut out = [0u8; N];
        let mut filled = 0;
        for part in &self.parts {
            let take = part.len().min(N - filled);
            out[filled..filled + take].copy_from_slice(&part[..take]);
            filled += take;
            if filled == N {
                break;
            }
        }
        Some(out)
    }
}

impl From<Bytes> for Rope {
    fn from(bytes: Bytes) -> Rope {
        let mut rope = Rope::default();
        rope.push(bytes);
        rope
    }
}

impl Buf for Rope {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |part| &part[..])
    }

    fn advance(&mut self, cnt: usize) {
        assert!(cnt <= self.len, "advanced past the end of a rope");
        let _ = self.split_to(cnt);
    }

    /// Without copying when the bytes lie in one slice (a decoded `bytes` field, most often).
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.len, "took more than a rope holds");
        let mut taken = self.split_to(len);
        if taken.parts.len() == 1 {
            return taken.parts.pop_front().unwrap_or_default();
        }
        let mut joined = BytesMut::with_capacity(len);
        for part in taken.parts {
            joined.put(part);
        }
        joined.freeze()
    }
}

/// A whole message with its gRPC prefix, encoded into one buffer (for small messages).
pub fn message(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(PREFIX_BYTES + len);
    put_prefix(&mut out, len);
    message.encode_raw(&mut out);
    out.freeze()
}

/// The head of a message made of the fields `head` (already encoded) followed by the bytes
/// field `tag` holding `data_len` bytes: the bytes themselves are sent after it, as they are.
pub fn bytes_message_head(head: &[u8], tag: u32, data_len: usize) -> Bytes {
    let field_head = prost::encoding::key_len(tag) + prost::encoding::encoded_len_varint(data_len as u64);
    let mut out = BytesMut::with_capacity(PREFIX_BYTES + head.len() + field_head);
    put_prefix(&mut out, head.len() + field_head + data_len);
    out.put_slice(head);
    prost::encoding::encode_key(tag, WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(data_len as u64, &mut out);
    out.freeze()
}

fn put_prefix(out: &mut BytesMut, len: usize) {
    out.put_u8(0); // not compressed
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

/// Decodes a whole message of type `M` (its `bytes` fields are slices of the rope's frames when
/// they lie in one).
pub fn decode<M: Message + Default>(mut rope: Rope, what: &str) -> Result<M, Status> {
    M::decode(&mut rope).map_err(|e| Status::invalid_argument(format!("malformed {what}: {e}")))
}

/// Reads the fields of a message for the bytes field `tag`, kept as slices without copying;
/// `other` sees every other field and must consume it (or skip it with [`skip`]). Returns `None`
/// when the field is absent.
pub fn take_bytes_field(
    mut rope: Rope,
    tag: u32,
    what: &str,
    mut other: impl FnMut(u32, WireType, &mut Rope) -> Result<(), Status>,
) -> Result<Option<Rope>, Status> {
    let malformed = |e: prost::DecodeError| Status::invalid_argument(format!("malformed {what}: {e}"));
    let mut found = None;
    while rope.has_remaining() {
        let (field, wire_type) = prost::encoding::decode_key(&mut rope).map_err(malformed)?;
        if field == tag && wire_type == WireType::LengthDelimited {
            let len = prost::encoding::decode_varint(&mut rope).map_err(malformed)?;
            if len > rope.len() as u64 {
                return Err(Status::invalid_argument(format!(
                    "malformed {what}: a field of {len} bytes in a message of {} more",
                    rope.len()
                )));
            }
            // A repeated field: protobuf keeps the last.
            found = Some(rope.split_to(len as usize));
        } else {
            other(field, wire_type, &mut rope)?;
        }
    }
    Ok(found)
}

/// Skips one field the caller has no use for.
pub fn skip(field: u32, wire_type: WireType, rope: &mut Rope, what: &str) -> Result<(), Status> {
    prost::encoding::skip_field(wire_type, field, rope, DecodeContext::default())
        .map_err(|e| Status::invalid_argument(format!("malformed {what}: {e}")))
}

/// The messages of a gRPC body, as they complete, each as slices of the frames it arrived in.
pub struct Messages {
    body: tonic::body::Body,
    buffer: Rope,
    /// Largest message accepted.
    max_len: usize,
    /// Whether the body must end with a `grpc-status` (a response) and whether it has.
    status: StatusState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusState {
    /// A request body: it just ends.
    NotExpected,
    Expected,
    Received,
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages")
            .field("buffered", &self.buffer.len())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl Messages {
    /// The messages of a request's body.
    pub fn request(body: tonic::body::Body, max_len: usize) -> Messages {
        Messages {
            body,
            buffer: Rope::default(),
            max_len,
            status: StatusState::NotExpected,
        }
    }

    /// The messages of a response's body, which must end with an OK `grpc-status`.
    fn response(body: tonic::body::Body, max_len: usize) -> Messages {
        Messages {
            body,
            buffer: Rope::default(),
            max_len,
            status: StatusState::Expected,
        }
    }

    /// The next message; `None` at the end of the body (for a response, once its status said
    /// OK). A body cut inside a message, or a response without a status, is an error.
    pub async fn next(&mut self) -> Result<Option<Rope>, Status> {
        loop {
            if let Some(message) = self.split()? {
                return Ok(Some(message));
            }
            match self.body.frame().await {
                None => {
                    if !self.buffer.is_empty() {
                        return Err(Status::invalid_argument(format!(
                            "the stream ended inside a message ({} bytes of it received)",
                            self.buffer.len()
                        )));
                    }
                    if self.status == StatusState::Expected {
                        return Err(Status::internal("the stream ended without a gRPC status"));
                    }
                    return Ok(None);
                }
                Some(Err(status)) => return Err(status),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buffer.push(data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.status_from(&trailers)?;
                        }
                    }
                },
            }
        }
    }

    fn status_from(&mut self, headers: &HeaderMap) -> Result<(), Status> {
        match Status::from_header_map(headers) {
            Some(status) if status.code() != tonic::Code::Ok => Err(status),
            Some(_) => {
                self.status = StatusState::Received;
                Ok(())
            }
            None if self.status == StatusState::Expected => {
                Err(Status::internal("the response's trailers carry no gRPC status"))
            }
            None => Ok(()),
        }
    }

    /// The first complete message in the buffer, if there is one.
    fn split(&mut self) -> Result<Option<Rope>, Status> {
        let Some(prefix) = self.buffer.peek::<PREFIX_BYTES>() else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(Status::unimplemented("compressed messages are not accepted"));
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > self.max_len {
            return Err(Status::out_of_range(format!(
                "a message of {len} bytes is above the limit of {} bytes",
                self.max_len
            )));
        }
        if self.buffer.len() < PREFIX_BYTES + len {
            return Ok(None);
        }
        self.buffer.advance(PREFIX_BYTES);
        Ok(Some(self.buffer.split_to(len)))
    }
}

/// Whose turn it is to send on one connection. HTTP/2 sends the streams that have data ready a
/// frame each in turn, so a node answering 8 gets on one connection sent the 8 chunks side by
/// side: each arrived whole only when nearly all had, and the client held all 8 partly
/// received. A body that waits for its turn ([`FramesBody::in_turn`]) sends after the bodies that
/// took theirs first, so chunks arrive one after another, the first of a read soonest:
/// alternating cold reads were about 6% faster (docs/benchmarks.md, session 14). Waiting bodies
/// take their turns by the rank they were given, lowest first: a node ranks its gets in the
/// order it began to handle them (see [`OrderedSlots`]).
///
/// A body hands its frames on as fast as the stream's flow-control window lets it, so a chunk
/// larger than that window (8 MiB) keeps the turn until its reader reads it: a client must read
/// the chunks it asks on one connection side by side, as `datapath` does, not one after another.
#[derive(Debug, Clone)]
pub struct SendTurns(Arc<OrderedSlots>);

impl SendTurns {
    /// `at_once` bodies may send at the same time.
    pub fn new(at_once: usize) -> SendTurns {
        SendTurns(OrderedSlots::new(at_once))
    }
}

type Acquiring = Pin<Box<dyn Future<Output = SlotPermit> + Send>>;

/// A body's place in its connection's [`SendTurns`].
enum Turn {
    /// Sends when it likes: not given turns, or done.
    Free,
    Waiting(Acquiring),
    Held {
        _permit: SlotPermit,
    },
}

/// A body of prepared frames, then trailers, holding `hold` (a permit, say) until it is dropped.
pub struct FramesBody<H = ()> {
    frames: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    turn: Turn,
    _hold: H,
}

impl<H> FramesBody<H> {
    pub fn new(
        frames: impl IntoIterator<Item = Bytes>,
        trailers: Option<HeaderMap>,
        hold: H,
    ) -> FramesBody<H> {
        FramesBody {
            frames: frames.into_iter().filter(|f| !f.is_empty()).collect(),
            trailers,
            turn: Turn::Free,
            _hold: hold,
        }
    }

    /// Sends its frames only in its turn of `turns`, waited for from the first time it is
    /// polled (ahead of the bodies waiting with a higher `rank`) and given back once its last
    /// frame was handed on (or it is dropped).
    pub fn in_turn(mut self, turns: &SendTurns, rank: u64) -> FramesBody<H> {
        if !self.frames.is_empty() {
            self.turn = Turn::Waiting(Box::pin(Arc::clone(&turns.0).acquire(rank)));
        }
        self
    }
}

impl<H: Unpin> Body for FramesBody<H> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Turn::Waiting(acquiring) = &mut self.turn {
            self.turn = match acquiring.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(permit) => Turn::Held { _permit: permit },
            };
        }
        if let Some(data) = self.frames.pop_front() {
            if self.frames.is_empty() {
                // The turn passes on with the last frame, before the trailers.
                self.turn = Turn::Free;
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let data: usize = self.frames.iter().map(Bytes::len).sum();
        if self.trailers.is_none() {
            SizeHint::with_exact(data as u64)
        } else {
            let mut hint = SizeHint::new();
            hint.set_lower(data as u64);
            hint
        }
    }
}

/// Trailers that end a successful response.
pub fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers
}

/// A successful gRPC response with `body`.
pub fn response<H: Unpin + Send + 'static>(body: FramesBody<H>) -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(GRPC_CONTENT_TYPE),
    );
    response
}

/// Calls `path` (`/package.Service/Method`) on `channel` with the request `body`; returns the
/// response's messages, or the error status the call ended with before any.
pub async fn call(
    channel: &tonic::transport::Channel,
    path: &'static str,
    body: FramesBody,
    max_len: usize,
) -> Result<Messages, Status> {
    use tower_service::Service;
    let mut channel = channel.clone();
    let mut request = http::Request::new(tonic::body::Body::new(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(path);
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(GRPC_CONTENT_TYPE),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| Status::from_error(e.into()))?;
    let response = channel
        .call(request)
        .await
        .map_err(|e| Status::from_error(e.into()))?;
    let (parts, body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(Status::unknown(format!(
            "the server answered HTTP {} to a gRPC call",
            parts.status
        )));
    }
    let mut messages = Messages::response(body, max_len);
    // A response of trailers only carries its status in the headers.
    if parts.headers.contains_key("grpc-status") {
        messages.status_from(&parts.headers)?;
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(parts: &[&'static [u8]]) -> Rope {
        let mut rope = Rope::default();
        for part in parts {
            rope.push(Bytes::from_static(part));
        }
        rope
    }

    fn joined(rope: Rope) -> Vec<u8> {
        rope.into_parts().flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn a_rope_splits_across_its_slices() {
        let mut r = rope(&[b"abc", b"", b"defg", b"h"]);
        assert_eq!(r.len(), 8);
        assert_eq!(r.peek::<5>(), Some(*b"abcde"));
        assert_eq!(r.peek::<9>(), None);
        assert_eq!(joined(r.split_to(4)), b"abcd");
        assert_eq!(r.chunk(), b"efg");
        assert_eq!(r.copy_to_bytes(2), Bytes::from_static(b"ef"));
        assert_eq!(r.copy_to_bytes(2), Bytes::from_static(b"gh"));
        assert!(r.is_empty());
        assert!(r.chunk().is_empty());
    }

    #[test]
    fn a_bytes_field_arrives_as_the_slice_it_was_sent_in() {
        let data = Bytes::from(vec![7u8; 1000]);
        let head = bytes_message_head(&[], 1, data.len());
        // The head, split anywhere, then the data as its own frame.
        let mut r = Rope::default();
        r.push(head.slice(..3));
        r.push(head.slice(3..));
        r.push(data.clone());
        assert_eq!(r.peek::<1>(), Some([0]));
        r.advance(PREFIX_BYTES);
        let field = take_bytes_field(r, 1, "test", |f, w, r| skip(f, w, r, "test"))
            .expect("decodes")
            .expect("field present");
        let parts: Vec<Bytes> = field.into_parts().collect();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].as_ptr(), data.as_ptr(), "no copy was made");
        assert_eq!(parts[0], data);
    }

    #[test]
    fn prost_reads_a_message_sent_as_head_and_bytes() {
        use collective_proto::chunk::GetResponse;
        let data = Bytes::from(vec![1u8, 2, 3, 4, 5]);
        let mut head_fields = Vec::new();
        prost::encoding::uint64::encode(2, &4096, &mut head_fields);
        let head = bytes_message_head(&head_fields, 1, data.len());
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        assert_eq!(
            len,
            head.len() - PREFIX_BYTES + data.len(),
            "the prefix counts head and bytes"
        );
        let mut r = Rope::default();
        r.push(head.slice(PREFIX_BYTES..));
        r.push(data.clone());
        let decoded: GetResponse = decode(r, "test").expect("prost reads ours");
        assert_eq!(
            decoded,
            GetResponse {
                data,
                chunk_length_bytes: Some(4096),
            }
        );
    }

    #[test]
    fn truncated_and_malformed_fields_are_refused() {
        // Field 1, length 10, but only 3 bytes follow.
        let r = rope(&[&[0x0a, 10, 1, 2, 3]]);
        let error = take_bytes_field(r, 1, "GetResponse", |f, w, r| skip(f, w, r, "GetResponse"))
            .expect_err("truncated");
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        // A key with wire type 7, which does not exist.
        let r = rope(&[&[0x0f]]);
        assert!(take_bytes_field(r, 1, "GetResponse", |f, w, r| skip(f, w, r, "GetResponse")).is_err());
    }

    /// Polls `body` once, with a waker that does nothing.
    fn poll_once<H: Unpin>(body: &mut FramesBody<H>) -> Poll<Option<Bytes>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(body)
            .poll_frame(&mut cx)
            .map(|frame| frame.and_then(|f| f.ok()).and_then(|f| f.into_data().ok()))
    }

    fn sent(frame: &'static [u8]) -> Poll<Option<Bytes>> {
        Poll::Ready(Some(Bytes::from_static(frame)))
    }

    #[test]
    fn bodies_in_turn_send_one_after_another() {
        let turns = SendTurns::new(1);
        let frames = |a: &'static [u8], b: &'static [u8]| [Bytes::from_static(a), Bytes::from_static(b)];
        let mut first = FramesBody::new(frames(b"a1", b"a2"), Some(ok_trailers()), ()).in_turn(&turns, 1);
        let mut second = FramesBody::new(frames(b"b1", b"b2"), Some(ok_trailers()), ()).in_turn(&turns, 2);
        let mut free = FramesBody::new(frames(b"c1", b"c2"), None, ());
        assert_eq!(poll_once(&mut first), sent(b"a1"));
        assert_eq!(
            poll_once(&mut second),
            Poll::Pending,
            "the second waits for the first"
        );
        assert_eq!(poll_once(&mut free), sent(b"c1"));
        assert_eq!(poll_once(&mut second), Poll::Pending);
        // The first gives its turn back with its last frame, before its trailers.
        assert_eq!(poll_once(&mut first), sent(b"a2"));
        assert_eq!(poll_once(&mut second), sent(b"b1"));
        assert_eq!(poll_once(&mut second), sent(b"b2"));
        assert_eq!(poll_once(&mut second), Poll::Ready(None), "then its trailers");

        // A body dropped while holding its turn gives it back; one dropped while waiting leaves
        // the line.
        let mut holder = FramesBody::new(frames(b"d1", b"d2"), None, ()).in_turn(&turns, 3);
        let mut waiter = FramesBody::new(frames(b"e1", b"e2"), None, ()).in_turn(&turns, 4);
        let mut last = FramesBody::new(frames(b"f1", b"f2"), None, ()).in_turn(&turns, 5);
        assert_eq!(poll_once(&mut holder), sent(b"d1"));
        assert_eq!(poll_once(&mut waiter), Poll::Pending);
        assert_eq!(poll_once(&mut last), Poll::Pending);
        drop(waiter);
        drop(holder);
        assert_eq!(poll_once(&mut last), sent(b"f1"));

        // Waiting bodies take their turns by rank, not by when they began to wait.
        let mut late = FramesBody::new(frames(b"g1", b"g2"), None, ()).in_turn(&turns, 9);
        let mut early = FramesBody::new(frames(b"h1", b"h2"), None, ()).in_turn(&turns, 6);
        assert_eq!(poll_once(&mut late), Poll::Pending);
        assert_eq!(poll_once(&mut early), Poll::Pending);
        assert_eq!(poll_once(&mut last), sent(b"f2"));
        assert_eq!(poll_once(&mut late), Poll::Pending, "rank 6 goes before rank 9");
        assert_eq!(poll_once(&mut early), sent(b"h1"));
        assert_eq!(poll_once(&mut early), sent(b"h2"));
        assert_eq!(poll_once(&mut late), sent(b"g1"));
    }
}
