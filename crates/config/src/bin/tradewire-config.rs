//! `tradewire-config [--config PATH]`: the effective configuration as JSON (what
//! `tradewire config show --json` prints from Python), or the error and exit 2.

use std::path::PathBuf;

fn main() {
    let mut path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--config", Some(p)) => path = Some(PathBuf::from(p)),
            _ => {
                eprintln!("usage: tradewire-config [--config PATH]");
                std::process::exit(2);
            }
        }
    }
    match tradewire_config::Config::load(path.as_deref()) {
        Ok(c) => println!("{}", c.to_json()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
