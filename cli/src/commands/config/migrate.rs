//! `fleetctl config migrate INI [-o TOML] [--force] [--check]`.

use std::path::Path;

use h264_config::migrate::{check_pair, migrate_file, MigrateError};
use h264_config::Format;

use super::file::print_error;
use super::{EXIT_DRIFT, EXIT_INVALID, EXIT_OK, EXIT_WRITE};

pub fn migrate(ini: &Path, output: &Path, force: bool) -> u8 {
    if let Some(code) = refuse_non_ini(ini) {
        return code;
    }
    let tool = concat!("fleetctl ", env!("CARGO_PKG_VERSION"));
    match migrate_file(ini, output, force, tool) {
        Ok(done) => {
            for w in &done.warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: written from {}; both mean the same (canonical sha256 {})",
                output.display(),
                ini.display(),
                done.manifest.output_sha256
            );
            println!(
                "{}: manifest written; check the pair later with `fleetctl config migrate --check {} -o {}`",
                done.manifest_path.display(),
                ini.display(),
                output.display()
            );
            println!(
                "paths were not checked on this machine: run `fleetctl config validate {}` on the agent's host",
                output.display()
            );
            EXIT_OK
        }
        Err(e) => failed(&e, ini),
    }
}

pub fn check(ini: &Path, output: &Path) -> u8 {
    if let Some(code) = refuse_non_ini(ini) {
        return code;
    }
    match check_pair(ini, output) {
        Ok(checked) => {
            for note in &checked.notes {
                println!("note: {note}");
            }
            if checked.is_equivalent() {
                println!(
                    "{} and {} mean the same (canonical sha256 {})",
                    ini.display(),
                    output.display(),
                    checked.output_sha256
                );
                EXIT_OK
            } else {
                for drift in &checked.drift {
                    println!("drift: {drift}");
                }
                EXIT_DRIFT
            }
        }
        Err(e) => failed(&e, ini),
    }
}

fn refuse_non_ini(ini: &Path) -> Option<u8> {
    (Format::of_path(ini) != Format::Ini).then(|| {
        eprintln!(
            "fleetctl: {} is not a legacy INI file (.ini, .cfg or .conf)",
            ini.display()
        );
        EXIT_INVALID
    })
}

fn failed(e: &MigrateError, ini: &Path) -> u8 {
    match e {
        MigrateError::Invalid(e) => {
            print_error(e);
            EXIT_INVALID
        }
        MigrateError::Io { path, .. } if path == ini => {
            eprintln!("fleetctl: {e}");
            EXIT_INVALID
        }
        MigrateError::Exists { .. } | MigrateError::Io { .. } => {
            eprintln!("fleetctl: {e}");
            EXIT_WRITE
        }
        MigrateError::NotEquivalent { .. } => {
            eprintln!("fleetctl: {e}");
            EXIT_DRIFT
        }
    }
}
