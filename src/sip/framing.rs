//! SIP over a stream (RFC 3261 §18.3): messages cut out of TCP bytes by
//! the blank line that ends the head and the Content-Length after it, with
//! RFC 5626 §3.5.1 keep-alives (a CRLFCRLF "ping" wants a CRLF "pong").
//!
//! Sans-IO: [`StreamFramer::push`] the bytes a read gave, then take
//! [`StreamFramer::next_frame`] until `None`. Each byte is looked at a
//! bounded number of times: the search for the blank line resumes where
//! the last one stopped, and the head is read once, when it is complete
//! (a peer trickling a 64 KiB message byte by byte costs 64 K small steps,
//! not 64 K parses of a growing buffer). What a peer can make us hold is
//! bounded: a head of [`MAX_HEAD`], a body of [`MAX_BODY`].
//!
//! ```text
//!   Head (searching CRLFCRLF from `scanned`) ──found──► Body (until `frame_len`)
//!        ▲                                                   │
//!        └────────────── frame taken ◄──────────────────────┘
//! ```

use super::message::{self, MAX_HEAD};

/// The largest body a stream message may declare.
pub const MAX_BODY: usize = 64 * 1024;

/// What the stream carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message (head and body), for the endpoint to parse.
    Message(Vec<u8>),
    /// Keep-alive CRLFs; `pong`: answer with one CRLF.
    KeepAlive { pong: bool },
}

/// Why the stream cannot be framed any further: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A head longer than [`MAX_HEAD`] or a body longer than [`MAX_BODY`].
    #[error("SIP message too large for a stream")]
    TooLarge,
    /// The head's Content-Length cannot frame the body (missing digits,
    /// two of them). The head is given so that the endpoint may answer
    /// 400 (RFC 4475 §3.1.2.3) before the connection closes.
    #[error("{why}")]
    BadLength { why: &'static str, head: Vec<u8> },
}

/// Framing state of one connection.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// How far the search for the blank line got.
    scanned: usize,
    /// Once the head is read: the whole message's length.
    frame_len: Option<usize>,
}

impl StreamFramer {
    pub fn new() -> StreamFramer {
        StreamFramer::default()
    }

    /// Bytes held, not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.frame_len.is_none() {
            // §7.5 and RFC 5626: CRLFs between messages are keep-alives.
            let (crlf, ping) = message::stream_keep_alive(&self.buf);
            if crlf > 0 {
                if crlf == self.buf.len() && crlf < 4 && !ping {
                    // Perhaps the first half of a ping: wait for the rest.
                    return Ok(None);
                }
                self.buf.drain(..crlf);
                self.scanned = 0;
                return Ok(Some(Frame::KeepAlive { pong: ping }));
            }
            let from = self.scanned.saturating_sub(3);
            match find_blank_line(self.buf.get(from..).unwrap_or_default()) {
                None if self.buf.len() > MAX_HEAD => return Err(FramingError::TooLarge),
                None => {
                    self.scanned = self.buf.len();
                    return Ok(None);
                }
                Some(at) => {
                    let head_len = from + at;
                    let head = self.buf.get(..head_len).unwrap_or_default();
                    if head_len > MAX_HEAD {
                        return Err(FramingError::TooLarge);
                    }
                    let body = message::stream_body_length(head).map_err(|why| {
                        FramingError::BadLength {
                            why,
                            head: self.buf.get(..head_len + 4).unwrap_or_default().to_vec(),
                        }
                    })?;
                    if body > MAX_BODY {
                        return Err(FramingError::TooLarge);
                    }
                    self.frame_len = Some(head_len + 4 + body);
                }
            }
        }
        match self.frame_len {
            Some(len) if self.buf.len() >= len => {
                let message: Vec<u8> = self.buf.drain(..len).collect();
                self.frame_len = None;
                self.scanned = 0;
                Ok(Some(Frame::Message(message)))
            }
            Some(_) | None => Ok(None),
        }
    }
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
        From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
        Content-Length: 4\r\n\r\nbody";

    fn frames(f: &mut StreamFramer) -> Vec<Frame> {
        std::iter::from_fn(|| f.next_frame().unwrap()).collect()
    }

    #[test]
    fn pipelined_messages_and_keep_alives() {
        let mut f = StreamFramer::new();
        f.push(format!("\r\n\r\n{OPTIONS}{OPTIONS}\r\n").as_bytes());
        let got = frames(&mut f);
        assert_eq!(
            got,
            vec![
                Frame::KeepAlive { pong: true },
                Frame::Message(OPTIONS.as_bytes().to_vec()),
                Frame::Message(OPTIONS.as_bytes().to_vec()),
            ]
        );
        // A lone CRLF may be half a ping: it waits, then completes it.
        assert_eq!(f.buffered(), 2);
        f.push(b"\r\n");
        assert_eq!(frames(&mut f), vec![Frame::KeepAlive { pong: true }]);
        // Or it was only a separator before the next message.
        f.push(b"\r\n");
        f.push(OPTIONS.as_bytes());
        assert_eq!(
            frames(&mut f),
            vec![
                Frame::KeepAlive { pong: false },
                Frame::Message(OPTIONS.as_bytes().to_vec())
            ]
        );
    }

    #[test]
    fn a_message_trickled_byte_by_byte_is_framed_once_whole() {
        let mut f = StreamFramer::new();
        let mut got = Vec::new();
        for b in OPTIONS.as_bytes() {
            f.push(std::slice::from_ref(b));
            got.extend(frames(&mut f));
        }
        assert_eq!(got, vec![Frame::Message(OPTIONS.as_bytes().to_vec())]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn sizes_a_peer_can_make_us_hold_are_bounded() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nX: ");
        f.push(&vec![b'a'; MAX_HEAD]);
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge));
        let mut f = StreamFramer::new();
        f.push(format!("INVITE sip:a@b SIP/2.0\r\nl: {}\r\n\r\n", MAX_BODY + 1).as_bytes());
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge));
        let mut f = StreamFramer::new();
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert!(matches!(
            f.next_frame(),
            Err(FramingError::BadLength {
                why: "Multiple Content-Length",
                ..
            })
        ));
    }

    #[test]
    fn what_the_framer_cuts_the_parser_reads_whole() {
        use crate::sip::message::{Framing, parse};
        let mut framed = 0;
        for name in crate::sip::corpus::all() {
            let mut f = StreamFramer::new();
            f.push(&crate::sip::corpus::read(&name));
            if let Ok(Some(Frame::Message(m))) = f.next_frame()
                && let Ok(parsed) = parse(&m, Framing::Stream)
            {
                assert_eq!(parsed.consumed, m.len(), "{name}");
                framed += 1;
            }
        }
        assert!(framed > 20, "{framed}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes in any cuts: no panic, and what is held stays
            /// within a message's bounds.
            #[test]
            fn any_bytes_in_any_cuts(
                chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40),
            ) {
                let mut f = StreamFramer::new();
                for c in chunks {
                    f.push(&c);
                    loop {
                        match f.next_frame() {
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(_) => return Ok(()),
                        }
                    }
                    prop_assert!(f.buffered() <= MAX_HEAD + 4 + MAX_BODY + 300);
                }
            }
        }
    }
}
