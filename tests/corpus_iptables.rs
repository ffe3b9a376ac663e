//! Real-world corpus for the iptables parser: every dump in `../shared/corpus/iptables/`
//! must give a graph without parse errors (or the per-file expectation below), and the
//! netfilter project's own extension tests (`iptables-extension-tests/*.t`) must agree
//! with iptables on every line of the modules mislint models.

use mislint::graph::RuleGraph;
use mislint::parse::{PARSE_ERROR, Parsed, iptables};
use mislint::report::finding::Finding;
use mislint::source::{FileId, SourceFile};
use std::path::{Path, PathBuf};

fn corpus_dir(sub: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")).join(sub)
}

fn files_in(dir: &Path, ext: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus dir {} unreadable: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| ext.contains(&x))
        })
        .collect();
    files.sort();
    files
}

fn parse_text(name: &str, text: &str) -> Parsed {
    iptables::parse(&SourceFile::new(FileId(0), name, text))
}

fn errors(p: &Parsed) -> Vec<&Finding> {
    p.findings
        .iter()
        .filter(|f| f.rule == PARSE_ERROR)
        .collect()
}

/// Corpus files that iptables-restore itself refuses, with the number of parse errors
/// we expect and why.
const INVALID: &[(&str, usize, &str)] = &[
    (
        "aerleon-multiport-ranges-fragment.rules",
        4,
        "a fragment without `*table`: every `-P`/`-N`/`-A` line comes before any table",
    ),
    (
        "fwbuilder-importer-ipt-commented.save",
        16,
        "an importer test, not a dump: 16 rules append to `scan_checks_chain`, which is never declared",
    ),
    (
        "iptsem-parser-stress.save",
        1,
        "a parser torture test with the made-up option `--something-else`",
    ),
    (
        "istio-capture-tproxy-pseudo-save.golden",
        4,
        "not a dump: four stray `iptables-save`/`ip6tables-save` command lines",
    ),
];

#[test]
fn every_corpus_dump_parses() {
    let files = files_in(
        &corpus_dir("iptables"),
        &["save", "rules", "dump", "golden"],
    );
    assert!(
        files.len() >= 28,
        "corpus is missing files: {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let text = std::fs::read_to_string(path).expect("corpus files are UTF-8");
        let parsed = parse_text(name, &text);
        let graph: &RuleGraph = parsed.graph.as_ref().expect("a graph for every dump");
        let errs = errors(&parsed);
        let notes = parsed.findings.len() - errs.len();
        println!(
            "{name}: {} chains, {} rules, {} stages, {} parse errors, {} other findings",
            graph.chains.len(),
            graph.rules().count(),
            graph.stages.len(),
            errs.len(),
            notes
        );
        for f in &parsed.findings {
            let at = &text[f.primary.span.start as usize..f.primary.span.end as usize];
            println!(
                "    {} {}: {} [{}]",
                f.rule,
                f.severity.name(),
                f.message,
                at
            );
        }
        let expected = INVALID
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or(0, |(_, n, _)| *n);
        if errs.len() != expected {
            failures.push(format!(
                "{name}: {} parse errors, expected {expected}",
                errs.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// One line of a netfilter `.t` file.
struct Case {
    file: String,
    table: String,
    chain: String,
    rule: String,
    ok: bool,
}

fn read_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for path in files_in(&corpus_dir("iptables-extension-tests"), &["t"]) {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("test files are UTF-8");
        let mut table = "filter".to_string();
        let mut chain = "INPUT".to_string();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some(t) = line.strip_prefix('*') {
                table = t.trim().to_string();
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                chain = c.split(',').next().unwrap_or("INPUT").trim().to_string();
                continue;
            }
            let fields: Vec<&str> = line.split(';').collect();
            // A fourth field restricts the verdict to one backend (LEGACY/NFT): skipped.
            if fields.len() != 3 {
                continue;
            }
            cases.push(Case {
                file: file.clone(),
                table: table.clone(),
                chain: chain.clone(),
                rule: fields[0].to_string(),
                ok: fields[2] == "OK",
            });
        }
    }
    cases
}

fn dump_for(case: &Case) -> String {
    let v6 = case.file.starts_with("libip6t_");
    let header = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let builtin = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];
    let decl = if builtin.contains(&case.chain.as_str()) {
        format!(":{} ACCEPT [0:0]", case.chain)
    } else {
        format!(":{} - [0:0]", case.chain)
    };
    format!(
        "# Generated by {header}\n*{}\n{decl}\n-A {} {}\nCOMMIT\n",
        case.table, case.chain, case.rule
    )
}

/// The modules whose every line we must get right: their test files.
fn modelled(file: &str) -> bool {
    matches!(
        file,
        "iptables.t"
            | "libxt_standard.t"
            | "libipt_standard.t"
            | "libip6t_standard.t"
            | "libxt_tcp.t"
            | "libxt_udp.t"
            | "libxt_multiport.t"
            | "libxt_state.t"
            | "libxt_conntrack.t"
            | "libipt_conntrack.t"
            | "libip6t_conntrack.t"
            | "libxt_iprange.t"
            | "libipt_iprange.t"
            | "libip6t_iprange.t"
            | "libxt_comment.t"
    )
}

/// FAIL lines we must refuse: all of the modelled files except conntrack options
/// other than `--ctstate`, which we read but do not model.
fn must_refuse(case: &Case) -> bool {
    modelled(&case.file) && (!case.file.contains("conntrack") || case.rule.contains("--ctstate"))
}

#[test]
fn netfilter_extension_tests_agree() {
    let cases = read_cases();
    assert!(cases.len() > 500, "too few cases: {}", cases.len());
    let (mut ok_total, mut ok_pass, mut ok_mod_total, mut ok_mod_pass) = (0, 0, 0, 0);
    let (mut fail_total, mut fail_pass, mut fail_mod_total, mut fail_mod_pass) = (0, 0, 0, 0);
    let mut misses = Vec::new();
    for case in &cases {
        let parsed = parse_text(&case.file, &dump_for(case));
        let errs = errors(&parsed);
        assert!(parsed.graph.is_some());
        if case.ok {
            ok_total += 1;
            let pass = errs.is_empty();
            ok_pass += usize::from(pass);
            if modelled(&case.file) {
                ok_mod_total += 1;
                ok_mod_pass += usize::from(pass);
                if !pass {
                    misses.push(format!(
                        "{}: OK line refused: {} ({})",
                        case.file, case.rule, errs[0].message
                    ));
                }
            } else if !pass {
                println!(
                    "unmodelled OK line refused: {}: {} ({})",
                    case.file, case.rule, errs[0].message
                );
            }
        } else {
            fail_total += 1;
            let pass = !errs.is_empty();
            fail_pass += usize::from(pass);
            if must_refuse(case) {
                fail_mod_total += 1;
                fail_mod_pass += usize::from(pass);
                if !pass {
                    misses.push(format!("{}: FAIL line accepted: {}", case.file, case.rule));
                }
            }
        }
    }
    println!(
        "OK lines: {ok_pass}/{ok_total} accepted ({ok_mod_pass}/{ok_mod_total} of modelled modules)"
    );
    println!(
        "FAIL lines: {fail_pass}/{fail_total} refused ({fail_mod_pass}/{fail_mod_total} of modelled modules)"
    );
    assert!(misses.is_empty(), "{misses:#?}");
    assert_eq!(ok_mod_pass, ok_mod_total);
    assert_eq!(fail_mod_pass, fail_mod_total);
    assert_eq!(ok_pass, ok_total, "every OK line parses, modelled or not");
}
