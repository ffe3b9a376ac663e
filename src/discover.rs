//! From the paths a user gives to the config files to lint, each with its dialect.
//!
//! Directories are walked with walkdir in file-name order, without following symlinks
//! (so a symlink loop cannot trap the walk) and skipping `.git`. Files are recognised by
//! content, not extension; inside a directory, files that are no firewall config are
//! passed over, while a file named explicitly must be one. A file that cannot be read is
//! a [`FileProblem`], and discovery goes on with the rest. Named pipes and devices
//! (`<(iptables-save)`, a FIFO) are read with a bound on waiting and on size, so a pipe
//! without a writer or `/dev/zero` is a problem too, not a hang.

use crate::graph::Dialect;
use crate::parse::sniff;
use crate::source::{FileId, SourceFile};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use walkdir::WalkDir;

/// Files larger than this are refused: spans are 32-bit offsets.
pub const MAX_FILE_BYTES: u64 = u32::MAX as u64;

/// Pipes and devices have no size to check up front: more than this is refused. A
/// config that large is not a firewall dump, and `/dev/zero` must not fill memory.
pub const MAX_STREAM_BYTES: u64 = 64 << 20;

/// How long opening a pipe may wait for a writer before it is reported.
const PIPE_OPEN_WAIT: Duration = Duration::from_secs(5);

/// A path that could not be linted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The path.
    pub path: PathBuf,
    /// What went wrong, in lowercase words.
    pub message: String,
    /// A byte offset in the file the problem is at (invalid UTF-8), if any.
    pub offset: Option<usize>,
}

/// What discovery found.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Readable configs, in path order, with their dialect.
    pub files: Vec<(SourceFile, Dialect)>,
    /// Paths that could not be used.
    pub problems: Vec<FileProblem>,
    /// Files inside directories that are no firewall config.
    pub skipped: usize,
}

/// Finds and reads the configs under `paths`.
pub fn discover(paths: &[PathBuf]) -> Discovered {
    let mut found = Discovered::default();
    for path in paths {
        if path.is_dir() {
            walk_directory(path, &mut found);
        } else {
            read_config(path, true, &mut found);
        }
    }
    for (i, (file, _)) in found.files.iter_mut().enumerate() {
        file.id = FileId(i as u32);
    }
    found
}

fn walk_directory(root: &Path, found: &mut Discovered) {
    let walker = WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() => read_config(e.path(), false, found),
            Ok(_) => {}
            Err(e) => found.problems.push(FileProblem {
                path: e
                    .path()
                    .map_or_else(|| root.to_path_buf(), Path::to_path_buf),
                message: format!("cannot walk: {e}"),
                offset: None,
            }),
        }
    }
}

/// Reads one file; `explicit` files must be configs, directory members may be anything.
fn read_config(path: &Path, explicit: bool, found: &mut Discovered) {
    let problem = |message: String, offset: Option<usize>| FileProblem {
        path: path.to_path_buf(),
        message,
        offset,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            found
                .problems
                .push(problem(format!("cannot read: {e}"), None));
            return;
        }
    };
    if meta.is_dir() {
        found.problems.push(problem("is a directory".into(), None));
        return;
    }
    if meta.len() > MAX_FILE_BYTES {
        found.problems.push(problem(
            format!("is larger than {MAX_FILE_BYTES} bytes"),
            None,
        ));
        return;
    }
    let read = if meta.is_file() {
        std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
    } else {
        read_stream(path)
    };
    let bytes = match read {
        Ok(b) => b,
        Err(message) => {
            found.problems.push(problem(message, None));
            return;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            if explicit || looks_like_text(e.as_bytes()) {
                let at = e.utf8_error().valid_up_to();
                found.problems.push(problem(
                    format!("is not valid UTF-8 (first bad byte at offset {at})"),
                    Some(at),
                ));
            } else {
                found.skipped += 1;
            }
            return;
        }
    };
    match sniff(&text) {
        Some(dialect) => found
            .files
            .push((SourceFile::new(FileId(0), path, text), dialect)),
        None if explicit => found.problems.push(problem(
            "is not an iptables-save dump, a Cisco ASA config or a pfSense config.xml".into(),
            None,
        )),
        None => found.skipped += 1,
    }
}

/// Reads a named pipe or device given explicitly. Opening a FIFO blocks until a writer
/// comes, which may be never; the open runs in a thread that is left behind if it does
/// not return in time (it ends with the process).
fn read_stream(path: &Path) -> Result<Vec<u8>, String> {
    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::File::open(owned));
    });
    let file = match rx.recv_timeout(PIPE_OPEN_WAIT) {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return Err(format!("cannot read: {e}")),
        Err(_) => {
            return Err(format!(
                "cannot read: no writer opened the pipe within {} seconds",
                PIPE_OPEN_WAIT.as_secs()
            ));
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_STREAM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_STREAM_BYTES {
        return Err(format!(
            "is a pipe or device giving more than {MAX_STREAM_BYTES} bytes"
        ));
    }
    Ok(bytes)
}

/// A directory member with a few bad bytes in otherwise firewall-like text is reported;
/// binaries (NUL bytes early on) are passed over quietly.
fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    !head.contains(&0) && sniff(&String::from_utf8_lossy(head)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mislint-discover-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        dir
    }

    #[test]
    fn walks_directories_by_content_and_skips_git() {
        let dir = scratch("walk");
        std::fs::write(dir.join("b.txt"), "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n").expect("write");
        std::fs::write(dir.join("a.md"), "# notes\n").expect("write");
        std::fs::create_dir_all(dir.join(".git")).expect("mkdir");
        std::fs::write(dir.join(".git/x"), "*filter\nCOMMIT\n").expect("write");
        let found = discover(std::slice::from_ref(&dir));
        assert_eq!(found.files.len(), 1);
        assert_eq!(found.files[0].1, Dialect::Iptables);
        assert_eq!(found.skipped, 1);
        assert!(found.problems.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn explicit_non_config_and_bad_utf8_are_problems() {
        let dir = scratch("explicit");
        let junk = dir.join("junk.txt");
        std::fs::write(&junk, "hello\n").expect("write");
        let bad = dir.join("bad.rules");
        std::fs::write(&bad, b"*filter\n-A FORWARD -j ACCEPT \xff\nCOMMIT\n").expect("write");
        let found = discover(&[junk, bad, dir.join("missing.rules")]);
        assert!(found.files.is_empty());
        assert_eq!(found.problems.len(), 3);
        assert_eq!(found.problems[1].offset, Some(29));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn endless_device_is_a_problem_not_a_memory_hog() {
        let found = discover(&[PathBuf::from("/dev/zero")]);
        assert!(found.files.is_empty());
        assert_eq!(found.problems.len(), 1);
        assert!(
            found.problems[0].message.contains("more than"),
            "{:?}",
            found.problems
        );
    }

    #[test]
    fn fifo_without_writer_is_a_problem_not_a_hang() {
        let dir = scratch("fifo");
        let fifo = dir.join("fw.rules");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo on this machine: nothing to test
        }
        let started = std::time::Instant::now();
        let found = discover(std::slice::from_ref(&fifo));
        assert!(started.elapsed() < PIPE_OPEN_WAIT * 3);
        assert_eq!(found.problems.len(), 1);
        assert!(found.problems[0].message.contains("no writer"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
