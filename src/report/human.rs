//! Human output: each finding as a miette diagnostic with its line underlined, the KB
//! sentence cited and a hint; then a one-line summary.

use super::finding::{Certainty, Finding, Severity, Witness};
use super::{Report, Sources};
use crate::graph::sets::proto;
use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError,
    MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};
use std::fmt;
use std::io::{self, IsTerminal, Write};

/// Renders with colours only when stdout is a terminal and `NO_COLOR` is unset.
pub fn render(report: &Report, sources: &Sources, out: &mut dyn Write) -> io::Result<()> {
    let colour = io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    render_with(report, sources, out, colour, 100)
}

/// Renders with explicit colour and width (tests use no colour and a fixed width).
pub fn render_with(
    report: &Report,
    sources: &Sources,
    out: &mut dyn Write,
    colour: bool,
    width: usize,
) -> io::Result<()> {
    let theme = if colour {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_links(false);
    for problem in &report.problems {
        writeln!(
            out,
            "error[file]: `{}` {}\n",
            sanitize(&problem.path.display().to_string()),
            problem.message
        )?;
    }
    for f in report.findings.iter().filter(|f| f.suppressed.is_none()) {
        let Some(file) = sources.file(f.primary.span.file) else {
            continue;
        };
        let diag = FindingDiagnostic {
            finding: f,
            source: NamedText {
                name: file.display_path(),
                text: &file.text,
            },
            help: help_text(f, &file.text),
        };
        let mut text = String::new();
        if handler.render_report(&mut text, &diag).is_err() {
            text = format!("{}: {}\n", f.rule, f.message);
        }
        writeln!(out, "{text}")?;
    }
    writeln!(out, "{}", summary(report, sources))
}

/// `mislint: 1 error, 2 warnings, 1 note in 3 files`.
fn summary(report: &Report, sources: &Sources) -> String {
    let count = |s: Severity| {
        report
            .findings
            .iter()
            .filter(|f| f.severity == s && f.suppressed.is_none())
            .count()
    };
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let files = sources.iter().count();
    let mut line = format!(
        "mislint: {}, {}, {} in {}",
        plural(count(Severity::Error), "error"),
        plural(count(Severity::Warning), "warning"),
        plural(count(Severity::Note), "note"),
        plural(files, "file"),
    );
    if !report.problems.is_empty() {
        line.push_str(&format!(
            "; {} could not be linted",
            plural(report.problems.len(), "path")
        ));
    }
    let suppressed = report
        .findings
        .iter()
        .filter(|f| f.suppressed.is_some())
        .count();
    if suppressed > 0 {
        line.push_str(&format!("; {suppressed} suppressed"));
    }
    line
}

/// The hint block: what to do, the witness, the KB sentence.
fn help_text(f: &Finding, text: &str) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(h) = &f.help {
        parts.push(h.clone());
    }
    if let Some(fix) = &f.fix {
        parts.push(crate::fix::describe(fix, text));
    }
    if f.certainty == Certainty::May {
        parts.push(
            "certainty: may — the verdict depends on a construct mislint does not model".into(),
        );
    }
    if let Some(w) = &f.witness {
        parts.push(format!("for example: {}", describe_witness(w)));
    }
    if let Some(kb) = &f.kb {
        parts.push(format!("KB 294297: \"{kb}\""));
    }
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// `tcp 192.168.10.6:49152 → 10.0.0.1:389 (in eth1, out eth2)`.
pub fn describe_witness(w: &Witness) -> String {
    let name =
        proto::name(w.protocol).map_or_else(|| format!("proto {}", w.protocol), str::to_string);
    let end = |addr: &std::net::IpAddr, port: Option<u16>| match port {
        Some(p) if addr.is_ipv6() => format!("[{addr}]:{p}"),
        Some(p) => format!("{addr}:{p}"),
        None => addr.to_string(),
    };
    let mut s = format!(
        "{name} {} → {}",
        end(&w.src, w.src_port),
        end(&w.dst, w.dst_port)
    );
    let ifaces: Vec<String> = [("in", &w.in_interface), ("out", &w.out_interface)]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {}", sanitize(v))))
        .collect();
    if !ifaces.is_empty() {
        s.push_str(&format!(" ({})", ifaces.join(", ")));
    }
    s
}

/// Replaces control and bidi characters of config text, which could rewrite the
/// terminal or reorder what the reader sees, with visible escapes.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
            if (c.is_control() && c != '\n' && c != '\t') || bidi {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A file's text with its name, read by miette without copying the text.
struct NamedText<'a> {
    name: String,
    text: &'a str,
}

impl fmt::Debug for NamedText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl SourceCode for NamedText<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let inner = self.text.read_span(span, before, after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// One finding seen as a miette diagnostic.
struct FindingDiagnostic<'a> {
    finding: &'a Finding,
    source: NamedText<'a>,
    help: Option<String>,
}

impl fmt::Debug for FindingDiagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.finding.message)
    }
}

impl fmt::Display for FindingDiagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&sanitize(&self.finding.message))
    }
}

impl std::error::Error for FindingDiagnostic<'_> {}

impl Diagnostic for FindingDiagnostic<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.finding.rule))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(sanitize(h)) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let f = self.finding;
        let file = f.primary.span.file;
        let label = |span: crate::source::Span, text: &str, primary: bool| {
            let text = (!text.is_empty()).then(|| sanitize(text));
            let at = SourceSpan::from(span.start as usize..span.end as usize);
            if primary {
                LabeledSpan::new_primary_with_span(text, at)
            } else {
                LabeledSpan::new_with_span(text, at)
            }
        };
        let mut labels = vec![label(f.primary.span, &f.primary.text, true)];
        labels.extend(
            f.related
                .iter()
                .filter(|r| r.span.file == file)
                .map(|r| label(r.span, &r.text, false)),
        );
        Some(Box::new(labels.into_iter()))
    }
}
