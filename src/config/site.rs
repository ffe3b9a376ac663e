//! The site file, `mislint.toml`: what a firewall repository says about itself.
//!
//! It is found by walking up from each linted file (or given with `--config`) and holds
//! defaults for the whole repository, sections per file glob, zone mappings, the addresses
//! of the MIS host and the internal servers, extra allowed flows and reasoned
//! suppressions. Command-line flags override it. A site file that cannot be used is an
//! error pointing into the TOML.

use crate::analysis::zones::{ZoneMapping, parse_network};
use crate::graph::{IntervalSet, Zone};
use crate::policy::{FlowSpec, parse_flow};
use globset::{Glob, GlobMatcher};
use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name looked for.
pub const SITE_FILE: &str = "mislint.toml";

/// A site file that cannot be used.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("site file `{path}`: {message}")]
#[diagnostic(code(mislint::site))]
pub struct SiteError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Its text.
    #[source_code]
    pub src: NamedSource<String>,
    /// Where.
    #[label("here")]
    pub at: Option<SourceSpan>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSite {
    #[serde(default)]
    scenarios: Vec<String>,
    #[serde(default)]
    ipsec: Option<bool>,
    #[serde(default)]
    static_rpc: Option<Vec<u16>>,
    #[serde(default)]
    zones: BTreeMap<String, String>,
    #[serde(default)]
    hosts: RawHosts,
    #[serde(default)]
    policy: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    file: Vec<RawFileSection>,
    #[serde(default)]
    allow: Vec<RawAllow>,
    #[serde(default)]
    suppress: Vec<RawSuppress>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawHosts {
    #[serde(default)]
    mis: Vec<String>,
    #[serde(default)]
    internal: Vec<String>,
    #[serde(default)]
    public: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSection {
    glob: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    scenarios: Option<Vec<String>>,
    #[serde(default)]
    ipsec: Option<bool>,
    #[serde(default)]
    static_rpc: Option<Vec<u16>>,
    #[serde(default)]
    zones: BTreeMap<String, String>,
    #[serde(default)]
    hosts: Option<RawHosts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    from: String,
    to: String,
    flows: Vec<String>,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuppress {
    rule: String,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    line: Option<usize>,
    #[serde(default)]
    requirement: Option<String>,
    reason: String,
}

/// Addresses of the hosts the KB's flows run between.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hosts {
    /// The Mobile Information Server(s), in the perimeter network.
    pub mis: IntervalSet,
    /// Exchange, domain controllers, Global Catalog and DNS servers.
    pub internal: IntervalSet,
    /// The carriers' and mobile users' side.
    pub public: IntervalSet,
}

impl Hosts {
    /// The hosts given for a zone, if any.
    pub fn of(&self, zone: Zone) -> Option<&IntervalSet> {
        let set = match zone {
            Zone::Perimeter => &self.mis,
            Zone::Internal => &self.internal,
            Zone::Public => &self.public,
        };
        (!set.is_empty()).then_some(set)
    }
}

/// An extra allowed flow.
#[derive(Clone, Debug)]
pub struct Allow {
    /// Source zone.
    pub from: Zone,
    /// Destination zone.
    pub to: Zone,
    /// The flows.
    pub flows: Vec<FlowSpec>,
    /// Why it is wanted.
    pub reason: String,
}

/// A reasoned suppression.
#[derive(Clone, Debug)]
pub struct Suppression {
    /// The finding kind it silences.
    pub rule: String,
    /// Files it applies to (relative to the site file); `None` = all.
    pub file: Option<GlobMatcher>,
    /// The 1-based line of the finding, if it is that narrow.
    pub line: Option<usize>,
    /// The requirement, if it is that narrow.
    pub requirement: Option<String>,
    /// Why.
    pub reason: String,
    /// Its position in the site file, for "suppresses nothing".
    pub at: std::ops::Range<usize>,
}

/// Settings one file section or the top level gives.
#[derive(Clone, Debug, Default)]
pub struct Layer {
    /// Scenarios, if set here.
    pub scenarios: Option<Vec<String>>,
    /// IPSec mode, if set here.
    pub ipsec: Option<bool>,
    /// Static RPC ports, if set here.
    pub static_rpc: Option<Vec<u16>>,
    /// Zone mappings.
    pub zones: Vec<ZoneMapping>,
    /// Host addresses, if set here.
    pub hosts: Option<Hosts>,
    /// The firewall's role (free text, shown in notes).
    pub role: Option<String>,
}

/// A parsed site file.
#[derive(Debug)]
pub struct Site {
    /// Where it is.
    pub path: PathBuf,
    /// Its text (for pointing into it).
    pub text: String,
    /// Top-level settings.
    pub base: Layer,
    /// Per-glob sections, in file order (later ones win).
    pub sections: Vec<(GlobMatcher, Layer)>,
    /// Policy files to load, resolved against the site file's folder.
    pub policies: Vec<PathBuf>,
    /// Globs of paths not to lint.
    pub exclude: Vec<GlobMatcher>,
    /// Extra allowed flows.
    pub allow: Vec<Allow>,
    /// Suppressions.
    pub suppress: Vec<Suppression>,
}

impl Site {
    /// Reads and checks a site file.
    pub fn load(path: &Path) -> Result<Site, Box<SiteError>> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Box::new(SiteError {
                path: shown.clone(),
                message: format!("cannot read: {e}"),
                src: NamedSource::new(&shown, String::new()),
                at: None,
            })
        })?;
        Site::parse(path, text)
    }

    /// Parses site-file text read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Site, Box<SiteError>> {
        let shown = path.display().to_string();
        let error = |message: String, at: Option<std::ops::Range<usize>>| {
            Box::new(SiteError {
                path: shown.clone(),
                message,
                src: NamedSource::new(&shown, text.clone()),
                at: at.map(|r| SourceSpan::from(r.start..r.end)),
            })
        };
        let raw: RawSite =
            toml::from_str(&text).map_err(|e| error(e.message().to_string(), e.span()))?;
        let locate = |needle: &str| find_quoted(&text, needle);
        let glob = |g: &str| {
            Glob::new(g)
                .map(|g| g.compile_matcher())
                .map_err(|e| error(format!("bad glob `{g}`: {e}"), locate(g)))
        };
        let zones = |map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(k, v)| {
                    ZoneMapping::parse(&format!("{k}={v}")).map_err(|m| error(m, locate(v)))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let hosts = |h: &RawHosts| -> Result<Hosts, Box<SiteError>> {
            let set = |items: &[String]| {
                items.iter().try_fold(IntervalSet::empty(), |acc, a| {
                    parse_network(a).map(|s| acc.union(&s)).ok_or_else(|| {
                        error(format!("`{a}` is not an address or network"), locate(a))
                    })
                })
            };
            Ok(Hosts {
                mis: set(&h.mis)?,
                internal: set(&h.internal)?,
                public: set(&h.public)?,
            })
        };
        let base = Layer {
            scenarios: (!raw.scenarios.is_empty()).then(|| raw.scenarios.clone()),
            ipsec: raw.ipsec,
            static_rpc: raw.static_rpc.clone(),
            zones: zones(&raw.zones)?,
            hosts: Some(hosts(&raw.hosts)?),
            role: None,
        };
        let mut sections = Vec::new();
        for s in &raw.file {
            sections.push((
                glob(&s.glob)?,
                Layer {
                    scenarios: s.scenarios.clone(),
                    ipsec: s.ipsec,
                    static_rpc: s.static_rpc.clone(),
                    zones: zones(&s.zones)?,
                    hosts: s.hosts.as_ref().map(&hosts).transpose()?,
                    role: s.role.clone(),
                },
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut allow = Vec::new();
        for a in &raw.allow {
            let zone = |z: &str| {
                Zone::by_name(z).ok_or_else(|| error(format!("`{z}` is not a zone"), locate(z)))
            };
            let flows = a
                .flows
                .iter()
                .map(|f| parse_flow(f).map_err(|m| error(m, locate(f))))
                .collect::<Result<Vec<_>, _>>()?;
            if a.reason.trim().is_empty() {
                return Err(error(
                    "an allowed flow needs a reason".into(),
                    locate(&a.from),
                ));
            }
            allow.push(Allow {
                from: zone(&a.from)?,
                to: zone(&a.to)?,
                flows,
                reason: a.reason.clone(),
            });
        }
        let mut suppress = Vec::new();
        for s in &raw.suppress {
            let at = locate(&s.rule).unwrap_or(0..0);
            if s.reason.trim().is_empty() {
                return Err(error("a suppression needs a reason".into(), Some(at)));
            }
            suppress.push(Suppression {
                rule: s.rule.clone(),
                file: s.file.as_deref().map(&glob).transpose()?,
                line: s.line,
                requirement: s.requirement.clone(),
                reason: s.reason.clone(),
                at,
            });
        }
        Ok(Site {
            path: path.to_path_buf(),
            base,
            sections,
            policies: raw.policy.iter().map(|p| dir.join(p)).collect(),
            exclude: raw
                .exclude
                .iter()
                .map(|g| glob(g))
                .collect::<Result<Vec<_>, _>>()?,
            allow,
            suppress,
            text,
        })
    }

    /// The folder globs are relative to.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// `file` relative to the site file's folder, for glob matching.
    pub fn relative<'p>(&self, file: &'p Path) -> &'p Path {
        let dir = self.dir();
        file.strip_prefix(dir)
            .or_else(|_| file.strip_prefix(dir.strip_prefix("./").unwrap_or(dir)))
            .unwrap_or(file)
    }

    /// The layers that apply to `file`: the top level, then matching sections in order.
    pub fn layers_for(&self, file: &Path) -> Vec<&Layer> {
        let rel = self.relative(file);
        std::iter::once(&self.base)
            .chain(
                self.sections
                    .iter()
                    .filter(|(g, _)| g.is_match(rel))
                    .map(|(_, l)| l),
            )
            .collect()
    }

    /// True if `file` is excluded from linting.
    pub fn excludes(&self, file: &Path) -> bool {
        let rel = self.relative(file);
        self.exclude.iter().any(|g| g.is_match(rel))
    }
}

/// The site file for a linted file: the nearest `mislint.toml` in its folder or above.
pub fn find_site_file(file: &Path) -> Option<PathBuf> {
    let start = if file.is_dir() {
        Some(file)
    } else {
        file.parent()
    };
    let mut dir = start.map(Path::to_path_buf)?;
    if dir.as_os_str().is_empty() {
        dir = PathBuf::from(".");
    }
    let mut dir = dir.canonicalize().ok()?;
    loop {
        let candidate = dir.join(SITE_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn find_quoted(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    let quoted = format!("\"{needle}\"");
    text.find(&quoted).map(|i| i..i + quoted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
scenarios = ["exchange2000-smtp"]
static_rpc = [1026]
exclude = ["old/**"]

[zones]
eth0 = "public"
eth1 = "perimeter"

[hosts]
mis = ["192.168.10.5"]
internal = ["10.0.0.10", "10.0.0.20"]

[[file]]
glob = "edge/*.rules"
role = "external firewall"
scenarios = ["exchange2000-browse-ssl"]
zones = { eth2 = "internal" }

[[allow]]
from = "internal"
to = "perimeter"
flows = ["tcp/22"]
reason = "administrators reach MIS over SSH"

[[suppress]]
rule = "needless-port"
file = "edge/*.rules"
line = 12
reason = "legacy monitoring, removal tracked in CHG-1234"
"#;

    #[test]
    fn parses_every_section() {
        let site = Site::parse(Path::new("repo/mislint.toml"), SITE.to_string()).expect("valid");
        assert_eq!(
            site.base.scenarios.as_deref(),
            Some(&["exchange2000-smtp".to_string()][..])
        );
        assert_eq!(site.base.zones.len(), 2);
        let hosts = site.base.hosts.as_ref().expect("hosts");
        assert_eq!(hosts.internal.count(), 2);
        let layers = site.layers_for(Path::new("repo/edge/fw1.rules"));
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[1].role.as_deref(), Some("external firewall"));
        assert_eq!(site.layers_for(Path::new("repo/core/fw2.rules")).len(), 1);
        assert!(site.excludes(Path::new("repo/old/a/b.rules")));
        assert_eq!(site.allow[0].from, Zone::Internal);
        assert_eq!(site.suppress[0].line, Some(12));
    }

    #[test]
    fn suppression_without_reason_points_into_the_file() {
        let text = "[[suppress]]\nrule = \"needless-port\"\nreason = \"  \"\n".to_string();
        let err = Site::parse(Path::new("mislint.toml"), text.clone()).expect_err("no reason");
        assert!(err.message.contains("needs a reason"));
        let at = err.at.expect("span");
        assert_eq!(
            &text[at.offset()..at.offset() + at.len()],
            "\"needless-port\""
        );
        let text = "[[suppress]]\nrule = \"needless-port\"\n".to_string();
        let err = Site::parse(Path::new("mislint.toml"), text).expect_err("reason missing");
        assert!(err.message.contains("reason"), "{}", err.message);
    }

    #[test]
    fn bad_values_are_located() {
        let text = "[zones]\neth0 = \"mars\"\n".to_string();
        let err = Site::parse(Path::new("mislint.toml"), text.clone()).expect_err("bad zone");
        let at = err.at.expect("span");
        assert_eq!(&text[at.offset()..at.offset() + at.len()], "\"mars\"");
        let text = "colour = 1\n".to_string();
        let err = Site::parse(Path::new("mislint.toml"), text).expect_err("unknown key");
        assert!(err.message.contains("colour"));
        assert!(err.at.is_some());
    }
}
