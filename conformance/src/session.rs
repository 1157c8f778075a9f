//! The steps most server cases build on: register, send the key, upload a file
//! (in any layout of section 8), each recorded as evidence.

use protocol_core::crypto::{AesKey, CbcEncryptor, Checksum, ChecksumAlgorithm};
use protocol_core::ByteOrder;

use bytes::BytesMut;

use crate::frames::{code, name_field, packet_payload, rcode, request, PacketFields, RawResponse};
use crate::probe::{Answer, CaseError, Conn, Ctx};

/// A client the suite registered.
pub struct Client {
    /// The id from 1600.
    pub id: [u8; 16],
    /// The name registered.
    pub name: String,
    /// The AES key from 1602/1605, once exchanged.
    pub key: Option<AesKey>,
    /// Which of the run's key pairs was sent.
    pub key_index: usize,
    /// The connection in use.
    pub conn: Conn,
}

pub use crate::frames::Layout;

/// One upload to make.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The plaintext.
    pub data: Vec<u8>,
    /// The file name field.
    pub file_name: Vec<u8>,
    /// Content bytes per packet.
    pub packet_size: usize,
    /// The layout.
    pub layout: Layout,
}

/// What an upload got back.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// Every answer in order (answers to packets before the last, the last answer,
    /// and any answer that followed within the silence interval).
    pub answers: Vec<Answer>,
    /// How many answers came before the last packet was written.
    pub before_last: usize,
    /// Ciphertext bytes sent in all.
    pub cipher_len: u32,
    /// The cksum of the plaintext.
    pub cksum: u32,
    /// The zlib CRC-32 of the plaintext.
    pub crc32: u32,
    /// Packets sent.
    pub packets: usize,
}

impl Uploaded {
    /// The 1603s received, in order.
    pub fn file_received(&self) -> Vec<&RawResponse> {
        self.answers
            .iter()
            .filter_map(|a| a.response())
            .filter(|r| r.code == rcode::FILE_RECEIVED)
            .collect()
    }

    /// The answer that ends the upload: the last 1603 if any, else the first answer
    /// that is not one.
    pub fn last(&self) -> &Answer {
        self.answers
            .iter()
            .rev()
            .find(|a| a.code() == Some(rcode::FILE_RECEIVED))
            .or_else(|| self.answers.iter().find(|a| a.code().is_some()))
            .or_else(|| self.answers.last())
            .unwrap_or(&Answer::Timeout)
    }
}

/// Deterministic test bytes.
pub fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Checksum of `data` with `alg`.
pub fn checksum(alg: ChecksumAlgorithm, data: &[u8]) -> u32 {
    let mut c = Checksum::new(alg);
    c.update(data);
    c.value()
}

/// AES-CBC, zero IV, PKCS#7 of `plain` under `key`.
pub fn encrypt(key: &AesKey, plain: &[u8]) -> Vec<u8> {
    let mut enc = CbcEncryptor::new(key);
    let mut out = BytesMut::new();
    enc.update(plain, &mut out);
    enc.finish(&mut out);
    out.to_vec()
}

/// The whole 828 frames of an upload.
pub fn packets(id: [u8; 16], key: &AesKey, up: &Upload) -> Vec<Vec<u8>> {
    let size = up.packet_size.max(1);
    let l = up.layout;
    let contents: Vec<Vec<u8>> = if l.per_packet_encryption {
        if up.data.is_empty() {
            vec![encrypt(key, &[])]
        } else {
            up.data.chunks(size).map(|c| encrypt(key, c)).collect()
        }
    } else {
        let cipher = encrypt(key, &up.data);
        cipher.chunks(size).map(|c| c.to_vec()).collect()
    };
    let total_len: usize = contents.iter().map(Vec::len).sum();
    let total = contents.len().min(u16::MAX as usize) as u16;
    contents
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut content = c.clone();
            if l.padded && content.len() < size {
                content.resize(size, 0);
            }
            let f = PacketFields {
                content_size: if l.per_packet_size {
                    c.len()
                } else {
                    total_len
                } as u32,
                original_size: up.data.len() as u32,
                number: (i + 1) as u16,
                total,
                total_first: l.total_first,
                file_name: up.file_name.clone(),
            };
            request(
                id,
                code::SEND_FILE,
                &packet_payload(&f, &content, l.order),
                l.order,
            )
        })
        .collect()
}

impl Ctx<'_> {
    /// Sends 825 for `name` on a new connection.
    pub fn register_name(&mut self, name: &[u8]) -> Result<(Conn, Answer), CaseError> {
        let mut conn = self.connect()?;
        let a = self.ask(
            &mut conn,
            &request([0; 16], code::REGISTER, &name_field(name), self.env.order),
        );
        Ok((conn, a))
    }

    /// Registers a fresh name; anything but a 1600 with an id is a setup failure.
    pub fn register(&mut self, tag: &str) -> Result<Client, CaseError> {
        let name = self.env.fresh_name(tag);
        let (conn, a) = self.register_name(name.as_bytes())?;
        match a
            .response()
            .and_then(|r| (r.code == rcode::REGISTERED).then(|| r.id()))
        {
            Some(Some(id)) => Ok(Client {
                id,
                name,
                key: None,
                key_index: 0,
                conn,
            }),
            _ => Err(CaseError::Setup(format!(
                "registration of {name} answered {}",
                a.describe()
            ))),
        }
    }

    /// Sends `bytes` for `c`, on a new connection if the old one is closed or the
    /// server wants one per request.
    pub fn request(&mut self, c: &mut Client, bytes: &[u8]) -> Result<Answer, CaseError> {
        self.reopen_if_needed(c)?;
        let reused = c.conn.answered;
        let a = self.ask(&mut c.conn, bytes);
        if reused && matches!(a, Answer::Reset | Answer::Closed) {
            // The server closed the connection after its last answer, and the close
            // had not arrived when it was checked: the request again, once, as a
            // client would.
            self.ev
                .note("closed after the last answer: again on a new connection");
            c.conn = self.connect()?;
            return Ok(self.ask(&mut c.conn, bytes));
        }
        Ok(a)
    }

    /// Opens a new connection for `c` if its connection is closed or the server
    /// closes after every answer.
    pub fn reopen_if_needed(&mut self, c: &mut Client) -> Result<(), CaseError> {
        if self.env.per_connection || c.conn.is_closed() {
            self.ev.note("new connection");
            c.conn = self.connect()?;
        }
        Ok(())
    }

    /// The 826 payload for `c` with key pair `index`.
    pub fn key_payload(&self, name: &[u8], index: usize) -> Result<Vec<u8>, CaseError> {
        let field = self.env.keys[index % 2]
            .public_key()
            .to_field()
            .map_err(|e| CaseError::Setup(format!("public key: {e}")))?;
        let mut p = name_field(name);
        p.extend_from_slice(&field);
        Ok(p)
    }

    /// Sends 826 with key pair `index` and decrypts the AES key of a 1602.
    pub fn send_key(&mut self, c: &mut Client, index: usize) -> Result<Answer, CaseError> {
        let p = self.key_payload(c.name.as_bytes(), index)?;
        let a = self.request(c, &request(c.id, code::PUBLIC_KEY, &p, self.env.order))?;
        c.key_index = index;
        if let Some(k) = a.response().and_then(|r| r.encrypted_key()) {
            match self.env.keys[index % 2].decrypt_aes_key(k) {
                Ok(key) => c.key = Some(key),
                Err(e) => self.ev.note(format!("the AES key does not decrypt: {e}")),
            }
        }
        Ok(a)
    }

    /// A registered client holding an AES key.
    pub fn ready(&mut self, tag: &str) -> Result<Client, CaseError> {
        let mut c = self.register(tag)?;
        let a = self.send_key(&mut c, 0)?;
        if c.key.is_none() {
            return Err(CaseError::Setup(format!(
                "826 answered {} without a usable key",
                a.describe()
            )));
        }
        Ok(c)
    }

    /// Uploads `up` for `c` in the layout the server was found to take (see
    /// [`crate::probe::Env::adopted`]) when `up` asks for the specification's.
    pub fn upload(&mut self, c: &mut Client, up: &Upload) -> Result<Uploaded, CaseError> {
        let mut adapted = up.clone();
        if let Some((layout, size)) = self.env.adopted {
            if up.layout == Layout::default() {
                adapted.layout = layout;
                adapted.packet_size = up.packet_size.min(size);
            }
        }
        if up.layout.order == ByteOrder::Little {
            adapted.layout.order = self.env.order;
        }
        self.upload_exactly(c, &adapted)
    }

    /// Uploads `up` for `c` exactly as given: writes the packets (waiting for each
    /// answer when the server closes after every answer), then reads the answers.
    pub fn upload_exactly(&mut self, c: &mut Client, up: &Upload) -> Result<Uploaded, CaseError> {
        let key = c
            .key
            .as_ref()
            .ok_or_else(|| CaseError::Setup("no AES key".into()))?;
        let frames = packets(c.id, key, up);
        self.reopen_if_needed(c)?;
        let reused = c.conn.answered;
        let got = self.upload_frames(c, up, &frames)?;
        if reused && matches!(got.answers.first(), Some(Answer::Reset | Answer::Closed)) {
            // As in `request`: a close that had not arrived when checked.
            self.ev
                .note("closed after the last answer: the upload again on a new connection");
            c.conn = self.connect()?;
            return self.upload_frames(c, up, &frames);
        }
        Ok(got)
    }

    /// As [`Ctx::upload`] with frames the case made (or changed) itself.
    pub fn upload_frames(
        &mut self,
        c: &mut Client,
        up: &Upload,
        frames: &[Vec<u8>],
    ) -> Result<Uploaded, CaseError> {
        // The zero fill of variant 12 is no ciphertext: the declared total is.
        let cipher_len: usize = if up.layout.padded {
            protocol_core::crypto::padded_len(up.data.len() as u64) as usize
        } else {
            frames
                .iter()
                .map(|f| f.len().saturating_sub(23 + 267))
                .sum()
        };
        let mut answers = Vec::new();
        let n = frames.len();
        for (i, f) in frames.iter().enumerate() {
            if i == 0 || self.env.per_connection {
                self.reopen_if_needed(c)?;
            } else if c.conn.is_closed() {
                // Never a new connection in the middle of an upload: that would be
                // another upload.
                self.ev.note(format!("closed before packet {}", i + 1));
                answers.push(Answer::Closed);
                break;
            }
            if !self.send(&mut c.conn, f) {
                answers
                    .push(self.answer_within(&mut c.conn, std::time::Duration::from_millis(300)));
                break;
            }
            if i + 1 < n {
                if self.env.per_connection {
                    let a = self.answer(&mut c.conn);
                    let stop = a.code() != Some(rcode::FILE_RECEIVED);
                    answers.push(a);
                    if stop {
                        break;
                    }
                } else if c.conn.has_input() {
                    let a = self.answer_within(&mut c.conn, std::time::Duration::from_secs(1));
                    // A refusal ends the upload: packets after it would only
                    // start another one on a new connection.
                    let stop = a.code() != Some(rcode::FILE_RECEIVED);
                    answers.push(a);
                    if stop {
                        break;
                    }
                }
            }
        }
        let before_last = answers.len();
        if answers
            .last()
            .is_none_or(|a| a.code() == Some(rcode::FILE_RECEIVED))
        {
            // Answers to packets before the last (checksum 0, a part's size) may still
            // be on their way: read on to the answer that covers the file.
            let mut a = self.answer(&mut c.conn);
            for _ in 0..n {
                let part = a
                    .response()
                    .and_then(|r| r.file_received())
                    .is_some_and(|f| f.checksum == 0 && (f.size as usize) < cipher_len);
                if !part {
                    break;
                }
                answers.push(a);
                a = self.answer(&mut c.conn);
            }
            let got_1603 = a.code() == Some(rcode::FILE_RECEIVED);
            answers.push(a);
            if got_1603 && n > 1 && !self.env.per_connection {
                let extra = self.expect_silence(&mut c.conn);
                if matches!(extra, Answer::Response(_)) {
                    answers.push(extra);
                }
            }
        }
        Ok(Uploaded {
            answers,
            before_last,
            cipher_len: cipher_len as u32,
            cksum: checksum(ChecksumAlgorithm::Cksum, &up.data),
            crc32: checksum(ChecksumAlgorithm::Crc32, &up.data),
            packets: n,
        })
    }

    /// Sends 900/901/902 with `name` in the field.
    /// When the server wants the client's name there (variant 5, see
    /// [`crate::probe::Env::verdict_names_client`]), the client's name is sent instead.
    pub fn verdict(&mut self, c: &mut Client, code: u16, name: &[u8]) -> Result<Answer, CaseError> {
        if self.env.verdict_names_client {
            let own = c.name.clone().into_bytes();
            return self.verdict_exactly(c, code, &own);
        }
        self.verdict_exactly(c, code, name)
    }

    /// Sends 900/901/902 with exactly `name` in the field.
    pub fn verdict_exactly(
        &mut self,
        c: &mut Client,
        code: u16,
        name: &[u8],
    ) -> Result<Answer, CaseError> {
        let r = request(c.id, code, &name_field(name), self.env.order);
        if code == crate::frames::code::CRC_RETRY {
            self.reopen_if_needed(c)?;
            self.send(&mut c.conn, &r);
            return Ok(self.expect_silence(&mut c.conn));
        }
        self.request(c, &r)
    }
}
