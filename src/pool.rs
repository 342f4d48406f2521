//! Byte buffers handed back for reuse: a drain that wrote a datum's bytes
//! gives the buffer back ([`Context::recycle`](crate::Context::recycle)),
//! and a supply takes one ([`Context::buffer`](crate::Context::buffer))
//! instead of allocating a new one for every line it reads.
//!
//! The pool is bounded, so it can never hold more memory than its caps:
//! at most [`MAX_BUFFERS`] buffers, none over [`MAX_BUFFER_BYTES`] of
//! capacity, [`MAX_POOLED_BYTES`] of capacity in all. A buffer given back
//! past a cap is freed, as it would have been without the pool.

/// The most buffers the pool keeps.
pub const MAX_BUFFERS: usize = 256;
/// The largest buffer (by capacity) the pool keeps: a buffer that grew for
/// one long line is freed rather than held for the short ones.
pub const MAX_BUFFER_BYTES: usize = 64 * 1024;
/// The most capacity, in all, the pool keeps.
pub const MAX_POOLED_BYTES: usize = 1024 * 1024;

/// The buffers given back, ready for reuse.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: Vec<Vec<u8>>,
    /// The capacity of the buffers in `free`, in all.
    bytes: usize,
}

impl BufferPool {
    /// An empty buffer: one given back, or a new one.
    #[inline]
    pub(crate) fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buf) => {
                self.bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// Keeps `buf` for reuse (emptied), unless a cap says to free it.
    #[inline]
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > MAX_BUFFER_BYTES || self.free.len() >= MAX_BUFFERS || self.bytes + cap > MAX_POOLED_BYTES {
            return;
        }
        buf.clear();
        self.bytes += cap;
        self.free.push(buf);
    }

    /// Buffers held, and their capacity in all.
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.free.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty() {
        let mut pool = BufferPool::default();
        let mut buf = Vec::with_capacity(100);
        buf.extend_from_slice(b"a line");
        let at = buf.as_ptr();
        pool.give(buf);
        assert_eq!(pool.held(), (1, 100));
        let again = pool.take();
        assert_eq!((again.as_ptr(), again.len(), again.capacity()), (at, 0, 100));
        assert_eq!(pool.held(), (0, 0));
        assert_eq!(pool.take().capacity(), 0, "empty pool: a new buffer");
    }

    #[test]
    fn the_pool_never_holds_more_than_its_caps() {
        let mut pool = BufferPool::default();
        pool.give(Vec::with_capacity(MAX_BUFFER_BYTES + 1));
        pool.give(Vec::new());
        assert_eq!(pool.held(), (0, 0), "too big, or nothing to keep");
        for _ in 0..MAX_BUFFERS * 2 {
            pool.give(Vec::with_capacity(16));
        }
        assert_eq!(pool.held(), (MAX_BUFFERS, MAX_BUFFERS * 16), "count cap");
        let mut pool = BufferPool::default();
        for _ in 0..MAX_BUFFERS {
            pool.give(Vec::with_capacity(MAX_BUFFER_BYTES));
        }
        let (n, bytes) = pool.held();
        assert_eq!(n, MAX_POOLED_BYTES / MAX_BUFFER_BYTES, "byte cap");
        assert!(bytes <= MAX_POOLED_BYTES);
        // Taking frees room for more.
        pool.take();
        pool.give(Vec::with_capacity(MAX_BUFFER_BYTES));
        assert_eq!(pool.held(), (n, bytes));
    }
}
