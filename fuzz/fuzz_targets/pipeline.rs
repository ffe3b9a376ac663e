//! Fuzz target: the whole per-file pipeline on arbitrary bytes. The dialect is sniffed
//! from the content as discovery does (falling back to the first byte's choice so every
//! input reaches a parser), then parse, zones, analysis and every check with all
//! scenarios active, inline suppressions, and both renderers.
#![no_main]

#[path = "common.rs"]
mod common;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use mislint::cli::Cli;
use mislint::config::{Config, Sites};
use mislint::graph::Dialect;
use std::sync::OnceLock;

/// All scenarios and an interface mapping for each dialect's usual names, so the checks
/// have zones to work on.
fn config() -> &'static (Config, Sites) {
    static CONFIG: OnceLock<(Config, Sites)> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut args = vec!["mislint", "fuzz", "--no-config", "--static-rpc"];
        for s in [
            "exchange2000-smtp",
            "exchange2000-http",
            "exchange2000-browse-ssl",
            "exchange55-browse",
        ] {
            args.extend(["--scenario", s]);
        }
        for z in [
            "eth0=public",
            "eth1=perimeter",
            "eth2=internal",
            "10.0.0.0/8=internal",
        ] {
            args.extend(["--zone", z]);
        }
        let config = Config::from_cli(Cli::parse_from(args)).expect("the fuzz flags are valid");
        (config, Sites::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let mut file = common::source(data, "fuzz.conf");
    let dialect = mislint::parse::sniff(&file.text).unwrap_or(match data.first() {
        Some(b) if b % 3 == 0 => Dialect::Iptables,
        Some(b) if b % 3 == 1 => Dialect::Asa,
        _ => Dialect::Pfsense,
    });
    file.path = "fuzz.conf".into();
    let parsed = mislint::parse::parse(&file, dialect);
    let mut findings = parsed.findings;
    if let Some(graph) = &parsed.graph {
        let (config, sites) = config();
        let fc = config.file_config(sites, &file.path);
        findings.extend(mislint::check_graph(&file, graph, &fc));
        mislint::suppress::apply_inline(&mut findings, graph);
    }
    common::assert_findings(&file, &findings);
    common::render(file, dialect, findings);
});
