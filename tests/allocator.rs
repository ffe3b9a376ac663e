//! The binary's allocator settings, checked on the real process.
//!
//! `src/main.rs` tells mimalloc never to purge freed memory (hand it back to the OS with
//! `madvise(MADV_DONTNEED)`), by the option's number in mimalloc's C header. A wrong
//! number would set some other option and leave purging on, and nothing in the output
//! would show it; so this test watches the process's system calls with `strace` while
//! the environment asks mimalloc to purge at once (`MIMALLOC_PURGE_DELAY=0`, under which
//! a run of a small fixture purges a dozen times). The program's own setting must win.
//!
//! Requires `strace` and `python3` (`.ci/run` installs them); without them the test
//! fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[test]
fn freed_memory_is_never_purged_even_when_the_environment_asks() {
    // The control: a process that does purge a page, so that the trace is known to
    // show the call this test looks for.
    let purge_a_page =
        "import mmap; m = mmap.mmap(-1, 16384); m[0] = 1; m.madvise(mmap.MADV_DONTNEED)";
    let control = madvise_calls("python3", &["-c", purge_a_page], &[]);
    assert!(
        control.iter().any(|l| l.contains("MADV_DONTNEED")),
        "strace did not show python's MADV_DONTNEED: {control:#?}"
    );
    // No zones: parsing and checking the fixture is allocation enough to purge.
    let calls = madvise_calls(
        env!("CARGO_BIN_EXE_mislint"),
        &[
            "fixtures/iptables/shadowed-ldap.rules",
            "--scenario",
            "exchange2000-smtp",
            "--format",
            "json",
            "--no-config",
        ],
        &[("MIMALLOC_PURGE_DELAY", "0")],
    );
    let purges: Vec<&String> = calls
        .iter()
        .filter(|l| l.contains("MADV_DONTNEED"))
        .collect();
    assert!(purges.is_empty(), "mimalloc purged memory: {purges:#?}");
}

/// The `madvise` calls of `program` run with `args` and `env`, and of its threads, as
/// `strace` prints them. It must exit 0, or 1 (mislint's exit status for findings).
fn madvise_calls(program: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let trace = temp_path("madvise");
    let status = Command::new("strace")
        .args(["-f", "-e", "trace=madvise", "-o"])
        .arg(&trace)
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .status()
        .expect("strace runs (apt-get install strace)");
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "{program} under strace exited with {status}"
    );
    let text = std::fs::read_to_string(&trace).expect("strace wrote its trace");
    let _ = std::fs::remove_file(&trace);
    text.lines()
        .filter(|l| l.contains("madvise("))
        .map(str::to_string)
        .collect()
}

/// A path in the system's temporary directory unique to this test process.
fn temp_path(name: &str) -> PathBuf {
    Path::new(&std::env::temp_dir()).join(format!("mislint-{}-{name}", std::process::id()))
}
