//! The records inside a capture's frames; the layout is documented in the
//! [module](super#format).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::store::record::{append_frame, FrameError};
use crate::{CogInfo, Role};

/// What a record says about one datum, apart from the datum.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    /// An `In` record (else `Out`).
    pub(crate) input: bool,
    pub(crate) tr: u32,
    pub(crate) c: u32,
    pub(crate) t: u64,
    pub(crate) id: Option<u64>,
    pub(crate) n: u64,
    /// Timers that fired at the instant `t` before the datum was emitted.
    pub(crate) k: u32,
}

/// A record as written; the datum is serialized in place.
#[derive(Serialize)]
pub(crate) enum Write<'a, D> {
    Begin {
        started_ms: u64,
        by: &'a str,
    },
    Train {
        tr: u32,
        name: &'a str,
        fingerprint: &'a str,
        cogs: Vec<(String, &'a str)>,
    },
    In {
        tr: u32,
        c: u32,
        t: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        n: u64,
        #[serde(skip_serializing_if = "is_zero")]
        k: u32,
        d: &'a D,
    },
    Out {
        tr: u32,
        c: u32,
        t: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        d: &'a D,
    },
    Finish {
        t: u64,
    },
}

/// A record as read; the datum stays JSON text.
#[derive(Deserialize)]
pub(crate) enum Read<'a> {
    Begin {
        started_ms: u64,
        by: String,
    },
    Train {
        tr: u32,
        name: String,
        fingerprint: String,
        cogs: Vec<(String, String)>,
    },
    In {
        tr: u32,
        c: u32,
        t: u64,
        #[serde(default)]
        id: Option<u64>,
        n: u64,
        #[serde(default)]
        k: u32,
        #[serde(borrow)]
        d: &'a RawValue,
    },
    Out {
        tr: u32,
        c: u32,
        t: u64,
        #[serde(default)]
        id: Option<u64>,
        #[serde(borrow)]
        d: &'a RawValue,
    },
    Finish {
        t: u64,
    },
}

fn is_zero(k: &u32) -> bool {
    *k == 0
}

/// Appends the frame of a record about no datum.
pub(crate) fn append(buf: &mut Vec<u8>, seq: u64, record: &Write<'_, ()>) -> Result<(), FrameError> {
    append_frame(buf, seq, |buf| serde_json::to_writer(buf, record))
}

/// How a train's data go to and come from a capture: chosen where the data
/// type is known to be serde, called where it is not.
pub(crate) struct Codec<D> {
    pub(crate) record: fn(&mut Vec<u8>, u64, &Head, &D) -> Result<(), FrameError>,
    pub(crate) decode: fn(&[u8]) -> serde_json::Result<D>,
}

impl<D> Clone for Codec<D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D> Copy for Codec<D> {}

impl<D> std::fmt::Debug for Codec<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codec")
    }
}

impl<D: Serialize + DeserializeOwned> Codec<D> {
    pub(crate) fn new() -> Self {
        Codec {
            record: record::<D>,
            decode: |bytes| serde_json::from_slice(bytes),
        }
    }
}

fn record<D: Serialize>(buf: &mut Vec<u8>, seq: u64, head: &Head, d: &D) -> Result<(), FrameError> {
    let Head { tr, c, t, id, n, k, .. } = *head;
    let record = if head.input {
        Write::In { tr, c, t, id, n, k, d }
    } else {
        Write::Out { tr, c, t, id, d }
    };
    append_frame(buf, seq, |buf| serde_json::to_writer(buf, &record))
}

/// A train's fingerprint: FNV-1a (64 bits) of its name and of each cog's
/// role and description, in hex.
pub(crate) fn fingerprint(name: &str, cogs: &[CogInfo]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(name.as_bytes());
    for cog in cogs {
        eat(b"\n");
        eat(role_name(cog.role).as_bytes());
        eat(b"\t");
        eat(cog.text.as_bytes());
    }
    format!("{hash:016x}")
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Supply => "supply",
        Role::Step => "step",
        Role::Drain => "drain",
    }
}

pub(crate) fn parse_role(name: &str) -> Option<Role> {
    match name {
        "supply" => Some(Role::Supply),
        "step" => Some(Role::Step),
        "drain" => Some(Role::Drain),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_record_reads_back_with_its_datum_as_text() {
        let mut buf = Vec::new();
        let head = Head {
            input: true,
            tr: 2,
            c: 1,
            t: 1_500_000_000,
            id: Some(7),
            n: 9,
            k: 2,
        };
        let datum = vec!["a".to_string(), "b\n".to_string()];
        (Codec::<Vec<String>>::new().record)(&mut buf, 1, &head, &datum).unwrap();
        let read: Read<'_> = serde_json::from_slice(&buf[16..]).unwrap();
        match read {
            Read::In { tr, c, t, id, n, k, d } => {
                assert_eq!((tr, c, t, id, n, k), (2, 1, 1_500_000_000, Some(7), 9, 2));
                assert_eq!(d.get(), r#"["a","b\n"]"#);
                assert_eq!((Codec::<Vec<String>>::new().decode)(d.get().as_bytes()).unwrap(), datum);
            }
            _ => panic!("not an In record"),
        }
    }

    #[test]
    fn a_fingerprint_changes_with_any_setting() {
        let cogs = |text: &str| {
            vec![
                CogInfo {
                    role: Role::Supply,
                    text: "numbers".into(),
                },
                CogInfo {
                    role: Role::Step,
                    text: text.into(),
                },
            ]
        };
        let one = fingerprint("t", &cogs("window 1s"));
        assert_eq!(one, fingerprint("t", &cogs("window 1s")));
        assert_ne!(one, fingerprint("t", &cogs("window 2s")));
        assert_ne!(one, fingerprint("u", &cogs("window 1s")));
    }
}
