//! Which interfaces and addresses belong to which zone.
//!
//! The user's mapping (`--zone eth1=perimeter`, `--zone 10.0.0.0/8=internal`, the site
//! file) always wins; then the dialect's hint from names and descriptions (ASA `inside`,
//! pfSense `lan`); iptables names carry no meaning, so there only the user can say. The
//! addresses of a zone are what the user mapped plus the networks of its interfaces; the
//! public zone, being "the rest of the world", is everything the other zones do not hold.

use crate::graph::sets::addr;
use crate::graph::{IntervalSet, RuleGraph, Zone};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a user mapping names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneKey {
    /// An interface name (iptables `eth1`, ASA nameif, pfSense `opt1`); a trailing `+`
    /// maps every interface with that prefix.
    Iface(String),
    /// An address range, with the text the user wrote.
    Net(IntervalSet, String),
}

/// One user mapping, `KEY=ZONE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneMapping {
    /// What is mapped.
    pub key: ZoneKey,
    /// To which zone.
    pub zone: Zone,
}

impl ZoneMapping {
    /// Parses `eth1=perimeter`, `10.0.0.0/24=internal` or `192.168.1.5=perimeter`.
    pub fn parse(text: &str) -> Result<ZoneMapping, String> {
        let (key, zone) = text
            .rsplit_once('=')
            .ok_or_else(|| format!("`{text}` is not KEY=ZONE"))?;
        let zone = Zone::by_name(zone.trim())
            .ok_or_else(|| format!("`{zone}` is not a zone; use public, perimeter or internal"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{text}` names no interface or network"));
        }
        Ok(ZoneMapping {
            key: parse_zone_key(key),
            zone,
        })
    }
}

fn parse_zone_key(key: &str) -> ZoneKey {
    if let Some(set) = parse_network(key) {
        return ZoneKey::Net(set, key.to_string());
    }
    ZoneKey::Iface(key.to_string())
}

/// Parses `A`, `A/len` or `A-B` as an address set.
pub fn parse_network(text: &str) -> Option<IntervalSet> {
    if let Some((a, b)) = text.split_once('-') {
        let lo: IpAddr = a.trim().parse().ok()?;
        let hi: IpAddr = b.trim().parse().ok()?;
        return addr::span(lo, hi);
    }
    match text.split_once('/') {
        Some((a, len)) => addr::cidr(a.parse().ok()?, len.parse().ok()?),
        None => {
            let a: IpAddr = text.parse().ok()?;
            let len = if a.is_ipv4() { 32 } else { 128 };
            addr::cidr(a, len)
        }
    }
}

/// How an interface got its zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneSource {
    /// The user mapped it.
    User,
    /// Its name or description suggested it.
    Hint,
    /// Its network lies in a range the user mapped.
    Address,
}

/// The zones of one file's interfaces and addresses.
#[derive(Clone, Debug, Default)]
pub struct Zoning {
    /// Zone of each interface by name, and how it was decided.
    pub ifaces: BTreeMap<String, (Zone, ZoneSource)>,
    /// Interfaces that could not be placed in a zone.
    pub unmapped: Vec<String>,
    /// Addresses the user or the interfaces' networks place in each zone.
    pub addrs: BTreeMap<Zone, IntervalSet>,
    /// Addresses the user mapped to each zone (a subset of `addrs`).
    pub user_addrs: BTreeMap<Zone, IntervalSet>,
    /// Zones present without an interface or address: the perimeter, when the config is
    /// the host firewall of the MIS server itself.
    pub implied: Vec<Zone>,
}

impl Zoning {
    /// Works out the zones of `graph`'s interfaces, user mappings first.
    pub fn assign(graph: &RuleGraph, user: &[ZoneMapping]) -> Zoning {
        let mut z = Zoning::default();
        for m in user {
            if let ZoneKey::Net(set, _) = &m.key {
                let slot = z.addrs.entry(m.zone).or_default();
                *slot = slot.union(set);
            }
        }
        let user_nets = z.addrs.clone();
        z.user_addrs = user_nets.clone();
        let mut names: Vec<String> = graph.interfaces.iter().map(|i| i.name.clone()).collect();
        for m in user {
            if let ZoneKey::Iface(name) = &m.key
                && !name.ends_with('+')
                && !names.contains(name)
            {
                names.push(name.clone());
            }
        }
        for name in names {
            let iface = graph.interface(&name);
            let by_user = user.iter().rev().find_map(|m| match &m.key {
                ZoneKey::Iface(k) if iface_key_matches(k, &name) => Some(m.zone),
                _ => None,
            });
            let by_addr = iface.and_then(|i| {
                user_nets
                    .iter()
                    .find(|(_, set)| !i.networks.is_empty() && i.networks.is_subset(set))
                    .map(|(zone, _)| *zone)
            });
            let decided = by_user
                .map(|zone| (zone, ZoneSource::User))
                .or(by_addr.map(|zone| (zone, ZoneSource::Address)))
                .or(iface
                    .and_then(|i| i.zone_hint)
                    .map(|zone| (zone, ZoneSource::Hint)));
            match decided {
                Some((zone, source)) => {
                    if let Some(i) = iface {
                        let slot = z.addrs.entry(zone).or_default();
                        *slot = slot.union(&i.networks);
                    }
                    z.ifaces.insert(name, (zone, source));
                }
                // The loopback never forwards between zones; listing it would be noise.
                None if name == "lo" => {}
                None => z.unmapped.push(name),
            }
        }
        z
    }

    /// Interfaces in `zone`, by name.
    pub fn interfaces_in(&self, zone: Zone) -> Vec<&str> {
        self.ifaces
            .iter()
            .filter(|(_, (z, _))| *z == zone)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// True if the firewall stands on `zone`: an interface is in it, or the user mapped
    /// addresses to it.
    pub fn has_zone(&self, zone: Zone) -> bool {
        self.ifaces.values().any(|(z, _)| *z == zone)
            || self.addrs.contains_key(&zone)
            || self.implied.contains(&zone)
    }

    /// True if some interface (not only an address range) is in `zone`.
    pub fn has_interface_in(&self, zone: Zone) -> bool {
        self.ifaces.values().any(|(z, _)| *z == zone)
    }

    /// The addresses of `zone` within `space`: what the user mapped to it; else, for the
    /// public zone, everything the other zones do not hold (the outside interface's own
    /// subnet is only where the Internet begins); else its interfaces' networks; else all
    /// of `space` (the zone is known by interface only).
    pub fn zone_addresses(&self, zone: Zone, space: &IntervalSet) -> IntervalSet {
        let others = || {
            self.addrs
                .iter()
                .filter(|(z, _)| **z != zone)
                .fold(IntervalSet::empty(), |acc, (_, s)| acc.union(s))
        };
        if let Some(set) = self.user_addrs.get(&zone).filter(|s| !s.is_empty()) {
            // The public zone is the fallback: `0.0.0.0/0=public` means "the rest".
            return match zone {
                Zone::Public => set.intersect(space).subtract(&others()),
                _ => set.intersect(space),
            };
        }
        if zone != Zone::Public
            && let Some(set) = self.addrs.get(&zone).filter(|s| !s.is_empty())
        {
            return set.intersect(space);
        }
        if zone == Zone::Public {
            let others = self
                .addrs
                .iter()
                .filter(|(z, _)| **z != Zone::Public)
                .fold(IntervalSet::empty(), |acc, (_, s)| acc.union(s));
            return space.subtract(&others);
        }
        space.clone()
    }
}

fn iface_key_matches(key: &str, name: &str) -> bool {
    match key.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => key == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Dialect, Family, Interface};
    use crate::source::FileId;

    #[test]
    fn parses_mappings() {
        let m = ZoneMapping::parse("eth1=perimeter").expect("valid");
        assert_eq!(m.key, ZoneKey::Iface("eth1".into()));
        assert_eq!(m.zone, Zone::Perimeter);
        let n = ZoneMapping::parse("10.0.0.0/24=internal").expect("valid");
        assert!(matches!(n.key, ZoneKey::Net(ref s, _) if s.count() == 256));
        assert!(ZoneMapping::parse("eth1=mars").is_err());
        assert!(ZoneMapping::parse("eth1").is_err());
    }

    #[test]
    fn user_mapping_wins_over_hint() {
        let mut g = RuleGraph::new(Dialect::Asa, FileId(0), Family::Both);
        let mut dmz = Interface::named("dmz");
        dmz.zone_hint = Some(Zone::Perimeter);
        g.interfaces.push(dmz);
        let mut inside = Interface::named("inside");
        inside.zone_hint = Some(Zone::Internal);
        inside.networks = parse_network("10.0.0.0/24").expect("valid");
        g.interfaces.push(inside);
        let z = Zoning::assign(&g, &[ZoneMapping::parse("dmz=internal").expect("valid")]);
        assert_eq!(
            z.ifaces.get("dmz"),
            Some(&(Zone::Internal, ZoneSource::User))
        );
        assert_eq!(
            z.ifaces.get("inside"),
            Some(&(Zone::Internal, ZoneSource::Hint))
        );
        let public = z.zone_addresses(Zone::Public, &addr::v4_space());
        assert!(!public.contains(addr::v4("10.0.0.5".parse().expect("literal"))));
        assert!(public.contains(addr::v4("8.8.8.8".parse().expect("literal"))));
    }

    #[test]
    fn unmapped_interfaces_are_listed() {
        let mut g = RuleGraph::new(Dialect::Iptables, FileId(0), Family::V4);
        g.ensure_interface("eth0");
        g.ensure_interface("eth1");
        let z = Zoning::assign(&g, &[ZoneMapping::parse("eth+=public").expect("valid")]);
        assert!(z.unmapped.is_empty());
        let z = Zoning::assign(&g, &[]);
        assert_eq!(z.unmapped, vec!["eth0".to_string(), "eth1".to_string()]);
    }
}
