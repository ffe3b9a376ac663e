//! mislint: a policy-as-code linter for firewall configs against Microsoft KB 294297.
//!
//! Data flows one way:
//!
//! ```text
//! paths ─ discover ─▶ SourceFile + Dialect ─ parse::<dialect> ─▶ RuleGraph (+ parse findings)
//!       ─ analysis (zones, Model::evaluate) ─▶ Outcomes per zone pair
//!       ─ checks (+ policy flows) ─▶ Findings ─ report::{human,json} ─▶ output
//! ```
//!
//! [`run`] is the whole pipeline; `main.rs` only parses flags and maps the outcome to an
//! exit status.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod checks;
pub mod cli;
pub mod config;
pub mod discover;
pub mod graph;
pub mod parse;
pub mod policy;
pub mod report;
pub mod source;

use analysis::Model;
use analysis::zones::{ZoneKey, Zoning};
use checks::CheckCx;
use config::{Config, Mode};
use graph::Dialect;
use rayon::prelude::*;
use report::finding::{Finding, Severity};
use report::{Report, Sources};
use source::SourceFile;
use std::io::{self, Write};

/// How a run ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing at or above `--fail-on`.
    Clean,
    /// Findings at or above `--fail-on`.
    Findings,
    /// A file could not be read or parsed.
    Errors,
}

/// Runs mislint as configured, writing its output to `out`.
pub fn run(config: &Config, out: &mut dyn Write) -> io::Result<Outcome> {
    match &config.mode {
        Mode::ListScenarios => {
            list_scenarios(config, out)?;
            Ok(Outcome::Clean)
        }
        Mode::Explain(rule) => {
            explain(rule, out)?;
            Ok(Outcome::Clean)
        }
        Mode::Lint => lint(config, out),
    }
}

fn lint(config: &Config, out: &mut dyn Write) -> io::Result<Outcome> {
    let found = discover::discover(&config.paths);
    let mut findings: Vec<Finding> = found
        .files
        .par_iter()
        .flat_map_iter(|(file, dialect)| lint_file(file, *dialect, config))
        .collect();
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let report = Report {
        findings,
        problems: found.problems,
    };
    let sources = Sources::new(found.files);
    let render = match config.format {
        cli::Format::Human => report::human::render,
        cli::Format::Json => report::json::render,
        cli::Format::Sarif => report::sarif::render,
        cli::Format::Github => report::github::render,
    };
    render(&report, &sources, out)?;
    Ok(outcome(&report, config.fail_on))
}

fn outcome(report: &Report, fail_on: Option<Severity>) -> Outcome {
    if report.has_errors() {
        return Outcome::Errors;
    }
    match (report.worst(), fail_on) {
        (Some(worst), Some(threshold)) if worst >= threshold => Outcome::Findings,
        _ => Outcome::Clean,
    }
}

/// Parses, analyses and checks one file.
pub fn lint_file(file: &SourceFile, dialect: Dialect, config: &Config) -> Vec<Finding> {
    let parsed = parse::parse(file, dialect);
    let mut findings = parsed.findings;
    let Some(graph) = parsed.graph else {
        return findings;
    };
    let zoning = Zoning::assign(&graph, &config.zones);
    let mapped: Vec<String> = config
        .zones
        .iter()
        .filter_map(|m| match &m.key {
            ZoneKey::Iface(n) if !n.ends_with('+') => Some(n.clone()),
            _ => None,
        })
        .collect();
    let model = Model::new(&graph, &mapped);
    let flows = config.policy.active(&config.settings);
    let cx = CheckCx::new(file, &model, &zoning, &config.settings, &flows);
    findings.extend(checks::run_all(&cx));
    findings
}

fn list_scenarios(config: &Config, out: &mut dyn Write) -> io::Result<()> {
    let policy = &config.policy;
    for s in &policy.scenarios {
        writeln!(out, "{}  —  {}", s.name, s.title)?;
        let settings = policy::Settings {
            scenarios: vec![s.name.clone()],
            ..config.settings.clone()
        };
        for f in policy.active(&settings) {
            let what = match &f.ports {
                Some(p) => format!(
                    "{}/{}",
                    checks::proto_name(f.protocol),
                    checks::describe_ports(p)
                ),
                None => checks::proto_name(f.protocol),
            };
            let level = match f.level {
                policy::Level::Required => "requires",
                policy::Level::Allowed => "allows",
            };
            writeln!(
                out,
                "    {level} {what:<18} {} → {}  ({})",
                f.from, f.to, f.requirement
            )?;
        }
    }
    writeln!(
        out,
        "\nModifiers: --ipsec (IPSec between perimeter and internal), --static-rpc[=PORTS] (default 1026)."
    )
}

fn explain(rule: &str, out: &mut dyn Write) -> io::Result<()> {
    match checks::meta(rule) {
        Some(m) => writeln!(
            out,
            "# {} ({})\n\n{}\n\n{}",
            m.name,
            m.severity.name(),
            m.summary,
            m.doc.trim_end()
        ),
        None => writeln!(out, "no finding kind is called `{rule}`"),
    }
}
