//! Generational slots: a stale event never reaches a reused slot.
//!
//! Every binding (fd, timer, watch, signal, immediate, callback) lives in a
//! [`Slab`] slot. Its [`Key`] carries the slot's generation, bumped each time
//! the slot is freed, so an event or a handle that outlived its binding finds
//! a generation mismatch instead of someone else's callback.

use mio::Token;

/// Index and generation of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

/// Tokens below this value are reserved for the loop's own sources.
pub(crate) const RESERVED_TOKENS: usize = 8;
/// The waker of the cross-thread [`Remote`](crate::Remote) handle.
pub(crate) const WAKER: Token = Token(0);
/// The signal-hook-mio source.
pub(crate) const SIGNALS: Token = Token(1);
/// The one inotify fd of the loop.
pub(crate) const INOTIFY: Token = Token(2);

impl Key {
    /// The mio token for a registered fd: generation in the high half.
    pub(crate) fn token(self) -> Token {
        Token(((self.gen as usize) << 32 | self.index as usize) + RESERVED_TOKENS)
    }

    /// The key a token was made from, if it is not a reserved token.
    pub(crate) fn from_token(token: Token) -> Option<Key> {
        let raw = token.0.checked_sub(RESERVED_TOKENS)?;
        Some(Key {
            index: (raw & 0xffff_ffff) as u32,
            gen: (raw >> 32) as u32,
        })
    }
}

struct Slot<T> {
    gen: u32,
    value: Option<T>,
}

/// A vector of reusable slots addressed by generational [`Key`]s.
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.value = Some(value);
            Key { index, gen: slot.gen }
        } else {
            let index = u32::try_from(self.slots.len()).expect("more than 2^32 bindings");
            self.slots.push(Slot {
                gen: 0,
                value: Some(value),
            });
            Key { index, gen: 0 }
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.gen == key.gen {
            slot.value.as_ref()
        } else {
            None
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.gen == key.gen {
            slot.value.as_mut()
        } else {
            None
        }
    }

    /// Frees the slot and bumps its generation, so `key` goes stale.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.gen != key.gen || slot.value.is_none() {
            return None;
        }
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        slot.value.take()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Keys of the live slots whose value matches `pred`.
    pub(crate) fn keys_where(&self, mut pred: impl FnMut(&T) -> bool) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match &slot.value {
                Some(v) if pred(v) => Some(Key {
                    index: index as u32,
                    gen: slot.gen,
                }),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            slot.value.as_ref().map(|v| {
                (
                    Key {
                        index: index as u32,
                        gen: slot.gen,
                    },
                    v,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_key_misses_reused_slot() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(a.index, b.index);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn token_round_trips_with_generation() {
        let key = Key {
            index: 7,
            gen: 0xdead_beef,
        };
        assert_eq!(Key::from_token(key.token()), Some(key));
        assert_eq!(Key::from_token(WAKER), None);
        assert_eq!(Key::from_token(INOTIFY), None);
    }
}
