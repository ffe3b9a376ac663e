//! `--query` and `--matrix` through the real binary: answers on the fixtures of every
//! dialect compared with known answers (verdicts, deciding lines, ports, traces), JSON
//! field by field, exit statuses, and the DOT drawing checked for structure.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const IPTABLES_ZONES: [&str; 6] = [
    "--zone",
    "eth0=public",
    "--zone",
    "eth1=perimeter",
    "--zone",
    "eth2=internal",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs mislint from the crate root; returns exit status, stdout and stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mislint"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the mislint binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a query with `--format json` and returns the exit status and the document.
fn query_json(file: &str, query: &str) -> (i32, Value) {
    let mut args = vec![file, "--query", query, "--format", "json"];
    if file.ends_with(".rules") {
        args.extend(IPTABLES_ZONES);
    }
    let (code, stdout, stderr) = run(&args);
    let doc = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("JSON for {file}: {e}\n{stdout}\n{stderr}"));
    (code, doc)
}

fn parts(doc: &Value) -> &Vec<Value> {
    doc["files"][0]["parts"].as_array().expect("parts")
}

/// (verdict, dst ports, deciding line) of every part.
fn summary(doc: &Value) -> Vec<(String, Value, u64)> {
    parts(doc)
        .iter()
        .map(|p| {
            (
                p["verdict"].as_str().unwrap_or_default().to_string(),
                p["dst_ports"].clone(),
                p["decided_by"]["line"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A trace step as (event, action, line).
type TraceStep = (String, Option<String>, Option<u64>);

/// (event, action, line) of every trace step.
fn trace(part: &Value) -> Vec<TraceStep> {
    part["trace"]
        .as_array()
        .expect("trace")
        .iter()
        .map(|s| {
            (
                s["event"].as_str().unwrap_or_default().to_string(),
                s["action"].as_str().map(str::to_string),
                s["line"].as_u64(),
            )
        })
        .collect()
}

fn step(
    event: &str,
    action: Option<&str>,
    line: Option<u64>,
) -> (String, Option<String>, Option<u64>) {
    (event.to_string(), action.map(str::to_string), line)
}

/// The part whose witness is sent from the MIS host to a host of the internal network.
fn mis_part(doc: &Value, port: u64) -> &Value {
    parts(doc)
        .iter()
        .find(|p| {
            p["witness"]["src"] == "192.168.10.5"
                && p["witness"]["dst"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("10.0.0."))
                && p["witness"]["dst_port"] == port
        })
        .unwrap_or_else(|| panic!("a part from the MIS host on port {port}: {doc:#}"))
}

#[test]
fn json_document_shape() {
    let (code, doc) = query_json(
        "fixtures/asa/compliant.cfg",
        "tcp 192.168.10.5 -> internal :389",
    );
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["query"], "tcp 192.168.10.5 -> internal :389");
    assert_eq!(doc["errors"], serde_json::json!([]));
    let file = &doc["files"][0];
    assert_eq!(file["file"], "fixtures/asa/compliant.cfg");
    assert_eq!(file["dialect"], "asa");
    assert_eq!(file["errors"], serde_json::json!([]));
    assert_eq!(file["from"]["zone"], "perimeter");
    assert_eq!(file["from"]["zone_from_address"], true);
    assert_eq!(file["from"]["interfaces"], serde_json::json!(["dmz"]));
    assert_eq!(
        file["from"]["addresses"],
        serde_json::json!(["192.168.10.5"])
    );
    assert_eq!(file["to"]["zone"], "internal");
    assert_eq!(file["to"]["interfaces"], serde_json::json!(["inside"]));
    let p = &parts(&doc)[0];
    assert_eq!(p["verdict"], "permitted");
    assert_eq!(p["service"], "tcp/389");
    assert_eq!(p["protocols"], serde_json::json!([[6, 6]]));
    assert_eq!(p["dst_ports"], serde_json::json!([[389, 389]]));
    assert_eq!(p["src_ports"], serde_json::json!([[0, 65535]]));
    assert_eq!(p["src"], serde_json::json!(["192.168.10.5"]));
    assert_eq!(p["in_interfaces"], serde_json::json!(["dmz"]));
    assert_eq!(p["out_interfaces"], serde_json::json!(["inside"]));
    assert_eq!(p["decided_by"]["line"], 71);
    assert_eq!(p["decided_by"]["chain"], "dmz_in");
    assert!(
        p["decided_by"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("access-list dmz_in extended permit tcp")),
        "{p:#}"
    );
    assert_eq!(p["unmodelled"], Value::Null);
    assert_eq!(p["nat"], Value::Null);
    assert_eq!(p["delivered"], Value::Null);
    assert_eq!(p["alternative"], Value::Null);
    assert_eq!(p["witness"]["protocol"], 6);
    assert_eq!(p["witness"]["src"], "192.168.10.5");
    assert_eq!(p["witness"]["dst_port"], 389);
    assert_eq!(p["witness"]["in_interface"], "dmz");
    assert_eq!(p["witness"]["out_interface"], "inside");
    let first = &p["trace"][0];
    assert_eq!(first["event"], "enter-stage");
    assert_eq!(first["depth"], 0);
    assert_eq!(first["line"], Value::Null);
    assert_eq!(first["assumed"], false);
}

#[test]
fn shadowed_ldap_is_denied_at_the_deny_line_in_every_dialect() {
    // (file, the deny line, the trace of the MIS part as (event, action, line))
    let cases: [(&str, u64, Vec<TraceStep>); 3] = [
        (
            "fixtures/iptables/shadowed-ldap.rules",
            18,
            vec![
                step("enter-stage", None, None),
                step("match", Some("jump"), Some(14)),
                step("match", Some("reject"), Some(18)),
            ],
        ),
        (
            "fixtures/asa/shadowed-ldap.cfg",
            71,
            vec![
                step("enter-stage", None, None),
                step("match", Some("goto"), Some(82)),
                step("match", Some("drop"), Some(71)),
            ],
        ),
        (
            "fixtures/pfsense/shadowed-ldap.xml",
            100,
            vec![
                step("enter-stage", None, None),
                step("match", Some("reject"), Some(100)),
            ],
        ),
    ];
    for (file, line, want) in cases {
        let (code, doc) = query_json(file, "tcp perimeter -> internal :389");
        assert_eq!(code, 1, "{file}: a denied part exits 1");
        let p = if file.ends_with(".xml") {
            // pfSense's deny names the Exchange and DC hosts, not the whole network.
            parts(&doc)
                .iter()
                .find(|p| {
                    p["witness"]["src"] == "192.168.10.5" && p["witness"]["dst"] == "10.0.0.10"
                })
                .unwrap_or_else(|| panic!("{file}: a part to Exchange: {doc:#}"))
        } else {
            mis_part(&doc, 389)
        };
        assert_eq!(p["verdict"], "denied", "{file}");
        assert_eq!(p["decided_by"]["line"], line, "{file}");
        assert_eq!(trace(p), want, "{file}");
        assert!(
            parts(&doc).iter().all(|p| p["verdict"] == "denied"),
            "{file}: nothing of tcp/389 gets through"
        );
    }
}

#[test]
fn compliant_permits_ldap_in_every_dialect() {
    for (file, line) in [
        ("fixtures/iptables/compliant.rules", 18),
        ("fixtures/asa/compliant.cfg", 71),
        ("fixtures/pfsense/compliant.xml", 0),
    ] {
        let (_, doc) = query_json(file, "tcp perimeter -> internal :389");
        let p = if file.ends_with(".xml") {
            parts(&doc)
                .iter()
                .find(|p| {
                    p["witness"]["src"] == "192.168.10.5" && p["witness"]["dst"] == "10.0.0.10"
                })
                .unwrap_or_else(|| panic!("{file}: a part to Exchange: {doc:#}"))
        } else {
            mis_part(&doc, 389)
        };
        assert_eq!(p["verdict"], "permitted", "{file}: {p:#}");
        if line > 0 {
            assert_eq!(p["decided_by"]["line"], line, "{file}");
        }
        let last = trace(p).pop().expect("a step");
        assert_eq!(last.1.as_deref(), Some("accept"), "{file}");
    }
}

#[test]
fn a_port_range_gives_three_parts() {
    // The MIS host to the internal network only, so the parts differ by port alone.
    for (file, query, permit_line) in [
        (
            "fixtures/iptables/compliant.rules",
            "tcp perimeter 192.168.10.5 -> internal 10.0.0.0/24 :380-400",
            18,
        ),
        (
            "fixtures/asa/compliant.cfg",
            "tcp 192.168.10.5 -> internal :380-400",
            71,
        ),
    ] {
        let (code, doc) = query_json(file, query);
        assert_eq!(code, 1, "{file}");
        let got = summary(&doc);
        assert_eq!(got.len(), 3, "{file}: {got:?}");
        assert_eq!(got[0].0, "denied");
        assert_eq!(got[0].1, serde_json::json!([[380, 388]]));
        assert_eq!(got[1].0, "permitted");
        assert_eq!(got[1].1, serde_json::json!([[389, 389]]));
        assert_eq!(got[1].2, permit_line, "{file}");
        assert_eq!(got[2].0, "denied");
        assert_eq!(got[2].1, serde_json::json!([[390, 400]]));
        let by_default = &parts(&doc)[0]["decided_by"];
        assert!(
            by_default["what"]
                .as_str()
                .is_some_and(|w| w.contains("policy") || w.contains("implicit")),
            "{file}: denied by the default: {by_default:#}"
        );
    }
    // iptables: the denied ports go into the user chain, come back, and hit the policy.
    let (_, doc) = query_json(
        "fixtures/iptables/compliant.rules",
        "tcp perimeter 192.168.10.5 -> internal 10.0.0.0/24 :380-400",
    );
    assert_eq!(
        trace(&parts(&doc)[0]),
        vec![
            step("enter-stage", None, None),
            step("match", Some("jump"), Some(14)),
            step("return", None, None),
            step("match", Some("continue"), Some(17)),
            step("default", Some("drop"), Some(8)),
        ]
    );
}

#[test]
fn a_port_forward_shows_the_dnat_step() {
    let (code, doc) = query_json(
        "fixtures/iptables/extra-port-forward.rules",
        "tcp public -> perimeter :443",
    );
    assert_eq!(code, 1, "packets to other perimeter hosts are denied");
    let p = parts(&doc)
        .iter()
        .find(|p| p["nat"] != Value::Null)
        .unwrap_or_else(|| panic!("a NAT part: {doc:#}"));
    assert_eq!(p["verdict"], "permitted");
    assert_eq!(p["nat"]["line"], 13);
    assert_eq!(p["decided_by"]["line"], 20);
    assert_eq!(p["witness"]["dst"], "203.0.113.1");
    assert_eq!(p["delivered"]["dst"], "192.168.10.5");
    assert_eq!(
        trace(p),
        vec![
            step("enter-stage", None, None),
            step("match", Some("dnat"), Some(13)),
            step("enter-stage", None, None),
            step("match", Some("accept"), Some(20)),
        ]
    );
    assert_eq!(p["trace"][1]["detail"], "DNAT to 192.168.10.5");
}

#[test]
fn an_unmodelled_rule_gives_a_may_part_with_both_paths() {
    let (code, doc) = query_json(
        "fixtures/asa/unknown-module.cfg",
        "tcp 192.168.10.5 -> internal :445",
    );
    assert_eq!(code, 1, "{doc:#}");
    let p = &parts(&doc)[0];
    assert_eq!(p["verdict"], "may");
    assert_eq!(p["unmodelled"]["line"], 78);
    assert_eq!(p["decided_by"]["line"], 78);
    assert_eq!(p["alternative"]["verdict"], "denied");
    assert!(
        p["trace"]
            .as_array()
            .is_some_and(|t| t.iter().any(|s| s["assumed"] == true))
    );
}

#[test]
fn portless_protocols_are_asked_without_ports() {
    let (code, doc) = query_json(
        "fixtures/pfsense/ipsec-plain-port.xml",
        "esp perimeter -> internal",
    );
    let verdicts: Vec<&str> = parts(&doc)
        .iter()
        .filter_map(|p| p["verdict"].as_str())
        .collect();
    assert!(verdicts.contains(&"permitted"), "{doc:#}");
    assert_eq!(code, 1, "hosts other than MIS are denied");
    let p = parts(&doc)
        .iter()
        .find(|p| p["verdict"] == "permitted")
        .expect("permitted");
    assert_eq!(p["service"], "esp");
    assert_eq!(p["dst_ports"], serde_json::json!([]));
    assert_eq!(p["witness"].get("dst_port"), None);
}

#[test]
fn human_output_shows_the_trace_with_config_text() {
    let mut args = vec![
        "fixtures/iptables/shadowed-ldap.rules",
        "--query",
        "tcp perimeter 192.168.10.5 -> internal 10.0.0.0/24 :389",
    ];
    args.extend(IPTABLES_ZONES);
    let (code, out, _) = run(&args);
    assert_eq!(code, 1);
    assert!(out.contains("DENIED"), "{out}");
    assert!(
        out.contains("decided by line 18: -A MIS-TO-INTERNAL -p tcp -m tcp --dport 389 -j REJECT"),
        "{out}"
    );
    assert!(out.contains("jump to MIS-TO-INTERNAL"), "{out}");
    assert!(out.contains("   18  reject"), "{out}");
}

#[test]
fn errors_exit_2() {
    let (code, _, stderr) = run(&[
        "fixtures/asa/compliant.cfg",
        "--query",
        "tcp perimeter => internal",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("expected `->`"), "{stderr}");
    // iptables without --zone: the zone cannot be placed.
    let (code, doc) = {
        let (code, out, _) = run(&[
            "fixtures/iptables/compliant.rules",
            "--query",
            "tcp perimeter -> internal :389",
            "--format",
            "json",
        ]);
        (code, serde_json::from_str::<Value>(&out).expect("json"))
    };
    assert_eq!(code, 2);
    let err = doc["files"][0]["errors"][0].as_str().unwrap_or_default();
    assert!(err.contains("--zone IFACE=perimeter"), "{err}");
    let (code, _, stderr) = run(&[
        "fixtures/asa/compliant.cfg",
        "--query",
        "tcp any -> any",
        "--format",
        "sarif",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--format sarif cannot be used with --query"),
        "{stderr}"
    );
}

#[test]
fn matrix_lists_services_by_rule() {
    let (code, out, stderr) = run(&["fixtures/asa/compliant.cfg", "--matrix"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        out.contains("zones: public (outside), perimeter (dmz), internal (inside)"),
        "{out}"
    );
    assert!(out.contains("perimeter -> internal:"), "{out}");
    assert!(out.contains("public -> perimeter: nothing"), "{out}");
    let ldap = out
        .lines()
        .find(|l| l.contains("line   72") || l.contains("line   71"))
        .unwrap_or_else(|| panic!("the ldap permit: {out}"));
    assert!(ldap.contains("tcp/389"), "{ldap}");
    let (_, out, _) = run(&["fixtures/asa/compliant.cfg", "--matrix", "--format", "json"]);
    let doc: Value = serde_json::from_str(&out).expect("json");
    let pair = doc["files"][0]["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .find(|p| p["from"] == "perimeter" && p["to"] == "internal")
        .expect("perimeter -> internal");
    let ldap = pair["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == "tcp/389")
        .expect("tcp/389");
    assert_eq!(ldap["protocols"]["6"], serde_json::json!([[389, 389]]));
    assert_eq!(ldap["may"], false);
}

/// Structural DOT check: one digraph, balanced braces outside strings, terminated
/// statements, every edge between declared nodes.
fn check_dot(dot: &str) {
    assert!(dot.starts_with("digraph "), "{dot}");
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    for c in dot.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                (false, '\n') => panic!("raw line break in a DOT string"),
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0, "unbalanced braces");
    }
    assert_eq!(depth, 0, "unbalanced braces");
    assert!(!in_string, "unterminated string");
    let nodes: Vec<&str> = dot
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" [label=") && !l.contains("->"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for edge in dot.lines().map(str::trim).filter(|l| l.contains(" -> ")) {
        let mut words = edge.split_whitespace();
        let (from, arrow, to) = (words.next(), words.next(), words.next());
        assert_eq!(arrow, Some("->"), "{edge}");
        assert!(
            from.is_some_and(|f| nodes.contains(&f)),
            "undeclared node in {edge}"
        );
        assert!(
            to.is_some_and(|t| nodes.contains(&t)),
            "undeclared node in {edge}"
        );
        assert!(edge.ends_with("];"), "{edge}");
    }
}

#[test]
fn dot_is_a_valid_drawing_of_the_matrix() {
    // Without --zone the iptables file has no zones: an empty cluster, still valid.
    let (code, dot, stderr) = run(&[
        "fixtures/asa/compliant.cfg",
        "fixtures/iptables/compliant.rules",
        "--format",
        "dot",
    ]);
    assert_eq!(code, 0, "{stderr}");
    check_dot(&dot);
    assert!(dot.contains("subgraph cluster_0"), "{dot}");
    assert!(dot.contains("subgraph cluster_1"), "{dot}");
    assert!(
        dot.contains("f0_perimeter -> f0_internal [label=\"tcp/80 (line 62)\\n"),
        "{dot}"
    );
    assert!(
        dot.contains("f0_internal [label=\"internal\\ninside\"]"),
        "{dot}"
    );
    // Graphviz itself, when installed: the drawing must render.
    if let Ok(mut child) = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(dot.as_bytes())
            .expect("dot reads its input");
        let out = child.wait_with_output().expect("dot runs");
        assert!(out.status.success(), "dot -Tsvg failed on:\n{dot}");
    }
}
