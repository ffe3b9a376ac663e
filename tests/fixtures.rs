//! The fixture variants of every dialect, run through the real binary: exit status,
//! findings compared field by field with `fixtures/expected.toml`, the same findings in
//! every dialect, and snapshots of the human output.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Deserialize)]
struct Expected {
    variant: Vec<Variant>,
}

#[derive(Debug, Deserialize)]
struct Variant {
    name: String,
    flags: Vec<String>,
    exit: i32,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default)]
    finding: Vec<ExpectedFinding>,
}

#[derive(Debug, Deserialize)]
struct ExpectedFinding {
    rule: String,
    #[serde(default)]
    requirement: Option<String>,
    protocol: String,
    ports: Vec<(u16, u16)>,
    certainty: String,
    #[serde(default)]
    lines: BTreeMap<String, u64>,
    #[serde(default)]
    related_lines: BTreeMap<String, Vec<u64>>,
}

const DIALECTS: [(&str, &str); 3] = [("iptables", "rules"), ("asa", "cfg"), ("pfsense", "xml")];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(root().join("fixtures/expected.toml"))
        .expect("fixtures/expected.toml is in the repo");
    toml::from_str(&text).expect("fixtures/expected.toml is valid")
}

/// Zone flags a dialect needs: iptables names mean nothing, the others name their zones.
fn zone_flags(dialect: &str) -> Vec<&'static str> {
    match dialect {
        "iptables" => vec![
            "--zone",
            "eth0=public",
            "--zone",
            "eth1=perimeter",
            "--zone",
            "eth2=internal",
        ],
        _ => vec![],
    }
}

fn fixture(dialect: &str, ext: &str, variant: &str) -> PathBuf {
    PathBuf::from(format!("fixtures/{dialect}/{variant}.{ext}"))
}

/// Runs mislint from the crate root; returns exit status and stdout.
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mislint"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the mislint binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("output is UTF-8"),
    )
}

fn lint_json(dialect: &str, ext: &str, v: &Variant) -> (i32, Value) {
    let path = fixture(dialect, ext, &v.name);
    let path = path.to_str().expect("fixture paths are UTF-8");
    let mut args = vec![path, "--format", "json"];
    args.extend(v.flags.iter().map(String::as_str));
    args.extend(zone_flags(dialect));
    let (code, stdout) = run(&args);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{path}: output is not JSON ({e}):\n{stdout}"));
    (code, json)
}

/// The comparable part of a JSON finding.
fn key(f: &Value) -> (String, Option<String>, String, Vec<(u16, u16)>, String) {
    let ports = f["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p[0].as_u64().unwrap_or(0) as u16,
                        p[1].as_u64().unwrap_or(0) as u16,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        f["rule"].as_str().unwrap_or("").to_string(),
        f["requirement"].as_str().map(str::to_string),
        f["protocol"].as_str().unwrap_or("").to_string(),
        ports,
        f["certainty"].as_str().unwrap_or("").to_string(),
    )
}

fn non_notes(json: &Value) -> Vec<&Value> {
    json["findings"]
        .as_array()
        .expect("findings is an array")
        .iter()
        .filter(|f| f["severity"] != "note")
        .collect()
}

fn check_dialect(dialect: &str, ext: &str) {
    for v in expected().variant {
        let path = fixture(dialect, ext, &v.name);
        assert!(
            root().join(&path).exists(),
            "{} is missing: every variant exists in every dialect",
            path.display()
        );
        let (code, json) = lint_json(dialect, ext, &v);
        let found = non_notes(&json);
        let mut got: Vec<_> = found.iter().map(|f| key(f)).collect();
        let mut want: Vec<_> = v
            .finding
            .iter()
            .map(|f| {
                (
                    f.rule.clone(),
                    f.requirement.clone(),
                    f.protocol.clone(),
                    f.ports.clone(),
                    f.certainty.clone(),
                )
            })
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}: findings differ:\n{json:#}", path.display());
        assert_eq!(code, v.exit, "{}: exit status", path.display());
        for e in &v.finding {
            let f = found
                .iter()
                .find(|f| f["rule"] == e.rule.as_str() && f["protocol"] == e.protocol.as_str())
                .expect("matched above");
            assert_eq!(f["file"], path.to_str().expect("UTF-8"));
            assert!(f["column"].as_u64().is_some_and(|c| c >= 1));
            assert!(
                f["witness"].is_object(),
                "{}: every finding has a witness",
                path.display()
            );
            if let Some(line) = e.lines.get(dialect) {
                assert_eq!(
                    f["line"].as_u64(),
                    Some(*line),
                    "{}: line of {}",
                    path.display(),
                    e.rule
                );
            }
            if let Some(lines) = e.related_lines.get(dialect) {
                let related: Vec<u64> = f["related"]
                    .as_array()
                    .expect("related is an array")
                    .iter()
                    .filter_map(|r| r["line"].as_u64())
                    .collect();
                assert_eq!(&related, lines, "{}: related lines", path.display());
            }
        }
        for note in &v.notes {
            let notes = json["findings"].as_array().expect("array");
            assert!(
                notes.iter().any(|f| f["rule"] == note.as_str()),
                "{}: expected a `{note}` note",
                path.display()
            );
        }
    }
}

#[test]
fn iptables_fixtures_give_their_expected_findings() {
    check_dialect("iptables", "rules");
}

#[test]
fn asa_fixtures_give_their_expected_findings() {
    check_dialect("asa", "cfg");
}

#[test]
fn pfsense_fixtures_give_their_expected_findings() {
    check_dialect("pfsense", "xml");
}

#[test]
fn every_dialect_gives_the_same_findings() {
    for v in expected().variant {
        let mut per_dialect = Vec::new();
        for (dialect, ext) in DIALECTS {
            let (_, json) = lint_json(dialect, ext, &v);
            let mut keys: Vec<_> = non_notes(&json).iter().map(|f| key(f)).collect();
            keys.sort();
            per_dialect.push((dialect, keys));
        }
        let (first, reference) = &per_dialect[0];
        for (dialect, keys) in &per_dialect[1..] {
            assert_eq!(
                keys, reference,
                "variant {}: {dialect} differs from {first}",
                v.name
            );
        }
    }
}

#[test]
fn human_output_snapshots() {
    for v in expected().variant {
        for (dialect, ext) in DIALECTS {
            let path = fixture(dialect, ext, &v.name);
            let path_str = path.to_str().expect("UTF-8");
            let mut args = vec![path_str];
            args.extend(v.flags.iter().map(String::as_str));
            args.extend(zone_flags(dialect));
            let (_, stdout) = run(&args);
            insta::assert_snapshot!(format!("{dialect}__{}", v.name), stdout);
        }
    }
}

#[test]
fn fixtures_directory_holds_only_known_variants() {
    let names: Vec<String> = expected().variant.into_iter().map(|v| v.name).collect();
    for (dialect, ext) in DIALECTS {
        for entry in std::fs::read_dir(root().join("fixtures").join(dialect)).expect("dir exists") {
            let path = entry.expect("readable").path();
            if path.extension().and_then(|e| e.to_str()) != Some(ext) {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            assert!(
                names.iter().any(|n| n == stem) || stem.starts_with("extra-"),
                "{} is not listed in fixtures/expected.toml",
                path.display()
            );
        }
    }
}
