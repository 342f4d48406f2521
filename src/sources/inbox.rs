//! The loop's end of the channel other threads send work through (see
//! [`Remote`](crate::Remote)): woken by a mio `Waker`.

use std::any::Any;
use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use mio::Waker;

use super::CogAddr;

/// What another thread sends: a task `T` for the loop, or a message for a cog.
pub(crate) enum RemoteMsg<T> {
    Task(T),
    Cog {
        addr: CogAddr,
        key: u64,
        msg: Box<dyn Any + Send>,
    },
}

/// The channel, with the waker that makes the loop's poll return.
pub(crate) struct Inbox<T> {
    pub(crate) rx: Receiver<RemoteMsg<T>>,
    /// Cloned into each handle.
    pub(crate) tx: Sender<RemoteMsg<T>>,
    pub(crate) waker: Arc<Waker>,
}

impl<T> Inbox<T> {
    pub(crate) fn new(waker: Waker) -> Self {
        let (tx, rx) = mpsc::channel();
        Inbox {
            rx,
            tx,
            waker: Arc::new(waker),
        }
    }

    /// Makes the loop's poll return.
    pub(crate) fn wake(&self) -> io::Result<()> {
        self.waker.wake()
    }
}
