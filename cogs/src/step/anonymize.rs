//! The `anonymize` cog: IP addresses in fields, truncated to a prefix or
//! pseudonymized with a key, prefix-preserving.
//!
//! - `mode = "truncate"` (default) keeps the first `ipv4_prefix` (24) or
//!   `ipv6_prefix` (48) bits and zeroes the rest: `192.0.2.77` becomes
//!   `192.0.2.0`.
//! - `mode = "pseudonymize"` maps each address to another one with a keyed
//!   pseudorandom permutation that preserves prefixes: two addresses that
//!   share their first *n* bits map to two that share their first *n* bits,
//!   so subnets can still be told apart and compared, and the same key
//!   gives the same mapping in every run and on every host. The
//!   construction is Crypto-PAn's (Xu, Fan, Ammar, Moon, 2002) with AES-128
//!   as the pseudorandom function; IPv4 results match the reference
//!   implementation, and IPv6 uses the same construction over 128 bits.
//!   The key is 32 bytes: 64 hex digits in `key` or in the file `key_file`.
//!   Without the key the mapping cannot be reversed, but with it, it can:
//!   keep it like a password.
//!
//! A field may hold an address (`192.0.2.7`, `2001:db8::1`), an address
//! with a port (`192.0.2.7:8080`, `[2001:db8::1]:443`; the port is kept)
//! or a comma-separated list of them (`X-Forwarded-For`; written back with
//! `, ` between them). An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`) is
//! treated as the IPv4 address it maps. Anything else is invalid: counted
//! as an error, never a panic, and the field is kept, removed or the datum
//! dropped as `on_invalid` says. A missing field is left alone.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use tourbillon::{Cog, Context, Event, Getter, Next, Setter};

use crate::access::{check_path, Access};
use crate::meter::{Meter, Metered};
use crate::Error;

/// How [`Anonymize`] hides addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keep a prefix, zero the rest (the default).
    #[default]
    Truncate,
    /// Map through a keyed prefix-preserving permutation (Crypto-PAn).
    Pseudonymize,
}

/// What [`Anonymize`] does with a field that holds no address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// Leave the field as it is (the default).
    #[default]
    Keep,
    /// Remove the field.
    Remove,
    /// Drop the datum (reported done).
    Drop,
}

/// Settings of [`Anonymize`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnonymizeSettings {
    /// Field paths holding addresses. At least one; default none.
    pub fields: Vec<String>,
    /// `"truncate"` (default) or `"pseudonymize"`.
    pub mode: Mode,
    /// Bits of an IPv4 address kept by `truncate`, 0 to 32. Default 24.
    pub ipv4_prefix: u8,
    /// Bits of an IPv6 address kept by `truncate`, 0 to 128. Default 48.
    pub ipv6_prefix: u8,
    /// The key of `pseudonymize`: 64 hex digits (32 bytes). Never shown in
    /// listings. Give this or `key_file`; default none.
    #[serde(serialize_with = "redact")]
    pub key: Option<String>,
    /// A file holding the key (64 hex digits, or 32 raw bytes), read when
    /// the cog is built. Default none.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub key_file: Option<PathBuf>,
    /// A field that holds no address: `"keep"` (default), `"remove"` or `"drop"`.
    pub on_invalid: OnInvalid,
    /// Addresses whose pseudonym is remembered (`pseudonymize` costs 32
    /// AES blocks per IPv4 address, 128 per IPv6 one); 0 remembers none.
    /// Default 65536.
    pub cache_size: usize,
}

fn redact<S: Serializer>(key: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match key {
        Some(_) => s.serialize_str("<secret>"),
        None => s.serialize_none(),
    }
}

impl Default for AnonymizeSettings {
    fn default() -> Self {
        AnonymizeSettings {
            fields: Vec::new(),
            mode: Mode::Truncate,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            key: None,
            key_file: None,
            on_invalid: OnInvalid::Keep,
            cache_size: 65_536,
        }
    }
}

fn hex_key(key: &str, text: &str) -> Result<[u8; 32], Error> {
    let text = text.trim();
    let bad = || Error::setting(key, "must be 64 hex digits (32 bytes)");
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl AnonymizeSettings {
    /// Checks the values (and reads `key_file`); the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        self.check().map(|_| ())
    }

    /// The key of `pseudonymize`, once checked.
    fn check(&self) -> Result<Option<[u8; 32]>, Error> {
        if self.fields.is_empty() {
            return Err(Error::setting("fields", "required: the field paths holding addresses"));
        }
        for (i, p) in self.fields.iter().enumerate() {
            check_path(&format!("fields[{i}]"), p)?;
        }
        if self.ipv4_prefix > 32 {
            return Err(Error::setting("ipv4_prefix", "at most 32"));
        }
        if self.ipv6_prefix > 128 {
            return Err(Error::setting("ipv6_prefix", "at most 128"));
        }
        match (self.mode, &self.key, &self.key_file) {
            (Mode::Truncate, None, None) => Ok(None),
            (Mode::Truncate, Some(_), _) => Err(Error::setting("key", "only with mode = \"pseudonymize\"")),
            (Mode::Truncate, _, Some(_)) => Err(Error::setting("key_file", "only with mode = \"pseudonymize\"")),
            (Mode::Pseudonymize, Some(_), Some(_)) => Err(Error::setting("key", "give `key` or `key_file`, not both")),
            (Mode::Pseudonymize, None, None) => Err(Error::setting(
                "key",
                "required with mode = \"pseudonymize\": 64 hex digits here or in `key_file`",
            )),
            (Mode::Pseudonymize, Some(k), None) => hex_key("key", k).map(Some),
            (Mode::Pseudonymize, None, Some(path)) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| Error::setting("key_file", format!("cannot read {}: {e}", path.display())))?;
                if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
                    return Ok(Some(raw));
                }
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::setting("key_file", "must hold 64 hex digits or 32 bytes"))?;
                hex_key("key_file", &text).map(Some)
            }
        }
    }
}

/// Crypto-PAn: a keyed, prefix-preserving permutation of IP addresses.
///
/// ```
/// use std::net::Ipv4Addr;
/// use tourbillon_cogs::step::anonymize::CryptoPan;
///
/// let pan = CryptoPan::new(&[7; 32]);
/// let a = pan.ipv4(Ipv4Addr::new(192, 0, 2, 1));
/// let b = pan.ipv4(Ipv4Addr::new(192, 0, 2, 200));
/// assert_ne!(a, Ipv4Addr::new(192, 0, 2, 1));
/// assert_eq!(a.octets()[..3], b.octets()[..3], "same /24 in, same /24 out");
/// ```
#[derive(Clone)]
pub struct CryptoPan {
    cipher: Aes128,
    pad: u128,
}

impl fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CryptoPan(<key>)")
    }
}

impl CryptoPan {
    /// From a 32-byte key: the first half keys AES-128, the second half,
    /// encrypted, is the padding.
    pub fn new(key: &[u8; 32]) -> CryptoPan {
        let cipher = Aes128::new(GenericArray::from_slice(&key[..16]));
        let mut pad = GenericArray::clone_from_slice(&key[16..]);
        cipher.encrypt_block(&mut pad);
        CryptoPan {
            cipher,
            pad: u128::from_be_bytes(pad.into()),
        }
    }

    /// The `bits` leading bits of `addr` (left-aligned in a u128), mapped.
    fn map(&self, addr: u128, bits: u32) -> u128 {
        // Bit i of the result flips by the first bit of PRF(the first i bits
        // of the address, padded). Every input is known up front, so the
        // blocks go through AES together (pipelined where the CPU can).
        let mut blocks = [GenericArray::default(); 128];
        for (i, block) in blocks.iter_mut().take(bits as usize).enumerate() {
            let keep = if i == 0 { 0 } else { !0u128 << (128 - i) };
            *block = ((addr & keep) | (self.pad & !keep)).to_be_bytes().into();
        }
        self.cipher.encrypt_blocks(&mut blocks[..bits as usize]);
        let mut flips = 0u128;
        for (i, block) in blocks.iter().take(bits as usize).enumerate() {
            flips |= u128::from(block[0] >> 7) << (127 - i);
        }
        addr ^ flips
    }

    /// An IPv4 address, mapped.
    pub fn ipv4(&self, a: Ipv4Addr) -> Ipv4Addr {
        let mapped = self.map(u128::from(u32::from(a)) << 96, 32);
        Ipv4Addr::from((mapped >> 96) as u32)
    }

    /// An IPv6 address, mapped.
    pub fn ipv6(&self, a: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.map(u128::from(a), 128))
    }
}

/// Zeroes all but the first `bits` bits of an address.
pub fn truncate(addr: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(ipv4_prefix))),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V6(Ipv4Addr::from(u32::from(v4) & mask32(ipv4_prefix)).to_ipv6_mapped()),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(ipv6_prefix))),
        },
    }
}

fn mask32(bits: u8) -> u32 {
    match bits {
        0 => 0,
        b => !0u32 << (32 - u32::from(b.min(32))),
    }
}

fn mask128(bits: u8) -> u128 {
    match bits {
        0 => 0,
        b => !0u128 << (128 - u32::from(b.min(128))),
    }
}

enum How {
    Truncate {
        v4: u8,
        v6: u8,
    },
    Pseudonymize {
        pan: Box<CryptoPan>,
        cache: HashMap<IpAddr, IpAddr>,
        max: usize,
    },
}

impl How {
    fn addr(&mut self, a: IpAddr) -> IpAddr {
        match self {
            How::Truncate { v4, v6 } => truncate(a, *v4, *v6),
            How::Pseudonymize { pan, cache, max } => {
                if let Some(b) = cache.get(&a) {
                    return *b;
                }
                let b = match a {
                    IpAddr::V4(v4) => IpAddr::V4(pan.ipv4(v4)),
                    IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                        Some(v4) => IpAddr::V6(pan.ipv4(v4).to_ipv6_mapped()),
                        None => IpAddr::V6(pan.ipv6(v6)),
                    },
                };
                if *max > 0 {
                    if cache.len() >= *max {
                        // Cheaper than tracking use; a busy address is back at its next sighting.
                        cache.clear();
                    }
                    cache.insert(a, b);
                }
                b
            }
        }
    }

    /// One address, with or without a port; `None` if it is neither.
    fn one(&mut self, text: &str, out: &mut String) -> Option<()> {
        use std::fmt::Write as _;
        if let Ok(a) = text.parse::<IpAddr>() {
            let _ = write!(out, "{}", self.addr(a));
        } else {
            let s = text.parse::<SocketAddr>().ok()?;
            let _ = write!(out, "{}", SocketAddr::new(self.addr(s.ip()), s.port()));
        }
        Some(())
    }

    /// A field's text anonymized; `None` if any part of it is no address.
    fn text(&mut self, text: &str) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        if !text.contains(',') {
            self.one(text.trim(), &mut out)?;
            return Some(out);
        }
        for (i, part) in text.split(',').enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.one(part.trim(), &mut out)?;
        }
        Some(out)
    }
}

struct Field<D> {
    get: Getter<D, Value>,
    put: Setter<D, Option<Value>>,
}

/// Anonymizes IP addresses in fields; see the [module docs](self).
pub struct Anonymize<D = Event> {
    settings: AnonymizeSettings,
    fields: Vec<Field<D>>,
    how: How,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Anonymize<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anonymize")
            .field("fields", &self.settings.fields)
            .field("mode", &self.settings.mode)
            .finish_non_exhaustive()
    }
}

impl Anonymize<Event> {
    /// An `anonymize` cog for events.
    pub fn new(settings: AnonymizeSettings) -> Result<Self, Error> {
        Anonymize::with_access(settings, Access::event())
    }
}

impl<D: 'static> Anonymize<D> {
    /// An `anonymize` cog reaching fields through `access`.
    pub fn with_access(settings: AnonymizeSettings, access: Access<D>) -> Result<Self, Error> {
        let how = match settings.check()? {
            None => How::Truncate {
                v4: settings.ipv4_prefix,
                v6: settings.ipv6_prefix,
            },
            Some(key) => How::Pseudonymize {
                pan: Box::new(CryptoPan::new(&key)),
                cache: HashMap::new(),
                max: settings.cache_size,
            },
        };
        let fields = settings
            .fields
            .iter()
            .map(|p| Field {
                get: access.getter(p),
                put: access.writer(p),
            })
            .collect();
        Ok(Anonymize {
            settings,
            fields,
            how,
            access,
            meter: Meter::default(),
        })
    }

    /// The text of a field, anonymized; `None` if it holds no address.
    pub fn anonymize(&mut self, text: &str) -> Option<String> {
        self.how.text(text)
    }
}

impl<D: 'static> Metered for Anonymize<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Anonymize<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, mut datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        for f in &self.fields {
            let done = match f.get.get(&datum) {
                None => continue,
                Some(Value::String(s)) => self.how.text(s),
                Some(_) => None,
            };
            match (done, self.settings.on_invalid) {
                (Some(text), _) => datum = f.put.set(datum, Some(Value::String(text))),
                (None, OnInvalid::Keep) => self.meter.error(),
                (None, OnInvalid::Remove) => {
                    self.meter.error();
                    datum = f.put.set(datum, None);
                }
                (None, OnInvalid::Drop) => {
                    self.meter.error();
                    return self.meter.discard(&datum, ctx);
                }
            }
        }
        self.meter.emit(datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "anonymize {}", self.settings.fields.join(", "))?;
        match self.settings.mode {
            Mode::Truncate => write!(
                f,
                " truncate ipv4=/{} ipv6=/{}",
                self.settings.ipv4_prefix, self.settings.ipv6_prefix
            )?,
            Mode::Pseudonymize => f.write_str(" pseudonymize (Crypto-PAn, key set)")?,
        }
        match self.settings.on_invalid {
            OnInvalid::Keep => Ok(()),
            OnInvalid::Remove => f.write_str(" on_invalid=remove"),
            OnInvalid::Drop => f.write_str(" on_invalid=drop"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of the sample in the Crypto-PAn source distribution.
    const SAMPLE_KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121, 121, 101, 39,
        98, 87, 76, 45, 42, 132, 34, 2,
    ];

    #[test]
    fn ipv4_matches_the_reference_sample_trace() {
        let pan = CryptoPan::new(&SAMPLE_KEY);
        for (raw, anon) in [
            ("128.11.68.132", "135.242.180.132"),
            ("129.118.74.4", "134.136.186.123"),
            ("130.132.252.244", "133.68.164.234"),
            ("141.223.7.43", "141.167.8.160"),
            ("192.102.249.13", "252.138.62.131"),
            ("24.0.250.221", "100.15.198.226"),
            ("4.3.88.225", "124.60.155.63"),
            ("64.14.118.196", "0.255.183.58"),
        ] {
            assert_eq!(pan.ipv4(raw.parse().unwrap()).to_string(), anon, "{raw}");
        }
    }

    #[test]
    fn ipv6_matches_other_implementations() {
        let pan = CryptoPan::new(&SAMPLE_KEY);
        for (raw, anon) in [
            ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
            ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
            ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
        ] {
            assert_eq!(pan.ipv6(raw.parse().unwrap()).to_string(), anon, "{raw}");
        }
    }

    #[test]
    fn truncation_keeps_the_prefix_of_each_family() {
        let t = |a: &str| truncate(a.parse().unwrap(), 24, 48).to_string();
        assert_eq!(t("192.0.2.77"), "192.0.2.0");
        assert_eq!(t("2001:db8:1:2:3:4:5:6"), "2001:db8:1::");
        assert_eq!(t("::ffff:192.0.2.77"), "::ffff:192.0.2.0");
        assert_eq!(truncate("10.1.2.3".parse().unwrap(), 0, 0).to_string(), "0.0.0.0");
        assert_eq!(truncate("10.1.2.3".parse().unwrap(), 32, 128).to_string(), "10.1.2.3");
    }

    #[test]
    fn ports_and_lists_keep_their_shape_and_junk_is_refused() {
        let mut how = How::Truncate { v4: 16, v6: 32 };
        assert_eq!(how.text("10.1.2.3:8080").as_deref(), Some("10.1.0.0:8080"));
        assert_eq!(how.text("[2001:db8::1]:443").as_deref(), Some("[2001:db8::]:443"));
        assert_eq!(how.text("10.1.2.3,10.9.9.9").as_deref(), Some("10.1.0.0, 10.9.0.0"));
        for junk in [
            "",
            "-",
            "example.com",
            "10.1.2",
            "10.1.2.3, nope",
            "10.1.2.3:99999",
            "1.2.3.4/24",
        ] {
            assert_eq!(how.text(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn keys_are_checked_and_never_listed() {
        let mut s = AnonymizeSettings {
            fields: vec!["ip".into()],
            mode: Mode::Pseudonymize,
            ..AnonymizeSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().starts_with("key: required"));
        s.key = Some("abc".into());
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "key: must be 64 hex digits (32 bytes)"
        );
        s.key = Some("0f".repeat(32));
        assert!(s.validate().is_ok());
        let shown = serde_json::to_value(&s).unwrap();
        assert_eq!(shown["key"], "<secret>");
    }

    #[test]
    fn a_key_file_holds_hex_or_raw_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let hex = dir.path().join("hex");
        std::fs::write(&hex, format!("{}\n", "ab".repeat(32))).unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [0xab; 32]).unwrap();
        let key = |p: &std::path::Path| {
            AnonymizeSettings {
                fields: vec!["ip".into()],
                mode: Mode::Pseudonymize,
                key_file: Some(p.to_owned()),
                ..AnonymizeSettings::default()
            }
            .check()
            .unwrap()
        };
        assert_eq!(key(&hex), Some([0xab; 32]));
        assert_eq!(key(&raw), Some([0xab; 32]));
    }
}
