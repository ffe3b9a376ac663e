//! The iptables vendor AST: what an `iptables-save` dump says, before lowering.
//!
//! The grammar (`grammar.rs`) fills these types line by line; `lower.rs` turns them
//! into the [`RuleGraph`](crate::graph::RuleGraph). Match values are already sets of the
//! graph's fields (negation resolved), because iptables' value syntax (ports, CIDRs,
//! conntrack states) has one meaning regardless of where the rule sits. What stays
//! vendor-shaped here is structure: tables, chains, policies, targets by name, and the
//! unions a single rule line can write (`--ports`, a negated address list).

use crate::graph::{Action, Cond, CondKind, Family};
use crate::source::{MoveSpans, Span};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small multiplicative hasher (the FxHash scheme used inside rustc) for chain-name
/// maps: SipHash's DoS resistance buys nothing for a config file and costs a tenth of
/// the parse time on 100k-rule dumps.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher {
    hash: u64,
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.hash = (self.hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.hash = (self.hash.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Chain name → index, with [`FxHasher`].
pub type NameMap<V> = HashMap<String, V, BuildHasherDefault<FxHasher>>;

/// The tables `iptables-restore` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableName {
    /// `*filter`
    Filter,
    /// `*nat`
    Nat,
    /// `*mangle`
    Mangle,
    /// `*raw`
    Raw,
    /// `*security`
    Security,
}

impl TableName {
    /// The table for a `*name` header.
    pub fn by_name(name: &str) -> Option<TableName> {
        Some(match name {
            "filter" => TableName::Filter,
            "nat" => TableName::Nat,
            "mangle" => TableName::Mangle,
            "raw" => TableName::Raw,
            "security" => TableName::Security,
            _ => return None,
        })
    }

    /// The name as written after `*`.
    pub fn name(self) -> &'static str {
        match self {
            TableName::Filter => "filter",
            TableName::Nat => "nat",
            TableName::Mangle => "mangle",
            TableName::Raw => "raw",
            TableName::Security => "security",
        }
    }

    /// The table's built-in chains (netfilter's hooks per table, see iptables(8) TABLES).
    pub fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            TableName::Filter | TableName::Security => &["INPUT", "FORWARD", "OUTPUT"],
            TableName::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            TableName::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            TableName::Raw => &["PREROUTING", "OUTPUT"],
        }
    }

    /// True if `chain` is one of the table's built-in chains.
    pub fn is_builtin(self, chain: &str) -> bool {
        self.builtin_chains().contains(&chain)
    }
}

/// Other choices for one condition of a rule line that is a union (`--ports`, a
/// negated address list, which iptables expands into one rule per element). The
/// rule's `conds[at]` holds the first choice; lowering emits one graph rule per choice.
#[derive(Clone, Debug)]
pub struct Alternatives {
    /// Index into the rule's conditions.
    pub at: usize,
    /// The remaining choices.
    pub others: Vec<CondKind>,
}

/// A NAT target's destination, kept for DNAT modelling later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatSpec {
    /// `--to-destination`, `--to-ports` or `--to` argument as written.
    pub to: String,
    /// The option and its argument.
    pub span: Span,
}

/// What `-j` / `-g` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetAst {
    /// No `-j`: a counting rule, matching packets go on.
    None,
    /// ACCEPT, DROP, REJECT or RETURN.
    Verdict(Action),
    /// A chain name not (yet) known as a target extension: resolved at the end of the
    /// table against its chains. `goto` for `-g`; `has_options` if `--options` followed.
    Chain {
        /// The chain name.
        name: String,
        /// True for `-g`.
        goto: bool,
        /// True if target options followed the name (then it is no chain jump).
        has_options: bool,
    },
    /// A chain declared before the rule (the usual case in dumps): its index in the
    /// table, so no name is kept per rule. `goto` for `-g`.
    DeclaredChain {
        /// Index into the table's chains.
        index: usize,
        /// True for `-g`.
        goto: bool,
    },
    /// A non-terminating extension (LOG, MARK, …) or, in `nat`, a NAT target.
    Continue {
        /// The target name.
        name: String,
        /// DNAT/REDIRECT/SNAT destination (boxed: most targets have none).
        nat: Option<Box<NatSpec>>,
    },
    /// A target whose effect mislint does not model.
    Unknown(String),
}

/// One rule line (`-A`/`-I`), parsed.
#[derive(Clone, Debug)]
pub struct RuleAst {
    /// The whole line, without the line break.
    pub span: Span,
    /// The `-j NAME` / `-g NAME` tokens, or the line if there is none.
    pub action_span: Span,
    /// The conditions, in the order written, already in graph form so lowering moves
    /// them instead of copying.
    pub conds: Vec<Cond>,
    /// Unions across conditions; empty for almost every rule.
    pub alternatives: Vec<Alternatives>,
    /// The target.
    pub target: TargetAst,
    /// `-4` / `-6`: the rule only applies in files of this family.
    pub only: Option<Family>,
    /// `-m comment --comment` text.
    pub comment: Option<String>,
    /// True if the line failed to parse: lowered as an unknown rule.
    pub failed: bool,
    /// True if an address of the rule is IPv6 (for family detection).
    pub has_v6_addr: bool,
}

impl RuleAst {
    /// An empty rule, left behind when lowering moves a rule out of the arena.
    pub fn moved_out() -> RuleAst {
        RuleAst {
            span: Span::default(),
            action_span: Span::default(),
            conds: Vec::new(),
            alternatives: Vec::new(),
            target: TargetAst::None,
            only: None,
            comment: None,
            failed: false,
            has_v6_addr: false,
        }
    }

    /// The conservative stand-in for a line that failed to parse.
    pub fn unparsed(span: Span) -> RuleAst {
        RuleAst {
            span,
            action_span: span,
            conds: Vec::new(),
            alternatives: Vec::new(),
            target: TargetAst::Unknown("unparsed".to_string()),
            only: None,
            comment: None,
            failed: true,
            has_v6_addr: false,
        }
    }
}

impl MoveSpans for RuleAst {
    fn move_spans(&mut self, delta: i64) {
        // Named in full, so that a field added later must be placed here or below.
        let RuleAst {
            span,
            action_span,
            conds,
            target,
            alternatives: _,
            only: _,
            comment: _,
            failed: _,
            has_v6_addr: _,
        } = self;
        span.move_spans(delta);
        action_span.move_spans(delta);
        conds.move_spans(delta);
        target.move_spans(delta);
    }
}

impl MoveSpans for TargetAst {
    fn move_spans(&mut self, delta: i64) {
        match self {
            TargetAst::Continue { nat, name: _ } => nat.move_spans(delta),
            TargetAst::None
            | TargetAst::Verdict(_)
            | TargetAst::Chain { .. }
            | TargetAst::DeclaredChain { .. }
            | TargetAst::Unknown(_) => {}
        }
    }
}

impl MoveSpans for NatSpec {
    fn move_spans(&mut self, delta: i64) {
        let NatSpec { span, to: _ } = self;
        span.move_spans(delta);
    }
}

/// A chain of one table.
#[derive(Clone, Debug)]
pub struct ChainAst {
    /// Its name as written.
    pub name: String,
    /// True for the table's built-in chains.
    pub builtin: bool,
    /// The policy (ACCEPT/DROP) and the line that set it, for built-in chains.
    pub policy: Option<(Action, Span)>,
    /// The chain line or `-N` line, or the first line that used it.
    pub span: Span,
    /// The rules in order, as indices into the table's rule arena.
    pub rules: Vec<u32>,
}

/// One `*table` … `COMMIT` block.
#[derive(Clone, Debug)]
pub struct TableAst {
    /// Which table.
    pub name: TableName,
    /// The `*table` line.
    pub span: Span,
    /// Its chains in order of appearance.
    pub chains: Vec<ChainAst>,
    /// Chain name → index in `chains`.
    pub index: NameMap<usize>,
    /// Every rule line of the table, in file order; chains list indices into it. One
    /// arena per table keeps 100k-rule dumps from reallocating thousands of small
    /// per-chain vectors of large rules.
    pub rules: Vec<RuleAst>,
    /// True once `COMMIT` was read.
    pub committed: bool,
}

impl TableAst {
    /// An empty table opened by a header line.
    pub fn new(name: TableName, span: Span) -> TableAst {
        TableAst {
            name,
            span,
            chains: Vec::new(),
            index: NameMap::default(),
            rules: Vec::new(),
            committed: false,
        }
    }

    /// The index of a chain; built-in chains spring into being on first use, as they
    /// always exist in the kernel.
    pub fn chain_index(&mut self, name: &str, span: Span) -> Option<usize> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        if !self.name.is_builtin(name) {
            return None;
        }
        Some(self.add_chain(name, true, span))
    }

    /// Stores a rule in chain `chain`, at `position` (insert) or at the end.
    pub fn put_rule(&mut self, chain: usize, position: Option<usize>, rule: RuleAst) {
        let Ok(id) = u32::try_from(self.rules.len()) else {
            return;
        };
        let Some(c) = self.chains.get_mut(chain) else {
            return;
        };
        match position {
            Some(p) if p <= c.rules.len() => c.rules.insert(p, id),
            _ => c.rules.push(id),
        }
        self.rules.push(rule);
    }

    /// Adds a chain and returns its index.
    pub fn add_chain(&mut self, name: &str, builtin: bool, span: Span) -> usize {
        self.chains.push(ChainAst {
            name: name.to_string(),
            builtin,
            policy: None,
            span,
            rules: Vec::new(),
        });
        let i = self.chains.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }
}

/// A whole dump.
#[derive(Clone, Debug, Default)]
pub struct DumpAst {
    /// Tables in order; a table named twice is replaced (iptables-restore flushes a
    /// table at its header), so only the last block of each name is kept.
    pub tables: Vec<TableAst>,
    /// The family a `# Generated by ip6tables-save` / `iptables-save` comment names.
    pub header_family: Option<Family>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_chains_spring_into_being() {
        let mut t = TableAst::new(TableName::Raw, Span::default());
        assert!(t.chain_index("PREROUTING", Span::default()).is_some());
        assert!(
            t.chain_index("FORWARD", Span::default()).is_none(),
            "raw has no FORWARD"
        );
        assert!(t.chain_index("mine", Span::default()).is_none());
        assert_eq!(
            TableName::by_name("security").map(TableName::name),
            Some("security")
        );
    }
}
