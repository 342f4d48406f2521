//! The `tourbillon` binary: see `tourbillon --help` and `tourbillon_cli::app`.

fn main() {
    let registry = tourbillon_cli::registry::Registry::standard();
    std::process::exit(tourbillon_cli::app::main(std::env::args_os(), &registry));
}
