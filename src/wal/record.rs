//! Record framing: `[len_word u32][crc32 u32][body]`, see `docs/FORMAT.md`. Pure functions, no I/O.

pub const HEADER_BYTES: usize = 8;
/// Set on every record of a batch except the last.
pub const FLAG_BATCH_CONTINUES: u32 = 1 << 31;
/// Set on a cross-shard part's header record (format version 2): its body is a [`PartHeader`], not an
/// event. Single appends and single-shard batches never carry it.
pub const FLAG_PART_HEADER: u32 = 1 << 30;
const RESERVED_FLAGS: u32 = 0b11 << 28;
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
    append_frame_flagged(out, body, if batch_continues { FLAG_BATCH_CONTINUES } else { 0 });
}

/// Appends a cross-shard part's header record: always followed by the part's events in the same batch.
pub fn append_part_header(out: &mut Vec<u8>, header: &PartHeader) {
    append_frame_flagged(out, &header.encode(), FLAG_BATCH_CONTINUES | FLAG_PART_HEADER);
}

fn append_frame_flagged(out: &mut Vec<u8>, body: &[u8], flags: u32) {
    // Bodies are rkyv archives whose root is 8-aligned, so their length is a multiple of 8; records then
    // stay 8-aligned back to back, which recovery's resync relies on.
    assert!(!body.is_empty() && body.len() % 8 == 0 && body.len() <= MAX_BODY_BYTES, "bad body length {}", body.len());
    let len_word = body.len() as u32 | flags;
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
    /// `part_header`: the body is a [`PartHeader`] (decode it with [`PartHeader::decode`]).
    Record { body: &'a [u8], batch_continues: bool, part_header: bool },
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
    Frame::Record {
        body,
        batch_continues: len_word & FLAG_BATCH_CONTINUES != 0,
        part_header: len_word & FLAG_PART_HEADER != 0,
    }
}

/// The header record of one shard's part of a cross-shard batch (see `docs/FORMAT.md`): the batch, how
/// many events the part holds (they follow it in the same batch framing), and every shard that holds a
/// part. Recovery keeps a part only if every participant has its part durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeader {
    pub batch: u128,
    pub events: u32,
    /// Ascending shard indexes, this shard among them.
    pub participants: Vec<u32>,
}

impl PartHeader {
    pub fn encode(&self) -> Vec<u8> {
        let len = (24 + 4 * self.participants.len()).next_multiple_of(8);
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(&self.batch.to_le_bytes());
        body.extend_from_slice(&self.events.to_le_bytes());
        body.extend_from_slice(&(self.participants.len() as u32).to_le_bytes());
        for shard in &self.participants {
            body.extend_from_slice(&shard.to_le_bytes());
        }
        body.resize(len, 0);
        body
    }

    /// `None` unless `body` is exactly a header: its length, ascending participants, zero padding.
    pub fn decode(body: &[u8]) -> Option<PartHeader> {
        let batch = u128::from_le_bytes(body.get(0..16)?.try_into().ok()?);
        let events = u32::from_le_bytes(body.get(16..20)?.try_into().ok()?);
        let n = u32::from_le_bytes(body.get(20..24)?.try_into().ok()?) as usize;
        if n == 0 || n > 1 << 16 || body.len() != (24 + 4 * n).next_multiple_of(8) || events == 0 {
            return None;
        }
        let participants: Vec<u32> =
            body[24..24 + 4 * n].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        let ascending = participants.windows(2).all(|w| w[0] < w[1]);
        let padded = body[24 + 4 * n..].iter().all(|&b| b == 0);
        (ascending && padded).then_some(PartHeader { batch, events, participants })
    }
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
        assert_eq!(decode_frame(&buf), Frame::Record { body: &body, batch_continues: true, part_header: false });
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
    fn part_headers_round_trip_and_are_flagged() {
        for participants in [vec![0, 1], vec![1, 2, 5]] {
            let header = PartHeader { batch: (7u128 << 64) | 3, events: 40, participants };
            let mut buf = Vec::new();
            append_part_header(&mut buf, &header);
            let Frame::Record { body, batch_continues, part_header } = decode_frame(&buf) else { panic!("not a record") };
            assert!(batch_continues && part_header);
            assert_eq!(PartHeader::decode(body), Some(header));
        }
        let good = PartHeader { batch: 1, events: 1, participants: vec![0, 1] }.encode();
        let mut unordered = good.clone();
        unordered[24..28].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(PartHeader::decode(&unordered), None);
        assert_eq!(PartHeader::decode(&good[..16]), None);
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
