//! Checks: the rule graph's verdicts held against the active policy flows.
//!
//! Each check is a file exporting `META` (name, default severity, documentation) and
//! `run(&CheckCx) -> Vec<Finding>`; [`CHECKS`] lists them. A check decides and never
//! prints. [`CheckCx`] evaluates each zone pair once, so every check reads the same
//! partition of the traffic into permitted and denied parts.

pub mod analysis_limit;
pub mod any_any_permit;
pub mod boundary_not_checked;
pub mod host_firewall;
pub mod ipsec_violation;
pub mod missing_port;
pub mod narrow_required_flow;
pub mod needless_port;
pub mod no_return_path;
pub mod reach;
pub mod redundant_rule;
pub mod shadowed_rule;
pub mod unmapped_interface;

use crate::analysis::zones::Zoning;
use crate::analysis::{Cube, Decider, Field, Model, Outcome, Verdict};
use crate::config::site::Hosts;
use crate::graph::sets::proto;
use crate::graph::{IntervalSet, Zone};
use crate::parse;
use crate::policy::{ActiveFlow, Settings};
use crate::report::finding::{Finding, Severity};
use crate::source::SourceFile;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// What a check is, for `--explain`, SARIF rule metadata and the README.
#[derive(Clone, Copy, Debug)]
pub struct CheckMeta {
    /// Stable kebab-case id; the JSON `rule` value.
    pub name: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// One line.
    pub summary: &'static str,
    /// Markdown: What it finds / Why it matters / How to fix / How to suppress.
    pub doc: &'static str,
}

/// A check's entry point.
pub type CheckFn = fn(&CheckCx) -> Vec<Finding>;

/// Every policy check, in the order they run.
pub const CHECKS: &[(CheckMeta, CheckFn)] = &[
    (missing_port::META, missing_port::run),
    (needless_port::META, needless_port::run),
    (ipsec_violation::META, ipsec_violation::run),
    (no_return_path::META, no_return_path::run),
    (analysis_limit::META, analysis_limit::run),
    (boundary_not_checked::META, boundary_not_checked::run),
    (host_firewall::META, host_firewall::run),
    (narrow_required_flow::META, narrow_required_flow::run),
    (unmapped_interface::META, unmapped_interface::run),
    (shadowed_rule::META, shadowed_rule::run),
    (redundant_rule::META, redundant_rule::run),
    (any_any_permit::META, any_any_permit::run),
];

/// Findings the parsers emit, documented like checks.
pub const PARSER_FINDINGS: &[CheckMeta] = &[
    CheckMeta {
        name: parse::PARSE_ERROR,
        severity: Severity::Error,
        summary: "the config has text its device would refuse, or mislint cannot read it",
        doc: include_str!("../../docs/checks/parse-error.md"),
    },
    CheckMeta {
        name: parse::UNKNOWN_SYNTAX,
        severity: Severity::Note,
        summary: "a construct mislint does not model; rules using it are treated as \"may match\"",
        doc: include_str!("../../docs/checks/unknown-syntax.md"),
    },
    CheckMeta {
        name: parse::UNDEFINED_REFERENCE,
        severity: Severity::Error,
        summary: "a reference to a chain, object, group or alias that is not defined",
        doc: include_str!("../../docs/checks/undefined-reference.md"),
    },
    CheckMeta {
        name: parse::REFERENCE_CYCLE,
        severity: Severity::Error,
        summary: "chains, object-groups or aliases that refer to themselves",
        doc: include_str!("../../docs/checks/reference-cycle.md"),
    },
];

/// Findings about suppressions.
pub const SUPPRESSION_FINDINGS: &[CheckMeta] = &[crate::suppress::UNUSED, crate::suppress::INVALID];

/// Every finding kind mislint can report.
pub fn all_metas() -> impl Iterator<Item = &'static CheckMeta> {
    CHECKS
        .iter()
        .map(|(m, _)| m)
        .chain(PARSER_FINDINGS.iter())
        .chain(SUPPRESSION_FINDINGS.iter())
}

/// The metadata of a finding kind.
pub fn meta(name: &str) -> Option<&'static CheckMeta> {
    all_metas().find(|m| m.name == name)
}

/// The zone pairs whose traffic touches the MIS host: both directions across the
/// internal firewall and across the external one. Traffic between the public and the
/// internal network does not involve MIS and is outside KB 294297.
pub const MIS_PAIRS: [(Zone, Zone); 4] = [
    (Zone::Perimeter, Zone::Internal),
    (Zone::Internal, Zone::Perimeter),
    (Zone::Perimeter, Zone::Public),
    (Zone::Public, Zone::Perimeter),
];

/// Something for each zone pair.
pub type PerPair<T> = BTreeMap<(Zone, Zone), T>;

/// Everything a check may read.
pub struct CheckCx<'a> {
    /// The file.
    pub file: &'a SourceFile,
    /// The compiled graph.
    pub model: &'a Model<'a>,
    /// The zones of its interfaces and addresses.
    pub zoning: &'a Zoning,
    /// The run's settings.
    pub settings: &'a Settings,
    /// Host addresses that narrow each zone to the MIS flows' endpoints.
    pub hosts: &'a Hosts,
    /// The flows the active scenarios require or allow.
    pub flows: &'a [ActiveFlow],
    /// The evaluated traffic of each MIS zone pair the firewall stands on.
    pub pairs: PerPair<Vec<Outcome>>,
    /// The traffic each pair's outcomes cover: its query cut to the destinations that
    /// count as delivered (see [`pair_query`]).
    pub pair_traffic: PerPair<Cube>,
    /// True when the config is the MIS host's own firewall (see `host_firewall`).
    pub host: bool,
    /// The chain-local reachability of the rules, computed on first use and shared by
    /// `shadowed-rule` and `redundant-rule`.
    reach: std::sync::OnceLock<Vec<Vec<reach::RuleResult<'a>>>>,
}

impl<'a> CheckCx<'a> {
    /// Evaluates every MIS zone pair present in the file; the chain analysis waits for
    /// its first use.
    pub fn new(
        file: &'a SourceFile,
        model: &'a Model<'a>,
        zoning: &'a Zoning,
        settings: &'a Settings,
        hosts: &'a Hosts,
        flows: &'a [ActiveFlow],
    ) -> CheckCx<'a> {
        let host = model.graph.is_host_firewall();
        let (pairs, pair_traffic) = evaluate_pairs(model, zoning, hosts, host);
        CheckCx {
            file,
            model,
            zoning,
            settings,
            hosts,
            flows,
            pairs,
            pair_traffic,
            host,
            reach: std::sync::OnceLock::new(),
        }
    }

    /// Like [`CheckCx::new`], with the chain analysis done at once on another core while
    /// this one walks the zone pairs: a lint runs every check, and the two share nothing
    /// but the compiled rules, so a single file's run uses both cores.
    pub fn with_chain_analysis(
        file: &'a SourceFile,
        model: &'a Model<'a>,
        zoning: &'a Zoning,
        settings: &'a Settings,
        hosts: &'a Hosts,
        flows: &'a [ActiveFlow],
    ) -> CheckCx<'a> {
        let (reach, mut cx) = rayon::join(
            || reach::analyse(model, true),
            || CheckCx::new(file, model, zoning, settings, hosts, flows),
        );
        cx.reach = std::sync::OnceLock::from(reach);
        cx
    }

    /// Every reportable rule's reachability and redundancy, per chain (see [`reach`]).
    pub fn reach(&self) -> &[Vec<reach::RuleResult<'a>>] {
        self.reach.get_or_init(|| reach::analyse(self.model, true))
    }

    /// Evaluates packets from `from` to `to` on the path they take through this config.
    pub fn evaluate(&self, from: Zone, to: Zone, query: &Cube) -> Vec<Outcome> {
        self.model
            .evaluate_stages(query, stages_for(self.model, self.host, from, to))
    }
}

/// The traffic of every MIS zone pair the firewall stands on, split into permitted and
/// denied parts, and the traffic of each pair as a whole.
fn evaluate_pairs(
    model: &Model,
    zoning: &Zoning,
    hosts: &Hosts,
    host: bool,
) -> (PerPair<Vec<Outcome>>, PerPair<Cube>) {
    let queries: Vec<(Zone, Zone, Cube, IntervalSet)> = MIS_PAIRS
        .into_iter()
        .filter(|&(from, to)| zoning.has_zone(from) && zoning.has_zone(to))
        .map(|(from, to)| {
            let (query, delivered) = pair_query(model, zoning, hosts, from, to);
            (from, to, query, delivered)
        })
        .collect();
    prewalk_shared_stages(model, host, &queries);
    let walks: Vec<(&Cube, &[crate::graph::Stage])> = queries
        .iter()
        .map(|(from, to, query, _)| (query, stages_for(model, host, *from, *to)))
        .collect();
    let evaluated = model.evaluate_each(&walks);
    // Tens of thousands of outcomes on a Kubernetes node: cut on every core.
    let delivered_only: Vec<Vec<Outcome>> = queries
        .par_iter()
        .zip(evaluated)
        .map(|((_, _, _, delivered), outcomes)| {
            outcomes
                .into_iter()
                .filter_map(|mut o| {
                    o.cube.restrict(Field::DstAddr, delivered);
                    (!o.cube.is_empty()).then_some(o)
                })
                .collect()
        })
        .collect();
    let (mut pairs, mut traffic) = (BTreeMap::new(), BTreeMap::new());
    for ((from, to, query, delivered), outcomes) in queries.iter().zip(delivered_only) {
        pairs.insert((*from, *to), outcomes);
        let mut whole = query.clone();
        whole.restrict(Field::DstAddr, delivered);
        traffic.insert((*from, *to), whole);
    }
    (pairs, traffic)
}

/// Walks the stages that several pairs' queries share once for all of them (see
/// [`Model::prewalk`]): on a Kubernetes node every pair meets the same nat table first.
fn prewalk_shared_stages(model: &Model, host: bool, queries: &[(Zone, Zone, Cube, IntervalSet)]) {
    let mut groups: Vec<(&[crate::graph::Stage], Vec<&Cube>)> = Vec::new();
    for (from, to, query, _) in queries {
        let stages = stages_for(model, host, *from, *to);
        match groups.iter_mut().find(|(s, _)| std::ptr::eq(*s, stages)) {
            Some((_, group)) => group.push(query),
            None => groups.push((stages, vec![query])),
        }
    }
    for (stages, group) in groups {
        if group.len() > 1 {
            model.prewalk(&group, stages);
        }
    }
}

/// The stages packets from `from` to `to` meet: the forward path, or for the MIS host's
/// own firewall its OUTPUT path (MIS sends) or INPUT path (MIS receives).
fn stages_for<'m>(model: &'m Model, host: bool, from: Zone, to: Zone) -> &'m [crate::graph::Stage] {
    let graph = model.graph;
    match (host, from, to) {
        (true, Zone::Perimeter, _) => &graph.local_out,
        (true, _, Zone::Perimeter) => &graph.local_in,
        _ => &graph.stages,
    }
}

/// Every NEW packet from zone `from` to zone `to`: entering on an interface of `from`,
/// leaving on one of `to`, with addresses of those zones — or of the hosts the site file
/// names for them (the MIS host, the internal servers) — not addressed to the firewall.
///
/// Returns the query and the destinations that count as delivered to `to`. With
/// destination NAT in the config, packets may be sent to another address (the firewall's
/// own public address, typically) and rewritten to one of `to`; the query then holds
/// those destinations too and the outcomes are cut to the delivered destinations
/// afterwards, when they hold the rewritten addresses.
pub fn pair_query(
    model: &Model,
    zoning: &Zoning,
    hosts: &Hosts,
    from: Zone,
    to: Zone,
) -> (Cube, IntervalSet) {
    let mut q = model.new_packets();
    let space = model.graph.family.space();
    // Loopback traffic never crosses between zones.
    let not_loopback = model
        .iface_set(&["lo"])
        .complement(model.ifaces.len() as u128 - 1);
    q.restrict(Field::InIface, &not_loopback);
    q.restrict(Field::OutIface, &not_loopback);
    if zoning.has_interface_in(from) {
        q.restrict(
            Field::InIface,
            &model.iface_set(&zoning.interfaces_in(from)),
        );
    }
    if zoning.has_interface_in(to) {
        q.restrict(Field::OutIface, &model.iface_set(&zoning.interfaces_in(to)));
    }
    let endpoints = |zone: Zone| match hosts.of(zone) {
        Some(h) => h.intersect(&space),
        None => zoning.zone_addresses(zone, &space),
    };
    q.restrict(Field::SrcAddr, &endpoints(from));
    let own = model
        .graph
        .interfaces
        .iter()
        .fold(IntervalSet::empty(), |acc, i| acc.union(&i.own_addresses));
    let delivered = endpoints(to).subtract(&own);
    q.restrict(Field::DstAddr, &model.destinations_reaching(&delivered));
    (q, delivered)
}

/// The packets of one policy flow: its protocol and, if it has ports, its ports.
pub fn flow_cube(model: &Model, flow: &ActiveFlow) -> Cube {
    let mut c = Cube::full(model.ifaces.len());
    c.restrict(
        Field::Proto,
        &IntervalSet::single(u128::from(flow.protocol)),
    );
    if let Some(ports) = &flow.ports {
        c.restrict(Field::DstPort, ports);
    }
    c
}

/// Traffic one rule permits beyond what the policy wants, per protocol.
#[derive(Debug)]
pub struct Excess {
    /// The permitting rule (the first explicit accept on the path).
    pub decider: Decider,
    /// Source and destination zones.
    pub from: Zone,
    /// Destination zone.
    pub to: Zone,
    /// Destination ports per protocol (all ports for protocols without ports).
    pub protocols: BTreeMap<u8, IntervalSet>,
    /// True if every part of it depends on an unmodelled construct.
    pub only_may: bool,
    /// The first unmodelled rule involved.
    pub may_rule: Option<Decider>,
    /// One piece, for the witness.
    pub sample: Cube,
    /// The destination NAT rule that sent (some of) this traffic here, with the packets
    /// as they were sent.
    pub nat: Option<Box<(Decider, Cube)>>,
}

/// What each permitting rule lets through from `from` to `to` beyond `wanted`, grouped by
/// the rule's source line (a vendor entry lowered into several rules is reported once).
pub fn excess_permits(cx: &CheckCx, from: Zone, to: Zone, wanted: &[Cube]) -> Vec<Excess> {
    let Some(outcomes) = cx.pairs.get(&(from, to)) else {
        return Vec::new();
    };
    let mut groups: BTreeMap<(u32, u32), Excess> = BTreeMap::new();
    let mut seen = foldhash::HashSet::default();
    for o in outcomes.iter().filter(|o| o.verdict == Verdict::Permit) {
        // Most permitted pieces meet none of the wanted flows: no cutting, no copies.
        let mut pieces = vec![o.cube.clone()];
        for w in wanted.iter().filter(|w| o.cube.intersects(w)) {
            pieces = pieces
                .into_iter()
                .flat_map(|p| {
                    if p.intersects(w) {
                        p.subtract(w)
                    } else {
                        vec![p]
                    }
                })
                .collect();
        }
        let decider = o.permitting();
        let span = cx.model.span_of(decider);
        for piece in pieces {
            let g = groups
                .entry((span.start, span.end))
                .or_insert_with(|| Excess {
                    decider,
                    from,
                    to,
                    protocols: BTreeMap::new(),
                    only_may: true,
                    may_rule: None,
                    sample: piece.clone(),
                    nat: None,
                });
            if g.nat.is_none() {
                g.nat = o.nat.clone();
            }
            g.only_may &= o.may.is_some();
            g.may_rule = g.may_rule.or(o.may);
            // Thousands of a rule's pieces differ only in addresses or interfaces; each
            // protocol and port combination is spread over the protocols once.
            let service = (
                piece.get(Field::Proto).into_owned(),
                piece.get(Field::DstPort).into_owned(),
            );
            if !seen.insert(((span.start, span.end), service)) {
                continue;
            }
            for &(lo, hi) in piece.get(Field::Proto).ranges() {
                for p in lo..=hi {
                    let ports = g.protocols.entry(p as u8).or_default();
                    *ports = ports.union(&piece.get(Field::DstPort));
                }
            }
        }
    }
    groups.into_values().collect()
}

/// `tcp/80`, `udp/1024-1025, 1027-65535`, `esp`, `all other IP protocols`: how a message
/// names what an [`Excess`] lets through.
pub fn describe_protocols(protocols: &BTreeMap<u8, IntervalSet>) -> String {
    let mut parts = Vec::new();
    let mut portless = Vec::new();
    for (&p, ports) in protocols {
        if proto::has_ports(p) {
            parts.push(format!("{}/{}", proto_name(p), describe_ports(ports)));
        } else {
            portless.push(p);
        }
    }
    if portless.len() > 4 {
        parts.push(format!("{} other IP protocols", portless.len()));
    } else {
        parts.extend(portless.iter().map(|&p| proto_name(p)));
    }
    parts.join(", ")
}

/// A protocol's name, or its number.
pub fn proto_name(p: u8) -> String {
    proto::name(p).map_or_else(|| format!("proto {p}"), str::to_string)
}

/// `80`, `1024-1025, 1027-65535`, `any port`.
pub fn describe_ports(ports: &IntervalSet) -> String {
    if ports.count() == 65_536 {
        return "any port".to_string();
    }
    ports
        .ranges()
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Port ranges as `(low, high)` pairs for JSON.
pub fn port_ranges(ports: &IntervalSet) -> Vec<(u16, u16)> {
    ports
        .ranges()
        .iter()
        .map(|&(lo, hi)| (lo as u16, hi as u16))
        .collect()
}

/// Hygiene notes shown per check and file; generated and machine-merged rulesets can
/// hold tens of thousands of dead rules, and a list that long helps nobody read it.
pub const HYGIENE_NOTES_PER_FILE: usize = 100;

/// A hygiene check's notes, given in file order: the first [`HYGIENE_NOTES_PER_FILE`]
/// are built, the rest only counted. A generated 100k-rule pfSense file has 89,000 dead
/// lines; a finding built for each only to be dropped cost 75–120 ms, most of it page
/// faults on the 37 MB they took.
pub struct HygieneNotes {
    meta: CheckMeta,
    shown: Vec<Finding>,
    hidden: usize,
}

impl HygieneNotes {
    pub fn new(meta: CheckMeta) -> HygieneNotes {
        HygieneNotes {
            meta,
            shown: Vec::new(),
            hidden: 0,
        }
    }

    /// Adds the next note in file order; `build` runs only while the cap has room.
    pub fn push(&mut self, build: impl FnOnce() -> Finding) {
        if self.shown.len() < HYGIENE_NOTES_PER_FILE {
            self.shown.push(build());
        } else {
            self.hidden += 1;
        }
    }

    /// The notes to report, with `summary` (a note on the check as a whole, anywhere in
    /// the file) among them. Past the cap, the first [`HYGIENE_NOTES_PER_FILE`] in file
    /// order and one note that says how many more there are.
    pub fn finish(self, summary: Option<Finding>) -> Vec<Finding> {
        let mut found = self.shown;
        found.extend(summary);
        let total = found.len() + self.hidden;
        if total <= HYGIENE_NOTES_PER_FILE {
            return found;
        }
        // Every hidden note comes after the shown ones, so the first notes of the
        // file are among these.
        found.sort_by_key(|f| f.primary.span.start);
        found.truncate(HYGIENE_NOTES_PER_FILE);
        let more = total - HYGIENE_NOTES_PER_FILE;
        let last = found.last().map(|f| f.primary.span);
        if let Some(span) = last {
            found.push(Finding::new(
                self.meta.name,
                self.meta.severity,
                span,
                format!(
                    "{more} more `{}` notes in this file are not shown",
                    self.meta.name
                ),
            ));
        }
        found
    }
}

/// Which checks a run needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every check: a lint.
    All,
    /// The checks that can report a warning or an error. A fix's verification compares
    /// only those, and the checks left out — the hygiene notes among them, whose chain
    /// analysis is the costliest check on a small file — report nothing else but notes.
    WarningsAndErrors,
}

/// The checks that report notes only, which [`Scope::WarningsAndErrors`] leaves out. A
/// check's `META.severity` is the severity of all its findings (a test holds them to
/// it), so these are the checks whose `META` says note.
pub fn note_only_checks() -> impl Iterator<Item = &'static CheckMeta> {
    CHECKS
        .iter()
        .map(|(m, _)| m)
        .filter(|m| reports_notes_only(m))
}

fn reports_notes_only(meta: &CheckMeta) -> bool {
    meta.severity == Severity::Note
}

/// Runs the checks that can report a warning or an error.
pub fn run_above_notes(cx: &CheckCx) -> Vec<Finding> {
    run_checks(cx, |meta| !reports_notes_only(meta))
}

/// Runs every check.
pub fn run_all(cx: &CheckCx) -> Vec<Finding> {
    // The chain analysis `shadowed-rule` and `redundant-rule` read runs on every core
    // itself. Made first (unless the context already holds it), so that no check waits
    // for it while holding a core the analysis could use.
    cx.reach();
    run_checks(cx, |_| true)
}

/// True for the checks that walk the model again, and so spend its step budget
/// (`no-return-path`), and for `analysis-limit`, which reports whether the budget ran
/// out. Every other check only reads what the context holds.
fn touches_step_budget(meta: &CheckMeta) -> bool {
    [no_return_path::META.name, analysis_limit::META.name].contains(&meta.name)
}

/// Runs the checks `wanted` picks, their findings in [`CHECKS`] order. The checks that
/// touch the step budget run one after another in that order, so the budget runs out
/// at the same place on every run; the others run beside them on every core (on a
/// 100,000-rule file they take 20-50 ms together).
fn run_checks(cx: &CheckCx, wanted: impl Fn(&CheckMeta) -> bool) -> Vec<Finding> {
    let (budget, rest): (Vec<_>, Vec<_>) = CHECKS
        .iter()
        .filter(|(m, _)| wanted(m))
        .enumerate()
        .partition(|(_, (m, _))| touches_step_budget(m));
    let run = |(i, (_, check)): (usize, &(CheckMeta, CheckFn))| (i, check(cx));
    let (in_order, beside) = rayon::join(
        || budget.into_iter().map(run).collect::<Vec<_>>(),
        || rest.into_par_iter().map(run).collect::<Vec<_>>(),
    );
    let mut found: Vec<(usize, Vec<Finding>)> = in_order.into_iter().chain(beside).collect();
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().flat_map(|(_, f)| f).collect()
}

/// Test scaffolding: `f` of the checks' context of an iptables dump whose interfaces
/// are mapped as `zones` (`eth1=perimeter`), with no scenario flows.
#[cfg(test)]
pub(crate) fn with_dump_cx<R>(
    text: &str,
    zones: &[&str],
    hosts: &Hosts,
    f: impl FnOnce(&CheckCx) -> R,
) -> R {
    let file = SourceFile::new(crate::source::FileId(0), "t", text.to_string());
    let graph = parse::parse(&file, crate::graph::Dialect::Iptables)
        .graph
        .expect("parses");
    // Every mapping names an interface here: the model numbers them.
    let ifaces: Vec<String> = zones
        .iter()
        .filter_map(|z| z.split_once('=').map(|(iface, _)| iface.to_string()))
        .collect();
    let zones: Vec<crate::analysis::zones::ZoneMapping> = zones
        .iter()
        .map(|z| crate::analysis::zones::ZoneMapping::parse(z).expect("a mapping"))
        .collect();
    let model = Model::new(&graph, &ifaces);
    let zoning = Zoning::assign(&graph, &zones);
    let settings = Settings::default();
    f(&CheckCx::new(&file, &model, &zoning, &settings, hosts, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Dialect;
    use crate::source::{FileId, SourceFile};

    /// A protocol and its port ranges.
    type PortsOf = (u8, Vec<(u128, u128)>);

    /// The excess of each permitting rule from perimeter (eth1) to internal (eth2) of a
    /// FORWARD chain of `rules`, by rule line: its protocols and their ports.
    fn excess_by_line(rules: &str) -> Vec<(String, Vec<PortsOf>)> {
        let text = format!("*filter\n:FORWARD DROP [0:0]\n{rules}COMMIT\n");
        let zones = ["eth1=perimeter", "eth2=internal"];
        with_dump_cx(&text, &zones, &Hosts::default(), |cx| {
            let mut wanted = cx.model.new_packets();
            wanted.restrict(Field::Proto, &IntervalSet::single(u128::from(proto::TCP)));
            wanted.restrict(Field::DstPort, &IntervalSet::single(25));
            excess_permits(cx, Zone::Perimeter, Zone::Internal, &[wanted])
                .into_iter()
                .map(|e| {
                    let protocols = e
                        .protocols
                        .iter()
                        .map(|(&p, ports)| (p, ports.ranges().to_vec()))
                        .collect();
                    (
                        cx.file.slice(cx.model.span_of(e.decider)).to_string(),
                        protocols,
                    )
                })
                .collect()
        })
    }

    #[test]
    fn excess_is_gathered_per_rule_when_rules_and_pieces_share_a_service() {
        // Two rules open the same service to different hosts; the third opens two
        // services, and an earlier drop cuts its destinations in two pieces of each.
        let found = excess_by_line(
            "-A FORWARD -i eth1 -o eth2 -d 10.0.0.1 -p tcp --dport 8080 -j ACCEPT\n\
             -A FORWARD -i eth1 -o eth2 -d 10.0.0.2 -p tcp --dport 8080 -j ACCEPT\n\
             -A FORWARD -i eth1 -o eth2 -d 10.0.1.5 -j DROP\n\
             -A FORWARD -i eth1 -o eth2 -d 10.0.1.0/24 -p tcp -m multiport --dports 25,8080 -j ACCEPT\n\
             -A FORWARD -i eth1 -o eth2 -d 10.0.1.0/24 -p udp --dport 53 -j ACCEPT\n",
        );
        let tcp_8080 = vec![(proto::TCP, vec![(8080, 8080)])];
        let line = |i: usize| found[i].0.split(" -d ").nth(1).unwrap_or("").to_string();
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            line(0).starts_with("10.0.0.1 ") && found[0].1 == tcp_8080,
            "{found:?}"
        );
        assert!(
            line(1).starts_with("10.0.0.2 ") && found[1].1 == tcp_8080,
            "{found:?}"
        );
        // tcp/25 is wanted: only 8080 is left of the multiport rule.
        assert!(
            line(2).contains("--dports") && found[2].1 == tcp_8080,
            "{found:?}"
        );
        assert_eq!(found[3].1, vec![(proto::UDP, vec![(53, 53)])]);
    }

    #[test]
    fn checks_run_side_by_side_report_in_check_order() {
        // Shadowed, redundant and any-to-any rules, and zoned interfaces with a flow to
        // miss and one left open: most checks find something.
        let mut rules = String::new();
        for port in 1..40 {
            rules.push_str(&format!(
                "-A FORWARD -i eth{} -o eth{} -p tcp --dport {port} -j ACCEPT\n",
                port % 3,
                (port + 1) % 3
            ));
        }
        rules.push_str("-A FORWARD -i eth1 -o eth2 -p tcp --dport 1 -j ACCEPT\n");
        rules.push_str("-A FORWARD -i eth1 -o eth2 -p tcp -j ACCEPT\n");
        rules.push_str("-A FORWARD -i eth1 -o eth2 -p tcp --dport 2 -j ACCEPT\n");
        rules.push_str("-A FORWARD -i eth0 -o eth2 -j ACCEPT\n");
        let text = format!("*filter\n:FORWARD DROP [0:0]\n{rules}COMMIT\n");
        let file = SourceFile::new(FileId(0), "t", text);
        let graph = crate::parse::parse(&file, Dialect::Iptables)
            .graph
            .expect("parses");
        let zones: Vec<crate::analysis::zones::ZoneMapping> =
            ["eth0=public", "eth1=perimeter", "eth2=internal"]
                .iter()
                .map(|z| crate::analysis::zones::ZoneMapping::parse(z).expect("a mapping"))
                .collect();
        let zoning = Zoning::assign(&graph, &zones);
        let model = Model::new(&graph, &["eth0".into(), "eth1".into(), "eth2".into()]);
        let settings = Settings::default();
        let hosts = Hosts::default();
        let flows = crate::policy::Policy::builtin().active(&settings);
        let cx =
            |flows| CheckCx::with_chain_analysis(&file, &model, &zoning, &settings, &hosts, flows);
        let one_by_one: Vec<Finding> = {
            let cx = cx(&flows);
            CHECKS.iter().flat_map(|(_, run)| run(&cx)).collect()
        };
        let rules: std::collections::BTreeSet<&str> = one_by_one.iter().map(|f| f.rule).collect();
        // `no-return-path` walks the model again: it runs apart from the others.
        assert!(
            rules.len() >= 5 && rules.contains("no-return-path"),
            "{rules:?}"
        );
        assert_eq!(
            format!("{:?}", run_all(&cx(&flows))),
            format!("{one_by_one:?}")
        );
    }
}
