//! How much of a segment file can be shipped: pure functions over its bytes.

use crate::wal::record::{decode_frame, Frame};

/// The end of the last whole, checksummed record in `buf`, which starts at a record boundary. The open
/// segment is read while the shard writes it: only records that check are shipped, so a write still
/// being copied in (or bytes a read saw in an odd order) never leaves a hole that later records follow.
pub fn whole_records_end(buf: &[u8]) -> usize {
    let mut at = 0;
    while let Frame::Record { body, .. } = decode_frame(&buf[at..]) {
        at += crate::wal::record::frame_len(body.len());
    }
    at
}

/// The length of (the rest of) a sealed segment without its unused (pre-allocated, zero) tail: up to its
/// last non-zero byte. No write comes after a segment is sealed, so this is every record in it; the zeros
/// a record may end with are put back by the restore, which pads every segment with zeros.
pub fn written_len(buf: &[u8]) -> usize {
    buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::append_frame;

    #[test]
    fn only_whole_records_count() {
        let mut buf = Vec::new();
        append_frame(&mut buf, &[1u8; 16], false);
        append_frame(&mut buf, &[2u8; 8], false);
        let two = buf.len();
        append_frame(&mut buf, &[3u8; 24], false);
        assert_eq!(whole_records_end(&buf), buf.len());
        assert_eq!(whole_records_end(&buf[..buf.len() - 1]), two);
        let mut torn = buf.clone();
        torn[two + 12] ^= 1;
        assert_eq!(whole_records_end(&torn), two);
        buf.extend_from_slice(&[0u8; 64]);
        assert_eq!(whole_records_end(&buf), two + 32);
        assert_eq!(written_len(&buf), two + 32);
        assert_eq!(whole_records_end(&[]), 0);
    }
}
