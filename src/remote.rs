//! The cross-thread handle: a channel plus a mio `Waker`, so worker threads
//! (resolver pools, network clients) hand work back into the loop.

use std::any::Any;
use std::fmt;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use mio::Waker;

use super::CogAddr;
use crate::{Core, Error};

pub(crate) enum RemoteMsg {
    Task(Box<dyn FnOnce(&mut Core) + Send>),
    Cog {
        addr: CogAddr,
        key: u64,
        msg: Box<dyn Any + Send>,
    },
}

/// A `Send + Clone` handle that enqueues work into the loop from any thread.
///
/// ```no_run
/// # fn main() -> Result<(), tourbillon::Error> {
/// let mut esc = tourbillon::Escapement::new()?;
/// let remote = esc.core().remote();
/// std::thread::spawn(move || {
///     remote.send(|core| core.finish()).ok();
/// });
/// esc.run()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Remote {
    tx: Sender<RemoteMsg>,
    waker: Arc<Waker>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Remote")
    }
}

impl Remote {
    pub(crate) fn new(tx: Sender<RemoteMsg>, waker: Arc<Waker>) -> Remote {
        Remote { tx, waker }
    }

    fn post(&self, msg: RemoteMsg) -> Result<(), Error> {
        self.tx.send(msg).map_err(|_| Error::LoopGone)?;
        self.waker.wake().map_err(|source| Error::Io {
            what: "waking the loop".into(),
            source,
        })
    }

    /// Makes the loop's poll return; errors only if the loop is gone.
    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }

    /// Runs `task` on the loop thread at its next turn.
    pub fn send(&self, task: impl FnOnce(&mut Core) + Send + 'static) -> Result<(), Error> {
        self.post(RemoteMsg::Task(Box::new(task)))
    }
}

/// A [`Remote`] aimed at one cog: what it sends arrives in that cog's
/// [`Cog::fire`](crate::Cog::fire) as [`Fired::Message`](crate::Fired::Message)
/// with the key given to [`Context::remote`](crate::Context::remote).
#[derive(Clone, Debug)]
pub struct CogRemote {
    remote: Remote,
    addr: CogAddr,
    key: u64,
}

impl CogRemote {
    pub(crate) fn new(remote: Remote, addr: CogAddr, key: u64) -> CogRemote {
        CogRemote { remote, addr, key }
    }

    /// Hands `msg` to the cog at the loop's next turn.
    pub fn send(&self, msg: impl Any + Send) -> Result<(), Error> {
        self.remote.post(RemoteMsg::Cog {
            addr: self.addr,
            key: self.key,
            msg: Box::new(msg),
        })
    }
}

/// The loop's end of the channel.
pub(crate) struct Inbox {
    pub(crate) rx: Receiver<RemoteMsg>,
    pub(crate) remote: Remote,
}
