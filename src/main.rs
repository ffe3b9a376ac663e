//! The `mislint` command: flags in, exit status out; the work is in the library.

use clap::Parser;
use mislint::Outcome;
use mislint::cli::Cli;
use mislint::config::Config;
use std::io::{self, Write};
use std::process::ExitCode;

/// mimalloc rather than the system allocator: parsing and the cube walk make millions of
/// small, short-lived allocations, and glibc's malloc/free took a third of the run on
/// 100k-rule configs (see docs/performance.md). Its v2 line (the crate's `v2` feature),
/// not v3: v3 committed ~65 MiB of huge pages for a 1k-rule file whose heap peaks at
/// 6 MB, and zeroing them was a third of such a run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option: its place in v2's `mi_option_e` (mimalloc.h), for
/// which the -sys crate names no constant. `tests/allocator.rs` checks that setting it
/// does what is meant.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to hand freed memory back to the OS. By default it does so 10 ms
/// after a free (`madvise(MADV_DONTNEED)`), and a run frees big structures between its
/// stages (a parsed `config.xml`, the walk's piece lists) and allocates as much again
/// right after: the OS then zeroes the same pages a second time. A lint is a short-lived
/// process, so the cost is some peak memory (pfsense-100000: 498 → 443 ms, peak RSS
/// 348 → 382 MiB; see docs/performance.md).
fn keep_freed_memory() {
    // SAFETY: sets one integer in mimalloc's option table, which mimalloc reads when it
    // decides to purge; any value of this option is valid (-1: never purge).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Keeps this process off transparent huge pages on a VM that hands free memory back to
/// its host, unless `MIMALLOC_ALLOW_THP` in the environment decides (mimalloc reads it
/// itself; `=1` keeps them, for comparisons).
///
/// mimalloc asks for huge pages on its whole arena. With free page reporting, the host
/// takes back the guest's large free blocks within seconds, so a huge page is nearly
/// always such a block, and its first touch costs the host hundreds of faults, about
/// 5 ms on this project's 2-core VM. A lint runs once per commit and touches its pages
/// once: single runs 4 s apart took 20–62 ms on the 1k-rule files with huge pages and
/// 14–17 ms without, 715–1145 ms → 428–748 ms on the 100k ones. Back to back, a run
/// finds the blocks the last one freed still there, and huge pages are faster (100k:
/// 263–590 → 380–722 ms); elsewhere (no reporting, bare metal) they stay on. See
/// docs/performance.md.
#[cfg(target_os = "linux")]
fn avoid_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() && free_pages_go_to_host() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and sets one flag of this
        // process, which the kernel reads at each page fault; nothing else changes.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

#[cfg(not(target_os = "linux"))]
fn avoid_huge_pages() {}

/// True if a virtio balloon of this VM reports free pages to the host.
#[cfg(target_os = "linux")]
fn free_pages_go_to_host() -> bool {
    let Ok(devices) = std::fs::read_dir("/sys/bus/virtio/devices") else {
        return false;
    };
    let read = |dir: &std::path::Path, file| std::fs::read_to_string(dir.join(file));
    devices.flatten().any(|d| {
        let dir = d.path();
        read(&dir, "device").is_ok_and(|id| is_balloon(&id))
            && read(&dir, "features").is_ok_and(|f| offers_reporting(&f))
    })
}

/// A virtio device's sysfs `device` file names the balloon (virtio device id 5).
#[cfg(any(target_os = "linux", test))]
fn is_balloon(device: &str) -> bool {
    device.trim() == "0x0005"
}

/// A virtio device's sysfs `features` file, one character per negotiated feature bit
/// from bit 0, has `VIRTIO_BALLOON_F_REPORTING` (bit 5).
#[cfg(any(target_os = "linux", test))]
fn offers_reporting(features: &str) -> bool {
    features.as_bytes().get(5) == Some(&b'1')
}

fn main() -> ExitCode {
    avoid_huge_pages();
    keep_freed_memory();
    // Start the thread pool now: its threads set up (a stack, an allocator heap each)
    // while the flags and the policy are read, instead of when the lint first needs
    // them. 0.2–0.3 ms of a small file's run (see docs/performance.md).
    rayon::spawn(|| {});
    let cli = Cli::parse();
    // Errors render like findings: fixed width, colour only on a terminal.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().width(100).build())
    }));
    let config = match Config::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = mislint::run(&config, &mut out)
        .and_then(|o| out.flush().map(|_| o).map_err(mislint::RunError::from));
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Ok(Outcome::Errors) => ExitCode::from(2),
        // A closed pipe (`mislint … | head`) is not an error worth a message.
        Err(mislint::RunError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balloon_with_free_page_reporting_is_recognised_from_sysfs() {
        // This project's VM: a balloon whose features have bits 1, 2, 5 and 7 set.
        assert!(is_balloon("0x0005\n"));
        assert!(offers_reporting("01100101000000000000000000000000100000\n"));
        // A balloon without reporting, another device, a short or empty file.
        assert!(!offers_reporting(
            "01100001000000000000000000000000100000\n"
        ));
        assert!(!is_balloon("0x0001\n"));
        assert!(!offers_reporting("0110"));
        assert!(!offers_reporting(""));
    }
}
