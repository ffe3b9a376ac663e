//! The binary's allocator settings, checked on the real process.
//!
//! `src/main.rs` tells mimalloc never to purge freed memory (hand it back to the OS with
//! `madvise(MADV_DONTNEED)`), by the option's number in mimalloc's C header. A wrong
//! number would set some other option and leave purging on, and nothing in the output
//! would show it; so this test watches the process's system calls with `strace` while
//! the environment asks mimalloc to purge at once (`MIMALLOC_PURGE_DELAY=0`, under which
//! a run of a small fixture purges a dozen times). The program's own setting must win.
//!
//! Requires `strace` (`.ci/run` installs it); without it the test fails.

use std::path::Path;
use std::process::Command;

#[test]
fn freed_memory_is_never_purged_even_when_the_environment_asks() {
    let trace = tempfile_path("mislint-madvise.trace");
    let status = Command::new("strace")
        .args(["-f", "-e", "trace=madvise", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_mislint"))
        .args([
            "fixtures/iptables/shadowed-ldap.rules",
            "--scenario",
            "exchange2000-smtp",
            "--zone",
            "eth0=public",
            "--zone",
            "eth1=perimeter",
            "--zone",
            "eth2=internal",
            "--format",
            "json",
            "--no-config",
        ])
        .env("MIMALLOC_PURGE_DELAY", "0")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("strace runs (apt-get install strace)");
    // Findings exit 1; 2 would be an error of the run itself.
    assert_eq!(status.code(), Some(1), "the lint ran and reported findings");
    let calls = std::fs::read_to_string(&trace).expect("strace wrote its trace");
    let _ = std::fs::remove_file(&trace);
    let madvise: Vec<&str> = calls.lines().filter(|l| l.contains("madvise(")).collect();
    // mimalloc asks for huge pages on its arena with madvise: seeing that call shows
    // the trace does catch madvise in this process.
    assert!(
        madvise.iter().any(|l| l.contains("MADV_HUGEPAGE")),
        "strace saw no madvise at all:\n{calls}"
    );
    let purges: Vec<&&str> = madvise
        .iter()
        .filter(|l| l.contains("MADV_DONTNEED"))
        .collect();
    assert!(purges.is_empty(), "mimalloc purged memory: {purges:#?}");
}

/// A path in the system's temporary directory unique to this test process.
fn tempfile_path(name: &str) -> std::path::PathBuf {
    Path::new(&std::env::temp_dir()).join(format!("{}-{name}", std::process::id()))
}
