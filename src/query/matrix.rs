//! The zone-to-zone service matrix (`--matrix`) and its Graphviz drawing (`--format dot`).
//!
//! For every ordered pair of zones the firewall stands on, the same question the checks
//! ask — every NEW packet from one zone to the other ([`checks::pair_query`]) — goes
//! through [`Model::evaluate`]; the permitted parts are grouped by the rule that permits
//! them (the first explicit accept on the way) and named compactly with
//! [`checks::describe_protocols`]. So the matrix shows what the firewall lets through
//! between zones and which line is responsible, in the checks' own terms.

use super::{LineRef, Lines, PathError, load};
use crate::analysis::zones::Zoning;
use crate::analysis::{Field, Model, Verdict};
use crate::checks::{self, describe_protocols};
use crate::config::{Config, FileConfig};
use crate::graph::{Dialect, IntervalSet, Zone};
use crate::report::human::sanitize;
use crate::source::SourceFile;
use crate::{RunError, cli};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The matrix of a run, as `--matrix --format json` writes it.
#[derive(Debug, Serialize)]
pub struct Matrix {
    /// Same numbering as the query document.
    pub version: u32,
    /// One matrix per file.
    pub files: Vec<FileMatrix>,
    /// Paths that could not be read.
    pub errors: Vec<PathError>,
}

/// The matrix of one file.
#[derive(Debug, Serialize)]
pub struct FileMatrix {
    /// The file's path.
    pub file: String,
    /// Its dialect.
    pub dialect: &'static str,
    /// Parse errors, or why there is no matrix.
    pub errors: Vec<String>,
    /// The zones the firewall stands on, with their interfaces.
    pub zones: Vec<ZoneInfo>,
    /// Each ordered pair of those zones.
    pub pairs: Vec<Pair>,
}

/// A zone and its interfaces.
#[derive(Debug, Serialize)]
pub struct ZoneInfo {
    /// The zone.
    pub zone: Zone,
    /// Its interfaces (empty when known only by addresses).
    pub interfaces: Vec<String>,
}

/// What one zone may open towards another.
#[derive(Debug, Serialize)]
pub struct Pair {
    /// Source zone.
    pub from: Zone,
    /// Destination zone.
    pub to: Zone,
    /// One entry per permitting rule, in line order; empty when nothing gets through.
    pub services: Vec<Service>,
}

/// What one rule lets through between two zones.
#[derive(Debug, Serialize)]
pub struct Service {
    /// `tcp/80,443`, `esp`, `udp/any port`.
    pub service: String,
    /// Destination ports per protocol, as ranges (empty for protocols without ports).
    pub protocols: BTreeMap<u8, Vec<(u16, u16)>>,
    /// The permitting rule.
    pub rule: LineRef,
    /// True if all of it depends on a construct mislint does not model.
    pub may: bool,
}

/// Builds the matrix of every configured file and writes it in the configured format.
pub fn run(config: &Config, out: &mut dyn Write) -> Result<crate::Outcome, RunError> {
    let (files, sites, problems) = load(config)?;
    let files: Vec<FileMatrix> = files
        .par_iter()
        .map(|(file, dialect)| {
            let fc = config.file_config(&sites, &file.path);
            matrix_file(file, *dialect, &fc)
        })
        .collect();
    let matrix = Matrix {
        version: super::JSON_VERSION,
        files,
        errors: problems
            .into_iter()
            .map(|p| PathError {
                file: p.path.display().to_string(),
                message: p.message,
            })
            .collect(),
    };
    match config.format {
        cli::Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &matrix).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        cli::Format::Dot => dot(&matrix, out)?,
        _ => human(&matrix, out)?,
    }
    let failed = !matrix.errors.is_empty() || matrix.files.iter().any(|f| !f.errors.is_empty());
    Ok(if failed {
        crate::Outcome::Errors
    } else {
        crate::Outcome::Clean
    })
}

/// Parses one file and builds its matrix.
pub fn matrix_file(file: &SourceFile, dialect: Dialect, fc: &FileConfig) -> FileMatrix {
    let mut m = FileMatrix {
        file: file.display_path(),
        dialect: dialect.name(),
        errors: Vec::new(),
        zones: Vec::new(),
        pairs: Vec::new(),
    };
    let (parsed, index) = super::parse_for_answer(file, dialect, &mut m.errors);
    let Some(graph) = &parsed.graph else {
        return m;
    };
    let zoning = Zoning::assign(graph, &fc.zones);
    let model = Model::new(graph, &fc.mapped_interfaces());
    let lines = Lines {
        file,
        index: &index,
        model: &model,
    };
    let present: Vec<Zone> = Zone::ALL
        .into_iter()
        .filter(|z| zoning.has_zone(*z))
        .collect();
    m.zones = present
        .iter()
        .map(|z| ZoneInfo {
            zone: *z,
            interfaces: zoning
                .interfaces_in(*z)
                .into_iter()
                .map(str::to_string)
                .collect(),
        })
        .collect();
    for &from in &present {
        for &to in present.iter().filter(|t| **t != from) {
            m.pairs.push(Pair {
                from,
                to,
                services: services(&lines, &zoning, fc, from, to),
            });
        }
    }
    m
}

/// The traffic one permitting rule lets through: the rule, destination ports per
/// protocol, and whether all of it depends on an unmodelled construct.
type Group = (crate::analysis::Decider, BTreeMap<u8, IntervalSet>, bool);

/// What `from` may open towards `to`, grouped by the permitting rule's line.
fn services(lines: &Lines, zoning: &Zoning, fc: &FileConfig, from: Zone, to: Zone) -> Vec<Service> {
    let model = lines.model;
    let (query, delivered) = checks::pair_query(model, zoning, &fc.hosts, from, to);
    let mut groups: BTreeMap<(u32, u32), Group> = BTreeMap::new();
    for mut o in model.evaluate(&query) {
        o.cube.restrict(Field::DstAddr, &delivered);
        if o.cube.is_empty() || o.verdict != Verdict::Permit {
            continue;
        }
        let decider = o.permitting();
        let span = model.span_of(decider);
        let g = groups
            .entry((span.start, span.end))
            .or_insert_with(|| (decider, BTreeMap::new(), true));
        g.2 &= o.may.is_some();
        for &(lo, hi) in o.cube.get(Field::Proto).ranges() {
            for p in lo..=hi.min(255) {
                let ports = g.1.entry(p as u8).or_default();
                *ports = ports.union(&o.cube.get(Field::DstPort));
            }
        }
    }
    groups
        .into_values()
        .map(|(decider, protocols, may)| Service {
            service: describe_service(&protocols),
            protocols: protocols
                .iter()
                .map(|(&p, ports)| {
                    let ranges = if crate::graph::sets::proto::has_ports(p) {
                        checks::port_ranges(ports)
                    } else {
                        Vec::new()
                    };
                    (p, ranges)
                })
                .collect(),
            rule: lines.line_ref(decider),
            may,
        })
        .collect()
}

/// [`describe_protocols`], except that everything reads as `any protocol`.
fn describe_service(protocols: &BTreeMap<u8, IntervalSet>) -> String {
    let everything = protocols.len() == 256
        && protocols
            .iter()
            .all(|(&p, ports)| !crate::graph::sets::proto::has_ports(p) || ports.count() == 65_536);
    if everything {
        return "any protocol".to_string();
    }
    describe_protocols(protocols)
}

/// The matrix for people: per file, per zone pair, one line per permitting rule.
pub fn human(matrix: &Matrix, out: &mut dyn Write) -> io::Result<()> {
    for e in &matrix.errors {
        writeln!(
            out,
            "error: {}: {}",
            sanitize(&e.file),
            sanitize(&e.message)
        )?;
    }
    for (i, f) in matrix.files.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{} ({})", sanitize(&f.file), f.dialect)?;
        for e in &f.errors {
            writeln!(out, "  error: {}", sanitize(e))?;
        }
        let zones: Vec<String> = f
            .zones
            .iter()
            .map(|z| match z.interfaces.is_empty() {
                true => format!("{} (by address)", z.zone),
                false => format!("{} ({})", z.zone, sanitize(&z.interfaces.join(", "))),
            })
            .collect();
        writeln!(out, "  zones: {}", zones.join(", "))?;
        if f.zones.len() < 2 && f.errors.is_empty() {
            writeln!(
                out,
                "  fewer than two zones are mapped: use --zone IFACE=ZONE (iptables names carry no meaning)"
            )?;
        }
        for p in &f.pairs {
            if p.services.is_empty() {
                writeln!(out, "  {} -> {}: nothing (NEW connections)", p.from, p.to)?;
                continue;
            }
            writeln!(out, "  {} -> {}:", p.from, p.to)?;
            for s in &p.services {
                let may = if s.may {
                    " (may: unmodelled construct)"
                } else {
                    ""
                };
                let at = s.rule.line.map_or_else(
                    || format!("({})", sanitize(&s.rule.what)),
                    |n| format!("line {n:>4}  {}", sanitize(&s.rule.text)),
                );
                writeln!(out, "    {:<30} {at}{may}", sanitize(&s.service))?;
            }
        }
    }
    Ok(())
}

/// The matrix as a Graphviz digraph: a cluster per file, a node per zone (labelled with
/// its interfaces), an edge per zone pair with traffic, labelled with the services and
/// the lines that permit them.
pub fn dot(matrix: &Matrix, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "digraph mislint {{")?;
    writeln!(out, "  rankdir=LR;")?;
    writeln!(out, "  node [shape=box, style=rounded];")?;
    for (i, f) in matrix.files.iter().enumerate() {
        writeln!(out, "  subgraph cluster_{i} {{")?;
        writeln!(
            out,
            "    label={};",
            quote(&format!("{} ({})", f.file, f.dialect))
        )?;
        for z in &f.zones {
            let label = if z.interfaces.is_empty() {
                format!("{}\n(by address)", z.zone)
            } else {
                format!("{}\n{}", z.zone, z.interfaces.join(", "))
            };
            writeln!(out, "    {} [label={}];", node_id(i, z.zone), quote(&label))?;
        }
        for p in f.pairs.iter().filter(|p| !p.services.is_empty()) {
            let label: Vec<String> = p
                .services
                .iter()
                .map(|s| {
                    let may = if s.may { " (may)" } else { "" };
                    let at = s
                        .rule
                        .line
                        .map_or_else(|| s.rule.what.clone(), |n| format!("line {n}"));
                    format!("{} ({at}){may}", s.service)
                })
                .collect();
            writeln!(
                out,
                "    {} -> {} [label={}];",
                node_id(i, p.from),
                node_id(i, p.to),
                quote(&label.join("\n"))
            )?;
        }
        writeln!(out, "  }}")?;
    }
    writeln!(out, "}}")
}

fn node_id(file: usize, zone: Zone) -> String {
    format!("f{file}_{}", zone.name())
}

/// A DOT double-quoted string: quotes and backslashes escaped, line breaks as `\n`,
/// other control characters dropped (DOT has no escape for them).
pub fn quote(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s.push('"');
    s
}
