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
    let control = madvise_calls(
        Command::new("python3").args([
            "-c",
            "import mmap; m = mmap.mmap(-1, 16384); m[0] = 1; m.madvise(mmap.MADV_DONTNEED)",
        ]),
        "control",
    );
    assert!(
        control.iter().any(|l| l.contains("MADV_DONTNEED")),
        "strace did not show python's MADV_DONTNEED: {control:#?}"
    );
    let mut lint = Command::new(env!("CARGO_BIN_EXE_mislint"));
    lint.args([
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
    .env("MIMALLOC_PURGE_DELAY", "0");
    let calls = madvise_calls(&mut lint, "mislint");
    let purges: Vec<&String> = calls
        .iter()
        .filter(|l| l.contains("MADV_DONTNEED"))
        .collect();
    assert!(purges.is_empty(), "mimalloc purged memory: {purges:#?}");
}

/// The `madvise` calls of `command` and its threads, as `strace` prints them. The
/// command must exit 0, or 1 (mislint's exit status for findings).
fn madvise_calls(command: &mut Command, name: &str) -> Vec<String> {
    let trace = temp_path(&format!("{name}.madvise"));
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = command
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let status = Command::new("strace")
        .args(["-f", "-e", "trace=madvise", "-o"])
        .arg(&trace)
        .arg(program)
        .args(args)
        .envs(envs)
        .stdout(Stdio::null())
        .status()
        .expect("strace runs (apt-get install strace)");
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "{name} under strace exited with {status}"
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
