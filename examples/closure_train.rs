//! A train of plain closures (a closure `FnMut(D) -> Option<D>` is a cog) fed by a supply that runs on immediate events.
//!
//! The supply emits the numbers 1..=N a batch per loop turn, so the loop
//! stays responsive (signals, timers) however large N is; the closures keep
//! the odd squares and add them up. When the supply is exhausted the
//! escapement finishes the train and returns.
//!
//! ```sh
//! cargo run --release --example closure_train -- 1000000
//! ```

use std::cell::Cell;
use std::rc::Rc;

use tourbillon::{named, Cog, Context, Escapement, Fired, Next, Role, Train};

/// Emits `1..=last`, `batch` numbers per turn.
struct Numbers {
    next: u64,
    last: u64,
    batch: u64,
}

impl Cog<u64> for Numbers {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.enqueue(0).expect("a supply may bind at start");
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        let end = (self.next + self.batch).min(self.last + 1);
        for n in self.next..end {
            ctx.emit(n);
        }
        self.next = end;
        if self.next > self.last {
            ctx.exhausted();
        } else if ctx.enqueue(0).is_err() {
            // The escapement is finishing (a signal): stop here.
            ctx.exhausted();
        }
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, n: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(n)
    }
    fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "numbers 1..={} (batch {})", self.last, self.batch)
    }
}

fn main() -> Result<(), tourbillon::Error> {
    let last: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("N is a number"));
    let (sum, count) = (Rc::new(Cell::new(0u128)), Rc::new(Cell::new(0u64)));
    let (s, c) = (Rc::clone(&sum), Rc::clone(&count));

    let mut esc = Escapement::new()?;
    esc.add_train(
        Train::new("odd-squares")
            .cog(Numbers {
                next: 1,
                last,
                batch: 1024,
            })
            .cog(named("odd", |n: u64| (n % 2 == 1).then_some(n)))
            .cog(named("square", |n: u64| Some(n * n)))
            .cog(named("sum", move |n: u64| {
                s.set(s.get() + u128::from(n));
                c.set(c.get() + 1);
                Some(n)
            })),
    );
    eprint!("{}", esc.listing());
    esc.run()?;
    println!("{} odd squares up to {last}², sum {}", count.get(), sum.get());
    Ok(())
}
