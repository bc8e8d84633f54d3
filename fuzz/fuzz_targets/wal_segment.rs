//! The WAL reader on arbitrary bytes: a valid segment header followed by fuzzer input, and the raw input as
//! a whole segment. Recovery must classify anything (records, corruption, torn tail) without panicking, and
//! what it reports must add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidelog::wal::segment::encode_header;
use tidelog::wal::{inspect_segment_bytes, record};

fuzz_target!(|data: &[u8]| {
    let mut segment = encode_header(0, 1).to_vec();
    segment.extend_from_slice(data);
    for bytes in [&segment[..], data] {
        let found = inspect_segment_bytes(bytes, 0, 1);
        if let (Some(first), Some(last)) = (found.first_position, found.last_position) {
            assert!(first <= last && found.records >= 1 && found.records <= last - first + 1);
        }
        assert!(found.corrupt_bytes + found.torn_tail_bytes <= bytes.len() as u64);
    }
    // The frame decoder alone, at every 8-byte offset.
    for offset in (0..data.len()).step_by(8) {
        let _ = record::decode_frame(&data[offset..]);
    }
});
