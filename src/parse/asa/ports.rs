//! Cisco's own literal names for ports, IP protocols and ICMP types, as the ASA parser
//! resolves them. The grammar looks names up here; nothing else in mislint should.
//!
//! Source: Cisco ASA 9.x General Operations CLI Configuration Guide, chapter
//! "Addresses, Protocols, and Ports", tables "Protocols and Applications", "TCP and UDP
//! Ports" and "ICMP Types" (the same tables appear in the 8.x configuration guides and,
//! for the older subset, in the FWSM command reference appendix "Port and Protocol
//! Values"). The values are the ASA's, not IANA's: `kerberos` is 750 (Kerberos IV),
//! not 88; `dnsix` is 195; `radius` is 1645; `sqlnet` is 1521. Which transport a name is
//! defined for follows the table's "TCP or UDP?" column: `ldap` is TCP only, so a UDP
//! LDAP rule must say `eq 389`.

/// Which transport protocols Cisco's table defines a port name for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortProto {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// Both TCP and UDP.
    Both,
}

impl PortProto {
    /// True if the name is defined for the IP protocol `proto` (6 or 17).
    pub fn allows(self, proto: u8) -> bool {
        matches!(
            (self, proto),
            (PortProto::Both, 6 | 17) | (PortProto::Tcp, 6) | (PortProto::Udp, 17)
        )
    }

    /// Lowercase description for messages.
    pub fn name(self) -> &'static str {
        match self {
            PortProto::Tcp => "tcp",
            PortProto::Udp => "udp",
            PortProto::Both => "tcp and udp",
        }
    }
}

/// One row of Cisco's "TCP and UDP Ports" table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortName {
    /// The literal as written in a config.
    pub name: &'static str,
    /// The port it stands for on the ASA.
    pub port: u16,
    /// The transports the literal is defined for.
    pub proto: PortProto,
}

const fn row(name: &'static str, proto: PortProto, port: u16) -> PortName {
    PortName { name, port, proto }
}

use PortProto::{Both, Tcp, Udp};

/// Cisco ASA port literals (ASA 9.x "TCP and UDP Ports" table). `rpc` is the table's
/// alias of `sunrpc`; `http` and `www` are both port 80.
pub const PORT_NAMES: &[PortName] = &[
    row("aol", Tcp, 5190),
    row("bgp", Tcp, 179),
    row("biff", Udp, 512),
    row("bootpc", Udp, 68),
    row("bootps", Udp, 67),
    row("chargen", Tcp, 19),
    row("cifs", Both, 3020),
    row("citrix-ica", Tcp, 1494),
    row("cmd", Tcp, 514),
    row("ctiqbe", Tcp, 2748),
    row("daytime", Tcp, 13),
    row("discard", Both, 9),
    row("dnsix", Udp, 195),
    row("domain", Both, 53),
    row("echo", Both, 7),
    row("exec", Tcp, 512),
    row("finger", Tcp, 79),
    row("ftp", Tcp, 21),
    row("ftp-data", Tcp, 20),
    row("gopher", Tcp, 70),
    row("h323", Tcp, 1720),
    row("hostname", Tcp, 101),
    row("http", Both, 80),
    row("https", Tcp, 443),
    row("ident", Tcp, 113),
    row("imap4", Tcp, 143),
    row("irc", Tcp, 194),
    row("isakmp", Udp, 500),
    row("kerberos", Both, 750),
    row("klogin", Tcp, 543),
    row("kshell", Tcp, 544),
    row("ldap", Tcp, 389),
    row("ldaps", Tcp, 636),
    row("login", Tcp, 513),
    row("lotusnotes", Tcp, 1352),
    row("lpd", Tcp, 515),
    row("mobile-ip", Udp, 434),
    row("nameserver", Udp, 42),
    row("netbios-dgm", Udp, 138),
    row("netbios-ns", Udp, 137),
    row("netbios-ssn", Tcp, 139),
    row("nfs", Both, 2049),
    row("nntp", Tcp, 119),
    row("ntp", Udp, 123),
    row("pcanywhere-data", Tcp, 5631),
    row("pcanywhere-status", Udp, 5632),
    row("pim-auto-rp", Both, 496),
    row("pop2", Tcp, 109),
    row("pop3", Tcp, 110),
    row("pptp", Tcp, 1723),
    row("radius", Udp, 1645),
    row("radius-acct", Udp, 1646),
    row("rip", Udp, 520),
    row("rpc", Both, 111),
    row("rsh", Tcp, 514),
    row("rtsp", Tcp, 554),
    row("secureid-udp", Udp, 5510),
    row("sip", Both, 5060),
    row("smtp", Tcp, 25),
    row("snmp", Udp, 161),
    row("snmptrap", Udp, 162),
    row("sqlnet", Tcp, 1521),
    row("ssh", Tcp, 22),
    row("sunrpc", Both, 111),
    row("syslog", Udp, 514),
    row("tacacs", Both, 49),
    row("talk", Both, 517),
    row("telnet", Tcp, 23),
    row("tftp", Udp, 69),
    row("time", Udp, 37),
    row("uucp", Tcp, 540),
    row("vxlan", Udp, 4789),
    row("who", Udp, 513),
    row("whois", Tcp, 43),
    row("www", Both, 80),
    row("xdmcp", Udp, 177),
];

/// The table row of a port literal (case-insensitive), if Cisco defines it.
pub fn port_by_name(name: &str) -> Option<&'static PortName> {
    PORT_NAMES
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
}

/// An IP protocol as an ACE or service object names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoName {
    /// `ip`: every protocol.
    Any,
    /// One protocol number.
    Num(u8),
}

/// ASA protocol literals ("Protocols and Applications" table). `ipsec` is ESP and
/// `pptp` is GRE, as on the ASA; `sctp` exists from 9.5.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("eigrp", 88),
    ("esp", 50),
    ("gre", 47),
    ("icmp", 1),
    ("icmp6", 58),
    ("igmp", 2),
    ("igrp", 9),
    ("ipinip", 4),
    ("ipsec", 50),
    ("nos", 94),
    ("ospf", 89),
    ("pcp", 108),
    ("pim", 103),
    ("pptp", 47),
    ("sctp", 132),
    ("snp", 109),
    ("tcp", 6),
    ("udp", 17),
];

/// A protocol literal or number (0–255) as the ASA accepts it.
pub fn protocol_by_name(name: &str) -> Option<ProtoName> {
    if name.eq_ignore_ascii_case("ip") {
        return Some(ProtoName::Any);
    }
    if let Ok(n) = name.parse::<u8>() {
        return Some(ProtoName::Num(n));
    }
    PROTOCOLS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| ProtoName::Num(v))
}

/// ICMP (IPv4) type literals ("ICMP Types" table).
const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("alternate-address", 6),
    ("echo", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("information-request", 15),
    ("information-reply", 16),
    ("mask-request", 17),
    ("mask-reply", 18),
    ("traceroute", 30),
    ("conversion-error", 31),
    ("mobile-redirect", 32),
];

/// ICMPv6 type literals the ASA accepts after `icmp6`.
const ICMP6_TYPES: &[(&str, u8)] = &[
    ("unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo", 128),
    ("echo-reply", 129),
    ("membership-query", 130),
    ("membership-report", 131),
    ("membership-reduction", 132),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbor-solicitation", 135),
    ("neighbor-advertisement", 136),
    ("neighbor-redirect", 137),
    ("router-renumbering", 138),
];

/// The ICMP type for a literal or number; `v6` selects the ICMPv6 table.
pub fn icmp_type_by_name(name: &str, v6: bool) -> Option<u8> {
    if let Ok(n) = name.parse::<u8>() {
        return Some(n);
    }
    let table = if v6 { ICMP6_TYPES } else { ICMP_TYPES };
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kerberos_is_750_on_the_asa() {
        let k = port_by_name("kerberos").map(|p| p.port);
        assert_eq!(k, Some(750));
    }

    #[test]
    fn well_known_literals() {
        let port = |n: &str| port_by_name(n).map(|p| p.port);
        assert_eq!(port("domain"), Some(53));
        assert_eq!(port("www"), Some(80));
        assert_eq!(port("http"), Some(80));
        assert_eq!(port("https"), Some(443));
        assert_eq!(port("ldap"), Some(389));
        assert_eq!(port("ldaps"), Some(636));
        assert_eq!(port("smtp"), Some(25));
        assert_eq!(port("netbios-ns"), Some(137));
        assert_eq!(port("netbios-dgm"), Some(138));
        assert_eq!(port("netbios-ssn"), Some(139));
        assert_eq!(port("isakmp"), Some(500));
        assert_eq!(port("sunrpc"), Some(111));
        assert_eq!(port("rpc"), Some(111));
        assert_eq!(port("pptp"), Some(1723));
        assert_eq!(port("WWW"), Some(80));
        assert_eq!(port("dns"), None, "ASA has no `dns` port literal");
    }

    #[test]
    fn transports_follow_the_table() {
        let proto = |n: &str| port_by_name(n).map(|p| p.proto);
        assert_eq!(proto("netbios-ns"), Some(Udp));
        assert_eq!(proto("netbios-ssn"), Some(Tcp));
        assert_eq!(proto("ldap"), Some(Tcp));
        assert_eq!(proto("domain"), Some(Both));
        assert!(Tcp.allows(6) && !Tcp.allows(17));
        assert!(Both.allows(17) && !Both.allows(1));
    }

    #[test]
    fn table_has_no_duplicate_names() {
        for (i, a) in PORT_NAMES.iter().enumerate() {
            assert!(PORT_NAMES.iter().skip(i + 1).all(|b| b.name != a.name));
        }
    }

    #[test]
    fn protocols_and_icmp_types() {
        assert_eq!(protocol_by_name("ip"), Some(ProtoName::Any));
        assert_eq!(protocol_by_name("esp"), Some(ProtoName::Num(50)));
        assert_eq!(protocol_by_name("ipsec"), Some(ProtoName::Num(50)));
        assert_eq!(protocol_by_name("pptp"), Some(ProtoName::Num(47)));
        assert_eq!(protocol_by_name("111"), Some(ProtoName::Num(111)));
        assert_eq!(protocol_by_name("256"), None);
        assert_eq!(protocol_by_name("some_weird_protocol"), None);
        assert_eq!(icmp_type_by_name("echo", false), Some(8));
        assert_eq!(icmp_type_by_name("echo", true), Some(128));
        assert_eq!(icmp_type_by_name("bogus", false), None);
    }
}
