//! A JSON object kept as its bytes and an index of its top-level fields,
//! edited in place: what an [`Event`](crate::Event) holds between a lazy
//! decoder and an encoder, so that a job that reads a field or two and adds
//! one never builds the whole [`Value`] tree.
//!
//! [`validate`] accepts exactly the bytes `serde_json::from_slice::<Value>`
//! accepts (the build's serde_json features included: numbers keep their
//! text, so `1e400` and 30-digit integers are accepted), [`Lazy::index`]
//! indexes an object's fields, [`Lazy::get`] reads a field (parsing only
//! that field's value, once), [`Lazy::set`] and [`Lazy::remove`] record
//! edits, and [`Lazy::write`] writes the original bytes with the edits
//! spliced in: key order, spacing and number text are kept.

use std::cell::RefCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use smallvec::SmallVec;

use crate::accessor::Encoded;

/// serde_json's nesting limit: its parser counts down from 128 on each
/// `[` or `{` and fails when the count reaches 0.
const DEPTH: usize = 128;

/// Keys that make serde_json read an object as something else (with the
/// `arbitrary_precision` and `raw_value` features) when they come first.
const MAGIC: [&[u8]; 2] = [b"$serde_json::private::Number", b"$serde_json::private::RawValue"];

/// Why bytes were not indexed: invalid JSON, or JSON this index leaves to
/// serde_json (a value that is not an object, an object serde_json reads
/// specially).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotIndexed {
    /// serde_json rejects the bytes.
    Invalid,
    /// Valid, but not a plain object: parse it with serde_json.
    Other,
}

/// True when `serde_json::from_slice::<Value>(bytes)` succeeds.
pub fn validate(bytes: &[u8]) -> bool {
    match scan(bytes, None) {
        Ok(_) => true,
        Err(NotIndexed::Other) => serde_json::from_slice::<Value>(bytes).is_ok(),
        Err(NotIndexed::Invalid) => false,
    }
}

/// One top-level field: where its key and value are in the bytes.
#[derive(Clone, Copy, Debug)]
struct Field {
    /// The key's text, quotes excluded.
    key: (u32, u32),
    /// The value's text.
    value: (u32, u32),
    /// The key has a `\` escape.
    key_escaped: bool,
    edit: Edit,
}

impl Field {
    fn key_len(&self) -> usize {
        (self.key.1 - self.key.0) as usize
    }
}

/// What became of a field: kept, set (to `Lazy::sets[i]`) or cut.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Edit {
    Keep,
    Set(u32),
    Cut,
}

/// Most events have fewer fields than this: their index lives in the
/// [`Lazy`] itself, with no allocation of its own.
const INLINE_FIELDS: usize = 12;

/// Most lines are shorter than this: their bytes live in the [`Lazy`]
/// itself, one allocation per event for both.
const INLINE_BYTES: usize = 256;

/// A value an edit holds, with its text: shared, so that a cog setting the
/// same value on every event ([`Lazy::set_shared`]) copies a pointer, not
/// the value, and its text is not encoded again.
type Shared = Arc<Encoded>;

/// A JSON object as its bytes, an index of its fields and the edits made
/// to it. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Lazy {
    bytes: SmallVec<[u8; INLINE_BYTES]>,
    fields: SmallVec<[Field; INLINE_FIELDS]>,
    /// A field of the bytes was set or cut (not only fields added).
    edited: bool,
    /// The values of fields set.
    sets: Vec<Shared>,
    /// Keys set that the bytes do not have, in the order they were set.
    added: SmallVec<[(Arc<str>, Shared); 2]>,
    /// The values of the first fields read, parsed once (most jobs read a
    /// field or two); `more` holds the rest.
    parsed: [OnceLock<(u32, Value)>; 2],
    more: OnceLock<Box<[OnceLock<Value>]>>,
    /// The whole value, built on demand.
    tree: OnceLock<Value>,
}

/// The most spare boxes a thread keeps (see [`Lazy::index_pooled`]):
/// an event is usually dropped before the next one is read.
const MAX_SPARES: usize = 32;
/// A box whose bytes, index or edits grew past these is freed, not kept.
const MAX_SPARE_BYTES: usize = 4096;
const MAX_SPARE_FIELDS: usize = 256;

thread_local! {
    // Boxes, not values: a box is what an event holds and what is reused.
    #[allow(clippy::vec_box)]
    static SPARES: RefCell<Vec<Box<Lazy>>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `lazy` for this thread's next event, emptied, unless it holds too
/// much or the thread has enough spares (then it is freed).
fn spare(mut lazy: Box<Lazy>) {
    if lazy.reset() {
        // A thread being torn down frees it.
        let _ = SPARES.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < MAX_SPARES {
                s.push(lazy);
            }
        });
    }
}

/// A boxed [`Lazy`] that goes back to its thread's spares when dropped
/// (see [`Lazy::index_pooled`]).
pub(crate) struct Pooled(ManuallyDrop<Box<Lazy>>);

impl Pooled {
    /// The whole value, taken (the box goes back to the spares).
    pub(crate) fn into_value(mut self) -> Value {
        self.take_value()
    }
}

impl Deref for Pooled {
    type Target = Lazy;
    fn deref(&self) -> &Lazy {
        &self.0
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Lazy {
        &mut self.0
    }
}

impl Clone for Pooled {
    fn clone(&self) -> Pooled {
        Pooled(ManuallyDrop::new(Box::new(Lazy::clone(self))))
    }
}

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lazy::fmt(self, f)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // SAFETY: the box is taken once, here, and `self.0` is not used
        // after it (the `Pooled` is being dropped).
        let lazy = unsafe { ManuallyDrop::take(&mut self.0) };
        spare(lazy);
    }
}

impl PartialEq for Lazy {
    fn eq(&self, other: &Lazy) -> bool {
        self.value() == other.value()
    }
}

impl Lazy {
    /// Indexes `bytes` (surrounding JSON whitespace allowed) if they are
    /// one JSON object as serde_json reads it.
    pub fn index(bytes: &[u8]) -> Result<Lazy, NotIndexed> {
        Lazy::index_boxed(bytes).map(|lazy| *lazy)
    }

    /// [`index`](Self::index), built where it is kept: a `Lazy` is a few
    /// hundred bytes (its index inline), not worth moving per event.
    pub fn index_boxed(bytes: &[u8]) -> Result<Box<Lazy>, NotIndexed> {
        let mut lazy = Box::new(Lazy {
            bytes: SmallVec::new(),
            fields: SmallVec::new(),
            edited: false,
            sets: Vec::new(),
            added: SmallVec::new(),
            parsed: Default::default(),
            more: OnceLock::new(),
            tree: OnceLock::new(),
        });
        lazy.fill(bytes)?;
        Ok(lazy)
    }

    /// [`index_boxed`](Self::index_boxed) into a box this thread had
    /// spare (one a dropped [`Pooled`] gave back), if it has one: a
    /// stream of events reuses a few boxes instead of allocating one each.
    pub(crate) fn index_pooled(bytes: &[u8]) -> Result<Pooled, NotIndexed> {
        let Some(mut lazy) = SPARES.try_with(|s| s.borrow_mut().pop()).ok().flatten() else {
            return Lazy::index_boxed(bytes).map(|b| Pooled(ManuallyDrop::new(b)));
        };
        match lazy.fill(bytes) {
            Ok(()) => Ok(Pooled(ManuallyDrop::new(lazy))),
            Err(e) => {
                spare(lazy);
                Err(e)
            }
        }
    }

    /// Indexes `bytes` into this empty `Lazy` (left empty when they are
    /// not indexed).
    fn fill(&mut self, bytes: &[u8]) -> Result<(), NotIndexed> {
        let start = bytes.iter().position(|&b| !is_ws(b)).unwrap_or(bytes.len());
        let end = bytes.iter().rposition(|&b| !is_ws(b)).map_or(start, |e| e + 1);
        let text = &bytes[start..end];
        if text.first() != Some(&b'{') {
            // Valid or not, serde_json decides.
            return Err(NotIndexed::Other);
        }
        if let Err(e) = scan(text, Some(&mut self.fields)) {
            self.fields.clear();
            return Err(e);
        }
        self.bytes.extend_from_slice(text);
        Ok(())
    }

    /// Empties it for reuse; false when it holds too much to keep.
    fn reset(&mut self) -> bool {
        let fields = [self.fields.capacity(), self.sets.capacity(), self.added.capacity()];
        if self.bytes.capacity() > MAX_SPARE_BYTES || fields.iter().any(|&n| n > MAX_SPARE_FIELDS) {
            return false;
        }
        self.bytes.clear();
        self.fields.clear();
        self.edited = false;
        self.sets.clear();
        self.added.clear();
        self.parsed = Default::default();
        self.more = OnceLock::new();
        self.tree = OnceLock::new();
        true
    }

    fn raw_key(&self, i: usize) -> &[u8] {
        let (start, end) = self.fields[i].key;
        &self.bytes[start as usize..end as usize]
    }

    fn key(&self, i: usize) -> String {
        let raw = self.raw_key(i);
        if self.fields[i].key_escaped {
            unescape(raw)
        } else {
            // Validated UTF-8.
            String::from_utf8_lossy(raw).into_owned()
        }
    }

    fn key_is(&self, i: usize, key: &str) -> bool {
        key_matches(&self.bytes, &self.fields[i], key)
    }

    /// The index of the field serde_json would keep for `key` (the last).
    fn find(&self, key: &str) -> Option<usize> {
        let bytes = &self.bytes[..];
        self.fields.iter().rposition(|f| key_matches(bytes, f, key))
    }

    /// The value of top-level field `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        if let Some((_, v)) = self.added.iter().find(|(k, _)| &**k == key) {
            return Some(v.value());
        }
        let i = self.find(key)?;
        match self.fields[i].edit {
            Edit::Keep => Some(self.parsed(i)),
            Edit::Set(s) => Some(self.sets[s as usize].value()),
            Edit::Cut => None,
        }
    }

    /// The string value of top-level field `key` (`None` if absent or not
    /// a string): a string without escapes is lent from the bytes, with
    /// nothing parsed or allocated.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        if let Some((_, v)) = self.added.iter().find(|(k, _)| &**k == key) {
            return v.value().as_str();
        }
        let i = self.find(key)?;
        match self.fields[i].edit {
            Edit::Keep => {
                let (start, end) = self.fields[i].value;
                let text = &self.bytes[start as usize..end as usize];
                match text {
                    [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
                        Some(std::str::from_utf8(inner).expect("validated UTF-8"))
                    }
                    [b'"', ..] => self.parsed(i).as_str(),
                    _ => None,
                }
            }
            Edit::Set(s) => self.sets[s as usize].value().as_str(),
            Edit::Cut => None,
        }
    }

    /// True when `s` is lent from the bytes.
    #[cfg(test)]
    pub(crate) fn lends(&self, s: &str) -> bool {
        self.bytes.as_ptr_range().contains(&s.as_ptr())
    }

    /// The value of field `i` as the bytes hold it, parsed once.
    fn parsed(&self, i: usize) -> &Value {
        for slot in &self.parsed {
            // An empty slot is taken for field `i`.
            let (at, v) = slot.get_or_init(|| (i as u32, self.parse(i)));
            if *at as usize == i {
                return v;
            }
        }
        let more = self
            .more
            .get_or_init(|| (0..self.fields.len()).map(|_| OnceLock::new()).collect());
        more[i].get_or_init(|| self.parse(i))
    }

    fn parse(&self, i: usize) -> Value {
        let (start, end) = self.fields[i].value;
        let text = &self.bytes[start as usize..end as usize];
        match text[0] {
            b'"' if !text[1..text.len() - 1].contains(&b'\\') => Value::String(
                std::str::from_utf8(&text[1..text.len() - 1])
                    .expect("validated UTF-8")
                    .to_owned(),
            ),
            b't' => Value::Bool(true),
            b'f' => Value::Bool(false),
            b'n' => Value::Null,
            _ => serde_json::from_slice(text).expect("a validated field value parses"),
        }
    }

    /// Sets top-level field `key`: in place if the bytes have it (the last
    /// of its fields, if the key is written more than once: the one
    /// serde_json reads), else added after the last field.
    pub fn set(&mut self, key: &str, value: Value) {
        self.put(key, || Arc::from(key), Arc::new(Encoded::new(value)));
    }

    /// [`set`](Self::set) with a key and a value shared with the caller,
    /// which sets the same ones on every event: no copy of either is made.
    pub fn set_shared(&mut self, key: &Arc<str>, value: &Arc<Encoded>) {
        self.put(key, || Arc::clone(key), Arc::clone(value));
    }

    fn put(&mut self, key: &str, owned: impl FnOnce() -> Arc<str>, value: Shared) {
        self.tree = OnceLock::new();
        if let Some(slot) = self.added.iter_mut().find(|(k, _)| &**k == key) {
            slot.1 = value;
        } else if let Some(i) = self.find(key) {
            self.edited = true;
            match self.fields[i].edit {
                Edit::Set(s) => self.sets[s as usize] = value,
                _ => {
                    self.fields[i].edit = Edit::Set(self.sets.len() as u32);
                    self.sets.push(value);
                }
            }
        } else {
            self.added.push((owned(), value));
        }
    }

    /// Removes top-level field `key` (every field of it, if the key is
    /// written more than once) and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.tree = OnceLock::new();
        if let Some(at) = self.added.iter().position(|(k, _)| &**k == key) {
            return Some(unshare(self.added.remove(at).1));
        }
        let old = self.get(key).cloned();
        for i in 0..self.fields.len() {
            if self.key_is(i, key) {
                self.fields[i].edit = Edit::Cut;
                self.edited = true;
            }
        }
        old
    }

    /// The whole value, built once (bytes parsed, edits applied).
    pub fn value(&self) -> &Value {
        self.tree.get_or_init(|| self.build())
    }

    /// The whole value, taken.
    pub fn into_value(mut self) -> Value {
        self.take_value()
    }

    /// The whole value: the tree if it was built, else built now.
    fn take_value(&mut self) -> Value {
        match self.tree.take() {
            Some(v) => v,
            None => self.build(),
        }
    }

    fn build(&self) -> Value {
        let mut v: Value = serde_json::from_slice(&self.bytes).expect("validated bytes parse");
        let Value::Object(map) = &mut v else {
            unreachable!("only objects are indexed")
        };
        for (i, f) in self.fields.iter().enumerate() {
            match f.edit {
                Edit::Keep => {}
                Edit::Set(s) => {
                    map.insert(self.key(i), self.sets[s as usize].value().clone());
                }
                Edit::Cut => {
                    map.remove(&self.key(i));
                }
            }
        }
        for (k, x) in &self.added {
            map.insert(k.to_string(), x.value().clone());
        }
        v
    }

    /// About how many bytes [`write`](Self::write) writes (enough unless
    /// large values were set).
    pub fn len_hint(&self) -> usize {
        self.bytes.len() + 64
    }

    /// Appends the object's JSON text to `out`: the original bytes with
    /// set values in place of the old ones, removed fields cut with their
    /// comma, and new fields added after the last one (compact, as
    /// `serde_json::to_writer` writes them).
    pub fn write(&self, out: &mut Vec<u8>) {
        let b = &self.bytes[..];
        out.reserve(b.len() + 64);
        let Some(last) = self.fields.last() else {
            out.extend_from_slice(&b[..b.len() - 1]);
            self.write_added(out, false);
            out.push(b'}');
            return;
        };
        let end = last.value.1 as usize;
        if !self.edited {
            // The usual case: the fields as read, new ones after them.
            out.extend_from_slice(&b[..end]);
            self.write_added(out, true);
            out.extend_from_slice(&b[end..]);
            return;
        }
        // Each field's text runs from its key's opening quote to the end of
        // its value; what lies between two fields is their separator.
        let quote = |f: &Field| f.key.0 as usize - 1;
        out.extend_from_slice(&b[..quote(&self.fields[0])]);
        let mut any = false;
        for (i, f) in self.fields.iter().enumerate() {
            if f.edit == Edit::Cut {
                continue;
            }
            if any {
                out.extend_from_slice(&b[self.fields[i - 1].value.1 as usize..quote(f)]);
            }
            any = true;
            match f.edit {
                Edit::Set(s) => {
                    out.extend_from_slice(&b[quote(f)..f.value.0 as usize]);
                    out.extend_from_slice(self.sets[s as usize].text());
                }
                _ => out.extend_from_slice(&b[quote(f)..f.value.1 as usize]),
            }
        }
        self.write_added(out, any);
        out.extend_from_slice(&b[end..]);
    }

    fn write_added(&self, out: &mut Vec<u8>, mut comma: bool) {
        for (k, v) in &self.added {
            if comma {
                out.push(b',');
            }
            comma = true;
            write_str(out, k);
            out.push(b':');
            out.extend_from_slice(v.text());
        }
    }
}

/// Whether field `f` of `bytes` has key `key` (lengths compared first: most
/// keys differ in length, and those are told apart without reading them).
#[inline(always)]
fn key_matches(bytes: &[u8], f: &Field, key: &str) -> bool {
    if f.key_escaped {
        return unescape(&bytes[f.key.0 as usize..f.key.1 as usize]) == key;
    }
    f.key_len() == key.len() && &bytes[f.key.0 as usize..f.key.1 as usize] == key.as_bytes()
}

/// The value, unshared if it can be (else copied).
fn unshare(v: Shared) -> Value {
    Arc::try_unwrap(v).map_or_else(|v| v.value().clone(), Encoded::into_value)
}

/// A JSON string as serde_json writes it: quoted, with `"`, `\` and control
/// characters escaped (the rest as they are).
fn write_str(out: &mut Vec<u8>, s: &str) {
    let plain = {
        let mut words = s.as_bytes().chunks_exact(8);
        let clean = words
            .by_ref()
            .all(|w| stops(u64::from_le_bytes(w.try_into().expect("8 bytes")), false) == 0);
        clean && words.remainder().iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\')
    };
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(out, s);
    }
}

/// The text of a validated JSON string's content with its escapes resolved.
fn unescape(raw: &[u8]) -> String {
    try_unescape(raw).expect("a validated string parses")
}

/// The text of a JSON string's content with its escapes resolved, if it is one.
fn try_unescape(raw: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

/// Scans `bytes` as serde_json would; with `fields`, the top-level value
/// must be an object and its fields are recorded. Returns the span of the
/// top-level value.
fn scan(bytes: &[u8], fields: Option<&mut SmallVec<[Field; INLINE_FIELDS]>>) -> Result<(usize, usize), NotIndexed> {
    if bytes.len() > u32::MAX as usize {
        return Err(NotIndexed::Invalid);
    }
    let mut s = Scanner {
        b: bytes,
        depth: DEPTH,
        non_ascii: false,
    };
    let start = s.ws(0);
    let end = match fields {
        Some(fields) => {
            if s.at(start) != b'{' {
                // Valid or not, serde_json decides.
                return Err(NotIndexed::Other);
            }
            s.object(start, Some(fields))?
        }
        None => s.value(start)?,
    };
    if s.ws(end) != bytes.len() {
        return Err(NotIndexed::Invalid);
    }
    // Outside strings every byte must be ASCII (the grammar saw to that),
    // so checking the whole input once is the same as checking each string.
    if s.non_ascii && std::str::from_utf8(bytes).is_err() {
        return Err(NotIndexed::Invalid);
    }
    Ok((start, end))
}

/// The scan's state. Its methods take the position to scan from and return
/// the position after what they scanned, so that it stays in a register.
struct Scanner<'a> {
    b: &'a [u8],
    depth: usize,
    /// A string had a byte beyond ASCII: the input's UTF-8 is checked at the end.
    non_ascii: bool,
}

/// A position after what was scanned, or why the bytes are not indexed.
type Scanned = Result<usize, NotIndexed>;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is zero (exact for the lowest one
/// set: a borrow only marks bytes above a zero byte).
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGH
}

/// The bytes of `w` (8 bytes of a string) a string scan must stop at: `"`,
/// `\`, a control character, and with `ascii` a byte beyond ASCII. The
/// lowest marked byte is the first such byte.
#[inline(always)]
fn stops(w: u64, ascii: bool) -> u64 {
    let quote = zero_bytes(w ^ (ONES * b'"' as u64));
    let backslash = zero_bytes(w ^ (ONES * b'\\' as u64));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let high = if ascii { w & HIGH } else { 0 };
    quote | backslash | control | high
}

impl Scanner<'_> {
    /// The byte at `i`, or 0 past the end: no JSON token starts with or
    /// goes on at a NUL byte, so the end reads as what is not allowed there.
    #[inline(always)]
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    /// The position of the first byte from `i` that is not whitespace.
    #[inline(always)]
    fn ws(&self, mut i: usize) -> usize {
        // Compact JSON has none: one comparison says so.
        loop {
            let c = self.at(i);
            if c > b' ' || !is_ws(c) {
                return i;
            }
            i += 1;
        }
    }

    #[inline(always)]
    fn word(&self, i: usize, w: &[u8]) -> Scanned {
        match self.b.get(i..i + w.len()) {
            Some(found) if found == w => Ok(i + w.len()),
            _ => Err(NotIndexed::Invalid),
        }
    }

    fn value(&mut self, i: usize) -> Scanned {
        match self.at(i) {
            b'"' => self.string(i).map(|(end, _)| end),
            b'-' | b'0'..=b'9' => self.number(i),
            b'{' => self.object(i, None),
            b'[' => self.array(i),
            b't' => self.word(i, b"true"),
            b'f' => self.word(i, b"false"),
            b'n' => self.word(i, b"null"),
            _ => Err(NotIndexed::Invalid),
        }
    }

    fn descend(&mut self) -> Result<(), NotIndexed> {
        self.depth -= 1;
        if self.depth == 0 {
            return Err(NotIndexed::Invalid);
        }
        Ok(())
    }

    fn array(&mut self, i: usize) -> Scanned {
        self.descend()?;
        let mut i = self.ws(i + 1);
        if self.at(i) == b']' {
            self.depth += 1;
            return Ok(i + 1);
        }
        loop {
            let end = self.value(i)?;
            i = self.ws(end);
            match self.at(i) {
                b',' => i = self.ws(i + 1),
                b']' => {
                    self.depth += 1;
                    return Ok(i + 1);
                }
                _ => return Err(NotIndexed::Invalid),
            }
        }
    }

    fn object(&mut self, i: usize, mut fields: Option<&mut SmallVec<[Field; INLINE_FIELDS]>>) -> Scanned {
        self.descend()?;
        let mut i = self.ws(i + 1);
        if self.at(i) == b'}' {
            self.depth += 1;
            return Ok(i + 1);
        }
        let mut first = true;
        loop {
            if self.at(i) != b'"' {
                return Err(NotIndexed::Invalid);
            }
            let (after_key, key_escaped) = self.string(i)?;
            let key = (i as u32 + 1, after_key as u32 - 1);
            if first {
                first = false;
                let raw = &self.b[key.0 as usize..key.1 as usize];
                let special = if key_escaped {
                    // Not yet checked as UTF-8: bad bytes are bad JSON.
                    let text = try_unescape(raw).ok_or(NotIndexed::Invalid)?;
                    MAGIC.contains(&text.as_bytes())
                } else {
                    MAGIC.contains(&raw)
                };
                if special {
                    return Err(NotIndexed::Other);
                }
            }
            i = self.ws(after_key);
            if self.at(i) != b':' {
                return Err(NotIndexed::Invalid);
            }
            let value_start = self.ws(i + 1);
            // Most values are strings: no call through `value` for them.
            let value_end = match self.at(value_start) {
                b'"' => self.string(value_start)?.0,
                _ => self.value(value_start)?,
            };
            if let Some(fields) = fields.as_deref_mut() {
                fields.push(Field {
                    key,
                    value: (value_start as u32, value_end as u32),
                    key_escaped,
                    edit: Edit::Keep,
                });
            }
            i = self.ws(value_end);
            match self.at(i) {
                b',' => i = self.ws(i + 1),
                b'}' => {
                    self.depth += 1;
                    return Ok(i + 1);
                }
                _ => return Err(NotIndexed::Invalid),
            }
        }
    }

    /// The position of the first byte from `i` a string scan stops at.
    #[inline(always)]
    fn next_stop(&self, mut i: usize) -> Option<usize> {
        let b = self.b;
        let ascii = !self.non_ascii;
        while let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let m = stops(w, ascii);
            if m != 0 {
                return Some(i + (m.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        b[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20 || (ascii && c >= 0x80))
            .map(|n| i + n)
    }

    /// A string from its opening quote at `i`: the position after its
    /// closing quote, and whether it has escapes.
    #[inline(always)]
    fn string(&mut self, i: usize) -> Result<(usize, bool), NotIndexed> {
        let mut i = i + 1;
        let mut escaped = false;
        loop {
            i = self.next_stop(i).ok_or(NotIndexed::Invalid)?;
            match self.at(i) {
                b'"' => return Ok((i + 1, escaped)),
                b'\\' => {
                    escaped = true;
                    i = self.escape(i + 1)?;
                }
                c if c >= 0x80 => {
                    self.non_ascii = true;
                    i += 1;
                }
                _ => return Err(NotIndexed::Invalid),
            }
        }
    }

    /// An escape, from the byte after its `\`.
    fn escape(&self, i: usize) -> Scanned {
        match self.at(i) {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(i + 1),
            b'u' => match self.hex4(i + 1)? {
                0xDC00..=0xDFFF => Err(NotIndexed::Invalid),
                0xD800..=0xDBFF => {
                    // A leading surrogate needs a trailing one at once.
                    if self.at(i + 5) != b'\\' || self.at(i + 6) != b'u' {
                        return Err(NotIndexed::Invalid);
                    }
                    match self.hex4(i + 7)? {
                        0xDC00..=0xDFFF => Ok(i + 11),
                        _ => Err(NotIndexed::Invalid),
                    }
                }
                _ => Ok(i + 5),
            },
            _ => Err(NotIndexed::Invalid),
        }
    }

    /// Four hex digits from `i`.
    fn hex4(&self, i: usize) -> Result<u16, NotIndexed> {
        let digits = self.b.get(i..i + 4).ok_or(NotIndexed::Invalid)?;
        let mut n = 0u16;
        for &d in digits {
            let v = (d as char).to_digit(16).ok_or(NotIndexed::Invalid)?;
            n = n * 16 + v as u16;
        }
        Ok(n)
    }

    /// The position of the first byte from `i` that is not a digit.
    #[inline(always)]
    fn digits(&self, mut i: usize) -> usize {
        while self.at(i).is_ascii_digit() {
            i += 1;
        }
        i
    }

    #[inline(always)]
    fn number(&self, i: usize) -> Scanned {
        let mut i = i + usize::from(self.at(i) == b'-');
        match self.at(i) {
            b'0' => {
                i += 1;
                if self.at(i).is_ascii_digit() {
                    return Err(NotIndexed::Invalid);
                }
            }
            b'1'..=b'9' => i = self.digits(i + 1),
            _ => return Err(NotIndexed::Invalid),
        }
        if self.at(i) == b'.' {
            let end = self.digits(i + 1);
            if end == i + 1 {
                return Err(NotIndexed::Invalid);
            }
            i = end;
        }
        if matches!(self.at(i), b'e' | b'E') {
            i += 1;
            i += usize::from(matches!(self.at(i), b'+' | b'-'));
            let end = self.digits(i);
            if end == i {
                return Err(NotIndexed::Invalid);
            }
            i = end;
        }
        Ok(i)
    }
}

/// A map from a [`Lazy`]'s fields: used by tests to compare with serde_json.
#[cfg(test)]
fn fields_of(l: &Lazy) -> serde_json::Map<String, Value> {
    (0..l.fields.len())
        .filter_map(|i| {
            let k = l.key(i);
            l.get(&k).map(|v| (k, v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn serde_ok(b: &[u8]) -> bool {
        serde_json::from_slice::<Value>(b).is_ok()
    }

    /// Checks every promise against serde_json for one input.
    fn agree(b: &[u8]) {
        let ok = serde_ok(b);
        assert_eq!(
            validate(b),
            ok,
            "validate disagrees with serde_json on {:?}",
            String::from_utf8_lossy(b)
        );
        match Lazy::index(b) {
            Ok(l) => {
                let v: Value = serde_json::from_slice(b).expect("indexed bytes must parse");
                assert_eq!(l.value(), &v, "{:?}", String::from_utf8_lossy(b));
                let Value::Object(map) = &v else {
                    panic!("indexed a non-object")
                };
                assert_eq!(&fields_of(&l), map);
                let mut out = Vec::new();
                l.write(&mut out);
                let trimmed = String::from_utf8_lossy(b);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    trimmed.trim_matches([' ', '\n', '\t', '\r'])
                );
            }
            Err(NotIndexed::Invalid) => assert!(!ok, "index refused valid {:?}", String::from_utf8_lossy(b)),
            Err(NotIndexed::Other) => {
                let v: Option<Value> = serde_json::from_slice(b).ok();
                assert!(
                    !matches!(v, Some(Value::Object(_)))
                        || b.windows(8).any(|w| w == b"$serde_j")
                        || b.contains(&b'\\'),
                    "left a plain object to serde_json: {:?}",
                    String::from_utf8_lossy(b)
                );
            }
        }
    }

    #[test]
    fn edge_cases_agree_with_serde_json() {
        let deep = |n: usize, open: &str, close: &str| format!("{}{}", open.repeat(n), close.repeat(n));
        let mut cases: Vec<Vec<u8>> = [
            "{}",
            " {} ",
            "{ }",
            "\t{\"a\":1}\r\n",
            "{\"a\":1,}",
            "{,}",
            "{\"a\" 1}",
            "{\"a\":}",
            "{a:1}",
            "{\"a\":1}x",
            "{\"a\":1} {}",
            "\u{feff}{}",
            "{\"a\":1e400}",
            "{\"a\":-0}",
            "{\"a\":-0.0e-0}",
            "{\"a\":123456789012345678901234567890}",
            "{\"a\":-123456789012345678901234567890.5}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1e+}",
            "{\"a\":+1}",
            "{\"a\":-}",
            "{\"a\":1E5}",
            "{\"a\":0x1}",
            "{\"a\":NaN}",
            "{\"a\":Infinity}",
            "{\"a\":tru}",
            "{\"a\":nulll}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\\ud800\\udc00\"}",
            "{\"a\":\"\\ud800\\u0041\"}",
            "{\"a\":\"\\ud800\\ud800\\udc00\"}",
            "{\"a\":\"\\ud800x\"}",
            "{\"a\":\"\\uD83D\\uDE00\"}",
            "{\"a\":\"\\u00e9\"}",
            "{\"a\":\"\\u00g9\"}",
            "{\"a\":\"\\u00\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\\"\"}",
            "{\"a\\\"b\":1}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"nl\nhere\"}",
            "{\"a\":\"\u{7f}\"}",
            "{\"a\":\"é\"}",
            "{\"a\":1,\"a\":2}",
            "{\"a\":{\"b\":[1,{\"c\":null}]}}",
            "{\"a\":[1,]}",
            "{\"a\":[,1]}",
            "{\"a\":[]}",
            "{\"$serde_json::private::Number\":\"12\"}",
            "{\"$serde_json::private::Number\":\"x\"}",
            "{\"$serde_json::private::RawValue\":\"[1]\"}",
            "{\"b\":1,\"$serde_json::private::Number\":\"12\"}",
            "{\"a\":{\"$serde_json::private::Number\":\"1.5\"}}",
            "{\"\\u0024serde_json::private::Number\":\"7\"}",
            "",
            " ",
            "42",
            "\"s\"",
            "[1,2]",
            "null",
            "{",
            "}",
            "{\"a\":1",
            "{\"a\":\"x",
            "{\"a\"",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        cases.push(b"{\"a\":\"\xff\"}".to_vec());
        cases.push(b"{\"a\":\"\xc3\"}".to_vec());
        cases.push(b"{\"a\":1}\xff".to_vec());
        cases.push(b"{\"a\":1}\x00".to_vec());
        for n in [126, 127, 128, 129] {
            cases.push(deep(n, "[", "]").into_bytes());
            cases.push(format!("{{\"a\":{}}}", deep(n - 1, "[", "]")).into_bytes());
            cases.push(format!("{}{{}}{}", "{\"a\":".repeat(n - 1), "}".repeat(n - 1)).into_bytes());
        }
        for c in &cases {
            agree(c);
        }
        // The depth cases really straddle the limit.
        assert!(serde_ok(deep(127, "[", "]").as_bytes()));
        assert!(!serde_ok(deep(128, "[", "]").as_bytes()));
        assert!(validate(deep(127, "[", "]").as_bytes()));
        assert!(!validate(deep(128, "[", "]").as_bytes()));
    }

    #[test]
    fn the_word_at_a_time_string_scan_stops_where_serde_json_does() {
        // Each byte a scan must stop at (or must not), at every place of
        // strings shorter and longer than a word, in keys and values.
        let specials: [&[u8]; 10] = [
            b"\"",
            b"\\n",
            b"\\",
            b"\x01",
            b"\x1f",
            b" ",
            b"\x7f",
            "é".as_bytes(),
            b"\xff",
            b"\xc3",
        ];
        for len in 0..20 {
            for at in 0..=len {
                for sp in specials {
                    let mut text = vec![b'a'; len];
                    text.splice(at..at, sp.iter().copied());
                    let mut doc = b"{\"".to_vec();
                    doc.extend_from_slice(&text);
                    doc.extend_from_slice(b"\":\"");
                    doc.extend_from_slice(&text);
                    doc.extend_from_slice(b"\",\"z\":1}");
                    agree(&doc);
                }
            }
        }
    }

    #[test]
    fn numbers_keep_their_text_and_big_ones_stay_exact() {
        let l = Lazy::index(br#"{"big":123456789012345678901234567890,"f":1.50,"e":1e400}"#).unwrap();
        assert_eq!(l.get("big").unwrap().to_string(), "123456789012345678901234567890");
        assert_eq!(l.get("f").unwrap().to_string(), "1.50");
        // serde_json's own number text for it (the bytes keep `1e400`).
        assert_eq!(l.get("e").unwrap().to_string(), "1e+400");
        let mut out = Vec::new();
        l.write(&mut out);
        assert!(out.ends_with(b"\"e\":1e400}"));
    }

    #[test]
    fn edits_are_spliced_into_the_bytes() {
        let src = br#" { "b" : 1.0 , "a":"x\"y", "c":[1, 2] } "#;
        let mut l = Lazy::index(src).unwrap();
        assert_eq!(l.get("a"), Some(&json!("x\"y")));
        let mut out = Vec::new();
        l.write(&mut out);
        assert_eq!(out, br#"{ "b" : 1.0 , "a":"x\"y", "c":[1, 2] }"#);
        l.set("new", json!({"k": "v"}));
        l.set("a", json!(2));
        out.clear();
        l.write(&mut out);
        assert_eq!(out, br#"{ "b" : 1.0 , "a":2, "c":[1, 2],"new":{"k":"v"} }"#);
        assert_eq!(l.remove("b"), Some(json!(1.0)));
        assert_eq!(l.remove("c"), Some(json!([1, 2])));
        out.clear();
        l.write(&mut out);
        assert_eq!(out, br#"{ "a":2,"new":{"k":"v"} }"#);
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), *l.value());
        assert_eq!(l.remove("a"), Some(json!(2)));
        assert_eq!(l.remove("new"), Some(json!({"k": "v"})));
        assert_eq!(l.remove("new"), None);
        out.clear();
        l.write(&mut out);
        assert_eq!(out, b"{  }");
        l.set("z", json!(null));
        out.clear();
        l.write(&mut out);
        assert_eq!(out, br#"{ "z":null }"#);
        let mut empty = Lazy::index(b"{}").unwrap();
        empty.set("k", json!("v"));
        out.clear();
        empty.write(&mut out);
        assert_eq!(out, br#"{"k":"v"}"#);
    }

    #[test]
    fn duplicate_keys_are_read_edited_and_removed_as_serde_json_reads_them() {
        let src = br#"{"a":1,"b":2,"a":3}"#;
        let mut l = Lazy::index(src).unwrap();
        assert_eq!(l.get("a"), Some(&json!(3)));
        l.set("a", json!(4));
        let mut out = Vec::new();
        l.write(&mut out);
        assert_eq!(out, br#"{"a":1,"b":2,"a":4}"#, "the last one is the one read");
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), json!({"a": 4, "b": 2}));
        assert_eq!(l.value(), &json!({"a": 4, "b": 2}));
        assert_eq!(l.remove("a"), Some(json!(4)));
        out.clear();
        l.write(&mut out);
        assert_eq!(out, br#"{"b":2}"#, "every field of the key is cut");
        assert_eq!(l.value(), &json!({"b": 2}));
        let mut escaped = Lazy::index(br#"{"a":1,"\u0061":2,"c":3}"#).unwrap();
        assert_eq!(escaped.get("a"), Some(&json!(2)));
        assert_eq!(escaped.remove("a"), Some(json!(2)));
        out.clear();
        escaped.write(&mut out);
        assert_eq!(out, br#"{"c":3}"#);
    }

    #[test]
    fn a_spare_box_is_reused_and_carries_nothing_over() {
        let mut a = Lazy::index_pooled(br#"{"a":"x","b":2,"c":3,"d":4}"#).unwrap();
        a.set("e", json!(1));
        a.set("b", json!(5));
        assert_eq!(a.remove("a"), Some(json!("x")));
        assert_eq!((a.get("c"), a.get("d")), (Some(&json!(3)), Some(&json!(4))));
        assert_eq!(a.value(), &json!({"b": 5, "c": 3, "d": 4, "e": 1}));
        let at: *const Lazy = &*a;
        drop(a);
        assert_eq!(Lazy::index_pooled(b"{bad").err(), Some(NotIndexed::Invalid));
        assert_eq!(Lazy::index_pooled(b"[1]").err(), Some(NotIndexed::Other));
        let b = Lazy::index_pooled(br#"{"c":"new"}"#).unwrap();
        assert_eq!(&*b as *const Lazy, at, "the spare box is reused");
        assert_eq!((b.get("b"), b.get("e"), b.get("c")), (None, None, Some(&json!("new"))));
        let mut out = Vec::new();
        b.write(&mut out);
        assert_eq!(out, br#"{"c":"new"}"#);
        assert_eq!(b.clone().into_value(), json!({"c": "new"}));
        // A box that grew for a long line is freed, not kept.
        let long = format!(r#"{{"k":"{}"}}"#, "x".repeat(MAX_SPARE_BYTES));
        let c = Lazy::index_pooled(long.as_bytes()).unwrap();
        assert_eq!(c.get_str("k").map(str::len), Some(MAX_SPARE_BYTES));
        let held = || SPARES.with_borrow(Vec::len);
        let before = held();
        drop(c);
        assert_eq!(held(), before, "not kept");
        let mut many = Lazy::index_pooled(b"{}").unwrap();
        for k in 0..=MAX_SPARE_FIELDS {
            many.set(&k.to_string(), json!(k));
        }
        drop(many);
        assert_eq!(held(), before, "too many edits: not kept");
        drop(b);
        assert_eq!(held(), before + 1, "kept");
    }

    #[test]
    fn strings_are_lent_from_the_bytes_unless_escaped_or_edited() {
        let src = br#"{"a":"plain","b":"t\u00e9\n","c":1,"d":"x","e":"y"}"#;
        let mut l = Lazy::index(src).unwrap();
        let plain = l.get_str("a").unwrap();
        assert_eq!(plain, "plain");
        assert!(l.lends(plain), "lent from the bytes");
        assert_eq!(l.get_str("b"), Some("t\u{e9}\n"), "unescaped");
        assert_eq!((l.get_str("c"), l.get_str("zz")), (None, None), "not a string, absent");
        l.set("d", json!("set"));
        l.set("e", json!(2));
        l.set("f", json!("added"));
        assert!(l.remove("a").is_some());
        assert_eq!((l.get_str("d"), l.get_str("e")), (Some("set"), None));
        assert_eq!((l.get_str("f"), l.get_str("a")), (Some("added"), None));
    }

    /// JSON-ish bytes: valid documents, then mutated (a byte changed,
    /// inserted or removed) so that many are invalid in interesting places.
    fn jsonish() -> impl Strategy<Value = Vec<u8>> {
        let atom = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,4})?",
            "\"([a-z \\\\\"/]|\\\\[\"\\\\/bfnrtu]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-f]{2}\\\\u[dD][c-fC-F][0-9a-f]{2}|é|\t)*\"",
        ];
        let value = atom.prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("\"[a-c\\\\\"]{0,3}\"", inner), 0..5).prop_map(|v| {
                    let parts: Vec<String> = v.into_iter().map(|(k, x)| format!("{k} : {x}")).collect();
                    format!("{{ {} }}", parts.join(", "))
                }),
            ]
        });
        let object = prop::collection::vec(("\"[a-c\\\\$]{0,3}\"", value), 0..6).prop_map(|v| {
            let parts: Vec<String> = v.into_iter().map(|(k, x)| format!("{k}:{x}")).collect();
            format!(" {{{}}}\n", parts.join(","))
        });
        let mutation = prop_oneof![
            Just(None),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Some((0u8, i, b))),
            (
                any::<prop::sample::Index>(),
                prop::sample::select(b"{}[]\",:\\ .-eE0u\xff\x01".to_vec())
            )
                .prop_map(|(i, b)| Some((1u8, i, b))),
            any::<prop::sample::Index>().prop_map(|i| Some((2u8, i, 0))),
        ];
        (object, mutation).prop_map(|(text, m)| {
            let mut b = text.into_bytes();
            if let Some((kind, i, byte)) = m {
                let at = i.index(b.len());
                match kind {
                    0 => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ => {
                        b.remove(at);
                    }
                }
            }
            b
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

        #[test]
        fn validator_and_index_agree_with_serde_json(b in jsonish()) {
            agree(&b);
        }

        #[test]
        fn edits_write_what_the_tree_would_hold(
            b in jsonish(),
            sets in prop::collection::vec(("[a-c]{1,2}", prop::option::of(0i64..5)), 0..4),
        ) {
            if let Ok(mut l) = Lazy::index(&b) {
                let mut tree: Value = serde_json::from_slice(&b).unwrap();
                for (k, v) in sets {
                    let map = tree.as_object_mut().unwrap();
                    match v {
                        Some(v) => {
                            l.set(&k, json!(v));
                            map.insert(k, json!(v));
                        }
                        None => {
                            let old = map.remove(&k);
                            prop_assert_eq!(l.remove(&k), old);
                        }
                    }
                }
                let keys = tree.as_object().unwrap().keys().cloned().chain(["a", "b", "zz"].map(String::from));
                for k in keys {
                    prop_assert_eq!(l.get_str(&k), tree.get(&k).and_then(Value::as_str), "key {:?}", k);
                }
                let mut out = Vec::new();
                l.write(&mut out);
                prop_assert_eq!(&serde_json::from_slice::<Value>(&out).unwrap(), &tree);
                prop_assert_eq!(l.value(), &tree);
                prop_assert_eq!(l.into_value(), tree);
            }
        }
    }
}
