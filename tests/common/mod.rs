//! What the tests that go over every fixture and corpus file share: the files, and the
//! settings a file is checked with.

use clap::Parser;
use mislint::cli::Cli;
use mislint::config::Config;
use mislint::graph::{Dialect, RuleGraph};
use mislint::parse;
use mislint::source::{FileId, SourceFile};
use std::path::{Path, PathBuf};

/// The files one directory level below `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).expect("directory readable") {
        let sub = sub.expect("entry").path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&sub).expect("directory readable") {
            out.push(f.expect("entry").path());
        }
    }
    out.sort();
    out
}

/// A fixture or corpus file that reads as a config of some dialect, with its graph.
pub struct ParsedFile {
    pub path: PathBuf,
    pub dialect: Dialect,
    pub file: SourceFile,
    pub graph: RuleGraph,
}

/// Every file of `fixtures/` and of `../shared/corpus` that reads as a config, parsed
/// one at a time.
pub fn parsed_fixture_and_corpus_files() -> impl Iterator<Item = ParsedFile> {
    fixture_and_corpus_files().into_iter().filter_map(|path| {
        let text = std::fs::read_to_string(&path).ok()?;
        let dialect = parse::sniff(&text)?;
        let file = SourceFile::new(FileId(0), path.clone(), text);
        let graph = parse::parse(&file, dialect).graph?;
        Some(ParsedFile {
            path,
            dialect,
            file,
            graph,
        })
    })
}

/// Every file of `fixtures/` and of `../shared/corpus`.
fn fixture_and_corpus_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = files_under(&root.join("fixtures"));
    files.extend(files_under(&root.join("../shared/corpus")));
    files
}

/// The settings of `mislint --no-config PATH FLAGS…`, with the zones of the iptables
/// fixtures' interfaces for an iptables file (its names carry none).
pub fn config_for(path: &Path, dialect: Dialect, flags: &[&str]) -> Config {
    let mut args = vec!["mislint", "--no-config", path.to_str().expect("UTF-8 path")];
    args.extend(flags);
    if dialect == Dialect::Iptables {
        args.extend(["--zone", "eth0=public", "--zone", "eth1=perimeter"]);
        args.extend(["--zone", "eth2=internal"]);
    }
    Config::from_cli(Cli::parse_from(&args)).expect("valid flags")
}
