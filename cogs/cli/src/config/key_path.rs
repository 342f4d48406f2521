//! Key paths into the configuration (`trains.web.cogs[2].fsync`), as
//! written in errors, `--set` flags and environment variables.

use std::fmt;

/// The environment variables' prefix (followed by `__`).
pub const ENV_PREFIX: &str = "TOURBILLON";

/// A key path: `trains.web.cogs[2].fsync`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(pub(super) Vec<Seg>);

/// One step of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// This path and then `key`.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    /// This path and then position `i` of a list.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// Parses `a.b[2].c`.
    pub fn parse(text: &str) -> Result<KeyPath, String> {
        let mut p = KeyPath::default();
        for part in text.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty() {
                return Err(format!("`{text}` is not a key path (expected section.key, key[2].key)"));
            }
            p.0.push(Seg::Key(name.to_owned()));
            while !rest.is_empty() {
                let close = rest.find(']').ok_or_else(|| format!("`{text}`: `[` without `]`"))?;
                let i = rest[1..close]
                    .parse()
                    .map_err(|_| format!("`{text}`: `{}` is not a list position", &rest[1..close]))?;
                p.0.push(Seg::Index(i));
                rest = &rest[close + 1..];
            }
        }
        Ok(p)
    }

    /// The environment variable that sets this path.
    pub fn env_var(&self) -> String {
        let mut s = String::from(ENV_PREFIX);
        for seg in &self.0 {
            s.push_str("__");
            match seg {
                Seg::Key(k) => s.push_str(&k.to_uppercase()),
                Seg::Index(i) => s.push_str(&i.to_string()),
            }
        }
        s
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_parse_and_print() {
        let p = KeyPath::parse("trains.web.cogs[2].max_line_bytes").unwrap();
        assert_eq!(p.to_string(), "trains.web.cogs[2].max_line_bytes");
        assert_eq!(p.env_var(), "TOURBILLON__TRAINS__WEB__COGS__2__MAX_LINE_BYTES");
        assert!(KeyPath::parse("a..b").is_err());
        assert!(KeyPath::parse("a[x]").is_err());
    }
}
