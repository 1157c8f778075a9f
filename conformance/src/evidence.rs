//! The bytes that show a case's outcome: what was sent and received, as truncated hex.

use serde::Serialize;

/// How many bytes of each chunk are kept as hex.
pub const KEEP_BYTES: usize = 48;
/// How many chunks a case keeps (later ones are counted, not kept).
pub const KEEP_CHUNKS: usize = 24;

/// Direction of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// From the suite to the implementation.
    Sent,
    /// From the implementation to the suite.
    Received,
    /// Not bytes: what the suite observed (a close, a timeout, an exit code).
    Note,
}

/// One write, one read, or one observation.
#[derive(Debug, Clone, Serialize)]
pub struct Chunk {
    /// Direction.
    pub dir: Dir,
    /// Length of the whole chunk in bytes (0 for notes).
    pub len: usize,
    /// Hex of its first [`KEEP_BYTES`] bytes, or the note's text.
    pub text: String,
}

/// A case's transcript, bounded in size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// The chunks kept.
    pub chunks: Vec<Chunk>,
    /// Chunks left out past [`KEEP_CHUNKS`].
    pub dropped: usize,
}

/// Lowercase hex of `b`, truncated to [`KEEP_BYTES`] bytes with `..` after.
pub fn hex(b: &[u8]) -> String {
    let mut s: String = b
        .iter()
        .take(KEEP_BYTES)
        .map(|x| format!("{x:02x}"))
        .collect();
    if b.len() > KEEP_BYTES {
        s.push_str("..");
    }
    s
}

impl Evidence {
    fn push(&mut self, chunk: Chunk) {
        if self.chunks.len() < KEEP_CHUNKS {
            self.chunks.push(chunk);
        } else {
            self.dropped += 1;
        }
    }

    /// Records bytes sent.
    pub fn sent(&mut self, b: &[u8]) {
        self.push(Chunk {
            dir: Dir::Sent,
            len: b.len(),
            text: hex(b),
        });
    }

    /// Records bytes received.
    pub fn received(&mut self, b: &[u8]) {
        self.push(Chunk {
            dir: Dir::Received,
            len: b.len(),
            text: hex(b),
        });
    }

    /// Records an observation.
    pub fn note(&mut self, text: impl Into<String>) {
        self.push(Chunk {
            dir: Dir::Note,
            len: 0,
            text: text.into(),
        });
    }

    /// One line per chunk: `> 0300..(278)`, `< ...`, `# note`.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .chunks
            .iter()
            .map(|c| match c.dir {
                Dir::Sent => format!("> {} ({} bytes)", c.text, c.len),
                Dir::Received => format!("< {} ({} bytes)", c.text, c.len),
                Dir::Note => format!("# {}", c.text),
            })
            .collect();
        if self.dropped > 0 {
            v.push(format!("# {} more chunks not kept", self.dropped));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_truncated_and_chunks_bounded() {
        assert_eq!(hex(&[0x03, 0x40]), "0340");
        assert!(hex(&[0u8; 100]).ends_with(".."));
        let mut e = Evidence::default();
        for _ in 0..30 {
            e.sent(&[1, 2]);
        }
        assert_eq!(e.chunks.len(), KEEP_CHUNKS);
        assert_eq!(e.dropped, 30 - KEEP_CHUNKS);
    }
}
