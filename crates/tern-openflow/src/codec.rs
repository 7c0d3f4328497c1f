//! The byte-level cursor and builder every wire type is read with and written into.
//! `Reader` never panics: every read checks the remaining length and reports a typed
//! `DecodeError`. `Writer` patches length fields once the measured region is done.

use crate::error::DecodeError;

// === impl Reader ===

/// A cursor over a borrowed byte slice; `what` names the region for error messages.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, offset: 0, what }
    }

    /// Bytes not yet consumed.
    pub fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.offset)
    }

    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// Bytes consumed so far.
    pub fn used(&self) -> usize {
        self.offset
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.left();
        if n > available {
            return Err(DecodeError::Truncated { what: self.what, needed: n, available });
        }
        let start = self.offset;
        self.offset += n;
        self.buf.get(start..start + n).ok_or(DecodeError::Truncated { what: self.what, needed: n, available })
    }

    /// A reader over the next `n` bytes, which are consumed from `self`.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        let bytes = self.take(n)?;
        Ok(Reader::new(bytes, what))
    }

    /// Everything left; the reader is empty afterwards.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.offset.min(self.buf.len());
        self.offset = self.buf.len();
        self.buf.get(start..).unwrap_or(&[])
    }

    /// The next `n` bytes without consuming them.
    pub fn peek(&self, n: usize) -> Option<&'a [u8]> {
        let start = self.offset;
        self.buf.get(start..start.checked_add(n)?)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian unsigned integer of `n` (0..=16) bytes.
    pub fn uint(&mut self, n: usize) -> Result<u128, DecodeError> {
        if n > 16 {
            return Err(DecodeError::BadLength { what: self.what, length: n });
        }
        Ok(be_uint(self.take(n)?))
    }

    /// Fails unless every byte was consumed.
    pub fn expect_end(&self) -> Result<(), DecodeError> {
        match self.left() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing { what: self.what, bytes: n }),
        }
    }

    pub fn what(&self) -> &'static str {
        self.what
    }
}

/// Big-endian bytes (at most 16) as an integer.
pub fn be_uint(bytes: &[u8]) -> u128 {
    bytes.iter().take(16).fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

// === impl Writer ===

/// Where a length placeholder sits, and where the measured region starts.
#[derive(Debug, Clone, Copy)]
pub struct LenMark {
    at: usize,
    start: usize,
}

/// An append-only buffer with patchable length fields.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { buf: Vec::with_capacity(64) }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// The low `n` (at most 16) bytes of `v`, big-endian.
    pub fn uint(&mut self, v: u128, n: usize) {
        let bytes = v.to_be_bytes();
        let n = n.min(16);
        self.buf.extend_from_slice(&bytes[16 - n..]);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// A fixed-size, zero-padded string field (e.g. a port name).
    pub fn fixed_str(&mut self, s: &str, n: usize) {
        let b = s.as_bytes();
        let take = b.len().min(n.saturating_sub(1));
        self.buf.extend_from_slice(&b[..take]);
        self.zeros(n - take);
    }

    /// Writes a zero u16 to be patched with the length of the region that starts
    /// `back` bytes before the placeholder (e.g. 2 for a TLV whose type precedes it).
    pub fn len16(&mut self, back: usize) -> LenMark {
        let at = self.buf.len();
        self.u16(0);
        LenMark { at, start: at.saturating_sub(back) }
    }

    /// Patches the placeholder with the bytes written since the region started.
    /// Lengths beyond 65535 saturate (such messages cannot be represented).
    pub fn patch16(&mut self, mark: LenMark) {
        let len = u16::try_from(self.buf.len() - mark.start).unwrap_or(u16::MAX);
        self.set16(mark.at, len);
    }

    /// Overwrites the u16 at `at` (which must have been written already).
    pub fn set16(&mut self, at: usize, v: u16) {
        if let Some(slot) = self.buf.get_mut(at..at + 2) {
            slot.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Zero-pads so that the region starting at `start` is a multiple of 8 bytes.
    pub fn pad8(&mut self, start: usize) {
        let len = self.buf.len() - start;
        self.zeros(pad8_len(len));
    }
}

/// Bytes of padding that bring `len` up to a multiple of 8.
pub fn pad8_len(len: usize) -> usize {
    (8 - len % 8) % 8
}

/// `len` rounded up to a multiple of 8 (saturating).
pub fn round8(len: usize) -> usize {
    len.saturating_add(pad8_len(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation() {
        let mut r = Reader::new(&[1, 2, 3], "test");
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert!(matches!(r.u16(), Err(DecodeError::Truncated { needed: 2, available: 1, .. })));
        assert_eq!(r.rest(), &[3]);
        assert!(r.is_empty());
        assert_eq!(r.rest(), &[] as &[u8]);
    }

    #[test]
    fn writer_patches_lengths_and_pads() {
        let mut w = Writer::new();
        w.u16(7);
        let m = w.len16(2);
        w.bytes(&[1, 2, 3]);
        w.pad8(0);
        w.patch16(m);
        assert_eq!(w.as_slice(), &[0, 7, 0, 8, 1, 2, 3, 0]);
        assert_eq!(round8(9), 16);
        assert_eq!(pad8_len(16), 0);
    }
}
