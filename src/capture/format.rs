//! The records inside a capture's frames; the layout is documented in the
//! [module](super#format).

use std::io::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::recorder::Encode;
use crate::role::{CogInfo, Role};
use crate::store::record::{append_frame, FrameError};

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

/// A record about no datum, as written (records about a datum are
/// written by [`record`]).
#[derive(Serialize)]
pub(crate) enum Write<'a> {
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

/// Appends the frame of a record about no datum.
pub(crate) fn append(buf: &mut Vec<u8>, seq: u64, record: &Write<'_>) -> Result<(), FrameError> {
    append_frame(buf, seq, |buf| serde_json::to_writer(buf, record))
}

/// Appends the frame of the `In` or `Out` record of a datum that `encode`
/// writes: `{"In":{"tr":..,"c":..,"t":..,"id":..,"n":..,"k":..,"d":DATUM}}`
/// (`Out` has no `n` nor `k`; `id` is left out when there is none, `k` when
/// it is 0), as serde_json writes a struct of those fields.
pub(crate) fn record(buf: &mut Vec<u8>, seq: u64, head: &Head, encode: &mut Encode<'_>) -> Result<(), FrameError> {
    let Head {
        input,
        tr,
        c,
        t,
        id,
        n,
        k,
    } = *head;
    append_frame(buf, seq, |buf| {
        let tag = if input { "In" } else { "Out" };
        write!(buf, r#"{{"{tag}":{{"tr":{tr},"c":{c},"t":{t}"#).map_err(serde_json::Error::io)?;
        if let Some(id) = id {
            write!(buf, r#","id":{id}"#).map_err(serde_json::Error::io)?;
        }
        if input {
            write!(buf, r#","n":{n}"#).map_err(serde_json::Error::io)?;
            if k != 0 {
                write!(buf, r#","k":{k}"#).map_err(serde_json::Error::io)?;
            }
        }
        buf.extend_from_slice(br#","d":"#);
        encode(buf)?;
        buf.extend_from_slice(b"}}");
        Ok(())
    })
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
    use crate::recorder::Codec;

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
        let codec = Codec::<Vec<String>>::new();
        record(&mut buf, 1, &head, &mut |buf| (codec.encode)(&datum, buf)).unwrap();
        let read: Read<'_> = serde_json::from_slice(&buf[16..]).unwrap();
        match read {
            Read::In { tr, c, t, id, n, k, d } => {
                assert_eq!((tr, c, t, id, n, k), (2, 1, 1_500_000_000, Some(7), 9, 2));
                assert_eq!(d.get(), r#"["a","b\n"]"#);
                assert_eq!((codec.decode)(d.get().as_bytes()).unwrap(), datum);
            }
            _ => panic!("not an In record"),
        }
    }

    /// The layout serde_json gives a struct of a record's fields, which
    /// `record` writes by hand.
    #[derive(Serialize)]
    enum Derived<'a> {
        In {
            tr: u32,
            c: u32,
            t: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<u64>,
            n: u64,
            #[serde(skip_serializing_if = "is_zero")]
            k: u32,
            d: &'a serde_json::Value,
        },
        Out {
            tr: u32,
            c: u32,
            t: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<u64>,
            d: &'a serde_json::Value,
        },
    }

    fn is_zero(k: &u32) -> bool {
        *k == 0
    }

    #[test]
    fn a_record_is_what_serde_json_writes_of_its_fields() {
        let d = serde_json::json!({"msg": "x\ty", "n": [1, 2.5, null]});
        let codec = Codec::<serde_json::Value>::new();
        for (input, id, k) in [
            (true, Some(7), 2),
            (true, None, 0),
            (false, Some(3), 0),
            (false, None, 0),
        ] {
            let head = Head {
                input,
                tr: 1,
                c: 4,
                t: 99,
                id,
                n: 12,
                k,
            };
            let mut buf = Vec::new();
            record(&mut buf, 1, &head, &mut |buf| (codec.encode)(&d, buf)).unwrap();
            let derived = if input {
                Derived::In {
                    tr: 1,
                    c: 4,
                    t: 99,
                    id,
                    n: 12,
                    k,
                    d: &d,
                }
            } else {
                Derived::Out {
                    tr: 1,
                    c: 4,
                    t: 99,
                    id,
                    d: &d,
                }
            };
            let mut want = Vec::new();
            append_frame(&mut want, 1, |buf| serde_json::to_writer(buf, &derived)).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&buf[16..]),
                String::from_utf8_lossy(&want[16..])
            );
            assert_eq!(buf, want);
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
