//! iptables semantics end to end: a ruleset as `iptables-save` prints it, parsed and
//! asked "what happens to this packet?". Each test is one construct the issue names.

use mislint::analysis::{Cube, Field, Model, Verdict};
use mislint::graph::IntervalSet;
use mislint::graph::sets::{addr, ct};
use mislint::parse::iptables;
use mislint::source::{FileId, SourceFile};

struct Probe<'a> {
    proto: u8,
    src: &'a str,
    dst: &'a str,
    dport: u16,
    iif: &'a str,
    oif: &'a str,
    state: u128,
}

impl Default for Probe<'_> {
    fn default() -> Self {
        Probe {
            proto: 6,
            src: "192.168.10.5",
            dst: "10.0.0.10",
            dport: 389,
            iif: "eth1",
            oif: "eth2",
            state: ct::NEW,
        }
    }
}

/// The verdict for one packet, and whether it is only "may".
fn verdict(rules: &str, p: Probe) -> (Verdict, bool, usize) {
    verdict_of_dump(&format!("*filter\n{rules}COMMIT\n"), p)
}

/// The verdict for one packet under a whole dump (several tables).
fn verdict_of_dump(text: &str, p: Probe) -> (Verdict, bool, usize) {
    let text = text.to_string();
    let file = SourceFile::new(FileId(0), "t.rules", text);
    let parsed = iptables::parse(&file);
    assert!(
        parsed
            .findings
            .iter()
            .all(|f| f.rule != mislint::parse::PARSE_ERROR),
        "{:?}",
        parsed.findings
    );
    let graph = parsed.graph.expect("a graph");
    let model = Model::new(&graph, &[p.iif.to_string(), p.oif.to_string()]);
    let mut q = Cube::full(model.ifaces.len());
    let one = |v: u128| IntervalSet::single(v);
    q.restrict(Field::Proto, &one(u128::from(p.proto)));
    q.restrict(Field::State, &one(p.state));
    q.restrict(Field::DstPort, &one(u128::from(p.dport)));
    q.restrict(Field::SrcPort, &one(40000));
    q.restrict(Field::SrcAddr, &one(addr::v4(p.src.parse().expect("v4"))));
    q.restrict(Field::DstAddr, &one(addr::v4(p.dst.parse().expect("v4"))));
    q.restrict(Field::InIface, &model.iface_set(&[p.iif]));
    q.restrict(Field::OutIface, &model.iface_set(&[p.oif]));
    let out = model.evaluate(&q);
    let may = out.iter().any(|o| o.may.is_some());
    let permit = out.iter().any(|o| o.verdict == Verdict::Permit);
    let line = out
        .first()
        .map(|o| {
            let span = model.span_of(o.decided_by);
            file.text[..span.start as usize].matches('\n').count() + 1
        })
        .unwrap_or(0);
    if !may {
        assert_eq!(out.len(), 1, "one packet, one definite outcome");
    }
    (
        if permit {
            Verdict::Permit
        } else {
            Verdict::Deny
        },
        may,
        line,
    )
}

const POLICY_DROP: &str = ":FORWARD DROP [0:0]\n";

#[test]
fn drop_above_accept() {
    let rules = format!(
        "{POLICY_DROP}-A FORWARD -p tcp -m tcp --dport 389 -j DROP\n-A FORWARD -p tcp -m tcp --dport 389 -j ACCEPT\n"
    );
    assert_eq!(verdict(&rules, Probe::default()), (Verdict::Deny, false, 3));
}

#[test]
fn return_out_of_a_user_chain() {
    let rules = format!(
        "{POLICY_DROP}:CHECK - [0:0]\n-A FORWARD -j CHECK\n-A FORWARD -p tcp --dport 389 -j ACCEPT\n-A CHECK -p tcp --dport 389 -j RETURN\n-A CHECK -j DROP\n"
    );
    assert_eq!(
        verdict(&rules, Probe::default()),
        (Verdict::Permit, false, 5)
    );
    let other = Probe {
        dport: 80,
        ..Probe::default()
    };
    assert_eq!(verdict(&rules, other), (Verdict::Deny, false, 7));
}

#[test]
fn goto_then_fall_through_to_the_policy() {
    let rules = format!("{POLICY_DROP}:EMPTY - [0:0]\n-A FORWARD -g EMPTY\n-A FORWARD -j ACCEPT\n");
    assert_eq!(verdict(&rules, Probe::default()), (Verdict::Deny, false, 2));
    let jump = rules.replace("-g EMPTY", "-j EMPTY");
    assert_eq!(verdict(&jump, Probe::default()).0, Verdict::Permit);
}

#[test]
fn negated_address() {
    let rules = format!("{POLICY_DROP}-A FORWARD ! -s 192.168.10.0/24 -j ACCEPT\n");
    assert_eq!(verdict(&rules, Probe::default()).0, Verdict::Deny);
    let outside = Probe {
        src: "192.168.11.5",
        ..Probe::default()
    };
    assert_eq!(verdict(&rules, outside).0, Verdict::Permit);
    let old_style = format!("{POLICY_DROP}-A FORWARD -s ! 192.168.10.0/24 -j ACCEPT\n");
    assert_eq!(verdict(&old_style, Probe::default()).0, Verdict::Deny);
}

#[test]
fn interface_wildcard() {
    let rules = format!("{POLICY_DROP}-A FORWARD -i eth+ -o eth2 -j ACCEPT\n");
    assert_eq!(verdict(&rules, Probe::default()).0, Verdict::Permit);
    let ppp = Probe {
        iif: "ppp0",
        ..Probe::default()
    };
    assert_eq!(verdict(&rules, ppp).0, Verdict::Deny);
}

#[test]
fn conntrack_state() {
    let rules =
        format!("{POLICY_DROP}-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    assert_eq!(verdict(&rules, Probe::default()).0, Verdict::Deny);
    let reply = Probe {
        state: ct::ESTABLISHED,
        ..Probe::default()
    };
    assert_eq!(verdict(&rules, reply).0, Verdict::Permit);
    let state = format!("{POLICY_DROP}-A FORWARD -m state --state NEW -j ACCEPT\n");
    assert_eq!(verdict(&state, Probe::default()).0, Verdict::Permit);
}

#[test]
fn unknown_module_turns_closed_into_may_be_open() {
    let closed =
        format!("{POLICY_DROP}-A FORWARD -p tcp --dport 389 -j REJECT\n-A FORWARD -j ACCEPT\n");
    assert_eq!(
        verdict(&closed, Probe::default()),
        (Verdict::Deny, false, 3)
    );
    let guarded = closed.replace(
        "--dport 389 -j",
        "--dport 389 -m recent --rcheck --name X -j",
    );
    let (v, may, _) = verdict(&guarded, Probe::default());
    assert_eq!(
        (v, may),
        (Verdict::Permit, true),
        "may be open, never closed"
    );
    // Both worlds deny: whether or not the unknown match hits, the port is closed.
    let both_deny = guarded.replace("-A FORWARD -j ACCEPT\n", "");
    assert_eq!(verdict(&both_deny, Probe::default()).0, Verdict::Deny);
}

#[test]
fn multiport_ranges_and_negation() {
    let rules =
        format!("{POLICY_DROP}-A FORWARD -p tcp -m multiport --dports 80,300:400 -j ACCEPT\n");
    assert_eq!(verdict(&rules, Probe::default()).0, Verdict::Permit);
    let negated =
        format!("{POLICY_DROP}-A FORWARD -p tcp -m multiport ! --dports 80,300:400 -j ACCEPT\n");
    assert_eq!(verdict(&negated, Probe::default()).0, Verdict::Deny);
    let port81 = Probe {
        dport: 81,
        ..Probe::default()
    };
    assert_eq!(verdict(&negated, port81).0, Verdict::Permit);
}

#[test]
fn non_terminating_targets_continue() {
    let rules = format!(
        "{POLICY_DROP}-A FORWARD -j LOG --log-prefix \"x \"\n-A FORWARD -j MARK --set-mark 1\n-A FORWARD -p tcp --dport 389 -j ACCEPT\n"
    );
    assert_eq!(
        verdict(&rules, Probe::default()),
        (Verdict::Permit, false, 5)
    );
}

#[test]
fn policy_accept_with_no_rules_permits() {
    assert_eq!(
        verdict(":FORWARD ACCEPT [0:0]\n", Probe::default()),
        (Verdict::Permit, false, 2)
    );
}

/// Found by the kernel oracle: `raw` runs before conntrack, so a state match there sees
/// INVALID for every packet; `--ctstate NEW` never matches (fixture
/// `extra-oracle-raw-ctstate`).
#[test]
fn raw_table_state_is_invalid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/iptables/extra-oracle-raw-ctstate.rules"
    ))
    .expect("fixture");
    assert_eq!(
        verdict_of_dump(&text, Probe::default()),
        (Verdict::Permit, false, 15)
    );
    let smb = Probe {
        dport: 445,
        ..Probe::default()
    };
    assert_eq!(verdict_of_dump(&text, smb), (Verdict::Deny, false, 9));
}
