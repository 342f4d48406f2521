//! Path patterns: which files the tail follows, and which directories it
//! watches to see new ones appear.
//!
//! A pattern is a path whose components may hold wildcards: `*` (any run of
//! characters but `/`), `?` (one character), `[abc]`, `[a-z]`, `[!a-z]`
//! (one character of, or not of, a set), and `**` as a whole component (any
//! number of directories, none included). `\` makes the next character
//! literal. Matching works on bytes, so any file name can be matched.
//!
//! Expanding a pattern walks the file system from its first component and
//! notes the directories whose entries it looked at: those are the ones to
//! watch, because a new match can only appear as a new entry of one of
//! them. A directory that does not exist yet is stood in for by the deepest
//! ancestor that does.
//!
//! A look that fails for another reason than "not there" (out of file
//! descriptors, permission, I/O error) is noted in
//! [`Expansion::failed`]: it says nothing about what is there.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// One token of a component with wildcards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    Byte(u8),
    /// `*`
    Any,
    /// `?`
    One,
    /// `[...]`: inclusive byte ranges, maybe negated.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

/// One component of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// No wildcard: the name itself.
    Literal(OsString),
    Glob(Vec<Token>),
    /// `**`: any number of directories.
    AnyDirs,
}

impl Part {
    fn parse(component: &[u8]) -> Result<Part, String> {
        if component == b"**" {
            return Ok(Part::AnyDirs);
        }
        let mut tokens = Vec::new();
        let mut wild = false;
        let mut i = 0;
        while i < component.len() {
            let b = component[i];
            i += 1;
            match b {
                b'\\' => match component.get(i) {
                    Some(&next) => {
                        tokens.push(Token::Byte(next));
                        i += 1;
                    }
                    None => return Err("ends with a lone `\\`".into()),
                },
                b'*' => {
                    wild = true;
                    // `**` inside a component is the same as `*`.
                    if tokens.last() != Some(&Token::Any) {
                        tokens.push(Token::Any);
                    }
                }
                b'?' => {
                    wild = true;
                    tokens.push(Token::One);
                }
                b'[' => {
                    wild = true;
                    let (token, used) = parse_class(&component[i..])?;
                    tokens.push(token);
                    i += used;
                }
                _ => tokens.push(Token::Byte(b)),
            }
        }
        if wild {
            Ok(Part::Glob(tokens))
        } else {
            let bytes = tokens
                .into_iter()
                .map(|t| match t {
                    Token::Byte(b) => b,
                    _ => unreachable!("a component without wildcards has only bytes"),
                })
                .collect();
            Ok(Part::Literal(OsString::from_vec(bytes)))
        }
    }

    /// Whether an entry called `name` matches this component.
    fn matches(&self, name: &[u8]) -> bool {
        match self {
            Part::Literal(lit) => lit.as_bytes() == name,
            Part::Glob(tokens) => glob_match(tokens, name),
            Part::AnyDirs => true,
        }
    }
}

/// Parses what follows `[` up to its `]`: the token and the bytes used.
fn parse_class(rest: &[u8]) -> Result<(Token, usize), String> {
    let mut i = 0;
    let negated = matches!(rest.first(), Some(b'!') | Some(b'^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&b) = rest.get(i) else {
            return Err("has a `[` without its `]`".into());
        };
        // A `]` first in the set is a member, as in the shell.
        if b == b']' && !first {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = if b == b'\\' {
            i += 1;
            *rest.get(i).ok_or("has a `[` without its `]`")?
        } else {
            b
        };
        i += 1;
        if rest.get(i) == Some(&b'-') && rest.get(i + 1).is_some_and(|&c| c != b']') {
            let hi = rest[i + 1];
            if hi < lo {
                return Err(format!("has a reversed range `{}-{}`", lo as char, hi as char));
            }
            ranges.push((lo, hi));
            i += 2;
        } else {
            ranges.push((lo, lo));
        }
    }
}

/// Wildcard matching with one backtrack point per `*`: linear in practice.
fn glob_match(tokens: &[Token], name: &[u8]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let ok = match tokens.get(t) {
            Some(Token::Any) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(Token::Byte(b)) => *b == name[n],
            Some(Token::One) => true,
            Some(Token::Class { negated, ranges }) => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&name[n])) != *negated
            }
            None => false,
        };
        if ok {
            t += 1;
            n += 1;
        } else if let Some((st, sn)) = star {
            t = st + 1;
            n = sn + 1;
            star = Some((st, sn + 1));
        } else {
            return false;
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::Any)
}

/// A path pattern; see the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: String,
    /// The directory the pattern starts from (`/` for an absolute pattern).
    base: PathBuf,
    parts: Vec<Part>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What expanding patterns found.
#[derive(Debug, Default)]
pub(crate) struct Expansion {
    /// Every regular file that matched, with the path it matched under.
    pub(crate) files: BTreeSet<PathBuf>,
    /// Directories to watch, each with the components its entries are
    /// matched against (pattern index, part index).
    pub(crate) dirs: BTreeMap<PathBuf, BTreeSet<(usize, usize)>>,
    /// Paths that could not be looked at (listed or stat'ed), with why:
    /// what is under them is unknown, not gone.
    pub(crate) failed: Vec<(PathBuf, io::Error)>,
}

impl Expansion {
    /// Whether `path` is at or under a path that could not be looked at.
    pub(crate) fn covers(&self, path: &Path) -> bool {
        self.failed.iter().any(|(f, _)| path.starts_with(f))
    }

    /// Notes a failed look, unless the error says the path is not there.
    fn look_failed(&mut self, path: &Path, e: io::Error) {
        if !gone(&e) {
            self.failed.push((path.to_path_buf(), e));
        }
    }
}

/// Whether an error says a path is not there (as opposed to: it could not
/// be looked at).
pub(crate) fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

impl Pattern {
    /// Parses `text`; a relative pattern is taken relative to `cwd`.
    pub(crate) fn parse(text: &str, cwd: &Path) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("is empty".into());
        }
        let path = Path::new(text);
        let (base, rest) = if path.is_absolute() {
            (PathBuf::from("/"), path)
        } else {
            (cwd.to_path_buf(), path)
        };
        let mut parts = Vec::new();
        for component in rest.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Prefix(_) => return Err("has a path prefix".into()),
                Component::ParentDir => parts.push(Part::Literal("..".into())),
                Component::Normal(c) => parts.push(Part::parse(c.as_bytes()).map_err(|e| format!("`{text}` {e}"))?),
            }
        }
        match parts.last() {
            None => return Err(format!("`{text}` names no file")),
            Some(Part::AnyDirs) => return Err(format!("`{text}` ends in `**`: name the files after it")),
            Some(_) => {}
        }
        Ok(Pattern {
            text: text.to_owned(),
            base,
            parts,
        })
    }

    /// Whether `path` (absolute) matches the whole pattern.
    pub(crate) fn matches_path(&self, path: &Path) -> bool {
        let rel = match path.strip_prefix(&self.base) {
            Ok(rel) => rel,
            Err(_) => return false,
        };
        let names: Vec<&[u8]> = rel.components().map(|c| c.as_os_str().as_bytes()).collect();
        match_parts(&self.parts, &names)
    }

    /// Whether the entry `name` of a directory could matter to part `part`:
    /// it matches it, or `**` lets anything through.
    pub(crate) fn entry_matters(&self, part: usize, name: &OsStr) -> bool {
        match self.parts.get(part) {
            Some(Part::AnyDirs) => true,
            Some(p) => p.matches(name.as_bytes()),
            None => false,
        }
    }

    /// Adds to `out` what this pattern (index `index`) matches now.
    pub(crate) fn expand(&self, index: usize, out: &mut Expansion) {
        self.walk(index, self.base.clone(), 0, out, 0);
    }

    fn walk(&self, index: usize, dir: PathBuf, part: usize, out: &mut Expansion, depth: usize) {
        // Symlink loops under `**` end here rather than in a stack overflow.
        if depth > 64 {
            return;
        }
        let last = part + 1 == self.parts.len();
        match &self.parts[part] {
            Part::Literal(name) => {
                let path = dir.join(name);
                match fs::metadata(&path) {
                    Ok(m) if last && m.is_file() => {
                        out.dirs.entry(dir).or_default().insert((index, part));
                        out.files.insert(path);
                    }
                    Ok(m) if !last && m.is_dir() => self.walk(index, path, part + 1, out, depth),
                    // Missing, or not what is needed yet: watch for it here.
                    Ok(_) => {
                        out.dirs.entry(dir).or_default().insert((index, part));
                    }
                    Err(e) => {
                        out.dirs.entry(dir).or_default().insert((index, part));
                        out.look_failed(&path, e);
                    }
                }
            }
            Part::Glob(_) => {
                out.dirs.entry(dir.clone()).or_default().insert((index, part));
                for (name, path) in entries(&dir, out) {
                    if !self.parts[part].matches(name.as_bytes()) {
                        continue;
                    }
                    match fs::metadata(&path) {
                        Ok(m) if last && m.is_file() => {
                            out.files.insert(path);
                        }
                        Ok(m) if !last && m.is_dir() => self.walk(index, path, part + 1, out, depth),
                        Ok(_) => {}
                        Err(e) => out.look_failed(&path, e),
                    }
                }
            }
            Part::AnyDirs => {
                out.dirs.entry(dir.clone()).or_default().insert((index, part));
                // None: the rest matches right here.
                self.walk(index, dir.clone(), part + 1, out, depth + 1);
                for (_, path) in entries(&dir, out) {
                    match fs::metadata(&path) {
                        Ok(m) if m.is_dir() => self.walk(index, path, part, out, depth + 1),
                        Ok(_) => {}
                        Err(e) => out.look_failed(&path, e),
                    }
                }
            }
        }
    }
}

/// The entries of `dir`, sorted so expansions are deterministic; a listing
/// that fails (even part way) is noted in `exp`.
fn entries(dir: &Path, exp: &mut Expansion) -> Vec<(OsString, PathBuf)> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) => {
            exp.look_failed(dir, e);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in read {
        match entry {
            Ok(e) => out.push((e.file_name(), e.path())),
            Err(e) => {
                exp.look_failed(dir, e);
                break;
            }
        }
    }
    out.sort();
    out
}

/// Matches path components against pattern parts, `**` taking zero or more.
fn match_parts(parts: &[Part], names: &[&[u8]]) -> bool {
    match parts.split_first() {
        None => names.is_empty(),
        Some((Part::AnyDirs, rest)) => (0..=names.len()).any(|skip| match_parts(rest, &names[skip..])),
        Some((part, rest)) => match names.split_first() {
            Some((name, names)) => part.matches(name) && match_parts(rest, names),
            None => false,
        },
    }
}

/// An exclude pattern: without a `/` it matches file names, with one the
/// whole path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Exclude {
    Name(Part),
    Path(Pattern),
}

impl Exclude {
    pub(crate) fn parse(text: &str, cwd: &Path) -> Result<Exclude, String> {
        if text.contains('/') {
            return Pattern::parse(text, cwd).map(Exclude::Path);
        }
        if text.is_empty() {
            return Err("is empty".into());
        }
        Part::parse(text.as_bytes())
            .map(Exclude::Name)
            .map_err(|e| format!("`{text}` {e}"))
    }

    pub(crate) fn matches(&self, path: &Path) -> bool {
        match self {
            Exclude::Name(part) => path.file_name().is_some_and(|n| part.matches(n.as_bytes())),
            Exclude::Path(pattern) => pattern.matches_path(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(text: &str) -> Pattern {
        Pattern::parse(text, Path::new("/cwd")).unwrap()
    }

    #[test]
    fn wildcards_match_within_one_component() {
        let p = glob("/var/log/app-*.log");
        assert!(p.matches_path(Path::new("/var/log/app-1.log")));
        assert!(p.matches_path(Path::new("/var/log/app-.log")));
        assert!(!p.matches_path(Path::new("/var/log/app-1.log.1")));
        assert!(!p.matches_path(Path::new("/var/log/x/app-1.log")));
    }

    #[test]
    fn classes_ranges_negation_and_escapes() {
        let p = glob("/l/[a-c]?[!0-9]\\*");
        assert!(p.matches_path(Path::new("/l/bxy*")));
        assert!(!p.matches_path(Path::new("/l/dxy*")));
        assert!(!p.matches_path(Path::new("/l/bx1*")));
        assert!(!p.matches_path(Path::new("/l/bxyz")));
    }

    #[test]
    fn double_star_spans_any_number_of_directories() {
        let p = glob("/srv/**/*.log");
        assert!(p.matches_path(Path::new("/srv/a.log")));
        assert!(p.matches_path(Path::new("/srv/x/y/a.log")));
        assert!(!p.matches_path(Path::new("/other/a.log")));
    }

    #[test]
    fn relative_patterns_start_from_the_given_directory() {
        let p = glob("logs/*.log");
        assert!(p.matches_path(Path::new("/cwd/logs/a.log")));
        assert!(!p.matches_path(Path::new("/logs/a.log")));
        assert_eq!(p.to_string(), "logs/*.log");
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let cwd = Path::new("/");
        assert!(Pattern::parse("/a/[bc", cwd).unwrap_err().contains("without its `]`"));
        assert!(Pattern::parse("/a/**", cwd).unwrap_err().contains("ends in `**`"));
        assert!(Pattern::parse("/a/[z-a]", cwd).unwrap_err().contains("reversed range"));
        assert!(Pattern::parse("", cwd).is_err());
    }

    #[test]
    fn excludes_without_a_slash_match_file_names() {
        let cwd = Path::new("/");
        let e = Exclude::parse("*.gz", cwd).unwrap();
        assert!(e.matches(Path::new("/var/log/a.log.2.gz")));
        assert!(!e.matches(Path::new("/var/log/a.log")));
        let e = Exclude::parse("/var/log/old/*", cwd).unwrap();
        assert!(e.matches(Path::new("/var/log/old/a.log")));
        assert!(!e.matches(Path::new("/var/log/a.log")));
    }

    #[test]
    fn expansion_finds_files_and_the_directories_to_watch() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/deep")).unwrap();
        fs::write(root.join("a/x.log"), "").unwrap();
        fs::write(root.join("a/deep/y.log"), "").unwrap();
        fs::write(root.join("a/z.txt"), "").unwrap();
        let p = Pattern::parse(&format!("{}/**/*.log", root.display()), root).unwrap();
        let mut out = Expansion::default();
        p.expand(0, &mut out);
        let files: Vec<_> = out
            .files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().to_owned())
            .collect();
        assert_eq!(files, [PathBuf::from("a/deep/y.log"), PathBuf::from("a/x.log")]);
        assert!(out.dirs.contains_key(&root.join("a/deep")));

        let missing = Pattern::parse(&format!("{}/later/app.log", root.display()), root).unwrap();
        let mut out = Expansion::default();
        missing.expand(1, &mut out);
        assert!(out.files.is_empty());
        assert_eq!(out.dirs.keys().collect::<Vec<_>>(), [&root.to_path_buf()]);
    }

    #[test]
    fn a_path_that_cannot_be_looked_at_is_noted_and_a_missing_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("file"), "").unwrap();
        // A symlink loop: stat fails with ELOOP, whoever runs the test.
        std::os::unix::fs::symlink(root.join("loop"), root.join("loop")).unwrap();
        let mut out = Expansion::default();
        for (i, p) in ["missing/*.log", "file/x.log", "loop/x.log", "loop/*.log"]
            .iter()
            .enumerate()
        {
            Pattern::parse(&format!("{}/{p}", root.display()), root)
                .unwrap()
                .expand(i, &mut out);
        }
        let failed: Vec<&Path> = out.failed.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(failed, [root.join("loop"), root.join("loop")]);
        assert!(out.covers(&root.join("loop/x.log")));
        assert!(!out.covers(&root.join("file")));
        assert!(out.files.is_empty());
    }
}
