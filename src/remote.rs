//! The cross-thread handles: [`Remote`] and [`CogRemote`] send into the
//! loop's [inbox](crate::sources), so worker threads (resolver pools,
//! network clients) hand work back into the loop.

use std::any::Any;
use std::fmt;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use mio::Waker;

use crate::core::{Core, Task};
use crate::error::Error;
use crate::sources::inbox::RemoteMsg;
use crate::sources::CogAddr;

impl Core {
    /// A handle other threads use to run work on this loop.
    pub fn remote(&self) -> Remote {
        Remote {
            tx: self.inbox.tx.clone(),
            waker: Arc::clone(&self.inbox.waker),
        }
    }
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
    tx: Sender<RemoteMsg<Task>>,
    waker: Arc<Waker>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Remote")
    }
}

impl Remote {
    fn post(&self, msg: RemoteMsg<Task>) -> Result<(), Error> {
        self.tx.send(msg).map_err(|_| Error::LoopGone)?;
        self.waker.wake().map_err(|source| Error::Io {
            what: "waking the loop".into(),
            source,
        })
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
