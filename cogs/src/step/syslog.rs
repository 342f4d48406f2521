//! Reading syslog lines: [`parse`] detects per line RFC 5424
//! (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD...] MSG`) and RFC 3164
//! (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`), with the variants found in
//! the wild: no `<PRI>` (as rsyslog writes files), an RFC 3339 timestamp
//! in place of `Mmm dd hh:mm:ss` (rsyslog's high-precision file format), a
//! TAG without `[PID]`, no HOST, no TAG.
//!
//! The fields of the object it returns:
//!
//! | field | holds |
//! |---|---|
//! | `priority` | the `<PRI>` number (0 to 191), an integer |
//! | `facility` | its facility by name: `kern`, `user`, `mail`, `daemon`, `auth`, `syslog`, `lpr`, `news`, `uucp`, `cron`, `authpriv`, `ftp`, `ntp`, `security`, `console`, `solaris-cron`, `local0` … `local7` |
//! | `severity` | its severity by name: `emerg`, `alert`, `crit`, `err`, `warning`, `notice`, `info`, `debug` |
//! | `timestamp` | the time as written: RFC 3339 text for RFC 5424 (`2026-11-30T20:13:01.014618+00:00`), `Mmm dd hh:mm:ss` for RFC 3164 (`Nov  1 20:13:01`, no year: the `timestamp` step's format `rfc3164` reads it) |
//! | `host` | the host name |
//! | `app` | RFC 5424 APP-NAME, RFC 3164 TAG (`sshd` of `sshd[42]:`) |
//! | `procid` | RFC 5424 PROCID, RFC 3164 PID (`42` of `sshd[42]:`), as text |
//! | `msgid` | RFC 5424 MSGID |
//! | `structured_data` | RFC 5424 structured data, an object of objects: `[id k="v"]` is `{"id": {"k": "v"}}`; a parameter repeated in one element has an array of its values |
//! | `message` | the message (`""` when there is none); an RFC 5424 message loses its leading byte order mark |
//!
//! A field that the line does not have, or that RFC 5424 gives as `-`
//! (nil), is absent. A line ending with `\n` or `\r\n` is read without it.
//!
//! ```
//! use tourbillon_cogs::step::syslog::parse;
//!
//! let f = parse("<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 [ex@32473 iut=\"3\"] 'su root' failed").unwrap();
//! assert_eq!(f["facility"], "auth");
//! assert_eq!(f["severity"], "crit");
//! assert_eq!(f["structured_data"]["ex@32473"]["iut"], "3");
//! assert_eq!(f["message"], "'su root' failed");
//! let f = parse("Nov 30 20:13:01 vm sshd[42]: Accepted publickey").unwrap();
//! assert_eq!((f["host"].as_str(), f["app"].as_str(), f["procid"].as_str()), (Some("vm"), Some("sshd"), Some("42")));
//! ```

use serde_json::{Map, Value};

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The fields of one syslog line (see the [module docs](self)), or why it
/// is not one.
pub fn parse(line: &str) -> Result<Map<String, Value>, String> {
    let line = line
        .strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line);
    let mut fields = Map::new();
    let rest = match line.strip_prefix('<') {
        Some(after) => {
            let end = after
                .find('>')
                .filter(|&e| e <= 3)
                .ok_or("`<` opens no priority: expected `<` 1 to 3 digits `>`")?;
            let digits = &after[..end];
            let pri: u8 = match digits.parse() {
                Ok(p) if p <= 191 && digits.bytes().all(|b| b.is_ascii_digit()) => p,
                _ => return Err(format!("priority `<{digits}>` is not a number from 0 to 191")),
            };
            fields.insert("priority".into(), pri.into());
            fields.insert("facility".into(), FACILITIES[usize::from(pri / 8)].into());
            fields.insert("severity".into(), SEVERITIES[usize::from(pri % 8)].into());
            &after[end + 1..]
        }
        None => line,
    };
    match rest.strip_prefix("1 ") {
        Some(rest) if fields.contains_key("priority") => rfc5424(rest, &mut fields)?,
        _ => rfc3164(rest, fields.contains_key("priority"), &mut fields)?,
    }
    Ok(fields)
}

/// Splits off the text up to the next space (or the end) and the rest after it.
fn token(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn rfc5424(rest: &str, fields: &mut Map<String, Value>) -> Result<(), String> {
    let mut rest = rest;
    for name in ["timestamp", "host", "app", "procid", "msgid"] {
        let (value, after) = token(rest);
        if value.is_empty() {
            return Err(format!("RFC 5424 header ends before its {name}"));
        }
        if name == "timestamp" && value != "-" && !matches!(crate::time::parse("rfc3339", value), Ok(Some(_))) {
            return Err(format!("RFC 5424 timestamp `{value}` is not RFC 3339"));
        }
        if value != "-" {
            fields.insert(name.into(), value.into());
        }
        rest = after;
    }
    let rest = if rest.is_empty() {
        return Err("RFC 5424 header ends before its structured data".into());
    } else if let Some(after) = rest.strip_prefix('-') {
        after
    } else if rest.starts_with('[') {
        let (sd, after) = structured_data(rest)?;
        fields.insert("structured_data".into(), Value::Object(sd));
        after
    } else {
        return Err(format!(
            "RFC 5424 structured data must be `-` or start with `[`, not `{}`",
            rest.chars().take(20).collect::<String>()
        ));
    };
    let message = match rest.strip_prefix(' ') {
        Some(m) => m.strip_prefix('\u{feff}').unwrap_or(m),
        None if rest.is_empty() => "",
        None => return Err("RFC 5424 structured data must be followed by a space before the message".into()),
    };
    fields.insert("message".into(), message.into());
    Ok(())
}

/// `[id k="v" ...]...`: the elements as an object of objects, and the text after them.
fn structured_data(mut s: &str) -> Result<(Map<String, Value>, &str), String> {
    let mut sd = Map::new();
    while let Some(after) = s.strip_prefix('[') {
        let end = after
            .find([' ', ']'])
            .ok_or("structured data element is not closed by `]`")?;
        let id = &after[..end];
        check_name("SD-ID", id)?;
        if sd.contains_key(id) {
            return Err(format!("structured data element `{id}` appears twice"));
        }
        let mut params = Map::new();
        s = &after[end..];
        loop {
            if let Some(after) = s.strip_prefix(']') {
                s = after;
                break;
            }
            s = s
                .strip_prefix(' ')
                .ok_or_else(|| format!("structured data element `{id}` is not closed by `]`"))?;
            let eq = s
                .find('=')
                .ok_or_else(|| format!("structured data `{id}`: a parameter has no `=`"))?;
            let name = &s[..eq];
            check_name("parameter name", name)?;
            s = s[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| format!("structured data `{id}`: the value of `{name}` is not quoted"))?;
            let (value, after) = quoted(s)
                .ok_or_else(|| format!("structured data `{id}`: the value of `{name}` has no closing `\"`"))?;
            s = after;
            match params.get_mut(name) {
                None => {
                    params.insert(name.into(), Value::String(value));
                }
                Some(Value::Array(values)) => values.push(Value::String(value)),
                Some(first) => *first = Value::Array(vec![first.take(), Value::String(value)]),
            }
        }
        sd.insert(id.into(), Value::Object(params));
    }
    Ok((sd, s))
}

/// An SD-ID or a PARAM-NAME: 1 to 32 printable ASCII characters but `=`, `]`, `"` and space.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "structured data {what} `{name}` is not 1 to 32 printable ASCII characters without `=`, `]`, `\"`"
        ))
    }
}

/// The value up to the closing `"`, unescaping `\"`, `\\` and `\]` (any other
/// backslash is kept, as RFC 5424 says), and the text after the quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.clone().next() {
                Some((_, e @ ('"' | '\\' | ']'))) => {
                    value.push(e);
                    chars.next();
                }
                _ => value.push('\\'),
            },
            c => value.push(c),
        }
    }
    None
}

/// `Mmm dd hh:mm:ss` (the day space-padded or not), at the start of `s`: its length.
fn bsd_time(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 15 || !MONTHS.iter().any(|m| m.as_bytes() == &b[..3]) || b[3] != b' ' {
        return None;
    }
    let day_ok = (b[4] == b' ' || b[4].is_ascii_digit()) && b[5].is_ascii_digit();
    let time = &b[7..15];
    let time_ok = time
        .iter()
        .enumerate()
        .all(|(i, &c)| if i % 3 == 2 { c == b':' } else { c.is_ascii_digit() });
    (day_ok && b[6] == b' ' && time_ok).then_some(15)
}

/// `TAG[PID]:` or `TAG:`: the tag and pid.
fn tag(token: &str) -> Option<(&str, Option<&str>)> {
    let t = token.strip_suffix(':')?;
    let (name, pid) = match t.strip_suffix(']') {
        Some(t) => {
            let open = t.find('[')?;
            (&t[..open], Some(&t[open + 1..]))
        }
        None => (t, None),
    };
    let valid = !name.is_empty() && !name.contains(['[', ']', ':']);
    valid.then_some((name, pid))
}

fn rfc3164(rest: &str, has_pri: bool, fields: &mut Map<String, Value>) -> Result<(), String> {
    let (timestamp, rest) = if let Some(len) = bsd_time(rest) {
        (&rest[..len], &rest[len..])
    } else {
        let (first, _) = token(rest);
        if first.len() >= 19 && matches!(crate::time::parse("rfc3339", first), Ok(Some(_))) {
            (first, &rest[first.len()..])
        } else if has_pri {
            // RFC 3164 4.3.3: a message without a timestamp is all content.
            fields.insert("message".into(), rest.into());
            return Ok(());
        } else {
            return Err(format!(
                "not syslog: no `<PRI>`, and no `Mmm dd hh:mm:ss` or RFC 3339 time at the start of `{}`",
                rest.chars().take(32).collect::<String>()
            ));
        }
    };
    fields.insert("timestamp".into(), timestamp.into());
    let rest = match rest.strip_prefix(' ') {
        Some(r) => r,
        None if rest.is_empty() => "",
        None => return Err(format!("no space after the timestamp `{timestamp}`")),
    };
    let (first, after_first) = token(rest);
    let (host, rest) = match tag(first) {
        // No HOST: the first word is already the tag.
        Some(_) => (None, rest),
        None if first.is_empty() => (None, rest),
        None => (Some(first), after_first),
    };
    if let Some(host) = host {
        fields.insert("host".into(), host.into());
    }
    let (word, after_word) = token(rest);
    let message = match tag(word) {
        Some((app, pid)) => {
            fields.insert("app".into(), app.into());
            if let Some(pid) = pid {
                fields.insert("procid".into(), pid.into());
            }
            after_word
        }
        None => rest,
    };
    fields.insert("message".into(), message.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(line: &str) -> Value {
        Value::Object(parse(line).unwrap_or_else(|e| panic!("{line}: {e}")))
    }

    #[test]
    fn rfc5424_lines_captured_from_logger() {
        // Sent by util-linux logger 2.38.1 over UDP (`logger -d -n 127.0.0.1
        // --rfc5424 -t myapp -i 'hello world'`), as received.
        assert_eq!(
            fields("<13>1 2026-11-30T20:13:01.014618+00:00 vm myapp 31869 - [timeQuality tzKnown=\"1\" isSynced=\"0\"] hello world"),
            json!({
                "priority": 13, "facility": "user", "severity": "notice",
                "timestamp": "2026-11-30T20:13:01.014618+00:00", "host": "vm", "app": "myapp", "procid": "31869",
                "structured_data": {"timeQuality": {"tzKnown": "1", "isSynced": "0"}},
                "message": "hello world"
            })
        );
        // `--sd-id exampleSDID@32473 --sd-param 'iut="3"' --sd-param
        // 'eventSource="App\"li\]cation"' --msgid ID47 -p local4.notice`
        assert_eq!(
            fields(
                r#"<165>1 2026-11-30T20:13:01.021142+00:00 vm root - ID47 [timeQuality tzKnown="1" isSynced="0"][exampleSDID@32473 iut="3" eventSource="App\"li\]cation"] with sd"#
            ),
            json!({
                "priority": 165, "facility": "local4", "severity": "notice",
                "timestamp": "2026-11-30T20:13:01.021142+00:00", "host": "vm", "app": "root", "msgid": "ID47",
                "structured_data": {
                    "timeQuality": {"tzKnown": "1", "isSynced": "0"},
                    "exampleSDID@32473": {"iut": "3", "eventSource": "App\"li]cation"}
                },
                "message": "with sd"
            })
        );
        // `--rfc5424=notq,notime -t a x`: nil timestamp, procid, msgid and SD.
        assert_eq!(
            fields("<13>1 - vm a - - - x"),
            json!({"priority": 13, "facility": "user", "severity": "notice", "host": "vm", "app": "a", "message": "x"})
        );
    }

    #[test]
    fn rfc3164_line_captured_from_logger() {
        // `logger -d -n 127.0.0.1 --rfc3164 -t myapp 'hello 3164'`
        assert_eq!(
            fields("<13>Nov 30 20:13:01 vm myapp: hello 3164"),
            json!({
                "priority": 13, "facility": "user", "severity": "notice",
                "timestamp": "Nov 30 20:13:01", "host": "vm", "app": "myapp", "message": "hello 3164"
            })
        );
    }

    #[test]
    fn rfc5424_structured_data_escapes_bom_and_rfc_examples() {
        let f = fields(
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        );
        assert_eq!(f["host"], "192.0.2.1");
        assert_eq!(f["procid"], "8710");
        assert_eq!(f["message"], "%% It's time to make the do-nuts.");
        assert!(f.get("structured_data").is_none() && f.get("msgid").is_none());
        let f = fields("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]");
        assert_eq!(f["structured_data"]["examplePriority@32473"], json!({"class": "high"}));
        assert_eq!(f["structured_data"]["exampleSDID@32473"]["eventID"], "1011");
        assert_eq!(f["message"], "");
        let f = fields("<34>1 2003-10-11T22:14:15.003Z host su - ID47 [a b=\"back\\\\slash \\\"q\\\" \\] \\n\" b=\"2\"] \u{feff}'su root' failed\n");
        assert_eq!(f["structured_data"]["a"]["b"], json!(["back\\slash \"q\" ] \\n", "2"]));
        assert_eq!(f["message"], "'su root' failed");
        assert_eq!(fields("<0>1 - - - - - -")["facility"], "kern");
        assert_eq!(
            fields("<191>1 - - - - - - m"),
            json!({"priority": 191, "facility": "local7", "severity": "debug", "message": "m"})
        );
    }

    #[test]
    fn rfc3164_variants_without_pri_pid_host_or_tag() {
        // As rsyslog writes /var/log/syslog: no PRI.
        assert_eq!(
            fields("Nov  1 08:05:09 vm sshd[1234]: Accepted publickey for root"),
            json!({"timestamp": "Nov  1 08:05:09", "host": "vm", "app": "sshd", "procid": "1234", "message": "Accepted publickey for root"})
        );
        // No HOST.
        assert_eq!(
            fields("<30>Feb 28 23:59:59 systemd[1]: Started x."),
            json!({"priority": 30, "facility": "daemon", "severity": "info", "timestamp": "Feb 28 23:59:59", "app": "systemd", "procid": "1", "message": "Started x."})
        );
        // A tag without PID, a kernel line.
        assert_eq!(
            fields("Dec 31 23:59:59 vm kernel: [  1.0] Linux version")["message"],
            "[  1.0] Linux version"
        );
        // No tag: all after the host is the message.
        assert_eq!(
            fields("<4>Jan 02 03:04:05 router link down on eth0"),
            json!({"priority": 4, "facility": "kern", "severity": "warning", "timestamp": "Jan 02 03:04:05", "host": "router", "message": "link down on eth0"})
        );
        // rsyslog's high-precision file format.
        assert_eq!(
            fields("2026-11-30T20:13:01.014618+00:00 vm cron[7]: job"),
            json!({"timestamp": "2026-11-30T20:13:01.014618+00:00", "host": "vm", "app": "cron", "procid": "7", "message": "job"})
        );
        // A PRI and nothing else readable: all content (RFC 3164 4.3.3).
        assert_eq!(
            fields("<13>hello"),
            json!({"priority": 13, "facility": "user", "severity": "notice", "message": "hello"})
        );
    }

    #[test]
    fn what_is_not_syslog_is_refused_with_the_reason() {
        for (line, why) in [
            ("hello", "not syslog"),
            ("<192>1 - - - - - -", "0 to 191"),
            ("<1a>x", "0 to 191"),
            ("<13 x", "opens no priority"),
            ("<13>1 2026-13-30T20:13:01Z vm a - - - x", "not RFC 3339"),
            ("<13>1 - vm a -", "ends before its msgid"),
            ("<13>1 - vm a - -", "ends before its structured data"),
            ("<13>1 - vm a - - [x a=\"1\"", "not closed"),
            ("<13>1 - vm a - - [x a=1] m", "not quoted"),
            ("<13>1 - vm a - - [x a=\"1] m", "no closing"),
            ("<13>1 - vm a - - [x a=\"1\"][x b=\"2\"]", "appears twice"),
            ("<13>1 - vm a - - x", "must be `-`"),
            ("<13>1 - vm a - - -x", "followed by a space"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(line in "(<[0-9]{1,3}>)?(1 )?[ -~\\u{feff}é\\[\\]\"=]{0,80}") {
            let _ = parse(&line);
        }

        #[test]
        fn never_panics_on_random_unicode(line in proptest::prelude::any::<String>()) {
            let _ = parse(&line);
        }
    }
}
