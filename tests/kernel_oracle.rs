//! The Linux kernel as the oracle for mislint's iptables semantics.
//!
//! Each ruleset — every fixture of `fixtures/iptables/` and a few hundred rulesets from a
//! seeded generator — is loaded with `iptables-restore` into a firewall network namespace
//! whose interfaces are named `eth0`/`eth1`/`eth2` like the fixture topology
//! (docs/topology.md). Real packets then cross it, and for each one the kernel's answer
//! (did it arrive on the far side?) must equal mislint's verdict for the same packet
//! (parse the same text, [`Model::evaluate`] on the one-packet cube in the probe's state, with
//! the in-interface of the sending side and the out-interface the firewall's routing
//! picks). A mislint "may" verdict agrees with either answer; those are counted.
//!
//! The lab: four namespaces per run (`mlo-<pid>-<n>-fw`, `-pub`, `-dmz`, `-int`), one veth
//! pair from the firewall to each host namespace, static neighbour entries so no ARP
//! round trip can delay or lose a probe, and no route out of the lab: nothing leaves the
//! machine. The host namespaces drop every IPv4 packet in `raw PREROUTING`, so nothing
//! ever answers a probe and the firewall's conntrack sees each one as NEW (a reply would
//! turn a later probe of the same tuple ESTABLISHED and make the kernel's answer depend
//! on test order). A [`Lab`] guard deletes the namespaces on drop, also when the test
//! fails or panics, and a run first deletes leftovers of dead runs.
//!
//! Why this probe mechanism: one long-lived Python helper (`tests/oracle/probe.py`,
//! standard library only) per host namespace both sends and captures. Sending hand-built
//! packets from a raw socket lets one namespace speak for any source address and port,
//! and sends ESP and AH as easily as a TCP SYN, with no listener, connect timeout or
//! socket per probe. Capturing with an `AF_PACKET` socket sees a frame before the host's
//! own netfilter drops it, and each probe carries a marker naming its ruleset and number
//! right after the transport header, so an arrival is attributed exactly (a copy quoted
//! inside an ICMP error from a REJECT is not an arrival). Counter rules read back with
//! `iptables-save -c` would work too, but cost two extra `iptables` runs per namespace
//! per ruleset and cannot tell probes apart that share a tuple. Per ruleset the cost is
//! one `iptables-restore`, a batch of sends, and one short quiet-wire wait per helper.
//! A probe on which the two disagree is sent once more, alone, before it counts: a
//! capture cannot invent an arrival, but a loaded machine could deliver one late.
//!
//! Conntrack: the firewall's table is flushed before each batch, and no probe reuses the
//! reverse of another's tuple (ESP and AH: the address pair), so probes are NEW; one in
//! eight is entered beforehand with `conntrack -I` as a flow that has seen its reply, so
//! the kernel classifies it ESTABLISHED, and mislint is asked with that state.
//!
//! Requirements: root (CAP_NET_ADMIN, raw sockets), `ip` (iproute2), `iptables-restore`
//! and `python3`; `.ci/oracle-setup.sh` installs them. Without them the test FAILS, unless
//! `MISLINT_SKIP_KERNEL_ORACLE=1` is set (for local non-root runs only; CI never sets it).
//! Knobs for local use: `MISLINT_ORACLE_RULESETS` (generated count), `MISLINT_ORACLE_SEED`,
//! `MISLINT_ORACLE_DNAT=1` (DNAT rulesets; off until the analysis models DNAT), and
//! `MISLINT_ORACLE_RESTORE` (e.g. `iptables-legacy-restore`).

use mislint::analysis::{Cube, Field, Model, Verdict};
use mislint::graph::IntervalSet;
use mislint::graph::sets::{addr, ct, proto};
use mislint::parse::{PARSE_ERROR, iptables};
use mislint::source::{FileId, SourceFile};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// Generated rulesets per run (the issue asks for at least 300).
const GENERATED_RULESETS: usize = 300;
/// Probes per generated ruleset (at least 50).
const PROBES_PER_GENERATED: usize = 64;
/// Probes per fixture: fixtures are few and worth more.
const PROBES_PER_FIXTURE: usize = 400;
/// The generator's seed; a failure names the ruleset index, so it can be replayed.
const SEED: u64 = 0x6d69_736c_696e_7431;
/// Whether the generator writes DNAT rules in `nat PREROUTING`. Off until the analysis
/// models DNAT: then set this to `true` (or run with `MISLINT_ORACLE_DNAT=1`).
const GENERATE_DNAT: bool = true;
/// The firewall's own public address that DNAT rules translate (the "virtual IP").
const DNAT_VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 80);
/// Most greedy-minimisation attempts spent on one disagreement.
const MINIMISE_ATTEMPTS: usize = 150;
/// How long a helper may take to answer.
const HELPER_TIMEOUT: Duration = Duration::from_secs(20);

const PROBE_PY: &str = include_str!("oracle/probe.py");

// ---------------------------------------------------------------------------------------
// The topology

/// A host namespace behind one firewall interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Zone {
    Public,
    Perimeter,
    Internal,
}

const ZONES: [Zone; 3] = [Zone::Public, Zone::Perimeter, Zone::Internal];

impl Zone {
    fn index(self) -> usize {
        self as usize
    }

    /// The firewall's interface toward this zone (docs/topology.md).
    fn fw_iface(self) -> &'static str {
        ["eth0", "eth1", "eth2"][self.index()]
    }

    fn suffix(self) -> &'static str {
        ["pub", "dmz", "int"][self.index()]
    }

    /// The firewall's address on this zone's network.
    fn fw_addr(self) -> Ipv4Addr {
        [
            Ipv4Addr::new(203, 0, 113, 1),
            Ipv4Addr::new(192, 168, 10, 1),
            Ipv4Addr::new(10, 0, 0, 1),
        ][self.index()]
    }

    /// The host namespace's own address (the public side's is the carrier's router).
    fn host_addr(self) -> Ipv4Addr {
        [
            Ipv4Addr::new(203, 0, 113, 2),
            Ipv4Addr::new(192, 168, 10, 5),
            Ipv4Addr::new(10, 0, 0, 10),
        ][self.index()]
    }

    /// Addresses probes are sent to; the host namespace captures them all. The public
    /// side has hosts beyond the router (the SMTP relay 198.51.100.25).
    fn hosts(self) -> &'static [Ipv4Addr] {
        const PUBLIC: &[Ipv4Addr] = &[
            Ipv4Addr::new(203, 0, 113, 2),
            Ipv4Addr::new(203, 0, 113, 50),
            Ipv4Addr::new(198, 51, 100, 25),
            Ipv4Addr::new(198, 51, 100, 80),
        ];
        const PERIMETER: &[Ipv4Addr] = &[
            Ipv4Addr::new(192, 168, 10, 5),
            Ipv4Addr::new(192, 168, 10, 6),
            Ipv4Addr::new(192, 168, 10, 130),
        ];
        const INTERNAL: &[Ipv4Addr] = &[
            Ipv4Addr::new(10, 0, 0, 10),
            Ipv4Addr::new(10, 0, 0, 20),
            Ipv4Addr::new(10, 0, 0, 200),
        ];
        [PUBLIC, PERIMETER, INTERNAL][self.index()]
    }

    /// Addresses this zone's probes are sent from (besides the occasional spoofed one).
    fn sources(self) -> &'static [Ipv4Addr] {
        const PUBLIC: &[Ipv4Addr] = &[
            Ipv4Addr::new(203, 0, 113, 2),
            Ipv4Addr::new(203, 0, 113, 99),
            Ipv4Addr::new(198, 51, 100, 25),
            Ipv4Addr::new(198, 51, 100, 7),
        ];
        const PERIMETER: &[Ipv4Addr] = &[
            Ipv4Addr::new(192, 168, 10, 5),
            Ipv4Addr::new(192, 168, 10, 9),
        ];
        const INTERNAL: &[Ipv4Addr] = &[
            Ipv4Addr::new(10, 0, 0, 10),
            Ipv4Addr::new(10, 0, 0, 20),
            Ipv4Addr::new(10, 0, 0, 99),
        ];
        [PUBLIC, PERIMETER, INTERNAL][self.index()]
    }

    /// The firewall's MAC address on this zone's link, and the host's.
    fn macs(self) -> (String, String) {
        let i = self.index();
        (
            format!("02:6d:6c:00:0{i}:01"),
            format!("02:6d:6c:00:0{i}:02"),
        )
    }
}

/// The zone the firewall routes `dst` to: a mirror of the routes [`Lab::new`] installs.
fn route(dst: Ipv4Addr) -> Option<Zone> {
    let [a, b, c, _] = dst.octets();
    match (a, b, c) {
        (203, 0, 113) | (198, 51, 100) => Some(Zone::Public),
        (192, 168, 10) => Some(Zone::Perimeter),
        (10, 0, 0) => Some(Zone::Internal),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Probes and verdicts

/// One packet to send through the firewall.
#[derive(Clone, Debug)]
struct Probe {
    from: Zone,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// Source port, or the SPI for ESP and AH.
    sport: u16,
    dport: u16,
    /// Conntrack state the firewall sees: NEW, or ESTABLISHED for a probe whose tuple
    /// the lab enters into conntrack as a flow that has seen a reply.
    state: u128,
}

impl Probe {
    /// The destination after `nat PREROUTING`, as the generator's DNAT rules say.
    fn translated(&self, dnat: &[DnatRule]) -> Option<Ipv4Addr> {
        if self.dst != DNAT_VIP {
            return Some(self.dst);
        }
        dnat.iter()
            .find(|d| {
                d.proto == self.proto
                    && d.dport == self.dport
                    && d.in_zone.is_none_or(|z| z == self.from)
            })
            .map(|d| d.to)
    }

    fn describe(&self) -> String {
        let name = proto::name(self.proto).unwrap_or("?");
        let name = if self.state == ct::ESTABLISHED {
            format!("ESTABLISHED {name}")
        } else {
            name.to_string()
        };
        if proto::has_ports(self.proto) {
            format!(
                "{name} {}:{} -> {}:{} in {}",
                self.src,
                self.sport,
                self.dst,
                self.dport,
                self.from.fw_iface()
            )
        } else {
            format!(
                "{name} {} -> {} spi {} in {}",
                self.src,
                self.dst,
                self.sport,
                self.from.fw_iface()
            )
        }
    }
}

/// mislint's answer for one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Permit,
    Deny,
    May,
}

/// mislint's verdict for every probe: parse `text`, build the model once, ask per packet.
fn mislint_verdicts(
    text: &str,
    probes: &[Probe],
    dnat: &[DnatRule],
) -> Result<Vec<Expect>, String> {
    let file = SourceFile::new(FileId(0), "oracle.rules", text.to_string());
    let parsed = iptables::parse(&file);
    if let Some(f) = parsed.findings.iter().find(|f| f.rule == PARSE_ERROR) {
        return Err(format!(
            "mislint could not parse what the kernel loaded: {}",
            f.message
        ));
    }
    let graph = parsed.graph.ok_or("mislint gave no graph")?;
    let names: Vec<String> = ZONES.iter().map(|z| z.fw_iface().to_string()).collect();
    let model = Model::new(&graph, &names);
    let mut out = Vec::with_capacity(probes.len());
    for p in probes {
        let to = p
            .translated(dnat)
            .and_then(route)
            .ok_or_else(|| format!("probe without a route: {}", p.describe()))?;
        let mut q = Cube::full(model.ifaces.len());
        let one = IntervalSet::single;
        q.restrict(Field::Proto, &one(u128::from(p.proto)));
        q.restrict(Field::State, &one(p.state));
        q.restrict(Field::SrcAddr, &one(addr::v4(p.src)));
        q.restrict(Field::DstAddr, &one(addr::v4(p.dst)));
        if proto::has_ports(p.proto) {
            q.restrict(Field::SrcPort, &one(u128::from(p.sport)));
            q.restrict(Field::DstPort, &one(u128::from(p.dport)));
        }
        q.restrict(Field::InIface, &model.iface_set(&[p.from.fw_iface()]));
        q.restrict(Field::OutIface, &model.iface_set(&[to.fw_iface()]));
        let outcomes = model.evaluate(&q);
        let expect = if outcomes.iter().any(|o| o.may.is_some()) {
            Expect::May
        } else if outcomes.iter().all(|o| o.verdict == Verdict::Permit) && !outcomes.is_empty() {
            Expect::Permit
        } else {
            Expect::Deny
        };
        out.push(expect);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Running commands

fn run(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let (program, rest) = args.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("`{}`: {e}", args.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("`{}` stdin: {e}", args.join(" ")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether `program --version`-like probing finds it.
fn have(args: &[&str]) -> bool {
    run(args, None).is_ok()
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The `iptables-restore` to use: the environment's choice, else whichever exists.
fn find_restore() -> Result<String, String> {
    if let Ok(name) = std::env::var("MISLINT_ORACLE_RESTORE") {
        return Ok(name);
    }
    [
        "iptables-restore",
        "iptables-nft-restore",
        "iptables-legacy-restore",
    ]
    .into_iter()
    .find(|p| have(&[p, "--version"]))
    .map(str::to_string)
    .ok_or_else(|| "no iptables-restore (apt-get install -y iptables)".to_string())
}

/// Everything the oracle needs, or why it cannot run.
fn preflight() -> Result<String, String> {
    if effective_uid() != Some(0) {
        return Err("not running as root (network namespaces and raw sockets need it)".into());
    }
    if !have(&["ip", "-V"]) {
        return Err("no `ip` (apt-get install -y iproute2)".into());
    }
    if !have(&["python3", "-c", "import socket"]) {
        return Err("no `python3` (apt-get install -y python3)".into());
    }
    if !have(&["conntrack", "--version"]) {
        return Err("no `conntrack` (apt-get install -y conntrack)".into());
    }
    find_restore()
}

// ---------------------------------------------------------------------------------------
// The lab

static LABS: AtomicUsize = AtomicUsize::new(0);

/// One probe helper: a Python process inside a host namespace.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Helper {
    fn send(&mut self, text: &str) -> Result<(), String> {
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("probe helper: {e}"))
    }

    fn read_line(&mut self) -> Result<String, String> {
        self.lines
            .recv_timeout(HELPER_TIMEOUT)
            .map_err(|e| format!("probe helper did not answer: {e}"))
    }
}

/// The namespaces, links and helpers of one run; dropping it tears everything down.
struct Lab {
    prefix: String,
    restore: String,
    namespaces: Vec<String>,
    temp_links: Vec<String>,
    helpers: Vec<Helper>,
    ruleset_id: u32,
}

impl Lab {
    fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    fn new(restore: String) -> Result<Lab, String> {
        remove_leftovers();
        let pid = std::process::id();
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        let mut lab = Lab {
            prefix: format!("mlo-{pid}-{n}"),
            restore,
            namespaces: Vec::new(),
            temp_links: Vec::new(),
            helpers: Vec::new(),
            ruleset_id: 0,
        };
        lab.build(pid, n)?;
        Ok(lab)
    }

    fn build(&mut self, pid: u32, n: usize) -> Result<(), String> {
        let fw = self.ns("fw");
        for suffix in ["fw", "pub", "dmz", "int"] {
            let name = self.ns(suffix);
            run(&["ip", "netns", "add", &name], None)?;
            self.namespaces.push(name);
        }
        for zone in ZONES {
            self.link_zone(&fw, zone, pid, n)?;
        }
        run(
            &[
                "ip",
                "-n",
                &fw,
                "route",
                "add",
                "198.51.100.0/24",
                "via",
                "203.0.113.2",
            ],
            None,
        )?;
        if dnat_enabled() {
            run(
                &[
                    "ip",
                    "-n",
                    &fw,
                    "addr",
                    "add",
                    &format!("{DNAT_VIP}/32"),
                    "dev",
                    "eth0",
                ],
                None,
            )?;
        }
        // Forwarding on, reverse-path filtering off (probes use spoofed sources on
        // purpose), IPv6 off (no router solicitations on the wire).
        let sysctl = "echo 1 > /proc/sys/net/ipv4/ip_forward; \
            for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done; \
            for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done";
        run(&["ip", "netns", "exec", &fw, "sh", "-c", sysctl], None)?;
        for zone in ZONES {
            let ns = self.ns(zone.suffix());
            run(
                &[
                    "ip",
                    "netns",
                    "exec",
                    &ns,
                    "sh",
                    "-c",
                    "for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 1 > $f; done",
                ],
                None,
            )?;
            // Nothing answers a probe: conntrack on the firewall sees every probe as NEW.
            run(
                &["ip", "netns", "exec", &ns, &self.restore],
                Some(
                    "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n",
                ),
            )?;
        }
        for zone in ZONES {
            let helper = self.spawn_helper(zone)?;
            self.helpers.push(helper);
        }
        Ok(())
    }

    /// The veth pair from the firewall's `ethN` to the zone's host namespace.
    fn link_zone(&mut self, fw: &str, zone: Zone, pid: u32, n: usize) -> Result<(), String> {
        let i = zone.index();
        let host = self.ns(zone.suffix());
        let a = format!("mlo{}x{n}f{i}", pid % 1_000_000);
        let b = format!("mlo{}x{n}h{i}", pid % 1_000_000);
        self.temp_links.push(a.clone());
        run(
            &["ip", "link", "add", &a, "type", "veth", "peer", "name", &b],
            None,
        )?;
        run(&["ip", "link", "set", &a, "netns", fw], None)?;
        run(&["ip", "link", "set", &b, "netns", &host], None)?;
        let (fw_mac, host_mac) = zone.macs();
        let iface = zone.fw_iface();
        let fw_cidr = format!("{}/24", zone.fw_addr());
        let host_cidr = format!("{}/24", zone.host_addr());
        let fw_addr = zone.fw_addr().to_string();
        let steps: Vec<Vec<&str>> = vec![
            vec![
                "ip", "-n", fw, "link", "set", &a, "name", iface, "address", &fw_mac,
            ],
            vec!["ip", "-n", fw, "addr", "add", &fw_cidr, "dev", iface],
            vec!["ip", "-n", fw, "link", "set", iface, "up"],
            vec![
                "ip", "-n", &host, "link", "set", &b, "name", "eth0", "address", &host_mac,
            ],
            vec!["ip", "-n", &host, "addr", "add", &host_cidr, "dev", "eth0"],
            vec!["ip", "-n", &host, "link", "set", "eth0", "up"],
            vec!["ip", "-n", &host, "link", "set", "lo", "up"],
            vec![
                "ip", "-n", &host, "route", "add", "default", "via", &fw_addr,
            ],
            vec![
                "ip",
                "-n",
                &host,
                "neigh",
                "replace",
                &fw_addr,
                "lladdr",
                &fw_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        ];
        for step in steps {
            run(&step, None)?;
        }
        if zone == Zone::Public {
            for extra in ["198.51.100.25/32", "198.51.100.80/32"] {
                run(
                    &["ip", "-n", &host, "addr", "add", extra, "dev", "lo"],
                    None,
                )?;
            }
            let vip = DNAT_VIP.to_string();
            run(
                &[
                    "ip",
                    "-n",
                    &host,
                    "neigh",
                    "replace",
                    &vip,
                    "lladdr",
                    &fw_mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ],
                None,
            )?;
        }
        for h in zone.hosts().iter().filter(|h| route_is_onlink(**h)) {
            let h = h.to_string();
            run(
                &[
                    "ip",
                    "-n",
                    fw,
                    "neigh",
                    "replace",
                    &h,
                    "lladdr",
                    &host_mac,
                    "dev",
                    iface,
                    "nud",
                    "permanent",
                ],
                None,
            )?;
        }
        Ok(())
    }

    fn spawn_helper(&self, zone: Zone) -> Result<Helper, String> {
        let ns = self.ns(zone.suffix());
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", PROBE_PY, "eth0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("probe helper in {ns}: {e}"))?;
        let stdin = child.stdin.take().ok_or("helper stdin")?;
        let stdout = child.stdout.take().ok_or("helper stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut helper = Helper {
            child,
            stdin,
            lines: rx,
        };
        helper.send("F\n")?;
        match helper.read_line()?.as_str() {
            "OK" => Ok(helper),
            other => Err(format!("probe helper in {ns} said {other:?}")),
        }
    }

    /// Replaces the firewall's whole ruleset: every table is reset to empty chains with
    /// ACCEPT policies first, so nothing of the previous ruleset survives.
    fn load(&mut self, text: &str) -> Result<(), String> {
        let mut input = String::from(
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n\
             *mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n\
             *nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n\
             *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
        );
        input.push_str(text);
        if !input.ends_with('\n') {
            input.push('\n');
        }
        let fw = self.ns("fw");
        run(&["ip", "netns", "exec", &fw, &self.restore], Some(&input)).map(|_| ())
    }

    /// Empties the firewall's conntrack table, then enters each ESTABLISHED probe's
    /// tuple as a flow that has seen its reply. Entries outlive a ruleset: an entry of an
    /// earlier batch would make a later probe of the reverse tuple a reply, and a NAT
    /// binding lives in the entry too. One shell for all, to spare process starts.
    fn prime_conntrack(&self, probes: &[Probe]) -> Result<(), String> {
        let mut script = String::from("set -e; conntrack -F 2>/dev/null");
        for p in probes.iter().filter(|p| p.state == ct::ESTABLISHED) {
            let ports = if proto::has_ports(p.proto) {
                format!(" --sport {} --dport {}", p.sport, p.dport)
            } else {
                String::new()
            };
            let _ = write!(
                script,
                "; conntrack -I -p {} -s {} -d {}{ports} -t 120 -u SEEN_REPLY,ASSURED 2>/dev/null",
                p.proto, p.src, p.dst
            );
        }
        let fw = self.ns("fw");
        run(&["ip", "netns", "exec", &fw, "sh", "-c", &script], None).map(|_| ())
    }

    /// Sends the probes and returns which arrived in the namespace the firewall routes
    /// them to.
    fn fire(&mut self, probes: &[Probe], dnat: &[DnatRule]) -> Result<Vec<bool>, String> {
        self.prime_conntrack(probes)?;
        self.ruleset_id += 1;
        let id = self.ruleset_id;
        let mut batches = vec![String::new(); ZONES.len()];
        for (i, p) in probes.iter().enumerate() {
            let batch = batches.get_mut(p.from.index()).ok_or("zone index")?;
            let _ = writeln!(
                batch,
                "S {} {} {} {} {} {id} {i}",
                p.proto, p.src, p.dst, p.sport, p.dport
            );
        }
        for (helper, batch) in self.helpers.iter_mut().zip(&batches) {
            helper.send(&format!("{batch}F\n"))?;
        }
        for helper in &mut self.helpers {
            let line = helper.read_line()?;
            if line != "OK" {
                return Err(format!("probe send failed: {line}"));
            }
        }
        let mut arrived = vec![false; probes.len()];
        for (zone, helper) in ZONES.iter().zip(&mut self.helpers) {
            helper.send(&format!("R {id}\n"))?;
            loop {
                let line = helper.read_line()?;
                if line == "E" {
                    break;
                }
                let index: usize = line
                    .strip_prefix("G ")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("probe helper said {line:?}"))?;
                let p = probes.get(index).ok_or("probe index out of range")?;
                // An arrival counts only where the firewall routes the probe.
                if p.translated(dnat).and_then(route) == Some(*zone)
                    && let Some(a) = arrived.get_mut(index)
                {
                    *a = true;
                }
            }
        }
        Ok(arrived)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for helper in &mut self.helpers {
            let _ = helper.child.kill();
            let _ = helper.child.wait();
        }
        for ns in &self.namespaces {
            let _ = run(&["ip", "netns", "del", ns], None);
        }
        // A link still in the root namespace (setup failed before moving it).
        for link in &self.temp_links {
            let _ = run(&["ip", "link", "del", link], None);
        }
    }
}

fn route_is_onlink(h: Ipv4Addr) -> bool {
    h.octets()[..3] != [198, 51, 100]
}

/// Deletes namespaces and links of earlier runs whose process is gone.
fn remove_leftovers() {
    let dead = |pid: &str| !Path::new(&format!("/proc/{pid}")).exists();
    if let Ok(list) = run(&["ip", "netns", "list"], None) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix("mlo-") else {
                continue;
            };
            if rest.split('-').next().is_some_and(dead) {
                let _ = run(&["ip", "netns", "del", name], None);
            }
        }
    }
    if let Ok(list) = run(&["ip", "-o", "link", "show"], None) {
        for name in list.lines().filter_map(|l| l.split(": ").nth(1)) {
            let name = name.split('@').next().unwrap_or(name);
            let Some(rest) = name.strip_prefix("mlo") else {
                continue;
            };
            if rest.split('x').next().is_some_and(dead) {
                let _ = run(&["ip", "link", "del", name], None);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The generator

/// xorshift64*: small, seeded, good enough to vary rulesets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

/// A DNAT rule the generator wrote, kept so probes know where the firewall sends them.
#[derive(Clone, Debug)]
struct DnatRule {
    in_zone: Option<Zone>,
    proto: u8,
    dport: u16,
    to: Ipv4Addr,
    /// The rewritten destination port, if the rule names one.
    to_port: Option<u16>,
}

/// A ruleset to test, with what its probes should aim at.
struct Ruleset {
    name: String,
    text: String,
    dnat: Vec<DnatRule>,
    probes: usize,
}

const PORTS: &[u16] = &[
    1, 25, 53, 80, 88, 135, 137, 138, 139, 389, 443, 445, 500, 1023, 1024, 1026, 3268, 8080, 40000,
    65535,
];
const CIDRS: &[&str] = &[
    "192.168.10.5",
    "192.168.10.5/32",
    "192.168.10.0/24",
    "192.168.10.0/25",
    "192.168.0.0/16",
    "10.0.0.0/24",
    "10.0.0.10",
    "10.0.0.16/28",
    "10.0.0.20/31",
    "10.0.0.0/8",
    "203.0.113.0/24",
    "203.0.113.2",
    "198.51.100.25/32",
    "198.51.100.0/24",
    "198.51.100.0/25",
    "0.0.0.0/0",
];
const IFACES: &[&str] = &[
    "eth0", "eth1", "eth2", "eth+", "et+", "eth1+", "+", "ppp0", "ppp+", "eth3",
];
const STATES: &[&str] = &[
    "-m conntrack --ctstate NEW",
    "-m conntrack --ctstate ESTABLISHED",
    "-m conntrack --ctstate RELATED,ESTABLISHED",
    "-m conntrack --ctstate NEW,ESTABLISHED",
    "-m conntrack ! --ctstate NEW",
    "-m conntrack ! --ctstate ESTABLISHED",
    "-m state --state NEW",
    "-m state --state ESTABLISHED,RELATED",
    "-m conntrack --ctstate INVALID",
    "-m state --state INVALID,NEW",
];

/// Where a rule sits: which options and targets the kernel allows there.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// filter FORWARD or a user chain reached from it.
    Filter,
    /// mangle FORWARD.
    MangleForward,
    /// mangle or raw PREROUTING: no `-o` (the route is not known yet).
    Prerouting { raw: bool },
    /// mangle POSTROUTING: no `-i` (iptables refuses it there).
    Postrouting,
}

fn port_list(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    let mut items = Vec::new();
    for _ in 0..n {
        let a = rng.pick(PORTS);
        let b = rng.pick(PORTS);
        // libxt_multiport wants a range's ends strictly increasing ("80:80" is refused).
        if a != b && rng.chance(30) {
            items.push(format!("{}:{}", a.min(b), a.max(b)));
        } else {
            items.push(a.to_string());
        }
    }
    items.join(",")
}

fn port_range(rng: &mut Rng) -> String {
    let a = rng.pick(PORTS);
    if rng.chance(35) {
        let b = rng.pick(PORTS);
        format!("{}:{}", a.min(b), a.max(b))
    } else {
        a.to_string()
    }
}

fn not(rng: &mut Rng, percent: u64) -> &'static str {
    if rng.chance(percent) { "! " } else { "" }
}

/// The match part of one rule; returns it and the protocol it names, if tcp or udp.
fn gen_matches(rng: &mut Rng, place: Place) -> (String, Option<&'static str>) {
    let mut m = String::new();
    let mut l4 = None;
    if rng.chance(60) {
        let p = rng.pick(&[
            "tcp", "tcp", "udp", "udp", "esp", "ah", "!tcp", "!udp", "6", "17", "50", "all",
        ]);
        if let Some(p) = p.strip_prefix('!') {
            let _ = write!(m, " ! -p {p}");
        } else {
            let _ = write!(m, " -p {p}");
            if p == "tcp" || p == "udp" {
                l4 = Some(p);
            }
        }
    }
    for flag in ["-s", "-d"] {
        if rng.chance(30) {
            let cidr = rng.pick(CIDRS);
            // iptables-nft refuses a negated /0 (RULE_APPEND: Invalid argument), legacy
            // takes it; it never matches, so leave it out.
            let neg = if cidr.ends_with("/0") {
                ""
            } else {
                not(rng, 25)
            };
            let _ = write!(m, " {neg}{flag} {cidr}");
        }
    }
    if rng.chance(8) {
        let (lo, hi) = rng.pick(&[
            ("10.0.0.5", "10.0.0.15"),
            ("10.0.0.20", "10.0.0.200"),
            ("192.168.10.5", "192.168.10.6"),
            ("198.51.100.1", "203.0.113.9"),
        ]);
        let dir = rng.pick(&["src", "dst"]);
        let _ = write!(m, " -m iprange {}--{dir}-range {lo}-{hi}", not(rng, 30));
    }
    if place != Place::Postrouting && rng.chance(30) {
        let _ = write!(m, " {}-i {}", not(rng, 25), rng.pick(IFACES));
    }
    if place != (Place::Prerouting { raw: false })
        && place != (Place::Prerouting { raw: true })
        && rng.chance(30)
    {
        let _ = write!(m, " {}-o {}", not(rng, 25), rng.pick(IFACES));
    }
    if let Some(p) = l4
        && rng.chance(65)
    {
        let module = if rng.chance(50) {
            format!(" -m {p}")
        } else {
            String::new()
        };
        match rng.below(8) {
            0 | 1 => {
                let _ = write!(m, "{module} {}--dport {}", not(rng, 20), port_range(rng));
            }
            7 => {
                let _ = write!(
                    m,
                    "{module} {}--sport {} {}--dport {}",
                    not(rng, 20),
                    port_range(rng),
                    not(rng, 20),
                    port_range(rng)
                );
            }
            2 => {
                let _ = write!(m, "{module} {}--sport {}", not(rng, 20), port_range(rng));
            }
            3 | 4 => {
                let _ = write!(
                    m,
                    " -m multiport {}--dports {}",
                    not(rng, 25),
                    port_list(rng)
                );
            }
            5 => {
                let _ = write!(
                    m,
                    " -m multiport {}--sports {}",
                    not(rng, 25),
                    port_list(rng)
                );
            }
            _ => {
                let _ = write!(
                    m,
                    " -m multiport {}--ports {}",
                    not(rng, 25),
                    port_list(rng)
                );
            }
        }
    }
    let raw = place == Place::Prerouting { raw: true };
    if rng.chance(if raw { 30 } else { 15 }) {
        let _ = write!(m, " {}", rng.pick(STATES));
    }
    // A match mislint does not model: its rules must come out as "may".
    if rng.chance(2) {
        let _ = write!(m, " -m length --length 0:1000");
    }
    (m, l4)
}

/// One rule line of `chain`; `callees` are the chains it may jump or go to.
fn gen_rule(rng: &mut Rng, chain: &str, place: Place, callees: &[String]) -> String {
    let (matches, l4) = gen_matches(rng, place);
    let target = loop {
        let t = match rng.below(20) {
            0..=4 => "-j ACCEPT".to_string(),
            5..=8 => "-j DROP".to_string(),
            9..=10 if place == Place::Filter => match (l4, rng.below(3)) {
                (Some("tcp"), 0) if !matches.contains("! -p") => {
                    "-j REJECT --reject-with tcp-reset".to_string()
                }
                (_, 1) => "-j REJECT --reject-with icmp-port-unreachable".to_string(),
                _ => "-j REJECT".to_string(),
            },
            11 => "-j LOG --log-prefix \"mlo: \"".to_string(),
            12 => format!("-j MARK --set-mark 0x{:x}", 1 + rng.below(255)),
            13 => "-j RETURN".to_string(),
            14..=16 if !callees.is_empty() => format!("-j {}", rng.pick(callees)),
            17..=18 if !callees.is_empty() => format!("-g {}", rng.pick(callees)),
            19 => "-m comment --comment \"oracle rule\" -j ACCEPT".to_string(),
            _ => continue,
        };
        break t;
    };
    format!("-A {chain}{matches} {target}\n")
}

fn gen_ruleset(rng: &mut Rng, index: usize, dnat_on: bool) -> Ruleset {
    let mut text = String::new();
    let mut dnat = Vec::new();
    if rng.chance(12) {
        text.push_str("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        for _ in 0..1 + rng.below(3) {
            text.push_str(&gen_rule(
                rng,
                "PREROUTING",
                Place::Prerouting { raw: true },
                &[],
            ));
        }
        text.push_str("COMMIT\n");
    }
    if rng.chance(20) {
        let fwd = if rng.chance(20) { "DROP" } else { "ACCEPT" };
        let _ = write!(
            text,
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD {fwd} [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        );
        for _ in 0..rng.below(3) {
            text.push_str(&gen_rule(
                rng,
                "PREROUTING",
                Place::Prerouting { raw: false },
                &[],
            ));
        }
        for _ in 0..1 + rng.below(3) {
            text.push_str(&gen_rule(rng, "FORWARD", Place::MangleForward, &[]));
        }
        for _ in 0..rng.below(2) {
            text.push_str(&gen_rule(rng, "POSTROUTING", Place::Postrouting, &[]));
        }
        text.push_str("COMMIT\n");
    }
    if dnat_on && rng.chance(50) {
        text.push_str("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
        for _ in 0..1 + rng.below(3) {
            let in_zone = if rng.chance(60) {
                Some(Zone::Public)
            } else {
                None
            };
            let p = rng.pick(&[proto::TCP, proto::UDP]);
            let dport = rng.pick(PORTS);
            let to_zone = rng.pick(&[Zone::Perimeter, Zone::Internal]);
            let to = rng.pick(to_zone.hosts());
            let to_port = rng.chance(50).then(|| rng.pick(PORTS));
            let port = to_port.map_or(String::new(), |p| format!(":{p}"));
            let iface = in_zone.map_or(String::new(), |z| format!(" -i {}", z.fw_iface()));
            let _ = writeln!(
                text,
                "-A PREROUTING{iface} -d {DNAT_VIP}/32 -p {} --dport {dport} -j DNAT --to-destination {to}{port}",
                proto::name(p).unwrap_or("tcp")
            );
            dnat.push(DnatRule {
                in_zone,
                proto: p,
                dport,
                to,
                to_port,
            });
        }
        text.push_str("COMMIT\n");
    }
    let policy = if rng.chance(50) { "DROP" } else { "ACCEPT" };
    let users: Vec<String> = (0..rng.below(4)).map(|i| format!("U{i}")).collect();
    let _ = write!(
        text,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD {policy} [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    );
    for u in &users {
        let _ = writeln!(text, ":{u} - [0:0]");
    }
    // The usual companions of DNAT: filter rules about the translated destination, and
    // `--ctstate DNAT`.
    for d in &dnat {
        if rng.chance(60) {
            let verdict = rng.pick(&["ACCEPT", "DROP"]);
            let _ = writeln!(
                text,
                "-A FORWARD -d {} -p {} --dport {} -j {verdict}",
                d.to,
                proto::name(d.proto).unwrap_or("tcp"),
                d.to_port.unwrap_or(d.dport)
            );
        }
    }
    if !dnat.is_empty() && rng.chance(30) {
        text.push_str("-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT\n");
    }
    for _ in 0..1 + rng.below(8) {
        text.push_str(&gen_rule(rng, "FORWARD", Place::Filter, &users));
    }
    // User chains call only later ones: iptables-restore refuses loops (ELOOP).
    for (i, u) in users.iter().enumerate() {
        let callees = users.get(i + 1..).unwrap_or(&[]);
        for _ in 0..rng.below(6) {
            text.push_str(&gen_rule(rng, u, Place::Filter, callees));
        }
    }
    text.push_str("COMMIT\n");
    Ruleset {
        name: format!("generated #{index}"),
        text,
        dnat,
        probes: PROBES_PER_GENERATED,
    }
}

/// Port numbers a ruleset mentions, each with its neighbours: where verdicts change.
fn mentioned_ports(text: &str) -> Vec<u16> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if !(w.ends_with("port") || w.ends_with("ports") || *w == "--to-destination") {
                continue;
            }
            let Some(arg) = words.get(i + 1) else {
                continue;
            };
            for part in arg.split([',', ':']) {
                if let Ok(p) = part.parse::<u16>() {
                    out.insert(p);
                    out.insert(p.saturating_sub(1).max(1));
                    out.insert(p.saturating_add(1));
                }
            }
        }
    }
    out.into_iter().collect()
}

fn gen_probes(rng: &mut Rng, ruleset: &Ruleset) -> Vec<Probe> {
    let ports = mentioned_ports(&ruleset.text);
    let dnat_ports: Vec<(u8, u16)> = ruleset.dnat.iter().map(|d| (d.proto, d.dport)).collect();
    let mut probes: Vec<Probe> = Vec::with_capacity(ruleset.probes);
    let mut tuples = BTreeSet::new();
    let mut flows = BTreeSet::new();
    let established = ruleset.probes / 8;
    while probes.len() < ruleset.probes {
        let state = if probes.len() < established {
            ct::ESTABLISHED
        } else {
            ct::NEW
        };
        let from = rng.pick(&ZONES);
        let to = rng.pick(&ZONES);
        let src = if rng.chance(85) {
            rng.pick(from.sources())
        } else {
            let other = rng.pick(&ZONES);
            rng.pick(other.sources())
        };
        // ESTABLISHED probes are UDP, ESP or AH: a SYN would not fit an established
        // TCP flow, and conntrack's TCP window tracking would judge any other segment.
        let proto = match rng.below(20) {
            0..=8 if state == ct::NEW => proto::TCP,
            0..=15 => proto::UDP,
            16..=17 => proto::ESP,
            _ => proto::AH,
        };
        let mut dst = rng.pick(to.hosts());
        let mut dport = if !ports.is_empty() && rng.chance(70) {
            rng.pick(&ports)
        } else if rng.chance(70) {
            rng.pick(PORTS)
        } else {
            1 + rng.below(65535) as u16
        };
        if !dnat_ports.is_empty() && rng.chance(30) && proto::has_ports(proto) && state == ct::NEW {
            dst = DNAT_VIP;
            if rng.chance(80) {
                dport = rng.pick(&dnat_ports).1;
            }
        } else if to == from {
            continue;
        }
        let sport = if !proto::has_ports(proto) {
            256 + probes.len() as u16
        } else if !ports.is_empty() && rng.chance(20) {
            rng.pick(&ports)
        } else {
            32768 + rng.below(28000) as u16
        };
        let probe = Probe {
            from,
            proto,
            src,
            dst,
            sport,
            dport: if proto::has_ports(proto) { dport } else { 0 },
            state,
        };
        // A DNAT miss is delivered to the firewall itself: not a forwarding question.
        if !probe
            .translated(&ruleset.dnat)
            .and_then(route)
            .is_some_and(|z| z != from)
        {
            continue;
        }
        // The reverse of an earlier probe's tuple is a reply to it in conntrack's eyes
        // (ESTABLISHED), not NEW. ESP and AH have no ports: conntrack tracks them by the
        // address pair alone.
        let key = |a: Ipv4Addr, b: Ipv4Addr, x: u16, y: u16| {
            let ports = if proto::has_ports(proto) {
                (x, y)
            } else {
                (0, 0)
            };
            (proto, a, b, ports)
        };
        let forward = key(probe.src, probe.dst, probe.sport, probe.dport);
        let reverse = key(probe.dst, probe.src, probe.dport, probe.sport);
        // A tuple entered as an established flow makes every packet of it, either way,
        // ESTABLISHED; and one flow is entered once.
        if tuples.contains(&reverse) || flows.contains(&forward) || flows.contains(&reverse) {
            continue;
        }
        if state == ct::ESTABLISHED {
            flows.insert(forward);
        } else {
            tuples.insert(forward);
        }
        probes.push(probe);
    }
    probes
}

fn dnat_enabled() -> bool {
    GENERATE_DNAT || std::env::var("MISLINT_ORACLE_DNAT").is_ok_and(|v| v == "1")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fixtures() -> Vec<Ruleset> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/iptables");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "rules"));
    paths.sort();
    paths
        .into_iter()
        .map(|p| Ruleset {
            name: format!(
                "fixture {}",
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
            text: std::fs::read_to_string(&p).expect("fixture readable"),
            dnat: Vec::new(),
            probes: PROBES_PER_FIXTURE,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The test

/// A probe on which the kernel and mislint disagree.
struct Disagreement {
    ruleset: String,
    text: String,
    probe: Probe,
    kernel: bool,
    mislint: Expect,
}

#[derive(Default)]
struct Tally {
    rulesets: usize,
    probes: usize,
    agreements: usize,
    may: usize,
    may_arrived: usize,
    arrived: usize,
    established: usize,
    translated: usize,
    rechecked: usize,
}

/// Loads `text`, fires `probes`, and compares with mislint.
fn check_ruleset(
    lab: &mut Lab,
    ruleset: &Ruleset,
    probes: &[Probe],
    tally: &mut Tally,
    found: &mut Vec<Disagreement>,
) -> Result<(), String> {
    lab.load(&ruleset.text).map_err(|e| {
        format!(
            "{}: the kernel refused the ruleset: {e}\n{}",
            ruleset.name, ruleset.text
        )
    })?;
    let expect = mislint_verdicts(&ruleset.text, probes, &ruleset.dnat)
        .map_err(|e| format!("{}: {e}\n{}", ruleset.name, ruleset.text))?;
    let mut arrived = lab.fire(probes, &ruleset.dnat)?;
    // A capture never invents an arrival (the marker names the probe), but a loaded
    // machine could deliver a probe after the quiet-wire wait. Probes that disagree get
    // a second, lone try; an arrival in either counts.
    let suspects: Vec<usize> = (0..probes.len())
        .filter(|&i| {
            matches!(
                (expect.get(i), arrived.get(i)),
                (Some(Expect::Permit), Some(false)) | (Some(Expect::Deny), Some(true))
            )
        })
        .collect();
    if !suspects.is_empty() {
        let again: Vec<Probe> = suspects
            .iter()
            .filter_map(|&i| probes.get(i).cloned())
            .collect();
        let second = lab.fire(&again, &ruleset.dnat)?;
        for (&i, a) in suspects.iter().zip(second) {
            if let Some(first) = arrived.get_mut(i) {
                *first |= a;
            }
        }
        tally.rechecked += suspects.len();
    }
    tally.rulesets += 1;
    for ((p, e), a) in probes.iter().zip(expect).zip(arrived) {
        tally.probes += 1;
        tally.arrived += usize::from(a);
        tally.established += usize::from(p.state == ct::ESTABLISHED);
        tally.translated += usize::from(p.dst == DNAT_VIP);
        match (e, a) {
            (Expect::May, a) => {
                tally.may += 1;
                tally.may_arrived += usize::from(a);
            }
            (Expect::Permit, true) | (Expect::Deny, false) => tally.agreements += 1,
            _ => found.push(Disagreement {
                ruleset: ruleset.name.clone(),
                text: ruleset.text.clone(),
                probe: p.clone(),
                kernel: a,
                mislint: e,
            }),
        }
    }
    Ok(())
}

/// Whether the kernel and mislint still disagree on `probe` under `text`.
fn still_disagrees(lab: &mut Lab, text: &str, d: &Disagreement, dnat: &[DnatRule]) -> bool {
    let probes = [d.probe.clone()];
    if lab.load(text).is_err() {
        return false;
    }
    let (Ok(expect), Ok(arrived)) = (
        mislint_verdicts(text, &probes, dnat),
        lab.fire(&probes, dnat),
    ) else {
        return false;
    };
    expect.first() == Some(&d.mislint) && arrived.first() == Some(&d.kernel)
}

/// Greedily drops rule lines (`-A …`) while the disagreement persists.
fn minimise(lab: &mut Lab, d: &Disagreement, dnat: &[DnatRule]) -> String {
    let mut lines: Vec<String> = d
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let mut attempts = 0;
    let mut changed = true;
    while changed && attempts < MINIMISE_ATTEMPTS {
        changed = false;
        let mut i = 0;
        while i < lines.len() && attempts < MINIMISE_ATTEMPTS {
            // DNAT lines stay: the probes' routes were computed from them.
            if !lines[i].starts_with("-A ") || lines[i].contains("-j DNAT") {
                i += 1;
                continue;
            }
            let mut trial = lines.clone();
            trial.remove(i);
            attempts += 1;
            if still_disagrees(lab, &(trial.join("\n") + "\n"), d, dnat) {
                lines = trial;
                changed = true;
            } else {
                i += 1;
            }
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn kernel_agrees_with_mislint() {
    let skip = std::env::var("MISLINT_SKIP_KERNEL_ORACLE").is_ok_and(|v| v == "1");
    let cannot = |why: String| {
        if skip {
            eprintln!("kernel oracle SKIPPED (MISLINT_SKIP_KERNEL_ORACLE=1): {why}");
        } else {
            panic!(
                "kernel oracle cannot run: {why}\n\
                 It needs root, iproute2, iptables and python3 (see .ci/oracle-setup.sh).\n\
                 Local non-root runs may set MISLINT_SKIP_KERNEL_ORACLE=1; CI never does."
            );
        }
    };
    let restore = match preflight() {
        Ok(r) => r,
        Err(why) => return cannot(why),
    };
    let started = Instant::now();
    let mut lab = match Lab::new(restore.clone()) {
        Ok(lab) => lab,
        Err(why) => return cannot(format!("could not build the namespace lab: {why}")),
    };
    let setup = started.elapsed();
    let version = run(&[&restore, "--version"], None).unwrap_or_default();

    let dnat_on = dnat_enabled();
    let count = env_number("MISLINT_ORACLE_RULESETS", GENERATED_RULESETS as u64) as usize;
    let seed = env_number("MISLINT_ORACLE_SEED", SEED);
    let mut rng = Rng(seed | 1);
    let mut rulesets = fixtures();
    let fixture_count = rulesets.len();
    for i in 0..count {
        rulesets.push(gen_ruleset(&mut rng, i, dnat_on));
    }

    let mut tally = Tally::default();
    let mut found = Vec::new();
    for ruleset in &rulesets {
        let probes = gen_probes(&mut rng, ruleset);
        if let Err(e) = check_ruleset(&mut lab, ruleset, &probes, &mut tally, &mut found) {
            panic!("kernel oracle: {e}");
        }
    }
    let elapsed = started.elapsed();

    let mut report = String::new();
    let mut seen_rulesets = BTreeSet::new();
    for d in &found {
        if !seen_rulesets.insert(d.ruleset.clone()) || seen_rulesets.len() > 5 {
            continue;
        }
        let dnat = rulesets
            .iter()
            .find(|r| r.name == d.ruleset)
            .map(|r| r.dnat.clone())
            .unwrap_or_default();
        let small = minimise(&mut lab, d, &dnat);
        let _ = write!(
            report,
            "\n--- {}: {}: kernel {}, mislint {:?}\nminimised ruleset:\n{small}",
            d.ruleset,
            d.probe.describe(),
            if d.kernel {
                "delivered it"
            } else {
                "dropped it"
            },
            d.mislint
        );
        let _ = d.text.len();
    }
    drop(lab);

    println!(
        "kernel oracle: {} ({}), seed {seed:#x}, DNAT {}\n\
         kernel oracle: {} rulesets ({fixture_count} fixtures, {count} generated), {} probes \
         ({} delivered, {} ESTABLISHED, {} to the DNAT address), {} agreements, {} may-verdicts \
         ({} of them delivered), {} disagreements ({} probes tried twice)\n\
         kernel oracle: {:.1}s ({:.1}s lab setup)",
        restore,
        version.trim(),
        if dnat_on { "on" } else { "off" },
        tally.rulesets,
        tally.probes,
        tally.arrived,
        tally.established,
        tally.translated,
        tally.agreements,
        tally.may,
        tally.may_arrived,
        found.len(),
        tally.rechecked,
        elapsed.as_secs_f64(),
        setup.as_secs_f64(),
    );
    assert!(
        found.is_empty(),
        "the kernel and mislint disagree on {} probes in {} rulesets; first ones:{report}",
        found.len(),
        found
            .iter()
            .map(|d| &d.ruleset)
            .collect::<BTreeSet<_>>()
            .len()
    );
}
