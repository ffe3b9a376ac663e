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
/// process, and its peak memory barely changes (pfsense-100000: 498 → 443 ms, peak RSS
/// 348 → 382 MiB; see docs/performance.md).
fn keep_freed_memory() {
    // SAFETY: sets one integer in mimalloc's option table, which mimalloc reads when it
    // decides to purge; any value of this option is valid (-1: never purge).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

fn main() -> ExitCode {
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
