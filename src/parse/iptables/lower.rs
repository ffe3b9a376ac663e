//! Lowering: the iptables AST becomes the normalized [`RuleGraph`].
//!
//! The last stage of the iptables room. Implicit behaviour becomes explicit here: each
//! built-in chain gets its policy as the chain default (span: the `:CHAIN POLICY` or
//! `-P` line; a built-in chain without one gets ACCEPT, the kernel's default, with the
//! span of its table header); the chains a forwarded packet meets become stages in hook
//! priority order; target names resolve to chain jumps or undefined references; and
//! rule lines that are unions (`--ports`, a negated address list) become consecutive
//! rules with the same span; DNAT and REDIRECT in the nat table become destination
//! rewrites, and nat PREROUTING a stage. Jump loops are found here, iteratively.

use super::ast::{Alternatives, DumpAst, NameMap, RuleAst, TableAst, TableName, TargetAst};
use super::{NoteKind, Notes};
use crate::graph::sets::ct;
use crate::graph::{
    Action, Chain, ChainId, Cond, CondKind, Default, Dialect, Family, IntervalSet, NatTarget, Rule,
    RuleGraph, Stage,
};
use crate::parse::{PARSE_ERROR, REFERENCE_CYCLE, UNDEFINED_REFERENCE};
use crate::report::finding::{Finding, Severity};
use crate::source::{FileId, Span};
use std::collections::{HashMap, HashSet};

/// The chains a forwarded packet meets, in netfilter hook-priority order (raw -300,
/// mangle -150, filter 0, security 50 on PREROUTING/FORWARD/POSTROUTING), with the
/// stage names findings use. `nat` chains rewrite rather than filter and are not stages.
const FORWARD_STAGES: &[(&str, &str)] = &[
    ("raw:PREROUTING", "raw PREROUTING"),
    ("mangle:PREROUTING", "mangle PREROUTING"),
    ("nat:PREROUTING", "nat PREROUTING"),
    ("mangle:FORWARD", "mangle FORWARD"),
    ("FORWARD", "filter FORWARD"),
    ("security:FORWARD", "security FORWARD"),
    ("mangle:POSTROUTING", "mangle POSTROUTING"),
];

/// Builds the graph of a whole dump; findings for undefined jumps and loops go to
/// `findings`, notes to `notes`.
pub fn lower_dump(
    file: FileId,
    dump: DumpAst,
    notes: &mut Notes,
    findings: &mut Vec<Finding>,
) -> RuleGraph {
    let family = dump.header_family.unwrap_or_else(|| detect_family(&dump));
    let mut graph = RuleGraph::new(Dialect::Iptables, file, family);
    let tables = keep_last_tables(dump.tables);

    let mut bases = Vec::with_capacity(tables.len());
    let mut builtin: Vec<Vec<bool>> = Vec::with_capacity(tables.len());
    for t in &tables {
        bases.push(graph.chains.len());
        builtin.push(t.chains.iter().map(|c| c.builtin).collect());
        for c in &t.chains {
            let default = c
                .builtin
                .then(|| chain_default(t, &c.name, c.policy.clone()));
            graph.add_chain(Chain {
                name: graph_chain_name(t.name, &c.name),
                rules: Vec::new(),
                default,
                span: c.span,
            });
        }
    }

    let mut lowering = Lowering {
        family,
        notes,
        findings,
        interfaces: HashSet::new(),
        interface_order: Vec::new(),
        dnat_noted: false,
    };
    for (ti, t) in tables.into_iter().enumerate() {
        let base = bases.get(ti).copied().unwrap_or(0);
        let flags = builtin.get(ti).map(Vec::as_slice).unwrap_or(&[]);
        let TableAst {
            name: table,
            chains,
            index,
            rules: mut arena,
            ..
        } = t;
        for (ci, c) in chains.into_iter().enumerate() {
            let nat_table = table == TableName::Nat;
            let mut rules = Vec::with_capacity(c.rules.len());
            for &ri in &c.rules {
                let Some(slot) = arena.get_mut(ri as usize) else {
                    continue;
                };
                let r = std::mem::replace(slot, RuleAst::moved_out());
                let target = TargetCx {
                    table,
                    index: &index,
                    builtin: flags,
                    base,
                };
                lowering.lower_rule(r, &target, &mut rules);
            }
            if nat_table {
                only_new_connections(&mut rules);
            }
            if let Some(chain) = graph.chains.get_mut(base + ci) {
                chain.rules = rules;
            }
        }
    }
    for name in lowering.interface_order {
        graph.ensure_interface(&name);
    }

    add_stages(&mut graph);
    find_jump_cycles(&graph, findings);
    graph
}

/// `ip6tables-save` says so in its header; without a header, any IPv6 address in a
/// rule that applies to both families makes the file IPv6.
fn detect_family(dump: &DumpAst) -> Family {
    let v6 = dump.tables.iter().any(|t| {
        t.chains.iter().any(|c| {
            c.rules.iter().any(|&i| {
                t.rules
                    .get(i as usize)
                    .is_some_and(|r| r.has_v6_addr && r.only.is_none())
            })
        })
    });
    if v6 { Family::V6 } else { Family::V4 }
}

/// `iptables-restore` flushes a table at its header, so a table given twice keeps only
/// its last block.
fn keep_last_tables(tables: Vec<TableAst>) -> Vec<TableAst> {
    let mut last: HashMap<TableName, usize> = HashMap::new();
    for (i, t) in tables.iter().enumerate() {
        last.insert(t.name, i);
    }
    tables
        .into_iter()
        .enumerate()
        .filter(|(i, t)| last.get(&t.name) == Some(i))
        .map(|(_, t)| t)
        .collect()
}

/// Bare names for `filter`, `table:NAME` for the others.
fn graph_chain_name(table: TableName, chain: &str) -> String {
    match table {
        TableName::Filter => chain.to_string(),
        other => format!("{}:{chain}", other.name()),
    }
}

fn chain_default(t: &TableAst, chain: &str, policy: Option<(Action, Span)>) -> Default {
    let in_table = match t.name {
        TableName::Filter => String::new(),
        other => format!(" in table `{}`", other.name()),
    };
    match policy {
        Some((action, span)) => Default {
            action,
            span,
            reason: format!("policy of chain `{chain}`{in_table}"),
        },
        None => Default {
            action: Action::Accept,
            span: t.span,
            reason: format!(
                "built-in chain `{chain}`{in_table} has no policy line, so the kernel's default `ACCEPT` applies"
            ),
        },
    }
}

struct TargetCx<'t> {
    table: TableName,
    index: &'t NameMap<usize>,
    builtin: &'t [bool],
    base: usize,
}

struct Lowering<'n> {
    family: Family,
    notes: &'n mut Notes,
    findings: &'n mut Vec<Finding>,
    interfaces: HashSet<String>,
    interface_order: Vec<String>,
    dnat_noted: bool,
}

impl Lowering<'_> {
    fn lower_rule(&mut self, mut r: RuleAst, cx: &TargetCx<'_>, out: &mut Vec<Rule>) {
        if r.failed {
            out.push(Rule {
                conds: vec![Cond {
                    kind: CondKind::Unknown("unparsed rule".to_string()),
                    span: r.span,
                }],
                action: Action::Unknown("unparsed".to_string()),
                span: r.span,
                action_span: r.action_span,
                comment: None,
            });
            return;
        }
        // `-4`/`-6`: iptables-restore skips rules of the other family.
        if r.only.is_some_and(|f| f != self.family) {
            return;
        }
        if cx.table == TableName::Raw {
            resolve_raw_states(&mut r);
        }
        let target = std::mem::replace(&mut r.target, TargetAst::None);
        let action = self.resolve_target(target, r.action_span, cx);
        self.collect_interfaces(&r.conds);
        if r.alternatives.is_empty() {
            out.push(Rule {
                conds: r.conds,
                action,
                span: r.span,
                action_span: r.action_span,
                comment: r.comment,
            });
        } else {
            expand_rule(r, action, out);
        }
    }

    fn resolve_target(&mut self, target: TargetAst, span: Span, cx: &TargetCx<'_>) -> Action {
        match target {
            TargetAst::None => Action::Continue(String::new()),
            TargetAst::Verdict(a) => a,
            TargetAst::Unknown(name) => Action::Unknown(name),
            TargetAst::Continue { name, nat }
                if cx.table == TableName::Nat && (name == "DNAT" || name == "REDIRECT") =>
            {
                match nat.as_deref().map(|n| parse_nat_target(&name, &n.to)) {
                    Some(Some(target)) => Action::dnat(target),
                    // A NAT target mislint cannot read is kept as "may": the packet may
                    // go anywhere.
                    _ => {
                        if !self.dnat_noted {
                            self.dnat_noted = true;
                            self.notes.add(NoteKind::Dnat, &name, span);
                        }
                        Action::Unknown(name)
                    }
                }
            }
            TargetAst::Continue { name, .. } => Action::Continue(name),
            TargetAst::DeclaredChain { index, goto } => {
                if goto {
                    Action::Goto(ChainId(cx.base + index))
                } else {
                    Action::Jump(ChainId(cx.base + index))
                }
            }
            TargetAst::Chain {
                name,
                goto,
                has_options,
            } => match cx.index.get(&name).copied() {
                Some(i) if cx.builtin.get(i).copied().unwrap_or(false) => {
                    self.findings.push(Finding::new(
                        PARSE_ERROR,
                        Severity::Error,
                        span,
                        format!("cannot jump to built-in chain `{name}`"),
                    ));
                    Action::Unknown(name)
                }
                Some(i) if goto => Action::Goto(ChainId(cx.base + i)),
                Some(i) => Action::Jump(ChainId(cx.base + i)),
                None if has_options => {
                    self.notes.add(NoteKind::Target, &name, span);
                    Action::Unknown(name)
                }
                None => {
                    let flag = if goto { "-g" } else { "-j" };
                    self.findings.push(
                        Finding::new(
                            UNDEFINED_REFERENCE,
                            Severity::Error,
                            span,
                            format!(
                                "`{flag} {name}` names no chain of table `{}` and no known target",
                                cx.table.name()
                            ),
                        )
                        .with_label("undefined chain")
                        .with_help(format!(
                            "declare it with `:{name} - [0:0]` in the table, or fix the name"
                        )),
                    );
                    Action::Unknown(name)
                }
            },
        }
    }

    /// Interface names the rules use; wildcard patterns (`eth+`) name no interface.
    fn collect_interfaces(&mut self, conds: &[Cond]) {
        for c in conds {
            if let CondKind::InIface(im) | CondKind::OutIface(im) = &c.kind {
                for p in &im.patterns {
                    if !p.prefix && !self.interfaces.contains(&p.name) {
                        self.interfaces.insert(p.name.clone());
                        self.interface_order.push(p.name.clone());
                    }
                }
            }
        }
    }
}

/// The `raw` table runs before conntrack (hook priority -300, conntrack -200), so no
/// packet there has a conntrack entry yet and both `-m state` and `-m conntrack
/// --ctstate` see it as INVALID (net/netfilter/xt_state.c, xt_conntrack.c: no entry and
/// not untracked means the INVALID bit). A state condition in `raw` thus matches every
/// packet if its set holds INVALID, and none otherwise: `--ctstate NEW` there never
/// matches, which the kernel oracle (tests/kernel_oracle.rs) showed.
fn resolve_raw_states(r: &mut RuleAst) {
    let resolve = |kind: &mut CondKind| {
        if let CondKind::State(set) = kind {
            *set = if set.intersects(&ct::base(ct::INVALID)) {
                IntervalSet::range(0, ct::MAX)
            } else {
                IntervalSet::empty()
            };
        }
    };
    for cond in &mut r.conds {
        resolve(&mut cond.kind);
    }
    for alt in &mut r.alternatives {
        alt.others.iter_mut().for_each(resolve);
    }
}

/// One graph rule per combination of alternatives, in order, with the line's span.
fn expand_rule(r: RuleAst, action: Action, out: &mut Vec<Rule>) {
    let total: usize = r.alternatives.iter().map(|a| a.others.len() + 1).product();
    for k in 0..total {
        let mut rest = k;
        let mut conds = r.conds.clone();
        for Alternatives { at, others } in &r.alternatives {
            let len = others.len() + 1;
            let pick = rest % len;
            rest /= len;
            if let (Some(kind), Some(cond)) = (
                pick.checked_sub(1).and_then(|i| others.get(i)),
                conds.get_mut(*at),
            ) {
                cond.kind = kind.clone();
            }
        }
        out.push(Rule {
            conds,
            action: action.clone(),
            span: r.span,
            action_span: r.action_span,
            comment: r.comment.clone(),
        });
    }
}

/// The kernel consults the nat table only for the first packet of a connection; later
/// packets and replies are translated by conntrack. Saying so on every nat rule keeps
/// replies (state ESTABLISHED) from being rewritten a second time.
fn only_new_connections(rules: &mut [Rule]) {
    for r in rules {
        r.conds.push(Cond {
            kind: CondKind::State(ct::base(ct::NEW)),
            span: r.span,
        });
    }
}

/// Reads a DNAT `--to-destination [addr[-addr]][:port[-port]]` (IPv6 in brackets) or a
/// REDIRECT `--to-ports port[-port]`. `None` if it is not in that form.
pub fn parse_nat_target(target: &str, to: &str) -> Option<NatTarget> {
    let to = to.split_whitespace().next().unwrap_or("");
    let ports = |p: &str| -> Option<IntervalSet> {
        let p = p.split('/').next().unwrap_or(p);
        let (lo, hi) = p.split_once('-').unwrap_or((p, p));
        let (lo, hi): (u16, u16) = (lo.parse().ok()?, hi.parse().ok()?);
        (lo <= hi).then(|| IntervalSet::range(u128::from(lo), u128::from(hi)))
    };
    if target == "REDIRECT" {
        let ports = if to.is_empty() {
            None
        } else {
            Some(ports(to)?)
        };
        return Some(NatTarget { addrs: None, ports });
    }
    let (addr_part, port_part) = if let Some(rest) = to.strip_prefix('[') {
        let (a, tail) = rest.split_once(']')?;
        (a, tail.strip_prefix(':'))
    } else if to.matches(':').count() > 1 {
        (to, None)
    } else {
        match to.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (to, None),
        }
    };
    let addrs = if addr_part.is_empty() {
        return None;
    } else {
        crate::analysis::zones::parse_network(addr_part)?
    };
    let ports = match port_part {
        Some(p) => Some(ports(p)?),
        None => None,
    };
    Some(NatTarget {
        addrs: Some(addrs),
        ports,
    })
}

/// The chains a packet addressed to the machine meets, in hook-priority order.
const LOCAL_IN_STAGES: &[(&str, &str)] = &[
    ("raw:PREROUTING", "raw PREROUTING"),
    ("mangle:PREROUTING", "mangle PREROUTING"),
    ("nat:PREROUTING", "nat PREROUTING"),
    ("mangle:INPUT", "mangle INPUT"),
    ("INPUT", "filter INPUT"),
    ("security:INPUT", "security INPUT"),
    ("nat:INPUT", "nat INPUT"),
];

/// The chains a packet the machine sends meets, in hook-priority order.
const LOCAL_OUT_STAGES: &[(&str, &str)] = &[
    ("raw:OUTPUT", "raw OUTPUT"),
    ("mangle:OUTPUT", "mangle OUTPUT"),
    ("nat:OUTPUT", "nat OUTPUT"),
    ("OUTPUT", "filter OUTPUT"),
    ("security:OUTPUT", "security OUTPUT"),
    ("mangle:POSTROUTING", "mangle POSTROUTING"),
];

fn add_stages(graph: &mut RuleGraph) {
    let stages = |graph: &RuleGraph, list: &[(&str, &str)]| -> Vec<Stage> {
        list.iter()
            .filter_map(|(chain, stage)| {
                let i = graph.chains.iter().position(|c| c.name == *chain)?;
                Some(Stage {
                    name: (*stage).to_string(),
                    chain: ChainId(i),
                })
            })
            .collect()
    };
    graph.stages = stages(graph, FORWARD_STAGES);
    graph.local_in = stages(graph, LOCAL_IN_STAGES);
    graph.local_out = stages(graph, LOCAL_OUT_STAGES);
}

fn jump_target(action: &Action) -> Option<usize> {
    match action {
        Action::Jump(c) | Action::Goto(c) => Some(c.0),
        _ => None,
    }
}

/// Depth-first search over jump and goto edges with an explicit stack, so 10,000-deep
/// chains cannot overflow; every edge back into the current path closes a loop.
/// `iptables-restore` refuses such rulesets (ELOOP), so each is an error.
fn find_jump_cycles(graph: &RuleGraph, findings: &mut Vec<Finding>) {
    const WHITE: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let n = graph.chains.len();
    let mut color = vec![WHITE; n];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if color.get(root) != Some(&WHITE) {
            continue;
        }
        if let Some(c) = color.get_mut(root) {
            *c = ON_PATH;
        }
        stack.push((root, 0));
        while let Some((chain, next)) = stack.last().copied() {
            let rules = graph.chains.get(chain).map_or(&[][..], |c| &c.rules[..]);
            let found = rules
                .iter()
                .enumerate()
                .skip(next)
                .find_map(|(i, r)| jump_target(&r.action).map(|t| (i, t, r.action_span)));
            let Some((i, target, span)) = found else {
                if let Some(c) = color.get_mut(chain) {
                    *c = DONE;
                }
                stack.pop();
                continue;
            };
            if let Some(top) = stack.last_mut() {
                top.1 = i + 1;
            }
            match color.get(target).copied() {
                Some(WHITE) => {
                    if let Some(c) = color.get_mut(target) {
                        *c = ON_PATH;
                    }
                    stack.push((target, 0));
                }
                Some(ON_PATH) => {
                    let from = stack.iter().position(|(c, _)| *c == target).unwrap_or(0);
                    let mut path: Vec<&str> = stack
                        .get(from..)
                        .unwrap_or(&[])
                        .iter()
                        .filter_map(|(c, _)| graph.chains.get(*c).map(|c| c.name.as_str()))
                        .collect();
                    let target_name = graph.chains.get(target).map_or("", |c| c.name.as_str());
                    path.push(target_name);
                    findings.push(
                        Finding::new(
                            REFERENCE_CYCLE,
                            Severity::Error,
                            span,
                            format!(
                                "jump to `{target_name}` closes a loop {}: `iptables-restore` refuses chain loops",
                                path.iter()
                                    .map(|p| format!("`{p}`"))
                                    .collect::<Vec<_>>()
                                    .join(" -> ")
                            ),
                        )
                        .with_label("this jump closes the loop"),
                    );
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::IntervalSet;
    use crate::graph::sets::ct;
    use crate::source::SourceFile;

    fn cond(kind: CondKind) -> Cond {
        Cond {
            kind,
            span: Span::default(),
        }
    }

    #[test]
    fn alternatives_expand_to_consecutive_rules() {
        let r = RuleAst {
            conds: vec![
                cond(CondKind::SrcPort(IntervalSet::single(1))),
                cond(CondKind::Protocol(IntervalSet::single(6))),
                cond(CondKind::SrcAddr(IntervalSet::single(7))),
            ],
            alternatives: vec![
                Alternatives {
                    at: 0,
                    others: vec![CondKind::DstPort(IntervalSet::single(1))],
                },
                Alternatives {
                    at: 2,
                    others: vec![CondKind::SrcAddr(IntervalSet::single(8))],
                },
            ],
            ..RuleAst::unparsed(Span::default())
        };
        let mut out = Vec::new();
        expand_rule(r, Action::Accept, &mut out);
        assert_eq!(out.len(), 4);
        let firsts: Vec<&CondKind> = out.iter().map(|r| &r.conds[0].kind).collect();
        assert!(matches!(firsts[0], CondKind::SrcPort(_)));
        assert!(matches!(firsts[1], CondKind::DstPort(_)));
        assert_eq!(
            out[3].conds[2].kind,
            CondKind::SrcAddr(IntervalSet::single(8))
        );
    }

    #[test]
    fn self_jump_is_a_cycle() {
        let mut g = RuleGraph::new(Dialect::Iptables, FileId(0), Family::V4);
        g.add_chain(Chain {
            name: "A".into(),
            rules: vec![Rule {
                conds: Vec::new(),
                action: Action::Jump(ChainId(0)),
                span: Span::default(),
                action_span: Span::new(FileId(0), 3, 7),
                comment: None,
            }],
            default: None,
            span: Span::default(),
        });
        let mut findings = Vec::new();
        find_jump_cycles(&g, &mut findings);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].primary.span.start, 3);
        assert!(findings[0].message.contains("`A` -> `A`"));
    }

    /// The state set of each rule of chain `name`.
    fn states(text: &str, name: &str) -> Vec<IntervalSet> {
        let file = SourceFile::new(FileId(0), "t.rules", text.to_string());
        let graph = super::super::parse(&file).graph.expect("a graph");
        let chain = graph
            .chains
            .iter()
            .find(|c| c.name == name)
            .expect("the chain");
        chain
            .rules
            .iter()
            .flat_map(|r| &r.conds)
            .filter_map(|c| match &c.kind {
                CondKind::State(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn raw_table_sees_every_packet_as_invalid() {
        let text = "*raw\n:PREROUTING ACCEPT [0:0]\n\
            -A PREROUTING -m conntrack --ctstate NEW -j DROP\n\
            -A PREROUTING -m state --state INVALID,ESTABLISHED -j DROP\n\
            -A PREROUTING -m conntrack ! --ctstate NEW -j DROP\nCOMMIT\n";
        let all = IntervalSet::range(0, ct::MAX);
        assert_eq!(
            states(text, "raw:PREROUTING"),
            vec![IntervalSet::empty(), all.clone(), all]
        );
    }

    #[test]
    fn mangle_table_keeps_states() {
        let text = "*mangle\n:PREROUTING ACCEPT [0:0]\n\
            -A PREROUTING -m conntrack --ctstate NEW -j DROP\nCOMMIT\n";
        assert_eq!(states(text, "mangle:PREROUTING"), vec![ct::base(ct::NEW)]);
    }
}
