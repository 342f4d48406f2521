//! Reading and writing times, shared by the cogs: [`Time`] (seconds and
//! nanoseconds since 1970, UTC), civil dates, RFC 3339, epoch numbers in
//! any unit and strftime-like patterns ([`parse`]).
//!
//! The formats a text is read with:
//!
//!
//! | format | reads |
//! |---|---|
//! | `rfc3339` | `2024-03-01T12:00:00.250+01:00` (`T`, `t` or a space between date and time; `Z` or an offset) |
//! | `epoch_secs` | a number or numeric string of seconds since 1970, fractions allowed (`1709294400.25`) |
//! | `epoch_millis`, `epoch_micros`, `epoch_nanos` | the same in smaller units |
//! | `rfc3164` | syslog's `Nov 30 20:13:01` or `Nov  1 08:05:09` (the day space-padded or not, a `.fraction` allowed): no year, see below |
//! | a pattern with `%` | strftime-like, below |
//!
//! Pattern directives: `%Y` year (4 digits), `%m` month, `%d` day, `%e`
//! day (space-padded), `%H` hour, `%M` minute, `%S` second, `%f` fraction
//! digits, `%b` / `%h` month name (3 letters, any case), `%B` full month
//! name, `%a` / `%A` weekday name (read and ignored), `%z` offset (`Z`,
//! `+01`, `+0100`, `+01:00`), `%Z` `UTC`/`GMT`/`Z`, `%s` epoch seconds,
//! `%T` = `%H:%M:%S`, `%F` = `%Y-%m-%d`, `%%` a `%`. A space matches one
//! or more spaces; other characters match themselves. A pattern needs a
//! year (`%Y`, `%F` or `%s`). Apache's `%d/%b/%Y:%H:%M:%S %z` reads
//! `10/Oct/2000:13:55:36 -0700`.
//!
//! A time without an offset (`rfc3164`, a pattern without `%z`/`%Z`) is a
//! local time in a [`Zone`]: UTC unless a zone is given (`UTC`, a fixed
//! offset `+02:00`, or a named zone `Europe/Paris` read from the system's
//! zoneinfo database, `/usr/share/zoneinfo` or `$TZDIR`). A local time
//! that a zone skips (the hour lost to daylight saving) is read as if the
//! clock had not changed yet; a repeated one as its first occurrence.
//!
//! An `rfc3164` time has no year: it is put in the year that makes it the
//! latest time no more than [`FUTURE_SLACK_SECS`] (two days) after `now`,
//! so a line of 31 December read on 1 January is last year's, and one of 1
//! January read a few seconds before midnight on 31 December (a sender's
//! clock slightly ahead) is next year's.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use serde_json::Value;

/// The zone of local times (times read without an offset); see the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq)]
pub struct Zone(TimeZone);

impl Default for Zone {
    fn default() -> Self {
        Zone(TimeZone::UTC)
    }
}

impl Zone {
    /// `UTC`, a fixed offset (`+02:00`, `-0530`, `Z`) or a zone of the
    /// system's database (`Europe/Paris`); the error says which it is not.
    pub fn named(name: &str) -> Result<Zone, String> {
        if name.eq_ignore_ascii_case("utc") || name == "Z" {
            return Ok(Zone::default());
        }
        if name.starts_with(['+', '-']) {
            let mut s = Input {
                s: name.as_bytes(),
                i: 0,
            };
            return match s.offset().filter(|_| s.done()) {
                Some(secs) => Ok(Zone(TimeZone::fixed(
                    Offset::from_seconds(secs as i32).map_err(|e| e.to_string())?,
                ))),
                None => Err(format!("`{name}` is not an offset like +02:00 or -0530")),
            };
        }
        TimeZone::get(name).map(Zone).map_err(|e| {
            format!("`{name}` is not UTC, an offset like +02:00, or a time zone of the system's database: {e}")
        })
    }

    /// The offset of this zone if it is fixed (UTC or `+02:00`).
    fn fixed_secs(&self) -> Option<i64> {
        self.0.to_fixed_offset().ok().map(|o| i64::from(o.seconds()))
    }

    /// The instant of a (checked) local date and time in this zone.
    fn instant(&self, p: &Parts, year: i64, month: u32, day: u32) -> Option<Time> {
        // jiff has no leap seconds: `:60` is read as the second after `:59`,
        // as the arithmetic for fixed offsets does.
        let leap = i64::from(p.second == 60);
        let dt = Date::new(i16::try_from(year).ok()?, month as i8, day as i8).ok()?.at(
            p.hour as i8,
            p.minute as i8,
            p.second.min(59) as i8,
            0,
        );
        let ts = self.0.to_timestamp(dt).ok()?;
        Some(Time {
            secs: ts.as_second() + leap,
            nanos: p.nanos,
        })
    }

    /// The civil year `t` falls in, in this zone.
    fn year_of(&self, t: Time) -> Option<i64> {
        let ts = jiff::Timestamp::from_second(t.secs).ok()?;
        Some(i64::from(self.0.to_datetime(ts).year()))
    }
}

/// How far after `now` an [`rfc3164`] time may be before it is taken as
/// last year's: two days.
pub const FUTURE_SLACK_SECS: i64 = 2 * 86_400;

/// An instant as seconds and nanoseconds since 1970-01-01 UTC (seconds may
/// be negative; nanoseconds are always in `0..1e9`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    /// Whole seconds since the epoch (floor).
    pub secs: i64,
    /// Nanoseconds past `secs`.
    pub nanos: u32,
}

impl Time {
    /// From a system time.
    pub fn from_system(t: SystemTime) -> Time {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Time {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => Time::from_nanos(-(e.duration().as_nanos() as i128)),
        }
    }

    /// From nanoseconds since the epoch.
    pub fn from_nanos(n: i128) -> Time {
        Time {
            secs: n.div_euclid(1_000_000_000) as i64,
            nanos: n.rem_euclid(1_000_000_000) as u32,
        }
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// Milliseconds since the epoch (floor).
    pub fn as_millis(self) -> i64 {
        self.secs * 1000 + i64::from(self.nanos / 1_000_000)
    }

    /// RFC 3339 in UTC with `digits` digits of fraction (0 to 9):
    /// `2026-11-23T14:05:09.120Z`.
    pub fn rfc3339(self, digits: u32) -> String {
        let (days, rem) = (self.secs.div_euclid(86_400), self.secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        let mut s = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        );
        let digits = digits.min(9);
        if digits > 0 {
            let frac = self.nanos / 10u32.pow(9 - digits);
            s.push_str(&format!(".{frac:0width$}", width = digits as usize));
        }
        s.push('Z');
        s
    }

    /// RFC 3339 with as many fraction digits as the time needs: none, 3, 6 or 9.
    pub fn rfc3339_auto(self) -> String {
        let digits = match self.nanos {
            0 => 0,
            n if n % 1_000_000 == 0 => 3,
            n if n % 1_000 == 0 => 6,
            _ => 9,
        };
        self.rfc3339(digits)
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        _ => 28,
    }
}

/// Broken-down time as read, before it is checked.
#[derive(Default)]
struct Parts {
    year: Option<i64>,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// None: a local time, in the zone given.
    offset_secs: Option<i64>,
    epoch: Option<i64>,
}

impl Parts {
    fn time(&self, zone: &Zone) -> Option<Time> {
        if let Some(secs) = self.epoch {
            return Some(Time {
                secs,
                nanos: self.nanos,
            });
        }
        let year = self.year?;
        let (month, day) = (self.month.max(1), self.day.max(1));
        if month > 12 || day > days_in_month(year, month) || self.hour > 23 || self.minute > 59 || self.second > 60 {
            return None;
        }
        let offset = match self.offset_secs.or_else(|| zone.fixed_secs()) {
            Some(o) => o,
            None => return zone.instant(self, year, month, day),
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second) - offset;
        Some(Time {
            secs,
            nanos: self.nanos,
        })
    }
}

/// A cursor over the text being parsed.
struct Input<'a> {
    s: &'a [u8],
    i: usize,
}

impl Input<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Between `min` and `max` digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<(u64, usize)> {
        let start = self.i;
        let mut n = 0u64;
        while self.i - start < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    n = n * 10 + u64::from(b - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        let count = self.i - start;
        (count >= min).then_some((n, count))
    }

    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        self.digits(min, max).map(|(n, _)| n as u32)
    }

    /// A fraction's digits (1 to 9 kept, more read and dropped) as nanoseconds.
    fn fraction(&mut self) -> Option<u32> {
        let (n, count) = self.digits(1, 9)?;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        Some(n as u32 * 10u32.pow(9 - count as u32))
    }

    /// `Z`, or `+hh`, `+hhmm`, `+hh:mm` (and `-`).
    fn offset(&mut self) -> Option<i64> {
        if self.eat(b'Z') || self.eat(b'z') {
            return Some(0);
        }
        let sign = match self.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.i += 1;
        let h = self.number(2, 2)?;
        self.eat(b':');
        let m = self.number(2, 2).unwrap_or(0);
        if h > 23 || m > 59 {
            return None;
        }
        Some(sign * i64::from(h * 3600 + m * 60))
    }

    /// One of `names` (any case), its index; the longest that fits.
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        let rest = &self.s[self.i..];
        let (i, len) = names
            .iter()
            .enumerate()
            .filter(|(_, n)| rest.len() >= n.len() && rest[..n.len()].eq_ignore_ascii_case(n.as_bytes()))
            .map(|(i, n)| (i, n.len()))
            .max_by_key(|&(_, len)| len)?;
        self.i += len;
        Some(i)
    }

    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn rfc3339(text: &str) -> Option<Time> {
    let mut p = Parts::default();
    let mut s = Input {
        s: text.as_bytes(),
        i: 0,
    };
    p.year = Some(i64::from(s.number(4, 4)?));
    s.eat(b'-').then_some(())?;
    p.month = s.number(2, 2)?;
    s.eat(b'-').then_some(())?;
    p.day = s.number(2, 2)?;
    (s.eat(b'T') || s.eat(b't') || s.eat(b' ')).then_some(())?;
    p.hour = s.number(2, 2)?;
    s.eat(b':').then_some(())?;
    p.minute = s.number(2, 2)?;
    s.eat(b':').then_some(())?;
    p.second = s.number(2, 2)?;
    if s.eat(b'.') || s.eat(b',') {
        p.nanos = s.fraction()?;
    }
    p.offset_secs = Some(s.offset()?);
    s.done().then_some(())?;
    p.time(&Zone::default())
}

/// `Mmm dd hh:mm:ss` (the day space-padded or not, an optional fraction)
/// in `zone`, in the year that makes it the latest time no more than
/// [`FUTURE_SLACK_SECS`] after `now` (see the [module docs](self)).
///
/// ```
/// use tourbillon_cogs::time::{rfc3164, Time, Zone};
///
/// let new_year = Time { secs: 1_798_761_600, nanos: 0 }; // 2027-01-01T00:00:00Z
/// let t = rfc3164("Dec 31 23:59:58", new_year, &Zone::default()).unwrap();
/// assert_eq!(t.rfc3339(0), "2026-12-31T23:59:58Z");
/// let paris = Zone::named("Europe/Paris").unwrap();
/// let t = rfc3164("Jul  4 12:00:00", new_year, &paris).unwrap();
/// assert_eq!(t.rfc3339(0), "2026-07-04T10:00:00Z");
/// ```
pub fn rfc3164(text: &str, now: Time, zone: &Zone) -> Option<Time> {
    let mut p = Parts::default();
    let mut s = Input {
        s: text.as_bytes(),
        i: 0,
    };
    let short: Vec<&str> = MONTHS.iter().map(|m| &m[..3]).collect();
    p.month = s.name(&short)? as u32 + 1;
    s.eat(b' ').then_some(())?;
    s.eat(b' ');
    p.day = s.number(1, 2)?;
    s.eat(b' ').then_some(())?;
    p.hour = s.number(2, 2)?;
    s.eat(b':').then_some(())?;
    p.minute = s.number(2, 2)?;
    s.eat(b':').then_some(())?;
    p.second = s.number(2, 2)?;
    if s.eat(b'.') {
        p.nanos = s.fraction()?;
    }
    s.done().then_some(())?;
    let year = zone.year_of(now)?;
    // The latest candidate not too far in the future; a year without the
    // date (29 February) is skipped.
    (year - 1..=year + 1).rev().find_map(|y| {
        p.year = Some(y);
        p.time(zone)
            .filter(|t| t.secs <= now.secs.saturating_add(FUTURE_SLACK_SECS))
    })
}

/// A number of `unit` nanoseconds since the epoch, from a JSON number or a
/// numeric string.
fn epoch(v: &Value, unit: i128) -> Option<Time> {
    let nanos = match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => i128::from(i).checked_mul(unit)?,
            None => float_nanos(n.as_f64()?, unit)?,
        },
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => i128::from(i).checked_mul(unit)?,
                Err(_) => float_nanos(s.parse().ok()?, unit)?,
            }
        }
        _ => return None,
    };
    // Within the years 0 to 9999: anything else is not a time we can print.
    const MIN: i128 = -62_167_219_200 * 1_000_000_000;
    const MAX: i128 = 253_402_300_799 * 1_000_000_000;
    (MIN..=MAX).contains(&nanos).then(|| Time::from_nanos(nanos))
}

fn float_nanos(f: f64, unit: i128) -> Option<i128> {
    let n = f * unit as f64;
    (n.is_finite() && n.abs() < 1e30).then_some(n.round() as i128)
}

/// One step of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Literal(u8),
    Spaces,
    Year,
    Month,
    Day,
    DaySpaced,
    Hour,
    Minute,
    Second,
    Fraction,
    MonthName,
    Weekday,
    Offset,
    Zone,
    Epoch,
}

fn compile(pattern: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut chars = pattern.bytes();
    while let Some(b) = chars.next() {
        if b == b' ' {
            if items.last() != Some(&Item::Spaces) {
                items.push(Item::Spaces);
            }
            continue;
        }
        if b != b'%' {
            items.push(Item::Literal(b));
            continue;
        }
        let d = chars.next().ok_or("a pattern cannot end with `%`")?;
        match d {
            b'Y' => items.push(Item::Year),
            b'm' => items.push(Item::Month),
            b'd' => items.push(Item::Day),
            b'e' => items.push(Item::DaySpaced),
            b'H' => items.push(Item::Hour),
            b'M' => items.push(Item::Minute),
            b'S' => items.push(Item::Second),
            b'f' => items.push(Item::Fraction),
            b'b' | b'h' | b'B' => items.push(Item::MonthName),
            b'a' | b'A' => items.push(Item::Weekday),
            b'z' => items.push(Item::Offset),
            b'Z' => items.push(Item::Zone),
            b's' => items.push(Item::Epoch),
            b'T' => items.extend([
                Item::Hour,
                Item::Literal(b':'),
                Item::Minute,
                Item::Literal(b':'),
                Item::Second,
            ]),
            b'F' => items.extend([
                Item::Year,
                Item::Literal(b'-'),
                Item::Month,
                Item::Literal(b'-'),
                Item::Day,
            ]),
            b'%' => items.push(Item::Literal(b'%')),
            other => {
                return Err(format!(
                    "unknown directive `%{}` (known: %Y %m %d %e %H %M %S %f %b %h %B %a %A %z %Z %s %T %F %%)",
                    other as char
                ))
            }
        }
    }
    if !items.iter().any(|i| matches!(i, Item::Year | Item::Epoch)) {
        return Err("a pattern needs a year (%Y, %F) or epoch seconds (%s)".into());
    }
    Ok(items)
}

fn pattern(items: &[Item], text: &str, zone: &Zone) -> Option<Time> {
    let mut p = Parts::default();
    let mut s = Input {
        s: text.as_bytes(),
        i: 0,
    };
    for item in items {
        match item {
            Item::Literal(b) => s.eat(*b).then_some(())?,
            Item::Spaces => {
                s.eat(b' ').then_some(())?;
                while s.eat(b' ') {}
            }
            Item::Year => {
                let neg = s.eat(b'-');
                let y = i64::from(s.number(4, 4)?);
                p.year = Some(if neg { -y } else { y });
            }
            Item::Month => p.month = s.number(1, 2)?,
            Item::Day => p.day = s.number(1, 2)?,
            Item::DaySpaced => {
                s.eat(b' ');
                p.day = s.number(1, 2)?;
            }
            Item::Hour => p.hour = s.number(1, 2)?,
            Item::Minute => p.minute = s.number(1, 2)?,
            Item::Second => p.second = s.number(1, 2)?,
            Item::Fraction => p.nanos = s.fraction()?,
            Item::MonthName => {
                let full = s.name(&MONTHS);
                let m = match full {
                    Some(m) => m,
                    None => {
                        let short: Vec<&str> = MONTHS.iter().map(|m| &m[..3]).collect();
                        s.name(&short)?
                    }
                };
                p.month = m as u32 + 1;
            }
            Item::Weekday => {
                if s.name(&DAYS).is_none() {
                    let short: Vec<&str> = DAYS.iter().map(|d| &d[..3]).collect();
                    s.name(&short)?;
                }
            }
            Item::Offset => p.offset_secs = Some(s.offset()?),
            Item::Zone => {
                s.name(&["utc", "gmt", "z"])?;
                p.offset_secs = Some(0);
            }
            Item::Epoch => {
                let neg = s.eat(b'-');
                let (n, _) = s.digits(1, 18)?;
                p.epoch = Some(if neg { -(n as i64) } else { n as i64 });
            }
        }
    }
    s.done().then_some(())?;
    p.time(zone)
}

/// One way to read a time; see the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) enum Format {
    Rfc3339,
    Rfc3164,
    Epoch(i128),
    Pattern(Vec<Item>),
}

impl Format {
    /// The time `v` holds in this format, if it holds one; a local time
    /// in `zone`, a year inferred against `now` (asked only then).
    pub(crate) fn parse(&self, v: &Value, zone: &Zone, now: impl FnOnce() -> Time) -> Option<Time> {
        match self {
            Format::Rfc3339 => rfc3339(v.as_str()?),
            Format::Rfc3164 => rfc3164(v.as_str()?, now(), zone),
            Format::Epoch(unit) => epoch(v, *unit),
            Format::Pattern(items) => pattern(items, v.as_str()?, zone),
        }
    }
}

/// The format a setting names (`rfc3339`, `epoch_millis`, a `%` pattern).
pub(crate) fn format_of(text: &str) -> Result<Format, String> {
    Ok(match text {
        "rfc3339" => Format::Rfc3339,
        "rfc3164" => Format::Rfc3164,
        "epoch_secs" => Format::Epoch(1_000_000_000),
        "epoch_millis" => Format::Epoch(1_000_000),
        "epoch_micros" => Format::Epoch(1_000),
        "epoch_nanos" => Format::Epoch(1),
        p if p.contains('%') => Format::Pattern(compile(p)?),
        other => {
            return Err(format!(
                "unknown format `{other}` (rfc3339, rfc3164, epoch_secs, epoch_millis, epoch_micros, epoch_nanos, or a \
                 pattern with %)"
            ))
        }
    })
}

/// Parses `text` as `format` (a name or pattern, as in the settings); a
/// local time is taken as UTC, a year inferred against the clock. See
/// [`parse_in`] for another zone.
///
/// ```
/// use tourbillon_cogs::time::parse;
///
/// let t = parse("%d/%b/%Y:%H:%M:%S %z", "10/Oct/2000:13:55:36 -0700").unwrap().unwrap();
/// assert_eq!(t.rfc3339(0), "2000-10-10T20:55:36Z");
/// assert_eq!(parse("rfc3339", "yesterday").unwrap(), None);
/// ```
pub fn parse(format: &str, text: &str) -> Result<Option<Time>, String> {
    parse_in(format, text, &Zone::default(), Time::from_system(SystemTime::now()))
}

/// Parses `text` as `format`, a local time in `zone`, a missing year
/// inferred against `now`.
pub fn parse_in(format: &str, text: &str, zone: &Zone, now: Time) -> Result<Option<Time>, String> {
    Ok(format_of(format)?.parse(&Value::String(text.to_owned()), zone, || now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rfc(text: &str) -> Option<String> {
        rfc3339(text).map(|t| t.rfc3339_auto())
    }

    #[test]
    fn rfc3339_is_read_with_offsets_fractions_and_leap_days() {
        assert_eq!(
            rfc("2024-03-01T12:00:00.250+01:00").as_deref(),
            Some("2024-03-01T11:00:00.250Z")
        );
        assert_eq!(rfc("2024-02-29 23:59:59Z").as_deref(), Some("2024-02-29T23:59:59Z"));
        assert_eq!(
            rfc("1969-12-31T23:59:59.5Z").as_deref(),
            Some("1969-12-31T23:59:59.500Z")
        );
        assert_eq!(
            rfc("2000-01-01T00:00:00.123456789123Z").as_deref(),
            Some("2000-01-01T00:00:00.123456789Z")
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_and_day_counts_round_trip_across_centuries() {
        for days in [-719_468, -1, 0, 1, 10_957, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn epoch_numbers_in_every_unit() {
        let secs = |v: Value, unit| epoch(&v, unit).map(|t| t.rfc3339_auto());
        assert_eq!(secs(json!(0), 1_000_000_000).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            secs(json!(1.5), 1_000_000_000).as_deref(),
            Some("1970-01-01T00:00:01.500Z")
        );
        assert_eq!(secs(json!("1000"), 1_000_000).as_deref(), Some("1970-01-01T00:00:01Z"));
        assert_eq!(secs(json!(-1), 1_000_000_000).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(secs(json!(1e300), 1_000_000_000), None);
        assert_eq!(secs(json!("soon"), 1_000_000_000), None);
    }

    #[test]
    fn patterns_read_apache_syslog_like_and_http_dates() {
        let p = |pat: &str, text: &str| parse(pat, text).unwrap().map(|t| t.rfc3339_auto());
        assert_eq!(
            p("%d/%b/%Y:%H:%M:%S %z", "10/Oct/2000:13:55:36 -0700").as_deref(),
            Some("2000-10-10T20:55:36Z")
        );
        assert_eq!(
            p("%a, %d %b %Y %T %Z", "Sun, 06 Nov 1994 08:49:37 GMT").as_deref(),
            Some("1994-11-06T08:49:37Z")
        );
        assert_eq!(
            p("%Y %b %e %T", "2024 Mar  1 10:00:00").as_deref(),
            Some("2024-03-01T10:00:00Z")
        );
        assert_eq!(
            p("%F %T.%f", "2024-03-01 10:00:00.5").as_deref(),
            Some("2024-03-01T10:00:00.500Z")
        );
        assert_eq!(p("%s", "86400").as_deref(), Some("1970-01-02T00:00:00Z"));
        assert_eq!(p("%F", "2024-03-01 trailing"), None);
    }

    fn at(text: &str) -> Time {
        rfc3339(text).unwrap()
    }

    fn bsd(text: &str, now: &str, zone: &str) -> Option<String> {
        rfc3164(text, at(now), &Zone::named(zone).unwrap()).map(|t| t.rfc3339_auto())
    }

    #[test]
    fn rfc3164_years_around_new_year() {
        // Late-December lines read on 1 January are last year's.
        assert_eq!(
            bsd("Dec 31 23:59:59", "2027-01-01T00:00:05Z", "UTC").as_deref(),
            Some("2026-12-31T23:59:59Z")
        );
        assert_eq!(
            bsd("Dec 28 10:00:00", "2027-01-02T00:00:00Z", "UTC").as_deref(),
            Some("2026-12-28T10:00:00Z")
        );
        // Early-January lines read on 1 January are this year's.
        assert_eq!(
            bsd("Jan  1 00:00:01", "2027-01-01T00:00:05Z", "UTC").as_deref(),
            Some("2027-01-01T00:00:01Z")
        );
        // A sender's clock slightly ahead on 31 December: next year, not 364 days ago.
        assert_eq!(
            bsd("Jan  1 00:00:03", "2026-12-31T23:59:58Z", "UTC").as_deref(),
            Some("2027-01-01T00:00:03Z")
        );
        // Within the slack ahead stays this year; beyond it is last year.
        assert_eq!(
            bsd("Jun 16 12:00:00", "2026-06-15T12:00:00Z", "UTC").as_deref(),
            Some("2026-06-16T12:00:00Z")
        );
        assert_eq!(
            bsd("Jun 18 12:00:00", "2026-06-15T12:00:00Z", "UTC").as_deref(),
            Some("2025-06-18T12:00:00Z")
        );
        // 29 February goes to the latest leap year that fits: 2024 read in 2026.
        assert_eq!(bsd("Feb 29 06:00:00", "2026-03-01T00:00:00Z", "UTC").as_deref(), None);
        assert_eq!(
            bsd("Feb 29 06:00:00", "2028-03-01T00:00:00Z", "UTC").as_deref(),
            Some("2028-02-29T06:00:00Z")
        );
        // Day padding, no padding, a fraction, a leap second.
        assert_eq!(
            bsd("Mar  5 01:02:03", "2026-06-01T00:00:00Z", "UTC").as_deref(),
            Some("2026-03-05T01:02:03Z")
        );
        assert_eq!(
            bsd("Mar 5 01:02:03", "2026-06-01T00:00:00Z", "UTC").as_deref(),
            Some("2026-03-05T01:02:03Z")
        );
        assert_eq!(
            bsd("Mar 05 01:02:03.25", "2026-06-01T00:00:00Z", "UTC").as_deref(),
            Some("2026-03-05T01:02:03.250Z")
        );
        assert_eq!(
            bsd("Dec 31 23:59:60", "2027-01-01T00:00:05Z", "UTC").as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        for bad in [
            "Foo  1 00:00:00",
            "Mar 32 00:00:00",
            "Mar  1 24:00:00",
            "Mar  1 0:00:00",
            "Mar  1 00:00:00 x",
            "2026-03-01T00:00:00Z",
        ] {
            assert_eq!(bsd(bad, "2026-06-01T00:00:00Z", "UTC"), None, "{bad}");
        }
    }

    #[test]
    fn rfc3164_in_named_zones_and_offsets() {
        // Paris is +01:00 in winter, +02:00 in summer.
        assert_eq!(
            bsd("Jan 15 12:00:00", "2026-06-01T00:00:00Z", "Europe/Paris").as_deref(),
            Some("2026-01-15T11:00:00Z")
        );
        assert_eq!(
            bsd("Jul 15 12:00:00", "2026-08-01T00:00:00Z", "Europe/Paris").as_deref(),
            Some("2026-07-15T10:00:00Z")
        );
        // New Year in Paris: at 23:30Z on 31 December it is already 1 January
        // 00:30 there, so a line of "Jan  1 00:10" is this (Paris) year's.
        assert_eq!(
            bsd("Jan  1 00:10:00", "2026-12-31T23:30:00Z", "Europe/Paris").as_deref(),
            Some("2026-12-31T23:10:00Z")
        );
        assert_eq!(
            bsd("Dec 31 23:50:00", "2026-12-31T23:30:00Z", "Europe/Paris").as_deref(),
            Some("2026-12-31T22:50:00Z")
        );
        // The hour skipped on 29 March 2026 (02:00 -> 03:00) reads as before
        // the change; the repeated one on 25 October 2026 as its first.
        assert_eq!(
            bsd("Mar 29 02:30:00", "2026-06-01T00:00:00Z", "Europe/Paris").as_deref(),
            Some("2026-03-29T01:30:00Z")
        );
        assert_eq!(
            bsd("Oct 25 02:30:00", "2026-11-01T00:00:00Z", "Europe/Paris").as_deref(),
            Some("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            bsd("Jan 15 12:00:00", "2026-06-01T00:00:00Z", "+05:30").as_deref(),
            Some("2026-01-15T06:30:00Z")
        );
        assert_eq!(
            bsd("Jan 15 12:00:00", "2026-06-01T00:00:00Z", "-0800").as_deref(),
            Some("2026-01-15T20:00:00Z")
        );
        for bad in ["Mars/Olympus", "+25:00", "+02:00x", "paris"] {
            assert!(Zone::named(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_without_an_offset_are_local_to_the_zone() {
        let paris = Zone::named("Europe/Paris").unwrap();
        let now = at("2026-06-01T00:00:00Z");
        let p = |f: &str, t: &str, z: &Zone| parse_in(f, t, z, now).unwrap().map(|t| t.rfc3339_auto());
        assert_eq!(
            p("%F %T", "2026-07-01 12:00:00", &paris).as_deref(),
            Some("2026-07-01T10:00:00Z")
        );
        // An offset in the text wins over the zone.
        assert_eq!(
            p("%F %T %z", "2026-07-01 12:00:00 +00:00", &paris).as_deref(),
            Some("2026-07-01T12:00:00Z")
        );
        assert_eq!(
            p("%F %T %Z", "2026-07-01 12:00:00 UTC", &paris).as_deref(),
            Some("2026-07-01T12:00:00Z")
        );
        assert_eq!(
            p("%F %T", "2026-07-01 12:00:00", &Zone::default()).as_deref(),
            Some("2026-07-01T12:00:00Z")
        );
        assert_eq!(
            p("rfc3164", "Jul  1 12:00:00", &paris).as_deref(),
            Some("2025-07-01T10:00:00Z")
        );
    }
}
