//! The site file and suppressions, through the binary, in a scratch firewall repository.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch repository holding copies of some fixtures.
fn repo(name: &str, fixtures: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mislint-site-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("fw")).expect("temp dir is writable");
    for f in fixtures {
        std::fs::copy(
            root().join("fixtures/iptables").join(f),
            dir.join("fw").join(f),
        )
        .expect("copy fixture");
    }
    dir
}

const ZONES: &str = r#"
scenarios = ["exchange2000-smtp"]
[zones]
eth0 = "public"
eth1 = "perimeter"
eth2 = "internal"
"#;

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mislint"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("mislint runs")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// The rules of the findings that are not notes.
fn rules_of(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] != "note")
        .map(|f| f["rule"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn site_file_supplies_zones_and_scenarios() {
    let dir = repo("zones", &["shadowed-ldap.rules"]);
    std::fs::write(dir.join("mislint.toml"), ZONES).expect("write");
    let o = run_in(&dir, &["fw", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(rules_of(&json(&o)), vec!["missing-port"]);
    // The command line wins: with another scenario tcp/25 becomes needless.
    let o = run_in(
        &dir,
        &[
            "fw",
            "--format",
            "json",
            "--scenario",
            "exchange2000-browse",
        ],
    );
    assert!(rules_of(&json(&o)).contains(&"needless-port".to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn site_suppression_needs_to_match_and_is_kept_in_json() {
    let dir = repo("suppress", &["dynamic-rpc-open.rules"]);
    let site = format!(
        "static_rpc = [1026]\n{ZONES}\n[[suppress]]\nrule = \"needless-port\"\nfile = \"fw/*.rules\"\nline = 21\nreason = \"RPC range until CHG-42 lands\"\n\n[[suppress]]\nrule = \"missing-port\"\nreason = \"nothing is missing, so this one is stale\"\n"
    );
    std::fs::write(dir.join("mislint.toml"), &site).expect("write");
    let o = run_in(&dir, &["fw", "--format", "json", "--fail-on", "warning"]);
    let v = json(&o);
    let findings = v["findings"].as_array().expect("findings");
    let needless = findings
        .iter()
        .find(|f| f["rule"] == "needless-port")
        .expect("still reported, but suppressed");
    assert_eq!(needless["suppressed"], "RPC range until CHG-42 lands");
    let stale = findings
        .iter()
        .find(|f| f["rule"] == "unused-suppression")
        .expect("the stale suppression is reported");
    assert!(
        stale["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("mislint.toml"))
    );
    let stale_line = site
        .lines()
        .position(|l| l.contains("\"missing-port\""))
        .expect("present")
        + 1;
    assert_eq!(stale["line"].as_u64(), Some(stale_line as u64));
    assert_eq!(
        o.status.code(),
        Some(1),
        "the unused suppression is a warning"
    );
    let human = run_in(&dir, &["fw"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(!text.contains("lets needless traffic through"), "{text}");
    assert!(text.contains("1 suppressed"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inline_suppression_in_an_iptables_comment() {
    let dir = repo("inline", &["dynamic-rpc-open.rules"]);
    std::fs::write(
        dir.join("mislint.toml"),
        format!("static_rpc = [1026]\n{ZONES}"),
    )
    .expect("write");
    let path = dir.join("fw/dynamic-rpc-open.rules");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace(
            "--comment \"Exchange RPC\"",
            "--comment \"mislint: allow needless-port: Exchange 5.5 still browses, CHG-7\"",
        ),
    )
    .expect("write");
    let o = run_in(&dir, &["fw", "--format", "json", "--fail-on", "warning"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let v = json(&o);
    let needless = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "needless-port")
        .expect("kept, suppressed");
    assert_eq!(needless["suppressed"], "Exchange 5.5 still browses, CHG-7");

    std::fs::write(
        &path,
        text.replace(
            "--comment \"Exchange RPC\"",
            "--comment \"mislint: allow needless-port\"",
        ),
    )
    .expect("write");
    let v = json(&run_in(&dir, &["fw", "--format", "json"]));
    let rules = rules_of(&v);
    assert!(
        rules.contains(&"invalid-suppression".to_string()),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"needless-port".to_string()),
        "not suppressed without a reason"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hosts_narrow_the_checks_to_the_mis_flows() {
    let dir = repo("hosts", &["compliant.rules"]);
    std::fs::write(
        dir.join("mislint.toml"),
        format!("{ZONES}[hosts]\nmis = [\"192.168.10.5\"]\n"),
    )
    .expect("write");
    assert_eq!(run_in(&dir, &["fw"]).status.code(), Some(0));
    // The rules permit only 192.168.10.5; a MIS host elsewhere gets none of its ports.
    std::fs::write(
        dir.join("mislint.toml"),
        format!("{ZONES}[hosts]\nmis = [\"192.168.10.99\"]\n"),
    )
    .expect("write");
    let v = json(&run_in(&dir, &["fw", "--format", "json"]));
    let missing = rules_of(&v).iter().filter(|r| *r == "missing-port").count();
    assert!(
        missing >= 10,
        "every required flow is missing for the other host: {missing}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_site_file_is_an_error_pointing_into_it() {
    let dir = repo("bad", &["compliant.rules"]);
    std::fs::write(dir.join("mislint.toml"), "[zones]\neth0 = \"publik\"\n").expect("write");
    let o = run_in(&dir, &["fw"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`publik` is not a"), "{err}");
    assert!(
        err.contains("mislint.toml:2:8"),
        "points at the value: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exclude_globs_and_explicit_config() {
    let dir = repo("exclude", &["compliant.rules", "shadowed-ldap.rules"]);
    std::fs::write(
        dir.join("mislint.toml"),
        format!("exclude = [\"fw/shadowed-*\"]\n{ZONES}"),
    )
    .expect("write");
    let v = json(&run_in(&dir, &["fw", "--format", "json"]));
    assert_eq!(v["files"].as_array().map(Vec::len), Some(1));
    let o = run_in(&dir, &["fw", "--no-config", "--format", "json"]);
    assert_eq!(json(&o)["files"].as_array().map(Vec::len), Some(2));
    let o = run_in(&dir, &["fw", "--config", "missing.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Copies one fixture of `dialect` into a scratch repo, rewriting `from` into `to`.
fn edited_fixture(name: &str, dialect: &str, file: &str, from: &str, to: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mislint-site-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let text = std::fs::read_to_string(root().join("fixtures").join(dialect).join(file))
        .expect("read fixture");
    assert!(text.contains(from), "{from} is in {file}");
    std::fs::write(dir.join(file), text.replace(from, to)).expect("write");
    dir
}

#[test]
fn inline_suppression_in_an_asa_remark_and_a_pfsense_description() {
    let cases = [
        (
            "asa",
            "dynamic-rpc-open.cfg",
            "access-list dmz_in remark dynamic RPC for Exchange 5.5 browsing",
            "access-list dmz_in remark mislint: allow needless-port: Exchange 5.5 browse, CHG-9",
        ),
        (
            "pfsense",
            "dynamic-rpc-open.xml",
            "<descr><![CDATA[Exchange 5.5 dynamic RPC range]]></descr>",
            "<descr><![CDATA[mislint: allow needless-port: Exchange 5.5 browse, CHG-9]]></descr>",
        ),
    ];
    for (dialect, file, from, to) in cases {
        let dir = edited_fixture(&format!("inline-{dialect}"), dialect, file, from, to);
        let o = run_in(
            &dir,
            &[
                file,
                "--format",
                "json",
                "--scenario",
                "exchange2000-smtp",
                "--static-rpc",
                "--fail-on",
                "warning",
            ],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{dialect}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let v = json(&o);
        let needless = v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["rule"] == "needless-port")
            .expect("kept, suppressed");
        assert_eq!(
            needless["suppressed"], "Exchange 5.5 browse, CHG-9",
            "{dialect}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn sarif_tells_inline_from_site_file_suppressions() {
    let dir = repo(
        "sarif-kinds",
        &["dynamic-rpc-open.rules", "shadowed-ldap.rules"],
    );
    std::fs::write(
        dir.join("mislint.toml"),
        format!(
            "static_rpc = [1026]\n{ZONES}\n[[suppress]]\nrule = \"missing-port\"\nfile = \"fw/shadowed-ldap.rules\"\nreason = \"LDAP moves to 636, CHG-11\"\n"
        ),
    )
    .expect("write");
    let path = dir.join("fw/dynamic-rpc-open.rules");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace(
            "--comment \"Exchange RPC\"",
            "--comment \"mislint: allow needless-port: Exchange 5.5 browse, CHG-7\"",
        ),
    )
    .expect("write");
    let o = run_in(&dir, &["fw", "--format", "sarif"]);
    let sarif = json(&o);
    let kinds: Vec<(String, String)> = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| {
            let s = r["suppressions"].as_array()?.first()?;
            Some((
                r["ruleId"].as_str()?.to_string(),
                s["kind"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert!(
        kinds.contains(&("needless-port".into(), "inSource".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("missing-port".into(), "external".into())),
        "{kinds:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
