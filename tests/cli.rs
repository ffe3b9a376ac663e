//! The command line as a user meets it: exit statuses, usage errors, listing and
//! explaining, directories with broken files, and JSON fields.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mislint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mislint"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the mislint binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The findings of a JSON report that are not notes (notes such as
/// `narrow-required-flow` accompany most runs).
fn non_notes(json: &Value) -> Vec<&Value> {
    json["findings"]
        .as_array()
        .expect("findings is an array")
        .iter()
        .filter(|f| f["severity"] != "note")
        .collect()
}

const ZONES: [&str; 6] = [
    "--zone",
    "eth0=public",
    "--zone",
    "eth1=perimeter",
    "--zone",
    "eth2=internal",
];

/// A scratch directory unique to this test process and name.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mislint-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

#[test]
fn compliant_fixture_exits_zero() {
    let mut args = vec![
        "fixtures/iptables/compliant.rules",
        "--scenario",
        "exchange2000-smtp",
    ];
    args.extend(ZONES);
    let o = mislint(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("mislint: 0 errors, 0 warnings, 2 notes in 1 file"));
    assert!(stdout(&o).contains("permitted only from 192.168.10.5 to"));
}

#[test]
fn unknown_scenario_is_a_usage_error() {
    let o = mislint(&[
        "fixtures/iptables/compliant.rules",
        "--scenario",
        "exchange2003",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("unknown scenario `exchange2003`"), "{err}");
    assert!(
        err.contains("exchange2000-smtp"),
        "lists the known ones: {err}"
    );
}

#[test]
fn bad_zone_and_missing_path_are_usage_errors() {
    let o = mislint(&["fixtures/iptables/compliant.rules", "--zone", "eth0=mars"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`mars` is not a zone"));
    let o = mislint(&["--scenario", "exchange2000-smtp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no PATH given"));
    let o = mislint(&["x", "--format", "yaml"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects unknown formats");
}

#[test]
fn list_scenarios_shows_each_with_its_flows() {
    let o = mislint(&["--list-scenarios"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for name in [
        "exchange2000-smtp",
        "exchange2000-http",
        "exchange2000-http-ipsec",
        "exchange2000-browse",
        "exchange2000-browse-ssl",
        "exchange55-browse",
        "exchange55-browse-ssl",
    ] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
    let smtp = out
        .split("exchange2000-http ")
        .next()
        .expect("smtp comes first");
    assert!(smtp.contains("tcp/25") && smtp.contains("perimeter → public"));
    assert!(
        out.contains("tcp/1024-65535"),
        "exchange55 browse lists dynamic RPC"
    );
}

#[test]
fn explain_prints_the_documentation() {
    let o = mislint(&["--explain", "needless-port"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for section in [
        "## What it finds",
        "## Why it matters",
        "## How to fix",
        "## How to suppress",
    ] {
        assert!(out.contains(section), "{section}");
    }
    assert!(out.contains("KB 294297"));
    let o = mislint(&["--explain", "no-such-rule"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn fail_on_sets_the_threshold() {
    let mut args = vec![
        "fixtures/iptables/dynamic-rpc-open.rules",
        "--scenario",
        "exchange2000-smtp",
        "--static-rpc",
    ];
    args.extend(ZONES);
    assert_eq!(
        mislint(&args).status.code(),
        Some(0),
        "a warning does not fail by default"
    );
    let mut warn = args.clone();
    warn.extend(["--fail-on", "warning"]);
    assert_eq!(mislint(&warn).status.code(), Some(1));
    let mut shadowed = vec![
        "fixtures/iptables/shadowed-ldap.rules",
        "--scenario",
        "exchange2000-smtp",
        "--fail-on",
        "never",
    ];
    shadowed.extend(ZONES);
    assert_eq!(mislint(&shadowed).status.code(), Some(0));
}

#[test]
fn static_rpc_ports_change_what_is_needless() {
    let mut args = vec![
        "fixtures/iptables/dynamic-rpc-open.rules",
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
        "--static-rpc=1026,1030",
    ];
    args.extend(ZONES);
    let json: Value = serde_json::from_slice(&mislint(&args).stdout).expect("JSON");
    let f = non_notes(&json)[0];
    assert_eq!(f["rule"], "needless-port");
    // tcp/1030 is now required (the range rule opens it), so it is no longer needless.
    assert_eq!(
        f["ports"],
        serde_json::json!([[1024, 1025], [1027, 1029], [1031, 3267], [3269, 65535]])
    );
    assert_eq!(non_notes(&json).len(), 1);
}

#[test]
fn directory_with_a_broken_file_still_reports_the_others() {
    let dir = scratch("mixed");
    for (dialect, name) in [
        ("iptables", "shadowed-ldap.rules"),
        ("iptables", "compliant.rules"),
        ("asa", "shadowed-ldap.cfg"),
        ("pfsense", "shadowed-ldap.xml"),
    ] {
        std::fs::copy(
            root().join("fixtures").join(dialect).join(name),
            dir.join(name),
        )
        .expect("copy fixture");
    }
    std::fs::write(
        dir.join("broken.rules"),
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport 99999 -j ACCEPT\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("broken.xml"),
        "<?xml version=\"1.0\"?>\n<pfsense>\n<filter>\n<rule><type>pass</rule>\n</filter>\n</pfsense>\n",
    )
    .expect("write");
    std::fs::write(dir.join("README.md"), "# not a config\n").expect("write");
    let dir_str = dir.to_str().expect("UTF-8 temp path");
    let mut args = vec![
        dir_str,
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
    ];
    args.extend(ZONES);
    let o = mislint(&args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a parse error makes the run exit 2"
    );
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let files: Vec<(&str, &str)> = json["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| Some((f["path"].as_str()?, f["dialect"].as_str()?)))
        .collect();
    assert_eq!(files.len(), 6, "README.md is not a config: {files:?}");
    let findings = json["findings"].as_array().expect("findings");
    let in_file = |name: &str, rule: &str| {
        findings
            .iter()
            .any(|f| f["file"].as_str().is_some_and(|p| p.ends_with(name)) && f["rule"] == rule)
    };
    for good in [
        "shadowed-ldap.rules",
        "shadowed-ldap.cfg",
        "shadowed-ldap.xml",
    ] {
        assert!(in_file(good, "missing-port"), "{good} still reported");
    }
    assert!(in_file("broken.rules", "parse-error"));
    let xml_error = findings
        .iter()
        .find(|f| {
            f["file"]
                .as_str()
                .is_some_and(|p| p.ends_with("broken.xml"))
        })
        .expect("the broken XML is reported");
    assert_eq!(xml_error["rule"], "parse-error");
    assert_eq!(xml_error["line"], 4, "at the mismatched tag: {xml_error:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_and_non_config_paths_exit_two_but_others_are_linted() {
    let mut args = vec![
        "fixtures/iptables/shadowed-ldap.rules",
        "does/not/exist.rules",
        "README.md",
        "--scenario",
        "exchange2000-smtp",
    ];
    args.extend(ZONES);
    let o = mislint(&args);
    assert_eq!(o.status.code(), Some(2));
    let out = stdout(&o);
    assert!(out.contains("does/not/exist.rules"), "{out}");
    assert!(out.contains("is not an iptables-save dump"), "{out}");
    assert!(
        out.contains("missing-port"),
        "the good file is still linted:\n{out}"
    );
}

#[test]
fn json_finding_has_every_documented_field() {
    let mut args = vec![
        "fixtures/iptables/shadowed-ldap.rules",
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
    ];
    args.extend(ZONES);
    let o = mislint(&args);
    assert_eq!(o.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(json["version"], 1);
    let f = non_notes(&json)[0];
    assert_eq!(f["rule"], "missing-port");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["certainty"], "definite");
    assert_eq!(f["file"], "fixtures/iptables/shadowed-ldap.rules");
    assert_eq!(f["line"], 18);
    assert_eq!(f["column"], 1);
    assert_eq!(f["requirement"], "ldap");
    assert_eq!(f["scenario"], Value::Null, "ldap belongs to every scenario");
    assert_eq!(f["from_zone"], "perimeter");
    assert_eq!(f["to_zone"], "internal");
    assert_eq!(f["protocol"], "tcp");
    assert_eq!(f["ports"], serde_json::json!([[389, 389]]));
    assert_eq!(f["witness"]["protocol"], 6);
    assert_eq!(f["witness"]["dst_port"], 389);
    assert_eq!(f["witness"]["src"], "192.168.10.5");
    assert_eq!(f["witness"]["in_interface"], "eth1");
    assert_eq!(f["witness"]["out_interface"], "eth2");
    assert!(
        f["message"]
            .as_str()
            .is_some_and(|m| m.contains("`tcp/389`"))
    );
    assert!(
        f["kb"]
            .as_str()
            .is_some_and(|k| k.contains("389 - Lightweight Directory Access Protocol"))
    );
}

#[test]
fn zones_without_mapping_are_reported_not_silently_skipped() {
    let o = mislint(&[
        "fixtures/iptables/shadowed-ldap.rules",
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
    ]);
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let rules: Vec<&str> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(rules.contains(&"unmapped-interface"), "{rules:?}");
    assert!(rules.contains(&"boundary-not-checked"), "{rules:?}");
    assert!(
        !rules.contains(&"missing-port"),
        "nothing is claimed without zones"
    );
}

#[test]
fn internal_firewall_does_not_answer_for_external_requirements() {
    // Only the perimeter and internal legs mapped: smtp-carrier is not applicable.
    let o = mislint(&[
        "fixtures/iptables/compliant.rules",
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
        "--zone",
        "eth1=perimeter",
        "--zone",
        "eth2=internal",
        "--zone",
        "eth0=internal",
    ]);
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let findings = json["findings"].as_array().expect("findings");
    let note = findings
        .iter()
        .find(|f| f["rule"] == "boundary-not-checked")
        .expect("a note about the public zone");
    assert!(
        note["message"]
            .as_str()
            .is_some_and(|m| m.contains("smtp-carrier"))
    );
    assert!(!findings.iter().any(|f| f["requirement"] == "smtp-carrier"));
}

#[test]
fn missing_established_rule_is_a_no_return_path() {
    let mut args = vec![
        "fixtures/iptables/extra-no-return-path.rules",
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
    ];
    args.extend(ZONES);
    let o = mislint(&args);
    assert_eq!(o.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let findings = non_notes(&json);
    let pairs: Vec<(&str, &str, u64)> = findings
        .iter()
        .map(|f| {
            assert_eq!(f["rule"], "no-return-path", "{f:#}");
            (
                f["from_zone"].as_str().unwrap_or(""),
                f["to_zone"].as_str().unwrap_or(""),
                f["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![("perimeter", "public", 9), ("perimeter", "internal", 9)]
    );
    let smtp = &findings[0];
    assert_eq!(smtp["requirement"], "smtp-carrier");
    assert_eq!(smtp["ports"], serde_json::json!([[25, 25]]));
    assert_eq!(
        smtp["related"][0]["line"], 14,
        "names the permit of the connection"
    );
    assert_eq!(smtp["witness"]["src_port"], 25, "the witness is a reply");
    // With the ESTABLISHED rule (the compliant fixture) there is no such finding.
    let mut ok = vec![
        "fixtures/iptables/compliant.rules",
        "--scenario",
        "exchange2000-smtp",
    ];
    ok.extend(ZONES);
    assert_eq!(mislint(&ok).status.code(), Some(0));
}

#[test]
fn port_forward_is_checked_at_the_real_address_and_names_the_dnat_line() {
    let mut args = vec![
        "fixtures/iptables/extra-port-forward.rules",
        "--format",
        "json",
        "--scenario",
        "exchange2000-browse-ssl",
    ];
    args.extend(ZONES);
    let json: Value = serde_json::from_slice(&mislint(&args).stdout).expect("JSON");
    let findings = non_notes(&json);
    assert_eq!(findings.len(), 1, "{json:#}");
    let f = findings[0];
    assert_eq!(f["rule"], "needless-port");
    assert_eq!(
        (f["from_zone"].as_str(), f["to_zone"].as_str()),
        (Some("public"), Some("perimeter"))
    );
    assert_eq!(f["line"], 19, "the FORWARD line");
    assert_eq!(f["related"][0]["line"], 12, "the DNAT line");
    assert_eq!(f["ports"], serde_json::json!([[80, 80]]));
    assert_eq!(
        f["witness"]["dst"], "203.0.113.1",
        "the packet as the client sends it"
    );
    // Plain-HTTP browse needs port 80 and not 443: the other forward is needless then.
    let mut http = args.clone();
    http[4] = "exchange2000-browse";
    let json: Value = serde_json::from_slice(&mislint(&http).stdout).expect("JSON");
    let ports: Vec<&Value> = non_notes(&json).iter().map(|f| &f["ports"]).collect();
    assert_eq!(ports, vec![&serde_json::json!([[443, 443]])]);
}

#[test]
fn asa_object_nat_lines_public_traffic_up_with_real_addresses() {
    let o = mislint(&[
        "fixtures/asa/extra-object-nat.cfg",
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
        "--scenario",
        "exchange2000-browse-ssl",
    ]);
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let findings: Vec<&Value> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] != "note")
        .collect();
    assert_eq!(findings.len(), 1, "{json:#}");
    let f = findings[0];
    assert_eq!(f["rule"], "needless-port");
    assert_eq!(f["ports"], serde_json::json!([[80, 80]]));
    let text =
        std::fs::read_to_string(root().join("fixtures/asa/extra-object-nat.cfg")).expect("read");
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i as u64 + 1)
    };
    assert_eq!(
        f["line"].as_u64(),
        line_of("eq www\n").or(line_of("object MIS-SERVER eq www"))
    );
    assert_eq!(
        f["related"][0]["line"].as_u64(),
        line_of("nat (dmz,outside) static")
    );
    assert_eq!(
        f["witness"]["dst"], "203.0.113.5",
        "sent to the mapped address"
    );
}

#[test]
fn pfsense_port_forwards_are_applied_before_the_filter() {
    let run = |scenario: &str| -> Value {
        let o = mislint(&[
            "fixtures/pfsense/extra-port-forward.xml",
            "--format",
            "json",
            "--scenario",
            "exchange2000-smtp",
            "--scenario",
            scenario,
        ]);
        serde_json::from_slice(&o.stdout).expect("JSON")
    };
    let ssl = run("exchange2000-browse-ssl");
    let found = non_notes(&ssl);
    assert_eq!(found.len(), 1, "{ssl:#}");
    assert_eq!(found[0]["rule"], "needless-port");
    assert_eq!(found[0]["ports"], serde_json::json!([[80, 80]]));
    assert_eq!(
        found[0]["witness"]["dst"], "203.0.113.1",
        "sent to the WAN address"
    );
    // Plain-HTTP browse: port 80 is wanted, and the https forward's filter rule is needless.
    let http = run("exchange2000-browse");
    let found = non_notes(&http);
    assert_eq!(found.len(), 1, "{http:#}");
    assert_eq!(found[0]["ports"], serde_json::json!([[443, 443]]));
    assert_eq!(
        found[0]["related"][0]["message"],
        "destination NAT sends this traffic here"
    );
}

#[test]
fn asa_kerberos_literal_is_named_where_port_88_is_missing() {
    let o = mislint(&[
        "fixtures/asa/extra-kerberos-literal.cfg",
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let text = std::fs::read_to_string(root().join("fixtures/asa/extra-kerberos-literal.cfg"))
        .expect("read");
    let literal_lines: Vec<u64> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.ends_with("eq kerberos"))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    assert_eq!(literal_lines.len(), 2);
    let findings = json["findings"].as_array().expect("findings");
    let missing: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "missing-port")
        .collect();
    assert_eq!(missing.len(), 2, "tcp/88 and udp/88: {json:#}");
    for f in &missing {
        assert_eq!(f["requirement"], "kerberos");
        assert_eq!(f["ports"], serde_json::json!([[88, 88]]));
        let msg = f["message"].as_str().unwrap_or("");
        assert!(
            msg.contains("`kerberos` is port 750 on this device, not 88"),
            "{msg}"
        );
        let related: Vec<u64> = f["related"]
            .as_array()
            .expect("related")
            .iter()
            .filter_map(|r| r["line"].as_u64())
            .collect();
        assert_eq!(related, literal_lines, "points at the literals");
    }
    let needless: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "needless-port")
        .collect();
    assert_eq!(needless.len(), 2);
    assert!(
        needless
            .iter()
            .all(|f| f["ports"] == serde_json::json!([[750, 750]]))
    );
}

#[test]
fn user_policy_adds_scenarios_and_requirements() {
    let dir = scratch("policy");
    let policy = dir.join("ours.toml");
    std::fs::write(
        &policy,
        r#"name = "ours"

[[scenario]]
name = "monitoring"
title = "Zabbix checks MIS; MIS sends syslog inside"

[[requirement]]
id = "syslog"
from = "perimeter"
to = "internal"
flows = ["udp/514"]
scenarios = ["monitoring"]
kb = "Operations runbook 4.3: DMZ hosts log to syslog.corp"
"#,
    )
    .expect("write");
    let policy_str = policy.to_str().expect("UTF-8");
    let mut args = vec![
        "fixtures/iptables/compliant.rules",
        "--format",
        "json",
        "--policy",
        policy_str,
        "--scenario",
        "exchange2000-smtp",
        "--scenario",
        "monitoring",
    ];
    args.extend(ZONES);
    let o = mislint(&args);
    assert_eq!(o.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let f = &json["findings"][0];
    assert_eq!(f["rule"], "missing-port");
    assert_eq!(f["requirement"], "syslog");
    assert_eq!(f["scenario"], "monitoring");
    assert_eq!(
        f["kb"],
        "Operations runbook 4.3: DMZ hosts log to syslog.corp"
    );
    // Without the policy the scenario is unknown: a usage error.
    let o = mislint(&[
        "fixtures/iptables/compliant.rules",
        "--scenario",
        "monitoring",
    ]);
    assert_eq!(o.status.code(), Some(2));
    // A broken policy file is an error pointing into it.
    std::fs::write(&policy, "name = \"ours\"\n[[requirement]]\nid = \"x\"\nfrom = \"dmz\"\nto = \"internal\"\nflows = [\"tcp/http\"]\n").expect("write");
    let o = mislint(&["fixtures/iptables/compliant.rules", "--policy", policy_str]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ours.toml:6"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn host_firewall_is_checked_as_the_mis_hosts_own() {
    let args = [
        "fixtures/iptables/extra-host-firewall.rules",
        "--format",
        "json",
        "--scenario",
        "exchange2000-smtp",
        "--scenario",
        "exchange2000-browse-ssl",
        "--zone",
        "10.0.0.0/24=internal",
        "--zone",
        "0.0.0.0/0=public",
    ];
    let json: Value = serde_json::from_slice(&mislint(&args).stdout).expect("JSON");
    let got: Vec<(String, u64, String)> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or("").to_string(),
                f["line"].as_u64().unwrap_or(0),
                f["from_zone"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, u64, String)> = vec![
        ("host-firewall".into(), 10, String::new()),
        ("needless-port".into(), 14, "internal".into()),
        ("needless-port".into(), 15, "internal".into()),
    ];
    assert_eq!(got, want, "{json:#}");
    // Without the ESTABLISHED rule in INPUT, what MIS sends gets no replies.
    let dir = scratch("host");
    let text = std::fs::read_to_string(root().join(args[0])).expect("read");
    let broken: String = text
        .lines()
        .filter(|l| !l.starts_with("-A INPUT -m conntrack"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("host.rules");
    std::fs::write(&path, broken).expect("write");
    let mut args2 = args;
    args2[0] = path.to_str().expect("UTF-8");
    let json: Value = serde_json::from_slice(&mislint(&args2).stdout).expect("JSON");
    let no_return: Vec<&Value> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "no-return-path")
        .collect();
    let pairs: Vec<(&str, &str)> = no_return
        .iter()
        .map(|f| {
            (
                f["from_zone"].as_str().unwrap_or(""),
                f["to_zone"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(pairs.contains(&("perimeter", "internal")), "{pairs:?}");
    assert!(pairs.contains(&("perimeter", "public")), "{pairs:?}");
    // What MIS receives is answered through OUTPUT, which still accepts replies.
    assert!(!pairs.contains(&("public", "perimeter")), "{pairs:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn many_files_show_no_progress_bar_when_stderr_is_not_a_terminal() {
    let dir = scratch("many");
    for i in 0..25 {
        std::fs::copy(
            root().join("fixtures/asa/compliant.cfg"),
            dir.join(format!("fw{i:02}.cfg")),
        )
        .expect("copy");
    }
    let o = mislint(&[
        dir.to_str().expect("UTF-8"),
        "--scenario",
        "exchange2000-smtp",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).is_empty(),
        "hooks and CI logs stay clean: {}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("in 25 files"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn empty_filter_table_forwards_everything_and_does_not_panic() {
    // Found by the pipeline fuzz target: no chains at all, so no stage decides.
    let dir = scratch("empty");
    let path = dir.join("e.rules");
    std::fs::write(&path, "*filter\nCOMMIT\n").expect("write");
    let o = mislint(&[
        path.to_str().expect("UTF-8"),
        "--format",
        "json",
        "-s",
        "exchange2000-browse-ssl",
        "--zone",
        "eth0=public",
        "--zone",
        "eth1=perimeter",
    ]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
    let json: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let needless = non_notes(&json);
    assert!(
        !needless.is_empty(),
        "an empty filter table lets everything through"
    );
    assert!(needless.iter().all(|f| f["line"] == 1));
    let _ = std::fs::remove_dir_all(&dir);
}
