//! The one finding type every stage produces and every renderer consumes.
//!
//! Parsers report syntax problems and unmodelled constructs as findings; checks report
//! policy violations as findings. A finding carries spans, never lines: the renderers
//! turn spans into positions with the file's `LineIndex`.

use crate::graph::Zone;
use crate::source::Span;
use std::net::IpAddr;

/// How bad a finding is; `--fail-on` compares against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a run.
    Note,
    /// Attack surface or doubtful config.
    Warning,
    /// A broken service, a policy violation or an unreadable config.
    Error,
}

impl Severity {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Whether the verdict behind a finding is proven or depends on something mislint does
/// not model (an unknown match module, an FQDN object, an unresolved ipset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Certainty {
    /// Holds for the config as written.
    Definite,
    /// Holds only if the unmodelled construct behaves one way; the message says which.
    May,
}

/// A span with a short text, for underlining.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// What to underline.
    pub span: Span,
    /// What to say under it.
    pub text: String,
}

impl Label {
    /// A label.
    pub fn new(span: Span, text: impl Into<String>) -> Label {
        Label {
            span,
            text: text.into(),
        }
    }
}

/// A concrete packet that shows a finding is real.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Witness {
    /// IP protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port, for protocols with ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination port, for protocols with ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Ingress interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_interface: Option<String>,
    /// Egress interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_interface: Option<String>,
}

/// A byte-range edit of the source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// What to replace (empty for an insertion).
    pub span: Span,
    /// The new text.
    pub text: String,
}

/// A suggested change, in the file's own dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    /// One line saying what the fix does.
    pub title: String,
    /// The edits, applied together.
    pub edits: Vec<Edit>,
}

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The check's stable kebab-case name, e.g. `missing-port`.
    pub rule: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// Proven, or dependent on something unmodelled.
    pub certainty: Certainty,
    /// One lowercase sentence without a trailing period.
    pub message: String,
    /// The line that decides it.
    pub primary: Label,
    /// Other lines that take part (the earlier deny, the DNAT line).
    pub related: Vec<Label>,
    /// The policy requirement involved, e.g. `ldap`.
    pub requirement: Option<String>,
    /// The scenario that needs the requirement.
    pub scenario: Option<String>,
    /// Source zone of the flow.
    pub from_zone: Option<Zone>,
    /// Destination zone of the flow.
    pub to_zone: Option<Zone>,
    /// IP protocol of the flow.
    pub protocol: Option<u8>,
    /// Destination port ranges involved, empty for protocols without ports.
    pub ports: Vec<(u16, u16)>,
    /// A packet that shows it.
    pub witness: Option<Witness>,
    /// The KB 294297 sentence behind it.
    pub kb: Option<String>,
    /// What to do about it, in words.
    pub help: Option<String>,
    /// What to do about it, as edits.
    pub fix: Option<Fix>,
    /// True if an inline or site-file suppression covers it; the reason is kept.
    pub suppressed: Option<String>,
    /// True when the suppression sits in the config itself (a comment, remark or
    /// description) rather than in the site file.
    pub suppressed_inline: bool,
}

impl Finding {
    /// A finding with the required parts; the rest starts empty.
    pub fn new(
        rule: &'static str,
        severity: Severity,
        primary: Span,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            severity,
            certainty: Certainty::Definite,
            message: message.into(),
            primary: Label::new(primary, ""),
            related: Vec::new(),
            requirement: None,
            scenario: None,
            from_zone: None,
            to_zone: None,
            protocol: None,
            ports: Vec::new(),
            witness: None,
            kb: None,
            help: None,
            fix: None,
            suppressed: None,
            suppressed_inline: false,
        }
    }

    /// Sets the text under the primary span.
    pub fn with_label(mut self, text: impl Into<String>) -> Finding {
        self.primary.text = text.into();
        self
    }

    /// Adds a related label.
    pub fn with_related(mut self, span: Span, text: impl Into<String>) -> Finding {
        self.related.push(Label::new(span, text));
        self
    }

    /// Sets the help text.
    pub fn with_help(mut self, text: impl Into<String>) -> Finding {
        self.help = Some(text.into());
        self
    }

    /// Marks the finding as depending on something unmodelled.
    pub fn maybe(mut self) -> Finding {
        self.certainty = Certainty::May;
        self
    }

    /// The sort key that makes output deterministic: file, offset, rule, message.
    pub fn sort_key(&self) -> (u32, u32, &'static str, &str) {
        (
            self.primary.span.file.0,
            self.primary.span.start,
            self.rule,
            &self.message,
        )
    }
}
