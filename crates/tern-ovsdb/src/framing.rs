//! Sans-IO framing: ovsdb-server writes JSON-RPC messages back to back without delimiters, so the
//! byte stream is split into complete top-level JSON values by tracking nesting depth, strings and
//! escapes. Whitespace between values is skipped; one message is bounded in size.

/// The default bound on one message (64 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// Why the stream cannot be split any further. Errors are sticky: the stream is unusable after one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// One message grew beyond the limit before it was complete.
    #[error("JSON message exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// A byte that cannot start a JSON-RPC message (an object or array) appeared between messages.
    #[error("unexpected byte 0x{byte:02x} between JSON messages (stream offset {offset})")]
    UnexpectedByte { byte: u8, offset: u64 },
}

/// Splits a byte stream into complete top-level JSON values (objects or arrays).
///
/// Feed bytes with [`JsonFramer::push`], then take messages with [`JsonFramer::next_message`]
/// until it returns `Ok(None)`.
#[derive(Debug)]
pub struct JsonFramer {
    buf: Vec<u8>,
    /// Bytes before this offset are consumed and may be discarded.
    consumed: usize,
    /// Next byte to scan.
    pos: usize,
    /// Start of the value being scanned (valid when `in_value`).
    start: usize,
    in_value: bool,
    depth: usize,
    in_string: bool,
    escape: bool,
    max: usize,
    /// Stream offset of `buf[0]`, for error messages.
    base_offset: u64,
    failed: Option<FramingError>,
}

impl Default for JsonFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonFramer {
    /// A framer with the default message bound ([`DEFAULT_MAX_MESSAGE`]).
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_MESSAGE)
    }

    /// A framer that refuses messages larger than `max` bytes.
    pub fn with_limit(max: usize) -> Self {
        JsonFramer {
            buf: Vec::new(),
            consumed: 0,
            pos: 0,
            start: 0,
            in_value: false,
            depth: 0,
            in_string: false,
            escape: false,
            max: max.max(2),
            base_offset: 0,
            failed: None,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.pos -= self.consumed;
            self.start = self.start.saturating_sub(self.consumed);
            self.base_offset += self.consumed as u64;
            self.consumed = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that do not yet form a complete message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            if !self.in_value {
                match b {
                    b' ' | b'\t' | b'\n' | b'\r' => {
                        self.pos += 1;
                        self.consumed = self.pos;
                        continue;
                    }
                    b'{' | b'[' => {
                        self.in_value = true;
                        self.start = self.pos;
                        self.depth = 1;
                        self.pos += 1;
                        continue;
                    }
                    _ => {
                        let e = FramingError::UnexpectedByte {
                            byte: b,
                            offset: self.base_offset + self.pos as u64,
                        };
                        self.failed = Some(e.clone());
                        return Err(e);
                    }
                }
            }
            if self.pos - self.start >= self.max {
                let e = FramingError::TooLarge { limit: self.max };
                self.failed = Some(e.clone());
                return Err(e);
            }
            self.pos += 1;
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let msg = self.buf[self.start..self.pos].to_vec();
                        self.in_value = false;
                        self.consumed = self.pos;
                        return Ok(Some(msg));
                    }
                }
                _ => {}
            }
        }
        // Bound a message that is still incomplete, so a runaway peer cannot grow the buffer.
        if self.in_value && self.pos - self.start > self.max {
            let e = FramingError::TooLarge { limit: self.max };
            self.failed = Some(e.clone());
            return Err(e);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(f: &mut JsonFramer) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = f.next_message().unwrap() {
            out.push(String::from_utf8(m).unwrap());
        }
        out
    }

    const STREAM: &str = concat!(
        r#"{"id":1,"result":{"a":[1,2,{"b":"}]\"{["}]},"error":null}"#,
        "\n  ",
        r#"{"method":"echo","params":["x\\"],"id":"echo"}"#,
        r#"[{"s":"\\\"\\"},[[]],{}]"#,
        "\r\n\t",
        r#"{"u":"é ☃ \u00e9","n":-1.5e3,"t":true,"z":null}"#,
        " "
    );

    fn expected() -> Vec<String> {
        vec![
            r#"{"id":1,"result":{"a":[1,2,{"b":"}]\"{["}]},"error":null}"#.to_string(),
            r#"{"method":"echo","params":["x\\"],"id":"echo"}"#.to_string(),
            r#"[{"s":"\\\"\\"},[[]],{}]"#.to_string(),
            r#"{"u":"é ☃ \u00e9","n":-1.5e3,"t":true,"z":null}"#.to_string(),
        ]
    }

    #[test]
    fn several_messages_in_one_read() {
        let mut f = JsonFramer::new();
        f.push(STREAM.as_bytes());
        let got = drain(&mut f);
        assert_eq!(got, expected());
        for m in &got {
            serde_json::from_str::<serde_json::Value>(m).unwrap();
        }
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            let mut f = JsonFramer::new();
            f.push(&bytes[..cut]);
            let mut got = drain(&mut f);
            f.push(&bytes[cut..]);
            got.extend(drain(&mut f));
            assert_eq!(got, expected(), "cut at {cut}");
        }
    }

    #[test]
    fn split_at_every_pair_of_boundaries() {
        let bytes = STREAM.as_bytes();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut f = JsonFramer::new();
                let mut got = Vec::new();
                for chunk in [&bytes[..a], &bytes[a..b], &bytes[b..]] {
                    f.push(chunk);
                    got.extend(drain(&mut f));
                }
                assert_eq!(got, expected(), "cuts at {a},{b}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut f = JsonFramer::new();
        let mut got = Vec::new();
        for b in STREAM.as_bytes() {
            f.push(std::slice::from_ref(b));
            got.extend(drain(&mut f));
        }
        assert_eq!(got, expected());
    }

    #[test]
    fn too_large_is_an_error_even_when_incomplete() {
        let mut f = JsonFramer::with_limit(16);
        f.push(br#"{"a":"0123456789"}"#);
        assert_eq!(f.next_message(), Err(FramingError::TooLarge { limit: 16 }));
        // Sticky.
        assert!(f.next_message().is_err());

        let mut f = JsonFramer::with_limit(16);
        f.push(br#"{"a":"0123456789012345"#);
        assert_eq!(f.next_message(), Err(FramingError::TooLarge { limit: 16 }));

        let mut f = JsonFramer::with_limit(16);
        f.push(br#"{"a":"0123456"}"#);
        assert_eq!(f.next_message().unwrap().unwrap().len(), 15);
    }

    #[test]
    fn garbage_between_messages_is_an_error() {
        let mut f = JsonFramer::new();
        f.push(b"{} x{}");
        assert_eq!(f.next_message().unwrap().unwrap(), b"{}");
        assert_eq!(f.next_message(), Err(FramingError::UnexpectedByte { byte: b'x', offset: 3 }));
    }

    #[test]
    fn offsets_survive_compaction() {
        let mut f = JsonFramer::new();
        f.push(b"{}  ");
        assert!(f.next_message().unwrap().is_some());
        assert!(f.next_message().unwrap().is_none());
        f.push(b"7");
        assert_eq!(f.next_message(), Err(FramingError::UnexpectedByte { byte: b'7', offset: 4 }));
    }
}
