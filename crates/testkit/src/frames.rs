//! A fake answer's body as frames: bytes, and where the connection breaks; and the endings
//! (`Ending`) every wire flavor applies the same way.

use bytes::Bytes;

use crate::behavior::Ending;

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

    pub(crate) fn push(&mut self, bytes: String) {
        self.frames.push(Frame::Bytes(Bytes::from(bytes)));
    }

    pub(crate) fn content(&mut self, bytes: String) {
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
        terminator: String,
        malformed: String,
    ) -> Vec<Frame> {
        let cut = self.first_content.unwrap_or(1).min(self.frames.len());
        match ending {
            Ending::Complete => self.push(terminator),
            Ending::NoTerminator => {}
            Ending::Malformed => {
                self.frames
                    .insert(cut, Frame::Bytes(Bytes::from(malformed)));
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

/// The first half of a frame's bytes (split on a char boundary): an event cut off mid-line.
fn half_frame(frame: &Frame) -> Option<Frame> {
    match frame {
        Frame::Bytes(b) => {
            let (head, _) = halves(&String::from_utf8_lossy(b));
            Some(Frame::Bytes(Bytes::from(head)))
        }
        Frame::Abort => None,
    }
}
