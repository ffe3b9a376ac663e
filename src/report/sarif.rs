//! `--format sarif`: findings as a SARIF 2.1.0 log for code-scanning services.
//!
//! The last stage of the pipeline, beside `human` and `json`. The structs below are a
//! typed subset of the OASIS SARIF 2.1.0 schema (../shared/schemas/sarif-schema-2.1.0.json),
//! only what mislint fills in. The rule metadata comes from the check registry, so
//! `--explain`, SARIF and the README describe a finding kind with the same text.
//!
//! Choices the spec leaves to the producer, documented in docs/output.md:
//! - columns count Unicode code points (`columnKind: unicodeCodePoints`), as `LineIndex` does;
//! - relative paths are percent-encoded URI references against `%SRCROOT%`, absolute paths
//!   are `file://` URIs without a base;
//! - `partialFingerprints["mislint/v1"]` hashes rule, path and the primary line's text (plus
//!   an occurrence count), so moving a line up or down keeps its fingerprint;
//! - suppressed findings stay in the log with a `suppressions` entry, as the spec intends,
//!   so code scanning shows them as dismissed rather than forgetting them;
//! - messages and labels go through `human::sanitize` (control and bidi characters shown as
//!   escapes), because viewers render them; snippets stay byte-exact copies of the file.

use super::finding::{Certainty, Finding, Severity, Witness};
use super::human::sanitize;
use super::{Report, Sources};
use crate::checks::{CheckMeta, all_metas, proto_name};
use crate::graph::Zone;
use crate::source::Span;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Component, Path};

/// Where the SARIF 2.1.0 schema (OASIS errata 01, the final standard) is published.
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The base id relative artifact URIs are resolved against: the directory mislint ran in,
/// which in CI is the repository root.
pub const SRCROOT: &str = "%SRCROOT%";

/// The key of mislint's fingerprint in `partialFingerprints`; bump the suffix if the
/// hashed parts ever change, so old and new fingerprints are not compared.
pub const FINGERPRINT_KEY: &str = "mislint/v1";

#[derive(Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a> {
    tool: Tool,
    invocations: [Invocation; 1],
    column_kind: &'static str,
    results: Vec<SarifResult<'a>>,
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    information_uri: Option<&'static str>,
    rules: Vec<RuleDescriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleDescriptor {
    id: &'static str,
    name: String,
    short_description: Message,
    full_description: Message,
    help: Help,
    default_configuration: RuleConfiguration,
}

#[derive(Serialize)]
struct Help {
    text: String,
    markdown: String,
}

#[derive(Serialize)]
struct RuleConfiguration {
    level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    execution_successful: bool,
    tool_execution_notifications: Vec<Notification>,
}

#[derive(Serialize)]
struct Notification {
    level: &'static str,
    message: Message,
    locations: Vec<Location>,
}

#[derive(Serialize)]
struct Message {
    text: String,
}

impl Message {
    fn new(text: impl Into<String>) -> Message {
        Message { text: text.into() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<usize>,
    level: &'static str,
    message: Message,
    locations: Vec<Location>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_locations: Vec<Location>,
    partial_fingerprints: BTreeMap<&'static str, String>,
    properties: Properties<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    suppressions: Vec<Suppression>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fixes: Vec<SarifFix>,
}

/// The result's property bag: mislint's own fields, named as in the JSON output.
#[derive(Serialize)]
struct Properties<'a> {
    certainty: Certainty,
    #[serde(skip_serializing_if = "Option::is_none")]
    requirement: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_zone: Option<Zone>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_zone: Option<Zone>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    ports: &'a [(u16, u16)],
    #[serde(skip_serializing_if = "Option::is_none")]
    witness: Option<&'a Witness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kb: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<usize>,
    physical_location: PhysicalLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Message>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Region>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocation {
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<&'static str>,
}

/// A text region (1-based lines, code-point columns, end column one past the last
/// character) or, for a file that is not valid UTF-8, a binary one at a byte offset.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Region {
    #[serde(skip_serializing_if = "Option::is_none")]
    start_line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    byte_offset: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snippet: Option<Message>,
}

#[derive(Serialize)]
struct Suppression {
    kind: &'static str,
    status: &'static str,
    justification: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifFix {
    description: Message,
    artifact_changes: Vec<ArtifactChange>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactChange {
    artifact_location: ArtifactLocation,
    replacements: Vec<Replacement>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Replacement {
    deleted_region: Region,
    inserted_content: Message,
}

/// Writes the report as one SARIF 2.1.0 log with one run.
pub fn render(report: &Report, sources: &Sources, out: &mut dyn Write) -> io::Result<()> {
    let metas: Vec<&CheckMeta> = all_metas().collect();
    let mut fingerprints = Fingerprints::default();
    let results = report
        .findings
        .iter()
        .map(|f| result(f, sources, &metas, &mut fingerprints))
        .collect();
    let log = Log {
        schema: SCHEMA_URI,
        version: "2.1.0",
        runs: [Run {
            tool: Tool {
                driver: Driver {
                    name: "mislint",
                    version: env!("CARGO_PKG_VERSION"),
                    information_uri: information_uri(),
                    rules: metas.iter().map(|m| rule_descriptor(m)).collect(),
                },
            },
            invocations: [Invocation {
                execution_successful: !report.has_errors(),
                tool_execution_notifications: report
                    .problems
                    .iter()
                    .map(|p| Notification {
                        level: "error",
                        message: Message::new(sanitize(&format!(
                            "`{}` {}",
                            p.path.display(),
                            p.message
                        ))),
                        locations: vec![Location {
                            id: None,
                            physical_location: PhysicalLocation {
                                artifact_location: artifact_location(&p.path),
                                region: p.offset.map(|o| Region {
                                    byte_offset: Some(o),
                                    ..Region::default()
                                }),
                            },
                            message: None,
                        }],
                    })
                    .collect(),
            }],
            column_kind: "unicodeCodePoints",
            results,
        }],
    };
    serde_json::to_writer_pretty(&mut *out, &log).map_err(io::Error::other)?;
    writeln!(out)
}

/// The project's home page, if Cargo.toml names one.
fn information_uri() -> Option<&'static str> {
    [env!("CARGO_PKG_HOMEPAGE"), env!("CARGO_PKG_REPOSITORY")]
        .into_iter()
        .find(|u| !u.is_empty())
}

fn rule_descriptor(m: &CheckMeta) -> RuleDescriptor {
    RuleDescriptor {
        id: m.name,
        name: pascal_case(m.name),
        short_description: Message::new(m.summary),
        full_description: Message::new(first_section(m.doc).unwrap_or(m.summary)),
        help: Help {
            text: m.doc.trim_end().to_string(),
            markdown: m.doc.trim_end().to_string(),
        },
        default_configuration: RuleConfiguration {
            level: level(m.severity),
        },
    }
}

/// SARIF's `level` for a severity (the names coincide).
fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// `needless-port` → `NeedlessPort`: SARIF viewers show `name` as the rule's readable
/// name and the SARIF validator asks for Pascal case.
fn pascal_case(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map_or_else(String::new, |c| {
                c.to_uppercase().chain(cs).collect::<String>()
            })
        })
        .collect()
}

/// The body of a check doc's first `## ` section ("What it finds"), trimmed.
fn first_section(doc: &str) -> Option<&str> {
    let start = doc.find("## ")?;
    let body = doc.get(start..)?.split_once('\n')?.1;
    let end = body.find("\n## ").unwrap_or(body.len());
    let text = body.get(..end)?.trim();
    (!text.is_empty()).then_some(text)
}

fn result<'a>(
    f: &'a Finding,
    sources: &Sources,
    metas: &[&CheckMeta],
    fingerprints: &mut Fingerprints,
) -> SarifResult<'a> {
    let label_message = |text: &str| (!text.is_empty()).then(|| Message::new(sanitize(text)));
    let primary = location(
        sources,
        f.primary.span,
        None,
        label_message(&f.primary.text),
    );
    let fingerprint = primary_line(sources, f.primary.span)
        .map(|(uri, line)| fingerprints.next(f.rule, &uri, line));
    SarifResult {
        rule_id: f.rule,
        rule_index: metas.iter().position(|m| m.name == f.rule),
        level: level(f.severity),
        message: Message::new(sanitize(&f.message)),
        locations: primary.into_iter().collect(),
        related_locations: f
            .related
            .iter()
            .enumerate()
            .filter_map(|(i, r)| location(sources, r.span, Some(i), label_message(&r.text)))
            .collect(),
        partial_fingerprints: fingerprint
            .map(|h| (FINGERPRINT_KEY, h))
            .into_iter()
            .collect(),
        properties: Properties {
            certainty: f.certainty,
            requirement: f.requirement.as_deref(),
            scenario: f.scenario.as_deref(),
            from_zone: f.from_zone,
            to_zone: f.to_zone,
            protocol: f.protocol.map(proto_name),
            ports: &f.ports,
            witness: f.witness.as_ref(),
            kb: f.kb.as_deref(),
        },
        suppressions: f
            .suppressed
            .iter()
            .map(|reason| Suppression {
                // In the config line itself (comment, remark, description), or in the
                // site file beside it.
                kind: if f.suppressed_inline {
                    "inSource"
                } else {
                    "external"
                },
                status: "accepted",
                justification: sanitize(reason),
            })
            .collect(),
        fixes: f
            .fix
            .iter()
            .map(|fix| SarifFix {
                description: Message::new(sanitize(&fix.title)),
                artifact_changes: artifact_changes(sources, &fix.edits),
            })
            .collect(),
    }
}

/// One change per file, its edits in order.
fn artifact_changes(sources: &Sources, edits: &[super::finding::Edit]) -> Vec<ArtifactChange> {
    let mut changes: Vec<ArtifactChange> = Vec::new();
    for edit in edits {
        let Some(file) = sources.file(edit.span.file) else {
            continue;
        };
        let replacement = Replacement {
            deleted_region: text_region(sources, edit.span, false),
            inserted_content: Message::new(edit.text.clone()),
        };
        let at = artifact_location(&file.path);
        match changes.iter_mut().find(|c| c.artifact_location == at) {
            Some(change) => change.replacements.push(replacement),
            None => changes.push(ArtifactChange {
                artifact_location: at,
                replacements: vec![replacement],
            }),
        }
    }
    changes
}

/// The location of a span, or `None` if its file is not among the sources.
fn location(
    sources: &Sources,
    span: Span,
    id: Option<usize>,
    message: Option<Message>,
) -> Option<Location> {
    let file = sources.file(span.file)?;
    Some(Location {
        id,
        physical_location: PhysicalLocation {
            artifact_location: artifact_location(&file.path),
            region: Some(text_region(sources, span, true)),
        },
        message,
    })
}

fn text_region(sources: &Sources, span: Span, with_snippet: bool) -> Region {
    let (start_line, start_column) = sources.line_col(span.file, span.start);
    let (end_line, end_column) = sources.line_col(span.file, span.end);
    let snippet = sources
        .file(span.file)
        .map(|f| f.slice(span))
        .filter(|s| with_snippet && !s.is_empty())
        .map(Message::new);
    Region {
        start_line: Some(start_line),
        start_column: Some(start_column),
        end_line: Some(end_line),
        end_column: Some(end_column),
        byte_offset: None,
        snippet,
    }
}

/// How a path is named in the log: relative paths as percent-encoded URI references
/// against `%SRCROOT%`, absolute paths as `file://` URIs.
fn artifact_location(path: &Path) -> ArtifactLocation {
    let mut segments = Vec::new();
    let mut absolute = false;
    for c in path.components() {
        match c {
            Component::Prefix(p) => {
                // A Windows drive (`C:`) stays as written: `file:///C:/…` is its URI form.
                segments.push(p.as_os_str().to_string_lossy().replace('\\', "/"));
                absolute = true;
            }
            Component::RootDir => absolute = true,
            Component::CurDir => {}
            Component::ParentDir => segments.push("..".to_string()),
            Component::Normal(s) => segments.push(percent_encode(&os_bytes(s))),
        }
    }
    let joined = segments.join("/");
    if absolute {
        ArtifactLocation {
            uri: format!("file:///{joined}"),
            uri_base_id: None,
        }
    } else {
        ArtifactLocation {
            uri: joined,
            uri_base_id: Some(SRCROOT),
        }
    }
}

/// A path segment's bytes: exact on Unix, where names need not be UTF-8.
#[cfg(unix)]
fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes().to_vec()
}

/// A path segment's bytes: elsewhere via its UTF-8 form.
#[cfg(not(unix))]
fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

/// Percent-encodes everything but RFC 3986's unreserved characters. Encoding `:` as
/// well keeps a first segment like `a:b` from reading as a URI scheme.
fn percent_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The URI of the primary span's file and the text of its line, the parts of a
/// fingerprint that survive the line moving.
fn primary_line(sources: &Sources, span: Span) -> Option<(String, &str)> {
    let file = sources.file(span.file)?;
    let uri = artifact_location(&file.path).uri;
    Some((uri, line_text(&file.text, span.start as usize)))
}

/// The line around a byte offset, without its line break.
fn line_text(text: &str, offset: usize) -> &str {
    let offset = offset.min(text.len());
    let start = text
        .get(..offset)
        .and_then(|s| s.rfind('\n'))
        .map_or(0, |i| i + 1);
    let end = text
        .get(offset..)
        .and_then(|s| s.find('\n'))
        .map_or(text.len(), |i| offset + i);
    text.get(start..end).unwrap_or("").trim_end_matches('\r')
}

/// Counts findings with the same rule, file and line text, so identical lines keep
/// distinct fingerprints (`<hash>:1`, `<hash>:2`) in file order.
#[derive(Default)]
struct Fingerprints {
    seen: BTreeMap<u64, usize>,
}

impl Fingerprints {
    fn next(&mut self, rule: &str, uri: &str, line: &str) -> String {
        let hash = fnv1a(&[rule, uri, line.trim()]);
        let n = self.seen.entry(hash).or_insert(0);
        *n += 1;
        format!("{hash:016x}:{n}")
    }
}

/// 64-bit FNV-1a over the parts, each followed by a NUL. Written out rather than
/// `DefaultHasher`, whose output may change between Rust releases: fingerprints must
/// stay equal across mislint builds.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes().iter().chain(&[0u8]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::FileProblem;
    use crate::graph::Dialect;
    use crate::report::finding::{Edit, Fix};
    use crate::source::{FileId, SourceFile};
    use serde_json::Value;
    use std::path::PathBuf;

    const RULES: &str = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport 80 -j ACCEPT\n-A FORWARD -p tcp --dport 389 -j DROP # «é»\n";

    fn sources(path: &str, text: &str) -> Sources {
        Sources::new(vec![(
            SourceFile::new(FileId(0), path, text),
            Some(Dialect::Iptables),
        )])
    }

    fn span_of(text: &str, part: &str) -> Span {
        let start = text.find(part).expect("the test text contains the part");
        Span::new(FileId(0), start, start + part.len())
    }

    fn needless(text: &str) -> Finding {
        let mut f = Finding::new(
            "needless-port",
            Severity::Warning,
            span_of(text, "-A FORWARD -p tcp --dport 80 -j ACCEPT"),
            "`tcp/80` is permitted from the perimeter to the internal network",
        )
        .with_label("permits it")
        .with_related(span_of(text, ":FORWARD DROP"), "default of `FORWARD`");
        f.requirement = Some("http".into());
        f.from_zone = Some(Zone::Perimeter);
        f.to_zone = Some(Zone::Internal);
        f.protocol = Some(6);
        f.ports = vec![(80, 80)];
        f.witness = Some(Witness {
            protocol: 6,
            src: "192.0.2.1".parse().expect("literal address"),
            dst: "10.0.0.1".parse().expect("literal address"),
            src_port: Some(1024),
            dst_port: Some(80),
            in_interface: Some("eth1".into()),
            out_interface: None,
        });
        f
    }

    fn render_value(report: &Report, sources: &Sources) -> Value {
        let mut out = Vec::new();
        render(report, sources, &mut out).expect("writing to a Vec succeeds");
        serde_json::from_slice(&out).expect("the renderer writes JSON")
    }

    fn official_schema_errors(log: &Value) -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/schemas/sarif-schema-2.1.0.json"
        );
        let text = std::fs::read_to_string(path).expect("the shared SARIF schema is present");
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        let validator = jsonschema::draft4::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the official schema compiles");
        validator
            .iter_errors(log)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    #[test]
    fn result_carries_rule_location_and_properties() {
        let src = sources("fw/edge.rules", RULES);
        let report = Report {
            findings: vec![needless(RULES)],
            problems: vec![],
        };
        let log = render_value(&report, &src);
        let run = &log["runs"][0];
        assert_eq!(log["version"], "2.1.0");
        assert_eq!(run["columnKind"], "unicodeCodePoints");
        let r = &run["results"][0];
        assert_eq!(r["ruleId"], "needless-port");
        let index = r["ruleIndex"].as_u64().expect("ruleIndex is set") as usize;
        assert_eq!(run["tool"]["driver"]["rules"][index]["id"], "needless-port");
        assert_eq!(r["level"], "warning");
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "fw/edge.rules");
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(loc["region"]["startLine"], 3);
        assert_eq!(loc["region"]["startColumn"], 1);
        assert_eq!(loc["region"]["endLine"], 3);
        assert_eq!(loc["region"]["endColumn"], 39);
        assert_eq!(
            loc["region"]["snippet"]["text"],
            "-A FORWARD -p tcp --dport 80 -j ACCEPT"
        );
        assert_eq!(r["locations"][0]["message"]["text"], "permits it");
        let related = &r["relatedLocations"][0];
        assert_eq!(related["id"], 0);
        assert_eq!(related["message"]["text"], "default of `FORWARD`");
        assert_eq!(related["physicalLocation"]["region"]["startLine"], 2);
        let p = &r["properties"];
        assert_eq!(p["certainty"], "definite");
        assert_eq!(p["requirement"], "http");
        assert_eq!(p["from_zone"], "perimeter");
        assert_eq!(p["to_zone"], "internal");
        assert_eq!(p["protocol"], "tcp");
        assert_eq!(p["ports"], serde_json::json!([[80, 80]]));
        assert_eq!(p["witness"]["dst_port"], 80);
        assert!(r.get("suppressions").is_none());
        assert_eq!(run["invocations"][0]["executionSuccessful"], true);
        assert_eq!(official_schema_errors(&log), Vec::<String>::new());
    }

    /// Logs covering every part the renderer writes, for the schema here and for
    /// Microsoft's SARIF validator in `.ci/sarif-validate.sh`.
    fn sample_logs() -> Vec<(&'static str, Value)> {
        let two = Sources::new(vec![
            (
                SourceFile::new(FileId(0), "./fw/edge 1.rules", RULES),
                Some(Dialect::Iptables),
            ),
            (
                SourceFile::new(FileId(1), "/abs/inner.rules", RULES),
                Some(Dialect::Iptables),
            ),
        ]);
        let mut rich = needless(RULES);
        rich.kb = Some("When you set Exchange Server 5.5 RPC ports statically".into());
        rich.help = Some("narrow the rule".into());
        rich.fix = Some(Fix {
            title: "narrow the rule to `tcp/443`".into(),
            edits: vec![Edit {
                span: span_of(RULES, "80 -j"),
                text: "443 -j".into(),
            }],
        });
        let mut suppressed = needless(RULES).maybe();
        suppressed.suppressed = Some("wanted for monitoring".into());
        let mut other_file = needless(RULES);
        other_file.primary.span.file = FileId(1);
        let unicode = Finding::new(
            "unknown-syntax",
            Severity::Note,
            span_of(RULES, "«é»"),
            "comment `\u{202e}«é»` %s {0}",
        );
        let empty = Finding::new(
            "parse-error",
            Severity::Error,
            Span::new(FileId(0), 0, 0),
            "bad",
        );
        let problems = vec![
            FileProblem {
                path: PathBuf::from("fw/secret.rules"),
                message: "cannot read: permission denied".into(),
                offset: None,
            },
            FileProblem {
                path: PathBuf::from("fw/latin1.rules"),
                message: "is not valid UTF-8 (first bad byte at offset 41)".into(),
                offset: Some(41),
            },
        ];
        let report =
            |findings: Vec<Finding>, problems: Vec<FileProblem>| Report { findings, problems };
        vec![
            ("empty", render_value(&Report::default(), &two)),
            ("rich", render_value(&report(vec![rich], vec![]), &two)),
            (
                "suppressed",
                render_value(&report(vec![suppressed], vec![]), &two),
            ),
            (
                "two-files",
                render_value(&report(vec![needless(RULES), other_file], vec![]), &two),
            ),
            (
                "unicode",
                render_value(&report(vec![unicode], vec![]), &two),
            ),
            ("errors", render_value(&report(vec![empty], problems), &two)),
        ]
    }

    /// With `MISLINT_SARIF_SAMPLES=DIR`, also writes the sample logs to DIR.
    #[test]
    fn sample_logs_validate_and_can_be_written_out() {
        let dir = std::env::var_os("MISLINT_SARIF_SAMPLES").map(PathBuf::from);
        for (name, log) in sample_logs() {
            assert_eq!(official_schema_errors(&log), Vec::<String>::new(), "{name}");
            if let Some(dir) = &dir {
                let text = serde_json::to_string_pretty(&log).expect("a Value serializes");
                std::fs::write(dir.join(format!("{name}.sarif")), text)
                    .expect("the samples directory is writable");
            }
        }
    }

    #[test]
    fn official_schema_rejects_a_broken_log() {
        let mut log = render_value(&Report::default(), &sources("a.rules", ""));
        log["runs"][0]["columnKind"] = Value::from("bytes");
        log["runs"][0]["results"] = serde_json::json!([{ "message": {} }]);
        assert!(official_schema_errors(&log).len() >= 2);
    }

    #[test]
    fn rules_come_from_the_registry() {
        let log = render_value(&Report::default(), &sources("a.rules", ""));
        let rules = log["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .expect("rules is an array")
            .clone();
        assert_eq!(rules.len(), all_metas().count());
        let needless = rules
            .iter()
            .find(|r| r["id"] == "needless-port")
            .expect("needless-port is described");
        assert_eq!(needless["name"], "NeedlessPort");
        assert_eq!(needless["defaultConfiguration"]["level"], "warning");
        let full = needless["fullDescription"]["text"]
            .as_str()
            .expect("fullDescription is text");
        assert!(full.starts_with("A rule that permits traffic"), "{full}");
        assert!(!full.contains("## "), "only the first section: {full}");
        let help = needless["help"]["markdown"].as_str().expect("help is text");
        assert!(help.contains("KB 294297"), "{help}");
        let parse_error = rules
            .iter()
            .find(|r| r["id"] == "parse-error")
            .expect("parser findings are described too");
        assert_eq!(parse_error["defaultConfiguration"]["level"], "error");
    }

    #[test]
    fn columns_count_code_points() {
        let src = sources("a.rules", RULES);
        let f = Finding::new("unknown-syntax", Severity::Note, span_of(RULES, "«é»"), "x");
        let report = Report {
            findings: vec![f],
            problems: vec![],
        };
        let log = render_value(&report, &src);
        let region = &log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"];
        let line = "-A FORWARD -p tcp --dport 389 -j DROP # ";
        assert_eq!(region["startColumn"], line.chars().count() + 1);
        assert_eq!(region["endColumn"], line.chars().count() + 4);
        assert_eq!(region["snippet"]["text"], "«é»");
    }

    #[test]
    fn suppression_fix_and_file_problem() {
        let src = sources("./fw/edge.rules", RULES);
        let mut f = needless(RULES);
        let port = span_of(RULES, "80 -j ACCEPT");
        f.suppressed = Some("wanted for monitoring".into());
        f.fix = Some(Fix {
            title: "narrow the rule to `tcp/443`".into(),
            edits: vec![Edit {
                span: Span::new(FileId(0), port.start as usize, port.start as usize + 2),
                text: "443".into(),
            }],
        });
        let report = Report {
            findings: vec![f],
            problems: vec![FileProblem {
                path: PathBuf::from("fw/secret.rules"),
                message: "cannot read: permission denied".into(),
                offset: None,
            }],
        };
        let log = render_value(&report, &src);
        let r = &log["runs"][0]["results"][0];
        assert_eq!(r["suppressions"][0]["kind"], "external");
        assert_eq!(
            r["suppressions"][0]["justification"],
            "wanted for monitoring"
        );
        let change = &r["fixes"][0]["artifactChanges"][0];
        assert_eq!(change["artifactLocation"]["uri"], "fw/edge.rules");
        let replacement = &change["replacements"][0];
        assert_eq!(replacement["deletedRegion"]["startLine"], 3);
        assert_eq!(replacement["deletedRegion"]["startColumn"], 27);
        assert_eq!(replacement["deletedRegion"]["endColumn"], 29);
        assert_eq!(replacement["insertedContent"]["text"], "443");
        let inv = &log["runs"][0]["invocations"][0];
        assert_eq!(inv["executionSuccessful"], false);
        let note = &inv["toolExecutionNotifications"][0];
        assert_eq!(note["level"], "error");
        assert_eq!(
            note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "fw/secret.rules"
        );
        assert_eq!(official_schema_errors(&log), Vec::<String>::new());
    }

    #[test]
    fn uris_are_percent_encoded() {
        let rel = artifact_location(Path::new("./fw 1/a%b:c,d.rules"));
        assert_eq!(rel.uri, "fw%201/a%25b%3Ac%2Cd.rules");
        assert_eq!(rel.uri_base_id, Some(SRCROOT));
        let up = artifact_location(Path::new("../x/é.rules"));
        assert_eq!(up.uri, "../x/%C3%A9.rules");
        #[cfg(unix)]
        {
            let abs = artifact_location(Path::new("/etc/fw/a b.rules"));
            assert_eq!(abs.uri, "file:///etc/fw/a%20b.rules");
            assert_eq!(abs.uri_base_id, None);
        }
    }

    #[test]
    fn fingerprint_ignores_line_moves_but_not_content() {
        let moved = format!("# a comment\n{RULES}");
        let fp = |text: &str| {
            let src = sources("a.rules", text);
            let report = Report {
                findings: vec![needless(text)],
                problems: vec![],
            };
            render_value(&report, &src)["runs"][0]["results"][0]["partialFingerprints"]
                [FINGERPRINT_KEY]
                .clone()
        };
        assert_eq!(fp(RULES), fp(&moved));
        let changed = RULES.replace("--dport 80 -j ACCEPT", "--dport 81 -j ACCEPT");
        let src = sources("a.rules", &changed);
        let f = Finding::new(
            "needless-port",
            Severity::Warning,
            span_of(&changed, "-A FORWARD -p tcp --dport 81 -j ACCEPT"),
            "m",
        );
        let report = Report {
            findings: vec![f],
            problems: vec![],
        };
        let other = render_value(&report, &src)["runs"][0]["results"][0]["partialFingerprints"]
            [FINGERPRINT_KEY]
            .clone();
        assert_ne!(fp(RULES), other);
    }

    #[test]
    fn identical_lines_get_distinct_fingerprints() {
        let mut fps = Fingerprints::default();
        let a = fps.next("needless-port", "a.rules", "-A FORWARD -j ACCEPT");
        let b = fps.next("needless-port", "a.rules", "-A FORWARD -j ACCEPT");
        assert_ne!(a, b);
        assert!(a.ends_with(":1") && b.ends_with(":2"), "{a} {b}");
        assert_eq!(a.split(':').next(), b.split(':').next());
    }

    #[test]
    fn messages_escape_bidi_but_snippets_stay_exact() {
        let text = "-A FORWARD -m comment --comment \"\u{202e}x\" -j ACCEPT\n";
        let src = sources("a.rules", text);
        let f = Finding::new(
            "unknown-syntax",
            Severity::Note,
            span_of(text, "\"\u{202e}x\""),
            "comment `\u{202e}x`",
        );
        let report = Report {
            findings: vec![f],
            problems: vec![],
        };
        let log = render_value(&report, &src);
        let r = &log["runs"][0]["results"][0];
        assert_eq!(r["message"]["text"], "comment `\\u{202e}x`");
        assert_eq!(
            r["locations"][0]["physicalLocation"]["region"]["snippet"]["text"],
            "\"\u{202e}x\""
        );
    }

    #[test]
    fn empty_span_has_a_zero_width_region_without_snippet() {
        let src = sources("a.rules", RULES);
        let f = Finding::new(
            "parse-error",
            Severity::Error,
            Span::new(FileId(0), 0, 0),
            "bad",
        );
        let report = Report {
            findings: vec![f],
            problems: vec![],
        };
        let log = render_value(&report, &src);
        let region = &log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], 1);
        assert_eq!(region["startColumn"], 1);
        assert_eq!(region["endColumn"], 1);
        assert!(region.get("snippet").is_none());
        assert_eq!(
            log["runs"][0]["invocations"][0]["executionSuccessful"],
            false
        );
        assert_eq!(official_schema_errors(&log), Vec::<String>::new());
    }

    #[test]
    fn line_text_finds_the_line() {
        assert_eq!(line_text("a\r\nbc\nd", 4), "bc");
        assert_eq!(line_text("a\r\nbc\nd", 0), "a");
        assert_eq!(line_text("abc", 99), "abc");
    }
}
