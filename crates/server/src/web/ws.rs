//! WebSocket on a browser's connection, after the handshake: what comes in
//! is taken apart into messages ([`Incoming`]) and what goes out is the
//! relay's lines, one text frame each ([`Outgoing`]). Frame headers are
//! parsed and formatted by `tungstenite`; this module owns the limits and
//! the zero-copy write.
//!
//! In: frames must be masked (RFC 6455 §5.1); a text message, whole or in
//! at most [`MAX_FRAGMENTS`] fragments, of at most `max_message` bytes, is
//! one frame of the wire format; a binary message, a reserved opcode or
//! bit, or a control frame over 125 bytes or fragmented, is an error that
//! closes the connection. Pings are answered, a close is honoured.
//!
//! Out: the relay's queue holds lines (`base64\n`), shared by every
//! recipient. Each is written as one unmasked text frame: a header of 2–4
//! bytes of this connection's own, then the shared line itself, gathered
//! in one `writev`. No line is copied or sealed per recipient. A frame the
//! socket took only part of is resumed where it stopped.

use std::io::{self, Cursor, IoSlice, Write};

use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};

/// Most fragments one message may come in: a flood of tiny fragments is
/// cut here.
pub const MAX_FRAGMENTS: usize = 64;

/// Most frames gathered into one `writev`: two slices each, within the
/// 1024 of `IOV_MAX`.
const FRAMES_PER_WRITE: usize = 500;

/// What a browser's bytes held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A whole text message: one frame of the wire format.
    Text(Vec<u8>),
    /// A ping: answered with its payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The browser closes.
    Close,
}

/// Why a browser's connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// Not a well-formed frame, or one a client may not send; the text says
    /// which, as it is logged.
    Protocol(&'static str),
    /// A binary message: the wire format is text.
    Binary,
    /// A message longer than the relay's `--max-frame`.
    TooLong,
    /// More than [`MAX_FRAGMENTS`] fragments.
    TooManyFragments,
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl WsError {
    /// What went wrong, as the relay logs it when it closes the connection
    /// (`eaxchat_core::relay::CloseReason::Transport`).
    pub fn reason(self) -> &'static str {
        match self {
            WsError::Protocol(what) => what,
            WsError::Binary => "websocket binary message (frames are text)",
            WsError::TooLong => "websocket message longer than --max-frame",
            // The count is MAX_FRAGMENTS (a test checks that they agree).
            WsError::TooManyFragments => "websocket message in more than 64 fragments",
        }
    }

    /// The close code sent before closing.
    pub fn close_code(self) -> CloseCode {
        match self {
            WsError::Protocol(_) => CloseCode::Protocol,
            WsError::Binary => CloseCode::Unsupported,
            WsError::TooLong | WsError::TooManyFragments => CloseCode::Size,
        }
    }
}

/// A browser's incoming bytes, taken apart.
#[derive(Debug)]
pub struct Incoming {
    buf: Vec<u8>,
    message: Vec<u8>,
    fragments: usize,
    max_message: usize,
}

impl Incoming {
    /// Messages of at most `max_message` bytes (the relay's `--max-frame`).
    pub fn new(max_message: usize) -> Incoming {
        Incoming {
            buf: Vec::new(),
            message: Vec::new(),
            fragments: 0,
            max_message,
        }
    }

    /// Raises or lowers the longest message taken from now on.
    pub fn set_max(&mut self, max_message: usize) {
        self.max_message = max_message;
    }

    /// Bytes held for an unfinished frame or message.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.message.len()
    }

    /// Takes `data` in; every event it completes goes to `out`. After an
    /// error nothing more is to be fed.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<WsEvent>) -> Result<(), WsError> {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            let mut cursor = Cursor::new(&self.buf[at..]);
            let Some((header, len)) = FrameHeader::parse(&mut cursor)
                .map_err(|_| WsError::Protocol("websocket protocol error: bad frame header"))?
            else {
                break;
            };
            let header_len = cursor.position() as usize;
            if len > self.max_message as u64 {
                return Err(WsError::TooLong);
            }
            let len = len as usize;
            if self.buf.len() - at < header_len + len {
                break;
            }
            let start = at + header_len;
            at = start + len;
            let Some(mask) = header.mask else {
                return Err(WsError::Protocol(
                    "websocket protocol error: unmasked client frame",
                ));
            };
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(WsError::Protocol(
                    "websocket protocol error: reserved bits set",
                ));
            }
            let mut payload = self.buf[start..at].to_vec();
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
            self.frame(&header, payload, out)?;
        }
        self.buf.drain(..at);
        Ok(())
    }

    fn frame(
        &mut self,
        header: &FrameHeader,
        payload: Vec<u8>,
        out: &mut Vec<WsEvent>,
    ) -> Result<(), WsError> {
        match header.opcode {
            OpCode::Control(control) => {
                if !header.is_final || payload.len() > 125 {
                    return Err(WsError::Protocol(
                        "websocket protocol error: control frame fragmented or over 125 bytes",
                    ));
                }
                match control {
                    Control::Ping => out.push(WsEvent::Ping(payload)),
                    Control::Pong => out.push(WsEvent::Pong),
                    Control::Close => out.push(WsEvent::Close),
                    Control::Reserved(_) => {
                        return Err(WsError::Protocol(
                            "websocket protocol error: reserved opcode",
                        ));
                    }
                }
            }
            OpCode::Data(Data::Binary) => return Err(WsError::Binary),
            OpCode::Data(Data::Reserved(_)) => {
                return Err(WsError::Protocol(
                    "websocket protocol error: reserved opcode",
                ));
            }
            OpCode::Data(Data::Text) if self.fragments > 0 => {
                return Err(WsError::Protocol(
                    "websocket protocol error: a new message inside a fragmented one",
                ));
            }
            OpCode::Data(Data::Continue) if self.fragments == 0 => {
                return Err(WsError::Protocol(
                    "websocket protocol error: a continuation with nothing to continue",
                ));
            }
            OpCode::Data(Data::Text | Data::Continue) => {
                self.fragments += 1;
                if self.fragments > MAX_FRAGMENTS {
                    return Err(WsError::TooManyFragments);
                }
                if self.message.len() + payload.len() > self.max_message {
                    return Err(WsError::TooLong);
                }
                self.message.extend_from_slice(&payload);
                if header.is_final {
                    self.fragments = 0;
                    out.push(WsEvent::Text(std::mem::take(&mut self.message)));
                }
            }
        }
        Ok(())
    }
}

/// A browser's outgoing side: control frames of its own, and how far the
/// frame at the head of the relay's queue got.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Pongs and the close frame, written between data frames.
    control: Vec<u8>,
    /// Bytes of the head line's frame (header and line) already written.
    head_written: usize,
    /// The close frame is queued: nothing more goes out after it.
    closing: bool,
}

impl Outgoing {
    /// Queues a pong for a ping's payload.
    pub fn pong(&mut self, payload: Vec<u8>) {
        if !self.closing {
            let _ = Frame::pong(payload).format(&mut self.control);
        }
    }

    /// Queues a ping.
    pub fn ping(&mut self) {
        if !self.closing {
            let _ = Frame::ping(Vec::new()).format(&mut self.control);
        }
    }

    /// Queues the close frame, with `code` and `reason`.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if !self.closing {
            self.closing = true;
            let frame = Frame::close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = frame.format(&mut self.control);
        }
    }

    /// Whether control bytes wait for the socket.
    pub fn has_control(&self) -> bool {
        !self.control.is_empty()
    }

    /// Writes queued control frames, when no data frame is half written:
    /// `Ok(true)` when none are left.
    pub fn flush_control(&mut self, socket: &mut impl Write) -> io::Result<bool> {
        while self.head_written == 0 && !self.control.is_empty() {
            match socket.write(&self.control) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.control.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(self.control.is_empty())
    }

    /// Writes the relay's lines in `bufs` (each a run of whole `base64\n`
    /// lines) as text frames; returns how many bytes of `bufs` are done
    /// with: whole lines only, so the next call starts at a line. Nothing
    /// is allocated: the headers and the gather list live on the stack.
    pub fn write_lines(
        &mut self,
        socket: &mut impl Write,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        if !self.flush_control(socket)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // The lines of this call, each with its header.
        let mut headers = [[0u8; MAX_HEADER]; FRAMES_PER_WRITE];
        let mut header_lens = [0usize; FRAMES_PER_WRITE];
        let mut lines: [&[u8]; FRAMES_PER_WRITE] = [&[]; FRAMES_PER_WRITE];
        let mut count = 0;
        // Every line of a run is usually as long as the last: its header is
        // formatted once.
        let mut last_len = None;
        'gather: for buf in bufs {
            let mut rest: &[u8] = buf;
            while let Some(end) = memchr::memchr(b'\n', rest) {
                let line = &rest[..end];
                rest = &rest[end + 1..];
                if last_len == Some(line.len()) && count > 0 {
                    headers[count] = headers[count - 1];
                    header_lens[count] = header_lens[count - 1];
                } else {
                    header_lens[count] = text_header(line.len(), &mut headers[count])?;
                    last_len = Some(line.len());
                }
                lines[count] = line;
                count += 1;
                if count == FRAMES_PER_WRITE {
                    break 'gather;
                }
            }
        }
        if count == 0 {
            return Ok(0);
        }
        // Until a whole frame is written: a partial one is no line done
        // with, and `Ok(0)` would read as a closed socket.
        loop {
            let mut slices = [IoSlice::new(&[]); 2 * FRAMES_PER_WRITE];
            let mut used = 0;
            for i in 0..count {
                let frame = [&headers[i][..header_lens[i]], lines[i]];
                // The head frame may be partly written already.
                let mut skip = if i == 0 { self.head_written } else { 0 };
                for part in frame {
                    let from = skip.min(part.len());
                    skip -= from;
                    if from < part.len() {
                        slices[used] = IoSlice::new(&part[from..]);
                        used += 1;
                    }
                }
            }
            let mut written = loop {
                match socket.write_vectored(&slices[..used]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    result => break result?,
                }
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            // Whole frames written are lines done with; the rest of a
            // partly written one is resumed next time.
            let mut done = 0;
            for i in 0..count {
                let already = if i == 0 { self.head_written } else { 0 };
                let left = header_lens[i] + lines[i].len() - already;
                if written >= left {
                    written -= left;
                    done += lines[i].len() + 1;
                    self.head_written = 0;
                } else {
                    self.head_written += written;
                    break;
                }
            }
            if done > 0 {
                return Ok(done);
            }
        }
    }
}

/// The longest frame header a server sends: no mask, a 64-bit length.
const MAX_HEADER: usize = 10;

/// Formats a final, unmasked text frame's header for `len` bytes into
/// `out`; returns its length.
fn text_header(len: usize, out: &mut [u8; MAX_HEADER]) -> io::Result<usize> {
    let mut cursor = Cursor::new(&mut out[..]);
    FrameHeader {
        is_final: true,
        opcode: OpCode::Data(Data::Text),
        mask: None,
        ..FrameHeader::default()
    }
    .format(len as u64, &mut cursor)
    .map_err(|_| io::Error::other("formatting a frame header"))?;
    Ok(cursor.position() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragments_reason_names_the_limit() {
        assert!(
            WsError::TooManyFragments
                .reason()
                .contains(&format!(" {MAX_FRAGMENTS} "))
        );
    }

    /// A client's frame: masked, as a browser sends it.
    fn client_frame(opcode: OpCode, is_final: bool, payload: &[u8]) -> Vec<u8> {
        let mut header = FrameHeader {
            is_final,
            opcode,
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::default()
        };
        header.rsv1 = false;
        let mut out = Vec::new();
        header
            .format(payload.len() as u64, &mut out)
            .expect("header");
        out.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
        );
        out
    }

    fn feed(incoming: &mut Incoming, bytes: &[u8]) -> Result<Vec<WsEvent>, WsError> {
        let mut out = Vec::new();
        incoming.feed(bytes, &mut out).map(|()| out)
    }

    #[test]
    fn messages_whole_split_and_fragmented() {
        let mut incoming = Incoming::new(100);
        let mut bytes = client_frame(OpCode::Data(Data::Text), true, b"hello");
        bytes.extend(client_frame(OpCode::Data(Data::Text), false, b"frag"));
        bytes.extend(client_frame(OpCode::Data(Data::Continue), true, b"ment"));
        bytes.extend(client_frame(OpCode::Control(Control::Ping), true, b"p"));
        let (a, b) = bytes.split_at(7);
        let mut events = feed(&mut incoming, a).expect("ok");
        events.extend(feed(&mut incoming, b).expect("ok"));
        assert_eq!(
            events,
            [
                WsEvent::Text(b"hello".to_vec()),
                WsEvent::Text(b"fragment".to_vec()),
                WsEvent::Ping(b"p".to_vec())
            ]
        );
        assert_eq!(incoming.buffered(), 0);
    }

    #[test]
    fn hostile_frames_are_errors() {
        let text = OpCode::Data(Data::Text);
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (
                client_frame(OpCode::Data(Data::Binary), true, b"x"),
                WsError::Binary,
            ),
            (client_frame(text, true, &[b'a'; 101]), WsError::TooLong),
            (
                client_frame(OpCode::Data(Data::Continue), true, b"x"),
                WsError::Protocol(
                    "websocket protocol error: a continuation with nothing to continue",
                ),
            ),
            (
                client_frame(OpCode::Control(Control::Ping), false, b"x"),
                WsError::Protocol(
                    "websocket protocol error: control frame fragmented or over 125 bytes",
                ),
            ),
            (
                {
                    let mut unmasked = Vec::new();
                    FrameHeader {
                        is_final: true,
                        opcode: text,
                        mask: None,
                        ..FrameHeader::default()
                    }
                    .format(1, &mut unmasked)
                    .expect("header");
                    unmasked.push(b'x');
                    unmasked
                },
                WsError::Protocol("websocket protocol error: unmasked client frame"),
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(feed(&mut Incoming::new(100), &bytes), Err(error));
        }
        let mut flood = client_frame(text, false, b"a");
        for _ in 0..MAX_FRAGMENTS {
            flood.extend(client_frame(OpCode::Data(Data::Continue), false, b"a"));
        }
        assert_eq!(
            feed(&mut Incoming::new(1000), &flood),
            Err(WsError::TooManyFragments)
        );
    }

    /// A socket that takes `room` bytes per call.
    struct Trickle {
        out: Vec<u8>,
        room: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut taken = 0;
            for buf in bufs {
                let take = buf.len().min(self.room - taken);
                self.out.extend_from_slice(&buf[..take]);
                taken += take;
            }
            Ok(taken)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_go_out_as_frames_resumed_where_the_socket_stopped() {
        let run = b"first\nsecond line\nthird\n";
        for room in [1, 3, 7, 100] {
            let mut socket = Trickle {
                out: Vec::new(),
                room,
            };
            let mut outgoing = Outgoing::default();
            outgoing.pong(b"p".to_vec());
            let mut done = 0;
            while done < run.len() {
                match outgoing.write_lines(&mut socket, &[IoSlice::new(&run[done..])]) {
                    Ok(n) => {
                        assert!(n > 0, "Ok(0) would read as a closed socket");
                        done += n;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            // Parse as a client sees server frames: unmasked.
            let mut at = 0;
            let mut payloads = Vec::new();
            while at < socket.out.len() {
                let mut cursor = Cursor::new(&socket.out[at..]);
                let (header, len) = FrameHeader::parse(&mut cursor).expect("ok").expect("whole");
                assert_eq!(header.mask, None);
                let start = at + cursor.position() as usize;
                payloads.push((
                    header.opcode,
                    socket.out[start..start + len as usize].to_vec(),
                ));
                at = start + len as usize;
            }
            assert_eq!(
                payloads[0],
                (OpCode::Control(Control::Pong), b"p".to_vec()),
                "room {room}"
            );
            let texts: Vec<Vec<u8>> = payloads[1..].iter().map(|(_, p)| p.clone()).collect();
            assert_eq!(
                texts,
                [
                    b"first".to_vec(),
                    b"second line".to_vec(),
                    b"third".to_vec()
                ]
            );
        }
    }
}
