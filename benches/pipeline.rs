//! Per-stage timings of the pipeline for each dialect at 1k, 10k and 100k rules.
//!
//! The inputs come from `../shared/bench/gen_configs.py --seed 1` and are written once to
//! a scratch directory (`$MISLINT_BENCH_DIR`, default `$TMPDIR/mislint-bench`), never into
//! the repository. Stages, as `mislint::lint_file` runs them:
//!
//! - `parse`: text → vendor AST → lowered [`RuleGraph`] (parsing and graph building are one
//!   call per dialect, `parse::parse`);
//! - `compile`: the graph's rules to packet cubes (`analysis::Model::new`);
//! - `analysis`: the first-match walk of every MIS zone pair (`checks::CheckCx::new`);
//! - `checks`: the policy checks over the walked pairs (`checks::run_all`).
//!
//! Run with `cargo bench --bench pipeline`; `MISLINT_BENCH_SIZES=1000,10000` narrows the
//! sizes. The whole-process comparison with the tokenize floor is `.ci/bench.sh`.

use clap::Parser;
use mislint::analysis::Model;
use mislint::analysis::zones::{ZoneKey, Zoning};
use mislint::checks::{self, CheckCx};
use mislint::cli::Cli;
use mislint::config::Config;
use mislint::graph::{Dialect, RuleGraph};
use mislint::parse;
use mislint::source::{FileId, SourceFile};
use std::path::PathBuf;
use std::process::Command;

const INPUTS: &[&str] = &[
    "iptables-1000",
    "iptables-10000",
    "iptables-100000",
    "asa-1000",
    "asa-10000",
    "asa-100000",
    "pfsense-1000",
    "pfsense-10000",
    "pfsense-100000",
];

/// iptables interface names carry no zone: these are the generator's WAN, LAN and DMZ.
const IPTABLES_ZONES: &[&str] = &["eth0=public", "eth1=internal", "eth2=perimeter"];

fn main() {
    divan::main();
}

fn scratch_dir() -> PathBuf {
    std::env::var_os("MISLINT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mislint-bench"))
}

fn wanted(input: &str) -> bool {
    let Ok(sizes) = std::env::var("MISLINT_BENCH_SIZES") else {
        return true;
    };
    let rules = input.rsplit('-').next().unwrap_or("");
    sizes.split(',').any(|s| s.trim() == rules)
}

/// Reads the generated input, generating it first if it is not there yet.
fn load(input: &str) -> (SourceFile, Dialect) {
    let (format, rules) = input.rsplit_once('-').expect("inputs are FORMAT-RULES");
    let ext = if format == "pfsense" { "xml" } else { "cfg" };
    let dir = scratch_dir();
    let path = dir.join(format!("{format}-{rules}.{ext}"));
    if !path.exists() {
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/bench/gen_configs.py"
        );
        let status = Command::new("python3")
            .args([
                script, "--format", format, "--rules", rules, "--seed", "1", "-o",
            ])
            .arg(&path)
            .status()
            .expect("python3 runs gen_configs.py");
        assert!(status.success(), "gen_configs.py failed for {input}");
    }
    let text = std::fs::read_to_string(&path).expect("generated input is UTF-8");
    let dialect = parse::sniff(&text).expect("generated input is sniffed");
    (SourceFile::new(FileId(0), path, text), dialect)
}

/// The run's configuration, as the command line `mislint FILE --scenario exchange2000-smtp`
/// (plus the iptables zone map) gives it.
fn config_for(file: &SourceFile, dialect: Dialect) -> Config {
    let mut args: Vec<String> = vec!["mislint".into(), file.path.display().to_string()];
    args.extend(["--no-config", "--scenario", "exchange2000-smtp"].map(String::from));
    if dialect == Dialect::Iptables {
        for z in IPTABLES_ZONES {
            args.extend(["--zone".to_string(), (*z).to_string()]);
        }
    }
    Config::from_cli(Cli::parse_from(args)).expect("bench flags are valid")
}

fn graph_of(file: &SourceFile, dialect: Dialect) -> RuleGraph {
    parse::parse(file, dialect)
        .graph
        .expect("generated input gives a graph")
}

/// Interface names the zone map adds to the model, as `check_graph_scoped` computes them.
fn mapped_ifaces(config: &Config) -> Vec<String> {
    config
        .zones
        .iter()
        .filter_map(|m| match &m.key {
            ZoneKey::Iface(n) if !n.ends_with('+') => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[divan::bench(args = INPUTS, sample_count = 10, sample_size = 1)]
fn parse(bencher: divan::Bencher, input: &str) {
    if !wanted(input) {
        return;
    }
    let (file, dialect) = load(input);
    bencher.bench_local(|| parse::parse(&file, dialect));
}

#[divan::bench(args = INPUTS, sample_count = 10, sample_size = 1)]
fn compile(bencher: divan::Bencher, input: &str) {
    if !wanted(input) {
        return;
    }
    let (file, dialect) = load(input);
    let config = config_for(&file, dialect);
    let graph = graph_of(&file, dialect);
    let mapped = mapped_ifaces(&config);
    bencher.bench_local(|| Model::new(&graph, &mapped));
}

#[divan::bench(args = INPUTS, sample_count = 10, sample_size = 1)]
fn analysis(bencher: divan::Bencher, input: &str) {
    if !wanted(input) {
        return;
    }
    let (file, dialect) = load(input);
    let config = config_for(&file, dialect);
    let sites = config.load_sites(&[]).expect("no site files");
    let fc = config.file_config(&sites, &file.path);
    let graph = graph_of(&file, dialect);
    let ifaces = mapped_ifaces(&config);
    let zoning = Zoning::assign(&graph, &fc.zones);
    let flows = fc.policy.active(&fc.settings);
    // A fresh model each time: a model keeps the stages it walked for the pairs (see
    // `Model::prewalk`), so a reused one would time the cached walk.
    bencher
        .with_inputs(|| Model::new(&graph, &ifaces))
        .bench_local_values(|model| {
            CheckCx::new(&file, &model, &zoning, &fc.settings, &fc.hosts, &flows).pairs
        });
}

#[divan::bench(args = INPUTS, sample_count = 10, sample_size = 1)]
fn checks(bencher: divan::Bencher, input: &str) {
    if !wanted(input) {
        return;
    }
    let (file, dialect) = load(input);
    let config = config_for(&file, dialect);
    let sites = config.load_sites(&[]).expect("no site files");
    let fc = config.file_config(&sites, &file.path);
    let graph = graph_of(&file, dialect);
    let model = Model::new(&graph, &mapped_ifaces(&config));
    let zoning = Zoning::assign(&graph, &fc.zones);
    let flows = fc.policy.active(&fc.settings);
    // A fresh context each time: it keeps the chain analysis the hygiene checks share
    // (`CheckCx::reach`), so a reused one would time only the first run's. Building it
    // walks the zone pairs, which is not timed here.
    bencher
        .with_inputs(|| CheckCx::new(&file, &model, &zoning, &fc.settings, &fc.hosts, &flows))
        .bench_local_values(|cx| checks::run_all(&cx));
}
