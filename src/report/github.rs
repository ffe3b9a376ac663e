//! `--format github`: findings as GitHub Actions workflow commands, which the Actions
//! runner turns into annotations on the pull request's changed lines.
//!
//! The last stage of the pipeline, beside `human`, `json` and `sarif`. One command per
//! line, nothing else on stdout: a summary line would be printed into the job log as
//! noise, and the exit status already says whether the run failed. So:
//! - `::error` / `::warning` / `::notice` for error / warning / note findings, with
//!   `file`, `line`, `col`, `endLine`, `endColumn` and `title=mislint RULE`;
//! - suppressed findings are left out (the annotation would only be noise);
//! - a path that could not be linted is `::error file=PATH,title=mislint::…`.
//!
//! Escaping follows the Actions runner's own decoder (actions/toolkit, `command.ts`):
//! in the message `%`, `\r`, `\n` become `%25`, `%0D`, `%0A`; in property values `:` and
//! `,` also become `%3A`, `%2C`. Control and bidi characters of config text are first
//! made visible with `human::sanitize`, so an annotation cannot be reordered on screen.

use super::finding::{Certainty, Finding, Severity};
use super::human::{describe_witness, sanitize};
use super::{Report, Sources};
use std::io::{self, Write};
use std::path::{Component, Path};

/// Writes one workflow command per unsuppressed finding and per unreadable path.
pub fn render(report: &Report, sources: &Sources, out: &mut dyn Write) -> io::Result<()> {
    for problem in &report.problems {
        let path = annotation_path(&problem.path);
        writeln!(
            out,
            "::error file={},title=mislint::{}",
            escape_property(&sanitize(&path)),
            escape_data(&sanitize(&format!("`{path}` {}", problem.message)))
        )?;
    }
    for f in report.findings.iter().filter(|f| f.suppressed.is_none()) {
        writeln!(out, "{}", command(f, sources))?;
    }
    Ok(())
}

/// The workflow command of one finding.
fn command(f: &Finding, sources: &Sources) -> String {
    let kind = match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "notice",
    };
    let mut props = Vec::new();
    if let Some(file) = sources.file(f.primary.span.file) {
        let (line, col) = sources.line_col(f.primary.span.file, f.primary.span.start);
        let (end_line, end_col) = sources.line_col(f.primary.span.file, f.primary.span.end);
        props.push(format!(
            "file={}",
            escape_property(&sanitize(&annotation_path(&file.path)))
        ));
        props.push(format!("line={line}"));
        props.push(format!("col={col}"));
        props.push(format!("endLine={end_line}"));
        props.push(format!("endColumn={end_col}"));
    }
    props.push(format!(
        "title={}",
        escape_property(&format!("mislint {}", f.rule))
    ));
    format!(
        "::{kind} {}::{}",
        props.join(","),
        escape_data(&sanitize(&message(f)))
    )
}

/// The annotation text: the message, then what to do, a witness packet and the KB
/// sentence, one per line (the annotation shows them as lines).
fn message(f: &Finding) -> String {
    let mut lines = vec![f.message.clone()];
    if f.certainty == Certainty::May {
        lines.push(
            "certainty: may — the verdict depends on a construct mislint does not model".into(),
        );
    }
    if let Some(h) = &f.help {
        lines.push(h.clone());
    }
    if let Some(w) = &f.witness {
        lines.push(format!("for example: {}", describe_witness(w)));
    }
    if let Some(kb) = &f.kb {
        lines.push(format!("KB 294297: \"{kb}\""));
    }
    lines.join("\n")
}

/// The path as the annotation names it: forward slashes, without `./`. GitHub matches
/// it against the repository's files, so a relative path from the repository root (how
/// CI usually calls mislint) is what lands on the pull request.
fn annotation_path(path: &Path) -> String {
    let mut segments = Vec::new();
    let mut absolute = false;
    for c in path.components() {
        match c {
            Component::Prefix(p) => segments.push(p.as_os_str().to_string_lossy().into_owned()),
            Component::RootDir => absolute = true,
            Component::CurDir => {}
            Component::ParentDir => segments.push("..".to_string()),
            Component::Normal(s) => segments.push(s.to_string_lossy().into_owned()),
        }
    }
    let joined = segments.join("/");
    if absolute && !joined.contains(':') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Escapes a command's message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value, where `:` would end the properties and `,` the value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::FileProblem;
    use crate::graph::Dialect;
    use crate::report::finding::Witness;
    use crate::source::{FileId, SourceFile, Span};
    use std::path::PathBuf;

    const RULES: &str = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport 80 -j ACCEPT\n";

    fn sources(path: &str) -> Sources {
        Sources::new(vec![(
            SourceFile::new(FileId(0), path, RULES),
            Some(Dialect::Iptables),
        )])
    }

    fn at(part: &str) -> Span {
        let start = RULES.find(part).expect("the test text contains the part");
        Span::new(FileId(0), start, start + part.len())
    }

    fn render_text(report: &Report, sources: &Sources) -> String {
        let mut out = Vec::new();
        render(report, sources, &mut out).expect("writing to a Vec succeeds");
        String::from_utf8(out).expect("commands are UTF-8")
    }

    #[test]
    fn finding_becomes_one_command_with_position() {
        let f = Finding::new(
            "needless-port",
            Severity::Warning,
            at("--dport 80"),
            "`tcp/80` is permitted",
        );
        let report = Report {
            findings: vec![f],
            problems: vec![],
        };
        assert_eq!(
            render_text(&report, &sources("./fw/edge.rules")),
            "::warning file=fw/edge.rules,line=3,col=19,endLine=3,endColumn=29,title=mislint needless-port::`tcp/80` is permitted\n"
        );
    }

    #[test]
    fn severities_map_to_commands() {
        let kinds = [
            (Severity::Error, "::error "),
            (Severity::Warning, "::warning "),
            (Severity::Note, "::notice "),
        ];
        for (severity, prefix) in kinds {
            let f = Finding::new("missing-port", severity, at("*filter"), "m");
            let text = command(&f, &sources("a.rules"));
            assert!(text.starts_with(prefix), "{text}");
        }
    }

    #[test]
    fn escapes_follow_the_runner_rules() {
        assert_eq!(escape_data("100% a\r\nb:c,d"), "100%25 a%0D%0Ab:c,d");
        assert_eq!(
            escape_property("100% a\r\nb:c,d"),
            "100%25 a%0D%0Ab%3Ac%2Cd"
        );
    }

    #[test]
    fn message_escapes_percent_and_newlines() {
        let mut f = Finding::new(
            "missing-port",
            Severity::Error,
            at("*filter"),
            "100% of\nit\r",
        );
        f.help = Some("add a rule".into());
        let text = command(&f, &sources("a.rules"));
        let data = text.split_once("::").and_then(|(_, r)| r.split_once("::"));
        // A carriage return is a control character: sanitize shows it, so it cannot
        // move the cursor in the job log; line breaks stay line breaks.
        assert_eq!(
            data.map(|(_, m)| m),
            Some("100%25 of%0Ait\\u{d}%0Aadd a rule")
        );
        assert!(!text.contains('\n') && !text.contains('\r'));
    }

    #[test]
    fn path_escapes_colon_comma_and_percent() {
        let f = Finding::new("missing-port", Severity::Error, at("*filter"), "m");
        let text = command(&f, &sources("fw/a:b,c%d.rules"));
        assert!(
            text.starts_with("::error file=fw/a%3Ab%2Cc%25d.rules,line=1,"),
            "{text}"
        );
    }

    #[test]
    fn bidi_characters_are_made_visible() {
        let f = Finding::new(
            "unknown-syntax",
            Severity::Note,
            at("*filter"),
            "comment `\u{202e}evil`",
        );
        let text = command(&f, &sources("a.rules"));
        assert!(text.ends_with("::comment `\\u{202e}evil`"), "{text}");
        assert!(!text.contains('\u{202e}'));
    }

    #[test]
    fn suppressed_findings_are_left_out_and_problems_reported() {
        let mut f = Finding::new("needless-port", Severity::Warning, at("*filter"), "m");
        f.suppressed = Some("wanted".into());
        let report = Report {
            findings: vec![f],
            problems: vec![FileProblem {
                path: PathBuf::from("fw/x,y.rules"),
                message: "cannot read: permission denied".into(),
                offset: None,
            }],
        };
        assert_eq!(
            render_text(&report, &sources("a.rules")),
            "::error file=fw/x%2Cy.rules,title=mislint::`fw/x,y.rules` cannot read: permission denied\n"
        );
    }

    #[test]
    fn message_adds_help_witness_and_kb_lines() {
        let mut f = Finding::new("missing-port", Severity::Error, at("*filter"), "m").maybe();
        f.help = Some("h".into());
        f.kb = Some("k".into());
        f.witness = Some(Witness {
            protocol: 6,
            src: "192.0.2.1".parse().expect("literal address"),
            dst: "10.0.0.1".parse().expect("literal address"),
            src_port: None,
            dst_port: Some(389),
            in_interface: None,
            out_interface: None,
        });
        let lines: Vec<String> = message(&f).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], "m");
        assert!(lines[1].starts_with("certainty: may"));
        assert_eq!(lines[2], "h");
        assert_eq!(lines[3], "for example: tcp 192.0.2.1 → 10.0.0.1:389");
        assert_eq!(lines[4], "KB 294297: \"k\"");
    }
}
