//! The `tourbillon` binary: see `tourbillon --help` and `tourbillon_cogs::app`.

fn main() {
    let registry = tourbillon_cogs::registry::Registry::standard();
    std::process::exit(tourbillon_cogs::app::main(std::env::args_os(), &registry));
}
