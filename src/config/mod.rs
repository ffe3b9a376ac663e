//! Flags and site files into the settings each linted file runs with.
//!
//! [`Config`] holds what the command line says; [`Config::load_sites`] reads the site
//! files (`mislint.toml`) that govern the linted files, and [`Config::file_config`]
//! layers them for one file: the site file's top level, then its matching `[[file]]`
//! sections in order, then the command line, which always wins.

pub mod site;

use crate::analysis::zones::ZoneMapping;
use crate::cli::{Cli, FailOn, Format};
use crate::policy::{Policy, PolicyError, Settings};
use crate::report::finding::Severity;
use site::{Allow, Hosts, Site, SiteError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Lint the paths.
    Lint,
    /// Print the scenarios.
    ListScenarios,
    /// Print one finding kind's documentation.
    Explain(String),
    /// Answer a flow query for each path.
    Query(Box<crate::query::Query>),
    /// Print the zone-to-zone service matrix of each path.
    Matrix,
}

/// Everything a run needs, from flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to do.
    pub mode: Mode,
    /// Files and directories.
    pub paths: Vec<PathBuf>,
    /// Scenarios and modifiers from the command line: empty scenarios and `ipsec: false`
    /// mean "not given", so a site file may set them.
    pub settings: Settings,
    /// User zone mappings from the command line.
    pub zones: Vec<ZoneMapping>,
    /// Built-in plus `--policy` policies.
    pub policy: Policy,
    /// The site file given with `--config`; otherwise each file's nearest one is used.
    pub site: Option<PathBuf>,
    /// Do not look for site files.
    pub no_site: bool,
    /// Output format.
    pub format: Format,
    /// Lowest severity that fails the run; `None` never fails on findings.
    pub fail_on: Option<Severity>,
    /// Suggest verified fixes (`--no-fixes` turns them off).
    pub fixes: bool,
}

/// Flags that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    /// A `--zone` value that is not NAME=ZONE.
    #[error("bad --zone: {0}")]
    #[diagnostic(code(mislint::usage))]
    Zone(String),
    /// A scenario no policy defines.
    #[error("unknown scenario `{0}`")]
    #[diagnostic(code(mislint::usage), help("known scenarios: {1}"))]
    Scenario(String, String),
    /// A policy file that cannot be read.
    #[error("cannot read policy file `{0}`: {1}")]
    #[diagnostic(code(mislint::usage))]
    PolicyRead(String, std::io::Error),
    /// A policy file that is not valid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Policy(Box<PolicyError>),
    /// `--explain` of something that is not a finding kind.
    #[error("no finding kind is called `{0}`")]
    #[diagnostic(code(mislint::usage), help("known kinds: {1}"))]
    Explain(String, String),
    /// A site file that cannot be used.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Site(Box<SiteError>),
    /// A `--query` that cannot be read.
    #[error("bad --query `{0}`: {1}")]
    #[diagnostic(
        code(mislint::usage),
        help(
            "write PROTO SOURCE -> DEST, e.g. 'tcp perimeter -> internal :389' (grammars/query.ebnf)"
        )
    )]
    Query(String, crate::query::QueryError),
    /// An output format the chosen mode cannot write.
    #[error("--format {0} cannot be used with {1}")]
    #[diagnostic(code(mislint::usage))]
    Format(&'static str, &'static str),
    /// Nothing to lint.
    #[error("no PATH given")]
    #[diagnostic(
        code(mislint::usage),
        help(
            "try `mislint fixtures/iptables/compliant.rules --scenario exchange2000-smtp --zone eth0=public --zone eth1=perimeter --zone eth2=internal`"
        )
    )]
    NoPaths,
}

impl Config {
    /// Checks and combines the flags.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let mut policy = Policy::builtin();
        for path in &cli.policies {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::PolicyRead(shown.clone(), e))?;
            policy.load(&shown, &text).map_err(ConfigError::Policy)?;
        }
        let zones = cli
            .zones
            .iter()
            .map(|z| ZoneMapping::parse(z).map_err(ConfigError::Zone))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(bad) = policy.unknown_scenarios(&cli.scenarios).first() {
            let known: Vec<&str> = policy.scenarios.iter().map(|s| s.name.as_str()).collect();
            return Err(ConfigError::Scenario(bad.to_string(), known.join(", ")));
        }
        let mode = if cli.list_scenarios {
            Mode::ListScenarios
        } else if let Some(rule) = cli.explain {
            if crate::checks::meta(&rule).is_none() {
                let known: Vec<&str> = crate::checks::all_metas().map(|m| m.name).collect();
                return Err(ConfigError::Explain(rule, known.join(", ")));
            }
            Mode::Explain(rule)
        } else {
            if cli.paths.is_empty() {
                return Err(ConfigError::NoPaths);
            }
            analysis_mode(&cli)?
        };
        Ok(Config {
            mode,
            paths: cli.paths,
            site: cli.config,
            no_site: cli.no_config,
            fixes: !cli.no_fixes,
            settings: Settings {
                scenarios: cli.scenarios,
                ipsec: cli.ipsec,
                static_rpc: cli.static_rpc,
            },
            zones,
            policy,
            format: cli.format,
            fail_on: match cli.fail_on {
                FailOn::Error => Some(Severity::Error),
                FailOn::Warning => Some(Severity::Warning),
                FailOn::Never => None,
            },
        })
    }
}

/// Lint, query or matrix, from `--query`, `--matrix` and `--format dot`, with the
/// formats each can write.
fn analysis_mode(cli: &Cli) -> Result<Mode, ConfigError> {
    let format = match cli.format {
        Format::Human => "human",
        Format::Json => "json",
        Format::Sarif => "sarif",
        Format::Github => "github",
        Format::Dot => "dot",
    };
    if let Some(text) = &cli.query {
        if !matches!(cli.format, Format::Human | Format::Json) {
            return Err(ConfigError::Format(format, "--query"));
        }
        let query =
            crate::query::parse_query(text).map_err(|e| ConfigError::Query(text.clone(), e))?;
        return Ok(Mode::Query(Box::new(query)));
    }
    if cli.matrix || cli.format == Format::Dot {
        if !matches!(cli.format, Format::Human | Format::Json | Format::Dot) {
            return Err(ConfigError::Format(format, "--matrix"));
        }
        return Ok(Mode::Matrix);
    }
    Ok(Mode::Lint)
}

/// A loaded site file with the policy it selects (built-in, `--policy`, its own files).
#[derive(Debug)]
pub struct SiteCtx {
    /// The site file.
    pub site: Site,
    /// The policy for files under it.
    pub policy: Policy,
}

/// The site files of a run, by path.
#[derive(Debug, Default)]
pub struct Sites {
    /// Loaded site files.
    pub loaded: BTreeMap<PathBuf, SiteCtx>,
}

/// Everything one file is linted with.
#[derive(Debug, Clone)]
pub struct FileConfig<'a> {
    /// Scenarios and modifiers.
    pub settings: Settings,
    /// Zone mappings; later ones win.
    pub zones: Vec<ZoneMapping>,
    /// Host addresses that narrow the checks to the MIS flows.
    pub hosts: Hosts,
    /// Extra allowed flows.
    pub allow: &'a [Allow],
    /// The policy.
    pub policy: &'a Policy,
    /// The site file, if one governs the file.
    pub site: Option<&'a SiteCtx>,
    /// The firewall's role, as the site file names it.
    pub role: Option<String>,
}

impl FileConfig<'_> {
    /// The interface names the zone mappings name outright (not `eth+` prefixes): the
    /// model must know them even when the config never mentions them.
    pub fn mapped_interfaces(&self) -> Vec<String> {
        self.zones
            .iter()
            .filter_map(|m| match &m.key {
                crate::analysis::zones::ZoneKey::Iface(n) if !n.ends_with('+') => Some(n.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Config {
    /// The site file governing `file`, if any.
    pub fn site_path_for(&self, file: &Path) -> Option<PathBuf> {
        if self.no_site {
            return None;
        }
        match &self.site {
            // Canonical, so that globs relative to its folder match canonical file paths.
            Some(p) => Some(p.canonicalize().unwrap_or_else(|_| p.clone())),
            None => site::find_site_file(file),
        }
    }

    /// Loads every site file that governs one of `files` (once each).
    pub fn load_sites(&self, files: &[&Path]) -> Result<Sites, ConfigError> {
        let mut sites = Sites::default();
        for file in files {
            let Some(path) = self.site_path_for(file) else {
                continue;
            };
            if sites.loaded.contains_key(&path) {
                continue;
            }
            let site = Site::load(&path).map_err(ConfigError::Site)?;
            let mut policy = self.policy.clone();
            for p in &site.policies {
                let shown = p.display().to_string();
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::PolicyRead(shown.clone(), e))?;
                policy.load(&shown, &text).map_err(ConfigError::Policy)?;
            }
            let named = site
                .sections
                .iter()
                .filter_map(|(_, l)| l.scenarios.clone())
                .chain(site.base.scenarios.clone())
                .flatten()
                .collect::<Vec<_>>();
            if let Some(bad) = policy.unknown_scenarios(&named).first() {
                let known: Vec<&str> = policy.scenarios.iter().map(|s| s.name.as_str()).collect();
                return Err(ConfigError::Scenario(
                    format!("{bad}` in site file `{}", path.display()),
                    known.join(", "),
                ));
            }
            sites.loaded.insert(path, SiteCtx { site, policy });
        }
        Ok(sites)
    }

    /// The layered settings for one file.
    pub fn file_config<'a>(&'a self, sites: &'a Sites, file: &Path) -> FileConfig<'a> {
        let ctx = self.site_path_for(file).and_then(|p| sites.loaded.get(&p));
        let mut fc = FileConfig {
            settings: Settings::default(),
            zones: Vec::new(),
            hosts: Hosts::default(),
            allow: ctx.map_or(&[], |c| c.site.allow.as_slice()),
            policy: ctx.map_or(&self.policy, |c| &c.policy),
            site: ctx,
            role: None,
        };
        if let Some(ctx) = ctx {
            let abs = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
            for layer in ctx.site.layers_for(&abs) {
                if let Some(s) = &layer.scenarios {
                    fc.settings.scenarios = s.clone();
                }
                if let Some(i) = layer.ipsec {
                    fc.settings.ipsec = i;
                }
                if let Some(p) = &layer.static_rpc {
                    fc.settings.static_rpc = Some(p.clone());
                }
                fc.zones.extend(layer.zones.iter().cloned());
                if let Some(h) = &layer.hosts {
                    fc.hosts = h.clone();
                }
                if layer.role.is_some() {
                    fc.role = layer.role.clone();
                }
            }
        }
        if !self.settings.scenarios.is_empty() {
            fc.settings.scenarios = self.settings.scenarios.clone();
        }
        if self.settings.ipsec {
            fc.settings.ipsec = true;
        }
        if self.settings.static_rpc.is_some() {
            fc.settings.static_rpc = self.settings.static_rpc.clone();
        }
        fc.zones.extend(self.zones.iter().cloned());
        fc
    }

    /// True if a site file excludes `file` from linting.
    pub fn excluded(&self, sites: &Sites, file: &Path) -> bool {
        let abs = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
        self.site_path_for(file)
            .and_then(|p| sites.loaded.get(&p))
            .is_some_and(|c| c.site.excludes(&abs))
    }
}
