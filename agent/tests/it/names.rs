//! File names as hostile input (security review L1, L3): a newline in a name cannot forge a
//! log line, and two names that differ only in bytes that are not UTF-8 are two journal rows,
//! both converted.

use crate::common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use common::Setup;
use h264_agent::journal::JobState;
use h264_testkit::fixtures::Fixture;

#[test]
fn a_newline_in_a_file_name_stays_one_log_line() {
    let s = Setup::basic();
    let name = "evil\n2026-01-01T00:00:00.000000Z ERROR h264_agent::job: conversion failed: disk on fire; forged line.ts";
    Fixture::H264Ts.copy_to(&s.input, "short.ts");
    std::fs::rename(s.input.join("short.ts"), s.input.join(name)).unwrap();
    let out = s.run_once();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01T00:00:00")),
        "a forged line:\n{log}"
    );
    assert!(log.contains("evil\\n2026-01-01T00:00:00"), "{log}");
}

#[test]
fn names_that_are_not_utf8_are_keyed_by_their_bytes() {
    let s = Setup::basic();
    Fixture::H264Ts.copy_to(&s.input, "a.ts");
    Fixture::H264Ts.copy_to(&s.input, "b.ts");
    let ff = s.input.join(OsStr::from_bytes(b"nu\xff.ts"));
    let fe = s.input.join(OsStr::from_bytes(b"nu\xfe.ts"));
    std::fs::rename(s.input.join("a.ts"), &ff).unwrap();
    std::fs::rename(s.input.join("b.ts"), &fe).unwrap();
    let out = s.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = s.journal();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert!(
        records.iter().all(|r| r.state == JobState::Succeeded),
        "{records:#?}"
    );
    for name in [&b"nu\xff.mp4"[..], b"nu\xfe.mp4"] {
        assert!(s.output.join(OsStr::from_bytes(name)).exists());
    }
}
