//! Segment files: naming and the 32-byte header (see `docs/FORMAT.md`).

use std::path::{Path, PathBuf};

pub const SEGMENT_HEADER_BYTES: usize = 32;
const MAGIC: &[u8; 8] = b"TIDELOG\0";
/// Written in new segments and in `tidelog.json`. Version 2 added part headers (`record::PartHeader`);
/// a version-1 directory or segment is read as is (it holds none) and the directory is marked version 2.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this build reads.
pub const MIN_FORMAT_VERSION: u32 = 1;
/// The unit a disk writes whole or not at all; recovery reads an all-zero one as never written.
pub const SECTOR_BYTES: usize = 512;
pub fn segment_path(wal_dir: &Path, first_position: u64) -> PathBuf {
    wal_dir.join(format!("{first_position:020}.log"))
}

/// The WAL segments in `wal_dir`, sorted by first position. Other files are ignored.
pub fn list_segments(wal_dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(wal_dir)? {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            segments.push((first, path));
        }
    }
    segments.sort();
    Ok(segments)
}

pub fn encode_header(shard: u32, first_position: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&shard.to_le_bytes());
    header[16..24].copy_from_slice(&first_position.to_le_bytes());
    let crc = crc32fast::hash(&header[0..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    header
}

#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// All zeros: the segment was created but nothing was written to it yet.
    Empty,
    Valid,
}

/// Checks a segment header; the error says what is wrong.
pub fn check_header(bytes: &[u8], shard: u32, first_position: u64) -> Result<Header, String> {
    let Some(header) = bytes.get(..SEGMENT_HEADER_BYTES) else {
        return if bytes.iter().all(|&b| b == 0) { Ok(Header::Empty) } else { Err("shorter than its header".into()) };
    };
    if header.iter().all(|&b| b == 0) {
        return Ok(Header::Empty);
    }
    if &header[0..8] != MAGIC {
        return Err("not a tidelog WAL segment (bad magic)".into());
    }
    if crc32fast::hash(&header[0..28]) != u32::from_le_bytes(header[28..32].try_into().unwrap()) {
        return Err("header checksum mismatch".into());
    }
    let version = u32::from_le_bytes(header[8..12].try_into().unwrap());
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!("format version {version}, this build reads {MIN_FORMAT_VERSION} to {FORMAT_VERSION}"));
    }
    let found_shard = u32::from_le_bytes(header[12..16].try_into().unwrap());
    if found_shard != shard {
        return Err(format!("belongs to shard {found_shard}, found in shard {shard}"));
    }
    let found_first = u64::from_le_bytes(header[16..24].try_into().unwrap());
    if found_first != first_position {
        return Err(format!("header says first position {found_first}, file name says {first_position}"));
    }
    Ok(Header::Valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_mismatches() {
        let header = encode_header(3, 42);
        assert_eq!(check_header(&header, 3, 42), Ok(Header::Valid));
        assert!(check_header(&header, 2, 42).unwrap_err().contains("shard 3"));
        assert!(check_header(&header, 3, 41).is_err());
        assert_eq!(check_header(&[0u8; 32], 3, 42), Ok(Header::Empty));
        let mut v1 = header;
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&v1[0..28]);
        v1[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(check_header(&v1, 3, 42), Ok(Header::Valid), "a version-1 segment is still read");
        let mut bad = header;
        bad[20] ^= 1;
        assert!(check_header(&bad, 3, 42).unwrap_err().contains("checksum"));
        assert_eq!(segment_path(Path::new("w"), 7), PathBuf::from("w/00000000000000000007.log"));
    }
}
