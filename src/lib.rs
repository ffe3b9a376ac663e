//! mislint: a policy-as-code linter for firewall configs against Microsoft KB 294297.
//!
//! Data flows one way:
//!
//! ```text
//! paths ─ discover ─▶ SourceFile + Dialect ─ parse::<dialect> ─▶ RuleGraph (+ parse findings)
//!       ─ analysis (zones, Model::evaluate) ─▶ Outcomes per zone pair
//!       ─ checks (+ policy flows) ─▶ Findings ─ fix (verified edits) ─ suppress
//!       ─ report::{human, json, sarif, github} ─▶ output
//! ```
//!
//! `--query` and `--matrix` branch off after the analysis (`query`). [`run`] is the whole
//! pipeline; `main.rs` only parses flags and maps the outcome to an exit status.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod checks;
pub mod cli;
pub mod config;
pub mod discover;
pub mod fix;
pub mod graph;
pub mod parse;
pub mod policy;
pub mod query;
pub mod report;
pub mod source;
pub mod suppress;

use analysis::Model;
use analysis::reuse::Recorded;
use analysis::zones::Zoning;
use checks::CheckCx;
use config::{Config, ConfigError, FileConfig, Mode};
use graph::Dialect;
use rayon::prelude::*;
use report::finding::{Finding, Severity};
use report::{Report, Sources};
use source::SourceFile;
use std::io::{self, Write};
use std::sync::Arc;

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

/// Why a run could not do its job.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunError {
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] io::Error),
    /// A site or policy file is not usable.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
}

/// Runs mislint as configured, writing its output to `out`.
pub fn run(config: &Config, out: &mut dyn Write) -> Result<Outcome, RunError> {
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
        Mode::Query(query) => query::run(config, query, out),
        Mode::Matrix => query::matrix::run(config, out),
    }
}

/// What linting one file gives.
struct FileResult {
    findings: Vec<Finding>,
    /// Site file and indexes of its suppressions that matched something.
    used_suppressions: Option<(std::path::PathBuf, Vec<usize>)>,
}

fn lint(config: &Config, out: &mut dyn Write) -> Result<Outcome, RunError> {
    let found = discover::discover(&config.paths);
    let paths: Vec<&std::path::Path> = found.files.iter().map(|(f, _)| f.path.as_path()).collect();
    let sites = config.load_sites(&paths)?;
    let mut files: Vec<(SourceFile, Dialect)> = found
        .files
        .into_iter()
        .filter(|(f, _)| !config.excluded(&sites, &f.path))
        .collect();
    for (i, (f, _)) in files.iter_mut().enumerate() {
        f.id = source::FileId(i as u32);
    }
    let progress = progress_bar(files.len());
    let free = if files.len() == 1 {
        Free::AtExit
    } else {
        Free::Now
    };
    let results: Vec<FileResult> = files
        .par_iter()
        .map(|(file, dialect)| {
            let fc = config.file_config(&sites, &file.path);
            let result = lint_file(file, *dialect, &fc, config.fixes, free);
            progress.inc(1);
            result
        })
        .collect();
    progress.finish_and_clear();
    let mut findings: Vec<Finding> = Vec::new();
    let mut used: Vec<(std::path::PathBuf, usize)> = Vec::new();
    for r in results {
        findings.extend(r.findings);
        if let Some((site, idx)) = r.used_suppressions {
            used.extend(idx.into_iter().map(|i| (site.clone(), i)));
        }
    }
    let mut sources: Vec<(SourceFile, Option<Dialect>)> =
        files.into_iter().map(|(f, d)| (f, Some(d))).collect();
    report_unused_site_suppressions(&sites, &used, &mut sources, &mut findings);
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let report = Report {
        findings,
        problems: found.problems,
    };
    let sources = Sources::new(sources);
    let render = match config.format {
        // `--format dot` selects the matrix mode; lint never sees it.
        cli::Format::Human | cli::Format::Dot => report::human::render,
        cli::Format::Json => report::json::render,
        cli::Format::Sarif => report::sarif::render,
        cli::Format::Github => report::github::render,
    };
    render(&report, &sources, out)?;
    Ok(outcome(&report, config.fail_on))
}

/// Files from which a run shows progress.
const PROGRESS_FROM_FILES: usize = 20;

/// A progress bar on stderr for runs over many files, only when stderr is a terminal:
/// hooks and CI logs stay clean.
fn progress_bar(files: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if files < PROGRESS_FROM_FILES || !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(files as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("linting {bar:30} {pos}/{len} files {elapsed}")
    {
        bar.set_style(style);
    }
    bar
}

/// Site-file suppressions that matched nothing in any file become findings pointing
/// into the site file, which joins the sources for that.
fn report_unused_site_suppressions(
    sites: &config::Sites,
    used: &[(std::path::PathBuf, usize)],
    sources: &mut Vec<(SourceFile, Option<Dialect>)>,
    findings: &mut Vec<Finding>,
) {
    for (path, ctx) in &sites.loaded {
        let unused: Vec<&config::site::Suppression> = ctx
            .site
            .suppress
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.iter().any(|(p, j)| p == path && j == i))
            .map(|(_, s)| s)
            .collect();
        if unused.is_empty() {
            continue;
        }
        let id = source::FileId(sources.len() as u32);
        for s in unused {
            findings.push(Finding::new(
                suppress::UNUSED.name,
                suppress::UNUSED.severity,
                source::Span::new(id, s.at.start, s.at.end),
                format!("site-file suppression of `{}` matches no finding", s.rule),
            ));
        }
        sources.push((
            SourceFile::new(id, path.clone(), ctx.site.text.clone()),
            None,
        ));
    }
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

/// When the graph and analysis of a file are freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Free {
    /// As soon as the file is done: a run over many files must not hold them all.
    Now,
    /// Never: the run lints one file and exits right after, and the exit returns the
    /// memory at once, where freeing a 100,000-rule graph piece by piece takes 10-15 ms.
    AtExit,
}

impl Free {
    /// Frees `value` now, or leaves it to the exit.
    fn release<T>(self, value: T) {
        match self {
            Free::Now => drop(value),
            Free::AtExit => std::mem::forget(value),
        }
    }
}

/// Parses, analyses and checks one file, suggests fixes if `fixes`, then applies its
/// suppressions.
fn lint_file(
    file: &SourceFile,
    dialect: Dialect,
    fc: &FileConfig,
    fixes: bool,
    free: Free,
) -> FileResult {
    // With fixes to verify, the parse keeps what re-parsing edited copies can reuse.
    let (parsed, memo) = match fixes {
        true => parse::parse_keeping(file, dialect, fix::MAX_VERIFIED_RULES),
        false => (parse::parse(file, dialect), parse::Memo::Nothing),
    };
    let mut findings = parsed.findings;
    let mut used_suppressions = None;
    if let Some(graph) = &parsed.graph {
        // A file whose fixes may be verified keeps a record of its walks for them.
        let walks = match fixes && graph.rules().count() <= fix::MAX_VERIFIED_RULES {
            true => Walks::Record,
            false => Walks::Fresh,
        };
        let (found, cost, recorded) =
            check_graph_freeing(file, graph, fc, checks::Scope::All, free, walks);
        findings.extend(found);
        if fixes {
            let recorded = recorded.map(Arc::new);
            let lint = fix::Lint { cost, recorded };
            fix::suggest(file, dialect, graph, fc, &mut findings, lint, &memo);
        }
        suppress::apply_inline(&mut findings, graph);
    }
    if let Some(ctx) = fc.site {
        let used = suppress::apply_site(&mut findings, &ctx.site, file);
        used_suppressions = Some((ctx.site.path.clone(), used));
    }
    free.release(parsed.graph);
    FileResult {
        findings,
        used_suppressions,
    }
}

/// What checking one file cost.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    /// Rules compiled plus analysis walk steps: unlike time, the same on every machine
    /// and run, so budgets built on it (fix verification) give the same output everywhere.
    pub units: usize,
    /// The analysis stopped at its step budget (the `analysis-limit` note).
    pub hit_limit: bool,
    /// Walks taken over from the lint's record instead of walked (see
    /// [`check_graph_reusing`]); counted in `units` as if walked.
    pub taken_over: usize,
}

/// Runs the checks of `scope` on one parsed file, and says what that cost.
pub fn check_graph_scoped(
    file: &SourceFile,
    graph: &graph::RuleGraph,
    fc: &FileConfig,
    scope: checks::Scope,
) -> (Vec<Finding>, Cost) {
    let (found, cost, _) = check_graph_freeing(file, graph, fc, scope, Free::Now, Walks::Fresh);
    (found, cost)
}

/// [`check_graph_scoped`] with every check (a lint), keeping the record of its walks
/// that [`check_graph_reusing`] takes over; the lint keeps one when it will verify fixes.
pub fn check_graph_recording(
    file: &SourceFile,
    graph: &graph::RuleGraph,
    fc: &FileConfig,
) -> (Vec<Finding>, Cost, Option<Recorded>) {
    let scope = checks::Scope::All;
    check_graph_freeing(file, graph, fc, scope, Free::Now, Walks::Record)
}

/// [`check_graph_scoped`] for an edited copy of `original`, taking over the walks of
/// `original`'s lint (`recorded`) that the edit cannot change: the same findings and
/// cost as walking them again.
pub fn check_graph_reusing(
    file: &SourceFile,
    graph: &graph::RuleGraph,
    fc: &FileConfig,
    scope: checks::Scope,
    original: &graph::RuleGraph,
    recorded: Arc<Recorded>,
) -> (Vec<Finding>, Cost) {
    let walks = Walks::Reuse(original, recorded);
    let (found, cost, _) = check_graph_freeing(file, graph, fc, scope, Free::Now, walks);
    (found, cost)
}

/// How a check's analysis walks its zone pairs (see [`analysis::reuse`]).
enum Walks<'a> {
    /// Walk them all.
    Fresh,
    /// Walk them all, and keep a record for fix verification.
    Record,
    /// Take over what the lint of this original recorded where an edit cannot change it.
    Reuse(&'a graph::RuleGraph, Arc<Recorded>),
}

/// [`check_graph_scoped`], freeing the analysis as `free` says and walking as `walks`
/// says; with the record if one was asked for.
fn check_graph_freeing(
    file: &SourceFile,
    graph: &graph::RuleGraph,
    fc: &FileConfig,
    scope: checks::Scope,
    free: Free,
    walks: Walks,
) -> (Vec<Finding>, Cost, Option<Recorded>) {
    let mut zoning = Zoning::assign(graph, &fc.zones);
    if graph.is_host_firewall() {
        // The machine itself is the MIS host: the perimeter is where it stands.
        zoning.implied.push(graph::Zone::Perimeter);
    }
    let model = Model::new(graph, &fc.mapped_interfaces());
    let mut model = match walks {
        Walks::Fresh => model,
        Walks::Record => model.recording(),
        Walks::Reuse(original, recorded) => model.reusing(original, recorded),
    };
    let mut flows = fc.policy.active(&fc.settings);
    flows.extend(allowed_flows(fc.allow));
    let (settings, hosts) = (&fc.settings, &fc.hosts);
    let (cx, run): (CheckCx, fn(&CheckCx) -> Vec<Finding>) = match scope {
        checks::Scope::All => (
            CheckCx::with_chain_analysis(file, &model, &zoning, settings, hosts, &flows),
            checks::run_all,
        ),
        checks::Scope::WarningsAndErrors => (
            CheckCx::new(file, &model, &zoning, settings, hosts, &flows),
            checks::run_above_notes,
        ),
    };
    let findings = run(&cx);
    free.release(cx);
    let cost = Cost {
        units: graph.rules().count() + model.steps_taken(),
        hit_limit: model.exhausted(),
        taken_over: model.walks_taken_over(),
    };
    let recorded = model.take_record();
    free.release(model);
    (findings, cost, recorded)
}

/// The site file's extra allowed flows as policy flows.
fn allowed_flows(allow: &[config::site::Allow]) -> Vec<policy::ActiveFlow> {
    allow
        .iter()
        .flat_map(|a| {
            a.flows.iter().map(|f| policy::ActiveFlow {
                requirement: "site-allow".into(),
                scenario: None,
                from: a.from,
                to: a.to,
                protocol: f.protocol,
                ports: match &f.ports {
                    policy::PortSpec::Set(s) => Some(s.clone()),
                    _ => None,
                },
                level: policy::Level::Allowed,
                kb: a.reason.clone(),
                why: a.reason.clone(),
                names: Vec::new(),
            })
        })
        .collect()
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
