//! What the socket cogs share: addresses, framing, the accept pause and
//! the listener with its client slab (`server`) — used by the
//! [`listen`](crate::supply::listen) supply, the
//! [`connect`](crate::drain::connect) drain and the
//! [program server](crate::program::ProgramServer).
//!
//! Addresses are written `tcp:HOST:PORT` (or just `HOST:PORT`),
//! `unix:/path/to.sock` and `udp:HOST:PORT`; IPv6 hosts go in brackets
//! (`tcp:[::1]:5140`). Streams are framed by newlines (`\r\n` accepted) or by
//! a 4-byte big-endian length before each frame.

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
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framing::Newline => "newline",
            Framing::Length => "length",
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
        }
    }
}

/// A frame longer than the maximum.
#[derive(Debug, PartialEq, Eq)]
pub struct Oversized(pub usize);

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
    pub fn push(&mut self, mut bytes: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), Oversized> {
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
                        return Err(Oversized(frame.len()));
                    }
                    out(frame);
                    self.held.clear();
                    bytes = rest;
                }
                // Room for a `\r` that a newline may still follow.
                if self.held.len() + bytes.len() > self.max + 1 {
                    return Err(Oversized(self.held.len() + bytes.len()));
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
                        return Err(Oversized(len));
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
            Framing::Length if held.is_empty() => Ok(None),
            Framing::Length => Err(held.len()),
        }
    }
}

pub(crate) fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut Deframer, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, Oversized> {
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
        assert_eq!(frames(&mut d, &[b"12345678\n"]), Err(Oversized(8)));
        let mut d = Deframer::new(Framing::Newline, 4);
        assert_eq!(frames(&mut d, &[b"123", b"456"]), Err(Oversized(6)));
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
        assert_eq!(d.push(&[0, 0, 1, 0], |_| {}), Err(Oversized(256)));
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
