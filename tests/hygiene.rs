//! The rule-hygiene checks (`shadowed-rule`, `redundant-rule`, `any-any-permit`) through
//! the built binary on the `extra-` fixtures of every dialect: which lines they report,
//! with which related lines, and which they must leave alone. Their cost on large files
//! is measured by `cargo bench --bench pipeline` (stage `checks`), not here.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs mislint with `--format json` on a fixture; returns its findings.
fn findings(path: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![path, "--format", "json", "--scenario", "exchange2000-smtp"];
    if path.contains("/iptables/") {
        args.extend([
            "--zone",
            "eth0=public",
            "--zone",
            "eth1=perimeter",
            "--zone",
            "eth2=internal",
        ]);
    }
    args.extend(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_mislint"))
        .args(&args)
        .current_dir(root())
        .output()
        .expect("the mislint binary runs");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{path}: output is not JSON ({e}):\n{stdout}"));
    json["findings"].as_array().cloned().unwrap_or_default()
}

/// `(line, related lines)` of every finding of one check, sorted by line.
fn lines_of(findings: &[Value], rule: &str) -> Vec<(u64, Vec<u64>)> {
    let mut v: Vec<(u64, Vec<u64>)> = findings
        .iter()
        .filter(|f| f["rule"] == rule)
        .map(|f| {
            let related = f["related"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r["line"].as_u64()).collect())
                .unwrap_or_default();
            (f["line"].as_u64().unwrap_or(0), related)
        })
        .collect();
    v.sort();
    v
}

fn severities(findings: &[Value], rule: &str) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f["rule"] == rule)
        .map(|f| f["severity"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn iptables_shadowed_rules() {
    let f = findings("fixtures/iptables/extra-shadowed.rules", &[]);
    assert_eq!(
        lines_of(&f, "shadowed-rule"),
        vec![
            // Covered only by the union of 15 and 16.
            (17, vec![15, 16]),
            // Its own `-m time` is unmodelled; its known part is covered by 18.
            (19, vec![18]),
            // Two `-s` addresses lowered to two rules, both covered: reported once.
            (24, vec![23]),
            // The jump to LOGDROP, which always drops, decides it.
            (28, vec![14]),
        ],
        "{f:#?}"
    );
    assert!(severities(&f, "shadowed-rule").iter().all(|s| s == "note"));
}

#[test]
fn asa_shadowed_rules() {
    let f = findings("fixtures/asa/extra-shadowed.cfg", &[]);
    assert_eq!(
        lines_of(&f, "shadowed-rule"),
        vec![
            (37, vec![35, 36]), // union of two port ranges
            (39, vec![38]),     // time-range (unmodelled) on the dead entry
            (43, vec![35, 42]), // service group: its tcp/80 and udp/53 rules both dead
        ],
        "{f:#?}"
    );
}

#[test]
fn pfsense_shadowed_rules() {
    let f = findings("fixtures/pfsense/extra-shadowed.xml", &[]);
    assert_eq!(
        lines_of(&f, "shadowed-rule"),
        // The union of two rules; pfSense's own private-network block on WAN.
        vec![(54, vec![36, 45]), (63, vec![18])],
        "{f:#?}"
    );
}

#[test]
fn redundant_rules() {
    let ipt = findings("fixtures/iptables/extra-redundant.rules", &[]);
    assert_eq!(
        lines_of(&ipt, "redundant-rule"),
        vec![(14, vec![24]), (15, vec![16])],
        "{ipt:#?}"
    );
    let asa = findings("fixtures/asa/extra-redundant.cfg", &[]);
    assert_eq!(
        lines_of(&asa, "redundant-rule"),
        vec![(21, vec![27]), (22, vec![23])],
        "{asa:#?}"
    );
    // A shadowed fixture: an entry only an unmodelled one precedes, and an accept that
    // a wider accept repeats.
    let shadowed = findings("fixtures/asa/extra-shadowed.cfg", &[]);
    assert_eq!(
        lines_of(&shadowed, "redundant-rule"),
        vec![(38, vec![42]), (40, vec![41]), (42, vec![43])],
        "{shadowed:#?}"
    );
}

#[test]
fn any_any_permit_fires_and_holds_back() {
    let zones = |f: &[Value]| -> Vec<(u64, String, String)> {
        let mut v: Vec<_> = f
            .iter()
            .filter(|x| x["rule"] == "any-any-permit")
            .map(|x| {
                (
                    x["line"].as_u64().unwrap_or(0),
                    x["from_zone"].as_str().unwrap_or("").to_string(),
                    x["to_zone"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let ipt = findings("fixtures/iptables/extra-any-any.rules", &[]);
    assert_eq!(
        zones(&ipt),
        vec![(12, "internal".into(), "perimeter".into())],
        "{ipt:#?}"
    );
    let asa = findings("fixtures/asa/extra-any-any.cfg", &[]);
    assert_eq!(
        zones(&asa),
        vec![
            (19, "internal".into(), "perimeter".into()),
            (21, "perimeter".into(), "internal".into()),
            (21, "perimeter".into(), "public".into()),
        ],
        "{asa:#?}"
    );
    assert!(
        severities(&asa, "any-any-permit")
            .iter()
            .all(|s| s == "note")
    );
}

#[test]
fn compliant_fixtures_have_no_hygiene_findings() {
    for path in [
        "fixtures/iptables/compliant.rules",
        "fixtures/asa/compliant.cfg",
        "fixtures/pfsense/compliant.xml",
    ] {
        let f = findings(path, &[]);
        for rule in ["shadowed-rule", "redundant-rule", "any-any-permit"] {
            assert!(lines_of(&f, rule).is_empty(), "{path}: {rule}: {f:#?}");
        }
    }
}
