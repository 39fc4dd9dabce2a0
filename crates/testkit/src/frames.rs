//! How a fake answer's bytes are broken: the pieces of a streamed body, and the endings a
//! [`Reply`] asks for (cut, aborted, malformed, unterminated), the same for every flavor's
//! wire format.

use bytes::Bytes;
use serde_json::Value;

use crate::behavior::{Ending, Reply};

/// One piece of a streamed body.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    Bytes(Bytes),
    /// Break the connection here.
    Abort,
}

/// The arguments' JSON text in two halves (split on a char boundary), to exercise
/// reassembly.
pub(crate) fn halves(text: &str) -> (String, String) {
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid += 1;
    }
    (text[..mid].to_owned(), text[mid..].to_owned())
}

/// A whole answer's bytes (`body`, from [`chat_body`]), broken as the reply's ending says.
pub(crate) fn chat_body_frames(reply: &Reply, body: &Value) -> Vec<Frame> {
    let text = body.to_string();
    let (head, _) = halves(&text);
    match reply.ending {
        Ending::Complete | Ending::NoTerminator => vec![Frame::Bytes(Bytes::from(text))],
        Ending::Malformed | Ending::Truncated | Ending::CutMidEvent | Ending::CutAtStart => {
            vec![Frame::Bytes(Bytes::from(head))]
        }
        Ending::Abort => vec![Frame::Bytes(Bytes::from(head)), Frame::Abort],
    }
}

/// Collects a stream's frames and where "after the first content" is.
pub(crate) struct Frames {
    frames: Vec<Frame>,
    first_content: Option<usize>,
}

impl Frames {
    pub(crate) fn new() -> Self {
        Frames {
            frames: Vec::new(),
            first_content: None,
        }
    }

    pub(crate) fn push(&mut self, bytes: impl Into<Bytes>) {
        self.frames.push(Frame::Bytes(bytes.into()));
    }

    pub(crate) fn content(&mut self, bytes: impl Into<Bytes>) {
        self.push(bytes);
        if self.first_content.is_none() {
            self.first_content = Some(self.frames.len());
        }
    }

    /// Applies the ending: the terminator (if `Complete`), or the break after the first
    /// content.
    pub(crate) fn finish(
        mut self,
        ending: Ending,
        terminator: impl Into<Bytes>,
        malformed: impl Into<Bytes>,
    ) -> Vec<Frame> {
        let cut = self.first_content.unwrap_or(1).min(self.frames.len());
        match ending {
            Ending::Complete => self.push(terminator),
            Ending::NoTerminator => {}
            Ending::Malformed => {
                self.frames.insert(cut, Frame::Bytes(malformed.into()));
                self.push(terminator);
            }
            Ending::Abort => {
                self.frames.truncate(cut);
                self.frames.push(Frame::Abort);
            }
            Ending::Truncated => self.frames.truncate(cut),
            Ending::CutMidEvent => {
                let next = self.frames.get(cut).and_then(half_frame);
                self.frames.truncate(cut);
                self.frames.extend(next);
            }
            Ending::CutAtStart => {
                let first = self.frames.first().and_then(half_frame);
                self.frames = first.into_iter().collect();
            }
        }
        self.frames
    }
}

/// The first half of a frame's bytes (split on a char boundary when it is text): an event
/// cut off mid-line, or a binary frame cut off inside.
fn half_frame(frame: &Frame) -> Option<Frame> {
    match frame {
        Frame::Bytes(b) => match std::str::from_utf8(b) {
            Ok(text) => Some(Frame::Bytes(Bytes::from(halves(text).0))),
            Err(_) => Some(Frame::Bytes(b.slice(..b.len() / 2))),
        },
        Frame::Abort => None,
    }
}
