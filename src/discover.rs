//! From the paths a user gives to the config files to lint, each with its dialect.
//!
//! Directories are walked with walkdir in file-name order, without following symlinks
//! (so a symlink loop cannot trap the walk) and skipping `.git`. Files are recognised by
//! content, not extension; inside a directory, files that are no firewall config are
//! passed over, while a file named explicitly must be one. A file that cannot be read is
//! a [`FileProblem`], and discovery goes on with the rest.

use crate::graph::Dialect;
use crate::parse::sniff;
use crate::source::{FileId, SourceFile};
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// Files larger than this are refused: spans are 32-bit offsets.
pub const MAX_FILE_BYTES: u64 = u32::MAX as u64;

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
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            found
                .problems
                .push(problem(format!("cannot read: {e}"), None));
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
}
