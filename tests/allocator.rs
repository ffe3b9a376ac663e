//! The binary's allocator settings, checked on the real process.
//!
//! `src/main.rs` tells mimalloc never to purge freed memory (hand it back to the OS with
//! `madvise(MADV_DONTNEED)`), by the option's number in mimalloc's C header. A wrong
//! number would set some other option and leave purging on, and nothing in the output
//! would show it; so this test watches the process's system calls with `strace` while
//! the environment asks mimalloc to purge at once (`MIMALLOC_PURGE_DELAY=0`, under which
//! a run of a small fixture purges a dozen times). The program's own setting must win.
//!
//! On a VM whose virtio balloon reports free pages to the host, it also keeps the
//! process off transparent huge pages, unless `MIMALLOC_ALLOW_THP` in the environment
//! decides; the second test watches for that `prctl` call.
//!
//! Requires `strace` and `python3` (`.ci/run` installs them); without them the tests
//! fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[test]
fn freed_memory_is_never_purged_even_when_the_environment_asks() {
    // The control: a process that does purge a page, so that the trace is known to
    // show the call this test looks for.
    let purge_a_page =
        "import mmap; m = mmap.mmap(-1, 16384); m[0] = 1; m.madvise(mmap.MADV_DONTNEED)";
    let control = traced_calls("madvise", "python3", &["-c", purge_a_page], &[]);
    assert!(
        control.iter().any(|l| l.contains("MADV_DONTNEED")),
        "strace did not show python's MADV_DONTNEED: {control:#?}"
    );
    let calls = traced_calls(
        "madvise",
        env!("CARGO_BIN_EXE_mislint"),
        LINT,
        &[("MIMALLOC_PURGE_DELAY", "0")],
    );
    let purges: Vec<&String> = calls
        .iter()
        .filter(|l| l.contains("MADV_DONTNEED"))
        .collect();
    assert!(purges.is_empty(), "mimalloc purged memory: {purges:#?}");
}

#[test]
fn huge_pages_are_turned_off_where_free_memory_goes_back_to_the_host() {
    let disabling = |env: &[(&str, &str)]| -> Vec<String> {
        traced_calls("prctl", env!("CARGO_BIN_EXE_mislint"), LINT, env)
            .into_iter()
            .filter(|l| l.contains("PR_SET_THP_DISABLE, 1"))
            .collect()
    };
    let by_default = disabling(&[]);
    if balloon_reports_free_pages() {
        assert!(
            by_default.len() == 1 && by_default[0].ends_with("= 0"),
            "expected one successful PR_SET_THP_DISABLE: {by_default:#?}"
        );
    } else {
        assert!(
            by_default.is_empty(),
            "huge pages turned off on a machine that keeps its free memory: {by_default:#?}"
        );
    }
    let kept = disabling(&[("MIMALLOC_ALLOW_THP", "1")]);
    assert!(
        kept.is_empty(),
        "huge pages turned off against the environment: {kept:#?}"
    );
}

/// This machine's own answer: some virtio device is the balloon (`0x0005`) and has
/// negotiated feature bit 5, free page reporting (sysfs prints a character per bit).
fn balloon_reports_free_pages() -> bool {
    let Ok(devices) = std::fs::read_dir("/sys/bus/virtio/devices") else {
        return false;
    };
    devices.flatten().any(|d| {
        let file = |name| std::fs::read_to_string(d.path().join(name)).unwrap_or_default();
        file("device").trim() == "0x0005" && file("features").chars().nth(5) == Some('1')
    })
}

/// A lint of a small fixture; no zones: parsing and checking it is allocation enough.
const LINT: &[&str] = &[
    "fixtures/iptables/shadowed-ldap.rules",
    "--scenario",
    "exchange2000-smtp",
    "--format",
    "json",
    "--no-config",
];

/// The `syscall` calls of `program` run with `args` and `env`, and of its threads, as
/// `strace` prints them. It must exit 0, or 1 (mislint's exit status for findings).
fn traced_calls(syscall: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let trace = temp_path(syscall);
    let status = Command::new("strace")
        .args(["-f", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-o")
        .arg(&trace)
        .arg(program)
        .args(args)
        // Only `env` decides: a setting of the caller's must not change what is traced.
        .env_remove("MIMALLOC_ALLOW_THP")
        .env_remove("MIMALLOC_PURGE_DELAY")
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
        .filter(|l| l.contains(&format!("{syscall}(")))
        .map(str::to_string)
        .collect()
}

/// A path in the system's temporary directory unique to this test process.
fn temp_path(name: &str) -> PathBuf {
    Path::new(&std::env::temp_dir()).join(format!("mislint-{}-{name}", std::process::id()))
}
