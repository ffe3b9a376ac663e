//! The machine formats end to end: the built binary with `--format json|sarif|github` on
//! a directory holding one config and one file that cannot be linted, plus a missing
//! path. JSON is validated against the committed docs/json-schema.json, SARIF against
//! the official OASIS schema, and the three formats must agree on what they report.
//!
//! Nothing here depends on what a parser says about the config: only on the shape of
//! the output and on the files that cannot be linted, so the tests hold whether the
//! parsers are stubs or complete.

use mislint::graph::{Dialect, Zone};
use mislint::report::finding::{Finding, Severity, Witness};
use mislint::report::human::sanitize;
use mislint::report::{Report, Sources};
use mislint::source::{FileId, SourceFile, Span};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Looks like an iptables dump but holds a Latin-1 byte, so it cannot be linted.
const LATIN1: &[u8] = b"*filter\n-A FORWARD -m comment --comment \"caf\xe9\" -j ACCEPT\nCOMMIT\n";

const CONFIG: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -i eth1 -o eth2 -p tcp --dport 389 -j ACCEPT\nCOMMIT\n";

/// A fresh directory under the system temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("mislint-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("fw")).expect("the temp dir is writable");
        Scratch(dir)
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(rel), bytes).expect("the temp dir is writable");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `fw/edge.rules` (a config), `fw/latin1.rules` (iptables-like but not UTF-8: cannot be
/// linted), `fw/locked.rules` (mode 000: cannot be read, except by root), `fw/notes.txt`
/// (no config: passed over), and `missing.rules` is named but absent.
fn troubled_tree(name: &str) -> Scratch {
    let s = Scratch::new(name);
    s.write("fw/edge.rules", CONFIG.as_bytes());
    s.write("fw/latin1.rules", LATIN1);
    s.write("fw/locked.rules", CONFIG.as_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = s.0.join("fw/locked.rules");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000))
            .expect("the temp dir is ours");
    }
    s.write("fw/notes.txt", b"nothing to see\n");
    s
}

/// The paths mislint reports as errors and the configs it lints in a troubled tree:
/// `fw/locked.rules` is one or the other depending on whether we run as root.
fn expected_paths(s: &Scratch) -> (Vec<&'static str>, Vec<&'static str>) {
    if std::fs::read(s.0.join("fw/locked.rules")).is_ok() {
        (
            vec!["fw/latin1.rules", "missing.rules"],
            vec!["fw/edge.rules", "fw/locked.rules"],
        )
    } else {
        (
            vec!["fw/latin1.rules", "fw/locked.rules", "missing.rules"],
            vec!["fw/edge.rules"],
        )
    }
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mislint"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the mislint binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    )
}

fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn json_validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json-schema.json");
    let text = std::fs::read_to_string(path).expect("docs/json-schema.json is in the repo");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "the validator below is set up for draft 2020-12"
    );
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the committed schema compiles")
}

fn sarif_validator() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/schemas/sarif-schema-2.1.0.json"
    );
    let text = std::fs::read_to_string(path).expect("the shared SARIF schema is present");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    // The OASIS schema declares draft-04 (`id`, not `$id`); validate it as such.
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the official schema compiles")
}

fn parse(stdout: &str) -> Value {
    serde_json::from_str(stdout).expect("stdout is one JSON document")
}

#[test]
fn json_output_matches_the_committed_schema() {
    let tree = troubled_tree("json");
    let (code, stdout, _) = run(&tree.0, &["fw", "missing.rules", "--format", "json"]);
    assert_eq!(code, 2, "paths that cannot be linted make the run fail");
    let doc = parse(&stdout);
    assert_eq!(schema_errors(&json_validator(), &doc), Vec::<String>::new());
    assert_eq!(doc["version"], 1);
    let (want_errors, want_files) = expected_paths(&tree);
    let files: Vec<&str> = doc["files"]
        .as_array()
        .expect("files is an array")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(files, want_files);
    for f in doc["files"].as_array().expect("files is an array") {
        assert_eq!(f["dialect"], "iptables");
    }
    let errors: Vec<&str> = doc["errors"]
        .as_array()
        .expect("errors is an array")
        .iter()
        .filter_map(|e| e["file"].as_str())
        .collect();
    assert_eq!(errors, want_errors);
    let bad_byte = LATIN1.iter().position(|&b| b == 0xe9);
    assert_eq!(
        doc["errors"][0]["offset"].as_u64(),
        bad_byte.map(|p| p as u64)
    );
    for f in doc["findings"].as_array().expect("findings is an array") {
        let file = f["file"].as_str().expect("findings name their file");
        assert!(want_files.contains(&file), "{file}");
    }
}

#[test]
fn json_schema_covers_every_field() {
    // A finding with every optional part set, rendered by the library's JSON renderer.
    let file = SourceFile::new(FileId(0), "fw/edge.rules", CONFIG);
    let sources = Sources::new(vec![(file, Some(Dialect::Iptables))]);
    let at = |part: &str| {
        let start = CONFIG.find(part).expect("the config contains the part");
        Span::new(FileId(0), start, start + part.len())
    };
    let mut f = Finding::new(
        "needless-port",
        Severity::Warning,
        at("-A FORWARD"),
        "`tcp/389` is permitted",
    )
    .with_label("permits it")
    .with_related(at(":FORWARD DROP"), "default")
    .with_help("narrow it")
    .maybe();
    f.requirement = Some("ldap".into());
    f.scenario = Some("exchange2000-smtp".into());
    f.from_zone = Some(Zone::Perimeter);
    f.to_zone = Some(Zone::Internal);
    f.protocol = Some(6);
    f.ports = vec![(389, 389), (1024, 65535)];
    f.kb = Some("LDAP".into());
    f.suppressed = Some("wanted".into());
    f.witness = Some(Witness {
        protocol: 6,
        src: "2001:db8::1".parse().expect("literal address"),
        dst: "10.0.0.1".parse().expect("literal address"),
        src_port: Some(40000),
        dst_port: Some(389),
        in_interface: Some("eth1".into()),
        out_interface: Some("eth2".into()),
    });
    let report = Report {
        findings: vec![f],
        problems: vec![],
    };
    let mut out = Vec::new();
    mislint::report::json::render(&report, &sources, &mut out).expect("writing to a Vec");
    let doc: Value = serde_json::from_slice(&out).expect("the renderer writes JSON");
    let validator = json_validator();
    assert_eq!(schema_errors(&validator, &doc), Vec::<String>::new());
    // The schema is strict: an unknown field or a wrong type is caught.
    let mut extra = doc.clone();
    extra["findings"][0]["surprise"] = Value::Bool(true);
    assert!(!schema_errors(&validator, &extra).is_empty());
    let mut bad = doc;
    bad["findings"][0]["witness"]["src"] = Value::from("not an address");
    assert!(!schema_errors(&validator, &bad).is_empty());
}

#[test]
fn sarif_output_matches_the_official_schema() {
    let tree = troubled_tree("sarif");
    let (code, stdout, _) = run(&tree.0, &["fw", "missing.rules", "--format", "sarif"]);
    assert_eq!(code, 2);
    let (want_errors, want_files) = expected_paths(&tree);
    let log = parse(&stdout);
    assert_eq!(
        schema_errors(&sarif_validator(), &log),
        Vec::<String>::new()
    );
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"]
        .as_array()
        .expect("the driver lists its rules");
    for r in run["results"].as_array().expect("results is an array") {
        let index = r["ruleIndex"].as_u64().expect("results name their rule") as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        let loc = &r["locations"][0]["physicalLocation"]["artifactLocation"];
        let uri = loc["uri"].as_str().expect("results have a location");
        assert!(want_files.contains(&uri), "{uri}");
        assert_eq!(loc["uriBaseId"], "%SRCROOT%");
    }
    let invocation = &run["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    let uris: Vec<&str> = invocation["toolExecutionNotifications"]
        .as_array()
        .expect("unreadable paths are notifications")
        .iter()
        .filter_map(|n| n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str())
        .collect();
    assert_eq!(uris, want_errors);
}

#[test]
fn github_output_is_only_workflow_commands() {
    let tree = troubled_tree("github");
    let (code, stdout, _) = run(&tree.0, &["fw", "missing.rules", "--format", "github"]);
    assert_eq!(code, 2);
    let lines: Vec<&str> = stdout.lines().collect();
    for line in &lines {
        assert!(
            ["::error ", "::warning ", "::notice "]
                .iter()
                .any(|p| line.starts_with(p)),
            "not a workflow command: {line}"
        );
        // Properties, then `::`, then the message (which may itself hold `::`, e.g. IPv6).
        let props = line.get(2..).and_then(|rest| rest.split_once("::"));
        assert!(
            props.is_some_and(|(p, _)| !p.contains(' ') || p.contains('=')),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l.starts_with(
        "::error file=fw/latin1.rules,title=mislint::`fw/latin1.rules` is not valid UTF-8"
    )));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::error file=missing.rules,title=mislint::"))
    );
    let (want_errors, want_files) = expected_paths(&tree);
    for path in want_errors {
        let start = format!("::error file={path},title=mislint::");
        assert!(lines.iter().any(|l| l.starts_with(&start)), "{start}");
    }
    for line in lines.iter().filter(|l| l.contains("title=mislint ")) {
        assert!(
            want_files
                .iter()
                .any(|f| line.contains(&format!("file={f},line="))),
            "{line}"
        );
    }
}

#[test]
fn formats_agree_on_what_they_report() {
    let tree = troubled_tree("agree");
    let args = |format: &'static str| ["fw", "missing.rules", "--format", format];
    let json = parse(&run(&tree.0, &args("json")).1);
    let sarif = parse(&run(&tree.0, &args("sarif")).1);
    let github = run(&tree.0, &args("github")).1;
    let findings = json["findings"].as_array().expect("findings is an array");
    let shown = findings
        .iter()
        .filter(|f| f["suppressed"].is_null())
        .count();
    let errors = json["errors"].as_array().expect("errors is an array").len();
    let results = sarif["runs"][0]["results"]
        .as_array()
        .expect("results is an array");
    assert_eq!(results.len(), findings.len());
    for (r, f) in results.iter().zip(findings) {
        assert_eq!(r["ruleId"], f["rule"]);
        let message = f["message"].as_str().expect("findings have a message");
        assert_eq!(r["message"]["text"], sanitize(message));
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], f["line"]);
        assert_eq!(region["startColumn"], f["column"]);
        assert_eq!(region["endLine"], f["end_line"]);
        assert_eq!(region["endColumn"], f["end_column"]);
    }
    assert_eq!(github.lines().count(), shown + errors);
}

#[test]
fn clean_run_is_successful_and_silent_in_github_format() {
    let s = Scratch::new("clean");
    s.write("fw/notes.txt", b"no firewall here\n");
    let (code, stdout, _) = run(&s.0, &["fw", "--format", "github"]);
    assert_eq!((code, stdout.as_str()), (0, ""));
    let (code, stdout, _) = run(&s.0, &["fw", "--format", "sarif"]);
    assert_eq!(code, 0);
    let log = parse(&stdout);
    assert_eq!(
        schema_errors(&sarif_validator(), &log),
        Vec::<String>::new()
    );
    assert_eq!(
        log["runs"][0]["invocations"][0]["executionSuccessful"],
        true
    );
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
    let (code, stdout, _) = run(&s.0, &["fw", "--format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(
        schema_errors(&json_validator(), &parse(&stdout)),
        Vec::<String>::new()
    );
}

#[test]
fn help_lists_the_formats() {
    let (code, stdout, _) = run(Path::new(env!("CARGO_MANIFEST_DIR")), &["--help"]);
    assert_eq!(code, 0);
    for format in ["human", "json", "sarif", "github"] {
        assert!(stdout.contains(format), "--help names {format}");
    }
}
