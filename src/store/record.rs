//! The on-disk format: file headers and record frames.
//!
//! Every file starts with a 24-byte header, all integers little-endian:
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..8   | magic: `TBSTCKPT` (checkpoint), `TBSTLOG\0` (log) or        |
//! |        | `TBCAPTUR` (a capture, see [`crate::capture`])               |
//! | 8..10  | format version, [`FORMAT_VERSION`] ([`CAPTURE_VERSION`])     |
//! | 10..12 | payload encoding, [`ENCODING_JSON`]                          |
//! | 12..20 | base seq: the last sequence number the checkpoint covers, or |
//! |        | the one the log starts after                                 |
//! | 20..24 | CRC32C of bytes 0..20                                        |
//!
//! Then frames, each a 16-byte head and a payload:
//!
//! | bytes  | field                                             |
//! |--------|---------------------------------------------------|
//! | 0..4   | payload length                                    |
//! | 4..12  | sequence number                                   |
//! | 12..16 | CRC32C of bytes 0..12 followed by the payload     |
//! | 16..   | payload: one serde_json value                     |
//!
//! A JSON payload is UTF-8 text with control bytes escaped, so no payload
//! can contain a frame head with a plausible length: scanning for later
//! frames after a bad one does not find phantoms inside payloads.

use std::borrow::Borrow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;

use super::StoreError;

/// Length of a file header.
pub(crate) const HEADER_LEN: usize = 24;
/// Length of a frame head.
pub(crate) const FRAME_HEAD_LEN: usize = 16;
/// The store format this build writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// The capture format this build writes and reads: the records inside the
/// frames (see [`crate::capture`]) evolve apart from the store's.
pub(crate) const CAPTURE_VERSION: u16 = 1;
/// Payloads are serde_json text.
pub(crate) const ENCODING_JSON: u16 = 1;
/// The largest payload written or believed when read.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// Which kind of file a header belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Checkpoint,
    Log,
    Capture,
}

impl Kind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Checkpoint => b"TBSTCKPT",
            Kind::Log => b"TBSTLOG\0",
            Kind::Capture => b"TBCAPTUR",
        }
    }

    /// What the file is called in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Checkpoint => "store checkpoint",
            Kind::Log => "store log",
            Kind::Capture => "capture",
        }
    }

    /// The format version this build writes and reads for this kind.
    pub(crate) fn version(self) -> u16 {
        match self {
            Kind::Checkpoint | Kind::Log => FORMAT_VERSION,
            Kind::Capture => CAPTURE_VERSION,
        }
    }
}

/// The header of a new file of `kind` whose base seq is `base`.
pub(crate) fn encode_header(kind: Kind, base: u64) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[0..8].copy_from_slice(kind.magic());
    header[8..10].copy_from_slice(&kind.version().to_le_bytes());
    header[10..12].copy_from_slice(&ENCODING_JSON.to_le_bytes());
    header[12..20].copy_from_slice(&base.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What is wrong with a file header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Damaged or not a file of the kind expected: the reason.
    Corrupt(String),
    /// Intact, but written in a version or encoding this build does not read.
    Version { version: u16, encoding: u16 },
}

/// Checks the header at the start of `bytes` and returns its base seq.
pub(crate) fn check_header(kind: Kind, bytes: &[u8]) -> Result<u64, HeaderError> {
    if bytes.len() < HEADER_LEN {
        return Err(HeaderError::Corrupt(format!(
            "{} header is {} bytes, expected {HEADER_LEN}",
            kind.name(),
            bytes.len()
        )));
    }
    if &bytes[0..8] != kind.magic() {
        return Err(HeaderError::Corrupt(format!(
            "not a tourbillon {} (bad magic)",
            kind.name()
        )));
    }
    let stored = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&bytes[0..20]);
    if stored != computed {
        return Err(HeaderError::Corrupt(format!(
            "{} header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})",
            kind.name()
        )));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let encoding = u16::from_le_bytes([bytes[10], bytes[11]]);
    if version != kind.version() || encoding != ENCODING_JSON {
        return Err(HeaderError::Version { version, encoding });
    }
    Ok(u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")))
}

/// Checks the header of a store file at the start of `bytes` and returns its
/// base seq.
pub(crate) fn decode_header(kind: Kind, bytes: &[u8], path: &Path) -> Result<u64, StoreError> {
    check_header(kind, bytes).map_err(|e| match e {
        HeaderError::Corrupt(reason) => StoreError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason,
        },
        HeaderError::Version { version, encoding } => StoreError::Version {
            path: path.to_path_buf(),
            version,
            encoding,
        },
    })
}

/// Why a frame could not be built.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The payload did not serialize.
    Encode(serde_json::Error),
    /// The payload is longer than [`MAX_PAYLOAD`]: its length.
    TooLarge(usize),
}

/// Appends to `buf` the frame numbered `seq` whose payload `write` appends.
/// On failure `buf` is left as it was.
pub(crate) fn append_frame(
    buf: &mut Vec<u8>,
    seq: u64,
    write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) -> Result<(), FrameError> {
    let start = buf.len();
    buf.resize(start + FRAME_HEAD_LEN, 0);
    if let Err(e) = write(buf) {
        buf.truncate(start);
        return Err(FrameError::Encode(e));
    }
    let body = start + FRAME_HEAD_LEN;
    let len = buf.len() - body;
    if len > MAX_PAYLOAD {
        buf.truncate(start);
        return Err(FrameError::TooLarge(len));
    }
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 4..start + 12].copy_from_slice(&seq.to_le_bytes());
    let crc = frame_crc(&buf[start..start + 12], &buf[body..]);
    buf[start + 12..body].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Replaces the contents of `buf` with the frame of `value` numbered `seq`.
pub(crate) fn encode_frame<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    seq: u64,
    value: &T,
    what: &'static str,
) -> Result<(), StoreError> {
    buf.clear();
    append_frame(buf, seq, |buf| serde_json::to_writer(buf, value)).map_err(|e| match e {
        FrameError::Encode(source) => StoreError::Encode { what, seq, source },
        FrameError::TooLarge(len) => StoreError::TooLarge {
            what,
            len,
            max: MAX_PAYLOAD,
        },
    })
}

fn frame_crc(head: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(head), payload)
}

/// The parts of a frame head.
struct Head {
    len: u64,
    seq: u64,
    crc: u32,
}

fn split_head(head: &[u8; FRAME_HEAD_LEN]) -> Head {
    Head {
        len: u64::from(u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"))),
        seq: u64::from_le_bytes(head[4..12].try_into().expect("8 bytes")),
        crc: u32::from_le_bytes(head[12..16].try_into().expect("4 bytes")),
    }
}

/// What a [`FrameReader`] found next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The frame at `offset` is whole and its checksum holds; its payload is
    /// in [`FrameReader::payload`].
    Frame { offset: u64, seq: u64 },
    /// The frame at `offset` is torn or damaged.
    Bad { offset: u64, reason: String },
    /// The region ends exactly after the previous frame.
    End,
}

/// Reads the frames of a byte region of a file, front to back, with
/// positional reads: the file's cursor is never moved. The file is borrowed
/// (`&File`) or owned (`File`).
pub(crate) struct FrameReader<F: Borrow<File>> {
    input: BufReader<Region<F>>,
    offset: u64,
    end: u64,
    payload: Vec<u8>,
}

impl<F: Borrow<File>> FrameReader<F> {
    /// Frames of `file` from byte `start` up to byte `end`.
    pub(crate) fn new(file: F, start: u64, end: u64) -> Self {
        FrameReader {
            input: BufReader::with_capacity(64 * 1024, Region { file, pos: start, end }),
            offset: start,
            end,
            payload: Vec::new(),
        }
    }

    /// The payload of the last [`Found::Frame`].
    pub(crate) fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Where the next frame starts: the end of the last whole frame read.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the region read ends.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// The file read.
    pub(crate) fn file(&self) -> &File {
        self.input.get_ref().file.borrow()
    }

    /// Reads on from byte `offset` up to byte `end`, as if new: for a file
    /// that grew, or to retry a frame that was [`Found::Bad`] because it was
    /// still being written.
    pub(crate) fn rewind(&mut self, offset: u64, end: u64) -> io::Result<()> {
        self.input.get_mut().end = end;
        self.input.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        self.end = end;
        Ok(())
    }

    /// Reads the next frame. After [`Found::Bad`] the reader is spent until
    /// [`rewind`](Self::rewind).
    pub(crate) fn next(&mut self) -> io::Result<Found> {
        let offset = self.offset;
        let left = self.end - offset;
        if left == 0 {
            return Ok(Found::End);
        }
        let bad = |reason: String| Ok(Found::Bad { offset, reason });
        if left < FRAME_HEAD_LEN as u64 {
            return bad(format!("torn frame head ({left} of {FRAME_HEAD_LEN} bytes)"));
        }
        let mut raw = [0; FRAME_HEAD_LEN];
        self.input.read_exact(&mut raw)?;
        let head = split_head(&raw);
        let room = left - FRAME_HEAD_LEN as u64;
        if head.len > room {
            return bad(format!(
                "frame length {} runs past the end of the file ({room} bytes left)",
                head.len
            ));
        }
        if head.len > MAX_PAYLOAD as u64 {
            return bad(format!(
                "frame length {} exceeds the {MAX_PAYLOAD} byte limit",
                head.len
            ));
        }
        self.payload.resize(head.len as usize, 0);
        self.input.read_exact(&mut self.payload)?;
        let computed = frame_crc(&raw[0..12], &self.payload);
        if computed != head.crc {
            return bad(format!(
                "frame checksum mismatch (stored {:#010x}, computed {computed:#010x})",
                head.crc
            ));
        }
        self.offset = offset + FRAME_HEAD_LEN as u64 + head.len;
        Ok(Found::Frame { offset, seq: head.seq })
    }
}

/// A byte range of a file read with `pread`.
struct Region<F> {
    file: F,
    pos: u64,
    end: u64,
}

impl<F: Borrow<File>> Read for Region<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.end.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.borrow().read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Only absolute positions: what [`FrameReader::rewind`] needs.
impl<F> Seek for Region<F> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match to {
            SeekFrom::Start(pos) => {
                self.pos = pos;
                Ok(pos)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "regions seek to absolute offsets only",
            )),
        }
    }
}

/// Looks for a whole, checksummed frame numbered after `after_seq` that
/// starts anywhere in `from..end` of `file`, and returns its offset.
///
/// This tells a torn tail (nothing valid after the damage: the writer died
/// while appending) from damage in the middle of a log (valid records
/// follow, so cutting would silently lose them).
pub(crate) fn find_later_frame(file: &File, from: u64, end: u64, after_seq: u64) -> io::Result<Option<u64>> {
    let mut input = BufReader::with_capacity(64 * 1024, Region { file, pos: from, end });
    let mut window = [0u8; FRAME_HEAD_LEN];
    let mut filled = 0;
    let mut offset = from;
    let mut payload = Vec::new();
    loop {
        // Slide a frame-head-sized window over the region one byte at a time.
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(None);
        }
        let byte = chunk[0];
        input.consume(1);
        if filled < FRAME_HEAD_LEN {
            window[filled] = byte;
            filled += 1;
            if filled < FRAME_HEAD_LEN {
                continue;
            }
        } else {
            window.copy_within(1.., 0);
            window[FRAME_HEAD_LEN - 1] = byte;
            offset += 1;
        }
        let head = split_head(&window);
        let room = end - offset - FRAME_HEAD_LEN as u64;
        if head.seq <= after_seq || head.len > room || head.len > MAX_PAYLOAD as u64 {
            continue;
        }
        payload.resize(head.len as usize, 0);
        file.read_exact_at(&mut payload, offset + FRAME_HEAD_LEN as u64)?;
        if frame_crc(&window[0..12], &payload) == head.crc {
            return Ok(Some(offset));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(frames: &[(u64, &str)]) -> (File, u64) {
        let mut file = tempfile::tempfile().unwrap();
        let mut buf = Vec::new();
        for (seq, value) in frames {
            encode_frame(&mut buf, *seq, value, "test").unwrap();
            file.write_all(&buf).unwrap();
        }
        let len = file.metadata().unwrap().len();
        (file, len)
    }

    #[test]
    fn frames_read_back_in_order() {
        let (file, len) = file_with(&[(1, "a"), (2, "bb")]);
        let mut reader = FrameReader::new(&file, 0, len);
        assert_eq!(reader.next().unwrap(), Found::Frame { offset: 0, seq: 1 });
        assert_eq!(reader.payload(), b"\"a\"");
        assert_eq!(reader.next().unwrap(), Found::Frame { offset: 19, seq: 2 });
        assert_eq!(reader.payload(), b"\"bb\"");
        assert_eq!(reader.next().unwrap(), Found::End);
    }

    #[test]
    fn header_round_trips() {
        let header = encode_header(Kind::Log, 42);
        assert_eq!(decode_header(Kind::Log, &header, Path::new("log")).unwrap(), 42);
        assert!(decode_header(Kind::Checkpoint, &header, Path::new("log")).is_err());
    }

    #[test]
    fn later_frame_is_found_after_damage() {
        let (file, len) = file_with(&[(1, "a"), (2, "bb"), (3, "c")]);
        file.write_all_at(b"X", 18).unwrap();
        assert_eq!(find_later_frame(&file, 1, len, 1).unwrap(), Some(19));
        assert_eq!(find_later_frame(&file, 20, len, 2).unwrap(), Some(39));
        assert_eq!(find_later_frame(&file, 20, len, 3).unwrap(), None);
    }
}
