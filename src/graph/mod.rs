//! The normalized rule graph: what every dialect parser lowers to, and all that the
//! analysis reads.
//!
//! A firewall is a list of [`Stage`]s a forwarded packet meets in order (iptables:
//! `FORWARD`; ASA: the ingress access-group, then the egress one; pfSense: floating rules,
//! then interface rules). Each stage enters a [`Chain`]: an ordered list of [`Rule`]s,
//! first match wins, with an explicit [`Default`] for packets that fall off the end.
//! Vendor behaviour that no line spells out — iptables chain policies, the ASA implicit
//! deny and security levels, pfSense's default deny — is lowered into real rules and
//! defaults whose span is the line that causes them, so the analysis has no vendor cases.
//!
//! A [`Rule`] matches a *cube*: the conjunction of its conditions, each a set of values of
//! one packet field. A vendor entry that is a union across fields (an ASA service group
//! with tcp/80 and udp/53) lowers to consecutive rules with the same action and span.

pub mod sets;

use crate::source::{FileId, MoveSpans, Span};
pub use sets::{IntervalSet, NarrowSet};
use std::fmt;

/// The three networks of KB 294297's topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    /// The Internet side of the external firewall.
    Public,
    /// The DMZ where the Mobile Information Server runs.
    Perimeter,
    /// The network of Exchange, the domain controllers and DNS.
    Internal,
}

impl Zone {
    /// All zones, in a fixed order.
    pub const ALL: [Zone; 3] = [Zone::Public, Zone::Perimeter, Zone::Internal];

    /// The lowercase name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Zone::Public => "public",
            Zone::Perimeter => "perimeter",
            Zone::Internal => "internal",
        }
    }

    /// Parses a zone name.
    pub fn by_name(s: &str) -> Option<Zone> {
        match s.to_ascii_lowercase().as_str() {
            "public" | "external" | "outside" => Some(Zone::Public),
            "perimeter" | "dmz" => Some(Zone::Perimeter),
            "internal" | "inside" => Some(Zone::Internal),
            _ => None,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The config dialect a graph came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    /// `iptables-save` / `ip6tables-save` output.
    Iptables,
    /// Cisco ASA running-config.
    Asa,
    /// pfSense / OPNsense `config.xml`.
    Pfsense,
}

impl Dialect {
    /// Lowercase name for output.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Iptables => "iptables",
            Dialect::Asa => "asa",
            Dialect::Pfsense => "pfsense",
        }
    }
}

/// Which address families a config filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only (`iptables-save`).
    V4,
    /// IPv6 only (`ip6tables-save`).
    V6,
    /// Both (ASA, pfSense).
    Both,
}

impl Family {
    /// The addresses of this family as a set of the address field.
    pub fn space(self) -> IntervalSet {
        match self {
            Family::V4 => sets::addr::v4_space(),
            Family::V6 => sets::addr::v6_space(),
            Family::Both => IntervalSet::range(0, sets::ADDR_MAX),
        }
    }
}

/// Index of a chain in [`RuleGraph::chains`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(pub usize);

/// A network interface the config names.
#[derive(Clone, Debug)]
pub struct Interface {
    /// The name rules use: iptables `eth1`, ASA `nameif`, pfSense `wan`/`lan`/`optN`.
    pub name: String,
    /// Free text that hints at the zone (ASA `description`, pfSense `<descr>`).
    pub description: Option<String>,
    /// The zone the dialect reads from names alone; the user's mapping wins over it.
    pub zone_hint: Option<Zone>,
    /// ASA security level (0–100).
    pub security_level: Option<u8>,
    /// The networks attached to the interface (from its address and mask).
    pub networks: IntervalSet,
    /// The interface's own addresses (the firewall itself on that leg).
    pub own_addresses: IntervalSet,
    /// Where the interface is declared, if anywhere.
    pub span: Option<Span>,
}

impl Interface {
    /// An interface known only by name (iptables names carry no declarations).
    pub fn named(name: impl Into<String>) -> Interface {
        Interface {
            name: name.into(),
            description: None,
            zone_hint: None,
            security_level: None,
            networks: IntervalSet::empty(),
            own_addresses: IntervalSet::empty(),
            span: None,
        }
    }
}

/// An interface pattern as a rule writes it: a name, or a prefix (iptables `eth+`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IfacePattern {
    /// The name, without the trailing `+` of a prefix pattern.
    pub name: String,
    /// True if `name` is a prefix (`eth+` matches `eth0`, `eth1`, …; a lone `+` matches all).
    pub prefix: bool,
}

impl IfacePattern {
    /// True if an interface called `iface` matches.
    pub fn matches(&self, iface: &str) -> bool {
        if self.prefix {
            iface.starts_with(&self.name)
        } else {
            iface == self.name
        }
    }
}

/// An interface condition: any of the patterns, possibly negated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IfaceMatch {
    /// The packet's interface matches one of these...
    pub patterns: Vec<IfacePattern>,
    /// ...or, if negated, none of them.
    pub negated: bool,
}

impl IfaceMatch {
    /// True if an interface called `iface` satisfies the condition.
    pub fn matches(&self, iface: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(iface)) != self.negated
    }
}

/// What a condition constrains. Sets are already negation-resolved: `! --dport 80` is
/// `DstPort` of every port but 80 (its meaning for packets that carry ports).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CondKind {
    /// IP protocol numbers (0–255).
    Protocol(IntervalSet),
    /// Source addresses.
    SrcAddr(IntervalSet),
    /// Destination addresses.
    DstAddr(IntervalSet),
    /// Source ports; the rule's protocol condition says which protocols they belong to.
    SrcPort(IntervalSet),
    /// Destination ports.
    DstPort(IntervalSet),
    /// Ingress interface.
    InIface(IfaceMatch),
    /// Egress interface.
    OutIface(IfaceMatch),
    /// Conntrack states (see [`sets::ct`]).
    State(IntervalSet),
    /// A match mislint does not model. The rule *may* match any packet its other
    /// conditions match; the text says what it was.
    Unknown(String),
}

/// One condition of a rule, with the span of the tokens that wrote it.
#[derive(Clone, Debug)]
pub struct Cond {
    /// What it constrains.
    pub kind: CondKind,
    /// The option and its arguments in the source.
    pub span: Span,
}

impl PartialEq for Cond {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}
impl Eq for Cond {}

impl MoveSpans for Cond {
    fn move_spans(&mut self, delta: i64) {
        // The kind holds values only, no positions.
        let Cond { kind: _, span } = self;
        span.move_spans(delta);
    }
}

/// What a rule does with the packets it matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Permit (in this stage; later stages still see the packet).
    Accept,
    /// Discard silently.
    Drop,
    /// Discard with an error back to the sender.
    Reject,
    /// Call a user chain; return here on fall-through or `Return`.
    Jump(ChainId),
    /// Continue in a user chain; on fall-through return to *our* caller.
    Goto(ChainId),
    /// Return to the calling chain (or take the chain's default in a stage's chain).
    Return,
    /// A non-terminating target (LOG, MARK, …): matching packets go on to the next rule.
    Continue(String),
    /// Destination NAT (iptables DNAT/REDIRECT, ASA static NAT, pfSense port forward):
    /// the packet goes on to the next stage with its destination rewritten, and later
    /// stages see the new destination. Boxed: a target holds two sets, and inline
    /// they made every rule of a 100,000-rule graph 64 bytes bigger.
    Dnat(Box<NatTarget>),
    /// A target mislint does not model: matching packets may be permitted, dropped or
    /// go on, so the analysis keeps every possibility open.
    Unknown(String),
}

/// Where destination NAT sends a packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NatTarget {
    /// The new destination addresses (one of them per connection); `None` means the
    /// firewall itself (iptables REDIRECT): the packet is delivered locally, not forwarded.
    pub addrs: Option<IntervalSet>,
    /// The new destination ports (one of them); `None` keeps the original port.
    pub ports: Option<IntervalSet>,
}

impl Action {
    /// Destination NAT to `target`.
    pub fn dnat(target: NatTarget) -> Action {
        Action::Dnat(Box::new(target))
    }

    /// True for actions that end the packet's walk with a permit or deny.
    pub fn is_terminal_verdict(&self) -> bool {
        matches!(self, Action::Accept | Action::Drop | Action::Reject)
    }
}

/// A firewall rule: all conditions must hold for `action` to apply.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The conditions, conjoined. No condition means "every packet".
    pub conds: Vec<Cond>,
    /// The action.
    pub action: Action,
    /// The whole line or element that wrote the rule.
    pub span: Span,
    /// The span of the action's token(s) (`-j ACCEPT`, `permit`, `<type>`), for labels.
    pub action_span: Span,
    /// The rule's own comment (iptables `--comment`, ASA remark above it, pfSense `descr`).
    pub comment: Option<String>,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.conds == other.conds && self.action == other.action
    }
}
impl Eq for Rule {}

/// What happens to packets that fall off the end of a stage's chain.
#[derive(Clone, Debug)]
pub struct Default {
    /// Accept, Drop or Reject.
    pub action: Action,
    /// The line that causes it: the chain policy, the `access-group` line, …
    pub span: Span,
    /// How to say it in a message: "chain policy", "implicit deny at the end of ACL `x`".
    pub reason: String,
}

impl PartialEq for Default {
    fn eq(&self, other: &Self) -> bool {
        self.action == other.action
    }
}
impl Eq for Default {}

/// An ordered rule list.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Its name (iptables chain, ASA ACL, pfSense interface).
    pub name: String,
    /// The rules, first match wins.
    pub rules: Vec<Rule>,
    /// What falls off the end: `Some` for chains that stages enter (built-in chains, ACLs),
    /// `None` for user chains, which return to their caller.
    pub default: Option<Default>,
    /// Where the chain is declared.
    pub span: Span,
}

impl PartialEq for Chain {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.rules == other.rules && self.default == other.default
    }
}
impl Eq for Chain {}

/// A filter point on the path of a forwarded packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Human name: `filter/FORWARD`, `access-group dmz_in in interface dmz`, …
    pub name: String,
    /// The chain the stage enters; it must have a default.
    pub chain: ChainId,
}

/// The normalized rule graph of one config file.
#[derive(Clone, Debug)]
pub struct RuleGraph {
    /// Where it came from.
    pub dialect: Dialect,
    /// Its file.
    pub file: FileId,
    /// The address families it filters.
    pub family: Family,
    /// Interfaces the config declares or names.
    pub interfaces: Vec<Interface>,
    /// All chains; stages and jumps refer to them by index.
    pub chains: Vec<Chain>,
    /// Stages a forwarded packet meets, in order. Accept in one stage goes on to the next;
    /// drop or reject ends the walk; accepting in the last stage permits the packet.
    pub stages: Vec<Stage>,
    /// Stages of packets addressed to the firewall itself (iptables INPUT and the chains
    /// before it); empty where the dialect has no such notion.
    pub local_in: Vec<Stage>,
    /// Stages of packets the firewall sends itself (iptables OUTPUT and after).
    pub local_out: Vec<Stage>,
    /// True for devices that pass the replies of a permitted connection by themselves
    /// (ASA, pfSense); iptables needs an ESTABLISHED rule for that.
    pub stateful: bool,
    /// Port names the config wrote instead of numbers (ASA `eq kerberos`), so a finding
    /// can say when a name means another port than a reader expects.
    pub port_literals: Vec<PortLiteral>,
}

/// A port written as a name, with the number the device gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortLiteral {
    /// The name token.
    pub span: Span,
    /// The name as written.
    pub name: String,
    /// The port the device uses for it.
    pub port: u16,
}

impl PartialEq for RuleGraph {
    fn eq(&self, other: &Self) -> bool {
        self.family == other.family && self.chains == other.chains && self.stages == other.stages
    }
}

impl RuleGraph {
    /// An empty graph for a dialect and file.
    pub fn new(dialect: Dialect, file: FileId, family: Family) -> RuleGraph {
        RuleGraph {
            dialect,
            file,
            family,
            interfaces: Vec::new(),
            chains: Vec::new(),
            stages: Vec::new(),
            local_in: Vec::new(),
            local_out: Vec::new(),
            stateful: dialect != Dialect::Iptables,
            port_literals: Vec::new(),
        }
    }

    /// The chain with this id.
    pub fn chain(&self, id: ChainId) -> &Chain {
        // ChainIds are only made by `add_chain`, so the index always exists.
        &self.chains[id.0]
    }

    /// Adds a chain and returns its id.
    pub fn add_chain(&mut self, chain: Chain) -> ChainId {
        self.chains.push(chain);
        ChainId(self.chains.len() - 1)
    }

    /// The interface with this name, if declared or named.
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// Adds an interface by name unless it is already known; returns its index.
    pub fn ensure_interface(&mut self, name: &str) -> usize {
        if let Some(i) = self.interfaces.iter().position(|i| i.name == name) {
            return i;
        }
        self.interfaces.push(Interface::named(name));
        self.interfaces.len() - 1
    }

    /// True for an iptables dump that filters only the machine's own traffic: FORWARD
    /// has no rules while INPUT or OUTPUT have some. Such a dump is the host firewall of
    /// a server, and mislint reads it as the MIS host's own (see `docs/host-firewall.md`).
    pub fn is_host_firewall(&self) -> bool {
        let rules_in = |name: &str| {
            self.chains
                .iter()
                .find(|c| c.name == name)
                .map_or(0, |c| c.rules.len())
        };
        self.dialect == Dialect::Iptables
            && rules_in("FORWARD") == 0
            && rules_in("INPUT") + rules_in("OUTPUT") > 0
    }

    /// Every rule with its chain, in chain order.
    pub fn rules(&self) -> impl Iterator<Item = (ChainId, usize, &Rule)> {
        self.chains.iter().enumerate().flat_map(|(c, chain)| {
            chain
                .rules
                .iter()
                .enumerate()
                .map(move |(i, r)| (ChainId(c), i, r))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_prefix_pattern() {
        let m = IfaceMatch {
            patterns: vec![IfacePattern {
                name: "eth".into(),
                prefix: true,
            }],
            negated: false,
        };
        assert!(m.matches("eth0") && m.matches("eth12"));
        assert!(!m.matches("wlan0"));
        let neg = IfaceMatch { negated: true, ..m };
        assert!(!neg.matches("eth0") && neg.matches("ppp0"));
    }

    #[test]
    fn zone_names_round_trip() {
        for z in Zone::ALL {
            assert_eq!(Zone::by_name(z.name()), Some(z));
        }
        assert_eq!(Zone::by_name("DMZ"), Some(Zone::Perimeter));
        assert_eq!(Zone::by_name("lan"), None);
    }
}
