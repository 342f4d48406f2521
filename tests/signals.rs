//! Signals delivered to the process: their own test binary without the
//! parallel harness (signals are process-wide), and a child process for the
//! case that ends the process.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tourbillon::{Cog, Context, Escapement, Exit, Finish, Fired, Next, Phase, Train};

fn raise(signal: i32) {
    // SAFETY: kill(2) on our own pid has no memory effects.
    unsafe {
        libc::kill(libc::getpid(), signal);
    }
}

/// Holds data until finish, so a graceful finish is visible in its output.
struct Hold {
    held: Vec<u32>,
    out: Arc<Mutex<Vec<u32>>>,
    hangups: Rc<RefCell<u32>>,
}

impl Cog<u32> for Hold {
    fn start<N: Next<u32> + ?Sized>(&mut self, ctx: &mut Context<'_, u32, N>) {
        ctx.on_signal(libc::SIGHUP, 9).unwrap();
        self.held.extend([1, 2, 3]);
    }
    fn fire<N: Next<u32> + ?Sized>(&mut self, key: u64, fired: Fired, _: &mut Context<'_, u32, N>) {
        assert_eq!(key, 9);
        assert!(matches!(fired, Fired::Signal(_, libc::SIGHUP)));
        *self.hangups.borrow_mut() += 1;
    }
    fn process<N: Next<u32> + ?Sized>(&mut self, d: u32, _: &mut Context<'_, u32, N>) {
        self.held.push(d)
    }
    fn finish<N: Next<u32> + ?Sized>(&mut self, _: &mut Context<'_, u32, N>) -> Finish {
        self.out.lock().unwrap().append(&mut self.held);
        Finish::Done
    }
}

fn sigterm_starts_a_graceful_finish() -> Result<(), String> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let hangups = Rc::new(RefCell::new(0));
    let mut esc = Escapement::new().map_err(|e| e.to_string())?;
    esc.add_train(Train::new("hold").cog(Hold {
        held: Vec::new(),
        out: Arc::clone(&out),
        hangups: Rc::clone(&hangups),
    }));
    esc.core()
        .after(Duration::from_millis(10), |_| raise(libc::SIGHUP))
        .unwrap();
    esc.core()
        .after(Duration::from_millis(40), |_| raise(libc::SIGTERM))
        .unwrap();
    let exit = esc.run().map_err(|e| e.to_string())?;
    check(exit == Exit::Clean, format!("exit {exit:?}"))?;
    let flushed = out.lock().unwrap().clone();
    check(flushed == vec![1, 2, 3], format!("flushed {flushed:?}"))?;
    let n = *hangups.borrow();
    check(n == 1, format!("{n} SIGHUPs seen by the cog"))
}

fn first_sigint_finishes_gracefully() -> Result<(), String> {
    let mut esc = Escapement::new().map_err(|e| e.to_string())?;
    let phases = Rc::new(RefCell::new(Vec::new()));
    let p = Rc::clone(&phases);
    esc.core()
        .on_signal(libc::SIGINT, move |core, sig| p.borrow_mut().push((sig, core.phase())))
        .unwrap();
    esc.core()
        .after(Duration::from_millis(10), |_| raise(libc::SIGINT))
        .unwrap();
    esc.run().map_err(|e| e.to_string())?;
    let seen = phases.borrow().clone();
    check(seen == vec![(libc::SIGINT, Phase::Running)], format!("{seen:?}"))
}

fn signal_bindings_can_be_removed() -> Result<(), String> {
    let mut esc = Escapement::builder()
        .graceful_signals(false)
        .build()
        .map_err(|e| e.to_string())?;
    let count = Rc::new(RefCell::new(0));
    let c = Rc::clone(&count);
    let id = esc
        .core()
        .on_signal(libc::SIGUSR1, move |_, _| *c.borrow_mut() += 1)
        .unwrap();
    esc.core()
        .after(Duration::from_millis(10), |_| raise(libc::SIGUSR1))
        .unwrap();
    esc.core()
        .after(Duration::from_millis(30), move |core| {
            core.off_signal(id);
            raise(libc::SIGUSR1);
        })
        .unwrap();
    esc.core()
        .after(Duration::from_millis(60), |core| core.finish())
        .unwrap();
    esc.run().map_err(|e| e.to_string())?;
    let n = *count.borrow();
    check(n == 1, format!("{n} deliveries after off_signal"))
}

/// In the child: a cog that never finishes keeps the loop finishing.
struct Stuck;

impl Cog<u32> for Stuck {
    fn process<N: Next<u32> + ?Sized>(&mut self, d: u32, ctx: &mut Context<'_, u32, N>) {
        ctx.emit(d)
    }
    fn finish<N: Next<u32> + ?Sized>(&mut self, _: &mut Context<'_, u32, N>) -> Finish {
        println!("finishing");
        Finish::Pending
    }
}

fn child() {
    let mut esc = Escapement::new().unwrap();
    esc.add_train(Train::new("stuck").cog(Stuck));
    esc.core()
        .enqueue(|_| {
            println!("ready");
        })
        .unwrap();
    esc.run().unwrap();
    println!("run returned");
}

fn a_second_sigint_exits_at_once() -> Result<(), String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("TOURBILLON_SIGNAL_CHILD", "1")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid = child.id() as i32;
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    check(next() == "ready", "child did not start".into())?;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    check(next() == "finishing", "first SIGINT did not start finish".into())?;
    let start = Instant::now();
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = child.wait().map_err(|e| e.to_string())?;
    check(status.code() == Some(130), format!("child exited with {status:?}"))?;
    check(start.elapsed() < Duration::from_secs(5), "exit took too long".into())
}

fn check(ok: bool, why: String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why)
    }
}

type Test = fn() -> Result<(), String>;

fn main() {
    if std::env::var_os("TOURBILLON_SIGNAL_CHILD").is_some() {
        return child();
    }
    let tests: [(&str, Test); 4] = [
        ("sigterm_starts_a_graceful_finish", sigterm_starts_a_graceful_finish),
        ("first_sigint_finishes_gracefully", first_sigint_finishes_gracefully),
        ("signal_bindings_can_be_removed", signal_bindings_can_be_removed),
        ("a_second_sigint_exits_at_once", a_second_sigint_exits_at_once),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        match test() {
            Ok(()) => println!("test {name} ... ok"),
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }
    println!("\nsignals: {} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
