//! Policy as data: scenarios and the flows they require, read from TOML.
//!
//! KB 294297 ships built in (`policy/kb294297.toml`, compiled in with `include_str!`);
//! users add their own files in the same format with `--policy`. [`Policy::active`] turns
//! the scenarios and modifiers of a run (IPSec mode, static RPC ports) into the concrete
//! flows the checks test: zone pair, protocol, ports, and whether the flow is required or
//! merely allowed.

use crate::graph::sets::proto;
use crate::graph::{IntervalSet, Zone};
use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use std::collections::BTreeSet;

/// The built-in KB 294297 policy text.
pub const BUILTIN_KB294297: &str = include_str!("../policy/kb294297.toml");

/// A policy file that could not be used.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("policy file `{path}`: {message}")]
#[diagnostic(code(mislint::policy))]
pub struct PolicyError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// The text, for the label.
    #[source_code]
    pub src: NamedSource<String>,
    /// Where.
    #[label("here")]
    pub at: Option<SourceSpan>,
}

/// Whether a requirement holds in a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Whatever the mode.
    #[default]
    Any,
    /// Only when the mode is on.
    On,
    /// Only when the mode is off.
    Off,
}

impl Mode {
    fn admits(self, on: bool) -> bool {
        match self {
            Mode::Any => true,
            Mode::On => on,
            Mode::Off => !on,
        }
    }
}

/// How strongly a policy wants a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// It must be permitted, or the service breaks.
    #[default]
    Required,
    /// It may be permitted without being needless.
    Allowed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    name: String,
    /// Accepted for the reader of the file; mislint names policies by `name`.
    #[serde(default, rename = "title")]
    _title: Option<String>,
    #[serde(default)]
    scenario: Vec<ScenarioDef>,
    #[serde(default)]
    requirement: Vec<RequirementDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioDef {
    name: String,
    title: String,
    #[serde(default)]
    kb: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequirementDef {
    id: String,
    #[serde(default)]
    level: Level,
    from: String,
    to: String,
    #[serde(default)]
    both_directions: bool,
    flows: Vec<String>,
    #[serde(default)]
    ipsec: Mode,
    #[serde(default)]
    static_rpc: Mode,
    #[serde(default)]
    scenarios: Option<Vec<String>>,
    #[serde(default)]
    kb: String,
    #[serde(default)]
    why: String,
    #[serde(default)]
    names: Vec<String>,
}

/// The ports of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSpec {
    /// A protocol without ports (ESP, AH), or every port.
    None,
    /// These destination ports.
    Set(IntervalSet),
    /// The run's static RPC ports (1026 unless `--static-rpc` names others).
    StaticRpc,
}

/// One protocol and port set of a requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// IP protocol number.
    pub protocol: u8,
    /// Destination ports.
    pub ports: PortSpec,
}

/// A named scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// CLI name.
    pub name: String,
    /// What it is.
    pub title: String,
    /// The KB sentence.
    pub kb: String,
    /// The policy it comes from.
    pub policy: String,
}

/// A requirement row.
#[derive(Clone, Debug)]
pub struct Requirement {
    /// Stable id, e.g. `ldap`.
    pub id: String,
    /// Required or allowed.
    pub level: Level,
    /// Source zone.
    pub from: Zone,
    /// Destination zone.
    pub to: Zone,
    /// Also required from `to` to `from`.
    pub both_directions: bool,
    /// The flows.
    pub flows: Vec<FlowSpec>,
    /// IPSec mode condition.
    pub ipsec: Mode,
    /// Static RPC condition.
    pub static_rpc: Mode,
    /// The scenarios that need it; `None` means all (the internal firewall rows).
    pub scenarios: Option<Vec<String>>,
    /// The KB sentence.
    pub kb: String,
    /// Why the KB's words became these flows.
    pub why: String,
    /// Port names a config author would write for this service (ASA `kerberos`).
    pub names: Vec<String>,
}

/// All loaded policies.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Scenarios, in file order.
    pub scenarios: Vec<Scenario>,
    /// Requirements, in file order.
    pub requirements: Vec<Requirement>,
}

/// What a run selects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Selected scenario names.
    pub scenarios: Vec<String>,
    /// IPSec between the perimeter and the internal network.
    pub ipsec: bool,
    /// Static RPC ports, if set statically.
    pub static_rpc: Option<Vec<u16>>,
}

/// The RPC port the KB names.
pub const DEFAULT_STATIC_RPC: u16 = 1026;

/// A concrete flow the checks test.
#[derive(Clone, Debug)]
pub struct ActiveFlow {
    /// The requirement's id.
    pub requirement: String,
    /// The selected scenario that needs it, if it belongs to scenarios.
    pub scenario: Option<String>,
    /// Source zone.
    pub from: Zone,
    /// Destination zone.
    pub to: Zone,
    /// Protocol.
    pub protocol: u8,
    /// Destination ports; `None` for protocols without ports.
    pub ports: Option<IntervalSet>,
    /// Required or allowed.
    pub level: Level,
    /// The KB sentence.
    pub kb: String,
    /// Why we read the KB so.
    pub why: String,
    /// Port names a config author would write for this service.
    pub names: Vec<String>,
}

impl Policy {
    /// The built-in policy.
    pub fn builtin() -> Policy {
        let mut p = Policy::default();
        // The built-in file is tested; failing here would be a build defect, not input.
        p.load("policy/kb294297.toml", BUILTIN_KB294297)
            .expect("the built-in policy parses (tested in policy::tests)");
        p
    }

    /// Adds the scenarios and requirements of one policy file.
    pub fn load(&mut self, path: &str, text: &str) -> Result<(), Box<PolicyError>> {
        let error = |message: String, at: Option<std::ops::Range<usize>>| {
            Box::new(PolicyError {
                path: path.to_string(),
                message,
                src: NamedSource::new(path, text.to_string()),
                at: at.map(|r| SourceSpan::from(r.start..r.end)),
            })
        };
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| error(e.message().to_string(), e.span()))?;
        for s in file.scenario {
            if self.scenarios.iter().any(|x| x.name == s.name) {
                return Err(error(
                    format!("scenario `{}` is defined twice", s.name),
                    find(text, &s.name),
                ));
            }
            self.scenarios.push(Scenario {
                name: s.name,
                title: s.title,
                kb: s.kb,
                policy: file.name.clone(),
            });
        }
        for r in file.requirement {
            let at = find(text, &r.id);
            let zone = |z: &str| {
                Zone::by_name(z).ok_or_else(|| {
                    error(
                        format!("`{z}` is not a zone (public, perimeter, internal)"),
                        at.clone(),
                    )
                })
            };
            let flows = r
                .flows
                .iter()
                .map(|f| parse_flow(f).map_err(|m| error(m, find(text, f))))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(names) = &r.scenarios
                && let Some(bad) = names
                    .iter()
                    .find(|n| !self.scenarios.iter().any(|s| &s.name == *n))
            {
                return Err(error(format!("unknown scenario `{bad}`"), find(text, bad)));
            }
            self.requirements.push(Requirement {
                from: zone(&r.from)?,
                to: zone(&r.to)?,
                id: r.id,
                level: r.level,
                both_directions: r.both_directions,
                flows,
                ipsec: r.ipsec,
                static_rpc: r.static_rpc,
                scenarios: r.scenarios,
                kb: r.kb,
                why: r.why,
                names: r.names,
            });
        }
        Ok(())
    }

    /// The scenario with this name.
    pub fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// The flows a run must (or may) see permitted.
    pub fn active(&self, settings: &Settings) -> Vec<ActiveFlow> {
        let static_ports = settings
            .static_rpc
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_STATIC_RPC]);
        let mut out = Vec::new();
        for r in &self.requirements {
            if !r.ipsec.admits(settings.ipsec)
                || !r.static_rpc.admits(settings.static_rpc.is_some())
            {
                continue;
            }
            let scenario = match &r.scenarios {
                None => None,
                Some(names) => match names.iter().find(|n| settings.scenarios.contains(n)) {
                    Some(n) => Some(n.clone()),
                    None => continue,
                },
            };
            let mut directions = vec![(r.from, r.to)];
            if r.both_directions {
                directions.push((r.to, r.from));
            }
            for (from, to) in directions {
                for f in &r.flows {
                    let ports = match &f.ports {
                        PortSpec::None => None,
                        PortSpec::Set(s) => Some(s.clone()),
                        PortSpec::StaticRpc => Some(IntervalSet::from_ranges(
                            static_ports.iter().map(|&p| (u128::from(p), u128::from(p))),
                        )),
                    };
                    out.push(ActiveFlow {
                        requirement: r.id.clone(),
                        scenario: scenario.clone(),
                        from,
                        to,
                        protocol: f.protocol,
                        ports,
                        level: r.level,
                        kb: r.kb.clone(),
                        why: r.why.clone(),
                        names: r.names.clone(),
                    });
                }
            }
        }
        out
    }

    /// Names of selected scenarios that no loaded policy defines.
    pub fn unknown_scenarios<'a>(&self, names: &'a [String]) -> Vec<&'a str> {
        let known: BTreeSet<&str> = self.scenarios.iter().map(|s| s.name.as_str()).collect();
        names
            .iter()
            .map(String::as_str)
            .filter(|n| !known.contains(n))
            .collect()
    }
}

/// Byte range of the first occurrence of `"needle"` (quoted, as TOML writes it).
fn find(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    let quoted = format!("\"{needle}\"");
    text.find(&quoted).map(|i| i..i + quoted.len())
}

/// Parses `tcp/80`, `udp/1024-65535`, `tcp/static-rpc`, `proto/50`, `esp`.
pub fn parse_flow(text: &str) -> Result<FlowSpec, String> {
    let (p, ports) = match text.split_once('/') {
        Some((p, ports)) => (p, Some(ports)),
        None => (text, None),
    };
    let bad = || format!("`{text}` is not a flow; write tcp/80, udp/1024-65535 or proto/50");
    if p == "proto" {
        let n: u8 = ports.ok_or_else(bad)?.parse().map_err(|_| bad())?;
        return Ok(FlowSpec {
            protocol: n,
            ports: PortSpec::None,
        });
    }
    let protocol = proto::by_name(p).ok_or_else(bad)?;
    let ports = match ports {
        None => PortSpec::None,
        Some("static-rpc") => PortSpec::StaticRpc,
        Some(r) => {
            let (lo, hi) = r.split_once('-').unwrap_or((r, r));
            let lo: u16 = lo.parse().map_err(|_| bad())?;
            let hi: u16 = hi.parse().map_err(|_| bad())?;
            if lo > hi || !proto::has_ports(protocol) {
                return Err(bad());
            }
            PortSpec::Set(IntervalSet::range(u128::from(lo), u128::from(hi)))
        }
    };
    Ok(FlowSpec { protocol, ports })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(p: &Policy, s: Settings) -> Vec<(String, Zone, Zone, u8, Option<IntervalSet>)> {
        p.active(&s)
            .into_iter()
            .map(|f| (f.requirement, f.from, f.to, f.protocol, f.ports))
            .collect()
    }

    #[test]
    fn builtin_has_every_design_scenario() {
        let p = Policy::builtin();
        for name in [
            "exchange2000-smtp",
            "exchange2000-http",
            "exchange2000-http-ipsec",
            "exchange2000-browse",
            "exchange2000-browse-ssl",
            "exchange55-browse",
            "exchange55-browse-ssl",
        ] {
            assert!(p.scenario(name).is_some(), "{name}");
        }
        assert!(
            p.requirements
                .iter()
                .all(|r| !r.kb.is_empty() && !r.why.is_empty())
        );
    }

    #[test]
    fn smtp_scenario_requires_internal_rows_and_port_25() {
        let p = Policy::builtin();
        let f = flows(
            &p,
            Settings {
                scenarios: vec!["exchange2000-smtp".into()],
                ..Settings::default()
            },
        );
        let ids: BTreeSet<&str> = f.iter().map(|x| x.0.as_str()).collect();
        for id in [
            "http",
            "dns",
            "kerberos",
            "ldap",
            "rpc-static",
            "global-catalog",
            "smtp-carrier",
        ] {
            assert!(ids.contains(id), "{id}");
        }
        assert!(!ids.contains("dynamic-rpc") && !ids.contains("ipsec"));
        let rpc = f.iter().find(|x| x.0 == "rpc-static").expect("present");
        assert_eq!(rpc.4, Some(IntervalSet::single(1026)));
    }

    #[test]
    fn ipsec_mode_replaces_the_port_list() {
        let p = Policy::builtin();
        let f = flows(
            &p,
            Settings {
                ipsec: true,
                ..Settings::default()
            },
        );
        let required: Vec<_> = p
            .active(&Settings {
                ipsec: true,
                ..Settings::default()
            })
            .into_iter()
            .filter(|x| x.level == Level::Required)
            .map(|x| (x.protocol, x.from, x.to))
            .collect();
        assert_eq!(required.len(), 6, "esp, ah, isakmp in both directions");
        assert!(f.iter().any(|x| x.0 == "kerberos-ipsec"));
        assert!(!f.iter().any(|x| x.0 == "ldap"));
    }

    #[test]
    fn static_rpc_removes_dynamic_range() {
        let p = Policy::builtin();
        let base = Settings {
            scenarios: vec!["exchange55-browse".into()],
            ..Settings::default()
        };
        assert!(flows(&p, base.clone()).iter().any(|x| x.0 == "dynamic-rpc"));
        let with_static = Settings {
            static_rpc: Some(vec![1026, 1027]),
            ..base
        };
        let f = flows(&p, with_static);
        assert!(!f.iter().any(|x| x.0 == "dynamic-rpc"));
        let rpc = f.iter().find(|x| x.0 == "rpc-static").expect("present");
        assert_eq!(rpc.4, Some(IntervalSet::range(1026, 1027)));
    }

    #[test]
    fn flow_syntax() {
        assert_eq!(parse_flow("proto/50").map(|f| f.protocol), Ok(50));
        assert!(
            matches!(parse_flow("tcp/1024-65535").map(|f| f.ports), Ok(PortSpec::Set(s)) if s.count() == 64512)
        );
        assert!(parse_flow("esp/80").is_err());
        assert!(parse_flow("tcp/90-80").is_err());
        assert!(parse_flow("bogus/1").is_err());
    }

    #[test]
    fn bad_policy_points_into_the_file() {
        let mut p = Policy::builtin();
        let text = "name = \"x\"\n[[requirement]]\nid = \"a\"\nfrom = \"perimeter\"\nto = \"internal\"\nflows = [\"tcp/99999\"]\n";
        let err = p.load("mine.toml", text).expect_err("port out of range");
        let at = err.at.expect("has a span");
        assert_eq!(&text[at.offset()..at.offset() + at.len()], "\"tcp/99999\"");
        let err = p
            .load("mine.toml", "name = \"x\"\nbogus = 1\n")
            .expect_err("unknown field");
        assert!(err.message.contains("bogus"));
    }
}
