//! The manifest of one upload in progress: the small object that lets another
//! process continue it (`<prefix>/uploads/<id>/manifest`).
//!
//! ```text
//! {"version":1,"multipart":"<id>"|null,"parts":[{"etag":"..","size":8388608},..],
//!  "tail":"tail-3"|null,"tail_size":1234,"generation":3,"finished":false}
//! ```
//!
//! `parts` are the multipart parts uploaded, in order (part `i` has index `i`); the
//! bytes after them, fewer than a part, are the object `tail` in the upload's folder.
//! Each flush writes the tail under a new generation's name and then the manifest,
//! which is replaced whole by one PUT: a reader sees the old state or the new one,
//! never a manifest naming a tail of another length.

use std::io;

use serde_json::{json, Value};

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// What the store returned for it (the ETag on S3), given back at completion.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What the store holds of one upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The multipart upload, once the first full part was sent.
    pub multipart: Option<String>,
    /// Parts uploaded, in order.
    pub parts: Vec<Part>,
    /// The object holding the bytes after the parts (a name inside the upload's folder).
    pub tail: Option<String>,
    /// Its size.
    pub tail_size: u64,
    /// Counter for tail names, so that a new tail never overwrites the one the
    /// manifest names.
    pub generation: u64,
    /// Durable and complete (after `finish`): nothing more may be appended.
    pub finished: bool,
}

const VERSION: u64 = 1;

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("upload manifest: {what}"),
    )
}

impl Manifest {
    /// Bytes stored in all: the parts and the tail.
    pub fn stored_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum::<u64>() + self.tail_size
    }

    /// The manifest as stored.
    pub fn encode(&self) -> Vec<u8> {
        let parts: Vec<Value> = self
            .parts
            .iter()
            .map(|p| json!({"etag": p.etag, "size": p.size}))
            .collect();
        json!({
            "version": VERSION,
            "multipart": self.multipart,
            "parts": parts,
            "tail": self.tail,
            "tail_size": self.tail_size,
            "generation": self.generation,
            "finished": self.finished,
        })
        .to_string()
        .into_bytes()
    }

    /// Reads a stored manifest; anything malformed is `InvalidData`.
    pub fn decode(bytes: &[u8]) -> io::Result<Manifest> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        if v.get("version").and_then(Value::as_u64) != Some(VERSION) {
            return Err(bad("unknown version"));
        }
        let opt_str = |name: &str| -> io::Result<Option<String>> {
            match v.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(name)),
            }
        };
        let num = |name: &str| v.get(name).and_then(Value::as_u64).ok_or_else(|| bad(name));
        let parts = v
            .get("parts")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("parts"))?
            .iter()
            .map(|p| {
                let etag = p.get("etag").and_then(Value::as_str);
                let size = p.get("size").and_then(Value::as_u64);
                match (etag, size) {
                    (Some(etag), Some(size)) => Ok(Part {
                        etag: etag.to_string(),
                        size,
                    }),
                    _ => Err(bad("a part")),
                }
            })
            .collect::<io::Result<Vec<Part>>>()?;
        let m = Manifest {
            multipart: opt_str("multipart")?,
            parts,
            tail: opt_str("tail")?,
            tail_size: num("tail_size")?,
            generation: num("generation")?,
            finished: v
                .get("finished")
                .and_then(Value::as_bool)
                .ok_or_else(|| bad("finished"))?,
        };
        if m.multipart.is_none() && !m.parts.is_empty() {
            return Err(bad("parts without a multipart upload"));
        }
        if m.tail.is_none() && m.tail_size != 0 {
            return Err(bad("a tail size without a tail"));
        }
        if let Some(t) = &m.tail {
            if !is_tail_name(t) {
                return Err(bad("a tail name"));
            }
        }
        Ok(m)
    }
}

/// The name of generation `g`'s tail.
pub fn tail_name(generation: u64) -> String {
    format!("tail-{generation}")
}

fn is_tail_name(name: &str) -> bool {
    name.strip_prefix("tail-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip() {
        let m = Manifest {
            multipart: Some("abc/def==".into()),
            parts: vec![
                Part {
                    etag: "\"0123\"".into(),
                    size: 8 << 20,
                },
                Part {
                    etag: "\"4567\"".into(),
                    size: 8 << 20,
                },
            ],
            tail: Some(tail_name(7)),
            tail_size: 1234,
            generation: 7,
            finished: false,
        };
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.stored_bytes(), (16 << 20) + 1234);
        let empty = Manifest::default();
        assert_eq!(Manifest::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn malformed_manifests_are_refused_not_trusted() {
        for bad in [
            &b""[..],
            b"{}",
            b"[1]",
            br#"{"version":2,"multipart":null,"parts":[],"tail":null,"tail_size":0,"generation":0,"finished":false}"#,
            br#"{"version":1,"multipart":null,"parts":[{"etag":"x","size":1}],"tail":null,"tail_size":0,"generation":0,"finished":false}"#,
            br#"{"version":1,"multipart":null,"parts":[],"tail":null,"tail_size":5,"generation":0,"finished":false}"#,
            br#"{"version":1,"multipart":null,"parts":[],"tail":"../x","tail_size":5,"generation":0,"finished":false}"#,
            br#"{"version":1,"multipart":"m","parts":[{"etag":1,"size":1}],"tail":null,"tail_size":0,"generation":0,"finished":false}"#,
        ] {
            let e = Manifest::decode(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        }
    }
}
