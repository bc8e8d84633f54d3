#!/usr/bin/env python3
"""Reads the WAL of a tidelog data directory and prints every record as one JSON object per line.

Written from docs/FORMAT.md alone, with nothing but Python's standard library: it does not call tidelog, so
it shows that the document is enough to read the log (tests/format_reader.rs compares its output with what
the store returns).

    python3 scripts/wal_read.py DATA_DIR [--json-values]

For every shard (`shard-<k>/wal/`, k = 0..shards-1 from `tidelog.json`), segments in position order, records
in log order:

    {"kind": "event", "shard", "segment", "offset", "batch_continues", "position", "id", "tenant_id",
     "entity_id", "event_type", "timestamp_us", "timestamp", "version", "payload", "metadata"}
    {"kind": "part_header", "shard", "segment", "offset", "batch", "events", "participants"}

`payload` and `metadata` are the stored JSON text (a string; `metadata` is null when absent); with
`--json-values` they are the parsed JSON values instead. `offset` is the record's byte offset in its segment.

It checks every segment header and record CRC, and every event archive as docs/FORMAT.md describes. Problems
(a bad header, a bad or truncated record, an unfinished batch at the end of a segment, positions that do not
increase) go to stderr, and the exit status is then 1. After a bad record it looks for the next valid one in
8-byte steps, as recovery does; it prints what it reads and does not decide what recovery would keep (a torn
tail, a dropped cross-shard batch).
"""

import datetime
import json
import os
import re
import struct
import sys
import uuid
import zlib

SEGMENT_HEADER_BYTES = 32
MAGIC = b"TIDELOG\x00"
MIN_FORMAT_VERSION, FORMAT_VERSION = 1, 2
RECORD_HEADER_BYTES = 8
LEN_MASK = (1 << 28) - 1
FLAG_BATCH_CONTINUES = 1 << 31
FLAG_PART_HEADER = 1 << 30
RESERVED_FLAGS = 0b11 << 28

ROOT_BYTES = 88
STRING_FIELDS = (("tenant_id", 40), ("entity_id", 48), ("event_type", 56), ("payload", 64))
METADATA_TAG, METADATA_VALUE = 72, 76
INLINE_CAPACITY = 8
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class Bad(Exception):
    """Bytes that are not what the format says."""


def u32(buf, at):
    return struct.unpack_from("<I", buf, at)[0]


def read_string(body, at, claimed_from):
    """The archived string whose 8-byte field starts at `at`; `claimed_from` is where the next out-of-line
    string may start (they ascend in field order). Returns (text, new claimed_from)."""
    field = body[at:at + 8]
    if field[0] & 0xC0 != 0x80:
        end = field.find(b"\xff")
        raw = field[:INLINE_CAPACITY if end < 0 else end]
    else:
        w, offset = struct.unpack_from("<Ii", body, at)
        n = (w & 0x3F) | ((w >> 8) << 6)
        if n <= INLINE_CAPACITY:
            raise Bad(f"out-of-line string of {n} bytes at body offset {at} (must be more than {INLINE_CAPACITY})")
        start = at + offset
        root = len(body) - ROOT_BYTES
        if start < claimed_from or start + n > root:
            raise Bad(f"string of {n} bytes at body offset {start} is outside {claimed_from}..{root}")
        raw = body[start:start + n]
        claimed_from = start + n
    try:
        return raw.decode("utf-8"), claimed_from
    except UnicodeDecodeError as e:
        raise Bad(f"string at body offset {at} is not UTF-8: {e}") from None


def rfc3339_us(timestamp_us):
    try:
        t = EPOCH + datetime.timedelta(microseconds=timestamp_us)
    except OverflowError:
        return str(timestamp_us)
    return f"{t.year:04d}-{t:%m-%dT%H:%M:%S}.{t.microsecond:06d}Z"


def decode_event(body):
    if len(body) < ROOT_BYTES:
        raise Bad(f"event body of {len(body)} bytes, shorter than its {ROOT_BYTES}-byte root")
    r = len(body) - ROOT_BYTES
    position, timestamp_us, version = struct.unpack_from("<QqQ", body, r)
    strings, claimed = {}, 0
    for name, offset in STRING_FIELDS:
        strings[name], claimed = read_string(body, r + offset, claimed)
    tag = body[r + METADATA_TAG]
    if tag == 0:
        metadata = None
    elif tag == 1:
        metadata, claimed = read_string(body, r + METADATA_VALUE, claimed)
    else:
        raise Bad(f"metadata tag {tag} (must be 0 or 1)")
    return {
        "position": position,
        "id": str(uuid.UUID(bytes=bytes(body[r + 24:r + 40]))),
        "tenant_id": strings["tenant_id"],
        "entity_id": strings["entity_id"],
        "event_type": strings["event_type"],
        "timestamp_us": timestamp_us,
        "timestamp": rfc3339_us(timestamp_us),
        "version": version,
        "payload": strings["payload"],
        "metadata": metadata,
    }


def decode_part_header(body):
    if len(body) < 24:
        raise Bad(f"part header of {len(body)} bytes")
    batch_lo, batch_hi, events, n = struct.unpack_from("<QQII", body, 0)
    if n == 0 or n > 1 << 16 or events == 0 or len(body) != -(-(24 + 4 * n) // 8) * 8:
        raise Bad(f"part header of {len(body)} bytes with {n} participants and {events} events")
    participants = list(struct.unpack_from(f"<{n}I", body, 24))
    if any(a >= b for a, b in zip(participants, participants[1:])) or any(body[24 + 4 * n:]):
        raise Bad("part header participants not ascending, or padding not zero")
    return {"batch": f"{(batch_hi << 64) | batch_lo:032x}", "events": events, "participants": participants}


END, TRUNCATED = "end", "truncated"


def decode_record(data, offset, last_position):
    """(kind, batch_continues, fields, size) for the record at `offset`; END or TRUNCATED; raises Bad for a
    bad record (an event must come after `last_position`, the last position read in the shard)."""
    rest = len(data) - offset
    if rest < RECORD_HEADER_BYTES:
        return END if not any(data[offset:]) else TRUNCATED
    len_word, crc = struct.unpack_from("<II", data, offset)
    if len_word == 0 and crc == 0:
        return END
    body_len = len_word & LEN_MASK
    if body_len == 0 or body_len % 8 or len_word & RESERVED_FLAGS:
        raise Bad(f"len_word {len_word:#010x}: bad length or reserved bits set")
    if rest < RECORD_HEADER_BYTES + body_len:
        return TRUNCATED
    body = bytes(data[offset + RECORD_HEADER_BYTES:offset + RECORD_HEADER_BYTES + body_len])
    if zlib.crc32(body, zlib.crc32(data[offset:offset + 4])) != crc:
        raise Bad("CRC mismatch")
    continues = bool(len_word & FLAG_BATCH_CONTINUES)
    if len_word & FLAG_PART_HEADER:
        if not continues:
            raise Bad("part header without the batch-continues flag")
        return "part_header", continues, decode_part_header(body), RECORD_HEADER_BYTES + body_len
    event = decode_event(body)
    if event["position"] <= last_position:
        raise Bad(f"position {event['position']} after position {last_position}")
    return "event", continues, event, RECORD_HEADER_BYTES + body_len


class Reader:
    def __init__(self, json_values):
        self.json_values = json_values
        self.problems = 0

    def problem(self, where, what):
        self.problems += 1
        print(f"{where}: {what}", file=sys.stderr)

    def check_header(self, data, shard, first_position):
        """True for a valid header, False for an empty segment; raises Bad otherwise."""
        header = data[:SEGMENT_HEADER_BYTES]
        if not any(header):
            return False
        if len(header) < SEGMENT_HEADER_BYTES:
            raise Bad("shorter than its header")
        if header[0:8] != MAGIC:
            raise Bad("bad magic")
        if zlib.crc32(header[0:28]) != u32(header, 28):
            raise Bad("header CRC mismatch")
        version, found_shard, found_first = struct.unpack_from("<IIQ", header, 8)
        if not MIN_FORMAT_VERSION <= version <= FORMAT_VERSION:
            raise Bad(f"format version {version}")
        if found_shard != shard:
            raise Bad(f"header says shard {found_shard}")
        if found_first != first_position:
            raise Bad(f"header says first position {found_first}, the file name {first_position}")
        return True

    def read_segment(self, path, shard, first_position, last_position):
        """Prints the segment's records; returns the last position read."""
        name = os.path.basename(path)
        where = f"shard {shard} {name}"
        with open(path, "rb") as f:
            data = memoryview(f.read())
        try:
            if not self.check_header(data, shard, first_position):
                return last_position  # empty: created, never written
        except Bad as e:
            self.problem(where, e)
            return last_position
        offset, open_batch = SEGMENT_HEADER_BYTES, None
        while True:
            try:
                record = decode_record(data, offset, last_position)
            except Bad as e:
                self.problem(f"{where} offset {offset}", e)
                offset = self.resync(data, offset, last_position)
                if offset is None:
                    break
                continue
            if record == END:
                break
            if record == TRUNCATED:
                self.problem(f"{where} offset {offset}", "truncated record")
                break
            kind, continues, fields, size = record
            out = {"kind": kind, "shard": shard, "segment": name, "offset": offset, "batch_continues": continues}
            if kind == "event":
                last_position = fields["position"]
                if self.json_values:
                    fields["payload"] = json.loads(fields["payload"])
                    if fields["metadata"] is not None:
                        fields["metadata"] = json.loads(fields["metadata"])
            out.update(fields)
            print(json.dumps(out))
            open_batch = offset if continues else None
            offset += size
        if open_batch is not None:
            self.problem(f"{where} offset {open_batch}", "unfinished batch (its last record is missing)")
        return last_position

    @staticmethod
    def resync(data, offset, last_position):
        """The next offset, in 8-byte steps, where a whole valid record starts."""
        for at in range(offset + 8, len(data) - RECORD_HEADER_BYTES, 8):
            try:
                if decode_record(data, at, last_position) not in (END, TRUNCATED):
                    return at
            except Bad:
                pass
        return None

    def read_dir(self, data_dir):
        with open(os.path.join(data_dir, "tidelog.json"), "rb") as f:
            meta = json.load(f)
        if not MIN_FORMAT_VERSION <= meta["format_version"] <= FORMAT_VERSION:
            raise SystemExit(f"tidelog.json: format version {meta['format_version']}")
        for shard in range(meta["shards"]):
            wal = os.path.join(data_dir, f"shard-{shard}", "wal")
            names = sorted(n for n in os.listdir(wal) if re.fullmatch(r"[0-9]{20}\.log", n)) if os.path.isdir(wal) else []
            last_position = 0
            for name in names:
                last_position = self.read_segment(os.path.join(wal, name), shard, int(name[:20]), last_position)


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    unknown = [a for a in argv if a.startswith("--") and a != "--json-values"]
    if len(args) != 1 or unknown:
        print("usage: wal_read.py DATA_DIR [--json-values]", file=sys.stderr)
        return 2
    reader = Reader(json_values="--json-values" in argv)
    reader.read_dir(args[0])
    return 1 if reader.problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # whoever read the output stopped (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
