//! What the socket cogs share: addresses, framing, the accept pause and
//! the listener with its client slab (`server`) — used by the
//! [`listen`](crate::supply::listen) supply, the
//! [`connect`](crate::drain::connect) drain and the
//! [program server](crate::program::ProgramServer).
//!
//! Addresses are written `tcp:HOST:PORT` (or just `HOST:PORT`),
//! `unix:/path/to.sock` and `udp:HOST:PORT`; IPv6 hosts go in brackets
//! (`tcp:[::1]:5140`). Streams are framed by newlines (`\r\n` accepted), by
//! a 4-byte big-endian length before each frame, or by syslog's octet
//! counting (RFC 6587: the length in decimal and a space before each frame).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;

pub(crate) mod accept;
pub(crate) mod server;

/// Where to listen or connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix stream socket path.
    Unix(PathBuf),
    /// A UDP address (listen only).
    Udp(SocketAddr),
}

impl Address {
    /// Parses `tcp:HOST:PORT`, `HOST:PORT`, `unix:PATH` or `udp:HOST:PORT`;
    /// the error names `key`.
    pub fn parse(key: &str, text: &str) -> Result<Address, Error> {
        let resolve = |hostport: &str| -> Result<SocketAddr, Error> {
            hostport
                .to_socket_addrs()
                .map_err(|e| Error::setting(key, format!("`{text}`: {e} (expected HOST:PORT)")))?
                .next()
                .ok_or_else(|| Error::setting(key, format!("`{text}` resolves to no address")))
        };
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(Error::setting(key, "`unix:` needs a path (unix:/run/app.sock)"));
            }
            Ok(Address::Unix(PathBuf::from(path)))
        } else if let Some(hp) = text.strip_prefix("udp:") {
            Ok(Address::Udp(resolve(hp)?))
        } else {
            Ok(Address::Tcp(resolve(text.strip_prefix("tcp:").unwrap_or(text))?))
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "tcp:{a}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Udp(a) => write!(f, "udp:{a}"),
        }
    }
}

/// How frames are cut out of a byte stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// One frame per line; the newline (and a `\r` before it) is removed. The default.
    #[default]
    Newline,
    /// Each frame follows its length as 4 bytes, big-endian.
    Length,
    /// Syslog over TCP with octet counting (RFC 6587 3.4.1): each frame
    /// follows its length in decimal ASCII and a space, `11 hello world`.
    #[serde(rename = "octet_counting")]
    OctetCounting,
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framing::Newline => "newline",
            Framing::Length => "length",
            Framing::OctetCounting => "octet_counting",
        })
    }
}

impl Framing {
    /// Appends `frame`, framed, to `out`.
    pub fn frame(self, frame: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::Newline => {
                out.extend_from_slice(frame);
                out.push(b'\n');
            }
            Framing::Length => {
                out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
                out.extend_from_slice(frame);
            }
            Framing::OctetCounting => {
                out.extend_from_slice(frame.len().to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(frame);
            }
        }
    }
}

/// Why a stream's frames cannot be read on: after either, the stream
/// cannot be trusted to resynchronize.
#[derive(Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// A frame longer than the maximum (at least this many bytes).
    Oversized(usize),
    /// An octet-counting length that is not one (what was read instead).
    Length(String),
}

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadFrame::Oversized(n) => write!(f, "a frame of {n} bytes or more"),
            BadFrame::Length(what) => write!(f, "a bad octet-counting length: {what}"),
        }
    }
}

/// Digits of an octet-counting length at most: 10 is more than any frame
/// this process could hold (and than `usize` on 32 bits would).
const MAX_LENGTH_DIGITS: usize = 10;

/// Cuts frames out of a stream, holding at most `max` bytes of a frame.
#[derive(Debug)]
pub struct Deframer {
    framing: Framing,
    max: usize,
    held: Vec<u8>,
}

impl Deframer {
    /// A deframer for `framing` with frames of at most `max` bytes.
    pub fn new(framing: Framing, max: usize) -> Deframer {
        Deframer {
            framing,
            max,
            held: Vec::new(),
        }
    }

    /// Feeds bytes; `out` gets each complete frame. An oversized frame is
    /// an error (the stream cannot be trusted to resynchronize).
    pub fn push(&mut self, mut bytes: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), BadFrame> {
        match self.framing {
            Framing::Newline => {
                while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
                    let (line, rest) = (&bytes[..i], &bytes[i + 1..]);
                    let frame = if self.held.is_empty() {
                        strip_cr(line)
                    } else {
                        self.held.extend_from_slice(line);
                        strip_cr(&self.held)
                    };
                    if frame.len() > self.max {
                        return Err(BadFrame::Oversized(frame.len()));
                    }
                    out(frame);
                    self.held.clear();
                    bytes = rest;
                }
                // Room for a `\r` that a newline may still follow.
                if self.held.len() + bytes.len() > self.max + 1 {
                    return Err(BadFrame::Oversized(self.held.len() + bytes.len()));
                }
                self.held.extend_from_slice(bytes);
                Ok(())
            }
            Framing::Length => {
                self.held.extend_from_slice(bytes);
                let mut at = 0;
                while self.held.len() - at >= 4 {
                    let len = u32::from_be_bytes(self.held[at..at + 4].try_into().unwrap()) as usize;
                    if len > self.max {
                        return Err(BadFrame::Oversized(len));
                    }
                    if self.held.len() - at - 4 < len {
                        break;
                    }
                    out(&self.held[at + 4..at + 4 + len]);
                    at += 4 + len;
                }
                self.held.drain(..at);
                Ok(())
            }
            Framing::OctetCounting => {
                self.held.extend_from_slice(bytes);
                let mut at = 0;
                let result = loop {
                    match octet_count(&self.held[at..], self.max) {
                        Ok(Some((skip, len))) if self.held.len() - at - skip >= len => {
                            out(&self.held[at + skip..at + skip + len]);
                            at += skip + len;
                        }
                        Ok(_) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                self.held.drain(..at);
                result
            }
        }
    }

    /// Bytes of an incomplete frame held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// At the end of the stream: a last line without its newline is a
    /// frame (returned); an incomplete length-prefixed frame is not
    /// (dropped, its size returned as the error).
    pub fn end(&mut self) -> Result<Option<Vec<u8>>, usize> {
        let held = std::mem::take(&mut self.held);
        match self.framing {
            Framing::Newline if held.is_empty() => Ok(None),
            Framing::Newline => Ok(Some(strip_cr(&held).to_vec())),
            Framing::Length | Framing::OctetCounting if held.is_empty() => Ok(None),
            Framing::Length | Framing::OctetCounting => Err(held.len()),
        }
    }
}

/// The `LEN SP` at the start of `held`: its size and the length it gives,
/// or `None` while it is incomplete. RFC 6587 writes the length without
/// leading zeros, at least 1.
fn octet_count(held: &[u8], max: usize) -> Result<Option<(usize, usize)>, BadFrame> {
    let shown = || String::from_utf8_lossy(&held[..held.len().min(MAX_LENGTH_DIGITS + 1)]).into_owned();
    let mut len = 0usize;
    for (i, &b) in held.iter().enumerate() {
        match b {
            b'0'..=b'9' if !(i == 0 && b == b'0') && i < MAX_LENGTH_DIGITS => {
                len = len * 10 + usize::from(b - b'0');
            }
            b' ' if i > 0 => {
                return if len > max {
                    Err(BadFrame::Oversized(len))
                } else {
                    Ok(Some((i + 1, len)))
                }
            }
            _ => {
                return Err(BadFrame::Length(format!(
                    "`{}` (expected a length from 1 up, in at most {MAX_LENGTH_DIGITS} digits, then a space)",
                    shown().escape_debug()
                )))
            }
        }
    }
    if len > max {
        return Err(BadFrame::Oversized(len));
    }
    Ok(None)
}

pub(crate) fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut Deframer, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, BadFrame> {
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, |f| out.push(f.to_vec()))?;
        }
        Ok(out)
    }

    #[test]
    fn newline_frames_across_chunks() {
        let mut d = Deframer::new(Framing::Newline, 10);
        let got = frames(&mut d, &[b"ab\r\ncd", b"e\n\nf"]).unwrap();
        assert_eq!(got, [b"ab".to_vec(), b"cde".to_vec(), b"".to_vec()]);
        assert_eq!(d.end(), Ok(Some(b"f".to_vec())));
    }

    #[test]
    fn oversized_lines_are_errors_whole_or_split() {
        let mut d = Deframer::new(Framing::Newline, 4);
        assert_eq!(frames(&mut d, &[b"12345678\n"]), Err(BadFrame::Oversized(8)));
        let mut d = Deframer::new(Framing::Newline, 4);
        assert_eq!(frames(&mut d, &[b"123", b"456"]), Err(BadFrame::Oversized(6)));
        let mut d = Deframer::new(Framing::Newline, 4);
        assert_eq!(frames(&mut d, &[b"1234\r\n"]).unwrap(), [b"1234".to_vec()]);
    }

    #[test]
    fn length_prefixed_frames() {
        let mut wire = Vec::new();
        Framing::Length.frame(b"hello", &mut wire);
        Framing::Length.frame(b"", &mut wire);
        Framing::Length.frame(b"x", &mut wire);
        let mut d = Deframer::new(Framing::Length, 10);
        let (a, b) = wire.split_at(7);
        let got = frames(&mut d, &[a, b]).unwrap();
        assert_eq!(got, [b"hello".to_vec(), b"".to_vec(), b"x".to_vec()]);
        d.push(&[0, 0, 0, 9, 1, 2], |_| panic!("incomplete")).unwrap();
        assert_eq!(d.end(), Err(6));
        let mut d = Deframer::new(Framing::Length, 10);
        assert_eq!(d.push(&[0, 0, 1, 0], |_| {}), Err(BadFrame::Oversized(256)));
    }

    #[test]
    fn octet_counted_frames_across_chunks_and_bad_lengths() {
        let mut wire = Vec::new();
        Framing::OctetCounting.frame(b"<13>1 - vm a - - - hello", &mut wire);
        Framing::OctetCounting.frame("é\n2".as_bytes(), &mut wire);
        assert!(wire.starts_with(b"24 <13>1"), "{wire:?}");
        // Fed one byte at a time, and whole.
        let mut d = Deframer::new(Framing::OctetCounting, 100);
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let want = [b"<13>1 - vm a - - - hello".to_vec(), "é\n2".as_bytes().to_vec()];
        assert_eq!(frames(&mut d, &bytes).unwrap(), want);
        assert_eq!(d.held(), 0);
        let mut d = Deframer::new(Framing::OctetCounting, 100);
        assert_eq!(frames(&mut d, &[&wire]).unwrap(), want);
        // Incomplete at the end: dropped, its size told.
        d.push(b"5 abc", |_| panic!("incomplete")).unwrap();
        assert_eq!(d.end(), Err(5));
        for (bad, why) in [
            (&b"hello"[..], "`hello`"),
            (b"05 hello", "`05 hello`"),
            (b" 5 hello", "expected a length"),
            (b"5\nhello", "expected a length"),
            (b"12345678901 x", "at most 10 digits"),
        ] {
            let mut d = Deframer::new(Framing::OctetCounting, 1 << 40);
            match d.push(bad, |f| panic!("{f:?}")) {
                Err(BadFrame::Length(what)) => assert!(what.contains(why), "{what}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Frames before a bad length are emitted; the error comes after them.
        let mut d = Deframer::new(Framing::OctetCounting, 100);
        let mut got = Vec::new();
        let e = d.push(b"2 ok3 abcx", |f| got.push(f.to_vec())).unwrap_err();
        assert_eq!(got, [b"ok".to_vec(), b"abc".to_vec()]);
        assert!(matches!(e, BadFrame::Length(_)));
        // Over the maximum: known as soon as the digits say so.
        let mut d = Deframer::new(Framing::OctetCounting, 100);
        assert_eq!(d.push(b"1000", |_| {}), Err(BadFrame::Oversized(1000)));
        let mut d = Deframer::new(Framing::OctetCounting, 100);
        assert_eq!(d.push(b"101 ", |_| {}), Err(BadFrame::Oversized(101)));
    }

    #[test]
    fn addresses_parse_and_name_the_key() {
        assert_eq!(
            Address::parse("listen", "127.0.0.1:80").unwrap(),
            Address::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            Address::parse("listen", "udp:[::1]:5").unwrap(),
            Address::Udp("[::1]:5".parse().unwrap())
        );
        assert_eq!(Address::parse("listen", "unix:/x").unwrap(), Address::Unix("/x".into()));
        let e = Address::parse("listen", "nonsense").unwrap_err().to_string();
        assert!(e.starts_with("listen: `nonsense`"), "{e}");
    }
}
