//! Query mode: "would this flow pass, and which line decides?" (`mislint PATH --query`).
//!
//! Sits beside the checks, after the analysis: the query text (see [`grammar`] and
//! `grammars/query.ebnf`) becomes one [`Cube`] per file — a zone meaning its interfaces
//! and addresses exactly as the checks read them (user mapping, site file, hosts) —
//! [`Model::evaluate`] splits it into parts that the firewall treats alike, and each part
//! gets a witness packet whose path [`trace::walk`] replays rule by rule. Parts that met
//! an unmodelled rule are evaluated in both worlds; where the worlds disagree the part is
//! "may". [`matrix`] asks the same engine about every zone pair at once.
//!
//! The answer is plain owned data ([`FileAnswer`]), serialised as is for `--format json`
//! and drawn by [`render`] for people.

pub mod grammar;
pub mod matrix;
pub mod render;

use crate::analysis::trace::{self, Effect, Event, Packet, Trace};
use crate::analysis::zones::Zoning;
use crate::analysis::{Cube, Decider, Field, Model, OTHER_IFACE, Outcome, Verdict};
use crate::checks::{describe_protocols, port_ranges};
use crate::config::site::Hosts;
use crate::config::{Config, FileConfig, Sites};
use crate::discover::FileProblem;
use crate::graph::sets::{addr, proto};
use crate::graph::{Action, Dialect, IntervalSet, RuleGraph, Zone};
use crate::report::finding::Witness;
use crate::source::{LineIndex, SourceFile, Span};
use crate::{RunError, cli, parse};
pub use grammar::{Endpoint, Place, Query, QueryError, parse_query};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// The version of the `--query --format json` document.
pub const JSON_VERSION: u32 = 1;

/// The whole answer of a run, as `--format json` writes it.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The query as written.
    pub query: String,
    /// One answer per file, in path order.
    pub files: Vec<FileAnswer>,
    /// Paths that could not be read.
    pub errors: Vec<PathError>,
}

/// A path that could not be read.
#[derive(Debug, Serialize)]
pub struct PathError {
    /// The path.
    pub file: String,
    /// What went wrong.
    pub message: String,
}

/// The answer for one file.
#[derive(Debug, Serialize)]
pub struct FileAnswer {
    /// The file's path.
    pub file: String,
    /// Its dialect.
    pub dialect: &'static str,
    /// Why the query could not be answered for this file (a zone it has no interface
    /// or address in, an unparsable file), or parse errors that make the answer doubtful.
    pub errors: Vec<String>,
    /// The source side as resolved in this file; `null` when unanswered.
    pub from: Option<Side>,
    /// The destination side.
    pub to: Option<Side>,
    /// Disjoint parts of the queried packets, each treated alike by the firewall.
    pub parts: Vec<Part>,
}

/// One side of the flow as resolved in a file.
#[derive(Debug, Serialize)]
pub struct Side {
    /// The zone named, or inferred from the address.
    pub zone: Option<Zone>,
    /// True if the zone was inferred from the address (no zone in the query).
    pub zone_from_address: bool,
    /// The interfaces the packets may use; empty means any.
    pub interfaces: Vec<String>,
    /// The addresses, as networks or ranges.
    pub addresses: Vec<String>,
}

/// A part of the answer.
#[derive(Debug, Serialize)]
pub struct Part {
    /// `permitted`, `denied` or `may` (depends on a construct mislint does not model).
    pub verdict: &'static str,
    /// What the part holds in words: `tcp/380-388`, `esp`.
    pub service: String,
    /// IP protocol numbers, as ranges.
    pub protocols: Vec<(u8, u8)>,
    /// Source ports (as sent), as ranges; empty for protocols without ports.
    pub src_ports: Vec<(u16, u16)>,
    /// Destination ports (as sent).
    pub dst_ports: Vec<(u16, u16)>,
    /// Source addresses.
    pub src: Vec<String>,
    /// Destination addresses (as delivered, after any destination NAT).
    pub dst: Vec<String>,
    /// Ingress interfaces; `*` is any interface the config does not name.
    pub in_interfaces: Vec<String>,
    /// Egress interfaces.
    pub out_interfaces: Vec<String>,
    /// The deciding line: for a permit the first explicit accept on the way (else the
    /// accepting default), for a deny the dropping rule or default, for "may" the rule
    /// that would let it through.
    pub decided_by: LineRef,
    /// The first rule with an unmodelled condition or target on the way, if any.
    pub unmodelled: Option<LineRef>,
    /// The destination NAT rule that rewrote these packets, if any.
    pub nat: Option<LineRef>,
    /// A packet of this part, as sent.
    pub witness: Witness,
    /// The same packet as delivered, when destination NAT changed it.
    pub delivered: Option<Witness>,
    /// The witness's path: every stage, matched rule, chain call, return and default.
    pub trace: Vec<Step>,
    /// For a "may" part: the path on which the packet is stopped instead.
    pub alternative: Option<Alternative>,
}

/// The other world of a "may" part.
#[derive(Debug, Serialize)]
pub struct Alternative {
    /// `denied` (or `permitted`).
    pub verdict: &'static str,
    /// The deciding line in that world.
    pub decided_by: LineRef,
    /// The path in that world.
    pub trace: Vec<Step>,
}

/// A line of the config.
#[derive(Debug, Serialize)]
pub struct LineRef {
    /// 1-based line number; `null` for a default that no line causes.
    pub line: Option<usize>,
    /// The line's text (its first line, for an element spanning several).
    pub text: String,
    /// The chain, ACL or rule list it belongs to.
    pub chain: String,
    /// How mislint names it: `this rule of \`FORWARD\``, `chain policy`, ….
    pub what: String,
    /// The rule's own comment (iptables `--comment`, ASA remark, pfSense `descr`).
    pub comment: Option<String>,
}

/// One event of a trace.
#[derive(Debug, Serialize)]
pub struct Step {
    /// The stage (`filter/FORWARD`, `access-group dmz_in in interface dmz`, …).
    pub stage: String,
    /// The chain the event happens in.
    pub chain: String,
    /// Chain-call depth, 0 in the stage's own chain.
    pub depth: usize,
    /// `enter-stage`, `match`, `assume-no-match`, `return` or `default`.
    pub event: &'static str,
    /// For `match` and `default`: `accept`, `drop`, `reject`, `jump`, `goto`, `return`,
    /// `continue`, `dnat`, `redirect` or `unknown`.
    pub action: Option<&'static str>,
    /// The line, for a matched rule or a default.
    pub line: Option<usize>,
    /// That line's text.
    pub text: Option<String>,
    /// What happened, in words: `jump to MIS-TO-INTERNAL`, `DNAT to 192.168.10.5`, ….
    pub detail: String,
    /// True if the rule has an unmodelled condition and this path assumes it matched.
    pub assumed: bool,
}

/// Runs a query over the configured paths; exit status: clean when every part of every
/// file is permitted, findings when some part is denied or "may", errors otherwise.
pub fn run(
    config: &Config,
    query: &Query,
    out: &mut dyn Write,
) -> Result<crate::Outcome, RunError> {
    let (files, sites, problems) = load(config)?;
    let files: Vec<FileAnswer> = files
        .par_iter()
        .map(|(file, dialect)| {
            let fc = config.file_config(&sites, &file.path);
            answer_file(file, *dialect, &fc, query)
        })
        .collect();
    let answer = Answer {
        version: JSON_VERSION,
        query: query.text.clone(),
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
            serde_json::to_writer_pretty(&mut *out, &answer).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        _ => render::human(&answer, out)?,
    }
    Ok(exit_outcome(&answer))
}

/// 0 all permitted, 1 something denied or "may", 2 something could not be answered.
fn exit_outcome(answer: &Answer) -> crate::Outcome {
    if !answer.errors.is_empty() || answer.files.iter().any(|f| !f.errors.is_empty()) {
        return crate::Outcome::Errors;
    }
    if answer.files.is_empty() {
        return crate::Outcome::Errors;
    }
    let all_permitted = answer
        .files
        .iter()
        .flat_map(|f| &f.parts)
        .all(|p| p.verdict == "permitted");
    if all_permitted {
        crate::Outcome::Clean
    } else {
        crate::Outcome::Findings
    }
}

/// The files a run reads, as `lint` finds them: discovered, site files loaded, excluded
/// ones dropped, ids renumbered.
type Loaded = (Vec<(SourceFile, Dialect)>, Sites, Vec<FileProblem>);

pub(crate) fn load(config: &Config) -> Result<Loaded, RunError> {
    let found = crate::discover::discover(&config.paths);
    let paths: Vec<&std::path::Path> = found.files.iter().map(|(f, _)| f.path.as_path()).collect();
    let sites = config.load_sites(&paths)?;
    let mut files: Vec<(SourceFile, Dialect)> = found
        .files
        .into_iter()
        .filter(|(f, _)| !config.excluded(&sites, &f.path))
        .collect();
    for (i, (f, _)) in files.iter_mut().enumerate() {
        f.id = crate::source::FileId(i as u32);
    }
    Ok((files, sites, found.problems))
}

/// Parses one file for a query or the matrix: its parse errors become lines of
/// `errors` (and "no rules could be read" when there is no graph at all).
pub(crate) fn parse_for_answer(
    file: &SourceFile,
    dialect: Dialect,
    errors: &mut Vec<String>,
) -> (parse::Parsed, LineIndex) {
    let parsed = parse::parse(file, dialect);
    let index = LineIndex::new(&file.text);
    for f in parsed
        .findings
        .iter()
        .filter(|f| f.rule == parse::PARSE_ERROR)
    {
        let (line, _) = index.line_col(&file.text, f.primary.span.start);
        errors.push(format!("parse error at line {line}: {}", f.message));
    }
    if parsed.graph.is_none() && errors.is_empty() {
        errors.push("no rules could be read".into());
    }
    (parsed, index)
}

/// Parses one file and answers the query for it.
pub fn answer_file(
    file: &SourceFile,
    dialect: Dialect,
    fc: &FileConfig,
    query: &Query,
) -> FileAnswer {
    let mut answer = FileAnswer {
        file: file.display_path(),
        dialect: dialect.name(),
        errors: Vec::new(),
        from: None,
        to: None,
        parts: Vec::new(),
    };
    let (parsed, lines) = parse_for_answer(file, dialect, &mut answer.errors);
    let Some(graph) = &parsed.graph else {
        return answer;
    };
    let zoning = Zoning::assign(graph, &fc.zones);
    let model = Model::new(graph, &fc.mapped_interfaces());
    let lookup = Lines {
        file,
        index: &lines,
        model: &model,
    };
    match evaluate_query(&model, &zoning, &fc.hosts, query) {
        Ok(resolved) => {
            answer.from = Some(resolved.src.describe(&model));
            answer.to = Some(resolved.dst.describe(&model));
            answer.parts = resolved
                .parts
                .iter()
                .map(|p| describe_part(&lookup, p))
                .collect();
        }
        Err(message) => answer.errors.push(message),
    }
    answer
}

/// A side of the query resolved against one file's zones.
#[derive(Debug)]
pub struct Resolved {
    /// The zone, named or inferred.
    pub zone: Option<Zone>,
    /// True if inferred from the address.
    pub inferred: bool,
    /// Interface indices the packets may use, or `None` for any.
    pub ifaces: Option<IntervalSet>,
    /// Addresses.
    pub addrs: IntervalSet,
}

impl Resolved {
    fn describe(&self, model: &Model) -> Side {
        Side {
            zone: self.zone,
            zone_from_address: self.inferred,
            interfaces: self
                .ifaces
                .as_ref()
                .map(|s| iface_names(model, s))
                .unwrap_or_default(),
            addresses: describe_addrs(&self.addrs, &model.graph.family.space()),
        }
    }
}

/// A part of the query before it is described.
#[derive(Debug)]
pub struct RawPart {
    /// Its packets, as the last stage saw them.
    pub cube: Cube,
    /// Permitted, denied, or (both) may.
    pub verdict: PartVerdict,
    /// See [`Part::decided_by`].
    pub decided_by: Decider,
    /// The first unmodelled rule on the way.
    pub unmodelled: Option<Decider>,
    /// The destination NAT rule, if any.
    pub nat: Option<Decider>,
    /// The witness as sent.
    pub sent: Packet,
    /// The witness as delivered.
    pub delivered: Packet,
    /// The witness's path in the world that matches the verdict.
    pub trace: Trace,
    /// For a "may" part, a path on which the packet is denied.
    pub alternative: Option<Trace>,
}

/// The verdict of a part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartVerdict {
    /// Every world permits it.
    Permitted,
    /// Every world denies it.
    Denied,
    /// It depends on an unmodelled construct.
    May,
}

impl PartVerdict {
    /// The JSON and human word.
    pub fn name(self) -> &'static str {
        match self {
            PartVerdict::Permitted => "permitted",
            PartVerdict::Denied => "denied",
            PartVerdict::May => "may",
        }
    }
}

/// A query evaluated in one file.
#[derive(Debug)]
pub struct Evaluated {
    /// The source side.
    pub src: Resolved,
    /// The destination side.
    pub dst: Resolved,
    /// The parts, sorted by protocol, ports, interfaces and addresses.
    pub parts: Vec<RawPart>,
}

/// Resolves the query against a file's zones and evaluates it.
pub fn evaluate_query(
    model: &Model,
    zoning: &Zoning,
    hosts: &Hosts,
    query: &Query,
) -> Result<Evaluated, String> {
    let space = model.graph.family.space();
    let src = resolve_side(model, zoning, hosts, &query.src, &space)?;
    let mut dst = resolve_side(model, zoning, hosts, &query.dst, &space)?;
    let mut q = model.new_packets();
    if let Some(p) = query.protocol {
        q.restrict(Field::Proto, &IntervalSet::single(u128::from(p)));
    }
    if let Some((ports, _)) = &query.src.ports {
        q.restrict(Field::SrcPort, ports);
    }
    if let Some((ports, _)) = &query.dst.ports {
        q.restrict(Field::DstPort, ports);
    }
    if let Some(s) = &src.ifaces {
        q.restrict(Field::InIface, s);
    }
    if let Some(s) = &dst.ifaces {
        q.restrict(Field::OutIface, s);
    }
    q.restrict(Field::SrcAddr, &src.addrs);
    // A zone as destination means "delivered into the zone", as the checks read it: not
    // the firewall's own addresses, and, with destination NAT, whatever address the
    // packets were sent to (see `checks::pair_query`).
    let by_zone = matches!(query.dst.place, Place::Zone(_)) && query.dst.addrs.is_none();
    let mut delivered = None;
    if by_zone {
        let own = model
            .graph
            .interfaces
            .iter()
            .fold(IntervalSet::empty(), |acc, i| acc.union(&i.own_addresses));
        dst.addrs = dst.addrs.subtract(&own);
        let has_nat = model
            .graph
            .rules()
            .any(|(_, _, r)| matches!(r.action, Action::Dnat(_)));
        if has_nat {
            delivered = Some(dst.addrs.clone());
        }
    }
    if delivered.is_none() {
        q.restrict(Field::DstAddr, &dst.addrs);
    }
    if q.is_empty() {
        return Err(format!(
            "the query holds no packet this file filters (it filters {})",
            family_name(model)
        ));
    }
    let outcomes: Vec<Outcome> = model
        .evaluate(&q)
        .into_iter()
        .filter_map(|mut o| {
            if let Some(d) = &delivered {
                o.cube.restrict(Field::DstAddr, d);
            }
            (!o.cube.is_empty()).then_some(o)
        })
        .collect();
    let mut parts: Vec<RawPart> = merge(&outcomes, refine(&outcomes))
        .into_iter()
        .flat_map(split_ports)
        .filter_map(|(cube, ids)| build_part(model, &outcomes, cube, &ids))
        .collect();
    parts.sort_by_key(|p| sort_key(&p.cube));
    Ok(Evaluated { src, dst, parts })
}

fn family_name(model: &Model) -> &'static str {
    match model.graph.family {
        crate::graph::Family::V4 => "IPv4 only",
        crate::graph::Family::V6 => "IPv6 only",
        crate::graph::Family::Both => "IPv4 and IPv6",
    }
}

/// One side of the flow in this file's terms.
fn resolve_side(
    model: &Model,
    zoning: &Zoning,
    hosts: &Hosts,
    ep: &Endpoint,
    space: &IntervalSet,
) -> Result<Resolved, String> {
    let given = ep.addrs.as_ref().map(|(a, _)| a.intersect(space));
    match &ep.place {
        Place::Zone(zone) => {
            if !zoning.has_zone(*zone) {
                return Err(no_zone_message(model, zoning, *zone));
            }
            let ifaces = zoning
                .has_interface_in(*zone)
                .then(|| model.iface_set(&zoning.interfaces_in(*zone)));
            let addrs = given.unwrap_or_else(|| match hosts.of(*zone) {
                Some(h) => h.intersect(space),
                None => zoning.zone_addresses(*zone, space),
            });
            Ok(Resolved {
                zone: Some(*zone),
                inferred: false,
                ifaces,
                addrs,
            })
        }
        Place::Iface(name) => {
            if !model.ifaces.iter().any(|i| i == name) || name == OTHER_IFACE {
                let known: Vec<&str> = model
                    .ifaces
                    .iter()
                    .map(String::as_str)
                    .filter(|n| *n != OTHER_IFACE)
                    .collect();
                return Err(format!(
                    "no interface `{name}` in this file (it names: {})",
                    known.join(", ")
                ));
            }
            Ok(Resolved {
                zone: zoning.ifaces.get(name).map(|(z, _)| *z),
                inferred: false,
                ifaces: Some(model.iface_set(&[name.as_str()])),
                addrs: given.unwrap_or_else(|| space.clone()),
            })
        }
        Place::Any => {
            let addrs = given.unwrap_or_else(|| space.clone());
            let zone = ep
                .addrs
                .as_ref()
                .and_then(|_| zone_of_addresses(zoning, &addrs, space));
            Ok(Resolved {
                zone,
                inferred: zone.is_some(),
                ifaces: zone.map(|z| model.iface_set(&zoning.interfaces_in(z))),
                addrs,
            })
        }
    }
}

fn no_zone_message(model: &Model, zoning: &Zoning, zone: Zone) -> String {
    let hint = if model.graph.dialect == Dialect::Iptables {
        format!("; iptables interface names carry no meaning: map one with --zone IFACE={zone}")
    } else {
        format!("; map an interface or network to it with --zone NAME={zone}")
    };
    let mut msg = format!("no interface or address of this file is in the `{zone}` zone{hint}");
    if !zoning.unmapped.is_empty() {
        msg.push_str(&format!(" (unmapped: {})", zoning.unmapped.join(", ")));
    }
    msg
}

/// The one zone whose known addresses hold all of `addrs` and that has interfaces: the
/// way the packets would be routed. `None` when no or several zones qualify.
fn zone_of_addresses(zoning: &Zoning, addrs: &IntervalSet, space: &IntervalSet) -> Option<Zone> {
    let known = |z: Zone| -> Option<IntervalSet> {
        if z == Zone::Public {
            if let Some(set) = zoning.user_addrs.get(&z).filter(|s| !s.is_empty()) {
                return Some(set.clone());
            }
            // The rest of the world, but only when some other zone has known addresses.
            let any_other = zoning
                .addrs
                .iter()
                .any(|(k, s)| *k != Zone::Public && !s.is_empty());
            return any_other.then(|| zoning.zone_addresses(z, space));
        }
        zoning.addrs.get(&z).filter(|s| !s.is_empty()).cloned()
    };
    let mut hits = Zone::ALL
        .into_iter()
        .filter(|z| zoning.has_interface_in(*z))
        .filter(|z| known(*z).is_some_and(|set| addrs.is_subset(&set)));
    let first = hits.next()?;
    hits.next().is_none().then_some(first)
}

/// Splits the outcomes into disjoint parts, each with the outcomes that hold it. An
/// outcome that met no unmodelled rule is disjoint from all others; the "may" outcomes
/// of the two worlds of an unmodelled rule overlap and are refined against each other.
fn refine(outcomes: &[Outcome]) -> Vec<(Cube, Vec<usize>)> {
    let mut parts: Vec<(Cube, Vec<usize>)> = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        if o.may.is_none() {
            parts.push((o.cube.clone(), vec![i]));
        }
    }
    let mut uncertain: Vec<(Cube, Vec<usize>)> = Vec::new();
    for (i, o) in outcomes.iter().enumerate().filter(|(_, o)| o.may.is_some()) {
        let mut next = Vec::new();
        let mut rest = vec![o.cube.clone()];
        for (cube, ids) in uncertain {
            if !cube.intersects(&o.cube) {
                next.push((cube, ids));
                continue;
            }
            let mut with = ids.clone();
            with.push(i);
            next.push((cube.intersect(&o.cube), with));
            next.extend(cube.subtract(&o.cube).into_iter().map(|c| (c, ids.clone())));
            rest = rest
                .into_iter()
                .flat_map(|r| {
                    if r.intersects(&cube) {
                        r.subtract(&cube)
                    } else {
                        vec![r]
                    }
                })
                .collect();
        }
        next.extend(rest.into_iter().map(|c| (c, vec![i])));
        uncertain = next;
    }
    parts.extend(uncertain);
    parts
}

type Signature = Vec<(
    bool,
    Decider,
    Vec<Decider>,
    Option<Decider>,
    Option<Decider>,
)>;

/// What makes two parts the same answer: their outcomes' verdicts and rules.
fn signature(outcomes: &[Outcome], ids: &[usize]) -> Signature {
    let mut sig: Vec<_> = ids
        .iter()
        .filter_map(|&i| outcomes.get(i))
        .map(|o| {
            (
                o.verdict == Verdict::Permit,
                o.decided_by,
                o.accepted_by.clone(),
                o.may,
                o.nat.as_deref().map(|(d, _)| *d),
            )
        })
        .collect();
    sig.sort();
    sig.dedup();
    sig
}

/// Joins parts with the same answer whose cubes differ in one field only, so that the
/// fragments of the set walk (a port range split by an address, say) read as one part.
fn merge(outcomes: &[Outcome], parts: Vec<(Cube, Vec<usize>)>) -> Vec<(Cube, Vec<usize>)> {
    // Merging is quadratic per pass; past this many parts the fragments stay as they are.
    const MAX_MERGE: usize = 2_000;
    if parts.len() > MAX_MERGE {
        return parts;
    }
    let mut parts: Vec<(Cube, Vec<usize>, Signature)> = parts
        .into_iter()
        .map(|(c, ids)| {
            let sig = signature(outcomes, &ids);
            (c, ids, sig)
        })
        .collect();
    loop {
        let mut merged_any = false;
        let mut out: Vec<(Cube, Vec<usize>, Signature)> = Vec::new();
        for (cube, ids, sig) in parts {
            let slot = out
                .iter_mut()
                .find(|(c, _, other)| other == &sig && differing_fields(c, &cube) <= 1);
            match slot {
                Some((c, _, _)) => {
                    *c = c.hull(&cube);
                    merged_any = true;
                }
                None => out.push((cube, ids, sig)),
            }
        }
        parts = out;
        if !merged_any {
            return parts.into_iter().map(|(c, ids, _)| (c, ids)).collect();
        }
    }
}

/// One part per contiguous destination-port range, so a range query reads as a port
/// map (380-388 denied, 389 permitted, 390-400 denied) rather than as a set with holes.
fn split_ports((cube, ids): (Cube, Vec<usize>)) -> Vec<(Cube, Vec<usize>)> {
    cube.get(Field::DstPort)
        .ranges()
        .iter()
        .map(|&(lo, hi)| {
            let mut piece = cube.clone();
            piece.set(Field::DstPort, IntervalSet::range(lo, hi));
            (piece, ids.clone())
        })
        .collect()
}

fn differing_fields(a: &Cube, b: &Cube) -> usize {
    a.sets().zip(b.sets()).filter(|(x, y)| x != y).count()
}

fn sort_key(c: &Cube) -> [u128; 7] {
    let first = |f: Field| c.get(f).first().unwrap_or(0);
    [
        first(Field::Proto),
        first(Field::DstPort),
        first(Field::SrcPort),
        first(Field::InIface),
        first(Field::OutIface),
        first(Field::SrcAddr),
        first(Field::DstAddr),
    ]
}

/// The verdict, deciding rules, witness and traces of one part.
fn build_part(model: &Model, outcomes: &[Outcome], cube: Cube, ids: &[usize]) -> Option<RawPart> {
    let held: Vec<&Outcome> = ids.iter().filter_map(|&i| outcomes.get(i)).collect();
    let permit = held.iter().find(|o| o.verdict == Verdict::Permit);
    let deny = held.iter().find(|o| o.verdict == Verdict::Deny);
    let (verdict, main) = match (permit, deny) {
        (Some(p), None) => (PartVerdict::Permitted, *p),
        (None, Some(d)) => (PartVerdict::Denied, *d),
        (Some(p), Some(_)) => (PartVerdict::May, *p),
        (None, None) => return None,
    };
    let decided_by = match main.verdict {
        Verdict::Permit => main.permitting(),
        Verdict::Deny => main.decided_by,
    };
    let unmodelled = held.iter().find_map(|o| o.may);
    let nat = main.nat.as_deref().map(|(d, _)| *d);
    let delivered = Packet::of_cube(model, &cube)?;
    let sent = match main.nat.as_deref() {
        Some((d, before)) => sent_packet(model, *d, before, &cube).unwrap_or(delivered.clone()),
        None => delivered.clone(),
    };
    let worlds = trace::walk(model, &sent, Some(&delivered));
    let wanted = match verdict {
        PartVerdict::Denied => Verdict::Deny,
        _ => Verdict::Permit,
    };
    let pick = |v: Verdict| worlds.iter().find(|t| t.verdict == v).cloned();
    let trace = pick(wanted).or_else(|| worlds.first().cloned())?;
    let alternative = (verdict == PartVerdict::May)
        .then(|| pick(Verdict::Deny))
        .flatten();
    Some(RawPart {
        cube,
        verdict,
        decided_by,
        unmodelled,
        nat,
        sent,
        delivered,
        trace,
        alternative,
    })
}

/// A packet as sent for a part that destination NAT delivered: the NAT rule's matched
/// packets, agreeing with the part on every field the rewrite leaves alone.
fn sent_packet(model: &Model, nat: Decider, before: &Cube, part: &Cube) -> Option<Packet> {
    let rewrites_port = model
        .graph
        .chains
        .get(nat.chain.0)
        .and_then(|c| c.rules.get(nat.rule?))
        .is_some_and(|r| matches!(&r.action, Action::Dnat(t) if t.ports.is_some()));
    let mut pre = before.clone();
    // Not the state: the rewrite marks the connection as destination-NATed.
    for f in [
        Field::Proto,
        Field::InIface,
        Field::OutIface,
        Field::SrcPort,
        Field::SrcAddr,
    ] {
        pre.restrict(f, &part.get(f));
    }
    if !rewrites_port {
        pre.restrict(Field::DstPort, &part.get(Field::DstPort));
    }
    Packet::of_cube(model, &pre)
}

/// Turns spans into line numbers and text.
struct Lines<'a> {
    file: &'a SourceFile,
    index: &'a LineIndex,
    model: &'a Model<'a>,
}

impl Lines<'_> {
    /// The line and text of a span; `None` for an empty span (a default no line causes,
    /// like an ASA interface without an outbound access-list).
    fn line_of(&self, span: Span) -> (Option<usize>, String) {
        if span.is_empty() {
            return (None, String::new());
        }
        let (line, _) = self.index.line_col(&self.file.text, span.start);
        let line = Some(line);
        let whole = self
            .file
            .text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("");
        (line, one_line(whole))
    }

    fn line_ref(&self, d: Decider) -> LineRef {
        let (line, text) = self.line_of(self.model.span_of(d));
        let comment = d.rule.and_then(|i| {
            self.model
                .graph
                .chains
                .get(d.chain.0)?
                .rules
                .get(i)?
                .comment
                .clone()
        });
        LineRef {
            line,
            text,
            chain: self.chain_name(d),
            what: self.model.describe(d),
            comment,
        }
    }

    fn chain_name(&self, d: Decider) -> String {
        self.model
            .graph
            .chains
            .get(d.chain.0)
            .map_or_else(String::new, |c| c.name.clone())
    }
}

/// The text of a span on one line: an element written over several lines (a pfSense
/// `<rule>`) has its whitespace runs collapsed and is cut after [`MAX_TEXT`] characters.
fn one_line(text: &str) -> String {
    const MAX_TEXT: usize = 160;
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= MAX_TEXT {
        return joined;
    }
    let mut cut: String = joined.chars().take(MAX_TEXT).collect();
    cut.push('…');
    cut
}

fn describe_part(lines: &Lines, p: &RawPart) -> Part {
    let model = lines.model;
    let mut protocols: BTreeMap<u8, IntervalSet> = BTreeMap::new();
    for &(lo, hi) in p.cube.get(Field::Proto).ranges() {
        for n in lo..=hi.min(255) {
            protocols.insert(n as u8, p.cube.get(Field::DstPort).into_owned());
        }
    }
    let has_ports = protocols.keys().any(|&n| proto::has_ports(n));
    let ports = |f: Field| {
        if has_ports {
            port_ranges(&p.cube.get(f))
        } else {
            Vec::new()
        }
    };
    let delivered = model_witness(model, &p.delivered);
    let witness = model_witness(model, &p.sent);
    Part {
        verdict: p.verdict.name(),
        service: describe_protocols(&protocols),
        protocols: p
            .cube
            .get(Field::Proto)
            .ranges()
            .iter()
            .map(|&(lo, hi)| (lo as u8, hi as u8))
            .collect(),
        src_ports: ports(Field::SrcPort),
        dst_ports: ports(Field::DstPort),
        src: describe_addrs(&p.cube.get(Field::SrcAddr), &model.graph.family.space()),
        dst: describe_addrs(&p.cube.get(Field::DstAddr), &model.graph.family.space()),
        in_interfaces: iface_names(model, &p.cube.get(Field::InIface)),
        out_interfaces: iface_names(model, &p.cube.get(Field::OutIface)),
        decided_by: lines.line_ref(p.decided_by),
        unmodelled: p.unmodelled.map(|d| lines.line_ref(d)),
        nat: p.nat.map(|d| lines.line_ref(d)),
        delivered: (delivered != witness).then_some(delivered),
        witness,
        trace: describe_trace(lines, &p.trace),
        alternative: p.alternative.as_ref().map(|t| Alternative {
            verdict: match t.verdict {
                Verdict::Permit => "permitted",
                Verdict::Deny => "denied",
            },
            decided_by: lines.line_ref(t.decided_by),
            trace: describe_trace(lines, t),
        }),
    }
}

fn model_witness(model: &Model, p: &Packet) -> Witness {
    p.witness(model)
}

fn describe_trace(lines: &Lines, t: &Trace) -> Vec<Step> {
    let graph: &RuleGraph = lines.model.graph;
    let chain_name = |id: crate::graph::ChainId| {
        graph
            .chains
            .get(id.0)
            .map_or_else(|| format!("chain {}", id.0), |c| c.name.clone())
    };
    t.steps
        .iter()
        .map(|s| {
            let stage = graph
                .stages
                .get(s.stage)
                .map_or_else(String::new, |st| st.name.clone());
            let line = |d: Decider| {
                let (n, text) = lines.line_of(lines.model.span_of(d));
                (n, n.map(|_| text))
            };
            let (event, action, (line, text), detail) = match &s.event {
                Event::EnterStage => ("enter-stage", None, (None, None), format!("enter {stage}")),
                Event::Match(e) => {
                    let (a, d) = describe_effect(e, &chain_name);
                    ("match", Some(a), line(s.at), d)
                }
                Event::AssumeNoMatch => (
                    "assume-no-match",
                    None,
                    line(s.at),
                    "unmodelled condition, assumed not to match: next rule".to_string(),
                ),
                Event::Return { to } => (
                    "return",
                    None,
                    (None, None),
                    format!(
                        "end of {}: back to {}",
                        chain_name(s.at.chain),
                        chain_name(*to)
                    ),
                ),
                Event::Default(e) => {
                    let (a, d) = describe_effect(e, &chain_name);
                    let why = lines.model.describe(s.at);
                    ("default", Some(a), line(s.at), format!("{d} ({why})"))
                }
            };
            Step {
                stage,
                chain: chain_name(s.at.chain),
                depth: s.depth,
                event,
                action,
                line,
                text,
                detail,
                assumed: s.assumed,
            }
        })
        .collect()
}

fn describe_effect(
    e: &Effect,
    chain_name: &dyn Fn(crate::graph::ChainId) -> String,
) -> (&'static str, String) {
    match e {
        Effect::Accept => ("accept", "accept".into()),
        Effect::Drop => ("drop", "drop".into()),
        Effect::Reject => ("reject", "reject".into()),
        Effect::Jump(c) => ("jump", format!("jump to {}", chain_name(*c))),
        Effect::Goto(c) => ("goto", format!("goto {}", chain_name(*c))),
        Effect::Return => ("return", "return".into()),
        Effect::Continue(t) => ("continue", format!("{t}, then the next rule")),
        Effect::Dnat { to, port } => (
            "dnat",
            match port {
                Some(p) => format!("DNAT to {to} port {p}"),
                None => format!("DNAT to {to}"),
            },
        ),
        Effect::Redirect => ("redirect", "redirect to the firewall itself".into()),
        Effect::Unknown { target, accepted } => (
            "unknown",
            if *accepted {
                format!("unknown target `{target}`, assumed to accept")
            } else {
                format!("unknown target `{target}`, assumed to go on")
            },
        ),
    }
}

/// Interface names of an index set; `*` is every interface the config does not name.
fn iface_names(model: &Model, set: &IntervalSet) -> Vec<String> {
    model
        .ifaces
        .iter()
        .enumerate()
        .filter(|(i, _)| set.contains(*i as u128))
        .map(|(_, n)| n.clone())
        .collect()
}

/// Addresses as networks (`10.0.0.0/24`), single addresses or ranges (`a-b`); the whole
/// address space of the file as `any`.
pub fn describe_addrs(set: &IntervalSet, space: &IntervalSet) -> Vec<String> {
    if set == space {
        return vec!["any".into()];
    }
    let v4 = addr::v4_space();
    if set == &v4 && space != &v4 {
        return vec!["any IPv4".into()];
    }
    set.ranges()
        .iter()
        .flat_map(|&(lo, hi)| describe_range(lo, hi))
        .collect()
}

/// A range as one network, one address, or `lo-hi`.
fn describe_range(lo: u128, hi: u128) -> Vec<String> {
    let ip = addr::to_ip;
    if lo == hi {
        return vec![ip(lo).to_string()];
    }
    let size = hi - lo;
    let is_block = size.checked_add(1).is_some_and(|n| n.is_power_of_two()) && lo & size == 0;
    if is_block {
        let bits = (size + 1).trailing_zeros();
        let len = match ip(lo) {
            std::net::IpAddr::V4(_) => 32u32.saturating_sub(bits),
            std::net::IpAddr::V6(_) => 128u32.saturating_sub(bits),
        };
        return vec![format!("{}/{len}", ip(lo))];
    }
    vec![format!("{}-{}", ip(lo), ip(hi))]
}

#[cfg(test)]
mod tests;
