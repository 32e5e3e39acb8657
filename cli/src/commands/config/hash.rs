//! `fleetctl config hash FILE`: the SHA256 of the canonical effective form, alone on stdout.
//! Host checks are skipped: the hash says what a file means, wherever it is computed.

use std::path::Path;

use h264_config::Checks;

use super::file::{load, print_error, Config};
use super::{EXIT_INVALID, EXIT_OK};

pub fn run(path: &Path) -> u8 {
    match load(path, Checks::Portable) {
        Ok(Config::Agent(l)) => {
            println!("{}", l.config.canonical_sha256());
            EXIT_OK
        }
        Ok(Config::Fleet(m)) => {
            println!("{}", m.manifest.spec.canonical_sha256());
            EXIT_OK
        }
        Err(e) => {
            print_error(&e);
            EXIT_INVALID
        }
    }
}
