//! [`BulkStream`]: a TLS 1.3 connection after rustls's handshake, whose records this module
//! seals and opens itself.
//!
//! Why: rustls's buffered connection copies every received record twice after decrypting it
//! (into a plaintext queue, then out to the reader) and reads at most one record per system
//! call. Here a reader whose buffer has room for whole records (h2 reading a chunk's frames)
//! gets the socket's bytes straight in it, and each record is opened there, its plaintext moving
//! down over the headers and tags as it is decrypted: no copy at all. A smaller reader gets
//! them through a receive buffer that takes whatever the socket holds (up to
//! [`INCOMING_BYTES_MAX`]); each record is opened where it landed and its plaintext copied once.
//! A reader that took bulk in its own buffer and comes to the end of it (HTTP/2 finishing a
//! frame) gets about two records that way, no more, so that its next buffer is filled directly.
//! Writes seal straight into one outgoing buffer that goes to the socket in one call.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::pki_types::CertificateDer;
use rustls::server::ServerConnectionData;
use rustls::{AlertDescription, Error, InvalidMessage, PeerMisbehaved};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::record::{
    CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_HANDSHAKE, HEADER_BYTES, Protection,
    RECORD_CIPHERTEXT_BYTES_MAX, RECORD_PLAINTEXT_BYTES_MAX, begin, record_length,
};

/// Most bytes one read from the socket may bring in (whole records and a part of one more).
const INCOMING_BYTES_MAX: usize = 256 * 1024;
/// What a connection's receive buffer starts at; it doubles, up to [`INCOMING_BYTES_MAX`], each
/// time a read fills all the room it was given, so only connections that carry bulk hold the
/// large buffer.
const INCOMING_BYTES_MIN: usize = 32 * 1024;
/// Room kept beyond the read size: a whole record that started near the end still fits.
const INCOMING_SLACK_BYTES: usize = RECORD_CIPHERTEXT_BYTES_MAX + HEADER_BYTES;
/// Least room a reader's buffer must have for a socket read to go straight into it (see
/// [`BulkStream::open_in_reader`]): two whole records, so that it is worth a system call.
const OPEN_IN_READER_BYTES_MIN: usize = 2 * (HEADER_BYTES + RECORD_CIPHERTEXT_BYTES_MAX);
/// Sealed bytes a writer may queue before it waits for the socket to take them.
const OUTGOING_BYTES_MAX: usize = 256 * 1024;
/// After this many records under one key, the next record is preceded by a key update. The
/// AES-GCM suites allow 2^24 records per key (RFC 8446 §5.5, rustls's confidentiality limit);
/// updating at half of the suite's limit leaves the peer a wide margin.
fn key_update_after(confidentiality_limit: u64) -> u64 {
    (confidentiality_limit / 2).max(1)
}

const HANDSHAKE_NEW_SESSION_TICKET: u8 = 4;
const HANDSHAKE_KEY_UPDATE: u8 = 24;
const KEY_UPDATE_NOT_REQUESTED: u8 = 0;
const KEY_UPDATE_REQUESTED: u8 = 1;
const ALERT_LEVEL_WARNING: u8 = 1;

/// What rustls keeps after the handshake: new traffic secrets on key updates, and (on a
/// client) the session tickets a server sends.
pub(crate) enum Kernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

impl Kernel {
    fn update_rx_secret(&mut self) -> Result<Protection, Error> {
        let (seq, secrets) = match self {
            Kernel::Client(kernel) => kernel.update_rx_secret()?,
            Kernel::Server(kernel) => kernel.update_rx_secret()?,
        };
        Protection::new(seq, &secrets)
    }

    fn update_tx_secret(&mut self) -> Result<Protection, Error> {
        let (seq, secrets) = match self {
            Kernel::Client(kernel) => kernel.update_tx_secret()?,
            Kernel::Server(kernel) => kernel.update_tx_secret()?,
        };
        Protection::new(seq, &secrets)
    }

    fn new_session_ticket(&mut self, payload: &[u8]) -> Result<(), Error> {
        match self {
            Kernel::Client(kernel) => kernel.handle_new_session_ticket(payload),
            Kernel::Server(_) => Err(Error::InvalidMessage(InvalidMessage::UnexpectedMessage(
                "a session ticket from a client",
            ))),
        }
    }
}

/// Everything [`BulkStream::new`] takes from a finished handshake.
pub(crate) struct Established {
    pub kernel: Kernel,
    pub rx: Protection,
    pub tx: Protection,
    pub confidentiality_limit: u64,
    /// Application data rustls already opened during the handshake, served first.
    pub early_plaintext: Vec<u8>,
    /// Bytes read past the handshake: the start of the first records that follow it.
    pub leftover: Vec<u8>,
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// How the receiving side stands.
enum Receiving {
    Open,
    /// The peer sent `close_notify`: every later read is the end of the stream.
    Closed,
    /// The connection failed; every later read fails the same way.
    Failed(io::ErrorKind, String),
}

/// A TLS 1.3 connection over `io` whose records are sealed and opened here.
pub struct BulkStream<IO> {
    io: IO,
    kernel: Kernel,
    rx: Protection,
    tx: Protection,
    key_update_after: u64,
    receiving: Receiving,
    /// Plaintext from the handshake, served before anything else.
    early_plaintext: Vec<u8>,
    /// Bytes from the socket: `incoming[consumed..filled]` is not yet handled, and
    /// `incoming[plain_start..plain_end]` (before `consumed`) is opened plaintext not yet read.
    incoming: Vec<u8>,
    consumed: usize,
    filled: usize,
    plain_start: usize,
    plain_end: usize,
    /// Sealed records waiting for the socket: `outgoing[written..]`.
    outgoing: Vec<u8>,
    written: usize,
    /// `close_notify` is sealed: nothing more may be.
    sent_close: bool,
    /// The last socket read went straight into the reader's buffer: the reader takes bulk in
    /// large buffers, and a read with little room is the end of one (HTTP/2 finishing a frame).
    reader_takes_bulk: bool,
    /// Socket reads that went straight into the reader's buffer (tests check the path taken).
    #[cfg(test)]
    opened_in_reader: u64,
    /// Plaintext bytes copied from `incoming` into a reader's buffer.
    #[cfg(test)]
    copied_to_reader: u64,
    peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl<IO> BulkStream<IO> {
    pub(crate) fn new(io: IO, established: Established) -> Result<BulkStream<IO>, Error> {
        let Established {
            kernel,
            rx,
            tx,
            confidentiality_limit,
            early_plaintext,
            leftover,
            peer_certificates,
        } = established;
        let mut incoming = leftover;
        let filled = incoming.len();
        incoming.resize(filled.max(INCOMING_BYTES_MIN) + INCOMING_SLACK_BYTES, 0);
        Ok(BulkStream {
            io,
            kernel,
            rx,
            tx,
            key_update_after: key_update_after(confidentiality_limit),
            receiving: Receiving::Open,
            early_plaintext,
            incoming,
            consumed: 0,
            filled,
            plain_start: 0,
            plain_end: 0,
            // Grows to its working size (about OUTGOING_BYTES_MAX) with the first large write.
            outgoing: Vec::new(),
            written: 0,
            sent_close: false,
            reader_takes_bulk: false,
            #[cfg(test)]
            opened_in_reader: 0,
            #[cfg(test)]
            copied_to_reader: 0,
            peer_certificates,
        })
    }

    /// The certificate chain the peer presented in the handshake.
    pub fn peer_certificates(&self) -> Option<&Arc<Vec<CertificateDer<'static>>>> {
        self.peer_certificates.as_ref()
    }

    /// The socket under the connection.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Makes this side update its key every `records` records (tests reach the limit).
    #[cfg(test)]
    pub(super) fn set_key_update_after(&mut self, records: u64) {
        self.key_update_after = records;
    }

    /// The receive buffer's size, without its slack.
    #[cfg(test)]
    pub(super) fn incoming_bytes(&self) -> usize {
        self.incoming.len() - INCOMING_SLACK_BYTES
    }

    /// Socket reads that went straight into the reader's buffer.
    #[cfg(test)]
    pub(super) fn opened_in_reader(&self) -> u64 {
        self.opened_in_reader
    }

    /// Plaintext bytes copied from the receive buffer into a reader's buffer.
    #[cfg(test)]
    pub(super) fn copied_to_reader(&self) -> u64 {
        self.copied_to_reader
    }

    /// Records sealed under the current key.
    #[cfg(test)]
    pub(super) fn tx_records(&self) -> u64 {
        self.tx.records()
    }

    /// Seals one record of `content_type` from `plaintext`.
    fn seal(&mut self, content_type: u8, plaintext: &[u8]) -> Result<(), Error> {
        let start = self.begin_record()?;
        self.outgoing.extend_from_slice(plaintext);
        self.tx.finish(content_type, &mut self.outgoing, start)
    }

    /// Starts a record in `outgoing`, first updating our key when this key has sealed its
    /// share of records, and dropping what the socket already took when that has grown large.
    fn begin_record(&mut self) -> Result<usize, Error> {
        if self.written >= OUTGOING_BYTES_MAX {
            self.outgoing.drain(..self.written);
            self.written = 0;
        }
        if self.tx.records() >= self.key_update_after {
            self.update_tx_key()?;
        }
        Ok(begin(&mut self.outgoing))
    }

    /// Tells the peer, under the current key, that what follows is under the next one, and
    /// moves to it.
    fn update_tx_key(&mut self) -> Result<(), Error> {
        self.tx.seal(
            CONTENT_HANDSHAKE,
            &[HANDSHAKE_KEY_UPDATE, 0, 0, 1, KEY_UPDATE_NOT_REQUESTED],
            &mut self.outgoing,
        )?;
        self.tx = self.kernel.update_tx_secret()?;
        Ok(())
    }

    /// Handles the handshake messages of one record: session tickets (kept by rustls) and key
    /// updates. Every message must lie whole in the record: rustls never splits these.
    fn handshake_messages(&mut self, mut messages: &[u8]) -> Result<(), Error> {
        while !messages.is_empty() {
            let [kind, a, b, c, rest @ ..] = messages else {
                return Err(Error::InvalidMessage(InvalidMessage::MessageTooShort));
            };
            let length = u32::from_be_bytes([0, *a, *b, *c]) as usize;
            if rest.len() < length {
                return Err(Error::InvalidMessage(InvalidMessage::MessageTooShort));
            }
            let (body, after) = rest.split_at(length);
            match *kind {
                HANDSHAKE_NEW_SESSION_TICKET => self.kernel.new_session_ticket(body)?,
                HANDSHAKE_KEY_UPDATE => {
                    // A key update ends its record: what follows would be under the old key.
                    if !after.is_empty() {
                        return Err(Error::PeerMisbehaved(PeerMisbehaved::KeyEpochWithPendingFragment));
                    }
                    let requested = match body {
                        [KEY_UPDATE_NOT_REQUESTED] => false,
                        [KEY_UPDATE_REQUESTED] => true,
                        _ => return Err(Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate)),
                    };
                    self.rx = self.kernel.update_rx_secret()?;
                    if requested {
                        // Ours goes before any more of our data (RFC 8446 §4.6.3).
                        self.update_tx_key()?;
                    }
                }
                _ => {
                    return Err(Error::InvalidMessage(InvalidMessage::UnexpectedMessage(
                        "a handshake message after the handshake",
                    )));
                }
            }
            messages = after;
        }
        Ok(())
    }

    /// Opens the next whole record in `incoming`, if there is one. Returns whether one was.
    fn open_next(&mut self) -> Result<bool, Error> {
        let pending = &self.incoming[self.consumed..self.filled];
        let Some(header) = pending.get(..HEADER_BYTES) else {
            return Ok(false);
        };
        let header: [u8; HEADER_BYTES] = header
            .try_into()
            .map_err(|_| Error::InvalidMessage(InvalidMessage::MessageTooShort))?;
        let length = record_length(&header)?;
        if pending.len() < HEADER_BYTES + length {
            return Ok(false);
        }
        let start = self.consumed;
        let record = &mut self.incoming[start..start + HEADER_BYTES + length];
        let (content_type, plaintext) = self.rx.open(record, 0)?;
        self.consumed = start + HEADER_BYTES + length;
        if content_type == CONTENT_APPLICATION_DATA {
            self.plain_start = start;
            self.plain_end = start + plaintext;
        } else {
            let control = self.incoming[start..start + plaintext].to_vec();
            self.control_record(content_type, &control)?;
        }
        Ok(true)
    }

    /// Handles an opened record that carries no application data: an alert or handshake
    /// messages.
    fn control_record(&mut self, content_type: u8, plaintext: &[u8]) -> Result<(), Error> {
        match content_type {
            CONTENT_ALERT => match plaintext {
                [_, description] if *description == u8::from(AlertDescription::CloseNotify) => {
                    self.receiving = Receiving::Closed;
                    Ok(())
                }
                [_, description] => Err(Error::AlertReceived(AlertDescription::from(*description))),
                _ => Err(Error::InvalidMessage(InvalidMessage::MessageTooShort)),
            },
            CONTENT_HANDSHAKE => self.handshake_messages(plaintext),
            _ => Err(Error::InvalidMessage(InvalidMessage::InvalidContentType)),
        }
    }

    /// Opens the whole records a read put in the reader's own buffer, `buf.filled()[from..]`,
    /// where they lie: each record's plaintext moves down over the headers and tags before it as
    /// it is decrypted, so nobody copies the reader's bytes. A record cut off at the end of the
    /// read moves to `incoming`, for the next read to finish. Leaves `buf` filled up to the last
    /// byte of plaintext, and returns how many bytes that is and whether every record opened:
    /// the plaintext of those before a bad one is still good.
    fn open_in_reader(&mut self, buf: &mut ReadBuf<'_>, from: usize) -> (usize, Result<(), Error>) {
        let region = &mut buf.filled_mut()[from..];
        let (mut at, mut out) = (0, 0);
        let mut outcome = Ok(());
        while matches!(self.receiving, Receiving::Open) {
            let Some(header) = region.get(at..at + HEADER_BYTES) else {
                break;
            };
            let mut header_bytes = [0u8; HEADER_BYTES];
            header_bytes.copy_from_slice(header);
            let end = match record_length(&header_bytes) {
                Ok(length) => at + HEADER_BYTES + length,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            };
            if end > region.len() {
                break;
            }
            let (content_type, plaintext) = match self.rx.open(&mut region[out..end], at - out) {
                Ok(opened) => opened,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            };
            at = end;
            if content_type == CONTENT_APPLICATION_DATA {
                out += plaintext;
            } else {
                let control = region[out..out + plaintext].to_vec();
                if let Err(error) = self.control_record(content_type, &control) {
                    outcome = Err(error);
                    break;
                }
            }
        }
        if outcome.is_ok() && matches!(self.receiving, Receiving::Open) {
            let rest = &region[at..];
            self.incoming[..rest.len()].copy_from_slice(rest);
            (self.consumed, self.filled) = (0, rest.len());
        }
        buf.set_filled(from + out);
        (out, outcome)
    }

    /// The bytes still to come of the record half-received in `incoming`, once its header is
    /// there.
    fn rest_of_record(&self) -> Option<usize> {
        let pending = &self.incoming[self.consumed..self.filled];
        let header: [u8; HEADER_BYTES] = pending.get(..HEADER_BYTES)?.try_into().ok()?;
        let whole = HEADER_BYTES + record_length(&header).ok()?;
        whole.checked_sub(pending.len()).filter(|rest| *rest > 0)
    }

    /// Makes room at the end of `incoming` for at least one more whole record, moving what is
    /// not handled yet to the front once nothing before it is still to be read.
    fn make_room(&mut self) {
        if self.plain_start == self.plain_end
            && self.consumed > 0
            && self.incoming.len() - self.filled < INCOMING_SLACK_BYTES
        {
            self.incoming.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
            self.plain_start = 0;
            self.plain_end = 0;
        }
    }

    /// The socket ended with no `close_notify`: the stream may have been cut short.
    fn eof_without_close_notify(&mut self) -> io::Error {
        let error = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify",
        );
        self.receiving = Receiving::Failed(error.kind(), error.to_string());
        error
    }

    fn fail(&mut self, error: Error) -> io::Error {
        let error = io::Error::new(io::ErrorKind::InvalidData, error);
        self.receiving = Receiving::Failed(error.kind(), error.to_string());
        error
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> BulkStream<IO> {
    /// Writes queued records until none is left, or the socket takes no more for now.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.outgoing.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Seals as much of `parts` as fits in the outgoing buffer, each record's plaintext copied
    /// once, into place, and encrypted there; returns the bytes taken.
    fn seal_parts(&mut self, parts: &[io::IoSlice<'_>]) -> Result<usize, Error> {
        let mut taken = 0usize;
        // Where the record being filled starts in `outgoing`.
        let mut open: Option<usize> = None;
        'parts: for part in parts {
            let mut part: &[u8] = part;
            while !part.is_empty() {
                let start = match open {
                    Some(start) => start,
                    None if self.outgoing.len() - self.written >= OUTGOING_BYTES_MAX => break 'parts,
                    None => *open.insert(self.begin_record()?),
                };
                let in_record = self.outgoing.len() - start - HEADER_BYTES;
                let n = (RECORD_PLAINTEXT_BYTES_MAX - in_record).min(part.len());
                self.outgoing.extend_from_slice(&part[..n]);
                part = &part[n..];
                taken += n;
                if in_record + n == RECORD_PLAINTEXT_BYTES_MAX {
                    self.tx
                        .finish(CONTENT_APPLICATION_DATA, &mut self.outgoing, start)?;
                    open = None;
                }
            }
        }
        if let Some(start) = open {
            self.tx
                .finish(CONTENT_APPLICATION_DATA, &mut self.outgoing, start)?;
        }
        Ok(taken)
    }

    fn poll_write_parts(
        &mut self,
        cx: &mut Context<'_>,
        parts: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if parts.iter().all(|part| part.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if self.outgoing.len() - self.written >= OUTGOING_BYTES_MAX {
            // Full: the socket must take some first. What it takes now is enough to go on.
            match self.poll_write_out(cx) {
                Poll::Ready(result) => result?,
                Poll::Pending if self.outgoing.len() - self.written >= OUTGOING_BYTES_MAX => {
                    return Poll::Pending;
                }
                Poll::Pending => {}
            }
        }
        if self.sent_close {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection was closed for writing",
            )));
        }
        let taken = self
            .seal_parts(parts)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // Start sending now; whatever the socket does not take waits for the next write or
        // flush (a pending write has registered the waker).
        if let Poll::Ready(Err(error)) = self.poll_write_out(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(taken))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for BulkStream<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.early_plaintext.is_empty() {
            let n = this.early_plaintext.len().min(buf.remaining());
            buf.put_slice(&this.early_plaintext[..n]);
            this.early_plaintext.drain(..n);
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.plain_start < this.plain_end {
                let n = (this.plain_end - this.plain_start).min(buf.remaining());
                buf.put_slice(&this.incoming[this.plain_start..this.plain_start + n]);
                this.plain_start += n;
                #[cfg(test)]
                {
                    this.copied_to_reader += n as u64;
                }
                return Poll::Ready(Ok(()));
            }
            match &this.receiving {
                Receiving::Open => {}
                Receiving::Closed => return Poll::Ready(Ok(())),
                Receiving::Failed(kind, message) => {
                    return Poll::Ready(Err(io::Error::new(*kind, message.clone())));
                }
            }
            match this.open_next() {
                Ok(true) => {
                    // A key update answered here waits in `outgoing`: send it along.
                    if this.written < this.outgoing.len()
                        && let Poll::Ready(Err(error)) = this.poll_write_out(cx)
                    {
                        return Poll::Ready(Err(error));
                    }
                    continue;
                }
                Ok(false) => {}
                Err(error) => return Poll::Ready(Err(this.fail(error))),
            }
            if this.consumed == this.filled && buf.remaining() >= OPEN_IN_READER_BYTES_MIN {
                // Nothing half-received: the socket's bytes go straight into the reader's
                // buffer and are opened there.
                (this.consumed, this.filled, this.plain_start, this.plain_end) = (0, 0, 0, 0);
                let from = buf.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                if buf.filled().len() == from {
                    return Poll::Ready(Err(this.eof_without_close_notify()));
                }
                this.reader_takes_bulk = true;
                #[cfg(test)]
                {
                    this.opened_in_reader += 1;
                }
                let (opened, outcome) = this.open_in_reader(buf, from);
                if let Err(error) = outcome {
                    let error = this.fail(error);
                    // What opened before the bad record is read now; the error comes next.
                    return Poll::Ready(if opened > 0 { Ok(()) } else { Err(error) });
                }
                if this.written < this.outgoing.len()
                    && let Poll::Ready(Err(error)) = this.poll_write_out(cx)
                {
                    return Poll::Ready(Err(error));
                }
                if opened > 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.make_room();
            debug_assert!(
                this.filled < this.incoming.len(),
                "make_room leaves room for a record"
            );
            let limit = if buf.remaining() >= OPEN_IN_READER_BYTES_MIN {
                // A reader with room for records gets only the rest of the one half-received
                // here, so that the next read can go straight into its buffer.
                this.rest_of_record()
            } else if this.reader_takes_bulk {
                // The end of a large buffer: only about what it has room for, so that the next
                // read goes straight into its next buffer. Filling the receive buffer here made
                // the reader's next 256 KiB go through it, copied: up to a quarter of a chunk
                // download's bytes, with HTTP/2 frames of 1 MiB.
                Some(OPEN_IN_READER_BYTES_MIN)
            } else {
                None
            };
            let end = limit.map_or(this.incoming.len(), |limit| {
                (this.filled + limit).min(this.incoming.len())
            });
            let mut room = ReadBuf::new(&mut this.incoming[this.filled..end]);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut room))?;
            // Once: a reader that keeps offering little room gets whole receive buffers again.
            this.reader_takes_bulk = false;
            let (n, offered) = (room.filled().len(), room.capacity());
            if n == 0 {
                return Poll::Ready(Err(this.eof_without_close_notify()));
            }
            this.filled += n;
            if limit.is_none()
                && n == offered
                && this.incoming.len() < INCOMING_BYTES_MAX + INCOMING_SLACK_BYTES
            {
                let grown = (2 * (this.incoming.len() - INCOMING_SLACK_BYTES)).min(INCOMING_BYTES_MAX);
                this.incoming.resize(grown + INCOMING_SLACK_BYTES, 0);
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for BulkStream<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_parts(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        parts: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_parts(cx, parts)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.sent_close {
            self.seal(
                CONTENT_ALERT,
                &[ALERT_LEVEL_WARNING, u8::from(AlertDescription::CloseNotify)],
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.sent_close = true;
        }
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
