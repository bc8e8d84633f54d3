//! Record framing: `[len_word u32][crc32 u32][body]`, see `docs/FORMAT.md`. Pure functions, no I/O.

pub const HEADER_BYTES: usize = 8;
/// Set on every record of a batch except the last.
pub const FLAG_BATCH_CONTINUES: u32 = 1 << 31;
const RESERVED_FLAGS: u32 = 0b111 << 28;
pub const LEN_MASK: u32 = (1 << 28) - 1;
pub const MAX_BODY_BYTES: usize = LEN_MASK as usize;

fn checksum(len_word: u32, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_word.to_le_bytes());
    hasher.update(body);
    hasher.finalize()
}

/// Size in bytes of the frame for a body of `body_len` bytes.
pub fn frame_len(body_len: usize) -> usize {
    HEADER_BYTES + body_len
}

/// Appends one framed record to `out`.
pub fn append_frame(out: &mut Vec<u8>, body: &[u8], batch_continues: bool) {
    // Bodies are rkyv archives whose root is 8-aligned, so their length is a multiple of 8; records then
    // stay 8-aligned back to back, which recovery's resync relies on.
    assert!(!body.is_empty() && body.len() % 8 == 0 && body.len() <= MAX_BODY_BYTES, "bad body length {}", body.len());
    let len_word = body.len() as u32 | if batch_continues { FLAG_BATCH_CONTINUES } else { 0 };
    out.extend_from_slice(&len_word.to_le_bytes());
    out.extend_from_slice(&checksum(len_word, body).to_le_bytes());
    out.extend_from_slice(body);
}

/// Why bytes at a record offset are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFrame {
    /// Fewer bytes left than the header or the body needs.
    Truncated,
    /// Length zero, not a multiple of 8, or reserved flag bits set.
    BadLength,
    /// The checksum does not match.
    Checksum,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// An all-zero header (or only zeros left): the end of the log.
    End,
    Record { body: &'a [u8], batch_continues: bool },
    Bad(BadFrame),
}

/// Decodes the frame at the start of `buf`.
pub fn decode_frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < HEADER_BYTES {
        return if buf.iter().all(|&b| b == 0) { Frame::End } else { Frame::Bad(BadFrame::Truncated) };
    }
    let len_word = u32::from_le_bytes(buf[0..4].try_into().unwrap());
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    if len_word == 0 && crc == 0 {
        return Frame::End;
    }
    let body_len = (len_word & LEN_MASK) as usize;
    if body_len == 0 || body_len % 8 != 0 || len_word & RESERVED_FLAGS != 0 {
        return Frame::Bad(BadFrame::BadLength);
    }
    let Some(body) = buf.get(HEADER_BYTES..HEADER_BYTES + body_len) else {
        return Frame::Bad(BadFrame::Truncated);
    };
    if checksum(len_word, body) != crc {
        return Frame::Bad(BadFrame::Checksum);
    }
    Frame::Record { body, batch_continues: len_word & FLAG_BATCH_CONTINUES != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_every_byte_is_checked() {
        let body: Vec<u8> = (0..64u8).collect();
        let mut buf = Vec::new();
        append_frame(&mut buf, &body, true);
        assert_eq!(buf.len(), frame_len(body.len()));
        assert_eq!(decode_frame(&buf), Frame::Record { body: &body, batch_continues: true });
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    matches!(decode_frame(&bad), Frame::Bad(_) | Frame::End),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn zero_header_is_end_and_short_input_is_truncated() {
        assert_eq!(decode_frame(&[0u8; 64]), Frame::End);
        assert_eq!(decode_frame(&[0u8; 3]), Frame::End);
        let mut buf = Vec::new();
        append_frame(&mut buf, &[7u8; 16], false);
        assert_eq!(decode_frame(&buf[..buf.len() - 1]), Frame::Bad(BadFrame::Truncated));
        assert_eq!(decode_frame(&buf[..5]), Frame::Bad(BadFrame::Truncated));
    }
}
